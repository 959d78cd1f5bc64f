//! Budgets: what a network may cost, and the one check of its figures against them.
//!
//! A budget is a [`Limit`]: a [`Figure`], a comparison ([`Cmp`]: at most `<=`, at least `>=`),
//! an exact value, and where it comes from ([`Origin`]: a line of the spec's `budget` block, an
//! override given with the compile, or a reference network `@SPEC`). [`check`] holds a network's
//! [`Figures`] against limits and gives one [`Verdict`] per limit. Every budget goes through it:
//! the cost report ([`crate::cost::analyze`]), the report under another counting convention
//! ([`crate::cost::convention::analyze`]), the proc-macro's `where` bounds (overrides, see
//! [`crate::Overrides::budgets`]), and the tools `solve` and `sweep`.
//!
//! A spec can name the five metrics of its grammar ([`Metric`]: `params`, `buffers`, `macs`,
//! `flops`, `activations`); the tools add `weights`, parameters without batch-norm (the count of
//! the paper's formulas). This module is the one table of their keywords and units.
//!
//! ```
//! use archc::cost::budget::{check, Cmp, Figure, Figures, Limit, Origin};
//! let figures = Figures { params: 100, ..Figures::default() };
//! let at_most = Limit::new(Figure::Params, Cmp::AtMost, 100, "100", Origin::Override);
//! let at_least = Limit::new(Figure::Params, Cmp::AtLeast, 101, "101", Origin::Override);
//! let v = check(&[at_most, at_least], &figures);
//! assert!(v[0].ok && v[0].slack == 0);
//! assert!(!v[1].ok && v[1].excess == 1);
//! ```

use crate::cost::convention::Convention;
use crate::cost::{CostReport, grouped};
use crate::graph::OpKind;
use crate::source::Span;
use crate::syntax::ast::{self, Metric};
use serde::{Serialize, Serializer};
use std::fmt;

/// How a limit compares: the network's figure must be at most or at least the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cmp {
    /// `<=`: an upper bound.
    AtMost,
    /// `>=`: a lower bound.
    AtLeast,
}

impl Cmp {
    /// Both comparisons.
    pub const ALL: [Cmp; 2] = [Cmp::AtMost, Cmp::AtLeast];

    /// `<=` for `true`, `>=` for `false` (the AST's `at_most`).
    pub fn at_most(at_most: bool) -> Cmp {
        if at_most { Cmp::AtMost } else { Cmp::AtLeast }
    }

    /// `<=` or `>=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::AtMost => "<=",
            Cmp::AtLeast => ">=",
        }
    }

    /// Whether `actual` meets a limit of `value`.
    pub fn holds(self, actual: u64, value: u64) -> bool {
        match self {
            Cmp::AtMost => actual <= value,
            Cmp::AtLeast => actual >= value,
        }
    }

    /// The side a broken limit is passed on: `over` or `under`.
    pub fn broken_word(self) -> &'static str {
        match self {
            Cmp::AtMost => "over",
            Cmp::AtLeast => "under",
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Serialize for Cmp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.symbol())
    }
}

/// A figure a budget can limit. The spec's metrics ([`Metric`]) are a subset: every figure but
/// [`Figure::Weights`].
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
    /// Every figure, in the order of tables.
    pub const ALL: [Figure; 6] = [
        Figure::Params,
        Figure::Weights,
        Figure::Buffers,
        Figure::Macs,
        Figure::Flops,
        Figure::Activations,
    ];

    /// The spec metric this figure is, if the spec's grammar can name it.
    pub fn metric(self) -> Option<Metric> {
        match self {
            Figure::Params => Some(Metric::Params),
            Figure::Weights => None,
            Figure::Buffers => Some(Metric::Buffers),
            Figure::Macs => Some(Metric::Macs),
            Figure::Flops => Some(Metric::Flops),
            Figure::Activations => Some(Metric::Activations),
        }
    }

    /// The keyword: the grammar's for a metric ([`Metric::as_str`]), and `weights`.
    pub fn name(self) -> &'static str {
        match self.metric() {
            Some(m) => m.as_str(),
            None => "weights",
        }
    }

    /// Parses a keyword.
    pub fn from_name(s: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The unit a count of this figure is in, for messages (`25,028,904 parameters`). Under
    /// fvcore's and pycls's conventions, `macs` and `flops` are that tool's own count.
    pub fn unit(self, conv: Convention) -> &'static str {
        match (self, conv) {
            (Figure::Macs | Figure::Flops, Convention::Fvcore | Convention::Pycls) => {
                conv.compute_name()
            }
            (Figure::Params, _) => "parameters",
            (Figure::Weights, _) => "weights",
            (Figure::Buffers, _) => "buffer elements",
            (Figure::Macs, _) => "multiply-adds (MACs)",
            (Figure::Flops, _) => "FLOPs (2 x MACs)",
            (Figure::Activations, _) => "activations",
        }
    }

    /// What the figure counts under `conv`, spelled out.
    pub fn meaning(self, conv: Convention) -> &'static str {
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

