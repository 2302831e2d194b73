//! Checkpoints in signed notes, with the committed test PKI (keys/test-pki).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mezhved_dsig::crypto::SigningKey;
use mezhved_journal::checkpoint::{
    open_note, sign_checkpoint, sign_note, verify_checkpoint, Checkpoint, CheckpointError,
    NoteAlgorithm, NoteVerifier, MAX_NOTE_BYTES, MAX_SIGNATURES,
};
use mezhved_journal::merkle::{empty_root, leaf_hash};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "mezhved.example/segment-1";

fn pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keys/test-pki")
}

fn gost_available() -> bool {
    mezhved_dsig::gost::ensure_loaded().is_ok()
}

fn key(dir: &str, name: &str) -> SigningKey {
    let d = pki().join(dir);
    SigningKey::from_pem_files(
        &d.join(format!("{name}.key.pem")),
        &d.join(format!("{name}.cert.pem")),
    )
    .unwrap()
}

fn verifier(name: &str, k: &SigningKey) -> NoteVerifier {
    NoteVerifier::from_certificate(name, k.certificate()).unwrap()
}

fn cp() -> Checkpoint {
    Checkpoint {
        origin: ORIGIN.to_owned(),
        size: 1234,
        root: leaf_hash(b"root"),
        timestamp_ms: 1_760_000_000_123,
    }
}

/// (directory, key file stem, expected algorithm) for every key kind usable here.
fn kinds() -> Vec<(&'static str, &'static str, NoteAlgorithm)> {
    let mut v = vec![
        ("ecdsa", "gateway", NoteAlgorithm::EcdsaP256Sha256),
        ("rsa", "gateway", NoteAlgorithm::RsaPkcs1Sha256),
    ];
    if gost_available() {
        v.push(("gost", "gateway", NoteAlgorithm::Gost2012_256));
        v.push(("gost", "consumer-is-512", NoteAlgorithm::Gost2012_512));
    } else {
        eprintln!("GOST engine unavailable: GOST note signatures not tested");
    }
    v
}

fn signature_line(note: &str) -> &str {
    note.lines().last().unwrap()
}

#[test]
fn body_format_is_exact() {
    let c = cp();
    let root_b64 = STANDARD.encode(c.root);
    assert_eq!(
        c.body().unwrap(),
        format!("{ORIGIN}\n1234\n{root_b64}\ntime-ms 1760000000123\n")
    );
    let plain = Checkpoint {
        timestamp_ms: 0,
        size: 0,
        root: empty_root(),
        ..c.clone()
    };
    assert_eq!(
        plain.body().unwrap(),
        format!("{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime-ms 0\n")
    );
    assert_eq!(Checkpoint::parse_body(&c.body().unwrap()).unwrap(), c);
    assert_eq!(
        Checkpoint::parse_body(&plain.body().unwrap()).unwrap(),
        plain
    );
}

