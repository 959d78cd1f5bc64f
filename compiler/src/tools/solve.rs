//! `archc solve`: the value of one parameter (say `d`) that meets every budget, for each
//! assignment of others (say `C` = 1, 2, 4, 8, 32): the paper's method of varying cardinality at
//! fixed complexity (Table 2, Table 3), answered exactly.
//!
//! **How.** For each assignment, the solver compiles the spec with `--set` overrides at every
//! value `v = 1, 2, 3, …` (each one a full, exact compile: expansion, lowering, costing), until it
//! has seen a value at which some `<=` budget is broken and then checked a verification window
//! beyond it (as many values again, at least 8 and at most 1,024). The answer is exact on that
//! range: nothing is interpolated and no monotonicity is assumed inside it; beyond it, figures
//! are assumed not to come back under the budget (true when they grow with the parameter, as
//! they do with widths). Values at which the spec does not compile (a width not divisible by its
//! groups, say) or that break `--multiple-of` are skipped and counted.
//!
//! **Criteria.**
//! - [`Criterion::Largest`]: the largest value at which every budget holds. The *binding* budget
//!   is the one broken at the next larger valid value; the report gives its slack at the answer
//!   and its excess at the next value.
//! - [`Criterion::Nearest`]: the value whose figure is closest to the *target* budget's limit,
//!   from either side (ties go to the side that meets it), among values that meet every other
//!   budget. The target is the first budget. This is the paper's "about the same complexity":
//!   Table 2's d = 40 for C = 2 is 128 parameters over the ResNet-50 block, and the largest
//!   value that is not over is 39.
//!
//! The figures a budget can name are [`Figure`]s: the spec's metrics plus `weights` (conv and fc
//! weights and biases without batch-norm, the count of the paper's formula
//! `C·(256·d + 3·3·d·d + d·256)`). `macs`, `flops` and `activations` are counted under the chosen
//! [`Convention`].

use crate::cost::convention::{self, Convention};
use crate::cost::grouped;
use crate::diag::Diagnostic;
use crate::expand::Overrides;
use crate::graph::OpKind;
use crate::syntax::ast::Metric;
use crate::{Compiled, Failure, Spec};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The largest value a solve tries by default.
pub const DEFAULT_MAX: u64 = 65_536;

/// A figure a solve or sweep budget can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Figure {
    /// Learnable parameters, batch-norm included.
    Params,
    /// Conv and fc weights and biases: parameters without batch-norm.
    Weights,
    /// Batch-norm running statistics.
    Buffers,
    /// The convention's compute figure (multiply-adds under torchvision's).
    Macs,
    /// 2 × macs.
    Flops,
    /// The convention's activations.
    Activations,
}

impl Figure {
    /// Every figure.
    pub const ALL: [Figure; 6] = [
        Figure::Params,
        Figure::Weights,
        Figure::Buffers,
        Figure::Macs,
        Figure::Flops,
        Figure::Activations,
    ];

    /// The keyword.
    pub fn name(self) -> &'static str {
        match self {
            Figure::Params => "params",
            Figure::Weights => "weights",
            Figure::Buffers => "buffers",
            Figure::Macs => "macs",
            Figure::Flops => "flops",
            Figure::Activations => "activations",
        }
    }

    /// Parses a keyword.
    pub fn from_name(s: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The figure a spec budget's metric names.
    pub fn from_metric(m: Metric) -> Figure {
        match m {
            Metric::Params => Figure::Params,
            Metric::Buffers => Figure::Buffers,
            Metric::Macs => Figure::Macs,
            Metric::Flops => Figure::Flops,
            Metric::Activations => Figure::Activations,
        }
    }

    /// What the figure counts, under `conv`.
    pub fn unit(self, conv: Convention) -> &'static str {
        match self {
            Figure::Params => {
                "parameters (conv and fc weights and biases, batch-norm weight and bias)"
            }
            Figure::Weights => "conv and fc weights and biases (no batch-norm)",
            Figure::Buffers => "batch-norm running mean and var elements",
            Figure::Macs => conv.compute_unit(),
            Figure::Flops => "2 x the compute figure",
            Figure::Activations => conv.activations_unit(),
        }
    }
}

