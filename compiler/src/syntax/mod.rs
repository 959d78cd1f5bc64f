//! Parsing: `.arch` text to [`ast::File`]. The only module that knows about pest.

pub mod ast;
pub mod fmt;

use crate::diag::Diagnostic;
use crate::source::{FileId, Span};
use ast::*;
use pest::Parser as _;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::LazyLock;

mod grammar {
    #![allow(missing_docs)]
    #[derive(pest_derive::Parser)]
    #[grammar = "syntax/arch.pest"]
    pub struct ArchParser;
}

use grammar::{ArchParser, Rule};

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
});

/// Parses one file's text. `file` is the id its spans will carry.
pub fn parse(file: FileId, text: &str) -> Result<File, Diagnostic> {
    let mut pairs = ArchParser::parse(Rule::file, text).map_err(|e| syntax_error(file, text, e))?;
    let cx = Cx {
        file,
        text,
        depth: std::cell::Cell::new(0),
    };
    let root = pairs.next().expect("grammar: file");
    cx.file(root)
}

/// A human name for each rule, used in "expected ..." messages.
fn describe(r: &Rule) -> String {
    match r {
        Rule::EOI => "end of file",
        Rule::file => "a file",
        Rule::import => "`import \"file.arch\"`",
        Rule::string | Rule::string_inner => "a string",
        Rule::network => "`network NAME { ... }`",
        Rule::extends => "`extends NAME`",
        Rule::input => "`input CxHxW`",
        Rule::classes => "`classes N`",
        Rule::param => "`param NAME = value`",
        Rule::form => "`form grouped|concat|split`",
        Rule::form_kind => "a form (`grouped`, `concat`, `split`)",
        Rule::stem => "`stem { ... }`",
        Rule::block => "`block NAME(params) { ... }`",
        Rule::names => "a list of names",
        Rule::shortcut => "`shortcut auto|identity|projection`",
        Rule::shortcut_kind => "a shortcut kind (`auto`, `identity`, `projection`)",
        Rule::conv => "`conv KxK -> width`",
        Rule::groups => "`groups N`",
        Rule::pad => "`pad N`",
        Rule::bias => "`bias`",
        Rule::maxpool => "`maxpool KxK/S`",
        Rule::stride => "`/stride`",
        Rule::stages => "`stages TEMPLATE(args) { ... }`",
        Rule::args => "template arguments",
        Rule::arg => "`name = value`",
        Rule::rule => "a rule (`rule double_on_downsample`, `rule keep_width`)",
        Rule::double_rule => "`double_on_downsample`",
        Rule::keep_rule => "`keep_width`",
        Rule::stage => "a stage `LABEL: depth N, stride S`",
        Rule::stage_name => "a stage label",
        Rule::depth => "`depth N`",
        Rule::stage_stride => "`stride N`",
        Rule::head => "`head { ... }`",
        Rule::avgpool => "`avgpool`",
        Rule::fc => "`fc -> N`",
        Rule::no_bias => "`no_bias`",
        Rule::budget => "`budget { ... }`",
        Rule::limit => "a budget line such as `params <= 25.1M`",
        Rule::metric => "a metric (`params`, `buffers`, `macs`, `flops`, `activations`)",
        Rule::cmp => "a comparison (`<=`, `>=`)",
        Rule::quantity => "a quantity such as `25.1M`",
        Rule::decimal => "a number",
        Rule::si => "an SI suffix (`k`, `M`, `G`, `T`)",
        Rule::expr => "an expression",
        Rule::add | Rule::sub | Rule::mul | Rule::div => "an operator",
        Rule::dims => "dimensions `CxHxW`",
        Rule::kernel => "a kernel size `KxK`",
        Rule::int => "an integer",
        Rule::name => "a name",
        Rule::close => "`}`",
        Rule::open => "`{`",
        Rule::arrow => "`->`",
        Rule::assign => "`=`",
        Rule::colon => "`:`",
        Rule::item => "a network item (`input`, `classes`, `param`, `form`, `stem`, `block`, `stages`, `head`, `budget`)",
        Rule::conv_option => "a conv option (`groups`, `pad`, `bias`)",
        Rule::stage_option => "a stage option (`depth N`, `stride N`, `name = value`)",
        Rule::infix => "an operator",
        Rule::atom => "a number, a name or `(`",
        Rule::ident_char => "a letter, digit or `_`",
        Rule::keyword => "a keyword",
        Rule::WHITESPACE | Rule::COMMENT => "whitespace",
    }
    .to_string()
}

