//! `idflow functions`: the reference of what rules may call, generated from the stdlib's own docs.
use serde_json::Value as J;

#[derive(serde::Serialize)]
pub(crate) struct FnDoc {
    pub name: String,
    pub signature: String,
    pub doc: String,
}

pub(crate) fn docs() -> Vec<FnDoc> {
    let mut engine = rhai::Engine::new_raw();
    idflow_stdlib::register(&mut engine);
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let meta: J = serde_json::from_str(&json).unwrap_or(J::Null);
    let mut out: Vec<FnDoc> = Vec::new();
    for f in meta["functions"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or_default().to_string();
        let doc: Vec<String> = f["docComments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            // A comment of several lines arrives as one text: every line loses its `///`.
            .flat_map(|d| d.lines().map(|l| l.trim().trim_start_matches("///").trim().to_string()).collect::<Vec<_>>())
            .collect();
        let params: Vec<String> = f["params"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let n = p["name"].as_str().unwrap_or("_").trim_start_matches('_');
                let t = p["type"].as_str().unwrap_or("?").replace("&str", "string").replace("ImmutableString", "string");
                let t = t
                    .replace("Dynamic", "any")
                    .replace("Array", "array")
                    .replace("Blob", "blob")
                    .replace("i64", "int")
                    .replace("FnPtr", "function");
                if n.is_empty() || n == "ctx" {
                    t
                } else {
                    format!("{n}: {t}")
                }
            })
            .filter(|p| !p.contains("NativeCallContext"))
            .collect();
        if doc.is_empty() {
            continue;
        }
        out.push(FnDoc { signature: format!("{name}({})", params.join(", ")), name, doc: doc.join(" ") });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.signature.cmp(&b.signature)));
    out
}

pub(crate) fn render(markdown: bool) -> String {
    let mut s = String::new();
    if markdown {
        s.push_str("| function | what it does |\n|---|---|\n");
        for d in docs() {
            s.push_str(&format!("| `{}` | {} |\n", d.signature, d.doc.replace('|', "\\|")));
        }
    } else {
        for d in docs() {
            s.push_str(&format!("{}\n    {}\n", d.signature, d.doc));
        }
    }
    s
}
