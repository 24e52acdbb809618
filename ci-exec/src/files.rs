//! Job file operations on a directory of this machine: what the host executor does, and the
//! local fast path of executors whose workspace is bind-mounted (Docker). Paths are relative
//! to the workspace, or absolute inside the job's filesystem (its scratch directories);
//! relative paths may not leave the workspace.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use crate::executor::ExecError;

/// `path` resolved against `workspace`, refusing `..` that would leave it.
pub(crate) fn resolve(workspace: &Path, path: &Path) -> Result<PathBuf, ExecError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        return Err(ExecError::Files(format!(
            "{}: a path outside the workspace",
            path.display()
        )));
    }
    Ok(workspace.join(path))
}

fn io(path: &Path, e: std::io::Error) -> ExecError {
    ExecError::Files(format!("{}: {e}", path.display()))
}

/// Reads one file; `None` when it does not exist.
pub(crate) async fn read_file(workspace: &Path, path: &Path) -> Result<Option<Bytes>, ExecError> {
    let full = resolve(workspace, path)?;
    match tokio::fs::read(&full).await {
        Ok(data) => Ok(Some(Bytes::from(data))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&full, e)),
    }
}

/// Unpacks a tar archive into the directory `at` (made if missing). Entries that would land
/// outside it are refused by the unpacker.
pub(crate) async fn write_tar(
    workspace: &Path,
    at: &Path,
    archive: Bytes,
) -> Result<(), ExecError> {
    let dir = resolve(workspace, at)?;
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let mut archive = tar::Archive::new(archive.as_ref());
        archive.set_preserve_permissions(true);
        archive.set_overwrite(true);
        archive.unpack(&dir).map_err(|e| io(&dir, e))
    })
    .await
    .map_err(|e| ExecError::Files(e.to_string()))?
}

/// Packs `paths` (files or directories, relative to `from`; `.` for all of it) into a tar
/// archive. Paths that do not exist are left out; symbolic links stay links.
pub(crate) async fn read_tar(
    workspace: &Path,
    from: &Path,
    paths: &[String],
) -> Result<Bytes, ExecError> {
    let dir = resolve(workspace, from)?;
    let mut wanted = Vec::new();
    for p in paths {
        let rel = Path::new(p.trim_start_matches("./"));
        // Checked like any relative path, then kept relative to `from`.
        resolve(&dir, rel)?;
        wanted.push(rel.to_path_buf());
    }
    tokio::task::spawn_blocking(move || pack(&dir, &wanted))
        .await
        .map_err(|e| ExecError::Files(e.to_string()))?
}

/// A tar archive of files made in memory: (relative path, contents, mode) — for
/// [`JobEnvironment::write_tar`](crate::JobEnvironment::write_tar).
pub fn archive(files: &[(&str, &[u8], u32)]) -> Bytes {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        // Appending to memory cannot fail but for a name tar cannot hold, left out.
        let _ = builder.append_data(&mut header, name, *data);
    }
    builder.into_inner().map(Bytes::from).unwrap_or_default()
}

/// A tar archive of `paths` under `dir` (the synchronous part of [`read_tar`]).
pub fn pack(dir: &Path, paths: &[PathBuf]) -> Result<Bytes, ExecError> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for rel in paths {
        let full = dir.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&full) else {
            continue;
        };
        let name = if rel.as_os_str().is_empty() || rel == Path::new(".") {
            PathBuf::from(".")
        } else {
            rel.clone()
        };
        let added = if meta.is_dir() {
            builder.append_dir_all(&name, &full)
        } else {
            builder.append_path_with_name(&full, &name)
        };
        added.map_err(|e| io(&full, e))?;
    }
    builder
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| io(dir, e))
}
