//! Output formats: the JSON report (a documented contract), the text verdict, the per-layer
//! table, the canonical expanded form and Graphviz DOT. Pure functions from a [`Compiled`] to text.

use crate::Compiled;
use crate::cost::{BudgetResult, Cost, grouped, si};
use crate::graph::{LayerGraph, Op, OpKind};
use serde::Serialize;
use std::fmt::Write as _;

/// The JSON contract of `archc check --format json` (one object per network).
///
/// Every count is an exact integer per batch element; `macs` are multiply-adds and `flops` are
/// 2 × `macs`. Fields are only ever added, never renamed or removed, within a major version.
#[derive(Debug, Clone, Serialize)]
pub struct JsonReport<'a> {
    /// The network's name.
    pub name: &'a str,
    /// Block form: `grouped`, `concat` or `split`.
    pub form: crate::Form,
    /// Input `[C, H, W]`.
    pub input: [u64; 3],
    /// Output `[C, H, W]`.
    pub output: [u64; 3],
    /// Learnable parameters.
    pub params: u64,
    /// Batch-norm running statistics (mean and variance).
    pub buffers: u64,
    /// Multiply-adds of conv and linear layers.
    pub macs: u64,
    /// 2 × macs.
    pub flops: u64,
    /// Output elements of conv and linear layers.
    pub activations: u64,
    /// The unit of each figure, spelled out.
    pub units: Units,
    /// The spec's parameters after overrides.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Stem, each stage, head.
    pub stages: Vec<JsonStage<'a>>,
    /// Budget verdicts.
    pub budgets: &'a [BudgetResult],
    /// Whether every budget holds.
    pub ok: bool,
}

/// Units of the JSON figures.
#[derive(Debug, Clone, Serialize)]
pub struct Units {
    /// `"count"`.
    pub params: &'static str,
    /// `"multiply-adds"`.
    pub macs: &'static str,
    /// `"2 x multiply-adds"`.
    pub flops: &'static str,
    /// `"conv and linear output elements"`.
    pub activations: &'static str,
}

/// One stage in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct JsonStage<'a> {
    /// `stem`, `layer1`, ..., `head`.
    pub name: &'a str,
    /// The spec's label (`conv2`), or null.
    pub label: Option<&'a str>,
    /// The block template, or null.
    pub template: Option<&'a str>,
    /// Number of blocks.
    pub depth: u64,
    /// Stride of the first block.
    pub stride: u64,
    /// Template arguments shared by the stage's blocks.
    pub args: serde_json::Map<String, serde_json::Value>,
    /// Output `[C, H, W]`.
    pub output: [u64; 3],
    /// Learnable parameters.
    pub params: u64,
    /// Batch-norm running statistics.
    pub buffers: u64,
    /// Multiply-adds.
    pub macs: u64,
    /// 2 × macs.
    pub flops: u64,
    /// Conv and linear output elements.
    pub activations: u64,
}

fn map(pairs: &[(String, u64)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
        .collect()
}

/// The JSON report of a compiled network.
pub fn json(c: &Compiled) -> JsonReport<'_> {
    let t = c.report.total;
    JsonReport {
        name: &c.model.name,
        form: c.model.form,
        input: c.model.input,
        output: c.output(),
        params: t.params,
        buffers: t.buffers,
        macs: t.macs,
        flops: t.flops(),
        activations: t.activations,
        units: Units {
            params: "count",
            macs: "multiply-adds",
            flops: "2 x multiply-adds",
            activations: "conv and linear output elements",
        },
        parameters: map(&c.model.params),
        stages: c
            .report
            .stages
            .iter()
            .zip(&c.graph.stages)
            .map(|(s, info)| JsonStage {
                name: &s.name,
                label: s.label.as_deref(),
                template: info.template.as_deref(),
                depth: s.depth,
                stride: info.stride,
                args: map(&info.args),
                output: s.output,
                params: s.cost.params,
                buffers: s.cost.buffers,
                macs: s.cost.macs,
                flops: s.flops,
                activations: s.cost.activations,
            })
            .collect(),
        budgets: &c.report.budgets,
        ok: c.within_budget(),
    }
}

fn shape(s: [u64; 3]) -> String {
    format!("{}x{}x{}", s[0], s[1], s[2])
}

/// The first line of `archc check`'s text: name, form, input, output and parameters, then
/// `extra` (e.g. `; convention fvcore`) inside the parentheses.
pub(crate) fn check_header(c: &Compiled, extra: &str) -> String {
    let params: Vec<String> = c
        .model
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{}  ({}, input {}, output {}{}{extra})\n",
        c.model.name,
        c.model.form.as_str(),
        shape(c.model.input),
        shape(c.output()),
        if params.is_empty() {
            String::new()
        } else {
            format!(", {}", params.join(" "))
        }
    )
}

