//! Shared helpers of the signature tests: the test PKI made by keys/gen.sh and the
//! SMEV SendRequest fixture with the places its signature must stand.

#![allow(dead_code)]

use mezhved_dsig::crypto::SigningKey;
use mezhved_dsig::trust::TrustStore;
use mezhved_dsig::xmldsig::{self, Expectation, Placement, SignOptions};
use mezhved_xml::{ElementPath, Limits};
use std::path::PathBuf;

pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1";

pub fn pki() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../keys/test-pki")
}

pub fn key(alg: &str, name: &str) -> SigningKey {
    let dir = pki().join(alg);
    SigningKey::from_pem_files(
        &dir.join(format!("{name}.key.pem")),
        &dir.join(format!("{name}.cert.pem")),
    )
    .unwrap_or_else(|e| panic!("{alg}/{name}: {e}"))
}

pub fn trust() -> TrustStore {
    TrustStore::from_dir(&pki().join("trust")).expect("trust store")
}

pub fn fixture() -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/send-request.xml"))
        .expect("fixture")
}

pub fn request_path() -> ElementPath {
    ElementPath::parse(&format!(
        "/{{{SOAP}}}Envelope/{{{SOAP}}}Body/{{{NS}}}SendRequestRequest"
    ))
    .expect("path")
}

pub fn smev_expectation() -> Expectation {
    Expectation {
        signature_parent: request_path().child(Some(NS), "CallerInformationSystemSignature"),
        target: Some(request_path().child(Some(NS), "SenderProvidedRequestData")),
    }
}

pub fn smev_placement() -> Placement {
    Placement::Detached {
        id: "SIGNED_BY_CONSUMER".into(),
        container: request_path().child(Some(NS), "CallerInformationSystemSignature"),
    }
}

/// The fixture signed by `alg`/`name` in the SMEV profile.
pub fn signed_fixture(alg: &str, name: &str) -> Vec<u8> {
    xmldsig::sign(
        &fixture(),
        &Limits::default(),
        &key(alg, name),
        &smev_placement(),
        &SignOptions::smev(),
    )
    .expect("signs")
}

/// The real clock: the test PKI is valid from its generation until ~2056.
#[allow(clippy::disallowed_methods)]
pub fn now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}
