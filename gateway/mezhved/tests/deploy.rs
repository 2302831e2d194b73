//! The files of `deploy/systemd` (docs/deploy.md) are usable as shipped:
//! - `systemd-analyze verify` accepts both units (with the binary path pointed at the one
//!   just built) and has nothing to say about them — no unknown key, no bad value;
//! - the production configuration passes `mezhved check-config` once its placeholders are
//!   filled and its files exist, and as shipped fails naming every placeholder.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mezhved");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_systemd_units_verify_without_a_word() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units = Vec::new();
    for (file, as_name) in [
        ("mezhved.service", "mezhved.service"),
        ("mezhved-adapter@.service", "mezhved-adapter@uszn.service"),
    ] {
        let text =
            std::fs::read_to_string(repo().join("deploy/systemd").join(file)).expect("unit file");
        assert!(text.contains("ExecStart=/usr/bin/mezhved "), "{file}");
        let path = dir.path().join(as_name);
        std::fs::write(&path, text.replace("/usr/bin/mezhved", BIN)).expect("write unit");
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("systemd-analyze (Debian package systemd) runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    // systemd only warns about unknown keys and bad values: any word about our files fails.
    let ours: Vec<&str> = said
        .lines()
        .filter(|l| units.iter().any(|u| l.contains(&*u.to_string_lossy())))
        .collect();
    assert!(ours.is_empty(), "{said}");
}

#[test]
fn the_production_configuration_checks_once_its_placeholders_are_filled() {
    let shipped = repo().join("deploy/systemd/mezhved.toml");
    let check = |config: &Path| {
        let out = Command::new(BIN)
            .args(["check-config", "-c"])
            .arg(config)
            .env_remove("OPENSSL_CONF")
            .output()
            .expect("mezhved check-config");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let text = std::fs::read_to_string(&shipped).expect("config");
    // As shipped, every placeholder is named.
    let (ok, said) = check(&shipped);
    assert!(!ok, "{said}");
    for key in ["operator.token_sha256", "metrics.token_sha256"] {
        assert!(said.contains(key), "{key}: {said}");
    }

    // Filled in on a machine laid out as docs/deploy.md says (here under a temporary root).
    let root = tempfile::tempdir().expect("tempdir");
    let etc = root.path().join("etc/mezhved");
    let var = root.path().join("var/lib/mezhved");
    std::fs::create_dir_all(etc.join("keys")).expect("etc");
    std::fs::create_dir_all(&var).expect("var");
    let pki = repo().join("keys/test-pki");
    for (from, to) in [
        ("ecdsa/gateway.key.pem", "keys/gateway.key.pem"),
        ("ecdsa/gateway.cert.pem", "keys/gateway.cert.pem"),
    ] {
        std::fs::copy(pki.join(from), etc.join(to)).expect("key");
    }
    std::fs::create_dir_all(etc.join("trust")).expect("trust");
    for entry in std::fs::read_dir(pki.join("trust")).expect("trust dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), etc.join("trust").join(entry.file_name())).expect("copy");
    }
    // The sample registry, its certificate paths made absolute.
    let registry = std::fs::read_to_string(repo().join("deploy/sample/registry.toml"))
        .expect("registry")
        .replace("../../keys/test-pki", &pki.to_string_lossy());
    std::fs::write(etc.join("registry.toml"), registry).expect("registry");
    let hash = "a".repeat(64);
    let filled: String = text
        .lines()
        .map(|l| {
            if l.starts_with("token_sha256 = \"REPLACE") {
                format!("token_sha256 = \"{hash}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/etc/mezhved", &etc.to_string_lossy())
        .replace("/var/lib/mezhved", &var.to_string_lossy());
    let config = etc.join("mezhved.toml");
    std::fs::write(&config, filled).expect("write config");
    let (ok, said) = check(&config);
    assert!(ok, "{said}");
}
