//! The three demo kinds of information: identity (namespace, root elements), the
//! queries a consumer sends (to and from content XML, as request-card search details)
//! and the providers' data responses. The XML follows `schemas/demo/*.xsd`.

use chrono::NaiveDate;

use crate::population::{Citizen, Population};
use crate::xml::{read_flat, Flat, Writer};

/// A kind of information identified as the gateway identifies it: the namespace and
/// local name of the request content's root element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KindRef {
    pub namespace: String,
    pub root: String,
}

/// One of the demo kinds of information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DemoKind {
    /// ZAGS: the state registration record of a birth.
    BirthRecord,
    /// FNS: income received from tax agents in a year (after 2-NDFL).
    Income,
    /// SFR: disability status from the federal register of disabled persons.
    Disability,
}

impl DemoKind {
    pub const ALL: [DemoKind; 3] = [
        DemoKind::BirthRecord,
        DemoKind::Income,
        DemoKind::Disability,
    ];

    pub fn namespace(self) -> &'static str {
        match self {
            DemoKind::BirthRecord => "urn://mezhved/demo/zags/birth-record/1.0",
            DemoKind::Income => "urn://mezhved/demo/fns/income/1.0",
            DemoKind::Disability => "urn://mezhved/demo/sfr/disability/1.0",
        }
    }

    /// The request content's root element: the kind's key in the registry.
    pub fn request_root(self) -> &'static str {
        match self {
            DemoKind::BirthRecord => "BirthRecordRequest",
            DemoKind::Income => "IncomeCertificateRequest",
            DemoKind::Disability => "DisabilityStatusRequest",
        }
    }

    pub fn response_root(self) -> &'static str {
        match self {
            DemoKind::BirthRecord => "BirthRecordResponse",
            DemoKind::Income => "IncomeCertificateResponse",
            DemoKind::Disability => "DisabilityStatusResponse",
        }
    }

    pub fn kind_ref(self) -> KindRef {
        KindRef {
            namespace: self.namespace().to_owned(),
            root: self.request_root().to_owned(),
        }
    }

    /// The demo kind with this request namespace and root, if any.
    pub fn from_ref(namespace: &str, root: &str) -> Option<DemoKind> {
        DemoKind::ALL
            .into_iter()
            .find(|k| k.namespace() == namespace && k.request_root() == root)
    }

    /// The kind's name in the registry.
    pub fn name(self) -> &'static str {
        match self {
            DemoKind::BirthRecord => "Сведения о государственной регистрации рождения",
            DemoKind::Income => "Сведения о доходах физического лица (2-НДФЛ)",
            DemoKind::Disability => "Сведения об инвалидности из ФРИ",
        }
    }

    /// A short ASCII name for files: `zags-birth-record`, `fns-income`, `sfr-disability`.
    pub fn slug(self) -> &'static str {
        match self {
            DemoKind::BirthRecord => "zags-birth-record",
            DemoKind::Income => "fns-income",
            DemoKind::Disability => "sfr-disability",
        }
    }

    /// The schema file under `schemas/demo/`.
    pub fn schema_file(self) -> &'static str {
        match self {
            DemoKind::BirthRecord => "zags-birth-record-1.0.xsd",
            DemoKind::Income => "fns-income-1.0.xsd",
            DemoKind::Disability => "sfr-disability-1.0.xsd",
        }
    }

    /// The agency that provides it.
    pub fn provider(self) -> &'static crate::Agency {
        match self {
            DemoKind::BirthRecord => &crate::ZAGS,
            DemoKind::Income => &crate::FNS,
            DemoKind::Disability => &crate::SFR,
        }
    }

    /// The law requires the data subject's consent (registry `consent_required`).
    pub fn consent_required(self) -> bool {
        matches!(self, DemoKind::Disability)
    }

    /// Restricted, for official use only (registry `restricted`).
    pub fn restricted(self) -> bool {
        matches!(self, DemoKind::Disability)
    }

    fn prefix(self) -> &'static str {
        match self {
            DemoKind::BirthRecord => "zags",
            DemoKind::Income => "fns",
            DemoKind::Disability => "sfr",
        }
    }

    fn writer(self, root: &'static str) -> Writer {
        Writer::new(self.prefix(), self.namespace(), root)
    }
}

