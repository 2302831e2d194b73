//! The trust store: which signer certificates we accept, and why not.
//!
//! A certificate is accepted only if all of these hold, checked in this order (so the
//! error is the most fundamental one):
//! 1. OpenSSL builds a path from it to one of our anchors (self-signed CA certificates from
//!    the trust directory), using the caller's chain and our intermediates as untrusted
//!    helpers, with every signature valid and every certificate in its validity period at
//!    the caller's time `at`;
//! 2. the leaf is not a CA, and if it has a keyUsage extension that extension allows
//!    digitalSignature or nonRepudiation;
//! 3. revocation: every certificate in the path except the anchor is checked against the
//!    newest CRL its issuer published at or before `at`. Under
//!    [`RevocationPolicy::RequireCrl`] that CRL must exist and be current (thisUpdate <= at
//!    < nextUpdate); under [`RevocationPolicy::UseCrlIfPresent`] a missing or stale CRL is
//!    tolerated, but a listing in one is still a revocation.
//!
//! Invariants:
//! - Intermediates from the trust directory are never anchors: a path must end at a
//!   self-signed CA we hold.
//! - A CRL is applied only to certificates whose issuer has the CRL's issuer name *and*
//!   whose key verifies the CRL's signature. For CAs in the store this binding is made at
//!   load time (a CRL in a stored CA's name that the CA did not sign is a load error); CRLs
//!   of CAs the store does not hold (intermediates that senders supply) are bound when a
//!   path through that CA is checked.
//!   A CRL with a critical extension we do not implement (indirect or partitioned CRLs,
//!   delta CRLs) is refused at load time rather than half-understood.
//! - The revocation check is ours, not OpenSSL's: the `openssl` crate can add CRLs to a
//!   store only from a file path, and the time `at` lives in the store's parameters, so
//!   OpenSSL's CRL check would mean re-reading files on every verification. The rules
//!   above are the RFC 5280 basics that OpenSSL's `-crl_check_all` applies too.
//! - The `gost` engine is loaded before any certificate is parsed, so GOST chains verify.
//! - Verdicts are cached, and a cached verdict is exactly what a fresh check would say:
//!   the store is immutable after loading, so a verdict depends only on the certificates
//!   and on where `at` falls among the finitely many times the checks compare it with
//!   (every notBefore/notAfter in the store and the path, every CRL thisUpdate/nextUpdate).
//!   The cache key is the certificates' digest plus the start of the interval between
//!   consecutive such times that holds `at`. Only successes are cached. Parsed signer
//!   certificates are cached by the digest of their DER (OpenSSL 3 decodes a key in
//!   ~100 µs; agencies reuse one certificate for thousands of messages).
//! - No input can make this module panic; malformed DER yields an error.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Public};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{
    CrlStatus, X509Crl, X509CrlRef, X509KeyUsage, X509NameRef, X509Ref, X509StoreContext,
    X509VerifyResult, X509,
};

use crate::{gost, DsigError};

/// Longest path OpenSSL may build (leaf + intermediates + anchor); real PKIs use 3-4.
const MAX_CHAIN_DEPTH: i32 = 8;

/// How a missing CRL is treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RevocationPolicy {
    /// Each CA in the path must have published a CRL that is current at the checked time.
    #[default]
    RequireCrl,
    /// CRLs that are loaded are applied; a CA without one (or with a stale one) is not an
    /// error. For deployments without CRL distribution.
    UseCrlIfPresent,
}

/// A signer certificate that passed [`TrustStore::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCertificate {
    /// Subject DN, RFC 4514 string form (most specific attribute first).
    pub subject: String,
    /// Issuer DN, same form.
    pub issuer: String,
    /// Serial number, lower-case hex without leading zeros.
    pub serial_hex: String,
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub sha256_fingerprint_hex: String,
    /// notAfter as RFC 3339 UTC (`2056-11-23T12:10:43Z`).
    pub not_after: String,
}

/// A CRL with the CA it was verified against.
struct LoadedCrl {
    crl: X509Crl,
    /// The CA key that verified the CRL's signature, when that CA is in the store. `None`:
    /// the issuing CA is one the sender supplies (an intermediate not in the store), so the
    /// signature is checked when the CRL is used. Kept as a key, not DER: comparing keys
    /// is cheap, while OpenSSL 3.0 takes ~300 µs to re-encode one.
    issuer_key: Option<PKey<Public>>,
    source: PathBuf,
}

/// Trust anchors, intermediates and CRLs, loaded from one directory.
pub struct TrustStore {
    anchors: Vec<X509>,
    intermediates: Vec<X509>,
    crls: Vec<LoadedCrl>,
    policy: RevocationPolicy,
    /// Every time the checks compare `at` with, from the store itself, and the second
    /// after each (a `<` and a `<=` comparison flip one second apart); sorted, unique.
    boundaries: Vec<i64>,
    cache: Mutex<Cache>,
}

