//! # archc-runtime: run archc specs on libtorch
//!
//! [`Network::new`] turns a compiled spec's layer graph into a live tch model whose variables
//! carry torchvision's `state_dict` names (`conv1.weight`, `layer1.0.bn2.running_var`,
//! `layer2.0.downsample.0.weight`, `fc.bias`), so torchvision checkpoints load by name
//! ([`weights::load`]). It implements [`tch::nn::ModuleT`]: train mode uses batch statistics and
//! updates the running ones; eval mode uses the running statistics. [`fast::Inference`] is the
//! inference mode: batch-norm folded into the convolutions, channels-last memory, optional bf16.
//!
//! ```no_run
//! use archc_runtime::{Network, tch};
//! use tch::nn::ModuleT;
//!
//! let compiled = archc::compile_file("specs/resnext/resnext50_32x4d.arch", &Default::default())
//!     .expect("spec compiles");
//! let vs = tch::nn::VarStore::new(tch::Device::cuda_if_available());
//! let net = Network::new(&vs.root(), &compiled);
//! let x = tch::Tensor::randn([2, 3, 224, 224], (tch::Kind::Float, vs.device()));
//! let logits = net.forward_t(&x, false);
//! assert_eq!(logits.size(), [2, 1000]);
//! ```

pub mod fast;
pub mod weights;

pub use tch;

