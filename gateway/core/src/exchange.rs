//! The exchange: one SMEV call in, one answer out.
//!
//! Every operation has the same shape: **parse → verify → identify → authorise → apply
//! (one store transaction) → answer**. Nothing is routed, stored or journaled before the
//! caller's signature, its registration and its grant are checked; the answer is built
//! (and signed) before the transaction and sent only after it committed. An operation that
//! fails writes nothing: the store call is its last step and is atomic, and attachment
//! files received for it are removed by [`FileGuard`].
//!
//! Idempotency: a SendRequest/SendResponse is keyed by (calling system, its MessageID). An
//! identical resend (same checksum) gets the very bytes it was answered with the first
//! time; a different message under a used MessageID is `MessageIsAlreadySent`. GetRequest
//! and GetResponse lease (redelivery after the visibility timeout); Ack of an acknowledged
//! message succeeds again without effect.

use crate::attachments::{self, FileGuard};
use crate::card::{self, CardContext};
use crate::checksum;
use crate::clock::{from_ms, to_ms, Clock};
use crate::envelope::{self, Metadata, Registration, MZ_NS};
use crate::error::ExchangeError;
use crate::ids::{self, GlobalIdGenerator, MessageIdError};
use crate::payload::{standalone_element, StoredPayload};
use crate::push::PushFailure;
use crate::registry::{Registry, RegistryHandle};
use crate::xmlw::XmlWriter;
use mezhved_dsig::smev_profile::{Operation, BASIC_NS, SOAP11_NS, TYPES_NS};
use mezhved_dsig::trust::TrustStore;
use mezhved_dsig::xmldsig::{self, Signer, DSIG_NS};
use mezhved_mime::ReceivedPart;
use mezhved_store::{
    AcceptOutcome, AckCommand, AckOutcome, Card, Delivery, LeaseRequest, Lifecycle, NewEvent,
    NewMessage, Queue, ReceiverRegistration, Store,
};
use mezhved_xml::{parse, Document, Limits, NodeId};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// Settings of the exchange (from the `[exchange]` and `[limits]` config sections).
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    /// How old a sender's MessageID may be.
    pub message_id_past: Duration,
    /// How far in the future a sender's MessageID may be (clock skew).
    pub message_id_future: Duration,
    /// How long a delivered, unacknowledged message stays invisible.
    pub visibility_timeout: Duration,
    pub max_attachment_bytes: u64,
    pub max_total_attachment_bytes: u64,
    /// Attachments of a delivered message are sent inline (base64) when they all arrived
    /// inline and total at most this; otherwise as MTOM parts.
    pub inline_delivery_limit: u64,
    pub data_dir: PathBuf,
    /// `MessageMetadata/MessageBroker`: this gateway's name.
    pub broker_name: String,
    /// Send processing statuses (`underProcessing`, `responseIsDelivered`) to the
    /// sender's status queue (GetStatus).
    pub delivery_statuses: bool,
    /// The operator's key for the keyed hash of a request card's search details
    /// ([`card::subject_hash`]): the card keeps only that hash.
    pub subject_key: Vec<u8>,
    /// Reply deadlines; `None` (tests of the exchange alone, the bench's no-deadline runs)
    /// writes no deadline rows.
    pub deadlines: Option<crate::deadlines::DeadlineRules>,
}

/// A call as received: the SOAP envelope and the MTOM parts already streamed to files.
#[derive(Debug)]
pub struct Call {
    pub envelope: bytes::Bytes,
    pub parts: Vec<ReceivedPart>,
}

/// An attachment file sent with an answer as an MTOM part.
#[derive(Debug, Clone)]
pub struct OutgoingFile {
    pub content_id: String,
    pub mime_type: String,
    pub path: PathBuf,
}

/// The answer to a call.
#[derive(Debug)]
pub struct Answer {
    pub operation: Operation,
    pub envelope: Vec<u8>,
    /// Non-empty: answer as MTOM with these parts.
    pub parts: Vec<OutgoingFile>,
    /// Attachment files that may be deleted once the answer is written (after an Ack).
    pub caller_system: String,
}

/// Who signed a call, and what.
struct Caller {
    system: String,
    /// The signed block.
    block: NodeId,
    /// The caller's `ds:Signature` element.
    signature: Option<NodeId>,
    /// Output of the signature's transform chain over the block, when it was the SMEV
    /// chain (it then is the checksum's input as is).
    smev_digested: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Exchange {
    store: Arc<dyn Store>,
    registry: Arc<RegistryHandle>,
    trust: Arc<TrustStore>,
    key: Arc<dyn Signer>,
    ids: GlobalIdGenerator,
    clock: Arc<dyn Clock>,
    settings: Settings,
    /// Bench-only: skip verifying and making signatures (see
    /// [`Exchange::disable_signatures_for_bench`]).
    signatures: bool,
    /// Wakes this node's deadline timer when a message with a deadline is stored.
    deadline_wake: Arc<tokio::sync::Notify>,
    /// Wakes this node's push loop when a message for a push system is stored.
    push_wake: Arc<tokio::sync::Notify>,
    /// Per-system call activity and the maintenance switch (docs/monitoring.md).
    monitor: Arc<crate::monitoring::Monitor>,
}

fn first_child(doc: &Document, parent: NodeId, ns: &str, local: &str) -> Option<NodeId> {
    doc.child_elements(parent)
        .find(|&c| doc.is_element(c, ns, local))
}

fn text_of(doc: &Document, id: NodeId) -> String {
    doc.text(id).trim().to_string()
}

fn position(doc: &Document, id: NodeId) -> usize {
    doc.element(id).map(|e| e.span().start).unwrap_or(0)
}

/// The registry's name of a SendRequest's kind of information, or `None` when its
/// content's (namespace, root element) is no registered kind. Only registry names ever
/// become label values, so unknown kinds cannot grow `/metrics` (docs/metrics.md).
fn request_kind_name(doc: &Document, block: NodeId, registry: &Registry) -> Option<String> {
    let holder = first_child(doc, block, BASIC_NS, "MessagePrimaryContent")?;
    let content = doc.child_elements(holder).next()?;
    let e = doc.element(content)?;
    registry
        .kind(doc.ns_uri(e.namespace()), e.local_name())
        .map(|k| k.name.clone())
}

/// `mezhved_requests_total{kind, outcome}` and `mezhved_responses_total{outcome}`: messages
/// (SendRequest, SendResponse) accepted or refused; the kind is looked up for SendRequest only.
fn count_message(op: Operation, outcome: &'static str, kind: impl FnOnce() -> Option<String>) {
    match op {
        Operation::SendRequest => {
            let kind = kind().unwrap_or_else(|| "other".to_string());
            metrics::counter!("mezhved_requests_total", "kind" => kind, "outcome" => outcome)
                .increment(1);
        }
        Operation::SendResponse => {
            metrics::counter!("mezhved_responses_total", "outcome" => outcome).increment(1);
        }
        _ => {}
    }
}

pub(crate) fn gid_string(g: &[u8; 16]) -> String {
    Uuid::from_bytes(*g).hyphenated().to_string()
}

fn hex_id(prefix: &str, g: &[u8; 16]) -> String {
    format!("{prefix}-{}", hex::encode(g))
}

impl Exchange {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        store: Arc<dyn Store>,
        registry: Arc<RegistryHandle>,
        trust: Arc<TrustStore>,
        key: Arc<dyn Signer>,
        segment: u16,
        node: u16,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Exchange, ExchangeError> {
        let floor = store.highest_global_id().await?.map(Uuid::from_bytes);
        let mut seed = [0u8; 2];
        openssl::rand::rand_bytes(&mut seed)
            .map_err(|e| ExchangeError::Internal(format!("no randomness: {e}")))?;
        let clock_seq = u16::from_be_bytes(seed);
        std::fs::create_dir_all(settings.data_dir.join(attachments::DIR))?;
        Ok(Exchange {
            store,
            registry,
            trust,
            key,
            ids: GlobalIdGenerator::new(segment, node, clock_seq, floor),
            clock,
            settings,
            signatures: true,
            deadline_wake: Arc::new(tokio::sync::Notify::new()),
            push_wake: Arc::new(tokio::sync::Notify::new()),
            monitor: Arc::new(crate::monitoring::Monitor::default()),
        })
    }

