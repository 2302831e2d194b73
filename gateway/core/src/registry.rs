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
//!
//! A system's `push_url` (docs/push.md) is checked wherever changes come in (the file at
//! start, the API, the CLI) by [`check_push_urls`]: `https://` only, unless the
//! configuration allows plain `http://` (tests, a local demo). The push loop checks again
//! before it uses one, so a registry written under a laxer configuration is not pushed
//! to in clear.

use mezhved_store::{
    Grant, InformationSystem, KindOfInformation, Participant, RegistryChange, RegistryData, Store,
    StoreError,
};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The longest push URL accepted.
pub const MAX_PUSH_URL_LEN: usize = 2048;

/// Checks a system's push endpoint: an absolute `https://` URL (or `http://` when
/// `allow_plain_http`) with a host, no user name or password (the registry and its
/// `registry.changed` journal events are not the place for credentials), no fragment, no
/// whitespace or control characters.
pub fn check_push_url(url: &str, allow_plain_http: bool) -> Result<(), String> {
    if url.len() > MAX_PUSH_URL_LEN {
        return Err(format!("longer than {MAX_PUSH_URL_LEN} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters".into());
    }
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        if !allow_plain_http {
            return Err(
                "plain http:// is refused: use https://, or set [push] allow_plain_http = true (tests and local demos only)"
                    .into(),
            );
        }
        rest
    } else {
        return Err("must be an https:// URL".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry a user name or password".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8443`.
        Some(v6) => {
            let (address, after) = v6
                .split_once(']')
                .ok_or("an IPv6 host lacks its closing bracket")?;
            if address.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("[{address}] is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("junk after the IPv6 host")?),
            };
            (address, port)
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if let Some(port) = port {
        if !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return Err(format!("port \"{port}\" is not a port number"));
        }
    }
    if url.contains('#') {
        return Err("must not have a fragment".into());
    }
    Ok(())
}

/// Checks the push URL of every system these changes put.
pub fn check_push_urls(
    changes: &[RegistryChange],
    allow_plain_http: bool,
) -> Result<(), RegistryError> {
    for c in changes {
        if let RegistryChange::PutSystem(s) = c {
            if let Some(url) = &s.push_url {
                check_push_url(url, allow_plain_http).map_err(|e| {
                    RegistryError::Invalid(format!(
                        "system {}: push_url \"{url}\": {e}",
                        s.mnemonic
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// The current registry snapshot, replaced as a whole when the store's version changes.
#[derive(Debug)]
pub struct RegistryHandle {
    current: RwLock<Arc<Registry>>,
    /// Whether changes may register plain `http://` push endpoints ([`check_push_url`]).
    plain_http_push: AtomicBool,
}

impl RegistryHandle {
    pub async fn load(store: &dyn Store) -> Result<RegistryHandle, RegistryError> {
        let data = store.registry().await?;
        Ok(RegistryHandle {
            current: RwLock::new(Arc::new(Registry::build(data)?)),
            plain_http_push: AtomicBool::new(false),
        })
    }

    /// Allows (or refuses, the default) plain `http://` push endpoints in changes made
    /// through this handle (config `[push] allow_plain_http`).
    pub fn set_plain_http_push(&self, allow: bool) {
        self.plain_http_push.store(allow, Ordering::Relaxed);
    }

    pub fn plain_http_push(&self) -> bool {
        self.plain_http_push.load(Ordering::Relaxed)
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
        check_push_urls(&changes, self.plain_http_push())?;
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
    /// The system's push endpoint (docs/push.md); absent: the system pulls.
    #[serde(default)]
    pub push_url: Option<String>,
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
                push_url: s.push_url.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls_are_https_with_a_host_unless_plain_http_is_allowed() {
        for ok in [
            "https://zags.example/smev/push",
            "https://10.1.2.3:8443/push?system=ZAGS",
            "https://[::1]:8443/",
            "https://zags.example",
        ] {
            assert_eq!(check_push_url(ok, false), Ok(()), "{ok}");
        }
        let refused = |url: &str, allow: bool| check_push_url(url, allow).expect_err(url);
        assert!(refused("http://127.0.0.1:9/push", false).contains("allow_plain_http"));
        assert_eq!(check_push_url("http://127.0.0.1:9/push", true), Ok(()));
        assert!(refused("ftp://zags.example/", true).contains("https://"));
        assert!(refused("zags.example/push", true).contains("https://"));
        assert!(refused("https:///push", false).contains("no host"));
        assert!(refused("https://user:secret@zags.example/", false).contains("password"));
        assert!(refused("https://zags.example:0/", false).contains("port"));
        assert!(refused("https://zags.example:https/", false).contains("port"));
        assert!(refused("https://[::1/", false).contains("closing bracket"));
        assert!(refused("https://[zz]/", false).contains("IPv6"));
        assert!(refused("https://zags.example/a b", false).contains("whitespace"));
        assert!(refused("https://zags.example/#frag", false).contains("fragment"));
        let long = format!("https://zags.example/{}", "a".repeat(MAX_PUSH_URL_LEN));
        assert!(refused(&long, false).contains("longer"));
    }

    #[test]
    fn changes_name_the_system_whose_push_url_is_refused() {
        let change = |url: &str| {
            RegistryChange::PutSystem(InformationSystem {
                mnemonic: "ZAGS_IS".into(),
                participant: "ZAGS".into(),
                name: "Civil registry".into(),
                certificates: Vec::new(),
                push_url: Some(url.into()),
            })
        };
        let e = check_push_urls(&[change("http://127.0.0.1:1/")], false)
            .expect_err("plain http")
            .to_string();
        assert!(e.contains("ZAGS_IS") && e.contains("push_url"), "{e}");
        assert!(check_push_urls(&[change("http://127.0.0.1:1/")], true).is_ok());
    }
}
