//! Costs: parameters, buffers, multiply-adds, FLOPs and activations, per node, per stage and in
//! total, and the verdicts of the budgets on them ([`budget`]).
//!
//! Conventions (exact integers, per batch element):
//! - **params**: conv and linear weights and biases, batch-norm affine weight and bias.
//! - **buffers**: batch-norm running mean and variance (`num_batches_tracked` is not counted).
//! - **macs** (multiply-adds): conv `C_out·H_out·W_out·(C_in/groups)·k_h·k_w`, linear `in·out`.
//!   Nothing else counts (no batch-norm, pooling, addition or bias), which is what a counter that
//!   hooks PyTorch's conv and linear layers gets, and what torchvision's model docs quote.
//! - **flops** = 2 × macs.
//! - **activations**: output elements of every conv and linear layer, as defined by Radosavovic
//!   et al. (*Designing Network Design Spaces*, 2020) and fvcore's `activation_count`.
//!
//! A 3×3 conv, 64 → 64 channels on a 56×56 map, has `64·56·56·64·3·3` multiply-adds, `64·64·3·3`
//! weights, and `64·56·56` activations; its batch-norm adds `2·64` parameters and `2·64` buffers:
//!
//! ```
//! let spec = archc::Spec::from_text("one.arch", "network one {
//!   input 64x56x56
//!   classes 1
//!   stem { conv 3x3 -> 64 }
//!   block b(w) { conv 1x1 -> w }
//!   stages b(w = 64) { s1: depth 1 }
//!   head { }
//! }").unwrap();
//! let net = spec.compile("one", &archc::Overrides::default()).unwrap();
//! let conv1 = net.report.layers.iter().find(|l| l.path == "conv1").unwrap();
//! assert_eq!(conv1.cost.macs, 115_605_504);
//! assert_eq!(conv1.cost.params, 36_864);
//! assert_eq!(conv1.cost.activations, 200_704);
//! let bn1 = net.report.layers.iter().find(|l| l.path == "bn1").unwrap();
//! assert_eq!((bn1.cost.params, bn1.cost.buffers, bn1.cost.macs), (128, 128, 0));
//! assert_eq!(net.report.total.flops(), 2 * net.report.total.macs);
//! ```

pub mod budget;
pub mod convention;
pub mod resolution;

use crate::diag::Diagnostic;
use crate::graph::{LayerGraph, Op, OpKind};
use crate::syntax::ast::Metric;
use budget::{Figures, Limit, Verdict};
use convention::Convention;
use petgraph::graph::NodeIndex;
use serde::Serialize;

/// The figures of one node, stage or network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Cost {
    /// Learnable parameters.
    pub params: u64,
    /// Batch-norm running statistics.
    pub buffers: u64,
    /// Multiply-adds.
    pub macs: u64,
    /// Output elements of conv and linear layers.
    pub activations: u64,
}

impl Cost {
    /// FLOPs, 2 × multiply-adds (saturating; `analyze` guarantees it fits).
    pub fn flops(&self) -> u64 {
        self.macs.saturating_mul(2)
    }

    /// The sum, or `None` on overflow.
    pub fn checked_add(self, o: Cost) -> Option<Cost> {
        Some(Cost {
            params: self.params.checked_add(o.params)?,
            buffers: self.buffers.checked_add(o.buffers)?,
            macs: self.macs.checked_add(o.macs)?,
            activations: self.activations.checked_add(o.activations)?,
        })
    }

    /// The figure a budget metric names.
    pub fn metric(&self, m: Metric) -> u64 {
        match m {
            Metric::Params => self.params,
            Metric::Buffers => self.buffers,
            Metric::Macs => self.macs,
            Metric::Flops => self.flops(),
            Metric::Activations => self.activations,
        }
    }
}

/// One node's costs, for the per-layer table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerCost {
    /// The node.
    #[serde(skip)]
    pub node: NodeIndex,
    /// Module path.
    pub path: String,
    /// Operation kind.
    pub op: OpKind,
    /// Output shape.
    pub output: [u64; 3],
    /// Its costs.
    #[serde(flatten)]
    pub cost: Cost,
}

