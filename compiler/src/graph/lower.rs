//! Lowering: an [`ir::Model`] to its [`LayerGraph`], inferring each node's shape as it is added
//! and giving it its [`Role`]. Block forms (paper Fig. 3 a/b/c) are rewritten here, and projection
//! shortcuts placed.

use super::shape::{self, Shape, ShapeError};
use super::{BlockInfo, LayerGraph, MAX_NODES, Node, Op, Role, StageInfo};
use crate::diag::Diagnostic;
use crate::expand::ir;
use crate::source::Span;
use crate::syntax::ast::{Form, Shortcut};
use petgraph::graph::{DiGraph, NodeIndex};

/// Lowers a model to its layer graph, inferring every node's shape.
pub fn lower(model: &ir::Model) -> Result<LayerGraph, Diagnostic> {
    let mut b = Builder {
        g: DiGraph::new(),
        stage: 0,
        block: None,
        origin: None,
    };
    let [c, h, w] = model.input;
    let input = Op::Input {
        shape: Shape::new(c, h, w),
    };
    let mut x = b.push(input, Role::Input, "input".into(), model.input_span, &[])?;
    let mut stages = vec![StageInfo::plain("stem")];
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
    stages.push(StageInfo::plain("head"));
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
        role: Role,
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
            role,
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

    /// A diagnostic located at `span`, pointing also at the stage line that instantiated it.
    fn located(
        &self,
        code: &'static str,
        message: String,
        span: Span,
        label: String,
    ) -> Diagnostic {
        let d = Diagnostic::new(code, message).at(span, label);
        match self.origin {
            Some(origin) => d.also(origin, "instantiated by this stage"),
            None => d,
        }
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
        let d = self.located(code, format!("`{path}`: {e}"), span, label);
        match e {
            ShapeError::Groups { groups, .. } => d.help(groups_help(groups)),
            ShapeError::Vanishes { .. } => {
                d.help("use a larger input (--input), more padding, or fewer downsamplings")
            }
            _ => d,
        }
    }

    /// Conv, batch-norm and (where `relu`) ReLU, all with the same role, named
    /// `{prefix}conv{k}`, `{prefix}bn{k}` and `{prefix}relu`.
    fn unit(
        &mut self,
        x: NodeIndex,
        c: &ir::Conv,
        role: Role,
        names: Unit<'_>,
    ) -> Result<NodeIndex, Diagnostic> {
        let h = self.push(conv_op(c), role, names.conv(), c.span, &[x])?;
        let h = self.push(Op::BatchNorm, role, names.bn(), c.span, &[h])?;
        match names.relu {
            Some(r) => self.push(Op::Relu, role, r, c.span, &[h]),
            None => Ok(h),
        }
    }
}

/// The names of a conv–bn(–relu) unit: `{prefix}conv{k}`, `{prefix}bn{k}`, and the ReLU's name.
struct Unit<'a> {
    prefix: &'a str,
    k: usize,
    relu: Option<String>,
}

impl Unit<'_> {
    fn conv(&self) -> String {
        format!("{}conv{}", self.prefix, self.k)
    }
    fn bn(&self) -> String {
        format!("{}bn{}", self.prefix, self.k)
    }
}

fn groups_help(groups: u64) -> String {
    format!(
        "with cardinality {groups}, the group width (e.g. C * d) must be a multiple of {groups}"
    )
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
                let names = Unit {
                    prefix: "",
                    k: convs,
                    relu: Some("relu".to_string()),
                };
                b.unit(x, c, Role::Plain, names)?
            }
            ir::Layer::MaxPool {
                kernel,
                stride,
                pad,
                span,
            } => {
                pools += 1;
                let op = Op::MaxPool {
                    kernel: *kernel,
                    stride: *stride,
                    pad: *pad,
                };
                b.push(op, Role::Plain, numbered("maxpool", pools), *span, &[x])?
            }
            ir::Layer::AvgPool { span } => b.push(
                Op::GlobalAvgPool,
                Role::Plain,
                "avgpool".to_string(),
                *span,
                &[x],
            )?,
            ir::Layer::Fc { out, bias, span } => {
                fcs += 1;
                let op = Op::Linear {
                    out: *out,
                    bias: *bias,
                };
                b.push(op, Role::Plain, numbered("fc", fcs), *span, &[x])?
            }
        };
    }
    Ok(x)
}

/// The statements of a block that the `split` and `concat` forms turn into paths: the grouped
/// convs `start..=end` (with the ungrouped conv before them when it leads into them), and whether
/// the ungrouped conv after them is merged into the paths (`split` only).
struct Paths {
    groups: u64,
    /// The first statement that is repeated per path.
    start: usize,
    /// The last grouped statement.
    end: usize,
    /// The paths read the whole input (a leading ungrouped conv) instead of a slice of it.
    lead: bool,
    /// The conv after `end` is split per path and the paths are summed (`split`).
    merge: bool,
}

impl Paths {
    fn of(convs: &[ir::Conv], form: Form) -> Option<Paths> {
        if form == Form::Grouped {
            return None;
        }
        let g = convs.iter().position(|c| c.groups > 1)?;
        let groups = convs[g].groups;
        let lead = g > 0 && convs[g - 1].groups == 1;
        let mut end = g;
        while end + 1 < convs.len() && convs[end + 1].groups == groups {
            end += 1;
        }
        Some(Paths {
            groups,
            start: if lead { g - 1 } else { g },
            end,
            lead,
            merge: form == Form::Split && end + 1 < convs.len() && convs[end + 1].groups == 1,
        })
    }
}

