//! The env-file protocol of `GITHUB_OUTPUT` and `GITHUB_ENV` (`NAME=value` lines and the
//! multi-line `NAME<<DELIMITER` form), and `GITHUB_PATH`.

use indexmap::IndexMap;

/// A malformed env file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvFileError {
    /// A line that is neither `NAME=value` nor `NAME<<DELIMITER`.
    #[error("line {line}: expected NAME=value or NAME<<DELIMITER, found '{text}'")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// A `NAME<<DELIMITER` block without its closing delimiter.
    #[error("line {line}: the delimiter '{delimiter}' is never closed")]
    Unterminated {
        /// 1-based line of the opening.
        line: usize,
        /// The delimiter.
        delimiter: String,
    },
    /// An empty name.
    #[error("line {line}: the name is empty")]
    EmptyName {
        /// 1-based line.
        line: usize,
    },
}

/// Parses a `GITHUB_OUTPUT` / `GITHUB_ENV` file; later assignments win.
pub fn parse_env_file(content: &str) -> Result<IndexMap<String, String>, EnvFileError> {
    let mut out = IndexMap::new();
    let lines: Vec<&str> = content
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let number = i + 1;
        i += 1;
        if line.trim().is_empty() {
            continue;
        }
        let heredoc = line
            .split_once("<<")
            .filter(|(name, _)| !name.contains('='));
        if let Some((name, delimiter)) = heredoc {
            if name.is_empty() {
                return Err(EnvFileError::EmptyName { line: number });
            }
            let mut value = Vec::new();
            loop {
                let Some(next) = lines.get(i) else {
                    return Err(EnvFileError::Unterminated {
                        line: number,
                        delimiter: delimiter.to_owned(),
                    });
                };
                i += 1;
                if *next == delimiter {
                    break;
                }
                value.push(*next);
            }
            out.insert(name.to_owned(), value.join("\n"));
            continue;
        }
        match line.split_once('=') {
            Some(("", _)) => return Err(EnvFileError::EmptyName { line: number }),
            Some((name, value)) => {
                out.insert(name.to_owned(), value.to_owned());
            }
            None => {
                return Err(EnvFileError::Invalid {
                    line: number,
                    text: line.to_owned(),
                })
            }
        }
    }
    Ok(out)
}

/// Parses a `GITHUB_PATH` file: one directory per non-empty line, in order.
pub fn parse_path_file(content: &str) -> Vec<String> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_multiline_values() {
        let env = parse_env_file("a=1\nJSON<<EOF\n{\n  \"k\": \"v=x\"\n}\nEOF\nb=two=2\r\na=3\n")
            .unwrap();
        assert_eq!(env["a"], "3");
        assert_eq!(env["b"], "two=2");
        assert_eq!(env["JSON"], "{\n  \"k\": \"v=x\"\n}");
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(matches!(
            parse_env_file("oops\n"),
            Err(EnvFileError::Invalid { line: 1, .. })
        ));
        assert!(matches!(
            parse_env_file("X<<END\nvalue\n"),
            Err(EnvFileError::Unterminated { line: 1, .. })
        ));
        assert!(matches!(
            parse_env_file("=1"),
            Err(EnvFileError::EmptyName { line: 1 })
        ));
    }

    #[test]
    fn path_file() {
        assert_eq!(parse_path_file("/a/bin\n\n /b \n"), ["/a/bin", "/b"]);
    }
}
