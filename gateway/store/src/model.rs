//! The data the core hands to the store and gets back. Plain values: no SQL, no XML.
//! Times are milliseconds since the Unix epoch (UTC); IDs are the gateway's global IDs as
//! their 16 bytes.

use serde::{Deserialize, Serialize};

/// A global ID (UUID bytes).
pub type GlobalId = [u8; 16];

/// A participant of the exchange (an agency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub mnemonic: String,
    pub name: String,
}

/// An information system of a participant: the unit that signs, sends and receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InformationSystem {
    pub mnemonic: String,
    pub participant: String,
    pub name: String,
    /// PEM certificates whose keys this system signs with.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// The system's push endpoint (docs/push.md): its requests and responses are POSTed
    /// there instead of waiting for GetRequest/GetResponse. `None`: pull only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_url: Option<String>,
}

/// A kind of information: a registered message type, identified by its content root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindOfInformation {
    pub namespace: String,
    pub root_element: String,
    pub name: String,
    pub provider_system: String,
    #[serde(default)]
    pub restricted: bool,
    #[serde(default)]
    pub consent_required: bool,
    #[serde(default)]
    pub description: String,
    /// The reply term in working days when a law sets one shorter than the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_working_days: Option<u32>,
}

/// A consumer system's right to request one kind of information.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub consumer_system: String,
    pub namespace: String,
    pub root_element: String,
}

/// The whole registry at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryData {
    pub version: u64,
    pub participants: Vec<Participant>,
    pub systems: Vec<InformationSystem>,
    pub kinds: Vec<KindOfInformation>,
    pub grants: Vec<Grant>,
}

/// One administrative change of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RegistryChange {
    PutParticipant(Participant),
    DeleteParticipant {
        mnemonic: String,
    },
    PutSystem(InformationSystem),
    DeleteSystem {
        mnemonic: String,
    },
    PutKind(KindOfInformation),
    DeleteKind {
        namespace: String,
        root_element: String,
    },
    Grant(Grant),
    Revoke(Grant),
}

/// The queues a system reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Queue {
    /// Requests addressed to a provider (GetRequest).
    Requests,
    /// Responses and statuses addressed to a consumer (GetResponse).
    Responses,
    /// Processing statuses for a sender (GetStatus).
    Statuses,
}

impl Queue {
    pub fn code(self) -> i64 {
        match self {
            Queue::Requests => 0,
            Queue::Responses => 1,
            Queue::Statuses => 2,
        }
    }
    pub fn from_code(code: i64) -> Option<Queue> {
        match code {
            0 => Some(Queue::Requests),
            1 => Some(Queue::Responses),
            2 => Some(Queue::Statuses),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Queue::Requests => "requests",
            Queue::Responses => "responses",
            Queue::Statuses => "statuses",
        }
    }
}

/// An attachment whose bytes are in a file of the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAttachment {
    pub content_id: String,
    pub mime_type: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Path relative to the data directory.
    pub path: String,
    /// Whether it arrived as an MTOM part (and is delivered as one).
    pub mtom: bool,
}

/// The metadata card of a message (metadata only: never payload or attachments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub global_id: GlobalId,
    pub queue: Queue,
    pub sender_system: String,
    pub sender_message_id: String,
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    pub original_global_id: Option<GlobalId>,
    pub checksum: [u8; 32],
    pub received_at_ms: i64,
    pub status: String,
    pub test_message: bool,
    /// The rest of the card (request card items, sizes, attachment checksums, …) as JSON.
    pub details: serde_json::Value,
}

