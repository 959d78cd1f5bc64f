//! The canonical layout of `.arch` files: what `archc fmt` and the language server's formatting
//! give.
//!
//! One form, no options (gofmt's rule): one statement per line, two spaces of indentation per
//! block, `, ` between options, the fewest parentheses that keep an expression's meaning, an
//! empty block as `{}`, at most one blank line where the author left one (never after `{` or
//! before `}`), a blank line before each network, trailing comments of consecutive lines aligned
//! two spaces after the longest line, one final newline.
//!
//! The grammar drops comments (its `COMMENT` rule is silent), so [`format`] prints the parsed
//! [`ast::File`] and puts back the comments that a small scan of the text finds (it knows
//! strings): a comment that shares a line with the end of a statement trails that statement; a
//! comment on a line of its own leads the statement that follows it. A comment inside a statement
//! that the layout puts on one line (`conv 3x3 -> w, // why` then `groups C`) has no place, so
//! the file is refused rather than changed. Before returning, the result is parsed again and
//! compared with the input's syntax tree: a file is never rewritten into another meaning.
//!
//! ```
//! let text = "network n { input 3x8x8; param C=2*(1+3) # width\n}\n";
//! let out = archc::syntax::fmt::format(archc::FileId(0), text).unwrap();
//! assert_eq!(out, "network n {\n  input 3x8x8\n  param C = 2 * (1 + 3)  # width\n}\n");
//! ```

use super::ast::{self, BinOp, Expr, ExprKind, Item, Layer};
use crate::diag::Diagnostic;
use crate::source::{FileId, Span};

/// Formats one file's text; `file` is the id its diagnostics carry. A file that does not parse
/// gives the parser's diagnostic; a comment with no place gives `archc::fmt::comment`.
pub fn format(file: FileId, text: &str) -> Result<String, Diagnostic> {
    let ast = super::parse(file, text)?;
    let comments = scan_comments(text);
    let lines = Printer::new(text, &comments).file(&ast);
    let out = layout(file, text, lines, &comments)?;
    // The safety net: the result must parse to the same tree (spans aside).
    let again = super::parse(file, &out).map_err(|d| internal(file, d.message))?;
    let code = |f: &ast::File| {
        let lines = Printer::new("", &[]).file(f);
        lines.into_iter().map(|l| l.code).collect::<Vec<_>>()
    };
    if code(&again) != code(&ast) {
        return Err(internal(
            file,
            "the formatted text means something else".into(),
        ));
    }
    Ok(out)
}

/// Whether `text` is already in the canonical layout (`false` if it does not format).
pub fn is_formatted(text: &str) -> bool {
    format(FileId(0), text).is_ok_and(|out| out == text)
}

fn internal(file: FileId, why: String) -> Diagnostic {
    Diagnostic::new(
        "archc::fmt::internal",
        format!("the formatter would change this file's meaning ({why}); it was left as it is"),
    )
    .at(Span::new(file, 0, 0), "this file")
    .help("please report this file")
}

/// A comment: its byte range (`//` or `#` up to the end of the line, trailing spaces and `\r`
/// left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comment {
    /// First byte (the `/` of `//` or the `#`).
    pub start: usize,
    /// One past its last byte that is not whitespace.
    pub end: usize,
}

/// Every comment of `text`, in order. `"…"` strings (which end at a `"` or at the end of the
/// line, as in the grammar) may hold `//` and `#`.
pub fn scan_comments(text: &str) -> Vec<Comment> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += 1;
                }
                i += 1;
            }
            b'#' | b'/' if bytes[i] == b'#' || bytes.get(i + 1) == Some(&b'/') => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                let end = start + text[start..i].trim_end().len();
                out.push(Comment { start, end });
            }
            _ => i += 1,
        }
    }
    out
}

/// One line of the layout before comments are placed.
#[derive(Debug, Clone)]
struct Line {
    indent: usize,
    code: String,
    /// The source bytes the line stands for (`start..end`), keyword to last token.
    anchor: (usize, usize),
    /// Opens a block (`stem {`).
    opens: bool,
    /// Closes a block (`}`).
    closes: bool,
    /// Starts a network: a blank line goes before it (and its comments) unless it comes first.
    network: bool,
}

