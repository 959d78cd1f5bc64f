//! Operations: what a node of the layer graph computes ([`Op`], with its arguments), its kind
//! ([`OpKind`], for tables and per-kind rules) and its role in a residual block ([`Role`], set
//! where blocks are lowered, so emitters read structure instead of rebuilding it from paths).

use super::shape::Shape;
use serde::{Serialize, Serializer};
use std::fmt;

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
    /// The operation's kind, without its arguments.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Input { .. } => OpKind::Input,
            Op::Conv { .. } => OpKind::Conv,
            Op::BatchNorm => OpKind::BatchNorm,
            Op::Relu => OpKind::Relu,
            Op::MaxPool { .. } => OpKind::MaxPool,
            Op::GlobalAvgPool => OpKind::GlobalAvgPool,
            Op::Linear { .. } => OpKind::Linear,
            Op::Add => OpKind::Add,
            Op::Concat => OpKind::Concat,
            Op::Slice { .. } => OpKind::Slice,
        }
    }
}

/// The kind of an [`Op`], without its arguments. Serialised (and displayed) as its short name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// The network's input.
    Input,
    /// 2-D convolution.
    Conv,
    /// Batch normalisation.
    BatchNorm,
    /// ReLU.
    Relu,
    /// Max pooling.
    MaxPool,
    /// Global average pooling.
    GlobalAvgPool,
    /// Fully connected layer.
    Linear,
    /// Element-wise sum.
    Add,
    /// Channel concatenation.
    Concat,
    /// Channel slice.
    Slice,
}

impl OpKind {
    /// The kinds that compute something, in the order reports list them.
    pub const LAYERS: [OpKind; 9] = [
        OpKind::Conv,
        OpKind::BatchNorm,
        OpKind::Relu,
        OpKind::MaxPool,
        OpKind::GlobalAvgPool,
        OpKind::Add,
        OpKind::Concat,
        OpKind::Slice,
        OpKind::Linear,
    ];

    /// The short name used in tables and JSON: `conv`, `bn`, `relu`, `maxpool`, `avgpool`, `fc`,
    /// `add`, `concat`, `slice`, `input`.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Input => "input",
            OpKind::Conv => "conv",
            OpKind::BatchNorm => "bn",
            OpKind::Relu => "relu",
            OpKind::MaxPool => "maxpool",
            OpKind::GlobalAvgPool => "avgpool",
            OpKind::Linear => "fc",
            OpKind::Add => "add",
            OpKind::Concat => "concat",
            OpKind::Slice => "slice",
        }
    }

    /// Whether the kind holds learnable parameters (conv, batch-norm, fc).
    pub fn has_params(self) -> bool {
        matches!(self, OpKind::Conv | OpKind::BatchNorm | OpKind::Linear)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl Serialize for OpKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Where a node sits in the network. Set by [`super::lower`] as it builds each block, so that
/// code generation and every other emitter read roles instead of parsing paths.
///
/// `k` numbers the template's statements from 1 (`conv{k}`, `bn{k}` in torchvision's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// The network's input.
    Input,
    /// A stem or head layer, outside every block.
    Plain,
    /// The main branch of a block: conv `k`, its batch-norm or the ReLU after it.
    Branch {
        /// Statement number, from 1.
        k: u32,
    },
    /// Path `p` of a split or concat block (paper Fig. 3a/3b): conv `k`, its batch-norm or ReLU.
    Path {
        /// Path index, from 0.
        p: u64,
        /// Statement number, from 1.
        k: u32,
    },
    /// The channel slice of the block's input that path `p` reads.
    Slice {
        /// Path index, from 0.
        p: u64,
    },
    /// The merge of the paths: their concatenation, or their sum before the shared batch-norm.
    Merge,
    /// The projection shortcut: its conv (`downsample.0`) or batch-norm (`downsample.1`).
    Downsample,
    /// The residual addition of branch and shortcut.
    Residual,
    /// The ReLU after the residual addition: the block's output.
    Output,
}
