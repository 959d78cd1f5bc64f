//! Cost conventions: which operations count, as torchvision, fvcore and pycls count them.
//!
//! Counters disagree about what a network "costs" because they count different operations, not
//! because any of them is wrong. archc's own figures ([`crate::cost`]) follow
//! [`Convention::Torchvision`]; the others reproduce the numbers of the common Python counters
//! exactly, from the same layer graph:
//!
//! | kind | torchvision (MACs) | fvcore (flops) | pycls (flops) |
//! |---|---|---|---|
//! | conv | `C_out·H_out·W_out·(C_in/g)·k_h·k_w` | the same | the same, `+ C_out` with a bias |
//! | fc | `in·out` | the same | the same, `+ out` with a bias |
//! | batch-norm | 0 | 2 per element | 0 |
//! | global avg-pool | 0 | 1 per input element | 0 |
//! | max-pool, ReLU, add, concat, slice | 0 | 0 | 0 |
//! | activations | conv and fc outputs | the same | the same, and max-pool outputs |
//!
//! Parameters (conv and fc weights and biases, batch-norm weight and bias) and buffers are the
//! same under every convention. Sources:
//!
//! - **torchvision**: the "GFLOPS" of torchvision's model documentation (4.09 for ResNet-50) are
//!   multiply-adds of `Conv2d` and `Linear`, the figure a forward hook on those modules gets
//!   (`scripts/reference.py` measures it). Bias additions are not counted.
//! - **fvcore** (`fvcore.nn.FlopCountAnalysis` with its default handles, model in eval mode):
//!   `aten::_convolution` and `aten::addmm`/`aten::linear` count one flop per multiply-add (no
//!   bias); `aten::batch_norm` in eval mode counts 2 per input element when affine (always, here);
//!   `aten::adaptive_avg_pool2d` counts 1 per input element; `aten::relu`, `aten::add` and
//!   `aten::max_pool2d` are skipped. `ActivationCountAnalysis` counts conv and linear outputs.
//!   `tests/reference/torchvision.json` holds fvcore's totals and per-operator counts for the 11
//!   shipped torchvision models; `--convention fvcore` reproduces every one exactly (a test checks).
//! - **pycls** (`pycls/models/blocks.py`, commit `1a33062717a1272f45368cae673dcf9e00ecc8a0`):
//!   `conv2d_cx` adds `k*k*w_in*w_out*h*w//groups + (w_out if bias else 0)` flops and `w_out*h*w`
//!   acts; `norm2d_cx` adds `2*w_in` params and nothing else; `pool2d_cx` (max-pool) adds
//!   `w_in*h*w` acts of its output and no flops; `gap2d_cx` adds nothing; `linear_cx` adds
//!   `w_in*w_out + (w_out if bias else 0)` flops and `w_out` acts. ReLU and the residual addition
//!   have no `_cx` function. pycls's ResNet head is `linear(..., bias=True)`, so its total is
//!   archc's MACs plus the classifier's bias. pycls's `_cx` functions compute sizes as
//!   `(h - 1) // stride + 1`, which is torch's size for odd kernels with padding `(k - 1) / 2`
//!   (every shipped spec); archc always uses the true size.
//!
//! Every count is an exact integer per image (batch element).
//!
//! ```
//! use archc::cost::convention::Convention;
//! let spec = archc::Spec::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/resnet/resnet50.arch")).unwrap();
//! let c = spec.compile("resnet50", &archc::Overrides::default()).unwrap();
//! let fvcore = archc::cost::convention::analyze(&c.graph, &[], Convention::Fvcore).unwrap();
//! assert_eq!(fvcore.total.macs, 4_111_512_576); // fvcore_flops of tests/reference/torchvision.json
//! ```

use crate::cost::budget::{Figures, Limit};
use crate::cost::{self, Cost, CostReport, LayerCost, StageCost};
use crate::diag::Diagnostic;
use crate::graph::{LayerGraph, Op, OpKind};
use petgraph::graph::NodeIndex;
use serde::Serialize;

/// A counting convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// Multiply-adds of conv and fc layers: archc's default, torchvision's documented figures.
    #[default]
    Torchvision,
    /// fvcore's `FlopCountAnalysis` (eval mode) and `ActivationCountAnalysis`.
    Fvcore,
    /// pycls's `complexity()` (`*_cx` functions of `pycls/models/blocks.py`).
    Pycls,
}

