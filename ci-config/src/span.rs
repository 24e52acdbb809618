//! Source locations: byte spans plus the line and column a user sees.

use serde::Serialize;

/// A line and column in a source file, both 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Position {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

/// A region of a source file: a byte range (for snippets) and its start and end positions.
///
/// Offsets are `u32` to keep spans small (every YAML node carries one); loaders refuse texts
/// of 4 GiB or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset one past the last byte.
    pub end: u32,
    /// Where the span starts.
    pub start_pos: Position,
    /// Where the span ends (exclusive).
    pub end_pos: Position,
}

impl Span {
    /// The byte range of this span.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        let (start, start_pos) = if other.start < self.start {
            (other.start, other.start_pos)
        } else {
            (self.start, self.start_pos)
        };
        let (end, end_pos) = if other.end > self.end {
            (other.end, other.end_pos)
        } else {
            (self.end, self.end_pos)
        };
        Span {
            start,
            end,
            start_pos,
            end_pos,
        }
    }
}

/// Texts are limited to `u32::MAX` bytes (checked by the loaders), so this never saturates in
/// practice; saturating keeps it panic-free regardless.
pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Maps byte offsets of one source text to positions.
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
}

impl LineIndex {
    /// Index the lines of `src`.
    pub fn new(src: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    /// The position of byte offset `offset` in `src` (which must be the text this index was built from).
    pub fn position(&self, src: &str, offset: usize) -> Position {
        let offset = offset.min(src.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let line_start = self.line_starts[line];
        let column = src
            .get(line_start..offset)
            .map_or(offset - line_start, |s| s.chars().count())
            + 1;
        Position {
            line: to_u32(line + 1),
            column: to_u32(column),
        }
    }

    /// A span for the byte range `start..end` of `src`.
    pub fn span(&self, src: &str, start: usize, end: usize) -> Span {
        Span {
            start: to_u32(start),
            end: to_u32(end),
            start_pos: self.position(src, start),
            end_pos: self.position(src, end),
        }
    }
}

/// A source text with its line index.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// The text.
    pub text: &'a str,
    index: LineIndex,
}

impl<'a> Source<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> Self {
        Source {
            text,
            index: LineIndex::new(text),
        }
    }

    /// A span for the byte range `start..end`.
    pub fn span(&self, start: usize, end: usize) -> Span {
        self.index.span(self.text, start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let src = "a: é\nbb: x\n";
        let index = LineIndex::new(src);
        assert_eq!(index.position(src, 0), Position { line: 1, column: 1 });
        // 'x' on line 2 is at byte 10.
        assert_eq!(index.position(src, 10), Position { line: 2, column: 5 });
        // The byte after 'é' (2 bytes) is the 5th character of line 1.
        assert_eq!(index.position(src, 5), Position { line: 1, column: 5 });
    }
}
