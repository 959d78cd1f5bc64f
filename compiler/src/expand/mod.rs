//! Expansion: resolves `extends`, applies overrides, evaluates parameters and instantiates the
//! template rules into an [`ir::Model`].

pub mod ir;

use crate::diag::Diagnostic;
use crate::syntax::ast::{self, BinOp, Expr, ExprKind, Form, Ident, Item, Limit, Network};
use std::collections::{BTreeMap, HashMap};

/// The largest number of blocks a network may have (guards against absurd depths).
pub const MAX_BLOCKS: u64 = 10_000;

/// Overrides applied on top of a spec (the CLI's `--set` and `--input`, `resnext!`'s `where`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `KEY=VALUE` pairs: a parameter, `classes` or `form`.
    pub set: Vec<(String, String)>,
    /// Input channels, height, width.
    pub input: Option<[u64; 3]>,
    /// Budgets checked with the spec's: each replaces the spec's limit on the same figure from the
    /// same side ([`crate::cost::budget::merge`]).
    pub budgets: Vec<crate::cost::budget::Limit>,
}

/// All networks visible to a compilation, by name.
pub struct Scope<'a> {
    networks: HashMap<&'a str, &'a Network>,
}

impl<'a> Scope<'a> {
    /// Collects networks; a name defined twice is an error.
    pub fn new(networks: impl IntoIterator<Item = &'a Network>) -> Result<Scope<'a>, Diagnostic> {
        let mut map: HashMap<&str, &Network> = HashMap::new();
        for n in networks {
            if let Some(prev) = map.insert(&n.name.name, n) {
                return Err(Diagnostic::new(
                    "archc::expand::duplicate_network",
                    format!("network `{}` is defined twice", n.name.name),
                )
                .at(n.name.span, "defined again here")
                .also(prev.name.span, "first defined here"));
            }
        }
        Ok(Scope { networks: map })
    }

    /// Looks a network up.
    pub fn get(&self, name: &str) -> Option<&'a Network> {
        self.networks.get(name).copied()
    }
}

/// A network's items after `extends` resolution: the child's items override the base's.
#[derive(Default)]
struct Resolved<'a> {
    input: Option<ast::Dims>,
    classes: Option<&'a Expr>,
    params: Vec<(&'a Ident, &'a Expr)>,
    form: Option<Form>,
    stem: Option<&'a Vec<ast::Layer>>,
    blocks: BTreeMap<&'a str, &'a ast::BlockDef>,
    stages: Option<&'a ast::Stages>,
    head: Option<&'a Vec<ast::Layer>>,
    budgets: Vec<Limit>,
}