#[test]
fn malformed_bodies_are_refused() {
    let r = STANDARD.encode([7u8; 32]);
    let short = STANDARD.encode([7u8; 31]);
    let noncanonical = {
        // Same bytes, but a non-zero trailing bit in the last character ("…c=" → "…d=").
        let mut s = r.clone().into_bytes();
        let i = s.len() - 2;
        assert_eq!(s[i], b'c');
        s[i] = b'd';
        String::from_utf8(s).unwrap()
    };
    let t = "time-ms 5\n";
    assert!(Checkpoint::parse_body(&format!("{ORIGIN}\n1\n{r}\n{t}")).is_ok());
    for body in [
        format!("{ORIGIN}\n1\n{r}\ntime-ms 5"), // no final newline
        format!("{ORIGIN}\n1\n{r}\n"),          // no time-ms line
        format!("{ORIGIN}\n1\n{t}"),            // no root
        format!("{ORIGIN}\n{t}"),               // no size
        format!("\n1\n{r}\n{t}"),               // empty origin
        format!("a b\n1\n{r}\n{t}"),            // space in origin
        format!("a+b\n1\n{r}\n{t}"),            // plus in origin
        format!("{ORIGIN}\n01\n{r}\n{t}"),      // leading zero
        format!("{ORIGIN}\n+1\n{r}\n{t}"),      // sign
        format!("{ORIGIN}\n-1\n{r}\n{t}"),      // negative
        format!("{ORIGIN}\n18446744073709551616\n{r}\n{t}"), // > u64
        format!("{ORIGIN}\n1\n{short}\n{t}"),   // 31-byte root
        format!("{ORIGIN}\n1\n{noncanonical}\n{t}"), // non-canonical base64
        format!("{ORIGIN}\n1\n{}\n{t}", r.trim_end_matches('=')), // unpadded
        format!("{ORIGIN}\n1\n{r}\nother\n"),   // unknown extension
        format!("{ORIGIN}\n1\n{r}\ntime 5\n"),  // seconds, not time-ms
        format!("{ORIGIN}\n1\n{r}\ntime-ms 05\n"), // leading zero in time
        format!("{ORIGIN}\n1\n{r}\ntime-ms \n"), // no time
        format!("{ORIGIN}\n1\n{r}\n{t}{t}"),    // two extensions
        format!("{ORIGIN}\n1\n{r}\n{t}other\n"), // extra extension
        format!("{ORIGIN}\n1\n{r}\n{t}\n"),     // empty extension line
    ] {
        assert!(
            matches!(
                Checkpoint::parse_body(&body),
                Err(CheckpointError::MalformedCheckpoint(_))
            ),
            "{body:?}"
        );
    }
    let bad_origin = Checkpoint {
        origin: "x\ny".to_owned(),
        ..cp()
    };
    assert!(bad_origin.body().is_err());
}

#[test]
fn round_trip_every_key_kind() {
    for (dir, stem, alg) in kinds() {
        let k = key(dir, stem);
        let v = verifier(ORIGIN, &k);
        assert_eq!(v.algorithm(), alg, "{dir}/{stem}");
        let note = sign_checkpoint(&cp(), ORIGIN, &k).unwrap();
        assert!(note.starts_with(&cp().body().unwrap()));
        assert!(signature_line(&note).starts_with(&format!("\u{2014} {ORIGIN} ")));
        assert_eq!(v.verify(&note).unwrap(), cp(), "{dir}/{stem}");

        // The vkey text describes the same verifier.
        let again = NoteVerifier::from_vkey(&v.vkey()).unwrap();
        assert_eq!(again.vkey(), v.vkey());
        assert_eq!(again.verify(&note).unwrap(), cp());
    }
}

#[test]
fn key_ids_follow_the_spec() {
    for (dir, stem, alg) in kinds() {
        let k = key(dir, stem);
        let v = verifier(ORIGIN, &k);
        let spki = k
            .certificate()
            .public_key()
            .unwrap()
            .public_key_to_der()
            .unwrap();
        let digest: [u8; 32] = match alg {
            NoteAlgorithm::EcdsaP256Sha256 => Sha256::digest(&spki).into(),
            _ => {
                let mut h = Sha256::new();
                h.update(ORIGIN.as_bytes());
                h.update(b"\n\xff");
                h.update(match alg {
                    NoteAlgorithm::RsaPkcs1Sha256 => &b"mezhved/rsa-pkcs1-sha256"[..],
                    NoteAlgorithm::Gost2012_256 => b"mezhved/gost2012-256",
                    _ => b"mezhved/gost2012-512",
                });
                h.update(&spki);
                h.finalize().into()
            }
        };
        let want = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        assert_eq!(v.key_id(), want, "{dir}/{stem}");
        assert!(v.vkey().starts_with(&format!("{ORIGIN}+{want:08x}+")));

        let note = sign_checkpoint(&cp(), ORIGIN, &k).unwrap();
        let blob = STANDARD
            .decode(signature_line(&note).rsplit(' ').next().unwrap())
            .unwrap();
        assert_eq!(blob[..4], want.to_be_bytes());
        if alg == NoteAlgorithm::EcdsaP256Sha256 {
            assert_eq!(blob[4], 0x30, "ECDSA signatures are DER SEQUENCEs");
        }
    }
}

