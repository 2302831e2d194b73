//! The journal's services above the store: signed checkpoints, integrity attestation,
//! proofs checked before they are handed out, and the record of auditors' queries.
//!
//! Invariants:
//! - A checkpoint is signed only over a root the store recomputed from its stored nodes,
//!   and the store refuses to keep a checkpoint whose root is not the journal's root at
//!   that size; checkpoints never shrink (a new one is made only when the journal grew).
//! - Attestation compares the presented checksum with the checksum inside the
//!   `message.accepted` leaf (the Merkle-protected record), not with the card table (a
//!   projection kept for queries), and hands out an inclusion proof of that leaf that this
//!   module has verified against a signed checkpoint.
//! - Every auditor query is journaled before it is answered: a query that cannot be
//!   journaled is not answered.

use crate::clock::{to_ms, Clock};
use mezhved_dsig::crypto::SigningKey;
use mezhved_journal::checkpoint::{self, Checkpoint, NoteVerifier};
use mezhved_journal::merkle;
use mezhved_store::{
    Card, CardFilter, GlobalId, Hash, JournalEvent, NewEvent, Store, StoreError, StoredCheckpoint,
};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("the journal is inconsistent: {0}")]
    Inconsistent(String),
    #[error("{0}")]
    Invalid(String),
}

/// The journal's services.
pub struct Journal {
    store: Arc<dyn Store>,
    key: Arc<SigningKey>,
    origin: String,
    clock: Arc<dyn Clock>,
    /// One checkpoint at a time on this node (two would race to sign the same size).
    signing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// What an attestation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The journal registered this message with the presented checksum.
    Match,
    /// The journal registered this message with another checksum: the copy differs.
    Mismatch,
    /// The journal has no such message.
    Unknown,
}

/// One message an attestation concerns, with the proof that its registration is in the
/// journal.
#[derive(Debug, Clone)]
pub struct Attested {
    pub verdict: Verdict,
    pub card: Card,
    /// The `message.accepted` event.
    pub event: JournalEvent,
    pub registered_checksum: Hash,
    pub checkpoint: StoredCheckpoint,
    pub inclusion_proof: Vec<Hash>,
}

/// How the message to attest is named.
#[derive(Debug, Clone)]
pub enum AttestTarget {
    GlobalId(GlobalId),
    /// The sender's or the receiver's registration number (may name several messages).
    RegistrationNumber(String),
}

