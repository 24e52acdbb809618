//! Secret masking: every secret and its variants (each line of a multi-line secret, base64,
//! URL- and JSON-escaped forms) replaced by `***`, with one Aho–Corasick automaton.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use base64::Engine as _;

/// What a secret is replaced by.
pub const MASK: &[u8] = b"***";

/// Lines of a multi-line secret shorter than this are not masked on their own (a lone `}` of
/// a JSON key would otherwise mask every brace in the log).
const MIN_LINE_VARIANT: usize = 4;

/// The set of masked strings.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    patterns: Vec<Vec<u8>>,
    automaton: Option<AhoCorasick>,
    longest: usize,
}

impl Masker {
    /// A masker for these secrets.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Self {
        let mut m = Masker::default();
        for s in secrets {
            m.push_variants(s.as_ref());
        }
        m.rebuild();
        m
    }

    /// Adds a secret (and its variants) from now on (`::add-mask::`).
    pub fn add(&mut self, secret: &str) {
        if self.push_variants(secret) {
            self.rebuild();
        }
    }

    /// The longest masked string, in bytes (a stream must hold back one byte less).
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// Whether nothing is masked.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    fn push_variants(&mut self, secret: &str) -> bool {
        let before = self.patterns.len();
        let secret = secret.trim_end_matches(['\r', '\n']);
        if secret.is_empty() {
            return false;
        }
        let mut candidates: Vec<String> = vec![
            secret.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(secret),
            json_escape(secret),
            url_encode(secret),
        ];
        if secret.contains('\n') {
            candidates.extend(
                secret
                    .lines()
                    .map(|l| l.trim_end_matches('\r'))
                    .filter(|l| l.trim().len() >= MIN_LINE_VARIANT)
                    .map(str::to_owned),
            );
        }
        for c in candidates {
            let bytes = c.into_bytes();
            if !bytes.is_empty() && !self.patterns.contains(&bytes) {
                self.patterns.push(bytes);
            }
        }
        self.patterns.len() != before
    }

    fn rebuild(&mut self) {
        self.longest = self.patterns.iter().map(Vec::len).max().unwrap_or(0);
        self.automaton = if self.patterns.is_empty() {
            None
        } else {
            // A DFA without prefilter: secrets often share bytes that are frequent in logs
            // (digits), which makes the rare-byte prefilter fire constantly (measured: 2× slower).
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::DFA))
                .prefilter(false)
                .build(&self.patterns)
                .ok()
        };
    }

    /// Masks a complete buffer.
    pub fn mask(&self, data: &[u8]) -> Vec<u8> {
        let (out, _) = self.mask_prefix(data, data.len());
        out
    }

    /// Masks the part of `data` that can be decided now: every match starting before `safe`
    /// is replaced. Returns the output and how many bytes of `data` it covers (at least
    /// `safe`, more when a match runs past it); the rest must be kept for more input.
    pub fn mask_prefix(&self, data: &[u8], safe: usize) -> (Vec<u8>, usize) {
        let safe = safe.min(data.len());
        let Some(ac) = &self.automaton else {
            return (data[..safe].to_vec(), safe);
        };
        let mut out = Vec::with_capacity(safe + 8);
        let mut cursor = 0;
        for m in ac.find_iter(data) {
            if m.start() >= safe {
                break;
            }
            out.extend_from_slice(&data[cursor..m.start()]);
            out.extend_from_slice(MASK);
            cursor = m.end();
        }
        let end = cursor.max(safe);
        out.extend_from_slice(&data[cursor..end]);
        (out, end)
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Masks a stream that arrives in chunks: matches split across chunks are caught, and at most
/// `longest - 1` bytes are held back.
#[derive(Debug, Default)]
pub struct StreamMasker {
    carry: Vec<u8>,
}

impl StreamMasker {
    /// Masks what can be decided after `chunk`.
    pub fn push(&mut self, masker: &Masker, chunk: &[u8]) -> Vec<u8> {
        self.carry.extend_from_slice(chunk);
        let hold = masker.longest().saturating_sub(1);
        let safe = self.carry.len().saturating_sub(hold);
        let (out, used) = masker.mask_prefix(&self.carry, safe);
        self.carry.drain(..used);
        out
    }

    /// Masks what is left at the end of the stream.
    pub fn finish(&mut self, masker: &Masker) -> Vec<u8> {
        let rest = std::mem::take(&mut self.carry);
        masker.mask(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_masked() {
        let m = Masker::new(&["p@ss word", "line one\nline two\n}"]);
        let b64 = base64::engine::general_purpose::STANDARD.encode("p@ss word");
        let text = format!("a p@ss word b {b64} c p%40ss%20word d line two e }} f");
        assert_eq!(
            String::from_utf8(m.mask(text.as_bytes())).unwrap(),
            "a *** b *** c *** d *** e } f"
        );
    }

    #[test]
    fn streams_mask_across_chunks() {
        let m = Masker::new(&["secret"]);
        let mut s = StreamMasker::default();
        let mut out = s.push(&m, b"xx sec");
        out.extend(s.push(&m, b"ret yy"));
        out.extend(s.finish(&m));
        assert_eq!(out, b"xx *** yy");
    }
}
