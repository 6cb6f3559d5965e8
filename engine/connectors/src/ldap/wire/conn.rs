//! A connection that speaks LDAP itself: TCP, LDAPS or StartTLS with the connector's TLS
//! settings, a simple bind, and messages framed from what the socket delivers, every wait for
//! a message bounded by the connector's timeout.
use super::ber::{self, Reader};
use super::Fault;
use crate::ldap::conf::Conf;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// What a connection runs over: TCP, or TLS over TCP.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The largest message idflow accepts (an entry with its photos and certificates is far less).
const MAX_MESSAGE: usize = 256 << 20;
/// How much room each read is given.
const READ_ROOM: usize = 256 << 10;
const START_TLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// An LDAP connection: the stream, what was received and not yet taken, the last message ID.
pub(crate) struct Wire<S = Box<dyn Stream>> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    last_id: i64,
    timeout: Duration,
}

/// A received message (an answer to the last request): its protocol operation's tag and
/// contents, its controls (the `[0]` element's contents).
pub(crate) struct Message<'a> {
    pub op: u8,
    pub body: &'a [u8],
    pub controls: Option<&'a [u8]>,
}

/// An LDAPResult's code and diagnostic message.
pub(crate) fn result(body: &[u8]) -> Result<(i64, String), Fault> {
    let mut r = Reader::new(body);
    let rc = r.expect(0x0a).and_then(ber::int).ok_or_else(|| Fault::Protocol("a result without a result code".into()))?;
    let _matched = r.expect(0x04);
    let text = r.expect(0x04).map(|t| String::from_utf8_lossy(t).into_owned()).unwrap_or_default();
    Ok((rc, text))
}

/// Opens a connection to `addr`, the server the connector's URL led to (LDAPS, or StartTLS
/// when configured; the certificate checked against the URL's host), and binds as the service
/// account (anonymously when none is configured).
pub(crate) async fn open(conf: &Conf, addr: SocketAddr) -> Result<Wire, Fault> {
    let (host, _) = conf.host_port().map_err(Fault::Protocol)?;
    let tcp = within(conf.timeout, Instant::now() + conf.timeout, "connecting", TcpStream::connect(addr)).await?;
    tcp.set_nodelay(true).map_err(|e| Fault::Connection(format!("connecting: {e}")))?;
    let mut wire: Wire = if conf.ldaps() {
        Wire::new(Box::new(tls(conf, &host, tcp).await?), conf.timeout)
    } else if conf.starttls {
        let mut plain = Wire::new(tcp, conf.timeout);
        plain.start_tls().await?;
        Wire::new(Box::new(tls(conf, &host, plain.stream).await?), conf.timeout)
    } else {
        Wire::new(Box::new(tcp), conf.timeout)
    };
    if let (Some(dn), Some(pw)) = (&conf.bind_dn, &conf.password) {
        wire.bind(dn, pw).await?;
    }
    Ok(wire)
}

/// The TLS handshake. A certificate refused is the settings' fault, not the connection's: it is
/// not a fault worth trying again.
async fn tls(conf: &Conf, host: &str, tcp: TcpStream) -> Result<impl Stream, Fault> {
    let name = ServerName::try_from(host.to_string()).map_err(|e| Fault::Protocol(format!("TLS server name {host:?}: {e}")))?;
    let handshake = tokio_rustls::TlsConnector::from(conf.tls.clone()).connect(name, tcp);
    match tokio::time::timeout(conf.timeout, handshake).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            Err(Fault::Protocol(format!("the TLS handshake: {e}")))
        }
        Ok(Err(e)) => Err(Fault::Connection(format!("the TLS handshake: {e}"))),
        Err(_) => Err(no_answer("the TLS handshake", conf.timeout)),
    }
}

fn no_answer(what: &str, limit: Duration) -> Fault {
    Fault::Connection(format!("{what}: {}", crate::ldap::session::no_answer(limit)))
}

/// `f`, or a connection fault when it fails or is not done by `deadline` (`limit` after the
/// wait began).
async fn within<T>(
    limit: Duration,
    deadline: Instant,
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, Fault> {
    match tokio::time::timeout_at(deadline, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Fault::Connection(format!("{what}: {e}"))),
        Err(_) => Err(no_answer(what, limit)),
    }
}

impl<S: Stream> Wire<S> {
    pub(super) fn new(stream: S, timeout: Duration) -> Self {
        Self { stream, buf: Vec::new(), start: 0, last_id: 0, timeout }
    }

    /// Sends `op`, a protocol operation whole, with the next ID and `controls` (their `[0]`
    /// element whole). The message is made without a buffer growing and wiped once sent, so no
    /// copy of a bind's password is left behind.
    pub(crate) async fn send(&mut self, op: &[u8], controls: Option<&[u8]>) -> Result<(), Fault> {
        self.last_id += 1;
        let controls = controls.unwrap_or_default();
        let mut body = Zeroizing::new(Vec::with_capacity(op.len() + controls.len() + 16));
        ber::put_int(&mut body, 0x02, self.last_id);
        body.extend_from_slice(op);
        body.extend_from_slice(controls);
        let mut msg = Zeroizing::new(Vec::with_capacity(body.len() + 16));
        ber::put(&mut msg, 0x30, &body);
        let deadline = Instant::now() + self.timeout;
        within(self.timeout, deadline, "sending a request", self.stream.write_all(&msg)).await?;
        within(self.timeout, deadline, "sending a request", self.stream.flush()).await
    }

