//! The `resnext!` proc-macro. Use it through `archc-runtime`, which re-exports it and provides
//! everything the generated code names: `archc_runtime::resnext!`.
//!
//! See [`resnext!`] for the syntax.
#![forbid(unsafe_code)]

use archc::cost::budget::{Cmp, Figure, Limit, Origin};
use archc::cost::convention::Convention;
use archc::emit::rust::{self, Names};
use archc::{Diagnostic, Failure, Overrides, Spec};
use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use std::path::PathBuf;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, LitStr, Token, Visibility, braced};

/// Generates a typed tch model from an archc spec at compile time.
///
/// ```text
/// archc_runtime::resnext! {
///     /// ResNeXt-50 (32×4d), as torchvision's.
///     pub struct ResNeXt50 = "specs/resnext/resnext50_32x4d.arch";
/// }
///
/// // A variant: parameters, the block form and budgets overridden in code.
/// archc_runtime::resnext! {
///     pub struct ResNeXt50x8 = "specs/resnext/resnext50_32x4d.arch"
///         where C = 8, d = 14, params <= 25.7M, macs <= 4.3G;
/// }
///
/// // An inline spec (use `//` comments inside).
/// archc_runtime::resnext! {
///     pub struct Tiny {
///         network tiny {
///             input 3x32x32; classes 10; param C = 4
///             stem { conv 3x3 -> 16 }
///             block bottleneck(width, out) {
///                 conv 1x1 -> width; conv 3x3/stride -> width, groups C; conv 1x1 -> out
///             }
///             stages bottleneck(width = 16, out = 32) { s1: depth 1; s2: depth 1, stride 2 }
///             head { avgpool; fc -> classes }
///         }
///     }
/// }
/// ```
///
/// - A path is resolved against the calling crate's `CARGO_MANIFEST_DIR`. Editing the spec (or a
///   file it imports) rebuilds the crate.
/// - `where` takes parameters (`C = 8`), `form = split`, `classes = 10`, `network = name` (which
///   network of the file; default: the first), and budgets (`params <= 25.7M`, `macs <= 4.3G`,
///   `flops`, `activations`, `buffers`; `<=` or `>=`), which replace the spec's budget of the
///   same kind.
/// - It expands to the struct, one struct per block template, `new(&nn::Path)`, `nn::ModuleT`
///   and the constants `NAME`, `PARAMS`, `BUFFERS`, `MACS`, `FLOPS`, `ACTIVATIONS`, `INPUT`,
///   `OUTPUT`. Variable names are torchvision's.
/// - A spec that does not parse or compile, or that breaks a budget, fails the build with every
///   error found, each naming the spec file, line and column with the offending line and a caret.
#[proc_macro]
pub fn resnext(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = syn::parse_macro_input!(input as Input);
    expand(input).into()
}

/// Where the spec text comes from.
enum Source {
    File(LitStr),
    Inline { tokens: TokenStream, brace: Span },
}

/// One `where` item.
enum Setting {
    Set {
        key: Ident,
        value: String,
        span: Span,
    },
    Budget {
        figure: Figure,
        cmp: Cmp,
        written: String,
        span: Span,
    },
}

struct Input {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    source: Source,
    settings: Vec<Setting>,
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Input> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let source = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Source::File(input.parse()?)
        } else {
            let content;
            let brace = braced!(content in input);
            Source::Inline {
                tokens: content.parse()?,
                brace: brace.span.join(),
            }
        };
        let mut settings = Vec::new();
        if input.peek(Token![where]) {
            input.parse::<Token![where]>()?;
            loop {
                settings.push(setting(input)?);
                if input.peek(Token![,]) {
                    input.parse::<Token![,]>()?;
                    if input.is_empty() || input.peek(Token![;]) {
                        break;
                    }
                } else {
                    break;
                }
            }
        }
        if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
        }
        if !input.is_empty() {
            return Err(input.error("expected `;`, `where` or the end of the macro"));
        }
        Ok(Input {
            attrs,
            vis,
            name,
            source,
            settings,
        })
    }
}

fn setting(input: ParseStream) -> syn::Result<Setting> {
    let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
    // The spec's metrics: `weights` is a figure of the tools, not of a spec's budget.
    let figure = Figure::from_name(&key.to_string()).filter(|f| f.metric().is_some());
    if let Some(figure) = figure.filter(|_| input.peek(Token![<=]) || input.peek(Token![>=])) {
        let cmp = if input.peek(Token![<=]) {
            input.parse::<Token![<=]>()?;
            Cmp::AtMost
        } else {
            input.parse::<Token![>=]>()?;
            Cmp::AtLeast
        };
        let lit: proc_macro2::Literal = input.parse()?;
        let span = key.span().join(lit.span()).unwrap_or(lit.span());
        return Ok(Setting::Budget {
            figure,
            cmp,
            written: lit.to_string(),
            span,
        });
    }
    input.parse::<Token![=]>()?;
    let value: TokenTree = input.parse()?;
    let text = match &value {
        TokenTree::Literal(l) => l.to_string(),
        TokenTree::Ident(i) => i.to_string(),
        other => {
            return Err(syn::Error::new(other.span(), "expected a number or a name"));
        }
    };
    Ok(Setting::Set {
        span: key.span().join(value.span()).unwrap_or(value.span()),
        key,
        value: text.trim_matches('"').to_string(),
    })
}

