//! National identity numbers with a check digit or a strict structure:
//! UK NINO and NHS, Spanish NIF/NIE, Italian codice fiscale, French NIR,
//! German Steuer-ID, Indian Aadhaar (Verhoeff), Polish PESEL, Brazilian
//! CPF. Each
//! validator turns a pattern match into a base score or drops it; numbers
//! that are only digits and whose check passes by chance one time in ten
//! are weak alone and need a context word.

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn compact(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, ' ' | '-')).collect()
}

/// Spaces or dashes used in one way only (`AB 12 34 56 C`, not `AB12 3456C`).
fn consistent_separators(s: &str) -> bool {
    let seps: Vec<char> = s.chars().filter(|c| matches!(c, ' ' | '-')).collect();
    seps.windows(2).all(|w| w[0] == w[1])
}

/// UK National Insurance number: two prefix letters (some never issued),
/// six digits, a suffix A–D. No check digit, but a narrow shape.
pub fn uk_nino(s: &str) -> Option<f32> {
    let c = compact(s);
    if c.len() != 9 || !consistent_separators(s) {
        return None;
    }
    let prefix = &c[..2];
    if ["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(&prefix) {
        return None;
    }
    Some(0.6)
}

/// UK NHS number: ten digits, mod-11 check digit.
pub fn uk_nhs(s: &str) -> Option<f32> {
    let d = digits(s);
    if d.len() != 10 || !consistent_separators(s) {
        return None;
    }
    let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(x, w)| x * w).sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return None,
        c => c,
    };
    (check == d[9]).then_some(0.4)
}

const NIF_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

fn nif_letter(n: u32) -> char {
    char::from(NIF_LETTERS[(n % 23) as usize])
}

/// Spanish DNI/NIF: eight digits and the letter they determine.
pub fn es_nif(s: &str) -> Option<f32> {
    let c = compact(s);
    let (num, letter) = c.split_at(8);
    let n: u32 = num.parse().ok()?;
    (letter.chars().next()? == nif_letter(n)).then_some(0.95)
}

/// Spanish NIE: X, Y or Z (0, 1, 2), seven digits, the check letter.
pub fn es_nie(s: &str) -> Option<f32> {
    let c = compact(s);
    let lead = match c.as_bytes().first()? {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        _ => return None,
    };
    let n: u32 = c.get(1..8)?.parse().ok()?;
    (c[8..].chars().next()? == nif_letter(lead * 10_000_000 + n)).then_some(0.95)
}

/// Values of the characters in odd positions (1st, 3rd, …) of a codice
/// fiscale, for A–Z; a digit counts as the letter at its index (0 = A).
const CF_ODD: [u32; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

/// Italian codice fiscale: 16 characters, the last a check letter over the
/// first 15 (odd and even positions weighted by two tables).
pub fn it_fiscal_code(s: &str) -> Option<f32> {
    let b = s.as_bytes();
    if b.len() != 16 {
        return None;
    }
    let mut sum = 0;
    for (i, &ch) in b[..15].iter().enumerate() {
        let idx = match ch {
            b'0'..=b'9' => u32::from(ch - b'0'),
            b'A'..=b'Z' => u32::from(ch - b'A'),
            _ => return None,
        };
        sum += if i % 2 == 0 {
            CF_ODD[idx as usize]
        } else {
            idx
        };
    }
    (u32::from(b[15]) == u32::from(b'A') + sum % 26).then_some(1.0)
}

/// French NIR: 13 digits (Corsica's 2A/2B count as 19/18) and a key,
/// 97 minus the number mod 97.
pub fn fr_nir(s: &str) -> Option<f32> {
    let c = compact(s);
    if c.len() != 15 {
        return None;
    }
    let body = match &c[5..7] {
        "2A" => format!("{}19{}", &c[..5], &c[7..13]),
        "2B" => format!("{}18{}", &c[..5], &c[7..13]),
        _ => c[..13].to_string(),
    };
    let n: u64 = body.parse().ok()?;
    let key: u64 = c[13..].parse().ok()?;
    let month: u32 = c[3..5].parse().ok()?;
    let month_ok = (1..=12).contains(&month) || (20..=42).contains(&month) || month >= 50;
    (month_ok && key == 97 - n % 97).then_some(0.95)
}

/// German Steuer-ID: 11 digits, no leading zero, in the first ten one digit
/// twice or three times and the rest at most once, ISO 7064 MOD 11,10.
pub fn de_tax_id(s: &str) -> Option<f32> {
    let d = digits(s);
    if d.len() != 11 || d[0] == 0 {
        return None;
    }
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[x as usize] += 1;
    }
    let repeated: Vec<u8> = counts.iter().copied().filter(|&c| c > 1).collect();
    if repeated.len() != 1 || !(2..=3).contains(&repeated[0]) {
        return None;
    }
    let mut product = 10;
    for &x in &d[..10] {
        let mut sum = (x + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = match 11 - product {
        10 => 0,
        c => c,
    };
    (check == d[10]).then_some(0.4)
}

/// Verhoeff's dihedral-group multiplication table.
const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

/// Verhoeff's position permutation.
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Whether the digits (check digit last) pass Verhoeff's check.
pub fn verhoeff_ok(d: &[u32]) -> bool {
    let mut c = 0u8;
    for (i, &x) in d.iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[i % 8][x as usize] as usize];
    }
    c == 0
}