struct Printer<'t> {
    text: &'t str,
    comments: &'t [Comment],
    lines: Vec<Line>,
    indent: usize,
}

impl<'t> Printer<'t> {
    fn new(text: &'t str, comments: &'t [Comment]) -> Printer<'t> {
        Printer {
            text,
            comments,
            lines: Vec::new(),
            indent: 0,
        }
    }

    fn in_comment(&self, at: usize) -> bool {
        self.comments.iter().any(|c| c.start <= at && at < c.end)
    }

    /// Where the keyword `kw` that ends before `at` starts (skipping comments); `at` itself if
    /// there is none (only when printing a tree without its text).
    fn keyword_before(&self, kw: &str, at: usize) -> usize {
        let mut end = at.min(self.text.len());
        while let Some(i) = self.text[..end].rfind(kw) {
            if !self.in_comment(i) {
                return i;
            }
            end = i;
        }
        at
    }

    /// The `{` that opens the block starting at `from` (the first one outside comments).
    fn open_brace(&self, from: usize) -> (usize, usize) {
        let mut i = from;
        while let Some(k) = self.text.get(i..).and_then(|s| s.find('{')) {
            if !self.in_comment(i + k) {
                return (from, i + k + 1);
            }
            i += k + 1;
        }
        (from, from)
    }

    fn push(&mut self, code: String, anchor: (usize, usize)) {
        self.lines.push(Line {
            indent: self.indent,
            code,
            anchor,
            opens: false,
            closes: false,
            network: false,
        });
    }

    fn open(&mut self, code: String, start: usize) {
        let anchor = self.open_brace(start);
        self.push(code, anchor);
        if let Some(l) = self.lines.last_mut() {
            l.opens = true;
        }
        self.indent += 1;
    }

    /// Closes the block whose whole span is `span` (it ends just after its `}`).
    fn close(&mut self, span: Span) {
        self.indent -= 1;
        let end = span.end as usize;
        self.push("}".into(), (end.saturating_sub(1), end));
        if let Some(l) = self.lines.last_mut() {
            l.closes = true;
        }
    }

    fn file(mut self, f: &ast::File) -> Vec<Line> {
        for imp in &f.imports {
            let start = self.keyword_before("import", imp.span.start as usize);
            self.push(
                format!("import \"{}\"", imp.path),
                (start, imp.span.end as usize),
            );
        }
        for n in &f.networks {
            let first = self.lines.len();
            let mut head = format!("network {}", n.name.name);
            if let Some(base) = &n.extends {
                head.push_str(&format!(" extends {}", base.name));
            }
            head.push_str(" {");
            self.open(head, n.span.start as usize);
            self.lines[first].network = true;
            for item in &n.items {
                self.item(item);
            }
            self.close(n.span);
        }
        self.lines
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Input(d) => {
                let start = self.keyword_before("input", d.span.start as usize);
                self.push(
                    format!("input {}x{}x{}", d.c, d.h, d.w),
                    (start, d.span.end as usize),
                );
            }
            Item::Classes(e) => {
                let start = self.keyword_before("classes", e.span.start as usize);
                self.push(format!("classes {}", expr(e)), (start, e.span.end as usize));
            }
            Item::Param(name, e) => {
                let start = self.keyword_before("param", name.span.start as usize);
                self.push(
                    format!("param {} = {}", name.name, expr(e)),
                    (start, e.span.end as usize),
                );
            }
            Item::Form(f, sp) => self.push(format!("form {}", f.as_str()), range(*sp)),
            Item::Stem(layers, sp) => self.layers("stem", layers, *sp),
            Item::Head(layers, sp) => self.layers("head", layers, *sp),
            Item::Block(b) => {
                let params: Vec<&str> = b.params.iter().map(|p| p.name.as_str()).collect();
                self.open(
                    format!("block {}({}) {{", b.name.name, params.join(", ")),
                    b.span.start as usize,
                );
                for c in &b.convs {
                    self.push(conv(c), range(c.span));
                }
                if let Some((kind, sp)) = b.shortcut {
                    let kind = match kind {
                        ast::Shortcut::Auto => "auto",
                        ast::Shortcut::Identity => "identity",
                        ast::Shortcut::Projection => "projection",
                    };
                    self.push(format!("shortcut {kind}"), range(sp));
                }
                self.close(b.span);
            }
            Item::Stages(st) => {
                self.open(
                    format!("stages {}({}) {{", st.template.name, args(&st.args)),
                    st.span.start as usize,
                );
                for r in &st.rules {
                    let (code, sp) = match r {
                        ast::Rule::DoubleOnDownsample(None, sp) => {
                            ("rule double_on_downsample".to_string(), *sp)
                        }
                        ast::Rule::DoubleOnDownsample(Some(names), sp) => {
                            let names: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
                            (
                                format!("rule double_on_downsample({})", names.join(", ")),
                                *sp,
                            )
                        }
                        ast::Rule::KeepWidth(sp) => ("rule keep_width".to_string(), *sp),
                    };
                    let start = self.keyword_before("rule", sp.start as usize);
                    self.push(code, (start, sp.end as usize));
                }
                for s in &st.stages {
                    self.push(stage(s), range(s.span));
                }
                self.close(st.span);
            }
            Item::Budget(limits, sp) => {
                self.open("budget {".into(), sp.start as usize);
                for l in limits {
                    let op = if l.at_most { "<=" } else { ">=" };
                    self.push(
                        format!("{} {op} {}", l.metric.as_str(), l.written),
                        range(l.span),
                    );
                }
                self.close(*sp);
            }
        }
    }

    fn layers(&mut self, kw: &str, layers: &[Layer], sp: Span) {
        self.open(format!("{kw} {{"), sp.start as usize);
        for l in layers {
            let (code, sp) = match l {
                Layer::Conv(c) => (conv(c), c.span),
                Layer::MaxPool {
                    kernel,
                    stride,
                    pad,
                    span,
                } => {
                    let mut s = format!("maxpool {}x{}", kernel.0, kernel.1);
                    if let Some(st) = stride {
                        s.push_str(&format!("/{}", atom(st)));
                    }
                    if let Some(p) = pad {
                        s.push_str(&format!(", pad {}", expr(p)));
                    }
                    (s, *span)
                }
                Layer::AvgPool(span) => ("avgpool".to_string(), *span),
                Layer::Fc { out, bias, span } => {
                    let mut s = format!("fc -> {}", expr(out));
                    if !bias {
                        s.push_str(", no_bias");
                    }
                    (s, *span)
                }
            };
            self.push(code, range(sp));
        }
        self.close(sp);
    }
}

