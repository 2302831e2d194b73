//! C2SP tlog-checkpoints (<https://c2sp.org/tlog-checkpoint>) in C2SP signed notes
//! (<https://c2sp.org/signed-note>), signed with the gateway's key.
//!
//! # Checkpoint body (the note text)
//!
//! ```text
//! <origin>\n
//! <tree size, decimal, no leading zeros>\n
//! <root hash, standard padded base64 (RFC 4648 §4) of the 32-byte RFC 6962 root>\n
//! time-ms <checkpoint time, Unix milliseconds, decimal, no leading zeros>\n
//! ```
//!
//! - The origin is the log's identity, e.g. `mezhved.example/segment-1`: non-empty, no
//!   control characters (we also refuse Unicode spaces and `+`, which the spec advises
//!   against). The root is [`crate::merkle`]'s root of the first `size` leaves.
//! - **Time.** tlog-checkpoint allows opaque, non-empty *extension lines* after the root
//!   (OPTIONAL, "NOT RECOMMENDED" because monitors cannot audit them). We carry the
//!   checkpoint time ([`Checkpoint::timestamp_ms`]) in exactly one extension line,
//!   `time-ms <unix milliseconds>`. It is covered by our note signature like the rest of
//!   the text, but it is a claim of the signer, not something a Merkle proof can check,
//!   and witness cosignatures of the `cosignature/v1` kind do not sign extension lines.
//!   Any RFC 6962 / tlog-checkpoint client can still read the first three lines and ignore
//!   the fourth. Our parsing is strict: the `time-ms` line must be there, and any other or
//!   further extension line is refused.
//!
//! # Signed note
//!
//! ```text
//! <body as above>
//! \n
//! — <key name> <base64(4-byte big-endian key ID || signature)>\n      (one or more)
//! ```
//!
//! `—` is U+2014 EM DASH. The signature is over the body bytes exactly (including its final
//! newline, excluding the blank line). The key name SHOULD be the origin; it must be
//! non-empty without Unicode spaces or `+`.
//!
//! # Signature types and key IDs
//!
//! `SPKI` is the DER SubjectPublicKeyInfo of the signer's public key (the certificate's).
//!
//! | key | type bytes | key ID | signature bytes |
//! |---|---|---|---|
//! | ECDSA P-256 | `0x02` | `SHA-256(SPKI)[:4]` (as transparency-dev/witness) | ASN.1 DER `ECDSA-Sig-Value`, ECDSA with SHA-256 over the body |
//! | RSA ≥ 2048 | `0xff` `"mezhved/rsa-pkcs1-sha256"` | `SHA-256(name ‖ 0x0A ‖ type bytes ‖ SPKI)[:4]` | RSASSA-PKCS1-v1_5 with SHA-256 over the body |
//! | GOST R 34.10-2012 256 | `0xff` `"mezhved/gost2012-256"` | as for RSA | GOST R 34.10-2012 with GOST R 34.11-2012-256 over the body, the bytes `openssl dgst -engine gost -md_gost12_256 -sign` writes |
//! | GOST R 34.10-2012 512 | `0xff` `"mezhved/gost2012-512"` | as for RSA | likewise with `-md_gost12_512` |
//!
//! A verifier key is published as the text [`NoteVerifier::vkey`]:
//! `<name>+<key ID, 8 lowercase hex digits>+<base64(type bytes ‖ SPKI)>`.
//!
//! # Verification rules ([`open_note`])
//!
//! - The note must be valid UTF-8 (it is a `&str`), at most [`MAX_NOTE_BYTES`] bytes, end in
//!   a newline, and contain no ASCII control character other than newline.
//! - The text is separated from the signatures by the *last* blank line; there must be at
//!   least one and at most [`MAX_SIGNATURES`] signature lines, each well formed (a
//!   malformed line, or the same (name, key ID) twice, makes the whole note malformed).
//! - Signatures whose (name, key ID) pair matches no known key are ignored. A signature
//!   whose pair matches a known key must verify, or the whole note is rejected. If no
//!   signature from a known key verifies, the note is rejected.
//! - Only then is the text parsed as a checkpoint; the caller must still check that its
//!   origin is the log it expects and that it is consistent with checkpoints seen before.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mezhved_dsig::crypto::{self, SignatureAlgorithm, SigningKey};
use mezhved_dsig::{gost, DsigError};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Public};
use openssl::sha::Sha256;
use openssl::x509::X509Ref;