/// A message to enqueue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub global_id: GlobalId,
    pub queue: Queue,
    pub sender_system: String,
    pub sender_message_id: String,
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    /// Root of the business content, when it differs from the kind (responses).
    pub content_namespace: String,
    pub content_root: String,
    pub original_global_id: Option<GlobalId>,
    pub checksum: [u8; 32],
    pub received_at_ms: i64,
    pub eol_ms: Option<i64>,
    /// What is delivered (opaque to the store; removed after Ack).
    pub payload: Vec<u8>,
    pub attachments: Vec<StoredAttachment>,
    /// The exact answer given to the sender, replayed for an identical resend.
    pub answer: Vec<u8>,
    pub card: Card,
    /// A status change of the card this message answers (`original_global_id`).
    pub original_status: Option<String>,
    /// Deadlines written with the message, and deadlines it closes.
    pub lifecycle: Lifecycle,
}

/// What a message does to deadlines, in the transaction that stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// Deadline rows of this message.
    pub deadlines: Vec<NewDeadline>,
    /// A final answer (or a clarification under the `restart` policy) closes the pending
    /// reminder and overdue rows of the request it answers, and marks its card closed.
    pub closes: Option<GlobalId>,
}

/// The kinds of deadline rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadlineKind {
    /// Before the reply deadline: a status to the provider.
    Reminder,
    /// At the reply deadline: statuses to both sides, an `overdue` event.
    Overdue,
    /// At the message's EOL, if it was not acknowledged: expired, payload removed.
    Expiry,
}

impl DeadlineKind {
    pub fn name(self) -> &'static str {
        match self {
            DeadlineKind::Reminder => "reminder",
            DeadlineKind::Overdue => "overdue",
            DeadlineKind::Expiry => "expiry",
        }
    }
    pub fn from_name(s: &str) -> Option<DeadlineKind> {
        match s {
            "reminder" => Some(DeadlineKind::Reminder),
            "overdue" => Some(DeadlineKind::Overdue),
            "expiry" => Some(DeadlineKind::Expiry),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDeadline {
    pub kind: DeadlineKind,
    pub due_at_ms: i64,
}

/// A deadline row claimed (leased) by one node's timer loop, with what firing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDeadline {
    pub global_id: GlobalId,
    pub kind: DeadlineKind,
    pub due_at_ms: i64,
    pub queue: Queue,
    pub sender_system: String,
    pub sender_message_id: String,
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    /// A request registered from paper or fax: nobody reads statuses electronically.
    pub paper: bool,
}

/// Firing one claimed deadline: everything in one transaction, only if the row is still
/// pending and leased by `owner`.
#[derive(Debug, Clone)]
pub struct DeadlineFiring {
    pub global_id: GlobalId,
    pub kind: DeadlineKind,
    pub owner: String,
    pub now_ms: i64,
    /// Statuses to enqueue (reminder to the provider; overdue to both; expiry to the sender).
    pub statuses: Vec<NewMessage>,
    /// The journal event (`deadline.reminder`, `deadline.overdue`, `message.expired`).
    pub event: NewEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// Fired; for an expiry, the attachment files (relative paths) that may be removed.
    Fired { attachments: Vec<String> },
    /// Already fired, closed, or leased by another node: nothing done.
    Skipped,
}

/// What an earlier SendRequest/SendResponse from the same system with the same MessageID
/// was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub global_id: GlobalId,
    pub checksum: [u8; 32],
    pub answer: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    Accepted,
    /// The same (sender system, MessageID) was accepted before.
    Duplicate(SentRecord),
}

/// Which message to lease.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub recipient_system: String,
    pub queue: Queue,
    /// Namespace and root local name to match (content root or kind).
    pub selector: Option<(String, String)>,
    pub now_ms: i64,
    pub visibility_ms: i64,
}

/// A leased message.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub global_id: GlobalId,
    pub queue: Queue,
    pub sender_system: String,
    pub sender_message_id: String,
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    pub original_global_id: Option<GlobalId>,
    pub checksum: [u8; 32],
    pub received_at_ms: i64,
    pub payload: Vec<u8>,
    pub attachments: Vec<StoredAttachment>,
    pub delivery_count: u32,
    pub first_delivered_at_ms: i64,
    /// The reply deadline (a request's, from its card).
    pub due_at_ms: Option<i64>,
    /// A response that arrived after its request's deadline.
    pub late: bool,
    /// The push attempt this delivery is (1 for the first); 0 for a pull.
    pub push_attempt: u32,
}

