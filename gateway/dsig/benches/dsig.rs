//! Throughput of the signature hot path, and the baselines it is judged against
//! (docs/performance.md; `tests/bench/run.sh` runs this bench and the libxmlsec1 script
//! together and prints the comparison table).
//!
//! Fixtures: SMEV SendRequest envelopes whose business content (applicant records with
//! Cyrillic text, attributes and a second namespace declared on every record) brings the
//! unsigned envelope to about 2 KiB, 64 KiB and 1 MiB. They are generated here, signed
//! by our signer with the test PKI's `consumer-is` keys (RSA-2048, ECDSA P-256, GOST
//! 2012-256) in both profiles (`exc-c14n` alone, which libxmlsec1 can verify, and
//! `smev`), and written to `target/bench-data/` (or `$MEZHVED_BENCH_DATA`) together with
//! `manifest.json`, so tests/bench/xmlsec_bench.py measures the very same files. The
//! content is deterministic; RSA signatures are too, ECDSA and GOST ones are not (random
//! nonces), which changes no size. `MEZHVED_BENCH_DATA_ONLY=1` writes the files and exits.
//!
//! Groups (throughput = bytes of the input: the signed file, or for `sign` the unsigned
//! envelope):
//! - `parse/{size}`: `mezhved_xml::parse` alone (the breakdown of the rows below);
//! - `c14n_digest/{exc-c14n,smev}/{size}`: parse + resolve the signed element + exc-c14n
//!   (or the SMEV transform) + SHA-256;
//! - `verify/{alg}/{size}` (exc-c14n files) and `verify_smev/{alg}/{size}` (SMEV files):
//!   the full `xmldsig::verify` (parse, resolve, transform, digest, signature value,
//!   certificate chain with CRLs);
//! - `sign/{alg}/{size}`: the full `xmldsig::sign` in the SMEV profile;
//! - `openssl_raw/{alg}/{size}` and `openssl_raw_smev/{alg}/{size}`: the irreducible
//!   crypto: the Reference digest (SHA-256, or GOST R 34.11-2012-256 for GOST) over the
//!   already-canonical element bytes plus one raw OpenSSL verify of the already-canonical
//!   SignedInfo with a ready public key;
//! - `cert_parse/{alg}` and `trust_chain/{alg}`: `X509::from_der` of the KeyInfo
//!   certificate and `TrustStore::verify` of it, alone (the certificate work in `verify`
//!   that neither the baseline nor libxmlsec1 with a preset key does);
//!   `trust_chain_cold/{alg}` and `verify_cold/{alg}/2k`: the same on a fresh trust store
//!   each time, i.e. without the store's certificate and verdict caches (a sender's first
//!   message); `verify`, `verify_smev` and `trust_chain` run with the caches warm, as a
//!   gateway does for the senders it has seen.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use mezhved_dsig::crypto::{SignatureAlgorithm, SigningKey};
use mezhved_dsig::trust::TrustStore;
use mezhved_dsig::xmldsig::{self, Expectation, Placement, SignOptions, Transforms, DSIG_NS};
use mezhved_xml::c14n::{self, ExcC14nOptions};
use mezhved_xml::{parse, smev, Document, ElementPath, Limits, NodeId};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;
use openssl::x509::X509;

const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1";
const NS2: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1";
const REQ: &str = "urn://mezhved/demo/registry/1.0";
const DOC: &str = "urn://mezhved/demo/documents/1.0";
const SIGNED_ID: &str = "SIGNED_BY_CONSUMER";

/// Size labels and the unsigned envelope size each aims at (never exceeded, except that
/// every envelope holds at least one record).
const SIZES: [(&str, usize); 3] = [("2k", 2 * 1024), ("64k", 64 * 1024), ("1m", 1024 * 1024)];
const ALGS: [&str; 3] = ["rsa", "ecdsa", "gost"];
const PROFILES: [(&str, Transforms); 2] = [
    ("exc-c14n", Transforms::ExcC14n),
    ("smev", Transforms::Smev),
];

// ---------------------------------------------------------------------------------------
// Fixtures

