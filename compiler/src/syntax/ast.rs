//! The syntax tree of a `.arch` file: what the user wrote, with spans, before any evaluation.

use crate::source::Span;

/// A name with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The text.
    pub name: String,
    /// Where it is.
    pub span: Span,
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// `import "..."` lines, in order.
    pub imports: Vec<Import>,
    /// Networks defined in this file, in order.
    pub networks: Vec<Network>,
}

/// `import "path"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The path as written, relative to the importing file.
    pub path: String,
    /// The string literal's place.
    pub span: Span,
}

/// `network NAME [extends BASE] { items }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name.
    pub name: Ident,
    /// The network it extends.
    pub extends: Option<Ident>,
    /// Its items in source order.
    pub items: Vec<Item>,
    /// The whole definition.
    pub span: Span,
}

/// One item of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `input CxHxW`.
    Input(Dims),
    /// `classes N`.
    Classes(Expr),
    /// `param NAME = expr`.
    Param(Ident, Expr),
    /// `form grouped|concat|split`.
    Form(Form, Span),
    /// `stem { ... }`.
    Stem(Vec<Layer>, Span),
    /// `block NAME(params) { ... }`.
    Block(BlockDef),
    /// `stages TEMPLATE(args) { ... }`.
    Stages(Stages),
    /// `head { ... }`.
    Head(Vec<Layer>, Span),
    /// `budget { ... }`.
    Budget(Vec<Limit>, Span),
}

/// `CxHxW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Channels.
    pub c: u64,
    /// Height.
    pub h: u64,
    /// Width.
    pub w: u64,
    /// Where it is.
    pub span: Span,
}

/// The block form (paper Fig. 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// (c) one grouped convolution: the paper's models.
    #[default]
    Grouped,
    /// (b) C paths up to the grouped layer, concatenated before the last 1×1.
    Concat,
    /// (a) split–transform–merge: C complete paths, summed.
    Split,
}

impl Form {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Grouped => "grouped",
            Form::Concat => "concat",
            Form::Split => "split",
        }
    }

    /// Parses the keyword.
    pub fn from_keyword(s: &str) -> Option<Form> {
        match s {
            "grouped" => Some(Form::Grouped),
            "concat" => Some(Form::Concat),
            "split" => Some(Form::Split),
            _ => None,
        }
    }
}

/// A layer statement in a stem, block or head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// `conv KxK[/s] -> out [, groups g] [, pad p] [, bias]`.
    Conv(Conv),
    /// `maxpool KxK[/s] [pad p]`.
    MaxPool {
        /// Kernel size.
        kernel: (u64, u64),
        /// Stride (default 1).
        stride: Option<Expr>,
        /// Padding (default kernel / 2).
        pad: Option<Expr>,
        /// The statement.
        span: Span,
    },
    /// Global average pooling.
    AvgPool(Span),
    /// `fc -> out`.
    Fc {
        /// Output features.
        out: Expr,
        /// Whether it has a bias (default yes).
        bias: bool,
        /// The statement.
        span: Span,
    },
}

/// A convolution statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv {
    /// Kernel height and width.
    pub kernel: (u64, u64),
    /// Stride (default 1). In a block template, `stride` names the block's stride.
    pub stride: Option<Expr>,
    /// Output channels.
    pub out: Expr,
    /// Groups (default 1).
    pub groups: Option<Expr>,
    /// Padding (default kernel / 2, as torchvision).
    pub pad: Option<Expr>,
    /// Whether it has a bias (default no: a batch-norm follows).
    pub bias: bool,
    /// The statement.
    pub span: Span,
}

/// `block NAME(params) { convs; shortcut }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDef {
    /// Template name.
    pub name: Ident,
    /// Formal parameters.
    pub params: Vec<Ident>,
    /// The residual branch, in order.
    pub convs: Vec<Conv>,
    /// The shortcut rule, if written.
    pub shortcut: Option<(Shortcut, Span)>,
    /// The whole definition.
    pub span: Span,
}

/// How a block's input reaches the addition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shortcut {
    /// Identity where shapes agree, else a projection (1×1 conv + BN with the block's stride).
    #[default]
    Auto,
    /// Always identity (an error where shapes differ).
    Identity,
    /// Always a projection.
    Projection,
}

/// `stages TEMPLATE(args) { rules; stages }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    /// The block template.
    pub template: Ident,
    /// Arguments of the first stage.
    pub args: Vec<Arg>,
    /// `rule` lines.
    pub rules: Vec<Rule>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The whole item.
    pub span: Span,
}

/// `name = expr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// Parameter name.
    pub name: Ident,
    /// Value.
    pub value: Expr,
}

/// A template rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Multiply the named arguments (all, if `None`) by the stage's stride at each downsampling.
    DoubleOnDownsample(Option<Vec<Ident>>, Span),
    /// Keep arguments from stage to stage.
    KeepWidth(Span),
}

/// `label: depth N, stride S, arg = expr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Label (the paper's `conv3`).
    pub label: Ident,
    /// Number of blocks.
    pub depth: Option<Expr>,
    /// Stride of the first block.
    pub stride: Option<Expr>,
    /// Explicit arguments for this stage.
    pub args: Vec<Arg>,
    /// The stage line.
    pub span: Span,
}

/// One budget line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// What is limited.
    pub metric: Metric,
    /// `<=` (an upper bound) or `>=`.
    pub at_most: bool,
    /// The limit, exactly.
    pub value: u64,
    /// The limit as written (`25.1M`).
    pub written: String,
    /// The line.
    pub span: Span,
}

/// A figure a budget can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Learnable parameters.
    Params,
    /// Batch-norm running statistics.
    Buffers,
    /// Multiply-adds (conv and linear).
    Macs,
    /// Floating-point operations, 2 × multiply-adds.
    Flops,
    /// Output elements of conv and linear layers.
    Activations,
}

impl Metric {
    /// Every metric, in the order reports list them.
    pub const ALL: [Metric; 5] = [
        Metric::Params,
        Metric::Buffers,
        Metric::Macs,
        Metric::Flops,
        Metric::Activations,
    ];

    /// The metric a keyword names (the keywords are [`Metric::as_str`]'s, written once).
    pub fn from_keyword(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Params => "params",
            Metric::Buffers => "buffers",
            Metric::Macs => "macs",
            Metric::Flops => "flops",
            Metric::Activations => "activations",
        }
    }
}

/// Integer expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    /// A literal.
    Int(u64),
    /// A parameter.
    Var(String),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (exact)
    Div,
}

impl BinOp {
    /// The operator's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            ExprKind::Int(v) => write!(f, "{v}"),
            ExprKind::Var(v) => f.write_str(v),
            ExprKind::Binary(op, l, r) => {
                let wrap = |e: &Expr, f: &mut std::fmt::Formatter<'_>| match e.kind {
                    ExprKind::Binary(inner, ..)
                        if matches!(op, BinOp::Mul | BinOp::Div)
                            && matches!(inner, BinOp::Add | BinOp::Sub) =>
                    {
                        write!(f, "({e})")
                    }
                    _ => write!(f, "{e}"),
                };
                wrap(l, f)?;
                write!(f, " {} ", op.symbol())?;
                // A binary right operand keeps its parentheses, except a product or quotient
                // after `+` (`a + (b - c)` is not `a + b - c` in checked arithmetic).
                match r.kind {
                    ExprKind::Binary(inner, ..)
                        if !matches!(op, BinOp::Add)
                            || matches!(inner, BinOp::Add | BinOp::Sub) =>
                    {
                        write!(f, "({r})")
                    }
                    _ => write!(f, "{r}"),
                }
            }
        }
    }
}
