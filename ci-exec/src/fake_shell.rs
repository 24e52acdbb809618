//! What the fake executor does with a step nobody scripted: a small shell over the job's
//! in-memory files, enough for test harnesses and the conformance suite — `echo`, `printf`,
//! `exit`, `sleep`, `pwd`, `cat`, `true`, `false`, `mkdir`, `set`, `yes | head -c N`,
//! `$VAR`/`${VAR}`/`${VAR:-default}` from the step's environment only, quotes, `;` and new
//! lines, and the redirections `>`, `>>` and `>&2`. Anything else exits 127, as a shell
//! does for an unknown command.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;

use crate::spec::Stream;

/// Files of a fake job, by absolute path.
pub(crate) type Files = HashMap<PathBuf, Bytes>;

/// What a command asks the runner to do.
pub(crate) enum Effect {
    /// Write output.
    Output(Stream, Vec<u8>),
    /// Wait.
    Sleep(Duration),
}

/// The result of interpreting a script: what to do, in order, and the exit code.
pub(crate) struct Interpreted {
    pub effects: Vec<Effect>,
    pub exit: i32,
}

/// Splits on `;` and new lines outside quotes.
fn commands(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in script.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, ';' | '\n') => out.push(std::mem::take(&mut cur)),
            (None, c) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty() && !c.starts_with('#'))
        .collect()
}