/// One residual block: the branch in the model's form, the shortcut, the addition, the ReLU.
fn block(
    b: &mut Builder,
    x: NodeIndex,
    blk: &ir::Block,
    form: Form,
) -> Result<NodeIndex, Diagnostic> {
    let h = match Paths::of(&blk.convs, form) {
        Some(paths) => branch_with_paths(b, x, blk, &paths)?,
        None => branch_units(b, x, blk, 0..blk.convs.len())?,
    };
    residual(b, x, h, blk)
}

/// The main-branch units `range` of a block, one after the other.
fn branch_units(
    b: &mut Builder,
    mut h: NodeIndex,
    blk: &ir::Block,
    range: std::ops::Range<usize>,
) -> Result<NodeIndex, Diagnostic> {
    let n = blk.convs.len();
    let prefix = format!("{}.", blk.path);
    for i in range {
        let names = Unit {
            prefix: &prefix,
            k: i + 1,
            relu: (i + 1 < n).then(|| format!("{}.relu", blk.path)),
        };
        let role = Role::Branch { k: i as u32 + 1 };
        h = b.unit(h, &blk.convs[i], role, names)?;
    }
    Ok(h)
}

/// The branch of a `split` or `concat` block: the units before the paths, the paths, their
/// merge, and the units after.
fn branch_with_paths(
    b: &mut Builder,
    x: NodeIndex,
    blk: &ir::Block,
    paths: &Paths,
) -> Result<NodeIndex, Diagnostic> {
    let (p, convs) = (&blk.path, &blk.convs);
    let n = convs.len();
    let grouped = convs[if paths.lead {
        paths.start + 1
    } else {
        paths.start
    }];
    let mut h = branch_units(b, x, blk, 0..paths.start)?;
    let mut outs = Vec::new();
    for path in 0..paths.groups {
        outs.push(one_path(b, h, blk, paths, path)?);
    }
    let next = if paths.merge {
        let k = paths.end + 2;
        let c = &convs[paths.end + 1];
        h = b.push(Op::Add, Role::Merge, format!("{p}.sum"), c.span, &outs)?;
        let role = Role::Branch { k: k as u32 };
        h = b.push(Op::BatchNorm, role, format!("{p}.bn{k}"), c.span, &[h])?;
        if k < n {
            h = b.push(Op::Relu, role, format!("{p}.relu"), c.span, &[h])?;
        }
        k
    } else {
        let span = grouped.span;
        h = b.push(Op::Concat, Role::Merge, format!("{p}.concat"), span, &outs)?;
        paths.end + 1
    };
    branch_units(b, h, blk, next..n)
}

/// Path `path` of a block: the slice of its input (unless a leading conv reads all of it), the
/// repeated units at `1/groups` of the width, and the path's share of a merged conv.
fn one_path(
    b: &mut Builder,
    h: NodeIndex,
    blk: &ir::Block,
    paths: &Paths,
    path: u64,
) -> Result<NodeIndex, Diagnostic> {
    let (p, convs, groups) = (&blk.path, &blk.convs, paths.groups);
    let q = format!("{p}.paths.{path}");
    let span = convs[paths.start + usize::from(paths.lead)].span;
    let mut y = h;
    if !paths.lead {
        let slice = Op::Slice {
            index: path,
            parts: groups,
        };
        y = b.push(
            slice,
            Role::Slice { p: path },
            format!("{q}.slice"),
            span,
            &[y],
        )?;
    }
    let prefix = format!("{q}.");
    for (i, c) in convs
        .iter()
        .enumerate()
        .take(paths.end + 1)
        .skip(paths.start)
    {
        if c.out % groups != 0 {
            let message = format!(
                "`{p}`: width {} cannot be split into {groups} paths of equal width",
                c.out
            );
            let d = b.located(
                "archc::shape::groups",
                message,
                span,
                format!("{groups} groups"),
            );
            return Err(d.help(groups_help(groups)));
        }
        let pc = ir::Conv {
            out: c.out / groups,
            groups: 1,
            ..*c
        };
        let names = Unit {
            prefix: &prefix,
            k: i + 1,
            relu: (i + 1 < convs.len()).then(|| format!("{q}.relu")),
        };
        let role = Role::Path {
            p: path,
            k: i as u32 + 1,
        };
        y = b.unit(y, &pc, role, names)?;
    }
    if paths.merge {
        let k = paths.end + 2;
        let c = &convs[paths.end + 1];
        let pc = ir::Conv {
            bias: c.bias && path == 0,
            ..*c
        };
        let role = Role::Path {
            p: path,
            k: k as u32,
        };
        y = b.push(conv_op(&pc), role, format!("{q}.conv{k}"), c.span, &[y])?;
    }
    Ok(y)
}

/// The shortcut (identity or projection), the residual addition and the block's ReLU.
fn residual(
    b: &mut Builder,
    x: NodeIndex,
    h: NodeIndex,
    blk: &ir::Block,
) -> Result<NodeIndex, Diagnostic> {
    let p = &blk.path;
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
        let span = blk.template_span;
        let (conv, bn) = (format!("{p}.downsample.0"), format!("{p}.downsample.1"));
        s = b.push(conv_op(&proj), Role::Downsample, conv, span, &[s])?;
        s = b.push(Op::BatchNorm, Role::Downsample, bn, span, &[s])?;
    }
    let add_span = match blk.shortcut_span {
        Some(span) if !project => span,
        _ => blk.template_span,
    };
    let sum = b
        .push(Op::Add, Role::Residual, format!("{p}.add"), add_span, &[h, s])
        .map_err(|d| {
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
    let relu = format!("{p}.relu");
    b.push(Op::Relu, Role::Output, relu, blk.template_span, &[sum])
}
