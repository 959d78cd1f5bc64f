//! Positions: byte offsets in a document to LSP positions and back.
//!
//! LSP counts a position's `character` in UTF-16 code units (the protocol's default encoding,
//! the only one the server announces), and lines end at `\n`, `\r\n` or a lone `\r`, as
//! [`crate::SourceMap::line_col`] counts them.

use lsp_types::{Position, Range};

/// Where each line of a text starts.
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset of the start of each line.
    starts: Vec<usize>,
    /// Byte length of the text.
    len: usize,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> LineIndex {
        let b = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if b.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 1;
                }
                b'\r' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// The byte range of line `line`'s content (without its line end).
    fn line_range(&self, text: &str, line: usize) -> (usize, usize) {
        let start = self.starts[line];
        let mut end = self.starts.get(line + 1).copied().unwrap_or(self.len);
        let b = text.as_bytes();
        while end > start && matches!(b[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        (start, end)
    }

    /// The LSP position of byte offset `at` (clamped to the text, and back to a character
    /// boundary).
    pub fn position(&self, text: &str, at: usize) -> Position {
        let mut at = at.min(self.len);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= at) - 1;
        let (start, end) = self.line_range(text, line);
        let col: usize = text[start..at.min(end)].chars().map(char::len_utf16).sum();
        Position::new(line as u32, col as u32)
    }

    /// The LSP range of bytes `start..end`.
    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(self.position(text, start), self.position(text, end))
    }

    /// The byte offset of an LSP position. A line past the end gives the end of the text; a
    /// character past the end of its line gives the end of the line; a position inside a
    /// surrogate pair gives the start of its character.
    pub fn offset(&self, text: &str, p: Position) -> usize {
        let Some(&start) = self.starts.get(p.line as usize) else {
            return self.len;
        };
        let (_, end) = self.line_range(text, p.line as usize);
        let mut units = 0usize;
        for (i, c) in text[start..end].char_indices() {
            let next = units + c.len_utf16();
            if next > p.character as usize {
                return start + i;
            }
            units = next;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns_and_every_line_end() {
        // `×` is one UTF-16 unit (two bytes), `𝔸` two units (four bytes).
        let text = "a×b𝔸c\r\nx\ry\n\nz";
        let ix = LineIndex::new(text);
        let cases = [
            (0, (0, 0)),
            (1, (0, 1)),
            (3, (0, 2)),
            (4, (0, 3)),
            (8, (0, 5)),
            (9, (0, 6)),
            (11, (1, 0)),
            (13, (2, 0)),
            (15, (3, 0)),
            (16, (4, 0)),
            (17, (4, 1)),
        ];
        for (at, (line, col)) in cases {
            let p = ix.position(text, at);
            assert_eq!((p.line, p.character), (line, col), "offset {at}");
            assert_eq!(ix.offset(text, p), at, "offset {at}");
        }
        // Inside the surrogate pair, past a line's end, past the last line.
        assert_eq!(ix.offset(text, Position::new(0, 4)), 4);
        assert_eq!(ix.offset(text, Position::new(1, 9)), 12);
        assert_eq!(ix.offset(text, Position::new(9, 0)), text.len());
        // Inside a multi-byte character, a position snaps back to its start.
        assert_eq!(ix.position(text, 2), Position::new(0, 1));
    }
}