impl Journal {
    pub fn new(
        store: Arc<dyn Store>,
        key: Arc<SigningKey>,
        origin: String,
        clock: Arc<dyn Clock>,
    ) -> Journal {
        Journal {
            store,
            key,
            origin,
            clock,
            signing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key of the checkpoints (C2SP vkey text) for auditors and third parties.
    pub fn verifier(&self) -> Result<NoteVerifier, JournalError> {
        NoteVerifier::from_certificate(&self.origin, self.key.certificate())
            .map_err(|e| JournalError::Checkpoint(e.to_string()))
    }

    /// The gateway certificate (PEM) that signs checkpoints.
    pub fn certificate_pem(&self) -> String {
        self.key
            .certificate()
            .to_pem()
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_default()
    }

    /// Signs a checkpoint of the journal as it is now, unless the latest one already
    /// covers every event; returns the latest checkpoint either way (`None`: the journal
    /// is empty and nothing was ever signed).
    pub async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, JournalError> {
        let _one = self.signing.lock().await;
        let size = self.store.journal_size().await?;
        let latest = self.store.latest_checkpoint().await?;
        if let Some(cp) = &latest {
            if cp.size >= size {
                return Ok(latest);
            }
        }
        if size == 0 {
            return Ok(None);
        }
        let root = self.store.journal_root(size).await?;
        if let Some(prev) = &latest {
            // Never sign a tree that does not extend the last signed one.
            let proof = self.store.consistency_proof(prev.size, size).await?;
            merkle::verify_consistency(prev.size, size, &prev.root, &root, &proof).map_err(
                |e| {
                    JournalError::Inconsistent(format!(
                        "the journal at size {size} does not extend checkpoint {}: {e}",
                        prev.size
                    ))
                },
            )?;
        }
        let now = self.clock.now();
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            timestamp_ms: u64::try_from(to_ms(now)).unwrap_or(0),
        };
        let note = checkpoint::sign_checkpoint(&cp, &self.origin, &self.key)
            .map_err(|e| JournalError::Checkpoint(e.to_string()))?;
        let stored = StoredCheckpoint {
            size,
            root,
            made_at_ms: to_ms(now),
            note,
        };
        self.store.add_checkpoint(stored.clone()).await?;
        tracing::info!(size, root = %hex::encode(root), "journal checkpoint signed");
        Ok(Some(stored))
    }

    /// The latest checkpoint if it covers event `seq`, else a new one.
    async fn checkpoint_covering(&self, seq: u64) -> Result<StoredCheckpoint, JournalError> {
        if let Some(cp) = self.store.latest_checkpoint().await? {
            if cp.size > seq {
                return Ok(cp);
            }
        }
        match self.checkpoint().await? {
            Some(cp) if cp.size > seq => Ok(cp),
            _ => Err(JournalError::Inconsistent(format!(
                "no checkpoint covers event {seq}"
            ))),
        }
    }

    /// An inclusion proof of event `seq` against a signed checkpoint, verified here.
    pub async fn proven(
        &self,
        event: &JournalEvent,
    ) -> Result<(StoredCheckpoint, Vec<Hash>), JournalError> {
        let cp = self.checkpoint_covering(event.seq).await?;
        let proof = self.store.inclusion_proof(event.seq, cp.size).await?;
        merkle::verify_inclusion(
            &merkle::leaf_hash(&event.leaf),
            event.seq,
            cp.size,
            &proof,
            &cp.root,
        )
        .map_err(|e| {
            JournalError::Inconsistent(format!(
                "event {} does not verify against checkpoint {}: {e}",
                event.seq, cp.size
            ))
        })?;
        Ok((cp, proof))
    }

    /// Integrity attestation: does the copy an agency holds (its checksum) match what the
    /// journal registered? One result per message the target names (none: unknown).
    pub async fn attest(
        &self,
        target: AttestTarget,
        checksum: Hash,
    ) -> Result<Vec<Attested>, JournalError> {
        let filter = match target {
            AttestTarget::GlobalId(g) => CardFilter {
                global_id: Some(g),
                ..CardFilter::default()
            },
            AttestTarget::RegistrationNumber(n) => CardFilter {
                registration_number: Some(n),
                limit: Some(100),
                ..CardFilter::default()
            },
        };
        let cards = self.store.query_cards(filter).await?;
        let mut out = Vec::with_capacity(cards.len());
        for card in cards {
            let events = self.store.journal_events_of(card.global_id).await?;
            let Some(event) = events
                .into_iter()
                .find(|e| e.event_type == "message.accepted")
            else {
                // Registered before the journal existed: nothing to prove against.
                continue;
            };
            let registered = registered_checksum(&event)?;
            let (checkpoint, inclusion_proof) = self.proven(&event).await?;
            out.push(Attested {
                verdict: if registered == checksum {
                    Verdict::Match
                } else {
                    Verdict::Mismatch
                },
                card,
                event,
                registered_checksum: registered,
                checkpoint,
                inclusion_proof,
            });
        }
        Ok(out)
    }

    /// Journals an auditor's query (who, what, how many results). Callers answer only if
    /// this succeeds.
    pub async fn record_query(
        &self,
        auditor: &str,
        query: &str,
        parameters: serde_json::Value,
        results: Option<u64>,
    ) -> Result<u64, JournalError> {
        let mut body = serde_json::Map::new();
        body.insert("query".into(), query.into());
        body.insert("parameters".into(), parameters);
        if let Some(n) = results {
            body.insert("results".into(), n.into());
        }
        let seqs = self
            .store
            .journal_append(vec![NewEvent {
                at_ms: to_ms(self.clock.now()),
                event_type: "auditor.query".into(),
                global_id: None,
                actor: auditor.into(),
                body,
            }])
            .await?;
        seqs.first()
            .copied()
            .ok_or_else(|| JournalError::Inconsistent("no event was appended".into()))
    }
}

/// The checksum inside a `message.accepted` leaf.
pub fn registered_checksum(event: &JournalEvent) -> Result<Hash, JournalError> {
    let leaf: serde_json::Value = serde_json::from_slice(&event.leaf)
        .map_err(|e| JournalError::Inconsistent(format!("event {} is not JSON: {e}", event.seq)))?;
    let text = leaf
        .get("checksum")
        .and_then(|c| c.as_str())
        .ok_or_else(|| {
            JournalError::Inconsistent(format!("event {} has no checksum", event.seq))
        })?;
    let bytes = hex::decode(text)
        .map_err(|_| JournalError::Inconsistent(format!("event {}: bad checksum", event.seq)))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| JournalError::Inconsistent(format!("event {}: bad checksum", event.seq)))
}