fn resolve<'a>(
    scope: &Scope<'a>,
    net: &'a Network,
    chain: &mut Vec<&'a str>,
) -> Result<Resolved<'a>, Diagnostic> {
    chain.push(&net.name.name);
    let mut r = match &net.extends {
        None => Resolved::default(),
        Some(base) => {
            let Some(b) = scope.get(&base.name) else {
                let mut known: Vec<&str> = scope
                    .networks
                    .keys()
                    .copied()
                    .filter(|n| !chain.contains(n))
                    .collect();
                known.sort_unstable();
                return Err(Diagnostic::new(
                    "archc::expand::unknown_network",
                    format!("unknown network `{}`", base.name),
                )
                .at(base.span, "not defined here or in an imported file")
                .help(if known.is_empty() {
                    "import the file that defines it: import \"file.arch\"".to_string()
                } else {
                    format!(
                        "known networks: {}; or import the file that defines it",
                        known.join(", ")
                    )
                }));
            };
            if chain.contains(&b.name.name.as_str()) {
                return Err(Diagnostic::new(
                    "archc::expand::extends_cycle",
                    format!(
                        "`extends` forms a cycle: {} -> {}",
                        chain.join(" -> "),
                        b.name.name
                    ),
                )
                .at(base.span, "extends a network that extends this one"));
            }
            resolve(scope, b, chain)?
        }
    };
    // Within one network each item is given once; only `extends` replaces a base's items.
    let mut seen: Vec<(String, crate::source::Span)> = Vec::new();
    for item in &net.items {
        let mut once = |key: String, span: crate::source::Span| -> Result<(), Diagnostic> {
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                return Err(Diagnostic::new(
                    "archc::expand::duplicate",
                    format!("{key} is given twice in network `{}`", net.name.name),
                )
                .at(span, "given again here")
                .also(*first, "first given here")
                .help("give it once; a variant replaces a base network's items with `extends`"));
            }
            seen.push((key, span));
            Ok(())
        };
        match item {
            Item::Input(d) => once("`input`".into(), d.span)?,
            Item::Classes(e) => once("`classes`".into(), e.span)?,
            Item::Param(name, _) if name.name == "classes" || name.name == "stride" => {
                return Err(Diagnostic::new(
                    "archc::expand::reserved",
                    format!("`{}` is reserved and cannot be a `param`", name.name),
                )
                .at(name.span, "choose another name")
                .help(if name.name == "classes" {
                    "set the number of classes with `classes N`; layers can use it (`fc -> classes`)"
                } else {
                    "`stride` is the block's stride inside templates"
                }));
            }
            Item::Param(name, _) => once(format!("parameter `{}`", name.name), name.span)?,
            Item::Form(_, span) => once("`form`".into(), *span)?,
            Item::Stem(_, span) => once("`stem`".into(), *span)?,
            Item::Block(b) => once(format!("block template `{}`", b.name.name), b.name.span)?,
            Item::Stages(st) => once("`stages`".into(), st.template.span)?,
            Item::Head(_, span) => once("`head`".into(), *span)?,
            Item::Budget(lines, _) => {
                for l in lines {
                    let op = if l.at_most { "<=" } else { ">=" };
                    once(format!("budget `{} {op}`", l.metric.as_str()), l.span)?;
                }
            }
        }
        match item {
            Item::Input(d) => r.input = Some(*d),
            Item::Classes(e) => r.classes = Some(e),
            Item::Param(name, e) => match r.params.iter_mut().find(|(n, _)| n.name == name.name) {
                Some(slot) => *slot = (name, e),
                None => r.params.push((name, e)),
            },
            Item::Form(f, _) => r.form = Some(*f),
            Item::Stem(l, _) => r.stem = Some(l),
            Item::Block(b) => {
                r.blocks.insert(&b.name.name, b);
            }
            Item::Stages(s) => r.stages = Some(s),
            Item::Head(l, _) => r.head = Some(l),
            Item::Budget(lines, _) => {
                for l in lines {
                    r.budgets
                        .retain(|o| !(o.metric == l.metric && o.at_most == l.at_most));
                    r.budgets.push(l.clone());
                }
            }
        }
    }
    chain.pop();
    Ok(r)
}

/// Evaluation environment: parameter values and where they were defined.
struct Env<'a> {
    vars: Vec<(&'a str, u64)>,
}

impl<'a> Env<'a> {
    fn get(&self, name: &str) -> Option<u64> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    fn names(&self) -> String {
        let mut names: Vec<&str> = self.vars.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    }
}

fn eval(env: &Env<'_>, e: &Expr) -> Result<u64, Diagnostic> {
    match &e.kind {
        ExprKind::Int(v) => Ok(*v),
        ExprKind::Var(name) => env.get(name).ok_or_else(|| {
            Diagnostic::new(
                "archc::expand::unknown_parameter",
                format!("unknown parameter `{name}`"),
            )
            .at(e.span, "not defined")
            .help(format!("parameters in scope here: {}", env.names()))
        }),
        ExprKind::Binary(op, l, r) => {
            let (a, b) = (eval(env, l)?, eval(env, r)?);
            let out = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Div => {
                    if b == 0 {
                        return Err(Diagnostic::new(
                            "archc::expand::division_by_zero",
                            format!("`{e}` divides by zero"),
                        )
                        .at(r.span, "this is 0"));
                    }
                    if a % b != 0 {
                        return Err(Diagnostic::new(
                            "archc::expand::inexact_division",
                            format!("`{e}` is {a} / {b}, which is not a whole number"),
                        )
                        .at(e.span, "inexact division")
                        .help("widths are whole numbers: choose values that divide exactly"));
                    }
                    Some(a / b)
                }
            };
            out.ok_or_else(|| {
                let (what, label) = if *op == BinOp::Sub {
                    ("negative", format!("{a} - {b} is below zero"))
                } else {
                    (
                        "too large",
                        format!("{a} {} {b} overflows 64 bits", op.symbol()),
                    )
                };
                Diagnostic::new("archc::expand::arithmetic", format!("`{e}` is {what}"))
                    .at(e.span, label)
            })
        }
    }
}

