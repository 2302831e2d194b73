//! Requests that travelled on paper or by fax (889n item 6: exchange "may also be on paper
//! or by fax"): the operator registers the request and, later, its answer, so that
//! deadlines, the journal and the evaluation reports cover them like electronic ones.
//!
//! Invariants:
//! - A paper request gets a global ID, a card, a `message.accepted` journal event (queue
//!   `paper`) and its reply-deadline rows in one transaction; there is no queue row, since
//!   nothing is delivered electronically, and its deadlines fire journal events but no
//!   statuses.
//! - Its checksum is SHA-256 over the canonical JSON (docs/journal.md) of the registration
//!   as submitted, so the registration record itself can be attested.
//! - An answer is registered once, closes the request's deadline, and is marked late when
//!   it came after the deadline.

use crate::clock::to_ms;
use crate::exchange::Exchange;
use chrono::{DateTime, NaiveDate, Utc};
use mezhved_store::{Card, Lifecycle, NewEvent, Queue, StoreError};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PaperError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Paper,
    Fax,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperService {
    pub name: String,
    pub registry_number: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperLegalBasis {
    pub act: String,
    pub provision: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperOfficial {
    pub full_name: String,
    pub position: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperRegistrationNumber {
    pub number: String,
    pub date: NaiveDate,
}

/// A request that arrived on paper or by fax, as the operator registers it: the request
/// card's items (210-FZ art. 7.2) and the receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperRequest {
    pub channel: Channel,
    /// The requesting agency (a registered participant's mnemonic).
    pub sender_agency: String,
    /// The kind of information requested (registered; it names the providing system).
    pub kind_namespace: String,
    pub kind_root: String,
    pub service: PaperService,
    pub legal_basis: Vec<PaperLegalBasis>,
    pub official: PaperOfficial,
    pub sent_on: NaiveDate,
    /// When the providing agency received it (the deadline counts from here).
    pub received_at: DateTime<Utc>,
    pub sender_registration: PaperRegistrationNumber,
    #[serde(default)]
    pub test: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Data,
    Rejection,
}

/// The answer to a paper request, as the operator registers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperAnswer {
    pub answered_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// For a rejection: ACCESS_DENIED, NO_DATA, UNKNOWN_REQUEST_DESCRIPTION or FAILURE.
    #[serde(default)]
    pub rejection_code: Option<String>,
    /// The providing agency's registration of the request.
    #[serde(default)]
    pub receiver_registration: Option<PaperRegistrationNumber>,
}

/// What registering a paper request gave.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub global_id: String,
    pub checksum: String,
    pub due_at: Option<String>,
    pub late: bool,
}

fn required(problems: &mut Vec<String>, what: &str, v: &str) {
    if v.trim().is_empty() {
        problems.push(format!("{what} must not be empty"));
    }
}

fn canonical_checksum(v: &impl Serialize) -> Result<[u8; 32], PaperError> {
    let value = serde_json::to_value(v).map_err(|e| PaperError::Invalid(e.to_string()))?;
    let mut bytes = Vec::new();
    mezhved_store::journal::canonical_json(&value, &mut bytes)?;
    Ok(openssl::sha::sha256(&bytes))
}

