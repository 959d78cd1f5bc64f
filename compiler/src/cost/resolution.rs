//! Costs at any input resolution and batch size, without expanding or lowering the spec again.
//!
//! A network's graph (its operations, channels and connections) does not depend on the input's
//! height and width; only the spatial sizes do. Each node's size is a chain of window maps
//! `n ↦ ⌊(n + 2p − k) / s⌋ + 1` from the input, applied to the height and the width separately, so
//! every figure is an exact function of `(H, W)`:
//!
//! ```text
//! figure(H, W) = constant + Σ_classes coefficient_class · h_class(H) · w_class(W)
//! ```
//!
//! where a *class* is one distinct chain of windows (ResNet-50 has seven: the input, `conv1`,
//! the max-pool, and each stride-2 stage's size) and the coefficients are per-pixel costs summed
//! over the nodes of that size. [`ResolutionModel`] holds this function for a graph and evaluates
//! it in a few dozen multiplications; [`reshape`] and [`recost`] give the whole graph and report
//! at a new size instead. Tests prove both equal to a full recompile with `--input`, for every
//! shipped spec and random sizes.
//!
//! **Batch.** Every archc figure is per image. For a batch of `N`, multiply-adds, FLOPs and
//! activations are `N ×` the per-image figure (every layer processes each image independently;
//! batch-norm in eval mode too); parameters and buffers do not change. [`Batched`] carries them.
//!
//! Changing the input *channels* can change the graph (an automatic shortcut becomes a projection
//! or an identity), so it needs a recompile; [`recost`] refuses it.
//!
//! ```
//! use archc::cost::resolution::ResolutionModel;
//! use archc::cost::convention::Convention;
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/resnet/resnet50.arch");
//! let c = archc::compile_file(path, &archc::Overrides::default()).unwrap();
//! let m = ResolutionModel::new(&c.graph, Convention::Torchvision).unwrap();
//! assert_eq!(m.eval(224, 224).unwrap().macs, 4_089_184_256);
//! let at320 = archc::compile_file(path, &archc::Overrides { input: Some([3, 320, 320]), ..Default::default() }).unwrap();
//! assert_eq!(m.eval(320, 320).unwrap(), at320.report.total);
//! ```

use crate::Compiled;
use crate::cost::convention::{self, Convention};
use crate::cost::{self, Cost};
use crate::diag::Diagnostic;
use crate::graph::shape::{self, Shape};
use crate::graph::{LayerGraph, Op};
use serde::Serialize;

/// `graph` with every node's shape recomputed for a new input, by each operation's shape rule in
/// topological order. The operations, channels and edges are unchanged.
pub fn reshape(graph: &LayerGraph, input: [u64; 3]) -> Result<LayerGraph, Diagnostic> {
    let declared = graph.graph[graph.input].shape;
    if input[0] != declared.c {
        return Err(Diagnostic::new(
            "archc::resolution::channels",
            format!(
                "the input has {} channels, not {}: changing channels can change the graph, so \
                 recompile with --input instead",
                input[0], declared.c
            ),
        ));
    }
    if input.contains(&0) {
        return Err(Diagnostic::new(
            "archc::expand::input",
            format!(
                "input {}x{}x{} has a zero dimension",
                input[0], input[1], input[2]
            ),
        ));
    }
    let mut g = graph.clone();
    let new = Shape::new(input[0], input[1], input[2]);
    for n in graph.graph.node_indices() {
        let shapes: Vec<Shape> = g.inputs(n).iter().map(|i| g.graph[*i].shape).collect();
        let node = &mut g.graph[n];
        if let Op::Input { shape } = &mut node.op {
            *shape = new;
        }
        node.shape = shape::infer(&node.op, &shapes).map_err(|e| {
            Diagnostic::new(
                "archc::resolution::shape",
                format!(
                    "`{}`: {e} (at input {}x{}x{})",
                    node.path, input[0], input[1], input[2]
                ),
            )
            .at(node.span, "here")
        })?;
    }
    Ok(g)
}

