//! Digests and signature values for XMLDSig: RSA-SHA256, ECDSA-SHA256 (P-256) and
//! GOST R 34.10-2012 with GOST R 34.11-2012 (256 and 512 bit), over OpenSSL.
//!
//! Invariants:
//! - [`verify`] returns `Ok(())` only when OpenSSL has verified the signature; any malformed,
//!   truncated or over-long value is [`DsigError::BadSignature`], never a panic.
//! - The key is checked against the algorithm *before* any cryptography runs: a URI never
//!   makes us use a key for an algorithm it was not made for (RSA under 2048 bits and EC
//!   curves other than P-256 are refused as [`DsigError::UnsupportedAlgorithm`]).
//! - SignatureValue encodings are XMLDSig's: RSA PKCS#1 v1.5 as is; ECDSA as `r || s`, each
//!   left-padded to 32 bytes (RFC 4050 / RFC 6931), converted to and from OpenSSL's DER
//!   here and nowhere else; GOST exactly the bytes the `gost` engine produces, which are
//!   the bytes `openssl dgst -engine gost -md_gost12_256 -sign` writes.
//! - GOST certificates and keys must be parsed after the `gost` engine is loaded (OpenSSL
//!   decodes a public key when it parses the certificate and caches a failure), so every
//!   entry point that parses keys loads the engine first when it is installed.

use std::fmt;
use std::path::Path;

use openssl::asn1::Asn1Object;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, Id, PKey, PKeyRef, Private};
use openssl::sign::{Signer, Verifier};
use openssl::x509::X509;

use crate::{gost, DsigError};

const URI_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const URI_GOST_DIGEST_256: &str = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-256";
const URI_GOST_DIGEST_512: &str = "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-512";
const URI_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const URI_ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
const URI_GOST_SIG_256: &str =
    "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256";
const URI_GOST_SIG_512: &str =
    "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-512";

/// OIDs of the GOST R 34.10-2012 public key algorithms; OpenSSL knows their NIDs but the
/// `openssl` crate has no constants for them.
const OID_GOST_2012_256: &str = "1.2.643.7.1.1.1.1";
const OID_GOST_2012_512: &str = "1.2.643.7.1.1.1.2";

/// Smallest RSA modulus we sign or verify with.
const MIN_RSA_BITS: u32 = 2048;
/// Byte length of each of ECDSA P-256's `r` and `s` in an XMLDSig SignatureValue.
const P256_SCALAR_LEN: usize = 32;

/// A digest algorithm of a `ds:Reference`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Sha256,
    Gost2012_256,
    Gost2012_512,
}

impl DigestAlgorithm {
    /// The XMLDSig `DigestMethod/@Algorithm` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Sha256 => URI_SHA256,
            Self::Gost2012_256 => URI_GOST_DIGEST_256,
            Self::Gost2012_512 => URI_GOST_DIGEST_512,
        }
    }

    /// The algorithm a `DigestMethod/@Algorithm` URI names; anything we do not implement is
    /// [`DsigError::UnsupportedAlgorithm`] (SHA-1 included, deliberately).
    pub fn from_uri(uri: &str) -> Result<Self, DsigError> {
        match uri {
            URI_SHA256 => Ok(Self::Sha256),
            URI_GOST_DIGEST_256 => Ok(Self::Gost2012_256),
            URI_GOST_DIGEST_512 => Ok(Self::Gost2012_512),
            other => Err(DsigError::UnsupportedAlgorithm(other.to_owned())),
        }
    }

    /// The OpenSSL digest, loading the `gost` engine for the GOST ones.
    pub fn message_digest(self) -> Result<MessageDigest, DsigError> {
        match self {
            Self::Sha256 => Ok(MessageDigest::sha256()),
            Self::Gost2012_256 => gost_digest("md_gost12_256"),
            Self::Gost2012_512 => gost_digest("md_gost12_512"),
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Result<Vec<u8>, DsigError> {
        Ok(openssl::hash::hash(self.message_digest()?, data)?.to_vec())
    }
}

fn gost_digest(name: &str) -> Result<MessageDigest, DsigError> {
    gost::ensure_loaded()?;
    MessageDigest::from_name(name)
        .ok_or_else(|| DsigError::Engine(format!("the gost engine does not provide {name}")))
}

/// A signature algorithm of `ds:SignedInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    RsaSha256,
    EcdsaSha256,
    Gost2012_256,
    Gost2012_512,
}

