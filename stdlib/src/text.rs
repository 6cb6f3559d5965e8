//! Text functions: the string handling an Entra Connect admin knows (Left, Right, Mid, PCase, Replace, Word, ...).
//! Every function that takes text returns `()` when given `()`, so a missing attribute flows as missing.
use rhai::plugin::*;

#[export_module]
pub mod text {
    use super::*;
    use rhai::{Array, Dynamic, EvalAltResult, ImmutableString};

    /// Lower-cases text (Entra: `LCase`). `lower(())` is `()`.
    #[rhai_fn(name = "lower")]
    pub fn lower(s: &str) -> String {
        s.to_lowercase()
    }
    #[rhai_fn(name = "lower")]
    pub fn lower_unit(_s: ()) {}

    /// Upper-cases text (Entra: `UCase`). `upper(())` is `()`.
    #[rhai_fn(name = "upper")]
    pub fn upper(s: &str) -> String {
        s.to_uppercase()
    }
    #[rhai_fn(name = "upper")]
    pub fn upper_unit(_s: ()) {}

    /// Removes leading and trailing white space (Entra: `Trim`). Returns a new string; text of
    /// only white space becomes `()` (absent), as an empty value is in Entra.
    #[rhai_fn(name = "trim")]
    pub fn trim(s: &str) -> Dynamic {
        match s.trim() {
            "" => Dynamic::UNIT,
            t => Dynamic::from(t.to_string()),
        }
    }
    #[rhai_fn(name = "trim")]
    pub fn trim_unit(_s: ()) {}

    /// The 1-based position of `find` in `s`, counted in characters, or 0 when it is not there;
    /// case-sensitive (Entra: `InStr`). `instr("CAS_{abc}", "}")` is 9; `()` gives 0.
    #[rhai_fn(name = "instr")]
    pub fn instr(s: &str, find: &str) -> i64 {
        s.find(find).map(|b| s[..b].chars().count() as i64 + 1).unwrap_or(0)
    }
    #[rhai_fn(name = "instr")]
    pub fn instr_unit(_s: (), _find: &str) -> i64 {
        0
    }

    /// Letters with diacritics replaced by their plain letters (Entra: `NormalizeDiacritics`):
    /// `normalize_diacritics("Zoë Ångström")` is `"Zoe Angstrom"`; `ß` becomes `ss`, `Ø` `O`, `Æ` `AE`.
    #[rhai_fn(name = "normalize_diacritics")]
    pub fn normalize_diacritics(s: &str) -> String {
        crate::diacritics::normalize(s)
    }
    #[rhai_fn(name = "normalize_diacritics")]
    pub fn normalize_diacritics_unit(_s: ()) {}

    /// The first `n` characters (Entra: `Left`). `left("Alice", 3)` is `"Ali"`.
    #[rhai_fn(name = "left")]
    pub fn left(s: &str, n: i64) -> String {
        s.chars().take(n.max(0) as usize).collect()
    }
    #[rhai_fn(name = "left")]
    pub fn left_unit(_s: (), _n: i64) {}

    /// The last `n` characters (Entra: `Right`). `right("Alice", 2)` is `"ce"`.
    #[rhai_fn(name = "right")]
    pub fn right(s: &str, n: i64) -> String {
        let len = s.chars().count();
        let n = (n.max(0) as usize).min(len);
        s.chars().skip(len - n).collect()
    }
    #[rhai_fn(name = "right")]
    pub fn right_unit(_s: (), _n: i64) {}

    /// `len` characters starting at the 1-based position `start` (Entra: `Mid`). `mid("Alice", 2, 3)` is `"lic"`.
    #[rhai_fn(name = "mid")]
    pub fn mid(s: &str, start: i64, len: i64) -> String {
        s.chars().skip((start.max(1) - 1) as usize).take(len.max(0) as usize).collect()
    }
    #[rhai_fn(name = "mid")]
    pub fn mid_unit(_s: (), _start: i64, _len: i64) {}

