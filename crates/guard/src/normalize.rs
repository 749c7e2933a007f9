//! Undoes the usual ways of hiding data from a pattern before the scan:
//! Unicode digits of any script and full-width forms become ASCII,
//! zero-width characters and soft hyphens go, Unicode spaces and dashes
//! become ' ' and '-', Cyrillic and Greek look-alikes of Latin letters
//! become those letters, and `[at]`, `(dot)` and their kin become `@` and
//! `.`. Every byte of the result remembers the span of the original it came
//! from, so findings point into the text as it was written.

use std::ops::Range;

use regex_automata::meta::Regex;
use regex_automata::util::syntax;

/// A text rewritten for the scan, with its offset map.
pub(crate) struct Normalized {
    pub text: String,
    /// For each byte of `text`: the original bytes it stands for.
    from: Vec<(u32, u32)>,
}

impl Normalized {
    /// The original byte range behind `r` (a range of `text`).
    pub fn original(&self, r: &Range<usize>) -> Range<usize> {
        if r.is_empty() {
            let at = self.from.get(r.start).map_or(0, |f| f.0 as usize);
            return at..at;
        }
        self.from[r.start].0 as usize..self.from[r.end - 1].1 as usize
    }
}

/// The zeros of Unicode's decimal digit runs (each followed by 1–9), other
/// than ASCII: Arabic-Indic, Extended Arabic-Indic, NKo, Devanagari,
/// Bengali, Gurmukhi, Gujarati, Oriya, Tamil, Telugu, Kannada, Malayalam,
/// Sinhala, Thai, Lao, Tibetan, Myanmar, Khmer, Mongolian, Limbu, New Tai
/// Lue, Balinese, Sundanese, Lepcha, Ol Chiki, Vai, Saurashtra, Kayah Li,
/// Javanese, Cham, Meetei Mayek, full-width, and the five mathematical
/// digit styles.
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1B50, 0x1BB0,
    0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xAA50, 0xABF0, 0xFF10, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6,
];

fn unicode_digit(c: char) -> Option<char> {
    let u = c as u32;
    if u < 0x0660 {
        return None;
    }
    DIGIT_ZEROS
        .iter()
        .find(|&&z| (z..z + 10).contains(&u))
        .map(|&z| char::from(b'0' + (u - z) as u8))
}

/// Cyrillic and Greek letters drawn like Latin ones.
fn homoglyph(c: char) -> Option<char> {
    Some(match c {
        'а' => 'a',
        'е' => 'e',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'с' => 'c',
        'у' => 'y',
        'х' | 'χ' => 'x',
        'і' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ɡ' => 'g',
        'ӏ' => 'l',
        'ν' => 'v',
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'Е' | 'Ε' => 'E',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'Н' | 'Η' => 'H',
        'О' | 'Ο' => 'O',
        'Р' | 'Ρ' => 'P',
        'С' => 'C',
        'Т' | 'Τ' => 'T',
        'Х' | 'Χ' => 'X',
        'І' | 'Ι' => 'I',
        'Ј' => 'J',
        'Ѕ' => 'S',
        'Ζ' => 'Z',
        'Ν' => 'N',
        'Υ' => 'Y',
        _ => return None,
    })
}

/// What one character becomes: `None` dropped, else its replacement.
fn fold(c: char) -> Option<char> {
    if c.is_ascii() {
        return Some(c);
    }
    match c {
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}' => None,
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => Some(' '),
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => Some('-'),
        // Full-width ASCII forms.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        _ => Some(unicode_digit(c).or_else(|| homoglyph(c)).unwrap_or(c)),
    }
}

/// `[at]`, `(at)`, `{at}`, `<at>` and the same for `dot`, with any spaces
/// around: written-out `@` and `.`.
fn spelled() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::builder()
            .syntax(
                syntax::Config::new()
                    .unicode(false)
                    .utf8(false)
                    .case_insensitive(true),
            )
            .build(r" *[\[({<] *(?:at|dot) *[\])}>] *")
            .unwrap_or_else(|e| panic!("the spelled-out @ pattern must compile: {e}"))
    })
}

/// The text rewritten, or `None` when nothing in it needs rewriting (the
/// common case: one pass, and text in other scripts is only looked at).
pub(crate) fn normalize(text: &str) -> Option<Normalized> {
    let re = spelled();
    let changes = |t: &str| t.chars().any(|c| !c.is_ascii() && fold(c) != Some(c));
    if !re.is_match(text) && (text.is_ascii() || !changes(text)) {
        return None;
    }
    let mut out = Normalized {
        text: String::with_capacity(text.len()),
        from: Vec::with_capacity(text.len()),
    };
    let mut push = |out: &mut Normalized, s: &str, span: (usize, usize)| {
        out.text.push_str(s);
        out.from
            .extend(std::iter::repeat_n((span.0 as u32, span.1 as u32), s.len()));
    };
    let mut at = 0;
    for m in re.find_iter(text) {
        fold_into(&mut out, &text[at..m.start()], at, &mut push);
        let word = text[m.range()].to_ascii_lowercase();
        let sym = if word.contains("at") { "@" } else { "." };
        push(&mut out, sym, (m.start(), m.end()));
        at = m.end();
    }
    fold_into(&mut out, &text[at..], at, &mut push);
    Some(out)
}

fn fold_into(
    out: &mut Normalized,
    piece: &str,
    base: usize,
    push: &mut impl FnMut(&mut Normalized, &str, (usize, usize)),
) {
    let mut buf = [0u8; 4];
    for (i, c) in piece.char_indices() {
        let span = (base + i, base + i + c.len_utf8());
        if let Some(f) = fold(c) {
            push(out, f.encode_utf8(&mut buf), span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back(n: &Normalized, text: &str, needle: &str) -> String {
        let s = n.text.find(needle).unwrap();
        text[n.original(&(s..s + needle.len()))].to_string()
    }

    #[test]
    fn plain_ascii_is_left_alone() {
        assert!(normalize("Mail jane@example.com (at noon).").is_none());
    }

    #[test]
    fn digits_spaces_and_spelled_symbols() {
        let t = "Card ４１１１\u{200B}1111 ١١١١ 1111, mail jane [at] example (dot) com";
        let n = normalize(t).unwrap();
        assert!(n.text.contains("41111111 1111 1111"), "{}", n.text);
        assert!(n.text.contains("jane@example.com"), "{}", n.text);
        assert_eq!(
            back(&n, t, "jane@example.com"),
            "jane [at] example (dot) com"
        );
        assert_eq!(back(&n, t, "41111111"), "４１１１\u{200B}1111");
    }

    #[test]
    fn look_alike_letters() {
        let t = "jаne@ехаmple.com"; // Cyrillic а, е, х, а
        let n = normalize(t).unwrap();
        assert_eq!(n.text, "jane@example.com");
        assert_eq!(n.original(&(0..n.text.len())), 0..t.len());
    }
}
