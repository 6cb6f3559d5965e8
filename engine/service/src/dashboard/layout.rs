//! The frame of every page: a header with the navigation, a banner when the numbers are stale,
//! and a style sheet that reads on a phone and on a wide screen. No script.
use crate::status::Status;
use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = r#"
:root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --info: #0969da; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: .6rem 1rem; display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; align-items: center; }
header a { color: #fff; text-decoration: none; } header a.on { text-decoration: underline; font-weight: 600; }
header .brand { font-weight: 700; margin-right: .6rem; }
main { padding: 1rem; max-width: 1400px; margin: 0 auto; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; margin-bottom: 1rem; }
h1 { font-size: 1.3rem; margin: .2rem 0 .8rem; } h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
.grid { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); }
.table { overflow-x: auto; } table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .85rem; color: var(--muted); }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); } .info { color: var(--info); } .muted { color: var(--muted); }
.verdict { font-size: 1.4rem; font-weight: 700; }
.banner { padding: .6rem 1rem; border-radius: 6px; margin-bottom: 1rem; background: #fff8c5; border: 1px solid #d4a72c; }
.chip { display: inline-block; padding: .1rem .5rem; border-radius: 1rem; border: 1px solid var(--line); margin: .1rem; text-decoration: none; color: inherit; }
.sev-critical { background: #ffebe9; } .sev-warning { background: #fff8c5; } .sev-info { background: #ddf4ff; }
.bar { display: inline-block; height: .8rem; background: var(--info); vertical-align: middle; min-width: 2px; }
.bar.bad { background: var(--bad); } .bar.warn { background: var(--warn); }
.spark { display: flex; align-items: flex-end; gap: 2px; height: 40px; }
.spark span { width: 6px; background: var(--info); display: inline-block; }
form.inline { display: inline; } button { font: inherit; padding: .3rem .8rem; border-radius: 6px; border: 1px solid var(--line); background: #f6f8fa; cursor: pointer; margin: .15rem; }
input, select { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 6px; max-width: 100%; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
code { font-size: .9em; }
@media (max-width: 600px) { main { padding: .5rem; } th, td { padding: .25rem; font-size: .9rem; } }
"#;

const NAV: &[(&str, &str)] = &[("/ui", "Overview"), ("/ui/runs", "Runs"), ("/ui/errors", "Errors"), ("/ui/search", "Search")];

/// Why the numbers shown may be old, if they are.
pub(crate) fn stale(s: &Status) -> Option<String> {
    if let Some(a) = s.alerts.iter().find(|a| a.kind == "data_stale") {
        return Some(a.summary.clone());
    }
    let checked = s.checked.as_deref().and_then(crate::status::parse)?;
    let age = (chrono::Utc::now() - checked).num_seconds();
    (age > 300).then(|| format!("the service last checked its health {age} s ago (at {checked}); these numbers may be old"))
}

pub(crate) fn page(title: &str, path: &str, s: &Status, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(r) = refresh { meta http-equiv="refresh" content=(r); }
                title { (title) " · idflow" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "idflow" }
                    @for (href, name) in NAV {
                        a href=(href) class=[(path == *href).then_some("on")] { (name) }
                    }
                    span.muted style="margin-left:auto" { "as of " (s.checked.as_deref().unwrap_or("not checked yet")) }
                    @if path != "/ui/login" {
                        form.inline method="post" action="/ui/logout" { button type="submit" style="margin:0;padding:.1rem .5rem" { "Sign out" } }
                    }
                }
                main {
                    @if let Some(why) = stale(s) {
                        div.banner role="alert" id="stale" { strong { "Stale data: " } (why) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A severity as a coloured word.
pub(crate) fn severity(s: &str) -> Markup {
    let class = match s {
        "critical" => "bad",
        "warning" => "warn",
        _ => "info",
    };
    html! { strong class=(class) { (s.to_uppercase()) } }
}

/// A duration in milliseconds as people read it.
pub(crate) fn ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{:.1} min", ms as f64 / 60_000.0)
    }
}
