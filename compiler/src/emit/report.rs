//! Output formats: the JSON report (a documented contract), the text verdict of `check`, the
//! per-layer table of `summary` (text, JSON, CSV), the comparison of conventions of `explain`, the
//! canonical expanded form and Graphviz DOT. Pure functions from a [`Compiled`] to text.
//!
//! Every figure table takes the [`Convention`] it was counted under, with the report counted
//! under it ([`crate::cost::convention::analyze`]); torchvision's is `c.report` itself.

use crate::Compiled;
use crate::cost::budget::{Cmp, Figure, Verdict};
use crate::cost::convention::{Convention, Explanation, KindRow};
use crate::cost::{Cost, CostReport, LayerCost, grouped, si};
use crate::graph::{LayerGraph, Op, OpKind, Role};
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
    /// `params`, `buffers`, `macs`, `flops` and `activations`.
    #[serde(flatten)]
    pub figures: JsonFigures,
    /// The unit of each figure, spelled out.
    pub units: Units,
    /// The spec's parameters after overrides.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Stem, each stage, head.
    pub stages: Vec<JsonStage<'a>>,
    /// Budget verdicts.
    pub budgets: Vec<JsonBudget>,
    /// Whether every budget holds.
    pub ok: bool,
}

/// The figures of a network or a stage in the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JsonFigures {
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
}

impl From<Cost> for JsonFigures {
    fn from(c: Cost) -> JsonFigures {
        JsonFigures {
            params: c.params,
            buffers: c.buffers,
            macs: c.macs,
            flops: c.flops(),
            activations: c.activations,
        }
    }
}

/// One budget's verdict in the JSON report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonBudget {
    /// The metric: `params`, `buffers`, `macs`, `flops`, `activations`.
    pub kind: Figure,
    /// `<=` or `>=`.
    pub op: Cmp,
    /// The limit.
    pub limit: u64,
    /// The network's figure.
    pub actual: u64,
    /// Whether the limit holds.
    pub ok: bool,
}

impl From<&Verdict> for JsonBudget {
    fn from(v: &Verdict) -> JsonBudget {
        JsonBudget {
            kind: v.limit.figure,
            op: v.limit.cmp,
            limit: v.limit.value,
            actual: v.actual,
            ok: v.ok,
        }
    }
}

fn json_budgets(verdicts: &[Verdict]) -> Vec<JsonBudget> {
    verdicts.iter().map(JsonBudget::from).collect()
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
    /// `params`, `buffers`, `macs`, `flops` and `activations`.
    #[serde(flatten)]
    pub figures: JsonFigures,
}

fn map(pairs: &[(String, u64)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
        .collect()
}

/// The JSON report of a compiled network.
pub fn json(c: &Compiled) -> JsonReport<'_> {
    JsonReport {
        name: &c.model.name,
        form: c.model.form,
        input: c.model.input,
        output: c.output(),
        figures: c.report.total.into(),
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
                figures: s.cost.into(),
            })
            .collect(),
        budgets: json_budgets(&c.report.budgets),
        ok: c.within_budget(),
    }
}

fn shape(s: [u64; 3]) -> String {
    format!("{}x{}x{}", s[0], s[1], s[2])
}

/// The convention's figures for the JSON report (an additive `convention` field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonConvention {
    /// `torchvision`, `fvcore` or `pycls`.
    pub name: Convention,
    /// Parameters (the same under every convention).
    pub params: u64,
    /// The convention's compute figure.
    pub compute: u64,
    /// Its unit, spelled out.
    pub compute_unit: &'static str,
    /// The convention's activations.
    pub activations: u64,
    /// Their unit, spelled out.
    pub activations_unit: &'static str,
    /// Budget verdicts under the convention.
    pub budgets: Vec<JsonBudget>,
    /// Whether every budget holds under the convention.
    pub ok: bool,
}

/// The `convention` object of the JSON report, from the report counted under `conv`.
pub fn json_convention(report: &CostReport, conv: Convention) -> JsonConvention {
    JsonConvention {
        name: conv,
        params: report.total.params,
        compute: report.total.macs,
        compute_unit: conv.compute_unit(),
        activations: report.total.activations,
        activations_unit: conv.activations_unit(),
        budgets: json_budgets(&report.budgets),
        ok: report.within_budget(),
    }
}

