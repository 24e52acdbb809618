//! Caches with `actions/cache` semantics — exact key first, then each `restore-keys` prefix in
//! order (the newest match wins), keys immutable, a branch reading its own caches and the
//! default branch's but no other branch's — plus GitLab's `fallback_keys` and `key: files`,
//! and a size limit with least-recently-used eviction.
//!
//! A cache is one zstd-compressed bundle of files (`caches/{scope}/{key}/bundle.zst`) with a
//! metadata object (`…/meta.json`).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifacts::safe_relative;
use crate::blob::{BlobStore, StoreError};

/// GitLab's `cache:policy`: whether a job restores the cache before it runs, saves it after,
/// or both (`actions/cache` is always `PullPush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Restore only.
    Pull,
    /// Save only.
    Push,
    /// Restore, then save (the default).
    #[default]
    PullPush,
}

impl Policy {
    /// Parses `pull`, `push` or `pull-push`.
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "pull" => Some(Policy::Pull),
            "push" => Some(Policy::Push),
            "pull-push" => Some(Policy::PullPush),
            _ => None,
        }
    }

    /// Whether the job restores before running.
    pub fn pulls(self) -> bool {
        matches!(self, Policy::Pull | Policy::PullPush)
    }

    /// Whether the job saves after running.
    pub fn pushes(self) -> bool {
        matches!(self, Policy::Push | Policy::PullPush)
    }
}

/// What is known of a stored cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheMeta {
    /// The key.
    pub key: String,
    /// The scope (a ref, like `refs/heads/main`).
    pub scope: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Creation order (nanoseconds since the epoch).
    pub created: u128,
    /// Last restore or save (nanoseconds since the epoch).
    pub last_used: u128,
}

/// The outcome of a save.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Saved {
    /// Stored under the key.
    Stored(CacheMeta),
    /// The key exists already: caches are immutable, nothing was written.
    Exists,
    /// No file matched the paths: nothing was written.
    Nothing,
}

/// A restore hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The key that matched.
    pub key: String,
    /// Whether it is the primary key itself (`cache-hit` of actions/cache).
    pub exact: bool,
    /// The scope it came from.
    pub scope: String,
}

fn now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn encode_scope(scope: &str) -> String {
    // Refs contain `/`; keep one path segment per scope.
    hex::encode(scope.as_bytes())
}

fn base(scope: &str, key: &str) -> String {
    format!(
        "caches/{}/{}",
        encode_scope(scope),
        hex::encode(key.as_bytes())
    )
}

/// Caches in one blob store.
#[derive(Debug, Clone)]
pub struct Caches {
    store: BlobStore,
}

impl Caches {
    /// Caches kept in `store`.
    pub fn new(store: BlobStore) -> Self {
        Caches { store }
    }

