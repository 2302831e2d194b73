//! The scenario and the provider models together, through the public API: determinism,
//! the mix of requests and answers, and that every kind of answer happens.

use std::collections::HashMap;
use std::sync::Arc;

use mezhved_demo::{
    Case, DemoAnswer, DemoKind, Population, Provider, RejectionCode, Scenario, AGENCIES,
};

const N: u64 = 10_000;

fn setup(seed: u64, size: usize) -> (Scenario, HashMap<DemoKind, Provider>) {
    let population = Arc::new(Population::generate(seed, size));
    let providers = DemoKind::ALL
        .into_iter()
        .map(|k| (k, Provider::new(k, population.clone())))
        .collect();
    (Scenario::new(population), providers)
}

fn share(count: usize, total: usize) -> f64 {
    count as f64 / total as f64
}

#[test]
fn requests_are_deterministic_and_random_access() {
    let (a, _) = setup(2024, 3_000);
    let (b, _) = setup(2024, 3_000);
    let first: Vec<_> = a.iter().take(300).collect();
    for (i, r) in first.iter().enumerate() {
        assert_eq!(r.index, i as u64);
        assert_eq!(*r, b.request(i as u64));
    }
    // Made alone, out of order, the same.
    assert_eq!(a.request(299), first[299]);
    let (c, _) = setup(2025, 3_000);
    assert_ne!(c.request(0).content_xml, first[0].content_xml);
}

#[test]
fn mix_of_requests_and_answers() {
    let (scenario, providers) = setup(7, 10_000);
    let mut kinds: HashMap<DemoKind, usize> = HashMap::new();
    let mut cases: HashMap<Case, usize> = HashMap::new();
    let mut defective = 0;
    let mut answers: HashMap<&'static str, usize> = HashMap::new();
    let mut answered = 0;
    for r in scenario.iter().take(N as usize) {
        *kinds.entry(r.kind).or_default() += 1;
        if r.defect.is_some() {
            defective += 1;
            // The gateway rejects it: no provider sees it.
            continue;
        }
        *cases.entry(r.case).or_default() += 1;
        let a = providers[&r.kind].answer(&r.content_xml);
        match (r.case, a.final_answer()) {
            (Case::UnknownPerson, DemoAnswer::NoData { .. }) => {}
            (Case::UnknownPerson, other) => panic!("unknown person answered {other:?}"),
            (Case::Ambiguous, DemoAnswer::Clarify { .. }) => {}
            (Case::Ambiguous, other) => panic!("ambiguous request answered {other:?}"),
            (Case::Regular, DemoAnswer::Clarify { .. }) => {
                panic!("regular request {} asked to clarify", r.index)
            }
            _ => {}
        }
        answered += 1;
        *answers.entry(a.label()).or_default() += 1;
        if let DemoAnswer::Late {
            delay_working_days,
            then,
        } = &a
        {
            assert!(*delay_working_days > 5);
            assert!(matches!(**then, DemoAnswer::Data(_)));
        }
    }
    let n = N as usize;
    let within = |name: &str, got: f64, want: f64, tol: f64| {
        eprintln!("{name}: {got:.4}");
        assert!(
            (got - want).abs() <= tol,
            "{name}: {got:.4}, expected {want} ± {tol}"
        );
    };
    within(
        "birth record",
        share(kinds[&DemoKind::BirthRecord], n),
        0.40,
        0.02,
    );
    within("income", share(kinds[&DemoKind::Income], n), 0.35, 0.02);
    within(
        "disability",
        share(kinds[&DemoKind::Disability], n),
        0.25,
        0.02,
    );
    within("defective", share(defective, n), 0.02, 0.005);
    within(
        "unknown",
        share(cases[&Case::UnknownPerson], n),
        0.03,
        0.006,
    );
    within("ambiguous", share(cases[&Case::Ambiguous], n), 0.04, 0.007);
    let got = |label: &str| share(answers.get(label).copied().unwrap_or(0), answered);
    within("data", got("data"), 0.887, 0.025);
    within("no data", got("no_data"), 0.03, 0.01);
    within("clarify", got("clarify"), 0.04, 0.01);
    within("late", got("late"), 0.033, 0.01);
    within("reject", got("reject"), 0.01, 0.006);
}