impl From<Metric> for Figure {
    fn from(m: Metric) -> Figure {
        match m {
            Metric::Params => Figure::Params,
            Metric::Buffers => Figure::Buffers,
            Metric::Macs => Figure::Macs,
            Metric::Flops => Figure::Flops,
            Metric::Activations => Figure::Activations,
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every figure of one network, per image.
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
    /// 2 × macs, unless a convention says otherwise.
    pub flops: u64,
    /// The convention's activations.
    pub activations: u64,
}

impl Figures {
    /// The figures of a compiled network under `conv` (`macs` and `activations` are the
    /// convention's), `flops` being 2 × macs.
    pub fn of(c: &crate::Compiled, conv: Convention) -> Result<Figures, crate::Diagnostic> {
        Ok(Figures::of_report(&c.report_under(conv)?))
    }

    /// The figures of a cost report, `flops` being 2 × its macs.
    pub fn of_report(r: &CostReport) -> Figures {
        // Weights are part of the parameters, whose sum `analyze` has checked: no overflow.
        let weights = r
            .layers
            .iter()
            .filter(|l| matches!(l.op, OpKind::Conv | OpKind::Linear))
            .fold(0u64, |acc, l| acc.saturating_add(l.cost.params));
        Figures {
            params: r.total.params,
            weights,
            buffers: r.total.buffers,
            macs: r.total.macs,
            flops: r.total.flops(),
            activations: r.total.activations,
        }
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

/// Where a limit comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A line of the spec's `budget` block.
    Spec(Span),
    /// Given with the compile, outside the spec: `--budget` on the command line, or a `where`
    /// bound of `resnext!` (see [`crate::Overrides::budgets`]).
    Override,
    /// A reference network's own figure (`@SPEC`), by its label.
    Reference(String),
}

impl Origin {
    /// The span of a spec line.
    pub fn span(&self) -> Option<Span> {
        match self {
            Origin::Spec(s) => Some(*s),
            _ => None,
        }
    }

    /// The JSON name: `spec`, `command line`, or the reference's label.
    pub fn name(&self) -> &str {
        match self {
            Origin::Spec(_) => "spec",
            Origin::Override => "command line",
            Origin::Reference(label) => label,
        }
    }
}

fn origin_name<S: Serializer>(o: &Origin, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(o.name())
}

/// A budget: a figure, a comparison, an exact value and its origin. Serialized as
/// `{figure, op, limit, written, from}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Limit {
    /// What is limited.
    pub figure: Figure,
    /// At most or at least.
    #[serde(rename = "op")]
    pub cmp: Cmp,
    /// The limit, exactly.
    #[serde(rename = "limit")]
    pub value: u64,
    /// As written (`25.6M`, `@specs/resnet/resnet50.arch`).
    pub written: String,
    /// Where it comes from.
    #[serde(rename = "from", serialize_with = "origin_name")]
    pub origin: Origin,
}

impl Limit {
    /// A limit.
    pub fn new(figure: Figure, cmp: Cmp, value: u64, written: &str, origin: Origin) -> Limit {
        Limit {
            figure,
            cmp,
            value,
            written: written.to_string(),
            origin,
        }
    }

    /// A line of a spec's `budget` block.
    pub fn from_spec(l: &ast::Limit) -> Limit {
        Limit::new(
            l.metric.into(),
            Cmp::at_most(l.at_most),
            l.value,
            &l.written,
            Origin::Spec(l.span),
        )
    }

    /// Whether `other` bounds the same figure from the same side, so that one replaces the other.
    pub fn same_bound(&self, other: &Limit) -> bool {
        self.figure == other.figure && self.cmp == other.cmp
    }

    /// Where the limit comes from, for display: `70.4k in the spec`, `--budget`,
    /// `@specs/resnet/resnet50.arch = resnet50`.
    pub fn source(&self) -> String {
        match &self.origin {
            Origin::Spec(_) => format!("{} in the spec", self.written),
            Origin::Override => "--budget".to_string(),
            Origin::Reference(label) => format!("{} = {label}", self.written),
        }
    }

    /// `weights <= 69,632`.
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.figure, self.cmp, grouped(self.value))
    }

