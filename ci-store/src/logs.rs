//! Step logs: written live as small append segments (a reader can follow a running step; a
//! crash loses at most the unflushed tail), compacted into one object when the step ends, and
//! read by byte range or line range. Logs that end small and were never flushed can instead be
//! written several to an object ([`LogPack`]): a run of many short jobs then makes a handful
//! of objects rather than one per job; readers find them either way.

use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::blob::{BlobStore, StoreError};

/// Segments are flushed once this much is buffered.
pub const SEGMENT_BYTES: usize = 64 * 1024;

fn base(run: &str, job: &str, step: &str) -> String {
    format!("logs/{run}/{job}/{step}")
}

/// Where a run's packs are (`_packs` is never a job's log directory: the engine keeps job
/// logs under `jobs/`).
fn packs_prefix(run: &str) -> String {
    format!("logs/{run}/_packs")
}

/// The first line of a pack; the second is the header's length, then the header (JSON
/// `[[base, offset, length], …]`), then the logs one after the other.
const PACK_MAGIC: &str = "gantry-log-pack 1";

/// A pack is written once it holds this much.
pub const PACK_BYTES: usize = 1 << 20;

/// Writes one step's log.
#[derive(Debug)]
pub struct LogWriter {
    store: BlobStore,
    base: String,
    next: u64,
    buffer: BytesMut,
    /// Live logs: a segment is written once this long has passed since the last one.
    interval: Option<Duration>,
    last_flush: std::time::Instant,
}

impl LogWriter {
    /// A writer for a step's log.
    pub fn new(store: BlobStore, run: &str, job: &str, step: &str) -> Self {
        LogWriter {
            store,
            base: base(run, job, step),
            next: 0,
            buffer: BytesMut::new(),
            interval: None,
            last_flush: std::time::Instant::now(),
        }
    }

    /// Also writes a segment when output arrives `interval` after the last one, so that
    /// readers following the log (a live view) see it within that time.
    pub fn live(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Appends bytes; a segment is written once enough is buffered (or, when
    /// [`live`](Self::live), once the interval has passed).
    pub async fn append(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= SEGMENT_BYTES
            || self
                .interval
                .is_some_and(|i| self.last_flush.elapsed() >= i)
        {
            self.flush().await?;
        }
        Ok(())
    }

    /// Whether this writer was made [`live`](Self::live).
    pub fn is_live(&self) -> bool {
        self.interval.is_some()
    }

    /// Writes what is buffered as a segment.
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.last_flush = std::time::Instant::now();
        let data = self.buffer.split().freeze();
        let key = format!("{}/segments/{:010}", self.base, self.next);
        self.store.put(&key, data).await?;
        self.next += 1;
        Ok(())
    }

    /// Ends the log: flushes, writes the compacted object, removes the segments.
    pub async fn finish(mut self) -> Result<(), StoreError> {
        if self.next == 0 {
            // Nothing was flushed yet: the buffer is the whole log.
            let data = self.buffer.split().freeze();
            return self.store.put(&format!("{}.log", self.base), data).await;
        }
        self.flush().await?;
        let segments = self.store.list(&format!("{}/segments", self.base)).await?;
        let mut all = BytesMut::new();
        for key in &segments {
            if let Some(data) = self.store.get(key).await? {
                all.extend_from_slice(&data);
            }
        }
        self.store
            .put(&format!("{}.log", self.base), all.freeze())
            .await?;
        for key in segments {
            self.store.delete(&key).await?;
        }
        Ok(())
    }
}

impl LogWriter {
    /// Whether the whole log is still in memory (nothing was flushed): such a log can go into
    /// a [`LogPack`].
    pub fn is_unflushed(&self) -> bool {
        self.next == 0
    }
}

/// Finished logs of one run written together as one object.
#[derive(Debug)]
pub struct LogPack {
    store: BlobStore,
    run: String,
    entries: Vec<(String, u64, u64)>,
    data: BytesMut,
}

impl LogPack {
    /// An empty pack for the run's logs.
    pub fn new(store: BlobStore, run: &str) -> Self {
        LogPack {
            store,
            run: run.to_owned(),
            entries: Vec::new(),
            data: BytesMut::new(),
        }
    }

    /// Whether nothing was added since the last write.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether it holds enough to be written ([`PACK_BYTES`]).
    pub fn is_full(&self) -> bool {
        self.data.len() >= PACK_BYTES
    }

    /// Takes a finished log that was never flushed; any other (segments already written, or
    /// another run's) is given back, to be [finished](LogWriter::finish) on its own.
    pub fn add(&mut self, mut writer: LogWriter) -> Result<(), LogWriter> {
        let prefix = format!("logs/{}/", self.run);
        if !writer.is_unflushed() || !writer.base.starts_with(&prefix) {
            return Err(writer);
        }
        let data = writer.buffer.split();
        self.entries.push((
            std::mem::take(&mut writer.base),
            self.data.len() as u64,
            data.len() as u64,
        ));
        self.data.extend_from_slice(&data);
        Ok(())
    }