fn positive(env: &Env<'_>, e: &Expr, what: &str) -> Result<u64, Diagnostic> {
    let v = eval(env, e)?;
    if v == 0 {
        let message = match e.kind {
            ExprKind::Int(_) => format!("{what} must be at least 1, not 0"),
            _ => format!("{what} must be at least 1, but `{e}` is 0"),
        };
        return Err(Diagnostic::new("archc::expand::zero", message).at(e.span, "is 0"));
    }
    Ok(v)
}

/// Expands a network of `scope` into an [`ir::Model`], applying `overrides`.
pub fn expand(
    scope: &Scope<'_>,
    net: &Network,
    overrides: &Overrides,
) -> Result<ir::Model, Vec<Diagnostic>> {
    let r = resolve(scope, net, &mut Vec::new()).map_err(|d| vec![d])?;
    let one = |d: Diagnostic| vec![d];
    let missing = |what: &str, example: &str| {
        vec![
            Diagnostic::new(
                "archc::expand::missing",
                format!("network `{}` has no {what}", net.name.name),
            )
            .at(net.name.span, format!("needs {what}"))
            .help(format!("add `{example}` (or extend a network that has it)")),
        ]
    };

    // Parameters, in declaration order; `--set` replaces a value before later ones use it.
    let mut sets: BTreeMap<&str, (&str, bool)> = overrides
        .set
        .iter()
        .map(|(k, v)| (k.as_str(), (v.as_str(), false)))
        .collect();
    let mut env = Env { vars: Vec::new() };
    let mut params = Vec::new();
    for (name, e) in &r.params {
        let value = match sets.get_mut(name.name.as_str()) {
            Some((text, used)) => {
                *used = true;
                parse_set(&name.name, text).map_err(one)?
            }
            None => eval(&env, e).map_err(one)?,
        };
        env.vars.push((&name.name, value));
        params.push((name.name.clone(), value));
    }
    let mut form = r.form.unwrap_or_default();
    let mut classes_override = None;
    if let Some((text, used)) = sets.get_mut("form") {
        *used = true;
        form = Form::from_keyword(text).ok_or_else(|| {
            vec![Diagnostic::new(
                "archc::expand::override",
                format!("`form = {text}`: the form is `grouped`, `concat` or `split`"),
            )]
        })?;
    }
    if let Some((text, used)) = sets.get_mut("classes") {
        *used = true;
        classes_override = Some(parse_set("classes", text).map_err(one)?);
    }
    if let Some((key, _)) = sets.iter().find(|(_, (_, used))| !used) {
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        return Err(vec![
            Diagnostic::new(
                "archc::expand::override",
                format!(
                    "network `{}` has no parameter `{key}` to set",
                    net.name.name
                ),
            )
            .help(format!(
                "its parameters are: {}; `form` and `classes` can be set too",
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            )),
        ]);
    }

    let input = match (overrides.input, r.input) {
        (Some(i), _) => i,
        (None, Some(d)) => [d.c, d.h, d.w],
        (None, None) => return Err(missing("input", "input 3x224x224")),
    };
    if input.contains(&0) {
        let d = Diagnostic::new(
            "archc::expand::input",
            format!(
                "input {}x{}x{} has a zero dimension",
                input[0], input[1], input[2]
            ),
        );
        return Err(vec![match r.input {
            Some(dims) if overrides.input.is_none() => {
                d.at(dims.span, "every dimension must be at least 1")
            }
            _ => d,
        }]);
    }
    // An empty `head {}` is a network without a classifier (a block-level spec such as the
    // paper's Table 2 block): its output is the last stage's, and it needs no `classes`.
    let headless = matches!(r.head, Some(layers) if layers.is_empty());
    let classes = match (classes_override, r.classes) {
        (Some(c), _) => c,
        (None, Some(e)) => positive(&env, e, "`classes`").map_err(one)?,
        (None, None) if headless => 0,
        (None, None) => return Err(missing("classes", "classes 1000")),
    };
    if classes_override.is_some() || r.classes.is_some() {
        env.vars.push(("classes", classes));
    }

    let mut errors = Vec::new();
    let stem = match r.stem {
        Some(layers) => layers
            .iter()
            .filter_map(|l| layer(&env, l).map_err(|d| errors.push(d)).ok())
            .collect(),
        None => Vec::new(),
    };
    let head = match r.head {
        Some(layers) => layers
            .iter()
            .filter_map(|l| layer(&env, l).map_err(|d| errors.push(d)).ok())
            .collect(),
        None => return Err(missing("head", "head { avgpool; fc -> classes }")),
    };
    let stages = match r.stages {
        Some(s) => stages(&env, &r.blocks, s).unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        }),
        None => Vec::new(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ir::Model {
        name: net.name.name.clone(),
        span: net.span,
        input,
        input_span: match (overrides.input, r.input) {
            (None, Some(d)) => d.span,
            _ => net.name.span,
        },
        classes,
        form,
        params,
        stem,
        stages,
        head,
        budgets: r.budgets,
    })
}