/// Every figure of one compiled variant, per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Figures {
    /// Parameters.
    pub params: u64,
    /// Conv and fc weights and biases (parameters without batch-norm).
    pub weights: u64,
    /// Batch-norm running statistics.
    pub buffers: u64,
    /// The convention's compute figure.
    pub macs: u64,
    /// 2 × macs.
    pub flops: u64,
    /// The convention's activations.
    pub activations: u64,
}

impl Figures {
    /// The figures of a compiled network under `conv`.
    pub fn of(c: &Compiled, conv: Convention) -> Result<Figures, Diagnostic> {
        let total = if conv == Convention::Torchvision {
            c.report.total
        } else {
            convention::analyze(&c.graph, &[], conv)?.total
        };
        let weights = c
            .report
            .layers
            .iter()
            .filter(|l| matches!(l.op, OpKind::Conv | OpKind::Linear))
            .try_fold(0u64, |acc, l| acc.checked_add(l.cost.params))
            .ok_or_else(|| Diagnostic::new("archc::cost::overflow", "weights overflow 64 bits"))?;
        Ok(Figures {
            params: total.params,
            weights,
            buffers: total.buffers,
            macs: total.macs,
            flops: total.flops(),
            activations: total.activations,
        })
    }

    /// One figure.
    pub fn get(&self, f: Figure) -> u64 {
        match f {
            Figure::Params => self.params,
            Figure::Weights => self.weights,
            Figure::Buffers => self.buffers,
            Figure::Macs => self.macs,
            Figure::Flops => self.flops,
            Figure::Activations => self.activations,
        }
    }
}

/// A budget's limit as written on the command line: a number or a reference network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitText {
    /// `25.6M`, `69632`, `70k`.
    Number(u64),
    /// `@path/to/spec.arch`: that spec's first network's figure. `@` alone: the solved spec
    /// itself with the `--set` and `--input` given (before `--each` and `--for`).
    Reference(Option<String>),
}

/// A budget line parsed from the command line: `FIGURE<=VALUE` or `FIGURE>=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetText {
    /// What is limited.
    pub figure: Figure,
    /// `<=` (true) or `>=`.
    pub at_most: bool,
    /// The limit.
    pub limit: LimitText,
    /// As written.
    pub written: String,
}

/// Parses `params<=25.6M`, `weights<=@`, `macs<=@specs/resnet/resnet50.arch`, `flops>=1G`.
pub fn parse_budget(s: &str) -> Result<BudgetText, String> {
    let text: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let (at_most, i) = match (text.find("<="), text.find(">=")) {
        (Some(i), None) => (true, i),
        (None, Some(i)) => (false, i),
        _ => {
            return Err(format!(
                "`{s}` is not FIGURE<=VALUE or FIGURE>=VALUE (e.g. params<=25.6M)"
            ));
        }
    };
    let (name, value) = (&text[..i], &text[i + 2..]);
    let figure = Figure::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Figure::ALL.iter().map(|f| f.name()).collect();
        format!("`{name}` is not a figure; use one of {}", names.join(", "))
    })?;
    let limit = if let Some(path) = value.strip_prefix('@') {
        LimitText::Reference((!path.is_empty()).then(|| path.to_string()))
    } else {
        LimitText::Number(parse_number(value)?)
    };
    Ok(BudgetText {
        figure,
        at_most,
        limit,
        written: value.to_string(),
    })
}

/// Parses an exact quantity with SI suffixes (`25.6M`, `70k`, `69_632`).
pub fn parse_number(value: &str) -> Result<u64, String> {
    let ok = !value.is_empty()
        && value.chars().next().is_some_and(|c| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '_' | '.' | 'k' | 'K' | 'M' | 'G' | 'T'));
    if !ok {
        return Err(format!(
            "`{value}` is not a quantity such as 25.6M, 70k or 69632 (or @SPEC for a reference)"
        ));
    }
    crate::syntax::parse_quantity(value).map_err(|e| match e {
        crate::syntax::QuantityError::NotWhole => {
            format!("`{value}` is not a whole number")
        }
        crate::syntax::QuantityError::TooLarge => format!("`{value}` does not fit in 64 bits"),
    })
}