    /// The next whole message's place in the buffer, reading until it is there (by one
    /// deadline: a server that trickles a message out slowly is not waited for longer).
    async fn frame(&mut self) -> Result<Range<usize>, Fault> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let have = &self.buf[self.start..];
            let mut need = 0;
            if let Some((tag, head, len)) = ber::header(have) {
                if tag != 0x30 {
                    return Err(Fault::Protocol(format!("a message that is not a sequence (tag {tag:#04x})")));
                }
                let total = head
                    .checked_add(len)
                    .filter(|&t| t <= MAX_MESSAGE)
                    .ok_or_else(|| Fault::Protocol(format!("a message of {len} bytes, more than idflow accepts ({MAX_MESSAGE})")))?;
                if have.len() >= total {
                    let r = self.start..self.start + total;
                    self.start += total;
                    return Ok(r);
                }
                need = total - have.len();
            } else if ber::bad_header(have) {
                return Err(Fault::Protocol("a message with a header LDAP does not use".into()));
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(need.max(READ_ROOM));
            let n = within(self.timeout, deadline, "reading", self.stream.read_buf(&mut self.buf)).await?;
            if n == 0 {
                return Err(Fault::Connection("the directory closed the connection".into()));
            }
        }
    }

    /// Receives the next message; `read` takes what it needs from it. A notice of
    /// disconnection (message ID 0) is the connection ending, with the server's reason.
    pub(crate) async fn recv<T>(&mut self, read: impl FnOnce(Message<'_>) -> Result<T, Fault>) -> Result<T, Fault> {
        let range = self.frame().await?;
        let bad = |what: &str| Fault::Protocol(format!("a message idflow cannot read ({what})"));
        let mut m = Reader::new(Reader::new(&self.buf[range]).expect(0x30).ok_or_else(|| bad("not a sequence"))?);
        let id = m.expect(0x02).and_then(ber::int).ok_or_else(|| bad("no message ID"))?;
        let (op, body) = m.next().ok_or_else(|| bad("no protocol operation"))?;
        let controls = match m.next() {
            None if m.is_empty() => None,
            Some((0xa0, c)) if m.is_empty() => Some(c),
            _ => return Err(bad("what follows the protocol operation is not its controls")),
        };
        if id == 0 {
            let (_, text) = result(body).unwrap_or_default();
            return Err(Fault::Connection(format!("the directory ended the session: {text}")));
        }
        if id != self.last_id {
            return Err(Fault::Protocol(format!("an answer to request {id} where {} was waited for", self.last_id)));
        }
        read(Message { op, body, controls })
    }

    /// Waits for the answer to the last request, an LDAPResult under `op`, and checks its code.
    async fn expect_success(&mut self, op: u8, what: &str) -> Result<(), Fault> {
        let answer = |m: Message<'_>| {
            if m.op == op {
                result(m.body)
            } else {
                Err(Fault::Protocol(format!("{what}: an answer of another kind ({:#04x})", m.op)))
            }
        };
        let (rc, text) = self.recv(answer).await?;
        if rc != 0 {
            return Err(Fault::Refused { rc, text: format!("{what}: {text}") });
        }
        Ok(())
    }

    async fn start_tls(&mut self) -> Result<(), Fault> {
        let mut op = Vec::new();
        ber::put_with(&mut op, 0x77, |e| ber::put(e, 0x80, START_TLS_OID));
        self.send(&op, None).await?;
        self.expect_success(0x78, "StartTLS").await?;
        if self.start != self.buf.len() {
            return Err(Fault::Protocol("data after the StartTLS answer, before the TLS handshake".into()));
        }
        Ok(())
    }

    async fn bind(&mut self, dn: &str, password: &str) -> Result<(), Fault> {
        // Sized up front, so no copy of the password is left behind by a growing buffer.
        let mut req = Zeroizing::new(Vec::with_capacity(dn.len() + password.len() + 32));
        ber::put_int(&mut req, 0x02, 3);
        ber::put(&mut req, 0x04, dn.as_bytes());
        ber::put(&mut req, 0x80, password.as_bytes());
        let mut op = Zeroizing::new(Vec::with_capacity(req.len() + 16));
        ber::put(&mut op, 0x60, &req);
        self.send(&op, None).await?;
        self.expect_success(0x61, &format!("bind as {dn}")).await
    }

    /// Says goodbye (an unbind request) and closes; a failure here changes nothing.
    pub(crate) async fn close(mut self) {
        let _ = self.send(&[0x42, 0x00], None).await;
        let _ = tokio::time::timeout(self.timeout, self.stream.shutdown()).await;
    }
}
