//! XMLDSig round trips in every supported profile and algorithm, and the certificate
//! failures each mapped to its own error and SMEV fault code.

mod common;

use common::*;
use mezhved_dsig::crypto::{DigestAlgorithm, SignatureAlgorithm};
use mezhved_dsig::error::SmevSignatureCode;
use mezhved_dsig::xmldsig::{self, Expectation, Placement, SignOptions, Transforms};
use mezhved_dsig::DsigError;
use mezhved_xml::{ElementPath, Limits};

#[test]
fn smev_profile_round_trip_for_every_algorithm() {
    for (alg, name, expected) in [
        ("rsa", "consumer-is", SignatureAlgorithm::RsaSha256),
        ("ecdsa", "consumer-is", SignatureAlgorithm::EcdsaSha256),
        ("gost", "consumer-is", SignatureAlgorithm::Gost2012_256),
        ("gost", "consumer-is-512", SignatureAlgorithm::Gost2012_512),
    ] {
        let signed = signed_fixture(alg, name);
        let v = xmldsig::verify(
            &signed,
            &Limits::default(),
            &smev_expectation(),
            &trust(),
            now(),
        )
        .unwrap_or_else(|e| panic!("{alg}/{name}: {e}"));
        assert_eq!(v.signature_algorithm, expected);
        assert_eq!(v.digest_algorithm, expected.digest());
        assert_eq!(v.transforms, Transforms::Smev);
        assert!(v.signer.subject.contains(name), "{}", v.signer.subject);
        // The digested octets are the SMEV-transformed request block and nothing else.
        let digested = String::from_utf8(v.digested).expect("utf-8");
        assert!(
            digested.starts_with("<ns1:SenderProvidedRequestData"),
            "{digested}"
        );
        assert!(
            digested.contains("<ns3:Surname>Иванов</ns3:Surname>"),
            "{digested}"
        );
        assert!(!digested.contains("CallerInformationSystemSignature"));
    }
}

#[test]
fn signing_keeps_every_original_byte_and_only_inserts_the_signature() {
    let original = fixture();
    let signed = signed_fixture("ecdsa", "consumer-is");
    let s = String::from_utf8(signed.clone()).expect("utf-8");
    let start = s.find("<ds:Signature").expect("signature");
    let end = s.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
    let mut rebuilt = s[..start].to_string();
    rebuilt.push_str(&s[end..]);
    // The empty container `<ns:CallerInformationSystemSignature/>` was opened up.
    let expected = String::from_utf8(original).expect("utf-8").replace(
        "<ns:CallerInformationSystemSignature/>",
        "<ns:CallerInformationSystemSignature></ns:CallerInformationSystemSignature>",
    );
    assert_eq!(rebuilt, expected);
}

#[test]
fn plain_exc_c14n_and_enveloped_profiles_round_trip() {
    let key = key("rsa", "consumer-is");
    let detached = xmldsig::sign(
        &fixture(),
        &Limits::default(),
        &key,
        &smev_placement(),
        &SignOptions {
            transforms: Transforms::ExcC14n,
            digest: Some(DigestAlgorithm::Sha256),
        },
    )
    .expect("signs");
    let v = xmldsig::verify(
        &detached,
        &Limits::default(),
        &smev_expectation(),
        &trust(),
        now(),
    )
    .expect("verifies");
    assert_eq!(v.transforms, Transforms::ExcC14n);
    assert!(String::from_utf8(v.digested)
        .expect("utf-8")
        .starts_with("<ns:SenderProvidedRequestData xmlns:ns="));

    for transforms in [Transforms::Enveloped, Transforms::EnvelopedSmev] {
        let whole = xmldsig::sign(
            &fixture(),
            &Limits::default(),
            &key,
            &Placement::Enveloped { id: None },
            &SignOptions {
                transforms,
                digest: None,
            },
        )
        .expect("signs");
        let expect = Expectation {
            signature_parent: ElementPath::parse(&format!("/{{{SOAP}}}Envelope")).expect("path"),
            target: None,
        };
        let v = xmldsig::verify(&whole, &Limits::default(), &expect, &trust(), now())
            .expect("verifies");
        assert_eq!(v.transforms, transforms);

        let by_id = xmldsig::sign(
            &fixture(),
            &Limits::default(),
            &key,
            &Placement::Enveloped {
                id: Some("SIGNED_BY_CONSUMER".into()),
            },
            &SignOptions {
                transforms,
                digest: None,
            },
        )
        .expect("signs");
        let target = request_path().child(Some(NS), "SenderProvidedRequestData");
        let expect = Expectation {
            signature_parent: target.clone(),
            target: Some(target),
        };
        xmldsig::verify(&by_id, &Limits::default(), &expect, &trust(), now()).expect("verifies");
    }
}

