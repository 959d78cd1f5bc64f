//! What the server knows about one open document: the spec parsed with its imports, every
//! network it defines compiled, the diagnostics, and the answers to hover, inlay-hint,
//! definition, symbol and completion requests. Built afresh on every change (the whole pipeline
//! takes well under a millisecond on the largest shipped spec).

use super::text::LineIndex;
use crate::cost::{Cost, grouped, si};
use crate::graph::OpKind;
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::{self, Item, Network};
use crate::{Compiled, Diagnostic, Overrides, Spec};
use lsp_types as lsp;
use lsp_types::Url;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The analysis of one document version.
#[derive(Debug)]
pub struct Analysis {
    /// The document's address.
    pub uri: Url,
    /// Its text.
    pub text: String,
    /// Line starts of `text`.
    pub index: LineIndex,
    /// The spec, if it parses (with its imports).
    spec: Option<Spec>,
    /// The root file's networks, compiled where they compile.
    nets: Vec<Option<Compiled>>,
    /// Errors and broken budgets, as LSP diagnostics.
    pub diagnostics: Vec<lsp::Diagnostic>,
    /// Names for completion: from this version, or the last one that parsed.
    names: Vec<(String, lsp::CompletionItemKind, String)>,
}

/// The root file of every analysis: the open document itself.
const ROOT: FileId = FileId(0);

/// Keywords, layer kinds and the words that follow them, for completion.
const WORDS: &[(&str, &str)] = &[
    ("network", "network NAME [extends BASE] { ... }"),
    ("extends", "extends BASE"),
    ("import", "import \"file.arch\""),
    ("input", "input CxHxW"),
    ("classes", "classes N"),
    ("param", "param NAME = value"),
    ("form", "form grouped | concat | split"),
    ("stem", "stem { conv ...; maxpool ... }"),
    ("block", "block NAME(params) { conv ... }"),
    (
        "stages",
        "stages TEMPLATE(args) { rule ...; LABEL: depth N }",
    ),
    ("head", "head { avgpool; fc -> classes }"),
    ("budget", "budget { params <= 25.1M }"),
    ("rule", "rule double_on_downsample | keep_width"),
    ("shortcut", "shortcut auto | identity | projection"),
    ("depth", "depth N (blocks in a stage)"),
    ("stride", "stride N (of a stage's first block)"),
    ("groups", "groups N (of a conv)"),
    ("pad", "pad N"),
    ("bias", "a conv with bias"),
    ("no_bias", "an fc without bias"),
    ("grouped", "form: one grouped conv (paper Fig. 3c)"),
    ("concat", "form: paths concatenated (Fig. 3b)"),
    ("split", "form: split-transform-merge (Fig. 3a)"),
    (
        "auto",
        "shortcut: identity where shapes agree, else projection",
    ),
    ("identity", "shortcut: always identity"),
    ("projection", "shortcut: always a 1x1 projection"),
    (
        "double_on_downsample",
        "rule 2: widths double at each downsampling",
    ),
    ("keep_width", "rule: keep widths from stage to stage"),
    ("params", "budget metric: learnable parameters"),
    ("buffers", "budget metric: batch-norm running statistics"),
    ("macs", "budget metric: multiply-adds"),
    ("flops", "budget metric: 2 x multiply-adds"),
    ("activations", "budget metric: conv and fc output elements"),
];

/// Layer kinds, for completion.
const LAYERS: &[(&str, &str)] = &[
    (
        "conv",
        "conv KxK[/stride] -> width[, groups G][, pad P][, bias]",
    ),
    ("maxpool", "maxpool KxK[/stride][, pad P]"),
    ("avgpool", "global average pooling"),
    ("fc", "fc -> N[, no_bias]"),
];