/// Full name and date of birth as a consumer knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PersonKey {
    pub surname: String,
    pub first_name: Option<String>,
    pub patronymic: Option<String>,
    pub birth_date: NaiveDate,
}

impl PersonKey {
    pub(crate) fn of(c: &Citizen) -> PersonKey {
        PersonKey {
            surname: c.surname.clone(),
            first_name: Some(c.first_name.clone()),
            patronymic: Some(c.patronymic.clone()),
            birth_date: c.birth_date,
        }
    }

    fn write(&self, w: &mut Writer) {
        w.leaf("Surname", &self.surname)
            .leaf_opt("FirstName", self.first_name.as_deref())
            .leaf_opt("Patronymic", self.patronymic.as_deref())
            .leaf("BirthDate", &self.birth_date.to_string());
    }

    fn details(&self, out: &mut Vec<(String, String)>) {
        out.push(("surname".into(), self.surname.clone()));
        if let Some(f) = &self.first_name {
            out.push(("first_name".into(), f.clone()));
        }
        if let Some(p) = &self.patronymic {
            out.push(("patronymic".into(), p.clone()));
        }
        out.push(("birth_date".into(), self.birth_date.to_string()));
    }

    fn read(f: &Flat, prefix: &str, first_name_required: bool) -> Result<PersonKey, String> {
        let at = |name: &str| format!("{prefix}{name}");
        let first_name = f.get(&at("FirstName")).map(str::to_owned);
        if first_name_required && first_name.is_none() {
            return Err(format!("{} is missing", at("FirstName")));
        }
        Ok(PersonKey {
            surname: name_part(f, &at("Surname"))?,
            first_name: match first_name {
                Some(n) => Some(check_name(&n, &at("FirstName"))?),
                None => None,
            },
            patronymic: match f.get(&at("Patronymic")) {
                Some(n) => Some(check_name(n, &at("Patronymic"))?),
                None => None,
            },
            birth_date: date(f, &at("BirthDate"))?,
        })
    }
}

/// How the tax office is to find the taxpayer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaxpayerKey {
    Inn(String),
    Snils(String),
    Person(PersonKey),
}

/// A consumer's question, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    BirthRecord(PersonKey),
    Income { key: TaxpayerKey, year: i32 },
    Disability { snils: String, person: PersonKey },
}

impl Query {
    pub(crate) fn kind(&self) -> DemoKind {
        match self {
            Query::BirthRecord(_) => DemoKind::BirthRecord,
            Query::Income { .. } => DemoKind::Income,
            Query::Disability { .. } => DemoKind::Disability,
        }
    }

    /// The request content.
    pub(crate) fn to_xml(&self) -> String {
        let kind = self.kind();
        let mut w = kind.writer(kind.request_root());
        match self {
            Query::BirthRecord(p) => p.write(&mut w),
            Query::Income { key, year } => {
                match key {
                    TaxpayerKey::Inn(inn) => {
                        w.leaf("Inn", inn);
                    }
                    TaxpayerKey::Snils(s) => {
                        w.leaf("Snils", s);
                    }
                    TaxpayerKey::Person(p) => {
                        w.open("Person");
                        p.write(&mut w);
                        w.close();
                    }
                }
                w.leaf("Year", &year.to_string());
            }
            Query::Disability { snils, person } => {
                w.leaf("Snils", snils);
                person.write(&mut w);
            }
        }
        w.finish()
    }

    /// The request card's search details (item 5): what the content searches by.
    pub(crate) fn search_details(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self {
            Query::BirthRecord(p) => p.details(&mut out),
            Query::Income { key, year } => {
                match key {
                    TaxpayerKey::Inn(inn) => out.push(("inn".into(), inn.clone())),
                    TaxpayerKey::Snils(s) => out.push(("snils".into(), s.clone())),
                    TaxpayerKey::Person(p) => p.details(&mut out),
                }
                out.push(("year".into(), year.to_string()));
            }
            Query::Disability { snils, person } => {
                out.push(("snils".into(), snils.clone()));
                person.details(&mut out);
            }
        }
        out
    }

