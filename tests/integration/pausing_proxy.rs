//! A TCP proxy in front of a real server that holds what the client sends once a pattern has
//! passed in it a given number of times (counted over every connection), until the test lets
//! it go: the directory changes at a known point of a run, between two bases it reads. Or it
//! cuts that connection there instead (`arm_cut`): a connection lost at a known point.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Hold at this occurrence of the pattern (counted from `arm`); none: pass everything.
    at: Option<usize>,
    seen: usize,
    held: bool,
    released: bool,
    /// Connections still to cut, at `at` and at each occurrence after it, instead of holding
    /// one (none: hold).
    cuts: usize,
}

pub(crate) struct PausingProxy {
    pub port: u16,
    pattern: Vec<u8>,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl PausingProxy {
    pub(crate) fn start(upstream: u16, pattern: &str) -> PausingProxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let p = PausingProxy { port, pattern: pattern.as_bytes().to_vec(), state: Arc::default() };
        let (state, pattern) = (p.state.clone(), p.pattern.clone());
        std::thread::spawn(move || {
            for client in l.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let (mut c2, mut s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                let (state, pattern) = (state.clone(), pattern.clone());
                std::thread::spawn(move || {
                    let mut b = [0u8; 16384];
                    let mut tail: Vec<u8> = Vec::new();
                    while let Ok(n) = c2.read(&mut b) {
                        if n == 0 {
                            break;
                        }
                        tail.extend_from_slice(&b[..n]);
                        let found = tail.windows(pattern.len()).filter(|w| *w == pattern.as_slice()).count();
                        tail.drain(..tail.len().saturating_sub(pattern.len() - 1));
                        if hold_if_due(&state, found) {
                            let _ = s2.shutdown(std::net::Shutdown::Both);
                            let _ = c2.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        if s2.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                let (mut client, mut server) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        p
    }

    pub(crate) fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Holds the client's bytes at the `nth` occurrence of the pattern from now.
    pub(crate) fn arm(&self, nth: usize) {
        let mut s = self.state.0.lock().expect("lock");
        *s = State { at: Some(nth), ..State::default() };
    }

    /// Cuts the connection that sends the `nth` occurrence of the pattern from now (not sent),
    /// and so each of the next `times - 1` occurrences; the rest pass.
    pub(crate) fn arm_cut(&self, nth: usize, times: usize) {
        let mut s = self.state.0.lock().expect("lock");
        *s = State { at: Some(nth), cuts: times, ..State::default() };
    }

    /// Waits (a minute at most) until the client is held, or a connection was cut.
    pub(crate) fn wait_held(&self) {
        let (lock, cv) = &*self.state;
        let s = lock.lock().expect("lock");
        let (s, timeout) = cv.wait_timeout_while(s, Duration::from_secs(60), |s| !s.held).expect("wait");
        assert!(!timeout.timed_out() && s.held, "the client never sent {:?}", String::from_utf8_lossy(&self.pattern));
    }

    /// Lets the client's bytes go on.
    pub(crate) fn release(&self) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().expect("lock");
        s.released = true;
        s.at = None;
        cv.notify_all();
    }
}

/// A test that fails while a client is held does not leave it waiting for ever.
impl Drop for PausingProxy {
    fn drop(&mut self) {
        self.release();
    }
}

/// Counts `found` occurrences; at the armed one, waits for the release, or says to cut the
/// connection (once: the rest pass).
fn hold_if_due(state: &Arc<(Mutex<State>, Condvar)>, found: usize) -> bool {
    let (lock, cv) = &**state;
    let mut s = lock.lock().expect("lock");
    let Some(at) = s.at else { return false };
    s.seen += found;
    if s.seen < at {
        return false;
    }
    if s.cuts > 0 {
        s.cuts -= 1;
        s.at = if s.cuts == 0 { None } else { Some(s.seen + 1) };
        s.held = true;
        cv.notify_all();
        return true;
    }
    s.held = true;
    cv.notify_all();
    let _s = cv.wait_while(s, |s| !s.released).expect("wait");
    false
}
