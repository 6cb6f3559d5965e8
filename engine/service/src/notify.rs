//! systemd's notify protocol (Type=notify): READY=1 once serving, STATUS= after every cycle,
//! WATCHDOG=1 while the scheduler lives, STOPPING=1 and RELOADING=1. Without NOTIFY_SOCKET
//! (not under systemd) each call does nothing.
use sd_notify::NotifyState;
use std::time::Duration;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub(crate) fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub(crate) fn reloading() {
    send(&[NotifyState::Reloading]);
}

pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping: finishing the current batch")]);
}

pub(crate) fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: half what systemd set (WATCHDOG_USEC), or never.
pub(crate) fn watchdog_every() -> Option<Duration> {
    let mut usec = 0u64;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}
