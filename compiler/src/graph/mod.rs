//! Lowering: [`ir::Model`] to a [`LayerGraph`], a petgraph graph of operations.
//!
//! Each node keeps its operation, its torchvision-style module path (`layer2.0.conv2`,
//! `layer2.0.downsample.0`, `fc`), its output shape (inferred by [`crate::graph::shape::infer`] as the
//! node is added), the span of the spec text it came from, and the stage and block it belongs to.
//! Edges carry the input slot they feed, so `Add` and `Concat` inputs keep their order.

pub mod shape;

use crate::diag::Diagnostic;
use crate::expand::ir;
use crate::source::Span;
use crate::syntax::ast::{Form, Shortcut};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;
use shape::{Shape, ShapeError};

/// The largest graph we build (guards against absurd cardinalities in the split form).
pub const MAX_NODES: usize = 2_000_000;

/// An operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The network's input.
    Input {
        /// Its shape.
        shape: Shape,
    },
    /// 2-D convolution; input channels come from the input's shape.
    Conv {
        /// Output channels.
        out: u64,
        /// Kernel (h, w).
        kernel: (u64, u64),
        /// Stride.
        stride: u64,
        /// Padding (h, w).
        pad: (u64, u64),
        /// Groups.
        groups: u64,
        /// With bias.
        bias: bool,
    },
    /// Batch normalisation with an affine weight and bias, and running statistics.
    BatchNorm,
    /// ReLU.
    Relu,
    /// Max pooling.
    MaxPool {
        /// Kernel (h, w).
        kernel: (u64, u64),
        /// Stride.
        stride: u64,
        /// Padding (h, w).
        pad: (u64, u64),
    },
    /// Global average pooling to 1×1.
    GlobalAvgPool,
    /// Fully connected layer over the flattened input.
    Linear {
        /// Output features.
        out: u64,
        /// With bias.
        bias: bool,
    },
    /// Element-wise sum of two or more inputs.
    Add,
    /// Channel concatenation of two or more inputs.
    Concat,
    /// Part `index` of `parts` equal channel slices of the input.
    Slice {
        /// Which part.
        index: u64,
        /// How many parts.
        parts: u64,
    },
}

impl Op {
    /// A short name for tables: `conv`, `bn`, `relu`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Conv { .. } => "conv",
            Op::BatchNorm => "bn",
            Op::Relu => "relu",
            Op::MaxPool { .. } => "maxpool",
            Op::GlobalAvgPool => "avgpool",
            Op::Linear { .. } => "fc",
            Op::Add => "add",
            Op::Concat => "concat",
            Op::Slice { .. } => "slice",
        }
    }
}

/// A node of the layer graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it computes.
    pub op: Op,
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

    /// The input shape of a node's first input (the node's own shape for the input node).
    pub fn input_shape(&self, n: NodeIndex) -> Shape {
        match self.inputs(n).first() {
            Some(i) => self.graph[*i].shape,
            None => self.graph[n].shape,
        }
    }
}

struct Builder {
    g: DiGraph<Node, u32>,
    stage: usize,
    block: Option<usize>,
    origin: Option<Span>,
}

impl Builder {
    fn push(
        &mut self,
        op: Op,
        path: String,
        span: Span,
        inputs: &[NodeIndex],
    ) -> Result<NodeIndex, Diagnostic> {
        if self.g.node_count() >= MAX_NODES {
            return Err(Diagnostic::new(
                "archc::graph::too_large",
                format!("the network needs more than {MAX_NODES} graph nodes"),
            )
            .at(
                self.origin.unwrap_or(span),
                "the graph grows past the limit here",
            )
            .help("lower the depth or, for `form split`, the cardinality"));
        }
        let shapes: Vec<Shape> = inputs.iter().map(|i| self.g[*i].shape).collect();
        let shape =
            shape::infer(&op, &shapes).map_err(|e| self.shape_error(&op, &path, span, e))?;
        let n = self.g.add_node(Node {
            op,
            path,
            shape,
            span,
            origin: self.origin,
            stage: self.stage,
            block: self.block,
        });
        for (slot, i) in inputs.iter().enumerate() {
            self.g.add_edge(*i, n, slot as u32);
        }
        Ok(n)
    }

    fn shape_error(&self, op: &Op, path: &str, span: Span, e: ShapeError) -> Diagnostic {
        let code = match e {
            ShapeError::Groups { .. } => "archc::shape::groups",
            ShapeError::Vanishes { .. } => "archc::shape::vanishes",
            ShapeError::Mismatch { .. } => "archc::shape::mismatch",
            ShapeError::Slice { .. } => "archc::shape::slice",
            ShapeError::PoolPadding { .. } => "archc::shape::pool_padding",
            ShapeError::Overflow => "archc::shape::overflow",
        };
        let label = match (&e, op) {
            (ShapeError::Groups { groups, .. }, _) => format!("{groups} groups"),
            (ShapeError::Mismatch { .. }, _) => "cannot add these".to_string(),
            (ShapeError::Vanishes { .. }, _) => "output would be empty".to_string(),
            _ => "here".to_string(),
        };
        let mut d = Diagnostic::new(code, format!("`{path}`: {e}")).at(span, label);
        if let Some(origin) = self.origin {
            d = d.also(origin, "instantiated by this stage");
        }
        match e {
            ShapeError::Groups { groups, .. } => d.help(format!(
                "with cardinality {groups}, the group width (e.g. C * d) must be a multiple of {groups}"
            )),
            ShapeError::Vanishes { .. } => {
                d.help("use a larger input (--input), more padding, or fewer downsamplings")
            }
            _ => d,
        }
    }