fn range(sp: Span) -> (usize, usize) {
    (sp.start as usize, sp.end as usize)
}

/// A convolution statement in the canonical layout (`conv 3x3/stride -> width, groups C`).
pub fn conv(c: &ast::Conv) -> String {
    let mut s = format!("conv {}x{}", c.kernel.0, c.kernel.1);
    if let Some(st) = &c.stride {
        s.push_str(&format!("/{}", atom(st)));
    }
    s.push_str(&format!(" -> {}", expr(&c.out)));
    if let Some(g) = &c.groups {
        s.push_str(&format!(", groups {}", expr(g)));
    }
    if let Some(p) = &c.pad {
        s.push_str(&format!(", pad {}", expr(p)));
    }
    if c.bias {
        s.push_str(", bias");
    }
    s
}

fn args(args: &[ast::Arg]) -> String {
    args.iter()
        .map(|a| format!("{} = {}", a.name.name, expr(&a.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn stage(s: &ast::Stage) -> String {
    let mut opts = Vec::new();
    if let Some(d) = &s.depth {
        opts.push(format!("depth {}", expr(d)));
    }
    if let Some(st) = &s.stride {
        opts.push(format!("stride {}", expr(st)));
    }
    if !s.args.is_empty() {
        opts.push(args(&s.args));
    }
    format!("{}: {}", s.label.name, opts.join(", "))
}

fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Add | BinOp::Sub => 1,
        BinOp::Mul | BinOp::Div => 2,
    }
}

/// An expression with the fewest parentheses that keep its tree (operators associate left).
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Var(v) => v.clone(),
        ExprKind::Binary(op, l, r) => {
            let p = precedence(*op);
            let side = |x: &Expr, wrap: bool| match &x.kind {
                ExprKind::Binary(..) if wrap => format!("({})", expr(x)),
                _ => expr(x),
            };
            let wrap_l = matches!(&l.kind, ExprKind::Binary(o, ..) if precedence(*o) < p);
            let wrap_r = matches!(&r.kind, ExprKind::Binary(o, ..) if precedence(*o) <= p);
            format!("{} {} {}", side(l, wrap_l), op.symbol(), side(r, wrap_r))
        }
    }
}

