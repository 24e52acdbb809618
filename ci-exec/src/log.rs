//! The log pipeline of a step: chunks → timestamped lines → workflow commands (`::add-mask::`,
//! `::group::`, `::error …::` …) → masking → events for the sinks.
//!
//! Complete lines are masked in batches with one automaton pass, so throughput stays high; a
//! line longer than [`MAX_LINE`] is flushed in pieces, holding back just enough bytes that a
//! secret split across pieces is still caught. Memory per stream is bounded by `MAX_LINE`.

use std::time::SystemTime;

use bytes::Bytes;

use crate::mask::Masker;
use crate::spec::{Chunk, Stream};

/// Longest line kept whole; longer ones are flushed in pieces.
pub const MAX_LINE: usize = 1024 * 1024;

/// Annotation levels of workflow commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Level {
    /// `::error`
    Error,
    /// `::warning`
    Warning,
    /// `::notice`
    Notice,
    /// `::debug`
    Debug,
}

/// What the pipeline produces.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogEvent {
    /// Masked output: one or more complete lines (each ending in `\n`), or a piece of an
    /// over-long line.
    Output {
        /// The stream.
        stream: Stream,
        /// The bytes.
        data: Bytes,
        /// When the pipeline framed them.
        at: SystemTime,
    },
    /// `::group::title`
    Group {
        /// The title (masked).
        title: String,
    },
    /// `::endgroup::`
    EndGroup,
    /// `::error`, `::warning`, `::notice`, `::debug`.
    Annotation {
        /// The level.
        level: Level,
        /// The message (masked).
        message: String,
        /// `file=`
        file: Option<String>,
        /// `line=`
        line: Option<u32>,
        /// `col=`
        col: Option<u32>,
        /// `title=`
        title: Option<String>,
    },
    /// A deprecated command that changes the job — `::set-output name=N::V`,
    /// `::save-state name=N::V`, `::set-env name=N::V`, `::add-path::DIR` — for the caller to
    /// honour or refuse.
    Legacy {
        /// The command (`set-output`, `save-state`, `set-env`, `add-path`).
        command: String,
        /// Its `name=` property.
        name: Option<String>,
        /// The value (not masked: it is data, not display).
        value: String,
    },
}

#[derive(Debug, Default)]
struct Framer {
    carry: Vec<u8>,
}

/// The pipeline of one step (both streams share its masker).
#[derive(Debug)]
pub struct LogPipeline {
    masker: Masker,
    stdout: Framer,
    stderr: Framer,
    /// `::stop-commands::TOKEN` is in effect until `::TOKEN::`.
    stopped: Option<String>,
}