    /// Proper case: first letter of every word upper, the rest lower (Entra: `PCase`). `pcase("jöRG mÜLLER")` is `"Jörg Müller"`.
    #[rhai_fn(name = "pcase")]
    pub fn pcase(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut start = true;
        for c in s.chars() {
            if c.is_alphanumeric() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.extend(c.to_lowercase());
                }
                start = false;
            } else {
                out.push(c);
                start = true;
            }
        }
        out
    }
    #[rhai_fn(name = "pcase")]
    pub fn pcase_unit(_s: ()) {}

    /// Replaces every occurrence of `find` with `with` (Entra: `Replace`). Returns a new string.
    #[rhai_fn(name = "replace")]
    pub fn replace(s: &str, find: &str, with: &str) -> String {
        if find.is_empty() {
            return s.to_string();
        }
        s.replace(find, with)
    }
    #[rhai_fn(name = "replace")]
    pub fn replace_unit(_s: (), _find: &str, _with: &str) {}

    /// Replaces every match of the regular expression `pattern` with `with`; `$1` names a group
    /// (Entra: `RegexReplace`). A bad pattern is an error naming it.
    #[rhai_fn(name = "regex_replace", return_raw)]
    pub fn regex_replace(s: &str, pattern: &str, with: &str) -> Result<String, Box<EvalAltResult>> {
        let re = crate::cached_regex(pattern)?;
        Ok(re.replace_all(s, with).into_owned())
    }
    #[rhai_fn(name = "regex_replace")]
    pub fn regex_replace_unit(_s: (), _pattern: &str, _with: &str) {}

    /// True when the regular expression `pattern` matches anywhere in the text.
    #[rhai_fn(name = "regex_match", return_raw)]
    pub fn regex_match(s: &str, pattern: &str) -> Result<bool, Box<EvalAltResult>> {
        Ok(crate::cached_regex(pattern)?.is_match(s))
    }
    #[rhai_fn(name = "regex_match")]
    pub fn regex_match_unit(_s: (), _pattern: &str) -> bool {
        false
    }

    /// True when text starts with any of the prefixes (Entra scoping: STARTSWITH): `starts_with_any(lower(source.sAMAccountName), ["msol_", "aad_"])`. `()` is false.
    #[rhai_fn(name = "starts_with_any")]
    pub fn starts_with_any(s: &str, prefixes: Array) -> bool {
        prefixes.iter().any(|p| p.read_lock::<ImmutableString>().is_some_and(|p| s.starts_with(p.as_str())))
    }
    #[rhai_fn(name = "starts_with_any")]
    pub fn starts_with_any_unit(_s: (), _prefixes: Array) -> bool {
        false
    }

    /// True when text ends with any of the suffixes (Entra scoping: ENDSWITH). `()` is false.
    #[rhai_fn(name = "ends_with_any")]
    pub fn ends_with_any(s: &str, suffixes: Array) -> bool {
        suffixes.iter().any(|p| p.read_lock::<ImmutableString>().is_some_and(|p| s.ends_with(p.as_str())))
    }
    #[rhai_fn(name = "ends_with_any")]
    pub fn ends_with_any_unit(_s: (), _suffixes: Array) -> bool {
        false
    }

    /// Splits text on a delimiter into an array (Entra: `Split`). `split(())` is `()`.
    #[rhai_fn(name = "split")]
    pub fn split(s: &str, delimiter: &str) -> Array {
        if delimiter.is_empty() {
            return vec![Dynamic::from(s.to_string())];
        }
        s.split(delimiter).map(|p| Dynamic::from(p.to_string())).collect()
    }
    #[rhai_fn(name = "split")]
    pub fn split_unit(_s: (), _delimiter: &str) {}

    /// Joins the values of an array with a delimiter (Entra: `Join`); `()` items are skipped.
    #[rhai_fn(name = "join")]
    pub fn join(values: Array, delimiter: &str) -> String {
        values.into_iter().filter(|v| !v.is_unit()).map(|v| v.to_string()).collect::<Vec<_>>().join(delimiter)
    }
    #[rhai_fn(name = "join")]
    pub fn join_str(value: ImmutableString, _delimiter: &str) -> ImmutableString {
        value
    }
    #[rhai_fn(name = "join")]
    pub fn join_unit(_s: (), _delimiter: &str) {}

    /// The `n`th word (1-based) of text split on any of the `delimiters` characters (Entra: `Word`).
    /// `word("John Q Public", 2, " ")` is `"Q"`; a word past the end is `()`.
    #[rhai_fn(name = "word")]
    pub fn word(s: &str, n: i64, delimiters: &str) -> Dynamic {
        if n < 1 {
            return Dynamic::UNIT;
        }
        s.split(|c| delimiters.contains(c))
            .filter(|w| !w.is_empty())
            .nth((n - 1) as usize)
            .map(|w| Dynamic::from(w.to_string()))
            .unwrap_or(Dynamic::UNIT)
    }
    #[rhai_fn(name = "word")]
    pub fn word_unit(_s: (), _n: i64, _delimiters: &str) {}

    /// Pads text on the left with `pad_char` to `len` characters (Entra: `PadLeft`). `pad_left("42", 5, "0")` is `"00042"`.
    #[rhai_fn(name = "pad_left")]
    pub fn pad_left(s: &str, len: i64, pad_char: &str) -> String {
        pad_impl(s, len, pad_char, true)
    }
    #[rhai_fn(name = "pad_left")]
    pub fn pad_left_int(n: i64, len: i64, pad_char: &str) -> String {
        pad_impl(&n.to_string(), len, pad_char, true)
    }
    /// Same as `pad_left`: numbers are what one pads most.
    #[rhai_fn(name = "pad")]
    pub fn pad(s: &str, len: i64, pad_char: &str) -> String {
        pad_impl(s, len, pad_char, true)
    }
    #[rhai_fn(name = "pad")]
    pub fn pad_int(n: i64, len: i64, pad_char: &str) -> String {
        pad_impl(&n.to_string(), len, pad_char, true)
    }
    /// Pads text on the right with `pad_char` to `len` characters (Entra: `PadRight`).
    #[rhai_fn(name = "pad_right")]
    pub fn pad_right(s: &str, len: i64, pad_char: &str) -> String {
        pad_impl(s, len, pad_char, false)
    }
    #[rhai_fn(name = "pad_left")]
    pub fn pad_left_unit(_s: (), _len: i64, _pad_char: &str) {}
    #[rhai_fn(name = "pad_right")]
    pub fn pad_right_unit(_s: (), _len: i64, _pad_char: &str) {}
    #[rhai_fn(name = "pad")]
    pub fn pad_unit(_s: (), _len: i64, _pad_char: &str) {}

    /// Fills `{0}`, `{1}`, ... in a template from an array of values; `()` fills as empty text.
    /// `format("{1}, {0}", ["Ada", "Lovelace"])` is `"Lovelace, Ada"`.
    #[rhai_fn(name = "format")]
    pub fn format(template: &str, args: Array) -> String {
        format_impl(template, &args)
    }
    /// `format(template, a)`: one value.
    #[rhai_fn(name = "format")]
    pub fn format1(template: &str, a: Dynamic) -> String {
        format_impl(template, &[a])
    }
    /// `format(template, a, b)`: two values.
    #[rhai_fn(name = "format")]
    pub fn format2(template: &str, a: Dynamic, b: Dynamic) -> String {
        format_impl(template, &[a, b])
    }
    /// `format(template, a, b, c)`: three values.
    #[rhai_fn(name = "format")]
    pub fn format3(template: &str, a: Dynamic, b: Dynamic, c: Dynamic) -> String {
        format_impl(template, &[a, b, c])
    }
}

fn pad_impl(s: &str, len: i64, pad_char: &str, left: bool) -> String {
    let have = s.chars().count();
    let want = len.max(0) as usize;
    let Some(p) = pad_char.chars().next() else {
        return s.to_string();
    };
    if have >= want {
        return s.to_string();
    }
    let fill: String = std::iter::repeat_n(p, want - have).collect();
    if left {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

fn format_impl(template: &str, args: &[Dynamic]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => match after[..close].parse::<usize>() {
                Ok(i) => {
                    if let Some(v) = args.get(i) {
                        if !v.is_unit() {
                            out.push_str(&v.to_string());
                        }
                    }
                    rest = &after[close + 1..];
                }
                Err(_) => {
                    out.push('{');
                    rest = after;
                }
            },
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
