//! Artifacts as `actions/upload-artifact` and `download-artifact` handle them: a multi-line
//! `path` of globs with `!` exclusions, `if-no-files-found`, files stored zstd-compressed by
//! content digest with a manifest, downloads verified against the digests, and path safety on
//! both sides (no `..`, no absolute paths, no symlink leaving the workspace, no archive entry
//! writing outside the target).

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use globset::{GlobBuilder, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blob::{BlobStore, StoreError};

/// What to do when no file matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IfNoFilesFound {
    /// Warn and upload nothing (the default of `actions/upload-artifact`).
    #[default]
    Warn,
    /// Fail.
    Error,
    /// Say nothing.
    Ignore,
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the artifact root, `/`-separated.
    pub path: String,
    /// Uncompressed size.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Whether the file was executable.
    pub executable: bool,
}

/// An artifact's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The artifact name.
    pub name: String,
    /// Files, sorted by path.
    pub entries: Vec<Entry>,
    /// When it expires (seconds since the epoch), if ever.
    pub expires_at: Option<u64>,
}

/// The result of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The manifest written (`None` when nothing matched and that was allowed).
    pub manifest: Option<Manifest>,
    /// A warning for the log (`if-no-files-found: warn`).
    pub warning: Option<String>,
}

fn key(run: &str, name: &str) -> String {
    format!("artifacts/{run}/{name}")
}

/// Whether `p` is a safe relative path: not absolute, no `..`, no root or prefix.
pub(crate) fn safe_relative(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The files under `root` (canonical) that `paths` select — one glob per line, `!` lines
/// excluding, a directory standing for everything under it — with their metadata. Links must
/// resolve inside `root`. Artifacts and caches select files the same way.
pub(crate) fn select(
    root: &Path,
    paths: &str,
) -> Result<Vec<(String, PathBuf, std::fs::Metadata)>, StoreError> {
    let (mut include, mut exclude) = (GlobSetBuilder::new(), GlobSetBuilder::new());

    for line in paths.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (set, pattern) = match line.strip_prefix('!') {
            Some(p) => (&mut exclude, p),
            None => (&mut include, line),
        };
        let pattern = pattern.trim_start_matches("./");
        if !safe_relative(pattern.trim_end_matches('/')) {
            return Err(StoreError::UnsafePath(pattern.to_owned()));
        }
        // A directory stands for everything under it.
        let pattern = if matches!(pattern.trim_end_matches('/'), "" | ".") {
            "**".to_owned()
        } else if root.join(pattern).is_dir() {
            format!("{}/**", pattern.trim_end_matches('/'))
        } else {
            pattern.to_owned()
        };
        let glob = GlobBuilder::new(&pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| StoreError::UnsafePath(format!("{pattern}: {e}")))?;
        set.add(glob);
    }
    let build = |b: GlobSetBuilder| b.build().map_err(|e| StoreError::UnsafePath(e.to_string()));
    let (include, exclude) = (build(include)?, build(exclude)?);
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let relative = path
                .strip_prefix(root)
                .map_err(|_| StoreError::UnsafePath(path.display().to_string()))?
                .to_string_lossy()
                .replace('\\', "/");
            let meta = std::fs::metadata(&path).map_err(io(&path))?;
            if std::fs::symlink_metadata(&path)
                .map_err(io(&path))?
                .file_type()
                .is_symlink()
            {
                // A link may point anywhere: it must resolve inside the workspace.
                let target = std::fs::canonicalize(&path).map_err(io(&path))?;
                if !target.starts_with(root) {
                    return Err(StoreError::UnsafePath(relative));
                }
            }
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() && include.is_match(&relative) && !exclude.is_match(&relative)
            {
                files.push((relative, path, meta));
            }
        }
    }
    Ok(files)
}

/// Uploads the files under `workspace` that `paths` (one glob per line; `!` excludes) select.
pub async fn upload(
    store: &BlobStore,
    run: &str,
    name: &str,
    workspace: &Path,
    paths: &str,
    if_no_files_found: IfNoFilesFound,
    expires_at: Option<u64>,
) -> Result<Upload, StoreError> {
    if !safe_relative(name) || name.contains('/') {
        return Err(StoreError::UnsafePath(name.to_owned()));
    }
    let root = std::fs::canonicalize(workspace).map_err(io(workspace))?;
    let mut files = select(&root, paths)?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        let message = format!(
            "No files were found with the provided path: {}. No artifacts will be uploaded.",
            paths.trim()
        );
        return match if_no_files_found {
            IfNoFilesFound::Error => Err(StoreError::NoFiles(paths.trim().to_owned())),
            IfNoFilesFound::Warn => Ok(Upload {
                manifest: None,
                warning: Some(message),
            }),
            IfNoFilesFound::Ignore => Ok(Upload {
                manifest: None,
                warning: None,
            }),
        };
    }
    let mut entries = Vec::with_capacity(files.len());
    for (relative, path, meta) in files {
        let content = tokio::fs::read(&path).await.map_err(io(&path))?;
        let sha256 = hex::encode(Sha256::digest(&content));
        let blob = format!("{}/blobs/{sha256}.zst", key(run, name));
        if store.size(&blob).await?.is_none() {
            let compressed = zstd::encode_all(content.as_slice(), 3).map_err(io(&path))?;
            store.put(&blob, Bytes::from(compressed)).await?;
        }
        use std::os::unix::fs::PermissionsExt;
        entries.push(Entry {
            path: relative,
            size: content.len() as u64,
            sha256,
            executable: meta.permissions().mode() & 0o111 != 0,
        });
    }
    let manifest = Manifest {
        name: name.to_owned(),
        entries,
        expires_at,
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store
        .put(
            &format!("{}/manifest.json", key(run, name)),
            Bytes::from(json),
        )
        .await?;
    Ok(Upload {
        manifest: Some(manifest),
        warning: None,
    })
}