/// Whether the block form says something about the network: some block has more than one path
/// (a conv with groups in the grouped form, a second path in the split and concat forms). In a
/// network without, the three forms are the same network.
fn form_matters(g: &LayerGraph) -> bool {
    g.nodes().any(|(_, node)| match (node.op, node.role) {
        (Op::Conv { groups, .. }, _) => groups > 1,
        (_, Role::Path { p, .. } | Role::Slice { p }) => p > 0,
        _ => false,
    })
}

/// The first line of `archc check`'s text: name, form (where it matters), input, output and
/// parameters, then the convention when it is not torchvision's.
fn check_header(c: &Compiled, conv: Convention) -> String {
    format!(
        "{}  ({}input {}, output {}{}{})\n",
        c.model.name,
        if form_matters(&c.graph) {
            format!("{}, ", c.model.form.as_str())
        } else {
            String::new()
        },
        shape(c.model.input),
        shape(c.output()),
        params_text(c).map(|p| format!(", {p}")).unwrap_or_default(),
        match conv {
            Convention::Torchvision => String::new(),
            other => format!("; convention {other}"),
        }
    )
}

/// The spec's parameters after overrides, `C=32 d=4`, or `None` when it has none.
pub fn params_text(c: &Compiled) -> Option<String> {
    let params: Vec<String> = c
        .model
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (!params.is_empty()).then(|| params.join(" "))
}

/// The per-stage table of `archc check`'s text, with `compute` as the compute column's title.
fn stage_table(o: &mut String, stages: &[crate::cost::StageCost], compute: &str) {
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

/// One total of `archc check`'s text: `  params       25,028,904  (25.03M)`.
fn total_line(o: &mut String, name: &str, value: u64, note: &str) {
    let _ = writeln!(o, "  {name:<12} {:>16}  ({note})", grouped(value));
}

/// The text verdict of `archc check`: totals with units, stages and budgets, counted under
/// `conv`. `report` is `c`'s report under `conv` (`c.report` for torchvision's).
pub fn check_text(c: &Compiled, report: &CostReport, conv: Convention) -> String {
    let t = report.total;
    let mut o = check_header(c, conv);
    total_line(&mut o, "params", t.params, &si(t.params));
    total_line(
        &mut o,
        "buffers",
        t.buffers,
        "batch-norm running mean and var",
    );
    if conv == Convention::Torchvision {
        total_line(
            &mut o,
            "MACs",
            t.macs,
            &format!("{} multiply-adds", si(t.macs)),
        );
        total_line(
            &mut o,
            "FLOPs",
            t.flops(),
            &format!("{}, 2 x MACs", si(t.flops())),
        );
        total_line(&mut o, "activations", t.activations, &si(t.activations));
    } else {
        let compute = format!("{}; {}", si(t.macs), conv.compute_unit());
        total_line(&mut o, conv.compute_name(), t.macs, &compute);
        let acts = format!("{}; {}", si(t.activations), conv.activations_unit());
        total_line(&mut o, "activations", t.activations, &acts);
        total_line(
            &mut o,
            "MACs",
            c.report.total.macs,
            "torchvision convention, for comparison",
        );
    }
    stage_table(&mut o, &report.stages, conv.compute_name());
    for v in &report.budgets {
        let _ = writeln!(
            o,
            "  budget {:<12} {} {:<8} actual {:<8} {}{}",
            v.limit.figure.name(),
            v.limit.cmp,
            si(v.limit.value),
            si(v.actual),
            if v.ok { "ok" } else { "BROKEN" },
            match conv {
                Convention::Torchvision => String::new(),
                other => format!(" ({other})"),
            }
        );
    }
    o
}

fn signed(d: i128) -> String {
    let abs = grouped(d.unsigned_abs().min(u64::MAX as u128) as u64);
    match d.signum() {
        1 => format!("+{abs}"),
        -1 => format!("-{abs}"),
        _ => "0".to_string(),
    }
}

fn table(
    o: &mut String,
    e: &Explanation,
    title: &str,
    pick: impl Fn(&KindRow) -> &[u64],
    totals: &[u64],
) {
    use std::fmt::Write as _;
    let convs = &e.conventions;
    let _ = write!(o, "  {:<8} {:>6}", "kind", "layers");
    for c in convs {
        let _ = write!(o, " {:>16}", c.name());
    }
    if convs.len() > 1 {
        let _ = write!(o, "   vs {}", convs[0].name());
    }
    let _ = writeln!(o, "   ({title})");
    let row = |o: &mut String, name: &str, count: String, v: &[u64]| {
        let _ = write!(o, "  {name:<8} {count:>6}");
        for x in v {
            let _ = write!(o, " {:>16}", grouped(*x));
        }
        if convs.len() > 1 {
            let diffs: Vec<String> = v[1..]
                .iter()
                .map(|x| signed(i128::from(*x) - i128::from(v[0])))
                .collect();
            let _ = write!(o, "   {}", diffs.join(", "));
        }
        let _ = writeln!(o);
    };
    for r in &e.kinds {
        row(o, r.kind.name(), r.count.to_string(), pick(r));
    }
    row(o, "total", String::new(), totals);
}

/// The text of `archc explain`: per layer kind, what each convention counts and why, then the
/// totals and how far they are apart.
pub fn explain_text(e: &Explanation) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let convs = &e.conventions;
    let _ = writeln!(
        o,
        "{}  (input {}x{}x{}; every figure per image)",
        e.name, e.input[0], e.input[1], e.input[2]
    );
    let _ = writeln!(o, "compute, per layer kind:");
    table(&mut o, e, "compute", |r| &r.compute, &e.total_compute);
    let _ = writeln!(o, "activations, per layer kind:");
    table(
        &mut o,
        e,
        "activations",
        |r| &r.activations,
        &e.total_activations,
    );
    let _ = writeln!(o, "units:");
    for c in convs {
        let _ = writeln!(o, "  {:<12} compute = {}", c.name(), c.compute_unit());
        let _ = writeln!(o, "  {:<12} activations = {}", "", c.activations_unit());
    }
    let _ = writeln!(
        o,
        "params: {} under every convention (conv and fc weights and biases, batch-norm weight \
         and bias); buffers: {} (batch-norm running mean and var, never counted as compute)",
        grouped(e.total_params),
        grouped(e.total_buffers)
    );
    let _ = writeln!(o, "rules, per layer kind:");
    for r in &e.kinds {
        for (j, c) in convs.iter().enumerate() {
            let (compute, acts) = c.rule(r.kind);
            let _ = writeln!(
                o,
                "  {:<8} {:<12} compute: {compute}; activations: {acts}",
                if j == 0 { r.kind.name() } else { "" },
                c.name()
            );
        }
    }
    if convs.len() > 1 {
        let _ = writeln!(o, "why the totals differ:");
        for (j, c) in convs.iter().enumerate().skip(1) {
            let (d, why) = difference(e, j, |r| &r.compute, &e.total_compute);
            let pct = d as f64 * 100.0 / e.total_compute[0].max(1) as f64;
            let _ = writeln!(
                o,
                "  {} - {}: compute {} ({pct:+.3}%){why}",
                c.name(),
                convs[0].name(),
                signed(d)
            );
            let (d, why) = difference(e, j, |r| &r.activations, &e.total_activations);
            let _ = writeln!(
                o,
                "  {} - {}: activations {}{why}",
                c.name(),
                convs[0].name(),
                signed(d)
            );
        }
    }
    o
}