impl SignatureAlgorithm {
    /// The XMLDSig `SignatureMethod/@Algorithm` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::RsaSha256 => URI_RSA_SHA256,
            Self::EcdsaSha256 => URI_ECDSA_SHA256,
            Self::Gost2012_256 => URI_GOST_SIG_256,
            Self::Gost2012_512 => URI_GOST_SIG_512,
        }
    }

    /// The algorithm a `SignatureMethod/@Algorithm` URI names. HMAC (which would let anyone
    /// holding the "key" forge), RSA-SHA1 and everything else unknown are refused.
    pub fn from_uri(uri: &str) -> Result<Self, DsigError> {
        match uri {
            URI_RSA_SHA256 => Ok(Self::RsaSha256),
            URI_ECDSA_SHA256 => Ok(Self::EcdsaSha256),
            URI_GOST_SIG_256 => Ok(Self::Gost2012_256),
            URI_GOST_SIG_512 => Ok(Self::Gost2012_512),
            other => Err(DsigError::UnsupportedAlgorithm(other.to_owned())),
        }
    }

    /// The digest this signature algorithm hashes with, which is also the natural
    /// `DigestMethod` for References signed with such a key.
    pub fn digest(self) -> DigestAlgorithm {
        match self {
            Self::RsaSha256 | Self::EcdsaSha256 => DigestAlgorithm::Sha256,
            Self::Gost2012_256 => DigestAlgorithm::Gost2012_256,
            Self::Gost2012_512 => DigestAlgorithm::Gost2012_512,
        }
    }

    /// The algorithm to sign with `key`: RSA (at least 2048 bits), EC on P-256, or GOST
    /// R 34.10-2012 256/512.
    pub fn for_key<T: HasPublic>(key: &PKeyRef<T>) -> Result<Self, DsigError> {
        match KeyKind::of(key)? {
            KeyKind::Rsa { bits } if bits >= MIN_RSA_BITS => Ok(Self::RsaSha256),
            KeyKind::EcP256 => Ok(Self::EcdsaSha256),
            KeyKind::Gost256 => Ok(Self::Gost2012_256),
            KeyKind::Gost512 => Ok(Self::Gost2012_512),
            other => Err(DsigError::UnsupportedAlgorithm(format!(
                "no signature algorithm for {other}"
            ))),
        }
    }

    /// The exact SignatureValue length for `key`. Checking it up front means a truncated or
    /// padded value is refused before OpenSSL sees it.
    fn signature_len<T: HasPublic>(self, key: &PKeyRef<T>) -> usize {
        match self {
            Self::RsaSha256 => key.size(),
            Self::EcdsaSha256 => 2 * P256_SCALAR_LEN,
            // GOST R 34.10-2012: two scalars of the key's size (32 or 64 bytes each).
            Self::Gost2012_256 => 64,
            Self::Gost2012_512 => 128,
        }
    }

    /// Refuses `key` unless it is the kind this algorithm is defined for.
    fn check_key<T: HasPublic>(self, key: &PKeyRef<T>) -> Result<(), DsigError> {
        let kind = KeyKind::of(key)?;
        let fits = match (self, &kind) {
            (Self::RsaSha256, KeyKind::Rsa { bits }) => *bits >= MIN_RSA_BITS,
            (Self::EcdsaSha256, KeyKind::EcP256)
            | (Self::Gost2012_256, KeyKind::Gost256)
            | (Self::Gost2012_512, KeyKind::Gost512) => true,
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(DsigError::UnsupportedAlgorithm(format!(
                "{} cannot be used with {kind}",
                self.uri()
            )))
        }
    }
}

/// What a key is, as far as algorithm selection cares.
#[derive(Debug)]
enum KeyKind {
    Rsa { bits: u32 },
    EcP256,
    EcOther(String),
    Gost256,
    Gost512,
    Other(i32),
}