impl Convention {
    /// Every convention, default first.
    pub const ALL: [Convention; 3] = [
        Convention::Torchvision,
        Convention::Fvcore,
        Convention::Pycls,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Convention::Torchvision => "torchvision",
            Convention::Fvcore => "fvcore",
            Convention::Pycls => "pycls",
        }
    }

    /// Parses a name given on the command line.
    pub fn from_name(s: &str) -> Option<Convention> {
        Convention::ALL.into_iter().find(|c| c.name() == s)
    }

    /// What the convention calls its compute figure.
    pub fn compute_name(self) -> &'static str {
        match self {
            Convention::Torchvision => "MACs",
            Convention::Fvcore => "fvcore flops",
            Convention::Pycls => "pycls flops",
        }
    }

    /// The unit of the compute figure, spelled out.
    pub fn compute_unit(self) -> &'static str {
        match self {
            Convention::Torchvision => "multiply-adds of conv and fc layers",
            Convention::Fvcore => {
                "fvcore flops: conv and fc multiply-adds, batch-norm 2 per element, \
                 adaptive avg-pool 1 per input element"
            }
            Convention::Pycls => "pycls flops: conv and fc multiply-adds plus their bias additions",
        }
    }

    /// The unit of the activations figure, spelled out.
    pub fn activations_unit(self) -> &'static str {
        match self {
            Convention::Torchvision | Convention::Fvcore => "conv and fc output elements",
            Convention::Pycls => "conv, fc and max-pool output elements",
        }
    }

    /// How the convention counts a layer kind: (compute, activations).
    pub fn rule(self, kind: OpKind) -> (&'static str, &'static str) {
        use Convention::*;
        match (self, kind) {
            (Torchvision | Fvcore, OpKind::Conv) => (
                "C_out*H_out*W_out*(C_in/groups)*k_h*k_w, bias not counted",
                "C_out*H_out*W_out",
            ),
            (Pycls, OpKind::Conv) => (
                "k*k*C_in*C_out*H_out*W_out//groups, + C_out with a bias",
                "C_out*H_out*W_out",
            ),
            (Torchvision | Fvcore, OpKind::Linear) => ("in*out, bias not counted", "out"),
            (Pycls, OpKind::Linear) => ("in*out, + out with a bias", "out"),
            (Fvcore, OpKind::BatchNorm) => ("2 per element (aten::batch_norm, eval, affine)", "-"),
            (Fvcore, OpKind::GlobalAvgPool) => ("1 per input element (adaptive_avg_pool2d)", "-"),
            (Pycls, OpKind::MaxPool) => ("-", "C*H_out*W_out (pool2d_cx)"),
            (Fvcore, OpKind::Relu | OpKind::Add | OpKind::MaxPool) => {
                ("- (skipped by fvcore)", "-")
            }
            _ => ("-", "-"),
        }
    }
}

impl std::fmt::Display for Convention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A node's costs under a convention: `params` and `buffers` as [`cost::node_cost`]; `macs` holds
/// the convention's compute figure and `activations` its activations.
pub fn node_cost(g: &LayerGraph, n: NodeIndex, conv: Convention) -> Option<Cost> {
    let base = cost::node_cost(g, n)?;
    if conv == Convention::Torchvision {
        return Some(base);
    }
    let node = &g.graph[n];
    let out = node.shape;
    let input = g.input_shape(n);
    let (macs, activations) = match (conv, node.op) {
        (Convention::Fvcore, Op::BatchNorm) => (out.numel()?.checked_mul(2)?, 0),
        (Convention::Fvcore, Op::GlobalAvgPool) => (input.numel()?, 0),
        (Convention::Pycls, Op::Conv { out: c, bias, .. })
        | (Convention::Pycls, Op::Linear { out: c, bias }) => (
            base.macs.checked_add(if bias { c } else { 0 })?,
            base.activations,
        ),
        (Convention::Pycls, Op::MaxPool { .. }) => (0, out.numel()?),
        _ => (base.macs, base.activations),
    };
    Some(Cost {
        macs,
        activations,
        ..base
    })
}