/// An operand after `/` (a stride): a number or a name as is, anything else in parentheses.
fn atom(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Binary(..) => format!("({})", expr(e)),
        _ => expr(e),
    }
}

/// Where comments go.
#[derive(Debug, Default, Clone)]
struct Placed {
    leading: Vec<Comment>,
    trailing: Option<Comment>,
}

/// 0-based line of a byte offset (lines end at `\n`, `\r\n` or a lone `\r`).
fn line_of(text: &str, at: usize) -> usize {
    let b = text.as_bytes();
    let mut line = 0;
    for i in 0..at.min(b.len()) {
        if b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')) {
            line += 1;
        }
    }
    line
}

/// Whether the author left a blank line just before `at` (lines end at `\n`, `\r\n` or `\r`).
fn blank_before(text: &str, at: usize) -> bool {
    let b = text.as_bytes();
    let mut newlines = 0;
    for i in (0..at.min(b.len())).rev() {
        match b[i] {
            b'\n' => newlines += 1,
            b'\r' if b.get(i + 1) != Some(&b'\n') => newlines += 1,
            b' ' | b'\t' | b'\r' | b';' => {}
            _ => break,
        }
    }
    newlines >= 2
}

fn layout(
    file: FileId,
    text: &str,
    lines: Vec<Line>,
    comments: &[Comment],
) -> Result<String, Diagnostic> {
    let mut placed = vec![Placed::default(); lines.len()];
    let mut tail: Vec<Comment> = Vec::new();
    for c in comments {
        if let Some(l) = lines
            .iter()
            .find(|l| l.anchor.0 < c.start && c.start < l.anchor.1)
        {
            return Err(Diagnostic::new(
                "archc::fmt::comment",
                "this comment sits inside a statement that the formatter puts on one line",
            )
            .at(Span::new(file, c.start, c.end), "this comment has no place")
            .also(
                Span::new(file, l.anchor.0, l.anchor.1),
                "the statement it interrupts",
            )
            .help("move the comment above the statement or after its end"));
        }
        let before = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.anchor.1 <= c.start)
            .max_by_key(|(_, l)| l.anchor.1);
        if let Some((i, l)) = before
            && l.anchor.1 > 0
            && line_of(text, l.anchor.1 - 1) == line_of(text, c.start)
        {
            placed[i].trailing = Some(*c);
            continue;
        }
        let after = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.anchor.0 >= c.end)
            .min_by_key(|(_, l)| l.anchor.0);
        match after {
            Some((i, _)) => placed[i].leading.push(*c),
            None => tail.push(*c),
        }
    }

    // Each output line: its indentation, code, trailing comment, and whether a blank line
    // goes before it.
    struct Out {
        text: String,
        trailing: Option<String>,
        blank: bool,
    }
    let mut out: Vec<Out> = Vec::new();
    let comment_text = |c: &Comment| text[c.start..c.end].to_string();
    let pad = |n: usize| "  ".repeat(n);
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        let p = &placed[i];
        let prev_opens = i > 0 && lines[i - 1].opens;
        let mut first = true;
        for c in &p.leading {
            let indent = if l.closes { l.indent + 1 } else { l.indent };
            let blank = !out.is_empty()
                && ((first && l.network)
                    || (!(first && prev_opens) && blank_before(text, c.start)));
            out.push(Out {
                text: format!("{}{}", pad(indent), comment_text(c)),
                trailing: None,
                blank,
            });
            first = false;
        }
        let blank = !out.is_empty()
            && !l.closes
            && ((first && l.network) || (!(first && prev_opens) && blank_before(text, l.anchor.0)));
        // An empty block with no comments inside prints as `{}`.
        if l.opens
            && p.trailing.is_none()
            && lines.get(i + 1).is_some_and(|n| n.closes)
            && placed[i + 1].leading.is_empty()
        {
            out.push(Out {
                text: format!("{}{}}}", pad(l.indent), l.code),
                trailing: placed[i + 1].trailing.as_ref().map(comment_text),
                blank,
            });
            i += 2;
            continue;
        }
        out.push(Out {
            text: format!("{}{}", pad(l.indent), l.code),
            trailing: p.trailing.as_ref().map(comment_text),
            blank,
        });
        i += 1;
    }
    for c in &tail {
        out.push(Out {
            text: comment_text(c),
            trailing: None,
            blank: !out.is_empty() && blank_before(text, c.start),
        });
    }

    // Align the trailing comments of consecutive lines.
    let mut s = String::new();
    let mut k = 0;
    while k < out.len() {
        let mut end = k + 1;
        if out[k].trailing.is_some() {
            while end < out.len() && out[end].trailing.is_some() && !out[end].blank {
                end += 1;
            }
        }
        let width = out[k..end]
            .iter()
            .map(|o| o.text.chars().count())
            .max()
            .unwrap_or(0);
        for o in &out[k..end] {
            if o.blank {
                s.push('\n');
            }
            s.push_str(&o.text);
            if let Some(t) = &o.trailing {
                let gap = width - o.text.chars().count() + 2;
                s.push_str(&" ".repeat(gap));
                s.push_str(t);
            }
            s.push('\n');
        }
        k = end;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Formats `input`, checks the result is `expect`, that formatting it again changes nothing,
    /// and that every comment is kept, in order.
    #[track_caller]
    fn check(input: &str, expect: &str) {
        let out = format(FileId(0), input).unwrap_or_else(|d| panic!("{}", d.message));
        assert_eq!(out, expect);
        assert_eq!(format(FileId(0), &out).expect("formats again"), out);
        let texts = |t: &str| -> Vec<String> {
            scan_comments(t)
                .iter()
                .map(|c| t[c.start..c.end].to_string())
                .collect()
        };
        assert_eq!(texts(&out), texts(input));
    }

    #[track_caller]
    fn refuse(input: &str, code: &str, at: (usize, usize)) {
        let d = format(FileId(0), input).expect_err("refused");
        assert_eq!(d.code, code, "{}", d.message);
        let (span, _) = d.primary.expect("placed");
        assert_eq!((span.start as usize, span.end as usize), at);
    }

    #[test]
    fn one_statement_per_line() {
        check(
            "network n{input 3x8x8;classes 10 param C=4 form split stem{conv 3x3/2->16 groups C pad 1 bias;maxpool 3x3/2 pad 1}head{avgpool;fc->classes,no_bias}budget{params<=1M;macs>=1_000}}",
            "network n {\n  input 3x8x8\n  classes 10\n  param C = 4\n  form split\n  stem {\n    conv 3x3/2 -> 16, groups C, pad 1, bias\n    maxpool 3x3/2, pad 1\n  }\n  head {\n    avgpool\n    fc -> classes, no_bias\n  }\n  budget {\n    params <= 1M\n    macs >= 1_000\n  }\n}\n",
        );
    }

    #[test]
    fn templates_and_stages_in_canonical_order() {
        check(
            "network n {\n    block b( w ,o ) { shortcut identity\n conv 1x1/stride -> w\n conv 1x1->o }\n  stages b( w = 2*(C+1), o=w ) { s1: w = 4 stride 2 depth 1\n rule double_on_downsample( w )\n rule keep_width }\n}",
            "network n {\n  block b(w, o) {\n    conv 1x1/stride -> w\n    conv 1x1 -> o\n    shortcut identity\n  }\n  stages b(w = 2 * (C + 1), o = w) {\n    rule double_on_downsample(w)\n    rule keep_width\n    s1: depth 1, stride 2, w = 4\n  }\n}\n",
        );
    }

    #[test]
    fn parentheses_keep_the_tree() {
        check(
            "network n {\n  param A = (a * b) + c\n  param B = a + (b - c)\n  param C = a - (b + c)\n  param D = (a - b) - c\n  param E = a / (b * c)\n  param F = ((a))\n  stem { conv 1x1/(a + 1) -> 8 }\n}\n",
            "network n {\n  param A = a * b + c\n  param B = a + (b - c)\n  param C = a - (b + c)\n  param D = a - b - c\n  param E = a / (b * c)\n  param F = a\n  stem {\n    conv 1x1/(a + 1) -> 8\n  }\n}\n",
        );
    }

    /// Error messages quote expressions with `Display`; it must keep the tree too.
    #[test]
    fn display_keeps_the_parentheses_a_tree_needs() {
        let f = crate::syntax::parse(
            FileId(0),
            "network n { param A = a + (b - c); param B = a + (b * c); param D = a - (b + c) }",
        )
        .expect("parses");
        let shown: Vec<String> = f.networks[0]
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Param(_, e) => Some(e.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(shown, ["a + (b - c)", "a + b * c", "a - (b + c)"]);
    }

    #[test]
    fn comments_stay_where_they_belong() {
        check(
            "// file\nimport \"a//b.arch\" # why\nnetwork n extends m { // first\n\n\n  // lead\n  param C = 1 // c\n  param dd = 22 // dd\n\n  stem { conv 1x1 -> 8 }  # stem\n  head { }  // empty\n  budget { // opens\n  // inside, last\n  }\n}\n// end\n",
            "// file\nimport \"a//b.arch\"  # why\n\nnetwork n extends m {  // first\n  // lead\n  param C = 1    // c\n  param dd = 22  // dd\n\n  stem {\n    conv 1x1 -> 8\n  }         # stem\n  head {}   // empty\n  budget {  // opens\n    // inside, last\n  }\n}\n// end\n",
        );
    }

    #[test]
    fn blank_lines_are_kept_once_and_networks_are_apart() {
        check(
            "network a {\n\n  param C = 1\n\n\n\n  param D = 2\n\n}\nnetwork b {}\r\n// b2\r\nnetwork c {\r  param E = 3\r\r  param F = 4\r\n\r\n  param G = 5 }",
            "network a {\n  param C = 1\n\n  param D = 2\n}\n\nnetwork b {}\n\n// b2\nnetwork c {\n  param E = 3\n\n  param F = 4\n\n  param G = 5\n}\n",
        );
    }

    #[test]
    fn a_comment_inside_a_statement_is_refused() {
        let text = "network n {\n  conv_free\n}";
        refuse(text, "archc::syntax", (14, 23));
        let text = "network n {\n  param C = 1 + // why\n    2\n}\n";
        refuse(text, "archc::fmt::comment", (28, 34));
        let text = "network n // why\n  extends m {}\n";
        refuse(text, "archc::fmt::comment", (10, 16));
    }

    #[test]
    fn a_file_that_does_not_build_its_tree_is_refused() {
        refuse(
            "network n {\n  param C = 99999999999999999999\n}\n",
            "archc::syntax::int",
            (24, 44),
        );
    }

    #[test]
    fn is_formatted_says_whether_formatting_changes_anything() {
        assert!(is_formatted("network n {}\n"));
        assert!(!is_formatted("network n { }\n"));
        assert!(!is_formatted("network n {"));
    }
}