    /// Reads a request of `kind` back; the error says what is wrong with it.
    pub(crate) fn parse(kind: DemoKind, xml: &str) -> Result<Query, String> {
        let f = read_flat(xml, kind.namespace())?;
        if f.root != kind.request_root() {
            return Err(format!(
                "the root element is {}, not {}",
                f.root,
                kind.request_root()
            ));
        }
        let allowed: &[&str] = match kind {
            DemoKind::BirthRecord => &["Surname", "FirstName", "Patronymic", "BirthDate"],
            DemoKind::Income => &[
                "Inn",
                "Snils",
                "Person/Surname",
                "Person/FirstName",
                "Person/Patronymic",
                "Person/BirthDate",
                "Year",
            ],
            DemoKind::Disability => &["Snils", "Surname", "FirstName", "Patronymic", "BirthDate"],
        };
        if let Some((p, _)) = f
            .leaves
            .iter()
            .find(|(p, _)| !allowed.contains(&p.as_str()))
        {
            return Err(format!("unexpected element {p}"));
        }
        match kind {
            DemoKind::BirthRecord => Ok(Query::BirthRecord(PersonKey::read(&f, "", false)?)),
            DemoKind::Income => {
                let has_person = f.leaves.iter().any(|(p, _)| p.starts_with("Person/"));
                let keys = [f.get("Inn").is_some(), f.get("Snils").is_some(), has_person];
                if keys.iter().filter(|&&k| k).count() != 1 {
                    return Err("exactly one of Inn, Snils, Person is required".to_owned());
                }
                let key = if let Some(inn) = f.get("Inn") {
                    if inn.len() != 12 || !crate::ids::is_valid_inn(inn) {
                        return Err(format!("Inn is not a valid individual's INN: {inn}"));
                    }
                    TaxpayerKey::Inn(inn.to_owned())
                } else if f.get("Snils").is_some() {
                    TaxpayerKey::Snils(snils(&f, "Snils")?)
                } else {
                    TaxpayerKey::Person(PersonKey::read(&f, "Person/", true)?)
                };
                let year = f
                    .get("Year")
                    .ok_or("Year is missing")?
                    .parse::<i32>()
                    .ok()
                    .filter(|y| (2000..=2099).contains(y))
                    .ok_or("Year is not a year between 2000 and 2099")?;
                Ok(Query::Income { key, year })
            }
            DemoKind::Disability => Ok(Query::Disability {
                snils: snils(&f, "Snils")?,
                person: PersonKey::read(&f, "", true)?,
            }),
        }
    }
}

fn check_name(v: &str, path: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.chars().count() <= 60
        && v.chars()
            .all(|c| matches!(c, 'А'..='я' | 'Ё' | 'ё' | '-' | ' ' | '\''))
        && v.starts_with(|c: char| c.is_alphabetic())
        && v.ends_with(|c: char| c.is_alphabetic());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!("{path} is not a name in Cyrillic"))
    }
}

fn name_part(f: &Flat, path: &str) -> Result<String, String> {
    check_name(f.get(path).ok_or(format!("{path} is missing"))?, path)
}

fn date(f: &Flat, path: &str) -> Result<NaiveDate, String> {
    let v = f.get(path).ok_or(format!("{path} is missing"))?;
    if v.len() != 10 {
        return Err(format!("{path} is not a date YYYY-MM-DD"));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format!("{path} is not a date YYYY-MM-DD"))
}

fn snils(f: &Flat, path: &str) -> Result<String, String> {
    let v = f.get(path).ok_or(format!("{path} is missing"))?;
    if crate::ids::is_valid_snils(v) {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "{path} is not a SNILS NNN-NNN-NNN CC with a valid control number"
        ))
    }
}

