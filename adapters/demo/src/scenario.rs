//! The consumer side: the stream of requests the social-protection office (USZN) sends
//! while assigning child allowances and disability benefits.
//!
//! Request `i` of a scenario depends only on the population's seed and `i` (each has
//! its own random stream), so any request can be made alone and again. The mix:
//!
//! | share | what |
//! |---|---|
//! | 40 / 35 / 25% | birth record (ZAGS) / income (FNS) / disability status (SFR) |
//! | ~2% | defective: the request card lacks something the gateway requires ([`Defect`]); the gateway rejects it |
//! | ~3% | about someone who is in no register ([`Case::UnknownPerson`]): the provider answers NO_DATA |
//! | ~4% | ambiguous ([`Case::Ambiguous`]): twins asked for by surname and date of birth only, a namesake asked for by name, a woman asked for by her maiden surname; the provider asks for clarification |
//! | the rest | regular requests about people the provider knows |

use std::sync::Arc;

use crate::kinds::{DemoKind, KindRef, PersonKey, Query, TaxpayerKey};
use crate::population::{stranger, Citizen, Population, INCOME_YEARS};
use crate::rng::Rng;
use crate::{AGENCIES, USZN};

/// Item 3 of the request card: the public service the data is needed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// The number in the register of public services.
    pub registry_number: Option<String>,
}

/// Item 8 of the request card: the official who prepared the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Official {
    pub full_name: String,
    pub position: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// Item 9 of the request card: the data subject's consent was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The document that records it.
    pub document: String,
}

/// What situation a request was made to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Case {
    /// About someone the provider knows, found unambiguously.
    Regular,
    /// About someone in no register: the provider answers NO_DATA.
    UnknownPerson,
    /// The search details match several people, or not the holder of the SNILS: the
    /// provider asks for clarification.
    Ambiguous,
}

/// A deliberate defect of a request card, which the gateway must reject. The fields of
/// the [`DemoRequest`] already carry it (a caller that maps them faithfully sends the
/// defective card); the defect says what was broken and what to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Defect {
    /// No `SubjectConsent` for a kind that requires consent (item 9): `consent` is `None`.
    MissingConsent,
    /// No `AccessRestriction` for a restricted kind: `access_restricted` is false.
    MissingAccessRestriction,
    /// No legal basis (item 4): `legal_basis` is empty.
    MissingLegalBasis,
    /// No search details (item 5): `search_details` is empty.
    MissingSearchDetails,
    /// The official has neither phone nor e-mail (item 8).
    OfficialWithoutContact,
    /// The card names an agency other than the kind's provider as the recipient (item 2).
    WrongRecipient,
}

impl Defect {
    /// The item of 210-FZ art. 7.2 concerned, if any.
    pub fn card_item(self) -> Option<u8> {
        match self {
            Defect::MissingConsent => Some(9),
            Defect::MissingAccessRestriction => None,
            Defect::MissingLegalBasis => Some(4),
            Defect::MissingSearchDetails => Some(5),
            Defect::OfficialWithoutContact => Some(8),
            Defect::WrongRecipient => Some(2),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Defect::MissingConsent => {
                "no mark of the data subject's consent for a kind that requires it"
            }
            Defect::MissingAccessRestriction => "no access-restriction mark for a restricted kind",
            Defect::MissingLegalBasis => "no legal basis",
            Defect::MissingSearchDetails => "no search details",
            Defect::OfficialWithoutContact => "the official has neither phone nor e-mail",
            Defect::WrongRecipient => "the recipient agency is not the kind's provider",
        }
    }
}

/// One request of the consumer: the content and everything its request card states.
/// The sending date (item 7) and the sender's registration date are the caller's: the
/// day it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoRequest {
    /// Its index in the scenario.
    pub index: u64,
    pub kind: DemoKind,
    /// `MessagePrimaryContent`, valid per `schemas/demo`.
    pub content_xml: String,
    /// Item 1.
    pub sender_agency: String,
    /// Item 2.
    pub recipient_agency: String,
    /// Item 3.
    pub service: Service,
    /// Item 4: (act, provision).
    pub legal_basis: Vec<(String, String)>,
    /// Item 5: (name, value), e.g. ("snils", "112-233-445 95").
    pub search_details: Vec<(String, String)>,
    /// Item 6.
    pub reply_contact: String,
    /// Item 8.
    pub official: Official,
    /// Item 9 (present when the kind requires consent).
    pub consent: Option<Consent>,
    /// The card carries the access-restriction (DSP) mark.
    pub access_restricted: bool,
    /// The sender's own registration number of the request.
    pub sender_registration: String,
    /// The citizen asked about, as an index into the population (`None`: someone not in
    /// the population).
    pub citizen: Option<usize>,
    pub case: Case,
    pub defect: Option<Defect>,
}