/// The inline spec as text, with the span of every token, so a diagnostic's byte range maps back
/// to the tokens the user wrote.
struct Inline {
    text: String,
    spans: Vec<(usize, usize, Span)>,
}

const STATEMENTS: &[&str] = &[
    "network", "import", "input", "classes", "param", "form", "stem", "block", "stages", "head",
    "budget", "conv", "maxpool", "avgpool", "fc", "rule", "shortcut",
];

impl Inline {
    fn new(tokens: TokenStream) -> Inline {
        let mut me = Inline {
            text: String::new(),
            spans: Vec::new(),
        };
        me.walk(tokens);
        me
    }

    fn push(&mut self, s: &str, span: Span) {
        let start = self.text.len();
        self.text.push_str(s);
        self.spans.push((start, self.text.len(), span));
    }

    fn walk(&mut self, tokens: TokenStream) {
        let mut glue = false;
        for tt in tokens {
            if !glue && !self.text.is_empty() && !self.text.ends_with('\n') {
                self.text.push(' ');
            }
            glue = false;
            match tt {
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::None => ("", ""),
                    };
                    self.push(open, g.span_open());
                    if open == "{" {
                        self.text.push('\n');
                    }
                    self.walk(g.stream());
                    if open == "{" && !self.text.ends_with('\n') {
                        self.text.push('\n');
                    }
                    self.push(close, g.span_close());
                    if close == "}" {
                        self.text.push('\n');
                    }
                }
                TokenTree::Ident(i) => {
                    let s = i.to_string();
                    if STATEMENTS.contains(&s.as_str())
                        && !self.text.ends_with('\n')
                        && !self.text.is_empty()
                    {
                        self.text.pop();
                        self.text.push('\n');
                    }
                    self.push(&s, i.span());
                }
                TokenTree::Punct(p) => {
                    self.push(&p.as_char().to_string(), p.span());
                    glue = p.spacing() == proc_macro2::Spacing::Joint;
                    if p.as_char() == ';' {
                        self.text.push('\n');
                    }
                }
                TokenTree::Literal(l) => self.push(&l.to_string(), l.span()),
            }
        }
    }

    /// The span of the token at a byte offset (or the nearest one before it).
    fn span_at(&self, offset: usize) -> Option<Span> {
        self.spans
            .iter()
            .rev()
            .find(|(s, _, _)| *s <= offset)
            .map(|(_, _, sp)| *sp)
    }
}

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn expand(input: Input) -> TokenStream {
    let names = names_of(&input);
    let attrs = &input.attrs;
    let (result, fallback, inline, tracked) = compile(&input);
    match result {
        Ok(tokens) => {
            let track = tracked.iter().map(|p| {
                let p = p.display().to_string();
                quote!(
                    const _: &[u8] = ::core::include_bytes!(#p);
                )
            });
            quote!(
                #(#attrs)*
                #tokens
                #(#track)*
            )
        }
        Err(errors) => {
            let mut all: Option<syn::Error> = None;
            for (span, message) in errors {
                let span = match (&inline, span) {
                    (_, Some(s)) => s,
                    _ => fallback,
                };
                let e = syn::Error::new(span, message);
                match &mut all {
                    Some(a) => a.combine(e),
                    None => all = Some(e),
                }
            }
            let errors = all.map(|e| e.to_compile_error());
            let stub = rust::stub(&names);
            // Track the files even when they fail, so fixing them rebuilds.
            let track = tracked.iter().map(|p| {
                let p = p.display().to_string();
                quote!(
                    const _: &[u8] = ::core::include_bytes!(#p);
                )
            });
            quote!(#errors #stub #(#track)*)
        }
    }
}

type Errors = Vec<(Option<Span>, String)>;

/// Compiles the spec: the generated tokens, or every error with the span to report it at.
/// Also returns the span for errors with no place, the inline text (if any) and the files read.
fn compile(
    input: &Input,
) -> (
    Result<TokenStream, Errors>,
    Span,
    Option<Inline>,
    Vec<PathBuf>,
) {
    let (spec, fallback, inline) = match &input.source {
        Source::File(lit) => {
            let path = archc::normalize(&manifest_dir().join(lit.value()));
            (Spec::from_path(&path), lit.span(), None)
        }
        Source::Inline { tokens, brace } => {
            let inline = Inline::new(tokens.clone());
            (
                Spec::from_text_in("<inline spec>", &inline.text, Some(&manifest_dir())),
                *brace,
                Some(inline),
            )
        }
    };
    let failure_errors = |f: &Failure, inline: &Option<Inline>| -> Errors {
        f.diagnostics
            .iter()
            .map(|d| {
                // An override the spec rejects points at the `where` item that made it.
                let at_setting = input.settings.iter().find_map(|s| match s {
                    Setting::Set { key, span, .. }
                        if d.primary.is_none()
                            && (d.message.contains(&format!("parameter `{key}`"))
                                || d.message.starts_with(&format!("`{key} = "))) =>
                    {
                        Some(*span)
                    }
                    _ => None,
                });
                match at_setting {
                    Some(span) => (Some(span), d.message.clone()),
                    None => (locate(d, inline), render(d, &f.sources)),
                }
            })
            .collect()
    };
    let tracked = |sources: &archc::SourceMap| -> Vec<PathBuf> {
        (0..)
            .map_while(|i| {
                let id = archc::FileId(i);
                sources.try_file(id).map(|f| f.path.clone())
            })
            .flatten()
            .filter_map(|p| p.canonicalize().ok())
            .collect()
    };
    let spec = match spec {
        Ok(s) => s,
        Err(f) => {
            let t = tracked(&f.sources);
            return (Err(failure_errors(&f, &inline)), fallback, inline, t);
        }
    };
    let files = tracked(&spec.sources);
    let mut overrides = Overrides::default();
    let mut network = None;
    // Where each `where` bound was written, to report a broken one there.
    let mut bounds: Vec<(Figure, Cmp, Span)> = Vec::new();
    for s in &input.settings {
        match s {
            Setting::Set { key, value, .. } if key == "network" => network = Some(value.clone()),
            Setting::Set { key, value, .. } => overrides.set.push((key.to_string(), value.clone())),
            Setting::Budget {
                figure,
                cmp,
                written,
                span,
            } => match archc::syntax::parse_quantity(written) {
                Ok(value) => {
                    let limit = Limit::new(*figure, *cmp, value, written, Origin::Override);
                    overrides.budgets.push(limit);
                    bounds.push((*figure, *cmp, *span));
                }
                Err(_) => {
                    let msg =
                        format!("`{written}` is not an exact count (use e.g. 25.6M, 4.3G, 70k)");
                    return (Err(vec![(Some(*span), msg)]), fallback, inline, files);
                }
            },
        }
    }
    let name = match network.or_else(|| spec.networks().first().map(|s| s.to_string())) {
        Some(n) => n,
        None => {
            return (
                Err(vec![(None, "the spec defines no network".to_string())]),
                fallback,
                inline,
                files,
            );
        }
    };
    // The `where` bounds replace the spec's of the same figure and direction (`Overrides`).
    let compiled = match spec.compile(&name, &overrides) {
        Ok(c) => c,
        Err(f) => return (Err(failure_errors(&f, &inline)), fallback, inline, files),
    };
    let broken: Errors = compiled
        .report
        .budgets
        .iter()
        .filter(|v| !v.ok)
        .map(|v| {
            let d = archc::cost::violation(&compiled.report, v, Convention::Torchvision);
            // A bound of the macro: the last one written on that figure and side won.
            let bound = bounds.iter().rev().find(|(f, c, _)| {
                v.limit.origin == Origin::Override && (*f, *c) == (v.limit.figure, v.limit.cmp)
            });
            match bound {
                Some((_, _, span)) => {
                    let help = d.help.map(|h| format!("\n  help: {h}")).unwrap_or_default();
                    (Some(*span), format!("{}{help}", d.message))
                }
                None => (locate(&d, &inline), render(&d, &spec.sources)),
            }
        })
        .collect();
    if !broken.is_empty() {
        return (Err(broken), fallback, inline, files);
    }
    (
        Ok(rust::emit(&compiled, &names_of(input))),
        fallback,
        inline,
        files,
    )
}

fn names_of(input: &Input) -> Names {
    Names {
        type_name: input.name.to_string(),
        vis: input.vis.to_token_stream(),
        origin: match &input.source {
            Source::File(lit) => format!("`{}`", lit.value()),
            Source::Inline { .. } => "an inline spec".to_string(),
        },
    }
}

/// A diagnostic rendered for a compiler message: without the code line, so that the first line
/// rustc shows is the message itself.
fn render(d: &Diagnostic, sources: &archc::SourceMap) -> String {
    let mut d = d.clone();
    d.code = "";
    d.render_styled(sources, false, 10_000)
}

/// Where to report a diagnostic: for an inline spec, the token under its primary span; for a
/// file spec, the macro's path literal (the message carries file, line and column).
fn locate(d: &Diagnostic, inline: &Option<Inline>) -> Option<Span> {
    let inline = inline.as_ref()?;
    let (span, _) = d.primary.as_ref()?;
    if span.file != archc::FileId(0) {
        return None;
    }
    inline.span_at(span.start as usize)
}
