//! TrustStore against the committed test PKI (keys/test-pki, made by keys/gen.sh).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mezhved_dsig::gost;
use mezhved_dsig::trust::{RevocationPolicy, TrustStore};
use mezhved_dsig::DsigError;
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::x509::{X509Crl, X509CrlBuilder, X509Extension, X509RevokedBuilder, X509};

fn pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keys/test-pki")
}

fn store() -> TrustStore {
    TrustStore::from_dir(&pki().join("trust")).unwrap()
}

fn cert(rel: &str) -> X509 {
    // GOST certificates must be parsed after the engine is loaded.
    gost::ensure_loaded().unwrap();
    X509::from_pem(&fs::read(pki().join(rel)).unwrap()).unwrap()
}

fn unix(t: &Asn1TimeRef) -> u64 {
    let d = Asn1Time::from_unix(0).unwrap().diff(t).unwrap();
    u64::try_from(i64::from(d.days) * 86_400 + i64::from(d.secs)).unwrap()
}

/// The real clock: the test PKI is valid from its generation until ~2056.
#[allow(clippy::disallowed_methods)]
fn now() -> SystemTime {
    SystemTime::now()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mezhved-trust-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Copies files from keys/test-pki into this directory (file name kept).
    fn with(self, files: &[&str]) -> Self {
        for f in files {
            let src = pki().join(f);
            let name = f.replace('/', "-");
            fs::copy(src, self.0.join(name)).unwrap();
        }
        self
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const ALGS: [&str; 3] = ["rsa", "ecdsa", "gost"];
const GOOD: [&str; 4] = [
    "gateway",
    "consumer-is",
    "provider-is",
    "second-consumer-is",
];

#[test]
fn good_certificates_of_every_algorithm_verify() {
    let store = store();
    let mut leaves: Vec<String> = ALGS
        .iter()
        .flat_map(|a| GOOD.iter().map(move |n| format!("{a}/{n}.cert.pem")))
        .collect();
    leaves.push("gost/consumer-is-512.cert.pem".to_owned());
    for leaf in leaves {
        let c = cert(&leaf);
        let v = store
            .verify(&c, &[], now())
            .unwrap_or_else(|e| panic!("{leaf}: {e}"));
        let cn = leaf
            .split('/')
            .nth(1)
            .unwrap()
            .trim_end_matches(".cert.pem");
        assert!(v.subject.starts_with(&format!("CN={cn},")), "{}", v.subject);
        assert!(v.issuer.contains("intermediate CA"), "{}", v.issuer);
        let fp = c.digest(MessageDigest::sha256()).unwrap();
        assert_eq!(v.sha256_fingerprint_hex, hex::encode(fp));
        let serial = c.serial_number().to_bn().unwrap().to_hex_str().unwrap();
        assert_eq!(v.serial_hex, serial.to_ascii_lowercase());
        assert!(
            v.not_after.len() == 20 && v.not_after.ends_with('Z'),
            "{}",
            v.not_after
        );
    }
}

#[test]
fn expired_certificates_are_refused() {
    let store = store();
    for alg in ALGS {
        let err = store
            .verify(&cert(&format!("{alg}/expired.cert.pem")), &[], now())
            .unwrap_err();
        assert!(
            matches!(&err, DsigError::CertificateExpired(na) if na == "2021-01-01T00:00:00Z"),
            "{alg}: {err:?}"
        );
        assert_eq!(err.smev_code().unwrap().as_str(), "CertificateIsExpired");
    }
}

#[test]
fn revoked_certificates_are_refused_under_both_policies() {
    for policy in [
        RevocationPolicy::RequireCrl,
        RevocationPolicy::UseCrlIfPresent,
    ] {
        let store = store().with_revocation_policy(policy);
        assert_eq!(store.revocation_policy(), policy);
        for alg in ALGS {
            let err = store
                .verify(&cert(&format!("{alg}/revoked.cert.pem")), &[], now())
                .unwrap_err();
            assert!(
                matches!(err, DsigError::CertificateRevoked),
                "{alg}: {err:?}"
            );
        }
    }
}

#[test]
fn rogue_certificates_are_untrusted() {
    let store = store();
    let root = cert("rogue/root-ca.cert.pem");
    for leaf in ["rogue/rogue-is.cert.pem", "rogue/rogue-gost-is.cert.pem"] {
        let leaf = cert(leaf);
        for chain in [vec![], vec![root.clone()]] {
            let err = store.verify(&leaf, &chain, now()).unwrap_err();
            assert!(matches!(err, DsigError::Untrusted(_)), "{err:?}");
            assert_eq!(err.smev_code().unwrap().as_str(), "CertificateIsNotFound");
        }
    }
    let err = store.verify(&root, &[], now()).unwrap_err();
    assert!(matches!(err, DsigError::Untrusted(_)), "{err:?}");
}

#[test]
fn bad_key_usage_is_refused() {
    let store = store();
    for alg in ALGS {
        let err = store
            .verify(&cert(&format!("{alg}/bad-keyusage.cert.pem")), &[], now())
            .unwrap_err();
        assert!(
            matches!(&err, DsigError::KeyUsage(m) if m.contains("keyEncipherment")),
            "{alg}: {err:?}"
        );
    }
}

#[test]
fn ca_certificates_cannot_be_signers() {
    let store = store();
    for f in ["rsa/intermediate-ca.cert.pem", "gost/root-ca.cert.pem"] {
        let err = store.verify(&cert(f), &[], now()).unwrap_err();
        assert!(matches!(err, DsigError::KeyUsage(_)), "{f}: {err:?}");
    }
}

#[test]
fn validity_is_checked_at_the_injected_time() {
    let store = store();
    for alg in ALGS {
        let c = cert(&format!("{alg}/gateway.cert.pem"));
        let not_before = UNIX_EPOCH + Duration::from_secs(unix(c.not_before()));
        let not_after = UNIX_EPOCH + Duration::from_secs(unix(c.not_after()));

        let err = store
            .verify(&c, &[], not_before - Duration::from_secs(3600))
            .unwrap_err();
        assert!(
            matches!(err, DsigError::CertificateNotYetValid(_)),
            "{alg}: {err:?}"
        );
        let err = store
            .verify(&c, &[], not_after + Duration::from_secs(86_400))
            .unwrap_err();
        assert!(
            matches!(&err, DsigError::CertificateExpired(m) if !m.contains("CA certificate")),
            "{alg}: {err:?}"
        );
        // Just inside the upper end. (Near notBefore nothing passes under RequireCrl: the
        // CRLs were issued a moment after the certificates, so none is in force yet.)
        store
            .verify(&c, &[], not_after - Duration::from_secs(60))
            .unwrap();
    }
}

#[test]
fn intermediates_from_the_sender_are_used_but_never_trusted() {
    // Roots and CRLs only: the path needs the intermediate from the caller.
    let dir = TempDir::new("roots").with(&[
        "rsa/root-ca.cert.pem",
        "rsa/root-ca.crl",
        "rsa/intermediate-ca.crl",
    ]);
    let store = TrustStore::from_dir(&dir.0).unwrap();
    let leaf = cert("rsa/gateway.cert.pem");
    let err = store.verify(&leaf, &[], now()).unwrap_err();
    assert!(matches!(err, DsigError::Untrusted(_)), "{err:?}");
    store
        .verify(&leaf, &[cert("rsa/intermediate-ca.cert.pem")], now())
        .unwrap();
    // The intermediate's CRL is bound to the sender's intermediate when it is used.
    let err = store
        .verify(
            &cert("rsa/revoked.cert.pem"),
            &[cert("rsa/intermediate-ca.cert.pem")],
            now(),
        )
        .unwrap_err();
    assert!(matches!(err, DsigError::CertificateRevoked), "{err:?}");

    // An intermediate in the trust dir is not an anchor by itself.
    let dir = TempDir::new("intermediate").with(&[
        "rsa/root-ca.cert.pem",
        "ecdsa/intermediate-ca.cert.pem",
        "ecdsa/intermediate-ca.crl",
    ]);
    let store = TrustStore::from_dir(&dir.0).unwrap();
    let err = store
        .verify(&cert("ecdsa/gateway.cert.pem"), &[], now())
        .unwrap_err();
    assert!(matches!(err, DsigError::Untrusted(_)), "{err:?}");
}

#[test]
fn missing_crls_matter_only_under_require_crl() {
    let dir = TempDir::new("nocrl").with(&[
        "gost/root-ca.cert.pem",
        "gost/intermediate-ca.cert.pem",
        "gost/root-ca.crl",
    ]);
    let store = TrustStore::from_dir(&dir.0).unwrap();
    let leaf = cert("gost/gateway.cert.pem");
    let err = store.verify(&leaf, &[], now()).unwrap_err();
    assert!(
        matches!(&err, DsigError::Untrusted(m) if m.contains("CRL")),
        "{err:?}"
    );
    let lenient = store.with_revocation_policy(RevocationPolicy::UseCrlIfPresent);
    lenient.verify(&leaf, &[], now()).unwrap();
    // Without the CRL the revoked certificate cannot be known to be revoked.
    lenient
        .verify(&cert("gost/revoked.cert.pem"), &[], now())
        .unwrap();
}

/// A CRL in the rsa intermediate CA's name, built in-process and signed with the key in
/// `key_file` (the CA's own committed key, or another one to forge a CRL).
fn rsa_intermediate_crl_signed_by(
    key_file: &str,
    this_update: &str,
    next_update: &str,
    revoke: Option<&X509>,
    critical_idp: bool,
) -> X509Crl {
    let ca = cert("rsa/intermediate-ca.cert.pem");
    let key = PKey::private_key_from_pem(&fs::read(pki().join(key_file)).unwrap()).unwrap();
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    // authorityKeyIdentifier { [0] keyIdentifier } (the crate's builder insists on one).
    let skid = ca.subject_key_id().unwrap().as_slice();
    let len = u8::try_from(skid.len()).unwrap();
    let mut akid = vec![0x30, len + 2, 0x80, len];
    akid.extend_from_slice(skid);
    b.append_extension(extension("2.5.29.35", false, &akid))
        .unwrap();
    // cRLNumber 1 (also required by the builder).
    b.append_extension(extension("2.5.29.20", false, &[0x02, 0x01, 0x01]))
        .unwrap();
    b.set_last_update(&Asn1Time::from_str(this_update).unwrap())
        .unwrap();
    b.set_next_update(&Asn1Time::from_str(next_update).unwrap())
        .unwrap();
    if let Some(c) = revoke {
        let mut r = X509RevokedBuilder::new().unwrap();
        r.set_serial_number(c.serial_number()).unwrap();
        r.set_revocation_date(&Asn1Time::from_str(this_update).unwrap())
            .unwrap();
        b.add_revoked(r.build()).unwrap();
    }
    if critical_idp {
        // issuingDistributionPoint { onlyContainsUserCerts TRUE }, critical.
        b.append_extension(extension(
            "2.5.29.28",
            true,
            &[0x30, 0x03, 0x81, 0x01, 0xff],
        ))
        .unwrap();
    }
    b.sign(&key, MessageDigest::sha256()).unwrap();
    b.build().unwrap()
}

fn extension(oid: &str, critical: bool, der: &[u8]) -> X509Extension {
    X509Extension::new_from_der(
        &Asn1Object::from_str(oid).unwrap(),
        critical,
        &Asn1OctetString::new_from_bytes(der).unwrap(),
    )
    .unwrap()
}

fn rsa_intermediate_crl(
    this_update: &str,
    next_update: &str,
    revoke: Option<&X509>,
    critical_idp: bool,
) -> X509Crl {
    rsa_intermediate_crl_signed_by(
        "rsa/intermediate-ca.key.pem",
        this_update,
        next_update,
        revoke,
        critical_idp,
    )
}

fn rsa_dir_with_crl(tag: &str, crl: &X509Crl) -> TempDir {
    let dir = TempDir::new(tag).with(&[
        "rsa/root-ca.cert.pem",
        "rsa/intermediate-ca.cert.pem",
        "rsa/root-ca.crl",
    ]);
    fs::write(dir.0.join("inter.crl"), crl.to_pem().unwrap()).unwrap();
    dir
}

#[test]
fn a_stale_crl_fails_require_crl_but_still_revokes_under_use_if_present() {
    let leaf = cert("rsa/gateway.cert.pem");
    let stale = rsa_intermediate_crl("20200101000000Z", "20210101000000Z", Some(&leaf), false);
    let dir = rsa_dir_with_crl("stale", &stale);
    let store = TrustStore::from_dir(&dir.0).unwrap();
    let err = store.verify(&leaf, &[], now()).unwrap_err();
    assert!(
        matches!(&err, DsigError::Untrusted(m) if m.contains("CRL") && m.contains("expired")),
        "{err:?}"
    );
    let lenient = store.with_revocation_policy(RevocationPolicy::UseCrlIfPresent);
    let err = lenient.verify(&leaf, &[], now()).unwrap_err();
    assert!(matches!(err, DsigError::CertificateRevoked), "{err:?}");
    lenient
        .verify(&cert("rsa/consumer-is.cert.pem"), &[], now())
        .unwrap();
}

#[test]
fn the_newest_crl_supersedes_older_ones() {
    let leaf = cert("rsa/gateway.cert.pem");
    // An old, still "current" CRL listing the leaf, and the committed newer one not listing it.
    let old = rsa_intermediate_crl("20200101000000Z", "20600101000000Z", Some(&leaf), false);
    let dir = rsa_dir_with_crl("newest", &old);
    fs::copy(
        pki().join("rsa/intermediate-ca.crl"),
        dir.0.join("current.crl"),
    )
    .unwrap();
    TrustStore::from_dir(&dir.0)
        .unwrap()
        .verify(&leaf, &[], now())
        .unwrap();
}

#[test]
fn crls_we_cannot_apply_correctly_are_refused_at_load() {
    let idp = rsa_intermediate_crl("20200101000000Z", "20600101000000Z", None, true);
    let dir = rsa_dir_with_crl("idp", &idp);
    let err = TrustStore::from_dir(&dir.0).unwrap_err();
    assert!(
        matches!(&err, DsigError::TrustStore(m) if m.contains("inter.crl") && m.contains("2.5.29.28")),
        "{err:?}"
    );

    // A CRL in a stored CA's name that the CA did not sign.
    let forged = rsa_intermediate_crl_signed_by(
        "rogue/root-ca.key.pem",
        "20200101000000Z",
        "20600101000000Z",
        None,
        false,
    );
    let dir = rsa_dir_with_crl("forged", &forged);
    let err = TrustStore::from_dir(&dir.0).unwrap_err();
    assert!(
        matches!(&err, DsigError::TrustStore(m) if m.contains("inter.crl") && m.contains("not signed")),
        "{err:?}"
    );
}

#[test]
fn bad_trust_directories_are_errors_naming_the_file() {
    let err = TrustStore::from_dir(Path::new("/nonexistent/mezhved-trust")).unwrap_err();
    assert!(matches!(err, DsigError::TrustStore(_)), "{err:?}");

    let empty = TempDir::new("empty");
    fs::write(empty.0.join("README.txt"), "ignored").unwrap();
    let err = TrustStore::from_dir(&empty.0).unwrap_err();
    assert!(
        matches!(&err, DsigError::TrustStore(m) if m.contains("no trust anchor")),
        "{err:?}"
    );

    let leaf = TempDir::new("leaf").with(&["rsa/root-ca.cert.pem", "rsa/gateway.cert.pem"]);
    let err = TrustStore::from_dir(&leaf.0).unwrap_err();
    assert!(
        matches!(&err, DsigError::TrustStore(m) if m.contains("rsa-gateway.cert.pem") && m.contains("not a CA")),
        "{err:?}"
    );

    let garbage = TempDir::new("garbage").with(&["rsa/root-ca.cert.pem"]);
    fs::write(garbage.0.join("broken.crt"), b"\x30\x82\xff").unwrap();
    let err = TrustStore::from_dir(&garbage.0).unwrap_err();
    assert!(
        matches!(&err, DsigError::TrustStore(m) if m.contains("broken.crt")),
        "{err:?}"
    );

    let badcrl = TempDir::new("badcrl").with(&["rsa/root-ca.cert.pem"]);
    fs::write(badcrl.0.join("x.crl"), b"-----BEGIN X509 CRL-----\nAAAA\n").unwrap();
    let err = TrustStore::from_dir(&badcrl.0).unwrap_err();
    assert!(
        matches!(&err, DsigError::TrustStore(m) if m.contains("x.crl")),
        "{err:?}"
    );
}

#[test]
fn one_file_may_hold_several_certificates_and_der_is_accepted() {
    let dir = TempDir::new("bundle");
    let mut bundle = Vec::new();
    for f in ["ecdsa/root-ca.cert.pem", "ecdsa/intermediate-ca.cert.pem"] {
        bundle.extend(fs::read(pki().join(f)).unwrap());
    }
    fs::write(dir.0.join("bundle.pem"), bundle).unwrap();
    let der_crl = X509Crl::from_pem(&fs::read(pki().join("ecdsa/root-ca.crl")).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    fs::write(dir.0.join("root.crl"), der_crl).unwrap();
    let mut crls = fs::read(pki().join("ecdsa/intermediate-ca.crl")).unwrap();
    crls.extend(fs::read(pki().join("ecdsa/root-ca.crl")).unwrap());
    fs::write(dir.0.join("both.crl"), crls).unwrap();
    let der_root = cert("rsa/root-ca.cert.pem").to_der().unwrap();
    fs::write(dir.0.join("rsa-root.cer"), der_root).unwrap();

    let store = TrustStore::from_dir(&dir.0).unwrap();
    let dbg = format!("{store:?}");
    assert!(
        dbg.contains("ecdsa intermediate CA") && dbg.contains("rsa root CA"),
        "{dbg}"
    );
    store
        .verify(&cert("ecdsa/provider-is.cert.pem"), &[], now())
        .unwrap();
    let err = store
        .verify(&cert("ecdsa/revoked.cert.pem"), &[], now())
        .unwrap_err();
    assert!(matches!(err, DsigError::CertificateRevoked), "{err:?}");
}

/// The verdict cache never changes an answer: around every time the checks compare with
/// (one second before, at, one second after each notBefore/notAfter of the leaf and its
/// CAs), a store that has cached earlier verdicts answers exactly like a fresh one, in
/// both directions of time.
#[test]
fn cached_verdicts_equal_fresh_ones_at_every_boundary() {
    let outcome = |r: Result<mezhved_dsig::trust::VerifiedCertificate, DsigError>| match r {
        Ok(v) => format!("ok {}", v.subject),
        Err(e) => format!("{e:?}"),
    };
    for alg in ["rsa", "ecdsa", "gost"] {
        let leaf = cert(&format!("{alg}/consumer-is.cert.pem"));
        let mut times = vec![unix_seconds(now())];
        for c in [
            leaf.clone(),
            cert(&format!("{alg}/intermediate-ca.cert.pem")),
            cert(&format!("{alg}/root-ca.cert.pem")),
        ] {
            for t in [unix(c.not_before()), unix(c.not_after())] {
                times.extend([t - 1, t, t + 1]);
            }
        }
        let cached = store();
        let mut sequence = times.clone();
        sequence.extend(times.iter().rev());
        for t in sequence {
            let at = UNIX_EPOCH + Duration::from_secs(t);
            let fresh = outcome(store().verify(&leaf, &[], at));
            let warm = outcome(cached.verify(&leaf, &[], at));
            assert_eq!(warm, fresh, "{alg} at {t}");
        }
        // The cache really answers: the same time twice gives the same verdict.
        let at = now();
        assert_eq!(
            outcome(cached.verify(&leaf, &[], at)),
            outcome(cached.verify(&leaf, &[], at))
        );
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn certificates_parsed_from_der_are_the_same_certificate() {
    let store = store();
    let der = cert("rsa/consumer-is.cert.pem").to_der().expect("der");
    let a = store.certificate_from_der(&der).expect("parses");
    let b = store.certificate_from_der(&der).expect("cached");
    assert_eq!(a.to_der().expect("der"), der);
    assert_eq!(b.to_der().expect("der"), der);
    assert!(matches!(
        store.certificate_from_der(&der[..der.len() - 1]),
        Err(DsigError::BadCertificate(_))
    ));
}