/// A compiled network costed at another input size (same channels), without expanding or
/// lowering again: [`reshape`] then [`cost::analyze`]. Equal to compiling with
/// `Overrides::input` (a test checks it for every shipped spec).
pub fn recost(c: &Compiled, input: [u64; 3]) -> Result<Compiled, Diagnostic> {
    let graph = reshape(&c.graph, input)?;
    let report = cost::analyze(&graph, &c.report.limits())?;
    let mut model = c.model.clone();
    model.input = input;
    Ok(Compiled {
        model,
        graph,
        report,
    })
}

/// One window map along one axis, `n ↦ ⌊(n + 2·pad − kernel) / stride⌋ + 1`, kept in the
/// normal form `n ↦ ⌊(n + shift) / stride⌋ + 1` with `shift = 2·pad − kernel`, defined where
/// `n + shift ≥ 0`. Two windows with the same form are the same function (a 3×3/2 conv with
/// padding 1 and a 1×1/2 projection both give `⌊(n − 1) / 2⌋ + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Window {
    /// `2·pad − kernel`.
    pub shift: i64,
    /// Stride.
    pub stride: u64,
}

impl Window {
    /// The window of a kernel, stride and padding; `None` if they do not fit 63 bits.
    pub fn new(kernel: u64, stride: u64, pad: u64) -> Option<Window> {
        let shift = i64::try_from(pad.checked_mul(2)?).ok()? - i64::try_from(kernel).ok()?;
        Some(Window { shift, stride })
    }

    /// Whether it maps every size to itself (stride 1, `kernel = 2·pad + 1`).
    pub fn is_identity(self) -> bool {
        self.stride == 1 && self.shift == -1
    }

    /// The output size for an input of size `n`, or `None` if the window does not fit.
    pub fn apply(self, n: u64) -> Option<u64> {
        let m = i128::from(n) + i128::from(self.shift);
        if m < 0 || self.stride == 0 {
            return None;
        }
        u64::try_from(m as u128 / u128::from(self.stride) + 1).ok()
    }

    fn text(self, var: &str) -> String {
        let inner = match self.shift {
            0 => var.to_string(),
            s if s > 0 => format!("{var} + {s}"),
            s => format!("{var} - {}", s.unsigned_abs()),
        };
        if self.stride == 1 {
            format!("{inner} + 1")
        } else {
            format!("({inner}) / {} + 1", self.stride)
        }
    }
}

/// A distinct spatial size of the network as a function of the input's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Class {
    /// The input's `H × W`.
    Input,
    /// Always `1 × 1` (after global average pooling).
    One,
    /// A window (along H, along W) applied to another class, by index.
    Window {
        /// The class it is applied to.
        parent: usize,
        /// Along the height.
        h: Window,
        /// Along the width.
        w: Window,
    },
}

/// The exact cost of a graph as a function of the input's height and width (module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolutionModel {
    /// The convention the figures are counted under.
    pub convention: Convention,
    /// Input channels (fixed: channels change the graph).
    pub channels: u64,
    /// The distinct spatial sizes; every parent precedes its children.
    pub classes: Vec<Class>,
    /// Figures that do not depend on the size.
    pub constant: Cost,
    /// Per class, the figures per pixel of that class (`h · w`).
    pub per_pixel: Vec<Cost>,
}

/// Sizes of each class at one input size.
pub type Sizes = Vec<(u64, u64)>;

