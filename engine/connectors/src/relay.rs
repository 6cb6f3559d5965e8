//! An import read on one thread and stored on another: the directory and the database work at
//! the same time. The reader keeps asking for pages while the caller stores the previous ones,
//! instead of the server waiting for the database at every page.
use idflow_core::connector::{DeltaChange, ImportSink, ImportedObject, ObjectKey, Spent};
use idflow_core::{Error, Result};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};

/// Objects read ahead of what is stored, at most (a few pages' worth).
const AHEAD: usize = 4096;
/// Objects handed to the storing thread at a time: one hand-over per object would wake a
/// thread per object.
const CHUNK: usize = 256;

enum Item {
    Object(ImportedObject),
    Change(DeltaChange),
    Error(ObjectKey, String),
}

/// What the reader meets when the storing side has stopped (it failed): the import ends.
fn stopped(connector: &str) -> Error {
    Error::connector(connector, "the import stopped: storing what it read failed")
}

/// The reader's sink: hands what it reads to the storing thread, in order, [`CHUNK`] items
/// at a time, and drops what the storing side is done with (its memory was allocated here:
/// [`ImportSink::spent`]).
struct Reader<'a> {
    to_store: SyncSender<Vec<Item>>,
    spent: Receiver<Spent>,
    connector: &'a str,
    chunk: Vec<Item>,
}

impl Reader<'_> {
    fn push(&mut self, item: Item) -> Result<()> {
        self.chunk.push(item);
        match self.chunk.len() >= CHUNK {
            true => self.flush(),
            false => Ok(()),
        }
    }

    /// Hands over what is read and not handed over yet.
    fn flush(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        while let Ok(spent) = self.spent.try_recv() {
            drop(spent);
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.to_store.send(chunk).map_err(|_| stopped(self.connector))
    }
}

impl ImportSink for Reader<'_> {
    fn object(&mut self, obj: ImportedObject) -> Result<()> {
        self.push(Item::Object(obj))
    }
    fn change(&mut self, change: DeltaChange) -> Result<()> {
        self.push(Item::Change(change))
    }
    fn error(&mut self, key: ObjectKey, message: String) {
        // Should storing have stopped, the import fails anyway: nothing is lost by dropping it.
        let _ = self.push(Item::Error(key, message));
    }
}

