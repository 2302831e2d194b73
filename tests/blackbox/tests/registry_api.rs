//! The operator's registry API (`/api/v1/registry`) on a running gateway: it needs the
//! operator's bearer token, refuses invalid changes with a problem document and changes
//! nothing then, and every accepted change — made through the API or directly in the
//! store by another process or node — applies to the exchange without a restart.

use mezhved_blackbox::*;
use mezhved_client as client;
use mezhved_store::{Grant, RegistryChange, Store};
use serde_json::{json, Value};
use std::time::Duration;

const MARRIAGE_NS: &str = "urn://mezhved/demo/zags/marriage-record/1.0";
const MARRIAGE_ROOT: &str = "MarriageRecordRequest";

fn birth_grant_query(system: &str) -> String {
    format!(
        "/api/v1/registry/grants?consumer_system={system}&namespace={}&root_element={BIRTH_ROOT}",
        BIRTH_NS.replace(':', "%3A").replace('/', "%2F")
    )
}

async fn registry(api: &Api) -> Value {
    let r = api.operator("GET", "/api/v1/registry", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn version(api: &Api) -> u64 {
    registry(api).await["version"].as_u64().expect("version")
}

/// The registry version as stored (not as this gateway's snapshot has it).
fn stored_version(gw: &TestGateway) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        gw.database(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open read-only");
    let v: i64 = conn
        .query_row("SELECT version FROM registry_version", [], |r| r.get(0))
        .expect("version");
    v as u64
}

fn pem(alg: &str, name: &str) -> String {
    std::fs::read_to_string(repo().join(format!("keys/test-pki/{alg}/{name}.cert.pem")))
        .expect("certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_api_needs_the_operator_token() {
    let gw = TestGateway::start().await;
    let api = gw.api();
    let before = version(&api).await;
    let grant =
        json!({"consumer_system": "PFR_IS", "namespace": BIRTH_NS, "root_element": BIRTH_ROOT});
    for token in [None, Some("wrong-token"), Some("")] {
        let r = api.send("GET", "/api/v1/registry", token, None).await;
        let detail = r.expect_problem(401);
        assert!(detail.contains("token"), "{detail}");
        assert!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer")),
            "a 401 names its scheme: {:?}",
            r.headers
        );
        let r = api
            .send("POST", "/api/v1/registry/grants", token, Some(&grant))
            .await;
        r.expect_problem(401);
        let r = api
            .send("DELETE", &birth_grant_query("USZN_IS"), token, None)
            .await;
        r.expect_problem(401);
    }
    // Another scheme is not a bearer token.
    let r = api
        .http_with_header(
            "GET",
            "/api/v1/registry",
            "Authorization",
            &format!("Basic {OPERATOR_TOKEN}"),
        )
        .await;
    r.expect_problem(401);
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    let r = api
        .http_with_header(
            "GET",
            "/api/v1/registry",
            "Authorization",
            &format!("bearer {OPERATOR_TOKEN}"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    assert_eq!(version(&api).await, before, "nothing changed");
    // The USZN_IS grant is still in force.
    expect_ok(
        &gw.consumer()
            .call(client::send_request(&gw.birth_request("still-granted")))
            .await,
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_returns_the_registry() {
    let gw = TestGateway::start().await;
    let r = gw.api().operator("GET", "/api/v1/registry", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    let reg = r.json();
    assert!(reg["version"].as_u64().is_some_and(|v| v >= 1), "{reg}");
    let mnemonics = |list: &str| -> Vec<String> {
        let mut v: Vec<String> = reg[list]
            .as_array()
            .unwrap_or_else(|| panic!("{list}: {reg}"))
            .iter()
            .map(|e| e["mnemonic"].as_str().expect("mnemonic").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(mnemonics("participants"), ["PFR", "USZN", "ZAGS"]);
    assert_eq!(mnemonics("systems"), ["PFR_IS", "USZN_IS", "ZAGS_IS"]);
    let uszn = reg["systems"]
        .as_array()
        .expect("systems")
        .iter()
        .find(|s| s["mnemonic"] == "USZN_IS")
        .expect("USZN_IS");
    assert_eq!(uszn["participant"], "USZN");
    let certs = uszn["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 4);
    assert!(certs
        .iter()
        .all(|c| c.as_str().is_some_and(|c| c.contains("BEGIN CERTIFICATE"))));
    assert_eq!(
        reg["kinds"],
        json!([{
            "namespace": BIRTH_NS,
            "root_element": BIRTH_ROOT,
            "name": "Birth record",
            "provider_system": "ZAGS_IS",
            "restricted": false,
            "consent_required": false,
            "description": "State registration of a birth: the record's number, date and parents",
        }])
    );
    assert_eq!(
        reg["grants"],
        json!([{"consumer_system": "USZN_IS", "namespace": BIRTH_NS, "root_element": BIRTH_ROOT}])
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_and_a_grant_given_back_apply_without_restart() {
    let gw = TestGateway::start().await;
    let api = gw.api();
    let consumer = gw.consumer();
    expect_ok(
        &consumer
            .call(client::send_request(&gw.birth_request("before")))
            .await,
    );
    let v0 = version(&api).await;

    let r = api
        .operator("DELETE", &birth_grant_query("USZN_IS"), None)
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v1 = r.json()["version"].as_u64().expect("version");
    assert!(v1 > v0);
    assert_eq!(registry(&api).await["grants"], json!([]));
    let before = gw.written();
    let denied = consumer
        .call(client::send_request(&gw.birth_request("revoked")))
        .await;
    expect_client_fault(&denied, "AccessDenied");
    gw.assert_nothing_written_since(&before);

    // Revoking what is not granted names nothing: 404, and no new version.
    let r = api
        .operator("DELETE", &birth_grant_query("USZN_IS"), None)
        .await;
    r.expect_problem(404);
    assert_eq!(version(&api).await, v1);

    let grant =
        json!({"consumer_system": "USZN_IS", "namespace": BIRTH_NS, "root_element": BIRTH_ROOT});
    let r = api
        .operator("POST", "/api/v1/registry/grants", Some(&grant))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["version"].as_u64().expect("version") > v1);
    expect_ok(
        &consumer
            .call(client::send_request(&gw.birth_request("granted-again")))
            .await,
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kind_and_its_grant_route_requests_without_restart() {
    let gw = TestGateway::start().await;
    let api = gw.api();
    let consumer = gw.consumer();
    let provider = gw.provider();
    let marriage = |gw: &TestGateway| {
        let mut r = gw.birth_request("unused");
        r.content = format!(
            "<m:{MARRIAGE_ROOT} xmlns:m=\"{MARRIAGE_NS}\"><m:Surname>Ivanova</m:Surname><m:Note>marriage-1</m:Note></m:{MARRIAGE_ROOT}>"
        );
        r
    };

    let unknown = consumer.call(client::send_request(&marriage(&gw))).await;
    expect_client_fault(&unknown, "BusinessDataTypeIsNotSupported");

    let kind = json!({
        "namespace": MARRIAGE_NS,
        "root_element": MARRIAGE_ROOT,
        "name": "Marriage record",
        "provider_system": "ZAGS_IS",
        "restricted": false,
        "consent_required": false,
        "description": "State registration of a marriage",
    });
    let r = api
        .operator("PUT", "/api/v1/registry/kinds", Some(&kind))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // Registered, but nobody is granted it yet.
    let denied = consumer.call(client::send_request(&marriage(&gw))).await;
    expect_client_fault(&denied, "AccessDenied");

    let grant = json!({"consumer_system": "USZN_IS", "namespace": MARRIAGE_NS, "root_element": MARRIAGE_ROOT});
    let r = api
        .operator("POST", "/api/v1/registry/grants", Some(&grant))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let sent = consumer.call(client::send_request(&marriage(&gw))).await;
    expect_ok(&sent);
    let gid = sent.global_id().expect("global ID");
    assert_eq!(
        sent.first_text(client::TYPES_NS, "DetectedContentTypeName")
            .as_deref(),
        Some("Marriage record")
    );
    // The provider selects the new kind and gets the request.
    let got = provider
        .call(client::get_request(
            Some((MARRIAGE_NS, MARRIAGE_ROOT)),
            gw.now(),
        ))
        .await;
    expect_ok(&got);
    assert_eq!(got.global_id().as_deref(), Some(gid.as_str()));
    assert!(got.text().contains("marriage-1"));
    // …and not under the birth-record selector.
    let none = provider
        .call(client::get_request(Some((BIRTH_NS, BIRTH_ROOT)), gw.now()))
        .await;
    expect_ok(&none);
    assert!(!none.has_message());
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_changes_are_refused_with_a_specific_detail_and_change_nothing() {
    let gw = TestGateway::start().await;
    let api = gw.api();
    let reg0 = registry(&api).await;
    let v0 = reg0["version"].as_u64().expect("version");
    assert_eq!(stored_version(&gw), v0);

    let unchanged = |what: &str, reg: Value| {
        assert_eq!(reg, reg0, "{what} changed the registry");
    };

    // A system of an unknown participant.
    let ghost = json!({"mnemonic": "GHOST_IS", "participant": "GHOST", "name": "Ghost", "certificates": []});
    let r = api
        .operator("PUT", "/api/v1/registry/systems/GHOST_IS", Some(&ghost))
        .await;
    let detail = r.expect_problem(422);
    assert!(detail.contains("system GHOST_IS"), "{detail}");
    assert!(detail.contains("not registered"), "{detail}");
    unchanged("an unknown participant", registry(&api).await);

    // A certificate that is not PEM.
    let bad_cert = json!({
        "mnemonic": "PFR_IS", "participant": "PFR", "name": "Pension fund benefits system",
        "certificates": ["MIIB-not-a-certificate"],
    });
    let r = api
        .operator("PUT", "/api/v1/registry/systems/PFR_IS", Some(&bad_cert))
        .await;
    let detail = r.expect_problem(422);
    assert!(detail.contains("PFR_IS"), "{detail}");
    assert!(detail.contains("not a PEM certificate"), "{detail}");
    unchanged("a certificate that is not PEM", registry(&api).await);

    // A certificate that is already another system's: accepting it would make the
    // registry one that cannot be loaded.
    let stolen = json!({
        "mnemonic": "PFR_IS", "participant": "PFR", "name": "Pension fund benefits system",
        "certificates": [pem("ecdsa", "second-consumer-is"), pem("ecdsa", "consumer-is")],
    });
    let r = api
        .operator("PUT", "/api/v1/registry/systems/PFR_IS", Some(&stolen))
        .await;
    let detail = r.expect_problem(422);
    assert!(detail.contains("is also registered to"), "{detail}");
    assert!(
        detail.contains("PFR_IS") && detail.contains("USZN_IS"),
        "{detail}"
    );
    unchanged("a certificate of another system", registry(&api).await);

    // A batch with one bad change applies none of it.
    let batch = json!([
        {"op": "grant", "consumer_system": "PFR_IS", "namespace": BIRTH_NS, "root_element": BIRTH_ROOT},
        {"op": "put_kind", "namespace": MARRIAGE_NS, "root_element": MARRIAGE_ROOT,
         "name": "Marriage record", "provider_system": "NOBODY_IS"},
    ]);
    let r = api
        .operator("POST", "/api/v1/registry/changes", Some(&batch))
        .await;
    let detail = r.expect_problem(422);
    assert!(detail.contains(MARRIAGE_ROOT), "{detail}");
    unchanged("a batch with a bad change", registry(&api).await);
    let mut pfr_request = gw.birth_request("pfr");
    pfr_request.card = Some(
        client::RequestCard::complete(
            "Pension Fund Branch of the Sample Region",
            PROVIDER_AGENCY,
            &chrono::DateTime::<chrono::Utc>::from(gw.now())
                .date_naive()
                .to_string(),
            "PFR-1",
        )
        .to_xml(),
    );
    expect_client_fault(
        &gw.system("ecdsa", "second-consumer-is")
            .call(client::send_request(&pfr_request))
            .await,
        "AccessDenied",
    );

    // Path and body that disagree; a body that is not a change.
    let r = api
        .operator("PUT", "/api/v1/registry/systems/OTHER_IS", Some(&ghost))
        .await;
    assert!(r.expect_problem(422).contains("differ"));
    let r = api
        .operator(
            "POST",
            "/api/v1/registry/grants",
            Some(&json!({"consumer_system": "USZN_IS"})),
        )
        .await;
    let detail = r.expect_problem(422);
    assert!(detail.contains("namespace"), "{detail}");
    // Deleting a system something still refers to.
    let r = api
        .operator("DELETE", "/api/v1/registry/systems/ZAGS_IS", None)
        .await;
    assert!(r.expect_problem(422).contains("ZAGS_IS"));

    unchanged("the refused changes", registry(&api).await);
    assert_eq!(stored_version(&gw), v0, "the store's version is unchanged");
    // Every registered system still works.
    expect_ok(
        &gw.consumer()
            .call(client::send_request(&gw.birth_request("after")))
            .await,
    );
    expect_ok(
        &gw.provider()
            .call(client::get_request(None, gw.now()))
            .await,
    );

    // And a gateway restarted on this store loads its registry.
    let config = {
        let mut c = test_config(&gw.data_dir);
        c.registry.file = std::path::PathBuf::new();
        c
    };
    let dir = gw.stop().await;
    let again = TestGateway::start_in(config).await;
    assert_eq!(version(&again.api()).await, v0);
    again.stop().await;
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_directly_in_the_store_is_picked_up_by_the_running_gateway() {
    let gw = TestGateway::start_with(|c| c.registry.reload_interval_ms = 50).await;
    let api = gw.api();
    let consumer = gw.consumer();
    expect_ok(
        &consumer
            .call(client::send_request(&gw.birth_request("before")))
            .await,
    );
    let v0 = version(&api).await;

    // Another process (the CLI, another node) changes the same database.
    let other = mezhved_store::sqlite::SqliteStore::open(
        &gw.database(),
        mezhved_store::sqlite::SqliteOptions::default(),
    )
    .expect("a second store on the same database");
    let v1 = other
        .change_registry(
            "test".into(),
            0,
            vec![RegistryChange::Revoke(Grant {
                consumer_system: "USZN_IS".into(),
                namespace: BIRTH_NS.into(),
                root_element: BIRTH_ROOT.into(),
            })],
        )
        .await
        .expect("revoke");
    assert!(v1 > v0);

    // Waiting for the background reload (bounded), not timing it.
    let mut seen = v0;
    for _ in 0..100 {
        seen = version(&api).await;
        if seen == v1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen, v1,
        "the gateway did not pick up the change within 5 s"
    );
    assert_eq!(registry(&api).await["grants"], json!([]));
    let before = gw.written();
    expect_client_fault(
        &consumer
            .call(client::send_request(&gw.birth_request("after")))
            .await,
        "AccessDenied",
    );
    gw.assert_nothing_written_since(&before);
    other.close();
    gw.stop().await;
}