impl DemoRequest {
    pub fn kind_ref(&self) -> KindRef {
        self.kind.kind_ref()
    }
}

/// Shares in ten-thousandths.
const DEFECTIVE: u64 = 200;
const UNKNOWN: u64 = 300;
const AMBIGUOUS: u64 = 400;
/// Of regular disability requests, the share about people who have a disability.
const DISABLED: u64 = 6_500;

const CHILD_ALLOWANCE: (&str, &str) = (
    "Назначение и выплата ежемесячного пособия на ребенка",
    "4240100010000569170",
);
const DISABILITY_COMPENSATION: (&str, &str) = (
    "Предоставление компенсации расходов на оплату жилого помещения и коммунальных услуг \
     инвалидам и семьям, имеющим детей-инвалидов",
    "4240100010000571016",
);

const LAW_210: &str =
    "Федеральный закон от 27.07.2010 № 210-ФЗ «Об организации предоставления государственных и муниципальных услуг»";

fn legal_basis(kind: DemoKind) -> Vec<(String, String)> {
    let specific: (&str, &str) = match kind {
        DemoKind::BirthRecord => (
            "Федеральный закон от 15.11.1997 № 143-ФЗ «Об актах гражданского состояния»",
            "статья 13.2, пункт 1",
        ),
        DemoKind::Income => (
            "Налоговый кодекс Российской Федерации (часть первая) от 31.07.1998 № 146-ФЗ",
            "статья 102, пункт 1",
        ),
        DemoKind::Disability => (
            "Федеральный закон от 24.11.1995 № 181-ФЗ «О социальной защите инвалидов в Российской Федерации»",
            "статья 5.1, часть 6",
        ),
    };
    vec![
        (LAW_210.to_owned(), "статья 7.1, часть 1".to_owned()),
        (specific.0.to_owned(), specific.1.to_owned()),
    ]
}

/// An official of USZN: name, position, phone, e-mail.
type OfficialRow = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The officials who send requests for the child allowance.
const ALLOWANCE_OFFICIALS: &[OfficialRow] = &[
    (
        "Петрова Анна Сергеевна",
        "главный специалист отдела назначения пособий",
        Some("+7 (3842) 75-12-40"),
        Some("petrova@uszn.kuzbass.example"),
    ),
    (
        "Соколова Марина Викторовна",
        "ведущий специалист отдела назначения пособий",
        Some("+7 (3842) 75-12-41"),
        None,
    ),
];

/// The officials who send requests for the disability compensation.
const COMPENSATION_OFFICIALS: &[OfficialRow] = &[
    (
        "Григорьев Олег Николаевич",
        "начальник отдела компенсационных выплат",
        Some("+7 (3842) 75-13-02"),
        Some("grigoriev@uszn.kuzbass.example"),
    ),
    (
        "Ким Ольга Юрьевна",
        "специалист 1 разряда отдела компенсационных выплат",
        None,
        Some("kim@uszn.kuzbass.example"),
    ),
];

const REPLY_CONTACT: &str =
    "650000, г. Кемерово, ул. Весенняя, д. 5; uszn@uszn.kuzbass.example; +7 (3842) 75-12-00";

/// A deterministic stream of the consumer's requests over a population.
#[derive(Debug, Clone)]
pub struct Scenario {
    population: Arc<Population>,
}

impl Scenario {
    pub fn new(population: Arc<Population>) -> Scenario {
        Scenario { population }
    }

    pub fn population(&self) -> &Population {
        &self.population
    }

