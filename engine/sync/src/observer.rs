//! What the engine tells whoever runs it: a step starts (with how many objects, when known),
//! objects are done, the step ends, an object failed. The CLI draws progress bars from it; a
//! service turns it into metrics. The engine itself never writes to a terminal.
use idflow_core::ObjectError;

/// A step of a run that reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Reading one connector into its connector space.
    Import(&'a str),
    /// Connector spaces into the metaverse.
    InboundSync,
    /// The metaverse out to the targets' connector spaces.
    OutboundSync,
    /// Pending changes out to one connector.
    Export(&'a str),
}

impl std::fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Import(c) => write!(f, "import {c}"),
            Step::InboundSync => f.write_str("inbound sync"),
            Step::OutboundSync => f.write_str("outbound sync"),
            Step::Export(c) => write!(f, "export {c}"),
        }
    }
}

/// Receives the engine's progress. Every method has a default that ignores it.
pub trait Observer: Send + Sync {
    /// A step starts; `total` is how many objects it will handle, when known.
    fn step_started(&self, _step: Step<'_>, _total: Option<u64>) {}
    /// The running step now knows how many objects it will handle.
    fn step_total(&self, _total: u64) {}
    /// `n` more objects of the running step are done.
    fn advanced(&self, _n: u64) {}
    /// The running step ended.
    fn step_finished(&self) {}
    /// One object failed; the run goes on.
    fn object_error(&self, _error: &ObjectError) {}
    /// Whoever runs the engine wants it to stop (the service got SIGTERM): export stops after
    /// the batch it is sending, committed; what is left stays pending for the next run.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// A running step: tells the observer it ended when dropped, however the step ends.
pub(crate) struct Running<'a>(&'a dyn Observer);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.step_finished();
    }
}

/// Starts a step; it ends when the returned value is dropped.
pub(crate) fn start<'a>(observer: &'a dyn Observer, step: Step<'_>, total: Option<u64>) -> Running<'a> {
    observer.step_started(step, total);
    Running(observer)
}

/// Ignores everything: tests, plans run for their result, benchmarks.
pub struct Silent;

impl Observer for Silent {}