impl KeyKind {
    fn of<T: HasPublic>(key: &PKeyRef<T>) -> Result<Self, DsigError> {
        let id = key.id();
        if id == Id::RSA {
            return Ok(Self::Rsa { bits: key.bits() });
        }
        if id == Id::EC {
            let ec = key.ec_key()?;
            return Ok(match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => Self::EcP256,
                Some(nid) => Self::EcOther(nid.short_name().unwrap_or("unknown").to_owned()),
                None => Self::EcOther("explicit parameters".to_owned()),
            });
        }
        let raw = id.as_raw();
        if raw == gost_key_nid(OID_GOST_2012_256)? {
            return Ok(Self::Gost256);
        }
        if raw == gost_key_nid(OID_GOST_2012_512)? {
            return Ok(Self::Gost512);
        }
        Ok(Self::Other(raw))
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "a {bits}-bit RSA key"),
            Self::EcP256 => f.write_str("an EC P-256 key"),
            Self::EcOther(curve) => write!(f, "an EC key on curve {curve} (only P-256 is allowed)"),
            Self::Gost256 => f.write_str("a GOST R 34.10-2012 256-bit key"),
            Self::Gost512 => f.write_str("a GOST R 34.10-2012 512-bit key"),
            Self::Other(nid) => {
                let name = Nid::from_raw(*nid).short_name().unwrap_or("unknown");
                write!(f, "a key of type {name} (NID {nid})")
            }
        }
    }
}

fn gost_key_nid(oid: &str) -> Result<i32, DsigError> {
    Ok(Asn1Object::from_str(oid)?.nid().as_raw())
}

/// Signs `data` and returns the XMLDSig SignatureValue bytes (module docs: encodings).
pub fn sign(
    alg: SignatureAlgorithm,
    key: &PKeyRef<Private>,
    data: &[u8],
) -> Result<Vec<u8>, DsigError> {
    alg.check_key(key)?;
    let md = alg.digest().message_digest()?;
    let mut signer = Signer::new(md, key)?;
    let signature = signer.sign_oneshot_to_vec(data)?;
    match alg {
        SignatureAlgorithm::EcdsaSha256 => ecdsa_der_to_raw(&signature),
        _ => Ok(signature),
    }
}

/// Verifies an XMLDSig SignatureValue over `data`. `Err(BadSignature)` on any mismatch or
/// malformed value; `Err(UnsupportedAlgorithm)` if `key` is not a key for `alg`.
pub fn verify<T: HasPublic>(
    alg: SignatureAlgorithm,
    key: &PKeyRef<T>,
    data: &[u8],
    signature: &[u8],
) -> Result<(), DsigError> {
    alg.check_key(key)?;
    if signature.len() != alg.signature_len(key) {
        return Err(DsigError::BadSignature);
    }
    let encoded;
    let signature = match alg {
        SignatureAlgorithm::EcdsaSha256 => {
            encoded = ecdsa_raw_to_der(signature)?;
            encoded.as_slice()
        }
        _ => signature,
    };
    let md = alg.digest().message_digest()?;
    let mut verifier = Verifier::new(md, key)?;
    // OpenSSL reports some malformed values (e.g. an RSA value >= the modulus) as errors
    // rather than `false`; to the caller both mean the same: the value does not verify.
    match verifier.verify_oneshot(signature, data) {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(DsigError::BadSignature),
    }
}

/// OpenSSL's DER `ECDSA-Sig-Value` → XMLDSig `r || s`.
fn ecdsa_der_to_raw(der: &[u8]) -> Result<Vec<u8>, DsigError> {
    let sig = EcdsaSig::from_der(der)?;
    // `to_vec_padded` fails if a value is longer than the pad; r and s are below the
    // group order, which is below 2^256 for P-256, so that would be an OpenSSL bug.
    let mut raw = sig.r().to_vec_padded(P256_SCALAR_LEN as i32)?;
    raw.extend_from_slice(&sig.s().to_vec_padded(P256_SCALAR_LEN as i32)?);
    Ok(raw)
}

/// XMLDSig `r || s` (exactly 64 bytes) → DER, for OpenSSL. Leading zero bytes are allowed
/// in either half (they are how a short `r` or `s` is padded).
fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, DsigError> {
    if raw.len() != 2 * P256_SCALAR_LEN {
        return Err(DsigError::BadSignature);
    }
    let (r, s) = raw.split_at(P256_SCALAR_LEN);
    let to_bn = |bytes: &[u8]| BigNum::from_slice(bytes).map_err(|_| DsigError::BadSignature);
    let sig = EcdsaSig::from_private_components(to_bn(r)?, to_bn(s)?)
        .map_err(|_| DsigError::BadSignature)?;
    sig.to_der().map_err(|_| DsigError::BadSignature)
}