use crate::merkle::Hash;

/// Largest signed note [`open_note`] reads (room for well over 16 signatures of any kind,
/// post-quantum ones included).
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// Most signature lines [`open_note`] reads (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 64;

const EM_DASH_SPACE: &str = "\u{2014} ";
const TIME_PREFIX: &str = "time-ms ";
/// ECDSA P-256 byte length of each of `r` and `s`.
const P256_SCALAR_LEN: i32 = 32;

/// Why a checkpoint or note could not be made, parsed or verified.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The text is not a checkpoint body as specified in the module docs.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    /// The note does not have the signed-note form.
    #[error("malformed signed note: {0}")]
    MalformedNote(String),
    /// A key name that signed-note does not allow (empty, spaces, `+`, control chars).
    #[error(
        "invalid key name {0:?}: it must be non-empty, without spaces, '+' or control characters"
    )]
    InvalidKeyName(String),
    /// The note is longer than [`MAX_NOTE_BYTES`].
    #[error("the signed note is {0} bytes, more than the {MAX_NOTE_BYTES} accepted")]
    TooLarge(usize),
    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("the signed note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A signature by a known key does not verify: the note is rejected.
    #[error("the signature by {name} (key ID {key_id:08x}) does not verify")]
    BadSignature { name: String, key_id: u32 },
    /// No signature in the note is by a known key.
    #[error("the note has no signature by a known key")]
    NoKnownSignature,
    /// A verifier key (vkey text, certificate or public key) that cannot be used.
    #[error("unusable verifier key: {0}")]
    BadKey(String),
    /// Signing failed, or the key is not one we can sign notes with.
    #[error("signing: {0}")]
    Signing(#[from] DsigError),
}

/// A tree head: the log's origin, its size and root, and the time it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `mezhved.example/segment-1`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// [`crate::merkle::root`] of the first `size` leaves.
    pub root: Hash,
    /// When the checkpoint was made, Unix milliseconds, carried in the `time-ms` extension
    /// line (module docs).
    pub timestamp_ms: u64,
}

impl Checkpoint {
    /// The note text (module docs: exact format). Fails if the origin is not allowed.
    pub fn body(&self) -> Result<String, CheckpointError> {
        check_origin(&self.origin)?;
        Ok(format!(
            "{}\n{}\n{}\n{TIME_PREFIX}{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root),
            self.timestamp_ms
        ))
    }

    /// Parses a note text produced by [`Checkpoint::body`]; anything else (a missing
    /// `time-ms` line, extra or unknown extension lines, non-canonical numbers or base64, a root that is not 32
    /// bytes, a missing final newline) is refused.
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let bad = |what: &str| CheckpointError::MalformedCheckpoint(what.to_owned());
        let lines = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text does not end with a newline"))?;
        let mut lines = lines.split('\n');
        let origin = lines.next().unwrap_or_default();
        check_origin(origin)?;
        let size = lines.next().ok_or_else(|| bad("no tree size line"))?;
        let size =
            parse_decimal(size).ok_or_else(|| bad("the tree size is not a canonical decimal"))?;
        let root = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root = parse_root(root)
            .ok_or_else(|| bad("the root hash is not canonical base64 of 32 bytes"))?;
        let time = lines
            .next()
            .ok_or_else(|| bad("no time-ms extension line"))?
            .strip_prefix(TIME_PREFIX)
            .ok_or_else(|| bad("unknown extension line"))?;
        let timestamp_ms =
            parse_decimal(time).ok_or_else(|| bad("the time is not a canonical decimal"))?;
        if lines.next().is_some() {
            return Err(bad("more than one extension line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            timestamp_ms,
        })
    }
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty()
        || origin
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(CheckpointError::MalformedCheckpoint(format!(
            "origin {origin:?} must be non-empty, without spaces, '+' or control characters"
        )));
    }
    Ok(())
}

