use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn repo() -> PathBuf {
    // engine/cli: the repository is two folders up.
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("engine/cli has a repository around it").to_path_buf()
}

pub(crate) struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

pub(crate) struct Env {
    pub dir: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let name = e.file_name();
        if name == "state" || name == "out" {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).expect("copy");
        }
    }
}

impl Env {
    /// A copy of examples/quickstart, without any state.
    pub(crate) fn quickstart() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&repo().join("examples/quickstart"), dir.path());
        Env { dir, vars: Vec::new() }
    }

    pub(crate) fn empty() -> Env {
        Env { dir: tempfile::tempdir().expect("tempdir"), vars: Vec::new() }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_idflow"));
        c.args(args).current_dir(self.dir.path()).env_remove("RUST_LOG");
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Out {
        let o = self.command(args).output().expect("idflow runs");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs and requires exit code `code`.
    pub(crate) fn ok(&self, args: &[&str], code: i32) -> Out {
        let o = self.run(args);
        assert_eq!(o.code, code, "idflow {args:?}: {o:?}");
        o
    }

    pub(crate) fn json(&self, args: &[&str], code: i32) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let o = self.ok(&a, code);
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"))
    }

    /// The file target's objects.
    pub(crate) fn cloud(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&self.read("out/cloud.json")).unwrap_or(serde_json::Value::Null);
        v["objects"].as_array().cloned().unwrap_or_default()
    }

    pub(crate) fn cloud_user(&self, user_name: &str) -> Option<serde_json::Value> {
        self.cloud().into_iter().find(|o| o["attributes"]["userName"] == user_name)
    }
}

/// A small two-file setup: an LDIF source and a file target, with the given rules.
pub(crate) const SMALL_CONFIG: &str = r#"
[metaverse]
path = "state/idflow.db"
[rules]
paths = ["rules"]
[export]
deletion_threshold = 3
[[connector]]
name = "corp"
type = "ldif"
path = "corp.ldif"
delta_path = "delta.ldif"
anchor = "entryUUID"
reference_attributes = ["member", "manager"]
[connector.object_types]
person = "(objectClass=inetOrgPerson)"
group = "(objectClass=groupOfNames)"
[[connector]]
name = "cloud"
type = "file"
path = "out/cloud.json"
"#;

pub(crate) const SMALL_RULES: &str = r#"
[[rule]]
name = "in-person"
direction = "inbound"
connector = "corp"
source_type = "person"
metaverse_type = "person"
scope = 'source.mail != ()'
link = "provision"
join = [ { metaverse = "employeeId", expr = "source.employeeNumber" } ]
[rule.flows]
displayName = 'coalesce(source.displayName, source.cn)'
mail = "lower(source.mail)"
employeeId = "source.employeeNumber"
manager = "source.manager"
title = "source.title"

[[rule]]
name = "out-user"
direction = "outbound"
connector = "cloud"
metaverse_type = "person"
target_type = "User"
scope = 'mv.mail != ()'
link = "provision"
deprovision = "delete"
[rule.flows]
userName = "mv.mail"
displayName = "mv.displayName"
manager = "mv.manager"
title = "mv.title"
"#;

pub(crate) fn person(uid: &str, n: u32, extra: &str) -> String {
    format!(
        "dn: uid={uid},ou=People,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {uid}@example.org\nemployeeNumber: E{n}\nentryUUID: 00000000-0000-4000-8000-{n:012}\n{extra}\n"
    )
}

pub(crate) fn small(people: &[String]) -> Env {
    let e = Env::empty();
    e.write("idflow.toml", SMALL_CONFIG);
    e.write("rules/rules.toml", SMALL_RULES);
    e.write("corp.ldif", &people.join("\n"));
    e
}

/// A directory from `idflow generate` (people with managers, groups, non-ASCII names).
pub(crate) fn generated(people: usize, groups: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(["generate", "--people", &people.to_string(), "--groups", &groups.to_string(), "--out", "/dev/stdout"])
        .output()
        .expect("generate");
    String::from_utf8(out.stdout).expect("utf8")
}

/// The metaverse of an environment, through the store's own operations (tests that damage
/// state on purpose: a corrupted watermark, a forgotten one).
pub(crate) fn store(e: &Env) -> idflow_store::Store {
    idflow_store::Store::open(&e.path("state/idflow.db")).expect("metaverse")
}

pub(crate) fn meta(e: &Env, key: &str) -> Option<String> {
    use idflow_store::ReadOps;
    store(e).read().expect("read").meta_get(key).expect("meta")
}

/// Sets (`Some`) or forgets (`None`) a value in the metaverse's `meta`.
pub(crate) fn set_meta(e: &Env, key: &str, value: Option<&str>) {
    use idflow_store::WriteOps;
    let s = store(e);
    let tx = s.write().expect("write");
    match value {
        Some(v) => tx.meta_set(key, v).expect("set"),
        None => tx.meta_delete(key).expect("delete"),
    }
    tx.commit().expect("commit");
}

pub(crate) fn set_watermark(e: &Env, connector: &str, watermark: &str) {
    use idflow_store::WriteOps;
    let s = store(e);
    let tx = s.write().expect("write");
    tx.set_watermark(connector, Some(watermark)).expect("set");
    tx.commit().expect("commit");
}

/// The first TOML block of the README's section `## {section}`.
pub(crate) fn readme_toml_block(section: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let text = readme.split(&format!("## {section}\n")).nth(1).unwrap_or_else(|| panic!("a README section named {section}"));
    text.split("```toml\n").nth(1).and_then(|b| b.split("```").next()).expect("a toml block").to_string()
}
