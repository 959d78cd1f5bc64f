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
//! [`Convention`]. Budgets are [`Limit`]s, checked by [`crate::cost::budget`].

use crate::cost::budget::{Cmp, Figure, Figures, Limit, Origin, Verdict};
use crate::cost::convention::Convention;
use crate::cost::grouped;
use crate::diag::Diagnostic;
use crate::expand::Overrides;
use crate::{Compiled, Failure, Spec};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The largest value a solve tries by default.
pub const DEFAULT_MAX: u64 = 65_536;

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
    /// At most or at least.
    pub cmp: Cmp,
    /// The limit.
    pub limit: LimitText,
    /// As written.
    pub written: String,
}

/// Parses `params<=25.6M`, `weights<=@`, `macs<=@specs/resnet/resnet50.arch`, `flops>=1G`.
pub fn parse_budget(s: &str) -> Result<BudgetText, String> {
    let text: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let found: Vec<(Cmp, usize)> = Cmp::ALL
        .into_iter()
        .filter_map(|c| text.find(c.symbol()).map(|i| (c, i)))
        .collect();
    let (cmp, i) = match found[..] {
        [one] => one,
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
        cmp,
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

/// The spec's own budget lines as limits: those its report was checked against.
pub fn spec_budgets(c: &Compiled) -> Vec<Limit> {
    c.report.limits()
}

fn declared_label(c: &Compiled) -> String {
    match crate::emit::report::params_text(c) {
        None => format!("{} as declared", c.model.name),
        Some(params) => format!("{} as declared, {params}", c.model.name),
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
) -> Result<(Vec<Limit>, Vec<Reference>), Failure> {
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
        let (limit, origin) = match &t.limit {
            LimitText::Number(v) => (*v, Origin::Override),
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
                                input,
                                ..Overrides::default()
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
                (figures.get(t.figure), Origin::Reference(label))
            }
        };
        out.push(Limit::new(t.figure, t.cmp, limit, &t.written, origin));
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
    pub fn describe(self, param: &str, budgets: &[Limit]) -> String {
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
    pub budgets: Vec<Limit>,
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
    pub broken: Vec<Verdict>,
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
    pub budgets: Vec<Verdict>,
    /// The budget that decides the answer: broken at the next value (largest), or the target
    /// (nearest).
    pub binding: Option<Verdict>,
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
    pub budgets: Vec<Limit>,
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
    let overrides = super::with_set(&p.base, set);
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
        Err(f) if f.is_fatal() => Err(f),
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
    if !p.budgets.iter().any(|b| b.cmp == Cmp::AtMost) {
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
                if p.budgets
                    .iter()
                    .any(|b| b.cmp == Cmp::AtMost && !b.check(f).ok)
                {
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
                let broken: Vec<Verdict> = p
                    .budgets
                    .iter()
                    .map(|b| b.check(nf))
                    .filter(|c| !c.ok)
                    .collect();
                s.binding = broken
                    .first()
                    .and_then(|b| s.budgets.iter().find(|c| c.limit == b.limit).cloned());
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
        .map(|(b, c)| format!("{} is {} ({})", b.figure, grouped(c.actual), c.margin()))
        .collect();
    format!(
        "no value of {} in 1..={last} meets every budget; at the smallest valid value, {} = {v}, {}",
        p.param,
        p.param,
        broken.join(", ")
    )
}

/// The columns of the text table: the assignment keys, the parameter, the first stage's
/// arguments that vary between answers, then the figures the budgets name plus params and macs.
struct Columns {
    keys: Vec<String>,
    varying: Vec<String>,
    figures: Vec<Figure>,
}

impl Columns {
    fn of(r: &SolveReport) -> Columns {
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
        Columns {
            keys,
            varying,
            figures,
        }
    }

    fn header(&self, o: &mut String, r: &SolveReport, last: &str) {
        let mut h = String::from("   ");
        for k in &self.keys {
            let _ = write!(h, " {k:>5}");
        }
        let _ = write!(h, " {:>6}", r.param);
        for a in &self.varying {
            let _ = write!(h, " {a:>6}");
        }
        for f in &self.figures {
            let name = match f {
                Figure::Macs => r.convention.compute_name(),
                other => other.name(),
            };
            let _ = write!(h, " {name:>16}");
        }
        let _ = writeln!(o, "{h}  {last}");
    }

    fn figures(&self, line: &mut String, f: &Figures) {
        for x in &self.figures {
            let _ = write!(line, " {:>16}", grouped(f.get(*x)));
        }
    }

    /// A reference network's row: dashes, then its figures.
    fn reference(&self, o: &mut String, reference: &Reference) {
        let mut line = String::from("   ");
        for _ in &self.keys {
            let _ = write!(line, " {:>5}", "-");
        }
        let _ = write!(line, " {:>6}", "-");
        for _ in &self.varying {
            let _ = write!(line, " {:>6}", "-");
        }
        self.figures(&mut line, &reference.figures);
        let _ = writeln!(o, "{line}  reference: {}", reference.label);
    }

    /// An answer's row: the assignment, the value, the varying arguments, the figures and why.
    fn solution(&self, o: &mut String, r: &SolveReport, s: &Solution) {
        let mut line = String::from("   ");
        for (_, v) in &s.assignment {
            let _ = write!(line, " {v:>5}");
        }
        let (Some(v), Some(f)) = (s.value, &s.figures) else {
            let why = s.reason.as_deref().unwrap_or("no value fits");
            let _ = writeln!(o, "{line} {:>6}  NO FIT: {why}", "-");
            return;
        };
        let _ = write!(line, " {v:>6}");
        for a in &self.varying {
            let val = s
                .args
                .iter()
                .find(|(k, _)| k == a)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            let _ = write!(line, " {val:>6}");
        }
        self.figures(&mut line, f);
        let _ = writeln!(o, "{line}  {}", why(r, s));
    }
}

/// The last column of an answer: the binding budget and its margin, and for the largest value
/// what the next one breaks.
fn why(r: &SolveReport, s: &Solution) -> String {
    let binding = |b: &Verdict| format!("{}: {} ({})", b.limit.describe(), b.margin(), b.percent());
    match (s.criterion, &s.binding, &s.next) {
        (Criterion::Largest, Some(b), Some(n)) => {
            let over = n.broken.first().map(Verdict::margin).unwrap_or_default();
            format!("{}; {}={}: {over}", binding(b), r.param, n.value)
        }
        (Criterion::Nearest, Some(b), _) => binding(b),
        _ => s.reason.clone().unwrap_or_default(),
    }
}

/// The text table of `archc solve`: the budgets, one table per criterion (the reference
/// networks, then one row per assignment), and how much was compiled.
pub fn text(r: &SolveReport) -> String {
    let mut o = String::new();
    let what = format!("solve {} of {}", r.param, r.network);
    super::write_head(&mut o, &what, "", "macs", &r.budgets, r.convention);
    let columns = Columns::of(r);
    let mut criteria: Vec<Criterion> = Vec::new();
    for s in &r.solutions {
        if !criteria.contains(&s.criterion) {
            criteria.push(s.criterion);
        }
    }
    for crit in criteria {
        let _ = writeln!(o, "{}:", crit.describe(&r.param, &r.budgets));
        let last = match crit {
            Criterion::Largest => "binding budget: margin; next value",
            Criterion::Nearest => "target: distance",
        };
        columns.header(&mut o, r, last);
        for reference in &r.references {
            columns.reference(&mut o, reference);
        }
        for s in r.solutions.iter().filter(|s| s.criterion == crit) {
            columns.solution(&mut o, r, s);
        }
    }
    search_line(&mut o, r);
    o
}

/// How many values were compiled and skipped, for the first criterion (the others reuse them).
fn search_line(o: &mut String, r: &SolveReport) {
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
}