    fn unit(
        &mut self,
        x: NodeIndex,
        c: &ir::Conv,
        conv: String,
        bn: String,
        relu: Option<String>,
    ) -> Result<NodeIndex, Diagnostic> {
        let h = self.push(conv_op(c), conv, c.span, &[x])?;
        let h = self.push(Op::BatchNorm, bn, c.span, &[h])?;
        match relu {
            Some(r) => self.push(Op::Relu, r, c.span, &[h]),
            None => Ok(h),
        }
    }
}

fn conv_op(c: &ir::Conv) -> Op {
    Op::Conv {
        out: c.out,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.pad,
        groups: c.groups,
        bias: c.bias,
    }
}

fn numbered(base: &str, k: usize) -> String {
    if k == 1 {
        base.to_string()
    } else {
        format!("{base}{k}")
    }
}

/// Lowers a model to its layer graph, inferring every node's shape.
pub fn lower(model: &ir::Model) -> Result<LayerGraph, Diagnostic> {
    let mut b = Builder {
        g: DiGraph::new(),
        stage: 0,
        block: None,
        origin: None,
    };
    let [c, h, w] = model.input;
    let mut x = b.push(
        Op::Input {
            shape: Shape::new(c, h, w),
        },
        "input".to_string(),
        model.input_span,
        &[],
    )?;
    let mut stages = vec![StageInfo {
        name: "stem".to_string(),
        label: None,
        template: None,
        depth: 0,
        stride: 1,
        args: Vec::new(),
    }];
    x = plain_layers(&mut b, x, &model.stem)?;

    let mut blocks = Vec::new();
    for st in &model.stages {
        b.stage = stages.len();
        b.origin = Some(st.span);
        stages.push(StageInfo {
            name: st.path.clone(),
            label: Some(st.label.clone()),
            template: Some(st.template.clone()),
            depth: st.blocks.len() as u64,
            stride: st.stride,
            args: st.args.clone(),
        });
        for blk in &st.blocks {
            b.block = Some(blocks.len());
            blocks.push(BlockInfo {
                path: blk.path.clone(),
                stage: b.stage,
            });
            x = block(&mut b, x, blk, model.form)?;
        }
    }
    b.block = None;
    b.origin = None;
    b.stage = stages.len();
    stages.push(StageInfo {
        name: "head".to_string(),
        label: None,
        template: None,
        depth: 0,
        stride: 1,
        args: Vec::new(),
    });
    x = plain_layers(&mut b, x, &model.head)?;
    Ok(LayerGraph {
        name: model.name.clone(),
        form: model.form,
        graph: b.g,
        input: NodeIndex::new(0),
        output: x,
        stages,
        blocks,
    })
}

/// Stem or head layers: each conv is followed by batch-norm and ReLU, as torchvision's stem.
fn plain_layers(
    b: &mut Builder,
    mut x: NodeIndex,
    layers: &[ir::Layer],
) -> Result<NodeIndex, Diagnostic> {
    let (mut convs, mut pools, mut fcs) = (0, 0, 0);
    for l in layers {
        x = match l {
            ir::Layer::Conv(c) => {
                convs += 1;
                b.unit(
                    x,
                    c,
                    format!("conv{convs}"),
                    format!("bn{convs}"),
                    Some("relu".to_string()),
                )?
            }
            ir::Layer::MaxPool {
                kernel,
                stride,
                pad,
                span,
            } => {
                pools += 1;
                b.push(
                    Op::MaxPool {
                        kernel: *kernel,
                        stride: *stride,
                        pad: *pad,
                    },
                    numbered("maxpool", pools),
                    *span,
                    &[x],
                )?
            }
            ir::Layer::AvgPool { span } => {
                b.push(Op::GlobalAvgPool, "avgpool".to_string(), *span, &[x])?
            }
            ir::Layer::Fc { out, bias, span } => {
                fcs += 1;
                b.push(
                    Op::Linear {
                        out: *out,
                        bias: *bias,
                    },
                    numbered("fc", fcs),
                    *span,
                    &[x],
                )?
            }
        };
    }
    Ok(x)
}