#[test]
fn tampering_is_rejected() {
    for (dir, stem, _) in kinds() {
        let k = key(dir, stem);
        let v = verifier(ORIGIN, &k);
        let note = sign_checkpoint(&cp(), ORIGIN, &k).unwrap();
        let body = cp().body().unwrap();
        let sig = &note[body.len()..];

        let mut other = cp();
        other.size += 1;
        let mut other_root = cp();
        other_root.root[5] ^= 1;
        let mut other_time = cp();
        other_time.timestamp_ms += 1;
        let mut other_origin = cp();
        other_origin.origin = "mezhved.example/segment-2".to_owned();
        for forged in [other, other_root, other_time, other_origin] {
            let n = format!("{}{sig}", forged.body().unwrap());
            assert!(
                matches!(v.verify(&n), Err(CheckpointError::BadSignature { .. })),
                "{dir}/{stem}: {forged:?}"
            );
        }

        // A flipped bit in the signature value (after the key ID).
        let line = signature_line(&note);
        let b64 = line.rsplit(' ').next().unwrap();
        let mut blob = STANDARD.decode(b64).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let n = note.replace(b64, &STANDARD.encode(&blob));
        assert!(matches!(
            v.verify(&n),
            Err(CheckpointError::BadSignature { .. })
        ));
        // Truncated value.
        blob[last] ^= 1;
        blob.truncate(last);
        let n = note.replace(b64, &STANDARD.encode(&blob));
        assert!(matches!(
            v.verify(&n),
            Err(CheckpointError::BadSignature { .. })
        ));
    }
}

#[test]
fn unknown_keys_are_ignored_and_do_not_suffice() {
    let gateway = key("ecdsa", "gateway");
    let consumer = key("ecdsa", "consumer-is");
    let rsa = key("rsa", "gateway");
    let v = verifier(ORIGIN, &gateway);

    // Signed only by a key the verifier does not know.
    let alone = sign_checkpoint(&cp(), ORIGIN, &consumer).unwrap();
    assert!(matches!(
        v.verify(&alone),
        Err(CheckpointError::NoKnownSignature)
    ));

    // Cosigned: extra lines from unknown keys are ignored, wherever they stand.
    let mine = signature_line(&sign_checkpoint(&cp(), ORIGIN, &gateway).unwrap()).to_owned();
    let theirs = signature_line(&alone).to_owned();
    let witness =
        signature_line(&sign_checkpoint(&cp(), "witness.example/w1", &rsa).unwrap()).to_owned();
    let body = cp().body().unwrap();
    for lines in [
        [&mine, &theirs, &witness],
        [&theirs, &mine, &witness],
        [&witness, &theirs, &mine],
    ] {
        let note = format!("{body}\n{}\n{}\n{}\n", lines[0], lines[1], lines[2]);
        assert_eq!(v.verify(&note).unwrap(), cp());
        let all = [
            verifier(ORIGIN, &gateway),
            verifier("witness.example/w1", &rsa),
        ];
        let opened = open_note(&note, &all).unwrap();
        assert_eq!(opened.text, body);
        let mut by = opened.verified_by.clone();
        by.sort_unstable();
        assert_eq!(by, vec![0, 1]);
    }

    // A known name with an unknown key ID, or a known key ID under another name: ignored.
    let renamed = mine.replacen(ORIGIN, "other.example/log", 1);
    let note = format!("{body}\n{renamed}\n");
    assert!(matches!(
        v.verify(&note),
        Err(CheckpointError::NoKnownSignature)
    ));
    let same_name_other_key = theirs.clone();
    assert!(same_name_other_key.contains(ORIGIN));
    let note = format!("{body}\n{same_name_other_key}\n{mine}\n");
    assert_eq!(v.verify(&note).unwrap(), cp());

    // A known key whose signature fails sinks the note even if another one verifies.
    let mut blob = STANDARD.decode(mine.rsplit(' ').next().unwrap()).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0x40;
    let broken = format!("\u{2014} {ORIGIN} {}", STANDARD.encode(&blob));
    let note = format!("{body}\n{broken}\n{witness}\n");
    let both = [
        verifier(ORIGIN, &gateway),
        verifier("witness.example/w1", &rsa),
    ];
    assert!(matches!(
        verify_checkpoint(&note, &both),
        Err(CheckpointError::BadSignature { .. })
    ));
}

