//! The `mezhved` command as an agency uses it: sign a SMEV call, verify it, see the exit
//! code and the JSON verdict change when the message is tampered with.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mezhved(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mezhved"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn sign_then_verify_a_smev_call_and_catch_tampering() {
    let dir = std::env::temp_dir().join(format!("mezhved-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let pki = root().join("keys/test-pki");
    let input = root().join("gateway/dsig/tests/fixtures/send-request.xml");
    let signed = dir.join("signed.xml");
    let key = pki.join("ecdsa/consumer-is.key.pem");
    let cert = pki.join("ecdsa/consumer-is.cert.pem");
    let out = mezhved(&[
        "dsig",
        "sign",
        "--smev",
        "--key",
        key.to_str().expect("utf-8 path"),
        "--cert",
        cert.to_str().expect("utf-8 path"),
        "-o",
        signed.to_str().expect("utf-8 path"),
        input.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let trust = pki.join("trust");
    let verify = |file: &PathBuf| {
        mezhved(&[
            "dsig",
            "verify",
            "--smev",
            "--trust",
            trust.to_str().expect("utf-8 path"),
            file.to_str().expect("utf-8 path"),
        ])
    };
    let ok = verify(&signed);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let verdict: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(verdict["valid"], true);
    assert!(verdict["signer"]
        .as_str()
        .expect("signer")
        .contains("CN=consumer-is"));

    let tampered = dir.join("tampered.xml");
    let text = std::fs::read_to_string(&signed).expect("read");
    std::fs::write(&tampered, text.replace("Иванов", "Петров")).expect("write");
    let bad = verify(&tampered);
    assert_eq!(bad.status.code(), Some(1));
    let verdict: serde_json::Value = serde_json::from_slice(&bad.stdout).expect("json");
    assert_eq!(verdict["valid"], false);
    assert_eq!(verdict["code"], "SignatureIsInvalid");

    // Usage errors exit 2 and say what is missing.
    let usage = mezhved(&["dsig", "verify", "--trust", "/nonexistent", "x.xml"]);
    assert_eq!(usage.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn c14n_and_smev_transform_print_the_digested_forms() {
    let input = root().join("gateway/xml/tests/c14n-spec/exc-2.2-a.xml");
    let out = mezhved(&[
        "xml",
        "c14n",
        "--path",
        "/{foo:bar}local/{http://example.net}elem2",
        input.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success());
    let expected = std::fs::read(root().join("gateway/xml/tests/c14n-spec/exc-2.2.elem2.exc"))
        .expect("expected");
    assert_eq!(out.stdout, expected);
    let out = mezhved(&["xml", "smev-transform", input.to_str().expect("utf-8 path")]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("<ns1:local xmlns:ns1=\"foo:bar\"><ns2:elem2"));
    let bad = mezhved(&[
        "xml",
        "c14n",
        root().join("keys/README.md").to_str().expect("utf-8 path"),
    ]);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "malformed XML is a document error"
    );
}