#[test]
fn every_answer_and_defect_is_reachable() {
    let (scenario, providers) = setup(11, 5_000);
    let mut labels = HashMap::new();
    let mut codes = HashMap::new();
    let mut defects = HashMap::new();
    for r in scenario.iter().take(20_000) {
        if let Some(d) = r.defect {
            *defects.entry(d).or_insert(0) += 1;
            continue;
        }
        let a = providers[&r.kind].answer(&r.content_xml);
        *labels.entry((r.kind, a.label())).or_insert(0) += 1;
        if let Some(c) = a.rejection_code() {
            *codes.entry(c).or_insert(0) += 1;
        }
    }
    for k in DemoKind::ALL {
        for label in ["data", "no_data", "clarify", "late"] {
            assert!(
                labels.contains_key(&(k, label)),
                "{k:?} never answered {label}"
            );
        }
    }
    for c in [
        RejectionCode::NoData,
        RejectionCode::Failure,
        RejectionCode::AccessDenied,
    ] {
        assert!(codes.contains_key(&c), "{c:?} never happened");
    }
    assert_eq!(defects.len(), 6, "{defects:?}");
    // The fourth code comes from content that is not a request of the kind.
    let a = providers[&DemoKind::Income].answer("<x/>");
    assert_eq!(
        a.rejection_code(),
        Some(RejectionCode::UnknownRequestDescription)
    );
    let zags_request = scenario
        .iter()
        .find(|r| r.kind == DemoKind::BirthRecord)
        .map(|r| r.content_xml)
        .unwrap_or_default();
    let a = providers[&DemoKind::Income].answer(&zags_request);
    assert_eq!(
        a.rejection_code(),
        Some(RejectionCode::UnknownRequestDescription)
    );
}

#[test]
fn answers_are_pure() {
    let (scenario, providers) = setup(3, 2_000);
    let (_, again) = setup(3, 2_000);
    for r in scenario.iter().take(500) {
        assert_eq!(
            providers[&r.kind].answer(&r.content_xml),
            again[&r.kind].answer(&r.content_xml)
        );
    }
}

#[test]
fn request_cards_are_complete_unless_defective() {
    let (scenario, _) = setup(5, 2_000);
    for r in scenario.iter().take(2_000) {
        let provider = r.kind.provider();
        let ok_recipient = r.recipient_agency == provider.name;
        let has_contact = r.official.phone.is_some() || r.official.email.is_some();
        let complete = ok_recipient
            && has_contact
            && !r.legal_basis.is_empty()
            && !r.search_details.is_empty()
            && (!r.kind.consent_required() || r.consent.is_some())
            && (!r.kind.restricted() || r.access_restricted);
        assert_eq!(complete, r.defect.is_none(), "{r:?}");
        assert_eq!(r.sender_agency, AGENCIES[0].name);
        assert!(r.service.registry_number.is_some());
        assert!(r.content_xml.contains(r.kind.namespace()));
        assert!(r
            .content_xml
            .contains(&format!(":{} xmlns:", r.kind.request_root())));
    }
}

#[test]
fn data_answers_describe_the_citizen_asked_about() {
    let (scenario, providers) = setup(8, 3_000);
    let p = scenario.population();
    let mut checked = 0;
    for r in scenario.iter().take(1_000) {
        if r.case != Case::Regular || r.defect.is_some() {
            continue;
        }
        let Some(id) = r.citizen else { continue };
        let c = &p.citizens()[id];
        if let DemoAnswer::Data(xml) = providers[&r.kind].answer(&r.content_xml).final_answer() {
            match r.kind {
                DemoKind::BirthRecord => {
                    assert!(xml.contains(&c.birth_record.number), "{xml}");
                    assert!(xml.contains(&c.first_name), "{xml}");
                }
                DemoKind::Income => {
                    assert!(xml.contains(&c.inn), "{xml}");
                    assert!(xml.contains(&c.first_name), "{xml}");
                }
                DemoKind::Disability => {
                    assert!(xml.contains(&c.snils), "{xml}");
                    assert_eq!(xml.contains("<sfr:Disability>"), c.disability.is_some());
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 700, "{checked}");
}
