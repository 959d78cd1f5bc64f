//! Diagnostics: what every pass reports, and how it is rendered.
//!
//! Passes never print. They return [`Diagnostic`]s as plain values (a stable `code`, a message,
//! spans with labels, an optional help); the edges (the CLI, the proc-macro, tests) render them
//! with [`Diagnostic::render`], which draws the offending line with a caret under the span,
//! headed by `file:line:col`.

use crate::source::{SourceMap, Span};
use std::fmt;

/// The codes that decisions depend on ([`Diagnostic::is_fatal`]).
pub mod code {
    /// An override (`--set`) of an unknown parameter, or with a value that is not one.
    pub const OVERRIDE: &str = "archc::expand::override";
    /// An unknown network, or a file that defines none.
    pub const NETWORK: &str = "archc::network";
    /// A network that lacks a required item (input, classes, stem, stages, head, depth).
    pub const MISSING: &str = "archc::expand::missing";
}

/// One error found in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// A stable machine-readable code, e.g. `archc::shape::groups`.
    pub code: &'static str,
    /// One sentence saying what is wrong.
    pub message: String,
    /// Where it is, with a short label; `None` for errors with no place in a spec (a missing file).
    pub primary: Option<(Span, String)>,
    /// Further places that explain the error (the stage that instantiated a template, say).
    pub secondary: Vec<(Span, String)>,
    /// How to fix it, when we know.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with a code and a message, and no place yet.
    pub fn new(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: None,
        }
    }

    /// Sets the place of the error.
    pub fn at(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.primary = Some((span, label.into()));
        self
    }

    /// Sets the place of the error if it has none yet.
    pub fn at_if_unplaced(self, span: Span, label: impl Into<String>) -> Diagnostic {
        if self.primary.is_some() {
            self
        } else {
            self.at(span, label)
        }
    }

    /// Adds a further labelled place.
    pub fn also(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.secondary.push((span, label.into()));
        self
    }

    /// Adds a help line.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Whether the error is in the request rather than in a variant of the spec: an override of
    /// an unknown parameter or with a value that is not one (`archc::expand::override`), an unknown
    /// network (`archc::network`), or a network that lacks an item whatever its parameters
    /// (`archc::expand::missing`). `solve` and `sweep` stop on a fatal error; any other error
    /// only rules out the value that caused it.
    pub fn is_fatal(&self) -> bool {
        matches!(self.code, code::OVERRIDE | code::NETWORK | code::MISSING)
    }

    /// `file:line:col` of the primary span, if it has one.
    pub fn location(&self, sources: &SourceMap) -> Option<String> {
        let (span, _) = self.primary.as_ref()?;
        let (line, col) = sources.line_col(*span);
        Some(format!("{}:{line}:{col}", sources.file(span.file).name))
    }

    /// Renders the diagnostic as text without colours: the message, then `file:line:col`, the
    /// offending line(s) with carets under each span and their labels, then the help.
    pub fn render(&self, sources: &SourceMap) -> String {
        self.render_with(sources, false)
    }

    /// Like [`Diagnostic::render`], with ANSI colours when `color` is true.
    pub fn render_with(&self, sources: &SourceMap, color: bool) -> String {
        self.render_styled(sources, color, 100)
    }

    /// Renders with text wrapped at `width` columns. The proc-macro uses a very wide one, so
    /// that its messages (which carry absolute paths) wrap the same on every machine.
    pub fn render_styled(&self, sources: &SourceMap, color: bool, width: usize) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme)
            .with_width(width)
            .with_links(false);
        let mut out = String::new();
        let named = self.primary.as_ref().map(|(span, _)| {
            let file = sources.file(span.file);
            Named {
                name: &file.name,
                text: &file.text,
            }
        });
        let primary_file = self.primary.as_ref().map(|(span, _)| span.file);
        let elsewhere = self
            .secondary
            .iter()
            .filter(|(span, _)| Some(span.file) != primary_file)
            .map(|(span, label)| {
                let (line, col) = sources.line_col(*span);
                format!("{label}: {}:{line}:{col}", sources.file(span.file).name)
            })
            .collect();
        let report = Report {
            diag: self,
            named,
            elsewhere,
        };
        if handler.render_report(&mut out, &report).is_err() {
            return format!("error[{}]: {}", self.code, self.message);
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Adapter that lets miette draw a [`Diagnostic`] against its source file.
struct Report<'a> {
    diag: &'a Diagnostic,
    named: Option<Named<'a>>,
    /// Secondary places in other files, as `file:line:col: label`.
    elsewhere: Vec<String>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

struct Named<'a> {
    name: &'a str,
    text: &'a str,
}

impl miette::SourceCode for Named<'_> {
    fn read_span<'b>(
        &'b self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'b> + 'b>, miette::MietteError> {
        let inner = self.text.read_span(span, before, after)?;
        // The column in characters, as `SourceMap::line_col` counts it: miette's own count is
        // off by one for a span at the end of a file whose last line holds a multi-byte
        // character (found by tests/props.rs).
        let start = inner.span().offset().min(self.text.len());
        let before_start = self.text.get(..start).unwrap_or("");
        let line_start = before_start.rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let column = self
            .text
            .get(line_start..start)
            .map_or(inner.column(), |s| s.chars().count());
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            column,
            inner.line_count(),
        )))
    }
}

impl Report<'_> {
    fn file(&self) -> Option<crate::source::FileId> {
        self.diag.primary.as_ref().map(|(s, _)| s.file)
    }
}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        (!self.diag.code.is_empty()).then(|| Box::new(self.diag.code) as Box<dyn fmt::Display>)
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        // Places in other files than the primary one cannot be drawn: name them in the help.
        let elsewhere: Vec<&String> = self.elsewhere.iter().collect();
        match (&self.diag.help, elsewhere.is_empty()) {
            (None, true) => None,
            (Some(h), true) => Some(Box::new(h)),
            (h, false) => {
                let mut text = elsewhere
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                if let Some(h) = h {
                    text = format!("{h}\n{text}");
                }
                Some(Box::new(text))
            }
        }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.named.as_ref().map(|n| n as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let file = self.file()?;
        let (primary, label) = self.diag.primary.as_ref()?;
        let mut labels = vec![miette::LabeledSpan::new_primary_with_span(
            Some(label.clone()),
            (primary.start as usize, primary.len()),
        )];
        for (span, label) in &self.diag.secondary {
            if span.file == file {
                labels.push(miette::LabeledSpan::new_with_span(
                    Some(label.clone()),
                    (span.start as usize, span.len()),
                ));
            }
        }
        Some(Box::new(labels.into_iter()))
    }

    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        None
    }
}
