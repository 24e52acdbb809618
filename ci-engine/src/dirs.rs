//! Job directories reused from job to job: emptied, also when a job made parts of them
//! read-only.

use std::path::Path;

/// Removes everything inside `dir` (not following symbolic links); whether it is empty now.
/// Directories a job made read-only are made writable again (as their owner) first.
pub(crate) fn empty_dir(dir: &Path) -> bool {
    let remove_all = || {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        let mut ok = true;
        for entry in entries.flatten() {
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            ok &= removed.is_ok();
        }
        ok
    };
    remove_all() || {
        make_writable(dir);
        remove_all()
    }
}

/// Gives the owner write and search permission on `dir` and every directory below it.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            make_writable(&entry.path());
        }
    }
}

/// Empties `dir`: at once when it is empty already, else through the blocking pool (a job
/// may have left a large tree); whether it is empty now.
pub(crate) async fn clear_dir(dir: &Path) -> bool {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
        return true;
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || empty_dir(&dir))
        .await
        .unwrap_or(false)
}
