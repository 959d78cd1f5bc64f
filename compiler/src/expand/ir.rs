//! The expanded network: every template instantiated, every parameter evaluated.
//!
//! [`Model`] is what [`crate::expand::expand`] produces and [`crate::graph::lower`] consumes.
//! It holds plain integers only; each item keeps the span it came from.

use crate::source::Span;
use crate::syntax::ast::{Form, Limit, Shortcut};

/// A fully expanded network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The network's name.
    pub name: String,
    /// The `network` definition.
    pub span: Span,
    /// Input channels, height, width.
    pub input: [u64; 3],
    /// Where the input is declared (the network's name if it comes from `--input`).
    pub input_span: Span,
    /// Number of classes; 0 for a network with an empty `head {}` that declares none.
    pub classes: u64,
    /// The block form.
    pub form: Form,
    /// Evaluated parameters, in declaration order.
    pub params: Vec<(String, u64)>,
    /// Stem layers.
    pub stem: Vec<Layer>,
    /// Stages of blocks.
    pub stages: Vec<Stage>,
    /// Head layers.
    pub head: Vec<Layer>,
    /// Budget lines (after `extends` overrides).
    pub budgets: Vec<Limit>,
}

/// A concrete layer of the stem or head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// A convolution, followed by batch-norm and ReLU.
    Conv(Conv),
    /// Max pooling.
    MaxPool {
        /// Kernel (h, w).
        kernel: (u64, u64),
        /// Stride.
        stride: u64,
        /// Padding (h, w).
        pad: (u64, u64),
        /// The statement.
        span: Span,
    },
    /// Global average pooling.
    AvgPool {
        /// The statement.
        span: Span,
    },
    /// Fully connected layer.
    Fc {
        /// Output features.
        out: u64,
        /// With bias.
        bias: bool,
        /// The statement.
        span: Span,
    },
}

/// A concrete convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv {
    /// Kernel (h, w).
    pub kernel: (u64, u64),
    /// Stride.
    pub stride: u64,
    /// Padding (h, w).
    pub pad: (u64, u64),
    /// Output channels.
    pub out: u64,
    /// Groups.
    pub groups: u64,
    /// With bias.
    pub bias: bool,
    /// The statement (in the template, for block convs).
    pub span: Span,
}

/// A stage: blocks that share a template and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The user's label (`conv3`).
    pub label: String,
    /// Module path (`layer2`).
    pub path: String,
    /// Template name.
    pub template: String,
    /// Stride of the first block.
    pub stride: u64,
    /// The template arguments every block of the stage shares.
    pub args: Vec<(String, u64)>,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// The stage line.
    pub span: Span,
}

/// One residual block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Module path (`layer2.0`).
    pub path: String,
    /// The block's stride.
    pub stride: u64,
    /// The residual branch's convolutions; each is followed by batch-norm, and all but the last by
    /// ReLU.
    pub convs: Vec<Conv>,
    /// The shortcut rule.
    pub shortcut: Shortcut,
    /// The `shortcut` line, if the template has one.
    pub shortcut_span: Option<Span>,
    /// The template's definition.
    pub template_span: Span,
}
