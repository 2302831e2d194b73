//! Push delivery (docs/push.md): for a system that registered a `push_url`, the gateway
//! POSTs each queued request and response to it instead of waiting for GetRequest /
//! GetResponse, and takes the endpoint's reply as the message's Ack.
//!
//! Invariants:
//! - **What is pushed is what a pull gets.** The body is the signed
//!   `GetRequestResponse`/`GetResponseResponse` of [`Exchange::push_answer`] (the pull
//!   answer's own renderer, `mz:Registration` header and MTOM parts included).
//! - **The reply is an Ack call.** A 2xx reply must be a signed `AckRequest` by the
//!   message's recipient for this very message; it then goes through the one Ack code path
//!   (signature and certificate checks, receiver registration, statuses, journal). Anything
//!   else — no connection, a timeout, another status, a fault, another signer or message,
//!   `accepted="false"` — is a failed attempt ([`PushFailure`]) and acknowledges nothing.
//! - **Attempts are data.** The store leases a message for each attempt (no pull takes it
//!   meanwhile), counts the attempt when it leases, and records each failure with its
//!   retry time or the fallback, and its journal event, in one transaction. An attempt
//!   lost with its node is retried when its lease lapses, and counted. Between attempts a
//!   pull may take the message (at least once: the Ack is idempotent).
//! - **Bounded retries, then pull.** The retry after attempt `n` waits
//!   `min(base · 2^(n−1), max)`, jittered into its upper half; after `max_attempts` the
//!   message falls back to the pull queue and is never pushed again.
//! - **One loop per node, bounded.** It sleeps until the earliest due attempt, or until
//!   woken ([`Exchange::push_wake`]); at most `max_in_flight` POSTs run at once and at most
//!   `max_in_flight_per_system` to one system, so a dead endpoint cannot take every slot.
//! - **Stopping leaves nothing half-done.** Once stopped the loop claims nothing more and
//!   lets the attempts in flight finish (each is bounded by the request timeout) — an Ack
//!   that arrives then is still applied — before it returns; the store is closed after.
//!
//! The transport (HTTPS over OpenSSL) is the HTTP crate's: it implements [`PushTransport`].

use crate::clock::{to_ms, xs_datetime, Clock};
use crate::error::ExchangeError;
use crate::exchange::{gid_string, Exchange, OutgoingFile};
use crate::registry::check_push_url;
use mezhved_store::{AckOutcome, Delivery, PushAttemptFailed, PushClaim, Queue, Store};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::Instrument;

/// How push delivery behaves (config `[push]`).
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Attempts per message before it falls back to the pull queue (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub retry_base: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// One POST, from connecting to the end of the reply.
    pub request_timeout: Duration,
    /// POSTs in flight at once on this node.
    pub max_in_flight: usize,
    /// POSTs in flight at once to one system.
    pub max_in_flight_per_system: usize,
    /// Whether plain `http://` endpoints are pushed to (tests, local demos).
    pub allow_plain_http: bool,
}

impl PushSettings {
    /// How long an attempt holds its message: the POST's timeout plus time to apply the
    /// Ack. A node that dies mid-attempt delays the message's next attempt by this much.
    pub fn lease(&self) -> Duration {
        self.request_timeout + Duration::from_secs(30)
    }

    /// The wait before the attempt after attempt `attempt` (1-based): `base · 2^(attempt−1)`
    /// capped at `retry_max`, then moved to a point of its upper half by `random`
    /// ("equal jitter": endpoints that failed together do not retry together, and no wait
    /// is shorter than half the schedule).
    pub fn retry_delay(&self, attempt: u32, random: u64) -> Duration {
        let base = self.retry_base.as_millis().min(u128::from(u64::MAX)) as u64;
        let max = self.retry_max.as_millis().min(u128::from(u64::MAX)) as u64;
        let factor = 1u64
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u64::MAX);
        let full = base.saturating_mul(factor).min(max);
        let half = full / 2;
        let spread = full - half;
        Duration::from_millis(half + random % (spread + 1))
    }
}