/// Words of a command with quotes removed and variables expanded (none inside `'…'`).
fn words(command: &str, env: &IndexMap<String, String>) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote = None;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '$') => {
                in_word = true;
                let mut name = String::new();
                let mut default = None;
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let mut inner = String::new();
                    for c in chars.by_ref() {
                        if c == '}' {
                            break;
                        }
                        inner.push(c);
                    }
                    match inner.split_once(":-") {
                        Some((n, d)) => {
                            name = n.to_owned();
                            default = Some(d.to_owned());
                        }
                        None => name = inner,
                    }
                } else {
                    while let Some(&c) = chars.peek() {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            name.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                match env.get(&name).filter(|v| !v.is_empty()) {
                    Some(v) => cur.push_str(v),
                    None => cur.push_str(default.as_deref().unwrap_or_default()),
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// `printf FORMAT ARGS…` with `%s` and the escapes `\n`, `\t`, `\\`.
fn printf(args: &[String]) -> Vec<u8> {
    let Some((format, args)) = args.split_first() else {
        return Vec::new();
    };
    let mut args = args.iter();
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('s')) => {
                chars.next();
                out.push_str(args.next().map_or("", String::as_str));
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push('\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                out.push('\t');
            }
            ('\\', Some('\\')) => {
                chars.next();
                out.push('\\');
            }
            _ => out.push(c),
        }
    }
    out.into_bytes()
}

/// Interprets `script` with `env` in `cwd` over `files`.
pub(crate) fn interpret(
    script: &str,
    env: &IndexMap<String, String>,
    cwd: &Path,
    files: &mut Files,
) -> Interpreted {
    let mut effects = Vec::new();
    let mut exit = 0;
    for command in commands(script) {
        let mut argv = words(&command, env);
        // Redirections.
        let mut target: Option<(PathBuf, bool)> = None;
        let mut stream = Stream::Stdout;
        let mut i = 0;
        while i < argv.len() {
            match argv[i].as_str() {
                ">&2" | "1>&2" => {
                    stream = Stream::Stderr;
                    argv.remove(i);
                }
                ">" | ">>" if i + 1 < argv.len() => {
                    let append = argv[i] == ">>";
                    target = Some((cwd.join(&argv[i + 1]), append));
                    argv.drain(i..i + 2);
                }
                _ => i += 1,
            }
        }
        // `yes | head -c N`: the one pipeline there is.
        let (mut output, code) = if let Some(bar) = argv.iter().position(|w| w == "|") {
            let (left, right) = argv.split_at(bar);
            match (left, &right[1..]) {
                ([yes], [head, c, n]) if yes == "yes" && head == "head" && c == "-c" => {
                    let n: usize = n.parse().unwrap_or(0);
                    (b"y\n".iter().copied().cycle().take(n).collect(), 0)
                }
                _ => (b"fake: only `yes | head -c N` pipes\n".to_vec(), 127),
            }
        } else {
            match argv.first().map(String::as_str) {
                None => (Vec::new(), 0),
                Some("echo") => {
                    let (newline, args) = match argv.get(1).map(String::as_str) {
                        Some("-n") => (false, &argv[2..]),
                        _ => (true, &argv[1..]),
                    };
                    let mut out = args.join(" ").into_bytes();
                    if newline {
                        out.push(b'\n');
                    }
                    (out, 0)
                }
                Some("printf") => (printf(&argv[1..]), 0),
                Some("exit") => {
                    exit = argv.get(1).and_then(|c| c.parse().ok()).unwrap_or(exit);
                    return Interpreted { effects, exit };
                }
                Some("sleep") => {
                    let secs: f64 = argv.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
                    effects.push(Effect::Sleep(Duration::from_secs_f64(secs.max(0.0))));
                    (Vec::new(), 0)
                }
                Some("pwd") => (format!("{}\n", cwd.display()).into_bytes(), 0),
                Some("cat") => {
                    let mut out = Vec::new();
                    let mut code = 0;
                    for f in &argv[1..] {
                        match files.get(&cwd.join(f)) {
                            Some(data) => out.extend_from_slice(data),
                            None => {
                                effects.push(Effect::Output(
                                    Stream::Stderr,
                                    format!("cat: {f}: No such file or directory\n").into_bytes(),
                                ));
                                code = 1;
                            }
                        }
                    }
                    (out, code)
                }
                Some("true" | "mkdir" | "set" | ":") => (Vec::new(), 0),
                Some("false") => (Vec::new(), 1),
                Some(other) => {
                    effects.push(Effect::Output(
                        Stream::Stderr,
                        format!("fake: {other}: command not found\n").into_bytes(),
                    ));
                    (Vec::new(), 127)
                }
            }
        };
        exit = code;
        match target {
            Some((path, append)) => {
                let mut data = if append {
                    files.get(&path).map(|b| b.to_vec()).unwrap_or_default()
                } else {
                    Vec::new()
                };
                data.append(&mut output);
                files.insert(path, Bytes::from(data));
            }
            None if !output.is_empty() => effects.push(Effect::Output(stream, output)),
            None => {}
        }
    }
    Interpreted { effects, exit }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str, env: &[(&str, &str)]) -> (String, String, i32, Files) {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut files = Files::new();
        let r = interpret(script, &env, Path::new("/ws"), &mut files);
        let (mut out, mut err) = (String::new(), String::new());
        for e in r.effects {
            if let Effect::Output(s, d) = e {
                match s {
                    Stream::Stdout => out.push_str(&String::from_utf8_lossy(&d)),
                    Stream::Stderr => err.push_str(&String::from_utf8_lossy(&d)),
                }
            }
        }
        (out, err, r.exit, files)
    }

    #[test]
    fn a_small_shell_with_variables_redirections_and_files() {
        let (out, err, code, files) = run(
            "echo \"$A\" '$A' ${B:-dflt}; echo oops >&2\necho x=1 >> out.env; cat out.env; exit 4; echo never",
            &[("A", "a b")],
        );
        assert_eq!(out, "a b $A dflt\nx=1\n");
        assert_eq!(err, "oops\n");
        assert_eq!(code, 4);
        assert_eq!(files[Path::new("/ws/out.env")], Bytes::from("x=1\n"));
        let (out, _, code, _) = run("yes | head -c 5; nosuch", &[]);
        assert_eq!((out.as_str(), code), ("y\ny\ny", 127));
    }
}
