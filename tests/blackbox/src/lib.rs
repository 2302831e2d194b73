//! The harness of the black-box tests: a real gateway (the same [`Gateway`] `mezhved
//! serve` runs) on 127.0.0.1:0 with a fresh data directory, the sample registry and the
//! test PKI, a clock the test moves, and signed SMEV clients for the sample systems.

#![forbid(unsafe_code)]

use mezhved_client::{Client, Outgoing, Reply, Request, RequestCard};
use mezhved_core::clock::{Clock, ManualClock};
use mezhved_dsig::crypto::SigningKey;
use mezhved_http::config::Config;
use mezhved_http::Gateway;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub const BIRTH_NS: &str = "urn://mezhved/demo/zags/birth-record/1.0";
pub const BIRTH_ROOT: &str = "BirthRecordRequest";
pub const CONSUMER_AGENCY: &str = "Social Protection Office of the Sample Region";
pub const PROVIDER_AGENCY: &str = "Civil Registry Office of the Sample Region";

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A test key: `keys/test-pki/<alg>/<name>.{key,cert}.pem`.
pub fn key(alg: &str, name: &str) -> Arc<SigningKey> {
    let _ = mezhved_dsig::gost::ensure_loaded();
    let dir = repo().join("keys/test-pki").join(alg);
    Arc::new(
        SigningKey::from_pem_files(
            &dir.join(format!("{name}.key.pem")),
            &dir.join(format!("{name}.cert.pem")),
        )
        .unwrap_or_else(|e| panic!("test key {alg}/{name}: {e}")),
    )
}

/// The wall clock at the start of a test (tests then move their own clock).
#[allow(clippy::disallowed_methods)]
pub fn wall_clock_now() -> SystemTime {
    SystemTime::now()
}

/// A configuration for a test gateway in `data_dir`.
pub fn test_config(data_dir: &Path) -> Config {
    let keys = repo().join("keys/test-pki");
    let mut c = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    c.gateway_key.key = keys.join("ecdsa/gateway.key.pem");
    c.gateway_key.certificate = keys.join("ecdsa/gateway.cert.pem");
    c.trust.dir = keys.join("trust");
    c.registry.file = repo().join("deploy/sample/registry.toml");
    c.server.listen = "127.0.0.1:0".into();
    c.server.shutdown_grace_seconds = 5;
    // sha256("test-operator-token")
    c.operator.token_sha256 =
        "21a41ec35ffe053418f5ebab652c9b4cb07a643a9100640d18b635e0df503928".into();
    c
}

/// A running test gateway.
#[derive(Debug)]
pub struct TestGateway {
    pub url: String,
    pub endpoint: String,
    pub clock: Arc<ManualClock>,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(|_| {}).await
    }

    /// Starts with a configuration adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestGateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let data_dir = config.data_dir.clone();
        let mut g = Self::start_in(config).await;
        g._dir = Some(dir);
        g.data_dir = data_dir;
        g
    }

    /// Starts on an explicit configuration (its data directory is kept).
    pub async fn start_in(config: Config) -> TestGateway {
        let clock = Arc::new(ManualClock::new(wall_clock_now()));
        let data_dir = config.data_dir.clone();
        let gateway = Gateway::open(config, clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap_or_else(|e| panic!("gateway does not start: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            gateway
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("gateway serves");
        });
        let url = format!("http://{addr}");
        TestGateway {
            endpoint: format!("{url}/smev/v1.1"),
            url,
            clock,
            data_dir,
            _dir: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// A signed client of one system.
    pub fn system(&self, alg: &str, name: &str) -> TestSystem {
        TestSystem {
            client: Client::new(&self.endpoint).expect("client"),
            key: key(alg, name),
        }
    }

    pub fn consumer(&self) -> TestSystem {
        self.system("ecdsa", "consumer-is")
    }
    pub fn provider(&self) -> TestSystem {
        self.system("ecdsa", "provider-is")
    }

    /// A valid birth-record request from the consumer, dated by the test clock.
    pub fn birth_request(&self, marker: &str) -> Request {
        let now = self.now();
        let today = chrono::DateTime::<chrono::Utc>::from(now)
            .date_naive()
            .to_string();
        Request {
            message_id: mezhved_client::message_id(now),
            content: format!(
                "<b:{BIRTH_ROOT} xmlns:b=\"{BIRTH_NS}\"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate><b:Note>{marker}</b:Note></b:{BIRTH_ROOT}>"
            ),
            card: Some(RequestCard::complete(CONSUMER_AGENCY, PROVIDER_AGENCY, &today, "USZN-2026/0001").to_xml()),
            attachments: Vec::new(),
            reference_message_id: None,
            eol: None,
            test: false,
        }
    }

    /// Stops the gateway gracefully and waits until it has closed its store.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("gateway task");
        }
        self._dir.take()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A system's signed client.
#[derive(Debug)]
pub struct TestSystem {
    pub client: Client,
    pub key: Arc<SigningKey>,
}

impl TestSystem {
    /// Signs and sends.
    pub async fn call(&self, call: Outgoing) -> Reply {
        let signed = call.sign(&*self.key).expect("sign");
        self.client.call(&signed).await.expect("HTTP call")
    }
    /// Sends as is (unsigned or pre-signed).
    pub async fn send_raw(&self, call: &Outgoing) -> Reply {
        self.client.call(call).await.expect("HTTP call")
    }
}

/// Asserts a reply is a fault with this detail element; returns the reply.
#[track_caller]
pub fn expect_fault(reply: &Reply, name: &str) {
    assert_eq!(
        reply.status,
        500,
        "expected a fault {name}, got HTTP {}: {}",
        reply.status,
        reply.text()
    );
    assert_eq!(reply.fault().as_deref(), Some(name), "{}", reply.text());
}

/// Asserts success; returns the reply.
#[track_caller]
pub fn expect_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "expected success: {}", reply.text());
    assert!(reply.fault().is_none(), "{}", reply.text());
}