/// A budget the solver checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// What is limited.
    pub figure: Figure,
    /// `<=` or `>=`.
    pub op: &'static str,
    /// The limit, exactly.
    pub limit: u64,
    /// As written (`25.6M`, `@specs/resnet/resnet50.arch`).
    pub written: String,
    /// Where it comes from: `spec`, `command line`, or the reference network.
    pub from: String,
}

impl Budget {
    /// A budget.
    pub fn new(figure: Figure, at_most: bool, limit: u64, written: &str, from: &str) -> Budget {
        Budget {
            figure,
            op: if at_most { "<=" } else { ">=" },
            limit,
            written: written.to_string(),
            from: from.to_string(),
        }
    }

    /// Whether it is an upper bound.
    pub fn at_most(&self) -> bool {
        self.op == "<="
    }

    /// Where the limit comes from, for display: `70.4k in the spec`, `--budget`,
    /// `@specs/resnet/resnet50.arch = resnet50`.
    pub fn source(&self) -> String {
        match self.from.as_str() {
            "spec" => format!("{} in the spec", self.written),
            "command line" => "--budget".to_string(),
            label => format!("{} = {label}", self.written),
        }
    }

    /// `weights <= 69,632`.
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.figure.name(), self.op, grouped(self.limit))
    }

    /// The verdict on `figures`.
    pub fn check(&self, figures: &Figures) -> BudgetCheck {
        let actual = figures.get(self.figure);
        let ok = if self.at_most() {
            actual <= self.limit
        } else {
            actual >= self.limit
        };
        let (slack, excess) = match (self.at_most(), ok) {
            (true, true) => (self.limit - actual, 0),
            (true, false) => (0, actual - self.limit),
            (false, true) => (actual - self.limit, 0),
            (false, false) => (0, self.limit - actual),
        };
        BudgetCheck {
            figure: self.figure,
            op: self.op,
            limit: self.limit,
            actual,
            ok,
            slack,
            excess,
        }
    }
}

/// One budget's verdict on one variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetCheck {
    /// The figure.
    pub figure: Figure,
    /// `<=` or `>=`.
    pub op: &'static str,
    /// The limit.
    pub limit: u64,
    /// The variant's figure.
    pub actual: u64,
    /// Whether it holds.
    pub ok: bool,
    /// How far inside the limit (0 when broken).
    pub slack: u64,
    /// How far past the limit (0 when it holds).
    pub excess: u64,
}

/// The spec's own budget lines as solver budgets.
pub fn spec_budgets(c: &Compiled) -> Vec<Budget> {
    c.model
        .budgets
        .iter()
        .map(|l| {
            Budget::new(
                Figure::from_metric(l.metric),
                l.at_most,
                l.value,
                &l.written,
                "spec",
            )
        })
        .collect()
}

fn declared_label(c: &Compiled) -> String {
    let params: Vec<String> = c
        .model
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if params.is_empty() {
        format!("{} as declared", c.model.name)
    } else {
        format!("{} as declared, {}", c.model.name, params.join(" "))
    }
}

