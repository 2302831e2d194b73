//! keys/gen.sh still makes a working PKI: run it into a fresh directory and check that what
//! it makes behaves like the committed copy (good, expired, revoked, rogue, bad key usage).

use mezhved_dsig::crypto::SigningKey;
use mezhved_dsig::trust::TrustStore;
use mezhved_dsig::DsigError;
use std::path::PathBuf;
use std::process::Command;
use std::time::SystemTime;

#[test]
fn gen_sh_makes_a_pki_that_verifies_as_documented() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join(format!("mezhved-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new("bash")
        .arg(root.join("keys/gen.sh"))
        .arg(&out)
        .env_remove("OPENSSL_CONF")
        .output()
        .expect("runs gen.sh");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(out.join("DO-NOT-USE-IN-PRODUCTION.txt").exists());

    let trust = TrustStore::from_dir(&out.join("trust")).expect("trust store");
    // Freshly made certificates are checked at the real time of the test.
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now();
    let cert = |alg: &str, name: &str| {
        let dir = out.join(alg);
        SigningKey::from_pem_files(
            &dir.join(format!("{name}.key.pem")),
            &dir.join(format!("{name}.cert.pem")),
        )
        .unwrap_or_else(|e| panic!("{alg}/{name}: {e}"))
        .certificate()
        .clone()
    };
    for alg in ["rsa", "ecdsa", "gost"] {
        for name in [
            "gateway",
            "consumer-is",
            "provider-is",
            "second-consumer-is",
        ] {
            trust
                .verify(&cert(alg, name), &[], now)
                .unwrap_or_else(|e| panic!("{alg}/{name}: {e}"));
        }
        assert!(matches!(
            trust.verify(&cert(alg, "expired"), &[], now),
            Err(DsigError::CertificateExpired(_))
        ));
        assert!(matches!(
            trust.verify(&cert(alg, "revoked"), &[], now),
            Err(DsigError::CertificateRevoked)
        ));
        assert!(matches!(
            trust.verify(&cert(alg, "bad-keyusage"), &[], now),
            Err(DsigError::KeyUsage(_))
        ));
    }
    trust
        .verify(&cert("gost", "consumer-is-512"), &[], now)
        .expect("GOST 512");
    assert!(matches!(
        trust.verify(&cert("rogue", "rogue-is"), &[], now),
        Err(DsigError::Untrusted(_))
    ));
    std::fs::remove_dir_all(&out).ok();
}
