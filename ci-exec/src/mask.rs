//! Secret masking: every secret and its variants (each line of a multi-line secret, base64,
//! URL- and JSON-escaped forms) replaced by `***`, with one Aho–Corasick automaton.

use aho_corasick::{
    AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Anchored, Input, MatchKind, StartKind,
};
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
    skip: Option<Skip>,
    longest: usize,
}

/// A Wu–Manber skip table over 2-byte blocks: it says how far a window of the shortest
/// pattern's length may move before a pattern could start in it, so most of a log is
/// stepped over without being read byte by byte; positions it cannot rule out are checked
/// with the automaton, anchored. Exact: it never skips a position where a pattern starts.
#[derive(Clone)]
struct Skip {
    /// Window length: the shortest pattern's length (capped so shifts fit a byte).
    window: usize,
    /// Shift for each 2-byte block ending a window; 0: a pattern may start here.
    shift: Box<[u8]>,
}

impl std::fmt::Debug for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Skip")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// Below this shortest-pattern length skipping gains nothing over the automaton alone.
const MIN_SKIP_WINDOW: usize = 4;

impl Skip {
    fn new(patterns: &[Vec<u8>]) -> Option<Skip> {
        let shortest = patterns.iter().map(Vec::len).min()?;
        if shortest < MIN_SKIP_WINDOW {
            return None;
        }
        let window = shortest.min(200);
        let mut shift = vec![u8::try_from(window - 1).ok()?; 1 << 16].into_boxed_slice();
        for p in patterns {
            for q in 0..=window - 2 {
                let block = usize::from(p[q]) << 8 | usize::from(p[q + 1]);
                let s = u8::try_from(window - (q + 2)).ok()?;
                if s < shift[block] {
                    shift[block] = s;
                }
            }
        }
        Some(Skip { window, shift })
    }

    /// The first position at or after `from` where a pattern may start, or `None`.
    #[inline]
    fn next(&self, data: &[u8], from: usize) -> Option<usize> {
        let mut start = from;
        while start + self.window <= data.len() {
            let end = start + self.window;
            let block = usize::from(data[end - 2]) << 8 | usize::from(data[end - 1]);
            match self.shift[block] {
                0 => return Some(start),
                s => start += usize::from(s),
            }
        }
        None
    }
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
                .start_kind(StartKind::Both)
                .prefilter(false)
                .build(&self.patterns)
                .ok()
        };
        self.skip = Skip::new(&self.patterns);
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
        match &self.skip {
            // Leftmost-longest, as the automaton alone: candidates come in increasing order
            // and each takes the longest pattern starting there.
            Some(skip) => {
                let mut from = 0;
                while let Some(at) = skip.next(data, from) {
                    if at >= safe {
                        break;
                    }
                    let input = Input::new(data).range(at..).anchored(Anchored::Yes);
                    match ac.find(input) {
                        Some(m) => {
                            out.extend_from_slice(&data[cursor..m.start()]);
                            out.extend_from_slice(MASK);
                            cursor = m.end();
                            from = m.end();
                        }
                        None => from = at + 1,
                    }
                }
            }
            None => {
                for m in ac.find_iter(data) {
                    if m.start() >= safe {
                        break;
                    }
                    out.extend_from_slice(&data[cursor..m.start()]);
                    out.extend_from_slice(MASK);
                    cursor = m.end();
                }
            }
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

    /// Leftmost-longest by brute force: at each position the longest pattern starting there.
    fn reference(patterns: &[Vec<u8>], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let longest = patterns
                .iter()
                .filter(|p| data[i..].starts_with(p))
                .map(Vec::len)
                .max();
            match longest {
                Some(n) => {
                    out.extend_from_slice(MASK);
                    i += n;
                }
                None => {
                    out.push(data[i]);
                    i += 1;
                }
            }
        }
        out
    }

    proptest::proptest! {
        // A small alphabet makes secrets overlap, share prefixes and sit inside each other.
        #[test]
        fn skipping_masks_exactly_as_leftmost_longest(
            secrets in proptest::collection::vec("[ab%=]{1,9}", 1..8),
            data in "[ab%=c\n]{0,300}",
        ) {
            let m = Masker::new(&secrets);
            proptest::prop_assert_eq!(m.mask(data.as_bytes()), reference(&m.patterns, data.as_bytes()));
        }

        #[test]
        fn skipping_handles_overlapping_secrets(
            secrets in proptest::collection::vec("[ab]{4,9}", 1..8),
            data in "[abc]{0,300}",
        ) {
            let m = Masker::new(&secrets);
            proptest::prop_assert!(m.skip.is_some());
            proptest::prop_assert_eq!(m.mask(data.as_bytes()), reference(&m.patterns, data.as_bytes()));
        }

        #[test]
        fn long_secrets_are_found_wherever_they_are(
            secrets in proptest::collection::vec("[a-f0-9]{4,40}", 1..30),
            filler in "[a-z0-9 \n]{0,200}",
            picks in proptest::collection::vec((0usize..30, 0usize..200), 0..10),
        ) {
            let mut data = filler.clone().into_bytes();
            for (which, at) in picks {
                let secret = secrets[which % secrets.len()].as_bytes();
                let at = at.min(data.len());
                data.splice(at..at, secret.iter().copied());
            }
            let m = Masker::new(&secrets);
            proptest::prop_assert!(m.skip.is_some());
            proptest::prop_assert_eq!(m.mask(&data), reference(&m.patterns, &data));
        }
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