    /// The verdict on `figures`.
    pub fn check(&self, figures: &Figures) -> Verdict {
        let actual = figures.get(self.figure);
        let ok = self.cmp.holds(actual, self.value);
        let distance = actual.abs_diff(self.value);
        Verdict {
            limit: self.clone(),
            actual,
            ok,
            slack: if ok { distance } else { 0 },
            excess: if ok { 0 } else { distance },
        }
    }
}

/// The verdicts of `limits` on `figures`, in order.
pub fn check(limits: &[Limit], figures: &Figures) -> Vec<Verdict> {
    limits.iter().map(|l| l.check(figures)).collect()
}

/// `base` with `overrides` applied: an override replaces every limit on the same figure from the
/// same side ([`Limit::same_bound`]) and comes after the others, in the order given.
pub fn merge(base: impl IntoIterator<Item = Limit>, overrides: &[Limit]) -> Vec<Limit> {
    let mut out: Vec<Limit> = base.into_iter().collect();
    for o in overrides {
        out.retain(|l| !l.same_bound(o));
        out.push(o.clone());
    }
    out
}

/// One limit's verdict on one network. Serialized as `{figure, op, limit, actual, ok, slack,
/// excess}` (the JSON report of `check` has its own view, `emit::report::JsonBudget`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The limit.
    pub limit: Limit,
    /// The network's figure.
    pub actual: u64,
    /// Whether the limit holds.
    pub ok: bool,
    /// How far inside the limit (0 when broken).
    pub slack: u64,
    /// How far past the limit (0 when it holds).
    pub excess: u64,
}

impl Verdict {
    /// `exact`, `132,032 left`, or `128 over`.
    pub fn margin(&self) -> String {
        if self.ok && self.slack == 0 {
            "exact".to_string()
        } else if self.ok {
            format!("{} left", grouped(self.slack))
        } else {
            format!("{} {}", grouped(self.excess), self.limit.cmp.broken_word())
        }
    }