/// ASCII digits, no sign, no leading zeros (except "0"), fits a u64.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn parse_root(s: &str) -> Option<Hash> {
    let bytes = STANDARD.decode(s).ok()?;
    let root: Hash = bytes.try_into().ok()?;
    // The decoder already insists on canonical padding and zero trailing bits; comparing
    // the re-encoding makes "one text per root" explicit.
    (STANDARD.encode(root) == s).then_some(root)
}

fn check_key_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(CheckpointError::InvalidKeyName(name.to_owned()));
    }
    Ok(())
}

/// The note signature type of a key (module docs: table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoteAlgorithm {
    /// Type `0x02`.
    EcdsaP256Sha256,
    /// Type `0xff "mezhved/rsa-pkcs1-sha256"`.
    RsaPkcs1Sha256,
    /// Type `0xff "mezhved/gost2012-256"`.
    Gost2012_256,
    /// Type `0xff "mezhved/gost2012-512"`.
    Gost2012_512,
}

impl NoteAlgorithm {
    const ALL: [Self; 4] = [
        Self::EcdsaP256Sha256,
        Self::RsaPkcs1Sha256,
        Self::Gost2012_256,
        Self::Gost2012_512,
    ];

    /// The signature type bytes: the type byte, then for `0xff` the identifier.
    pub fn type_bytes(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256Sha256 => b"\x02",
            Self::RsaPkcs1Sha256 => b"\xffmezhved/rsa-pkcs1-sha256",
            Self::Gost2012_256 => b"\xffmezhved/gost2012-256",
            Self::Gost2012_512 => b"\xffmezhved/gost2012-512",
        }
    }

    fn of_dsig(alg: SignatureAlgorithm) -> Self {
        match alg {
            SignatureAlgorithm::EcdsaSha256 => Self::EcdsaP256Sha256,
            SignatureAlgorithm::RsaSha256 => Self::RsaPkcs1Sha256,
            SignatureAlgorithm::Gost2012_256 => Self::Gost2012_256,
            SignatureAlgorithm::Gost2012_512 => Self::Gost2012_512,
        }
    }

    fn dsig(self) -> SignatureAlgorithm {
        match self {
            Self::EcdsaP256Sha256 => SignatureAlgorithm::EcdsaSha256,
            Self::RsaPkcs1Sha256 => SignatureAlgorithm::RsaSha256,
            Self::Gost2012_256 => SignatureAlgorithm::Gost2012_256,
            Self::Gost2012_512 => SignatureAlgorithm::Gost2012_512,
        }
    }

    fn is_gost(self) -> bool {
        matches!(self, Self::Gost2012_256 | Self::Gost2012_512)
    }

    /// The key ID of `name`'s key with DER SubjectPublicKeyInfo `spki`.
    pub fn key_id(self, name: &str, spki: &[u8]) -> u32 {
        let mut h = Sha256::new();
        if self != Self::EcdsaP256Sha256 {
            h.update(name.as_bytes());
            h.update(b"\n");
            h.update(self.type_bytes());
        }
        h.update(spki);
        let d = h.finish();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }
}

/// Signs `cp` as a signed note with one signature line by `key` under `key_name` (which
/// should be the origin). Returns the whole note.
pub fn sign_checkpoint(
    cp: &Checkpoint,
    key_name: &str,
    key: &SigningKey,
) -> Result<String, CheckpointError> {
    sign_note(&cp.body()?, key_name, key)
}

