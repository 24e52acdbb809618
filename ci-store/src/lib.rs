//! `ci-store` keeps what CI runs leave behind.
//!
//! What it is for: a [`BlobStore`] over `object_store` chosen by URL (`file:///dir` by
//! default, `memory://`, `s3://bucket/prefix` with the `s3` feature), step logs written as live append segments and compacted when the
//! step ends ([`logs`]), and artifacts stored compressed by digest with a manifest
//! ([`artifacts`]), and caches.
//!
//! [`caches`] follow `actions/cache` (key, `restore-keys` prefixes, branch scoping) and
//! GitLab (`fallback_keys`, `key: files`), with LRU eviction.
//!
//! [`runs`] keeps run history behind the `RunStore` trait: SQLite (default, WAL) and Postgres
//! (feature `postgres`), with migrations for both; [`queue`] is the durable job queue in the same
//! database (leases, heartbeats, retries of lost work, capacity gates, fairness).

//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ci_store::StoreError> {
//! let store = ci_store::BlobStore::open("memory://")?;
//! let mut log = ci_store::logs::LogWriter::new(store.clone(), "run1", "build", "1");
//! log.append(b"compiling\nlinking\n").await?;
//! log.finish().await?;
//! let reader = ci_store::logs::LogReader::new(store, "run1", "build", "1");
//! assert_eq!(reader.read_lines(1..2).await?, ["linking"]);
//! # Ok(())
//! # }
//! ```

pub mod artifacts;
mod blob;
pub mod caches;
pub mod conformance;
pub mod junit;
pub mod logs;
pub mod queue;
pub mod runs;

pub use blob::{BlobStore, StoreError};