const SURNAMES: [&str; 8] = [
    "Иванов",
    "Смирнова",
    "Кузнецов",
    "Попова",
    "Васильев",
    "Петрова",
    "Соколов",
    "Михайлова",
];
const NAMES: [&str; 8] = [
    "Пётр",
    "Анна",
    "Сергей",
    "Ольга",
    "Дмитрий",
    "Елена",
    "Алексей",
    "Татьяна",
];
const PATRONYMICS: [&str; 8] = [
    "Сергеевич",
    "Игоревна",
    "Николаевич",
    "Андреевна",
    "Петрович",
    "Викторовна",
    "Юрьевич",
    "Олеговна",
];
const STREETS: [&str; 6] = [
    "Тверская",
    "Ленина",
    "Садовая",
    "Набережная",
    "Мира",
    "Гагарина",
];
const CITIES: [&str; 5] = [
    "г. Москва",
    "г. Санкт-Петербург",
    "г. Казань",
    "г. Новосибирск",
    "г. Екатеринбург",
];
const ROLES: [&str; 3] = ["applicant", "spouse", "child"];

/// One applicant record (~870 bytes of UTF-8): unsorted attributes, a namespaced
/// attribute, a namespace declared on the record itself, escaped characters.
fn record(i: usize, out: &mut String) {
    let _ = write!(
        out,
        r#"
          <req:Applicant role="{role}" id="A{i:06}" xmlns:doc="{DOC}" doc:verified="{verified}">
            <req:Surname>{surname}</req:Surname>
            <req:FirstName>{name}</req:FirstName>
            <req:Patronymic>{patronymic}</req:Patronymic>
            <req:BirthDate>{year}-{month:02}-{day:02}</req:BirthDate>
            <req:Snils>{snils:03}-{s2:03}-{s3:03} {s4:02}</req:Snils>
            <req:Address region="{region}" postcode="{postcode}">{city}, ул. {street}, д. {house}, кв. {flat}</req:Address>
            <doc:IdentityDocument type="21" series="{series}" number="{number:06}">Паспорт гражданина Российской Федерации, выдан ОВД «{street}» &amp; МФЦ &lt;№{office}&gt;</doc:IdentityDocument>
            <req:Comment>Сведения подтверждены {day:02}.{month:02}.2024 по запросу № {i}</req:Comment>
          </req:Applicant>"#,
        role = ROLES[i % ROLES.len()],
        verified = i % 5 != 0,
        surname = SURNAMES[i % SURNAMES.len()],
        name = NAMES[(i / 3) % NAMES.len()],
        patronymic = PATRONYMICS[(i / 2) % PATRONYMICS.len()],
        year = 1950 + i % 55,
        month = 1 + i % 12,
        day = 1 + i % 28,
        snils = (i * 7) % 1000,
        s2 = (i * 13) % 1000,
        s3 = (i * 31) % 1000,
        s4 = i % 100,
        region = 10 + i % 80,
        postcode = 100_000 + (i * 7919) % 900_000,
        city = CITIES[i % CITIES.len()],
        street = STREETS[i % STREETS.len()],
        house = 1 + i % 120,
        flat = 1 + (i * 17) % 300,
        series = 4500 + i % 100,
        number = (i * 104_729) % 1_000_000,
        office = 1 + i % 40,
    );
}

/// A SendRequest envelope of at most `target` bytes (at least one record).
fn envelope(target: usize) -> Vec<u8> {
    let head = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="{SOAP}"
               xmlns:ns="{NS}"
               xmlns:ns2="{NS2}">
  <soap:Header/>
  <soap:Body>
    <ns:SendRequestRequest>
      <ns:SenderProvidedRequestData Id="{SIGNED_ID}">
        <ns:MessageID>6b0f5e2e-8a3c-11ee-b9d1-0242ac120002</ns:MessageID>
        <ns2:MessagePrimaryContent>
          <req:ApplicantRegistryRequest xmlns:req="{REQ}" kind="bulk" version="1.0">"#
    );
    let tail = r#"
          </req:ApplicantRegistryRequest>
        </ns2:MessagePrimaryContent>
        <ns:TestMessage/>
      </ns:SenderProvidedRequestData>
      <ns:CallerInformationSystemSignature/>
    </ns:SendRequestRequest>
  </soap:Body>