/// One POST of a message to its system's endpoint.
#[derive(Debug)]
pub struct PushRequest {
    pub url: String,
    /// The message's global ID (hyphenated), also sent as a header for the endpoint's logs.
    pub global_id: String,
    pub recipient_system: String,
    pub attempt: u32,
    pub queue: Queue,
    /// The signed SOAP envelope.
    pub envelope: Vec<u8>,
    /// Attachment files to send as MTOM parts (empty: a plain `text/xml` body).
    pub parts: Vec<OutgoingFile>,
}

impl PushRequest {
    /// The `SOAPAction` of the POST: the operation whose answer the body is.
    pub fn soap_action(&self) -> &'static str {
        match self.queue {
            Queue::Requests => "\"urn:GetRequest\"",
            _ => "\"urn:GetResponse\"",
        }
    }
}

/// The endpoint's answer.
#[derive(Debug)]
pub struct PushReply {
    pub status: u16,
    pub body: bytes::Bytes,
}

/// What kind of transport failure an attempt met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// The URL is unusable or not allowed (plain `http://` without `allow_plain_http`).
    Url,
    /// No TCP connection.
    Connect,
    /// The TLS handshake failed (certificate not trusted, wrong host name, …).
    Tls,
    /// No complete reply within the request timeout.
    Timeout,
    /// The HTTP exchange broke (reset, malformed reply, an attachment file unreadable).
    Protocol,
    /// The reply body is larger than the gateway reads.
    ReplyTooLarge,
}

impl TransportErrorKind {
    pub fn class(self) -> &'static str {
        match self {
            TransportErrorKind::Url => "url",
            TransportErrorKind::Connect => "connect",
            TransportErrorKind::Tls => "tls",
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Protocol => "protocol",
            TransportErrorKind::ReplyTooLarge => "reply_too_large",
        }
    }
}

#[derive(Debug, Error)]
#[error("{message}")]
pub struct TransportError {
    pub kind: TransportErrorKind,
    pub message: String,
}

impl TransportError {
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> TransportError {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

/// Sends one POST and reads the reply (bounded in time and size).
pub trait PushTransport: Send + Sync + std::fmt::Debug + 'static {
    fn post(
        &self,
        request: PushRequest,
    ) -> Pin<Box<dyn Future<Output = Result<PushReply, TransportError>> + Send + '_>>;
}

/// Why an attempt failed. None of these acknowledges the message.
#[derive(Debug, Error)]
pub enum PushFailure {
    #[error("the message could not be rendered: {0}")]
    Render(#[source] ExchangeError),
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("the endpoint answered HTTP {status}{}", fault.as_deref().map(|f| format!(" (fault: {f})")).unwrap_or_default())]
    Status { status: u16, fault: Option<String> },
    #[error("the endpoint answered with a SOAP fault: {0}")]
    Fault(String),
    #[error("the reply is not a valid Ack: {0}")]
    InvalidAck(#[source] ExchangeError),
    #[error("the Ack is signed by {signer}, not by the recipient {recipient}")]
    WrongSigner { signer: String, recipient: String },
    #[error("the Ack is for {acked:?}, not for the pushed message {pushed}")]
    WrongMessage { acked: String, pushed: String },
    #[error("the endpoint refused the message (Ack accepted=\"false\")")]
    Refused,
    #[error("the Ack could not be applied: {0}")]
    Internal(#[source] ExchangeError),
}

impl PushFailure {
    /// The failure's class: what the journal records (the text may quote the endpoint).
    pub fn class(&self) -> &'static str {
        match self {
            PushFailure::Render(_) | PushFailure::Internal(_) => "internal",
            PushFailure::Transport(t) => t.kind.class(),
            PushFailure::Status { .. } => "status",
            PushFailure::Fault(_) => "fault",
            PushFailure::InvalidAck(_) => "invalid_ack",
            PushFailure::WrongSigner { .. } => "wrong_signer",
            PushFailure::WrongMessage { .. } => "wrong_message",
            PushFailure::Refused => "refused",
        }
    }
}

/// The push systems of one registry version: mnemonic → endpoint.
#[derive(Debug, Default)]
struct Endpoints {
    version: Option<u64>,
    urls: BTreeMap<String, String>,
}

/// What the loop and its attempts share.
#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    exchange: Arc<Exchange>,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn PushTransport>,
    settings: PushSettings,
}

/// One node's push loop.
#[derive(Debug)]
pub struct PushRunner {
    inner: Arc<Inner>,
    wake: Arc<Notify>,
}

/// The longest the loop sleeps without looking (another node may have queued messages,
/// or a lease lapsed).
pub const MAX_IDLE: Duration = Duration::from_secs(30);

impl PushRunner {
    pub fn new(
        exchange: Arc<Exchange>,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn PushTransport>,
        settings: PushSettings,
    ) -> PushRunner {
        let wake = exchange.push_wake();
        PushRunner {
            inner: Arc::new(Inner {
                store: exchange.store().clone(),
                exchange,
                clock,
                transport,
                settings,
            }),
            wake,
        }
    }