/// The manifest of an artifact.
pub async fn manifest(store: &BlobStore, run: &str, name: &str) -> Result<Manifest, StoreError> {
    let data = store
        .get(&format!("{}/manifest.json", key(run, name)))
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("artifact '{name}' of run {run}")))?;
    serde_json::from_slice(&data)
        .map_err(|e| StoreError::Corrupt(format!("manifest of '{name}': {e}")))
}

/// Downloads an artifact into `target`, refusing entries that would write outside it and
/// verifying every file's digest.
pub async fn download(
    store: &BlobStore,
    run: &str,
    name: &str,
    target: &Path,
) -> Result<Manifest, StoreError> {
    let manifest = manifest(store, run, name).await?;
    tokio::fs::create_dir_all(target)
        .await
        .map_err(io(target))?;
    let root = std::fs::canonicalize(target).map_err(io(target))?;
    for entry in &manifest.entries {
        if !safe_relative(&entry.path) {
            return Err(StoreError::UnsafePath(entry.path.clone()));
        }
        let dest: PathBuf = root.join(&entry.path);
        let parent = dest
            .parent()
            .ok_or_else(|| StoreError::UnsafePath(entry.path.clone()))?;
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io(parent))?;
        // A directory in the target may be a symlink planted to redirect the write.
        let real_parent = std::fs::canonicalize(parent).map_err(io(parent))?;
        if !real_parent.starts_with(&root) {
            return Err(StoreError::UnsafePath(entry.path.clone()));
        }
        let blob = format!("{}/blobs/{}.zst", key(run, name), entry.sha256);
        let compressed = store
            .get(&blob)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("missing content of {}", entry.path)))?;
        let content = zstd::decode_all(compressed.as_ref())
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", entry.path)))?;
        if hex::encode(Sha256::digest(&content)) != entry.sha256 {
            return Err(StoreError::Corrupt(format!(
                "{} does not match its digest",
                entry.path
            )));
        }
        tokio::fs::write(&dest, &content).await.map_err(io(&dest))?;
        if entry.executable {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755));
        }
    }
    Ok(manifest)
}

/// One file of an artifact, by its path in the manifest (only paths the manifest lists are
/// served, so a request cannot reach outside the artifact), digest verified.
pub async fn read_file(
    store: &BlobStore,
    run: &str,
    name: &str,
    path: &str,
) -> Result<Vec<u8>, StoreError> {
    if !safe_relative(path) || !safe_relative(name) {
        return Err(StoreError::UnsafePath(format!("{name}/{path}")));
    }
    let manifest = manifest(store, run, name).await?;
    let entry = manifest
        .entries
        .iter()
        .find(|e| e.path == path)
        .ok_or_else(|| StoreError::NotFound(format!("{path} in artifact '{name}'")))?;
    let blob = format!("{}/blobs/{}.zst", key(run, name), entry.sha256);
    let compressed = store
        .get(&blob)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("missing content of {path}")))?;
    let content = zstd::decode_all(compressed.as_ref())
        .map_err(|e| StoreError::Corrupt(format!("{path}: {e}")))?;
    if hex::encode(Sha256::digest(&content)) != entry.sha256 {
        return Err(StoreError::Corrupt(format!(
            "{path} does not match its digest"
        )));
    }
    Ok(content)
}

/// The artifact names of a run, sorted.
pub async fn list(store: &BlobStore, run: &str) -> Result<Vec<String>, StoreError> {
    let prefix = format!("artifacts/{run}/");
    let mut names: Vec<String> = store
        .list(&format!("artifacts/{run}"))
        .await?
        .into_iter()
        .filter_map(|k| {
            k.strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix("/manifest.json"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Deletes an artifact (its manifest and contents).
pub async fn delete(store: &BlobStore, run: &str, name: &str) -> Result<(), StoreError> {
    for k in store.list(&key(run, name)).await? {
        store.delete(&k).await?;
    }
    Ok(())
}

/// Deletes every artifact of `runs` whose expiry is at or before `now`; returns how many.
pub async fn sweep_expired(
    store: &BlobStore,
    runs: &[&str],
    now: u64,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for run in runs {
        for name in list(store, run).await? {
            if manifest(store, run, &name)
                .await?
                .expires_at
                .is_some_and(|t| t <= now)
            {
                delete(store, run, &name).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
