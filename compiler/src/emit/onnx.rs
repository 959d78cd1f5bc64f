//! ONNX export: a compiled network, with its weights, as an ONNX model (`archc export onnx`).
//!
//! The model is built from the [`LayerGraph`] node by node, in creation (topological) order, as
//! the messages of the `onnx-protobuf` crate; the protobuf encoding is that crate's.
//!
//! - **Opset** [`DEFAULT_OPSET`] (17) unless asked otherwise, within [`OPSETS`]; the IR version is
//!   the one released with that opset.
//! - **Input** `input`: float `[batch, C, H, W]` with a symbolic (dynamic) `batch`. **Output**
//!   `logits` `[batch, classes]` when the head ends in a fully connected layer, else `output`
//!   `[batch, C, H, W]`.
//! - **Nodes** are named by the graph's torchvision paths (`layer1.0.conv2`, `layer1.0.bn2`,
//!   `layer1.0.downsample.0`, `fc`). A path used by several nodes (torchvision reuses one `relu`
//!   module per block) gets `_1`, `_2`, … on its later uses, as `torch.onnx` does. Each node's
//!   output tensor has the node's name.
//! - **Initializers** carry the weights' `state_dict` names ([`crate::weights::expected`]):
//!   `layer1.0.conv1.weight`, `layer1.0.bn1.running_mean`, `fc.bias`; in the `concat` and `split`
//!   forms, `layer1.0.paths.{p}.conv1.weight`, sliced from the grouped checkpoint tensors.
//!   Only weights are initializers: the `Slice` bounds are `Constant` nodes, so the initializers
//!   add up to `archc check`'s parameters plus buffers.
//!
//! Operations: `Conv` (grouped convolution as `group`), `BatchNormalization` (epsilon 1e-5, as
//! PyTorch), `Relu`, `MaxPool`, `GlobalAveragePool`, `Flatten` + `Gemm` (`transB = 1`) for a fully
//! connected layer, `Add` (or `Sum` for the split form's aggregation of more than two paths),
//! `Concat` and `Slice` (the concat and split forms' paths).
//!
//! With [`Options::fold_bn`] a batch-norm is folded into the convolution that feeds it (scale
//! into the weight, shift into a bias), and the split form's aggregating batch-norm (after the
//! paths' sum) into every path's last convolution, its shift into path 0's bias. A batch-norm fed
//! by anything else stays a `BatchNormalization`. The folding is computed in f64.
//!
//! Weights come from a safetensors file ([`load_weights`]: f32, or f16/bf16/f64 converted to
//! f32), matched by [`crate::weights::plan`], the same check the runtime makes; or, without a
//! file, from a seeded initialisation ([`seeded`]), which the model's `doc_string` states.
//!
//! ```
//! let c = archc::compile_file("../specs/resnet/resnet18.arch", &Default::default()).unwrap();
//! let opts = archc::emit::onnx::Options::default();
//! let values = archc::emit::onnx::seeded(&c.graph, 0);
//! let model = archc::emit::onnx::model(&c, values, &opts, "seeded").unwrap();
//! let g = model.graph.as_ref().unwrap();
//! assert_eq!(g.input[0].name, "input");
//! assert_eq!(g.output[0].name, "logits");
//! assert_eq!(g.node[0].name, "conv1");
//! assert_eq!(g.initializer[0].name, "conv1.weight");
//! ```

use crate::Compiled;
use crate::graph::{LayerGraph, Op};
use crate::weights::{self, Mismatch, Role, Source};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use protobuf::{Message, MessageField};
use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// The opset written unless another is asked for.
pub const DEFAULT_OPSET: i64 = 17;

/// The opsets this exporter writes (every operator it uses has the same meaning in all of them).
pub const OPSETS: RangeInclusive<i64> = 13..=21;

/// Batch-norm epsilon, PyTorch's default (`BatchNorm2d(eps=1e-5)`), which the runtime uses too.
pub const BN_EPSILON: f32 = 1e-5;

/// The largest total size of initializers, in bytes: a protobuf message is limited to 2 GiB, and
/// this exporter does not write ONNX external data.
pub const MAX_WEIGHT_BYTES: u64 = 2_000_000_000;

/// How to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The ONNX opset (default-domain version), within [`OPSETS`].
    pub opset: i64,
    /// Fold batch-norms into the convolutions that feed them.
    pub fold_bn: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            opset: DEFAULT_OPSET,
            fold_bn: false,
        }
    }
}