/// Like [`cost::analyze`], with every node counted under `conv`: `total.macs` (and each stage's
/// and layer's) is the convention's compute figure, `activations` its activations; budgets on
/// `macs` and `flops` are both checked against the compute figure (the tools call it flops and
/// count one per multiply-add), `activations` against the activations.
pub fn analyze(
    g: &LayerGraph,
    limits: &[Limit],
    conv: Convention,
) -> Result<CostReport, Diagnostic> {
    let base = cost::analyze(g, limits)?;
    if conv == Convention::Torchvision {
        return Ok(base);
    }
    let overflow = |path: &str| {
        Diagnostic::new(
            "archc::cost::overflow",
            format!("the {} cost of `{path}` overflows 64 bits", conv.name()),
        )
    };
    let mut stages = vec![Cost::default(); g.stages.len()];
    let mut total = Cost::default();
    let mut layers = Vec::with_capacity(base.layers.len());
    for l in &base.layers {
        let node = &g.graph[l.node];
        let c = node_cost(g, l.node, conv).ok_or_else(|| overflow(&node.path))?;
        stages[node.stage] = add(stages[node.stage], c).ok_or_else(|| overflow(&node.path))?;
        total = add(total, c).ok_or_else(|| overflow(&node.path))?;
        layers.push(LayerCost {
            cost: c,
            ..l.clone()
        });
    }
    if total.macs.checked_mul(2).is_none() {
        return Err(overflow(&g.name));
    }
    let stages = base
        .stages
        .iter()
        .zip(stages)
        .map(|(s, cost)| StageCost { cost, ..s.clone() })
        .collect();
    // fvcore and pycls call their count "flops" and count one per multiply-add: under their
    // conventions a `flops` budget is checked against that count itself, not twice it.
    let figures = |r: &CostReport| Figures {
        flops: r.total.macs,
        ..Figures::of_report(r)
    };
    Ok(CostReport::checked(layers, stages, total, limits, figures))
}

fn add(a: Cost, b: Cost) -> Option<Cost> {
    a.checked_add(b)
}

/// One layer kind's figures under each convention, for [`explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindRow {
    /// The layer kind.
    pub kind: OpKind,
    /// How many nodes of this kind the graph has.
    pub count: u64,
    /// Parameters of these nodes (the same under every convention).
    pub params: u64,
    /// Compute figure per convention, in the order asked.
    pub compute: Vec<u64>,
    /// Activations per convention, in the order asked.
    pub activations: Vec<u64>,
}

/// The per-kind comparison of conventions for one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The network.
    pub name: String,
    /// The input `[C, H, W]`.
    pub input: [u64; 3],
    /// The conventions compared.
    pub conventions: Vec<Convention>,
    /// One row per layer kind present in the graph.
    pub kinds: Vec<KindRow>,
    /// Totals: (params, buffers, compute per convention, activations per convention).
    pub total_params: u64,
    /// Buffers (batch-norm running statistics), counted by no convention's compute figure.
    pub total_buffers: u64,
    /// Compute per convention.
    pub total_compute: Vec<u64>,
    /// Activations per convention.
    pub total_activations: Vec<u64>,
}

/// Counts `g` under each convention in `convs`, layer kind by layer kind.
pub fn explanation(g: &LayerGraph, convs: &[Convention]) -> Option<Explanation> {
    let mut kinds: Vec<KindRow> = Vec::new();
    for (n, node) in g.nodes() {
        let kind = node.op.kind();
        if kind == OpKind::Input {
            continue;
        }
        let i = match kinds.iter().position(|r| r.kind == kind) {
            Some(i) => i,
            None => {
                kinds.push(KindRow {
                    kind,
                    count: 0,
                    params: 0,
                    compute: vec![0; convs.len()],
                    activations: vec![0; convs.len()],
                });
                kinds.len() - 1
            }
        };
        let row = &mut kinds[i];
        row.count += 1;
        row.params = row.params.checked_add(cost::node_cost(g, n)?.params)?;
        for (j, conv) in convs.iter().enumerate() {
            let c = node_cost(g, n, *conv)?;
            row.compute[j] = row.compute[j].checked_add(c.macs)?;
            row.activations[j] = row.activations[j].checked_add(c.activations)?;
        }
    }
    kinds.sort_by_key(|r| OpKind::LAYERS.iter().position(|k| *k == r.kind));
    let mut total_compute = vec![0u64; convs.len()];
    let mut total_activations = vec![0u64; convs.len()];
    let mut total_params = 0u64;
    for r in &kinds {
        total_params = total_params.checked_add(r.params)?;
        for j in 0..convs.len() {
            total_compute[j] = total_compute[j].checked_add(r.compute[j])?;
            total_activations[j] = total_activations[j].checked_add(r.activations[j])?;
        }
    }
    let total_buffers = g.nodes().try_fold(0u64, |acc, (n, _)| {
        acc.checked_add(cost::node_cost(g, n)?.buffers)
    })?;
    Some(Explanation {
        name: g.name.clone(),
        input: g.graph[g.input].shape.to_array(),
        conventions: convs.to_vec(),
        kinds,
        total_params,
        total_buffers,
        total_compute,
        total_activations,
    })
}