impl ResolutionModel {
    /// Builds the model of `g` under `conv`. `None` if a coefficient overflows 64 bits.
    pub fn new(g: &LayerGraph, conv: Convention) -> Option<ResolutionModel> {
        let mut classes = vec![Class::Input, Class::One];
        let mut of_node = vec![0usize; g.graph.node_count()];
        let mut constant = Cost::default();
        let mut per_pixel = vec![Cost::default(); 2];
        let class_of = |classes: &mut Vec<Class>, per_pixel: &mut Vec<Cost>, c: Class| match classes
            .iter()
            .position(|x| *x == c)
        {
            Some(i) => i,
            None => {
                classes.push(c);
                per_pixel.push(Cost::default());
                classes.len() - 1
            }
        };
        for (n, node) in g.nodes() {
            let first = g.inputs(n).first().map(|i| of_node[i.index()]);
            let parent = first.unwrap_or(0);
            let window = |k: (u64, u64), s: u64, p: (u64, u64)| -> Option<Class> {
                let (h, w) = (Window::new(k.0, s, p.0)?, Window::new(k.1, s, p.1)?);
                Some(if h.is_identity() && w.is_identity() {
                    classes[parent]
                } else {
                    Class::Window { parent, h, w }
                })
            };
            let (class, input_class) = match node.op {
                Op::Input { .. } => (0, 0),
                Op::Conv {
                    kernel,
                    stride,
                    pad,
                    ..
                }
                | Op::MaxPool {
                    kernel,
                    stride,
                    pad,
                    ..
                } => {
                    let c = window(kernel, stride, pad)?;
                    (class_of(&mut classes, &mut per_pixel, c), parent)
                }
                Op::GlobalAvgPool | Op::Linear { .. } => (1, first.unwrap_or(0)),
                Op::BatchNorm | Op::Relu | Op::Add | Op::Concat | Op::Slice { .. } => {
                    (first.unwrap_or(0), first.unwrap_or(0))
                }
            };
            of_node[n.index()] = class;
            let out = node.shape;
            let cin = g.input_shape(n).c;
            // Per-pixel figures of this node, and the class whose pixels they count.
            let c = convention::node_cost(g, n, conv)?;
            match node.op {
                Op::Conv {
                    out: c_out, bias, ..
                } => {
                    // params are constant; MACs and activations scale with the output's pixels.
                    constant.params = constant.params.checked_add(c.params)?;
                    let weight = c.params - if bias { c_out } else { 0 };
                    let extra = c.macs.checked_sub(weight.checked_mul(out.h * out.w)?)?;
                    constant.macs = constant.macs.checked_add(extra)?;
                    let p = &mut per_pixel[class];
                    p.macs = p.macs.checked_add(weight)?;
                    p.activations = p.activations.checked_add(c_out)?;
                }
                Op::Linear { out: f_out, bias } => {
                    // in_features = C·h·w of the input's class.
                    let b = if bias { f_out } else { 0 };
                    let p = &mut per_pixel[input_class];
                    p.params = p.params.checked_add(cin.checked_mul(f_out)?)?;
                    p.macs = p.macs.checked_add(cin.checked_mul(f_out)?)?;
                    constant.params = constant.params.checked_add(b)?;
                    let extra = c
                        .macs
                        .checked_sub(g.input_shape(n).numel()?.checked_mul(f_out)?)?;
                    constant.macs = constant.macs.checked_add(extra)?;
                    constant.activations = constant.activations.checked_add(c.activations)?;
                }
                Op::BatchNorm => {
                    constant.params = constant.params.checked_add(c.params)?;
                    constant.buffers = constant.buffers.checked_add(c.buffers)?;
                    // fvcore: 2 per element.
                    let p = &mut per_pixel[class];
                    p.macs = p.macs.checked_add(c.macs / (out.h * out.w).max(1))?;
                }
                Op::GlobalAvgPool => {
                    // fvcore: 1 per input element.
                    let pixels = g.input_shape(n).h * g.input_shape(n).w;
                    let p = &mut per_pixel[input_class];
                    p.macs = p.macs.checked_add(c.macs / pixels.max(1))?;
                }
                Op::MaxPool { .. } => {
                    // pycls: output elements count as activations.
                    let p = &mut per_pixel[class];
                    p.activations = p
                        .activations
                        .checked_add(c.activations / (out.h * out.w).max(1))?;
                }
                Op::Input { .. } | Op::Relu | Op::Add | Op::Concat | Op::Slice { .. } => {}
            }
        }
        Some(ResolutionModel {
            convention: conv,
            channels: g.graph[g.input].shape.c,
            classes,
            constant,
            per_pixel,
        })
    }

