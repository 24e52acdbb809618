//! The project as a run checks it out: cloned once per run, read once (its tree, and the
//! bytes of its small files), then synced into each job's workspace. Git's object store is
//! linked rather than copied (objects and packs are never changed in place, and history is
//! the bulk of a project). A job's workspace is usually the one an earlier job of the run
//! left: what is the same there is only compared, a changed file is written over in its own
//! inode, and what the snapshot lacks is removed — each file system object made or removed
//! is what a checkout costs most on a busy disk.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Files up to this size are kept in memory.
const CACHED_FILE: u64 = 256 * 1024;
/// At most this much file content is kept in memory per run.
const CACHE_BUDGET: u64 = 32 * 1024 * 1024;

/// A checked-out tree, read once.
#[derive(Debug)]
pub(crate) struct Snapshot {
    tree: Vec<(OsString, Node)>,
}

#[derive(Debug)]
enum Node {
    Dir(Vec<(OsString, Node)>),
    /// Linked into copies (git's object store).
    Linked {
        path: PathBuf,
        dev: u64,
        ino: u64,
    },
    File {
        path: PathBuf,
        mode: u32,
        /// The bytes, for files small enough to keep.
        data: Option<Vec<u8>>,
    },
    Symlink(PathBuf),
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

impl Snapshot {
    /// Reads the tree at `root`.
    pub fn read(root: &Path) -> Result<Snapshot, String> {
        let mut budget = CACHE_BUDGET;
        Ok(Snapshot {
            tree: read_dir(root, false, &mut budget)?,
        })
    }

    /// Makes `to` hold the snapshot's files (with `prune`, and nothing else).
    pub fn sync_into(&self, to: &Path, prune: bool) -> Result<(), String> {
        sync_dir(&self.tree, to, prune)
    }
}

fn read_dir(dir: &Path, link: bool, budget: &mut u64) -> Result<Vec<(OsString, Node)>, String> {
    let mut nodes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
        let node = if meta.is_dir() {
            let objects = entry.file_name() == "objects" && dir.ends_with(".git");
            Node::Dir(read_dir(&path, link || objects, budget)?)
        } else if meta.is_symlink() {
            Node::Symlink(std::fs::read_link(&path).map_err(|e| io(&path, e))?)
        } else if link {
            Node::Linked {
                path,
                dev: meta.dev(),
                ino: meta.ino(),
            }
        } else {
            let data = if meta.len() <= CACHED_FILE && meta.len() <= *budget {
                *budget -= meta.len();
                Some(std::fs::read(&path).map_err(|e| io(&path, e))?)
            } else {
                None
            };
            Node::File {
                path,
                mode: meta.mode() & 0o7777,
                data,
            }
        };
        nodes.push((entry.file_name(), node));
    }
    Ok(nodes)
}