</soap:Envelope>
"#;
    let mut body = String::new();
    let mut next = String::new();
    for i in 0.. {
        next.clear();
        record(i, &mut next);
        if i > 0 && head.len() + body.len() + next.len() + tail.len() > target {
            break;
        }
        body.push_str(&next);
    }
    let mut out = head;
    out.push_str(&body);
    out.push_str(tail);
    out.into_bytes()
}

fn pki() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../keys/test-pki")
}

fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MEZHVED_BENCH_DATA") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench-data")
}

fn key(alg: &str) -> SigningKey {
    let dir = pki().join(alg);
    SigningKey::from_pem_files(
        &dir.join("consumer-is.key.pem"),
        &dir.join("consumer-is.cert.pem"),
    )
    .unwrap_or_else(|e| panic!("{alg} key: {e}"))
}

fn request_path() -> ElementPath {
    ElementPath::parse(&format!(
        "/{{{SOAP}}}Envelope/{{{SOAP}}}Body/{{{NS}}}SendRequestRequest"
    ))
    .expect("path")
}

fn target_path() -> ElementPath {
    request_path().child(Some(NS), "SenderProvidedRequestData")
}

fn expectation() -> Expectation {
    Expectation {
        signature_parent: request_path().child(Some(NS), "CallerInformationSystemSignature"),
        target: Some(target_path()),
    }
}

fn placement() -> Placement {
    Placement::Detached {
        id: SIGNED_ID.into(),
        container: request_path().child(Some(NS), "CallerInformationSystemSignature"),
    }
}

fn options(transforms: Transforms) -> SignOptions {
    SignOptions {
        transforms,
        digest: None,
    }
}

/// One signed fixture and what the baselines need from it, precomputed.
struct Signed {
    alg: &'static str,
    profile: &'static str,
    size: &'static str,
    xml: Vec<u8>,
    /// The digested octets (exc-c14n or SMEV transform of the signed element).
    element: Vec<u8>,
    /// Canonical SignedInfo, the signature value as OpenSSL wants it, the signer's key.
    signed_info: Vec<u8>,
    signature: Vec<u8>,
    public: PKey<Public>,
    algorithm: SignatureAlgorithm,
    file: PathBuf,
}

fn ds_child(doc: &Document, parent: NodeId, local: &str) -> NodeId {
    doc.child_elements(parent)
        .find(|&c| doc.is_element(c, DSIG_NS, local))
        .unwrap_or_else(|| panic!("no ds:{local}"))
}

/// What every fixture shares: the trust store, the verification time, the output directory.
struct Env<'a> {
    trust: &'a TrustStore,
    now: SystemTime,
    dir: &'a Path,
}

