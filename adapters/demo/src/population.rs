//! The fake citizens of the demo region, generated deterministically from a seed.
//!
//! A population is made of households: families (mother, usually a father, one to three
//! children under 18, sometimes twins), single adults and elderly people, spread over the
//! municipalities of Kuzbass by their size. Every citizen has a full name in the right
//! gender form, a SNILS and an INN with valid check digits, a birth record (number, date,
//! registry office, the parents as recorded), income by month from tax agents for the
//! years [`INCOME_YEARS`] if employed, and a disability if one is established.
//!
//! Some situations the providers must handle are made on purpose: twins (two birth
//! records with the same surname and date of birth), namesakes (two adults with the
//! same full name and date of birth, about 3% of adults) and married women whose surname
//! changed (the birth record keeps the old one).
//!
//! The world is fixed at [`REFERENCE_DATE`]: ages and terms are counted from it, never
//! from the clock, so that the same seed gives the same population on any day.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::ids::{format_snils, organisation_inn, person_inn};
use crate::names::{
    feminine_surname, MaleName, DISABILITY_CAUSES, EMPLOYERS, FEMALE_NAMES, MALE_NAMES,
    MUNICIPALITIES, REGION, SURNAMES,
};
use crate::rng::Rng;

/// The demo world's "today": ages, terms of disability and the data's recency are
/// counted from this date.
pub const REFERENCE_DATE: NaiveDate = ymd(2026, 1, 1);

/// The calendar years for which employed citizens have income.
pub const INCOME_YEARS: [i32; 3] = [2023, 2024, 2025];

/// A date from constant parts (a compile-time error when invalid in a `const`).
pub(crate) const fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(d) => d,
        None => panic!("invalid date"),
    }
}

/// Full years from `birth` to `on` (0 when `on` is earlier).
pub(crate) fn age_on(birth: NaiveDate, on: NaiveDate) -> u32 {
    on.years_since(birth).unwrap_or(0)
}

/// A name for matching: trimmed, lower case, ё as е.
pub(crate) fn norm(s: &str) -> String {
    s.trim().to_lowercase().replace('ё', "е")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// The code in the demo schemas: `M` or `F`.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "M",
            Sex::Female => "F",
        }
    }
}

/// A parent as the birth record states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRecord {
    pub surname: String,
    pub first_name: String,
    pub patronymic: String,
    pub birth_date: NaiveDate,
    pub citizenship: String,
    /// The parent in the population, if they live in the region.
    pub citizen: Option<usize>,
}

/// On what the father's particulars in a birth record rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatherBasis {
    /// The parents' marriage certificate.
    Marriage,
    /// A certificate of establishment of paternity.
    Paternity,
}

impl FatherBasis {
    pub fn code(self) -> &'static str {
        match self {
            FatherBasis::Marriage => "MARRIAGE",
            FatherBasis::Paternity => "PATERNITY",
        }
    }
}

/// The state registration record of a citizen's birth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirthRecord {
    /// 22 digits: `1`, the office code (8), the year of registration (4), a sequence (9).
    pub number: String,
    pub date: NaiveDate,
    pub office: String,
    /// Place of birth, e.g. "г. Юрга, Кемеровская область – Кузбасс".
    pub place: String,
    /// The surname given at birth (a married woman's current one may differ).
    pub surname: String,
    pub mother: ParentRecord,
    pub father: Option<(ParentRecord, FatherBasis)>,
}

/// A tax agent (employer) of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxAgent {
    pub name: String,
    /// 10 digits with a valid check digit.
    pub inn: String,
    pub kpp: String,
}

/// One payment in a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomeEntry {
    /// 1..=12.
    pub month: u32,
    /// Income type code: 2000 salary, 2002 bonus, 2012 holiday pay, 2300 sick-leave benefit.
    pub code: &'static str,
    /// The amount in kopecks.
    pub kopecks: u64,
}

/// What one tax agent paid a citizen in one year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnualIncome {
    pub year: i32,
    /// Index into [`Population::tax_agents`].
    pub tax_agent: usize,
    pub entries: Vec<IncomeEntry>,
}

impl AnnualIncome {
    /// The total paid, in kopecks.
    pub fn total_kopecks(&self) -> u64 {
        self.entries.iter().map(|e| e.kopecks).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabilityGroup {
    I,
    II,
    III,
    /// A disabled child (under 18).
    Child,
}

impl DisabilityGroup {
    /// The code in the demo schema: `1`, `2`, `3` or `CHILD`.
    pub fn code(self) -> &'static str {
        match self {
            DisabilityGroup::I => "1",
            DisabilityGroup::II => "2",
            DisabilityGroup::III => "3",
            DisabilityGroup::Child => "CHILD",
        }
    }
}

/// A disability established by a bureau of medical and social expertise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disability {
    pub group: DisabilityGroup,
    pub cause: String,
    pub established_on: NaiveDate,
    /// The next re-examination; `None`: established indefinitely.
    pub until: Option<NaiveDate>,
    pub authority: String,
    pub act_number: String,
}

