//! An import read on one thread and stored on another: the directory and the database work at
//! the same time. The reader keeps asking for pages while the caller stores the previous ones,
//! instead of the server waiting for the database at every page.
use idflow_core::connector::{DeltaChange, ImportSink, ImportedObject, ObjectKey, Prepare, PreparedObject};
use idflow_core::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};

/// Objects read ahead of what is stored, at most (a few pages' worth).
const AHEAD: usize = 4096;
/// Objects handed to the storing thread at a time: one hand-over per object would wake a
/// thread per object.
const CHUNK: usize = 256;
/// Chunks read and not stored yet, at most.
const QUEUED: usize = AHEAD / CHUNK;

enum Item {
    Object(ImportedObject),
    Prepared(PreparedObject),
    Change(DeltaChange),
    Error(ObjectKey, String),
}

/// What the reader meets when the storing side has stopped (it failed): the import ends.
fn stopped(connector: &str) -> Error {
    Error::connector(connector, "the import stopped: storing what it read failed")
}

/// The reader's sink: hands what it reads to the storing thread, in order, [`CHUNK`] items
/// at a time.
struct Reader<'a> {
    to_store: SyncSender<Vec<Item>>,
    connector: &'a str,
    chunk: Vec<Item>,
    /// The storing side's work on each object, done here (ImportSink::preparer).
    prepare: Option<Box<dyn Prepare>>,
    /// Chunks handed over and not taken yet.
    queued: &'a AtomicUsize,
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
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        // Half the chunks it may hold waiting or more: the storing thread lags, and this one
        // would soon wait for it.
        let waiting = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(p) = &mut self.prepare {
            p.storing_behind(waiting >= QUEUED / 2);
        }
        self.to_store.send(chunk).map_err(|_| stopped(self.connector))
    }
}

