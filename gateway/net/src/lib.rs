//! Outgoing connections for hyper's client over OpenSSL: the gateway's push transport
//! (docs/push.md) and the agency side's SOAP client (docs/adapter.md) both connect
//! through [`Connector`].
//!
//! Invariants:
//! - TLS is OpenSSL's with its peer checks on: the server certificate must chain to the
//!   configured roots ([`TlsSettings::ca_file`], or the system's default roots) and name
//!   the URL's host (DNS name or IP address, with SNI); TLS 1.2 at least.
//! - `http://` URLs are connected in clear: whether clear text is allowed is the caller's
//!   decision, made before it connects.
//! - A client certificate (mutual TLS) is sent only when both its chain and its key are
//!   configured, and they must match.
//! - A connection failure says whether TCP or TLS failed ([`ConnectError::is_tls`],
//!   found in hyper's error chain by [`connect_error`]).

#![forbid(unsafe_code)]

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// What TLS trusts and presents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM roots to trust instead of the system's defaults.
    pub ca_file: Option<PathBuf>,
    /// A PEM certificate chain and its key, for servers that ask for a client certificate.
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Why a connector could not be built (at start, from the configuration).
#[derive(Debug, Error)]
pub enum TlsSetupError {
    #[error("TLS roots {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS client certificate {path}: {message}")]
    ClientCertificate { path: String, message: String },
    #[error("TLS setup: {0}")]
    Tls(#[from] openssl::error::ErrorStack),
}

/// A failure while connecting, kept in hyper's error chain so a TLS failure can be told
/// from a TCP one.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct ConnectError {
    tls: bool,
    message: String,
}

impl ConnectError {
    /// The TCP connection was made and TLS failed (handshake, certificate, name).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// An error and its sources, `: `-joined (hyper's own text alone says only "client
/// error (SendRequest)").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// How long one address of a host may take to accept before the next is tried: a host
/// whose IPv6 address is unreachable must not cost the whole call's time.
const CONNECT_PER_ADDRESS: std::time::Duration = std::time::Duration::from_secs(3);

/// TCP to the first of `host`'s addresses that accepts, each tried for at most
/// [`CONNECT_PER_ADDRESS`] (the last one without that bound: the caller's own timeout
/// governs it).
async fn connect_any(host: &str, port: u16) -> io::Result<TcpStream> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for (i, addr) in addrs.iter().enumerate() {
        let attempt = TcpStream::connect(addr);
        let result = if i + 1 < addrs.len() {
            match tokio::time::timeout(CONNECT_PER_ADDRESS, attempt).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr} did not answer"),
                )),
            }
        } else {
            attempt.await
        };
        match result {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The [`ConnectError`] behind a hyper client error, if connecting is what failed.
pub fn connect_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ConnectError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            return Some(c);
        }
        source = s.source();
    }
    None
}

/// A TCP stream, in TLS or in clear.
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
pub struct Conn(TokioIo<Stream>);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0.inner() {
            Stream::Plain(_) => "Conn(plain)",
            Stream::Tls(_) => "Conn(tls)",
        })
    }
}

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
pub struct Connector {
    tls: Arc<SslConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for `settings`: the trust roots and the client certificate are read
    /// now, so a bad file stops the start rather than every connection.
    pub fn new(settings: &TlsSettings) -> Result<Connector, TlsSetupError> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        if let Some(path) = &settings.ca_file {
            let err = |message: String| TlsSetupError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
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
        match (&settings.client_certificate, &settings.client_key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let err = |path: &Path, message: String| TlsSetupError::ClientCertificate {
                    path: path.display().to_string(),
                    message,
                };
                builder
                    .set_certificate_chain_file(cert)
                    .map_err(|e| err(cert, e.to_string()))?;
                builder
                    .set_private_key_file(key, SslFiletype::PEM)
                    .map_err(|e| err(key, e.to_string()))?;
                builder
                    .check_private_key()
                    .map_err(|e| err(key, format!("does not match the certificate: {e}")))?;
            }
            (Some(p), None) | (None, Some(p)) => {
                return Err(TlsSetupError::ClientCertificate {
                    path: p.display().to_string(),
                    message: "a client certificate needs its key, and a key its certificate".into(),
                })
            }
        }
        Ok(Connector {
            tls: Arc::new(builder.build()),
        })
    }
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
            let tcp = connect_any(&host, port)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_to_a_listening_address_and_names_a_refusing_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(connect_any("127.0.0.1", port).await.is_ok());
        // `localhost` may name ::1 first, where nothing listens: the next address is tried.
        assert!(connect_any("localhost", port).await.is_ok());
        drop(listener);
        let e = connect_any("127.0.0.1", port).await.expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    }

    #[test]
    fn a_connector_refuses_half_a_client_identity_and_missing_roots() {
        let half = TlsSettings {
            client_certificate: Some(PathBuf::from("/nonexistent/cert.pem")),
            ..TlsSettings::default()
        };
        assert!(matches!(
            Connector::new(&half),
            Err(TlsSetupError::ClientCertificate { .. })
        ));
        let roots = TlsSettings {
            ca_file: Some(PathBuf::from("/nonexistent/roots.pem")),
            ..TlsSettings::default()
        };
        assert!(matches!(
            Connector::new(&roots),
            Err(TlsSetupError::CaFile { .. })
        ));
        assert!(Connector::new(&TlsSettings::default()).is_ok());
    }

    /// An error with a cause, as hyper's client error is.
    #[derive(Debug, Error)]
    #[error("client error (Connect)")]
    struct Wrapper(#[source] ConnectError);

    #[test]
    fn an_error_chain_names_every_source() {
        let e = Wrapper(ConnectError {
            tls: true,
            message: "handshake failed".into(),
        });
        assert_eq!(error_chain(&e), "client error (Connect): handshake failed");
        assert!(connect_error(&e).is_some_and(ConnectError::is_tls));
        assert_eq!(error_chain(&io::Error::other("reset")), "reset");
        assert!(connect_error(&io::Error::other("reset")).is_none());
    }
}
