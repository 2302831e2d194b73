//! Russian personal and tax identifiers with their check digits: SNILS (insurance number
//! of an individual personal account) and INN (taxpayer number, 12 digits for an
//! individual, 10 for an organisation), and KPP.

/// The two-digit control number of a SNILS whose nine digits are `number`
/// (`0..=999_999_999`): the digits weighted 9..1 from the left and summed; a sum below
/// 100 is the control number, 100 and 101 give 00, a larger sum is taken modulo 101 with
/// 100 again giving 00.
pub fn snils_control(number: u32) -> u32 {
    let digits = digits_of(u64::from(number), 9);
    let sum: u32 = digits
        .iter()
        .zip((1..=9).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    match sum {
        0..=99 => sum,
        100 | 101 => 0,
        _ => {
            let r = sum % 101;
            if r == 100 {
                0
            } else {
                r
            }
        }
    }
}

/// A SNILS as written: `NNN-NNN-NNN CC`.
pub fn format_snils(number: u32) -> String {
    let n = format!("{number:09}");
    format!(
        "{}-{}-{} {:02}",
        &n[0..3],
        &n[3..6],
        &n[6..9],
        snils_control(number)
    )
}

/// Whether `s` is a SNILS written `NNN-NNN-NNN CC` with the right control number.
///
/// The check applies to numbers above 001-001-998 only (the control number was
/// introduced then); smaller ones are accepted on their format.
pub fn is_valid_snils(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 14 || b[3] != b'-' || b[7] != b'-' || b[11] != b' ' {
        return false;
    }
    let digit_positions = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13];
    if !digit_positions.iter().all(|&i| b[i].is_ascii_digit()) {
        return false;
    }
    let value = |idx: &[usize]| -> u32 {
        idx.iter()
            .fold(0u32, |acc, &i| acc * 10 + u32::from(b[i] - b'0'))
    };
    let number = value(&digit_positions[..9]);
    let control = value(&digit_positions[9..]);
    number <= 1_001_998 || snils_control(number) == control
}

const INN12_W1: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
const INN12_W2: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
const INN10_W: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];

fn check_digit(digits: &[u8], weights: &[u32]) -> u8 {
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(&d, &w)| u32::from(d) * w)
        .sum();
    (sum % 11 % 10) as u8
}

/// The 12-digit INN of an individual whose first ten digits are `first10`
/// (`0..=9_999_999_999`: region, tax office, number), with both check digits.
pub fn person_inn(first10: u64) -> String {
    let mut d = digits_of(first10, 10);
    let c1 = check_digit(&d, &INN12_W1);
    d.push(c1);
    let c2 = check_digit(&d, &INN12_W2);
    d.push(c2);
    d.iter().map(|&x| char::from(b'0' + x)).collect()
}

/// The 10-digit INN of an organisation whose first nine digits are `first9`.
pub fn organisation_inn(first9: u64) -> String {
    let mut d = digits_of(first9, 9);
    let c = check_digit(&d, &INN10_W);
    d.push(c);
    d.iter().map(|&x| char::from(b'0' + x)).collect()
}

/// Whether `s` is an INN (12 digits of an individual or 10 of an organisation) with the
/// right check digits.
pub fn is_valid_inn(s: &str) -> bool {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let d: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
    match d.len() {
        12 => {
            check_digit(&d[..10], &INN12_W1) == d[10] && check_digit(&d[..11], &INN12_W2) == d[11]
        }
        10 => check_digit(&d[..9], &INN10_W) == d[9],
        _ => false,
    }
}

/// The `n` low decimal digits of `value`, most significant first.
fn digits_of(value: u64, n: usize) -> Vec<u8> {
    let mut v = value;
    let mut out = vec![0u8; n];
    for slot in out.iter_mut().rev() {
        *slot = (v % 10) as u8;
        v /= 10;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snils_known_values() {
        // Published examples of valid SNILS.
        assert!(is_valid_snils("112-233-445 95"));
        assert_eq!(snils_control(112_233_445), 95);
        assert_eq!(format_snils(112_233_445), "112-233-445 95");
        assert!(!is_valid_snils("112-233-445 96"));
        assert!(!is_valid_snils("112-233-44595"));
        assert!(!is_valid_snils("112-233-445 9"));
        assert!(!is_valid_snils("11a-233-445 95"));
    }

    #[test]
    fn snils_control_boundaries() {
        // Find numbers whose weighted sums are 99, 100, 101, 102 and 201 and check them.
        let weighted = |n: u32| -> u32 {
            digits_of(u64::from(n), 9)
                .iter()
                .zip((1..=9).rev())
                .map(|(&d, w)| u32::from(d) * w)
                .sum()
        };
        let mut seen = [false; 5];
        for n in (0..999_999_999u32).step_by(9_973) {
            let s = weighted(n);
            let c = snils_control(n);
            match s {
                99 => {
                    assert_eq!(c, 99);
                    seen[0] = true;
                }
                100 => {
                    assert_eq!(c, 0);
                    seen[1] = true;
                }
                101 => {
                    assert_eq!(c, 0);
                    seen[2] = true;
                }
                102 => {
                    assert_eq!(c, 1);
                    seen[3] = true;
                }
                201 => {
                    assert_eq!(c, 0);
                    seen[4] = true;
                }
                _ => assert!(c < 100),
            }
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    #[test]
    fn inn_known_values() {
        // Publicly documented valid INNs (the FNS's own, and a standard individual example).
        assert!(is_valid_inn("7707329152"));
        assert_eq!(organisation_inn(770_732_915), "7707329152");
        assert!(is_valid_inn("500100732259"));
        assert_eq!(person_inn(5_001_007_322), "500100732259");
        assert!(!is_valid_inn("500100732258"));
        assert!(!is_valid_inn("7707329153"));
        assert!(!is_valid_inn("77073291"));
        assert!(!is_valid_inn("770732915x"));
    }

    #[test]
    fn generated_identifiers_validate() {
        for i in 0..2_000u64 {
            let n = (i * 499_979 + 1_002_000) as u32 % 999_999_999;
            let s = format_snils(n.max(1_002_000));
            assert!(is_valid_snils(&s), "{s}");
            assert!(is_valid_inn(&person_inn(4_200_000_000 + i * 7_919)));
            assert!(is_valid_inn(&organisation_inn(420_000_000 + i * 613)));
        }
    }
}
