//! The inference mode: batch-norm folded into the convolutions, ReLU applied in place, the
//! tensors in channels-last memory order, and optionally bf16 weights and activations.
//!
//! [`Inference::new`] reads the current values of a [`Network`]'s variables, so it uses the
//! batch-norm running statistics (eval mode). A convolution whose only consumer is a batch-norm
//! becomes one convolution, with weight `w·γ/√(σ²+ε)` and bias `β − μ·γ/√(σ²+ε)` (plus the conv's
//! own bias, scaled). A batch-norm that follows anything else becomes a per-channel affine
//! transform. libtorch has no memory-format API in tch, so channels-last tensors are made the
//! way PyTorch itself represents them: NHWC storage with NCHW sizes
//! (`permute(0,2,3,1).contiguous().permute(0,3,1,2)`). oneDNN then keeps the activations in
//! that layout.

use crate::{Network, Step};
use tch::{Kind, Tensor};

/// Batch-norm epsilon (torchvision's and tch's default).
const EPS: f64 = 1e-5;

/// How to build the inference plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// `Kind::Float` or `Kind::BFloat16` (also `Kind::Half` on CUDA).
    pub kind: Kind,
    /// Whether to keep 4-D tensors in channels-last memory order.
    pub channels_last: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            kind: Kind::Float,
            channels_last: true,
        }
    }
}

#[derive(Debug)]
enum FStep {
    Input,
    Conv {
        w: Tensor,
        b: Option<Tensor>,
        stride: i64,
        pad: [i64; 2],
        groups: i64,
        relu: bool,
    },
    Affine {
        scale: Tensor,
        shift: Tensor,
        relu: bool,
    },
    Relu,
    MaxPool {
        kernel: [i64; 2],
        stride: i64,
        pad: [i64; 2],
    },
    AvgPool,
    Linear {
        w: Tensor,
        b: Option<Tensor>,
    },
    Add {
        relu: bool,
    },
    Concat,
    Slice {
        index: i64,
        parts: i64,
    },
}

#[derive(Debug)]
struct FNode {
    step: FStep,
    inputs: Vec<usize>,
    frees: Vec<usize>,
}

/// A folded, channels-last, optionally bf16 copy of a [`Network`] for inference.
#[derive(Debug)]
pub struct Inference {
    nodes: Vec<FNode>,
    options: Options,
}

/// NHWC storage with NCHW sizes: PyTorch's channels-last representation.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() == 4 {
        t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        t.shallow_clone()
    }
}

impl Inference {
    /// Builds the plan from the network's current variable values.
    pub fn new(net: &Network, options: Options) -> Inference {
        tch::no_grad(|| Inference::build(net, options))
    }

    fn build(net: &Network, options: Options) -> Inference {
        let n = net.nodes.len();
        let mut consumers = vec![Vec::new(); n];
        for (i, node) in net.nodes.iter().enumerate() {
            for &x in &node.inputs {
                consumers[x].push(i);
            }
        }
        let only = |i: usize| match consumers[i].as_slice() {
            [c] => Some(*c),
            _ => None,
        };
        let is_relu = |i: usize| matches!(net.nodes[i].step, Step::Relu);
        let prep = |t: &Tensor| {
            let t = t.detach().to_kind(options.kind);
            if options.channels_last {
                channels_last(&t)
            } else {
                t.contiguous()
            }
        };
        let vec_kind = |t: &Tensor| t.detach().to_kind(options.kind).contiguous();
        // alias[i]: the plan node whose output is original node i's value.
        let mut alias = vec![usize::MAX; n];
        let mut nodes: Vec<FNode> = Vec::new();
        for (i, node) in net.nodes.iter().enumerate() {
            if alias[i] != usize::MAX {
                continue; // folded into an earlier plan node
            }
            let inputs: Vec<usize> = node.inputs.iter().map(|&x| alias[x]).collect();
            let mut covers = vec![i];
            let step = match &node.step {
                Step::Input => FStep::Input,
                Step::Conv(c, spec) => {
                    let mut w = c.ws.detach().to_kind(Kind::Float);
                    let mut b = c.bs.as_ref().map(|b| b.detach().to_kind(Kind::Float));
                    let mut relu = false;
                    if let Some(j) = only(i) {
                        if let Step::Bn(bn) = &net.nodes[j].step {
                            let (scale, shift) = bn_affine(bn);
                            w = &w * scale.view([-1, 1, 1, 1]);
                            b = Some(match b {
                                Some(b) => b * &scale + shift,
                                None => shift,
                            });
                            covers.push(j);
                            if let Some(k) = only(j).filter(|&k| is_relu(k)) {
                                relu = true;
                                covers.push(k);
                            }
                        }
                    }
                    FStep::Conv {
                        w: prep(&w),
                        b: b.as_ref().map(vec_kind),
                        stride: spec.stride,
                        pad: spec.pad,
                        groups: spec.groups,
                        relu,
                    }
                }
                Step::Bn(bn) => {
                    let (scale, shift) = bn_affine(bn);
                    let relu = match only(i).filter(|&k| is_relu(k)) {
                        Some(k) => {
                            covers.push(k);
                            true
                        }
                        None => false,
                    };
                    FStep::Affine {
                        scale: vec_kind(&scale).view([1, -1, 1, 1]),
                        shift: vec_kind(&shift).view([1, -1, 1, 1]),
                        relu,
                    }
                }
                Step::Relu => FStep::Relu,
                Step::MaxPool {
                    kernel,
                    stride,
                    pad,
                } => FStep::MaxPool {
                    kernel: *kernel,
                    stride: *stride,
                    pad: *pad,
                },
                Step::AvgPool => FStep::AvgPool,
                Step::Linear(l) => FStep::Linear {
                    w: vec_kind(&l.ws),
                    b: l.bs.as_ref().map(vec_kind),
                },
                Step::Add => {
                    let relu = match only(i).filter(|&k| is_relu(k)) {
                        Some(k) => {
                            covers.push(k);
                            true
                        }
                        None => false,
                    };
                    FStep::Add { relu }
                }
                Step::Concat => FStep::Concat,
                Step::Slice { index, parts } => FStep::Slice {
                    index: *index,
                    parts: *parts,
                },
            };
            let id = nodes.len();
            for c in covers {
                alias[c] = id;
            }
            nodes.push(FNode {
                step,
                inputs,
                frees: Vec::new(),
            });
        }
        let mut last_use = vec![usize::MAX; nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            for &x in &node.inputs {
                last_use[x] = i;
            }
        }
        for (x, &at) in last_use.iter().enumerate() {
            if at != usize::MAX {
                nodes[at].frees.push(x);
            }
        }
        Inference { nodes, options }
    }