/// The per-stage table of `archc check`'s text, with `compute` as the compute column's title.
pub(crate) fn stage_table(o: &mut String, stages: &[crate::cost::StageCost], compute: &str) {
    let _ = writeln!(
        o,
        "  {:<16} {:>14} {:>12} {:>16} {:>14}",
        "stage", "output", "params", compute, "activations"
    );
    for s in stages {
        let name = match &s.label {
            Some(l) => format!("{} [{l}]", s.name),
            None => s.name.clone(),
        };
        let _ = writeln!(
            o,
            "  {:<16} {:>14} {:>12} {:>16} {:>14}",
            name,
            shape(s.output),
            grouped(s.cost.params),
            grouped(s.cost.macs),
            grouped(s.cost.activations)
        );
    }
}

/// The text verdict of `archc check`: totals with units, stages, budgets.
pub fn check_text(c: &Compiled) -> String {
    let t = c.report.total;
    let mut o = check_header(c, "");
    let _ = writeln!(
        o,
        "  params       {:>16}  ({})",
        grouped(t.params),
        si(t.params)
    );
    let _ = writeln!(
        o,
        "  buffers      {:>16}  (batch-norm running mean and var)",
        grouped(t.buffers)
    );
    let _ = writeln!(
        o,
        "  MACs         {:>16}  ({} multiply-adds)",
        grouped(t.macs),
        si(t.macs)
    );
    let _ = writeln!(
        o,
        "  FLOPs        {:>16}  ({}, 2 x MACs)",
        grouped(t.flops()),
        si(t.flops())
    );
    let _ = writeln!(
        o,
        "  activations  {:>16}  ({})",
        grouped(t.activations),
        si(t.activations)
    );
    stage_table(&mut o, &c.report.stages, "MACs");
    for b in &c.report.budgets {
        let _ = writeln!(
            o,
            "  budget {:<12} {} {:<8} actual {:<8} {}",
            b.kind.as_str(),
            b.op,
            si(b.limit),
            si(b.actual),
            if b.ok { "ok" } else { "BROKEN" }
        );
    }
    o
}

/// Describes a node's operation in one line, with the channel counts it sees.
pub fn describe(g: &LayerGraph, n: petgraph::graph::NodeIndex) -> String {
    let node = &g.graph[n];
    let cin = g.input_shape(n).c;
    match node.op {
        Op::Input { shape } => format!("input {shape}"),
        Op::Conv {
            out,
            kernel,
            stride,
            pad,
            groups,
            bias,
        } => {
            let mut s = format!("conv {}x{}/{stride} pad {}", kernel.0, kernel.1, pad.0);
            if pad.0 != pad.1 {
                let _ = write!(s, ",{}", pad.1);
            }
            let _ = write!(s, ", {cin} -> {out}");
            if groups > 1 {
                let _ = write!(s, ", groups {groups}");
            }
            if bias {
                s.push_str(", bias");
            }
            s
        }
        Op::BatchNorm => format!("bn {}", node.shape.c),
        Op::Relu => "relu".to_string(),
        Op::MaxPool {
            kernel,
            stride,
            pad,
        } => format!("maxpool {}x{}/{stride} pad {}", kernel.0, kernel.1, pad.0),
        Op::GlobalAvgPool => "avgpool (global)".to_string(),
        Op::Linear { out, bias } => format!(
            "fc {} -> {out}{}",
            g.input_shape(n).numel().unwrap_or(0),
            if bias { "" } else { ", no bias" }
        ),
        Op::Add | Op::Concat => {
            let ins: Vec<String> = g
                .inputs(n)
                .iter()
                .map(|i| g.graph[*i].path.clone())
                .collect();
            let name = if node.op == Op::Add { "add" } else { "concat" };
            if ins.len() > 4 {
                format!("{name} of {} paths", ins.len())
            } else {
                format!("{name}({})", ins.join(", "))
            }
        }
        Op::Slice { index, parts } => format!("slice {index} of {parts} (channels)"),
    }
}