/// Signs an arbitrary note `text` (non-empty, ending in a newline, no control characters
/// but newlines, no blank last line) and returns the signed note.
pub fn sign_note(text: &str, key_name: &str, key: &SigningKey) -> Result<String, CheckpointError> {
    check_key_name(key_name)?;
    if !text.ends_with('\n') || text.ends_with("\n\n") || text == "\n" {
        return Err(CheckpointError::MalformedNote(
            "the text must end with exactly one newline".to_owned(),
        ));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(CheckpointError::MalformedNote(
            "the text contains a control character".to_owned(),
        ));
    }
    let alg = NoteAlgorithm::of_dsig(key.algorithm());
    let public = key.certificate().public_key().map_err(DsigError::from)?;
    let spki = public.public_key_to_der().map_err(DsigError::from)?;
    let key_id = alg.key_id(key_name, &spki);
    let value = key.sign(text.as_bytes())?;
    let value = match alg {
        NoteAlgorithm::EcdsaP256Sha256 => ecdsa_raw_to_der(&value)?,
        _ => value,
    };
    let mut blob = key_id.to_be_bytes().to_vec();
    blob.extend_from_slice(&value);
    Ok(format!(
        "{text}\n{EM_DASH_SPACE}{key_name} {}\n",
        STANDARD.encode(blob)
    ))
}

/// XMLDSig `r || s` (what [`SigningKey::sign`] returns for ECDSA) → DER.
fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, DsigError> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(s)?)?;
    Ok(sig.to_der()?)
}

/// DER → `r || s`, refusing anything but the canonical DER encoding.
fn ecdsa_der_to_raw(der: &[u8]) -> Option<Vec<u8>> {
    let sig = EcdsaSig::from_der(der).ok()?;
    if sig.to_der().ok()? != der {
        return None;
    }
    let mut raw = sig.r().to_vec_padded(P256_SCALAR_LEN).ok()?;
    raw.extend_from_slice(&sig.s().to_vec_padded(P256_SCALAR_LEN).ok()?);
    Some(raw)
}

/// A known note key: its name, key ID, public key and signature type.
#[derive(Clone)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    algorithm: NoteAlgorithm,
    spki: Vec<u8>,
    key: PKey<Public>,
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteVerifier")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl NoteVerifier {
    /// The verifier for `name`'s key in `certificate` (ECDSA P-256, RSA ≥ 2048 or GOST).
    pub fn from_certificate(name: &str, certificate: &X509Ref) -> Result<Self, CheckpointError> {
        // GOST public keys decode only with the engine loaded; without it RSA and ECDSA
        // still work and a GOST key fails below.
        let _ = gost::ensure_loaded();
        let key = certificate
            .public_key()
            .map_err(|e| CheckpointError::BadKey(format!("certificate public key: {e}")))?;
        Self::from_public_key(name, &key)
    }

    /// The verifier for `name`'s key `key`.
    pub fn from_public_key<T: HasPublic>(
        name: &str,
        key: &PKeyRef<T>,
    ) -> Result<Self, CheckpointError> {
        check_key_name(name)?;
        let bad = |e: &dyn fmt::Display| CheckpointError::BadKey(e.to_string());
        let algorithm =
            NoteAlgorithm::of_dsig(SignatureAlgorithm::for_key(key).map_err(|e| bad(&e))?);
        let spki = key.public_key_to_der().map_err(|e| bad(&e))?;
        let key = PKey::public_key_from_der(&spki).map_err(|e| bad(&e))?;
        Ok(Self {
            key_id: algorithm.key_id(name, &spki),
            name: name.to_owned(),
            algorithm,
            spki,
            key,
        })
    }

    /// The verifier a [`NoteVerifier::vkey`] text describes; the key ID in the text must be
    /// the one the key and name give.
    pub fn from_vkey(vkey: &str) -> Result<Self, CheckpointError> {
        let bad = |what: &str| CheckpointError::BadKey(format!("vkey: {what}"));
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key ID>+<key>"));
        };
        if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("the key ID is not 8 lowercase hex digits"));
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| bad("the key ID is not hex"))?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| bad("the key is not base64"))?;
        let (algorithm, spki) = NoteAlgorithm::ALL
            .iter()
            .find_map(|a| key.strip_prefix(a.type_bytes()).map(|spki| (*a, spki)))
            .ok_or_else(|| bad("unknown signature type"))?;
        if algorithm.is_gost() {
            gost::ensure_loaded().map_err(|e| bad(&e.to_string()))?;
        }
        let public = PKey::public_key_from_der(spki).map_err(|e| bad(&e.to_string()))?;
        let verifier = Self::from_public_key(name, &public)?;
        if verifier.algorithm != algorithm {
            return Err(bad("the signature type does not fit the key"));
        }
        if verifier.spki != spki {
            return Err(bad("the public key is not in canonical DER"));
        }
        if verifier.key_id != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(verifier)
    }

    /// `<name>+<key ID hex>+<base64(type bytes ‖ SPKI)>` (module docs).
    pub fn vkey(&self) -> String {
        let mut key = self.algorithm.type_bytes().to_vec();
        key.extend_from_slice(&self.spki);
        format!("{}+{:08x}+{}", self.name, self.key_id, STANDARD.encode(key))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature type.
    pub fn algorithm(&self) -> NoteAlgorithm {
        self.algorithm
    }

    /// Opens `note` with this key alone ([`open_note`]) and parses its text as a
    /// checkpoint. The caller must still check the origin.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        verify_checkpoint(note, std::slice::from_ref(self))
    }

    fn verify_signature(&self, text: &str, value: &[u8]) -> bool {
        let raw;
        let value = if self.algorithm == NoteAlgorithm::EcdsaP256Sha256 {
            match ecdsa_der_to_raw(value) {
                Some(r) => {
                    raw = r;
                    raw.as_slice()
                }
                None => return false,
            }
        } else {
            value
        };
        crypto::verify(self.algorithm.dsig(), &self.key, text.as_bytes(), value).is_ok()
    }
}