fn prepare(
    env: &Env<'_>,
    (alg, key): (&'static str, &SigningKey),
    (profile, transforms): (&'static str, Transforms),
    size: &'static str,
    unsigned: &[u8],
) -> Signed {
    let xml = xmldsig::sign(
        unsigned,
        &Limits::default(),
        key,
        &placement(),
        &options(transforms),
    )
    .unwrap_or_else(|e| panic!("sign {alg}/{profile}/{size}: {e}"));
    let verified = xmldsig::verify(&xml, &Limits::default(), &expectation(), env.trust, env.now)
        .unwrap_or_else(|e| panic!("verify {alg}/{profile}/{size}: {e}"));

    let doc = parse(&xml, &Limits::default()).expect("parse");
    let container = request_path()
        .child(Some(NS), "CallerInformationSystemSignature")
        .resolve(&doc)
        .expect("container");
    let signature = ds_child(&doc, container, "Signature");
    let si = ds_child(&doc, signature, "SignedInfo");
    let signed_info = c14n::canonicalize_to_vec(&doc, si, &ExcC14nOptions::default());
    let value: String = doc
        .text(ds_child(&doc, signature, "SignatureValue"))
        .split_ascii_whitespace()
        .collect();
    let raw = BASE64.decode(value).expect("base64");
    let signature = if verified.signature_algorithm == SignatureAlgorithm::EcdsaSha256 {
        let (r, s) = raw.split_at(raw.len() / 2);
        EcdsaSig::from_private_components(
            BigNum::from_slice(r).expect("r"),
            BigNum::from_slice(s).expect("s"),
        )
        .and_then(|sig| sig.to_der())
        .expect("ecdsa der")
    } else {
        raw
    };
    let file = env.dir.join(format!("{profile}-{alg}-{size}.xml"));
    std::fs::write(&file, &xml).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    Signed {
        alg,
        profile,
        size,
        element: verified.digested,
        signed_info,
        signature,
        public: verified.certificate.public_key().expect("public key"),
        algorithm: verified.signature_algorithm,
        xml,
        file,
    }
}

/// Generates, signs, self-checks and writes every fixture and `manifest.json`.
fn fixtures(trust: &TrustStore, now: SystemTime) -> Vec<Signed> {
    let dir = data_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let env = Env {
        trust,
        now,
        dir: &dir,
    };
    let keys: Vec<(&'static str, SigningKey)> = ALGS.iter().map(|&a| (a, key(a))).collect();
    let mut all = Vec::new();
    for (size, target) in SIZES {
        let unsigned = envelope(target);
        for (profile, transforms) in PROFILES {
            for (alg, key) in &keys {
                all.push(prepare(
                    &env,
                    (alg, key),
                    (profile, transforms),
                    size,
                    &unsigned,
                ));
            }
        }
    }

    // A hand-written manifest: every value is a plain ASCII string or a number.
    let pki = pki().canonicalize().expect("test PKI");
    let mut m = String::from("{\n");
    let _ = writeln!(m, "  \"signed_id\": \"{SIGNED_ID}\",");
    let _ = writeln!(
        m,
        "  \"target_path\": [\"{{{SOAP}}}Body\", \"{{{NS}}}SendRequestRequest\", \"{{{NS}}}SenderProvidedRequestData\"],"
    );
    let _ = writeln!(
        m,
        "  \"signature_parent_path\": [\"{{{SOAP}}}Body\", \"{{{NS}}}SendRequestRequest\", \"{{{NS}}}CallerInformationSystemSignature\"],"
    );
    m.push_str("  \"unsigned_bytes\": {");
    for (i, (size, target)) in SIZES.iter().enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        let _ = write!(m, "{sep}\"{size}\": {}", envelope(*target).len());
    }
    m.push_str("},\n");
    m.push_str("  \"pki\": {");
    for (i, alg) in ALGS.iter().enumerate() {
        let d = pki.join(alg);
        let _ = write!(
            m,
            "{}\n    \"{alg}\": {{\"cert\": \"{}\", \"root\": \"{}\", \"intermediate\": \"{}\"}}",
            if i > 0 { "," } else { "" },
            d.join("consumer-is.cert.pem").display(),
            d.join("root-ca.cert.pem").display(),
            d.join("intermediate-ca.cert.pem").display(),
        );
    }
    m.push_str("\n  },\n  \"files\": [");
    for (i, s) in all.iter().enumerate() {
        let _ = write!(
            m,
            "{}\n    {{\"profile\": \"{}\", \"alg\": \"{}\", \"size\": \"{}\", \"path\": \"{}\", \"bytes\": {}, \"digested_bytes\": {}}}",
            if i > 0 { "," } else { "" },
            s.profile,
            s.alg,
            s.size,
            s.file.canonicalize().expect("fixture path").display(),
            s.xml.len(),
            s.element.len(),
        );
    }
    m.push_str("\n  ]\n}\n");
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, m).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    eprintln!(
        "bench fixtures: {} files in {}",
        all.len(),
        dir.canonicalize().unwrap_or(dir.clone()).display()
    );
    for s in all.iter().filter(|s| s.alg == "rsa") {
        eprintln!(
            "  {}/{}: {} bytes signed, {} bytes digested",
            s.profile,
            s.size,
            s.xml.len(),
            s.element.len()
        );
    }
    all
}

// ---------------------------------------------------------------------------------------
// Benches

fn find<'a>(all: &'a [Signed], profile: &str, alg: &str, size: &str) -> &'a Signed {
    all.iter()
        .find(|s| s.profile == profile && s.alg == alg && s.size == size)
        .expect("fixture")
}

/// Per-benchmark settings, short because tests/bench/run.sh runs the whole bench twice
/// (and keeps the better median of each case) to shrug off bursts of outside load. The
/// 1 MiB cases take milliseconds per iteration, so they are sampled flat (criterion's
/// linear sampling would need ~80 iterations).
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, size: &str, bytes: usize) {
    group.throughput(Throughput::Bytes(bytes as u64));
    if size == "1m" {
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(12);
        group.measurement_time(Duration::from_millis(1600));
    } else {
        group.sampling_mode(SamplingMode::Auto);
        group.sample_size(20);
        group.measurement_time(Duration::from_millis(800));
    }
}