fn parse_set(key: &str, text: &str) -> Result<u64, Diagnostic> {
    text.trim().replace('_', "").parse::<u64>().map_err(|_| {
        Diagnostic::new(
            "archc::expand::override",
            if text
                .trim()
                .replace('_', "")
                .chars()
                .all(|c| c.is_ascii_digit())
                && !text.trim().is_empty()
            {
                format!("`{key} = {text}`: the value is too large (over 64 bits)")
            } else {
                format!("`{key} = {text}`: the value must be a non-negative integer")
            },
        )
    })
}

fn conv(env: &Env<'_>, c: &ast::Conv) -> Result<ir::Conv, Diagnostic> {
    let (kh, kw) = c.kernel;
    if kh == 0 || kw == 0 {
        return Err(Diagnostic::new(
            "archc::expand::kernel",
            format!("a {kh}x{kw} kernel is empty"),
        )
        .at(c.span, "kernel sides must be at least 1"));
    }
    let stride = match &c.stride {
        Some(e) => positive(env, e, "a stride")?,
        None => 1,
    };
    let pad = match &c.pad {
        Some(e) => {
            let p = eval(env, e)?;
            (p, p)
        }
        None => (kh / 2, kw / 2),
    };
    Ok(ir::Conv {
        kernel: c.kernel,
        stride,
        pad,
        out: positive(env, &c.out, "a convolution's width")?,
        groups: match &c.groups {
            Some(e) => positive(env, e, "`groups`")?,
            None => 1,
        },
        bias: c.bias,
        span: c.span,
    })
}

fn layer(env: &Env<'_>, l: &ast::Layer) -> Result<ir::Layer, Diagnostic> {
    Ok(match l {
        ast::Layer::Conv(c) => ir::Layer::Conv(conv(env, c)?),
        ast::Layer::MaxPool {
            kernel,
            stride,
            pad,
            span,
        } => {
            if kernel.0 == 0 || kernel.1 == 0 {
                return Err(Diagnostic::new(
                    "archc::expand::kernel",
                    format!("a {}x{} kernel is empty", kernel.0, kernel.1),
                )
                .at(*span, "kernel sides must be at least 1"));
            }
            ir::Layer::MaxPool {
                kernel: *kernel,
                stride: match stride {
                    Some(e) => positive(env, e, "a stride")?,
                    None => 1,
                },
                pad: match pad {
                    Some(e) => {
                        let p = eval(env, e)?;
                        (p, p)
                    }
                    None => (kernel.0 / 2, kernel.1 / 2),
                },
                span: *span,
            }
        }
        ast::Layer::AvgPool(span) => ir::Layer::AvgPool { span: *span },
        ast::Layer::Fc { out, bias, span } => ir::Layer::Fc {
            out: positive(env, out, "`fc`'s width")?,
            bias: *bias,
            span: *span,
        },
    })
}