/// A stage's costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageCost {
    /// `stem`, `layer1`, ..., `head`.
    pub name: String,
    /// The spec's label (`conv2`).
    pub label: Option<String>,
    /// Number of blocks.
    pub depth: u64,
    /// Output shape of the stage's last node.
    pub output: [u64; 3],
    /// Its costs.
    #[serde(flatten)]
    pub cost: Cost,
}

/// Everything [`analyze`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostReport {
    /// Per node, in graph order.
    pub layers: Vec<LayerCost>,
    /// Per stage: stem, stages, head.
    pub stages: Vec<StageCost>,
    /// The whole network.
    pub total: Cost,
    /// Budget verdicts, in the order of the limits checked.
    pub budgets: Vec<Verdict>,
}

impl CostReport {
    /// The report of these costs with the verdicts of `limits` ([`budget::check`]) on the figures
    /// `figures` reads off it.
    pub fn checked(
        layers: Vec<LayerCost>,
        stages: Vec<StageCost>,
        total: Cost,
        limits: &[Limit],
        figures: impl FnOnce(&CostReport) -> Figures,
    ) -> CostReport {
        let mut report = CostReport {
            layers,
            stages,
            total,
            budgets: Vec::new(),
        };
        report.budgets = budget::check(limits, &figures(&report));
        report
    }

    /// The limits the report was checked against.
    pub fn limits(&self) -> Vec<Limit> {
        self.budgets.iter().map(|v| v.limit.clone()).collect()
    }

    /// Whether every budget holds.
    pub fn within_budget(&self) -> bool {
        self.budgets.iter().all(|v| v.ok)
    }
}

/// A node's own costs.
pub fn node_cost(g: &LayerGraph, n: NodeIndex) -> Option<Cost> {
    let node = &g.graph[n];
    let input = g.input_shape(n);
    let out = node.shape;
    Some(match node.op {
        Op::Conv { .. } => {
            let c = g.conv(n).expect("a conv node has a geometry");
            let [c_out, cin, kh, kw] = c.weight_shape();
            let weight = c_out.checked_mul(cin)?.checked_mul(kh)?.checked_mul(kw)?;
            Cost {
                params: weight.checked_add(if c.bias { c_out } else { 0 })?,
                buffers: 0,
                macs: weight.checked_mul(out.h)?.checked_mul(out.w)?,
                activations: out.numel()?,
            }
        }
        Op::Linear { out: f_out, bias } => {
            let f_in = input.numel()?;
            let weight = f_in.checked_mul(f_out)?;
            Cost {
                params: weight.checked_add(if bias { f_out } else { 0 })?,
                buffers: 0,
                macs: weight,
                activations: f_out,
            }
        }
        Op::BatchNorm => Cost {
            params: out.c.checked_mul(2)?,
            buffers: out.c.checked_mul(2)?,
            ..Cost::default()
        },
        _ => Cost::default(),
    })
}

/// Costs every node, sums stages and total, and checks `limits` ([`budget::check`]).
pub fn analyze(g: &LayerGraph, limits: &[Limit]) -> Result<CostReport, Diagnostic> {
    let overflow = |path: &str| {
        Diagnostic::new(
            "archc::cost::overflow",
            format!("the cost of `{path}` overflows 64 bits"),
        )
    };
    let mut layers = Vec::with_capacity(g.graph.node_count());
    let mut stages: Vec<Cost> = vec![Cost::default(); g.stages.len()];
    let mut outputs = vec![[0u64; 3]; g.stages.len()];
    let mut total = Cost::default();
    for (n, node) in g.nodes() {
        let span = node.span;
        let c = node_cost(g, n).ok_or_else(|| overflow(&node.path).at(span, "here"))?;
        let stage = &mut stages[node.stage];
        *stage = stage
            .checked_add(c)
            .ok_or_else(|| overflow(&node.path).at(span, "here"))?;
        outputs[node.stage] = node.shape.to_array();
        total = total
            .checked_add(c)
            .ok_or_else(|| overflow(&node.path).at(span, "here"))?;
        layers.push(LayerCost {
            node: n,
            path: node.path.clone(),
            op: node.op.kind(),
            output: node.shape.to_array(),
            cost: c,
        });
    }
    if total.macs.checked_mul(2).is_none() {
        return Err(Diagnostic::new(
            "archc::cost::overflow",
            "the network's FLOPs overflow 64 bits",
        ));
    }
    // A stage with no node (an empty stem) reports the shape it passes on.
    for i in 1..outputs.len() {
        if outputs[i] == [0; 3] {
            outputs[i] = outputs[i - 1];
        }
    }
    if outputs[0] == [0; 3] {
        outputs[0] = g.graph[g.input].shape.to_array();
        for i in 1..outputs.len() {
            if outputs[i] == [0; 3] {
                outputs[i] = outputs[i - 1];
            }
        }
    }
    let stages = g
        .stages
        .iter()
        .zip(stages)
        .zip(outputs)
        .map(|((info, cost), output)| StageCost {
            name: info.name.clone(),
            label: info.label.clone(),
            depth: info.depth,
            output,
            cost,
        })
        .collect();
    Ok(CostReport::checked(
        layers,
        stages,
        total,
        limits,
        Figures::of_report,
    ))
}