/// The budgets of a solve or sweep: `texts` (from the command line) when there are any, with
/// each `@` reference compiled (`@PATH` reads that spec, at `input` if given; `@` alone is `own`,
/// the solved spec compiled with the user's overrides); otherwise `own`'s budget block. Also
/// returns the reference networks, for display.
pub fn budgets_from(
    spec: &Spec,
    own: &Compiled,
    texts: &[BudgetText],
    input: Option<[u64; 3]>,
    conv: Convention,
) -> Result<(Vec<Budget>, Vec<Reference>), Failure> {
    if texts.is_empty() {
        return Ok((spec_budgets(own), Vec::new()));
    }
    let mut out = Vec::new();
    let mut refs: Vec<Reference> = Vec::new();
    let fail = |d: Diagnostic| Failure {
        sources: spec.sources.clone(),
        diagnostics: vec![d],
    };
    for t in texts {
        let (limit, from) = match &t.limit {
            LimitText::Number(v) => (*v, "command line".to_string()),
            LimitText::Reference(path) => {
                let (c, label) = match path {
                    None => (own.clone(), declared_label(own)),
                    Some(p) => {
                        let r = Spec::from_path(p)?;
                        let Some(name) = r.networks().first().map(|s| s.to_string()) else {
                            return Err(fail(Diagnostic::new(
                                "archc::network",
                                format!("`{p}` defines no network"),
                            )));
                        };
                        let c = r.compile(
                            &name,
                            &Overrides {
                                set: Vec::new(),
                                input,
                            },
                        )?;
                        (c, name)
                    }
                };
                let figures = Figures::of(&c, conv).map_err(fail)?;
                if !refs.iter().any(|r| r.label == label) {
                    refs.push(Reference {
                        label: label.clone(),
                        figures,
                    });
                }
                (figures.get(t.figure), label)
            }
        };
        out.push(Budget::new(t.figure, t.at_most, limit, &t.written, &from));
    }
    Ok((out, refs))
}

/// Which value the solver returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    /// The largest value that meets every budget.
    Largest,
    /// The value closest to the first budget's limit, from either side.
    Nearest,
}

impl Criterion {
    /// A heading that says what the criterion is.
    pub fn describe(self, param: &str, budgets: &[Budget]) -> String {
        match self {
            Criterion::Largest => format!("largest {param} that meets every budget"),
            Criterion::Nearest => {
                let t = budgets.first().map(|b| b.describe()).unwrap_or_default();
                if budgets.len() > 1 {
                    format!("{param} nearest to {t} (either side; the other budgets must hold)")
                } else {
                    format!("{param} nearest to {t} (either side)")
                }
            }
        }
    }
}

/// What to solve.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The network of the spec.
    pub network: String,
    /// The user's `--set` and `--input`.
    pub base: Overrides,
    /// The parameter to solve for (`--for`).
    pub param: String,
    /// The assignments to solve for each of (`--each C=1,2,4`): the product of these lists.
    pub each: Vec<(String, Vec<String>)>,
    /// Budgets, all of which must hold (the first is the target of [`Criterion::Nearest`]).
    pub budgets: Vec<Budget>,
    /// The criteria to answer, in order.
    pub criteria: Vec<Criterion>,
    /// Every convolution's output channels must be a multiple of this (`--multiple-of`).
    pub multiple_of: Option<u64>,
    /// The largest value tried.
    pub max: u64,
    /// How macs, flops and activations are counted.
    pub convention: Convention,
}

/// The next larger valid value after a [`Criterion::Largest`] answer, and the budgets it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Next {
    /// The value.
    pub value: u64,
    /// The budgets it breaks.
    pub broken: Vec<BudgetCheck>,
}

/// One answer: an assignment, a criterion, the value and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Solution {
    /// The criterion.
    pub criterion: Criterion,
    /// The `--each` assignment (`{"C": 2}` in JSON).
    #[serde(serialize_with = "ordered_map")]
    pub assignment: Vec<(String, String)>,
    /// The parameter solved for.
    pub param: String,
    /// The answer, or `None` when no value fits.
    pub value: Option<u64>,
    /// The variant's figures at the answer.
    pub figures: Option<Figures>,
    /// The first stage's template arguments at the answer (e.g. `width`, the group width).
    #[serde(serialize_with = "ordered_map")]
    pub args: Vec<(String, u64)>,
    /// Every budget's verdict at the answer.
    pub budgets: Vec<BudgetCheck>,
    /// The budget that decides the answer: broken at the next value (largest), or the target
    /// (nearest).
    pub binding: Option<BudgetCheck>,
    /// The next larger valid value and what it breaks (largest only).
    pub next: Option<Next>,
    /// Values tried: `[first, last]`.
    pub searched: [u64; 2],
    /// How many values were compiled.
    pub evaluated: u64,
    /// How many of them were skipped (spec error at that value, or `--multiple-of`).
    pub skipped: u64,
    /// Why there is no answer, when there is none.
    pub reason: Option<String>,
}

