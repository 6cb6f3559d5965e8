//! A plan's change as [`crate::plan_changes::Changes`] holds it while the plan is made and
//! read: length-prefixed fields in a fixed order, not JSON. A plan of a million changes
//! writes and reads back each one once; as JSON that was a third of a plan's instructions.
//! A saved plan stays JSON (its `Serialize`); this form never leaves the process.
use crate::plan::{Identity, PlanAttr, PlanChange, PlanValue};
use idflow_core::varint;

/// Why a change's bytes do not read back.
pub(crate) type Broken = &'static str;

/// Operations by tag; another operation is written as text after [`OTHER`].
const OPS: [&str; 3] = ["add", "update", "delete"];
const OTHER: u8 = 3;

pub(crate) fn encode(ch: &PlanChange, out: &mut Vec<u8>) {
    match OPS.iter().position(|o| *o == ch.op) {
        Some(i) => out.push(i as u8),
        None => {
            out.push(OTHER);
            text(out, &ch.op);
        }
    }
    text(out, &ch.object_type);
    text(out, &ch.object);
    let id = &ch.identity;
    maybe(out, id.target_id.as_deref());
    maybe(out, id.dn.as_deref());
    match id.metaverse_id {
        None => out.push(0),
        Some(m) => {
            out.push(1);
            out.extend_from_slice(&m.to_le_bytes());
        }
    }
    varint::put(out, id.sources.len() as u64);
    for s in &id.sources {
        text(out, s);
    }
    maybe(out, ch.new_dn.as_deref());
    maybe(out, ch.rule.as_deref());
    varint::put(out, ch.attributes.len() as u64);
    for a in &ch.attributes {
        text(out, &a.name);
        values(out, &a.old);
        values(out, &a.new);
        maybe(out, a.rule.as_deref());
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<PlanChange, Broken> {
    let mut r = Reader(bytes);
    let op = match r.byte()? {
        t if (t as usize) < OPS.len() => OPS[t as usize].to_string(),
        OTHER => r.text()?,
        _ => return Err("an unknown operation"),
    };
    let object_type = r.text()?;
    let object = r.text()?;
    let target_id = r.maybe()?;
    let dn = r.maybe()?;
    let metaverse_id = match r.byte()? {
        0 => None,
        1 => Some(i64::from_le_bytes(r.take(8)?.try_into().map_err(|_| "a cut metaverse id")?)),
        _ => return Err("a broken metaverse id"),
    };
    let sources = (0..r.count()?).map(|_| r.text()).collect::<Result<_, _>>()?;
    let new_dn = r.maybe()?;
    let rule = r.maybe()?;
    let mut attributes = Vec::new();
    for _ in 0..r.count()? {
        attributes.push(PlanAttr { name: r.text()?, old: r.values()?, new: r.values()?, rule: r.maybe()? });
    }
    if !r.0.is_empty() {
        return Err("bytes after the change");
    }
    Ok(PlanChange { op, object_type, object, identity: Identity { target_id, dn, metaverse_id, sources }, new_dn, rule, attributes })
}

fn text(out: &mut Vec<u8>, s: &str) {
    varint::put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn maybe(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            text(out, s);
        }
    }
}

fn values(out: &mut Vec<u8>, vs: &[PlanValue]) {
    varint::put(out, vs.len() as u64);
    for v in vs {
        match v {
            PlanValue::Text(s) => {
                out.push(0);
                text(out, s);
            }
            PlanValue::Binary { base64 } => {
                out.push(1);
                text(out, base64);
            }
            PlanValue::Reference { reference, object } => {
                out.push(2);
                maybe(out, reference.as_deref());
                text(out, object);
            }
        }
    }
}

struct Reader<'b>(&'b [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Broken> {
        let (&b, rest) = self.0.split_first().ok_or("the change ends early")?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Broken> {
        if n > self.0.len() {
            return Err("the change ends early");
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, Broken> {
        let (v, rest) = varint::get(self.0).ok_or("a broken length, or the change ends early")?;
        self.0 = rest;
        Ok(v)
    }

    /// A count of items, each at least a byte: no more than the bytes left.
    fn count(&mut self) -> Result<usize, Broken> {
        let n = self.varint()?;
        usize::try_from(n).ok().filter(|n| *n <= self.0.len()).ok_or("a count beyond the change")
    }

    fn text(&mut self) -> Result<String, Broken> {
        let n = usize::try_from(self.varint()?).map_err(|_| "a broken length")?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "text that is not UTF-8")
    }

    fn maybe(&mut self) -> Result<Option<String>, Broken> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.text().map(Some),
            _ => Err("a broken optional value"),
        }
    }

    fn values(&mut self) -> Result<Vec<PlanValue>, Broken> {
        (0..self.count()?)
            .map(|_| match self.byte()? {
                0 => self.text().map(PlanValue::Text),
                1 => self.text().map(|base64| PlanValue::Binary { base64 }),
                2 => Ok(PlanValue::Reference { reference: self.maybe()?, object: self.text()? }),
                _ => Err("an unknown kind of value"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::{Identity, PlanAttr, PlanChange, PlanValue};

    fn every_field() -> PlanChange {
        PlanChange {
            op: "update".into(),
            object_type: "User".into(),
            object: "uid=ada,ou=People,dc=example,dc=org".into(),
            identity: Identity {
                target_id: Some("0190a1b2".into()),
                dn: Some("cn=Ada".into()),
                metaverse_id: Some(-7),
                sources: vec!["corp:1".into(), "hr:ä".into()],
            },
            new_dn: Some("cn=Ada Lovelace".into()),
            rule: Some("out-cloud-user".into()),
            attributes: vec![
                PlanAttr {
                    name: "manager".into(),
                    old: vec![PlanValue::Reference { reference: None, object: "uid=charles".into() }],
                    new: vec![PlanValue::Reference { reference: Some("0190".into()), object: "uid=charles".into() }],
                    rule: Some("r".into()),
                },
                PlanAttr { name: "photo".into(), old: vec![], new: vec![PlanValue::Binary { base64: "AAEC".into() }], rule: None },
                PlanAttr { name: "cn".into(), old: vec![PlanValue::Text(String::new())], new: vec![], rule: None },
            ],
        }
    }

    #[test]
    fn a_change_reads_back_as_it_was_and_a_broken_one_is_an_error() {
        for ch in
            [every_field(), PlanChange { op: "rename".into(), identity: Identity::default(), new_dn: None, rule: None, ..every_field() }]
        {
            let mut b = Vec::new();
            super::encode(&ch, &mut b);
            assert_eq!(super::decode(&b), Ok(ch.clone()));
            // Cut anywhere, or with a byte more: an error, never another change.
            for n in 0..b.len() {
                assert!(super::decode(&b[..n]).is_err(), "cut at {n}");
            }
            b.push(0);
            assert!(super::decode(&b).is_err());
        }
        assert!(super::decode(b"!{\"op\":\"add\"}").is_err());
    }
}