#[test]
fn gost_digest_with_rsa_key_is_allowed_when_asked_for() {
    let signed = xmldsig::sign(
        &fixture(),
        &Limits::default(),
        &key("rsa", "consumer-is"),
        &smev_placement(),
        &SignOptions {
            transforms: Transforms::Smev,
            digest: Some(DigestAlgorithm::Gost2012_256),
        },
    )
    .expect("signs");
    let v = xmldsig::verify(
        &signed,
        &Limits::default(),
        &smev_expectation(),
        &trust(),
        now(),
    )
    .expect("verifies");
    assert_eq!(v.digest_algorithm, DigestAlgorithm::Gost2012_256);
}

fn verify_err(signed: &[u8]) -> DsigError {
    xmldsig::verify(
        signed,
        &Limits::default(),
        &smev_expectation(),
        &trust(),
        now(),
    )
    .expect_err("must fail")
}

#[test]
fn certificate_failures_have_distinct_errors_and_smev_codes() {
    for alg in ["rsa", "ecdsa", "gost"] {
        let e = verify_err(&signed_fixture(alg, "expired"));
        assert!(matches!(e, DsigError::CertificateExpired(_)), "{alg}: {e}");
        assert_eq!(e.smev_code(), Some(SmevSignatureCode::CertificateIsExpired));

        let e = verify_err(&signed_fixture(alg, "revoked"));
        assert!(matches!(e, DsigError::CertificateRevoked), "{alg}: {e}");
        assert_eq!(e.smev_code(), Some(SmevSignatureCode::SignatureIsInvalid));

        let e = verify_err(&signed_fixture(alg, "bad-keyusage"));
        assert!(matches!(e, DsigError::KeyUsage(_)), "{alg}: {e}");
    }
    for name in ["rogue-is", "rogue-gost-is"] {
        let e = verify_err(&signed_fixture("rogue", name));
        assert!(matches!(e, DsigError::Untrusted(_)), "{name}: {e}");
        assert_eq!(
            e.smev_code(),
            Some(SmevSignatureCode::CertificateIsNotFound)
        );
    }
}

#[test]
fn validity_is_checked_at_the_injected_time() {
    let signed = signed_fixture("ecdsa", "consumer-is");
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800); // 2000-01-01
    let e = xmldsig::verify(
        &signed,
        &Limits::default(),
        &smev_expectation(),
        &trust(),
        long_ago,
    )
    .expect_err("not yet valid");
    assert!(matches!(e, DsigError::CertificateNotYetValid(_)), "{e}");
    let far_future = std::time::UNIX_EPOCH + std::time::Duration::from_secs(4_102_444_800 * 2);
    let e = xmldsig::verify(
        &signed,
        &Limits::default(),
        &smev_expectation(),
        &trust(),
        far_future,
    )
    .expect_err("expired");
    assert!(matches!(e, DsigError::CertificateExpired(_)), "{e}");
}

#[test]
fn unsigned_message_has_no_signature() {
    let e = verify_err(&fixture());
    assert!(matches!(e, DsigError::NoSignatureFound(_)), "{e}");
    assert_eq!(e.smev_code(), Some(SmevSignatureCode::NoSignatureFound));
}

/// A signer that is not a key in memory (standing in for a token or a CSP) plugs into
/// signing through the `Signer` trait, and verification goes through `dyn Verifier`.
#[test]
fn signing_and_verifying_go_through_the_traits() {
    use mezhved_dsig::crypto::SigningKey;
    use mezhved_dsig::xmldsig::{Signer, TrustedVerifier, Verifier};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Token {
        inner: SigningKey,
        operations: AtomicUsize,
    }
    impl Signer for Token {
        fn algorithm(&self) -> SignatureAlgorithm {
            self.inner.algorithm()
        }
        fn certificate(&self) -> &openssl::x509::X509 {
            self.inner.certificate()
        }
        fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DsigError> {
            self.operations.fetch_add(1, Ordering::SeqCst);
            self.inner.sign(data)
        }
    }

    let token = Token {
        inner: key("gost", "consumer-is"),
        operations: AtomicUsize::new(0),
    };
    let signed = xmldsig::sign(
        &fixture(),
        &Limits::default(),
        &token,
        &smev_placement(),
        &SignOptions::smev(),
    )
    .expect("signs");
    assert_eq!(
        token.operations.load(Ordering::SeqCst),
        1,
        "one private-key operation per signature"
    );
    let verifier: Box<dyn Verifier> = Box::new(TrustedVerifier {
        trust: trust(),
        limits: Limits::default(),
    });
    let v = verifier
        .verify(&signed, &smev_expectation(), now())
        .expect("verifies");
    assert_eq!(v.signature_algorithm, SignatureAlgorithm::Gost2012_256);
    let tampered = String::from_utf8(signed)
        .expect("utf-8")
        .replace("Иванов", "Петров");
    assert!(matches!(
        verifier.verify(tampered.as_bytes(), &smev_expectation(), now()),
        Err(DsigError::DigestMismatch)
    ));
}