impl LogPipeline {
    /// A pipeline masking `secrets`.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Self {
        LogPipeline {
            masker: Masker::new(secrets),
            stdout: Framer::default(),
            stderr: Framer::default(),
            stopped: None,
        }
    }

    /// Bytes held back waiting for the end of a line (bounded by [`MAX_LINE`] plus one chunk).
    pub fn buffered(&self) -> usize {
        self.stdout.carry.len() + self.stderr.carry.len()
    }

    /// The masker (secrets added by `::add-mask::` included).
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Masks `secret` from now on (as `::add-mask::` does).
    pub fn add_mask(&mut self, secret: &str) {
        self.masker.add(secret);
    }

    /// Processes one chunk.
    pub fn push(&mut self, chunk: &Chunk) -> Vec<LogEvent> {
        let mut framer = std::mem::take(self.framer(chunk.stream));
        framer.carry.extend_from_slice(&chunk.data);
        let mut events = Vec::new();
        self.drain(&mut framer, chunk.stream, false, &mut events);
        *self.framer(chunk.stream) = framer;
        events
    }

    /// Flushes what is left at the end of the step.
    pub fn finish(&mut self) -> Vec<LogEvent> {
        let mut events = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let mut framer = std::mem::take(self.framer(stream));
            self.drain(&mut framer, stream, true, &mut events);
        }
        events
    }

    fn framer(&mut self, stream: Stream) -> &mut Framer {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    fn drain(
        &mut self,
        framer: &mut Framer,
        stream: Stream,
        last: bool,
        events: &mut Vec<LogEvent>,
    ) {
        let buf = std::mem::take(&mut framer.carry);
        let complete = memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1);
        // Plain lines are masked together; a command line ends the batch. Only lines holding
        // `::` can be commands, and those are found with one vectorised search.
        let mut batch_start = 0;
        let mut search_from = 0;
        while let Some(found) = memchr::memmem::find(&buf[search_from..complete], b"::") {
            let at = search_from + found;
            let line_start = memchr::memrchr(b'\n', &buf[..at]).map_or(0, |i| i + 1);
            let line_end =
                memchr::memchr(b'\n', &buf[at..complete]).map_or(complete, |i| at + i + 1);
            search_from = line_end;
            if line_start < batch_start {
                continue;
            }
            if let Some(command) = self.command(&buf[line_start..line_end]) {
                self.emit(stream, &buf[batch_start..line_start], events);
                self.apply(command, events);
                batch_start = line_end;
            }
            if search_from >= complete {
                break;
            }
        }
        self.emit(stream, &buf[batch_start..complete], events);
        let rest = &buf[complete..];
        if last {
            self.emit(stream, rest, events);
        } else if rest.len() > MAX_LINE {
            // An over-long line: flush what can be decided, keep the tail a secret may span.
            let hold = self.masker.longest().saturating_sub(1);
            let (out, used) = self.masker.mask_prefix(rest, rest.len() - hold);
            events.push(LogEvent::Output {
                stream,
                data: Bytes::from(out),
                at: SystemTime::now(),
            });
            framer.carry = rest[used..].to_vec();
        } else {
            framer.carry = rest.to_vec();
        }
    }

    fn emit(&self, stream: Stream, data: &[u8], events: &mut Vec<LogEvent>) {
        if !data.is_empty() {
            events.push(LogEvent::Output {
                stream,
                data: Bytes::from(self.masker.mask(data)),
                at: SystemTime::now(),
            });
        }
    }

    fn mask_text(&self, s: &str) -> String {
        String::from_utf8_lossy(&self.masker.mask(s.as_bytes())).into_owned()
    }

    /// A workflow command on this line, if it is one (and commands are not stopped).
    fn command(&self, line: &[u8]) -> Option<Command> {
        let text = std::str::from_utf8(line)
            .ok()?
            .trim_end_matches(['\n', '\r']);
        let rest = text.trim_start().strip_prefix("::")?;
        let (head, message) = rest.split_once("::")?;
        if let Some(token) = &self.stopped {
            return (head == token && message.is_empty()).then_some(Command::Resume);
        }
        let (name, props) = match head.split_once(' ') {
            Some((n, p)) => (n, p),
            None => (head, ""),
        };
        let props: Vec<(String, String)> = props
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), unescape(v, true)))
            .collect();
        let message = unescape(message, false);
        Some(match name {
            "add-mask" => Command::AddMask(message),
            "group" => Command::Group(message),
            "endgroup" => Command::EndGroup,
            "stop-commands" => Command::Stop(message),
            "set-output" | "save-state" | "set-env" | "add-path" => Command::Legacy(
                name.to_owned(),
                props.into_iter().find(|(k, _)| k == "name").map(|(_, v)| v),
                message,
            ),
            "error" | "warning" | "notice" | "debug" => Command::Annotate(
                match name {
                    "error" => Level::Error,
                    "warning" => Level::Warning,
                    "notice" => Level::Notice,
                    _ => Level::Debug,
                },
                props,
                message,
            ),
            _ => return None,
        })
    }

    fn apply(&mut self, command: Command, events: &mut Vec<LogEvent>) {
        match command {
            Command::AddMask(secret) => self.masker.add(&secret),
            Command::Group(title) => events.push(LogEvent::Group {
                title: self.mask_text(&title),
            }),
            Command::EndGroup => events.push(LogEvent::EndGroup),
            Command::Stop(token) => self.stopped = Some(token),
            Command::Resume => self.stopped = None,
            Command::Legacy(command, name, value) => events.push(LogEvent::Legacy {
                command,
                name,
                value,
            }),
            Command::Annotate(level, props, message) => {
                let get = |k: &str| props.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
                events.push(LogEvent::Annotation {
                    level,
                    message: self.mask_text(&message),
                    file: get("file"),
                    line: get("line").and_then(|v| v.parse().ok()),
                    col: get("col").and_then(|v| v.parse().ok()),
                    title: get("title").map(|t| self.mask_text(&t)),
                });
            }
        }
    }
}