/// A note whose signatures [`open_note`] has checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote<'a> {
    /// The note text (with its final newline).
    pub text: &'a str,
    /// Indices into the `verifiers` given to [`open_note`] of the keys whose signature
    /// verified, in signature-line order.
    pub verified_by: Vec<usize>,
}

/// Checks `note`'s signatures against `verifiers` (module docs: rules) and returns its text.
pub fn open_note<'a>(
    note: &'a str,
    verifiers: &[NoteVerifier],
) -> Result<OpenedNote<'a>, CheckpointError> {
    let malformed = |what: &str| CheckpointError::MalformedNote(what.to_owned());
    if note.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::TooLarge(note.len()));
    }
    if note.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(malformed("the note contains a control character"));
    }
    if !note.ends_with('\n') {
        return Err(malformed("the note does not end with a newline"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
    let signatures = signatures
        .strip_suffix('\n')
        .ok_or_else(|| malformed("no signatures"))?;

    let mut seen: Vec<(&str, u32)> = Vec::new();
    let mut verified_by = Vec::new();
    for (n, line) in signatures.split('\n').enumerate() {
        if n >= MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures);
        }
        let rest = line.strip_prefix(EM_DASH_SPACE).ok_or_else(|| {
            malformed("a signature line does not start with an em dash and a space")
        })?;
        let (name, blob) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("a signature line has no signature"))?;
        check_key_name(name).map_err(|_| malformed("a signature line has an invalid key name"))?;
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| malformed("a signature is not canonical base64"))?;
        if blob.len() < 5 {
            return Err(malformed(
                "a signature is shorter than a key ID and one byte",
            ));
        }
        let (id, value) = blob.split_at(4);
        let key_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        if seen.contains(&(name, key_id)) {
            return Err(malformed("two signatures by the same key"));
        }
        seen.push((name, key_id));
        let Some(i) = verifiers
            .iter()
            .position(|v| v.name == name && v.key_id == key_id)
        else {
            continue; // Unknown key: ignored, as the spec requires.
        };
        if !verifiers[i].verify_signature(text, value) {
            return Err(CheckpointError::BadSignature {
                name: name.to_owned(),
                key_id,
            });
        }
        verified_by.push(i);
    }
    if verified_by.is_empty() {
        return Err(CheckpointError::NoKnownSignature);
    }
    Ok(OpenedNote { text, verified_by })
}

/// [`open_note`] with `verifiers` (e.g. the current and the previous key of a log), then
/// [`Checkpoint::parse_body`] of the text. The caller must still check the origin.
pub fn verify_checkpoint(
    note: &str,
    verifiers: &[NoteVerifier],
) -> Result<Checkpoint, CheckpointError> {
    let opened = open_note(note, verifiers)?;
    Checkpoint::parse_body(opened.text)
}
