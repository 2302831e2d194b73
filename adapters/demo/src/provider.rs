//! The provider side: how ZAGS, FNS and SFR answer, as pure functions of the request
//! content and the population (which every provider makes from the same seed).
//!
//! A provider reads the request (quick-xml), looks the person up by the search keys,
//! and answers:
//!
//! - **no data** (`NO_DATA`) when nobody matches, or the taxpayer had no income that year;
//! - **clarification** when the keys match several people (twins by surname and date
//!   of birth, namesakes) or the name does not match the SNILS holder's;
//! - otherwise **data**, except for about 3.3% answered **late** (after the 5-working-day
//!   deadline) and about 1% **rejected** (0.7% `FAILURE`, 0.3% `ACCESS_DENIED`),
//!   chosen by a hash of the seed and the search keys, so the same question always gets
//!   the same answer;
//! - a request that is not valid content of the kind gets `UNKNOWN_REQUEST_DESCRIPTION`.

use std::sync::Arc;

use crate::kinds::{
    birth_record_response, disability_response, income_response, DemoKind, PersonKey, Query,
    TaxpayerKey,
};
use crate::population::{norm, Population};
use crate::rng::{mix, tag};

/// The SMEV rejection reason codes (`RejectionReasonCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionCode {
    AccessDenied,
    NoData,
    UnknownRequestDescription,
    Failure,
}

impl RejectionCode {
    /// The code as SMEV writes it, e.g. `NO_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::AccessDenied => "ACCESS_DENIED",
            RejectionCode::NoData => "NO_DATA",
            RejectionCode::UnknownRequestDescription => "UNKNOWN_REQUEST_DESCRIPTION",
            RejectionCode::Failure => "FAILURE",
        }
    }
}

/// A provider's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoAnswer {
    /// The data: response content valid per `schemas/demo`.
    Data(String),
    /// Nothing found: a rejection with the code `NO_DATA`.
    NoData { description: String },
    /// A rejection with another code.
    Reject {
        code: RejectionCode,
        description: String,
    },
    /// An intermediate status: the provider needs more to execute the request.
    /// `parameters` name what is missing or does not match.
    Clarify {
        description: String,
        parameters: Vec<(String, String)>,
    },
    /// `then`, sent `delay_working_days` working days after the request was received:
    /// always more than the 5-day deadline.
    Late {
        delay_working_days: u32,
        then: Box<DemoAnswer>,
    },
}

impl DemoAnswer {
    /// The answer itself, whether late or not.
    pub fn final_answer(&self) -> &DemoAnswer {
        match self {
            DemoAnswer::Late { then, .. } => then.final_answer(),
            other => other,
        }
    }