/// Applies the template rules to a `stages` item: rule 1 (one set of arguments per stage) and
/// rule 2 (`double_on_downsample` scales the arguments a stage does not give by its stride),
/// then instantiates each stage's blocks.
fn stages(
    env: &Env<'_>,
    blocks: &BTreeMap<&str, &ast::BlockDef>,
    s: &ast::Stages,
) -> Result<Vec<ir::Stage>, Diagnostic> {
    let template = template_of(blocks, s)?;
    let formals = formals(template)?;
    let doubled = doubled(template, &formals, &s.rules)?;
    if s.stages.is_empty() {
        return Err(
            Diagnostic::new("archc::expand::stages", "`stages` lists no stage")
                .at(s.template.span, "add a stage such as `conv2: depth 3`"),
        );
    }
    check_args(template, &formals, &s.args)?;
    let mut current: Vec<(String, Option<u64>)> =
        formals.iter().map(|f| (f.to_string(), None)).collect();
    assign(env, &mut current, &s.args)?;

    let mut out = Vec::new();
    let mut total_blocks = 0u64;
    for (si, st) in s.stages.iter().enumerate() {
        check_args(template, &formals, &st.args)?;
        let depth = match &st.depth {
            Some(e) => positive(env, e, "a stage's depth")?,
            None => {
                return Err(Diagnostic::new(
                    "archc::expand::depth",
                    format!("stage `{}` has no depth", st.label.name),
                )
                .at(st.span, "how many blocks?")
                .help(format!("write `{}: depth 3`", st.label.name)));
            }
        };
        total_blocks = total_blocks.saturating_add(depth);
        if total_blocks > MAX_BLOCKS {
            return Err(Diagnostic::new(
                "archc::expand::too_large",
                format!("the network has more than {MAX_BLOCKS} blocks"),
            )
            .at(st.span, format!("depth {depth} takes it over the limit")));
        }
        let stride = match &st.stride {
            Some(e) => positive(env, e, "a stage's stride")?,
            None => 1,
        };
        if si > 0 {
            double(&mut current, doubled.as_deref(), st, stride)?;
        }
        assign(env, &mut current, &st.args)?;
        let args = complete(&current, template, &formals, s, si)?;
        let path = format!("layer{}", si + 1);
        let blocks = (0..depth)
            .map(|b| {
                block(
                    env,
                    template,
                    st,
                    &args,
                    &path,
                    b,
                    if b == 0 { stride } else { 1 },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(ir::Stage {
            label: st.label.name.clone(),
            path,
            template: template.name.name.clone(),
            stride,
            args,
            blocks,
            span: st.span,
        });
    }
    Ok(out)
}

/// The block template a `stages` item names.
fn template_of<'a>(
    blocks: &BTreeMap<&str, &'a ast::BlockDef>,
    s: &ast::Stages,
) -> Result<&'a ast::BlockDef, Diagnostic> {
    blocks
        .get(s.template.name.as_str())
        .copied()
        .ok_or_else(|| {
            let known: Vec<&str> = blocks.keys().copied().collect();
            Diagnostic::new(
                "archc::expand::unknown_template",
                format!("unknown block template `{}`", s.template.name),
            )
            .at(s.template.span, "no `block` with this name")
            .help(if known.is_empty() {
                "define it: block NAME(width, out) { conv 1x1 -> width ... }".to_string()
            } else {
                format!("templates defined: {}", known.join(", "))
            })
        })
}

/// The template's parameter names: distinct, and never the implicit `stride`.
fn formals(template: &ast::BlockDef) -> Result<Vec<&str>, Diagnostic> {
    let formals: Vec<&str> = template.params.iter().map(|p| p.name.as_str()).collect();
    for (i, p) in template.params.iter().enumerate() {
        if p.name == "stride" {
            return Err(Diagnostic::new(
                "archc::expand::template_parameter",
                format!(
                    "template `{}` declares a parameter named `stride`, which is implicit",
                    template.name.name
                ),
            )
            .at(p.span, "remove this parameter")
            .help("every template has `stride`: the stage's stride for its first block, 1 for the others"));
        }
        if formals[..i].contains(&p.name.as_str()) {
            return Err(Diagnostic::new(
                "archc::expand::template_parameter",
                format!(
                    "template `{}` declares parameter `{}` twice",
                    template.name.name, p.name
                ),
            )
            .at(p.span, "declared again here"));
        }
    }
    Ok(formals)
}

/// Arguments name parameters of the template, each at most once.
fn check_args(
    template: &ast::BlockDef,
    formals: &[&str],
    args: &[ast::Arg],
) -> Result<(), Diagnostic> {
    for (i, a) in args.iter().enumerate() {
        if !formals.contains(&a.name.name.as_str()) {
            return Err(Diagnostic::new(
                "archc::expand::arity",
                format!(
                    "template `{}` has no parameter `{}`",
                    template.name.name, a.name.name
                ),
            )
            .at(a.name.span, "unknown argument")
            .also(
                template.span,
                format!("`{}` is defined here", template.name.name),
            )
            .help(format!("its parameters are ({})", formals.join(", "))));
        }
        if args[..i].iter().any(|b| b.name.name == a.name.name) {
            return Err(Diagnostic::new(
                "archc::expand::arity",
                format!("argument `{}` is given twice", a.name.name),
            )
            .at(a.name.span, "given again here"));
        }
    }
    Ok(())
}

/// Which arguments the second template rule scales: all by default, those named by
/// `double_on_downsample(...)`, or none after `keep_width`.
fn doubled<'a>(
    template: &ast::BlockDef,
    formals: &[&'a str],
    rules: &'a [ast::Rule],
) -> Result<Option<Vec<&'a str>>, Diagnostic> {
    let mut doubled = Some(formals.to_vec());
    for rule in rules {
        match rule {
            ast::Rule::KeepWidth(_) => doubled = None,
            ast::Rule::DoubleOnDownsample(None, _) => doubled = Some(formals.to_vec()),
            ast::Rule::DoubleOnDownsample(Some(names), _) => {
                if let Some(n) = names.iter().find(|n| !formals.contains(&n.name.as_str())) {
                    return Err(Diagnostic::new(
                        "archc::expand::arity",
                        format!(
                            "template `{}` has no parameter `{}`",
                            template.name.name, n.name
                        ),
                    )
                    .at(n.span, "not a parameter of the template")
                    .help(format!("its parameters are ({})", formals.join(", "))));
                }
                doubled = Some(names.iter().map(|n| n.name.as_str()).collect());
            }
        }
    }
    Ok(doubled)
}