impl Exchange {
    /// Registers a paper or fax request; `actor` is who registered it (journaled).
    pub async fn register_paper(
        &self,
        req: PaperRequest,
        actor: &str,
        now: SystemTime,
    ) -> Result<Registered, PaperError> {
        let registry = self.registry().get();
        let mut problems = Vec::new();
        required(&mut problems, "sender_agency", &req.sender_agency);
        required(&mut problems, "service.name", &req.service.name);
        required(
            &mut problems,
            "service.registry_number",
            &req.service.registry_number,
        );
        required(&mut problems, "official.full_name", &req.official.full_name);
        required(&mut problems, "official.position", &req.official.position);
        required(
            &mut problems,
            "sender_registration.number",
            &req.sender_registration.number,
        );
        if req.legal_basis.is_empty() {
            problems.push("legal_basis must name at least one provision".into());
        }
        for (i, l) in req.legal_basis.iter().enumerate() {
            required(&mut problems, &format!("legal_basis[{i}].act"), &l.act);
        }
        if req
            .official
            .phone
            .as_deref()
            .unwrap_or("")
            .trim()
            .is_empty()
            && req
                .official
                .email
                .as_deref()
                .unwrap_or("")
                .trim()
                .is_empty()
        {
            problems.push("official needs a phone or an e-mail".into());
        }
        let sender = registry
            .data
            .participants
            .iter()
            .find(|p| p.mnemonic == req.sender_agency);
        if sender.is_none() {
            problems.push(format!(
                "sender_agency {} is not registered",
                req.sender_agency
            ));
        }
        let kind = registry.kind(&req.kind_namespace, &req.kind_root);
        if kind.is_none() {
            problems.push(format!(
                "the kind of information {{{}}}{} is not registered",
                req.kind_namespace, req.kind_root
            ));
        }
        let received: SystemTime = req.received_at.into();
        if received > now + std::time::Duration::from_secs(300) {
            problems.push("received_at is in the future".into());
        }
        let (Some(kind), true) = (kind, problems.is_empty()) else {
            return Err(PaperError::Invalid(problems.join("; ")));
        };
        let provider = kind.provider_system.clone();
        let recipient_agency = registry
            .participant_of(&provider)
            .map(|p| p.mnemonic.clone());
        let deadline = self
            .settings()
            .deadlines
            .as_ref()
            .map(|rules| rules.reply_deadline(received, kind.reply_working_days));
        let checksum = canonical_checksum(&req)?;
        let global = self.next_global_id(now);
        let gid = *global.as_bytes();
        let gid_text = global.hyphenated().to_string();
        let sender_system = format!("{}:{}", channel_name(req.channel), req.sender_agency);
        let details = serde_json::json!({
            "message_type": "REQUEST",
            "channel": channel_name(req.channel),
            "paper": true,
            "global_id": gid_text,
            "sender_agency": req.sender_agency,
            "recipient_agency": recipient_agency,
            "kind_name": kind.name,
            "service": { "name": req.service.name, "registry_number": req.service.registry_number },
            "legal_basis": req.legal_basis.iter().map(|l| serde_json::json!({"act": l.act, "provision": l.provision})).collect::<Vec<_>>(),
            "official": { "full_name": req.official.full_name, "position": req.official.position,
                          "phone": req.official.phone, "email": req.official.email },
            "sent_on": req.sent_on.to_string(),
            "sender_registration": { "number": req.sender_registration.number, "date": req.sender_registration.date.to_string() },
            "checksum_algorithm": "urn://mezhved/checksum/paper-jcs-sha256-v1",
            "registered_by": actor,
            "due_at_ms": deadline.as_ref().map(|d| to_ms(d.at)),
            "due_date": deadline.as_ref().map(|d| d.date.to_string()),
            "reply_working_days": deadline.as_ref().map(|d| d.working_days),
        });
        let card = Card {
            global_id: gid,
            queue: Queue::Requests,
            sender_system: sender_system.clone(),
            sender_message_id: gid_text.clone(),
            recipient_system: provider.clone(),
            kind_namespace: req.kind_namespace.clone(),
            kind_root: req.kind_root.clone(),
            original_global_id: None,
            checksum,
            received_at_ms: to_ms(received),
            status: "registeredFromPaper".into(),
            test_message: req.test,
            details: details.clone(),
        };
        let event = accepted_event(&card, actor, now);
        // Only the reply deadline: a paper request has no EOL and no reminder status
        // (nobody polls for it), but the overdue row journals the lateness.
        let mut lifecycle = Lifecycle::default();
        if let Some(d) = &deadline {
            lifecycle.deadlines.push(mezhved_store::NewDeadline {
                kind: mezhved_store::DeadlineKind::Overdue,
                due_at_ms: to_ms(d.at),
            });
        }
        self.store().record_paper(card, lifecycle, event).await?;
        Ok(Registered {
            global_id: gid_text,
            checksum: hex::encode(checksum),
            due_at: deadline.map(|d| crate::clock::xs_datetime(d.at)),
            late: false,
        })
    }