/// A private key together with its certificate (and any chain certificates that go with
/// it), checked to belong together.
pub struct SigningKey {
    key: PKey<Private>,
    certificate: X509,
    chain: Vec<X509>,
    algorithm: SignatureAlgorithm,
}

impl SigningKey {
    /// `key_pem`: an unencrypted private key (PKCS#8 or the traditional RSA/EC forms).
    /// `cert_pem`: the key's certificate, optionally followed by chain certificates.
    /// Fails with [`DsigError::Key`] if either does not parse or they do not match.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Self, DsigError> {
        // GOST keys and certificates parse only once the engine is loaded; when it is
        // missing, RSA and ECDSA still work and a GOST failure names the cause.
        let engine = gost::ensure_loaded();
        let hint = |e: &dyn fmt::Display| match &engine {
            Ok(()) => e.to_string(),
            Err(engine) => format!("{e} (note: {engine})"),
        };
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| DsigError::Key(format!("private key cannot be parsed: {}", hint(&e))))?;
        let mut certs = X509::stack_from_pem(cert_pem)
            .map_err(|e| DsigError::Key(format!("certificate cannot be parsed: {}", hint(&e))))?
            .into_iter();
        let certificate = certs
            .next()
            .ok_or_else(|| DsigError::Key("no certificate in the certificate PEM".to_owned()))?;
        let cert_key = certificate.public_key().map_err(|e| {
            DsigError::Key(format!(
                "certificate public key cannot be read: {}",
                hint(&e)
            ))
        })?;
        if !key.public_eq(&cert_key) {
            return Err(DsigError::Key(
                "the private key does not match the certificate's public key".to_owned(),
            ));
        }
        let algorithm = SignatureAlgorithm::for_key(&key)
            .map_err(|e| DsigError::Key(format!("key cannot be used for signing: {e}")))?;
        Ok(Self {
            key,
            certificate,
            chain: certs.collect(),
            algorithm,
        })
    }

    /// [`SigningKey::from_pem`] on the contents of two files; errors name the file.
    pub fn from_pem_files(key: &Path, cert: &Path) -> Result<Self, DsigError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| DsigError::Key(format!("cannot read {}: {e}", path.display())))
        };
        Self::from_pem(&read(key)?, &read(cert)?)
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The signer's certificate (what goes into `KeyInfo/X509Data/X509Certificate`).
    pub fn certificate(&self) -> &X509 {
        &self.certificate
    }

    /// Chain certificates that followed the signer's certificate in its PEM, in order.
    pub fn chain(&self) -> &[X509] {
        &self.chain
    }

    /// Signs `data`, returning the XMLDSig SignatureValue bytes.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DsigError> {
        sign(self.algorithm, &self.key, data)
    }
}

impl fmt::Debug for SigningKey {
    // Never prints the key: debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("subject", &self.certificate.subject_name())
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::rsa::Rsa;