    /// The options the plan was built with.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Runs the plan on a float NCHW batch; returns float logits.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let x = xs.to_kind(self.options.kind);
            let x = if self.options.channels_last {
                channels_last(&x)
            } else {
                x
            };
            self.run(&x).to_kind(Kind::Float)
        })
    }

    fn run(&self, xs: &Tensor) -> Tensor {
        let mut values: Vec<Option<Tensor>> = (0..self.nodes.len()).map(|_| None).collect();
        let mut last = None;
        for (i, node) in self.nodes.iter().enumerate() {
            let arg = |k: usize| {
                values[node.inputs[k]]
                    .as_ref()
                    .expect("plan: input computed")
            };
            let y = match &node.step {
                FStep::Input => xs.shallow_clone(),
                FStep::Conv {
                    w,
                    b,
                    stride,
                    pad,
                    groups,
                    relu,
                } => {
                    let mut y =
                        arg(0).conv2d(w, b.as_ref(), [*stride, *stride], pad, [1, 1], *groups);
                    if *relu {
                        let _ = y.relu_();
                    }
                    y
                }
                FStep::Affine { scale, shift, relu } => {
                    let mut y = arg(0) * scale + shift;
                    if *relu {
                        let _ = y.relu_();
                    }
                    y
                }
                FStep::Relu => arg(0).relu(),
                FStep::MaxPool {
                    kernel,
                    stride,
                    pad,
                } => arg(0).max_pool2d(kernel, [*stride, *stride], pad, [1, 1], false),
                FStep::AvgPool => arg(0).adaptive_avg_pool2d([1, 1]),
                FStep::Linear { w, b } => arg(0).flatten(1, -1).linear(w, b.as_ref()),
                FStep::Add { relu } => {
                    // The branch output dies here: add into it in place.
                    let first = node.inputs[0];
                    let mut acc = if node.frees.contains(&first) {
                        values[first].take().expect("plan: input computed")
                    } else {
                        values[first].as_ref().expect("plan: input computed").copy()
                    };
                    for k in 1..node.inputs.len() {
                        let other = values[node.inputs[k]]
                            .as_ref()
                            .expect("plan: input computed");
                        let _ = acc.g_add_(other);
                    }
                    if *relu {
                        let _ = acc.relu_();
                    }
                    acc
                }
                FStep::Concat => {
                    let parts: Vec<&Tensor> = (0..node.inputs.len()).map(arg).collect();
                    Tensor::cat(&parts, 1)
                }
                FStep::Slice { index, parts } => crate::slice_channels(arg(0), *index, *parts),
            };
            for &f in &node.frees {
                values[f] = None;
            }
            last = Some(y.shallow_clone());
            values[i] = Some(y);
        }
        last.expect("a network has nodes")
    }
}

/// A batch-norm's eval-mode transform as `x·scale + shift`, in f32.
fn bn_affine(bn: &tch::nn::BatchNorm) -> (Tensor, Tensor) {
    let mean = bn.running_mean.detach().to_kind(Kind::Float);
    let var = bn.running_var.detach().to_kind(Kind::Float);
    let c = mean.size()[0];
    let opts = (Kind::Float, mean.device());
    let gamma = bn.ws.as_ref().map_or_else(
        || Tensor::ones([c], opts),
        |w| w.detach().to_kind(Kind::Float),
    );
    let beta = bn.bs.as_ref().map_or_else(
        || Tensor::zeros([c], opts),
        |b| b.detach().to_kind(Kind::Float),
    );
    let scale = gamma / (var + EPS).sqrt();
    let shift = beta - &mean * &scale;
    (scale, shift)
}