/// A tensor's values by name, f32, row-major.
pub type Values = BTreeMap<String, Vec<f32>>;

/// Why a model could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The weights file could not be read.
    #[error("cannot read weights `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The weights file is not a valid safetensors file.
    #[error("`{path}` is not a valid safetensors file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the safetensors reader said.
        message: String,
    },
    /// A tensor the network needs has a data type that is not floating point.
    #[error(
        "`{path}`: tensor `{name}` is {dtype}; weights must be floating point (f32, or f16, bf16, f64, converted to f32)"
    )]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its data type.
        dtype: String,
    },
    /// The weights file does not fit the network.
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
    /// An opset outside [`OPSETS`].
    #[error(
        "opset {0} is not supported: archc writes opsets {start} to {end}",
        start = OPSETS.start(),
        end = OPSETS.end()
    )]
    Opset(i64),
    /// The weights would not fit in one protobuf message.
    #[error(
        "the network's weights take {bytes} bytes, more than the {MAX_WEIGHT_BYTES} one ONNX file can hold without external data (which archc does not write)"
    )]
    TooLarge {
        /// Their size in bytes (saturated).
        bytes: u64,
    },
    /// The output could not be written.
    #[error("cannot write `{path}`: {message}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The IR version released together with `opset` (onnx/docs/Versioning.md).
pub fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

fn numel(shape: &[i64]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))
}

/// The bytes the network's weights take as f32, or [`ExportError::TooLarge`].
pub fn weight_bytes(g: &LayerGraph) -> Result<u64, ExportError> {
    let total = weights::expected(g)
        .iter()
        .try_fold(0u64, |a, (_, s)| a.checked_add(numel(s)?.checked_mul(4)?));
    match total {
        Some(b) if b <= MAX_WEIGHT_BYTES => Ok(b),
        other => Err(ExportError::TooLarge {
            bytes: other.unwrap_or(u64::MAX),
        }),
    }
}

/// SplitMix64: a small, well-mixed, seedable generator; enough for an initialisation.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Values from a seeded initialisation, as torchvision initialises a ResNet: convolutions
/// Kaiming-normal (fan-out, ReLU gain), batch-norms with unit scale, zero shift, zero mean and
/// unit variance, fully connected layers and biases uniform in ±1/√fan-in. Deterministic for a
/// seed. Call [`weight_bytes`] first: this allocates every tensor.
pub fn seeded(g: &LayerGraph, seed: u64) -> Values {
    let mut rng = Rng(seed);
    let mut out = Values::new();
    let tensors = weights::tensors(g);
    let fan_in = |shape: &[i64]| shape.iter().skip(1).product::<i64>().max(1) as f64;
    let mut last_fan_in = 1.0;
    for (name, shape, role) in tensors {
        let n = numel(&shape).unwrap_or(0) as usize;
        let values: Vec<f32> = match role {
            Role::Weight if shape.len() == 4 => {
                last_fan_in = fan_in(&shape);
                let fan_out = (shape[0] * shape[2] * shape[3]).max(1) as f64;
                let std = (2.0 / fan_out).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            }
            Role::Weight => {
                last_fan_in = fan_in(&shape);
                let bound = 1.0 / last_fan_in.sqrt();
                (0..n)
                    .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                    .collect()
            }
            Role::Bias => {
                let bound = 1.0 / last_fan_in.sqrt();
                (0..n)
                    .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                    .collect()
            }
            Role::BnWeight | Role::RunningVar => vec![1.0; n],
            Role::BnBias | Role::RunningMean => vec![0.0; n],
        };
        out.insert(name, values);
    }
    out
}

fn to_f32(
    path: &Path,
    name: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<Vec<f32>, ExportError> {
    use safetensors::Dtype;
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        other => {
            return Err(ExportError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    })
}

/// Part `index` of `data` (shaped `shape`) cut into parts of `len` along `dim`.
fn narrow(data: &[f32], shape: &[i64], dim: usize, index: i64, len: i64) -> Vec<f32> {
    let outer: usize = shape[..dim].iter().product::<i64>() as usize;
    let inner: usize = shape[dim + 1..].iter().product::<i64>() as usize;
    let (full, len, start) = (shape[dim] as usize, len as usize, (index * len) as usize);
    let mut out = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        let from = (o * full + start) * inner;
        out.extend_from_slice(&data[from..from + len * inner]);
    }
    out
}

