//! The provider SDK: implement [`Handler`] for a kind of information and let a
//! [`Runner`] do the SMEV side — poll GetRequest per kind with a backoff that stays
//! quiet on an idle queue, verify, call the handler, send its answer, and acknowledge the
//! request with the agency's own registration number.
//!
//! Invariants:
//! - A request is acknowledged only after its answer was accepted by the gateway, so a
//!   crash or a handler error leaves it in the queue, and the gateway delivers it again
//!   after its visibility timeout (at-least-once handling).
//! - An answer is sent under one MessageID, fixed before the first attempt, so repeating
//!   a failed SendResponse can never produce two answers. (What is not covered: a crash of
//!   this process between SendResponse and Ack makes the handler answer the redelivered
//!   request again; the adapter sidecar, with its durable outbox, closes that gap.)
//! - A handler error never acknowledges: the request comes back; a handler that wants the
//!   request refused says so with [`Answer::Reject`].

use crate::answer::Incoming;
use crate::fault::CallError;
use crate::system::SystemClient;
use crate::{Attachment, ResponseContent};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a handler answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The requested data: one element in the kind's namespace, with attachments.
    Data {
        content: String,
        attachments: Vec<Attachment>,
    },
    /// A refusal with a SMEV reason code (`NO_DATA`, `ACCESS_DENIED`,
    /// `UNKNOWN_REQUEST_DESCRIPTION`, `FAILURE`…).
    Reject { code: String, description: String },
    /// An intermediate status (e.g. 2: clarification needed); the deadline stays open and
    /// the final answer is sent later ([`SystemClient::send_response`]).
    Status {
        code: i32,
        description: String,
        parameters: Vec<(String, String)>,
    },
}

impl Answer {
    pub fn data(content: impl Into<String>) -> Answer {
        Answer::Data {
            content: content.into(),
            attachments: Vec::new(),
        }
    }

    pub fn no_data(description: impl Into<String>) -> Answer {
        Answer::Reject {
            code: "NO_DATA".into(),
            description: description.into(),
        }
    }

    fn content(&self) -> (ResponseContent, &[Attachment]) {
        match self {
            Answer::Data {
                content,
                attachments,
            } => (ResponseContent::Data(content.clone()), attachments),
            Answer::Reject { code, description } => (
                ResponseContent::Rejection {
                    code: code.clone(),
                    description: description.clone(),
                },
                &[],
            ),
            Answer::Status {
                code,
                description,
                parameters,
            } => (
                ResponseContent::Status {
                    code: *code,
                    description: description.clone(),
                    parameters: parameters.clone(),
                },
                &[],
            ),
        }
    }
}

/// A handler's failure: the request is not acknowledged and comes back later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// The agency's business logic for the requests it provides data for.
pub trait Handler: Send + Sync + 'static {
    /// Given a verified request (its card, content and attachments), the answer.
    fn handle(
        &self,
        request: &Incoming,
    ) -> impl Future<Output = Result<Answer, HandlerError>> + Send;
}

/// How a [`Runner`] polls.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The kinds to poll (namespace, root element); empty: any kind, one GetRequest.
    pub kinds: Vec<(String, String)>,
    /// The first pause after an empty queue; doubled up to `idle_max` while it stays empty.
    pub idle_min: Duration,
    pub idle_max: Duration,
    /// Pauses after a failed call, doubled up to `error_max`.
    pub error_min: Duration,
    pub error_max: Duration,
    /// Attempts to send one answer before the request is left for redelivery.
    pub send_attempts: u32,
    /// Prefix of the agency's own registration numbers (`<prefix>-<n>`).
    pub registration_prefix: String,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            kinds: Vec::new(),
            idle_min: Duration::from_millis(100),
            idle_max: Duration::from_secs(5),
            error_min: Duration::from_millis(500),
            error_max: Duration::from_secs(60),
            send_attempts: 5,
            registration_prefix: "IN".into(),
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// The queue (of that kind) was empty.
    Empty,
    /// A request was answered and acknowledged.
    Answered {
        global_id: String,
        registration: String,
        response_global_id: String,
    },
    /// The handler failed; the request stays queued.
    HandlerFailed { global_id: String, error: String },
}