    /// The loop: claim what is due (within the in-flight bounds), start each attempt as a
    /// task, then sleep until the next attempt is due, an attempt ends, or a wake-up;
    /// until `stop` resolves. Then it waits for the attempts in flight and returns.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let settings = &self.inner.settings;
        let mut tasks: JoinSet<()> = JoinSet::new();
        // Attempts in flight: per system, and the system of each task.
        let mut busy: HashMap<String, usize> = HashMap::new();
        let mut task_system: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut endpoints = Endpoints::default();
        // Which system is offered room first, in turn, so none is always served last.
        let mut turn = 0usize;
        loop {
            // Registered before looking, so a wake-up between the look and the sleep is kept.
            let woken = self.wake.notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();
            self.refresh_endpoints(&mut endpoints);
            let systems: Vec<&String> = endpoints.urls.keys().collect();
            let mut free = settings.max_in_flight.saturating_sub(tasks.len());
            let mut rooms = Vec::new();
            for i in 0..systems.len() {
                let system = systems[(turn + i) % systems.len()];
                let room = settings
                    .max_in_flight_per_system
                    .saturating_sub(busy.get(system).copied().unwrap_or(0))
                    .min(free);
                if room > 0 {
                    rooms.push((system.clone(), room));
                    free -= room;
                }
            }
            turn = turn.wrapping_add(1);
            let mut wait = MAX_IDLE;
            if !rooms.is_empty() {
                let now = self.inner.clock.now();
                let claim = PushClaim {
                    systems: rooms,
                    now_ms: to_ms(now),
                    lease_ms: settings.lease().as_millis() as i64,
                    max_attempts: settings.max_attempts,
                };
                match self.inner.store.claim_push(claim).await {
                    Ok(claimed) => {
                        for gid in &claimed.fallen_back {
                            tracing::warn!(
                                global_id = %gid_string(gid),
                                "the last push attempt was lost with its node: the message falls back to the pull queue"
                            );
                        }
                        for d in claimed.deliveries {
                            let Some(url) = endpoints.urls.get(&d.recipient_system).cloned() else {
                                continue;
                            };
                            *busy.entry(d.recipient_system.clone()).or_default() += 1;
                            let system = d.recipient_system.clone();
                            let handle = tasks.spawn(attempt(self.inner.clone(), d, url));
                            task_system.insert(handle.id(), system);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "claiming push deliveries failed; retrying");
                        wait = Duration::from_secs(1);
                    }
                }
                // Systems still with room: when is their next attempt due?
                let open: Vec<String> = if tasks.len() < settings.max_in_flight {
                    endpoints
                        .urls
                        .keys()
                        .filter(|s| {
                            busy.get(*s).copied().unwrap_or(0) < settings.max_in_flight_per_system
                        })
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                };
                if !open.is_empty() && wait == MAX_IDLE {
                    match self.inner.store.next_push_at(open).await {
                        Ok(Some(at)) => {
                            let now = to_ms(self.inner.clock.now());
                            wait = self
                                .inner
                                .clock
                                .real_wait(Duration::from_millis(
                                    u64::try_from(at - now).unwrap_or(0),
                                ))
                                .min(MAX_IDLE);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "reading the next push attempt failed");
                            wait = Duration::from_secs(1);
                        }
                    }
                }
            }
            if wait.is_zero() {
                // Due now but held (a pull's lease, another node's attempt): look again
                // without spinning hot.
                tokio::task::yield_now().await;
            }
            tokio::select! {
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match &done {
                        Ok((id, ())) => *id,
                        Err(e) => {
                            tracing::error!(error = %e, "a push attempt's task failed");
                            e.id()
                        }
                    };
                    if let Some(system) = task_system.remove(&id) {
                        if let Some(n) = busy.get_mut(&system) {
                            *n = n.saturating_sub(1);
                        }
                    }
                }
                () = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                () = woken => {}
                () = &mut stop => break,
            }
        }
        // Nothing new from here on; the attempts in flight finish (each is bounded by the
        // request timeout), so an Ack that arrives now is still applied.
        if !tasks.is_empty() {
            tracing::info!(
                in_flight = tasks.len(),
                "push loop stopping: finishing the attempts in flight"
            );
        }
        let drain = settings.lease();
        let finished =
            tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            // Not expected (each attempt has its own timeout); their messages stay leased
            // and are pushed again when the lease lapses.
            tracing::warn!(
                "push attempts still running at shutdown were dropped; they will be retried"
            );
            tasks.abort_all();
        }
    }

    /// Takes the push systems from the registry when its version changed; an endpoint the
    /// configuration does not allow (plain http) is left alone, with a warning.
    fn refresh_endpoints(&self, endpoints: &mut Endpoints) {
        let registry = self.inner.exchange.registry().get();
        if endpoints.version == Some(registry.version()) {
            return;
        }
        endpoints.version = Some(registry.version());
        endpoints.urls.clear();
        for s in &registry.data.systems {
            let Some(url) = &s.push_url else { continue };
            match check_push_url(url, self.inner.settings.allow_plain_http) {
                Ok(()) => {
                    endpoints.urls.insert(s.mnemonic.clone(), url.clone());
                }
                Err(e) => tracing::warn!(
                    system = %s.mnemonic,
                    push_url = %url,
                    error = %e,
                    "push endpoint not used: its messages stay in the pull queue"
                ),
            }
        }
    }
}