    /// The slack or excess as a percentage of the limit: `0.52%`.
    pub fn percent(&self) -> String {
        let d = if self.ok { self.slack } else { self.excess };
        format!("{:.2}%", d as f64 * 100.0 / self.limit.value.max(1) as f64)
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View {
            figure: Figure,
            op: Cmp,
            limit: u64,
            actual: u64,
            ok: bool,
            slack: u64,
            excess: u64,
        }
        View {
            figure: self.limit.figure,
            op: self.limit.cmp,
            limit: self.limit.value,
            actual: self.actual,
            ok: self.ok,
            slack: self.slack,
            excess: self.excess,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(figure: Figure, cmp: Cmp, value: u64) -> Limit {
        Limit::new(figure, cmp, value, &value.to_string(), Origin::Override)
    }

    fn with(figure: Figure, value: u64) -> Figures {
        let mut f = Figures::default();
        match figure {
            Figure::Params => f.params = value,
            Figure::Weights => f.weights = value,
            Figure::Buffers => f.buffers = value,
            Figure::Macs => f.macs = value,
            Figure::Flops => f.flops = value,
            Figure::Activations => f.activations = value,
        }
        f
    }

    #[test]
    fn at_most_holds_up_to_and_at_the_limit() {
        let l = limit(Figure::Macs, Cmp::AtMost, 1_000);
        let below = l.check(&with(Figure::Macs, 990));
        assert!(below.ok);
        assert_eq!((below.actual, below.slack, below.excess), (990, 10, 0));
        let equal = l.check(&with(Figure::Macs, 1_000));
        assert!(equal.ok, "the limit itself meets an upper bound");
        assert_eq!((equal.slack, equal.excess), (0, 0));
        assert_eq!(equal.margin(), "exact");
        let above = l.check(&with(Figure::Macs, 1_001));
        assert!(!above.ok);
        assert_eq!((above.slack, above.excess), (0, 1));
        assert_eq!(above.margin(), "1 over");
    }

    #[test]
    fn at_least_holds_from_the_limit_up() {
        let l = limit(Figure::Activations, Cmp::AtLeast, 1_000);
        let below = l.check(&with(Figure::Activations, 999));
        assert!(!below.ok);
        assert_eq!((below.slack, below.excess), (0, 1));
        assert_eq!(below.margin(), "1 under");
        let equal = l.check(&with(Figure::Activations, 1_000));
        assert!(equal.ok, "the limit itself meets a lower bound");
        assert_eq!((equal.slack, equal.excess), (0, 0));
        let above = l.check(&with(Figure::Activations, 1_500));
        assert!(above.ok);
        assert_eq!((above.slack, above.excess), (500, 0));
        assert_eq!(above.margin(), "500 left");
        assert_eq!(above.percent(), "50.00%");
    }

    #[test]
    fn each_limit_reads_its_own_figure() {
        let f = Figures {
            params: 10,
            weights: 8,
            buffers: 4,
            macs: 100,
            flops: 200,
            activations: 50,
        };
        let limits: Vec<Limit> = Figure::ALL
            .iter()
            .map(|fig| limit(*fig, Cmp::AtMost, f.get(*fig)))
            .collect();
        let verdicts = check(&limits, &f);
        assert_eq!(verdicts.len(), 6);
        for (v, fig) in verdicts.iter().zip(Figure::ALL) {
            assert!(v.ok && v.slack == 0, "{fig}");
            assert_eq!(v.actual, f.get(fig));
        }
        let tighter = check(&[limit(Figure::Weights, Cmp::AtMost, 7)], &f);
        assert!(!tighter[0].ok, "weights, not params, are checked");
    }

    #[test]
    fn keywords_round_trip_and_metrics_are_a_subset() {
        for f in Figure::ALL {
            assert_eq!(Figure::from_name(f.name()), Some(f));
            if let Some(m) = f.metric() {
                assert_eq!(Figure::from(m), f);
                assert_eq!(m.as_str(), f.name());
            }
        }
        assert_eq!(Figure::Weights.metric(), None);
        assert_eq!(Figure::from_name("bogus"), None);
    }

    #[test]
    fn an_override_replaces_the_same_bound_only() {
        let spec = [
            limit(Figure::Params, Cmp::AtMost, 10),
            limit(Figure::Params, Cmp::AtLeast, 1),
            limit(Figure::Macs, Cmp::AtMost, 100),
        ];
        let merged = merge(spec, &[limit(Figure::Params, Cmp::AtMost, 20)]);
        let values: Vec<(Figure, Cmp, u64)> =
            merged.iter().map(|l| (l.figure, l.cmp, l.value)).collect();
        assert_eq!(
            values,
            [
                (Figure::Params, Cmp::AtLeast, 1),
                (Figure::Macs, Cmp::AtMost, 100),
                (Figure::Params, Cmp::AtMost, 20),
            ]
        );
    }

    #[test]
    fn json_shapes() {
        let l = Limit::new(
            Figure::Params,
            Cmp::AtMost,
            25_557_032,
            "@specs/resnet/resnet50.arch",
            Origin::Reference("resnet50".into()),
        );
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({"figure": "params", "op": "<=", "limit": 25_557_032,
                "written": "@specs/resnet/resnet50.arch", "from": "resnet50"})
        );
        let v = l.check(&with(Figure::Params, 25_425_000));
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"figure": "params", "op": "<=", "limit": 25_557_032,
                "actual": 25_425_000, "ok": true, "slack": 132_032, "excess": 0})
        );
    }
}