/// How convention `j` differs from the first in one figure: the total difference, and ` = kind
/// +n, …` over the kinds that differ (empty when none does).
fn difference(
    e: &Explanation,
    j: usize,
    pick: impl Fn(&KindRow) -> &[u64],
    totals: &[u64],
) -> (i128, String) {
    let why: Vec<String> = e
        .kinds
        .iter()
        .filter_map(|r| {
            let v = pick(r);
            let d = i128::from(v[j]) - i128::from(v[0]);
            (d != 0).then(|| format!("{} {}", r.kind, signed(d)))
        })
        .collect();
    let d = i128::from(totals[j]) - i128::from(totals[0]);
    if why.is_empty() {
        (d, String::new())
    } else {
        (d, format!(" = {}", why.join(", ")))
    }
}

/// Describes a node's operation in one line, with the channel counts it sees.
pub fn describe(g: &LayerGraph, n: petgraph::graph::NodeIndex) -> String {
    let node = &g.graph[n];
    if let Some(c) = g.conv(n) {
        let (k, pad) = (c.kernel, c.pad);
        let mut s = format!("conv {}x{}/{} pad {}", k.0, k.1, c.stride, pad.0);
        if pad.0 != pad.1 {
            let _ = write!(s, ",{}", pad.1);
        }
        let _ = write!(s, ", {} -> {}", c.cin, c.cout);
        if c.groups > 1 {
            let _ = write!(s, ", groups {}", c.groups);
        }
        if c.bias {
            s.push_str(", bias");
        }
        return s;
    }
    match node.op {
        Op::Input { shape } => format!("input {shape}"),
        Op::Conv { .. } => unreachable!("convs are described above"),
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
                    let _ = writeln!(
                        o,
                        "\n{} = {label}: {t}({}) x{}, stride {}",
                        info.name,
                        info.args_text(),
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

/// The layers of `archc summary`: every node but the input, and with `all` false only those
/// that cost something (ReLU, pooling and additions are left out; the rows still add up to the
/// totals).
pub fn summary_layers(report: &CostReport, all: bool) -> impl Iterator<Item = &LayerCost> {
    report
        .layers
        .iter()
        .filter(move |l| l.op != OpKind::Input && (all || l.cost != Cost::default()))
}

/// The per-layer table of `archc summary`: path, op, output shape, params, the compute figure and
/// activations, counted under `conv` (`report` is `c`'s report under it), then the totals.
pub fn summary(c: &Compiled, report: &CostReport, conv: Convention, all: bool) -> String {
    let width = report
        .layers
        .iter()
        .map(|l| l.path.len())
        .max()
        .unwrap_or(4)
        .max(5);
    let row = |o: &mut String, path: &str, op: &str, output: [u64; 3], cost: &Cost| {
        let figures = [cost.params, cost.macs, cost.activations].map(grouped);
        let [params, compute, acts] = &figures;
        let output = shape(output);
        let _ = writeln!(
            o,
            "{path:<width$}  {op:<8} {output:>14} {params:>12} {compute:>16} {acts:>12}"
        );
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<width$}  {:<8} {:>14} {:>12} {:>16} {:>12}",
        "layer",
        "op",
        "output",
        "params",
        conv.compute_name(),
        "activations"
    );
    for l in summary_layers(report, all) {
        row(&mut o, &l.path, l.op.name(), l.output, &l.cost);
    }
    let t = report.total;
    row(&mut o, "total", "", c.output(), &t);
    let _ = write!(
        o,
        "params {} ({}), buffers {}, ",
        grouped(t.params),
        si(t.params),
        grouped(t.buffers)
    );
    let _ = match conv {
        Convention::Torchvision => writeln!(
            o,
            "MACs {} ({} multiply-adds), FLOPs {} (2 x MACs)",
            grouped(t.macs),
            si(t.macs),
            si(t.flops())
        ),
        other => writeln!(
            o,
            "{} {} ({}; {})",
            other.compute_name(),
            grouped(t.macs),
            si(t.macs),
            other.compute_unit()
        ),
    };
    o
}

/// One network's table of `archc summary --format json`.
#[derive(Debug, Clone, Serialize)]
pub struct JsonSummary<'a> {
    /// The network's name.
    pub name: &'a str,
    /// The convention of `macs` and `activations`.
    pub convention: Convention,
    /// The layers, as in the text table.
    pub layers: Vec<&'a LayerCost>,
    /// The whole network.
    pub total: Cost,
}

/// The table of `archc summary --format json` (see [`summary`]).
pub fn summary_json<'a>(
    c: &'a Compiled,
    report: &'a CostReport,
    conv: Convention,
    all: bool,
) -> JsonSummary<'a> {
    JsonSummary {
        name: &c.model.name,
        convention: conv,
        layers: summary_layers(report, all).collect(),
        total: report.total,
    }
}

/// The header of `archc summary --format csv`.
pub const SUMMARY_CSV_HEADER: &str = "network,layer,op,output,params,buffers,macs,activations";

/// The rows of `archc summary --format csv` (see [`summary`]), without the header: one per layer,
/// `macs` being the compute figure of `conv`, then a `total` row.
pub fn summary_csv(c: &Compiled, report: &CostReport, all: bool) -> String {
    let mut o = String::new();
    let mut row = |layer: &str, op: &str, output: [u64; 3], cost: &Cost| {
        let _ = writeln!(
            o,
            "{},{layer},{op},{},{},{},{},{}",
            c.model.name,
            shape(output),
            cost.params,
            cost.buffers,
            cost.macs,
            cost.activations
        );
    };
    for l in summary_layers(report, all) {
        row(&l.path, l.op.name(), l.output, &l.cost);
    }
    row("total", "", c.output(), &report.total);
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