/// One attempt, start to end: render, POST, apply the Ack or record the failure.
async fn attempt(inner: Arc<Inner>, delivery: Delivery, url: String) {
    let span = tracing::info_span!(
        "push",
        global_id = %gid_string(&delivery.global_id),
        system = %delivery.recipient_system,
        attempt = delivery.push_attempt,
    );
    async move {
        match inner.deliver(&delivery, url).await {
            Ok(AckOutcome::AlreadyAcknowledged) => {
                tracing::info!("pushed; the message was already acknowledged")
            }
            Ok(_) => tracing::info!("pushed and acknowledged"),
            Err(failure) => inner.record_failure(&delivery, &failure).await,
        }
    }
    .instrument(span)
    .await
}

impl Inner {
    async fn deliver(&self, d: &Delivery, url: String) -> Result<AckOutcome, PushFailure> {
        let now = self.clock.now();
        let (envelope, parts) = self
            .exchange
            .push_answer(d, now)
            .map_err(PushFailure::Render)?;
        let reply = self
            .transport
            .post(PushRequest {
                url,
                global_id: gid_string(&d.global_id),
                recipient_system: d.recipient_system.clone(),
                attempt: d.push_attempt,
                queue: d.queue,
                envelope,
                parts,
            })
            .await?;
        if !(200..300).contains(&reply.status) {
            return Err(PushFailure::Status {
                status: reply.status,
                fault: crate::exchange::fault_string_of(&reply.body),
            });
        }
        match self.exchange.acknowledge_push(d, &reply.body).await? {
            AckOutcome::Released => Err(PushFailure::Refused),
            outcome => Ok(outcome),
        }
    }