/// Formats kopecks as roubles with two decimals.
fn money(kopecks: u64) -> String {
    format!("{}.{:02}", kopecks / 100, kopecks % 100)
}

/// The birth record of `c` (response content).
pub(crate) fn birth_record_response(c: &Citizen) -> String {
    let r = &c.birth_record;
    let mut w = DemoKind::BirthRecord.writer(DemoKind::BirthRecord.response_root());
    w.leaf("RecordNumber", &r.number)
        .leaf("RecordDate", &r.date.to_string())
        .leaf("RegistryOffice", &r.office)
        .open("Child")
        .leaf("Surname", &r.surname)
        .leaf("FirstName", &c.first_name)
        .leaf("Patronymic", &c.patronymic)
        .leaf("Sex", c.sex.code())
        .leaf("BirthDate", &c.birth_date.to_string())
        .leaf("BirthPlace", &r.place)
        .close();
    let parent = |w: &mut Writer, name: &'static str, p: &crate::population::ParentRecord| {
        w.open(name)
            .leaf("Surname", &p.surname)
            .leaf("FirstName", &p.first_name)
            .leaf("Patronymic", &p.patronymic)
            .leaf("BirthDate", &p.birth_date.to_string())
            .leaf("Citizenship", &p.citizenship)
            .close();
    };
    parent(&mut w, "Mother", &r.mother);
    if let Some((father, basis)) = &r.father {
        parent(&mut w, "Father", father);
        w.leaf("FatherInfoBasis", basis.code());
    }
    w.finish()
}

/// The income certificate of `c` for `year` (response content); `None` when the
/// citizen had no income that year.
pub(crate) fn income_response(population: &Population, c: &Citizen, year: i32) -> Option<String> {
    let incomes: Vec<_> = c.income_in(year).collect();
    if incomes.is_empty() {
        return None;
    }
    let mut w = DemoKind::Income.writer(DemoKind::Income.response_root());
    w.open("Taxpayer")
        .leaf("Inn", &c.inn)
        .leaf("Snils", &c.snils)
        .leaf("Surname", &c.surname)
        .leaf("FirstName", &c.first_name)
        .leaf("Patronymic", &c.patronymic)
        .leaf("BirthDate", &c.birth_date.to_string())
        .close()
        .leaf("Year", &year.to_string());
    for a in incomes {
        let Some(agent) = population.tax_agents().get(a.tax_agent) else {
            continue;
        };
        w.open("Certificate")
            .open("TaxAgent")
            .leaf("Name", &agent.name)
            .leaf("Inn", &agent.inn)
            .leaf("Kpp", &agent.kpp)
            .close()
            .leaf("TaxRate", "13");
        for e in &a.entries {
            w.open("Income")
                .leaf("Month", &e.month.to_string())
                .leaf("Code", e.code)
                .leaf("Amount", &money(e.kopecks))
                .close();
        }
        let total = a.total_kopecks();
        // The tax is computed in whole roubles (Tax Code art. 52 part 6).
        let tax = (total * 13 + 5_000) / 10_000 * 100;
        w.open("Totals")
            .leaf("TotalIncome", &money(total))
            .leaf("TaxBase", &money(total))
            .leaf("TaxCalculated", &money(tax))
            .leaf("TaxWithheld", &money(tax))
            .close()
            .close();
    }
    Some(w.finish())
}

