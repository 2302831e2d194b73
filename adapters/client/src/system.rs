//! One information system's connection to the gateway: every call signed with the
//! system's key, every answer checked (fault → [`CallError::Fault`], the gateway's
//! signatures verified when a [`GatewayVerifier`] is given) and read into plain values.
//!
//! Invariant: a call that returns `Ok` was answered by the gateway without a fault and,
//! with a verifier, the answer's signatures verified; callers may act on it (mark a
//! message sent, acknowledge a delivery). Every call is bounded by a timeout, so a gateway
//! that stops answering surfaces as a retryable [`CallError::Transport`].

use crate::answer::{Accepted, GatewayVerifier, Incoming, StatusMessage};
use crate::fault::{CallError, SmevFault};
use crate::{Attachment, Client, Outgoing, Reply, Request, ResponseContent};
use mezhved_dsig::xmldsig::Signer;
use mezhved_xml::{parse, Document, Limits};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// The clock a client reads (tests inject one).
pub type ClockFn = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A signed, verifying client for one information system.
#[derive(Clone)]
pub struct SystemClient {
    client: Client,
    key: Arc<dyn Signer>,
    verifier: Option<Arc<GatewayVerifier>>,
    clock: ClockFn,
    timeout: Duration,
    /// Where MTOM parts of answers are streamed (into memory when `None`).
    attachment_dir: Option<PathBuf>,
    limits: Limits,
}

impl std::fmt::Debug for SystemClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemClient")
            .field("client", &self.client)
            .field("key", &self.key)
            .field("verifies", &self.verifier.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[allow(clippy::disallowed_methods)]
fn wall_clock() -> SystemTime {
    SystemTime::now()
}

impl SystemClient {
    /// `endpoint`: the gateway's SOAP URL (`…/smev/v1.1`); TLS trusts the system's roots.
    pub fn new(
        endpoint: &str,
        key: Arc<dyn Signer>,
        verifier: Option<Arc<GatewayVerifier>>,
    ) -> Result<SystemClient, CallError> {
        Self::with_tls(
            endpoint,
            &mezhved_net::TlsSettings::default(),
            key,
            verifier,
        )
    }

    /// As [`SystemClient::new`], with TLS as `tls` says (roots, client certificate).
    pub fn with_tls(
        endpoint: &str,
        tls: &mezhved_net::TlsSettings,
        key: Arc<dyn Signer>,
        verifier: Option<Arc<GatewayVerifier>>,
    ) -> Result<SystemClient, CallError> {
        Ok(SystemClient {
            client: Client::with_tls(endpoint, tls).map_err(CallError::from)?,
            key,
            verifier,
            clock: Arc::new(wall_clock),
            timeout: Duration::from_secs(60),
            attachment_dir: None,
            limits: Limits::default(),
        })
    }

    pub fn with_clock(mut self, clock: ClockFn) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Streams MTOM parts of answers into files under `dir` instead of memory.
    pub fn with_attachment_dir(mut self, dir: PathBuf) -> Self {
        self.attachment_dir = Some(dir);
        self
    }

    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// A fresh MessageID (UUID v1 at the client's time).
    pub fn new_message_id(&self) -> Uuid {
        crate::message_id(self.now())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn key(&self) -> &Arc<dyn Signer> {
        &self.key
    }

    /// Signs, sends and checks one call; the answer's document is verified.
    pub async fn exchange(&self, call: Outgoing) -> Result<(Reply, Document), CallError> {
        let call = call.sign(self.key.as_ref()).map_err(CallError::from)?;
        let send = async {
            match &self.attachment_dir {
                Some(dir) => self.client.call_to_dir(&call, dir).await,
                None => self.client.call(&call).await,
            }
        };
        let reply = tokio::time::timeout(self.timeout, send)
            .await
            .map_err(|_| CallError::Transport(format!("no answer in {:?}", self.timeout)))?
            .map_err(CallError::from)?;
        if let Some(fault) = SmevFault::from_reply(&reply) {
            return Err(CallError::Fault(fault));
        }
        if reply.status != 200 {
            let text = reply.text();
            let head: String = text.chars().take(200).collect();
            return Err(CallError::Transport(format!(
                "HTTP {}: {head}",
                reply.status
            )));
        }
        let doc = parse(&reply.envelope, &self.limits)
            .map_err(|e| CallError::BadAnswer(format!("answer is not well-formed: {e}")))?;
        if let Some(v) = &self.verifier {
            v.verify(&doc, self.now())?;
        }
        Ok((reply, doc))
    }

    pub async fn send_request(&self, request: &Request) -> Result<Accepted, CallError> {
        let (_, doc) = self.exchange(crate::send_request(request)).await?;
        Accepted::from_document(&doc)
    }

    /// Answers the request whose `ReplyTo` was `to`, under the caller's `message_id`
    /// (keep it to repeat the call safely).
    pub async fn send_response(
        &self,
        message_id: Uuid,
        to: &str,
        content: &ResponseContent,
        attachments: &[Attachment],
    ) -> Result<Accepted, CallError> {
        let (_, doc) = self
            .exchange(crate::send_response(message_id, to, content, attachments))
            .await?;
        Accepted::from_document(&doc)
    }

    /// The oldest request in this system's queue (of one kind when `selector` is given).
    pub async fn get_request(
        &self,
        selector: Option<(&str, &str)>,
    ) -> Result<Option<Incoming>, CallError> {
        let (reply, doc) = self
            .exchange(crate::get_request(selector, self.now()))
            .await?;
        Incoming::from_document(&doc, &reply.parts, self.attachment_dir.is_some())
    }

    /// The oldest response in this system's queue.
    pub async fn get_response(
        &self,
        selector: Option<(&str, &str)>,
    ) -> Result<Option<Incoming>, CallError> {
        let (reply, doc) = self
            .exchange(crate::get_response(selector, self.now()))
            .await?;
        Incoming::from_document(&doc, &reply.parts, self.attachment_dir.is_some())
    }

    /// Acknowledges a delivered message, with the system's own registration of it.
    pub async fn ack(
        &self,
        global_id: &str,
        accepted: bool,
        registration: Option<(&str, SystemTime)>,
    ) -> Result<(), CallError> {
        self.exchange(crate::ack(global_id, accepted, registration))
            .await
            .map(|_| ())
    }

    /// The next processing status for this system.
    pub async fn get_status(&self) -> Result<Option<StatusMessage>, CallError> {
        let (_, doc) = self.exchange(crate::get_status(self.now())).await?;
        Ok(StatusMessage::from_document(&doc))
    }

    /// Reads a message the gateway pushed to this system's endpoint (the body of a
    /// `GetRequestResponse`/`GetResponseResponse`), verifying it as a pulled one.
    pub fn read_pushed(
        &self,
        envelope: &[u8],
        parts: &[(String, bytes::Bytes)],
    ) -> Result<Option<Incoming>, CallError> {
        let doc = parse(envelope, &self.limits)
            .map_err(|e| CallError::BadAnswer(format!("pushed message is not well-formed: {e}")))?;
        if let Some(v) = &self.verifier {
            v.verify(&doc, self.now())?;
        }
        Incoming::from_document(&doc, parts, false)
    }

    /// The signed `AckRequest` envelope that answers a push (the endpoint's reply body).
    pub fn signed_ack(
        &self,
        global_id: &str,
        accepted: bool,
        registration: Option<(&str, SystemTime)>,
    ) -> Result<Vec<u8>, CallError> {
        Ok(crate::ack(global_id, accepted, registration)
            .sign(self.key.as_ref())
            .map_err(CallError::from)?
            .envelope)
    }
}
