//! The push transport (docs/push.md): POSTs a delivery to a system's endpoint over HTTPS
//! with OpenSSL (tokio-openssl under hyper's pooled client) and reads the reply.
//!
//! Invariants:
//! - TLS is OpenSSL's, with its peer checks on: the server certificate must chain to the
//!   configured roots (`[push] ca_file`, or the system's default roots) and name the
//!   URL's host (DNS name or IP address); TLS 1.2 at least.
//! - Plain `http://` is sent only when `[push] allow_plain_http` is set; the URL is checked
//!   again here (whatever the registry holds), so a laxer past configuration cannot make
//!   the gateway push in clear.
//! - Every POST is bounded: the whole exchange (connect, TLS, request, reply) by
//!   `request_timeout_seconds`, the reply body by `max_reply_bytes`. Attachment files are
//!   streamed from disk as MTOM parts, never read whole.
//! - Connections are kept alive and reused per endpoint by hyper's pool.

use crate::config::PushConfig;
use crate::soap::{mtom_parts, ROOT_CONTENT_ID, TEXT_XML};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mezhved_core::push::{
    PushReply, PushRequest, PushTransport, TransportError, TransportErrorKind,
};
use mezhved_core::registry::check_push_url;
use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// Why the transport could not be built (at start, from the configuration).
#[derive(Debug, Error)]
pub enum PushTransportError {
    #[error("push.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("push TLS setup: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
}

/// A failure while connecting, kept in the client's error chain so a TLS failure can be
/// told from a TCP one.
#[derive(Debug, Error)]
#[error("{message}")]
struct ConnectError {
    tls: bool,
    message: String,
}

/// A TCP stream, in TLS or (when allowed) in clear.
enum Stream {
    Plain(TcpStream),
    Tls(SslStream<TcpStream>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A connection as hyper's client wants it.
struct Conn(TokioIo<Stream>);

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Opens TCP, then TLS for `https` (SNI and host-name or IP verification by OpenSSL).
#[derive(Clone)]
struct Connector {
    tls: Arc<SslConnector>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let fail = |tls: bool, message: String| ConnectError { tls, message };
            let https = uri.scheme_str() == Some("https");
            let host = uri
                .host()
                .ok_or_else(|| fail(false, format!("{uri} has no host")))?;
            // `Uri::host` keeps an IPv6 literal's brackets; resolving and verification
            // want the bare address.
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| fail(false, format!("cannot connect to {host}:{port}: {e}")))?;
            // Small SOAP messages: do not wait to fill segments.
            let _ = tcp.set_nodelay(true);
            if !https {
                return Ok(Conn(TokioIo::new(Stream::Plain(tcp))));
            }
            let ssl = tls
                .configure()
                .and_then(|c| c.into_ssl(&host))
                .map_err(|e| fail(true, format!("TLS setup for {host}: {e}")))?;
            let mut stream = SslStream::new(ssl, tcp)
                .map_err(|e| fail(true, format!("TLS setup for {host}: {e}")))?;
            Pin::new(&mut stream).connect().await.map_err(|e| {
                let verify = stream.ssl().verify_result();
                let detail = if verify == openssl::x509::X509VerifyResult::OK {
                    e.to_string()
                } else {
                    format!("{e}: {}", verify.error_string())
                };
                fail(true, format!("TLS handshake with {host}:{port}: {detail}"))
            })?;
            Ok(Conn(TokioIo::new(Stream::Tls(stream))))
        })
    }
}

type PushBody = UnsyncBoxBody<Bytes, io::Error>;

/// POSTs pushes over HTTPS (or plain HTTP when allowed).
pub struct HttpsPushTransport {
    client: Client<Connector, PushBody>,
    timeout: Duration,
    allow_plain_http: bool,
    max_reply_bytes: usize,
}

impl std::fmt::Debug for HttpsPushTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsPushTransport")
            .field("timeout", &self.timeout)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish_non_exhaustive()
    }
}