use archc::graph::{LayerGraph, Op};
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--device` value that is not `cpu`, `cuda`, `cuda:N` or `auto`.
    #[error("unknown device `{0}`: use cpu, cuda, cuda:N or auto")]
    Device(String),
    /// CUDA was asked for but libtorch sees no GPU.
    #[error(
        "CUDA was requested but no CUDA device is available (is libtorch_cuda linked and a GPU present?)"
    )]
    NoCuda,
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (CUDA if available, else CPU).
pub fn parse_device(s: &str) -> Result<Device, Error> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(Error::NoCuda)
            }
        }
        s => match s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if (n as i64) < tch::Cuda::device_count() => Ok(Device::Cuda(n)),
            Some(_) => Err(Error::NoCuda),
            None => Err(Error::Device(s.to_string())),
        },
    }
}

/// The tch path of a module path: `layer1.0.conv2` → `root / "layer1" / "0" / "conv2"`.
pub(crate) fn sub<'a>(root: &nn::Path<'a>, path: &str) -> nn::Path<'a> {
    path.split('.').fold(root.clone(), |p, part| p / part)
}

/// One node's computation.
#[derive(Debug)]
enum Step {
    Input,
    Conv(nn::Conv2D),
    Bn(nn::BatchNorm),
    Relu,
    MaxPool {
        kernel: [i64; 2],
        stride: i64,
        pad: [i64; 2],
    },
    AvgPool,
    Linear(nn::Linear),
    Add,
    Concat,
    Slice {
        index: i64,
        parts: i64,
    },
}

/// A node: its step, its inputs (indices of earlier nodes) and which inputs die after it.
#[derive(Debug)]
struct Node {
    /// The graph's operation (strides, padding, groups), for [`fast`].
    op: Op,
    step: Step,
    inputs: Vec<usize>,
    /// Inputs whose last use is this node: their tensors are dropped once it has run.
    frees: Vec<usize>,
}

/// A spec's network as a tch module. Build it with [`Network::new`].
#[derive(Debug)]
pub struct Network {
    name: String,
    nodes: Vec<Node>,
    /// (stage name, index of the stage's last node): `stem`, `layer1`, …, `head`.
    stages: Vec<(String, usize)>,
    input: [i64; 3],
    output: [i64; 3],
}

/// He (Kaiming) normal initialisation with fan-out, as torchvision initialises convolutions.
const CONV_INIT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

impl Network {
    /// Creates the network's variables under `root` (named by the graph's torchvision paths) and
    /// its execution plan.
    pub fn new(root: &nn::Path, compiled: &archc::Compiled) -> Network {
        Network::from_graph(root, &compiled.graph)
    }

    /// Like [`Network::new`], from a layer graph.
    pub fn from_graph(root: &nn::Path, g: &LayerGraph) -> Network {
        let order: Vec<_> = g.graph.node_indices().collect();
        let mut nodes = Vec::with_capacity(order.len());
        let mut last_use = vec![0usize; order.len()];
        for (i, &n) in order.iter().enumerate() {
            let node = &g.graph[n];
            let inputs: Vec<usize> = g.inputs(n).iter().map(|x| x.index()).collect();
            for &x in &inputs {
                last_use[x] = i;
            }
            let cin = g.input_shape(n).c as i64;
            let step = match node.op {
                Op::Input { .. } => Step::Input,
                Op::Conv {
                    out,
                    kernel,
                    stride,
                    pad,
                    groups,
                    bias,
                } => {
                    let fan_in = (cin / groups as i64) * (kernel.0 * kernel.1) as i64;
                    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                    Step::Conv(nn::conv(
                        sub(root, &node.path),
                        cin,
                        out as i64,
                        [kernel.0 as i64, kernel.1 as i64],
                        nn::ConvConfigND {
                            stride: [stride as i64; 2],
                            padding: [pad.0 as i64, pad.1 as i64],
                            dilation: [1, 1],
                            groups: groups as i64,
                            bias,
                            ws_init: CONV_INIT,
                            bs_init: nn::Init::Uniform {
                                lo: -bound,
                                up: bound,
                            },
                            padding_mode: nn::PaddingMode::Zeros,
                        },
                    ))
                }
                Op::BatchNorm => Step::Bn(nn::batch_norm2d(
                    sub(root, &node.path),
                    node.shape.c as i64,
                    Default::default(),
                )),
                Op::Relu => Step::Relu,
                Op::MaxPool {
                    kernel,
                    stride,
                    pad,
                } => Step::MaxPool {
                    kernel: [kernel.0 as i64, kernel.1 as i64],
                    stride: stride as i64,
                    pad: [pad.0 as i64, pad.1 as i64],
                },
                Op::GlobalAvgPool => Step::AvgPool,
                Op::Linear { out, bias } => Step::Linear(nn::linear(
                    sub(root, &node.path),
                    g.input_shape(n).numel().unwrap_or(0) as i64,
                    out as i64,
                    nn::LinearConfig {
                        bias,
                        ..Default::default()
                    },
                )),
                Op::Add => Step::Add,
                Op::Concat => Step::Concat,
                Op::Slice { index, parts } => Step::Slice {
                    index: index as i64,
                    parts: parts as i64,
                },
            };
            nodes.push(Node {
                op: node.op,
                step,
                inputs,
                frees: Vec::new(),
            });
        }
        let output = g.output.index();
        last_use[output] = usize::MAX;
        for (x, &at) in last_use.iter().enumerate() {
            if at != usize::MAX && at != 0 {
                nodes[at].frees.push(x);
            }
        }
        let mut stages: Vec<(String, usize)> =
            g.stages.iter().map(|s| (s.name.clone(), 0)).collect();
        for (i, &n) in order.iter().enumerate() {
            stages[g.graph[n].stage].1 = i;
        }
        let shape = |s: archc::shape::Shape| [s.c as i64, s.h as i64, s.w as i64];
        Network {
            name: g.name.clone(),
            nodes,
            stages,
            input: shape(g.graph[g.input].shape),
            output: shape(g.graph[g.output].shape),
        }
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Input `[C, H, W]` the spec was compiled for.
    pub fn input_shape(&self) -> [i64; 3] {
        self.input
    }

    /// Output per image: `[classes]` after an fc, else `[C, H, W]`.
    pub fn output_shape(&self) -> Vec<i64> {
        match self.nodes.last().map(|n| &n.step) {
            Some(Step::Linear(_)) => vec![self.output[0]],
            _ => self.output.to_vec(),
        }
    }

    /// Runs the network and returns the output of every stage (`stem`, `layer1`, …, `head`) in
    /// order; the last one is the network's output.
    pub fn forward_stages(&self, xs: &Tensor, train: bool) -> Vec<(String, Tensor)> {
        let wanted: Vec<usize> = self.stages.iter().map(|s| s.1).collect();
        let mut keep = Vec::new();
        let _ = self.run(xs, train, &wanted, |i, t| {
            if let Some(k) = wanted.iter().position(|w| *w == i) {
                keep.push((self.stages[k].0.clone(), t.shallow_clone()));
            }
        });
        keep
    }

    /// Runs the plan. `observed` nodes' outputs are shown to `observe` and never modified in
    /// place afterwards. ReLU and addition work in place on an input that dies at that node, as
    /// torchvision's blocks do (`ReLU(inplace=True)`, `out += identity`); both are safe for
    /// autograd because no producer in the graph saves its output for the backward pass.
    fn run(
        &self,
        xs: &Tensor,
        train: bool,
        observed: &[usize],
        mut observe: impl FnMut(usize, &Tensor),
    ) -> Tensor {
        let mut values: Vec<Option<Tensor>> = (0..self.nodes.len()).map(|_| None).collect();
        let mut last = None;
        for (i, node) in self.nodes.iter().enumerate() {
            // The first input, taken out of `values` when this node may overwrite it.
            let owned = node.inputs.first().copied().filter(|f| {
                matches!(node.step, Step::Relu | Step::Add)
                    && node.frees.contains(f)
                    && !observed.contains(f)
                    && !matches!(self.nodes[*f].step, Step::Input | Step::Slice { .. })
            });
            let mut mine = owned.and_then(|f| values[f].take());
            let arg = |k: usize| {
                values[node.inputs[k]]
                    .as_ref()
                    .expect("plan: input computed")
            };
            let y = match &node.step {
                Step::Input => xs.shallow_clone(),
                Step::Conv(c) => arg(0).apply(c),
                Step::Bn(bn) => arg(0).apply_t(bn, train),
                Step::Relu => match mine.take() {
                    Some(mut t) => {
                        let _ = t.relu_();
                        t
                    }
                    None => arg(0).relu(),
                },
                Step::MaxPool {
                    kernel,
                    stride,
                    pad,
                } => arg(0).max_pool2d(kernel, [*stride, *stride], pad, [1, 1], false),
                Step::AvgPool => arg(0).adaptive_avg_pool2d([1, 1]),
                Step::Linear(l) => arg(0).flatten(1, -1).apply(l),
                Step::Add => {
                    let mut acc = match mine.take() {
                        Some(t) => t,
                        None => arg(0).copy(),
                    };
                    for k in 1..node.inputs.len() {
                        acc += arg(k);
                    }
                    acc
                }
                Step::Concat => {
                    let parts: Vec<&Tensor> = (0..node.inputs.len()).map(arg).collect();
                    Tensor::cat(&parts, 1)
                }
                Step::Slice { index, parts } => {
                    let x = arg(0);
                    let len = x.size()[1] / parts;
                    x.narrow(1, index * len, len)
                }
            };
            observe(i, &y);
            for &f in &node.frees {
                values[f] = None;
            }
            last = Some(y.shallow_clone());
            values[i] = Some(y);
        }
        last.expect("a network has nodes")
    }
}

impl ModuleT for Network {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, &[], |_, _| {})
    }
}