/// Runs `read` on a thread of its own, storing what it reads into `sink` on this one, in the
/// order read. The import's outcome is `read`'s once everything it read is stored, or the
/// first storing failure (the reader then stops at its next object).
pub(crate) fn overlapped<F>(connector: &str, sink: &mut dyn ImportSink, read: F) -> Result<Option<String>>
where
    F: FnOnce(&mut dyn ImportSink) -> Result<Option<String>> + Send,
{
    let (tx, rx) = sync_channel(AHEAD / CHUNK);
    // Unbounded, so that storing never waits for the reader; the reader empties it at every
    // chunk it hands over, so it holds a few chunks' objects at most.
    let (spent_tx, spent_rx) = channel();
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut r = Reader { to_store: tx, spent: spent_rx, connector, chunk: Vec::with_capacity(CHUNK) };
            let read = read(&mut r);
            // What was read before the end (or before a failed read) is stored too.
            let handed = r.flush();
            read.and_then(|out| handed.map(|()| out))
        });
        let mut failed = None;
        // Ends when the reader is done (its sender is dropped with it).
        'chunks: for chunk in rx.iter() {
            for item in chunk {
                let stored = match item {
                    Item::Object(o) => sink.object(o),
                    Item::Change(c) => sink.change(c),
                    Item::Error(key, message) => {
                        sink.error(key, message);
                        Ok(())
                    }
                };
                if let Err(e) = stored {
                    failed = Some(e);
                    break 'chunks;
                }
            }
            if let Some(spent) = sink.spent() {
                // Once the reader is done, what it would have dropped is dropped here.
                let _ = spent_tx.send(spent);
            }
        }
        // The reader's next send fails once nobody receives.
        drop(rx);
        let read = reader.join().map_err(|_| Error::connector(connector, "the import's reader stopped unexpectedly (a panic)"))?;
        match failed {
            Some(e) => Err(e),
            None => read,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use idflow_core::Attrs;

    #[derive(Default)]
    struct Kept {
        objects: Vec<String>,
        errors: Vec<String>,
        fail_at: Option<usize>,
    }

    impl ImportSink for Kept {
        fn object(&mut self, obj: ImportedObject) -> Result<()> {
            if self.fail_at == Some(self.objects.len()) {
                return Err(Error::Config("disk full".into()));
            }
            self.objects.push(obj.anchor.unwrap_or_default());
            Ok(())
        }
        fn change(&mut self, _: DeltaChange) -> Result<()> {
            Ok(())
        }
        fn error(&mut self, key: ObjectKey, message: String) {
            self.errors.push(format!("{key}: {message}"));
        }
    }

    fn obj(i: usize) -> ImportedObject {
        ImportedObject { anchor: Some(i.to_string()), dn: None, object_type: "person".into(), attrs: Attrs::new() }
    }

    #[test]
    fn everything_read_is_stored_in_order_before_the_outcome() {
        let mut kept = Kept::default();
        let out = overlapped("corp", &mut kept, |s| {
            for i in 0..3 * AHEAD {
                s.object(obj(i))?;
                if i == 7 {
                    s.error(ObjectKey { anchor: None, dn: Some("uid=x".into()) }, "unreadable".into());
                }
            }
            Ok(Some("cookie".into()))
        });
        assert_eq!(out.expect("imported"), Some("cookie".into()));
        assert_eq!(kept.objects.len(), 3 * AHEAD);
        assert!(kept.objects.iter().enumerate().all(|(i, a)| *a == i.to_string()));
        assert_eq!(kept.errors, ["uid=x: unreadable"]);
    }

    /// Records the thread it is dropped on.
    struct Witness(std::sync::Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>);

    impl Drop for Witness {
        fn drop(&mut self) {
            self.0.lock().expect("not poisoned").push(std::thread::current().id());
        }
    }

    /// Hands back a witness for every object stored.
    struct Handing(Kept, std::sync::Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>, usize);

    impl ImportSink for Handing {
        fn object(&mut self, obj: ImportedObject) -> Result<()> {
            self.2 += 1;
            self.0.object(obj)
        }
        fn change(&mut self, c: DeltaChange) -> Result<()> {
            self.0.change(c)
        }
        fn error(&mut self, key: ObjectKey, message: String) {
            self.0.error(key, message)
        }
        fn spent(&mut self) -> Option<Spent> {
            let n = std::mem::take(&mut self.2);
            Some(Box::new((0..n).map(|_| Witness(self.1.clone())).collect::<Vec<_>>()))
        }
    }

    #[test]
    fn what_storing_is_done_with_is_dropped_by_the_reader_while_it_reads() {
        let dropped = std::sync::Arc::default();
        let mut sink = Handing(Kept::default(), std::sync::Arc::clone(&dropped), 0);
        let out = overlapped("corp", &mut sink, |s| {
            for i in 0..4 * AHEAD {
                s.object(obj(i))?;
            }
            Ok(None)
        });
        assert!(out.is_ok());
        let dropped = dropped.lock().expect("not poisoned");
        assert_eq!(dropped.len(), 4 * AHEAD, "every one dropped, on one thread or the other");
        let here = std::thread::current().id();
        assert!(dropped.iter().filter(|t| **t != here).count() > AHEAD, "most by the reader");
    }

    #[test]
    fn a_storing_failure_stops_the_reader_and_is_the_outcome() {
        let mut kept = Kept { fail_at: Some(10), ..Default::default() };
        let mut sent = 0;
        let out = overlapped("corp", &mut kept, |s| {
            for i in 0..100 * AHEAD {
                s.object(obj(i))?;
                sent += 1;
            }
            Ok(None)
        });
        assert!(out.expect_err("failed").to_string().contains("disk full"));
        assert_eq!(kept.objects.len(), 10);
        assert!(sent < 100 * AHEAD, "the reader stopped early");
    }

    #[test]
    fn a_failed_read_is_the_outcome_after_what_it_read_is_stored() {
        let mut kept = Kept::default();
        let out = overlapped("corp", &mut kept, |s| {
            s.object(obj(1))?;
            Err(Error::connector("corp", "connection reset"))
        });
        assert!(out.expect_err("failed").to_string().contains("connection reset"));
        assert_eq!(kept.objects, ["1"]);
    }
}