impl HttpsPushTransport {
    /// The transport `config` describes: its trust roots are read now, so a bad
    /// `ca_file` stops the start rather than every push.
    pub fn new(config: &PushConfig) -> Result<HttpsPushTransport, PushTransportError> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        if !config.ca_file.as_os_str().is_empty() {
            let err = |message: String| PushTransportError::CaFile {
                path: config.ca_file.display().to_string(),
                message,
            };
            let pem = std::fs::read(&config.ca_file).map_err(|e| err(e.to_string()))?;
            let certs = X509::stack_from_pem(&pem).map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("holds no PEM certificate".into()));
            }
            // Only these roots: the system's defaults are not trusted besides them.
            let mut store = X509StoreBuilder::new()?;
            for cert in certs {
                store.add_cert(cert)?;
            }
            builder.set_cert_store(store.build());
        }
        let connector = Connector {
            tls: Arc::new(builder.build()),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(HttpsPushTransport {
            client,
            timeout: Duration::from_secs(config.request_timeout_seconds),
            allow_plain_http: config.allow_plain_http,
            max_reply_bytes: usize::try_from(config.max_reply_bytes).unwrap_or(usize::MAX),
        })
    }

    async fn exchange(&self, request: PushRequest) -> Result<PushReply, TransportError> {
        check_push_url(&request.url, self.allow_plain_http)
            .map_err(|e| TransportError::new(TransportErrorKind::Url, e))?;
        let uri: Uri = request.url.parse().map_err(|e| {
            TransportError::new(TransportErrorKind::Url, format!("{}: {e}", request.url))
        })?;
        let mut builder = hyper::Request::post(uri)
            .header(
                hyper::header::USER_AGENT,
                concat!("mezhved/", env!("CARGO_PKG_VERSION")),
            )
            .header("SOAPAction", request.soap_action())
            .header("X-Mezhved-Global-Id", &request.global_id)
            .header("X-Mezhved-Attempt", request.attempt);
        let body: PushBody = if request.parts.is_empty() {
            builder = builder.header(hyper::header::CONTENT_TYPE, TEXT_XML);
            UnsyncBoxBody::new(Full::new(Bytes::from(request.envelope)).map_err(|e| match e {}))
        } else {
            // As the pull answer's MTOM body, streamed from the attachment files.
            let mtom = mezhved_mime::mtom_body(
                Bytes::from(request.envelope),
                ROOT_CONTENT_ID,
                mtom_parts(request.parts),
            )
            .map_err(|e| {
                TransportError::new(
                    TransportErrorKind::Protocol,
                    format!("cannot open an attachment: {e}"),
                )
            })?;
            builder = builder.header(hyper::header::CONTENT_TYPE, mtom.content_type);
            if let Some(len) = mtom.content_length {
                builder = builder.header(hyper::header::CONTENT_LENGTH, len);
            }
            UnsyncBoxBody::new(StreamBody::new(
                mtom.stream.map_ok(hyper::body::Frame::data),
            ))
        };
        let post = builder
            .body(body)
            .map_err(|e| TransportError::new(TransportErrorKind::Url, e.to_string()))?;
        let response = self.client.request(post).await.map_err(classify)?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), self.max_reply_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    TransportError::new(
                        TransportErrorKind::ReplyTooLarge,
                        format!("the reply is longer than {} bytes", self.max_reply_bytes),
                    )
                } else {
                    TransportError::new(
                        TransportErrorKind::Protocol,
                        format!("reading the reply: {e}"),
                    )
                }
            })?
            .to_bytes();
        Ok(PushReply { status, body })
    }
}

/// Names a client failure by what went wrong: the connection, TLS, or the exchange.
fn classify(e: hyper_util::client::legacy::Error) -> TransportError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            let kind = if c.tls {
                TransportErrorKind::Tls
            } else {
                TransportErrorKind::Connect
            };
            return TransportError::new(kind, c.message.clone());
        }
        source = s.source();
    }
    let kind = if e.is_connect() {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Protocol
    };
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    TransportError::new(kind, message)
}

impl PushTransport for HttpsPushTransport {
    fn post(
        &self,
        request: PushRequest,
    ) -> Pin<Box<dyn Future<Output = Result<PushReply, TransportError>> + Send + '_>> {
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, self.exchange(request))
                .await
                .map_err(|_| {
                    TransportError::new(
                        TransportErrorKind::Timeout,
                        format!("no complete reply within {} s", timeout.as_secs()),
                    )
                })?
        })
    }
}
