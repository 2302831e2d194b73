//! Interoperability of `crypto` with the openssl CLI: our signatures verify with
//! `openssl dgst -verify`, the CLI's verify with ours, and our digests equal the CLI's.
//! GOST goes through `-engine gost` on the command line (never OPENSSL_CONF).

#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use mezhved_dsig::crypto::{self, DigestAlgorithm, SignatureAlgorithm, SigningKey};
use mezhved_dsig::{gost, DsigError};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;

fn pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keys/test-pki")
}

/// One signer of the test PKI and how the CLI names its digest.
struct Case {
    dir: &'static str,
    name: &'static str,
    alg: SignatureAlgorithm,
    md_flag: &'static str,
}

const CASES: [Case; 4] = [
    Case {
        dir: "rsa",
        name: "gateway",
        alg: SignatureAlgorithm::RsaSha256,
        md_flag: "-sha256",
    },
    Case {
        dir: "ecdsa",
        name: "provider-is",
        alg: SignatureAlgorithm::EcdsaSha256,
        md_flag: "-sha256",
    },
    Case {
        dir: "gost",
        name: "consumer-is",
        alg: SignatureAlgorithm::Gost2012_256,
        md_flag: "-md_gost12_256",
    },
    Case {
        dir: "gost",
        name: "consumer-is-512",
        alg: SignatureAlgorithm::Gost2012_512,
        md_flag: "-md_gost12_512",
    },
];

impl Case {
    fn key_path(&self) -> PathBuf {
        pki().join(self.dir).join(format!("{}.key.pem", self.name))
    }

    fn signing_key(&self) -> SigningKey {
        let cert = pki().join(self.dir).join(format!("{}.cert.pem", self.name));
        SigningKey::from_pem_files(&self.key_path(), &cert).unwrap()
    }

    fn is_gost(&self) -> bool {
        matches!(
            self.alg,
            SignatureAlgorithm::Gost2012_256 | SignatureAlgorithm::Gost2012_512
        )
    }

    /// `openssl dgst [-engine gost] <md> <args...>`
    fn dgst<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("openssl");
        cmd.arg("dgst");
        if self.is_gost() {
            cmd.args(["-engine", "gost"]);
        }
        cmd.arg(self.md_flag).args(args);
        // The CLI must find the engine through -engine alone, like in production scripts.
        cmd.env_remove("OPENSSL_CONF");
        cmd.output().expect("the openssl CLI must be installed")
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mezhved-crypto-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Messages of several shapes: empty, short, binary, multi-block, non-ASCII XML.
fn messages() -> Vec<Vec<u8>> {
    vec![
        Vec::new(),
        b"abc".to_vec(),
        (0..=255u8).cycle().take(1000).collect(),
        "<ns1:SenderProvidedRequestData xmlns:ns1=\"urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.3\" Id=\"SIGNED_BY_CONSUMER\"><ns1:MessageID>Проверка</ns1:MessageID></ns1:SenderProvidedRequestData>"
            .as_bytes()
            .to_vec(),
    ]
}

fn raw_to_der(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(32);
    EcdsaSig::from_private_components(
        BigNum::from_slice(r).unwrap(),
        BigNum::from_slice(s).unwrap(),
    )
    .unwrap()
    .to_der()
    .unwrap()
}

fn der_to_raw(der: &[u8]) -> Vec<u8> {
    let sig = EcdsaSig::from_der(der).unwrap();
    let mut raw = sig.r().to_vec_padded(32).unwrap();
    raw.extend(sig.s().to_vec_padded(32).unwrap());
    raw
}

#[test]
fn our_signatures_verify_with_the_openssl_cli() {
    gost::ensure_loaded().unwrap();
    for case in &CASES {
        let key = case.signing_key();
        assert_eq!(key.algorithm(), case.alg);
        let tmp = TempDir::new(case.name);
        let public = key
            .certificate()
            .public_key()
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let pub_path = tmp.write("pub.pem", &public);
        for (i, msg) in messages().iter().enumerate() {
            let ours = key.sign(msg).unwrap();
            // The CLI takes ECDSA signatures as DER; XMLDSig carries r || s.
            let cli_sig = if case.alg == SignatureAlgorithm::EcdsaSha256 {
                assert_eq!(ours.len(), 64);
                raw_to_der(&ours)
            } else {
                ours
            };
            let data = tmp.write(&format!("data{i}"), msg);
            let sig = tmp.write(&format!("sig{i}"), &cli_sig);
            let out = case.dgst([
                OsStr::new("-verify"),
                pub_path.as_os_str(),
                OsStr::new("-signature"),
                sig.as_os_str(),
                data.as_os_str(),
            ]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("Verified OK"),
                "{} message {i}: {stdout} {}",
                case.name,
                String::from_utf8_lossy(&out.stderr)
            );

            // The same signature over other data must fail in the CLI too.
            let other = tmp.write(&format!("other{i}"), b"not the signed data");
            let out = case.dgst([
                OsStr::new("-verify"),
                pub_path.as_os_str(),
                OsStr::new("-signature"),
                sig.as_os_str(),
                other.as_os_str(),
            ]);
            assert!(!out.status.success(), "{} message {i}", case.name);
        }
    }
}

#[test]
fn openssl_cli_signatures_verify_with_ours() {
    gost::ensure_loaded().unwrap();
    for case in &CASES {
        let key = case.signing_key();
        let public = key.certificate().public_key().unwrap();
        let tmp = TempDir::new(case.name);
        for (i, msg) in messages().iter().enumerate() {
            let data = tmp.write(&format!("data{i}"), msg);
            let sig_path = tmp.0.join(format!("sig{i}"));
            let out = case.dgst([
                OsStr::new("-sign"),
                case.key_path().as_os_str(),
                OsStr::new("-out"),
                sig_path.as_os_str(),
                data.as_os_str(),
            ]);
            assert!(
                out.status.success(),
                "{}: {}",
                case.name,
                String::from_utf8_lossy(&out.stderr)
            );
            let cli_sig = fs::read(&sig_path).unwrap();
            let ours = if case.alg == SignatureAlgorithm::EcdsaSha256 {
                der_to_raw(&cli_sig)
            } else {
                cli_sig
            };
            crypto::verify(case.alg, &public, msg, &ours)
                .unwrap_or_else(|e| panic!("{} message {i}: {e}", case.name));
            let mut tampered = msg.clone();
            tampered.push(b'!');
            assert!(
                matches!(
                    crypto::verify(case.alg, &public, &tampered, &ours),
                    Err(DsigError::BadSignature)
                ),
                "{} message {i}",
                case.name
            );
        }
    }
}

#[test]
fn our_digests_equal_the_openssl_cli() {
    gost::ensure_loaded().unwrap();
    let tmp = TempDir::new("digest");
    for case in &CASES {
        let digest = case.alg.digest();
        for (i, msg) in messages().iter().enumerate() {
            let data = tmp.write(&format!("data{i}"), msg);
            let out = case.dgst([OsStr::new("-r"), data.as_os_str()]);
            assert!(out.status.success(), "{:?}", digest);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let cli_hex = stdout.split_whitespace().next().unwrap().to_owned();
            assert_eq!(
                hex::encode(digest.digest(msg).unwrap()),
                cli_hex,
                "{digest:?} message {i}"
            );
        }
    }
    assert_eq!(DigestAlgorithm::Gost2012_512.digest(b"").unwrap().len(), 64);
}