#[test]
fn malformed_notes_are_refused() {
    let k = key("ecdsa", "gateway");
    let v = verifier(ORIGIN, &k);
    let note = sign_checkpoint(&cp(), ORIGIN, &k).unwrap();
    let body = cp().body().unwrap();
    let line = signature_line(&note).to_owned();
    let b64 = line.rsplit(' ').next().unwrap().to_owned();
    for bad in [
        note.replace('\n', "\r\n"),                    // CR
        note.replacen("1234", "12\t34", 1),            // tab
        note.trim_end_matches('\n').to_owned(),        // no final newline
        note.replacen("\n\n", "\n", 1),                // no blank line
        format!("{body}\n"),                           // no signatures
        format!("{body}\n\n"),                         // empty signature section
        note.replacen("\u{2014} ", "- ", 1),           // not an em dash
        note.replacen("\u{2014} ", "\u{2014}", 1),     // no space after it
        note.replacen(&format!(" {b64}"), "", 1),      // no signature
        note.replacen(&b64, &format!("{b64} x"), 1),   // trailing field
        note.replacen(&b64, &b64[..b64.len() - 1], 1), // bad base64
        note.replacen(&b64, "AAAA", 1),                // shorter than ID + 1 byte
        format!("{note}{line}\n"),                     // the same key twice
        format!("{body}\n\u{2014}  {b64}\n"),          // empty key name
    ] {
        let got = v.verify(&bad);
        assert!(
            matches!(got, Err(CheckpointError::MalformedNote(_))),
            "{bad:?}: {got:?}"
        );
    }
    // The last blank line separates: a blank line inside the text makes the text a
    // different (and here malformed) checkpoint, not a different split.
    let inner_blank = format!("{ORIGIN}\n\n{}", &note[ORIGIN.len() + 1..]);
    assert!(v.verify(&inner_blank).is_err());
}

#[test]
fn signature_count_and_size_limits() {
    let k = key("ecdsa", "gateway");
    let v = verifier(ORIGIN, &k);
    let note = sign_checkpoint(&cp(), ORIGIN, &k).unwrap();
    let unknown: Vec<String> = (0..MAX_SIGNATURES)
        .map(|i| {
            let mut blob = (i as u32).to_be_bytes().to_vec();
            blob.extend_from_slice(&[0xab; 64]);
            format!("\u{2014} witness{i}.example {}\n", STANDARD.encode(blob))
        })
        .collect();
    // At least 16 signatures are accepted (here MAX_SIGNATURES in all).
    let many = format!("{note}{}", unknown[..MAX_SIGNATURES - 1].concat());
    assert_eq!(v.verify(&many).unwrap(), cp());
    let too_many = format!("{note}{}", unknown.concat());
    assert!(matches!(
        v.verify(&too_many),
        Err(CheckpointError::TooManySignatures)
    ));
    let huge = format!("{}{note}", "x".repeat(MAX_NOTE_BYTES));
    assert!(matches!(v.verify(&huge), Err(CheckpointError::TooLarge(_))));
}

#[test]
fn invalid_key_names_and_texts_are_refused_when_signing() {
    let k = key("ecdsa", "gateway");
    for name in ["", "a b", "a+b", "a\u{00a0}b", "a\nb"] {
        assert!(
            matches!(
                sign_checkpoint(&cp(), name, &k),
                Err(CheckpointError::InvalidKeyName(_))
            ),
            "{name:?}"
        );
        assert!(NoteVerifier::from_certificate(name, k.certificate()).is_err());
    }
    for text in ["", "no newline", "a\n\n", "\n", "tab\there\n"] {
        assert!(sign_note(text, ORIGIN, &k).is_err(), "{text:?}");
    }
    // Arbitrary notes (not checkpoints) open, but do not parse as checkpoints.
    let note = sign_note("hello\nworld\n", ORIGIN, &k).unwrap();
    let v = verifier(ORIGIN, &k);
    assert_eq!(
        open_note(&note, std::slice::from_ref(&v)).unwrap().text,
        "hello\nworld\n"
    );
    assert!(matches!(
        v.verify(&note),
        Err(CheckpointError::MalformedCheckpoint(_))
    ));
}

