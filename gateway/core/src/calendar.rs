//! Production calendars and the reply-deadline arithmetic (docs/calendars.md).
//!
//! A [`Calendar`] says which dates are working days. It is loaded from TOML files
//! (`schemas/calendars/ru-federal.toml`, then any regional overlays) in which every
//! exception is listed explicitly and weekends are implicit: Monday..Friday works unless
//! listed in `non_working`, Saturday/Sunday is off unless listed in `working`.
//!
//! The deadline rule ([`due`]): an agency answers an interdepartmental request within
//! `n` working days (210-FZ art. 7.2 part 3: 5). The period begins on the day after
//! receipt (Civil Code art. 191); the receipt day is the local date of receipt in the
//! segment's time zone; only working days count, so the last day is always a working day
//! (art. 193); the period ends at 24:00 local of that day (art. 194), i.e. at 00:00 of
//! the next calendar day.
//!
//! Invariants:
//! - [`Calendar::is_working_day`] is total. For a year no base file covers
//!   ([`Calendar::covers`] is false) it follows the Labour Code alone
//!   ([`statutory_days_off`], from 2013; Monday..Friday before) plus whatever overlay
//!   files say, and every computation that touches such a year returns a
//!   [`Warning::NoCalendarData`] for it instead of failing.
//! - For `n >= 1`, `add_working_days(from, n)` is a working day after `from`, and
//!   exactly `n` working days lie in `(from, result]`; so
//!   `working_days_between(from, result) == n`.
//! - [`due`] is monotone: a later receipt never gets an earlier deadline.
//! - A loaded calendar was validated: every date lies in the year it is listed under,
//!   no file lists a date twice, no file lists a weekend as `non_working` or a weekday as
//!   `working` unless that cancels an earlier file's entry for the date, short days are
//!   working days, and each declared `expected_working_days` total holds.
//! - Nothing here reads the clock; only [`Calendar::load`] does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;
use std::path::PathBuf;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Deserialize;
use thiserror::Error;

/// The time zone a segment counts in unless configured otherwise.
pub const DEFAULT_TZ: Tz = chrono_tz::Europe::Moscow;

/// The reply term of an interdepartmental request, in working days (210-FZ art. 7.2
/// part 3), for kinds of information that set none of their own.
pub const DEFAULT_REPLY_WORKING_DAYS: u32 = 5;

/// `schemas/calendars/ru-federal.toml` as built into the binary; operators load the file
/// (or their own) with [`Calendar::load`] so that a new year needs no rebuild.
pub const BUILTIN_RU_FEDERAL: &str = include_str!("../../../schemas/calendars/ru-federal.toml");

/// Why a calendar file was refused. Every variant names the file.
#[derive(Debug, Error)]
pub enum CalendarError {
    #[error("calendar file {file}: cannot read it: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("calendar file {file}: not a valid calendar: {message}")]
    Syntax { file: String, message: String },
    #[error(
        "calendar file {file}: year {year}: {value:?} is not a date (expected \"YYYY-MM-DD\")"
    )]
    BadDate {
        file: String,
        year: i32,
        value: String,
    },
    #[error("calendar file {file}: year {year} is outside the supported range")]
    BadYear { file: String, year: i32 },
    #[error("calendar file {file}: year {year} has more than one [[year]] table")]
    DuplicateYear { file: String, year: i32 },
    #[error("calendar file {file}: {date} is listed under year {year}")]
    DateOutsideYear {
        file: String,
        year: i32,
        date: NaiveDate,
    },
    #[error(
        "calendar file {file}: {date} is a {weekday:?} and is listed in `non_working`; weekends \
         are days off implicitly (list only weekdays there)"
    )]
    WeekendListedNonWorking {
        file: String,
        date: NaiveDate,
        weekday: Weekday,
    },
    #[error(
        "calendar file {file}: {date} is a {weekday:?} and is listed in `working`; weekdays are \
         working days implicitly (list only Saturdays/Sundays there)"
    )]
    WeekdayListedWorking {
        file: String,
        date: NaiveDate,
        weekday: Weekday,
    },
    #[error(
        "calendar file {file}: {date} is listed more than once (in `{first}` and in `{second}`)"
    )]
    Duplicate {
        file: String,
        date: NaiveDate,
        first: &'static str,
        second: &'static str,
    },
    #[error("calendar file {file}: {date} is in `pre_holiday_short` but is not a working day")]
    ShortNotWorking { file: String, date: NaiveDate },
    #[error(
        "calendar file {file}: year {year} declares expected_working_days = {expected}, but its \
         dates give {actual}"
    )]
    WorkingDaysMismatch {
        file: String,
        year: i32,
        expected: u32,
        actual: i64,
    },
}

/// Something a computation could only do approximately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Warning {
    /// No base calendar file covers this year: it was counted by the Labour Code alone
    /// (fixed holidays and days carried past a weekend holiday), without the
    /// Government's decree for the year.
    NoCalendarData { year: i32 },
    /// The count ran past the last date the calendar library can represent.
    DateOutOfRange,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NoCalendarData { year } => write!(
                f,
                "no production calendar for {year}: counted by the Labour Code's holidays alone, without the Government's transfers for the year"
            ),
            Warning::DateOutOfRange => f.write_str("the date is out of the representable range"),
        }
    }
}

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A complete calendar for the years it lists (the federal one): a year it lists is
    /// covered.
    Base,
    /// Additions to (or corrections of) earlier files, e.g. regional holidays; it covers
    /// no year by itself.
    Overlay,
}

/// One `[[year]]` table as loaded, for display and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearSource {
    /// The file's label (its path, for [`Calendar::load`]).
    pub file: String,
    /// The file's `name`.
    pub name: String,
    pub kind: FileKind,
    pub year: i32,
    /// The legal act(s) the dates come from.
    pub source: String,
    pub cross_checked: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    name: String,
    kind: FileKind,
    /// Free text for the file's reader; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default, rename = "year")]
    years: Vec<YearToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearToml {
    year: i32,
    source: String,
    #[serde(default)]
    cross_checked: Vec<String>,
    #[serde(default)]
    expected_working_days: Option<u32>,
    #[serde(default)]
    non_working: Vec<String>,
    #[serde(default)]
    working: Vec<String>,
    #[serde(default)]
    pre_holiday_short: Vec<String>,
}