/// Most entries each cache map holds; when full it is emptied (a region has a few
/// thousand information systems, so this is rarely reached).
const CACHE_CAPACITY: usize = 4096;

#[derive(Default)]
struct Cache {
    verdicts: HashMap<([u8; 32], i64), VerifiedCertificate>,
    certificates: HashMap<[u8; 32], X509>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |certs: &[X509]| -> Vec<String> {
            certs
                .iter()
                .map(|c| name_to_string(c.subject_name()))
                .collect()
        };
        f.debug_struct("TrustStore")
            .field("anchors", &names(&self.anchors))
            .field("intermediates", &names(&self.intermediates))
            .field(
                "crls",
                &self
                    .crls
                    .iter()
                    .map(|c| c.source.display().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .finish()
    }
}

enum FileKind {
    Certificates,
    Crls,
}

impl TrustStore {
    /// Loads every `*.pem`, `*.crt` and `*.cer` file of `dir` (PEM, possibly several
    /// certificates, or one DER certificate) and every `*.crl` file (PEM, possibly several
    /// CRLs, or one DER CRL). Self-signed CA certificates become anchors, other CA
    /// certificates intermediates; a non-CA certificate is an error (it has no place in a
    /// trust store), and so is a CRL that no loaded CA signed. Other files, dot-files and
    /// subdirectories are ignored. Errors name the file.
    pub fn from_dir(dir: &Path) -> Result<Self, DsigError> {
        // Without the engine GOST certificates are unusable, but a store of RSA/ECDSA CAs
        // still works; the engine error is repeated in any GOST parse failure.
        let engine = gost::ensure_loaded().err();
        let files = list_files(dir)?;

        let mut anchors: Vec<X509> = Vec::new();
        let mut intermediates: Vec<X509> = Vec::new();
        let mut crl_files = Vec::new();
        let mut seen = HashSet::new();
        for (path, kind) in files {
            let bytes = fs::read(&path).map_err(|e| file_error(&path, e))?;
            match kind {
                FileKind::Crls => crl_files.push((path, bytes)),
                FileKind::Certificates => {
                    let certs = parse_certificates(&bytes)
                        .map_err(|e| file_error(&path, with_engine_hint(&e, engine.as_ref())))?;
                    for cert in certs {
                        // The same CA may sit in two files (a bundle and a single file).
                        let fingerprint = cert.digest(MessageDigest::sha256())?.to_vec();
                        if !seen.insert(fingerprint) {
                            continue;
                        }
                        if !is_ca(&cert).map_err(|e| file_error(&path, e))? {
                            return Err(file_error(
                                &path,
                                format!(
                                    "certificate \"{}\" is not a CA certificate; only CA \
                                     certificates belong in a trust store",
                                    name_to_string(cert.subject_name())
                                ),
                            ));
                        }
                        if is_self_signed(&cert)
                            .map_err(|e| file_error(&path, with_engine_hint(&e, engine.as_ref())))?
                        {
                            anchors.push(cert);
                        } else {
                            intermediates.push(cert);
                        }
                    }
                }
            }
        }
        if anchors.is_empty() {
            return Err(DsigError::TrustStore(format!(
                "{}: no trust anchor (self-signed CA certificate in a .pem/.crt/.cer file)",
                dir.display()
            )));
        }

        let mut crls = Vec::new();
        for (path, bytes) in crl_files {
            for crl in parse_crls(&bytes).map_err(|e| file_error(&path, e))? {
                let loaded = bind_crl(crl, &anchors, &intermediates, &path)
                    .map_err(|e| file_error(&path, with_engine_hint(&e, engine.as_ref())))?;
                crls.push(loaded);
            }
        }

        let mut boundaries = Vec::new();
        for c in anchors.iter().chain(&intermediates) {
            push_validity(&mut boundaries, c)?;
        }
        for loaded in &crls {
            push_boundary(&mut boundaries, asn1_unix(loaded.crl.last_update())?);
            if let Some(next) = loaded.crl.next_update() {
                push_boundary(&mut boundaries, asn1_unix(next)?);
            }
        }
        boundaries.sort_unstable();
        boundaries.dedup();

        Ok(Self {
            anchors,
            intermediates,
            crls,
            policy: RevocationPolicy::default(),
            boundaries,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Parses a DER certificate (a signature's KeyInfo), reusing an earlier parse of the
    /// same bytes.
    pub fn certificate_from_der(&self, der: &[u8]) -> Result<X509, DsigError> {
        let key = openssl::sha::sha256(der);
        if let Some(c) = self.lock_cache().certificates.get(&key) {
            return Ok(c.clone());
        }
        // GOST keys are decoded at parse time and need the engine first.
        let _ = gost::ensure_loaded();
        let cert = X509::from_der(der).map_err(|e| DsigError::BadCertificate(e.to_string()))?;
        let mut cache = self.lock_cache();
        if cache.certificates.len() >= CACHE_CAPACITY {
            cache.certificates.clear();
        }
        cache.certificates.insert(key, cert.clone());
        Ok(cert)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic elsewhere while holding the lock leaves a consistent map (inserts and
        // clears are single calls), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cache key of a verdict: digest of the certificates, and the start of the
    /// interval of times (see the module docs) that holds `at`.
    fn verdict_key(
        &self,
        cert: &X509Ref,
        chain: &[X509],
        at: i64,
    ) -> Result<([u8; 32], i64), DsigError> {
        let mut hasher = openssl::sha::Sha256::new();
        let mut extra = Vec::with_capacity(4 * (chain.len() + 1));
        for c in std::iter::once(cert).chain(chain.iter().map(|c| &**c)) {
            let der = c.to_der()?;
            hasher.update(&(der.len() as u64).to_be_bytes());
            hasher.update(&der);
            push_validity(&mut extra, c)?;
        }
        // The store's boundaries are sorted: binary search. The path's few are scanned.
        let stored = self.boundaries[..self.boundaries.partition_point(|t| *t <= at)]
            .last()
            .copied();
        let own = extra.iter().copied().filter(|t| *t <= at).max();
        let start = match (stored, own) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b).unwrap_or(i64::MIN),
        };
        Ok((hasher.finish(), start))
    }

    /// Sets how a missing CRL is treated (default [`RevocationPolicy::RequireCrl`]).
    pub fn with_revocation_policy(mut self, policy: RevocationPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The revocation policy in force.
    pub fn revocation_policy(&self) -> RevocationPolicy {
        self.policy
    }

    /// Verifies `cert` at time `at` (module docs: what is checked, in which order).
    /// `chain` may hold intermediates the signer sent; they are used to build the path but
    /// are never trusted by themselves.
    pub fn verify(
        &self,
        cert: &X509Ref,
        chain: &[X509],
        at: SystemTime,
    ) -> Result<VerifiedCertificate, DsigError> {
        let at = unix_seconds(at);
        let key = self.verdict_key(cert, chain, at)?;
        if let Some(v) = self.lock_cache().verdicts.get(&key) {
            return Ok(v.clone());
        }
        let verdict = self.verify_uncached(cert, chain, at)?;
        let mut cache = self.lock_cache();
        if cache.verdicts.len() >= CACHE_CAPACITY {
            cache.verdicts.clear();
        }
        cache.verdicts.insert(key, verdict.clone());
        Ok(verdict)
    }

    fn verify_uncached(
        &self,
        cert: &X509Ref,
        chain: &[X509],
        at: i64,
    ) -> Result<VerifiedCertificate, DsigError> {
        let path = self.build_path(cert, chain, at)?;
        check_leaf_usage(cert)?;
        self.check_revocation(&path, at)?;
        Ok(VerifiedCertificate {
            subject: name_to_string(cert.subject_name()),
            issuer: name_to_string(cert.issuer_name()),
            serial_hex: cert
                .serial_number()
                .to_bn()?
                .to_hex_str()?
                .to_ascii_lowercase(),
            sha256_fingerprint_hex: to_hex(&cert.digest(MessageDigest::sha256())?),
            not_after: rfc3339(asn1_unix(cert.not_after())?),
        })
    }

    /// Step 1: OpenSSL path building and validation at `at`; returns the path, leaf first.
    fn build_path(&self, cert: &X509Ref, chain: &[X509], at: i64) -> Result<Vec<X509>, DsigError> {
        // The check time lives in the store's parameters, so each call gets its own store;
        // adding a certificate only takes a reference, so this is cheap.
        let mut builder = X509StoreBuilder::new()?;
        for anchor in &self.anchors {
            builder.add_cert(anchor.clone())?;
        }
        let mut param = X509VerifyParam::new()?;
        param.set_time(to_time_t(at)?);
        param.set_depth(MAX_CHAIN_DEPTH);
        builder.set_param(&param)?;
        let store = builder.build();

        let mut untrusted = Stack::new()?;
        for c in chain.iter().chain(&self.intermediates) {
            untrusted.push(c.clone())?;
        }

        let mut ctx = X509StoreContext::new()?;
        ctx.init(&store, cert, &untrusted, |ctx| {
            if ctx.verify_cert()? {
                let path = ctx
                    .chain()
                    .map(|c| c.iter().map(ToOwned::to_owned).collect::<Vec<X509>>())
                    .unwrap_or_default();
                Ok(Ok(path))
            } else {
                Ok(Err(verify_error(
                    ctx.error(),
                    ctx.error_depth(),
                    ctx.current_cert(),
                )))
            }
        })?
    }

    /// Step 3: CRLs (module docs).
    fn check_revocation(&self, path: &[X509], at: i64) -> Result<(), DsigError> {
        for pair in path.windows(2) {
            let [subject, issuer] = pair else { continue };
            let issuer_public = issuer.public_key()?;
            let mut newest: Option<(&LoadedCrl, i64)> = None;
            for loaded in &self.crls {
                if !names_equal(loaded.crl.issuer_name(), issuer.subject_name()) {
                    continue;
                }
                let signed_by_issuer = match &loaded.issuer_key {
                    Some(key) => key.public_eq(&issuer_public),
                    None => {
                        crl_signed_by(&loaded.crl, &issuer_public)
                            && check_crl_signer_usage(issuer).is_ok()
                    }
                };
                if !signed_by_issuer {
                    continue;
                }
                let this_update = asn1_unix(loaded.crl.last_update())?;
                // A CRL from the future is not evidence about `at`.
                if this_update > at {
                    continue;
                }
                if newest.is_none_or(|(_, t)| this_update > t) {
                    newest = Some((loaded, this_update));
                }
            }

            let issuer_name = name_to_string(issuer.subject_name());
            let Some((loaded, _)) = newest else {
                if self.policy == RevocationPolicy::RequireCrl {
                    return Err(DsigError::Untrusted(format!(
                        "no CRL from \"{issuer_name}\" valid at the checked time, so the \
                         revocation status of \"{}\" is unknown",
                        name_to_string(subject.subject_name())
                    )));
                }
                continue;
            };
            if self.policy == RevocationPolicy::RequireCrl {
                let next_update = match loaded.crl.next_update() {
                    Some(t) => Some(asn1_unix(t)?),
                    None => None,
                };
                match next_update {
                    Some(next) if at < next => {}
                    Some(next) => {
                        return Err(DsigError::Untrusted(format!(
                            "the CRL from \"{issuer_name}\" ({}) expired at {}",
                            loaded.source.display(),
                            rfc3339(next)
                        )))
                    }
                    None => {
                        return Err(DsigError::Untrusted(format!(
                            "the CRL from \"{issuer_name}\" ({}) has no nextUpdate, so it \
                             cannot be shown to be current",
                            loaded.source.display()
                        )))
                    }
                }
            }
            if let CrlStatus::Revoked(_) = loaded.crl.get_by_cert(subject) {
                return Err(DsigError::CertificateRevoked);
            }
        }
        Ok(())
    }
}

/// The candidate files of the trust directory, sorted so loading is deterministic.
fn list_files(dir: &Path) -> Result<Vec<(PathBuf, FileKind)>, DsigError> {
    let unreadable = |e: std::io::Error| {
        DsigError::TrustStore(format!("cannot read directory {}: {e}", dir.display()))
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let kind = match ext.as_deref() {
            Some("pem" | "crt" | "cer") => FileKind::Certificates,
            Some("crl") => FileKind::Crls,
            _ => continue,
        };
        files.push((path, kind));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn file_error(path: &Path, e: impl fmt::Display) -> DsigError {
    DsigError::TrustStore(format!("{}: {e}", path.display()))
}

fn with_engine_hint(e: &dyn fmt::Display, engine: Option<&DsigError>) -> String {
    match engine {
        None => e.to_string(),
        Some(engine) => format!("{e} (note: {engine})"),
    }
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn parse_certificates(bytes: &[u8]) -> Result<Vec<X509>, String> {
    let certs = if is_pem(bytes) {
        X509::stack_from_pem(bytes).map_err(|e| format!("bad PEM certificate: {e}"))?
    } else {
        vec![X509::from_der(bytes).map_err(|e| format!("bad DER certificate: {e}"))?]
    };
    if certs.is_empty() {
        return Err("no certificate in the file".to_owned());
    }
    Ok(certs)
}

fn parse_crls(bytes: &[u8]) -> Result<Vec<X509Crl>, String> {
    if !is_pem(bytes) {
        return Ok(vec![
            X509Crl::from_der(bytes).map_err(|e| format!("bad DER CRL: {e}"))?
        ]);
    }
    // The crate reads one PEM CRL at a time, so split the file at the CRL boundaries.
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    const END: &[u8] = b"-----END X509 CRL-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut crls = Vec::new();
    let mut rest = bytes;
    while let Some(start) = find(rest, BEGIN) {
        let block = &rest[start..];
        let end = find(block, END).ok_or_else(|| "unterminated PEM CRL".to_owned())? + END.len();
        let crl = X509Crl::from_pem(&block[..end]).map_err(|e| format!("bad PEM CRL: {e}"))?;
        crls.push(crl);
        rest = &block[end..];
    }
    if crls.is_empty() {
        return Err("no \"X509 CRL\" PEM block in the file".to_owned());
    }
    Ok(crls)
}

/// Finds the CA that signed `crl` and checks the CRL is one we can apply correctly.
fn bind_crl(
    crl: X509Crl,
    anchors: &[X509],
    intermediates: &[X509],
    path: &Path,
) -> Result<LoadedCrl, String> {
    let der = crl.to_der().map_err(|e| e.to_string())?;
    let critical = der::crl_critical_extensions(&der)?;
    if let Some(oid) = critical.first() {
        return Err(format!(
            "CRL has a critical extension this gateway does not implement ({}); indirect, \
             partitioned and delta CRLs are not supported",
            der::oid_to_string(oid)
        ));
    }
    let issuer_name = name_to_string(crl.issuer_name());
    let mut same_name = anchors
        .iter()
        .chain(intermediates)
        .filter(|ca| names_equal(ca.subject_name(), crl.issuer_name()))
        .peekable();
    if same_name.peek().is_none() {
        // Issued by a CA the sender supplies; bound to it when used (check_revocation).
        return Ok(LoadedCrl {
            crl,
            issuer_key: None,
            source: path.to_owned(),
        });
    }
    for ca in same_name {
        let key = ca.public_key().map_err(|e| e.to_string())?;
        if !crl_signed_by(&crl, &key) {
            continue;
        }
        check_crl_signer_usage(ca)?;
        return Ok(LoadedCrl {
            crl,
            issuer_key: Some(key),
            source: path.to_owned(),
        });
    }
    // A CRL in a CA's name that the CA did not sign is a forgery or a mix-up; either way
    // the directory is not what its operator thinks it is.
    Err(format!(
        "CRL in the name of \"{issuer_name}\" is not signed by that CA's key"
    ))
}

fn crl_signed_by<T: HasPublic>(crl: &X509CrlRef, key: &PKeyRef<T>) -> bool {
    // An OpenSSL error (e.g. a key of another type) means "not signed by this key" too.
    crl.verify(key).unwrap_or(false)
}

fn check_crl_signer_usage(ca: &X509Ref) -> Result<(), String> {
    match ca.key_usage() {
        Some(usage) if !usage.contains(X509KeyUsage::CRL_SIGN) => Err(format!(
            "CRL issuer \"{}\" lacks the cRLSign key usage",
            name_to_string(ca.subject_name())
        )),
        _ => Ok(()),
    }
}

/// Whether `cert` has basicConstraints with cA = TRUE.
fn is_ca(cert: &X509Ref) -> Result<bool, String> {
    let der = cert.to_der().map_err(|e| e.to_string())?;
    let extensions = der::certificate_extensions(&der)?;
    match extensions
        .iter()
        .find(|e| e.oid == der::OID_BASIC_CONSTRAINTS)
    {
        Some(ext) => der::basic_constraints_is_ca(ext.value),
        None => Ok(false),
    }
}

fn is_self_signed(cert: &X509Ref) -> Result<bool, String> {
    if !names_equal(cert.subject_name(), cert.issuer_name()) {
        return Ok(false);
    }
    let key = cert
        .public_key()
        .map_err(|e| format!("public key cannot be read: {e}"))?;
    Ok(cert.verify(&key).unwrap_or(false))
}

fn names_equal(a: &X509NameRef, b: &X509NameRef) -> bool {
    a.try_cmp(b).is_ok_and(|o| o.is_eq())
}

/// Step 2: the leaf must be meant for signing.
fn check_leaf_usage(cert: &X509Ref) -> Result<(), DsigError> {
    if is_ca(cert).map_err(DsigError::BadCertificate)? {
        return Err(DsigError::KeyUsage(
            "the signer's certificate is a CA certificate; CA keys must not sign messages"
                .to_owned(),
        ));
    }
    if let Some(usage) = cert.key_usage() {
        let signing = X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION;
        if !usage.intersects(signing) {
            return Err(DsigError::KeyUsage(format!(
                "keyUsage is {{{}}}; digitalSignature or nonRepudiation is required",
                key_usage_names(usage)
            )));
        }
    }
    Ok(())
}

fn key_usage_names(usage: X509KeyUsage) -> String {
    let names = [
        (X509KeyUsage::DIGITAL_SIGNATURE, "digitalSignature"),
        (X509KeyUsage::NON_REPUDIATION, "nonRepudiation"),
        (X509KeyUsage::KEY_ENCIPHERMENT, "keyEncipherment"),
        (X509KeyUsage::DATA_ENCIPHERMENT, "dataEncipherment"),
        (X509KeyUsage::KEY_AGREEMENT, "keyAgreement"),
        (X509KeyUsage::KEY_CERT_SIGN, "keyCertSign"),
        (X509KeyUsage::CRL_SIGN, "cRLSign"),
        (X509KeyUsage::ENCIPHER_ONLY, "encipherOnly"),
        (X509KeyUsage::DECIPHER_ONLY, "decipherOnly"),
    ];
    names
        .iter()
        .filter(|(flag, _)| usage.contains(*flag))
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps OpenSSL's verification result to our error. Time errors carry the offending
/// certificate's date (and name it when it is not the leaf).
fn verify_error(result: X509VerifyResult, depth: u32, current: Option<&X509Ref>) -> DsigError {
    let which = |cert: &X509Ref| {
        if depth == 0 {
            String::new()
        } else {
            format!(
                ", of CA certificate \"{}\"",
                name_to_string(cert.subject_name())
            )
        }
    };
    let time = |t: &Asn1TimeRef| asn1_unix(t).map_or_else(|_| t.to_string(), rfc3339);
    match (result.as_raw(), current) {
        (openssl_sys::X509_V_ERR_CERT_HAS_EXPIRED, Some(cert)) => {
            DsigError::CertificateExpired(format!("{}{}", time(cert.not_after()), which(cert)))
        }
        (openssl_sys::X509_V_ERR_CERT_NOT_YET_VALID, Some(cert)) => {
            DsigError::CertificateNotYetValid(format!("{}{}", time(cert.not_before()), which(cert)))
        }
        (openssl_sys::X509_V_ERR_CERT_REVOKED, _) => DsigError::CertificateRevoked,
        (
            openssl_sys::X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD
            | openssl_sys::X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD,
            _,
        ) => DsigError::BadCertificate(format!("{} at chain depth {depth}", result.error_string())),
        (_, current) => {
            let subject = current
                .map(|c| format!(", \"{}\"", name_to_string(c.subject_name())))
                .unwrap_or_default();
            DsigError::Untrusted(format!(
                "{} (chain depth {depth}{subject})",
                result.error_string()
            ))
        }
    }
}

/// A name as an RFC 4514 string: most specific RDN first, special characters escaped.
fn name_to_string(name: &X509NameRef) -> String {
    let mut parts: Vec<String> = name
        .entries()
        .map(|entry| {
            let object = entry.object();
            let key = object
                .nid()
                .short_name()
                .map_or_else(|_| object.to_string(), str::to_owned);
            let value = entry
                .data()
                .to_string()
                .unwrap_or_else(|_| "<unreadable>".to_owned());
            format!("{key}={}", escape_dn_value(&value))
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

fn escape_dn_value(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Seconds since the Unix epoch; negative before it.
/// Records `t` and `t + 1` as points where a comparison with `at` may change its answer.
fn push_boundary(out: &mut Vec<i64>, t: i64) {
    out.push(t);
    out.push(t.saturating_add(1));
}

fn push_validity(out: &mut Vec<i64>, c: &X509Ref) -> Result<(), DsigError> {
    push_boundary(out, asn1_unix(c.not_before())?);
    push_boundary(out, asn1_unix(c.not_after())?);
    Ok(())
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Converts to the platform's `time_t` (the `openssl` crate does not re-export the type, so
/// it is inferred from the call site).
fn to_time_t<T: TryFrom<i64>>(secs: i64) -> Result<T, DsigError> {
    T::try_from(secs)
        .map_err(|_| DsigError::Untrusted(format!("time {secs} is out of this platform's range")))
}

fn asn1_unix(t: &Asn1TimeRef) -> Result<i64, DsigError> {
    let epoch = Asn1Time::from_unix(to_time_t(0)?)?;
    let diff = epoch.diff(t)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// RFC 3339 UTC for Unix seconds (proleptic Gregorian calendar).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), using 400-year eras of 146 097 days.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A minimal, bounded DER reader for the few certificate and CRL fields the `openssl`
/// crate does not expose (basicConstraints, critical CRL extensions). It only slices the
/// input: every length is checked against what remains, nesting depth is fixed by the
/// callers' structure, and malformed input is an `Err`.
mod der {
    pub(super) const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

    const TAG_BOOLEAN: u8 = 0x01;
    const TAG_OCTET_STRING: u8 = 0x04;
    const TAG_OID: u8 = 0x06;
    const TAG_SEQUENCE: u8 = 0x30;
    const TAG_UTC_TIME: u8 = 0x17;
    const TAG_GENERALIZED_TIME: u8 = 0x18;
    /// `[3] EXPLICIT Extensions` in a TBSCertificate.
    const TAG_CERT_EXTENSIONS: u8 = 0xa3;
    /// `[0] EXPLICIT Extensions` in a TBSCertList.
    const TAG_CRL_EXTENSIONS: u8 = 0xa0;

    pub(super) struct Tlv<'a> {
        pub tag: u8,
        pub content: &'a [u8],
    }

    pub(super) struct Reader<'a> {
        rest: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub fn new(input: &'a [u8]) -> Self {
            Self { rest: input }
        }

        pub fn is_empty(&self) -> bool {
            self.rest.is_empty()
        }

        pub fn next_tlv(&mut self) -> Result<Tlv<'a>, String> {
            let (&tag, rest) = self.rest.split_first().ok_or("DER: truncated tag")?;
            if tag & 0x1f == 0x1f {
                return Err("DER: multi-byte tags do not occur here".to_owned());
            }
            let (&first, mut rest) = rest.split_first().ok_or("DER: truncated length")?;
            let len = if first < 0x80 {
                usize::from(first)
            } else {
                let n = usize::from(first & 0x7f);
                // 0 is BER's indefinite length; more than 4 bytes cannot fit any input.
                if n == 0 || n > 4 || rest.len() < n {
                    return Err("DER: bad length".to_owned());
                }
                let (bytes, after) = rest.split_at(n);
                rest = after;
                bytes
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
            };
            if rest.len() < len {
                return Err("DER: length runs past the end of its container".to_owned());
            }
            let (content, after) = rest.split_at(len);
            self.rest = after;
            Ok(Tlv { tag, content })
        }

        pub fn expect(&mut self, tag: u8) -> Result<&'a [u8], String> {
            let tlv = self.next_tlv()?;
            if tlv.tag != tag {
                return Err(format!(
                    "DER: expected tag {tag:#04x}, found {:#04x}",
                    tlv.tag
                ));
            }
            Ok(tlv.content)
        }
    }

    pub(super) struct Extension<'a> {
        pub oid: &'a [u8],
        pub critical: bool,
        pub value: &'a [u8],
    }

    /// `Extensions ::= SEQUENCE OF Extension`, given the content of the outer SEQUENCE.
    fn extensions(seq_content: &[u8]) -> Result<Vec<Extension<'_>>, String> {
        let mut list = Reader::new(seq_content);
        let mut out = Vec::new();
        while !list.is_empty() {
            let mut ext = Reader::new(list.expect(TAG_SEQUENCE)?);
            let oid = ext.expect(TAG_OID)?;
            let mut next = ext.next_tlv()?;
            let mut critical = false;
            if next.tag == TAG_BOOLEAN {
                critical = next.content.iter().any(|&b| b != 0);
                next = ext.next_tlv()?;
            }
            if next.tag != TAG_OCTET_STRING || !ext.is_empty() {
                return Err("DER: malformed extension".to_owned());
            }
            out.push(Extension {
                oid,
                critical,
                value: next.content,
            });
        }
        Ok(out)
    }

    /// The extensions of a DER certificate (empty for v1/v2 certificates).
    pub(super) fn certificate_extensions(cert: &[u8]) -> Result<Vec<Extension<'_>>, String> {
        let mut outer = Reader::new(cert);
        let mut cert = Reader::new(outer.expect(TAG_SEQUENCE)?);
        let mut tbs = Reader::new(cert.expect(TAG_SEQUENCE)?);
        // [3] is the only context tag 3 at this level, so scanning for it is exact.
        while !tbs.is_empty() {
            let field = tbs.next_tlv()?;
            if field.tag == TAG_CERT_EXTENSIONS {
                return extensions(Reader::new(field.content).expect(TAG_SEQUENCE)?);
            }
        }
        Ok(Vec::new())
    }

    /// `BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen INTEGER OPTIONAL }`
    pub(super) fn basic_constraints_is_ca(value: &[u8]) -> Result<bool, String> {
        let mut seq = Reader::new(Reader::new(value).expect(TAG_SEQUENCE)?);
        if seq.is_empty() {
            return Ok(false);
        }
        let first = seq.next_tlv()?;
        Ok(first.tag == TAG_BOOLEAN && first.content.iter().any(|&b| b != 0))
    }

    /// OIDs of the critical extensions of a DER CRL, list-level and per entry.
    pub(super) fn crl_critical_extensions(crl: &[u8]) -> Result<Vec<&[u8]>, String> {
        let mut outer = Reader::new(crl);
        let mut crl = Reader::new(outer.expect(TAG_SEQUENCE)?);
        let mut tbs = Reader::new(crl.expect(TAG_SEQUENCE)?);
        let mut critical = Vec::new();
        let mut after_time = false;
        while !tbs.is_empty() {
            let field = tbs.next_tlv()?;
            match field.tag {
                TAG_UTC_TIME | TAG_GENERALIZED_TIME => after_time = true,
                // The only SEQUENCE after thisUpdate is revokedCertificates.
                TAG_SEQUENCE if after_time => {
                    let mut entries = Reader::new(field.content);
                    while !entries.is_empty() {
                        let mut entry = Reader::new(entries.expect(TAG_SEQUENCE)?);
                        entry.next_tlv()?; // userCertificate
                        entry.next_tlv()?; // revocationDate
                        if !entry.is_empty() {
                            let exts = entry.expect(TAG_SEQUENCE)?;
                            critical.extend(
                                extensions(exts)?
                                    .into_iter()
                                    .filter(|e| e.critical)
                                    .map(|e| e.oid),
                            );
                        }
                    }
                }
                TAG_CRL_EXTENSIONS => {
                    let exts = Reader::new(field.content).expect(TAG_SEQUENCE)?;
                    critical.extend(
                        extensions(exts)?
                            .into_iter()
                            .filter(|e| e.critical)
                            .map(|e| e.oid),
                    );
                }
                _ => {}
            }
        }
        Ok(critical)
    }

    /// Dotted form of an OID's content octets, for error messages.
    pub(super) fn oid_to_string(oid: &[u8]) -> String {
        let mut arcs: Vec<u64> = Vec::new();
        let mut acc: u64 = 0;
        for &b in oid {
            acc = match acc.checked_mul(128) {
                Some(v) => v | u64::from(b & 0x7f),
                None => return format!("OID bytes {oid:02x?}"),
            };
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = acc.min(80) / 40;
                    arcs.push(first);
                    arcs.push(acc - first * 40);
                } else {
                    arcs.push(acc);
                }
                acc = 0;
            }
        }
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_609_459_199), "2020-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn unix_seconds_handles_times_before_the_epoch() {
        let before = UNIX_EPOCH - std::time::Duration::from_secs(5);
        assert_eq!(unix_seconds(before), -5);
        assert_eq!(
            unix_seconds(UNIX_EPOCH + std::time::Duration::from_secs(7)),
            7
        );
    }

    #[test]
    fn asn1_times_convert_to_unix_seconds() {
        let t = Asn1Time::from_str("20210101000000Z").unwrap();
        assert_eq!(asn1_unix(&t).unwrap(), 1_609_459_200);
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_dn_value("#x "), "\\#x\\ ");
        assert_eq!(escape_dn_value(" "), "\\ ");
        assert_eq!(escape_dn_value(""), "");
    }

    #[test]
    fn der_reader_rejects_malformed_lengths() {
        for bad in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x80][..],                // indefinite length
            &[0x30, 0x85, 1, 1, 1, 1, 1][..], // 5-byte length
            &[0x30, 0x82, 0x01][..],          // truncated long length
            &[0x30, 0x03, 0x01][..],          // content shorter than its length
            &[0x1f, 0x01, 0x00][..],          // multi-byte tag
        ] {
            assert!(der::Reader::new(bad).next_tlv().is_err(), "{bad:02x?}");
        }
        let mut r = der::Reader::new(&[0x04, 0x81, 0x01, 0xaa, 0x05, 0x00]);
        let t = r.next_tlv().unwrap();
        assert_eq!((t.tag, t.content), (0x04, &[0xaa][..]));
        assert_eq!(r.expect(0x05).unwrap(), &[] as &[u8]);
        assert!(r.is_empty());
    }

    #[test]
    fn der_walkers_never_panic_on_truncations() {
        let pem = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../keys/test-pki/rsa/gateway.cert.pem"
        ));
        let der = X509::from_pem(pem).unwrap().to_der().unwrap();
        assert!(!der::certificate_extensions(&der).unwrap().is_empty());
        for len in 0..der.len() {
            // Any result is fine; reaching the end of the loop is the test.
            let _ = der::certificate_extensions(&der[..len]);
            let _ = der::crl_critical_extensions(&der[..len]);
        }
        let mut flipped = der.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = der::certificate_extensions(&flipped);
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn basic_constraints_parse() {
        // SEQUENCE { BOOLEAN TRUE, INTEGER 0 }
        assert!(
            der::basic_constraints_is_ca(&[0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00])
                .unwrap()
        );
        assert!(!der::basic_constraints_is_ca(&[0x30, 0x00]).unwrap());
        assert!(der::basic_constraints_is_ca(&[0x31, 0x00]).is_err());
    }

    #[test]
    fn oids_print_dotted() {
        assert_eq!(der::oid_to_string(&[0x55, 0x1d, 0x13]), "2.5.29.19");
        assert_eq!(
            der::oid_to_string(&[0x2a, 0x85, 0x03, 0x07, 0x01, 0x01, 0x01, 0x01]),
            "1.2.643.7.1.1.1.1"
        );
    }
}