/// What [`load_weights`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Tensors taken by name.
    pub direct: usize,
    /// Path tensors taken from a grouped tensor.
    pub mapped: usize,
    /// `num_batches_tracked` counters skipped.
    pub ignored: usize,
}

/// Reads a safetensors file and gives every tensor of the network its value. The file must fit
/// the graph exactly ([`weights::plan`]); if it does not, nothing is converted and the
/// [`Mismatch`] lists every tensor that disagrees.
pub fn load_weights(g: &LayerGraph, path: &Path) -> Result<(Values, Loaded), ExportError> {
    let bytes = std::fs::read(path).map_err(|source| ExportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ExportError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let views: BTreeMap<String, safetensors::tensor::TensorView<'_>> =
        file.tensors().into_iter().collect();
    let shapes: BTreeMap<String, Vec<i64>> = views
        .iter()
        .map(|(n, v)| {
            let s = v
                .shape()
                .iter()
                .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
                .collect();
            (n.clone(), s)
        })
        .collect();
    let want = weights::expected(g);
    let plan = weights::plan(&path.display().to_string(), &want, &shapes)?;
    let wanted: BTreeMap<&str, &[i64]> = want.iter().map(|(n, s)| (n.as_str(), &s[..])).collect();
    let mut values = Values::new();
    // Grouped tensors converted once, however many paths take a slice of them.
    let mut grouped: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    for (name, source) in &plan.steps {
        let shape = wanted[name.as_str()];
        let data = match source {
            Source::Direct => to_f32(path, name, &views[name])?,
            Source::Whole { from } => to_f32(path, from, &views[from])?,
            Source::Slice { from, dim, index } => {
                if !grouped.contains_key(from.as_str()) {
                    grouped.insert(from, to_f32(path, from, &views[from])?);
                }
                narrow(
                    &grouped[from.as_str()],
                    &shapes[from],
                    *dim,
                    *index,
                    shape[*dim],
                )
            }
            Source::Zero => vec![0.0; numel(shape).unwrap_or(0) as usize],
        };
        values.insert(name.clone(), data);
    }
    Ok((
        values,
        Loaded {
            direct: plan.direct,
            mapped: plan.mapped,
            ignored: plan.ignored,
        },
    ))
}

fn out_degree(g: &LayerGraph, n: NodeIndex) -> usize {
    g.graph.edges_directed(n, Direction::Outgoing).count()
}

/// Folds every foldable batch-norm into its convolutions; returns each folded batch-norm with
/// the node that takes its place (the convolution, or the split form's sum).
fn fold(g: &LayerGraph, values: &mut Values) -> HashMap<NodeIndex, NodeIndex> {
    let mut alias = HashMap::new();
    for (n, node) in g.nodes() {
        if node.op != Op::BatchNorm {
            continue;
        }
        let Some(&i) = g.inputs(n).first() else {
            continue;
        };
        let single_conv = |c: NodeIndex| {
            matches!(g.graph[c].op, Op::Conv { .. }) && out_degree(g, c) == 1 && c != g.output
        };
        let convs: Vec<NodeIndex> = match g.graph[i].op {
            Op::Conv { .. } if single_conv(i) => vec![i],
            Op::Add if out_degree(g, i) == 1 && g.inputs(i).into_iter().all(single_conv) => {
                g.inputs(i)
            }
            _ => continue,
        };
        let p = &node.path;
        let take = |values: &mut Values, leaf: &str| values.remove(&format!("{p}.{leaf}"));
        let (Some(gamma), Some(beta), Some(mean), Some(var)) = (
            take(values, "weight"),
            take(values, "bias"),
            take(values, "running_mean"),
            take(values, "running_var"),
        ) else {
            continue;
        };
        let scale: Vec<f64> = gamma
            .iter()
            .zip(&var)
            .map(|(&g, &v)| g as f64 / (v as f64 + BN_EPSILON as f64).sqrt())
            .collect();
        let shift: Vec<f64> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((&b, &m), &s)| b as f64 - m as f64 * s)
            .collect();
        for (k, &c) in convs.iter().enumerate() {
            let cp = &g.graph[c].path;
            if let Some(w) = values.get_mut(&format!("{cp}.weight")) {
                let per = w.len() / scale.len().max(1);
                for (o, row) in w.chunks_mut(per.max(1)).enumerate() {
                    let s = scale[o];
                    row.iter_mut().for_each(|x| *x = (*x as f64 * s) as f32);
                }
            }
            let bias = format!("{cp}.bias");
            let old = values.remove(&bias);
            if old.is_some() || k == 0 {
                let b = (0..scale.len())
                    .map(|o| {
                        let b0 = old.as_ref().map_or(0.0, |b| b[o] as f64) * scale[o];
                        (b0 + if k == 0 { shift[o] } else { 0.0 }) as f32
                    })
                    .collect();
                values.insert(bias, b);
            }
        }
        alias.insert(n, i);
    }
    alias
}