    /// Each class's `(h, w)` for an input of `h × w`; `None` where a window does not fit.
    pub fn sizes(&self, h: u64, w: u64) -> Option<Sizes> {
        let mut out: Sizes = Vec::with_capacity(self.classes.len());
        for c in &self.classes {
            out.push(match *c {
                Class::Input => (h, w),
                Class::One => (1, 1),
                Class::Window {
                    parent,
                    h: wh,
                    w: ww,
                } => {
                    let (ph, pw) = *out.get(parent)?;
                    (wh.apply(ph)?, ww.apply(pw)?)
                }
            });
        }
        Some(out)
    }

    /// The figures at an input of `h × w`, exactly; `None` where the map vanishes, a size is 0,
    /// or a figure overflows 64 bits.
    pub fn eval(&self, h: u64, w: u64) -> Option<Cost> {
        if h == 0 || w == 0 {
            return None;
        }
        let sizes = self.sizes(h, w)?;
        let mut t = self.constant;
        for (p, (ch, cw)) in self.per_pixel.iter().zip(&sizes) {
            let px = ch.checked_mul(*cw)?;
            t.params = t.params.checked_add(p.params.checked_mul(px)?)?;
            t.buffers = t.buffers.checked_add(p.buffers.checked_mul(px)?)?;
            t.macs = t.macs.checked_add(p.macs.checked_mul(px)?)?;
            t.activations = t.activations.checked_add(p.activations.checked_mul(px)?)?;
        }
        t.macs.checked_mul(2)?;
        Some(t)
    }

    /// The function in words, e.g. for ResNet-50's multiply-adds
    /// `MACs(H, W) = 2,048,000 + 9,408*h2*w2 + ...` and each size's rule,
    /// `h2 = (H - 1) / 2 + 1` (integer division).
    pub fn formula(&self, pick: fn(&Cost) -> u64, name: &str) -> String {
        let mut constant = pick(&self.constant);
        let mut terms = Vec::new();
        let mut rules = Vec::new();
        // Class 1 is the constant 1×1, so window classes are numbered from 1 in the text.
        let var = |i: usize| match self.classes[i] {
            Class::Input => ("H".to_string(), "W".to_string()),
            _ => (format!("h{}", i - 1), format!("w{}", i - 1)),
        };
        for (i, (c, p)) in self.classes.iter().zip(&self.per_pixel).enumerate() {
            let v = pick(p);
            match c {
                Class::One => constant = constant.saturating_add(v),
                _ if v > 0 => {
                    let (h, w) = var(i);
                    terms.push(format!("{}*{h}*{w}", cost::grouped(v)));
                }
                _ => {}
            }
            if let Class::Window { parent, h, w } = c {
                let (ph, pw) = var(*parent);
                let (vh, vw) = var(i);
                rules.push(format!("{vh} = {}, {vw} = {}", h.text(&ph), w.text(&pw)));
            }
        }
        if constant > 0 || terms.is_empty() {
            terms.insert(0, cost::grouped(constant));
        }
        let mut out = format!("{name}(H, W) = {}", terms.join(" + "));
        if !rules.is_empty() {
            out.push_str("\n  where (integer division)");
            for r in rules {
                out.push_str("\n    ");
                out.push_str(&r);
            }
        }
        out
    }
}

/// Figures for a batch of `batch` images: `macs`, `flops` and `activations` are `batch ×` the
/// per-image figures; parameters and buffers are per network and do not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Batched {
    /// Images per batch.
    pub batch: u64,
    /// Parameters (unchanged by the batch).
    pub params: u64,
    /// Buffers (unchanged by the batch).
    pub buffers: u64,
    /// Multiply-adds (or the convention's compute figure) for the whole batch.
    pub macs: u64,
    /// 2 × macs.
    pub flops: u64,
    /// Activations for the whole batch.
    pub activations: u64,
}

/// `per_image` scaled to a batch; `None` on overflow.
pub fn batched(per_image: &Cost, batch: u64) -> Option<Batched> {
    let macs = per_image.macs.checked_mul(batch)?;
    Some(Batched {
        batch,
        params: per_image.params,
        buffers: per_image.buffers,
        macs,
        flops: macs.checked_mul(2)?,
        activations: per_image.activations.checked_mul(batch)?,
    })
}
