//! The registry: participants (agencies), their information systems and certificates,
//! kinds of information, and grants (consumer system × kind).
//!
//! The store holds the registry; the exchange reads an immutable, indexed snapshot
//! ([`Registry`]) through a [`RegistryHandle`], which swaps in a new snapshot whenever the
//! store's registry version changes — after a change made through this node at once, and
//! after a change made elsewhere (the CLI, another node) within the reload interval. So
//! changes apply without a restart, and a call always sees one consistent version.
//!
//! The registry file (TOML) is declarative for what it lists: at start it is applied as
//! upserts; entries added later through the API stay until removed.

use mezhved_store::{
    Grant, InformationSystem, KindOfInformation, Participant, RegistryChange, RegistryData, Store,
    StoreError,
};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("registry file {path}: {message}")]
    File { path: String, message: String },
    #[error("certificate of system {system}: {message}")]
    Certificate { system: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An indexed, immutable view of one registry version.
#[derive(Debug, Default)]
pub struct Registry {
    pub data: RegistryData,
    participants: HashMap<String, usize>,
    systems: HashMap<String, usize>,
    /// SHA-256 of a certificate's DER (hex) → system mnemonic.
    by_certificate: HashMap<String, String>,
    kinds: HashMap<(String, String), usize>,
    grants: HashSet<(String, String, String)>,
}

/// SHA-256 fingerprint (lower-case hex) of a PEM certificate.
pub fn certificate_fingerprint(pem: &str) -> Result<String, String> {
    let cert = X509::from_pem(pem.as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let digest = cert
        .digest(MessageDigest::sha256())
        .map_err(|e| format!("cannot digest the certificate: {e}"))?;
    Ok(hex::encode(digest))
}

impl Registry {
    pub fn build(data: RegistryData) -> Result<Registry, RegistryError> {
        let mut r = Registry::default();
        for (i, p) in data.participants.iter().enumerate() {
            r.participants.insert(p.mnemonic.clone(), i);
        }
        for (i, s) in data.systems.iter().enumerate() {
            r.systems.insert(s.mnemonic.clone(), i);
            for pem in &s.certificates {
                let fp =
                    certificate_fingerprint(pem).map_err(|message| RegistryError::Certificate {
                        system: s.mnemonic.clone(),
                        message,
                    })?;
                if let Some(other) = r.by_certificate.insert(fp.clone(), s.mnemonic.clone()) {
                    if other != s.mnemonic {
                        return Err(RegistryError::Certificate {
                            system: s.mnemonic.clone(),
                            message: format!("certificate {fp} is also registered to {other}"),
                        });
                    }
                }
            }
        }
        for (i, k) in data.kinds.iter().enumerate() {
            r.kinds
                .insert((k.namespace.clone(), k.root_element.clone()), i);
        }
        for g in &data.grants {
            r.grants.insert((
                g.consumer_system.clone(),
                g.namespace.clone(),
                g.root_element.clone(),
            ));
        }
        r.data = data;
        Ok(r)
    }

    pub fn version(&self) -> u64 {
        self.data.version
    }
    pub fn system(&self, mnemonic: &str) -> Option<&InformationSystem> {
        self.systems.get(mnemonic).map(|&i| &self.data.systems[i])
    }
    pub fn participant(&self, mnemonic: &str) -> Option<&Participant> {
        self.participants
            .get(mnemonic)
            .map(|&i| &self.data.participants[i])
    }
    /// The participant that owns a system.
    pub fn participant_of(&self, system: &str) -> Option<&Participant> {
        self.system(system)
            .and_then(|s| self.participant(&s.participant))
    }
    /// The system a certificate (by SHA-256 fingerprint, hex) is registered to.
    pub fn system_by_certificate(&self, fingerprint_hex: &str) -> Option<&InformationSystem> {
        self.by_certificate
            .get(fingerprint_hex)
            .and_then(|m| self.system(m))
    }
    pub fn kind(&self, namespace: &str, root_element: &str) -> Option<&KindOfInformation> {
        self.kinds
            .get(&(namespace.to_string(), root_element.to_string()))
            .map(|&i| &self.data.kinds[i])
    }
    pub fn is_granted(&self, consumer_system: &str, namespace: &str, root_element: &str) -> bool {
        self.grants.contains(&(
            consumer_system.to_string(),
            namespace.to_string(),
            root_element.to_string(),
        ))
    }
    /// Whether any kind names this system as its provider.
    pub fn provides_anything(&self, system: &str) -> bool {
        self.data.kinds.iter().any(|k| k.provider_system == system)
    }
}

/// The current registry snapshot, replaced as a whole when the store's version changes.
#[derive(Debug)]
pub struct RegistryHandle {
    current: RwLock<Arc<Registry>>,
}

impl RegistryHandle {
    pub async fn load(store: &dyn Store) -> Result<RegistryHandle, RegistryError> {
        let data = store.registry().await?;
        Ok(RegistryHandle {
            current: RwLock::new(Arc::new(Registry::build(data)?)),
        })
    }

    pub fn get(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads if the store's version differs; returns whether it did.
    pub async fn refresh(&self, store: &dyn Store) -> Result<bool, RegistryError> {
        let version = store.registry_version().await?;
        if version == self.get().version() {
            return Ok(false);
        }
        let data = store.registry().await?;
        let fresh = Arc::new(Registry::build(data)?);
        match self.current.write() {
            Ok(mut g) => *g = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(true)
    }

    /// Applies changes (validated first: a change that would make the registry unusable,
    /// such as a certificate that does not parse or that is already another system's, is
    /// refused before it is stored — once stored, no node could load the registry), then
    /// reloads.
    ///
    /// The check builds the registry the changes would produce from the store's current
    /// one; referential integrity (a system's participant, a kind's provider) is the
    /// store's to check, inside the transaction that applies the changes.
    /// `actor` (`operator`, `cli`, `registry-file`, …) is journaled with the change.
    pub async fn change(
        &self,
        store: &dyn Store,
        actor: &str,
        at_ms: i64,
        changes: Vec<RegistryChange>,
    ) -> Result<u64, RegistryError> {
        for c in &changes {
            if let RegistryChange::PutSystem(s) = c {
                for pem in &s.certificates {
                    certificate_fingerprint(pem).map_err(|message| RegistryError::Certificate {
                        system: s.mnemonic.clone(),
                        message,
                    })?;
                }
            }
        }
        let mut prospective = store.registry().await?;
        apply_in_memory(&mut prospective, &changes);
        Registry::build(prospective)?;
        let version = store
            .change_registry(actor.to_string(), at_ms, changes)
            .await?;
        self.refresh(store).await?;
        Ok(version)
    }
}

/// Applies changes to a copy of the registry the way the store applies them (upserts by
/// key; deletes and revokes of what is not there are left to the store to refuse).
fn apply_in_memory(data: &mut RegistryData, changes: &[RegistryChange]) {
    fn upsert<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) {
        match list.iter_mut().find(|x| same(x)) {
            Some(slot) => *slot = item,
            None => list.push(item),
        }
    }
    for change in changes {
        match change {
            RegistryChange::PutParticipant(p) => upsert(&mut data.participants, p.clone(), |x| {
                x.mnemonic == p.mnemonic
            }),
            RegistryChange::DeleteParticipant { mnemonic } => {
                data.participants.retain(|x| &x.mnemonic != mnemonic)
            }
            RegistryChange::PutSystem(s) => {
                upsert(&mut data.systems, s.clone(), |x| x.mnemonic == s.mnemonic)
            }
            RegistryChange::DeleteSystem { mnemonic } => {
                data.systems.retain(|x| &x.mnemonic != mnemonic)
            }
            RegistryChange::PutKind(k) => upsert(&mut data.kinds, k.clone(), |x| {
                x.namespace == k.namespace && x.root_element == k.root_element
            }),
            RegistryChange::DeleteKind {
                namespace,
                root_element,
            } => data
                .kinds
                .retain(|x| &x.namespace != namespace || &x.root_element != root_element),
            RegistryChange::Grant(g) => {
                if !data.grants.contains(g) {
                    data.grants.push(g.clone());
                }
            }
            RegistryChange::Revoke(g) => data.grants.retain(|x| x != g),
        }
    }
}

/// The registry file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    #[serde(default, rename = "participant")]
    pub participants: Vec<Participant>,
    #[serde(default, rename = "system")]
    pub systems: Vec<SystemEntry>,
    #[serde(default, rename = "kind")]
    pub kinds: Vec<KindOfInformation>,
    #[serde(default, rename = "grant")]
    pub grants: Vec<Grant>,
}

/// A system in the registry file: certificates are file paths (relative to the registry
/// file) or inline PEM text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemEntry {
    pub mnemonic: String,
    pub participant: String,
    pub name: String,
    #[serde(default)]
    pub certificates: Vec<String>,
}

impl RegistryFile {
    pub fn load(path: &Path) -> Result<RegistryFile, RegistryError> {
        let err = |message: String| RegistryError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// The file as registry changes (upserts), certificates read from their files.
    pub fn to_changes(&self, base: &Path) -> Result<Vec<RegistryChange>, RegistryError> {
        let mut changes = Vec::new();
        for p in &self.participants {
            changes.push(RegistryChange::PutParticipant(p.clone()));
        }
        for s in &self.systems {
            let mut certificates = Vec::new();
            for c in &s.certificates {
                let pem = if c.contains("-----BEGIN") {
                    c.clone()
                } else {
                    let p = base.join(c);
                    std::fs::read_to_string(&p).map_err(|e| RegistryError::Certificate {
                        system: s.mnemonic.clone(),
                        message: format!("{}: {e}", p.display()),
                    })?
                };
                certificates.push(pem);
            }
            changes.push(RegistryChange::PutSystem(InformationSystem {
                mnemonic: s.mnemonic.clone(),
                participant: s.participant.clone(),
                name: s.name.clone(),
                certificates,
            }));
        }
        for k in &self.kinds {
            changes.push(RegistryChange::PutKind(k.clone()));
        }
        for g in &self.grants {
            changes.push(RegistryChange::Grant(g.clone()));
        }
        Ok(changes)
    }
}
