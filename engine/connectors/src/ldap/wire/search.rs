//! A paged subtree search (RFC 2696) read entry by entry, each decoded straight from the bytes
//! received into idflow's attributes.
use super::ber::{self, Reader};
use super::conn::{result, Wire};
use super::Fault;
use crate::ldap::entry::{self, Entry};
use ldap3::asn1::{ASNTag, StructureTag, TagClass, PL};

const PAGED_OID: &[u8] = b"1.2.840.113556.1.4.319";

/// A search in progress: the request (less its paging control), the page size, the cookie the
/// last page ended with, how many pages and entries of this page were read, whether the last
/// page was.
pub(crate) struct Paged<'w> {
    wire: &'w mut Wire,
    request: Vec<u8>,
    page_size: i32,
    cookie: Vec<u8>,
    pages: u64,
    in_page: u64,
    finished: bool,
}

impl<'w> Paged<'w> {
    /// Starts a subtree search below `base` for `filter` (RFC 4515), asking for `attrs`,
    /// `page_size` entries a page.
    pub(crate) async fn start(wire: &'w mut Wire, base: &str, filter: &str, attrs: &[String], page_size: i32) -> Result<Self, Fault> {
        let filter = ldap3::parse_filter(filter).map_err(|()| Fault::Protocol(format!("the filter {filter:?} is not an LDAP filter")))?;
        let mut request = Vec::new();
        ber::put_with(&mut request, 0x63, |r| {
            ber::put(r, 0x04, base.as_bytes());
            ber::put_int(r, 0x0a, 2); // wholeSubtree
            ber::put_int(r, 0x0a, 0); // neverDerefAliases
            ber::put_int(r, 0x02, 0); // no size limit
            ber::put_int(r, 0x02, 0); // no time limit
            ber::put(r, 0x01, &[0]); // types and values
            put_tag(r, filter.into_structure());
            ber::put_with(r, 0x30, |a| attrs.iter().for_each(|n| ber::put(a, 0x04, n.as_bytes())));
        });
        let mut p = Paged { wire, request, page_size, cookie: Vec::new(), pages: 0, in_page: 0, finished: false };
        p.ask().await?;
        Ok(p)
    }

    /// Asks for the page after the cookie held (the first page with none).
    async fn ask(&mut self) -> Result<(), Fault> {
        let mut control = Vec::new();
        ber::put_with(&mut control, 0xa0, |c| {
            ber::put_with(c, 0x30, |c| {
                ber::put(c, 0x04, PAGED_OID);
                ber::put_with(c, 0x04, |v| {
                    ber::put_with(v, 0x30, |v| {
                        ber::put_int(v, 0x02, i64::from(self.page_size));
                        ber::put(v, 0x04, &self.cookie);
                    })
                });
            })
        });
        self.in_page = 0;
        self.wire.send(&self.request, Some(&control)).await
    }

    /// The next entry, `None` after the last page; `binary` names the attributes kept as bytes.
    /// Continuation references and intermediate responses are passed over; a result other
    /// than success is the search failing, and so is a page's end that cannot say whether
    /// more follow: the search never ends early as if it were complete.
    pub(crate) async fn next(&mut self, binary: &[String]) -> Result<Option<Entry>, Fault> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let step = self
                .wire
                .recv(|m| match m.op {
                    0x64 => entry::decode_ber(m.body, binary).map(Step::Entry).map_err(Fault::Protocol),
                    0x73 | 0x79 => Ok(Step::Skip),
                    0x65 => {
                        let (rc, text) = result(m.body)?;
                        if rc != 0 {
                            return Err(Fault::Refused { rc, text });
                        }
                        Ok(Step::Done(m.controls.map(paged_cookie).transpose()?.flatten()))
                    }
                    op => Err(Fault::Protocol(format!("a protocol operation ({op:#04x}) where search results were expected"))),
                })
                .await?;
            match step {
                Step::Entry(e) => {
                    self.in_page += 1;
                    return Ok(Some(e));
                }
                Step::Skip => {}
                // A server that does not page answers the first request whole, without the control.
                Step::Done(None) if self.pages == 0 => self.finished = true,
                Step::Done(None) => {
                    return Err(Fault::Protocol(format!(
                        "page {} ended without the paging control: whether more entries follow is unknown",
                        self.pages + 1
                    )))
                }
                Step::Done(Some(cookie)) if cookie.is_empty() => self.finished = true,
                Step::Done(Some(cookie)) => {
                    if self.in_page == 0 && cookie == self.cookie {
                        return Err(Fault::Protocol("the server sent an empty page with the same cookie again".into()));
                    }
                    self.pages += 1;
                    self.cookie = cookie;
                    self.ask().await?;
                }
            }
        }
    }
}