/// One residual block: the branch in the model's form, the shortcut, the addition, the ReLU.
fn block(
    b: &mut Builder,
    x: NodeIndex,
    blk: &ir::Block,
    form: Form,
) -> Result<NodeIndex, Diagnostic> {
    let p = &blk.path;
    let convs = &blk.convs;
    let n = convs.len();
    let relu = |i: usize| (i + 1 < n).then(|| format!("{p}.relu"));
    let grouped = convs.iter().position(|c| c.groups > 1);
    let mut h = x;
    match grouped {
        Some(g) if form != Form::Grouped => {
            let groups = convs[g].groups;
            let lead = g > 0 && convs[g - 1].groups == 1;
            let start = if lead { g - 1 } else { g };
            let mut end = g;
            while end + 1 < n && convs[end + 1].groups == groups {
                end += 1;
            }
            let merge = form == Form::Split && end + 1 < n && convs[end + 1].groups == 1;
            for (i, c) in convs.iter().enumerate().take(start) {
                h = b.unit(
                    h,
                    c,
                    format!("{p}.conv{}", i + 1),
                    format!("{p}.bn{}", i + 1),
                    relu(i),
                )?;
            }
            let mut outs = Vec::new();
            for path in 0..groups {
                let q = format!("{p}.paths.{path}");
                let mut y = h;
                if !lead {
                    y = b.push(
                        Op::Slice {
                            index: path,
                            parts: groups,
                        },
                        format!("{q}.slice"),
                        convs[g].span,
                        &[y],
                    )?;
                }
                for (i, c) in convs.iter().enumerate().take(end + 1).skip(start) {
                    if c.out % groups != 0 {
                        let mut d = Diagnostic::new(
                            "archc::shape::groups",
                            format!(
                                "`{p}`: width {} cannot be split into {groups} paths of equal width",
                                c.out
                            ),
                        )
                        .at(convs[g].span, format!("{groups} groups"));
                        if let Some(origin) = b.origin {
                            d = d.also(origin, "instantiated by this stage");
                        }
                        return Err(d.help(format!(
                            "with cardinality {groups}, the group width (e.g. C * d) must be a multiple of {groups}"
                        )));
                    }
                    let pc = ir::Conv {
                        out: c.out / groups,
                        groups: 1,
                        ..*c
                    };
                    let r = relu(i).map(|_| format!("{q}.relu"));
                    y = b.unit(
                        y,
                        &pc,
                        format!("{q}.conv{}", i + 1),
                        format!("{q}.bn{}", i + 1),
                        r,
                    )?;
                }
                if merge {
                    let c = &convs[end + 1];
                    let pc = ir::Conv {
                        bias: c.bias && path == 0,
                        ..*c
                    };
                    y = b.push(conv_op(&pc), format!("{q}.conv{}", end + 2), c.span, &[y])?;
                }
                outs.push(y);
            }
            let next = if merge {
                let c = &convs[end + 1];
                h = b.push(Op::Add, format!("{p}.sum"), c.span, &outs)?;
                h = b.push(Op::BatchNorm, format!("{p}.bn{}", end + 2), c.span, &[h])?;
                if let Some(r) = relu(end + 1) {
                    h = b.push(Op::Relu, r, c.span, &[h])?;
                }
                end + 2
            } else {
                h = b.push(Op::Concat, format!("{p}.concat"), convs[g].span, &outs)?;
                end + 1
            };
            for (i, c) in convs.iter().enumerate().skip(next) {
                h = b.unit(
                    h,
                    c,
                    format!("{p}.conv{}", i + 1),
                    format!("{p}.bn{}", i + 1),
                    relu(i),
                )?;
            }
        }
        _ => {
            for (i, c) in convs.iter().enumerate() {
                h = b.unit(
                    h,
                    c,
                    format!("{p}.conv{}", i + 1),
                    format!("{p}.bn{}", i + 1),
                    relu(i),
                )?;
            }
        }
    }
    let (xin, out) = (b.g[x].shape, b.g[h].shape);
    let project = match blk.shortcut {
        Shortcut::Projection => true,
        Shortcut::Identity => false,
        Shortcut::Auto => blk.stride != 1 || xin.c != out.c,
    };
    let mut s = x;
    if project {
        let proj = ir::Conv {
            kernel: (1, 1),
            stride: blk.stride,
            pad: (0, 0),
            out: out.c,
            groups: 1,
            bias: false,
            span: blk.template_span,
        };
        s = b.push(
            conv_op(&proj),
            format!("{p}.downsample.0"),
            blk.template_span,
            &[s],
        )?;
        s = b.push(
            Op::BatchNorm,
            format!("{p}.downsample.1"),
            blk.template_span,
            &[s],
        )?;
    }
    let add_span = match blk.shortcut_span {
        Some(span) if !project => span,
        _ => blk.template_span,
    };
    let sum = b.push(Op::Add, format!("{p}.add"), add_span, &[h, s]).map_err(|d| {
        let shortcut = b.g[s].shape;
        d.help(if project {
            format!(
                "the residual branch gives {out} but the projection shortcut (stride {}) gives {shortcut}: \
                 does the template's strided conv use `/stride`?",
                blk.stride
            )
        } else {
            format!(
                "the shortcut is `identity` but the branch turns {xin} into {out}: use `shortcut auto` \
                 (a projection where the shape changes)"
            )
        })
    })?;
    b.push(Op::Relu, format!("{p}.relu"), blk.template_span, &[sum])
}