impl ImportSink for Reader<'_> {
    fn object(&mut self, obj: ImportedObject) -> Result<()> {
        let item = match &mut self.prepare {
            Some(p) => Item::Prepared(p.prepare(obj)),
            None => Item::Object(obj),
        };
        self.push(item)
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
    let (tx, rx) = sync_channel(QUEUED);
    let prepare = sink.preparer();
    let queued = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let queued = &queued;
        let reader = s.spawn(move || {
            let mut r = Reader { to_store: tx, connector, chunk: Vec::with_capacity(CHUNK), prepare, queued };
            let read = read(&mut r);
            // What was read before the end (or before a failed read) is stored too.
            let handed = r.flush();
            read.and_then(|out| handed.map(|()| out))
        });
        let mut failed = None;
        // Ends when the reader is done (its sender is dropped with it).
        'chunks: for chunk in rx.iter() {
            queued.fetch_sub(1, Ordering::Relaxed);
            for item in chunk {
                let stored = match item {
                    Item::Object(o) => sink.object(o),
                    Item::Prepared(p) => sink.prepared(p),
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

    /// `n` objects read on a thread of their own, stored into `sink`.
    fn read_objects(sink: &mut dyn ImportSink, n: usize) -> Result<Option<String>> {
        overlapped("corp", sink, |s| {
            for i in 0..n {
                s.object(obj(i))?;
            }
            Ok(None)
        })
    }

    /// Tells the storing side each time the reader is told whether that side lags.
    struct Paced(std::sync::mpsc::Sender<bool>);

    impl Prepare for Paced {
        fn prepare(&mut self, obj: ImportedObject) -> PreparedObject {
            PreparedObject { obj, attrs_json: String::new(), with_attrs: true, packed: None }
        }
        fn storing_behind(&mut self, behind: bool) {
            let _ = self.0.send(behind);
        }
    }

    /// The reader is told the storing side lags once half the chunks it may hold wait (and
    /// not before): where that side is the slower, the reader takes work off it.
    #[test]
    fn the_reader_is_told_when_the_storing_side_lags() {
        let (tell, told) = std::sync::mpsc::channel();
        let (mut heard, mut stored) = (Vec::new(), 0);
        // The first object is stored only once the reader was told this side lags.
        let mut sink = Preparing::new(Paced(tell), |_| {
            while stored == 0 && !heard.contains(&true) {
                let told = told.recv_timeout(std::time::Duration::from_secs(20));
                heard.push(told.map_err(|_| Error::Config(format!("never told it lags: {heard:?}")))?);
            }
            stored += 1;
            Ok(())
        });
        read_objects(&mut sink, 2 * AHEAD).expect("imported");
        drop(sink);
        assert_eq!(stored, 2 * AHEAD);
        let first_true = heard.iter().position(|b| *b).expect("told");
        assert!(first_true >= QUEUED / 2 - 1, "told it lags only with half the chunks waiting: {heard:?}");
        assert!(!heard[0], "not at the first chunk");
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

    /// A sink whose work on each object is done where it is read (by `prepare`), each object
    /// stored as `store` does.
    struct Preparing<F> {
        prepare: Option<Box<dyn Prepare>>,
        store: F,
    }

    impl<F: FnMut(PreparedObject) -> Result<()>> Preparing<F> {
        fn new(prepare: impl Prepare + 'static, store: F) -> Self {
            Preparing { prepare: Some(Box::new(prepare)), store }
        }
    }

    struct Tag(std::thread::ThreadId);

    impl Prepare for Tag {
        fn prepare(&mut self, obj: ImportedObject) -> PreparedObject {
            let here = format!("{:?}", std::thread::current().id() != self.0);
            PreparedObject { obj, attrs_json: here, with_attrs: true, packed: None }
        }
    }

    impl<F: FnMut(PreparedObject) -> Result<()>> ImportSink for Preparing<F> {
        fn object(&mut self, _: ImportedObject) -> Result<()> {
            Err(Error::Config("stored unprepared".into()))
        }
        fn change(&mut self, _: DeltaChange) -> Result<()> {
            Ok(())
        }
        fn error(&mut self, _: ObjectKey, _: String) {}
        fn preparer(&mut self) -> Option<Box<dyn Prepare>> {
            self.prepare.take()
        }
        fn prepared(&mut self, p: PreparedObject) -> Result<()> {
            (self.store)(p)
        }
    }

    #[test]
    fn objects_are_prepared_on_the_reading_thread_and_stored_prepared_in_order() {
        let mut stored = Vec::new();
        let mut sink = Preparing::new(Tag(std::thread::current().id()), |p| {
            stored.push((p.obj.anchor.unwrap_or_default(), p.attrs_json));
            Ok(())
        });
        read_objects(&mut sink, 2 * AHEAD).expect("imported");
        drop(sink);
        assert_eq!(stored.len(), 2 * AHEAD);
        assert!(stored.iter().enumerate().all(|(i, (a, on_reader))| *a == i.to_string() && on_reader == "true"));
    }

    /// A sink that prepares objects as text only but stores them as any sink does: the
    /// default `prepared` reads their attributes back from the text.
    struct TextOnly(Vec<Attrs>);

    struct Texted;

    impl Prepare for Texted {
        fn prepare(&mut self, obj: ImportedObject) -> PreparedObject {
            let attrs_json = idflow_core::attrs_to_json(&obj.attrs);
            PreparedObject { obj: ImportedObject { attrs: Attrs::new(), ..obj }, attrs_json, with_attrs: false, packed: None }
        }
    }

    impl ImportSink for TextOnly {
        fn object(&mut self, obj: ImportedObject) -> Result<()> {
            self.0.push(obj.attrs);
            Ok(())
        }
        fn change(&mut self, _: DeltaChange) -> Result<()> {
            Ok(())
        }
        fn error(&mut self, _: ObjectKey, _: String) {}
        fn preparer(&mut self) -> Option<Box<dyn Prepare>> {
            Some(Box::new(Texted))
        }
    }

    #[test]
    fn attributes_left_out_where_read_are_read_back_by_a_sink_that_needs_them() {
        let mut sink = TextOnly(Vec::new());
        let mut attrs = Attrs::new();
        attrs.insert("cn".into(), vec![idflow_core::Value::from("Ada")]);
        let read = attrs.clone();
        overlapped("corp", &mut sink, move |s| {
            s.object(ImportedObject { anchor: Some("1".into()), dn: None, object_type: "person".into(), attrs: read })?;
            Ok(None)
        })
        .expect("imported");
        assert_eq!(sink.0, vec![attrs]);
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
