//! Step logs: written live as small append segments (a reader can follow a running step; a
//! crash loses at most the unflushed tail), compacted into one object when the step ends, and
//! read by byte range or line range.

use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::blob::{BlobStore, StoreError};

/// Segments are flushed once this much is buffered.
pub const SEGMENT_BYTES: usize = 64 * 1024;

fn base(run: &str, job: &str, step: &str) -> String {
    format!("logs/{run}/{job}/{step}")
}

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

/// Reads a step's log, finished or still being written.
#[derive(Debug, Clone)]
pub struct LogReader {
    store: BlobStore,
    base: String,
}

impl LogReader {
    /// A reader for a step's log.
    pub fn new(store: BlobStore, run: &str, job: &str, step: &str) -> Self {
        LogReader {
            store,
            base: base(run, job, step),
        }
    }

    /// Whether the log was compacted (the step ended).
    pub async fn is_finished(&self) -> Result<bool, StoreError> {
        Ok(self
            .store
            .size(&format!("{}.log", self.base))
            .await?
            .is_some())
    }

    /// Everything written so far.
    pub async fn read_all(&self) -> Result<Bytes, StoreError> {
        if let Some(all) = self.store.get(&format!("{}.log", self.base)).await? {
            return Ok(all);
        }
        let mut all = BytesMut::new();
        for key in self.store.list(&format!("{}/segments", self.base)).await? {
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