/// An attribute named `name` of type `t`, its value left to the caller.
fn attr(name: &str, t: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        type_: t.into(),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..attr(name, AttributeType::INT)
    }
}

/// `kernel_shape`, `pads` (top, left, bottom, right) and `strides` of a 2-D window (Conv,
/// MaxPool): the graph pads both sides equally.
fn window(kernel: (u64, u64), stride: u64, pad: (u64, u64)) -> [AttributeProto; 3] {
    let (ph, pw) = (pad.0 as i64, pad.1 as i64);
    [
        attr_ints("kernel_shape", &[kernel.0 as i64, kernel.1 as i64]),
        attr_ints("pads", &[ph, pw, ph, pw]),
        attr_ints("strides", &[stride as i64, stride as i64]),
    ]
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attr(name, AttributeType::INTS)
    }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: v,
        ..attr(name, AttributeType::FLOAT)
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("batch".to_string()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor {
        elem_type: DataType::FLOAT as i32,
        shape: MessageField::some(TensorShapeProto {
            dim,
            ..Default::default()
        }),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_string(),
        type_: MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ONNX graph under construction: nodes, initializers and the names in use.
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    uses: HashMap<String, usize>,
}

impl Builder {
    /// `base`, or `base_k` for its `k`-th reuse.
    fn unique(&mut self, base: &str) -> String {
        let k = self.uses.entry(base.to_string()).or_insert(0);
        *k += 1;
        if *k == 1 {
            base.to_string()
        } else {
            let name = format!("{base}_{}", *k - 1);
            self.uses.insert(name.clone(), 1);
            name
        }
    }

    /// Adds a node named `base` (made unique) with one output of the same name.
    fn node(
        &mut self,
        op_type: &str,
        base: &str,
        input: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        let name = self.unique(base);
        self.nodes.push(NodeProto {
            input,
            output: vec![name.clone()],
            name: name.clone(),
            op_type: op_type.to_string(),
            attribute,
            ..Default::default()
        });
        name
    }

    /// A constant 1-D int64 tensor.
    fn constant(&mut self, base: &str, v: &[i64]) -> String {
        let t = TensorProto {
            dims: vec![v.len() as i64],
            data_type: DataType::INT64 as i32,
            int64_data: v.to_vec(),
            ..Default::default()
        };
        let attr = AttributeProto {
            name: "value".to_string(),
            type_: AttributeType::TENSOR.into(),
            t: MessageField::some(t),
            ..Default::default()
        };
        self.node("Constant", base, Vec::new(), vec![attr])
    }

    /// An f32 initializer; returns its name.
    fn initializer(&mut self, name: &str, dims: &[i64], data: Vec<f32>) -> String {
        let mut raw = Vec::with_capacity(data.len() * 4);
        for x in data {
            raw.extend_from_slice(&x.to_le_bytes());
        }
        self.uses.insert(name.to_string(), 1);
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: DataType::FLOAT as i32,
            name: name.to_string(),
            raw_data: raw,
            ..Default::default()
        });
        name.to_string()
    }
}