/// Serializes pairs as a JSON object in their order; values that are integers become numbers.
fn ordered_map<S: serde::Serializer, V: ToString>(
    pairs: &[(String, V)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| {
        let v = v.to_string();
        let value = match v.parse::<u64>() {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => serde_json::Value::from(v),
        };
        (k, value)
    }))
}

/// Everything `archc solve` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SolveReport {
    /// The network.
    pub network: String,
    /// The parameter solved for.
    pub param: String,
    /// The convention of macs, flops and activations.
    pub convention: Convention,
    /// The budgets.
    pub budgets: Vec<Budget>,
    /// Reference networks named by `@` budgets: (label, figures).
    pub references: Vec<Reference>,
    /// One per assignment and criterion.
    pub solutions: Vec<Solution>,
}

impl SolveReport {
    /// Whether every assignment has an answer under every criterion.
    pub fn all_found(&self) -> bool {
        self.solutions.iter().all(|s| s.value.is_some())
    }
}

/// A reference network that budgets were taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// `resnet50 (specs/resnet/resnet50.arch)`.
    pub label: String,
    /// Its figures.
    pub figures: Figures,
}

/// A compiled value: its figures and the first stage's template arguments.
type Valid<'a> = (u64, &'a Figures, &'a Vec<(String, u64)>);

enum Outcome {
    Valid(Box<Figures>, Vec<(String, u64)>),
    Skipped(String),
}

fn fatal(d: &Diagnostic) -> bool {
    matches!(
        d.code,
        "archc::expand::override" | "archc::network" | "archc::expand::missing"
    )
}