enum Step {
    Entry(Entry),
    Skip,
    /// The page's end, with the paging control's cookie (empty: that was the last page), or
    /// `None` when the result carries no paging control.
    Done(Option<Vec<u8>>),
}

/// The paging control's cookie among a result's controls (the `[0]` element's contents):
/// `None` when there is no paging control, an error when the controls or the paging control
/// cannot be read.
fn paged_cookie(controls: &[u8]) -> Result<Option<Vec<u8>>, Fault> {
    let bad = |what: &str| Fault::Protocol(format!("a search result whose {what} idflow cannot read"));
    let mut cs = Reader::new(controls);
    while !cs.is_empty() {
        let mut c = Reader::new(cs.expect(0x30).ok_or_else(|| bad("controls"))?);
        if c.expect(0x04).ok_or_else(|| bad("controls"))? != PAGED_OID {
            continue;
        }
        if c.peek() == Some(0x01) {
            c.next();
        }
        let cookie = c
            .expect(0x04)
            .and_then(|v| Reader::new(v).expect(0x30))
            .and_then(|v| {
                let mut v = Reader::new(v);
                v.expect(0x02)?;
                v.expect(0x04)
            })
            .ok_or_else(|| bad("paging control"))?;
        return Ok(Some(cookie.to_vec()));
    }
    Ok(None)
}

