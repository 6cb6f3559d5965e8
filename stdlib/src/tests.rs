use rhai::{Dynamic, Engine};

fn engine() -> Engine {
    let mut e = Engine::new();
    super::register(&mut e);
    e
}

fn s(expr: &str) -> String {
    match engine().eval::<Dynamic>(expr) {
        Ok(v) if v.is_unit() => "()".into(),
        Ok(v) => v.to_string(),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn text_functions() {
    assert_eq!(s(r#"lower("ÄBC")"#), "äbc");
    assert_eq!(s(r#"upper("abc")"#), "ABC");
    assert_eq!(s(r#"lower(())"#), "()");
    assert_eq!(s(r#"trim("  a b ")"#), "a b");
    assert_eq!(s(r#"let x = " a "; trim(x)"#), "a");
    assert_eq!(s(r#"left("Alice", 3)"#), "Ali");
    assert_eq!(s(r#"left("Al", 9)"#), "Al");
    assert_eq!(s(r#"right("Alice", 2)"#), "ce");
    assert_eq!(s(r#"mid("Alice", 2, 3)"#), "lic");
    assert_eq!(s(r#"pcase("jöRG mÜLLER-lüdenscheidt")"#), "Jörg Müller-Lüdenscheidt");
    assert_eq!(s(r#"replace("a.b.c", ".", "-")"#), "a-b-c");
    assert_eq!(s(r#"regex_replace("SMTP:ada@x.org", "^(?i)smtp:", "")"#), "ada@x.org");
    assert!(s(r#"regex_replace("x", "(", "")"#).starts_with("error: "));
    assert_eq!(s(r#"split("a,b,c", ",").len()"#), "3");
    assert_eq!(s(r#"join(["a", (), "b"], ";")"#), "a;b");
    assert_eq!(s(r#"word("John Q  Public", 2, " ")"#), "Q");
    assert_eq!(s(r#"word("John", 3, " ")"#), "()");
    assert_eq!(s(r#"pad_left("42", 5, "0")"#), "00042");
    assert_eq!(s(r#"pad(7, 3, "0")"#), "007");
    assert_eq!(s(r#"pad_right("ab", 4, ".")"#), "ab..");
    assert_eq!(s(r#"format("{1}, {0}", ["Ada", "Lovelace"])"#), "Lovelace, Ada");
    assert_eq!(s(r#"format("{0}-{1}", "a", 3)"#), "a-3");
    assert_eq!(s(r#"format("{0}{5}", "a")"#), "a");
    assert_eq!(s(r#"starts_with_any("msol_1", ["aad_", "msol_"])"#), "true");
    assert_eq!(s(r#"starts_with_any((), ["a"])"#), "false");
    assert_eq!(s(r#"ends_with_any("a@x.org", [".com"])"#), "false");
}

#[test]
fn conversion_functions() {
    assert_eq!(s(r#"to_base64("hi")"#), "aGk=");
    assert_eq!(s(r#"base64_to_string("aGk=")"#), "hi");
    assert!(s(r#"from_base64("!!")"#).contains("from_base64: not base64"));
    assert_eq!(s(r#"to_hex(from_hex("00ff"))"#), "00ff");
    let guid = "c5b5a4d9-1f2e-4a3b-8c7d-0123456789ab";
    assert_eq!(s(&format!(r#"guid_to_string(guid_from_string("{{{guid}}}"))"#)), guid);
    // AD byte order: first three fields little-endian.
    assert_eq!(s(&format!(r#"to_hex(guid_from_string("{guid}"))"#)), "d9a4b5c52e1f3b4a8c7d0123456789ab");
    assert_eq!(s(&format!(r#"to_base64(guid_from_string("{guid}"))"#)), "2aS1xS4fO0qMfQEjRWeJqw==");
    // S-1-5-21-1004336348-1177238915-682003330-512
    assert_eq!(
        s(r#"sid_to_string(from_hex("010500000000000515000000dcf4dc3b833d2b46828ba62800020000"))"#),
        "S-1-5-21-1004336348-1177238915-682003330-512"
    );
    assert!(s(r#"sid_to_string(from_hex("0105"))"#).starts_with("error"));
    assert_eq!(s(r#"to_int(" 514 ")"#), "514");
    assert_eq!(s(r#"to_int("0x200")"#), "512");
    assert!(s(r#"to_int("abc")"#).contains("to_int: not a number"));
    assert_eq!(s(r#"to_int(())"#), "()");
    assert_eq!(s(r#"from_filetime("133589952000000000")"#), "2024-05-01T00:00:00Z");
    assert_eq!(s(r#"from_filetime(9223372036854775807)"#), "()");
    assert_eq!(s(r#"from_filetime(0)"#), "()");
    assert_eq!(s(r#"to_filetime("2024-05-01T00:00:00Z")"#), "133589952000000000");
    assert_eq!(s(r#"from_generalized_time("20240501120000Z")"#), "2024-05-01T12:00:00Z");
    assert_eq!(s(r#"from_generalized_time("20240501120000.5+0200")"#), "2024-05-01T10:00:00Z");
    assert!(s(r#"from_generalized_time("yesterday")"#).starts_with("error"));
    assert_eq!(s(r#"format_date("2024-05-01T10:00:00Z", "%d.%m.%Y")"#), "01.05.2024");
    assert_eq!(s(r#"to_str(42)"#), "42");
}

#[test]
fn multi_valued_functions() {
    let e = engine();
    let mut scope = rhai::Scope::new();
    let mut all = rhai::Map::new();
    all.insert(
        "proxyAddresses".into(),
        Dynamic::from(vec![Dynamic::from("SMTP:a@x.org"), Dynamic::from("smtp:b@x.org"), Dynamic::from("x500:/o=x")]),
    );
    let mut obj = rhai::Map::new();
    obj.insert("proxyAddresses".into(), Dynamic::from("SMTP:a@x.org"));
    obj.insert(super::VALUES_KEY.into(), Dynamic::from(all.clone()));
    scope.push("source", obj);
    let count: i64 = e.eval_with_scope(&mut scope, r#"count(values(source, "proxyAddresses"))"#).expect("count");
    assert_eq!(count, 3);
    let missing: i64 = e.eval_with_scope(&mut scope, r#"count(values(source, "nope"))"#).expect("missing");
    assert_eq!(missing, 0);
    // An attribute with one value is only in the object itself: its list is that value.
    scope.clear();
    let mut obj = rhai::Map::new();
    obj.insert("mail".into(), Dynamic::from("a@x.org"));
    obj.insert(super::VALUES_KEY.into(), Dynamic::from(rhai::Map::new()));
    scope.push("source", obj);
    let one: rhai::Array = e.eval_with_scope(&mut scope, r#"values(source, "mail")"#).expect("one");
    assert_eq!(one.iter().map(|v| v.to_string()).collect::<Vec<_>>(), ["a@x.org"]);
    scope.clear();
    let mut obj = rhai::Map::new();
    obj.insert("proxyAddresses".into(), Dynamic::from("SMTP:a@x.org"));
    obj.insert(super::VALUES_KEY.into(), Dynamic::from(all));
    scope.push("source", obj);
    let smtp: i64 = e
        .eval_with_scope(&mut scope, r#"count(where(values(source, "proxyAddresses"), |a| lower(a).starts_with("smtp:")))"#)
        .expect("where");
    assert_eq!(smtp, 2);
    assert_eq!(s(r#"contains(["A", "b"], "a")"#), "true");
    assert_eq!(s(r#"contains("Sales Team", "team")"#), "true");
    assert_eq!(s(r#"contains((), "a")"#), "false");
    assert_eq!(s(r#"item(["a", "b"], 1)"#), "b");
    assert_eq!(s(r#"item(["a", "b"], -1)"#), "b");
    assert_eq!(s(r#"item(["a", "b"], 5)"#), "()");
    assert_eq!(s(r#"remove_duplicates(["a", "A", "b"]).len()"#), "2");
    assert_eq!(s(r#"count(())"#), "0");
    assert_eq!(s(r#"count("x")"#), "1");
    // A plain map (no @values) still answers values().
    assert_eq!(s(r#"let m = #{a: "x"}; count(values(m, "a"))"#), "1");
}

#[test]
fn evaluation_functions() {
    assert_eq!(s(r#"is_present(())"#), "false");
    assert_eq!(s(r#"is_present("  ")"#), "false");
    assert_eq!(s(r#"is_present([])"#), "false");
    assert_eq!(s(r#"is_present("a")"#), "true");
    assert_eq!(s(r#"is_empty(())"#), "true");
    assert_eq!(s(r#"coalesce((), "", "b")"#), "b");
    assert_eq!(s(r#"coalesce((), ())"#), "()");
    assert_eq!(s(r#"coalesce([(), (), (), "d"])"#), "d");
    assert_eq!(s(r#"iif(true, "a", "b")"#), "a");
    assert_eq!(s(r#"iif((), "a", "b")"#), "b");
    assert_eq!(s(r#"switch_of([false, "a", true, "b"], "c")"#), "b");
    assert_eq!(s(r#"switch_of([false, "a"], "c")"#), "c");
    assert!(s(r#"switch_of([false], "c")"#).starts_with("error"));
}

#[test]
fn directory_functions() {
    let dn = r#""CN=Smith\\, John,OU=Sales,DC=corp,DC=example""#;
    assert_eq!(s(&format!("dn_component({dn}, 1)")), "Smith, John");
    assert_eq!(s(&format!("dn_component({dn}, 2)")), "Sales");
    assert_eq!(s(&format!("dn_component({dn}, 9)")), "()");
    assert_eq!(s(&format!("dn_component_rev({dn}, 1)")), "example");
    assert_eq!(s(&format!("parent_dn({dn})")), "OU=Sales,DC=corp,DC=example");
    assert_eq!(s(&format!("rdn_value({dn})")), "Smith, John");
    assert!(s(r#"parent_dn("no equals")"#).contains("not a DN"));
    assert_eq!(s(r#"escape_dn("Smith, John+1")"#), r"Smith\, John\+1");
    assert_eq!(s(r#"uac_flag("514", 2)"#), "true");
    assert_eq!(s(r#"uac_flag(512, 0x2)"#), "false");
    assert_eq!(s(r#"uac_flag((), 2)"#), "false");
    assert!(s(r#"uac_flag("x", 2)"#).starts_with("error"));
}

#[test]
fn every_function_is_documented() {
    // The package alone: every function it registers, whatever its file.
    let mut e = rhai::Engine::new_raw();
    crate::register(&mut e);
    let json = e.gen_fn_metadata_to_json(false).expect("metadata");
    let meta: serde_json::Value = serde_json::from_str(&json).expect("json");
    let mut documented = std::collections::BTreeMap::<String, bool>::new();
    for f in meta["functions"].as_array().expect("functions") {
        let name = f["name"].as_str().unwrap_or_default().to_string();
        let has_doc = f.get("docComments").is_some();
        *documented.entry(name).or_insert(false) |= has_doc;
    }
    let ours = [
        "lower",
        "upper",
        "trim",
        "left",
        "right",
        "mid",
        "pcase",
        "replace",
        "regex_replace",
        "split",
        "join",
        "word",
        "pad",
        "pad_left",
        "starts_with_any",
        "ends_with_any",
        "pad_right",
        "format",
        "to_base64",
        "from_base64",
        "to_hex",
        "from_hex",
        "guid_to_string",
        "guid_from_string",
        "sid_to_string",
        "to_int",
        "from_filetime",
        "from_generalized_time",
        "format_date",
        "contains",
        "item",
        "where",
        "remove_duplicates",
        "count",
        "values",
        "is_present",
        "coalesce",
        "iif",
        "switch_of",
        "dn_component",
        "dn_component_rev",
        "parent_dn",
        "escape_dn",
        "rdn_value",
        "uac_flag",
        "dn_text",
    ];
    let absent: Vec<_> = ours.iter().filter(|n| !documented.contains_key(**n)).collect();
    assert!(absent.is_empty(), "functions an Entra Connect admin expects are missing: {absent:?}");
    let missing: Vec<_> = documented.iter().filter(|(_, d)| !**d).map(|(n, _)| n).collect();
    assert!(missing.is_empty(), "undocumented functions: {missing:?}");
}

#[test]
fn entra_default_rule_helpers() {
    assert_eq!(s(r#"trim("   ")"#), "()");
    assert_eq!(s(r#"instr("CAS_{abc}", "}")"#), "9");
    assert_eq!(s(r#"instr("Zoë}", "}")"#), "4");
    assert_eq!(s(r#"instr("abc", "x")"#), "0");
    assert_eq!(s(r#"instr((), "x")"#), "0");
    assert_eq!(s(r#"normalize_diacritics("Zoë Ångström-Çelik")"#), "Zoe Angstrom-Celik");
    assert_eq!(s(r#"normalize_diacritics("Straße Øre Æsir Łódź")"#), "Strasse Ore AEsir Lodz");
    assert_eq!(s(r#"normalize_diacritics(())"#), "()");
    assert_eq!(s(r#"bit_and(1073741824, 0x40000000)"#), "1073741824");
    assert_eq!(s(r#"bit_and("8388608", 0x21C07000) != 0"#), "true");
    assert_eq!(s(r#"bit_and("1", 0x21C07000)"#), "0");
    assert_eq!(s(r#"bit_and((), 2)"#), "0");
    assert!(s(r#"bit_and("x", 2)"#).starts_with("error: "));
    assert_eq!(s(r#"dns_domain("CN=Ada,OU=Staff,DC=example,DC=test")"#), "example.test");
    assert_eq!(s(r#"dns_domain("uid=a,ou=People,o=corp")"#), "()");
    assert_eq!(s(r#"to_bool("TRUE")"#), "true");
    assert_eq!(s(r#"to_bool("false")"#), "false");
    assert_eq!(s(r#"to_bool(1)"#), "true");
    assert_eq!(s(r#"to_bool(())"#), "false");
    // A replication-conflict object's RDN holds a line feed (\0A in the DN) before "CNF:".
    assert_eq!(s(r#"rdn_value("CN=Ada\\0ACNF:0123,OU=Staff,DC=example,DC=test").contains("\nCNF:")"#), "true");
}