/// Sets the arguments given explicitly.
fn assign(
    env: &Env<'_>,
    current: &mut [(String, Option<u64>)],
    args: &[ast::Arg],
) -> Result<(), Diagnostic> {
    for a in args {
        let v = positive(env, &a.value, &format!("`{}`", a.name.name))?;
        if let Some(slot) = current.iter_mut().find(|(n, _)| *n == a.name.name) {
            slot.1 = Some(v);
        }
    }
    Ok(())
}

/// Template rule 2: multiplies by the stage's stride the `doubled` arguments that the stage
/// does not give explicitly.
fn double(
    current: &mut [(String, Option<u64>)],
    doubled: Option<&[&str]>,
    st: &ast::Stage,
    stride: u64,
) -> Result<(), Diagnostic> {
    let Some(doubled) = doubled else {
        return Ok(());
    };
    for (name, value) in current.iter_mut() {
        if st.args.iter().any(|a| a.name.name == *name) || !doubled.contains(&name.as_str()) {
            continue;
        }
        if let Some(v) = value.as_mut() {
            *v = v.checked_mul(stride).ok_or_else(|| {
                Diagnostic::new(
                    "archc::expand::arithmetic",
                    format!("`{name}` overflows 64 bits at stage `{}`", st.label.name),
                )
                .at(st.span, "doubling overflows here")
            })?;
        }
    }
    Ok(())
}

/// The stage's arguments, every parameter given.
fn complete(
    current: &[(String, Option<u64>)],
    template: &ast::BlockDef,
    formals: &[&str],
    s: &ast::Stages,
    si: usize,
) -> Result<Vec<(String, u64)>, Diagnostic> {
    let st = &s.stages[si];
    current
        .iter()
        .map(|(name, value)| match value {
            Some(v) => Ok((name.clone(), *v)),
            None => Err(Diagnostic::new(
                "archc::expand::arity",
                format!(
                    "template `{}` needs `{name}`, but stage `{}` does not get it",
                    template.name.name, st.label.name
                ),
            )
            .at(
                if si == 0 { s.template.span } else { st.span },
                format!("`{name}` missing"),
            )
            .also(
                template.span,
                format!("`{}` takes ({})", template.name.name, formals.join(", ")),
            )
            .help(format!(
                "give it in the stages' arguments: stages {}({name} = ...)",
                template.name.name
            ))),
        })
        .collect()
}

/// Block `b` of a stage: the template's convs evaluated with the stage's arguments and the
/// implicit `stride` (the stage's for the first block, 1 for the others).
fn block(
    env: &Env<'_>,
    template: &ast::BlockDef,
    st: &ast::Stage,
    args: &[(String, u64)],
    path: &str,
    b: u64,
    stride: u64,
) -> Result<ir::Block, Diagnostic> {
    let mut benv = Env {
        vars: env.vars.clone(),
    };
    benv.vars.extend(args.iter().map(|(n, v)| (n.as_str(), *v)));
    benv.vars.push(("stride", stride));
    let convs = template
        .convs
        .iter()
        .map(|c| conv(&benv, c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|d| {
            d.also(
                st.span,
                format!("instantiated by stage `{}`", st.label.name),
            )
        })?;
    if convs.is_empty() {
        return Err(Diagnostic::new(
            "archc::expand::empty_block",
            format!("template `{}` has no convolution", template.name.name),
        )
        .at(template.span, "a residual branch needs at least one conv"));
    }
    Ok(ir::Block {
        path: format!("{path}.{b}"),
        stride,
        convs,
        shortcut: template.shortcut.map(|(k, _)| k).unwrap_or_default(),
        shortcut_span: template.shortcut.map(|(_, s)| s),
        template_span: template.span,
    })
}