    /// The requests from index 0 on (endless).
    pub fn iter(&self) -> impl Iterator<Item = DemoRequest> + '_ {
        (0u64..).map(move |i| self.request(i))
    }

    /// Request `index`: the same for the same population seed and size, whenever made.
    pub fn request(&self, index: u64) -> DemoRequest {
        let p = &*self.population;
        let mut rng = Rng::derive(p.seed(), "scenario", index);
        let kind = DemoKind::ALL[rng.weighted(&[40, 35, 25])];
        let roll = rng.below(10_000);
        let (mut case, defect) = if roll < DEFECTIVE {
            (Case::Regular, Some(pick_defect(&mut rng, kind)))
        } else if roll < DEFECTIVE + UNKNOWN {
            (Case::UnknownPerson, None)
        } else if roll < DEFECTIVE + UNKNOWN + AMBIGUOUS {
            (Case::Ambiguous, None)
        } else {
            (Case::Regular, None)
        };
        let made = match case {
            Case::Ambiguous => ambiguous(p, &mut rng, kind),
            Case::UnknownPerson => Some(unknown(p, &mut rng, kind, index)),
            Case::Regular => None,
        };
        let (query, citizen) = match made {
            Some(m) => m,
            None => {
                // Regular, or no ambiguous situation in a tiny population.
                case = Case::Regular;
                regular(p, &mut rng, kind)
            }
        };
        let ((service, number), officials) = match kind {
            DemoKind::BirthRecord | DemoKind::Income => (CHILD_ALLOWANCE, ALLOWANCE_OFFICIALS),
            DemoKind::Disability => (DISABILITY_COMPENSATION, COMPENSATION_OFFICIALS),
        };
        let (full_name, position, phone, email) = *rng.pick(officials);
        let mut request = DemoRequest {
            index,
            kind,
            content_xml: query.to_xml(),
            sender_agency: USZN.name.to_owned(),
            recipient_agency: kind.provider().name.to_owned(),
            service: Service {
                name: service.to_owned(),
                registry_number: Some(number.to_owned()),
            },
            legal_basis: legal_basis(kind),
            search_details: query.search_details(),
            reply_contact: REPLY_CONTACT.to_owned(),
            official: Official {
                full_name: full_name.to_owned(),
                position: position.to_owned(),
                phone: phone.map(str::to_owned),
                email: email.map(str::to_owned),
            },
            consent: kind.consent_required().then(|| Consent {
                document: format!(
                    "заявление о предоставлении государственной услуги с согласием на \
                     обработку персональных данных, вх. № {}",
                    10_000 + index
                ),
            }),
            access_restricted: kind.restricted(),
            sender_registration: format!("УСЗН-{:07}", index + 1),
            citizen,
            case,
            defect,
        };
        if let Some(d) = defect {
            apply(&mut request, d, &mut rng);
        }
        request
    }
}

fn pick_defect(rng: &mut Rng, kind: DemoKind) -> Defect {
    use Defect::*;
    if kind.consent_required() || kind.restricted() {
        let all = [
            MissingConsent,
            MissingAccessRestriction,
            MissingLegalBasis,
            MissingSearchDetails,
            OfficialWithoutContact,
            WrongRecipient,
        ];
        let weights = [
            if kind.consent_required() { 40 } else { 0 },
            if kind.restricted() { 20 } else { 0 },
            10,
            10,
            10,
            10,
        ];
        all[rng.weighted(&weights)]
    } else {
        *rng.pick(&[
            MissingLegalBasis,
            MissingSearchDetails,
            OfficialWithoutContact,
            WrongRecipient,
        ])
    }
}

fn apply(r: &mut DemoRequest, defect: Defect, rng: &mut Rng) {
    match defect {
        Defect::MissingConsent => r.consent = None,
        Defect::MissingAccessRestriction => r.access_restricted = false,
        Defect::MissingLegalBasis => r.legal_basis.clear(),
        Defect::MissingSearchDetails => r.search_details.clear(),
        Defect::OfficialWithoutContact => {
            r.official.phone = None;
            r.official.email = None;
        }
        Defect::WrongRecipient => {
            let provider = r.kind.provider().mnemonic;
            let others: Vec<&str> = AGENCIES
                .iter()
                .filter(|a| a.mnemonic != provider && a.mnemonic != USZN.mnemonic)
                .map(|a| a.name)
                .collect();
            r.recipient_agency = (*rng.pick(&others)).to_owned();
        }
    }
}