/// Exponential backoff with full jitter: a random pause in [d/2, d], d doubling.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    seed: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let seed = uuid::Uuid::new_v4().as_u128() as u64 | 1;
        Backoff {
            min,
            max,
            current: min,
            seed,
        }
    }

    /// The next pause; each call doubles the base up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: jitter needs spread, not cryptographic randomness.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = base / 2;
        let spread = base.saturating_sub(half).as_millis() as u64;
        half + Duration::from_millis(if spread == 0 {
            0
        } else {
            self.seed % (spread + 1)
        })
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// Polls, handles, answers and acknowledges.
#[derive(Debug)]
pub struct Runner<H> {
    client: SystemClient,
    handler: Arc<H>,
    config: RunnerConfig,
    registrations: AtomicU64,
}

impl<H: Handler> Runner<H> {
    pub fn new(client: SystemClient, handler: H, config: RunnerConfig) -> Runner<H> {
        Runner {
            client,
            handler: Arc::new(handler),
            config,
            registrations: AtomicU64::new(0),
        }
    }

    /// The agency's registration number for a received request: unique per runner
    /// start (time-based) and increasing.
    fn registration(&self, now: SystemTime) -> String {
        let n = self.registrations.fetch_add(1, Ordering::Relaxed) + 1;
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!("{}-{secs}-{n}", self.config.registration_prefix)
    }

    /// One GetRequest (of `kind`, or any), handled to the end.
    pub async fn poll_once(&self, kind: Option<(&str, &str)>) -> Result<Polled, CallError> {
        let Some(request) = self.client.get_request(kind).await? else {
            return Ok(Polled::Empty);
        };
        let reply_to = request
            .reply_to
            .clone()
            .ok_or_else(|| CallError::BadAnswer("a request without ReplyTo".into()))?;
        let answer = match self.handler.handle(&request).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(global_id = %request.global_id, error = %e, "handler failed; the request stays queued");
                return Ok(Polled::HandlerFailed {
                    global_id: request.global_id,
                    error: e.0,
                });
            }
        };
        let (content, attachments) = answer.content();
        let message_id = self.client.new_message_id();
        let mut backoff = Backoff::new(self.config.error_min, self.config.error_max);
        let mut attempt = 0;
        let accepted = loop {
            attempt += 1;
            match self
                .client
                .send_response(message_id, &reply_to, &content, attachments)
                .await
            {
                Ok(a) => break a,
                Err(e) if e.retryable() && attempt < self.config.send_attempts => {
                    tracing::warn!(global_id = %request.global_id, attempt, error = %e, "answer not sent; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
        };
        let now = self.client.now();
        let registration = self.registration(now);
        self.client
            .ack(&request.global_id, true, Some((&registration, now)))
            .await?;
        Ok(Polled::Answered {
            global_id: request.global_id,
            registration,
            response_global_id: accepted.global_id,
        })
    }

    /// Polls every kind until `shutdown` completes; an idle queue is polled less and
    /// less often (down to `idle_max`), a busy one back to back.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let kinds: Vec<Option<(String, String)>> = if self.config.kinds.is_empty() {
            vec![None]
        } else {
            self.config.kinds.iter().cloned().map(Some).collect()
        };
        let mut idle = Backoff::new(self.config.idle_min, self.config.idle_max);
        let mut errors = Backoff::new(self.config.error_min, self.config.error_max);
        tokio::pin!(shutdown);
        loop {
            let mut busy = false;
            let mut failed = false;
            for kind in &kinds {
                let k = kind.as_ref().map(|(n, r)| (n.as_str(), r.as_str()));
                let polled = tokio::select! {
                    _ = &mut shutdown => return,
                    p = self.poll_once(k) => p,
                };
                match polled {
                    Ok(Polled::Empty) => {}
                    Ok(Polled::Answered { .. }) => busy = true,
                    Ok(Polled::HandlerFailed { .. }) => failed = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "polling failed");
                        failed = true;
                    }
                }
            }
            let pause = if busy {
                idle.reset();
                errors.reset();
                continue;
            } else if failed {
                errors.next_delay()
            } else {
                errors.reset();
                idle.next_delay()
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut bases = Vec::new();
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(2), "{d:?}");
            bases.push(d);
        }
        assert!(bases[0] >= Duration::from_millis(50) && bases[0] <= Duration::from_millis(100));
        assert!(bases[9] >= Duration::from_secs(1), "{bases:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // Two backoffs do not march in step (jitter).
        let mut a = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let mut c = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let same = (0..20).filter(|_| a.next_delay() == c.next_delay()).count();
        assert!(same < 20);
    }
}