impl Analysis {
    /// Parses and compiles `text`, the content of `uri`; imports resolve against the
    /// document's folder. `previous` lends its names to completion when `text` does not parse.
    pub fn new(uri: Url, text: String, previous: Option<&Analysis>) -> Analysis {
        let path = (uri.scheme() == "file")
            .then(|| uri.to_file_path().ok())
            .flatten();
        let name = path
            .as_ref()
            .map_or_else(|| uri.to_string(), |p| p.display().to_string());
        let base = path.as_ref().and_then(|p| p.parent().map(PathBuf::from));
        let index = LineIndex::new(&text);
        let mut a = Analysis {
            uri,
            index,
            spec: None,
            nets: Vec::new(),
            diagnostics: Vec::new(),
            names: Vec::new(),
            text: String::new(),
        };
        match Spec::from_text_in(&name, &text, base.as_deref()) {
            Err(f) => {
                a.text = text;
                let fallback = None;
                a.diagnostics = f
                    .diagnostics
                    .iter()
                    .map(|d| a.convert(&f.sources, d, lsp::DiagnosticSeverity::ERROR, fallback))
                    .collect();
                a.names = previous.map(|p| p.names.clone()).unwrap_or_default();
            }
            Ok(spec) => {
                a.text = text;
                let mut diagnostics = Vec::new();
                let roots: Vec<String> = spec.networks().iter().map(|s| s.to_string()).collect();
                for name in &roots {
                    match spec.compile(name, &Overrides::default()) {
                        Ok(c) => {
                            let extends = a.network(&spec, name).and_then(|n| n.extends.as_ref());
                            for d in c.violations() {
                                diagnostics.push(a.convert(
                                    &spec.sources,
                                    &d,
                                    lsp::DiagnosticSeverity::WARNING,
                                    extends.map(|e| e.span),
                                ));
                            }
                            a.nets.push(Some(c));
                        }
                        Err(f) => {
                            for d in &f.diagnostics {
                                diagnostics.push(a.convert(
                                    &f.sources,
                                    d,
                                    lsp::DiagnosticSeverity::ERROR,
                                    None,
                                ));
                            }
                            a.nets.push(None);
                        }
                    }
                }
                diagnostics.dedup();
                a.diagnostics = diagnostics;
                a.names = names(&spec);
                a.spec = Some(spec);
            }
        }
        a
    }

    fn root(&self) -> Option<&ast::File> {
        self.spec.as_ref().and_then(|s| s.files().next())
    }

