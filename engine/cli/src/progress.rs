//! Progress bars on a terminal: the CLI's [`Observer`] of the engine. A step with a known size
//! gets a bar, an import (whose size nobody knows beforehand) a spinner; both go to standard
//! error and are cleared when the step ends.
use idflow_engine::{Observer, Step};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn with(&self, f: impl FnOnce(&ProgressBar)) {
        if let Ok(g) = self.current.lock() {
            if let Some(pb) = g.as_ref() {
                f(pb);
            }
        }
    }
}

impl Observer for Bars {
    fn step_started(&self, step: Step<'_>, total: Option<u64>) {
        // An import's size is unknown until it is read: a spinner counts what it reads.
        let total = if matches!(step, Step::Import(_)) { None } else { total };
        let pb = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let style = match total {
            Some(_) => ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} {per_sec} eta {eta}"),
            None => ProgressStyle::with_template("{msg:>16} {spinner} {pos} objects {per_sec}"),
        };
        if let Ok(s) = style {
            pb.set_style(s.progress_chars("=> "));
        }
        pb.set_message(step.to_string());
        pb.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(mut g) = self.current.lock() {
            if let Some(old) = g.replace(pb) {
                old.finish_and_clear();
            }
        }
    }

    fn step_total(&self, total: u64) {
        self.with(|pb| pb.set_length(total));
    }

    fn advanced(&self, n: u64) {
        self.with(|pb| pb.inc(n));
    }

    fn step_finished(&self) {
        if let Ok(mut g) = self.current.lock() {
            if let Some(pb) = g.take() {
                pb.finish_and_clear();
            }
        }
    }
}