/// Builds the ONNX model of a compiled network from its weights' `values` (every tensor of
/// [`weights::expected`]; [`load_weights`] or [`seeded`]). `weights` says where they came from,
/// for the model's `doc_string`.
pub fn model(
    c: &Compiled,
    mut values: Values,
    opts: &Options,
    weights: &str,
) -> Result<ModelProto, ExportError> {
    if !OPSETS.contains(&opts.opset) {
        return Err(ExportError::Opset(opts.opset));
    }
    let g = &c.graph;
    weight_bytes(g)?;
    let alias = if opts.fold_bn {
        fold(g, &mut values)
    } else {
        HashMap::new()
    };
    let shapes: HashMap<String, Vec<i64>> = weights::expected(g).into_iter().collect();
    let mut b = Builder {
        nodes: Vec::new(),
        initializers: Vec::new(),
        uses: HashMap::new(),
    };
    // Each graph node's output: (tensor name, rank).
    let mut out: Vec<Option<(String, usize)>> = vec![None; g.graph.node_count()];
    let resolve = |mut n: NodeIndex| {
        while let Some(&a) = alias.get(&n) {
            n = a;
        }
        n
    };
    let param = |b: &mut Builder, values: &mut Values, name: String, dims: Vec<i64>| {
        values
            .remove(&name)
            .map(|data| b.initializer(&name, &dims, data))
    };
    // A layer's weight and, when the weights have one, its bias (as long as the weight's first
    // dimension): the inputs of Conv and Gemm after the data.
    let weight_and_bias = |b: &mut Builder, values: &mut Values, p: &str| -> Vec<String> {
        let wname = format!("{p}.weight");
        let wshape = shapes.get(&wname).cloned().unwrap_or_default();
        let mut inputs: Vec<String> = param(b, values, wname, wshape.clone())
            .into_iter()
            .collect();
        let bias = format!("{p}.bias");
        if values.contains_key(&bias) {
            inputs.extend(param(
                b,
                values,
                bias,
                wshape.iter().take(1).copied().collect(),
            ));
        }
        inputs
    };
    for (n, node) in g.nodes() {
        if alias.contains_key(&n) {
            continue;
        }
        let args: Vec<(String, usize)> = g
            .inputs(n)
            .into_iter()
            .filter_map(|i| out[resolve(i).index()].clone())
            .collect();
        let x = |k: usize| args.get(k).map(|a| a.0.clone()).unwrap_or_default();
        let rank4 = |b: &mut Builder, k: usize| -> String {
            match args.get(k) {
                Some((name, 2)) => {
                    let axes = b.constant(&format!("{}.unsqueeze_axes", node.path), &[2, 3]);
                    b.node(
                        "Unsqueeze",
                        &format!("{}.unsqueeze", node.path),
                        vec![name.clone(), axes],
                        Vec::new(),
                    )
                }
                Some((name, _)) => name.clone(),
                None => String::new(),
            }
        };
        let p = &node.path;
        let result = match node.op {
            Op::Input { .. } => {
                b.uses.insert("input".to_string(), 1);
                ("input".to_string(), 4)
            }
            Op::Conv {
                kernel,
                stride,
                pad,
                groups,
                ..
            } => {
                let mut input = vec![rank4(&mut b, 0)];
                input.extend(weight_and_bias(&mut b, &mut values, p));
                let mut attrs = vec![
                    attr_ints("dilations", &[1, 1]),
                    attr_int("group", groups as i64),
                ];
                attrs.extend(window(kernel, stride, pad));
                (b.node("Conv", p, input, attrs), 4)
            }
            Op::BatchNorm => {
                let mut input = vec![rank4(&mut b, 0)];
                let c = vec![node.shape.c as i64];
                for leaf in ["weight", "bias", "running_mean", "running_var"] {
                    input.extend(param(&mut b, &mut values, format!("{p}.{leaf}"), c.clone()));
                }
                let attrs = vec![attr_float("epsilon", BN_EPSILON)];
                (b.node("BatchNormalization", p, input, attrs), 4)
            }
            Op::Relu => {
                let rank = args.first().map_or(4, |a| a.1);
                (b.node("Relu", p, vec![x(0)], Vec::new()), rank)
            }
            Op::MaxPool {
                kernel,
                stride,
                pad,
            } => {
                let xin = rank4(&mut b, 0);
                let mut attrs = vec![attr_int("ceil_mode", 0)];
                attrs.extend(window(kernel, stride, pad));
                (b.node("MaxPool", p, vec![xin], attrs), 4)
            }
            Op::GlobalAvgPool => {
                let xin = rank4(&mut b, 0);
                (b.node("GlobalAveragePool", p, vec![xin], Vec::new()), 4)
            }
            Op::Linear { .. } => {
                let mut xin = x(0);
                if args.first().is_some_and(|a| a.1 != 2) {
                    xin = b.node("Flatten", "flatten", vec![xin], vec![attr_int("axis", 1)]);
                }
                let mut input = vec![xin];
                input.extend(weight_and_bias(&mut b, &mut values, p));
                let attrs = vec![
                    attr_float("alpha", 1.0),
                    attr_float("beta", 1.0),
                    attr_int("transB", 1),
                ];
                (b.node("Gemm", p, input, attrs), 2)
            }
            Op::Add => {
                let rank = args.first().map_or(4, |a| a.1);
                let input: Vec<String> = (0..args.len()).map(x).collect();
                let op = if input.len() == 2 { "Add" } else { "Sum" };
                (b.node(op, p, input, Vec::new()), rank)
            }
            Op::Concat => {
                let input: Vec<String> = (0..args.len()).map(|k| rank4(&mut b, k)).collect();
                (b.node("Concat", p, input, vec![attr_int("axis", 1)]), 4)
            }
            Op::Slice { index, parts } => {
                let xin = rank4(&mut b, 0);
                let len = (g.input_shape(n).c / parts.max(1)) as i64;
                let starts = b.constant(&format!("{p}.starts"), &[index as i64 * len]);
                let ends = b.constant(&format!("{p}.ends"), &[(index as i64 + 1) * len]);
                let axes = b.constant(&format!("{p}.axes"), &[1]);
                (
                    b.node("Slice", p, vec![xin, starts, ends, axes], Vec::new()),
                    4,
                )
            }
        };
        out[n.index()] = Some(result);
    }
    let (last, rank) = out[resolve(g.output).index()]
        .clone()
        .unwrap_or_else(|| ("input".to_string(), 4));
    let shape = g.graph[g.output].shape;
    let (out_name, dims) = if rank == 2 {
        ("logits", vec![None, Some(shape.c as i64)])
    } else {
        (
            "output",
            vec![
                None,
                Some(shape.c as i64),
                Some(shape.h as i64),
                Some(shape.w as i64),
            ],
        )
    };
    if last == "input" || b.uses.contains_key(out_name) {
        // No layer at all, or a layer already named like the output: add an Identity.
        let name = b.node("Identity", out_name, vec![last], Vec::new());
        if let Some(n) = b.nodes.last_mut() {
            n.name = name;
            n.output = vec![out_name.to_string()];
        }
    } else {
        for n in &mut b.nodes {
            for v in n.output.iter_mut().chain(n.input.iter_mut()) {
                if *v == last {
                    *v = out_name.to_string();
                }
            }
        }
    }
    let input = g.graph[g.input].shape;
    let graph = GraphProto {
        node: b.nodes,
        name: g.name.clone(),
        initializer: b.initializers,
        input: vec![value_info(
            "input",
            &[
                None,
                Some(input.c as i64),
                Some(input.h as i64),
                Some(input.w as i64),
            ],
        )],
        output: vec![value_info(out_name, &dims)],
        ..Default::default()
    };
    let bn = if opts.fold_bn {
        "batch-norm folded into the convolutions"
    } else {
        "batch-norm kept"
    };
    Ok(ModelProto {
        ir_version: ir_version(opts.opset),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opts.opset,
            ..Default::default()
        }],
        producer_name: "archc".to_string(),
        producer_version: env!("CARGO_PKG_VERSION").to_string(),
        doc_string: format!(
            "archc export of network `{}` ({} form, input {}x{}x{}, {bn}). Weights: {weights}",
            g.name,
            format!("{:?}", g.form).to_lowercase(),
            input.c,
            input.h,
            input.w
        ),
        graph: MessageField::some(graph),
        ..Default::default()
    })
}

