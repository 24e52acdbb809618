//! Blobs on `object_store`, chosen by URL.
//!
//! Key layout (all under the URL's path):
//! - `logs/{run}/{job}/{step}/segments/{n:010}` — live log segments, then `…/log` compacted;
//! - `artifacts/{run}/{name}/manifest.json` and `artifacts/{run}/{name}/blobs/{sha256}.zst`.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A URL this build cannot open.
    #[error(
        "unsupported store URL '{0}' (use file:///absolute/dir, memory:// or s3://bucket/prefix)"
    )]
    UnsupportedUrl(String),
    /// The backend failed.
    #[error("object store: {0}")]
    Backend(#[from] object_store::Error),
    /// Local I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A path that would leave the workspace or the target directory.
    #[error(
        "unsafe path '{0}': paths must be relative, without '..', and stay inside the directory"
    )]
    UnsafePath(String),
    /// Stored data that does not match its digest, or a malformed manifest.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Nothing matched the upload patterns and `if-no-files-found: error`.
    #[error("no files were found with the provided path: {0}")]
    NoFiles(String),
    /// No such object or record.
    #[error("not found: {0}")]
    NotFound(String),
    /// The run database failed.
    #[error("database: {0}")]
    Database(String),
}

/// Where blobs live.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Opens a store: `file:///abs/dir` (created when missing), `memory://`, or with the `s3`
    /// feature `s3://bucket/prefix` (credentials, region and endpoint from the usual `AWS_*`
    /// variables; `AWS_ENDPOINT` + `AWS_ALLOW_HTTP=true` for S3-compatible servers).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let inner: Arc<dyn ObjectStore> = if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(StoreError::UnsupportedUrl(url.to_owned()));
            }
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir)?)
        } else if url == "memory://" || url.starts_with("memory://") {
            Arc::new(InMemory::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            s3(url, rest)?
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        Ok(BlobStore { inner })
    }

    /// Wraps any `object_store` backend.
    pub fn from_store(inner: Arc<dyn ObjectStore>) -> Self {
        BlobStore { inner }
    }

    /// Writes an object.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&Path::from(key), PutPayload::from(data))
            .await?;
        Ok(())
    }

    /// Reads an object; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&Path::from(key)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a byte range of an object.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        Ok(self.inner.get_range(&Path::from(key), range).await?)
    }

    /// The size of an object, `None` when missing.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.inner.head(&Path::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Keys under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let prefix = Path::from(prefix);
        let mut keys: Vec<String> = self
            .inner
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await?;
        keys.sort();
        Ok(keys)
    }
}

#[cfg(feature = "s3")]
fn s3(_url: &str, rest: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
    })
}

#[cfg(not(feature = "s3"))]
fn s3(url: &str, _rest: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Err(StoreError::UnsupportedUrl(format!(
        "{url} (built without the `s3` feature)"
    )))
}