fn sync_dir(nodes: &[(OsString, Node)], to: &Path, prune: bool) -> Result<(), String> {
    match std::fs::symlink_metadata(to) {
        Ok(m) if m.is_dir() => {}
        Ok(m) => {
            remove_any(to, &m).map_err(|e| io(to, e))?;
            std::fs::create_dir(to).map_err(|e| io(to, e))?;
        }
        Err(_) => std::fs::create_dir_all(to).map_err(|e| io(to, e))?,
    }
    for (name, node) in nodes {
        let dst = to.join(name);
        let there = std::fs::symlink_metadata(&dst).ok();
        match node {
            Node::Dir(children) => {
                sync_dir(children, &dst, prune)?;
                continue;
            }
            Node::Linked { dev, ino, .. } => {
                if there
                    .as_ref()
                    .is_some_and(|m| m.dev() == *dev && m.ino() == *ino)
                {
                    continue;
                }
            }
            Node::File { path, mode, data } => {
                let rewritable = there
                    .as_ref()
                    .is_some_and(|m| m.is_file() && m.nlink() == 1);
                // A file with other names is never written through (it would change them).
                if rewritable && rewrite(&dst, path, data.as_deref(), *mode).is_ok() {
                    continue;
                }
            }
            Node::Symlink(_) => {}
        }
        if let Some(m) = &there {
            remove_any(&dst, m).map_err(|e| io(&dst, e))?;
        }
        create(node, &dst)?;
    }
    if prune {
        let keep: HashSet<&OsStr> = nodes.iter().map(|(n, _)| n.as_os_str()).collect();
        for entry in std::fs::read_dir(to).map_err(|e| io(to, e))? {
            let entry = entry.map_err(|e| io(to, e))?;
            if !keep.contains(entry.file_name().as_os_str()) {
                let path = entry.path();
                let m = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
                remove_any(&path, &m).map_err(|e| io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// Makes `dst` (which does not exist) as `node`.
fn create(node: &Node, dst: &Path) -> Result<(), String> {
    match node {
        Node::Dir(children) => sync_dir(children, dst, false),
        Node::Linked { path, .. } => std::fs::hard_link(path, dst)
            .or_else(|_| std::fs::copy(path, dst).map(|_| ()))
            .map_err(|e| io(dst, e)),
        Node::File { path, mode, data } => match data {
            Some(data) => std::fs::write(dst, data)
                .and_then(|()| {
                    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(*mode))
                })
                .map_err(|e| io(dst, e)),
            None => std::fs::copy(path, dst)
                .map(|_| ())
                .map_err(|e| io(path, e)),
        },
        Node::Symlink(target) => std::os::unix::fs::symlink(target, dst).map_err(|e| io(dst, e)),
    }
}

/// Makes the existing file `dst` (same inode) hold the snapshot file's bytes and mode: an
/// unchanged file is only compared; a changed one is written over and then cut to length
/// (truncating first would make ext4 flush it on close).
fn rewrite(dst: &Path, src: &Path, data: Option<&[u8]>, mode: u32) -> std::io::Result<()> {
    let mut output = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dst)?;
    let old_len = output.metadata()?.len();
    match data {
        Some(data) => {
            let same = old_len == data.len() as u64 && {
                let mut old = Vec::with_capacity(data.len());
                output.read_to_end(&mut old)?;
                old == data
            };
            if !same {
                output.rewind()?;
                output.write_all(data)?;
                output.set_len(data.len() as u64)?;
            }
        }
        None => {
            let mut input = std::fs::File::open(src)?;
            let written = std::io::copy(&mut input, &mut output)?;
            output.set_len(written)?;
        }
    }
    if output.metadata()?.permissions().mode() & 0o7777 != mode {
        output.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn remove_any(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for entry in walk(dir) {
            let rel = entry
                .strip_prefix(dir)
                .expect("inside")
                .display()
                .to_string();
            let meta = std::fs::symlink_metadata(&entry).expect("exists");
            let what = if meta.is_dir() {
                "dir".to_owned()
            } else if meta.is_symlink() {
                format!("-> {}", std::fs::read_link(&entry).expect("link").display())
            } else {
                format!(
                    "{:o} {}",
                    meta.mode() & 0o7777,
                    std::fs::read_to_string(&entry).expect("text")
                )
            };
            out.push((rel, what));
        }
        out.sort();
        out
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("readable").flatten() {
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }

    #[test]
    fn a_used_copy_becomes_the_snapshot_again() {
        let src = tempfile::tempdir().expect("temp dir");
        let s = src.path();
        std::fs::create_dir_all(s.join("sub")).expect("mkdir");
        std::fs::create_dir_all(s.join(".git/objects/pack")).expect("mkdir");
        std::fs::write(s.join("a.txt"), "alpha\n").expect("write");
        std::fs::write(s.join("sub/b.sh"), "echo b\n").expect("write");
        std::fs::set_permissions(s.join("sub/b.sh"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::write(s.join(".git/objects/pack/p.pack"), "pack").expect("write");
        std::os::unix::fs::symlink("a.txt", s.join("link")).expect("symlink");
        let big = "x".repeat(CACHED_FILE as usize + 10);
        std::fs::write(s.join("big.txt"), &big).expect("write");
        let snapshot = Snapshot::read(s).expect("read");

        let dst = tempfile::tempdir().expect("temp dir");
        let d = dst.path().join("ws");
        snapshot.sync_into(&d, false).expect("first copy");
        assert_eq!(tree(&d), tree(s));
        let pack = |p: &Path| {
            std::fs::metadata(p.join(".git/objects/pack/p.pack"))
                .expect("pack")
                .ino()
        };
        assert_eq!(pack(&d), pack(s), "objects are linked");

        // A job changes everything it can.
        let a_inode = std::fs::metadata(d.join("a.txt")).expect("a").ino();
        std::fs::write(d.join("a.txt"), "changed, and longer than before\n").expect("write");
        std::fs::write(d.join("big.txt"), "small now").expect("write");
        std::fs::set_permissions(d.join("sub/b.sh"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::fs::remove_file(d.join("link")).expect("rm");
        std::fs::write(d.join("link"), "a file now").expect("write");
        std::fs::remove_dir_all(d.join("sub")).expect("rm");
        std::fs::write(d.join("sub"), "a file where a directory was").expect("write");
        std::fs::create_dir_all(d.join("build/deep")).expect("mkdir");
        std::fs::write(d.join("build/deep/out"), "made").expect("write");
        // A file hard linked elsewhere is replaced, never written through.
        let outside = dst.path().join("outside");
        std::fs::write(&outside, "keep me").expect("write");
        std::fs::remove_file(d.join(".git/objects/pack/p.pack")).expect("rm");
        std::fs::hard_link(&outside, d.join(".git/objects/pack/p.pack")).expect("link");

        snapshot.sync_into(&d, true).expect("synced");
        assert_eq!(tree(&d), tree(s));
        assert_eq!(pack(&d), pack(s), "objects are linked again");
        assert_eq!(
            std::fs::metadata(d.join("a.txt")).expect("a").ino(),
            a_inode,
            "a changed file keeps its inode"
        );
        assert_eq!(
            std::fs::read_to_string(&outside).expect("outside"),
            "keep me"
        );
        assert_eq!(
            std::fs::read_to_string(s.join("a.txt")).expect("src"),
            "alpha\n"
        );
    }
}