    async fn record_failure(&self, d: &Delivery, failure: &PushFailure) {
        let now = self.clock.now();
        let attempt = d.push_attempt;
        let retry_at = (attempt < self.settings.max_attempts).then(|| {
            let mut random = [0u8; 8];
            // Without randomness the wait is the top of its range: still correct.
            let random = match openssl::rand::rand_bytes(&mut random) {
                Ok(()) => u64::from_le_bytes(random),
                Err(_) => u64::MAX,
            };
            now + self.settings.retry_delay(attempt, random)
        });
        let recorded = self
            .store
            .push_failed(PushAttemptFailed {
                global_id: d.global_id,
                recipient_system: d.recipient_system.clone(),
                queue: d.queue,
                attempt,
                now_ms: to_ms(now),
                error: failure.to_string(),
                error_class: failure.class().to_string(),
                retry_at_ms: retry_at.map(to_ms),
            })
            .await;
        match (recorded, retry_at) {
            (Ok(true), Some(at)) => tracing::warn!(
                error = %failure,
                class = failure.class(),
                retry_at = %xs_datetime(at),
                "push attempt failed; it will be retried"
            ),
            (Ok(true), None) => tracing::error!(
                error = %failure,
                class = failure.class(),
                attempts = attempt,
                "push attempts exhausted: the message falls back to the pull queue"
            ),
            (Ok(false), _) => tracing::info!(
                error = %failure,
                "push attempt failed, but the message was acknowledged or retried meanwhile"
            ),
            (Err(e), _) => tracing::error!(
                error = %failure,
                store_error = %e,
                "push attempt failed and could not be recorded; it is retried when its lease lapses"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base_ms: u64, max_ms: u64) -> PushSettings {
        PushSettings {
            max_attempts: 8,
            retry_base: Duration::from_millis(base_ms),
            retry_max: Duration::from_millis(max_ms),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 16,
            max_in_flight_per_system: 4,
            allow_plain_http: false,
        }
    }

    #[test]
    fn retries_double_up_to_the_cap_and_jitter_stays_in_the_upper_half() {
        let s = settings(1_000, 60_000);
        let top = |attempt| s.retry_delay(attempt, u64::MAX);
        let lowest = |attempt| s.retry_delay(attempt, 0);
        // The top of each range: 1 s, 2 s, 4 s, … up to 60 s.
        let expected = [1, 2, 4, 8, 16, 32, 60, 60];
        for (i, secs) in expected.iter().enumerate() {
            let attempt = i as u32 + 1;
            let full = Duration::from_secs(*secs);
            assert!(
                top(attempt) <= full,
                "attempt {attempt}: {:?}",
                top(attempt)
            );
            assert_eq!(lowest(attempt), full / 2, "attempt {attempt}");
            for r in [1u64, 7, 499, 1_000_003, u64::MAX / 3] {
                let d = s.retry_delay(attempt, r);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}, {r}: {d:?}");
            }
        }
        // Exactly the top is reachable.
        assert_eq!(s.retry_delay(1, 500), Duration::from_secs(1));
        // Huge attempt numbers do not overflow.
        assert!(s.retry_delay(u32::MAX, u64::MAX) <= Duration::from_secs(60));
        assert!(settings(u64::MAX, u64::MAX).retry_delay(70, 3) > Duration::ZERO);
    }

    #[test]
    fn failure_classes_are_what_the_journal_records() {
        let t = |kind| PushFailure::Transport(TransportError::new(kind, "x"));
        assert_eq!(t(TransportErrorKind::Connect).class(), "connect");
        assert_eq!(t(TransportErrorKind::Tls).class(), "tls");
        assert_eq!(t(TransportErrorKind::Timeout).class(), "timeout");
        assert_eq!(
            PushFailure::Status {
                status: 503,
                fault: None
            }
            .class(),
            "status"
        );
        let s = PushFailure::Status {
            status: 500,
            fault: Some("busy".into()),
        }
        .to_string();
        assert_eq!(s, "the endpoint answered HTTP 500 (fault: busy)");
        assert_eq!(PushFailure::Refused.class(), "refused");
    }
}