/// Which dates are working days. Cheap to share (`Arc<Calendar>`); immutable once built.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    /// Only the dates whose status differs from the Monday..Friday default: `true` for a
    /// working weekend day, `false` for a weekday off.
    deviations: BTreeMap<NaiveDate, bool>,
    /// Shortened (pre-holiday) working days; informational.
    short: BTreeSet<NaiveDate>,
    /// Years a base file lists.
    covered: BTreeSet<i32>,
    sources: Vec<YearSource>,
}

/// The years [`statutory_days_off`] applies to: the Labour Code's present list of
/// holidays dates from 2013 (Federal Law 23.04.2012 No. 35-FZ).
const STATUTORY_YEARS: std::ops::RangeInclusive<i32> = 2013..=2100;

/// The weekdays of `year` that are off by the Labour Code alone, before any Government
/// decree (docs/calendars.md §1):
/// - the non-working holidays of art. 112 part 1 that fall on a weekday: 1–6 and 8
///   January, 7 January, 23 February, 8 March, 1 May, 9 May, 12 June, 4 November;
/// - for a holiday other than the January ones that falls on a Saturday or Sunday, the
///   next working day after it (art. 112 part 2).
///
/// What it leaves out is the decree (art. 112 part 5): the January holidays that fall
/// on a weekend are moved to dates the Government chooses, and a carried day may be put
/// elsewhere (2025: from Monday 24 February to Thursday 8 May). Against the published
/// 2024–2026 calendars it differs on a handful of dates a year, where Monday..Friday
/// misses every holiday (test `the_labour_code_alone_comes_close_…`).
pub fn statutory_days_off(year: i32) -> Vec<NaiveDate> {
    let date = |m: u32, d: u32| NaiveDate::from_ymd_opt(year, m, d);
    let january: Vec<NaiveDate> = (1..=8).filter_map(|d| date(1, d)).collect();
    let others: Vec<NaiveDate> = [(2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4)]
        .iter()
        .filter_map(|&(m, d)| date(m, d))
        .collect();
    let holidays: BTreeSet<NaiveDate> = january.iter().chain(&others).copied().collect();
    let mut off: BTreeSet<NaiveDate> = holidays
        .iter()
        .copied()
        .filter(|d| !is_weekend(*d))
        .collect();
    for h in others.iter().filter(|h| is_weekend(**h)) {
        let mut d = *h;
        while let Some(next) = d.succ_opt() {
            d = next;
            if !is_weekend(d) && !holidays.contains(&d) && !off.contains(&d) {
                off.insert(d);
                break;
            }
        }
    }
    off.into_iter().collect()
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Monday..Friday days up to and including `d`, counted from a fixed origin (only
/// differences are meaningful). 0001-01-01, day 1 of `num_days_from_ce`, is a Monday.
fn weekday_index(d: NaiveDate) -> i64 {
    let m = i64::from(d.num_days_from_ce());
    m.div_euclid(7) * 5 + m.rem_euclid(7).min(5)
}

impl Calendar {
    /// A calendar with no files: every year counts by the Labour Code alone (see
    /// [`statutory_days_off`]), with a warning.
    pub fn empty() -> Calendar {
        let mut cal = Calendar::default();
        cal.add_statutory_years(&BTreeSet::new());
        cal
    }

    /// Years no base file covers (`base_years`) count by the Labour Code alone: its fixed
    /// holidays and the day off carried past a holiday that falls on a weekend. Added
    /// before any file, so an overlay may cancel such a day like any earlier entry.
    fn add_statutory_years(&mut self, base_years: &BTreeSet<i32>) {
        for year in STATUTORY_YEARS {
            if base_years.contains(&year) {
                continue;
            }
            for d in statutory_days_off(year) {
                self.deviations.insert(d, false);
            }
        }
    }

    /// Reads and applies `files` in order (later files win for the dates they list).
    pub fn load(files: &[PathBuf]) -> Result<Calendar, CalendarError> {
        let mut texts = Vec::with_capacity(files.len());
        for path in files {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Io {
                file: file.clone(),
                source,
            })?;
            texts.push((file, text));
        }
        let refs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(f, t)| (f.as_str(), t.as_str()))
            .collect();
        Calendar::from_toml_strs(&refs)
    }

    /// As [`Calendar::load`], from `(label, text)` pairs; the label stands for the file
    /// name in errors.
    pub fn from_toml_strs(files: &[(&str, &str)]) -> Result<Calendar, CalendarError> {
        // The years some base file will cover; every other year starts from the Labour
        // Code, so that overlays are checked (totals, short days, cancellations) against
        // the calendar they will really be part of. (A file that does not parse is
        // reported by `apply_file`.)
        let mut base_years = BTreeSet::new();
        for (_, text) in files {
            if let Ok(parsed) = toml::from_str::<FileToml>(text) {
                if parsed.kind == FileKind::Base {
                    base_years.extend(parsed.years.iter().map(|y| y.year));
                }
            }
        }
        let mut cal = Calendar::default();
        cal.add_statutory_years(&base_years);
        for (label, text) in files {
            cal.apply_file(label, text)?;
        }
        // A later file may have made an earlier file's short day a day off.
        let short = std::mem::take(&mut cal.short);
        cal.short = short
            .into_iter()
            .filter(|d| cal.is_working_day(*d))
            .collect();
        Ok(cal)
    }

    /// The federal calendar built into the binary ([`BUILTIN_RU_FEDERAL`]).
    pub fn builtin_ru_federal() -> Result<Calendar, CalendarError> {
        Calendar::from_toml_strs(&[("builtin:ru-federal.toml", BUILTIN_RU_FEDERAL)])
    }

    fn apply_file(&mut self, file: &str, text: &str) -> Result<(), CalendarError> {
        let parsed: FileToml = toml::from_str(text).map_err(|e| CalendarError::Syntax {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let mut seen_years = BTreeSet::new();
        // Every date this file lists, with the list it is in.
        let mut seen: BTreeMap<NaiveDate, &'static str> = BTreeMap::new();
        let mut changes: Vec<(NaiveDate, bool)> = Vec::new();
        let mut shorts: Vec<NaiveDate> = Vec::new();
        for y in &parsed.years {
            if !seen_years.insert(y.year) {
                return Err(CalendarError::DuplicateYear {
                    file: file.to_string(),
                    year: y.year,
                });
            }
            let bad_year = || CalendarError::BadYear {
                file: file.to_string(),
                year: y.year,
            };
            // The day before 1 January must exist too, for the year's total.
            NaiveDate::from_ymd_opt(y.year, 1, 1)
                .and_then(|d| d.pred_opt())
                .and_then(|_| NaiveDate::from_ymd_opt(y.year, 12, 31))
                .ok_or_else(bad_year)?;
            for (list, values, working) in [
                ("non_working", &y.non_working, false),
                ("working", &y.working, true),
            ] {
                for value in values {
                    let d = parse_date(file, y.year, value)?;
                    if let Some(first) = seen.insert(d, list) {
                        return Err(CalendarError::Duplicate {
                            file: file.to_string(),
                            date: d,
                            first,
                            second: list,
                        });
                    }
                    let earlier = self.deviations.get(&d).copied();
                    match (working, is_weekend(d)) {
                        // Cancelling an earlier file's working weekend day is allowed.
                        (false, true) if earlier != Some(true) => {
                            return Err(CalendarError::WeekendListedNonWorking {
                                file: file.to_string(),
                                date: d,
                                weekday: d.weekday(),
                            })
                        }
                        // Cancelling an earlier file's weekday off is allowed.
                        (true, false) if earlier != Some(false) => {
                            return Err(CalendarError::WeekdayListedWorking {
                                file: file.to_string(),
                                date: d,
                                weekday: d.weekday(),
                            })
                        }
                        _ => {}
                    }
                    changes.push((d, working));
                }
            }
            let mut seen_short = BTreeSet::new();
            for value in &y.pre_holiday_short {
                let d = parse_date(file, y.year, value)?;
                if !seen_short.insert(d) {
                    return Err(CalendarError::Duplicate {
                        file: file.to_string(),
                        date: d,
                        first: "pre_holiday_short",
                        second: "pre_holiday_short",
                    });
                }
                shorts.push(d);
            }
        }
        for (d, working) in changes {
            if working != is_weekend(d) {
                // Back to the default: a cancellation of an earlier file's entry.
                self.deviations.remove(&d);
            } else {
                self.deviations.insert(d, working);
            }
        }
        for d in shorts {
            if !self.is_working_day(d) {
                return Err(CalendarError::ShortNotWorking {
                    file: file.to_string(),
                    date: d,
                });
            }
            self.short.insert(d);
        }
        for y in &parsed.years {
            if let Some(expected) = y.expected_working_days {
                let actual = self.working_days_in_year(y.year).unwrap_or(-1);
                if actual != i64::from(expected) {
                    return Err(CalendarError::WorkingDaysMismatch {
                        file: file.to_string(),
                        year: y.year,
                        expected,
                        actual,
                    });
                }
            }
            if parsed.kind == FileKind::Base {
                self.covered.insert(y.year);
            }
            self.sources.push(YearSource {
                file: file.to_string(),
                name: parsed.name.clone(),
                kind: parsed.kind,
                year: y.year,
                source: y.source.clone(),
                cross_checked: y.cross_checked.clone(),
            });
        }
        Ok(())
    }

    /// Whether a base file lists `year` (if not, the year counts by the Labour Code alone).
    pub fn covers(&self, year: i32) -> bool {
        self.covered.contains(&year)
    }

    /// The covered years, ascending.
    pub fn years(&self) -> Vec<i32> {
        self.covered.iter().copied().collect()
    }

    /// Where each loaded `[[year]]` came from, in load order.
    pub fn sources(&self) -> &[YearSource] {
        &self.sources
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        self.deviations
            .get(&d)
            .copied()
            .unwrap_or_else(|| !is_weekend(d))
    }

    /// A shortened (pre-holiday) working day; informational, it counts as a whole day.
    pub fn is_short_day(&self, d: NaiveDate) -> bool {
        self.short.contains(&d)
    }

    /// The first working day after `d` (`None` only past the end of the date range).
    pub fn next_working_day(&self, d: NaiveDate) -> Option<NaiveDate> {
        let mut d = d.succ_opt()?;
        while !self.is_working_day(d) {
            d = d.succ_opt()?;
        }
        Some(d)
    }

    /// The last working day before `d` (`None` only before the start of the date range).
    pub fn previous_working_day(&self, d: NaiveDate) -> Option<NaiveDate> {
        let mut d = d.pred_opt()?;
        while !self.is_working_day(d) {
            d = d.pred_opt()?;
        }
        Some(d)
    }

    /// The `n`-th working day after `from` (`from` itself never counts), with a warning
    /// for each year the count passed through that no base file covers. `n == 0` gives
    /// `from` itself.
    pub fn add_working_days(&self, from: NaiveDate, n: u32) -> (NaiveDate, Vec<Warning>) {
        let mut d = from;
        let mut left = n;
        let mut warnings = Vec::new();
        let mut warned = BTreeSet::new();
        while left > 0 {
            match d.succ_opt() {
                Some(next) => d = next,
                None => {
                    warnings.push(Warning::DateOutOfRange);
                    break;
                }
            }
            let year = d.year();
            if !self.covers(year) && warned.insert(year) {
                warnings.push(Warning::NoCalendarData { year });
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        (d, warnings)
    }

    /// The number of working days in `(a, b]` (negative, counting `(b, a]`, when
    /// `b < a`): e.g. how many working days an answer took.
    pub fn working_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        if b < a {
            return -self.working_days_between(b, a);
        }
        let base = weekday_index(b) - weekday_index(a);
        let adjust: i64 = self
            .deviations
            .range((Bound::Excluded(a), Bound::Included(b)))
            .map(|(d, working)| match (*working, is_weekend(*d)) {
                (true, true) => 1,
                (false, false) => -1,
                _ => 0,
            })
            .sum();
        base + adjust
    }

    /// The number of working days in `year` (`None` outside the date range).
    pub fn working_days_in_year(&self, year: i32) -> Option<i64> {
        let before = NaiveDate::from_ymd_opt(year, 1, 1)?.pred_opt()?;
        let last = NaiveDate::from_ymd_opt(year, 12, 31)?;
        Some(self.working_days_between(before, last))
    }
}

fn parse_date(file: &str, year: i32, value: &str) -> Result<NaiveDate, CalendarError> {
    let d = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|_| value.len() == 10)
        .ok_or_else(|| CalendarError::BadDate {
            file: file.to_string(),
            year,
            value: value.to_string(),
        })?;
    if d.year() != year {
        return Err(CalendarError::DateOutsideYear {
            file: file.to_string(),
            year,
            date: d,
        });
    }
    Ok(d)
}

/// A reply deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The local date of receipt (day 0; the period starts the next day).
    pub receipt_date: NaiveDate,
    /// The last day of the period: a working day.
    pub date: NaiveDate,
    /// The end of that day: 00:00 local time of the next calendar day.
    pub at: DateTime<Utc>,
    /// Years counted without calendar data, and similar caveats.
    pub warnings: Vec<Warning>,
}

/// The deadline of a request received at `receipt` and to be answered within
/// `working_days` working days, counted in `tz` with `cal`.
///
/// The receipt day is the local date of `receipt` in `tz`; the count starts the next day
/// (Civil Code art. 191); only working days count (210-FZ art. 7.2 part 3), so the last
/// day is a working day (art. 193); the deadline is 24:00 local of that day (art. 194).
/// `working_days == 0` makes the receipt day itself the last day, moved to the next
/// working day when it is a day off.
pub fn due(receipt: DateTime<Utc>, working_days: u32, tz: Tz, cal: &Calendar) -> Due {
    let receipt_date = receipt.with_timezone(&tz).date_naive();
    let (date, warnings) = if working_days == 0 && cal.is_working_day(receipt_date) {
        let warnings = if cal.covers(receipt_date.year()) {
            Vec::new()
        } else {
            vec![Warning::NoCalendarData {
                year: receipt_date.year(),
            }]
        };
        (receipt_date, warnings)
    } else {
        cal.add_working_days(receipt_date, working_days.max(1))
    };
    let at = date
        .succ_opt()
        .map_or(DateTime::<Utc>::MAX_UTC, |next| start_of_day(next, tz));
    Due {
        receipt_date,
        date,
        at,
        warnings,
    }
}

/// When to remind of `due`: the start (00:00 local) of the working day
/// `working_days_before - 1` working days before the last day, so 1 is the start of the
/// last day itself and 2 the start of the working day before it. 0 is the deadline
/// itself. The result may precede the receipt; the caller decides whether to drop it.
pub fn reminder(due: &Due, working_days_before: u32, tz: Tz, cal: &Calendar) -> DateTime<Utc> {
    if working_days_before == 0 {
        return due.at;
    }
    let mut d = due.date;
    for _ in 1..working_days_before {
        match cal.previous_working_day(d) {
            Some(p) => d = p,
            None => break,
        }
    }
    start_of_day(d, tz)
}

/// The first instant of local date `date` in `tz`: local midnight, or, where a clock
/// change skips midnight, the first local minute of the day that exists.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    // A gap never lasts two days (the longest known, Pacific/Apia 2011, skipped one).
    for minutes in 0..(2 * 24 * 60) {
        let Some(local) = midnight.checked_add_signed(TimeDelta::minutes(minutes)) else {
            break;
        };
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earliest, _) => return earliest.with_timezone(&Utc),
            LocalResult::None => {}
        }
    }
    Utc.from_utc_datetime(&midnight)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fed() -> Calendar {
        Calendar::builtin_ru_federal().unwrap()
    }

    fn msk() -> Tz {
        DEFAULT_TZ
    }

    fn naive_count(cal: &Calendar, a: NaiveDate, b: NaiveDate) -> i64 {
        let mut n = 0;
        let mut x = a;
        while x < b {
            x = x.succ_opt().unwrap();
            if cal.is_working_day(x) {
                n += 1;
            }
        }
        n
    }

    fn err_of(files: &[(&str, &str)]) -> CalendarError {
        Calendar::from_toml_strs(files).unwrap_err()
    }

    #[test]
    fn origin_of_the_weekday_index_is_a_monday() {
        assert_eq!(d("0001-01-01").weekday(), Weekday::Mon);
        assert_eq!(d("0001-01-01").num_days_from_ce(), 1);
    }

    #[test]
    fn federal_calendar_loads_and_covers_2024_to_2026() {
        let cal = fed();
        assert_eq!(cal.years(), vec![2024, 2025, 2026]);
        assert!(!cal.covers(2023));
        assert!(!cal.covers(2027));
        assert_eq!(cal.sources().len(), 3);
        assert!(cal.sources()[1].source.contains("1335"));
        // Applying the federal file twice (built in, then from disk) changes nothing.
        let twice = Calendar::from_toml_strs(&[
            ("builtin", BUILTIN_RU_FEDERAL),
            ("disk", BUILTIN_RU_FEDERAL),
        ])
        .unwrap();
        assert_eq!(twice.deviations, cal.deviations);
        assert_eq!(twice.short, cal.short);
    }

    #[test]
    fn federal_calendar_totals_per_year() {
        let cal = fed();
        assert_eq!(cal.working_days_in_year(2024), Some(248));
        assert_eq!(cal.working_days_in_year(2025), Some(247));
        assert_eq!(cal.working_days_in_year(2026), Some(247));
    }

    fn month_totals(cal: &Calendar, year: i32) -> Vec<i64> {
        (1..=12)
            .map(|m| {
                let first = NaiveDate::from_ymd_opt(year, m, 1).unwrap();
                let next = if m == 12 {
                    NaiveDate::from_ymd_opt(year + 1, 1, 1).unwrap()
                } else {
                    NaiveDate::from_ymd_opt(year, m + 1, 1).unwrap()
                };
                cal.working_days_between(first.pred_opt().unwrap(), next.pred_opt().unwrap())
            })
            .collect()
    }

    #[test]
    fn federal_calendar_totals_per_month() {
        // Monthly working days (five-day week). 2026 is the published table (glavaudit.org,
        // KonsultantPlus-style); December 2024 (21) matches sport-express.net; the rest
        // pins the data (docs/calendars.md).
        let cal = fed();
        assert_eq!(
            month_totals(&cal, 2024),
            vec![17, 20, 20, 21, 20, 19, 23, 22, 21, 23, 21, 21]
        );
        assert_eq!(
            month_totals(&cal, 2025),
            vec![17, 20, 21, 22, 18, 19, 23, 21, 22, 23, 19, 22]
        );
        assert_eq!(
            month_totals(&cal, 2026),
            vec![15, 19, 21, 22, 19, 21, 23, 21, 22, 22, 20, 22]
        );
    }

    #[test]
    fn federal_calendar_days() {
        let cal = fed();
        // Public holidays and transferred days off.
        for off in [
            "2025-01-01",
            "2025-01-08",
            "2025-05-02",
            "2025-05-08",
            "2025-06-13",
            "2025-11-03",
            "2025-12-31",
            "2026-01-09",
            "2026-03-09",
            "2026-05-11",
            "2026-12-31",
            "2024-04-29",
            "2024-12-30",
        ] {
            assert!(!cal.is_working_day(d(off)), "{off} should be a day off");
        }
        // Working Saturdays.
        for on in ["2025-11-01", "2024-04-27", "2024-11-02", "2024-12-28"] {
            assert!(cal.is_working_day(d(on)), "{on} should be a working day");
        }
        // Ordinary days.
        assert!(cal.is_working_day(d("2025-12-30")));
        assert!(!cal.is_working_day(d("2025-11-02")));
        assert!(cal.is_short_day(d("2025-11-01")));
        assert!(!cal.is_short_day(d("2025-11-05")));
    }

    #[test]
    fn add_working_days_counts_after_from() {
        let cal = fed();
        // Friday -> the weekend is skipped.
        assert_eq!(cal.add_working_days(d("2025-10-10"), 1).0, d("2025-10-13"));
        // A working day counts from the next day.
        assert_eq!(cal.add_working_days(d("2025-10-13"), 1).0, d("2025-10-14"));
        // The May holidays of 2025: 01..04 and 08..11 off.
        assert_eq!(cal.add_working_days(d("2025-04-28"), 5).0, d("2025-05-07"));
        assert_eq!(cal.add_working_days(d("2025-04-28"), 6).0, d("2025-05-12"));
        // The working Saturday 01.11.2025 counts; 03.11 and 04.11 do not.
        assert_eq!(cal.add_working_days(d("2025-10-30"), 2).0, d("2025-11-01"));
        assert_eq!(cal.add_working_days(d("2025-10-30"), 5).0, d("2025-11-07"));
        let (date, warnings) = cal.add_working_days(d("2025-10-30"), 5);
        assert_eq!(date, d("2025-11-07"));
        assert!(warnings.is_empty());
        assert_eq!(cal.add_working_days(d("2025-10-30"), 0).0, d("2025-10-30"));
    }

    #[test]
    fn due_across_the_new_year() {
        let cal = fed();
        // Monday 29.12.2025, 10:00 MSK: 30.12 is day 1; 31.12 and 01..11.01 are off.
        let due = due(utc("2025-12-29T07:00:00Z"), 5, msk(), &cal);
        assert_eq!(due.receipt_date, d("2025-12-29"));
        assert_eq!(due.date, d("2026-01-15"));
        assert_eq!(due.at, utc("2026-01-15T21:00:00Z"));
        assert!(due.warnings.is_empty());
        assert_eq!(cal.working_days_between(due.receipt_date, due.date), 5);
    }

    #[test]
    fn due_over_a_transferred_day_off_and_a_working_saturday() {
        let cal = fed();
        let due = due(utc("2025-10-30T12:00:00Z"), 5, msk(), &cal);
        assert_eq!(due.date, d("2025-11-07"));
        assert_eq!(due.at, utc("2025-11-07T21:00:00Z"));
        // Received on the working Saturday itself.
        let due = super::due(utc("2025-11-01T09:00:00Z"), 1, msk(), &cal);
        assert_eq!(due.date, d("2025-11-05"));
    }

    #[test]
    fn receipt_date_is_the_local_date() {
        let cal = fed();
        // Both instants are on 06.03.2025 in UTC; the second is already Friday 07.03 in
        // Moscow (UTC+3), so its period starts on Monday 10.03.
        let evening = due(utc("2025-03-06T20:30:00Z"), 5, msk(), &cal);
        assert_eq!(evening.receipt_date, d("2025-03-06"));
        assert_eq!(evening.date, d("2025-03-13"));
        let night = due(utc("2025-03-06T21:30:00Z"), 5, msk(), &cal);
        assert_eq!(night.receipt_date, d("2025-03-07"));
        assert_eq!(night.date, d("2025-03-14"));
        assert_eq!(night.at, utc("2025-03-14T21:00:00Z"));
        // The same instant counted in UTC gives the earlier deadline.
        let in_utc = due(utc("2025-03-06T21:30:00Z"), 5, chrono_tz::UTC, &cal);
        assert_eq!(in_utc.date, d("2025-03-13"));
        assert_eq!(in_utc.at, utc("2025-03-14T00:00:00Z"));
        // Vladivostok (UTC+10).
        let vl = due(
            utc("2025-03-06T14:30:00Z"),
            5,
            chrono_tz::Asia::Vladivostok,
            &cal,
        );
        assert_eq!(vl.receipt_date, d("2025-03-07"));
        assert_eq!(vl.at, utc("2025-03-14T14:00:00Z"));
    }

    #[test]
    fn a_year_without_data_warns_and_counts_by_the_labour_code() {
        let cal = fed();
        // 2027 has no decree loaded: 1–8 January are still off (art. 112 part 1).
        // Wednesday 30.12.2026 + 2: 31.12.2026 is off (2026 decree), so 11 and 12.01.2027.
        let (date, warnings) = cal.add_working_days(d("2026-12-30"), 2);
        assert_eq!(date, d("2027-01-12"));
        assert_eq!(warnings, vec![Warning::NoCalendarData { year: 2027 }]);
        assert!(warnings[0].to_string().contains("Labour Code"));
        let (date, warnings) = cal.add_working_days(d("2026-12-29"), 1);
        assert_eq!(date, d("2026-12-30"));
        assert!(warnings.is_empty());
        // 1 May 2027 is a Saturday: Monday 3 May is off in its place; 9 May a Sunday:
        // Monday 10 May; 12 June a Saturday: Monday 14 June (art. 112 part 2).
        for day in [
            "2027-05-03",
            "2027-05-10",
            "2027-06-14",
            "2027-02-23",
            "2027-11-04",
        ] {
            assert!(!cal.is_working_day(d(day)), "{day}");
        }
        assert!(cal.is_working_day(d("2027-05-04")));
        // The two January weekend holidays wait for the decree: 249 working days (the
        // candidate decree of docs/calendars.md moves them and a Saturday: 247).
        assert_eq!(cal.working_days_in_year(2027), Some(249));
        // Thursday 30.12.2027: 31.12.2027 Fri, then 2028 from 10 January.
        let due = due(utc("2027-12-30T09:00:00Z"), 5, msk(), &cal);
        assert_eq!(due.date, d("2028-01-13"));
        assert_eq!(
            due.warnings,
            vec![
                Warning::NoCalendarData { year: 2027 },
                Warning::NoCalendarData { year: 2028 }
            ]
        );
        // An empty calendar counts every year so.
        let empty = Calendar::empty();
        assert!(empty.years().is_empty());
        assert!(!empty.is_working_day(d("2025-01-01")));
        assert_eq!(
            empty.working_days_in_year(2025),
            Some(261 - statutory_days_off(2025).len() as i64)
        );
        // Before the present list of holidays: Monday..Friday.
        assert!(empty.is_working_day(d("2012-01-02")));
    }

    #[test]
    fn overlays_on_a_year_without_data_build_on_the_labour_code() {
        let federal = ("builtin", BUILTIN_RU_FEDERAL);
        // A regional holiday on top of the statutory 2027: its total counts both, its
        // short day is checked against both, and it may cancel a statutory day.
        let overlay = r#"
            name = "region"
            kind = "overlay"
            [[year]]
            year = 2027
            source = "regional law"
            expected_working_days = 249
            non_working = ["2027-08-30"]
            working = ["2027-05-10"]
            pre_holiday_short = ["2027-08-27"]
        "#;
        let cal = Calendar::from_toml_strs(&[federal, ("region", overlay)]).expect("loads");
        assert!(!cal.is_working_day(d("2027-08-30")));
        assert!(
            cal.is_working_day(d("2027-05-10")),
            "the cancellation stands"
        );
        assert!(!cal.is_working_day(d("2027-05-03")));
        assert!(cal.is_short_day(d("2027-08-27")));
        assert!(!cal.covers(2027), "an overlay covers nothing");
        assert_eq!(cal.working_days_in_year(2027), Some(249 - 1 + 1));
        // A short day on a statutory day off is refused, as on any day off.
        let bad = overlay
            .replace("expected_working_days = 249\n", "")
            .replace("2027-08-27", "2027-01-05");
        assert!(matches!(
            Calendar::from_toml_strs(&[federal, ("region", &bad)]),
            Err(CalendarError::ShortNotWorking { .. })
        ));
        // A later overlay that cancels an earlier overlay's day off keeps it cancelled.
        let first = r#"
            name = "a"
            kind = "overlay"
            [[year]]
            year = 2027
            source = "x"
            non_working = ["2027-09-01"]
        "#;
        let second = first
            .replace("name = \"a\"", "name = \"b\"")
            .replace("non_working", "working");
        let cal =
            Calendar::from_toml_strs(&[federal, ("a", first), ("b", &second)]).expect("loads");
        assert!(cal.is_working_day(d("2027-09-01")));
    }

    #[test]
    fn the_labour_code_alone_comes_close_to_every_published_calendar() {
        // Against the decrees of the covered years: every weekday holiday of art. 112 is
        // off in each (a true subset), and the statutory count differs from the published
        // one on a handful of dates (the decree's transfers), where Monday..Friday would
        // miss every holiday.
        let cal = fed();
        let statutory = Calendar::empty();
        let weekdays_only = Calendar::default();
        for year in cal.years() {
            let days: Vec<NaiveDate> = (1..=366)
                .filter_map(|o| NaiveDate::from_yo_opt(year, o))
                .collect();
            let differ = |other: &Calendar| {
                days.iter()
                    .filter(|d| other.is_working_day(**d) != cal.is_working_day(**d))
                    .count()
            };
            for day in statutory_days_off(year) {
                let holiday = [
                    (1, 1),
                    (1, 2),
                    (1, 3),
                    (1, 4),
                    (1, 5),
                    (1, 6),
                    (1, 7),
                    (1, 8),
                ]
                .iter()
                .chain(&[(2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4)])
                .any(|&(m, d)| day.month() == m && day.day() == d);
                if holiday {
                    assert!(!cal.is_working_day(day), "{day}: a holiday on a weekday");
                }
            }
            let (by_code, by_weekday) = (differ(&statutory), differ(&weekdays_only));
            eprintln!(
                "{year}: statutory differs on {by_code} days, Monday..Friday on {by_weekday}"
            );
            assert!(by_code <= 8, "{year}: {by_code}");
            assert!(
                by_weekday >= by_code + 8,
                "{year}: {by_weekday} vs {by_code}"
            );
        }
    }

    #[test]
    fn zero_working_days() {
        let cal = fed();
        let due0 = due(utc("2025-11-02T09:00:00Z"), 0, msk(), &cal);
        assert_eq!(due0.date, d("2025-11-05"));
        let due0 = due(utc("2025-11-05T09:00:00Z"), 0, msk(), &cal);
        assert_eq!(due0.date, d("2025-11-05"));
    }

    #[test]
    fn reminders() {
        let cal = fed();
        let due = due(utc("2025-12-29T07:00:00Z"), 5, msk(), &cal);
        // 1: the start of the last day.
        assert_eq!(reminder(&due, 1, msk(), &cal), utc("2026-01-14T21:00:00Z"));
        // 2: the start of the working day before it.
        assert_eq!(reminder(&due, 2, msk(), &cal), utc("2026-01-13T21:00:00Z"));
        // 4: the start of the second working day of the period...
        assert_eq!(reminder(&due, 4, msk(), &cal), utc("2026-01-11T21:00:00Z"));
        // ...and 5 the first, back over the New Year holidays to 30.12.2025.
        assert_eq!(reminder(&due, 5, msk(), &cal), utc("2025-12-29T21:00:00Z"));
        assert_eq!(reminder(&due, 0, msk(), &cal), due.at);
    }

    #[test]
    fn start_of_day_in_a_zone_that_skips_midnight() {
        // America/Sao_Paulo moved its clocks from 00:00 to 01:00 on 04.11.2018.
        let tz = chrono_tz::America::Sao_Paulo;
        let t = start_of_day(d("2018-11-04"), tz);
        assert_eq!(t, utc("2018-11-04T03:00:00Z"));
        // And Moscow midnight is 21:00 UTC the day before.
        assert_eq!(
            start_of_day(d("2025-01-01"), msk()),
            utc("2024-12-31T21:00:00Z")
        );
    }

    #[test]
    fn working_days_between_examples() {
        let cal = fed();
        assert_eq!(
            cal.working_days_between(d("2025-12-29"), d("2025-12-29")),
            0
        );
        assert_eq!(
            cal.working_days_between(d("2025-12-29"), d("2026-01-12")),
            2
        );
        assert_eq!(
            cal.working_days_between(d("2026-01-12"), d("2025-12-29")),
            -2
        );
        assert_eq!(
            cal.working_days_between(d("2023-12-31"), d("2026-12-31")),
            248 + 247 + 247
        );
    }

    #[test]
    fn previous_and_next_working_day() {
        let cal = fed();
        assert_eq!(cal.next_working_day(d("2025-12-30")), Some(d("2026-01-12")));
        assert_eq!(
            cal.previous_working_day(d("2026-01-12")),
            Some(d("2025-12-30"))
        );
        assert_eq!(
            cal.previous_working_day(d("2025-11-03")),
            Some(d("2025-11-01"))
        );
    }

    #[test]
    fn load_from_files_in_order() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/calendars");
        let cal = Calendar::load(&[
            root.join("ru-federal.toml"),
            root.join("examples/region-example.toml"),
        ])
        .unwrap();
        assert_eq!(cal.years(), vec![2024, 2025, 2026]);
        assert!(!cal.is_working_day(d("2025-08-29")));
        assert!(cal.is_working_day(d("2025-08-23")));
        assert_eq!(cal.working_days_in_year(2025), Some(247));
        assert_eq!(cal.sources().len(), 4);
        assert_eq!(cal.sources()[3].kind, FileKind::Overlay);

        let missing = Calendar::load(&[root.join("no-such-file.toml")]).unwrap_err();
        assert!(matches!(missing, CalendarError::Io { .. }));
        assert!(missing.to_string().contains("no-such-file.toml"));
    }

    const HEAD: &str = "name = \"t\"\nkind = \"base\"\n";

    fn one_year(body: &str) -> String {
        format!("{HEAD}[[year]]\nyear = 2025\nsource = \"test\"\n{body}")
    }

    #[test]
    fn a_weekend_in_non_working_is_refused() {
        let text = one_year("non_working = [\"2025-03-08\"]\n");
        let e = err_of(&[("a.toml", &text)]);
        assert!(
            matches!(e, CalendarError::WeekendListedNonWorking { .. }),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("a.toml") && msg.contains("2025-03-08"),
            "{msg}"
        );
    }

    #[test]
    fn a_weekday_in_working_is_refused() {
        let text = one_year("working = [\"2025-11-03\"]\n");
        let e = err_of(&[("a.toml", &text)]);
        assert!(
            matches!(e, CalendarError::WeekdayListedWorking { .. }),
            "{e}"
        );
        assert!(e.to_string().contains("2025-11-03"));
    }

    #[test]
    fn a_date_outside_its_year_is_refused() {
        let text = one_year("non_working = [\"2026-01-01\"]\n");
        let e = err_of(&[("a.toml", &text)]);
        assert!(
            matches!(e, CalendarError::DateOutsideYear { year: 2025, .. }),
            "{e}"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let text = one_year("non_working = [\"2025-05-02\", \"2025-05-02\"]\n");
        assert!(matches!(
            err_of(&[("a.toml", &text)]),
            CalendarError::Duplicate { .. }
        ));
        let text = format!(
            "{HEAD}[[year]]\nyear = 2025\nsource = \"x\"\n[[year]]\nyear = 2025\nsource = \"y\"\n"
        );
        assert!(matches!(
            err_of(&[("a.toml", &text)]),
            CalendarError::DuplicateYear { year: 2025, .. }
        ));
        let text = one_year("pre_holiday_short = [\"2025-03-07\", \"2025-03-07\"]\n");
        assert!(matches!(
            err_of(&[("a.toml", &text)]),
            CalendarError::Duplicate { .. }
        ));
    }

    #[test]
    fn a_date_in_both_lists_is_refused() {
        let text = one_year("non_working = [\"2025-11-03\"]\nworking = [\"2025-11-03\"]\n");
        let e = err_of(&[("a.toml", &text)]);
        match e {
            CalendarError::Duplicate { first, second, .. } => {
                assert_eq!((first, second), ("non_working", "working"));
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn bad_syntax_and_dates_are_refused() {
        let e = err_of(&[("a.toml", "name = \"t\"\nkind = \"base\"\nbogus = 1\n")]);
        assert!(matches!(e, CalendarError::Syntax { .. }), "{e}");
        let e = err_of(&[("a.toml", "name = \"t\"\nkind = \"regional\"\n")]);
        assert!(matches!(e, CalendarError::Syntax { .. }), "{e}");
        let e = err_of(&[("a.toml", &one_year("non_working = [\"2025-5-2\"]\n"))]);
        assert!(matches!(e, CalendarError::BadDate { .. }), "{e}");
        let e = err_of(&[("a.toml", &one_year("non_working = [\"2025-02-30\"]\n"))]);
        assert!(matches!(e, CalendarError::BadDate { .. }), "{e}");
    }

    #[test]
    fn a_short_day_must_be_working() {
        let text =
            one_year("non_working = [\"2025-05-02\"]\npre_holiday_short = [\"2025-05-02\"]\n");
        let e = err_of(&[("a.toml", &text)]);
        assert!(matches!(e, CalendarError::ShortNotWorking { .. }), "{e}");
    }

    #[test]
    fn expected_totals_are_checked() {
        let text = one_year("expected_working_days = 247\nnon_working = [\"2025-05-02\"]\n");
        let e = err_of(&[("a.toml", &text)]);
        match e {
            CalendarError::WorkingDaysMismatch {
                expected, actual, ..
            } => assert_eq!((expected, actual), (247, 260)),
            other => panic!("{other}"),
        }
        // A date dropped from the federal file is caught by its total.
        let typo = BUILTIN_RU_FEDERAL.replace("\"2025-06-13\", #", "#");
        let e = err_of(&[("fed.toml", &typo)]);
        assert!(
            matches!(e, CalendarError::WorkingDaysMismatch { year: 2025, .. }),
            "{e}"
        );
    }

    #[test]
    fn later_files_win_and_overlays_cover_nothing() {
        let overlay = "name = \"r\"\nkind = \"overlay\"\n[[year]]\nyear = 2025\nsource = \"r\"\n\
                       working = [\"2025-05-02\"]\nnon_working = [\"2025-11-01\", \"2025-08-29\"]\n";
        let cal =
            Calendar::from_toml_strs(&[("fed.toml", BUILTIN_RU_FEDERAL), ("region.toml", overlay)])
                .unwrap();
        // Cancelled: the federal day off 02.05 and the federal working Saturday 01.11.
        assert!(cal.is_working_day(d("2025-05-02")));
        assert!(!cal.is_working_day(d("2025-11-01")));
        // The short day 01.11 is no longer a working day, so no longer short.
        assert!(!cal.is_short_day(d("2025-11-01")));
        assert!(!cal.is_working_day(d("2025-08-29")));
        assert_eq!(cal.working_days_in_year(2025), Some(247 + 1 - 1 - 1));
        // An overlay alone covers nothing.
        let alone = Calendar::from_toml_strs(&[(
            "region.toml",
            "name = \"r\"\nkind = \"overlay\"\n[[year]]\nyear = 2030\nsource = \"r\"\n\
             non_working = [\"2030-08-29\"]\n",
        )])
        .unwrap();
        assert!(!alone.covers(2030));
        assert!(!alone.is_working_day(d("2030-08-29")));
        // The same cancellations without an earlier entry are refused (typos).
        let e = err_of(&[("region.toml", overlay)]);
        assert!(
            matches!(e, CalendarError::WeekendListedNonWorking { .. }),
            "{e}"
        );
        let e = err_of(&[(
            "region.toml",
            "name = \"r\"\nkind = \"overlay\"\n[[year]]\nyear = 2025\nsource = \"r\"\n\
             working = [\"2025-05-02\"]\n",
        )]);
        assert!(
            matches!(e, CalendarError::WeekdayListedWorking { .. }),
            "{e}"
        );
    }

    fn arb_receipt() -> impl Strategy<Value = DateTime<Utc>> {
        // 2023-07-01 .. 2028-06-30, to cross covered and uncovered years.
        (1_688_169_600i64..1_845_936_000i64)
            .prop_map(|s| DateTime::<Utc>::from_timestamp(s, 0).unwrap())
    }

    fn arb_date() -> impl Strategy<Value = NaiveDate> {
        (0i64..(366 * 6)).prop_map(|k| d("2023-01-01") + TimeDelta::days(k))
    }

    fn arb_calendar() -> impl Strategy<Value = Calendar> {
        // Random deviations in 2024..2026, built directly.
        proptest::collection::btree_set(0i64..(366 * 3), 0..80).prop_map(|ks| {
            let mut cal = Calendar::default();
            for k in ks {
                let x = d("2024-01-01") + TimeDelta::days(k);
                cal.deviations.insert(x, is_weekend(x));
            }
            cal.covered.extend([2024, 2025, 2026]);
            cal
        })
    }

    proptest! {
        #[test]
        fn due_is_a_working_day_n_working_days_after_receipt(
            receipt in arb_receipt(), n in 1u32..40,
        ) {
            let cal = fed();
            let due = due(receipt, n, msk(), &cal);
            prop_assert!(cal.is_working_day(due.date));
            prop_assert!(due.date > due.receipt_date);
            prop_assert_eq!(cal.working_days_between(due.receipt_date, due.date), i64::from(n));
            prop_assert_eq!(naive_count(&cal, due.receipt_date, due.date), i64::from(n));
            // The day before the last day still leaves a working day to go.
            let before = due.date.pred_opt().unwrap();
            prop_assert_eq!(cal.working_days_between(due.receipt_date, before), i64::from(n) - 1);
            prop_assert!(due.at > receipt);
            prop_assert_eq!(due.at, start_of_day(due.date.succ_opt().unwrap(), msk()));
            prop_assert_eq!(due.at.with_timezone(&msk()).date_naive(), due.date.succ_opt().unwrap());
            prop_assert_eq!(reminder(&due, 1, msk(), &cal), start_of_day(due.date, msk()));
        }

        #[test]
        fn due_is_monotone_in_receipt_time(
            a in arb_receipt(), b in arb_receipt(), n in 1u32..12,
        ) {
            let cal = fed();
            let (early, late) = if a <= b { (a, b) } else { (b, a) };
            let d1 = due(early, n, msk(), &cal);
            let d2 = due(late, n, msk(), &cal);
            prop_assert!(d1.date <= d2.date);
            prop_assert!(d1.at <= d2.at);
        }

        #[test]
        fn due_is_monotone_in_working_days(receipt in arb_receipt(), n in 1u32..30) {
            let cal = fed();
            let d1 = due(receipt, n, msk(), &cal);
            let d2 = due(receipt, n + 1, msk(), &cal);
            prop_assert!(d1.date < d2.date);
            prop_assert_eq!(cal.next_working_day(d1.date), Some(d2.date));
        }

        #[test]
        fn reminders_step_back_over_working_days(receipt in arb_receipt(), n in 1u32..10, k in 1u32..10) {
            let cal = fed();
            let due = due(receipt, n, msk(), &cal);
            let r = reminder(&due, k, msk(), &cal);
            let r_next = reminder(&due, k + 1, msk(), &cal);
            prop_assert!(r_next < r);
            prop_assert!(r < due.at);
            let day = r.with_timezone(&msk()).date_naive();
            prop_assert!(cal.is_working_day(day));
            prop_assert_eq!(cal.working_days_between(day, due.date), i64::from(k) - 1);
        }

        #[test]
        fn between_matches_a_day_by_day_count(cal in arb_calendar(), a in arb_date(), b in arb_date()) {
            let expected = if a <= b { naive_count(&cal, a, b) } else { -naive_count(&cal, b, a) };
            prop_assert_eq!(cal.working_days_between(a, b), expected);
        }

        #[test]
        fn add_and_between_agree_on_any_calendar(cal in arb_calendar(), a in arb_date(), n in 1u32..60) {
            let (date, warnings) = cal.add_working_days(a, n);
            prop_assert!(cal.is_working_day(date));
            prop_assert_eq!(cal.working_days_between(a, date), i64::from(n));
            // A warning for exactly the uncovered years in (a, date].
            let first = a.succ_opt().unwrap().year();
            let expected: Vec<Warning> = (first..=date.year())
                .filter(|y| !cal.covers(*y))
                .map(|year| Warning::NoCalendarData { year })
                .collect();
            prop_assert_eq!(warnings, expected);
        }
    }
}