/// The canonical expanded form of `archc expand`: parameters, then every node, stage by stage.
pub fn expanded(c: &Compiled) -> String {
    let g = &c.graph;
    let mut o = String::new();
    let _ = writeln!(o, "network {}", c.model.name);
    let _ = writeln!(
        o,
        "  input {}, {}, form {}",
        shape(c.model.input),
        match c.model.classes {
            0 => "no classifier".to_string(),
            n => format!("classes {n}"),
        },
        c.model.form.as_str()
    );
    for (k, v) in &c.model.params {
        let _ = writeln!(o, "  param {k} = {v}");
    }
    let width = g.nodes().map(|(_, n)| n.path.len()).max().unwrap_or(0);
    let mut stage = usize::MAX;
    for (i, node) in g.nodes() {
        if matches!(node.op, Op::Input { .. }) {
            continue;
        }
        if node.stage != stage {
            stage = node.stage;
            let info = &g.stages[stage];
            match (&info.label, &info.template) {
                (Some(label), Some(t)) => {
                    let args: Vec<String> = info
                        .args
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect();
                    let _ = writeln!(
                        o,
                        "\n{} = {label}: {t}({}) x{}, stride {}",
                        info.name,
                        args.join(", "),
                        info.depth,
                        info.stride
                    );
                }
                _ => {
                    let _ = writeln!(o, "\n{}", info.name);
                }
            }
        }
        let _ = writeln!(
            o,
            "  {:<width$}  {:<44} {}",
            node.path,
            describe(g, i),
            node.shape
        );
    }
    o
}

/// The per-layer table of `archc summary`: path, op, output shape, params, MACs. With `all`
/// false, nodes that cost nothing (ReLU, pooling, additions) are left out; the rows still add up
/// to the totals printed under them.
pub fn summary(c: &Compiled, all: bool) -> String {
    let width = c
        .report
        .layers
        .iter()
        .map(|l| l.path.len())
        .max()
        .unwrap_or(4)
        .max(5);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<width$}  {:<8} {:>14} {:>12} {:>16} {:>12}",
        "layer", "op", "output", "params", "MACs", "activations"
    );
    let mut sum = Cost::default();
    for l in &c.report.layers {
        if l.op == OpKind::Input || (!all && l.cost == Cost::default()) {
            continue;
        }
        sum.params += l.cost.params;
        sum.macs += l.cost.macs;
        sum.activations += l.cost.activations;
        let _ = writeln!(
            o,
            "{:<width$}  {:<8} {:>14} {:>12} {:>16} {:>12}",
            l.path,
            l.op,
            shape(l.output),
            grouped(l.cost.params),
            grouped(l.cost.macs),
            grouped(l.cost.activations)
        );
    }
    let t = c.report.total;
    let _ = writeln!(
        o,
        "{:<width$}  {:<8} {:>14} {:>12} {:>16} {:>12}",
        "total",
        "",
        shape(c.output()),
        grouped(sum.params),
        grouped(sum.macs),
        grouped(sum.activations)
    );
    debug_assert_eq!((sum.params, sum.macs), (t.params, t.macs));
    let _ = writeln!(
        o,
        "params {} ({}), buffers {}, MACs {} ({} multiply-adds), FLOPs {} (2 x MACs)",
        grouped(t.params),
        si(t.params),
        grouped(t.buffers),
        grouped(t.macs),
        si(t.macs),
        si(t.flops())
    );
    o
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT of the layer graph; stages and blocks are clusters.
pub fn dot(c: &Compiled) -> String {
    let g = &c.graph;
    let mut o = String::new();
    let _ = writeln!(o, "digraph \"{}\" {{", dot_escape(&c.model.name));
    let _ = writeln!(
        o,
        "  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];"
    );
    let node_line = |o: &mut String, i: petgraph::graph::NodeIndex, indent: &str| {
        let n = &g.graph[i];
        let _ = writeln!(
            o,
            "{indent}n{} [label=\"{}\\n{}\\n{}\"];",
            i.index(),
            dot_escape(&n.path),
            dot_escape(&describe(g, i)),
            n.shape
        );
    };
    for (si_, info) in g.stages.iter().enumerate() {
        let _ = writeln!(o, "  subgraph cluster_{} {{", dot_escape(&info.name));
        let _ = writeln!(
            o,
            "    label=\"{}\";",
            dot_escape(&match &info.label {
                Some(l) => format!("{} ({l})", info.name),
                None => info.name.clone(),
            })
        );
        for (i, n) in g.nodes() {
            if n.stage == si_ && n.block.is_none() {
                node_line(&mut o, i, "    ");
            }
        }
        for (bi, blk) in g.blocks.iter().enumerate().filter(|(_, b)| b.stage == si_) {
            let _ = writeln!(o, "    subgraph cluster_b{bi} {{");
            let _ = writeln!(o, "      label=\"{}\";", dot_escape(&blk.path));
            for (i, n) in g.nodes() {
                if n.block == Some(bi) {
                    node_line(&mut o, i, "      ");
                }
            }
            let _ = writeln!(o, "    }}");
        }
        let _ = writeln!(o, "  }}");
    }
    for e in g.graph.edge_indices() {
        let (a, b) = g.graph.edge_endpoints(e).expect("edge");
        let _ = writeln!(o, "  n{} -> n{};", a.index(), b.index());
    }
    let _ = writeln!(o, "}}");
    o
}