/// The disability status of `c` (response content).
pub(crate) fn disability_response(c: &Citizen) -> String {
    let mut w = DemoKind::Disability.writer(DemoKind::Disability.response_root());
    w.leaf("Snils", &c.snils);
    match &c.disability {
        Some(d) => {
            w.open("Disability")
                .leaf("Group", d.group.code())
                .leaf("Cause", &d.cause)
                .leaf("EstablishedOn", &d.established_on.to_string());
            match d.until {
                Some(u) => w.leaf("Until", &u.to_string()),
                None => w.empty("Indefinite"),
            };
            w.leaf("Authority", &d.authority)
                .leaf("ActNumber", &d.act_number)
                .close();
        }
        None => {
            w.empty("NotEstablished");
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population::ymd;

    fn person() -> PersonKey {
        PersonKey {
            surname: "Ёлкина".into(),
            first_name: Some("Анна".into()),
            patronymic: None,
            birth_date: ymd(2019, 5, 14),
        }
    }

    #[test]
    fn queries_round_trip() {
        for q in [
            Query::BirthRecord(person()),
            Query::BirthRecord(PersonKey {
                first_name: None,
                ..person()
            }),
            Query::Income {
                key: TaxpayerKey::Inn("500100732259".into()),
                year: 2024,
            },
            Query::Income {
                key: TaxpayerKey::Snils("112-233-445 95".into()),
                year: 2025,
            },
            Query::Income {
                key: TaxpayerKey::Person(person()),
                year: 2023,
            },
            Query::Disability {
                snils: "112-233-445 95".into(),
                person: person(),
            },
        ] {
            let xml = q.to_xml();
            assert_eq!(Query::parse(q.kind(), &xml), Ok(q.clone()), "{xml}");
            assert!(!q.search_details().is_empty());
        }
    }

    #[test]
    fn the_sample_registry_request_is_understood() {
        // deploy/sample/first-exchange.sh sends this content.
        let xml = "<b:BirthRecordRequest xmlns:b=\"urn://mezhved/demo/zags/birth-record/1.0\"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate></b:BirthRecordRequest>";
        // Latin letters are not a name in the demo schema.
        assert!(Query::parse(DemoKind::BirthRecord, xml)
            .expect_err("latin")
            .contains("Surname"));
        let xml = xml.replace("Ivanova", "Иванова");
        assert!(Query::parse(DemoKind::BirthRecord, &xml).is_ok());
    }

    #[test]
    fn bad_requests_say_why() {
        let ns = DemoKind::Income.namespace();
        for (xml, want) in [
            (format!("<IncomeCertificateRequest xmlns=\"{ns}\"><Year>2024</Year></IncomeCertificateRequest>"), "exactly one"),
            (format!("<IncomeCertificateRequest xmlns=\"{ns}\"><Inn>500100732258</Inn><Year>2024</Year></IncomeCertificateRequest>"), "INN"),
            (format!("<IncomeCertificateRequest xmlns=\"{ns}\"><Snils>112-233-445 96</Snils><Year>2024</Year></IncomeCertificateRequest>"), "control"),
            (format!("<IncomeCertificateRequest xmlns=\"{ns}\"><Inn>500100732259</Inn><Year>1999</Year></IncomeCertificateRequest>"), "Year"),
            (format!("<IncomeCertificateRequest xmlns=\"{ns}\"><Inn>500100732259</Inn><Year>2024</Year><X/></IncomeCertificateRequest>"), "unexpected element X"),
            (format!("<Other xmlns=\"{ns}\"/>"), "root element"),
        ] {
            let e = Query::parse(DemoKind::Income, &xml).expect_err(&xml);
            assert!(e.contains(want), "{xml}: {e}");
        }
        let ns = DemoKind::Disability.namespace();
        let xml = format!("<DisabilityStatusRequest xmlns=\"{ns}\"><Snils>112-233-445 95</Snils><Surname>Ким</Surname><FirstName>Ян</FirstName><BirthDate>2019-02-30</BirthDate></DisabilityStatusRequest>");
        assert!(Query::parse(DemoKind::Disability, &xml)
            .expect_err("date")
            .contains("BirthDate"));
    }

    #[test]
    fn kinds_are_found_by_reference() {
        for k in DemoKind::ALL {
            let r = k.kind_ref();
            assert_eq!(DemoKind::from_ref(&r.namespace, &r.root), Some(k));
        }
        assert_eq!(
            DemoKind::from_ref(DemoKind::Income.namespace(), "BirthRecordRequest"),
            None
        );
    }

    #[test]
    fn money_and_tax() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(1_234_505), "12345.05");
    }
}
