//! A deterministic generator of directories in LDIF: people with managers, nested groups,
//! non-ASCII names, DNs that need escaping and a disabled OU. Feeds the quickstart and benchmarks.
use base64::Engine as _;
use std::fmt::Write as _;

pub const BASE: &str = "dc=example,dc=org";

/// A small fast PRNG (xorshift64*), so the same seed gives the same directory everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

const GIVEN: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Jörg",
    "Zoë",
    "Søren",
    "Ñuño",
    "Chloé",
    "Björn",
    "Åsa",
    "Łukasz",
    "Dvořák",
    "Mária",
    "Ólafur",
    "Renée",
    "José",
    "François",
    "Yūki",
    "Thu",
    "Amélie",
    "Siobhán",
    "Kęstutis",
    "Ümit",
];
const SUR: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Müller",
    "Østergaard",
    "Núñez",
    "García",
    "Šimek",
    "Kowalczyk",
    "Ó Briain",
    "Nguyễn",
    "Lefèvre",
    "Weiß",
    "Smith",
    "Jones",
    "Brown",
    "Taylor",
    "Wilson",
    "Davies",
    "Evans",
    "Thomas",
    "Roberts",
    "Walker",
];
const DEPTS: &[&str] = &["Engineering", "Sales", "Marketing", "Finance", "Support", "Research", "Legal", "Operations"];
const TITLES: &[&str] = &["Engineer", "Manager", "Analyst", "Director", "Specialist", "Consultant", "Architect"];

fn line(out: &mut String, attr: &str, value: &str) {
    let safe = value.is_ascii() && !value.starts_with([' ', ':', '<']) && !value.ends_with(' ') && !value.contains(['\n', '\r', '\0']);
    if safe {
        let _ = writeln!(out, "{attr}: {value}");
    } else {
        let _ = writeln!(out, "{attr}:: {}", base64::engine::general_purpose::STANDARD.encode(value.as_bytes()));
    }
}

pub fn uuid_for(kind: u64, i: usize) -> String {
    let x = (kind << 56) ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let y = (i as u64) ^ 0x5DEE_CE66_D1CE_4E5B;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (x >> 32) as u32,
        (x >> 16) as u16,
        (x & 0xfff) as u16,
        (y >> 52) as u16 & 0xfff,
        y & 0xffff_ffff_ffff
    )
}

pub fn person_dn(i: usize, people: usize) -> String {
    if is_disabled(i, people) {
        format!("uid=u{i:06},ou=Disabled,ou=People,{BASE}")
    } else {
        format!("uid=u{i:06},ou=People,{BASE}")
    }
}

fn is_disabled(i: usize, people: usize) -> bool {
    people >= 50 && i % 50 == 7
}

pub fn group_dn(j: usize) -> String {
    match j {
        1 => format!("cn=Sales\\, EMEA,ou=Groups,{BASE}"),
        2 => format!("cn=R\\+D,ou=Groups,{BASE}"),
        _ => format!("cn=group{j:05},ou=Groups,{BASE}"),
    }
}

/// Writes people and groups to `w`, a megabyte at a time (a million people are half a
/// gigabyte of LDIF); returns the bytes written.
pub fn generate(people: usize, groups: usize, seed: u64, w: &mut dyn std::io::Write) -> std::io::Result<u64> {
    const CHUNK: usize = 1 << 20;
    let mut written = 0u64;
    let mut flush = |out: &mut String, at_least: usize| -> std::io::Result<()> {
        if out.len() >= at_least {
            w.write_all(out.as_bytes())?;
            written += out.len() as u64;
            out.clear();
        }
        Ok(())
    };
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(CHUNK + 64 * 1024);
    let _ = writeln!(out, "version: 1\n");
    let _ = writeln!(out, "dn: ou=People,{BASE}\nobjectClass: organizationalUnit\nou: People\n");
    let _ = writeln!(out, "dn: ou=Disabled,ou=People,{BASE}\nobjectClass: organizationalUnit\nou: Disabled\n");
    let _ = writeln!(out, "dn: ou=Groups,{BASE}\nobjectClass: organizationalUnit\nou: Groups\n");
    for i in 0..people {
        let g = GIVEN[rng.below(GIVEN.len())];
        let s = SUR[rng.below(SUR.len())];
        let _ = writeln!(out, "dn: {}", person_dn(i, people));
        for oc in ["top", "person", "organizationalPerson", "inetOrgPerson"] {
            let _ = writeln!(out, "objectClass: {oc}");
        }
        let _ = writeln!(out, "uid: u{i:06}");
        line(&mut out, "cn", &format!("{g} {s}"));
        line(&mut out, "givenName", g);
        line(&mut out, "sn", s);
        if i % 10 != 3 {
            line(&mut out, "displayName", &format!("{g} {s}"));
        }
        if i % 40 != 11 {
            let _ = writeln!(out, "mail: u{i:06}@Example.org");
        }
        let _ = writeln!(out, "employeeNumber: E{i:06}");
        let _ = writeln!(out, "title: {}", TITLES[rng.below(TITLES.len())]);
        let _ = writeln!(out, "ou: {}", DEPTS[rng.below(DEPTS.len())]);
        if i > 0 && i % 8 != 0 {
            // Managers anywhere in the directory: some before, some after their reports.
            let m = if i % 3 == 0 { (i * 7 + 13) % people } else { rng.below(i) };
            if m != i {
                let _ = writeln!(out, "manager: {}", person_dn(m, people));
            }
        }
        let _ = writeln!(out, "entryUUID: {}\n", uuid_for(1, i));
        flush(&mut out, CHUNK)?;
    }
    for j in 0..groups {
        let _ = writeln!(out, "dn: {}", group_dn(j));
        let _ = writeln!(out, "objectClass: top\nobjectClass: groupOfNames");
        let cn = match j {
            1 => "Sales, EMEA".to_string(),
            2 => "R+D".to_string(),
            _ => format!("group{j:05}"),
        };
        line(&mut out, "cn", &cn);
        let _ = writeln!(out, "description: Group {j}");
        let n = 5 + rng.below(30);
        let mut members: Vec<usize> = (0..n).map(|_| rng.below(people.max(1))).collect();
        members.sort();
        members.dedup();
        for m in members {
            let _ = writeln!(out, "member: {}", person_dn(m, people));
        }
        if j > 0 && j % 5 == 0 {
            // Nested: a group inside a group.
            let _ = writeln!(out, "member: {}", group_dn(rng.below(j)));
        }
        let _ = writeln!(out, "entryUUID: {}\n", uuid_for(2, j));
        flush(&mut out, CHUNK)?;
    }
    flush(&mut out, 0)?;
    Ok(written)
}

/// Change records touching `n` people spread through the directory (title and display name).
pub fn delta(people: usize, n: usize, round: usize) -> String {
    let mut out = String::from("version: 1\n\n");
    let step = (people / n.max(1)).max(1);
    for k in 0..n.min(people) {
        let i = (k * step + round) % people;
        let _ = writeln!(out, "dn: {}\nchangetype: modify\nreplace: title", person_dn(i, people));
        let _ = writeln!(out, "title: Changed {round}\n-\nreplace: displayName");
        line(&mut out, "displayName", &format!("Person {i} r{round}"));
        let _ = writeln!(out, "-\n");
    }
    out
}
