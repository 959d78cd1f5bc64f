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
        Some(s) => stages(&env, &r.blocks, s).unwrap_or_else(|mut e| {
            errors.append(&mut e);
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

fn stages(
    env: &Env<'_>,
    blocks: &BTreeMap<&str, &ast::BlockDef>,
    s: &ast::Stages,
) -> Result<Vec<ir::Stage>, Vec<Diagnostic>> {
    let Some(template) = blocks.get(s.template.name.as_str()) else {
        let known: Vec<&str> = blocks.keys().copied().collect();
        return Err(vec![
            Diagnostic::new(
                "archc::expand::unknown_template",
                format!("unknown block template `{}`", s.template.name),
            )
            .at(s.template.span, "no `block` with this name")
            .help(if known.is_empty() {
                "define it: block NAME(width, out) { conv 1x1 -> width ... }".to_string()
            } else {
                format!("templates defined: {}", known.join(", "))
            }),
        ]);
    };
    let formals: Vec<&str> = template.params.iter().map(|p| p.name.as_str()).collect();
    for (i, p) in template.params.iter().enumerate() {
        if p.name == "stride" {
            return Err(vec![
                Diagnostic::new(
                    "archc::expand::template_parameter",
                    format!(
                        "template `{}` declares a parameter named `stride`, which is implicit",
                        template.name.name
                    ),
                )
                .at(p.span, "remove this parameter")
                .help("every template has `stride`: the stage's stride for its first block, 1 for the others"),
            ]);
        }
        if formals[..i].contains(&p.name.as_str()) {
            return Err(vec![
                Diagnostic::new(
                    "archc::expand::template_parameter",
                    format!(
                        "template `{}` declares parameter `{}` twice",
                        template.name.name, p.name
                    ),
                )
                .at(p.span, "declared again here"),
            ]);
        }
    }
    let check_names = |args: &[ast::Arg]| -> Result<(), Diagnostic> {
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
    };

    // Which arguments the second template rule scales.
    let mut doubled: Option<Vec<&str>> = Some(formals.clone());
    for rule in &s.rules {
        match rule {
            ast::Rule::KeepWidth(_) => doubled = None,
            ast::Rule::DoubleOnDownsample(None, _) => doubled = Some(formals.clone()),
            ast::Rule::DoubleOnDownsample(Some(names), _) => {
                for n in names {
                    if !formals.contains(&n.name.as_str()) {
                        return Err(vec![
                            Diagnostic::new(
                                "archc::expand::arity",
                                format!(
                                    "template `{}` has no parameter `{}`",
                                    template.name.name, n.name
                                ),
                            )
                            .at(n.span, "not a parameter of the template")
                            .help(format!("its parameters are ({})", formals.join(", "))),
                        ]);
                    }
                }
                doubled = Some(names.iter().map(|n| n.name.as_str()).collect());
            }
        }
    }

    if s.stages.is_empty() {
        return Err(vec![
            Diagnostic::new("archc::expand::stages", "`stages` lists no stage")
                .at(s.template.span, "add a stage such as `conv2: depth 3`"),
        ]);
    }
    check_names(&s.args).map_err(|d| vec![d])?;
    let mut current: Vec<(String, Option<u64>)> =
        formals.iter().map(|f| (f.to_string(), None)).collect();
    for a in &s.args {
        let v = positive(env, &a.value, &format!("`{}`", a.name.name)).map_err(|d| vec![d])?;
        current
            .iter_mut()
            .find(|(n, _)| *n == a.name.name)
            .expect("checked")
            .1 = Some(v);
    }

    let mut out = Vec::new();
    let mut total_blocks = 0u64;
    for (si, st) in s.stages.iter().enumerate() {
        let err = |d: Diagnostic| vec![d];
        check_names(&st.args).map_err(err)?;
        let depth = match &st.depth {
            Some(e) => positive(env, e, "a stage's depth").map_err(err)?,
            None => {
                return Err(vec![
                    Diagnostic::new(
                        "archc::expand::depth",
                        format!("stage `{}` has no depth", st.label.name),
                    )
                    .at(st.span, "how many blocks?")
                    .help(format!("write `{}: depth 3`", st.label.name)),
                ]);
            }
        };
        total_blocks = total_blocks.saturating_add(depth);
        if total_blocks > MAX_BLOCKS {
            return Err(vec![
                Diagnostic::new(
                    "archc::expand::too_large",
                    format!("the network has more than {MAX_BLOCKS} blocks"),
                )
                .at(st.span, format!("depth {depth} takes it over the limit")),
            ]);
        }
        let stride = match &st.stride {
            Some(e) => positive(env, e, "a stage's stride").map_err(err)?,
            None => 1,
        };
        // Template rule 2: scale the arguments this stage does not give explicitly.
        if si > 0 {
            for (name, value) in current.iter_mut() {
                if st.args.iter().any(|a| a.name.name == *name) {
                    continue;
                }
                if let (Some(v), Some(d)) = (value.as_mut(), &doubled) {
                    if d.contains(&name.as_str()) {
                        *v = v.checked_mul(stride).ok_or_else(|| {
                            vec![
                                Diagnostic::new(
                                    "archc::expand::arithmetic",
                                    format!(
                                        "`{name}` overflows 64 bits at stage `{}`",
                                        st.label.name
                                    ),
                                )
                                .at(st.span, "doubling overflows here"),
                            ]
                        })?;
                    }
                }
            }
        }
        for a in &st.args {
            let v = positive(env, &a.value, &format!("`{}`", a.name.name)).map_err(err)?;
            current
                .iter_mut()
                .find(|(n, _)| *n == a.name.name)
                .expect("checked")
                .1 = Some(v);
        }
        let mut args = Vec::new();
        for (name, value) in &current {
            match value {
                Some(v) => args.push((name.clone(), *v)),
                None => {
                    return Err(vec![
                        Diagnostic::new(
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
                        )),
                    ]);
                }
            }
        }
        let path = format!("layer{}", si + 1);
        let mut blocks_out = Vec::new();
        for b in 0..depth {
            let block_stride = if b == 0 { stride } else { 1 };
            let mut benv = Env {
                vars: env.vars.clone(),
            };
            for (n, v) in &args {
                benv.vars.push((n.as_str(), *v));
            }
            benv.vars.push(("stride", block_stride));
            let convs = template
                .convs
                .iter()
                .map(|c| conv(&benv, c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|d| {
                    vec![d.also(
                        st.span,
                        format!("instantiated by stage `{}`", st.label.name),
                    )]
                })?;
            if convs.is_empty() {
                return Err(vec![
                    Diagnostic::new(
                        "archc::expand::empty_block",
                        format!("template `{}` has no convolution", template.name.name),
                    )
                    .at(template.span, "a residual branch needs at least one conv"),
                ]);
            }
            blocks_out.push(ir::Block {
                path: format!("{path}.{b}"),
                stride: block_stride,
                convs,
                shortcut: template.shortcut.map(|(k, _)| k).unwrap_or_default(),
                shortcut_span: template.shortcut.map(|(_, s)| s),
                template_span: template.span,
            });
        }
        out.push(ir::Stage {
            label: st.label.name.clone(),
            path,
            template: template.name.name.clone(),
            stride,
            args,
            blocks: blocks_out,
            span: st.span,
        });
    }
    Ok(out)
}