    macro_rules! pki {
        ($path:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../keys/test-pki/",
                $path
            ))
        };
    }

    fn key(alg: &str) -> SigningKey {
        let (k, c): (&[u8], &[u8]) = match alg {
            "rsa" => (pki!("rsa/gateway.key.pem"), pki!("rsa/gateway.cert.pem")),
            "ecdsa" => (
                pki!("ecdsa/gateway.key.pem"),
                pki!("ecdsa/gateway.cert.pem"),
            ),
            "gost" => (pki!("gost/gateway.key.pem"), pki!("gost/gateway.cert.pem")),
            "gost512" => (
                pki!("gost/consumer-is-512.key.pem"),
                pki!("gost/consumer-is-512.cert.pem"),
            ),
            _ => unreachable!(),
        };
        SigningKey::from_pem(k, c).unwrap()
    }

    const ALL: [(&str, SignatureAlgorithm); 4] = [
        ("rsa", SignatureAlgorithm::RsaSha256),
        ("ecdsa", SignatureAlgorithm::EcdsaSha256),
        ("gost", SignatureAlgorithm::Gost2012_256),
        ("gost512", SignatureAlgorithm::Gost2012_512),
    ];

    #[test]
    fn uris_round_trip() {
        for d in [
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Gost2012_256,
            DigestAlgorithm::Gost2012_512,
        ] {
            assert_eq!(DigestAlgorithm::from_uri(d.uri()).unwrap(), d);
        }
        for (_, s) in ALL {
            assert_eq!(SignatureAlgorithm::from_uri(s.uri()).unwrap(), s);
        }
    }

    #[test]
    fn unknown_and_weak_uris_are_refused() {
        for uri in [
            "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
            "",
            "RSA-SHA256",
        ] {
            assert!(matches!(
                SignatureAlgorithm::from_uri(uri),
                Err(DsigError::UnsupportedAlgorithm(u)) if u == uri
            ));
        }
        for uri in ["http://www.w3.org/2000/09/xmldsig#sha1", "urn:x"] {
            assert!(matches!(
                DigestAlgorithm::from_uri(uri),
                Err(DsigError::UnsupportedAlgorithm(_))
            ));
        }
    }

    #[test]
    fn digests_match_known_vectors() {
        // GOST R 34.11-2012 example M1, in OpenSSL's (little-endian) byte order.
        let m1 = b"012345678901234567890123456789012345678901234567890123456789012";
        assert_eq!(
            hex::encode(DigestAlgorithm::Gost2012_256.digest(m1).unwrap()),
            "9d151eefd8590b89daa6ba6cb74af9275dd051026bb149a452fd84e5e57b5500"
        );
        assert_eq!(
            hex::encode(DigestAlgorithm::Gost2012_512.digest(m1).unwrap()),
            "1b54d01a4af5b9d5cc3d86d68d285462b19abc2475222f35c085122be4ba1ffa\
             00ad30f8767b3a82384c6574f024c311e2a481332b08ef7f41797891c1646f48"
        );
        assert_eq!(
            hex::encode(DigestAlgorithm::Sha256.digest(b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn every_algorithm_round_trips() {
        for (name, alg) in ALL {
            let k = key(name);
            assert_eq!(k.algorithm(), alg, "{name}");
            let public = k.certificate().public_key().unwrap();
            let sig = k.sign(b"payload").unwrap();
            assert_eq!(sig.len(), alg.signature_len(&public), "{name}");
            verify(alg, &public, b"payload", &sig).unwrap();
            assert!(matches!(
                verify(alg, &public, b"payloaD", &sig),
                Err(DsigError::BadSignature)
            ));
        }
    }

    #[test]
    fn truncated_extended_and_flipped_values_are_bad_signatures() {
        for (name, alg) in ALL {
            let k = key(name);
            let public = k.certificate().public_key().unwrap();
            let sig = k.sign(b"data").unwrap();
            let mut longer = sig.clone();
            longer.push(0);
            let mut flipped = sig.clone();
            flipped[sig.len() / 2] ^= 0x01;
            for bad in [
                &sig[..sig.len() - 1],
                &sig[1..],
                &[][..],
                &longer[..],
                &flipped[..],
                &vec![0u8; sig.len()][..],
                &vec![0xffu8; sig.len()][..],
            ] {
                assert!(
                    matches!(
                        verify(alg, &public, b"data", bad),
                        Err(DsigError::BadSignature)
                    ),
                    "{name}: {}",
                    hex::encode(bad)
                );
            }
        }
    }

    #[test]
    fn key_and_algorithm_must_match() {
        let rsa = key("rsa");
        let rsa_pub = rsa.certificate().public_key().unwrap();
        let sig = rsa.sign(b"d").unwrap();
        for alg in [
            SignatureAlgorithm::EcdsaSha256,
            SignatureAlgorithm::Gost2012_256,
            SignatureAlgorithm::Gost2012_512,
        ] {
            assert!(matches!(
                verify(alg, &rsa_pub, b"d", &sig),
                Err(DsigError::UnsupportedAlgorithm(_))
            ));
        }
        let g256 = key("gost").certificate().public_key().unwrap();
        assert!(matches!(
            verify(SignatureAlgorithm::Gost2012_512, &g256, b"d", &[0; 128]),
            Err(DsigError::UnsupportedAlgorithm(_))
        ));
        let ec = key("ecdsa");
        assert!(matches!(
            sign(SignatureAlgorithm::RsaSha256, &ec.key, b"d"),
            Err(DsigError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn weak_or_foreign_keys_have_no_algorithm() {
        let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        assert!(matches!(
            SignatureAlgorithm::for_key(&small),
            Err(DsigError::UnsupportedAlgorithm(_))
        ));
        let sig = sign(SignatureAlgorithm::RsaSha256, &small, b"d");
        assert!(matches!(sig, Err(DsigError::UnsupportedAlgorithm(_))));

        let p384 = EcGroup::from_curve_name(Nid::SECP384R1).unwrap();
        let p384 = PKey::from_ec_key(EcKey::generate(&p384).unwrap()).unwrap();
        assert!(matches!(
            SignatureAlgorithm::for_key(&p384),
            Err(DsigError::UnsupportedAlgorithm(m)) if m.contains("P-256")
        ));
        let ed = PKey::generate_ed25519().unwrap();
        assert!(SignatureAlgorithm::for_key(&ed).is_err());
    }

    #[test]
    fn ecdsa_raw_conversion_pads_and_strips_leading_zeros() {
        // r = 1 (31 leading zero bytes), s with its top bit set (DER needs a 0x00 prefix).
        let mut raw = vec![0u8; 64];
        raw[31] = 1;
        raw[32] = 0x80;
        raw[63] = 0x7f;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        let parsed = EcdsaSig::from_der(&der).unwrap();
        assert_eq!(parsed.r().to_vec(), vec![1]);
        assert_eq!(parsed.s().num_bytes(), 32);
        assert_eq!(ecdsa_der_to_raw(&der).unwrap(), raw);

        // Both halves zero: converts, but can never verify.
        let zero = vec![0u8; 64];
        assert_eq!(
            ecdsa_der_to_raw(&ecdsa_raw_to_der(&zero).unwrap()).unwrap(),
            zero
        );
        let public = key("ecdsa").certificate().public_key().unwrap();
        assert!(matches!(
            verify(SignatureAlgorithm::EcdsaSha256, &public, b"d", &zero),
            Err(DsigError::BadSignature)
        ));

        for len in [0, 1, 63, 65, 128] {
            assert!(matches!(
                ecdsa_raw_to_der(&vec![1u8; len]),
                Err(DsigError::BadSignature)
            ));
        }
    }

    #[test]
    fn ecdsa_signatures_are_fixed_width_even_with_short_r_or_s() {
        // r and s each start with a zero byte in about 1 of 256 signatures; sign until both
        // cases have been seen and check they are still 64 bytes and verify. Missing either
        // in 4000 tries has a probability of about 2e-7.
        let k = key("ecdsa");
        let public = k.certificate().public_key().unwrap();
        let (mut short_r, mut short_s) = (false, false);
        for i in 0..4000u32 {
            let data = i.to_be_bytes();
            let sig = k.sign(&data).unwrap();
            assert_eq!(sig.len(), 64);
            short_r |= sig[0] == 0;
            short_s |= sig[32] == 0;
            if sig[0] == 0 || sig[32] == 0 {
                verify(SignatureAlgorithm::EcdsaSha256, &public, &data, &sig).unwrap();
            }
            if short_r && short_s {
                break;
            }
        }
        assert!(short_r && short_s, "no short r/s seen in 4000 signatures");
    }

    #[test]
    fn mismatched_key_and_certificate_are_refused() {
        let err = SigningKey::from_pem(
            pki!("rsa/gateway.key.pem"),
            pki!("rsa/consumer-is.cert.pem"),
        );
        assert!(matches!(err, Err(DsigError::Key(m)) if m.contains("does not match")));
        let err = SigningKey::from_pem(b"garbage", pki!("rsa/gateway.cert.pem"));
        assert!(matches!(err, Err(DsigError::Key(_))));
        let err = SigningKey::from_pem(pki!("rsa/gateway.key.pem"), b"");
        assert!(matches!(err, Err(DsigError::Key(_))));
    }

    #[test]
    fn chain_certificates_are_kept_and_debug_hides_the_key() {
        let mut pem = pki!("gost/gateway.cert.pem").to_vec();
        pem.extend_from_slice(pki!("gost/intermediate-ca.cert.pem"));
        let k = SigningKey::from_pem(pki!("gost/gateway.key.pem"), &pem).unwrap();
        assert_eq!(k.chain().len(), 1);
        let dbg = format!("{k:?}");
        assert!(
            dbg.contains("Gost2012_256") && dbg.contains("gateway"),
            "{dbg}"
        );
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
    }

    #[test]
    fn from_pem_files_names_the_missing_file() {
        let err = SigningKey::from_pem_files(
            Path::new("/nonexistent/k.pem"),
            Path::new("/nonexistent/c.pem"),
        );
        assert!(matches!(err, Err(DsigError::Key(m)) if m.contains("/nonexistent/k.pem")));
    }
}