/// One fake citizen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Citizen {
    /// The citizen's index in the population.
    pub id: usize,
    /// The current surname.
    pub surname: String,
    pub first_name: String,
    pub patronymic: String,
    /// The surname before marriage, when it changed.
    pub previous_surname: Option<String>,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    /// `NNN-NNN-NNN CC`, valid control number, unique in the population.
    pub snils: String,
    /// 12 digits, valid check digits, unique in the population.
    pub inn: String,
    /// Where the citizen lives.
    pub municipality: String,
    pub birth_record: BirthRecord,
    /// Parents living in the region (also in [`BirthRecord`]).
    pub mother: Option<usize>,
    pub father: Option<usize>,
    /// Income by tax agent and year (empty when not employed).
    pub income: Vec<AnnualIncome>,
    pub disability: Option<Disability>,
}

impl Citizen {
    /// "Surname First Patronymic".
    pub fn full_name(&self) -> String {
        format!("{} {} {}", self.surname, self.first_name, self.patronymic)
    }

    /// Age in full years at [`REFERENCE_DATE`].
    pub fn age(&self) -> u32 {
        age_on(self.birth_date, REFERENCE_DATE)
    }

    /// The income of one year, by tax agent.
    pub fn income_in(&self, year: i32) -> impl Iterator<Item = &AnnualIncome> {
        self.income.iter().filter(move |a| a.year == year)
    }
}

/// Key of the name indexes: normalised surname and date of birth.
type NameKey = (String, NaiveDate);

/// A generated population with its lookup indexes.
#[derive(Debug, Clone)]
pub struct Population {
    seed: u64,
    citizens: Vec<Citizen>,
    tax_agents: Vec<TaxAgent>,
    by_snils: HashMap<String, usize>,
    by_inn: HashMap<String, usize>,
    by_surname: HashMap<NameKey, Vec<usize>>,
    by_birth_surname: HashMap<NameKey, Vec<usize>>,
    pub(crate) groups: Groups,
}

/// Citizens the scenario draws from, by situation (indexes, ascending).
#[derive(Debug, Clone, Default)]
pub(crate) struct Groups {
    /// Under 18.
    pub children: Vec<usize>,
    /// With income in at least one year.
    pub earners: Vec<usize>,
    pub disabled: Vec<usize>,
    /// Whose surname changed on marriage.
    pub renamed: Vec<usize>,
    /// Sharing the birth-record surname and date of birth with another (twins mostly).
    pub same_birth: Vec<usize>,
    /// Sharing the current full name and date of birth with another adult.
    pub namesakes: Vec<usize>,
}

