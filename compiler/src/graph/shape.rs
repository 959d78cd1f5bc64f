//! Shape inference: the output shape of each operation from its inputs' shapes.
//!
//! [`infer`] is called by [`crate::graph::lower`] for every node as it is added, so a node's
//! shape is known the moment it exists (the automatic shortcut needs the block's input channels).

use super::op::Op;
use serde::Serialize;
use std::fmt;

/// A feature map's shape, per batch element: channels × height × width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Shape {
    /// Channels.
    pub c: u64,
    /// Height.
    pub h: u64,
    /// Width.
    pub w: u64,
}

impl Shape {
    /// A shape.
    pub const fn new(c: u64, h: u64, w: u64) -> Shape {
        Shape { c, h, w }
    }

    /// Number of elements, or `None` on overflow.
    pub fn numel(self) -> Option<u64> {
        self.c.checked_mul(self.h)?.checked_mul(self.w)
    }

    /// As `[c, h, w]`.
    pub fn to_array(self) -> [u64; 3] {
        [self.c, self.h, self.w]
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.c, self.h, self.w)
    }
}

/// Why an operation cannot take its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// A grouped convolution whose input or output channels do not divide by the groups.
    Groups {
        /// Groups.
        groups: u64,
        /// Input channels.
        input: u64,
        /// Output channels.
        output: u64,
    },
    /// A window larger than its (padded) input: the map shrinks to nothing.
    Vanishes {
        /// Input shape.
        input: Shape,
        /// Kernel (h, w).
        kernel: (u64, u64),
        /// Padding (h, w).
        pad: (u64, u64),
    },
    /// Inputs of an addition or concatenation that do not agree.
    Mismatch {
        /// Their shapes.
        shapes: Vec<Shape>,
    },
    /// A pooling window padded by more than half its size, which PyTorch refuses.
    PoolPadding {
        /// Kernel (h, w).
        kernel: (u64, u64),
        /// Padding (h, w).
        pad: (u64, u64),
    },
    /// A slice that does not divide the channels.
    Slice {
        /// Parts.
        parts: u64,
        /// Input channels.
        input: u64,
    },
    /// A figure that overflows 64 bits.
    Overflow,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Groups {
                groups,
                input,
                output,
            } => {
                let bad = if input % groups != 0 { input } else { output };
                write!(
                    f,
                    "a convolution with {groups} groups needs channels divisible by {groups}, \
                     but has {input} in and {output} out ({bad} is not divisible by {groups})"
                )
            }
            ShapeError::Vanishes { input, kernel, pad } => write!(
                f,
                "the map shrinks to nothing: a {}x{} window with padding {} does not fit a {}x{} map",
                kernel.0, kernel.1, pad.0, input.h, input.w
            ),
            ShapeError::Mismatch { shapes } => {
                let s: Vec<String> = shapes.iter().map(Shape::to_string).collect();
                write!(f, "shapes do not agree: {}", s.join(" vs "))
            }
            ShapeError::PoolPadding { kernel, pad } => write!(
                f,
                "a {}x{} pooling window takes at most {} padding (half the window, as PyTorch requires), not {}",
                kernel.0,
                kernel.1,
                kernel.0.min(kernel.1) / 2,
                pad.0.max(pad.1)
            ),
            ShapeError::Slice { parts, input } => {
                write!(f, "cannot split {input} channels into {parts} equal paths")
            }
            ShapeError::Overflow => f.write_str("a size overflows 64 bits"),
        }
    }
}

fn spatial(
    input: Shape,
    c: u64,
    kernel: (u64, u64),
    stride: u64,
    pad: (u64, u64),
) -> Result<Shape, ShapeError> {
    let window = |n: u64, k: u64, pad: u64| -> Result<u64, ShapeError> {
        let padded = pad
            .checked_mul(2)
            .and_then(|p| n.checked_add(p))
            .ok_or(ShapeError::Overflow)?;
        if padded < k {
            return Err(ShapeError::Vanishes {
                input,
                kernel,
                pad: (pad, pad),
            });
        }
        Ok((padded - k) / stride + 1)
    };
    let h = window(input.h, kernel.0, pad.0)?;
    let w = window(input.w, kernel.1, pad.1)?;
    Ok(Shape::new(c, h, w))
}

/// The output shape of `op` applied to inputs of shapes `inputs`.
pub fn infer(op: &Op, inputs: &[Shape]) -> Result<Shape, ShapeError> {
    let first = inputs.first().copied().unwrap_or_default();
    let out = match op {
        Op::Input { shape } => *shape,
        Op::Conv {
            out,
            kernel,
            stride,
            pad,
            groups,
            ..
        } => {
            if first.c % groups != 0 || out % groups != 0 {
                return Err(ShapeError::Groups {
                    groups: *groups,
                    input: first.c,
                    output: *out,
                });
            }
            spatial(first, *out, *kernel, *stride, *pad)?
        }
        Op::MaxPool {
            kernel,
            stride,
            pad,
        } => {
            if pad.0 > kernel.0 / 2 || pad.1 > kernel.1 / 2 {
                return Err(ShapeError::PoolPadding {
                    kernel: *kernel,
                    pad: *pad,
                });
            }
            spatial(first, first.c, *kernel, *stride, *pad)?
        }
        Op::BatchNorm | Op::Relu => first,
        Op::GlobalAvgPool => Shape::new(first.c, 1, 1),
        Op::Linear { out, .. } => Shape::new(*out, 1, 1),
        Op::Add => {
            if inputs.iter().any(|s| *s != first) {
                return Err(ShapeError::Mismatch {
                    shapes: inputs.to_vec(),
                });
            }
            first
        }
        Op::Concat => {
            if inputs.iter().any(|s| (s.h, s.w) != (first.h, first.w)) {
                return Err(ShapeError::Mismatch {
                    shapes: inputs.to_vec(),
                });
            }
            let c = inputs
                .iter()
                .try_fold(0u64, |acc, s| acc.checked_add(s.c))
                .ok_or(ShapeError::Overflow)?;
            Shape::new(c, first.h, first.w)
        }
        Op::Slice { parts, .. } => {
            if first.c % parts != 0 {
                return Err(ShapeError::Slice {
                    parts: *parts,
                    input: first.c,
                });
            }
            Shape::new(first.c / parts, first.h, first.w)
        }
    };
    out.numel().ok_or(ShapeError::Overflow)?;
    Ok(out)
}