/// Leasing the messages whose next push attempt is due.
#[derive(Debug, Clone)]
pub struct PushClaim {
    /// Each push system with room for more attempts in flight, and how many more.
    pub systems: Vec<(String, usize)>,
    pub now_ms: i64,
    /// How long an attempt holds its message: no pull takes it meanwhile, and if the
    /// node dies the attempt is made again once this lapses.
    pub lease_ms: i64,
    /// A due message that already had this many attempts (its last one was lost: the node
    /// stopped during it) falls back to the pull queue instead of being leased.
    pub max_attempts: u32,
}

/// What [`crate::Store::claim_push`] did.
#[derive(Debug, Clone, Default)]
pub struct PushClaimed {
    /// Leased for one more attempt each (`Delivery::push_attempt` numbers it).
    pub deliveries: Vec<Delivery>,
    /// Fell back to the pull queue at the cap (their last attempt was lost).
    pub fallen_back: Vec<GlobalId>,
}

/// A push attempt that failed, to record with the message.
#[derive(Debug, Clone)]
pub struct PushAttemptFailed {
    pub global_id: GlobalId,
    pub recipient_system: String,
    pub queue: Queue,
    /// The attempt's number: recorded only if it is still the message's latest attempt.
    pub attempt: u32,
    pub now_ms: i64,
    /// What went wrong, for the operator (kept with the message, not journaled).
    pub error: String,
    /// Its class (`connect`, `timeout`, `status`, `invalid_ack`, …), for the journal.
    pub error_class: String,
    /// When to try again; `None`: the cap is reached, the message falls back to pull.
    pub retry_at_ms: Option<i64>,
}

/// The push bookkeeping of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushState {
    pub attempts: u32,
    /// The next attempt (or the end of the one in flight); `None`: not pushed (any more).
    pub next_at_ms: Option<i64>,
    pub last_error: Option<String>,
    /// When it fell back to the pull queue.
    pub fallback_at_ms: Option<i64>,
    pub acknowledged: bool,
}

/// The receiver's own registration of a message (the second of triple registration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverRegistration {
    pub number: String,
    pub registered_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct AckCommand {
    pub recipient_system: String,
    pub global_id: GlobalId,
    pub accepted: bool,
    pub receiver_registration: Option<ReceiverRegistration>,
    pub now_ms: i64,
    /// Messages to enqueue in the same transaction when this Ack takes effect (statuses
    /// for the sender).
    pub then_enqueue: Vec<NewMessage>,
    /// The card status after a positive Ack.
    pub acked_status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// The payload is gone; the attachment files listed (relative paths) may be removed.
    Acknowledged {
        attachments: Vec<String>,
    },
    AlreadyAcknowledged,
    /// Ack(accepted=false): visible again.
    Released,
    NotFound,
}

/// A message as far as routing needs it (no payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    pub global_id: GlobalId,
    pub queue: Queue,
    pub sender_system: String,
    pub sender_message_id: String,
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    pub original_global_id: Option<GlobalId>,
    pub acknowledged: bool,
    pub received_at_ms: i64,
    /// The reply deadline of a request (from its card).
    pub due_at_ms: Option<i64>,
    /// When a final answer (or a clarification under `restart`) closed its deadline.
    pub closed_at_ms: Option<i64>,
}

/// Pending messages of one queue and kind for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueCount {
    pub queue: Queue,
    pub kind_namespace: String,
    pub kind_root: String,
    pub pending: u64,
}

/// A SHA-256 hash (Merkle tree nodes, roots).
pub type Hash = [u8; 32];