/// Indian Aadhaar: 12 digits, the first 2–9, not a palindrome, Verhoeff.
/// Written in groups of four it is a medium match, as one run weak.
pub fn in_aadhaar(s: &str) -> Option<f32> {
    let d = digits(s);
    if d.len() != 12 || d[0] < 2 || !consistent_separators(s) {
        return None;
    }
    if d.iter().eq(d.iter().rev()) || !verhoeff_ok(&d) {
        return None;
    }
    Some(if s.len() > 12 { 0.6 } else { 0.4 })
}

/// Polish PESEL: 11 digits, a birth date (the month carries the century)
/// and a weighted check digit.
pub fn pl_pesel(s: &str) -> Option<f32> {
    let d = digits(s);
    if d.len() != 11 {
        return None;
    }
    let weights = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = d[..10].iter().zip(weights).map(|(x, w)| x * w).sum();
    if (10 - sum % 10) % 10 != d[10] {
        return None;
    }
    let month = (d[2] * 10 + d[3]) % 20;
    let day = d[4] * 10 + d[5];
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(0.4)
}

/// Brazilian CPF: nine digits and two mod-11 check digits; written
/// `000.000.000-00` it is certain, as one run weak.
pub fn br_cpf(s: &str) -> Option<f32> {
    let d = digits(s);
    if d.len() != 11 || d.iter().all(|&x| x == d[0]) {
        return None;
    }
    let check = |n: usize| {
        let sum: u32 = d[..n]
            .iter()
            .zip((2..=n as u32 + 1).rev())
            .map(|(x, w)| x * w)
            .sum();
        (sum * 10) % 11 % 10
    };
    if check(9) != d[9] || check(10) != d[10] {
        return None;
    }
    Some(if s.contains('.') && s.contains('-') {
        0.9
    } else {
        0.4
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        // Worked examples from the schemes' own descriptions.
        assert!(
            verhoeff_ok(&[2, 3, 6, 3]),
            "Verhoeff: 236 has check digit 3"
        );
        assert!(!verhoeff_ok(&[2, 3, 6, 4]));
        assert_eq!(es_nif("12345678Z"), Some(0.95));
        assert_eq!(es_nif("12345678A"), None);
        assert_eq!(es_nie("X1234567L"), Some(0.95));
        assert_eq!(uk_nhs("943 476 5919"), Some(0.4));
        assert_eq!(uk_nhs("943 476 5918"), None);
        assert!(uk_nino("AB 12 34 56 C").is_some());
        assert!(uk_nino("GB 12 34 56 C").is_none(), "GB is never issued");
        assert!(pl_pesel("44051401359").is_some());
        assert!(pl_pesel("44051401358").is_none());
        assert_eq!(br_cpf("529.982.247-25"), Some(0.9));
        assert!(br_cpf("529.982.247-26").is_none());
        assert!(br_cpf("111.111.111-11").is_none());
    }
}