/// Appends an element ldap3's filter parser built.
fn put_tag(out: &mut Vec<u8>, tag: StructureTag) {
    let class = match tag.class {
        TagClass::Universal => 0x00,
        TagClass::Application => 0x40,
        TagClass::Context => 0x80,
        TagClass::Private => 0xc0,
    };
    // Filters use tags 0 to 9 and universal types below 31: one byte each.
    let id = (tag.id & 0x1f) as u8;
    match tag.payload {
        PL::P(bytes) => ber::put(out, class | id, &bytes),
        PL::C(inner) => ber::put_with(out, class | 0x20 | id, |o| inner.into_iter().for_each(|t| put_tag(o, t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::write;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn message(id: i64, op: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        ber::put_with(&mut out, 0x30, |m| {
            ber::put_int(m, 0x02, id);
            op(m);
        });
        out
    }
    fn entry(id: i64, dn: &str, cn: &str) -> Vec<u8> {
        message(id, |m| {
            ber::put_with(m, 0x64, |e| {
                ber::put(e, 0x04, dn.as_bytes());
                ber::put_with(e, 0x30, |l| {
                    ber::put_with(l, 0x30, |a| {
                        ber::put(a, 0x04, b"cn");
                        ber::put_with(a, 0x31, |v| ber::put(v, 0x04, cn.as_bytes()));
                    })
                });
            })
        })
    }
    fn done(id: i64, rc: i64, cookie: Option<&[u8]>) -> Vec<u8> {
        message(id, |m| {
            ber::put_with(m, 0x65, |r| {
                ber::put_int(r, 0x0a, rc);
                ber::put(r, 0x04, b"");
                ber::put(r, 0x04, if rc == 0 { b"" } else { b"no such object" });
            });
            if let Some(cookie) = cookie {
                ber::put_with(m, 0xa0, |c| {
                    ber::put_with(c, 0x30, |c| {
                        ber::put(c, 0x04, PAGED_OID);
                        ber::put_with(c, 0x04, |v| {
                            ber::put_with(v, 0x30, |v| {
                                ber::put_int(v, 0x02, 0);
                                ber::put(v, 0x04, cookie);
                            })
                        });
                    })
                });
            }
        })
    }

    /// What a search reads when a server sends `answer` a few bytes at a time (a fault or a
    /// framing no real server on this machine shows on demand; the real servers' tests read
    /// the same path whole): the entries' DNs and cn, or the fault; and the page size and
    /// cookie of each search request the server received.
    fn read(answer: Vec<u8>) -> (Result<Vec<String>, String>, Vec<Request>) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async move {
            let (client, server) = tokio::io::duplex(7);
            let (mut from_client, mut to_client) = tokio::io::split(server);
            let closed = std::sync::Arc::new(tokio::sync::Notify::new());
            let told = closed.clone();
            let serve = async move {
                let requests = async move {
                    let mut got = Vec::new();
                    let _ = tokio::time::timeout(Duration::from_secs(5), from_client.read_to_end(&mut got)).await;
                    told.notify_one();
                    got
                };
                let answers = async move {
                    let _ = to_client.write_all(&answer).await;
                    // Held open until the client is gone: what follows the answer is silence.
                    let _ = tokio::time::timeout(Duration::from_secs(5), closed.notified()).await;
                };
                tokio::join!(requests, answers).0
            };
            let search = async move {
                let mut wire: Wire = Wire::new(Box::new(client), Duration::from_secs(1));
                let mut p =
                    Paged::start(&mut wire, "dc=example", "(objectClass=*)", &["cn".into()], 2).await.map_err(|f| format!("{f:?}"))?;
                let mut seen = Vec::new();
                while let Some(e) = p.next(&[]).await.map_err(|f| format!("{f:?}"))? {
                    seen.push(format!("{} {:?}", e.dn, e.attrs["cn"]));
                }
                Ok(seen)
            };
            let (sent, got) = tokio::join!(serve, search);
            (got, requests(&sent))
        })
    }

    /// A search request's page size and cookie.
    type Request = (i64, Vec<u8>);

    /// The page size and cookie of each search request in `sent`.
    fn requests(sent: &[u8]) -> Vec<Request> {
        let mut out = Vec::new();
        let mut msgs = Reader::new(sent);
        while let Some(m) = msgs.expect(0x30) {
            let mut m = Reader::new(m);
            m.expect(0x02).expect("an ID");
            if m.expect(0x63).is_none() {
                continue;
            }
            let c = m.expect(0xa0).expect("controls");
            let mut c = Reader::new(Reader::new(c).expect(0x30).expect("a control"));
            assert_eq!(c.expect(0x04), Some(PAGED_OID));
            let mut v = Reader::new(Reader::new(c.expect(0x04).expect("its value")).expect(0x30).expect("a sequence"));
            let size = v.expect(0x02).and_then(ber::int).expect("a size");
            out.push((size, v.expect(0x04).expect("a cookie").to_vec()));
        }
        out
    }

    #[test]
    fn pages_are_read_whole_however_the_bytes_arrive() {
        let reference = message(1, |m| ber::put_with(m, 0x73, |r| ber::put(r, 0x04, b"ldap://elsewhere/")));
        let intermediate = message(2, |m| ber::put_with(m, 0x79, |r| ber::put(r, 0x80, b"1.2.3")));
        let answer = [
            entry(1, "uid=a", "A"),
            reference,
            entry(1, "uid=b", "B"),
            done(1, 0, Some(b"p2")),
            intermediate,
            entry(2, "uid=c", "C"),
            done(2, 0, Some(b"")),
        ]
        .concat();
        let (got, sent) = read(answer);
        assert_eq!(got.expect("three entries"), ["uid=a [Str(\"A\")]", "uid=b [Str(\"B\")]", "uid=c [Str(\"C\")]"]);
        assert_eq!(sent, [(2, b"".to_vec()), (2, b"p2".to_vec())], "the first page asked for without a cookie, the second with its cookie");
        let no_control = [entry(1, "uid=a", "A"), done(1, 0, None)].concat();
        assert_eq!(read(no_control).0.map(|v| v.len()), Ok(1), "a server that does not page sends everything at once");
    }

    #[test]
    fn faults_are_told_apart() {
        let cut = [entry(1, "uid=a", "A"), entry(1, "uid=b", "B")].concat();
        let e = read(cut[..cut.len() - 3].to_vec()).0.expect_err("cut short");
        assert!(e.contains("Connection") && e.contains("no answer from the directory within 1 s"), "{e}");
        let refused = [entry(1, "uid=a", "A"), done(1, 32, Some(b"p2"))].concat();
        assert_eq!(read(refused).0, Err("Refused { rc: 32, text: \"no such object\" }".into()), "a cookie does not make a refusal a page");
        let notice = message(0, |m| {
            ber::put_with(m, 0x78, |r| {
                ber::put_int(r, 0x0a, 52);
                ber::put(r, 0x04, b"");
                ber::put(r, 0x04, b"shutting down");
            })
        });
        let e = read(notice).0.expect_err("a notice of disconnection");
        assert!(e.contains("Connection") && e.contains("ended the session: shutting down"), "{e}");
        let e = read(entry(7, "uid=a", "A")).0.expect_err("another request's answer");
        assert!(e.contains("Protocol") && e.contains("request 7"), "{e}");
        let e = read(vec![0x30, 0x80, 0x00, 0x00]).0.expect_err("an indefinite length");
        assert!(e.contains("Protocol"), "{e}");
        let e = read(vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]).0.expect_err("two gigabytes announced");
        assert!(e.contains("more than idflow accepts"), "{e}");
    }

    #[test]
    fn a_page_end_that_cannot_say_whether_more_follow_fails_the_search() {
        let stopped_paging = [entry(1, "uid=a", "A"), done(1, 0, Some(b"p2")), entry(2, "uid=b", "B"), done(2, 0, None)].concat();
        let e = read(stopped_paging).0.expect_err("no control on the second page");
        assert!(e.contains("page 2 ended without the paging control"), "{e}");
        let mut unreadable = done(1, 0, Some(b"p2"));
        let n = unreadable.len();
        unreadable[n - 9] = 0x05; // the control's value no longer holds a sequence
        let e = read([entry(1, "uid=a", "A"), unreadable].concat()).0.expect_err("an unreadable control");
        assert!(e.contains("paging control idflow cannot read"), "{e}");
        let same_again = [done(1, 0, Some(b"p2")), done(2, 0, Some(b"p2"))].concat();
        let e = read(same_again).0.expect_err("an empty page with the same cookie");
        assert!(e.contains("same cookie"), "{e}");
    }

    #[test]
    fn filters_encode_as_lber_does() {
        for f in ["(objectClass=*)", "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))", "(&(cn=a*b*c)(!(uid>=x))(mail~=y))"] {
            let mut ours = Vec::new();
            put_tag(&mut ours, ldap3::parse_filter(f).expect("a filter").into_structure());
            let mut theirs = bytes::BytesMut::new();
            write::encode_into(&mut theirs, ldap3::parse_filter(f).expect("a filter").into_structure()).expect("encoded");
            assert_eq!(ours, theirs.to_vec(), "{f}");
        }
    }

    #[test]
    fn the_paging_cookie_is_found_among_controls() {
        let mut controls = Vec::new();
        ber::put_with(&mut controls, 0x30, |c| ber::put(c, 0x04, b"1.2.3"));
        ber::put_with(&mut controls, 0x30, |c| {
            ber::put(c, 0x04, PAGED_OID);
            ber::put(c, 0x01, &[0xff]);
            ber::put_with(c, 0x04, |v| {
                ber::put_with(v, 0x30, |v| {
                    ber::put_int(v, 0x02, 0);
                    ber::put(v, 0x04, b"next");
                })
            });
        });
        assert_eq!(paged_cookie(&controls).ok(), Some(Some(b"next".to_vec())));
        assert_eq!(paged_cookie(&controls[..9]).ok(), Some(None), "another control whole");
        assert!(paged_cookie(&controls[..7]).is_err(), "a control cut short");
        assert!(paged_cookie(&controls[2..]).is_err(), "not a control");
    }
}
