//! Sample request and response documents of every demo kind, for schema checks and
//! for reading.

use crate::kinds::{
    birth_record_response, disability_response, income_response, DemoKind, PersonKey, Query,
    TaxpayerKey,
};
use crate::population::{Population, INCOME_YEARS};

/// The population the samples are drawn from: at least this many citizens.
const MIN_POPULATION: usize = 2_000;

/// `n` requests and `n` data responses of each kind, as (file name, document) pairs:
/// `<slug>-request-NNN.xml` and `<slug>-response-NNN.xml`, slugs as
/// [`DemoKind::slug`]. Each document has an XML declaration. The samples go through
/// every form the schemas allow: the birth record asked for with and without the first
/// name and patronymic, the father recorded or not; the taxpayer found by INN, by SNILS
/// and by name, one or several tax agents; disability established for a term,
/// indefinitely, or not at all.
pub fn samples(seed: u64, n: usize) -> Vec<(String, String)> {
    let p = Population::generate(seed, MIN_POPULATION.max(n.saturating_mul(8)));
    let g = &p.groups;
    let nth = |group: &[usize], i: usize| -> usize {
        if group.is_empty() {
            i % p.len()
        } else {
            // Spread over the group rather than taking neighbours.
            group[i.wrapping_mul(7919) % group.len()]
        }
    };
    let mut out = Vec::with_capacity(6 * n);
    let mut push = |kind: DemoKind, what: &str, i: usize, xml: String| {
        out.push((
            format!("{}-{what}-{:03}.xml", kind.slug(), i + 1),
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{xml}\n"),
        ));
    };
    // Children with and without a father in the record, alternately where possible.
    let (with_father, without_father): (Vec<usize>, Vec<usize>) = g
        .children
        .iter()
        .partition(|&&id| p.citizens()[id].birth_record.father.is_some());
    for i in 0..n {
        let group = if i % 3 == 2 && !without_father.is_empty() {
            &without_father
        } else {
            &with_father
        };
        let c = &p.citizens()[nth(group, i)];
        let mut key = PersonKey {
            surname: c.birth_record.surname.clone(),
            ..PersonKey::of(c)
        };
        if i % 4 == 3 {
            key.first_name = None;
            key.patronymic = None;
        }
        push(
            DemoKind::BirthRecord,
            "request",
            i,
            Query::BirthRecord(key).to_xml(),
        );
        push(
            DemoKind::BirthRecord,
            "response",
            i,
            birth_record_response(c),
        );
    }
    // Earners, with several tax agents in a year now and then.
    let several: Vec<usize> = g
        .earners
        .iter()
        .copied()
        .filter(|&id| {
            let c = &p.citizens()[id];
            INCOME_YEARS.iter().any(|&y| c.income_in(y).count() > 1)
        })
        .collect();
    for i in 0..n {
        let group = if i % 5 == 4 && !several.is_empty() {
            &several
        } else {
            &g.earners
        };
        let c = &p.citizens()[nth(group, i)];
        let year = INCOME_YEARS
            .iter()
            .copied()
            .max_by_key(|&y| (c.income_in(y).count(), y))
            .unwrap_or(INCOME_YEARS[0]);
        let key = match i % 3 {
            0 => TaxpayerKey::Inn(c.inn.clone()),
            1 => TaxpayerKey::Snils(c.snils.clone()),
            _ => TaxpayerKey::Person(PersonKey::of(c)),
        };
        push(
            DemoKind::Income,
            "request",
            i,
            Query::Income { key, year }.to_xml(),
        );
        // None only when the population has no earners at all (a tiny one).
        if let Some(response) = income_response(&p, c, year) {
            push(DemoKind::Income, "response", i, response);
        }
    }
    // Disabled people for a term and indefinitely, and people without a disability.
    let (indefinite, term): (Vec<usize>, Vec<usize>) = g.disabled.iter().partition(|&&id| {
        p.citizens()[id]
            .disability
            .as_ref()
            .is_some_and(|d| d.until.is_none())
    });
    for i in 0..n {
        let id = match i % 4 {
            0 | 2 => nth(&term, i),
            1 if !indefinite.is_empty() => nth(&indefinite, i),
            _ => i.wrapping_mul(104_729) % p.len(),
        };
        let c = &p.citizens()[id];
        let q = Query::Disability {
            snils: c.snils.clone(),
            person: PersonKey::of(c),
        };
        push(DemoKind::Disability, "request", i, q.to_xml());
        push(DemoKind::Disability, "response", i, disability_response(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_every_form() {
        let s = samples(1, 12);
        assert_eq!(s.len(), 6 * 12);
        let all = |slug: &str, needle: &str| {
            s.iter()
                .filter(|(name, _)| name.starts_with(slug))
                .any(|(_, xml)| xml.contains(needle))
        };
        assert!(all("zags-birth-record-response", "<zags:Father>"));
        assert!(s
            .iter()
            .filter(|(n, _)| n.starts_with("zags-birth-record-response"))
            .any(|(_, x)| !x.contains("<zags:Father>")));
        assert!(all("zags-birth-record-request", "<zags:FirstName>"));
        assert!(s
            .iter()
            .filter(|(n, _)| n.starts_with("zags-birth-record-request"))
            .any(|(_, x)| !x.contains("<zags:FirstName>")));
        for needle in ["<fns:Inn>", "<fns:Snils>", "<fns:Person>"] {
            assert!(all("fns-income-request", needle), "{needle}");
        }
        assert!(s.iter().any(|(n, x)| n.starts_with("fns-income-response")
            && x.matches("<fns:Certificate>").count() > 1));
        for needle in ["<sfr:Until>", "<sfr:Indefinite/>", "<sfr:NotEstablished/>"] {
            assert!(all("sfr-disability-response", needle), "{needle}");
        }
        assert_eq!(s, samples(1, 12), "deterministic");
    }
}