fn c14n_digest(doc_bytes: &[u8], smev_profile: bool, path: &ElementPath) -> [u8; 32] {
    let doc = parse(doc_bytes, &Limits::default()).expect("parse");
    let target = path.resolve(&doc).expect("target");
    let mut out = Vec::with_capacity(doc_bytes.len());
    if smev_profile {
        smev::transform(&doc, target, None, &mut out);
    } else {
        c14n::canonicalize(&doc, target, None, &ExcC14nOptions::default(), &mut out);
    }
    openssl::sha::sha256(&out)
}

fn bench_parse(c: &mut Criterion, all: &[Signed]) {
    let mut g = c.benchmark_group("parse");
    for (size, _) in SIZES {
        let s = find(all, "exc-c14n", "rsa", size);
        configure(&mut g, size, s.xml.len());
        g.bench_function(size, |b| {
            b.iter(|| parse(black_box(&s.xml), &Limits::default()).expect("parse"))
        });
    }
    g.finish();
}

fn bench_c14n_digest(c: &mut Criterion, all: &[Signed]) {
    let path = target_path();
    let mut g = c.benchmark_group("c14n_digest");
    for (profile, transforms) in PROFILES {
        for (size, _) in SIZES {
            let s = find(all, profile, "rsa", size);
            // The digest we compute must be the one in the signature.
            assert_eq!(
                openssl::sha::sha256(&s.element),
                c14n_digest(&s.xml, transforms == Transforms::Smev, &path)
            );
            configure(&mut g, size, s.xml.len());
            g.bench_function(BenchmarkId::new(profile, size), |b| {
                b.iter(|| c14n_digest(black_box(&s.xml), transforms == Transforms::Smev, &path))
            });
        }
    }
    g.finish();
}

fn bench_verify(c: &mut Criterion, all: &[Signed], trust: &TrustStore, now: SystemTime) {
    let expect = expectation();
    for (group, profile) in [("verify", "exc-c14n"), ("verify_smev", "smev")] {
        let mut g = c.benchmark_group(group);
        for alg in ALGS {
            for (size, _) in SIZES {
                let s = find(all, profile, alg, size);
                configure(&mut g, size, s.xml.len());
                g.bench_function(BenchmarkId::new(alg, size), |b| {
                    b.iter(|| {
                        xmldsig::verify(black_box(&s.xml), &Limits::default(), &expect, trust, now)
                            .expect("verifies")
                    })
                });
            }
        }
        g.finish();
    }
}

fn bench_sign(c: &mut Criterion) {
    let mut g = c.benchmark_group("sign");
    let placement = placement();
    let options = options(Transforms::Smev);
    for alg in ALGS {
        let key = key(alg);
        for (size, target) in SIZES {
            let unsigned = envelope(target);
            configure(&mut g, size, unsigned.len());
            g.bench_function(BenchmarkId::new(alg, size), |b| {
                b.iter(|| {
                    xmldsig::sign(
                        black_box(&unsigned),
                        &Limits::default(),
                        &key,
                        &placement,
                        &options,
                    )
                    .expect("signs")
                })
            });
        }
    }
    g.finish();
}

fn message_digest(alg: SignatureAlgorithm) -> MessageDigest {
    alg.digest().message_digest().expect("digest")
}

fn raw_verify(s: &Signed, md: MessageDigest) -> bool {
    let digest = openssl::hash::hash(md, black_box(&s.element)).expect("hash");
    black_box(digest);
    let mut v = Verifier::new(md, &s.public).expect("verifier");
    v.verify_oneshot(black_box(&s.signature), black_box(&s.signed_info))
        .expect("verify")
}

fn bench_openssl_raw(c: &mut Criterion, all: &[Signed]) {
    for (group, profile) in [("openssl_raw", "exc-c14n"), ("openssl_raw_smev", "smev")] {
        let mut g = c.benchmark_group(group);
        for alg in ALGS {
            for (size, _) in SIZES {
                let s = find(all, profile, alg, size);
                let md = message_digest(s.algorithm);
                assert!(raw_verify(s, md), "{alg}/{size}: raw verify");
                // Same throughput basis as `verify`: the signed file.
                configure(&mut g, size, s.xml.len());
                g.bench_function(BenchmarkId::new(alg, size), |b| {
                    b.iter(|| raw_verify(s, md))
                });
            }
        }
        g.finish();
    }
}

