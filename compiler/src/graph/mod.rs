//! The layer graph: a [`LayerGraph`] (petgraph) of operations, built from an [`ir::Model`] by
//! [`lower`].
//!
//! Each node keeps its operation, its [`Role`] in its block, its torchvision-style module path (`layer2.0.conv2`,
//! `layer2.0.downsample.0`, `fc`), its output shape (inferred by [`crate::graph::shape::infer`] as the
//! node is added), the span of the spec text it came from, and the stage and block it belongs to.
//! Edges carry the input slot they feed, so `Add` and `Concat` inputs keep their order.

mod lower;
pub mod op;
pub mod shape;

pub use lower::lower;
pub use op::{Op, OpKind, Role};

#[cfg(doc)]
use crate::expand::ir;
use crate::source::Span;
use crate::syntax::ast::Form;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;
use shape::Shape;

/// The largest graph we build (guards against absurd cardinalities in the split form).
pub const MAX_NODES: usize = 2_000_000;

/// A node of the layer graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// Where it sits in its block (or [`Role::Plain`] in the stem and head).
    pub role: Role,
    /// torchvision-style module path.
    pub path: String,
    /// Its output shape (per batch element).
    pub shape: Shape,
    /// The spec text it came from (the template statement, for block layers).
    pub span: Span,
    /// The stage line that instantiated it, for block layers.
    pub origin: Option<Span>,
    /// Index into [`LayerGraph::stages`].
    pub stage: usize,
    /// Index into [`LayerGraph::blocks`], for block layers.
    pub block: Option<usize>,
}

/// A convolution's complete geometry: [`Op::Conv`]'s arguments plus its input channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConvGeometry {
    /// Input channels.
    pub cin: u64,
    /// Output channels.
    pub cout: u64,
    /// Kernel (h, w).
    pub kernel: (u64, u64),
    /// Stride (both axes).
    pub stride: u64,
    /// Padding (h, w).
    pub pad: (u64, u64),
    /// Groups.
    pub groups: u64,
    /// With bias.
    pub bias: bool,
}

impl ConvGeometry {
    /// The weight's shape, `[cout, cin / groups, kh, kw]`: PyTorch's layout.
    pub fn weight_shape(&self) -> [u64; 4] {
        [
            self.cout,
            self.cin / self.groups.max(1),
            self.kernel.0,
            self.kernel.1,
        ]
    }
}

/// A group of nodes reported together: the stem, each stage, the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageInfo {
    /// `stem`, `layer1`, ..., `head`.
    pub name: String,
    /// The spec's label (`conv2`), for stages of blocks.
    pub label: Option<String>,
    /// The template, for stages of blocks.
    pub template: Option<String>,
    /// Number of blocks.
    pub depth: u64,
    /// Stride of the first block (1 for stem and head).
    pub stride: u64,
    /// Template arguments shared by the stage's blocks.
    pub args: Vec<(String, u64)>,
}

impl StageInfo {
    /// The template arguments as written in a spec: `width = 128, out = 256`.
    pub fn args_text(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        args.join(", ")
    }

    /// The stem or the head: a group of plain layers.
    pub(crate) fn plain(name: &str) -> StageInfo {
        StageInfo {
            name: name.to_string(),
            label: None,
            template: None,
            depth: 0,
            stride: 1,
            args: Vec::new(),
        }
    }
}

/// A residual block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockInfo {
    /// Module path (`layer2.0`).
    pub path: String,
    /// Index into [`LayerGraph::stages`].
    pub stage: usize,
}

/// The lowered network.
#[derive(Debug, Clone)]
pub struct LayerGraph {
    /// The network's name.
    pub name: String,
    /// The block form it was lowered with.
    pub form: Form,
    /// Nodes in topological order of creation; edge weights are input slots.
    pub graph: DiGraph<Node, u32>,
    /// The input node.
    pub input: NodeIndex,
    /// The node whose output is the network's output.
    pub output: NodeIndex,
    /// Stem, stages, head.
    pub stages: Vec<StageInfo>,
    /// All blocks.
    pub blocks: Vec<BlockInfo>,
}

impl LayerGraph {
    /// The inputs of a node, in slot order.
    pub fn inputs(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut e: Vec<(u32, NodeIndex)> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        e.sort_unstable();
        e.into_iter().map(|(_, s)| s).collect()
    }

    /// Nodes in creation order, which is a topological order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeIndex, &Node)> {
        self.graph.node_indices().map(move |i| (i, &self.graph[i]))
    }

    /// A convolution node's complete geometry (its arguments and input channels); `None` for
    /// other nodes. Every target that builds a conv (the runtime, generated code, exporters)
    /// reads it here.
    pub fn conv(&self, n: NodeIndex) -> Option<ConvGeometry> {
        let Op::Conv {
            out,
            kernel,
            stride,
            pad,
            groups,
            bias,
        } = self.graph[n].op
        else {
            return None;
        };
        Some(ConvGeometry {
            cin: self.input_shape(n).c,
            cout: out,
            kernel,
            stride,
            pad,
            groups,
            bias,
        })
    }

    /// The nodes of block `b`, in creation order.
    pub fn block_nodes(&self, b: usize) -> impl Iterator<Item = (NodeIndex, &Node)> {
        self.nodes().filter(move |(_, n)| n.block == Some(b))
    }

    /// The input shape of a node's first input (the node's own shape for the input node).
    pub fn input_shape(&self, n: NodeIndex) -> Shape {
        match self.inputs(n).first() {
            Some(i) => self.graph[*i].shape,
            None => self.graph[n].shape,
        }
    }
}