enum Command {
    AddMask(String),
    Group(String),
    EndGroup,
    Stop(String),
    Resume,
    Annotate(Level, Vec<(String, String)>, String),
    Legacy(String, Option<String>, String),
}

/// GitHub's command escaping: `%25` `%0D` `%0A` (and in properties `%3A` `%2C`).
fn unescape(s: &str, property: bool) -> String {
    let mut out = s.replace("%0D", "\r").replace("%0A", "\n");
    if property {
        out = out.replace("%3A", ":").replace("%2C", ",");
    }
    out.replace("%25", "%")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pipeline: &mut LogPipeline, parts: &[&str]) -> (String, Vec<LogEvent>) {
        let mut text = String::new();
        let mut other = Vec::new();
        let mut events = Vec::new();
        for p in parts {
            events.extend(pipeline.push(&Chunk {
                stream: Stream::Stdout,
                data: Bytes::copy_from_slice(p.as_bytes()),
            }));
        }
        events.extend(pipeline.finish());
        for e in events {
            match e {
                LogEvent::Output { data, .. } => text.push_str(&String::from_utf8_lossy(&data)),
                e => other.push(e),
            }
        }
        (text, other)
    }

    #[test]
    fn add_mask_applies_to_later_lines() {
        let mut p = LogPipeline::new(&["tok3n"]);
        let (text, _) = run(
            &mut p,
            &["a tok3n\n::add-mask::hun", "ter2\nthe hunter2 x\n"],
        );
        assert_eq!(text, "a ***\nthe *** x\n");
    }

    #[test]
    fn commands_become_events() {
        let mut p = LogPipeline::new(&["s3cr3t"]);
        let (text, events) = run(
            &mut p,
            &["::group::Build s3cr3t\nx\n::endgroup::\n::error file=src/a.rs,line=3,col=5,title=Bad::oops%0Aline 2\n"],
        );
        assert_eq!(text, "x\n");
        assert_eq!(
            events[0],
            LogEvent::Group {
                title: "Build ***".into()
            }
        );
        assert_eq!(events[1], LogEvent::EndGroup);
        assert_eq!(
            events[2],
            LogEvent::Annotation {
                level: Level::Error,
                message: "oops\nline 2".into(),
                file: Some("src/a.rs".into()),
                line: Some(3),
                col: Some(5),
                title: Some("Bad".into()),
            }
        );
    }

    #[test]
    fn memory_stays_bounded_without_newlines() {
        let mut p = LogPipeline::new(&["needle-secret"]);
        let chunk = Chunk {
            stream: Stream::Stdout,
            data: Bytes::from(vec![b'x'; 64 * 1024]),
        };
        let mut out = 0;
        for _ in 0..64 {
            for e in p.push(&chunk) {
                if let LogEvent::Output { data, .. } = e {
                    out += data.len();
                }
            }
            assert!(
                p.buffered() <= MAX_LINE + 64 * 1024,
                "{} bytes held",
                p.buffered()
            );
        }
        for e in p.finish() {
            if let LogEvent::Output { data, .. } = e {
                out += data.len();
            }
        }
        assert_eq!(out, 64 * 64 * 1024, "every byte comes out once");
    }

    #[test]
    fn stop_commands_until_the_token() {
        let mut p = LogPipeline::new::<&str>(&[]);
        let (text, events) = run(
            &mut p,
            &["::stop-commands::abc\n::error::not one\n::abc::\n::warning::yes\n"],
        );
        assert_eq!(text, "::error::not one\n");
        assert_eq!(events.len(), 1);
    }
}