    async fn meta(&self, scope: &str, key: &str) -> Result<Option<CacheMeta>, StoreError> {
        match self
            .store
            .get(&format!("{}/meta.json", base(scope, key)))
            .await?
        {
            Some(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("cache metadata of '{key}': {e}"))),
            None => Ok(None),
        }
    }

    async fn all_in(&self, scope: &str) -> Result<Vec<CacheMeta>, StoreError> {
        let mut out = Vec::new();
        for k in self
            .store
            .list(&format!("caches/{}", encode_scope(scope)))
            .await?
        {
            if k.ends_with("/meta.json") {
                if let Some(data) = self.store.get(&k).await? {
                    if let Ok(meta) = serde_json::from_slice::<CacheMeta>(&data) {
                        out.push(meta);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Saves `paths` (files or directories, relative to `workspace`) under `key` in `scope`.
    /// An existing key is left as it is.
    pub async fn save(
        &self,
        scope: &str,
        key: &str,
        workspace: &Path,
        paths: &[&str],
    ) -> Result<Saved, StoreError> {
        if self.meta(scope, key).await?.is_some() {
            return Ok(Saved::Exists);
        }
        let root = std::fs::canonicalize(workspace).map_err(|source| StoreError::Io {
            path: workspace.display().to_string(),
            source,
        })?;
        // Paths select files as artifact paths do: globs, directories, `!` exclusions.
        let mut files: Vec<(String, PathBuf)> = crate::artifacts::select(&root, &paths.join("\n"))?
            .into_iter()
            .map(|(relative, path, _)| (relative, path))
            .collect();
        if files.is_empty() {
            return Ok(Saved::Nothing);
        }
        files.sort();
        files.dedup();
        let mut bundle = Vec::new();
        for (relative, path) in &files {
            let content = std::fs::read(path).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
            bundle.extend_from_slice(&(relative.len() as u32).to_le_bytes());
            bundle.extend_from_slice(relative.as_bytes());
            bundle.extend_from_slice(&(content.len() as u64).to_le_bytes());
            bundle.extend_from_slice(&content);
        }
        let compressed =
            zstd::encode_all(bundle.as_slice(), 3).map_err(|source| StoreError::Io {
                path: "cache bundle".into(),
                source,
            })?;
        let t = now();
        let meta = CacheMeta {
            key: key.to_owned(),
            scope: scope.to_owned(),
            size: compressed.len() as u64,
            created: t,
            last_used: t,
        };
        self.store
            .put(
                &format!("{}/bundle.zst", base(scope, key)),
                Bytes::from(compressed),
            )
            .await?;
        self.write_meta(&meta).await?;
        Ok(Saved::Stored(meta))
    }

    async fn write_meta(&self, meta: &CacheMeta) -> Result<(), StoreError> {
        let json = serde_json::to_vec(meta).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(
                &format!("{}/meta.json", base(&meta.scope, &meta.key)),
                Bytes::from(json),
            )
            .await
    }

    /// Finds the cache to restore: in `scope`, then in `default_scope`, the exact `key`, then
    /// each of `restore_keys` as a prefix (newest first). GitLab's `fallback_keys` are exact
    /// keys: pass them with [`Caches::lookup_exact`].
    pub async fn lookup(
        &self,
        scope: &str,
        default_scope: &str,
        key: &str,
        restore_keys: &[&str],
    ) -> Result<Option<Hit>, StoreError> {
        let mut scopes = vec![scope];
        if default_scope != scope {
            scopes.push(default_scope);
        }
        for s in scopes {
            if self.meta(s, key).await?.is_some() {
                return Ok(Some(Hit {
                    key: key.to_owned(),
                    exact: true,
                    scope: s.to_owned(),
                }));
            }
            let all = self.all_in(s).await?;
            for prefix in restore_keys {
                if let Some(best) = all
                    .iter()
                    .filter(|m| m.key.starts_with(prefix))
                    .max_by_key(|m| m.created)
                {
                    return Ok(Some(Hit {
                        key: best.key.clone(),
                        exact: false,
                        scope: s.to_owned(),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// GitLab: the first of `keys` that exists in `scope` or `default_scope`.
    pub async fn lookup_exact(
        &self,
        scope: &str,
        default_scope: &str,
        keys: &[&str],
    ) -> Result<Option<Hit>, StoreError> {
        for (i, key) in keys.iter().enumerate() {
            for s in [scope, default_scope] {
                if self.meta(s, key).await?.is_some() {
                    return Ok(Some(Hit {
                        key: (*key).to_owned(),
                        exact: i == 0,
                        scope: s.to_owned(),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Restores a hit into `workspace` (entries may not leave it) and marks it used.
    pub async fn restore(&self, hit: &Hit, workspace: &Path) -> Result<usize, StoreError> {
        let mut meta = self
            .meta(&hit.scope, &hit.key)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("cache '{}'", hit.key)))?;
        let compressed = self
            .store
            .get(&format!("{}/bundle.zst", base(&hit.scope, &hit.key)))
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("cache '{}' has no bundle", hit.key)))?;
        let bundle = zstd::decode_all(compressed.as_ref())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        std::fs::create_dir_all(workspace).map_err(|source| StoreError::Io {
            path: workspace.display().to_string(),
            source,
        })?;
        let root = std::fs::canonicalize(workspace).map_err(|source| StoreError::Io {
            path: workspace.display().to_string(),
            source,
        })?;
        let mut pos = 0;
        let mut count = 0;
        let corrupt = || StoreError::Corrupt(format!("cache '{}' is truncated", hit.key));
        while pos < bundle.len() {
            let take = |pos: &mut usize, n: usize| -> Result<&[u8], StoreError> {
                let s = bundle.get(*pos..*pos + n).ok_or_else(corrupt)?;
                *pos += n;
                Ok(s)
            };
            let len =
                u32::from_le_bytes(take(&mut pos, 4)?.try_into().map_err(|_| corrupt())?) as usize;
            let path = String::from_utf8_lossy(take(&mut pos, len)?).into_owned();
            let size =
                u64::from_le_bytes(take(&mut pos, 8)?.try_into().map_err(|_| corrupt())?) as usize;
            let content = take(&mut pos, size)?;
            if !safe_relative(&path) {
                return Err(StoreError::UnsafePath(path));
            }
            let dest = root.join(&path);
            let parent = dest
                .parent()
                .ok_or_else(|| StoreError::UnsafePath(path.clone()))?;
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.display().to_string(),
                source,
            })?;
            let real = std::fs::canonicalize(parent).map_err(|source| StoreError::Io {
                path: parent.display().to_string(),
                source,
            })?;
            if !real.starts_with(&root) {
                return Err(StoreError::UnsafePath(path));
            }
            std::fs::write(&dest, content).map_err(|source| StoreError::Io {
                path: dest.display().to_string(),
                source,
            })?;
            count += 1;
        }
        meta.last_used = now();
        self.write_meta(&meta).await?;
        Ok(count)
    }

    /// Evicts least-recently-used caches of `scopes` until they total at most `limit` bytes;
    /// returns the evicted keys.
    pub async fn evict(&self, scopes: &[&str], limit: u64) -> Result<Vec<String>, StoreError> {
        let mut all = Vec::new();
        for s in scopes {
            all.extend(self.all_in(s).await?);
        }
        all.sort_by_key(|m| m.last_used);
        let mut total: u64 = all.iter().map(|m| m.size).sum();
        let mut evicted = Vec::new();
        for m in all {
            if total <= limit {
                break;
            }
            for k in self.store.list(&base(&m.scope, &m.key)).await? {
                self.store.delete(&k).await?;
            }
            total -= m.size;
            evicted.push(m.key);
        }
        Ok(evicted)
    }
}

/// GitLab `cache:key:files`: `prefix-` + a digest of the files' contents (missing files
/// count as empty), so the key changes when any of them does.
pub fn files_key(prefix: Option<&str>, workspace: &Path, files: &[&str]) -> String {
    let mut hash = Sha256::new();
    for f in files {
        hash.update(f.as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(workspace.join(f)).unwrap_or_default());
        hash.update([0]);
    }
    let digest = hex::encode(hash.finalize());
    match prefix {
        Some(p) => format!("{p}-{}", &digest[..40]),
        None => digest[..40].to_owned(),
    }
}