impl Population {
    /// `size` citizens made from `seed`. The same seed and size give an identical
    /// population, on any machine and any day.
    pub fn generate(seed: u64, size: usize) -> Population {
        let mut b = Builder::new(seed, size);
        while b.citizens.len() < size {
            b.household();
        }
        b.finish()
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn len(&self) -> usize {
        self.citizens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.citizens.is_empty()
    }

    pub fn citizens(&self) -> &[Citizen] {
        &self.citizens
    }

    pub fn get(&self, id: usize) -> Option<&Citizen> {
        self.citizens.get(id)
    }

    pub fn tax_agents(&self) -> &[TaxAgent] {
        &self.tax_agents
    }

    /// The citizen with this SNILS (written `NNN-NNN-NNN CC`).
    pub fn by_snils(&self, snils: &str) -> Option<usize> {
        self.by_snils.get(snils.trim()).copied()
    }

    /// The citizen with this 12-digit INN.
    pub fn by_inn(&self, inn: &str) -> Option<usize> {
        self.by_inn.get(inn.trim()).copied()
    }

    /// Citizens whose current name and date of birth match; the first name and
    /// patronymic only when given. Case and ё/е do not matter.
    pub fn find_by_name(
        &self,
        surname: &str,
        first_name: Option<&str>,
        patronymic: Option<&str>,
        birth_date: NaiveDate,
    ) -> Vec<usize> {
        self.find(
            &self.by_surname,
            surname,
            first_name,
            patronymic,
            birth_date,
        )
    }

    /// Citizens whose birth record matches (the surname given at birth).
    pub fn find_birth_records(
        &self,
        surname: &str,
        first_name: Option<&str>,
        patronymic: Option<&str>,
        birth_date: NaiveDate,
    ) -> Vec<usize> {
        self.find(
            &self.by_birth_surname,
            surname,
            first_name,
            patronymic,
            birth_date,
        )
    }

    fn find(
        &self,
        index: &HashMap<NameKey, Vec<usize>>,
        surname: &str,
        first_name: Option<&str>,
        patronymic: Option<&str>,
        birth_date: NaiveDate,
    ) -> Vec<usize> {
        let Some(ids) = index.get(&(norm(surname), birth_date)) else {
            return Vec::new();
        };
        let first = first_name.map(norm);
        let patr = patronymic.map(norm);
        ids.iter()
            .copied()
            .filter(|&i| {
                let c = &self.citizens[i];
                first.as_ref().is_none_or(|f| *f == norm(&c.first_name))
                    && patr.as_ref().is_none_or(|p| *p == norm(&c.patronymic))
            })
            .collect()
    }

    /// Whether anyone in the population has this SNILS, INN, or current full name and
    /// date of birth (used to make people who are surely *not* in the registers).
    pub(crate) fn knows(&self, c: &Citizen) -> bool {
        self.by_snils(&c.snils).is_some()
            || self.by_inn(&c.inn).is_some()
            || !self
                .find_by_name(
                    &c.surname,
                    Some(&c.first_name),
                    Some(&c.patronymic),
                    c.birth_date,
                )
                .is_empty()
            || !self
                .find_birth_records(
                    &c.birth_record.surname,
                    Some(&c.first_name),
                    Some(&c.patronymic),
                    c.birth_date,
                )
                .is_empty()
    }
}

/// Makes a population, household by household.
struct Builder {
    seed: u64,
    size: usize,
    rng: Rng,
    citizens: Vec<Citizen>,
    /// The masculine form of each citizen's current surname (for children's surnames).
    bases: Vec<String>,
    tax_agents: Vec<TaxAgent>,
    snils_used: HashSet<u32>,
    inn_used: HashSet<u64>,
    record_seq: HashMap<(usize, i32), u32>,
    adult_men: Vec<usize>,
    adult_women: Vec<usize>,
}

/// Who a new adult is.
struct AdultSpec {
    sex: Sex,
    born: (NaiveDate, NaiveDate),
    municipality: usize,
}

impl Builder {
    fn new(seed: u64, size: usize) -> Builder {
        let mut rng = Rng::derive(seed, "population", 0);
        let mut tax_agents = Vec::with_capacity(EMPLOYERS.len());
        let mut org_used = HashSet::new();
        for &(name, mi) in EMPLOYERS {
            let office: u64 = MUNICIPALITIES[mi].tax_office.parse().unwrap_or(4205);
            let first9 = loop {
                let v = office * 100_000 + rng.below(100_000);
                if org_used.insert(v) {
                    break v;
                }
            };
            tax_agents.push(TaxAgent {
                name: name.to_owned(),
                inn: organisation_inn(first9),
                kpp: format!("{}01001", MUNICIPALITIES[mi].tax_office),
            });
        }
        Builder {
            seed,
            size,
            rng,
            citizens: Vec::with_capacity(size),
            bases: Vec::with_capacity(size),
            tax_agents,
            snils_used: HashSet::with_capacity(size),
            inn_used: HashSet::with_capacity(size),
            record_seq: HashMap::new(),
            adult_men: Vec::new(),
            adult_women: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.citizens.len() >= self.size
    }

    fn municipality(&mut self) -> usize {
        let weights: Vec<u64> = MUNICIPALITIES.iter().map(|m| m.weight).collect();
        self.rng.weighted(&weights)
    }

    fn date_between(&mut self, lo: NaiveDate, hi: NaiveDate) -> NaiveDate {
        let span = (hi - lo).num_days().max(0) as u64;
        lo.checked_add_days(Days::new(self.rng.below(span + 1)))
            .unwrap_or(lo)
    }

    fn years_before(&mut self, date: NaiveDate, lo: u32, hi: u32) -> NaiveDate {
        let months = self.rng.range(u64::from(lo) * 12, u64::from(hi) * 12) as u32;
        let back = date.checked_sub_months(Months::new(months)).unwrap_or(date);
        back.checked_sub_days(Days::new(self.rng.below(28)))
            .unwrap_or(back)
    }

    fn snils(&mut self) -> String {
        loop {
            let n = self.rng.range(1_002_000, 999_999_999) as u32;
            if self.snils_used.insert(n) {
                return format_snils(n);
            }
        }
    }

    fn inn(&mut self, municipality: usize) -> String {
        let office: u64 = MUNICIPALITIES[municipality]
            .tax_office
            .parse()
            .unwrap_or(4205);
        loop {
            let v = office * 1_000_000 + self.rng.below(1_000_000);
            if self.inn_used.insert(v) {
                return person_inn(v);
            }
        }
    }

    fn record_number(&mut self, office: usize, date: NaiveDate) -> String {
        let seq = self.record_seq.entry((office, date.year())).or_insert(0);
        *seq += 1;
        format!(
            "1{}{:04}{:09}",
            MUNICIPALITIES[office].office_code,
            date.year(),
            *seq
        )
    }

    fn male_name(&mut self) -> MaleName {
        *self.rng.pick(MALE_NAMES)
    }

    fn first_name(&mut self, sex: Sex) -> String {
        match sex {
            Sex::Male => self.male_name().name.to_owned(),
            Sex::Female => (*self.rng.pick(FEMALE_NAMES)).to_owned(),
        }
    }

    fn surname_of(base: &str, sex: Sex) -> String {
        match sex {
            Sex::Male => base.to_owned(),
            Sex::Female => feminine_surname(base),
        }
    }

    fn patronymic(father: &MaleName, sex: Sex) -> String {
        match sex {
            Sex::Male => father.son.to_owned(),
            Sex::Female => father.daughter.to_owned(),
        }
    }

    fn citizenship(child_birth: NaiveDate) -> String {
        if child_birth < ymd(1991, 12, 26) {
            "СССР".to_owned()
        } else {
            "Российская Федерация".to_owned()
        }
    }

    fn birth_place(municipality: usize) -> String {
        format!("{}, {REGION}", MUNICIPALITIES[municipality].place)
    }

    /// A birth record of someone whose parents do not live in the region.
    fn outside_birth_record(
        &mut self,
        base: &str,
        sex: Sex,
        father: &MaleName,
        birth: NaiveDate,
        place: usize,
    ) -> BirthRecord {
        let citizenship = Builder::citizenship(birth);
        let mother_base = if self.rng.chance(8_500) {
            base.to_owned()
        } else {
            (*self.rng.pick(SURNAMES)).to_owned()
        };
        let mother_father = self.male_name();
        let mother_birth = self.years_before(birth, 19, 38);
        let mother = ParentRecord {
            surname: feminine_surname(&mother_base),
            first_name: (*self.rng.pick(FEMALE_NAMES)).to_owned(),
            patronymic: mother_father.daughter.to_owned(),
            birth_date: mother_birth,
            citizenship: citizenship.clone(),
            citizen: None,
        };
        let father_record = if self.rng.chance(9_500) {
            let grandfather = self.male_name();
            let basis = if mother_base == base {
                FatherBasis::Marriage
            } else {
                FatherBasis::Paternity
            };
            let birth_date = self.years_before(birth, 20, 42);
            Some((
                ParentRecord {
                    surname: base.to_owned(),
                    first_name: father.name.to_owned(),
                    patronymic: grandfather.son.to_owned(),
                    birth_date,
                    citizenship,
                    citizen: None,
                },
                basis,
            ))
        } else {
            None
        };
        let date = self.record_date(birth);
        BirthRecord {
            number: self.record_number(place, date),
            date,
            office: MUNICIPALITIES[place].registry_office.to_owned(),
            place: Builder::birth_place(place),
            surname: Builder::surname_of(base, sex),
            mother,
            father: father_record,
        }
    }

    fn record_date(&mut self, birth: NaiveDate) -> NaiveDate {
        birth
            .checked_add_days(Days::new(self.rng.range(1, 30)))
            .unwrap_or(birth)
    }

    fn parent_record(&self, id: usize, child_birth: NaiveDate) -> ParentRecord {
        let p = &self.citizens[id];
        ParentRecord {
            surname: p.surname.clone(),
            first_name: p.first_name.clone(),
            patronymic: p.patronymic.clone(),
            birth_date: p.birth_date,
            citizenship: Builder::citizenship(child_birth),
            citizen: Some(id),
        }
    }

    /// A new adult born in the region to parents who are not in the population; about
    /// 3% are namesakes of an earlier adult of the same sex.
    fn adult(&mut self, spec: &AdultSpec) -> usize {
        let AdultSpec {
            sex,
            born,
            municipality,
        } = *spec;
        let earlier = match sex {
            Sex::Male => self.adult_men.len(),
            Sex::Female => self.adult_women.len(),
        };
        let (base, first_name, patronymic, birth_date, father) =
            if earlier > 0 && self.rng.chance(300) {
                let k = self.rng.index(earlier);
                let other = match sex {
                    Sex::Male => self.adult_men[k],
                    Sex::Female => self.adult_women[k],
                };
                let o = &self.citizens[other];
                let father = MALE_NAMES
                    .iter()
                    .find(|n| n.son == o.patronymic || n.daughter == o.patronymic)
                    .copied()
                    .unwrap_or(MALE_NAMES[0]);
                (
                    self.bases[other].clone(),
                    o.first_name.clone(),
                    o.patronymic.clone(),
                    o.birth_date,
                    father,
                )
            } else {
                let base = (*self.rng.pick(SURNAMES)).to_owned();
                let first = self.first_name(sex);
                let father = self.male_name();
                let birth = self.date_between(born.0, born.1);
                (
                    base,
                    first,
                    Builder::patronymic(&father, sex),
                    birth,
                    father,
                )
            };
        let place = if self.rng.chance(8_000) {
            municipality
        } else {
            self.municipality()
        };
        let birth_record = self.outside_birth_record(&base, sex, &father, birth_date, place);
        let id = self.push(Citizen {
            id: 0,
            surname: Builder::surname_of(&base, sex),
            first_name,
            patronymic,
            previous_surname: None,
            sex,
            birth_date,
            snils: String::new(),
            inn: String::new(),
            municipality: MUNICIPALITIES[municipality].name.to_owned(),
            birth_record,
            mother: None,
            father: None,
            income: Vec::new(),
            disability: None,
        });
        self.bases.push(base);
        match sex {
            Sex::Male => self.adult_men.push(id),
            Sex::Female => self.adult_women.push(id),
        }
        id
    }

    /// Adds the citizen with identifiers, income and disability; returns the index.
    fn push(&mut self, mut c: Citizen) -> usize {
        let id = self.citizens.len();
        let mi = MUNICIPALITIES
            .iter()
            .position(|m| m.name == c.municipality)
            .unwrap_or(0);
        c.id = id;
        c.snils = self.snils();
        c.inn = self.inn(mi);
        c.income = self.income(c.birth_date);
        c.disability = self.disability(c.birth_date, mi);
        self.citizens.push(c);
        id
    }

    fn household(&mut self) {
        let m = self.municipality();
        match self.rng.weighted(&[55, 25, 20]) {
            0 => self.family(m),
            1 => {
                let sex = if self.rng.chance(5_000) {
                    Sex::Male
                } else {
                    Sex::Female
                };
                self.adult(&AdultSpec {
                    sex,
                    born: (ymd(1958, 1, 1), ymd(2005, 12, 31)),
                    municipality: m,
                });
            }
            _ => {
                let couple = self.rng.chance(5_500);
                let sex = if couple || self.rng.chance(4_000) {
                    Sex::Male
                } else {
                    Sex::Female
                };
                let first = self.adult(&AdultSpec {
                    sex,
                    born: (ymd(1938, 1, 1), ymd(1962, 12, 31)),
                    municipality: m,
                });
                if couple && !self.full() {
                    let born = self.citizens[first].birth_date;
                    let lo = born.checked_sub_months(Months::new(36)).unwrap_or(born);
                    let hi = born.checked_add_months(Months::new(72)).unwrap_or(born);
                    let wife = self.adult(&AdultSpec {
                        sex: Sex::Female,
                        born: (lo, hi.min(ymd(1964, 12, 31))),
                        municipality: m,
                    });
                    self.marry(first, wife);
                }
            }
        }
    }

    /// The wife takes the husband's surname (and keeps her old one as previous).
    fn marry(&mut self, husband: usize, wife: usize) {
        let base = self.bases[husband].clone();
        let new = feminine_surname(&base);
        let w = &mut self.citizens[wife];
        if w.surname != new {
            w.previous_surname = Some(std::mem::replace(&mut w.surname, new));
        }
        self.bases[wife] = base;
    }

    fn family(&mut self, m: usize) {
        let father = if self.rng.chance(8_500) {
            Some(self.adult(&AdultSpec {
                sex: Sex::Male,
                born: (ymd(1970, 1, 1), ymd(2001, 12, 31)),
                municipality: m,
            }))
        } else {
            None
        };
        if self.full() {
            return;
        }
        let born = match father {
            Some(f) => {
                let fb = self.citizens[f].birth_date;
                let lo = fb.checked_sub_months(Months::new(36)).unwrap_or(fb);
                let hi = fb.checked_add_months(Months::new(72)).unwrap_or(fb);
                (lo.max(ymd(1972, 1, 1)), hi.min(ymd(2003, 12, 31)))
            }
            None => (ymd(1972, 1, 1), ymd(2003, 12, 31)),
        };
        let mother = self.adult(&AdultSpec {
            sex: Sex::Female,
            born,
            municipality: m,
        });
        let married = match father {
            Some(f) if self.rng.chance(8_800) => {
                self.marry(f, mother);
                true
            }
            _ => false,
        };
        let children = self.rng.weighted(&[50, 35, 15]) + 1;
        let mother_birth = self.citizens[mother].birth_date;
        let mut next = mother_birth
            .checked_add_months(Months::new(self.rng.range(19 * 12, 32 * 12) as u32))
            .unwrap_or(mother_birth);
        for _ in 0..children {
            if next > ymd(2025, 10, 31) || self.full() {
                break;
            }
            if next >= ymd(2008, 1, 2) {
                let first = self.child(mother, father, married, next, m, None);
                if self.rng.chance(400) && !self.full() {
                    let name = self.citizens[first].first_name.clone();
                    self.child(mother, father, married, next, m, Some(&name));
                }
            }
            let gap = self.rng.range(14, 72) as u32;
            next = next.checked_add_months(Months::new(gap)).unwrap_or(next);
        }
    }

    fn child(
        &mut self,
        mother: usize,
        father: Option<usize>,
        married: bool,
        birth: NaiveDate,
        m: usize,
        twin_of: Option<&str>,
    ) -> usize {
        let sex = if self.rng.chance(5_120) {
            Sex::Male
        } else {
            Sex::Female
        };
        let base = match father {
            Some(f) => self.bases[f].clone(),
            None => self.bases[mother].clone(),
        };
        let dad = match father {
            Some(f) => {
                let name = &self.citizens[f].first_name;
                MALE_NAMES
                    .iter()
                    .find(|n| n.name == name)
                    .copied()
                    .unwrap_or(MALE_NAMES[0])
            }
            None => self.male_name(),
        };
        let date = self.record_date(birth);
        let father_record = father.map(|f| {
            let basis = if married {
                FatherBasis::Marriage
            } else {
                FatherBasis::Paternity
            };
            (self.parent_record(f, birth), basis)
        });
        let birth_record = BirthRecord {
            number: self.record_number(m, date),
            date,
            office: MUNICIPALITIES[m].registry_office.to_owned(),
            place: Builder::birth_place(m),
            surname: Builder::surname_of(&base, sex),
            mother: self.parent_record(mother, birth),
            father: father_record,
        };
        let mut first_name = self.first_name(sex);
        while Some(first_name.as_str()) == twin_of {
            first_name = self.first_name(sex);
        }
        let id = self.push(Citizen {
            id: 0,
            surname: Builder::surname_of(&base, sex),
            first_name,
            patronymic: Builder::patronymic(&dad, sex),
            previous_surname: None,
            sex,
            birth_date: birth,
            snils: String::new(),
            inn: String::new(),
            municipality: MUNICIPALITIES[m].name.to_owned(),
            birth_record,
            mother: Some(mother),
            father,
            income: Vec::new(),
            disability: None,
        });
        self.bases.push(base);
        id
    }

    /// Income by month for the years the citizen was 18..65 and (80%) employed.
    fn income(&mut self, birth: NaiveDate) -> Vec<AnnualIncome> {
        let age = age_on(birth, REFERENCE_DATE);
        let employed = match age {
            18..=22 => self.rng.chance(5_000),
            23..=64 => self.rng.chance(8_000),
            _ => false,
        };
        if !employed {
            return Vec::new();
        }
        // Monthly salary in kopecks, skewed to the lower end as real wages are.
        let mut base = (self.rng.range(22_000, 82_000) * 100) + self.rng.below(100);
        if self.rng.chance(2_000) {
            base += self.rng.range(10_000, 60_000) * 100;
        }
        let mut agent = self.rng.index(self.tax_agents.len());
        let mut out = Vec::new();
        for year in INCOME_YEARS {
            if age_on(birth, ymd(year, 12, 31)) < 18 {
                continue;
            }
            let switch = if self.rng.chance(1_000) {
                Some(self.rng.range(2, 11) as u32)
            } else {
                None
            };
            let holiday = self.rng.range(5, 8) as u32;
            let sick = if self.rng.chance(800) {
                Some(self.rng.range(1, 12) as u32)
            } else {
                None
            };
            let mut entries = Vec::new();
            let mut current = AnnualIncome {
                year,
                tax_agent: agent,
                entries: Vec::new(),
            };
            for month in 1..=12u32 {
                if switch == Some(month) {
                    let mut other = self.rng.index(self.tax_agents.len());
                    if other == agent {
                        other = (other + 1) % self.tax_agents.len();
                    }
                    current.entries = std::mem::take(&mut entries);
                    out.push(std::mem::replace(
                        &mut current,
                        AnnualIncome {
                            year,
                            tax_agent: other,
                            entries: Vec::new(),
                        },
                    ));
                    agent = other;
                }
                let jitter = self.rng.range(95, 105);
                let salary = base * jitter / 100;
                if month == holiday {
                    entries.push(IncomeEntry {
                        month,
                        code: "2000",
                        kopecks: salary / 2,
                    });
                    entries.push(IncomeEntry {
                        month,
                        code: "2012",
                        kopecks: base * self.rng.range(80, 100) / 100,
                    });
                } else {
                    entries.push(IncomeEntry {
                        month,
                        code: "2000",
                        kopecks: salary,
                    });
                }
                if sick == Some(month) {
                    entries.push(IncomeEntry {
                        month,
                        code: "2300",
                        kopecks: base * self.rng.range(10, 40) / 100,
                    });
                }
                if month == 12 && self.rng.chance(3_000) {
                    entries.push(IncomeEntry {
                        month,
                        code: "2002",
                        kopecks: base * self.rng.range(50, 150) / 100,
                    });
                }
            }
            current.entries = entries;
            out.push(current);
            // Yearly indexation of 4..9%.
            base = base * self.rng.range(104, 109) / 100;
        }
        out
    }

    fn disability(&mut self, birth: NaiveDate, municipality: usize) -> Option<Disability> {
        let age = age_on(birth, REFERENCE_DATE);
        let per_10000 = match age {
            0..=17 => 250,
            18..=54 => 600,
            _ => 2_200,
        };
        if !self.rng.chance(per_10000) {
            return None;
        }
        let bureau = MUNICIPALITIES[municipality].mse_bureau;
        let (group, cause) = if age < 18 {
            (
                DisabilityGroup::Child,
                "категория «ребёнок-инвалид»".to_owned(),
            )
        } else {
            let group = [
                DisabilityGroup::I,
                DisabilityGroup::II,
                DisabilityGroup::III,
            ][self.rng.weighted(&[15, 35, 50])];
            let weights: Vec<u64> = DISABILITY_CAUSES.iter().map(|c| c.1).collect();
            let cause = DISABILITY_CAUSES[self.rng.weighted(&weights)].0.to_owned();
            (group, cause)
        };
        let earliest = birth
            .checked_add_days(Days::new(60))
            .unwrap_or(birth)
            .max(ymd(2012, 1, 10));
        if earliest > ymd(2025, 12, 15) {
            return None;
        }
        let established_on = self.date_between(earliest, ymd(2025, 12, 15));
        let indefinite = match group {
            DisabilityGroup::Child => false,
            DisabilityGroup::I => self.rng.chance(6_000),
            _ => age >= 55 && self.rng.chance(5_000),
        };
        let until = if indefinite {
            None
        } else {
            let mut until = self.date_between(ymd(2026, 2, 1), ymd(2027, 12, 31));
            if group == DisabilityGroup::Child {
                let adult = birth
                    .checked_add_months(Months::new(18 * 12))
                    .unwrap_or(birth);
                until = until.min(adult);
            }
            Some(until)
        };
        Some(Disability {
            group,
            cause,
            established_on,
            until,
            authority: format!(
                "Бюро медико-социальной экспертизы № {bureau} – филиал ФКУ «ГБ МСЭ по \
                 Кемеровской области – Кузбассу» Минтруда России"
            ),
            act_number: format!(
                "{}.{bureau}.42/{}",
                self.rng.range(1, 9_999),
                established_on.year()
            ),
        })
    }

    fn finish(self) -> Population {
        let citizens = self.citizens;
        let mut by_snils = HashMap::with_capacity(citizens.len());
        let mut by_inn = HashMap::with_capacity(citizens.len());
        let mut by_surname: HashMap<NameKey, Vec<usize>> = HashMap::new();
        let mut by_birth_surname: HashMap<NameKey, Vec<usize>> = HashMap::new();
        let mut by_full_name: HashMap<(String, String, String, NaiveDate), Vec<usize>> =
            HashMap::new();
        let mut groups = Groups::default();
        for c in &citizens {
            by_snils.insert(c.snils.clone(), c.id);
            by_inn.insert(c.inn.clone(), c.id);
            by_surname
                .entry((norm(&c.surname), c.birth_date))
                .or_default()
                .push(c.id);
            by_birth_surname
                .entry((norm(&c.birth_record.surname), c.birth_date))
                .or_default()
                .push(c.id);
            by_full_name
                .entry((
                    norm(&c.surname),
                    norm(&c.first_name),
                    norm(&c.patronymic),
                    c.birth_date,
                ))
                .or_default()
                .push(c.id);
            if c.age() < 18 {
                groups.children.push(c.id);
            }
            if !c.income.is_empty() {
                groups.earners.push(c.id);
            }
            if c.disability.is_some() {
                groups.disabled.push(c.id);
            }
            if c.previous_surname.is_some() {
                groups.renamed.push(c.id);
            }
        }
        for c in &citizens {
            if by_birth_surname
                .get(&(norm(&c.birth_record.surname), c.birth_date))
                .is_some_and(|v| v.len() > 1)
            {
                groups.same_birth.push(c.id);
            }
            if c.age() >= 18
                && by_full_name
                    .get(&(
                        norm(&c.surname),
                        norm(&c.first_name),
                        norm(&c.patronymic),
                        c.birth_date,
                    ))
                    .is_some_and(|v| v.len() > 1)
            {
                groups.namesakes.push(c.id);
            }
        }
        Population {
            seed: self.seed,
            citizens,
            tax_agents: self.tax_agents,
            by_snils,
            by_inn,
            by_surname,
            by_birth_surname,
            groups,
        }
    }
}

/// A person made like a population member from a separate stream, who is in none of
/// the registers of `population` (for requests about unknown people).
pub(crate) fn stranger(population: &Population, index: u64, child: bool) -> Citizen {
    let mut attempt = 0u64;
    loop {
        let mut b = Builder::new(population.seed(), 1);
        b.rng = Rng::derive(
            population.seed(),
            "stranger",
            index.wrapping_mul(64) + attempt,
        );
        let m = b.municipality();
        let born = if child {
            (ymd(2008, 1, 2), ymd(2025, 10, 31))
        } else {
            (ymd(1960, 1, 1), ymd(2004, 12, 31))
        };
        let sex = if b.rng.chance(5_000) {
            Sex::Male
        } else {
            Sex::Female
        };
        let id = b.adult(&AdultSpec {
            sex,
            born,
            municipality: m,
        });
        let c = b.citizens.swap_remove(id);
        attempt += 1;
        // A collision with the population is rare; 64 in a row cannot happen in practice.
        if !population.knows(&c) || attempt == 64 {
            return c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{is_valid_inn, is_valid_snils};

    #[test]
    fn same_seed_same_population() {
        let a = Population::generate(42, 2_000);
        let b = Population::generate(42, 2_000);
        assert_eq!(a.citizens(), b.citizens());
        assert_eq!(a.tax_agents(), b.tax_agents());
        let c = Population::generate(43, 2_000);
        assert_ne!(a.citizens(), c.citizens());
        assert_eq!(a.len(), 2_000);
    }

    #[test]
    fn a_known_citizen_stays_the_same() {
        // Pins the generator: a change here is a change of every demo data set, and must
        // be deliberate (then update these values).
        let p = Population::generate(1, 50);
        let line =
            |c: &Citizen| format!("{} {} {} {}", c.full_name(), c.birth_date, c.snils, c.inn);
        assert_eq!(
            line(&p.citizens()[0]),
            "Максимова Алина Тимофеевна 1953-02-19 109-458-712 77 421713065983"
        );
        let c = &p.citizens()[2];
        assert_eq!(
            line(c),
            "Князева Оксана Кирилловна 1978-05-27 767-995-003 80 420540166621"
        );
        assert_eq!(c.previous_surname.as_deref(), Some("Павлова"));
        assert_eq!(c.birth_record.number, "1420001011978000000001");
    }

    #[test]
    fn identifiers_are_valid_and_unique() {
        let p = Population::generate(7, 5_000);
        let mut snils = HashSet::new();
        let mut inn = HashSet::new();
        for c in p.citizens() {
            assert!(is_valid_snils(&c.snils), "{}", c.snils);
            assert!(is_valid_inn(&c.inn), "{}", c.inn);
            assert_eq!(c.inn.len(), 12);
            assert!(snils.insert(c.snils.clone()));
            assert!(inn.insert(c.inn.clone()));
            assert_eq!(c.birth_record.number.len(), 22);
            assert!(c.birth_record.date > c.birth_date);
        }
        for a in p.tax_agents() {
            assert!(is_valid_inn(&a.inn), "{}", a.inn);
            assert_eq!(a.kpp.len(), 9);
        }
        let mut numbers: Vec<&str> = p
            .citizens()
            .iter()
            .map(|c| c.birth_record.number.as_str())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), p.len(), "birth record numbers are unique");
    }

    #[test]
    fn names_have_the_right_gender_forms() {
        let p = Population::generate(11, 3_000);
        for c in p.citizens() {
            match c.sex {
                Sex::Male => {
                    assert!(c.patronymic.ends_with("ич"), "{}", c.full_name());
                    assert!(!c.surname.ends_with("ова") && !c.surname.ends_with("ская"));
                }
                Sex::Female => {
                    assert!(c.patronymic.ends_with("на"), "{}", c.full_name());
                    assert!(!c.surname.ends_with("ов") && !c.surname.ends_with("ский"));
                }
            }
        }
    }

    #[test]
    fn families_are_consistent() {
        let p = Population::generate(5, 3_000);
        let mut children = 0;
        for c in p.citizens() {
            let Some(m) = c.mother else { continue };
            children += 1;
            let mother = &p.citizens()[m];
            assert_eq!(mother.sex, Sex::Female);
            assert_eq!(c.birth_record.mother.citizen, Some(m));
            assert!(mother.birth_date < c.birth_date);
            assert!(c.age() < 18);
            if let Some(f) = c.father {
                let father = &p.citizens()[f];
                assert_eq!(father.sex, Sex::Male);
                let name = MALE_NAMES
                    .iter()
                    .find(|n| n.name == father.first_name)
                    .expect("the father's name is in the table");
                assert!(c.patronymic == name.son || c.patronymic == name.daughter);
                assert_eq!(
                    norm(&c.surname),
                    norm(&Builder::surname_of(&father.surname, c.sex))
                );
                assert!(c.birth_record.father.is_some());
            }
        }
        assert!(children > 500, "{children}");
        assert!(!p.groups.same_birth.is_empty());
        assert!(!p.groups.namesakes.is_empty());
        assert!(!p.groups.renamed.is_empty());
        assert!(!p.groups.disabled.is_empty());
        assert!(p.groups.earners.len() > p.len() / 4);
    }

    #[test]
    fn lookups_find_people() {
        let p = Population::generate(9, 1_000);
        for c in p.citizens().iter().step_by(37) {
            assert_eq!(p.by_snils(&c.snils), Some(c.id));
            assert_eq!(p.by_inn(&c.inn), Some(c.id));
            let found = p.find_by_name(
                &c.surname.to_uppercase(),
                Some(&c.first_name),
                Some(&c.patronymic.replace('ё', "е")),
                c.birth_date,
            );
            assert!(found.contains(&c.id));
            let born = p.find_birth_records(&c.birth_record.surname, None, None, c.birth_date);
            assert!(born.contains(&c.id));
        }
        let s = stranger(&p, 3, false);
        assert!(!p.knows(&s));
        assert!(is_valid_snils(&s.snils) && is_valid_inn(&s.inn));
    }

    #[test]
    fn income_is_plausible() {
        let p = Population::generate(13, 2_000);
        for c in p.citizens() {
            for a in &c.income {
                assert!(INCOME_YEARS.contains(&a.year));
                assert!(a.tax_agent < p.tax_agents().len());
                assert!(a.entries.iter().all(|e| (1..=12).contains(&e.month)));
                assert!(a.total_kopecks() > 0);
            }
        }
    }
}
