//! Source files and spans.
//!
//! Every AST node, IR item and graph node carries a [`Span`]: a byte range in one file of a
//! [`SourceMap`]. Spans are plain integers (no lifetimes), so they travel from the parser to the
//! diagnostics, the CLI and the proc-macro.

use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range `start..end` in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    /// The file the range is in.
    pub file: FileId,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both (they must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the span covers no byte.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Why [`SourceMap::load`] could not give a file's text.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The file is not UTF-8; it was added with replacement characters, and `span` covers the
    /// one that stands for the first invalid byte.
    NotUtf8 {
        /// The first invalid sequence, in the added file.
        span: Span,
        /// Its first byte.
        byte: u8,
    },
}

impl LoadError {
    /// The diagnostic for a file that was being `verb`ed (`read`, `import`) from `path`.
    pub fn diagnostic(&self, verb: &str, path: &Path) -> crate::Diagnostic {
        match self {
            LoadError::Io(e) => crate::Diagnostic::new(
                "archc::io",
                format!("cannot {verb} `{}`: {e}", path.display()),
            ),
            LoadError::NotUtf8 { span, byte } => crate::Diagnostic::new(
                "archc::io::utf8",
                format!(
                    "cannot {verb} `{}`: it is not UTF-8 text (byte 0x{byte:02X})",
                    path.display()
                ),
            )
            .at(*span, format!("invalid byte 0x{byte:02X}"))
            .help("save the spec as UTF-8"),
        }
    }
}

/// One source file: a display name (its path as given) and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name used in diagnostics (`specs/resnet/resnet50.arch`).
    pub name: String,
    /// The path on disk, if the file came from disk (imports resolve against it).
    pub path: Option<PathBuf>,
    /// The whole text.
    pub text: String,
}

/// All files of one compilation, indexed by [`FileId`].
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file held in memory (an inline spec, a test) and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.push(SourceFile {
            name: name.into(),
            path: None,
            text: text.into(),
        })
    }

    /// Reads a file from disk and adds it; returns its id.
    ///
    /// A file that is not UTF-8 is still added, with each invalid sequence replaced by U+FFFD,
    /// so that [`LoadError::NotUtf8`] can point at the first one.
    pub fn load(&mut self, path: &Path) -> Result<FileId, LoadError> {
        if let Some(id) = self.find(path) {
            return Ok(id);
        }
        let bytes = std::fs::read(path).map_err(LoadError::Io)?;
        let (text, bad) = match String::from_utf8(bytes) {
            Ok(text) => (text, None),
            Err(e) => {
                let bytes = e.as_bytes();
                let at = e.utf8_error().valid_up_to();
                // `push` drops a byte-order mark, which moves every offset back by its length.
                let bom = if bytes.starts_with("\u{feff}".as_bytes()) {
                    3
                } else {
                    0
                };
                let text = String::from_utf8_lossy(bytes).into_owned();
                (text, Some((at - bom, bytes[at])))
            }
        };
        let id = self.push(SourceFile {
            name: path.display().to_string(),
            path: Some(path.to_path_buf()),
            text,
        });
        match bad {
            None => Ok(id),
            Some((at, byte)) => {
                // The valid prefix is unchanged, so the replacement character starts at `at`.
                let end = at + char::REPLACEMENT_CHARACTER.len_utf8();
                Err(LoadError::NotUtf8 {
                    span: Span::new(id, at, end),
                    byte,
                })
            }
        }
    }

    /// The id of a file already loaded from `path`.
    pub fn find(&self, path: &Path) -> Option<FileId> {
        let canon = path.canonicalize().ok();
        self.files
            .iter()
            .position(|f| match (&f.path, &canon) {
                (Some(p), Some(c)) => p.canonicalize().ok().as_ref() == Some(c),
                (Some(p), None) => p == path,
                _ => false,
            })
            .map(|i| FileId(i as u32))
    }

    fn push(&mut self, mut file: SourceFile) -> FileId {
        // A UTF-8 byte-order mark is not part of the spec.
        if let Some(rest) = file.text.strip_prefix('\u{feff}') {
            file.text = rest.to_string();
        }
        self.files.push(file);
        FileId(self.files.len() as u32 - 1)
    }

    /// The file with this id.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// The file with this id, if there is one.
    pub fn try_file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    /// The text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        &self.file(span.file).text[span.start as usize..span.end as usize]
    }

    /// 1-based line and column (in characters) of a span's start. Lines end at `\n`, `\r\n`
    /// or a lone `\r`, as in editors (and the Language Server Protocol) and in the rendered
    /// diagnostics.
    pub fn line_col(&self, span: Span) -> (usize, usize) {
        let text = &self.file(span.file).text;
        let at = (span.start as usize).min(text.len());
        let (mut line, mut col) = (1, 1);
        let mut chars = text[..at].chars().peekable();
        while let Some(c) = chars.next() {
            let ends_line = c == '\n' || (c == '\r' && chars.peek() != Some(&'\n'));
            if ends_line {
                line += 1;
                col = 1;
            } else if c != '\r' {
                col += 1;
            }
        }
        (line, col)
    }
}