fn syntax_error(file: FileId, text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let (start, end) = match e.location {
        pest::error::InputLocation::Pos(p) => (p, p),
        pest::error::InputLocation::Span((s, e)) => (s, e),
    };
    // Point at the whole offending token (or the next character) rather than a zero-width spot.
    let end = if end > start {
        end
    } else {
        let rest = &text[start..];
        let tok = rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(rest.len(), |(i, _)| i);
        start + tok.max(rest.chars().next().map_or(0, char::len_utf8))
    };
    if text[start..].starts_with('"') {
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        return Diagnostic::new(
            "archc::syntax",
            "syntax error: unterminated string: the closing `\"` is missing",
        )
        .at(
            Span::new(file, start, line_end.max(start + 1)),
            "this string never ends",
        );
    }
    // At the end of the file, point at the last character rather than past it.
    let at_eof = start >= text.len();
    let (start, end) = if at_eof {
        let trimmed = text.trim_end();
        let last = trimmed.char_indices().last().map_or(0, |(i, _)| i);
        (last, trimmed.len().max(last))
    } else {
        (start, end)
    };
    let found = match text[start..end].trim() {
        _ if at_eof => "end of file".to_string(),
        "" => "whitespace".to_string(),
        t => format!("`{t}`"),
    };
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError {
            positives,
            negatives,
        } => {
            let mut expected: Vec<String> = positives.iter().map(describe).collect();
            expected.dedup();
            if expected.is_empty() {
                let neg: Vec<String> = negatives.iter().map(describe).collect();
                format!("unexpected {}", neg.join(" or "))
            } else {
                format!("expected {}, found {found}", join_or(&expected))
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    Diagnostic::new("archc::syntax", format!("syntax error: {message}")).at(
        Span::new(file, start, end),
        if at_eof { "the file ends here" } else { "here" },
    )
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The children of a pair, without the closing braces.
fn inner(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| {
        !matches!(
            p.as_rule(),
            Rule::close | Rule::open | Rule::arrow | Rule::assign | Rule::colon
        )
    })
}

struct Cx<'t> {
    file: FileId,
    text: &'t str,
    /// How many `expr` rules enclose the one being read (parentheses nest them).
    depth: std::cell::Cell<usize>,
}

/// Expressions nest at most this deep (parentheses) ...
const MAX_EXPR_DEPTH: usize = 64;
/// ... and have at most this many operands: enough for any width formula, and a bound on the
/// recursion of evaluation and printing, so no input can overflow the stack.
const MAX_EXPR_TERMS: usize = 256;

/// The end of `text[start..end]` without trailing whitespace, `;` and comments (pest's spans of
/// non-atomic rules can take in the separators that follow them).
fn tight_end(text: &str, start: usize, end: usize) -> usize {
    let mut last = start;
    let mut comment = false;
    let bytes = text.as_bytes();
    let mut i = start;
    while i < end {
        let b = bytes[i];
        if comment {
            comment = b != b'\n';
        } else if b == b'#' || (b == b'/' && bytes.get(i + 1) == Some(&b'/')) {
            comment = true;
        } else if !(b.is_ascii_whitespace() || b == b';') {
            last = i + 1;
        }
        i += 1;
    }
    last.max(start)
}

impl Cx<'_> {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        let end = match pair.as_rule() {
            Rule::string => s.end(),
            _ => tight_end(self.text, s.start(), s.end()),
        };
        Span::new(self.file, s.start(), end)
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn int(&self, pair: Pair<'_, Rule>) -> Result<u64, Diagnostic> {
        let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
        digits.parse::<u64>().map_err(|_| {
            Diagnostic::new(
                "archc::syntax::int",
                format!("integer `{}` is too large", pair.as_str()),
            )
            .at(self.span(&pair), "does not fit in 64 bits")
        })
    }

    fn file(&self, pair: Pair<'_, Rule>) -> Result<File, Diagnostic> {
        let mut file = File {
            imports: Vec::new(),
            networks: Vec::new(),
        };
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::import => {
                    let s = p.into_inner().next().expect("grammar: string");
                    let inner = s
                        .clone()
                        .into_inner()
                        .next()
                        .expect("grammar: string_inner");
                    file.imports.push(Import {
                        path: inner.as_str().to_string(),
                        span: self.span(&s),
                    });
                }
                Rule::network => file.networks.push(self.network(p)?),
                Rule::EOI => {}
                r => unreachable!("grammar: {r:?} in file"),
            }
        }
        Ok(file)
    }

    /// A rule whose first child is a name (`network`, `block`, `stages`, a stage line): its span,
    /// the name, and its other children.
    fn named<'i>(
        &self,
        pair: Pair<'i, Rule>,
    ) -> (Span, Ident, impl Iterator<Item = Pair<'i, Rule>> + use<'i>) {
        let span = self.span(&pair);
        let mut children = inner(pair);
        let name = self.ident(children.next().expect("grammar: name"));
        (span, name, children)
    }

    fn network(&self, pair: Pair<'_, Rule>) -> Result<Network, Diagnostic> {
        let (span, name, children) = self.named(pair);
        let mut extends = None;
        let mut items = Vec::new();
        for p in children {
            let sp = self.span(&p);
            items.push(match p.as_rule() {
                Rule::extends => {
                    extends = Some(self.ident(p.into_inner().next().expect("grammar: name")));
                    continue;
                }
                Rule::input => Item::Input(self.dims(p.into_inner().next().expect("dims"))?),
                Rule::classes => Item::Classes(self.expr(p.into_inner().next().expect("expr"))?),
                Rule::param => {
                    let mut i = inner(p);
                    let n = self.ident(i.next().expect("name"));
                    Item::Param(n, self.expr(i.next().expect("expr"))?)
                }
                Rule::form => {
                    let k = p.into_inner().next().expect("form_kind");
                    Item::Form(Form::from_keyword(k.as_str()).expect("grammar: form"), sp)
                }
                Rule::stem => Item::Stem(self.layers(p)?, sp),
                Rule::head => Item::Head(self.layers(p)?, sp),
                Rule::block => Item::Block(self.block(p)?),
                Rule::stages => Item::Stages(self.stages(p)?),
                Rule::budget => Item::Budget(self.budget(p)?, sp),
                r => unreachable!("grammar: {r:?} in network"),
            });
        }
        Ok(Network {
            name,
            extends,
            items,
            span,
        })
    }

    fn dims(&self, pair: Pair<'_, Rule>) -> Result<Dims, Diagnostic> {
        let span = self.span(&pair);
        let mut i = pair.into_inner();
        Ok(Dims {
            c: self.int(i.next().expect("int"))?,
            h: self.int(i.next().expect("int"))?,
            w: self.int(i.next().expect("int"))?,
            span,
        })
    }

    fn kernel(&self, pair: Pair<'_, Rule>) -> Result<(u64, u64), Diagnostic> {
        let mut i = pair.into_inner();
        Ok((
            self.int(i.next().expect("int"))?,
            self.int(i.next().expect("int"))?,
        ))
    }

    fn layers(&self, pair: Pair<'_, Rule>) -> Result<Vec<Layer>, Diagnostic> {
        inner(pair).map(|p| self.layer(p)).collect()
    }

    fn layer(&self, p: Pair<'_, Rule>) -> Result<Layer, Diagnostic> {
        let span = self.span(&p);
        Ok(match p.as_rule() {
            Rule::conv => Layer::Conv(self.conv(p)?),
            Rule::maxpool => {
                let mut i = p.into_inner();
                let kernel = self.kernel(i.next().expect("kernel"))?;
                let (mut stride, mut pad) = (None, None);
                for o in i {
                    match o.as_rule() {
                        Rule::stride => stride = Some(self.atom_in(o)?),
                        Rule::pad => pad = Some(self.atom_in(o)?),
                        r => unreachable!("grammar: {r:?} in maxpool"),
                    }
                }
                Layer::MaxPool {
                    kernel,
                    stride,
                    pad,
                    span,
                }
            }
            Rule::avgpool => Layer::AvgPool(span),
            Rule::fc => {
                let mut parts = inner(p);
                let out = self.expr(parts.next().expect("grammar: fc width"))?;
                let no_bias = parts.any(|o| o.as_rule() == Rule::no_bias);
                Layer::Fc {
                    out,
                    bias: !no_bias,
                    span,
                }
            }
            r => unreachable!("grammar: {r:?} as a layer"),
        })
    }

    /// The expression inside a one-child rule (`stride`, `pad`, `groups`, `depth`).
    fn atom_in(&self, p: Pair<'_, Rule>) -> Result<Expr, Diagnostic> {
        self.expr(p.into_inner().next().expect("grammar: operand"))
    }

    fn conv(&self, p: Pair<'_, Rule>) -> Result<Conv, Diagnostic> {
        let span = self.span(&p);
        let mut i = inner(p);
        let kernel = self.kernel(i.next().expect("kernel"))?;
        let mut conv = Conv {
            kernel,
            stride: None,
            out: Expr {
                kind: ExprKind::Int(0),
                span,
            },
            groups: None,
            pad: None,
            bias: false,
            span,
        };
        for o in i {
            match o.as_rule() {
                Rule::stride => conv.stride = Some(self.atom_in(o)?),
                Rule::expr => conv.out = self.expr(o)?,
                Rule::groups => conv.groups = Some(self.atom_in(o)?),
                Rule::pad => conv.pad = Some(self.atom_in(o)?),
                Rule::bias => conv.bias = true,
                r => unreachable!("grammar: {r:?} in conv"),
            }
        }
        Ok(conv)
    }

    fn block(&self, p: Pair<'_, Rule>) -> Result<BlockDef, Diagnostic> {
        let (span, name, children) = self.named(p);
        let (mut params, mut convs, mut shortcut) = (Vec::new(), Vec::new(), None);
        for o in children {
            match o.as_rule() {
                Rule::names => params = o.into_inner().map(|n| self.ident(n)).collect(),
                Rule::conv => convs.push(self.conv(o)?),
                Rule::shortcut => {
                    let sp = self.span(&o);
                    let k = o.into_inner().next().expect("shortcut_kind");
                    let kind = match k.as_str() {
                        "identity" => Shortcut::Identity,
                        "projection" => Shortcut::Projection,
                        _ => Shortcut::Auto,
                    };
                    shortcut = Some((kind, sp));
                }
                r => unreachable!("grammar: {r:?} in block"),
            }
        }
        Ok(BlockDef {
            name,
            params,
            convs,
            shortcut,
            span,
        })
    }

    fn args(&self, p: Pair<'_, Rule>) -> Result<Vec<Arg>, Diagnostic> {
        p.into_inner().map(|a| self.arg(a)).collect()
    }

    fn arg(&self, a: Pair<'_, Rule>) -> Result<Arg, Diagnostic> {
        let mut i = inner(a);
        Ok(Arg {
            name: self.ident(i.next().expect("name")),
            value: self.expr(i.next().expect("expr"))?,
        })
    }

    fn stages(&self, p: Pair<'_, Rule>) -> Result<Stages, Diagnostic> {
        let (span, template, i) = self.named(p);
        let mut st = Stages {
            template,
            args: Vec::new(),
            rules: Vec::new(),
            stages: Vec::new(),
            span,
        };
        for o in i {
            match o.as_rule() {
                Rule::args => st.args = self.args(o)?,
                Rule::rule => {
                    let r = o.into_inner().next().expect("rule kind");
                    let sp = self.span(&r);
                    st.rules.push(match r.as_rule() {
                        Rule::double_rule => ast::Rule::DoubleOnDownsample(
                            r.into_inner()
                                .next()
                                .map(|n| n.into_inner().map(|x| self.ident(x)).collect()),
                            sp,
                        ),
                        Rule::keep_rule => ast::Rule::KeepWidth(sp),
                        r => unreachable!("grammar: {r:?} as rule"),
                    });
                }
                Rule::stage => {
                    let (sp, label, j) = self.named(o);
                    let mut stage = Stage {
                        label,
                        depth: None,
                        stride: None,
                        args: Vec::new(),
                        span: sp,
                    };
                    for opt in j {
                        let twice = |what: &str, opt: &Pair<'_, Rule>| {
                            Diagnostic::new(
                                "archc::syntax::duplicate",
                                format!("`{what}` is given twice for stage `{}`", stage.label.name),
                            )
                            .at(self.span(opt), "given again here")
                        };
                        match opt.as_rule() {
                            Rule::depth if stage.depth.is_some() => {
                                return Err(twice("depth", &opt));
                            }
                            Rule::stage_stride if stage.stride.is_some() => {
                                return Err(twice("stride", &opt));
                            }
                            Rule::depth => stage.depth = Some(self.atom_in(opt)?),
                            Rule::stage_stride => stage.stride = Some(self.atom_in(opt)?),
                            Rule::arg => stage.args.push(self.arg(opt)?),
                            r => unreachable!("grammar: {r:?} in stage"),
                        }
                    }
                    st.stages.push(stage);
                }
                r => unreachable!("grammar: {r:?} in stages"),
            }
        }
        Ok(st)
    }

    fn budget(&self, p: Pair<'_, Rule>) -> Result<Vec<Limit>, Diagnostic> {
        inner(p)
            .map(|l| {
                let span = self.span(&l);
                let mut i = l.into_inner();
                let metric = Metric::from_keyword(i.next().expect("grammar: metric").as_str())
                    .expect("grammar: a metric keyword");
                let at_most = i.next().expect("cmp").as_str() == "<=";
                let q = i.next().expect("quantity");
                let value = parse_quantity(q.as_str()).map_err(|e| match e {
                    QuantityError::NotWhole => Diagnostic::new(
                        "archc::syntax::quantity",
                        format!("`{}` is not a whole number", q.as_str()),
                    )
                    .at(self.span(&q), "a budget must come to an exact count")
                    .help("use no more decimals than the suffix allows: 25.1M, 4.23G, 70k"),
                    QuantityError::TooLarge => Diagnostic::new(
                        "archc::syntax::quantity",
                        format!("`{}` is too large", q.as_str()),
                    )
                    .at(self.span(&q), "does not fit in 64 bits"),
                })?;
                Ok(Limit {
                    metric,
                    at_most,
                    value,
                    written: q.as_str().to_string(),
                    span,
                })
            })
            .collect()
    }

    fn expr(&self, pair: Pair<'_, Rule>) -> Result<Expr, Diagnostic> {
        if pair.as_rule() == Rule::expr {
            let terms = pair.clone().into_inner().count().div_ceil(2);
            let depth = self.depth.get() + 1;
            if terms > MAX_EXPR_TERMS || depth > MAX_EXPR_DEPTH {
                return Err(Diagnostic::new(
                    "archc::syntax::expression",
                    format!(
                        "expression too large: at most {MAX_EXPR_TERMS} operands and {MAX_EXPR_DEPTH} levels of parentheses"
                    ),
                )
                .at(self.span(&pair), "simplify this expression"));
            }
            self.depth.set(depth);
            let out = self.expr_inner(pair);
            self.depth.set(depth - 1);
            return out;
        }
        self.expr_inner(pair)
    }

    fn expr_inner(&self, pair: Pair<'_, Rule>) -> Result<Expr, Diagnostic> {
        match pair.as_rule() {
            Rule::expr => PRATT
                .map_primary(|p| self.expr(p))
                .map_infix(|l, op, r| {
                    let (l, r) = (l?, r?);
                    let op = match op.as_rule() {
                        Rule::add => BinOp::Add,
                        Rule::sub => BinOp::Sub,
                        Rule::mul => BinOp::Mul,
                        _ => BinOp::Div,
                    };
                    Ok(Expr {
                        span: l.span.to(r.span),
                        kind: ExprKind::Binary(op, Box::new(l), Box::new(r)),
                    })
                })
                .parse(pair.into_inner()),
            Rule::int => Ok(Expr {
                span: self.span(&pair),
                kind: ExprKind::Int(self.int(pair)?),
            }),
            Rule::name => Ok(Expr {
                span: self.span(&pair),
                kind: ExprKind::Var(pair.as_str().to_string()),
            }),
            r => unreachable!("grammar: {r:?} as an expression"),
        }
    }
}

