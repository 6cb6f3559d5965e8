//! Entra's `NormalizeDiacritics`: letters with diacritics become their plain letters.
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Letters that do not decompose into a base letter and a mark, spelled as Entra spells them.
fn plain(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' => "ss",
        'ẞ' => "SS",
        'Ø' => "O",
        'ø' => "o",
        'Æ' => "AE",
        'æ' => "ae",
        'Œ' => "OE",
        'œ' => "oe",
        'Đ' => "D",
        'đ' => "d",
        'Ł' => "L",
        'ł' => "l",
        'Þ' => "TH",
        'þ' => "th",
        'Ð' => "D",
        'ð' => "d",
        'ı' => "i",
        _ => return None,
    })
}

pub(crate) fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        match plain(c) {
            Some(p) => out.push_str(p),
            None => out.push(c),
        }
    }
    out.nfc().collect()
}