    /// The rejection code, for `NoData` and `Reject`.
    pub fn rejection_code(&self) -> Option<RejectionCode> {
        match self.final_answer() {
            DemoAnswer::NoData { .. } => Some(RejectionCode::NoData),
            DemoAnswer::Reject { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// `data`, `no_data`, `reject`, `clarify` or `late`.
    pub fn label(&self) -> &'static str {
        match self {
            DemoAnswer::Data(_) => "data",
            DemoAnswer::NoData { .. } => "no_data",
            DemoAnswer::Reject { .. } => "reject",
            DemoAnswer::Clarify { .. } => "clarify",
            DemoAnswer::Late { .. } => "late",
        }
    }
}

/// Shares (ten-thousandths) of answers about a person found unambiguously.
const FAILURE: u64 = 70;
const ACCESS_DENIED: u64 = 30;
const LATE: u64 = 330;

/// The model of one provider (ZAGS, FNS or SFR) over the common population.
#[derive(Debug, Clone)]
pub struct Provider {
    kind: DemoKind,
    population: Arc<Population>,
}

impl Provider {
    pub fn new(kind: DemoKind, population: Arc<Population>) -> Provider {
        Provider { kind, population }
    }

    pub fn kind(&self) -> DemoKind {
        self.kind
    }

    pub fn population(&self) -> &Population {
        &self.population
    }

    /// The answer to a request whose `MessagePrimaryContent` is `request_content_xml`.
    /// Pure: the same content and population give the same answer.
    pub fn answer(&self, request_content_xml: &str) -> DemoAnswer {
        let query = match Query::parse(self.kind, request_content_xml) {
            Ok(q) => q,
            Err(e) => {
                return DemoAnswer::Reject {
                    code: RejectionCode::UnknownRequestDescription,
                    description: format!(
                        "Запрос не соответствует виду сведений «{}»: {e}",
                        self.kind.name()
                    ),
                }
            }
        };
        let p = &*self.population;
        match &query {
            Query::BirthRecord(key) => {
                let found = p.find_birth_records(
                    &key.surname,
                    key.first_name.as_deref(),
                    key.patronymic.as_deref(),
                    key.birth_date,
                );
                match found.as_slice() {
                    [] => no_data("Запись акта о рождении по указанным сведениям не найдена"),
                    [one] => self.outcome(&query, birth_record_response(&p.citizens()[*one])),
                    many => {
                        let mut parameters = vec![("matches".to_owned(), many.len().to_string())];
                        if key.first_name.is_none() {
                            parameters.push(("required".into(), "FirstName".into()));
                        }
                        if key.patronymic.is_none() {
                            parameters.push(("required".into(), "Patronymic".into()));
                        }
                        if parameters.len() == 1 {
                            parameters.push(("required".into(), "BirthPlace".into()));
                        }
                        DemoAnswer::Clarify {
                            description: format!(
                                "Найдено записей актов о рождении: {}. Уточните сведения о \
                                 ребёнке, чтобы определить нужную запись.",
                                many.len()
                            ),
                            parameters,
                        }
                    }
                }
            }
            Query::Income { key, year } => {
                let found = match key {
                    TaxpayerKey::Inn(inn) => p.by_inn(inn).into_iter().collect(),
                    TaxpayerKey::Snils(s) => p.by_snils(s).into_iter().collect(),
                    TaxpayerKey::Person(k) => p.find_by_name(
                        &k.surname,
                        k.first_name.as_deref(),
                        k.patronymic.as_deref(),
                        k.birth_date,
                    ),
                };
                match found.as_slice() {
                    [] => no_data("Налогоплательщик по указанным сведениям не найден"),
                    [one] => match income_response(p, &p.citizens()[*one], *year) {
                        Some(xml) => self.outcome(&query, xml),
                        None => no_data(&format!(
                            "Сведения о доходах налогоплательщика за {year} год от налоговых \
                             агентов не поступали"
                        )),
                    },
                    many => DemoAnswer::Clarify {
                        description: format!(
                            "Найдено налогоплательщиков с указанными ФИО и датой рождения: {}. \
                             Укажите ИНН или СНИЛС.",
                            many.len()
                        ),
                        parameters: vec![
                            ("matches".into(), many.len().to_string()),
                            ("required".into(), "Inn".into()),
                        ],
                    },
                }
            }
            Query::Disability { snils, person } => {
                let Some(id) = p.by_snils(snils) else {
                    return no_data("Сведения о лице с указанным СНИЛС в федеральном реестре инвалидов отсутствуют");
                };
                let c = &p.citizens()[id];
                let mismatches = mismatches(person, c);
                if mismatches.is_empty() {
                    self.outcome(&query, disability_response(c))
                } else {
                    DemoAnswer::Clarify {
                        description: format!(
                            "Сведения о лице не совпадают со сведениями о владельце СНИЛС ({}). \
                             Представьте документ о перемене фамилии, имени, отчества или \
                             уточните СНИЛС.",
                            mismatches.join(", ")
                        ),
                        parameters: mismatches
                            .into_iter()
                            .map(|m| ("mismatch".to_owned(), m.to_owned()))
                            .collect(),
                    }
                }
            }
        }
    }

    /// Data, or now and then late or rejected, decided by the seed and the question.
    fn outcome(&self, query: &Query, data: String) -> DemoAnswer {
        let mut key = String::from(self.kind.slug());
        for (name, value) in query.search_details() {
            key.push('|');
            key.push_str(&name);
            key.push('=');
            key.push_str(&norm(&value));
        }
        let h = mix(self.population.seed() ^ tag(&key));
        let roll = h % 10_000;
        if roll < FAILURE {
            DemoAnswer::Reject {
                code: RejectionCode::Failure,
                description: "Временный сбой информационной системы поставщика сведений. \
                              Повторите запрос позднее."
                    .to_owned(),
            }
        } else if roll < FAILURE + ACCESS_DENIED {
            DemoAnswer::Reject {
                code: RejectionCode::AccessDenied,
                description: "Сведения о лице ограничены в доступе (Федеральный закон от \
                              20.08.2004 № 119-ФЗ «О государственной защите потерпевших, \
                              свидетелей и иных участников уголовного судопроизводства»)."
                    .to_owned(),
            }
        } else if roll < FAILURE + ACCESS_DENIED + LATE {
            DemoAnswer::Late {
                delay_working_days: 6 + ((h >> 32) % 5) as u32,
                then: Box::new(DemoAnswer::Data(data)),
            }
        } else {
            DemoAnswer::Data(data)
        }
    }
}

fn no_data(description: &str) -> DemoAnswer {
    DemoAnswer::NoData {
        description: description.to_owned(),
    }
}

/// The fields of `key` that differ from the citizen's (current) particulars.
fn mismatches(key: &PersonKey, c: &crate::population::Citizen) -> Vec<&'static str> {
    let mut out = Vec::new();
    if norm(&key.surname) != norm(&c.surname) {
        out.push("Surname");
    }
    if key.first_name.as_deref().map(norm) != Some(norm(&c.first_name)) {
        out.push("FirstName");
    }
    if key
        .patronymic
        .as_deref()
        .is_some_and(|p| norm(p) != norm(&c.patronymic))
    {
        out.push("Patronymic");
    }
    if key.birth_date != c.birth_date {
        out.push("BirthDate");
    }
    out
}