/// The product of the `--each` lists, in order.
pub fn assignments(each: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (k, values) in each {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((k.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out
}

/// Compiles `spec` with `set` on top of `base` (later keys replace earlier ones) and returns its
/// figures, or a reason to skip it; a fatal error (unknown parameter, no such network) is `Err`.
fn evaluate(spec: &Spec, p: &Problem, set: &[(String, String)]) -> Result<Outcome, Failure> {
    let mut overrides = p.base.clone();
    overrides
        .set
        .retain(|(k, _)| !set.iter().any(|(s, _)| s == k));
    overrides.set.extend(set.iter().cloned());
    match spec.compile(&p.network, &overrides) {
        Ok(c) => {
            if let Some(m) = p.multiple_of {
                if let Some(bad) = c.graph.nodes().find_map(|(_, n)| match n.op {
                    crate::graph::Op::Conv { out, .. } if m > 0 && out % m != 0 => Some(n),
                    _ => None,
                }) {
                    return Ok(Outcome::Skipped(format!(
                        "`{}` has {} channels, not a multiple of {m}",
                        bad.path, bad.shape.c
                    )));
                }
            }
            let figures = Figures::of(&c, p.convention).map_err(|d| Failure {
                sources: spec.sources.clone(),
                diagnostics: vec![d],
            });
            match figures {
                Ok(f) => Ok(Outcome::Valid(
                    Box::new(f),
                    c.model
                        .stages
                        .first()
                        .map(|s| s.args.clone())
                        .unwrap_or_default(),
                )),
                Err(f) => Ok(Outcome::Skipped(
                    f.diagnostics
                        .first()
                        .map(|d| d.message.clone())
                        .unwrap_or_default(),
                )),
            }
        }
        Err(f) if f.diagnostics.iter().any(fatal) => Err(f),
        Err(f) => Ok(Outcome::Skipped(
            f.diagnostics
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default(),
        )),
    }
}

/// Solves `p` on `spec`. `Err` for a problem that cannot be posed (an unknown parameter, no
/// upper budget, no such network); a budget no value meets is a [`Solution`] with no value and a
/// reason, not an error.
pub fn solve(spec: &Spec, p: &Problem) -> Result<Vec<Solution>, Failure> {
    let fail = |msg: String, help: &str| Failure {
        sources: spec.sources.clone(),
        diagnostics: vec![Diagnostic::new("archc::solve", msg).help(help.to_string())],
    };
    if !p.budgets.iter().any(Budget::at_most) {
        return Err(fail(
            format!(
                "nothing bounds `{}` from above: the solver needs a `<=` budget",
                p.param
            ),
            "add one in the spec's `budget` block or with --budget, e.g. --budget 'params<=25.6M'",
        ));
    }
    if p.max == 0 {
        return Err(fail(
            "--max must be at least 1".to_string(),
            "e.g. --max 4096",
        ));
    }
    if p.each.iter().any(|(k, _)| *k == p.param) {
        return Err(fail(
            format!(
                "`{}` is both solved for (--for) and given (--each)",
                p.param
            ),
            "solve for one parameter, for each value of the others",
        ));
    }
    let mut out = Vec::new();
    for assignment in assignments(&p.each) {
        let mut points: Vec<(u64, Outcome)> = Vec::new();
        let mut stop_at: Option<u64> = None;
        let mut v = 1u64;
        loop {
            let mut set = assignment.clone();
            set.push((p.param.clone(), v.to_string()));
            let outcome = evaluate(spec, p, &set)?;
            if let (Outcome::Valid(f, _), None) = (&outcome, stop_at) {
                if p.budgets.iter().any(|b| b.at_most() && !b.check(f).ok) {
                    stop_at = Some(v.saturating_add(v.clamp(8, 1024)).min(p.max));
                }
            }
            points.push((v, outcome));
            if stop_at.is_some_and(|s| v >= s) || v >= p.max {
                break;
            }
            // A parameter that changes no figure would be scanned up to --max for nothing.
            if v == CONSTANT_PROBE && stop_at.is_none() && constant(&points) {
                return Err(fail(
                    format!(
                        "`{}` changes no figure of `{}`: {} values give the same costs",
                        p.param, p.network, CONSTANT_PROBE
                    ),
                    "solve for a parameter that the budgets depend on (a width, a depth)",
                ));
            }
            v += 1;
        }
        for criterion in &p.criteria {
            out.push(pick(p, &assignment, &points, *criterion, stop_at.is_some()));
        }
    }
    Ok(out)
}

/// After this many values, a parameter whose figures never changed is reported as inert.
const CONSTANT_PROBE: u64 = 64;

/// Whether every valid point has the same figures (and there is at least one).
fn constant(points: &[(u64, Outcome)]) -> bool {
    let mut figures = points.iter().filter_map(|(_, o)| match o {
        Outcome::Valid(f, _) => Some(**f),
        Outcome::Skipped(_) => None,
    });
    match figures.next() {
        Some(first) => figures.all(|f| f == first),
        None => false,
    }
}

fn pick(
    p: &Problem,
    assignment: &[(String, String)],
    points: &[(u64, Outcome)],
    criterion: Criterion,
    bounded: bool,
) -> Solution {
    let valid: Vec<Valid<'_>> = points
        .iter()
        .filter_map(|(v, o)| match o {
            Outcome::Valid(f, a) => Some((*v, f.as_ref(), a)),
            Outcome::Skipped(_) => None,
        })
        .collect();
    let last = points.last().map(|(v, _)| *v).unwrap_or(0);
    let mut s = Solution {
        criterion,
        assignment: assignment.to_vec(),
        param: p.param.clone(),
        value: None,
        figures: None,
        args: Vec::new(),
        budgets: Vec::new(),
        binding: None,
        next: None,
        searched: [1, last],
        evaluated: points.len() as u64,
        skipped: (points.len() - valid.len()) as u64,
        reason: None,
    };
    let holds = |f: &Figures, skip_target: bool| {
        p.budgets
            .iter()
            .enumerate()
            .all(|(i, b)| (skip_target && i == 0) || b.check(f).ok)
    };
    let chosen = match criterion {
        Criterion::Largest => valid.iter().rev().find(|(_, f, _)| holds(f, false)),
        Criterion::Nearest => {
            let target = &p.budgets[0];
            valid
                .iter()
                .filter(|(_, f, _)| holds(f, true))
                .min_by_key(|(v, f, _)| {
                    let c = target.check(f);
                    (c.slack.max(c.excess), !c.ok, *v)
                })
        }
    };
    let Some((value, figures, args)) = chosen else {
        s.reason = Some(no_fit(p, &valid, points, last));
        return s;
    };
    s.value = Some(*value);
    s.figures = Some(**figures);
    s.args = (*args).clone();
    s.budgets = p.budgets.iter().map(|b| b.check(figures)).collect();
    match criterion {
        Criterion::Largest => {
            if let Some((nv, nf, _)) = valid.iter().find(|(v, _, _)| v > value) {
                let broken: Vec<BudgetCheck> = p
                    .budgets
                    .iter()
                    .map(|b| b.check(nf))
                    .filter(|c| !c.ok)
                    .collect();
                s.binding = broken.first().and_then(|b| {
                    s.budgets
                        .iter()
                        .find(|c| c.figure == b.figure && c.op == b.op && c.limit == b.limit)
                        .cloned()
                });
                s.next = Some(Next { value: *nv, broken });
            } else if !bounded {
                s.reason = Some(format!(
                    "every budget still holds at {} = {last} (--max); the answer may be larger",
                    p.param
                ));
            }
        }
        Criterion::Nearest => s.binding = s.budgets.first().cloned(),
    }
    s
}

fn no_fit(p: &Problem, valid: &[Valid<'_>], points: &[(u64, Outcome)], last: u64) -> String {
    let Some((v, f, _)) = valid.first() else {
        let why = points
            .iter()
            .find_map(|(v, o)| match o {
                Outcome::Skipped(m) => Some(format!("at {} = {v}: {m}", p.param)),
                Outcome::Valid(..) => None,
            })
            .unwrap_or_default();
        return format!(
            "no value of {} in 1..={last} gives a valid network ({why})",
            p.param
        );
    };
    let broken: Vec<String> = p
        .budgets
        .iter()
        .map(|b| (b, b.check(f)))
        .filter(|(_, c)| !c.ok)
        .map(|(b, c)| {
            format!(
                "{} is {} ({} {})",
                b.figure.name(),
                grouped(c.actual),
                grouped(c.excess),
                if b.at_most() { "over" } else { "under" }
            )
        })
        .collect();
    format!(
        "no value of {} in 1..={last} meets every budget; at the smallest valid value, {} = {v}, {}",
        p.param,
        p.param,
        broken.join(", ")
    )
}

fn margin(c: &BudgetCheck) -> String {
    if c.ok && c.slack == 0 {
        "exact".to_string()
    } else if c.ok {
        format!("{} left", grouped(c.slack))
    } else {
        format!(
            "{} {}",
            grouped(c.excess),
            if c.op == "<=" { "over" } else { "under" }
        )
    }
}

fn pct(c: &BudgetCheck) -> String {
    let d = if c.ok { c.slack } else { c.excess };
    format!("{:.2}%", d as f64 * 100.0 / c.limit.max(1) as f64)
}

/// The text table of `archc solve`.
pub fn text(r: &SolveReport) -> String {
    let mut o = String::new();
    let conv = r.convention;
    let _ = writeln!(
        o,
        "solve {} of {} (convention {}: macs = {})",
        r.param,
        r.network,
        conv.name(),
        conv.compute_unit()
    );
    for b in &r.budgets {
        let _ = writeln!(
            o,
            "  budget {} [{}]: {}",
            b.describe(),
            b.source(),
            b.figure.unit(conv)
        );
    }
    // Columns: the assignment keys, the parameter, the first stage's arguments that vary, then the
    // figures the budgets name plus params and macs.
    let keys: Vec<String> = r
        .solutions
        .first()
        .map(|s| s.assignment.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let mut varying: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for s in r.solutions.iter().filter(|s| s.value.is_some()) {
        for (k, v) in &s.args {
            if *k == r.param || keys.contains(k) {
                continue;
            }
            match seen.get(k) {
                Some(prev) if prev != v && !varying.contains(k) => varying.push(k.clone()),
                None => {
                    seen.insert(k.clone(), *v);
                }
                _ => {}
            }
        }
    }
    let mut figures = vec![Figure::Params, Figure::Macs];
    for b in &r.budgets {
        if !figures.contains(&b.figure) {
            figures.insert(figures.len() - 1, b.figure);
        }
    }
    figures.sort_by_key(|f| Figure::ALL.iter().position(|x| x == f));
    let fig_name = |f: Figure| match f {
        Figure::Macs => conv.compute_name().to_string(),
        other => other.name().to_string(),
    };
    let header = |o: &mut String, last: &str| {
        let mut h = String::from("   ");
        for k in &keys {
            let _ = write!(h, " {k:>5}");
        }
        let _ = write!(h, " {:>6}", r.param);
        for a in &varying {
            let _ = write!(h, " {a:>6}");
        }
        for f in &figures {
            let _ = write!(h, " {:>16}", fig_name(*f));
        }
        let _ = writeln!(o, "{h}  {last}");
    };
    let row_figs = |o: &mut String, f: &Figures| {
        for x in &figures {
            let _ = write!(o, " {:>16}", grouped(f.get(*x)));
        }
    };
    let mut criteria: Vec<Criterion> = Vec::new();
    for s in &r.solutions {
        if !criteria.contains(&s.criterion) {
            criteria.push(s.criterion);
        }
    }
    for crit in criteria {
        let _ = writeln!(o, "{}:", crit.describe(&r.param, &r.budgets));
        header(
            &mut o,
            match crit {
                Criterion::Largest => "binding budget: margin; next value",
                Criterion::Nearest => "target: distance",
            },
        );
        for reference in &r.references {
            let mut line = String::from("   ");
            for _ in &keys {
                let _ = write!(line, " {:>5}", "-");
            }
            let _ = write!(line, " {:>6}", "-");
            for _ in &varying {
                let _ = write!(line, " {:>6}", "-");
            }
            row_figs(&mut line, &reference.figures);
            let _ = writeln!(o, "{line}  reference: {}", reference.label);
        }
        for s in r.solutions.iter().filter(|s| s.criterion == crit) {
            let mut line = String::from("   ");
            for (_, v) in &s.assignment {
                let _ = write!(line, " {v:>5}");
            }
            match (s.value, &s.figures) {
                (Some(v), Some(f)) => {
                    let _ = write!(line, " {v:>6}");
                    for a in &varying {
                        let val = s
                            .args
                            .iter()
                            .find(|(k, _)| k == a)
                            .map(|(_, v)| v.to_string())
                            .unwrap_or_default();
                        let _ = write!(line, " {val:>6}");
                    }
                    row_figs(&mut line, f);
                    let tail = match (crit, &s.binding, &s.next) {
                        (Criterion::Largest, Some(b), Some(n)) => {
                            let over = n
                                .broken
                                .first()
                                .map(|c| {
                                    format!(
                                        "{} {}",
                                        grouped(c.excess),
                                        if c.op == "<=" { "over" } else { "under" }
                                    )
                                })
                                .unwrap_or_default();
                            format!(
                                "{} {} {}: {} ({}); {}={}: {over}",
                                b.figure.name(),
                                b.op,
                                grouped(b.limit),
                                margin(b),
                                pct(b),
                                r.param,
                                n.value
                            )
                        }
                        (Criterion::Nearest, Some(b), _) => format!(
                            "{} {} {}: {} ({})",
                            b.figure.name(),
                            b.op,
                            grouped(b.limit),
                            margin(b),
                            pct(b)
                        ),
                        _ => s.reason.clone().unwrap_or_default(),
                    };
                    let _ = writeln!(o, "{line}  {tail}");
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "{line} {:>6}  NO FIT: {}",
                        "-",
                        s.reason.as_deref().unwrap_or("no value fits")
                    );
                }
            }
        }
    }
    let first = r.solutions.first().map(|s| s.criterion);
    let (evaluated, skipped) = r
        .solutions
        .iter()
        .filter(|s| Some(s.criterion) == first)
        .fold((0u64, 0u64), |(e, k), s| (e + s.evaluated, k + s.skipped));
    let _ = writeln!(
        o,
        "search: every {} from 1 until a budget breaks, then as many values again (8 to 1,024) \
         to verify; {} exact compiles{}",
        r.param,
        grouped(evaluated),
        if skipped > 0 {
            format!(", {} values skipped (no valid network)", grouped(skipped))
        } else {
            String::new()
        }
    );
    o
}