/// Diagnostics for the budgets a report breaks: the line, the figure, the excess, and the stages
/// that cost most. `conv` is the convention the report was counted under.
pub fn violations(report: &CostReport, conv: Convention) -> Vec<Diagnostic> {
    report
        .budgets
        .iter()
        .filter(|v| !v.ok)
        .map(|v| violation(report, v, conv))
        .collect()
}

/// The diagnostic for one broken budget of `report`, counted under `conv`. It points at the
/// spec's line when the limit comes from one.
pub fn violation(report: &CostReport, v: &Verdict, conv: Convention) -> Diagnostic {
    let l = &v.limit;
    let word = l.cmp.broken_word();
    let diff = v.excess;
    let pct = diff as f64 * 100.0 / l.value.max(1) as f64;
    let mut d = Diagnostic::new(
        "archc::budget::exceeded",
        format!(
            "budget `{} {} {}` is broken: the network has {} {} ({}), {} {word} ({pct:.2}%){}",
            l.figure,
            l.cmp,
            l.written,
            grouped(v.actual),
            l.figure.unit(conv),
            si(v.actual),
            grouped(diff),
            match conv {
                Convention::Torchvision => String::new(),
                other => format!(" [{other} convention]"),
            }
        ),
    );
    if let Some(span) = l.origin.span() {
        d = d.at(span, format!("{word} by {}", grouped(diff)));
    }
    // Stages carry the spec's metrics; `weights` (a tools figure) has no per-stage count.
    if let Some(m) = l.figure.metric() {
        d = d.help(format!(
            "costliest stages by {}: {}",
            l.figure,
            costliest(report, m, v.actual).join(", ")
        ));
    }
    d
}

/// The three stages that cost most by `m`, with their share of `total`.
fn costliest(report: &CostReport, m: Metric, total: u64) -> Vec<String> {
    let mut stages: Vec<&StageCost> = report.stages.iter().collect();
    stages.sort_by_key(|s| std::cmp::Reverse(s.cost.metric(m)));
    stages
        .iter()
        .take(3)
        .filter(|s| s.cost.metric(m) > 0)
        .map(|s| {
            format!(
                "{}{} {} ({:.1}%)",
                s.name,
                s.label
                    .as_deref()
                    .map(|l| format!(" [{l}]"))
                    .unwrap_or_default(),
                si(s.cost.metric(m)),
                s.cost.metric(m) as f64 * 100.0 / total.max(1) as f64
            )
        })
        .collect()
}

/// `25028904` → `25,028,904`.
pub fn grouped(n: u64) -> String {
    grouped_by(n, ',')
}

/// The digits of `n` in groups of three, `sep` between the groups: `grouped_by(25028904, '_')`
/// is `25_028_904`.
pub fn grouped_by(n: u64, sep: char) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(sep);
        }
        out.push(ch);
    }
    out
}

/// `4230479872` → `4.23G`, `25028904` → `25.03M` (SI, powers of 1000).
pub fn si(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "T"),
        (1_000_000_000, "G"),
        (1_000_000, "M"),
        (1_000, "k"),
    ];
    for (scale, suffix) in UNITS {
        if n >= scale {
            return format!("{:.2}{suffix}", n as f64 / scale as f64);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format() {
        assert_eq!(grouped(25_028_904), "25,028,904");
        assert_eq!(grouped(904), "904");
        assert_eq!(si(4_230_479_872), "4.23G");
        assert_eq!(si(25_028_904), "25.03M");
        assert_eq!(si(512), "512");
    }
}
