//! `hashFiles(patterns…)`: one SHA-256 over the files matching the patterns, as the runner
//! computes it: each matching file (sorted by path) is hashed, the file digests are hashed
//! together, and the result is lower-case hex; no match gives the empty string.
//!
//! The files come through [`FileSystem`], so the algorithm stays free of I/O; [`Directory`]
//! is the implementation over a real workspace directory.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sha2::{Digest, Sha256};

/// The files of a workspace.
pub trait FileSystem {
    /// Every regular file, as `/`-separated paths relative to the workspace.
    fn files(&self) -> Result<Vec<String>, String>;
    /// The contents of one file listed by [`FileSystem::files`].
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;
}

/// Computes `hashFiles` over `fs`. Patterns are globs relative to the workspace (`**` spans
/// directories); a leading `!` excludes what earlier patterns matched.
pub fn hash_files(fs: &dyn FileSystem, patterns: &[String]) -> Result<String, String> {
    let (include, exclude) = compile(patterns)?;
    let mut files: Vec<String> = fs
        .files()?
        .into_iter()
        .filter(|f| include.is_match(f) && !exclude.is_match(f))
        .collect();
    if files.is_empty() {
        return Ok(String::new());
    }
    files.sort();
    let mut all = Sha256::new();
    for file in &files {
        let contents = fs.read(file)?;
        all.update(Sha256::digest(&contents));
    }
    Ok(hex::encode(all.finalize()))
}

fn compile(patterns: &[String]) -> Result<(GlobSet, GlobSet), String> {
    let mut include = GlobSetBuilder::new();
    let mut exclude = GlobSetBuilder::new();
    for pattern in patterns
        .iter()
        .flat_map(|p| p.lines())
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (target, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (&mut exclude, rest),
            None => (&mut include, pattern),
        };
        let pattern = pattern.trim_start_matches("./");
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("hashFiles: invalid pattern '{pattern}': {e}"))?;
        target.add(glob);
    }
    let build = |b: GlobSetBuilder| b.build().map_err(|e| format!("hashFiles: {e}"));
    Ok((build(include)?, build(exclude)?))
}

/// A workspace directory on disk. Symbolic links are not followed out of it.
#[derive(Debug, Clone)]
pub struct Directory {
    root: PathBuf,
}

impl Directory {
    /// The workspace at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Directory { root: root.into() }
    }
}

impl FileSystem for Directory {
    fn files(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut pending = vec![PathBuf::new()];
        while let Some(relative) = pending.pop() {
            let dir = self.root.join(&relative);
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| format!("hashFiles: {}: {e}", dir.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("hashFiles: {}: {e}", dir.display()))?;
                let kind = entry.file_type().map_err(|e| format!("hashFiles: {e}"))?;
                let path = relative.join(entry.file_name());
                if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file() {
                    out.push(slash_path(&path));
                }
            }
        }
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.root.join(path)).map_err(|e| format!("hashFiles: {path}: {e}"))
    }
}

fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Memory(Vec<(&'static str, &'static str)>);

    impl FileSystem for Memory {
        fn files(&self) -> Result<Vec<String>, String> {
            Ok(self.0.iter().rev().map(|(p, _)| p.to_string()).collect())
        }
        fn read(&self, path: &str) -> Result<Vec<u8>, String> {
            self.0
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, c)| c.as_bytes().to_vec())
                .ok_or_else(|| "missing".to_owned())
        }
    }

    #[test]
    fn hashes_the_sorted_file_digests() {
        let fs = Memory(vec![
            ("a/package-lock.json", "1"),
            ("b/package-lock.json", "2"),
            ("vendor/package-lock.json", "3"),
        ]);
        let got = hash_files(&fs, &["**/package-lock.json".into(), "!vendor/**".into()]).unwrap();
        let mut want = Sha256::new();
        want.update(Sha256::digest(b"1"));
        want.update(Sha256::digest(b"2"));
        assert_eq!(got, hex::encode(want.finalize()));
    }

    #[test]
    fn no_match_is_empty() {
        let fs = Memory(vec![("a.txt", "x")]);
        assert_eq!(hash_files(&fs, &["*.lock".into()]).unwrap(), "");
    }

    #[test]
    fn a_real_directory_is_walked() {
        let dir = std::env::temp_dir().join(format!("gantry-hash-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/x.lock"), "content").unwrap();
        let got = hash_files(&Directory::new(&dir), &["**/*.lock".into()]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let mut want = Sha256::new();
        want.update(Sha256::digest(b"content"));
        assert_eq!(got, hex::encode(want.finalize()));
    }
}
