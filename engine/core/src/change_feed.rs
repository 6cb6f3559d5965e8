//! A directory that can say when it changed, so the service need not wait for its timer:
//! OpenLDAP's persistent syncrepl search, Active Directory's DirSync polled at a short interval.
use crate::Result;
use std::sync::atomic::AtomicBool;

/// Watches one connector's directory for changes.
pub trait ChangeFeed: Send {
    /// How it watches, for `status` and the log ("syncrepl refreshAndPersist", "DirSync every 5 s").
    fn describe(&self) -> String;
    /// Blocks, calling `changed` for every change the directory reports, until `stop` is set
    /// (checked at least every second) or the feed fails. A failed feed is started again by the
    /// caller, after a pause.
    fn watch(&mut self, changed: &(dyn Fn() + Sync), stop: &AtomicBool) -> Result<()>;
}