/// Why a quantity has no exact value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityError {
    /// It has more decimals than its suffix allows (`1.5` with no suffix, `1.0001k`).
    NotWhole,
    /// It does not fit in 64 bits.
    TooLarge,
}

/// Parses `25.1M`, `4_230_000_000`, `70k` to an exact integer.
pub fn parse_quantity(text: &str) -> Result<u64, QuantityError> {
    use QuantityError::{NotWhole, TooLarge};
    let text: String = text.chars().filter(|c| *c != '_').collect();
    let (num, scale) = match text.chars().last().ok_or(NotWhole)? {
        'k' | 'K' => (&text[..text.len() - 1], 1_000u64),
        'M' => (&text[..text.len() - 1], 1_000_000),
        'G' => (&text[..text.len() - 1], 1_000_000_000),
        'T' => (&text[..text.len() - 1], 1_000_000_000_000),
        _ => (&text[..], 1),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let int: u64 = int.parse().map_err(|_| TooLarge)?;
    let mut value = int.checked_mul(scale).ok_or(TooLarge)?;
    let mut unit = scale;
    for d in frac.chars() {
        let digit = u64::from(d.to_digit(10).ok_or(NotWhole)?);
        if unit % 10 != 0 {
            if digit == 0 {
                continue;
            }
            return Err(NotWhole);
        }
        unit /= 10;
        value = value.checked_add(digit * unit).ok_or(TooLarge)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_exact() {
        assert_eq!(parse_quantity("25.1M"), Ok(25_100_000));
        assert_eq!(parse_quantity("4.23G"), Ok(4_230_000_000));
        assert_eq!(parse_quantity("70k"), Ok(70_000));
        assert_eq!(parse_quantity("25_028_904"), Ok(25_028_904));
        assert_eq!(parse_quantity("1.50k"), Ok(1_500));
        assert_eq!(parse_quantity("1.5"), Err(QuantityError::NotWhole));
        assert_eq!(parse_quantity("1.0001k"), Err(QuantityError::NotWhole));
        assert_eq!(parse_quantity("99999999999T"), Err(QuantityError::TooLarge));
    }
}