/// The model's initializers added up as `archc check` counts them: (parameters, buffers), where
/// the buffers are the batch-norms' running means and variances.
pub fn initializer_counts(model: &ModelProto) -> (u64, u64) {
    let (mut params, mut buffers) = (0u64, 0u64);
    for t in &model.graph.initializer {
        let n = numel(&t.dims).unwrap_or(0);
        if t.name.ends_with(".running_mean") || t.name.ends_with(".running_var") {
            buffers += n;
        } else {
            params += n;
        }
    }
    (params, buffers)
}

/// The `doc_string` text for a model exported without weights.
pub fn seeded_note(seed: u64) -> String {
    format!(
        "NOT TRAINED: initializers from archc's seeded initialisation (seed {seed}: Kaiming-normal \
         convolutions, unit batch-norms, uniform fully connected layers); this file carries the \
         structure only. Export with --weights W.safetensors for trained weights."
    )
}

/// Writes `model` to `path` atomically: into a temporary file in the same folder, renamed over
/// `path` once complete, so that a failed write never leaves a partial file. Returns the size.
pub fn write(model: &ModelProto, path: &Path) -> Result<u64, ExportError> {
    let fail = |message: String| ExportError::Write {
        path: path.to_path_buf(),
        message,
    };
    if path.is_dir() {
        return Err(fail("it is a directory".to_string()));
    }
    if path.file_name().is_none() {
        return Err(fail("not a file name".to_string()));
    }
    let tmp = crate::temp_beside(path, "archc-onnx");
    let result = (|| -> Result<u64, String> {
        let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        model.write_to_writer(&mut w).map_err(|e| e.to_string())?;
        let file = w.into_inner().map_err(|e| e.error().to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
        Ok(size)
    })();
    result.map_err(|m| {
        let _ = std::fs::remove_file(&tmp);
        fail(m)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::shipped_in_form as compiled;

    fn initializer_counts(m: &ModelProto) -> (u64, u64) {
        let (mut params, mut buffers) = (0, 0);
        for t in &m.graph.initializer {
            let n: i64 = t.dims.iter().product();
            assert_eq!(t.raw_data.len() as i64, n * 4, "{}", t.name);
            if t.name.ends_with(".running_mean") || t.name.ends_with(".running_var") {
                buffers += n as u64;
            } else {
                params += n as u64;
            }
        }
        (params, buffers)
    }

    #[test]
    fn initializers_add_up_to_the_cost_report_in_every_form() {
        for form in ["grouped", "concat", "split"] {
            let c = compiled("resnext/resnext50_32x4d.arch", form);
            let m = model(&c, seeded(&c.graph, 0), &Options::default(), "seeded").unwrap();
            let counts = initializer_counts(&m);
            assert_eq!(
                counts,
                (c.report.total.params, c.report.total.buffers),
                "{form}"
            );
            let names: Vec<&str> = m.graph.node.iter().map(|n| n.name.as_str()).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{form}: node names are unique");
            // torchvision's one `relu` module per block, used three times.
            let reuse = match form {
                "grouped" => "layer1.0.relu_2",
                _ => "layer1.0.paths.0.relu_1",
            };
            assert!(names.contains(&reuse), "{form}");
        }
    }

    #[test]
    fn folding_removes_every_batch_norm_of_the_grouped_and_split_forms() {
        for form in ["grouped", "split", "concat"] {
            let c = compiled("resnext/resnext50_32x4d.arch", form);
            let opts = Options {
                fold_bn: true,
                ..Options::default()
            };
            let m = model(&c, seeded(&c.graph, 0), &opts, "seeded").unwrap();
            let bns = m
                .graph
                .node
                .iter()
                .filter(|n| n.op_type == "BatchNormalization")
                .count();
            assert_eq!(bns, 0, "{form}");
            assert!(
                !m.graph
                    .initializer
                    .iter()
                    .any(|t| t.name.ends_with("running_mean"))
            );
        }
    }

    #[test]
    fn folding_is_exact_on_a_single_channel() {
        let c = compiled("resnet/resnet18.arch", "grouped");
        let mut v = seeded(&c.graph, 1);
        v.insert("bn1.weight".into(), vec![2.0; 64]);
        v.insert("bn1.bias".into(), vec![0.5; 64]);
        v.insert("bn1.running_mean".into(), vec![1.0; 64]);
        v.insert("bn1.running_var".into(), vec![4.0 - BN_EPSILON; 64]);
        let w0 = v["conv1.weight"][0];
        fold(&c.graph, &mut v);
        assert!((v["conv1.weight"][0] - w0).abs() < 1e-6);
        assert!((v["conv1.bias"][0] - (0.5 - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn narrow_takes_one_part_along_a_dimension() {
        // shape [2, 4]: rows [0 1 2 3] [4 5 6 7]; dim 1, parts of 2, index 1.
        let data: Vec<f32> = (0..8).map(|x| x as f32).collect();
        assert_eq!(narrow(&data, &[2, 4], 1, 1, 2), vec![2.0, 3.0, 6.0, 7.0]);
        assert_eq!(narrow(&data, &[2, 4], 0, 1, 1), vec![4.0, 5.0, 6.0, 7.0]);
    }

    #[test]
    fn a_bad_opset_is_refused() {
        let c = compiled("resnet/resnet18.arch", "grouped");
        let opts = Options {
            opset: 9,
            ..Options::default()
        };
        let e = model(&c, Values::new(), &opts, "").unwrap_err();
        assert!(e.to_string().contains("opset 9"), "{e}");
    }
}
