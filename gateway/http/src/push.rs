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
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mezhved_core::push::{
    PushReply, PushRequest, PushTransport, TransportError, TransportErrorKind,
};
use mezhved_core::registry::check_push_url;
use mezhved_net::{Connector, TlsSettings, TlsSetupError};
use std::future::Future;
use std::io;
use std::pin::Pin;

use std::time::Duration;
use thiserror::Error;

/// Why the transport could not be built (at start, from the configuration).
#[derive(Debug, Error)]
pub enum PushTransportError {
    #[error("push.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("push TLS setup: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
    #[error("push TLS setup: {0}")]
    Setup(String),
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
        let settings = TlsSettings {
            ca_file: (!config.ca_file.as_os_str().is_empty()).then(|| config.ca_file.clone()),
            ..TlsSettings::default()
        };
        let connector = Connector::new(&settings).map_err(|e| match e {
            TlsSetupError::CaFile { path, message } => PushTransportError::CaFile { path, message },
            TlsSetupError::ClientCertificate { message, .. } => PushTransportError::Setup(message),
            TlsSetupError::Tls(e) => PushTransportError::Tls(e),
        })?;
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
    if let Some(c) = std::error::Error::source(&e).and_then(mezhved_net::connect_error) {
        let kind = if c.is_tls() {
            TransportErrorKind::Tls
        } else {
            TransportErrorKind::Connect
        };
        return TransportError::new(kind, c.message().to_string());
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
