//! Helper modules rules import (`import "entra" as entra;`): found the way the engine finds
//! them, so a change to one changes the rules' fingerprint (the next sync is full), and the
//! attributes a module reads from `source` are read as the rules spell them.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The modules `src` imports, directly or through other modules: path to text, in the first
/// rule folder that has them. One that is not found is left out (compiling the expression says so).
pub(crate) fn imported(src: &str, rule_dirs: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut todo: Vec<String> = names(src);
    while let Some(name) = todo.pop() {
        let Some((path, text)) = load(&name, rule_dirs) else { continue };
        if found.contains_key(&path) {
            continue;
        }
        todo.extend(names(&text));
        found.insert(path, text);
    }
    found
}

fn names(src: &str) -> Vec<String> {
    use std::sync::OnceLock;
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r#"\bimport\s+"([^"]+)""#).expect("static regex"));
    re.captures_iter(src).map(|c| c[1].to_string()).collect()
}

fn load(name: &str, rule_dirs: &[PathBuf]) -> Option<(PathBuf, String)> {
    let file = if Path::new(name).extension().is_some() { name.to_string() } else { format!("{name}.rhai") };
    rule_dirs.iter().map(|d| d.join(&file)).find_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_imports_through_modules() {
        let dir = std::env::temp_dir().join(format!("idflow-modules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("a.rhai"), "import \"b\" as b;\nfn f(source) { b::g(source) }").expect("write");
        std::fs::write(dir.join("b.rhai"), "fn g(source) { source.mail }").expect("write");
        let m = imported("import \"a\" as a; a::f(source)", std::slice::from_ref(&dir));
        assert_eq!(m.len(), 2);
        assert!(m.values().any(|t| t.contains("source.mail")));
        assert!(imported("import \"missing\" as m; 1", std::slice::from_ref(&dir)).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