/// A birth-record key as the registry holds it (the surname given at birth).
fn birth_key(c: &Citizen) -> PersonKey {
    PersonKey {
        surname: c.birth_record.surname.clone(),
        ..PersonKey::of(c)
    }
}

fn from(p: &Population, rng: &mut Rng, group: &[usize]) -> usize {
    if group.is_empty() {
        rng.index(p.len())
    } else {
        *rng.pick(group)
    }
}

fn regular(p: &Population, rng: &mut Rng, kind: DemoKind) -> (Query, Option<usize>) {
    if p.is_empty() {
        // Nobody to ask about: ask about a stranger.
        return unknown(p, rng, kind, 0);
    }
    match kind {
        DemoKind::BirthRecord => {
            let id = from(p, rng, &p.groups.children);
            (Query::BirthRecord(birth_key(&p.citizens()[id])), Some(id))
        }
        DemoKind::Income => {
            let id = from(p, rng, &p.groups.earners);
            let c = &p.citizens()[id];
            let years: Vec<i32> = INCOME_YEARS
                .into_iter()
                .filter(|&y| c.income_in(y).next().is_some())
                .collect();
            let year = if years.is_empty() {
                *rng.pick(&INCOME_YEARS)
            } else {
                *rng.pick(&years)
            };
            let key = match rng.weighted(&[60, 30, 10]) {
                0 => TaxpayerKey::Inn(c.inn.clone()),
                1 => TaxpayerKey::Snils(c.snils.clone()),
                _ if p.groups.namesakes.binary_search(&id).is_ok() => {
                    TaxpayerKey::Inn(c.inn.clone())
                }
                _ => TaxpayerKey::Person(PersonKey::of(c)),
            };
            (Query::Income { key, year }, Some(id))
        }
        DemoKind::Disability => {
            let id = if rng.chance(DISABLED) {
                from(p, rng, &p.groups.disabled)
            } else {
                rng.index(p.len())
            };
            let c = &p.citizens()[id];
            (
                Query::Disability {
                    snils: c.snils.clone(),
                    person: PersonKey::of(c),
                },
                Some(id),
            )
        }
    }
}

fn unknown(p: &Population, rng: &mut Rng, kind: DemoKind, index: u64) -> (Query, Option<usize>) {
    let s = stranger(p, index, kind == DemoKind::BirthRecord);
    let query = match kind {
        DemoKind::BirthRecord => Query::BirthRecord(birth_key(&s)),
        DemoKind::Income => Query::Income {
            key: if rng.chance(7_000) {
                TaxpayerKey::Inn(s.inn.clone())
            } else {
                TaxpayerKey::Snils(s.snils.clone())
            },
            year: *rng.pick(&INCOME_YEARS),
        },
        DemoKind::Disability => Query::Disability {
            snils: s.snils.clone(),
            person: PersonKey::of(&s),
        },
    };
    (query, None)
}

fn ambiguous(p: &Population, rng: &mut Rng, kind: DemoKind) -> Option<(Query, Option<usize>)> {
    match kind {
        DemoKind::BirthRecord => {
            let id = *pick_opt(rng, &p.groups.same_birth)?;
            let c = &p.citizens()[id];
            let key = PersonKey {
                first_name: None,
                patronymic: None,
                ..birth_key(c)
            };
            Some((Query::BirthRecord(key), Some(id)))
        }
        DemoKind::Income => {
            let id = *pick_opt(rng, &p.groups.namesakes)?;
            let c = &p.citizens()[id];
            let year = *rng.pick(&INCOME_YEARS);
            Some((
                Query::Income {
                    key: TaxpayerKey::Person(PersonKey::of(c)),
                    year,
                },
                Some(id),
            ))
        }
        DemoKind::Disability => {
            let id = *pick_opt(rng, &p.groups.renamed)?;
            let c = &p.citizens()[id];
            let person = PersonKey {
                surname: c.previous_surname.clone().unwrap_or_default(),
                ..PersonKey::of(c)
            };
            Some((
                Query::Disability {
                    snils: c.snils.clone(),
                    person,
                },
                Some(id),
            ))
        }
    }
}

fn pick_opt<'a>(rng: &mut Rng, items: &'a [usize]) -> Option<&'a usize> {
    if items.is_empty() {
        None
    } else {
        Some(rng.pick(items))
    }
}