/// An event to append to the journal. The store adds `seq`, and encodes the leaf.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at_ms: i64,
    /// `message.accepted`, `message.rejected`, `auditor.query`, … (docs/journal.md).
    pub event_type: String,
    /// The message the event concerns, if any.
    pub global_id: Option<GlobalId>,
    /// Who caused it: a system mnemonic, `operator`, an auditor's name, `gateway`.
    pub actor: String,
    /// The event's own fields (metadata only: never payload or search details).
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// A stored journal event: leaf number `seq` of the Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEvent {
    pub seq: u64,
    pub at_ms: i64,
    pub event_type: String,
    pub global_id: Option<GlobalId>,
    pub actor: String,
    /// The exact bytes hashed into the tree (canonical JSON).
    pub leaf: Vec<u8>,
}

/// A signed checkpoint of the journal (a C2SP signed note).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredCheckpoint {
    pub size: u64,
    #[serde(with = "hex_bytes")]
    pub root: Hash,
    pub made_at_ms: i64,
    pub note: String,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(64);
        for b in v {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }
}

/// Which cards an auditor asks for. Every set field must match; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CardFilter {
    /// Received at or after (ms).
    pub from_ms: Option<i64>,
    /// Received before (ms).
    pub to_ms: Option<i64>,
    /// Sending or receiving agency (participant mnemonic).
    pub agency: Option<String>,
    /// Sending or receiving system.
    pub system: Option<String>,
    pub kind_namespace: Option<String>,
    pub kind_root: Option<String>,
    /// Public service register number.
    pub service: Option<String>,
    /// A legal act named in the legal basis (exact act text).
    pub legal_act: Option<String>,
    pub status: Option<String>,
    /// `REQUEST`, `RESPONSE` or `STATUS`.
    pub message_type: Option<String>,
    /// Past its reply deadline at this instant (ms) without a final answer.
    pub overdue_at_ms: Option<i64>,
    pub global_id: Option<GlobalId>,
    pub sender_message_id: Option<String>,
    /// The sender's or the receiver's registration number.
    pub registration_number: Option<String>,
    /// Keyed hash of the request card's search details.
    pub subject_hash: Option<Hash>,
    /// Pagination: cards with a global ID after this one.
    pub after: Option<GlobalId>,
    /// At most this many (the store caps it at 1000).
    pub limit: Option<u32>,
}

// --- operator monitoring (docs/monitoring.md) ---

/// Pending messages for one recipient and kind of information, and the oldest one's age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueAge {
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    pub pending: u64,
    /// When the oldest pending message was received (ms).
    pub oldest_received_at_ms: Option<i64>,
}

/// Open overdue requests for one provider and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueCount {
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    pub overdue: u64,
}

/// A request closed by its final answer: how long the provider took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerTime {
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    /// Request received → final answer, ms.
    pub millis: i64,
}

/// A system's last poll and last successful call (ms), as flushed from memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemActivity {
    pub system: String,
    pub last_poll_at_ms: Option<i64>,
    pub last_success_at_ms: Option<i64>,
}

/// When a system last drained a queue (ms): every kind (`kind` `None`) or one selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemDrain {
    pub system: String,
    pub queue: Queue,
    pub kind: Option<(String, String)>,
    pub drained_at_ms: i64,
}

/// What the monitoring reads from the store in one go (cheap: partial indexes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoringSnapshot {
    /// Every system's flushed activity.
    pub activity: Vec<SystemActivity>,
    /// Every system's flushed drains.
    pub drains: Vec<SystemDrain>,
    pub queues: Vec<QueueAge>,
    pub overdue: Vec<OverdueCount>,
    /// Requests closed since the window's start (at most a bounded number, newest first).
    pub answer_times: Vec<AnswerTime>,
}

/// An open overdue request (metadata only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueRequest {
    pub global_id: String,
    pub sender_system: String,
    pub recipient_system: String,
    pub kind_namespace: String,
    pub kind_root: String,
    pub received_at_ms: i64,
    pub due_at_ms: Option<i64>,
    pub overdue_at_ms: i64,
}

/// An alert open now (one per rule and subject).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveAlert {
    pub rule: String,
    pub subject: String,
    pub opened_at_ms: i64,
    /// The measured value when it opened, as text.
    pub value: String,
    pub detail: String,
}