    /// For `mezhved bench` only: callers are identified by the certificate in their
    /// signature without verifying it, and answers are not signed. There is no
    /// configuration key for this; `serve` never calls it.
    pub fn disable_signatures_for_bench(&mut self) {
        self.signatures = false;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    /// A new global ID (for records made outside a SOAP call, e.g. paper requests).
    pub fn next_global_id(&self, now: SystemTime) -> Uuid {
        self.ids.next(now)
    }
    /// The notification a deadline timer waits on besides its sleep.
    pub fn deadline_wake(&self) -> Arc<tokio::sync::Notify> {
        self.deadline_wake.clone()
    }
    /// The notification the push loop waits on besides its sleep: a message for a push
    /// system was stored, or the registry changed.
    pub fn push_wake(&self) -> Arc<tokio::sync::Notify> {
        self.push_wake.clone()
    }
    /// What the monitoring reads: call activity per system, the maintenance switch.
    pub fn monitor(&self) -> &Arc<crate::monitoring::Monitor> {
        &self.monitor
    }
    pub fn broker_name(&self) -> &str {
        &self.settings.broker_name
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn registry(&self) -> &Arc<RegistryHandle> {
        &self.registry
    }

    fn key(&self) -> Option<&dyn Signer> {
        self.signatures.then_some(&*self.key as &dyn Signer)
    }

    /// Handles one call. On error the caller answers with `error.fault()`.
    pub async fn handle(&self, call: Call) -> Result<Answer, ExchangeError> {
        self.handle_observed(call).await.1
    }

    /// [`Exchange::handle`], also saying which operation the call was when it got that
    /// far (`None`: the envelope was not a SMEV call), for `/metrics` (docs/metrics.md).
    pub async fn handle_observed(
        &self,
        call: Call,
    ) -> (Option<Operation>, Result<Answer, ExchangeError>) {
        let mut op = None;
        let result = self.handle_inner(call, &mut op).await;
        (op, result)
    }

    async fn handle_inner(
        &self,
        call: Call,
        detected: &mut Option<Operation>,
    ) -> Result<Answer, ExchangeError> {
        // Every received part is deleted unless an accepted message took it over.
        let mut guard = FileGuard::new(call.parts.iter().map(|p| p.path.clone()).collect());
        let now = self.clock.now();
        // Maintenance (docs/monitoring.md): refused before any work; the guard removes
        // the files of an MTOM call.
        if let Some(m) = self.monitor.maintenance() {
            return Err(ExchangeError::Maintenance(m.reason));
        }
        let doc = parse(&call.envelope, &self.settings.limits)?;
        let op = Operation::detect(&doc).map_err(|e| ExchangeError::invalid(0, e.to_string()))?;
        *detected = Some(op);
        let registry = self.registry.get();
        let caller = match self.authenticate(&doc, op, &registry, now) {
            Ok(caller) => caller,
            Err(e) => {
                count_message(op, "rejected", || None);
                return Err(e);
            }
        };
        // Instrumented, not entered: a guard held across `.await` would leak this span
        // into whatever else the thread runs meanwhile (and corrupt the span stack).
        let span = tracing::info_span!("call", operation = ?op, system = %caller.system);
        let result = tracing::Instrument::instrument(
            self.dispatch(op, &doc, &call, &caller, &registry, now, &mut guard),
            span,
        )
        .await;
        // Monitoring (docs/monitoring.md): any Get… call is a poll; an answered
        // GetRequest/GetResponse drains its queue for the kind it selects (or every kind);
        // a refused SendRequest/SendResponse is a rejection (journaled as
        // `message.rejected`).
        {
            use crate::monitoring::{Outcome, Poll};
            let text = |name: &str| {
                first_child(&doc, caller.block, BASIC_NS, name).map(|e| text_of(&doc, e))
            };
            let selected;
            let poll = match op {
                Operation::GetRequest | Operation::GetResponse => {
                    selected = text("NamespaceURI").zip(text("RootElementLocalName"));
                    Poll::Drain {
                        queue: if op == Operation::GetRequest {
                            mezhved_store::Queue::Requests
                        } else {
                            mezhved_store::Queue::Responses
                        },
                        selector: selected
                            .as_ref()
                            .map(|(ns, root)| (ns.as_str(), root.as_str())),
                    }
                }
                Operation::GetStatus | Operation::GetIncomingQueueStatistics => Poll::Look,
                _ => Poll::No,
            };
            let outcome = match &result {
                Ok(_) => Outcome::Ok,
                Err(_) if matches!(op, Operation::SendRequest | Operation::SendResponse) => {
                    Outcome::Rejected
                }
                Err(_) => Outcome::Fault,
            };
            self.monitor
                .record(&caller.system, poll, outcome, to_ms(now));
        }
        let kind = || request_kind_name(&doc, caller.block, &registry);
        match result {
            Ok((envelope, parts)) => {
                count_message(op, "accepted", kind);
                Ok(Answer {
                    operation: op,
                    envelope,
                    parts,
                    caller_system: caller.system,
                })
            }
            Err(e) => {
                count_message(op, "rejected", kind);
                if matches!(op, Operation::SendRequest | Operation::SendResponse) {
                    self.journal_rejection(op, &doc, &caller, &e, now).await;
                }
                Err(e)
            }
        }
    }

    /// Journals a message the gateway refused from an authenticated system (the
    /// "well-formed on the first try" figure of the evaluation counts these). Calls whose
    /// sender is not proven are not journaled: anyone could send them in anyone's name.
    /// The event holds the fault's code, never its text (which may quote the content).
    async fn journal_rejection(
        &self,
        op: Operation,
        doc: &Document,
        caller: &Caller,
        error: &ExchangeError,
        now: SystemTime,
    ) {
        let fault = error.fault();
        let mut body = serde_json::Map::new();
        body.insert("operation".into(), format!("{op:?}").into());
        body.insert("code".into(), fault.name.into());
        body.insert(
            "fault".into(),
            match fault.code {
                crate::error::FaultCode::Client => "client",
                crate::error::FaultCode::Server => "server",
            }
            .into(),
        );
        if let Some(id) = first_child(doc, caller.block, TYPES_NS, "MessageID") {
            let text = text_of(doc, id);
            // Only a well-formed ID: anything else is content the event must not carry.
            if Uuid::parse_str(&text).is_ok() {
                body.insert("sender_message_id".into(), text.into());
            }
        }
        let event = NewEvent {
            at_ms: to_ms(now),
            event_type: "message.rejected".into(),
            global_id: None,
            actor: caller.system.clone(),
            body,
        };
        if let Err(e) = self.store.journal_append(vec![event]).await {
            tracing::error!(error = %e, "could not journal a rejected message");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn dispatch(
        &self,
        op: Operation,
        doc: &Document,
        call: &Call,
        caller: &Caller,
        registry: &Registry,
        now: SystemTime,
        guard: &mut FileGuard,
    ) -> Result<(Vec<u8>, Vec<OutgoingFile>), ExchangeError> {
        Ok(match op {
            Operation::SendRequest => {
                self.send_request(
                    doc,
                    &call.envelope,
                    &call.parts,
                    caller,
                    registry,
                    now,
                    guard,
                )
                .await?
            }
            Operation::SendResponse => {
                self.send_response(
                    doc,
                    &call.envelope,
                    &call.parts,
                    caller,
                    registry,
                    now,
                    guard,
                )
                .await?
            }
            Operation::GetRequest => {
                self.get(doc, caller, registry, now, Queue::Requests)
                    .await?
            }
            Operation::GetResponse => {
                self.get(doc, caller, registry, now, Queue::Responses)
                    .await?
            }
            Operation::GetStatus => self.get_status(caller, registry, now).await?,
            Operation::Ack => {
                self.ack(doc, caller, now).await?;
                (envelope::empty_answer("AckResponse"), Vec::new())
            }
            Operation::GetIncomingQueueStatistics => {
                (self.queue_statistics(caller).await?, Vec::new())
            }
        })
    }

    /// Verifies the caller's signature at its expected place and finds the registered
    /// system whose certificate made it.
    fn authenticate(
        &self,
        doc: &Document,
        op: Operation,
        registry: &Registry,
        now: SystemTime,
    ) -> Result<Caller, ExchangeError> {
        let expect = op.expectation();
        if !self.signatures {
            return self.identify_unverified(doc, op, registry);
        }
        let verified = xmldsig::verify_document(doc, &expect, &self.trust, now)?;
        let system = registry
            .system_by_certificate(&verified.signer.sha256_fingerprint_hex)
            .ok_or_else(|| {
                ExchangeError::SenderIsNotRegistered(format!(
                    "certificate {} ({}) belongs to no registered information system",
                    verified.signer.sha256_fingerprint_hex, verified.signer.subject
                ))
            })?;
        let signature = expect
            .signature_parent
            .resolve(doc)
            .ok()
            .and_then(|p| first_child(doc, p, DSIG_NS, "Signature"));
        let smev = matches!(verified.transforms, xmldsig::Transforms::Smev);
        Ok(Caller {
            system: system.mnemonic.clone(),
            block: verified.target,
            signature,
            smev_digested: smev.then_some(verified.digested),
        })
    }

    fn identify_unverified(
        &self,
        doc: &Document,
        op: Operation,
        registry: &Registry,
    ) -> Result<Caller, ExchangeError> {
        use base64::Engine as _;
        let expect = op.expectation();
        let no_sig = || {
            ExchangeError::Signature(mezhved_dsig::error::DsigError::NoSignatureFound(
                expect.signature_parent.to_string(),
            ))
        };
        let parent = expect.signature_parent.resolve(doc).map_err(|_| no_sig())?;
        let signature = first_child(doc, parent, DSIG_NS, "Signature").ok_or_else(no_sig)?;
        let cert = doc
            .descendants(signature)
            .find(|&d| doc.is_element(d, DSIG_NS, "X509Certificate"))
            .ok_or_else(no_sig)?;
        let b64: String = doc.text(cert).split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| ExchangeError::invalid(position(doc, cert), e.to_string()))?;
        let fingerprint = hex::encode(openssl::sha::sha256(&der));
        let system = registry
            .system_by_certificate(&fingerprint)
            .ok_or_else(|| ExchangeError::SenderIsNotRegistered(fingerprint.clone()))?;
        let target = expect
            .target
            .as_ref()
            .and_then(|t| t.resolve(doc).ok())
            .ok_or_else(no_sig)?;
        Ok(Caller {
            system: system.mnemonic.clone(),
            block: target,
            signature: Some(signature),
            smev_digested: None,
        })
    }

    fn check_message_id(
        &self,
        text: &str,
        pos: usize,
        now: SystemTime,
    ) -> Result<(), ExchangeError> {
        match ids::check_sender_message_id(
            text,
            now,
            self.settings.message_id_past,
            self.settings.message_id_future,
        ) {
            Ok(_) => Ok(()),
            Err(MessageIdError::InvalidFormat(reason)) => {
                Err(ExchangeError::InvalidMessageIdFormat(format!(
                    "\"{text}\" at byte {pos}: {reason}"
                )))
            }
            Err(e @ MessageIdError::Stale { .. }) => {
                Err(ExchangeError::StaleMessageId(format!("\"{text}\": {e}")))
            }
        }
    }

    /// The checksum input for the block: the SMEV chain's output (reused from the
    /// signature check when that was the chain used).
    fn block_digest_input(doc: &Document, caller: &Caller) -> Vec<u8> {
        match &caller.smev_digested {
            Some(d) => d.clone(),
            None => checksum::canonical_block(doc, caller.block),
        }
    }

    /// An identical resend gets its first answer again; anything else under a used
    /// MessageID is refused.
    fn replay(
        prev: mezhved_store::SentRecord,
        checksum: &[u8; 32],
        message_id: &str,
    ) -> Result<(Vec<u8>, Vec<OutgoingFile>), ExchangeError> {
        if &prev.checksum == checksum {
            tracing::info!(global_id = %gid_string(&prev.global_id), "identical resend answered again");
            Ok((prev.answer, Vec::new()))
        } else {
            Err(ExchangeError::MessageIsAlreadySent(format!(
                "{message_id} (first accepted as {})",
                gid_string(&prev.global_id)
            )))
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_request(
        &self,
        doc: &Document,
        input: &[u8],
        parts: &[ReceivedPart],
        caller: &Caller,
        registry: &Registry,
        now: SystemTime,
        guard: &mut FileGuard,
    ) -> Result<(Vec<u8>, Vec<OutgoingFile>), ExchangeError> {
        let block = caller.block;
        let field = |local: &str| first_child(doc, block, TYPES_NS, local);
        let message_id_el = field("MessageID")
            .ok_or_else(|| ExchangeError::invalid(position(doc, block), "MessageID is missing"))?;
        let message_id = text_of(doc, message_id_el);
        self.check_message_id(&message_id, position(doc, message_id_el), now)?;

        let request_el = doc.parent(block).unwrap_or(block);
        let incoming = attachments::receive(
            doc,
            block,
            first_child(doc, request_el, BASIC_NS, "AttachmentContentList"),
            parts,
            &self.settings,
            guard,
        )?;
        let block_input = Self::block_digest_input(doc, caller);
        let checksum = checksum::checksum(&block_input, &incoming.digests());

        if let Some(prev) = self.store.find_sent(&caller.system, &message_id).await? {
            return Self::replay(prev, &checksum, &message_id);
        }

        if let Some(eol) = field("EOL") {
            let text = text_of(doc, eol);
            let at = chrono::DateTime::parse_from_rfc3339(&text).map_err(|e| {
                ExchangeError::invalid(
                    position(doc, eol),
                    format!("EOL \"{text}\" is not an xs:dateTime: {e}"),
                )
            })?;
            if SystemTime::from(at) <= now {
                return Err(ExchangeError::EndOfLifeReached(format!(
                    "EOL {text} has passed"
                )));
            }
        }
        let eol_ms = field("EOL")
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&text_of(doc, e)).ok())
            .map(|t| t.timestamp_millis());

        let content_holder = first_child(doc, block, BASIC_NS, "MessagePrimaryContent")
            .ok_or_else(|| {
                ExchangeError::invalid(position(doc, block), "MessagePrimaryContent is missing")
            })?;
        let content = doc.child_elements(content_holder).next().ok_or_else(|| {
            ExchangeError::invalid(
                position(doc, content_holder),
                "MessagePrimaryContent is empty",
            )
        })?;
        let (content_ns, content_root) = {
            let e = doc
                .element(content)
                .ok_or_else(|| ExchangeError::Internal("content vanished".into()))?;
            (
                doc.ns_uri(e.namespace()).to_string(),
                e.local_name().to_string(),
            )
        };
        let kind = registry.kind(&content_ns, &content_root).ok_or_else(|| {
            ExchangeError::BusinessDataTypeIsNotSupported {
                namespace: content_ns.clone(),
                local_name: content_root.clone(),
            }
        })?;
        if !registry.is_granted(&caller.system, &content_ns, &content_root) {
            return Err(ExchangeError::AccessDenied(format!(
                "{} has no grant for the kind of information \"{}\" ({{{content_ns}}}{content_root})",
                caller.system, kind.name
            )));
        }
        let provider = registry.system(&kind.provider_system).ok_or_else(|| {
            ExchangeError::Internal(format!(
                "the provider {} of {} is not registered",
                kind.provider_system, kind.name
            ))
        })?;
        let sender = registry
            .system(&caller.system)
            .ok_or_else(|| ExchangeError::Internal("caller vanished from the registry".into()))?;
        let names = |system: &str| -> Vec<String> {
            match registry.participant_of(system) {
                Some(p) => vec![p.name.clone(), p.mnemonic.clone()],
                None => Vec::new(),
            }
        };
        let sender_names = names(&caller.system);
        let recipient_names = names(&provider.mnemonic);
        let sender_refs: Vec<&str> = sender_names.iter().map(String::as_str).collect();
        let recipient_refs: Vec<&str> = recipient_names.iter().map(String::as_str).collect();
        let today = chrono::DateTime::<chrono::Utc>::from(now).date_naive();
        let request_card = card::read_card(
            doc,
            field("BusinessProcessMetadata"),
            position(doc, block),
            &CardContext {
                sender_agency_names: &sender_refs,
                recipient_agency_names: &recipient_refs,
                kind_restricted: kind.restricted,
                consent_required: kind.consent_required,
                today,
            },
        )
        .map_err(|violations| {
            ExchangeError::InvalidContent(
                violations
                    .into_iter()
                    .map(|v| crate::error::ContentError {
                        position: v.position,
                        message: v.message,
                    })
                    .collect(),
            )
        })?;

        let global = self.ids.next(now);
        let gid = *global.as_bytes();
        let gid_text = global.hyphenated().to_string();
        let sender_registration = (
            request_card.sender_registration.number.clone(),
            request_card.sender_registration.date.to_string(),
        );
        let test = field("TestMessage").is_some();
        let deadline = self
            .settings
            .deadlines
            .as_ref()
            .map(|rules| rules.reply_deadline(now, kind.reply_working_days));
        let answer = self.metadata_answer(
            "SendRequestResponse",
            &gid,
            &gid_text,
            "REQUEST",
            &caller.system,
            &sender.name,
            now,
            (&provider.mnemonic, &provider.name),
            &kind.name,
            "requestIsQueued",
            &checksum,
            Some((&sender_registration.0, &sender_registration.1)),
            deadline.as_ref().map(|d| d.at),
            false,
        )?;
        let payload = StoredPayload {
            block: standalone_element(doc, input, block),
            signature: caller
                .signature
                .map(|s| standalone_element(doc, input, s))
                .unwrap_or_default(),
            sender_name: sender.name.clone(),
            original_message_id: String::new(),
            original_transaction_code: String::new(),
            sender_registration: Some(sender_registration.clone()),
        };
        let details = serde_json::json!({
            "message_type": "REQUEST",
            "global_id": gid_text,
            "reference_message_id": field("ReferenceMessageID").map(|e| text_of(doc, e)),
            "transaction_code_present": field("TransactionCode").is_some(),
            "sender_agency": registry.participant_of(&caller.system).map(|p| p.mnemonic.clone()),
            "recipient_agency": registry.participant_of(&provider.mnemonic).map(|p| p.mnemonic.clone()),
            "kind_name": kind.name,
            "service": { "name": request_card.service.name, "registry_number": request_card.service.registry_number },
            "legal_basis": request_card.legal_basis.iter().map(|l| serde_json::json!({"act": l.act, "provision": l.provision})).collect::<Vec<_>>(),
            "official": { "full_name": request_card.official.full_name, "position": request_card.official.position,
                          "phone": request_card.official.phone, "email": request_card.official.email },
            "reply_contact": request_card.reply_contact,
            "subject_hash": hex::encode(
                card::subject_hash(&self.settings.subject_key, &request_card.search_details)
                    .map_err(|e| ExchangeError::Internal(format!("subject hash: {e}")))?,
            ),
            "sent_on": request_card.sent_on.to_string(),
            "subject_consent": request_card.subject_consent.as_ref().map(|c| c.obtained),
            "sender_registration": { "number": sender_registration.0, "date": sender_registration.1 },
            "access_restricted": request_card.access_restricted || kind.restricted,
            "paper": request_card.paper.is_some(),
            "checksum_algorithm": envelope::CHECKSUM_ALGORITHM,
            "size": input.len(),
            "attachments": incoming.card_entries(),
            "eol_ms": eol_ms,
            "due_at_ms": deadline.as_ref().map(|d| to_ms(d.at)),
            "due_date": deadline.as_ref().map(|d| d.date.to_string()),
            "reply_working_days": deadline.as_ref().map(|d| d.working_days),
        });
        let lifecycle = Lifecycle {
            deadlines: crate::deadlines::DeadlineRules::rows(deadline.as_ref(), eol_ms),
            closes: None,
        };
        let message = NewMessage {
            global_id: gid,
            queue: Queue::Requests,
            sender_system: caller.system.clone(),
            sender_message_id: message_id.clone(),
            recipient_system: provider.mnemonic.clone(),
            kind_namespace: content_ns.clone(),
            kind_root: content_root.clone(),
            content_namespace: content_ns.clone(),
            content_root: content_root.clone(),
            original_global_id: None,
            checksum,
            received_at_ms: to_ms(now),
            eol_ms,
            payload: payload.encode(),
            attachments: incoming.stored.clone(),
            answer: answer.clone(),
            card: Card {
                global_id: gid,
                queue: Queue::Requests,
                sender_system: caller.system.clone(),
                sender_message_id: message_id.clone(),
                recipient_system: provider.mnemonic.clone(),
                kind_namespace: content_ns,
                kind_root: content_root,
                original_global_id: None,
                checksum,
                received_at_ms: to_ms(now),
                status: "requestIsQueued".into(),
                test_message: test,
                details,
            },
            original_status: None,
            lifecycle,
        };
        self.commit(message, guard, &checksum, &message_id)
            .await
            .map(|a| (a, Vec::new()))
    }

    /// Stores an accepted message; on success its attachment files belong to the store.
    async fn commit(
        &self,
        message: NewMessage,
        guard: &mut FileGuard,
        checksum: &[u8; 32],
        message_id: &str,
    ) -> Result<Vec<u8>, ExchangeError> {
        if !message.attachments.is_empty() {
            attachments::sync_dir(&self.settings.data_dir)?;
        }
        let answer = message.answer.clone();
        let gid = message.global_id;
        let has_deadlines = !message.lifecycle.deadlines.is_empty();
        // The store decides in its transaction whether the message is pushed; a wake-up
        // too many costs the push loop one look.
        let pushed = matches!(message.queue, Queue::Requests | Queue::Responses)
            && self
                .registry
                .get()
                .system(&message.recipient_system)
                .is_some_and(|s| s.push_url.is_some());
        match self.store.accept(message).await? {
            AcceptOutcome::Accepted => {
                guard.disarm();
                if has_deadlines {
                    // The timer may be asleep past this message's first deadline.
                    self.deadline_wake.notify_one();
                }
                if pushed {
                    self.push_wake.notify_one();
                }
                tracing::info!(global_id = %gid_string(&gid), "accepted");
                Ok(answer)
            }
            AcceptOutcome::Duplicate(prev) => {
                Self::replay(prev, checksum, message_id).map(|(a, _)| a)
            }
        }
    }

    /// `SendRequestResponse`/`SendResponseResponse`: signed MessageMetadata plus the
    /// signed `mz:Registration` header.
    #[allow(clippy::too_many_arguments)]
    fn metadata_answer(
        &self,
        element: &str,
        gid: &[u8; 16],
        gid_text: &str,
        message_type: &str,
        sender: &str,
        sender_name: &str,
        now: SystemTime,
        recipient: (&str, &str),
        kind_name: &str,
        status: &str,
        checksum: &[u8; 32],
        sender_registration: Option<(&str, &str)>,
        due_at: Option<SystemTime>,
        late: bool,
    ) -> Result<Vec<u8>, ExchangeError> {
        let md_id = hex_id("mz-md", gid);
        let header = envelope::signed_registration(
            &Registration {
                id: &hex_id("mz-reg", gid),
                global_id: gid_text,
                checksum,
                received_at: now,
                due_at,
                sender_registration,
                late,
            },
            self.key(),
            &self.settings.limits,
        )?;
        let mut w = XmlWriter::with_capacity(4096);
        envelope::open_envelope(&mut w);
        w.open("soap:Header", &[]).raw(&header).close("soap:Header");
        let tag = format!("ns:{element}");
        w.open("soap:Body", &[]).open(&tag, &[]);
        envelope::write_metadata(
            &mut w,
            &Metadata {
                id: &md_id,
                message_id: gid_text,
                message_type,
                sender_mnemonic: sender,
                sender_name,
                sending_timestamp: now,
                broker: &self.settings.broker_name,
                destination: recipient.0,
                recipient: Some(recipient),
                content_type_name: Some(kind_name),
                delivery_timestamp: None,
                status: Some(status),
            },
        );
        w.empty("ns:SMEVSignature", &[])
            .close(&tag)
            .close("soap:Body")
            .close("soap:Envelope");
        envelope::sign_detached(
            w.into_bytes(),
            &md_id,
            &[(TYPES_NS, element), (TYPES_NS, "SMEVSignature")],
            self.key(),
            &self.settings.limits,
        )
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_response(
        &self,
        doc: &Document,
        input: &[u8],
        parts: &[ReceivedPart],
        caller: &Caller,
        registry: &Registry,
        now: SystemTime,
        guard: &mut FileGuard,
    ) -> Result<(Vec<u8>, Vec<OutgoingFile>), ExchangeError> {
        let block = caller.block;
        let field = |ns: &str, local: &str| first_child(doc, block, ns, local);
        let message_id_el = field(TYPES_NS, "MessageID")
            .ok_or_else(|| ExchangeError::invalid(position(doc, block), "MessageID is missing"))?;
        let message_id = text_of(doc, message_id_el);
        self.check_message_id(&message_id, position(doc, message_id_el), now)?;
        let to_el = field(TYPES_NS, "To")
            .ok_or_else(|| ExchangeError::invalid(position(doc, block), "To is missing"))?;
        let to = text_of(doc, to_el);

        let request_el = doc.parent(block).unwrap_or(block);
        let incoming = attachments::receive(
            doc,
            block,
            first_child(doc, request_el, BASIC_NS, "AttachmentContentList"),
            parts,
            &self.settings,
            guard,
        )?;
        let checksum =
            checksum::checksum(&Self::block_digest_input(doc, caller), &incoming.digests());
        if let Some(prev) = self.store.find_sent(&caller.system, &message_id).await? {
            return Self::replay(prev, &checksum, &message_id);
        }

        // `To` is the ReplyTo the gateway gave with the request: its global ID. The
        // responder must be the system that request was addressed to.
        let not_found = || {
            ExchangeError::RecipientIsNotFound(format!(
                "To \"{to}\" names no request delivered to {}",
                caller.system
            ))
        };
        let original_gid = parse_reply_to(&to).ok_or_else(not_found)?;
        let original = self
            .store
            .message_info(original_gid)
            .await?
            .filter(|m| m.queue == Queue::Requests && m.recipient_system == caller.system)
            .ok_or_else(not_found)?;

        let (message_kind, final_answer, content_ns, content_root, status) = if let Some(holder) =
            field(BASIC_NS, "MessagePrimaryContent")
        {
            let content = doc.child_elements(holder).next().ok_or_else(|| {
                ExchangeError::invalid(position(doc, holder), "MessagePrimaryContent is empty")
            })?;
            let e = doc
                .element(content)
                .ok_or_else(|| ExchangeError::Internal("content vanished".into()))?;
            let ns = doc.ns_uri(e.namespace()).to_string();
            if ns == original.kind_namespace && e.local_name() == original.kind_root {
                return Err(ExchangeError::IncorrectResponseContentType(format!(
                    "the response content {{{ns}}}{} is the request's own type",
                    e.local_name()
                )));
            }
            (
                "data",
                true,
                ns,
                e.local_name().to_string(),
                "responseIsAcceptedBySmev",
            )
        } else if let Some(rejected) = field(TYPES_NS, "RequestRejected") {
            let code_el = first_child(doc, rejected, TYPES_NS, "RejectionReasonCode");
            let code = code_el.map(|c| text_of(doc, c)).unwrap_or_default();
            if ![
                "ACCESS_DENIED",
                "NO_DATA",
                "UNKNOWN_REQUEST_DESCRIPTION",
                "FAILURE",
            ]
            .contains(&code.as_str())
            {
                return Err(ExchangeError::invalid(
                        position(doc, rejected),
                        format!("RejectionReasonCode \"{code}\" is not ACCESS_DENIED, NO_DATA, UNKNOWN_REQUEST_DESCRIPTION or FAILURE"),
                    ));
            }
            (
                "rejection",
                true,
                original.kind_namespace.clone(),
                original.kind_root.clone(),
                "responseIsAcceptedBySmev",
            )
        } else if let Some(st) = field(TYPES_NS, "RequestStatus") {
            let code = first_child(doc, st, TYPES_NS, "StatusCode")
                .map(|c| text_of(doc, c))
                .unwrap_or_default();
            if code.parse::<i32>().is_err() {
                return Err(ExchangeError::invalid(
                    position(doc, st),
                    format!("StatusCode \"{code}\" is not an xs:int"),
                ));
            }
            (
                "status",
                false,
                original.kind_namespace.clone(),
                original.kind_root.clone(),
                "underProcessing",
            )
        } else if field(TYPES_NS, "AsyncProcessingStatus").is_some() {
            (
                "status",
                false,
                original.kind_namespace.clone(),
                original.kind_root.clone(),
                "underProcessing",
            )
        } else {
            return Err(ExchangeError::IncorrectResponseContentType(
                    "SenderProvidedResponseData holds no MessagePrimaryContent, RequestRejected, RequestStatus or AsyncProcessingStatus".into(),
                ));
        };

        // A provider asking for more information (Kuzbass 5.5).
        // (Validated above when present.)
        let status_code = field(TYPES_NS, "RequestStatus")
            .and_then(|st| first_child(doc, st, TYPES_NS, "StatusCode"))
            .and_then(|c| text_of(doc, c).parse::<i32>().ok());
        let clarification = status_code == Some(crate::deadlines::CLARIFICATION_STATUS_CODE);
        let now_ms = to_ms(now);
        // An answer after the deadline is delivered all the same, marked late.
        let late =
            original.closed_at_ms.is_none() && original.due_at_ms.is_some_and(|due| now_ms >= due);
        let closes = (final_answer
            || (clarification
                && self.settings.deadlines.as_ref().map(|d| d.clarification)
                    == Some(crate::deadlines::ClarificationPolicy::Restart)))
        .then_some(original_gid);
        let consumer = registry.system(&original.sender_system);
        let consumer_name = consumer.map(|s| s.name.clone()).unwrap_or_default();
        let responder = registry
            .system(&caller.system)
            .ok_or_else(|| ExchangeError::Internal("caller vanished from the registry".into()))?;
        let kind_name = registry
            .kind(&original.kind_namespace, &original.kind_root)
            .map(|k| k.name.clone())
            .unwrap_or_default();
        let global = self.ids.next(now);
        let gid = *global.as_bytes();
        let gid_text = global.hyphenated().to_string();
        let answer = self.metadata_answer(
            "SendResponseResponse",
            &gid,
            &gid_text,
            "RESPONSE",
            &caller.system,
            &responder.name,
            now,
            (&original.sender_system, &consumer_name),
            &kind_name,
            status,
            &checksum,
            None,
            None,
            late,
        )?;
        let payload = StoredPayload {
            block: standalone_element(doc, input, block),
            signature: caller
                .signature
                .map(|s| standalone_element(doc, input, s))
                .unwrap_or_default(),
            sender_name: responder.name.clone(),
            original_message_id: original.sender_message_id.clone(),
            original_transaction_code: String::new(),
            sender_registration: None,
        };
        let test = false;
        let details = serde_json::json!({
            "message_type": "RESPONSE",
            "global_id": gid_text,
            "response_kind": message_kind,
            "final": final_answer,
            "clarification": clarification,
            "rejection_code": field(TYPES_NS, "RequestRejected")
                .and_then(|r| first_child(doc, r, TYPES_NS, "RejectionReasonCode"))
                .map(|c| text_of(doc, c)),
            "status_code": status_code,
            "late": late,
            "closes_deadline": closes.is_some(),
            "original_global_id": gid_string(&original_gid),
            "kind_name": kind_name,
            "checksum_algorithm": envelope::CHECKSUM_ALGORITHM,
            "size": input.len(),
            "attachments": incoming.card_entries(),
        });
        let message = NewMessage {
            global_id: gid,
            queue: Queue::Responses,
            sender_system: caller.system.clone(),
            sender_message_id: message_id.clone(),
            recipient_system: original.sender_system.clone(),
            kind_namespace: original.kind_namespace.clone(),
            kind_root: original.kind_root.clone(),
            content_namespace: content_ns,
            content_root,
            original_global_id: Some(original_gid),
            checksum,
            received_at_ms: to_ms(now),
            eol_ms: None,
            payload: payload.encode(),
            attachments: incoming.stored.clone(),
            answer,
            card: Card {
                global_id: gid,
                queue: Queue::Responses,
                sender_system: caller.system.clone(),
                sender_message_id: message_id.clone(),
                recipient_system: original.sender_system.clone(),
                kind_namespace: original.kind_namespace.clone(),
                kind_root: original.kind_root.clone(),
                original_global_id: Some(original_gid),
                checksum,
                received_at_ms: to_ms(now),
                status: "responseIsAcceptedBySmev".into(),
                test_message: test,
                details,
            },
            original_status: Some(if final_answer {
                format!("answered:{message_kind}")
            } else if clarification {
                "clarificationRequested".into()
            } else {
                "underProcessing".into()
            }),
            lifecycle: Lifecycle {
                deadlines: Vec::new(),
                closes,
            },
        };
        self.commit(message, guard, &checksum, &message_id)
            .await
            .map(|a| (a, Vec::new()))
    }

    /// GetRequest / GetResponse: lease the oldest visible message of the caller's queue.
    async fn get(
        &self,
        doc: &Document,
        caller: &Caller,
        registry: &Registry,
        now: SystemTime,
        queue: Queue,
    ) -> Result<(Vec<u8>, Vec<OutgoingFile>), ExchangeError> {
        let selector_el = caller.block;
        let ns = first_child(doc, selector_el, BASIC_NS, "NamespaceURI").map(|e| text_of(doc, e));
        let root = first_child(doc, selector_el, BASIC_NS, "RootElementLocalName")
            .map(|e| text_of(doc, e));
        let selector = match (ns, root) {
            (Some(ns), Some(root)) => {
                if queue == Queue::Requests {
                    // A provider may select only kinds it provides.
                    match registry.kind(&ns, &root) {
                        Some(k) if k.provider_system == caller.system => {}
                        _ => {
                            return Err(ExchangeError::UnknownMessageType(format!(
                                "{{{ns}}}{root} is not a kind of information provided by {}",
                                caller.system
                            )))
                        }
                    }
                }
                Some((ns, root))
            }
            (None, None) => None,
            _ => return Err(ExchangeError::invalid(
                position(doc, selector_el),
                "MessageTypeSelector needs both NamespaceURI and RootElementLocalName, or neither",
            )),
        };
        let delivery = self
            .store
            .lease(LeaseRequest {
                recipient_system: caller.system.clone(),
                queue,
                selector,
                now_ms: to_ms(now),
                visibility_ms: self.settings.visibility_timeout.as_millis() as i64,
            })
            .await?;
        let (wrapper, message_el) = delivery_elements(queue);
        let Some(delivery) = delivery else {
            return Ok((envelope::empty_answer(wrapper), Vec::new()));
        };
        tracing::info!(global_id = %gid_string(&delivery.global_id), delivery = delivery.delivery_count, "delivered");
        self.delivery_answer(&delivery, registry, now, wrapper, message_el)
    }

    /// The envelope (and MTOM parts) a push POSTs for a leased message: the very answer a
    /// GetRequest/GetResponse would have given for it at `now`.
    pub(crate) fn push_answer(
        &self,
        d: &Delivery,
        now: SystemTime,
    ) -> Result<(Vec<u8>, Vec<OutgoingFile>), ExchangeError> {
        let registry = self.registry.get();
        let (wrapper, message_el) = delivery_elements(d.queue);
        self.delivery_answer(d, &registry, now, wrapper, message_el)
    }

    fn delivery_answer(
        &self,
        d: &Delivery,
        registry: &Registry,
        now: SystemTime,
        wrapper: &str,
        message_el: &str,
    ) -> Result<(Vec<u8>, Vec<OutgoingFile>), ExchangeError> {
        let payload = StoredPayload::decode(&d.payload)
            .ok_or_else(|| ExchangeError::Internal("a queued payload cannot be decoded".into()))?;
        let gid_text = gid_string(&d.global_id);
        let item_id = hex_id("mz-msg", &d.global_id);
        let recipient_name = registry
            .system(&d.recipient_system)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let kind_name = registry
            .kind(&d.kind_namespace, &d.kind_root)
            .map(|k| k.name.clone());
        let received_at = from_ms(d.received_at_ms);
        let header = envelope::signed_registration(
            &Registration {
                id: &hex_id("mz-reg", &d.global_id),
                global_id: &gid_text,
                checksum: &d.checksum,
                received_at,
                due_at: d.due_at_ms.map(from_ms),
                sender_registration: payload
                    .sender_registration
                    .as_ref()
                    .map(|(n, dt)| (n.as_str(), dt.as_str())),
                late: d.late,
            },
            self.key(),
            &self.settings.limits,
        )?;
        let (message_type, status, item) = match d.queue {
            Queue::Requests => ("REQUEST", "requestIsQueued", "Request"),
            _ => ("RESPONSE", "responseIsAcceptedBySmev", "Response"),
        };
        let mut w = XmlWriter::with_capacity(payload.block.len() + payload.signature.len() + 4096);
        envelope::open_envelope(&mut w);
        w.open("soap:Header", &[]).raw(&header).close("soap:Header");
        let wrapper_tag = format!("ns:{wrapper}");
        let message_tag = format!("ns:{message_el}");
        let item_tag = format!("ns:{item}");
        w.open("soap:Body", &[])
            .open(&wrapper_tag, &[])
            .open(&message_tag, &[]);
        w.open(&item_tag, &[("Id", &item_id)]);
        let metadata = Metadata {
            id: "",
            message_id: &gid_text,
            message_type,
            sender_mnemonic: &d.sender_system,
            sender_name: &payload.sender_name,
            sending_timestamp: received_at,
            broker: &self.settings.broker_name,
            destination: &d.recipient_system,
            recipient: Some((&d.recipient_system, &recipient_name)),
            content_type_name: kind_name.as_deref(),
            delivery_timestamp: Some(now),
            status: Some(status),
        };
        match d.queue {
            Queue::Requests => {
                w.raw(&payload.block);
                envelope::write_metadata(&mut w, &metadata);
                w.leaf("ns:ReplyTo", &reply_to(&d.global_id));
            }
            _ => {
                if !payload.original_message_id.is_empty() {
                    w.leaf("ns:OriginalMessageId", &payload.original_message_id);
                }
                w.raw(&payload.block);
                envelope::write_metadata(&mut w, &metadata);
            }
        }
        if !payload.signature.is_empty() {
            w.open("ns:SenderInformationSystemSignature", &[])
                .raw(&payload.signature)
                .close("ns:SenderInformationSystemSignature");
        }
        w.close(&item_tag);
        let parts = attachments::write_content_list(&mut w, d, &self.settings)?;
        w.empty("ns:SMEVSignature", &[])
            .close(&message_tag)
            .close(&wrapper_tag)
            .close("soap:Body")
            .close("soap:Envelope");
        let signed = envelope::sign_detached(
            w.into_bytes(),
            &item_id,
            &[
                (TYPES_NS, wrapper),
                (TYPES_NS, message_el),
                (TYPES_NS, "SMEVSignature"),
            ],
            self.key(),
            &self.settings.limits,
        )?;
        Ok((signed, parts))
    }

    async fn get_status(
        &self,
        caller: &Caller,
        _registry: &Registry,
        now: SystemTime,
    ) -> Result<(Vec<u8>, Vec<OutgoingFile>), ExchangeError> {
        // SMEV clients do not acknowledge statuses (they cannot know a status's own ID):
        // a status is consumed by the GetStatus that returns it, in the same transaction.
        let delivery = self
            .store
            .take(
                LeaseRequest {
                    recipient_system: caller.system.clone(),
                    queue: Queue::Statuses,
                    selector: None,
                    now_ms: to_ms(now),
                    visibility_ms: self.settings.visibility_timeout.as_millis() as i64,
                },
                "delivered".into(),
            )
            .await?;
        let Some(d) = delivery else {
            return Ok((envelope::empty_answer("GetStatusResponse"), Vec::new()));
        };
        let payload = StoredPayload::decode(&d.payload)
            .ok_or_else(|| ExchangeError::Internal("a queued status cannot be decoded".into()))?;
        // A status payload's block is the AsyncProcessingStatusData content written by
        // the gateway itself.
        let id = hex_id("mz-st", &d.global_id);
        let mut w = XmlWriter::with_capacity(2048);
        envelope::open_envelope(&mut w);
        w.open("soap:Body", &[])
            .open("ns:GetStatusResponse", &[])
            .open("ns:SmevAsyncProcessingMessage", &[])
            .open("ns:AsyncProcessingStatusData", &[("Id", &id)])
            .raw(&payload.block)
            .close("ns:AsyncProcessingStatusData")
            .empty("ns:SMEVSignature", &[])
            .close("ns:SmevAsyncProcessingMessage")
            .close("ns:GetStatusResponse")
            .close("soap:Body")
            .close("soap:Envelope");
        let signed = envelope::sign_detached(
            w.into_bytes(),
            &id,
            &[
                (TYPES_NS, "GetStatusResponse"),
                (TYPES_NS, "SmevAsyncProcessingMessage"),
                (TYPES_NS, "SMEVSignature"),
            ],
            self.key(),
            &self.settings.limits,
        )?;
        Ok((signed, Vec::new()))
    }

    /// A processing status for `system` about its message `original` (GetStatus queue).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn status_message(
        &self,
        now: SystemTime,
        system: &str,
        about_gid: &[u8; 16],
        about_message_id: &str,
        category: &str,
        details: &str,
        kind: (&str, &str),
    ) -> NewMessage {
        let global = self.ids.next(now);
        let gid = *global.as_bytes();
        let mut w = XmlWriter::with_capacity(512);
        w.open("ns:AsyncProcessingStatus", &[])
            .leaf("ns:OriginalMessageId", about_message_id)
            .leaf("ns:StatusCategory", category)
            .leaf("ns:StatusDetails", details)
            .close("ns:AsyncProcessingStatus");
        let block = w.into_bytes();
        let checksum = checksum::checksum(&block, &[]);
        NewMessage {
            global_id: gid,
            queue: Queue::Statuses,
            sender_system: self.settings.broker_name.clone(),
            sender_message_id: global.hyphenated().to_string(),
            recipient_system: system.to_string(),
            kind_namespace: kind.0.to_string(),
            kind_root: kind.1.to_string(),
            content_namespace: kind.0.to_string(),
            content_root: kind.1.to_string(),
            original_global_id: Some(*about_gid),
            checksum,
            received_at_ms: to_ms(now),
            eol_ms: None,
            payload: StoredPayload {
                block,
                ..StoredPayload::default()
            }
            .encode(),
            attachments: Vec::new(),
            answer: Vec::new(),
            card: Card {
                global_id: gid,
                queue: Queue::Statuses,
                sender_system: self.settings.broker_name.clone(),
                sender_message_id: global.hyphenated().to_string(),
                recipient_system: system.to_string(),
                kind_namespace: kind.0.to_string(),
                kind_root: kind.1.to_string(),
                original_global_id: Some(*about_gid),
                checksum,
                received_at_ms: to_ms(now),
                status: category.to_string(),
                test_message: false,
                details: serde_json::json!({ "message_type": "STATUS", "category": category }),
            },
            original_status: None,
            lifecycle: Default::default(),
        }
    }

    /// Ack: the caller acknowledges (or releases) a message delivered to it. The one code
    /// path of an Ack call and of the Ack a push endpoint replies with.
    async fn ack(
        &self,
        doc: &Document,
        caller: &Caller,
        now: SystemTime,
    ) -> Result<AckOutcome, ExchangeError> {
        let target = caller.block;
        let text = text_of(doc, target);
        let accepted = match doc.attribute(target, "", "accepted").map(str::trim) {
            Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            other => {
                return Err(ExchangeError::invalid(
                    position(doc, target),
                    format!("AckTargetMessage/@accepted must be true or false, not {other:?}"),
                ))
            }
        };
        let not_found = || {
            ExchangeError::TargetMessageIsNotFound(format!(
                "no message {text} was delivered to {}",
                caller.system
            ))
        };
        let gid = *Uuid::parse_str(&text).map_err(|_| not_found())?.as_bytes();
        let info = self
            .store
            .message_info(gid)
            .await?
            .filter(|m| m.recipient_system == caller.system)
            .ok_or_else(not_found)?;
        let receiver_registration = receiver_registration(doc)?;
        let mut then_enqueue = Vec::new();
        if self.settings.delivery_statuses {
            let status = match info.queue {
                Queue::Requests => Some(("underProcessing", "the provider received the request")),
                Queue::Responses => {
                    Some(("responseIsDelivered", "the consumer received the response"))
                }
                Queue::Statuses => None,
            };
            if let Some((category, details)) = status {
                then_enqueue.push(self.status_message(
                    now,
                    &info.sender_system,
                    &gid,
                    &info.sender_message_id,
                    category,
                    details,
                    (&info.kind_namespace, &info.kind_root),
                ));
            }
        }
        let acked_status = match info.queue {
            Queue::Requests => "delivered",
            Queue::Responses => "responseIsDelivered",
            Queue::Statuses => "delivered",
        };
        let outcome = self
            .store
            .ack(AckCommand {
                recipient_system: caller.system.clone(),
                global_id: gid,
                accepted,
                receiver_registration,
                now_ms: to_ms(now),
                then_enqueue,
                acked_status: acked_status.into(),
            })
            .await?;
        match &outcome {
            AckOutcome::Acknowledged { attachments } => {
                tracing::info!(global_id = %text, "acknowledged");
                attachments::remove(&self.settings.data_dir, attachments);
            }
            AckOutcome::AlreadyAcknowledged => {}
            AckOutcome::Released => tracing::info!(global_id = %text, "released for redelivery"),
            AckOutcome::NotFound => return Err(not_found()),
        }
        Ok(outcome)
    }

    /// Processes the reply a push endpoint gave to the POST of `pushed`: it must be an
    /// `AckRequest`, signed (verified like any call) by the message's recipient, for this
    /// very message; then it is applied exactly as an Ack call would be (receiver
    /// registration, statuses, journal event). Anything else is a failed attempt and
    /// changes nothing.
    pub(crate) async fn acknowledge_push(
        &self,
        pushed: &Delivery,
        reply: &[u8],
    ) -> Result<AckOutcome, PushFailure> {
        let now = self.clock.now();
        let doc =
            parse(reply, &self.settings.limits).map_err(|e| PushFailure::InvalidAck(e.into()))?;
        if let Some(fault) = soap_fault_string(&doc) {
            return Err(PushFailure::Fault(fault));
        }
        let op = Operation::detect(&doc)
            .map_err(|e| PushFailure::InvalidAck(ExchangeError::invalid(0, e.to_string())))?;
        if !matches!(op, Operation::Ack) {
            return Err(PushFailure::InvalidAck(ExchangeError::invalid(
                0,
                format!("the reply is a {op:?} call, not an AckRequest"),
            )));
        }
        let registry = self.registry.get();
        let caller = self
            .authenticate(&doc, op, &registry, now)
            .map_err(PushFailure::InvalidAck)?;
        if caller.system != pushed.recipient_system {
            return Err(PushFailure::WrongSigner {
                signer: caller.system,
                recipient: pushed.recipient_system.clone(),
            });
        }
        let acked = text_of(&doc, caller.block);
        if Uuid::parse_str(&acked).map(|u| *u.as_bytes()).ok() != Some(pushed.global_id) {
            return Err(PushFailure::WrongMessage {
                // The endpoint's text, kept with the message: bounded.
                acked: acked.chars().take(64).collect(),
                pushed: gid_string(&pushed.global_id),
            });
        }
        self.ack(&doc, &caller, now).await.map_err(|e| match e {
            ExchangeError::Internal(_) => PushFailure::Internal(e),
            other => PushFailure::InvalidAck(other),
        })
    }

    async fn queue_statistics(&self, caller: &Caller) -> Result<Vec<u8>, ExchangeError> {
        let counts = self.store.queue_counts(&caller.system).await?;
        let mut w = XmlWriter::with_capacity(1024);
        envelope::open_envelope(&mut w);
        w.open("soap:Body", &[])
            .open("ns:GetIncomingQueueStatisticsResponse", &[]);
        for c in counts {
            let name = format!("{}:{{{}}}{}", c.queue.name(), c.kind_namespace, c.kind_root);
            w.empty(
                "ns:QueueStatistics",
                &[
                    ("queueName", &name),
                    ("pendingMessageNumber", &c.pending.to_string()),
                ],
            );
        }
        w.close("ns:GetIncomingQueueStatisticsResponse")
            .close("soap:Body")
            .close("soap:Envelope");
        Ok(w.into_bytes())
    }
}

/// The wrapper and message element of a delivered message: the answer of GetRequest or
/// GetResponse.
fn delivery_elements(queue: Queue) -> (&'static str, &'static str) {
    match queue {
        Queue::Requests => ("GetRequestResponse", "RequestMessage"),
        _ => ("GetResponseResponse", "ResponseMessage"),
    }
}

/// The `faultstring` of a reply body, if it is a SOAP fault envelope.
pub(crate) fn fault_string_of(body: &[u8]) -> Option<String> {
    let doc = parse(body, &Limits::default()).ok()?;
    soap_fault_string(&doc)
}

/// The `faultstring` of a SOAP fault envelope (at most 200 characters), if it is one.
fn soap_fault_string(doc: &Document) -> Option<String> {
    let body = first_child(doc, doc.root(), SOAP11_NS, "Body")?;
    let fault = first_child(doc, body, SOAP11_NS, "Fault")?;
    let text = doc
        .child_elements(fault)
        .find(|&c| doc.is_element(c, "", "faultstring"))
        .map(|s| text_of(doc, s))
        .unwrap_or_default();
    Some(text.chars().take(200).collect())
}

/// `ReplyTo`: an opaque address that, copied into a response's `To`, names the request.
pub fn reply_to(gid: &[u8; 16]) -> String {
    format!("mezhved:reply:{}", gid_string(gid))
}

fn parse_reply_to(to: &str) -> Option<[u8; 16]> {
    let rest = to.strip_prefix("mezhved:reply:")?;
    Uuid::parse_str(rest).ok().map(|u| *u.as_bytes())
}

/// The `mz:ReceiverRegistration` SOAP header of an Ack, if present.
fn receiver_registration(doc: &Document) -> Result<Option<ReceiverRegistration>, ExchangeError> {
    let Some(envelope) = Some(doc.root()) else {
        return Ok(None);
    };
    let Some(header) = first_child(doc, envelope, SOAP11_NS, "Header") else {
        return Ok(None);
    };
    let Some(reg) = first_child(doc, header, MZ_NS, "ReceiverRegistration") else {
        return Ok(None);
    };
    let number = first_child(doc, reg, MZ_NS, "Number")
        .map(|n| text_of(doc, n))
        .unwrap_or_default();
    if number.is_empty() {
        return Err(ExchangeError::invalid(
            position(doc, reg),
            "ReceiverRegistration/Number is missing or empty",
        ));
    }
    let at_text = first_child(doc, reg, MZ_NS, "RegisteredAt")
        .map(|n| text_of(doc, n))
        .unwrap_or_default();
    let at = chrono::DateTime::parse_from_rfc3339(&at_text).map_err(|e| {
        ExchangeError::invalid(
            position(doc, reg),
            format!("ReceiverRegistration/RegisteredAt \"{at_text}\" is not an xs:dateTime: {e}"),
        )
    })?;
    Ok(Some(ReceiverRegistration {
        number,
        registered_at_ms: at.timestamp_millis(),
    }))
}