/// `X509::from_der` of the signer's certificate, as `verify` does for KeyInfo.
fn bench_cert_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("cert_parse");
    g.sample_size(20);
    g.measurement_time(Duration::from_millis(800));
    for alg in ALGS {
        let pem = std::fs::read(pki().join(alg).join("consumer-is.cert.pem")).expect("cert");
        let der = X509::from_pem(&pem).and_then(|c| c.to_der()).expect("cert");
        g.bench_function(alg, |b| {
            b.iter(|| X509::from_der(black_box(&der)).expect("parses"))
        });
    }
    g.finish();
}

fn store() -> TrustStore {
    TrustStore::from_dir(&pki().join("trust")).expect("trust store")
}

/// `TrustStore::verify` of the signer certificate: `trust_chain` as a gateway runs it for
/// a sender it has seen (the store caches verdicts), `trust_chain_cold` on a fresh store
/// each time (a first message: path building, signatures, CRLs). The fresh stores are
/// built outside the timed region.
fn bench_trust_chain(c: &mut Criterion, trust: &TrustStore, now: SystemTime, cold: bool) {
    let mut g = c.benchmark_group(if cold {
        "trust_chain_cold"
    } else {
        "trust_chain"
    });
    g.sample_size(if cold { 10 } else { 20 });
    g.measurement_time(Duration::from_millis(if cold { 500 } else { 800 }));
    for alg in ALGS {
        let pem = std::fs::read(pki().join(alg).join("consumer-is.cert.pem")).expect("cert");
        let cert = X509::from_pem(&pem).expect("cert");
        if cold {
            g.bench_function(alg, |b| {
                b.iter_batched_ref(
                    store,
                    |fresh| fresh.verify(black_box(&cert), &[], now).expect("trusted"),
                    BatchSize::SmallInput,
                )
            });
        } else {
            g.bench_function(alg, |b| {
                b.iter(|| trust.verify(black_box(&cert), &[], now).expect("trusted"))
            });
        }
    }
    g.finish();
}

/// The full `xmldsig::verify` of the 2 KiB exc-c14n files on a fresh trust store each
/// time: the cost of a sender's first message (no cached certificate, no cached verdict).
fn bench_verify_cold(c: &mut Criterion, all: &[Signed], now: SystemTime) {
    let expect = expectation();
    let mut g = c.benchmark_group("verify_cold");
    g.sample_size(10);
    g.measurement_time(Duration::from_millis(500));
    for alg in ALGS {
        let s = find(all, "exc-c14n", alg, "2k");
        g.throughput(Throughput::Bytes(s.xml.len() as u64));
        g.bench_function(BenchmarkId::new(alg, "2k"), |b| {
            b.iter_batched_ref(
                store,
                |fresh| {
                    xmldsig::verify(black_box(&s.xml), &Limits::default(), &expect, fresh, now)
                        .expect("verifies")
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn main() {
    // GOST certificates must be parsed after the engine is loaded.
    mezhved_dsig::gost::ensure_loaded().expect("gost engine (libengine-gost-openssl)");
    let trust = store();
    // The one clock read: every verification is checked at this instant.
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now();
    let all = fixtures(&trust, now);
    if std::env::var_os("MEZHVED_BENCH_DATA_ONLY").is_some() {
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .without_plots()
        .configure_from_args();
    bench_parse(&mut c, &all);
    bench_c14n_digest(&mut c, &all);
    bench_openssl_raw(&mut c, &all);
    bench_cert_parse(&mut c);
    bench_trust_chain(&mut c, &trust, now, false);
    bench_verify(&mut c, &all, &trust, now);
    bench_sign(&mut c);
    // Last: building thousands of trust stores leaves the heap in a state that slows
    // what runs after it (sign/1m measured ~30 % slower), so nothing may follow these.
    bench_trust_chain(&mut c, &trust, now, true);
    bench_verify_cold(&mut c, &all, now);
    c.final_summary();
}
