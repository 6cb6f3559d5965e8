//! A webhook receiver for the tests: an HTTP server on 127.0.0.1 that keeps every JSON body
//! POSTed to it (with its Authorization header), and refuses the first `fail_first` requests with
//! a 500 so that retries show.
use serde_json::Value as J;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What came in: the Authorization header and the JSON body of each post taken.
type Taken = Arc<Mutex<Vec<(Option<String>, J)>>>;

pub(crate) struct Receiver {
    pub url: String,
    received: Taken,
    pub refused: Arc<AtomicUsize>,
}

impl Receiver {
    pub(crate) fn start(fail_first: usize) -> Receiver {
        Self::start_on(0, fail_first)
    }

    /// On a given port (0: any free one).
    pub(crate) fn start_on(port: u16, fail_first: usize) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let received: Taken = Arc::default();
        let refused = Arc::new(AtomicUsize::new(0));
        let (r, n) = (received.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let (mut length, mut auth) = (0usize, None);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let l = line.trim_end().to_string();
                    line.clear();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            "authorization" => auth = Some(v.trim().to_string()),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let mut stream = stream;
                if n.load(Ordering::SeqCst) < fail_first {
                    n.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                if let Ok(j) = serde_json::from_slice::<J>(&body) {
                    r.lock().expect("lock").push((auth, j));
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Receiver { url, received, refused }
    }

    /// Every notification taken, in order, with the Authorization header it came with.
    pub(crate) fn received(&self) -> Vec<(Option<String>, J)> {
        self.received.lock().expect("lock").clone()
    }

    /// The events taken for alerts of `kind`: "raised", "resolved", ...
    pub(crate) fn events(&self, kind: &str) -> Vec<String> {
        self.received()
            .iter()
            .filter(|(_, j)| j["alert"]["kind"] == kind)
            .map(|(_, j)| j["event"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}