    /// Writes what was added as one object and starts afresh.
    pub async fn write(&mut self) -> Result<(), StoreError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let header = serde_json::to_vec(&self.entries).expect("strings and numbers serialize");
        let mut out = BytesMut::with_capacity(header.len() + self.data.len() + 32);
        out.extend_from_slice(format!("{PACK_MAGIC}\n{}\n", header.len()).as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.data);
        self.entries.clear();
        self.data.clear();
        let key = format!("{}/{}", packs_prefix(&self.run), unique_name());
        self.store.put(&key, out.freeze()).await
    }
}

/// A name no other pack of the run has: time, process, sequence.
fn unique_name() -> String {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:024}-{}-{n:08}", std::process::id())
}

/// The log `base` in a pack's bytes, if the pack holds it. A pack that does not parse holds
/// nothing.
fn find_in_pack(pack: &Bytes, base: &str) -> Option<Bytes> {
    let rest = pack.strip_prefix(format!("{PACK_MAGIC}\n").as_bytes())?;
    let newline = rest.iter().position(|&b| b == b'\n')?;
    let header_len: usize = std::str::from_utf8(&rest[..newline]).ok()?.parse().ok()?;
    let header_start = pack.len() - rest.len() + newline + 1;
    let data_start = header_start.checked_add(header_len)?;
    let entries: Vec<(String, u64, u64)> =
        serde_json::from_slice(pack.get(header_start..data_start)?).ok()?;
    let (_, offset, len) = entries.into_iter().find(|(b, _, _)| b == base)?;
    let start = data_start.checked_add(usize::try_from(offset).ok()?)?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= pack.len()).then(|| pack.slice(start..end))
}

/// Reads a step's log, finished or still being written.
#[derive(Debug, Clone)]
pub struct LogReader {
    store: BlobStore,
    base: String,
    packs: String,
}

impl LogReader {
    /// A reader for a step's log.
    pub fn new(store: BlobStore, run: &str, job: &str, step: &str) -> Self {
        LogReader {
            store,
            base: base(run, job, step),
            packs: packs_prefix(run),
        }
    }

    /// Whether the log was compacted or packed (the step ended).
    pub async fn is_finished(&self) -> Result<bool, StoreError> {
        if self
            .store
            .size(&format!("{}.log", self.base))
            .await?
            .is_some()
        {
            return Ok(true);
        }
        if !self
            .store
            .list(&format!("{}/segments", self.base))
            .await?
            .is_empty()
        {
            // Still being written.
            return Ok(false);
        }
        Ok(self.packed().await?.is_some())
    }

    /// The log from the run's packs, if one holds it.
    async fn packed(&self) -> Result<Option<Bytes>, StoreError> {
        for key in self.store.list(&self.packs).await? {
            if let Some(pack) = self.store.get(&key).await? {
                if let Some(log) = find_in_pack(&pack, &self.base) {
                    return Ok(Some(log));
                }
            }
        }
        Ok(None)
    }

    /// Everything written so far.
    pub async fn read_all(&self) -> Result<Bytes, StoreError> {
        if let Some(all) = self.store.get(&format!("{}.log", self.base)).await? {
            return Ok(all);
        }
        let segments = self.store.list(&format!("{}/segments", self.base)).await?;
        if segments.is_empty() {
            if let Some(log) = self.packed().await? {
                return Ok(log);
            }
        }
        let mut all = BytesMut::new();
        for key in segments {
            if let Some(data) = self.store.get(&key).await? {
                all.extend_from_slice(&data);
            }
        }
        Ok(all.freeze())
    }

    /// A byte range (clamped to what exists).
    pub async fn read_bytes(&self, range: Range<u64>) -> Result<Bytes, StoreError> {
        let key = format!("{}.log", self.base);
        if let Some(size) = self.store.size(&key).await? {
            let end = range.end.min(size);
            let start = range.start.min(end);
            return self.store.get_range(&key, start..end).await;
        }
        let all = self.read_all().await?;
        let end = (range.end as usize).min(all.len());
        let start = (range.start as usize).min(end);
        Ok(all.slice(start..end))
    }

    /// Lines `range` (0-based, end exclusive), without their newlines.
    pub async fn read_lines(&self, range: Range<usize>) -> Result<Vec<String>, StoreError> {
        let all = self.read_all().await?;
        Ok(String::from_utf8_lossy(&all)
            .lines()
            .skip(range.start)
            .take(range.end.saturating_sub(range.start))
            .map(str::to_owned)
            .collect())
    }

    /// Follows the log from byte `offset`: returns what is new and whether the log is
    /// finished; poll again from `offset + new.len()` until it is.
    pub async fn poll(&self, offset: u64) -> Result<(Bytes, bool), StoreError> {
        // Finished first: a log compacted or packed between the two reads is read whole.
        let finished = self.is_finished().await?;
        let all = self.read_all().await?;
        let start = (offset as usize).min(all.len());
        Ok((all.slice(start..), finished))
    }

    /// Follows the log until the step ends, calling `on_data` with each new piece; checks
    /// every `interval`.
    pub async fn follow(
        &self,
        interval: Duration,
        mut on_data: impl FnMut(Bytes),
    ) -> Result<(), StoreError> {
        let mut offset = 0u64;
        loop {
            let (new, finished) = self.poll(offset).await?;
            if !new.is_empty() {
                offset += new.len() as u64;
                on_data(new);
            }
            if finished {
                return Ok(());
            }
            tokio::time::sleep(interval).await;
        }
    }
}