    fn network<'s>(&self, spec: &'s Spec, name: &str) -> Option<&'s Network> {
        spec.files()
            .next()
            .and_then(|f| f.networks.iter().find(|n| n.name.name == name))
    }

    fn range(&self, span: Span) -> lsp::Range {
        self.index
            .range(&self.text, span.start as usize, span.end as usize)
    }

    /// The address and range of a span in any file of the spec.
    fn location(&self, sources: &SourceMap, span: Span) -> lsp::Location {
        if span.file == ROOT {
            return lsp::Location::new(self.uri.clone(), self.range(span));
        }
        let file = sources.try_file(span.file);
        let uri = file
            .and_then(|f| f.path.as_ref())
            .and_then(|p| Url::from_file_path(p).ok())
            .unwrap_or_else(|| self.uri.clone());
        let range = file.map_or_else(lsp::Range::default, |f| {
            LineIndex::new(&f.text).range(&f.text, span.start as usize, span.end as usize)
        });
        lsp::Location::new(uri, range)
    }

    /// Where a diagnostic of another file shows in this one: `fallback` if given, else the
    /// `import` line of that file (or the first), else the start.
    fn place(&self, sources: &SourceMap, file: FileId, fallback: Option<Span>) -> lsp::Range {
        if let Some(s) = fallback.filter(|s| s.file == ROOT) {
            return self.range(s);
        }
        let Some(root) = self.root() else {
            // The spec did not parse: the failing file is the root or an import of it; find the
            // import by scanning the text.
            let name = sources
                .try_file(file)
                .and_then(|f| f.path.as_ref())
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned());
            if let Some(n) = name
                && let Some(at) = self.text.find(&format!("{n}\""))
            {
                let start = self.text[..at].rfind('"').unwrap_or(at);
                return self.index.range(&self.text, start, at + n.len() + 1);
            }
            return lsp::Range::default();
        };
        let path = sources.try_file(file).and_then(|f| f.path.as_ref());
        let import = root
            .imports
            .iter()
            .find(|i| path.is_some_and(|p| p.ends_with(&i.path) || p.ends_with(trim_dots(&i.path))))
            .or(root.imports.first());
        import.map_or_else(lsp::Range::default, |i| self.range(i.span))
    }

    fn convert(
        &self,
        sources: &SourceMap,
        d: &Diagnostic,
        severity: lsp::DiagnosticSeverity,
        fallback: Option<Span>,
    ) -> lsp::Diagnostic {
        let mut related = Vec::new();
        let range = match &d.primary {
            Some((span, _)) if span.file == ROOT => self.range(*span),
            Some((span, label)) => {
                related.push(lsp::DiagnosticRelatedInformation {
                    location: self.location(sources, *span),
                    message: label.clone(),
                });
                self.place(sources, span.file, fallback)
            }
            None => fallback
                .filter(|s| s.file == ROOT)
                .map_or_else(lsp::Range::default, |s| self.range(s)),
        };
        for (span, label) in &d.secondary {
            related.push(lsp::DiagnosticRelatedInformation {
                location: self.location(sources, *span),
                message: label.clone(),
            });
        }
        let mut message = d.message.clone();
        if let Some(h) = &d.help {
            message = format!("{message}\nhelp: {h}");
        }
        lsp::Diagnostic {
            range,
            severity: Some(severity),
            code: Some(lsp::NumberOrString::String(d.code.to_string())),
            code_description: None,
            source: Some("archc".into()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            tags: None,
            data: None,
        }
    }

    /// The byte offset of a position.
    pub fn offset(&self, p: lsp::Position) -> usize {
        self.index.offset(&self.text, p)
    }

    /// The identifier at `at`, with its range.
    fn word(&self, at: usize) -> Option<(&str, usize, usize)> {
        let b = self.text.as_bytes();
        let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let mut start = at.min(b.len());
        while start > 0 && is_ident(b[start - 1]) {
            start -= 1;
        }
        let mut end = at.min(b.len());
        while end < b.len() && is_ident(b[end]) {
            end += 1;
        }
        (start < end && !b[start].is_ascii_digit()).then(|| (&self.text[start..end], start, end))
    }

    /// The root network around `at`, with its compilation.
    fn enclosing(&self, at: usize) -> Option<(&Network, Option<&Compiled>)> {
        let root = self.root()?;
        let i = root
            .networks
            .iter()
            .position(|n| n.span.start as usize <= at && at <= n.span.end as usize)?;
        Some((&root.networks[i], self.nets.get(i).and_then(Option::as_ref)))
    }

    /// The innermost statement around `at` in network `n`.
    fn statement<'n>(&self, n: &'n Network, at: usize) -> Option<Stmt<'n>> {
        let mut best: Option<(usize, Stmt<'n>)> = None;
        let mut consider = |span: Span, s: Stmt<'n>| {
            // A statement counts from the start of its line (its keyword).
            let start = self.text[..(span.start as usize).min(self.text.len())]
                .rfind(['\n', '\r'])
                .map_or(0, |i| i + 1);
            if start <= at && at <= span.end as usize {
                let len = span.end as usize - start;
                if best.as_ref().is_none_or(|(l, _)| len < *l) {
                    best = Some((len, s));
                }
            }
        };
        for item in &n.items {
            match item {
                Item::Input(d) => consider(d.span, Stmt::Input(d)),
                Item::Classes(e) => consider(e.span, Stmt::Classes),
                Item::Param(name, e) => consider(name.span.to(e.span), Stmt::Param(name, e)),
                Item::Form(..) => {}
                Item::Stem(layers, sp) | Item::Head(layers, sp) => {
                    consider(*sp, Stmt::Group(*sp));
                    for l in layers {
                        consider(layer_span(l), Stmt::Layer(layer_span(l)));
                    }
                }
                Item::Block(b) => {
                    consider(b.span, Stmt::Block(b));
                    for c in &b.convs {
                        consider(c.span, Stmt::TemplateConv(b, c));
                    }
                }
                Item::Stages(st) => {
                    consider(st.span, Stmt::Stages(st));
                    for s in &st.stages {
                        consider(s.span, Stmt::Stage(s));
                    }
                }
                Item::Budget(limits, sp) => {
                    consider(*sp, Stmt::Budget);
                    for l in limits {
                        consider(l.span, Stmt::Limit(l));
                    }
                }
            }
        }
        best.map(|(_, s)| s)
    }

    /// Markdown for the hover at `p`, with the range it is about.
    pub fn hover(&self, p: lsp::Position) -> Option<lsp::Hover> {
        let at = self.offset(p);
        let (net, compiled) = self.enclosing(at)?;
        let c = compiled?;
        let word = self.word(at);
        let stmt = self.statement(net, at);
        let md = |value: String, start: usize, end: usize| lsp::Hover {
            contents: lsp::HoverContents::Markup(lsp::MarkupContent {
                kind: lsp::MarkupKind::Markdown,
                value,
            }),
            range: Some(self.index.range(&self.text, start, end)),
        };
        // A name under the cursor: a template parameter, a stage argument, a parameter.
        if let Some((w, ws, we)) = word {
            let in_block = match &stmt {
                Some(Stmt::Block(b)) | Some(Stmt::TemplateConv(b, _)) => Some(*b),
                _ => None,
            };
            let formal = in_block.is_some_and(|b| b.params.iter().any(|p| p.name == w));
            let stage_arg = c
                .graph
                .stages
                .iter()
                .any(|s| s.args.iter().any(|(n, _)| n == w));
            let in_args = matches!(stmt, Some(Stmt::Stages(_)) | Some(Stmt::Stage(_)));
            if formal || (in_args && stage_arg) {
                return Some(md(arg_table(c, Some(w)), ws, we));
            }
            if let Some((_, v)) = c.model.params.iter().find(|(n, _)| n == w) {
                let mut s = format!("**{w}** = {}", grouped(*v));
                if let Some(Stmt::Param(name, e)) = &stmt
                    && name.name == w
                    && !matches!(e.kind, ast::ExprKind::Int(_))
                {
                    let _ = write!(s, " (`{}`)", crate::syntax::fmt::expr(e));
                }
                s.push_str(&format!("\n\nparameter of network `{}`", c.model.name));
                return Some(md(s, ws, we));
            }
            if w == "classes" && matches!(stmt, Some(Stmt::Classes) | Some(Stmt::Layer(_))) {
                return Some(md(format!("**classes** = {}", c.model.classes), ws, we));
            }
            if w == net.name.name {
                return Some(md(network_md(c), ws, we));
            }
        }
        let stmt = stmt?;
        let (text, span) = match stmt {
            Stmt::Input(d) => (
                format!(
                    "**input** {}×{}×{}\n\nthe network's output: {}",
                    c.model.input[0],
                    c.model.input[1],
                    c.model.input[2],
                    shape(c.output())
                ),
                d.span,
            ),
            Stmt::Classes => return None,
            Stmt::Param(name, _) => {
                let v = c.model.params.iter().find(|(n, _)| *n == name.name)?.1;
                (format!("**{}** = {}", name.name, grouped(v)), name.span)
            }
            Stmt::Group(sp) => {
                let i = c
                    .graph
                    .nodes()
                    .find(|(_, n)| n.span.start >= sp.start && n.span.end <= sp.end)?
                    .1
                    .stage;
                let s = &c.report.stages[i];
                (
                    format!(
                        "**{}**: output {}\n\n{}",
                        s.name,
                        shape(s.output),
                        cost_lines(&s.cost, Some(&c.report.total))
                    ),
                    sp,
                )
            }
            Stmt::Layer(sp) => (layer_md(c, sp), sp),
            Stmt::Block(b) => (
                format!("**block {}**\n\n{}", b.name.name, arg_table(c, None)),
                b.name.span,
            ),
            Stmt::TemplateConv(b, conv) => (template_conv_md(c, b, conv)?, conv.span),
            Stmt::Stages(st) => (
                format!("**stages {}**\n\n{}", st.template.name, arg_table(c, None)),
                st.template.span,
            ),
            Stmt::Stage(s) => (stage_md(c, &s.label.name)?, s.span),
            Stmt::Budget => {
                let mut s = String::from("**budget**\n");
                for b in &c.report.budgets {
                    let _ = write!(s, "\n- {}", verdict_md(b));
                }
                (s, net.name.span)
            }
            Stmt::Limit(l) => {
                let b = c
                    .report
                    .budgets
                    .iter()
                    .find(|b| b.limit.origin.span() == Some(l.span))?;
                (verdict_md(b), l.span)
            }
        };
        Some(md(text, span.start as usize, span.end as usize))
    }

    /// Inlay hints in `range`: each stage's output shape and cost, each budget line's figure,
    /// each network's totals.
    pub fn inlay_hints(&self, range: lsp::Range) -> Vec<lsp::InlayHint> {
        let Some(root) = self.root() else {
            return Vec::new();
        };
        let (from, to) = (self.offset(range.start), self.offset(range.end));
        let mut hints = Vec::new();
        let mut hint = |at: usize, label: String| {
            if from <= at && at <= to {
                hints.push(lsp::InlayHint {
                    position: self.index.position(&self.text, at),
                    label: lsp::InlayHintLabel::String(label),
                    kind: None,
                    text_edits: None,
                    tooltip: None,
                    padding_left: Some(true),
                    padding_right: None,
                    data: None,
                });
            }
        };
        for (n, c) in root.networks.iter().zip(&self.nets) {
            let Some(c) = c else { continue };
            let open = self.text[n.span.start as usize..n.span.end as usize]
                .find('{')
                .map_or(n.name.span.end as usize, |i| n.span.start as usize + i + 1);
            hint(
                open,
                format!(
                    "{} params, {} MACs",
                    si(c.report.total.params),
                    si(c.report.total.macs)
                ),
            );
            for item in &n.items {
                match item {
                    Item::Stages(st) => {
                        for s in &st.stages {
                            let Some(sc) = c
                                .report
                                .stages
                                .iter()
                                .find(|x| x.label.as_deref() == Some(s.label.name.as_str()))
                            else {
                                continue;
                            };
                            hint(
                                s.span.end as usize,
                                format!(
                                    "→ {}, {} params, {} MACs",
                                    shape(sc.output),
                                    si(sc.cost.params),
                                    si(sc.cost.macs)
                                ),
                            );
                        }
                    }
                    Item::Budget(limits, _) => {
                        for l in limits {
                            if let Some(b) = c
                                .report
                                .budgets
                                .iter()
                                .find(|b| b.limit.origin.span() == Some(l.span))
                            {
                                let verdict = if b.ok { "holds" } else { "broken" };
                                hint(
                                    l.span.end as usize,
                                    format!("= {} ({verdict})", si(b.actual)),
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        hints
    }

    /// Where the name at `p` is defined: a template, a parameter, a template parameter, an
    /// imported file, a base network.
    pub fn definition(&self, p: lsp::Position) -> Option<lsp::Location> {
        let spec = self.spec.as_ref()?;
        let root = self.root()?;
        let at = self.offset(p);
        if let Some(imp) = root
            .imports
            .iter()
            .find(|i| i.span.start as usize <= at && at <= i.span.end as usize)
        {
            let path = self.uri.to_file_path().ok()?.parent()?.join(&imp.path);
            let path = crate::normalize(&path);
            let uri = Url::from_file_path(path).ok()?;
            return Some(lsp::Location::new(uri, lsp::Range::default()));
        }
        let (w, _, _) = self.word(at)?;
        let (net, _) = self.enclosing(at)?;
        let all: Vec<&Network> = spec.files().flat_map(|f| &f.networks).collect();
        let find = |name: &str| all.iter().copied().find(|n| n.name.name == name);
        let chain = {
            let mut chain = vec![net];
            while let Some(base) = chain.last().and_then(|n| n.extends.as_ref()) {
                match find(&base.name) {
                    Some(b) if !chain.iter().any(|c| std::ptr::eq(*c, b)) => chain.push(b),
                    _ => break,
                }
            }
            chain
        };
        let loc = |span: Span| Some(self.location(&spec.sources, span));
        if let Some(base) = &net.extends
            && base.span.start as usize <= at
            && at <= base.span.end as usize
        {
            return loc(find(&base.name)?.name.span);
        }
        let stmt = self.statement(net, at);
        let template = |name: &str| {
            chain.iter().find_map(|n| {
                n.items.iter().find_map(|i| match i {
                    Item::Block(b) if b.name.name == name => Some(b),
                    _ => None,
                })
            })
        };
        let stages = chain.iter().find_map(|n| {
            n.items.iter().find_map(|i| match i {
                Item::Stages(s) => Some(s),
                _ => None,
            })
        });
        // Inside a template: its own parameters first.
        if let Some(Stmt::Block(b)) | Some(Stmt::TemplateConv(b, _)) = stmt
            && let Some(f) = b.params.iter().find(|f| f.name == w)
        {
            return loc(f.span);
        }
        if let Some(b) = template(w) {
            return loc(b.name.span);
        }
        // A stage argument names a parameter of the stages' template.
        if let Some(Stmt::Stages(_)) | Some(Stmt::Stage(_)) = stmt
            && let Some(b) = stages.and_then(|s| template(&s.template.name))
            && let Some(f) = b.params.iter().find(|f| f.name == w)
        {
            let arg_name =
                self.text[..at].trim_end_matches(|c: char| c.is_alphanumeric() || c == '_');
            let is_value = arg_name.trim_end().ends_with(['=', '*', '+', '-', '/']);
            if !is_value || !chain.iter().any(|n| param_of(n, w).is_some()) {
                return loc(f.span);
            }
        }
        if let Some(p) = chain.iter().find_map(|n| param_of(n, w)) {
            return loc(p.span);
        }
        if w == "classes" {
            return chain.iter().find_map(|n| {
                n.items.iter().find_map(|i| match i {
                    Item::Classes(e) => loc(e.span),
                    _ => None,
                })
            });
        }
        None
    }

    /// The outline: networks with their parameters, templates, stages, stem, head and budget.
    pub fn symbols(&self) -> Vec<lsp::DocumentSymbol> {
        let Some(root) = self.root() else {
            return Vec::new();
        };
        root.networks
            .iter()
            .map(|n| {
                let mut children = Vec::new();
                for item in &n.items {
                    match item {
                        Item::Param(name, e) => children.push(self.symbol(
                            &name.name,
                            Some(format!("= {}", crate::syntax::fmt::expr(e))),
                            lsp::SymbolKind::CONSTANT,
                            name.span.to(e.span),
                            name.span,
                            Vec::new(),
                        )),
                        Item::Block(b) => {
                            let params: Vec<&str> =
                                b.params.iter().map(|p| p.name.as_str()).collect();
                            children.push(self.symbol(
                                &b.name.name,
                                Some(format!("block ({})", params.join(", "))),
                                lsp::SymbolKind::FUNCTION,
                                b.span,
                                b.name.span,
                                Vec::new(),
                            ));
                        }
                        Item::Stages(st) => {
                            let stages = st
                                .stages
                                .iter()
                                .map(|s| {
                                    self.symbol(
                                        &s.label.name,
                                        None,
                                        lsp::SymbolKind::FIELD,
                                        s.span,
                                        s.label.span,
                                        Vec::new(),
                                    )
                                })
                                .collect();
                            children.push(self.symbol(
                                "stages",
                                Some(st.template.name.clone()),
                                lsp::SymbolKind::NAMESPACE,
                                st.span,
                                st.template.span,
                                stages,
                            ));
                        }
                        Item::Stem(_, sp) | Item::Head(_, sp) | Item::Budget(_, sp) => {
                            let name = match item {
                                Item::Stem(..) => "stem",
                                Item::Head(..) => "head",
                                _ => "budget",
                            };
                            children.push(self.symbol(
                                name,
                                None,
                                lsp::SymbolKind::OBJECT,
                                *sp,
                                Span::new(
                                    sp.file,
                                    sp.start as usize,
                                    sp.start as usize + name.len(),
                                ),
                                Vec::new(),
                            ));
                        }
                        Item::Input(_) | Item::Classes(_) | Item::Form(..) => {}
                    }
                }
                self.symbol(
                    &n.name.name,
                    n.extends.as_ref().map(|b| format!("extends {}", b.name)),
                    lsp::SymbolKind::CLASS,
                    n.span,
                    n.name.span,
                    children,
                )
            })
            .collect()
    }

    fn symbol(
        &self,
        name: &str,
        detail: Option<String>,
        kind: lsp::SymbolKind,
        span: Span,
        selection: Span,
        children: Vec<lsp::DocumentSymbol>,
    ) -> lsp::DocumentSymbol {
        #[allow(deprecated)]
        lsp::DocumentSymbol {
            name: name.to_string(),
            detail,
            kind,
            tags: None,
            deprecated: None,
            range: self.range(span),
            selection_range: self.range(selection),
            children: (!children.is_empty()).then_some(children),
        }
    }

    /// Completion: keywords, layer kinds, and the template and parameter names in scope.
    pub fn completion(&self) -> Vec<lsp::CompletionItem> {
        let item = |label: &str, kind, detail: &str| lsp::CompletionItem {
            label: label.to_string(),
            kind: Some(kind),
            detail: Some(detail.to_string()),
            ..lsp::CompletionItem::default()
        };
        let mut out: Vec<lsp::CompletionItem> = WORDS
            .iter()
            .map(|(w, d)| item(w, lsp::CompletionItemKind::KEYWORD, d))
            .collect();
        out.extend(
            LAYERS
                .iter()
                .map(|(w, d)| item(w, lsp::CompletionItemKind::KEYWORD, d)),
        );
        out.extend(self.names.iter().map(|(n, k, d)| item(n, *k, d)));
        out
    }
}

/// The names a spec defines: templates, their parameters, network parameters, networks.
fn names(spec: &Spec) -> Vec<(String, lsp::CompletionItemKind, String)> {
    let mut out: Vec<(String, lsp::CompletionItemKind, String)> = Vec::new();
    let mut add = |name: &str, kind, detail: String| {
        if !out.iter().any(|(n, _, _)| n == name) {
            out.push((name.to_string(), kind, detail));
        }
    };
    for f in spec.files() {
        for n in &f.networks {
            add(
                &n.name.name,
                lsp::CompletionItemKind::CLASS,
                "network".into(),
            );
            for item in &n.items {
                match item {
                    Item::Param(name, e) => add(
                        &name.name,
                        lsp::CompletionItemKind::CONSTANT,
                        format!("param {} = {}", name.name, crate::syntax::fmt::expr(e)),
                    ),
                    Item::Block(b) => {
                        let params: Vec<&str> = b.params.iter().map(|p| p.name.as_str()).collect();
                        add(
                            &b.name.name,
                            lsp::CompletionItemKind::FUNCTION,
                            format!("block {}({})", b.name.name, params.join(", ")),
                        );
                        for p in &b.params {
                            add(
                                &p.name,
                                lsp::CompletionItemKind::VARIABLE,
                                format!("parameter of template {}", b.name.name),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// `../resnet/x.arch` → `resnet/x.arch`, for matching a path that was normalised.
fn trim_dots(p: &str) -> &str {
    let mut p = p;
    while let Some(rest) = p.strip_prefix("../").or_else(|| p.strip_prefix("./")) {
        p = rest;
    }
    p
}

fn param_of<'n>(n: &'n Network, name: &str) -> Option<&'n ast::Ident> {
    n.items.iter().find_map(|i| match i {
        Item::Param(p, _) if p.name == name => Some(p),
        _ => None,
    })
}

/// A statement of a network, for hover.
enum Stmt<'n> {
    Input(&'n ast::Dims),
    Classes,
    Param(&'n ast::Ident, &'n ast::Expr),
    /// A stem or head.
    Group(Span),
    Layer(Span),
    Block(&'n ast::BlockDef),
    TemplateConv(&'n ast::BlockDef, &'n ast::Conv),
    Stages(&'n ast::Stages),
    Stage(&'n ast::Stage),
    Budget,
    Limit(&'n ast::Limit),
}

fn layer_span(l: &ast::Layer) -> Span {
    match l {
        ast::Layer::Conv(c) => c.span,
        ast::Layer::MaxPool { span, .. } | ast::Layer::Fc { span, .. } => *span,
        ast::Layer::AvgPool(span) => *span,
    }
}

fn shape(s: [u64; 3]) -> String {
    format!("{}×{}×{}", s[0], s[1], s[2])
}

fn pct(part: u64, total: u64) -> String {
    format!("{:.1}%", part as f64 * 100.0 / total.max(1) as f64)
}

/// Params and multiply-adds, with their share of `total` if given.
fn cost_lines(c: &Cost, total: Option<&Cost>) -> String {
    let share = |part: u64, all: Option<u64>| {
        all.map(|a| format!(", {} of the network", pct(part, a)))
            .unwrap_or_default()
    };
    format!(
        "params: {} ({}){}  \nMACs (multiply-adds): {} ({}){}",
        grouped(c.params),
        si(c.params),
        share(c.params, total.map(|t| t.params)),
        grouped(c.macs),
        si(c.macs),
        share(c.macs, total.map(|t| t.macs)),
    )
}

fn network_md(c: &Compiled) -> String {
    format!(
        "**network {}**: input {}, output {}\n\n{}",
        c.model.name,
        shape(c.model.input),
        shape(c.output()),
        cost_lines(&c.report.total, None)
    )
}

fn stage_md(c: &Compiled, label: &str) -> Option<String> {
    let i = c
        .graph
        .stages
        .iter()
        .position(|s| s.label.as_deref() == Some(label))?;
    let info = &c.graph.stages[i];
    let cost = &c.report.stages[i];
    Some(format!(
        "**{label}** (`{}`): {} × {}({}), stride {}\n\noutput {}  \n{}",
        info.name,
        info.depth,
        info.template.as_deref().unwrap_or("block"),
        info.args_text(),
        info.stride,
        shape(cost.output),
        cost_lines(&cost.cost, Some(&c.report.total))
    ))
}

/// The template arguments of every stage (only `only`'s column if given).
fn arg_table(c: &Compiled, only: Option<&str>) -> String {
    let stages: Vec<_> = c
        .graph
        .stages
        .iter()
        .filter(|s| s.template.is_some())
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for s in &stages {
        for (n, _) in &s.args {
            if only.is_none_or(|o| o == n) && !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let mut t = String::new();
    if let Some(o) = only {
        let _ = writeln!(t, "**{o}** in each stage (after the template rules)\n");
    }
    let _ = writeln!(t, "| stage | depth | stride | {} |", names.join(" | "));
    let _ = writeln!(t, "|---|--:|--:|{}", "--:|".repeat(names.len()));
    for s in stages {
        let vals: Vec<String> = names
            .iter()
            .map(|n| {
                s.args
                    .iter()
                    .find(|(a, _)| a == n)
                    .map_or_else(|| "—".to_string(), |(_, v)| v.to_string())
            })
            .collect();
        let _ = writeln!(
            t,
            "| {} (`{}`) | {} | {} | {} |",
            s.label.as_deref().unwrap_or(&s.name),
            s.name,
            s.depth,
            s.stride,
            vals.join(" | ")
        );
    }
    t
}

/// A stem or head statement: the nodes it became.
fn layer_md(c: &Compiled, span: Span) -> String {
    let mut t = String::from("| layer | op | output | params | MACs |\n|---|---|---|--:|--:|\n");
    let mut total = Cost::default();
    for (n, node) in c.graph.nodes().filter(|(_, n)| n.span == span) {
        let cost = c.report.layers[n.index()].cost;
        total = total.checked_add(cost).unwrap_or(total);
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} | {} |",
            node.path,
            crate::emit::report::describe(&c.graph, n),
            shape(node.shape.to_array()),
            grouped(cost.params),
            grouped(cost.macs)
        );
    }
    format!("{t}\n{}", cost_lines(&total, Some(&c.report.total)))
}

/// A statement of a template: what it became in each stage.
fn template_conv_md(c: &Compiled, b: &ast::BlockDef, conv: &ast::Conv) -> Option<String> {
    let mut t = format!(
        "**`{}`** in template `{}`, in each stage (params and MACs summed over its blocks, batch-norm included)\n\n",
        crate::syntax::fmt::conv(conv),
        b.name.name
    );
    t.push_str(
        "| stage | args | first block | output | params | MACs |\n|---|---|---|---|--:|--:|\n",
    );
    let mut any = false;
    for (i, info) in c.graph.stages.iter().enumerate() {
        let nodes: Vec<_> = c
            .graph
            .nodes()
            .filter(|(_, n)| n.stage == i && n.span == conv.span)
            .collect();
        let Some(&(first, node)) = nodes.iter().find(|(_, n)| n.op.kind() == OpKind::Conv) else {
            continue;
        };
        any = true;
        let mut cost = Cost::default();
        for (n, _) in &nodes {
            cost = cost
                .checked_add(c.report.layers[n.index()].cost)
                .unwrap_or(cost);
        }
        let _ = writeln!(
            t,
            "| {} (`{}`) | {} | {} | {} | {} | {} |",
            info.label.as_deref().unwrap_or(&info.name),
            info.name,
            info.args_text(),
            crate::emit::report::describe(&c.graph, first),
            shape(node.shape.to_array()),
            si(cost.params),
            si(cost.macs)
        );
    }
    any.then_some(t)
}

fn verdict_md(b: &crate::cost::budget::Verdict) -> String {
    let verdict = if b.ok {
        format!("holds, {} to spare ({})", grouped(b.slack), b.percent())
    } else {
        format!(
            "**broken**: {} {} ({})",
            grouped(b.excess),
            b.limit.cmp.broken_word(),
            b.percent()
        )
    };
    format!(
        "`{} {} {}`: the network has {} {} ({}); {verdict}",
        b.limit.figure.name(),
        b.limit.cmp.symbol(),
        b.limit.written,
        grouped(b.actual),
        b.limit
            .figure
            .unit(crate::cost::convention::Convention::Torchvision),
        si(b.actual)
    )
}