#[test]
fn bad_vkeys_are_refused() {
    let k = key("ecdsa", "gateway");
    let v = verifier(ORIGIN, &k);
    let vkey = v.vkey();
    let mut parts = vkey.splitn(3, '+');
    let (_, id, key_b64) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let wrong_id = format!("{:08x}", v.key_id() ^ 1);
    let mut as_rsa = b"\xffmezhved/rsa-pkcs1-sha256".to_vec();
    as_rsa.extend_from_slice(&STANDARD.decode(key_b64).unwrap()[1..]);
    for bad in [
        vkey.replacen(id, &wrong_id, 1),
        vkey.replacen(id, &id.to_uppercase(), 1),
        vkey.replacen(id, &id[..7], 1),
        format!("{ORIGIN}+{id}"),
        format!("{ORIGIN}+{id}+{}", &key_b64[4..]),
        format!("{ORIGIN}+{id}+{}", STANDARD.encode(&as_rsa)),
        format!("{ORIGIN}+{id}+{}", STANDARD.encode(b"\x01abc")),
    ] {
        assert!(NoteVerifier::from_vkey(&bad).is_err(), "{bad}");
    }
    // Type 0x02 key IDs hash the public key alone (as transparency-dev/witness does), so
    // an ECDSA vkey can be renamed; the 0xff types bind the name into the key ID.
    assert!(NoteVerifier::from_vkey(&vkey.replacen(ORIGIN, "other.example", 1)).is_ok());
    let rsa = verifier(ORIGIN, &key("rsa", "gateway")).vkey();
    assert!(NoteVerifier::from_vkey(&rsa).is_ok());
    assert!(NoteVerifier::from_vkey(&rsa.replacen(ORIGIN, "other.example", 1)).is_err());
}

// ---- interoperability: OpenSSL's command line as an independent implementation --------

fn openssl_cli() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mezhved-journal-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap()
}

#[test]
fn openssl_cli_verifies_our_signatures_and_key_ids() {
    if !openssl_cli() {
        eprintln!("openssl binary not found: interop test skipped");
        return;
    }
    for (dir, stem, alg) in [
        ("ecdsa", "gateway", NoteAlgorithm::EcdsaP256Sha256),
        ("rsa", "gateway", NoteAlgorithm::RsaPkcs1Sha256),
    ] {
        let k = key(dir, stem);
        let note = sign_checkpoint(&cp(), ORIGIN, &k).unwrap();
        let body = cp().body().unwrap();
        let blob = STANDARD
            .decode(signature_line(&note).rsplit(' ').next().unwrap())
            .unwrap();

        let d = scratch(dir);
        let (text, sig, public, der) = (
            d.join("text"),
            d.join("sig"),
            d.join("pub.pem"),
            d.join("pub.der"),
        );
        std::fs::write(&text, body.as_bytes()).unwrap();
        std::fs::write(&sig, &blob[4..]).unwrap();
        let cert = pki().join(dir).join(format!("{stem}.cert.pem"));
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        let out = run(&[
            "x509",
            "-in",
            &s(&cert),
            "-pubkey",
            "-noout",
            "-out",
            &s(&public),
        ]);
        assert!(out.status.success(), "{out:?}");
        let out = run(&[
            "pkey",
            "-pubin",
            "-in",
            &s(&public),
            "-outform",
            "DER",
            "-out",
            &s(&der),
        ]);
        assert!(out.status.success(), "{out:?}");

        let out = run(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&public),
            "-signature",
            &s(&sig),
            &s(&text),
        ]);
        assert!(
            out.status.success(),
            "{dir}: openssl dgst -verify refused our signature: {out:?}"
        );
        // And refuses it over another text.
        std::fs::write(&text, body.replace("1234", "1235")).unwrap();
        let out = run(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&public),
            "-signature",
            &s(&sig),
            &s(&text),
        ]);
        assert!(!out.status.success());

        // The key ID from the SPKI bytes OpenSSL's CLI writes.
        let spki = std::fs::read(&der).unwrap();
        let v = verifier(ORIGIN, &k);
        assert_eq!(v.key_id(), alg.key_id(ORIGIN, &spki));
        if alg == NoteAlgorithm::EcdsaP256Sha256 {
            let d: [u8; 32] = Sha256::digest(&spki).into();
            assert_eq!(v.key_id().to_be_bytes(), d[..4]);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
