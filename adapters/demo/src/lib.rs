//! Content of the demo agencies: what the social-protection office asks the civil
//! registry, the tax office and the social fund, and how they answer.
//!
//! Four participants of a realistic Russian region (Kemerovo oblast – Kuzbass), all data
//! fictional:
//!
//! | participant | system | role |
//! |---|---|---|
//! | [`USZN`] social-protection office | `USZN_IS` | consumer: assigns child allowances and disability compensation |
//! | [`ZAGS`] civil registry | `ZAGS_IS` | provides birth records ([`DemoKind::BirthRecord`]) |
//! | [`FNS`] tax office | `FNS_IS` | provides income certificates ([`DemoKind::Income`]) |
//! | [`SFR`] social fund | `SFR_IS` | provides disability status ([`DemoKind::Disability`]: consent required, restricted) |
//!
//! The pieces, all deterministic and free of clocks and I/O:
//!
//! - [`Population::generate`]: fake citizens from a seed (names in the right gender
//!   forms, SNILS and INN with valid check digits, birth records, income, disability);
//! - [`Scenario`]: the consumer's stream of requests ([`DemoRequest`]: content plus the
//!   request card's items), with unknown people, ambiguous searches and defective cards
//!   mixed in;
//! - [`Provider`]: each provider's answer to a request's content ([`DemoAnswer`]);
//! - [`samples`]: request and response documents of every kind.
//!
//! ```
//! use std::sync::Arc;
//! use mezhved_demo::{DemoAnswer, Population, Provider, Scenario};
//!
//! let population = Arc::new(Population::generate(1, 2_000));
//! let scenario = Scenario::new(population.clone());
//! let request = scenario.request(0); // the same request on every run
//! assert_eq!(request.kind.provider().system, "ZAGS_IS");
//! // ... the consumer sends request.content_xml with a card made of its fields; then
//! let zags = Provider::new(request.kind, population);
//! match zags.answer(&request.content_xml) {
//!     DemoAnswer::Data(xml) => assert!(xml.contains("BirthRecordResponse")),
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! The consumer and every provider must make the population from the same seed **and
//! size** ([`DEFAULT_POPULATION_SIZE`] unless there is a reason for another): the
//! scenario asks about the people the providers hold.
//!
//! The XML follows `schemas/demo/*.xsd`; the registry is `deploy/demo/registry.toml`.
//! This crate does not depend on the gateway: an adapter maps [`DemoRequest`] onto the
//! real request card and [`DemoAnswer`] onto SMEV responses.

mod ids;
mod kinds;
mod names;
mod population;
mod provider;
mod rng;
mod samples;
mod scenario;
mod xml;

pub use ids::{
    format_snils, is_valid_inn, is_valid_snils, organisation_inn, person_inn, snils_control,
};
pub use kinds::{DemoKind, KindRef};
pub use population::{
    AnnualIncome, BirthRecord, Citizen, Disability, DisabilityGroup, FatherBasis, IncomeEntry,
    ParentRecord, Population, Sex, TaxAgent, INCOME_YEARS, REFERENCE_DATE,
};
pub use provider::{DemoAnswer, Provider, RejectionCode};
pub use samples::samples;
pub use scenario::{Case, Consent, Defect, DemoRequest, Official, Scenario, Service};

/// A population size for demos: ~10,000 citizens, generated in well under a second.
pub const DEFAULT_POPULATION_SIZE: usize = 10_000;

/// A demo participant and its one information system, as in `deploy/demo/registry.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agency {
    /// The participant's mnemonic.
    pub mnemonic: &'static str,
    /// The participant's name (what a request card names as sender or recipient).
    pub name: &'static str,
    /// The information system's mnemonic.
    pub system: &'static str,
    /// The information system's name.
    pub system_name: &'static str,
}

/// The social-protection office: the consumer.
pub const USZN: Agency = Agency {
    mnemonic: "USZN",
    name: "Управление социальной защиты населения администрации города Кемерово",
    system: "USZN_IS",
    system_name: "АИС «Электронный социальный регистр населения»",
};

/// The civil registry: provides birth records.
pub const ZAGS: Agency = Agency {
    mnemonic: "ZAGS",
    name: "Комитет записи актов гражданского состояния Кузбасса",
    system: "ZAGS_IS",
    system_name: "Региональный сегмент ФГИС «ЕГР ЗАГС»",
};

/// The tax office: provides income certificates.
pub const FNS: Agency = Agency {
    mnemonic: "FNS",
    name: "Управление Федеральной налоговой службы по Кемеровской области – Кузбассу",
    system: "FNS_IS",
    system_name: "АИС «Налог-3», подсистема сведений о доходах",
};

/// The social fund: provides disability status.
pub const SFR: Agency = Agency {
    mnemonic: "SFR",
    name: "Отделение Фонда пенсионного и социального страхования Российской Федерации по \
           Кемеровской области – Кузбассу",
    system: "SFR_IS",
    system_name: "Федеральный реестр инвалидов, региональный узел",
};

/// Every demo agency, the consumer first.
pub const AGENCIES: [&Agency; 4] = [&USZN, &ZAGS, &FNS, &SFR];