    /// Registers the answer to a paper request.
    pub async fn answer_paper(
        &self,
        request: [u8; 16],
        answer: PaperAnswer,
        actor: &str,
        now: SystemTime,
    ) -> Result<Registered, PaperError> {
        let original = self
            .store()
            .card(request)
            .await?
            .filter(|c| c.details.get("channel").is_some())
            .ok_or_else(|| {
                PaperError::NotFound(format!(
                    "no paper request {}",
                    crate::exchange::gid_string(&request)
                ))
            })?;
        let answered: SystemTime = answer.answered_at.into();
        let mut problems = Vec::new();
        match (answer.outcome, answer.rejection_code.as_deref()) {
            (Outcome::Rejection, Some(code))
                if [
                    "ACCESS_DENIED",
                    "NO_DATA",
                    "UNKNOWN_REQUEST_DESCRIPTION",
                    "FAILURE",
                ]
                .contains(&code) => {}
            (Outcome::Rejection, _) => problems.push(
                "a rejection needs rejection_code ACCESS_DENIED, NO_DATA, UNKNOWN_REQUEST_DESCRIPTION or FAILURE".to_string(),
            ),
            (Outcome::Data, Some(_)) => problems.push("rejection_code is only for a rejection".into()),
            (Outcome::Data, None) => {}
        }
        if to_ms(answered) < original.received_at_ms {
            problems.push("answered_at is before the request was received".into());
        }
        if answered > now + std::time::Duration::from_secs(300) {
            problems.push("answered_at is in the future".into());
        }
        if !problems.is_empty() {
            return Err(PaperError::Invalid(problems.join("; ")));
        }
        let due = original.details.get("due_at_ms").and_then(|v| v.as_i64());
        let late = due.is_some_and(|d| to_ms(answered) >= d);
        let checksum = canonical_checksum(&answer)?;
        let global = self.next_global_id(now);
        let gid = *global.as_bytes();
        let gid_text = global.hyphenated().to_string();
        let details = serde_json::json!({
            "message_type": "RESPONSE",
            "channel": original.details.get("channel"),
            "paper": true,
            "global_id": gid_text,
            "original_global_id": crate::exchange::gid_string(&request),
            "response_kind": match answer.outcome { Outcome::Data => "data", Outcome::Rejection => "rejection" },
            "rejection_code": answer.rejection_code,
            "final": true,
            "late": late,
            "closes_deadline": true,
            "receiver_registration": answer.receiver_registration.as_ref().map(|r| serde_json::json!({"number": r.number, "date": r.date.to_string()})),
            "checksum_algorithm": "urn://mezhved/checksum/paper-jcs-sha256-v1",
            "registered_by": actor,
        });
        let card = Card {
            global_id: gid,
            queue: Queue::Responses,
            sender_system: original.recipient_system.clone(),
            sender_message_id: gid_text.clone(),
            recipient_system: original.sender_system.clone(),
            kind_namespace: original.kind_namespace.clone(),
            kind_root: original.kind_root.clone(),
            original_global_id: Some(request),
            checksum,
            received_at_ms: to_ms(answered),
            status: "registeredFromPaper".into(),
            test_message: original.test_message,
            details,
        };
        let event = accepted_event(&card, actor, now);
        self.store()
            .record_paper(
                card,
                Lifecycle {
                    deadlines: Vec::new(),
                    closes: Some(request),
                },
                event,
            )
            .await
            .map_err(|e| match e {
                StoreError::InvalidRequest(m) => PaperError::Conflict(m),
                other => PaperError::Store(other),
            })?;
        Ok(Registered {
            global_id: gid_text,
            checksum: hex::encode(checksum),
            due_at: None,
            late,
        })
    }
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Paper => "paper",
        Channel::Fax => "fax",
    }
}

/// The `message.accepted` event of a paper registration (the same shape as an electronic
/// message's, with queue `paper`; the registering actor is also in the card's details).
fn accepted_event(c: &Card, actor: &str, now: SystemTime) -> NewEvent {
    mezhved_store::journal::message_accepted(c, "paper", actor, to_ms(now))
}
