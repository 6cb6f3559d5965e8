//! Change feeds on threads of their own: each calls back with its connector's name when the
//! directory reports a change; a feed that fails is started again after a pause that doubles up
//! to a minute, and never stops the service.
use crate::status::Status;
use crate::worker::Feeds;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Running feeds; dropping them does not stop them: call `stop`.
pub(crate) struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn set_feed(status: &Mutex<Status>, name: &str, f: impl FnOnce(&mut crate::status::ConnectorStatus)) {
    if let Ok(mut s) = status.lock() {
        f(s.connectors.entry(name.to_string()).or_default());
    }
}

pub(crate) fn start(feeds: Feeds, changed: UnboundedSender<String>, status: Arc<Mutex<Status>>) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (name, feed) in feeds {
        let mut feed = match feed {
            None => {
                set_feed(&status, &name, |c| {
                    c.trigger = "timer".into();
                    c.feed = None;
                });
                continue;
            }
            Some(Err(e)) => {
                tracing::warn!(connector = %name, error = %e, "no change feed: changes are seen at the interval");
                set_feed(&status, &name, |c| {
                    c.trigger = "timer".into();
                    c.feed = Some(format!("down: {e}"));
                });
                continue;
            }
            Some(Ok(f)) => f,
        };
        let (stop, changed, status) = (stop.clone(), changed.clone(), status.clone());
        threads.push(std::thread::spawn(move || {
            let how = feed.describe();
            set_feed(&status, &name, |c| c.trigger = how.clone());
            let mut pause = Duration::from_secs(1);
            let mut down = false;
            while !stop.load(Ordering::Relaxed) {
                set_feed(&status, &name, |c| c.feed = Some("watching".into()));
                tracing::info!(connector = %name, feed = %how, "watching for changes");
                let tell = || {
                    let _ = changed.send(name.clone());
                };
                let began = std::time::Instant::now();
                match feed.watch(&tell, &stop) {
                    Ok(()) => break,
                    Err(e) => {
                        if began.elapsed() > Duration::from_secs(10) {
                            // It was up a while: this is a new outage.
                            down = false;
                            pause = Duration::from_secs(1);
                        }
                        tracing::warn!(connector = %name, error = %e, retry_in = %humantime::format_duration(pause), "the change feed is down; changes are seen at the interval until it is back");
                        set_feed(&status, &name, |c| c.feed = Some(format!("down: {e}")));
                        // What changed just before it went down: one cycle looks (and, if the
                        // directory is down too, retries with backoff until it is back).
                        if !down {
                            let _ = changed.send(name.clone());
                            down = true;
                        }
                        let mut slept = Duration::ZERO;
                        while slept < pause && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(200));
                            slept += Duration::from_millis(200);
                        }
                        pause = (pause * 2).min(Duration::from_secs(60));
                    }
                }
            }
        }));
    }
    Running { stop, threads }
}
