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
//!
//! On the CPU (when libtorch has oneDNN, as every x86-64 wheel does) the plan goes further, the
//! way `torch.compile`'s freezing pass does: each convolution is one oneDNN primitive with its
//! ReLU fused in, the residual add (and the ReLU after it) fused into the block's last
//! convolution as a post-op written in place into the shortcut's buffer, and every weight
//! pre-packed once into oneDNN's blocked layout for the input shape it meets (on the first
//! [`Inference::forward`] at a new input shape, or ahead of time with [`Inference::prepare`]).
//! tch does not bind these operators; `ffi` calls them through libtorch's dispatcher.
//!
//! In bf16 on a CPU with AVX512-BF16, the grouped 3×3 convolutions with 4, 8, 16 or 32
//! channels per group (the four stages of a 32×4d ResNeXt) can also run on this crate's own
//! kernel (`csrc/grouped.cpp`), because oneDNN reaches only a sixth to a half of the machine's
//! peak with 4 or 8 (each is timed against oneDNN and the faster kept); on a CPU with AMX the
//! kernel runs on AMX tiles for 4, 8 or 16 channels per group.
//! In fp32 on a CPU with AVX-512 the same kernel (one template for both types) takes 4, 8, 16
//! or 32 channels per group (oneDNN's fp32 kernel reaches 15% of the fp32 peak at 4).
//! The dense 3×3 convolutions with stride 1 (ResNet's), bf16 or fp32, can run on the crate's
//! Winograd F(2×2, 3×3) kernel (`csrc/winograd.cpp`), which does 16 multiply-adds per input
//! channel for each 2×2 block of outputs where a direct convolution does 36: where oneDNN
//! already reaches most of the machine's peak, fewer products is what is left to gain.
//! Likewise a bf16 1×1 convolution with stride 1 can run as oneDNN's matmul over the
//! channels-last rows ([N·H·W, C]), which is faster for some shapes. Which one runs is decided
//! per convolution and input shape, when the weights are packed, by timing both (the better of
//! three runs each, the two alternating so that a slow spell of the machine costs both alike;
//! cuDNN's benchmark mode times its candidates the same way). The direct ones compute the same sums in
//! fp32 and round the output to bf16 once; the Winograd kernel in bf16 also rounds its
//! transformed input once (a ResNet-50's error moves by a few percent of itself,
//! `runtime/tests/parity.rs`), and in fp32 stays within 1e-5 of eval mode like the rest.

pub(crate) mod ffi;

use crate::{Network, Step, computed};
use ffi::Geometry;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use tch::{Device, Kind, TchError, Tensor};

/// Batch-norm epsilon (torchvision's and tch's default).
const EPS: f64 = 1e-5;

/// How to build the inference plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// `Kind::Float` or `Kind::BFloat16` (also `Kind::Half` on CUDA).
    pub kind: Kind,
    /// Whether to keep 4-D tensors in channels-last memory order. (oneDNN's fused convolutions
    /// on the CPU produce channels-last outputs either way.)
    pub channels_last: bool,
    /// Whether to use oneDNN's fused convolutions with pre-packed weights on the CPU (ignored on
    /// CUDA and where libtorch lacks oneDNN), with this crate's kernels for max-pooling and for
    /// the input's conversion to channels-last (libtorch's results bit for bit, NaN payloads
    /// aside; several times faster). Off, every step is a plain libtorch operator.
    pub onednn: bool,
    /// When the grouped 3×3s with 4, 8, 16 or 32 channels per group run on
    /// this crate's kernel instead of oneDNN (with `onednn`, on a CPU with AVX512-BF16 or AMX
    /// for bf16, AVX-512 for fp32; `Measure`: the faster, timed once per convolution and input
    /// shape).
    pub grouped_kernel: Choice,
    /// When a convolution followed by ReLU (and a residual add) runs on CUDA as cuDNN's fused
    /// operator instead of the convolution and then the elementwise operators (`Measure`: the
    /// faster, timed once per convolution and input shape).
    pub cudnn_fused: Choice,
    /// When a bf16 1×1 convolution with stride 1 runs on the CPU as oneDNN's matmul over the
    /// channels-last activations ([N·H·W, C] rows) instead of oneDNN's convolution (with
    /// `onednn`; `Measure`: the faster, timed once per convolution and input shape). The matmul
    /// is faster for some shapes, the small late-stage maps above all.
    pub matmul: Choice,
    /// When a dense 3×3 convolution with stride 1 and padding 1 (C_in a multiple of 16, C_out
    /// of 32), bf16 or fp32, runs on this crate's Winograd F(2×2, 3×3) kernel
    /// (`csrc/winograd.cpp`: 16 multiply-adds per input channel for each 2×2 block of outputs
    /// instead of 36) instead of oneDNN's direct convolution (with `onednn` and `channels_last`,
    /// on a CPU with AVX512-BF16 for bf16, AVX-512 for fp32; `Measure`: the faster, timed once
    /// per convolution and input shape, except where the transformed weight has more than
    /// twice the bytes of the activations, which stays on oneDNN untimed).
    pub winograd: Choice,
    /// When a bf16 convolution with few input channels and a wide kernel (a kernel row's
    /// width × channels at most 32 values: ResNet's 7×7 stem on RGB) runs on this crate's AMX
    /// kernel (`csrc/stem.cpp`) instead of oneDNN, with the max-pool that alone consumes its
    /// output fused in (with `onednn` and `channels_last`, on a CPU with AMX; `Measure`: the
    /// faster, timed once per input shape against oneDNN's convolution and this crate's
    /// max-pool).
    pub stem_kernel: Choice,
    /// When a bf16 dense 3×3 convolution with stride 1 and padding 1 (C_in and C_out multiples
    /// of 32) runs on this crate's AMX kernel (`csrc/direct.cpp`: an implicit matrix product
    /// over the zero-padded input, faster than oneDNN's on the late stages' small maps) instead
    /// of oneDNN (with `onednn` and `channels_last`, on a CPU with AMX, where it replaces the
    /// Winograd kernel as the alternative unless `winograd` is `Always`; `Measure`: the faster,
    /// timed once per convolution and input shape).
    pub direct_kernel: Choice,
    /// When a bf16 1×1 convolution with stride 1 (channels multiples of 32) runs on this crate's
    /// kernel (`csrc/pointwise.cpp`: AMX tiles, else AVX512-BF16) instead of oneDNN's convolution or matmul, and when a
    /// bottleneck block's last 1×1 and its projection shortcut (a 1×1 with stride 1 or 2) run
    /// on it as one matrix product over both inputs (the shortcut's output is never written and
    /// read back; the two are summed in fp32 before one rounding to bf16) instead of two oneDNN
    /// convolutions (with `onednn` and `channels_last`, on a CPU with AMX or AVX512-BF16; `Measure`: the
    /// faster, the two timed alternating once per convolution and input shape).
    pub pointwise_kernel: Choice,
    /// Whether, on the CPU, a pass takes all its memory from a cache of the buffers earlier
    /// passes freed (`csrc/pool.h`: by exact size, the latest freed first, at most 2 GiB kept),
    /// libtorch's and oneDNN's allocations included (the cache is installed as c10's CPU
    /// allocator on first use and caches only for a thread inside a pass; everything else passes
    /// through to the allocator it replaced), instead of from the C library each time. This
    /// crate's own kernels write into the cache's buffers whether this is on or not.
    /// With glibc's defaults a freed activation of tens of MB goes back to the system and
    /// returns as page faults on the next pass, 0.1–0.2 of the pass at batch 32 on a 2-core
    /// machine (BENCHMARKS.md); the cache removes them without [`keep_freed_memory`]'s
    /// process-wide setting. What it keeps: [`cached_bytes`]; given back by
    /// [`release_cached_memory`].
    pub buffer_cache: bool,
}

/// Which of two implementations runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// The faster, timed once per convolution and input shape.
    #[default]
    Measure,
    /// The alternative wherever it applies.
    Always,
    /// Never the alternative.
    Never,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            kind: Kind::Float,
            channels_last: true,
            onednn: true,
            grouped_kernel: Choice::Measure,
            cudnn_fused: Choice::Measure,
            matmul: Choice::Measure,
            winograd: Choice::Measure,
            stem_kernel: Choice::Measure,
            direct_kernel: Choice::Measure,
            pointwise_kernel: Choice::Measure,
            buffer_cache: true,
        }
    }
}

/// Bytes of freed buffers the CPU buffer cache holds for the next pass
/// ([`Options::buffer_cache`]).
pub fn cached_bytes() -> u64 {
    u64::try_from(ffi::pool_cached_bytes()).unwrap_or(0)
}

/// Gives the CPU buffer cache's memory back to the system ([`Options::buffer_cache`]); the next
/// pass allocates afresh. Buffers still in use are untouched.
pub fn release_cached_memory() {
    ffi::pool_clear();
}

/// Makes the C library keep freed memory in the process, for the rest of its life: glibc then
/// takes every allocation from its heap instead of mapping fresh pages, and never gives the heap
/// back to the system. libtorch frees a pass's large activations (tens of MB at batch 32) when
/// the pass ends; by default glibc returns them to the system and the next pass faults in new,
/// zeroed pages, which costs the inference mode up to a fifth of its time at batch 32 on a
/// 2-core machine (BENCHMARKS.md). This is what PyTorch's CPU performance guide gets from jemalloc
/// or tcmalloc; the price is that the process's resident memory stays at its peak. Process-wide:
/// call it once, early, in a program that runs inference repeatedly. Returns whether it took
/// effect (false where the C library is not glibc).
pub fn keep_freed_memory() -> bool {
    ffi::keep_freed_memory()
}

/// The FLOP/s (one multiply-add = 2 FLOPs) that `threads` threads reach together running the
/// CPU's widest multiply-add in a loop ([`peak`] also says which one). This is the roofline the
/// inference mode's achieved FLOP/s is compared with. `None` where the CPU lacks those
/// instructions (or is not x86-64). Takes about `seconds`.
pub fn peak_flops(kind: Kind, threads: usize, seconds: f64) -> Option<f64> {
    peak(kind, threads, seconds).map(|p| p.flops)
}

/// A measured arithmetic peak ([`peak`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// FLOP/s of all the threads together (one multiply-add = 2 FLOPs).
    pub flops: f64,
    /// The instruction that reached it, for example `"AMX tdpbf16ps"`.
    pub unit: &'static str,
}

/// The CPU's peak for `kind` on `threads` threads, measured over about `seconds`: AVX-512 FMAs
/// in fp32; in bf16, AMX's tile products (`tdpbf16ps`) where the CPU has AMX-BF16 and Linux lends
/// the process its tile state, else AVX512-BF16 dot products (`vdpbf16ps`). oneDNN uses the same
/// units for its convolutions. `None` where the CPU has none of them (or is not x86-64).
pub fn peak(kind: Kind, threads: usize, seconds: f64) -> Option<Peak> {
    let units: &[(ffi::Unit, &str)] = if kind == Kind::BFloat16 {
        &[
            (ffi::Unit::Amx, "AMX tdpbf16ps"),
            (ffi::Unit::Avx512Bf16, "AVX512-BF16 vdpbf16ps"),
        ]
    } else {
        &[(ffi::Unit::Fma, "AVX-512 FMA")]
    };
    units.iter().find_map(|&(unit, name)| {
        ffi::peak_flops(unit, threads, seconds).map(|flops| Peak { flops, unit: name })
    })
}

#[derive(Debug)]
enum FStep {
    Input,
    /// `relu?(conv(x) + b)`; with `add`, `relu?(conv(x) + b + other)` where `other` is the
    /// node's second input (a residual add fused into the convolution).
    Conv {
        w: Tensor,
        b: Option<Tensor>,
        g: Geometry,
        relu: bool,
        add: bool,
        /// This crate's own kernel for it, where one applies.
        kernel: Option<Kernel>,
        /// The max-pool that alone consumes its output, fused in (with the stem kernel only).
        pool: Option<crate::MaxPool>,
    },
    Affine {
        scale: Tensor,
        shift: Tensor,
        relu: bool,
    },
    Relu,
    MaxPool(crate::MaxPool),
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
    /// `relu?(conv_main(x) + conv_short(x2))` (biases included): a bottleneck block's last 1×1
    /// convolution (stride 1, on the node's first input) and its projection shortcut (a 1×1 on
    /// the block's input, the second), built where the pointwise kernel takes them: it runs the
    /// two as one product (`packed`, over both inputs' channels, with the summed `bias`), or as
    /// two oneDNN convolutions where that measured faster.
    Shortcut {
        main: Part,
        short: Part,
        relu: bool,
        packed: Tensor,
        bias: Tensor,
    },
}

/// A convolution's folded weight (prepared for the plan), bias and geometry.
#[derive(Debug)]
struct Part {
    w: Tensor,
    b: Option<Tensor>,
    g: Geometry,
}

/// A convolution's own kernel in this crate, with its packed weights and fp32 bias: the grouped
/// 3×3 kernel for narrow groups (`csrc/grouped.cpp`, bf16 or fp32), the Winograd kernel for
/// dense 3×3s (`csrc/winograd.cpp`, bf16 or fp32), the AMX direct 3×3 kernel
/// (`csrc/direct.cpp`, bf16) or the stem kernel (`csrc/stem.cpp`, bf16, AMX or AVX512-BF16).
#[derive(Debug)]
enum Kernel {
    Grouped {
        packed: Tensor,
        bias: Tensor,
        cpg: i64,
    },
    Winograd {
        packed: Tensor,
        bias: Tensor,
    },
    Direct {
        packed: Tensor,
        bias: Tensor,
    },
    Stem {
        packed: Tensor,
        bias: Tensor,
        /// The input channels the weight was packed for.
        cin: i64,
        /// The kernel's height and width.
        size: [i64; 2],
    },
    /// This crate's bf16 1×1 kernel (`csrc/pointwise.cpp`, AMX or AVX512-BF16) on one input, with the residual add fused in
    /// where the convolution ends a block.
    Pointwise {
        packed: Tensor,
        bias: Tensor,
    },
}

impl Kernel {
    /// What the options say about running it.
    fn choice(&self, options: &Options) -> Choice {
        match self {
            Kernel::Grouped { .. } => options.grouped_kernel,
            Kernel::Winograd { .. } => options.winograd,
            Kernel::Stem { .. } => options.stem_kernel,
            Kernel::Direct { .. } => options.direct_kernel,
            Kernel::Pointwise { .. } => options.pointwise_kernel,
        }
    }

    /// Whether the Winograd kernel's transformed weight (16 positions per input and output
    /// channel, 16/9 of the direct weight) is more than twice the bytes of the input and
    /// output activations at input `x` (a fused residual, also read, is not counted): late
    /// stages at small batches, which then stream the weight from memory once a pass. Timed alone, over and over, such a convolution finds its
    /// weight in the cache and the fewer products look faster than they are inside a pass
    /// (resnet50 fp32 at batch 1 on a 2-core Xeon: 31.9 ms with the kernel where it timed
    /// faster, 31.0 ms without it), so `Measure` leaves these to oneDNN.
    fn weight_bound(&self, x: &Tensor) -> bool {
        match self {
            Kernel::Winograd { packed, .. } => {
                // packed: 16 · C_in · C_out elements; x: pixels · C_in (the same element type).
                let cin = x.size()[1].max(1);
                let (weight, pixels) = (packed.numel() as i64, x.numel() as i64 / cin);
                weight > 2 * pixels * (cin + weight / 16 / cin)
            }
            _ => false,
        }
    }

    /// `relu?(conv(x) + b)`, then `pool` over it (the stem kernel only), a new channels-last
    /// tensor.
    fn run(
        &self,
        x: &Tensor,
        g: &Geometry,
        relu: bool,
        pool: Option<&crate::MaxPool>,
    ) -> Result<Tensor, TchError> {
        #[cfg(target_arch = "x86_64")]
        match (self, pool) {
            (Kernel::Grouped { packed, bias, cpg }, None) => {
                ffi::grouped_conv(x, packed, bias, g.stride[0], *cpg, relu)
            }
            (Kernel::Winograd { packed, bias }, None) => ffi::winograd_conv(x, packed, bias, relu),
            (Kernel::Direct { packed, bias }, None) => {
                ffi::direct_conv(x, packed, bias, g.stride[0], relu)
            }
            (Kernel::Pointwise { packed, bias }, None) => {
                ffi::pointwise_conv(x, None, packed, bias, None, relu)
            }
            (
                Kernel::Stem {
                    packed,
                    bias,
                    cin,
                    size,
                },
                pool,
            ) => {
                let pool = pool.map(|p| ffi::PoolGeometry {
                    kernel: p.kernel,
                    stride: [p.stride, p.stride],
                    pad: p.pad,
                });
                ffi::stem_conv(x, packed, bias, *cin, *size, g, pool.as_ref(), relu)
            }
            (_, Some(_)) => Err(TchError::Torch(
                "inference plan: only the stem kernel fuses a max-pool".into(),
            )),
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, g, relu, pool);
            Err(TchError::Torch(
                "this crate's kernels are x86-64 only".into(),
            ))
        }
    }

    /// `other ← relu?(conv(x) + b + other)`, in place (the Winograd and pointwise kernels only:
    /// a grouped 3×3 never ends a block).
    fn run_add_(&self, other: &mut Tensor, x: &Tensor, relu: bool) -> Result<(), TchError> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Winograd { packed, bias } => {
                ffi::winograd_conv_add_(other, x, packed, bias, relu)
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Pointwise { packed, bias } => {
                ffi::pointwise_conv(x, None, packed, bias, Some(other), relu).map(|_| ())
            }
            _ => {
                let _ = (other, x, relu);
                Err(TchError::Torch(
                    "inference plan: this kernel has no fused residual add".into(),
                ))
            }
        }
    }
}

/// How a convolution runs at one input shape: oneDNN with its weight packed for that shape, this
/// crate's kernel (grouped or Winograd), or oneDNN's matmul (each alternative chosen when it
/// measured faster at that shape, or forced by the options).
#[derive(Debug)]
enum Packed {
    OneDnn(Tensor),
    /// A 1×1 convolution as oneDNN's matmul, its [C_out, C_in] weight packed for the shape.
    Matmul(Tensor),
    /// The step's [`Kernel`].
    Kernel,
    /// A [`FStep::Shortcut`] as two oneDNN convolutions, the main one's weight packed for the
    /// shape first (the shortcut's output then takes the main one's result as a fused add).
    Pair(Tensor, Tensor),
    /// CUDA: cuDNN's fused convolution + bias (+ residual) + ReLU.
    Cudnn,
    /// CUDA: the convolution, then the add and the ReLU as their own operators.
    Plain,
}

/// A convolution of the plan without oneDNN: libtorch's, or on CUDA cuDNN's fused operator.
struct Conv<'a> {
    w: &'a Tensor,
    b: Option<&'a Tensor>,
    g: &'a Geometry,
    relu: bool,
}

impl Conv<'_> {
    /// `relu?(conv(x) + b + other?)` as libtorch's convolution and in-place add and ReLU.
    fn plain(&self, x: &Tensor, other: Option<&Tensor>) -> Result<Tensor, TchError> {
        let g = self.g;
        let mut y = x.f_conv2d(self.w, self.b, g.stride, g.padding, g.dilation, g.groups)?;
        if let Some(other) = other {
            y = y.f_add_(other)?;
        }
        if self.relu {
            let _ = y.f_relu_()?;
        }
        Ok(y)
    }

    /// The same as one cuDNN call (`cudnn_convolution_relu`, `cudnn_convolution_add_relu`: the
    /// operators PyTorch's frozen TorchScript graphs fuse to on CUDA); ReLU only.
    fn cudnn(&self, x: &Tensor, other: Option<&Tensor>) -> Result<Tensor, TchError> {
        let g = self.g;
        match other {
            Some(z) => x.f_cudnn_convolution_add_relu(
                self.w, z, 1.0, self.b, g.stride, g.padding, g.dilation, g.groups,
            ),
            None => x.f_cudnn_convolution_relu(
                self.w, self.b, g.stride, g.padding, g.dilation, g.groups,
            ),
        }
    }

    /// Whether this convolution runs fused at `x`'s shape: as `choice` says, or (`Measure`) when
    /// the fused operator is the faster of the two here (the better of three timed runs each,
    /// after one untimed). A fused operator that fails (no cuDNN engine for this case) leaves
    /// the plain one.
    fn choose_cudnn(
        &self,
        x: &Tensor,
        other: Option<&Tensor>,
        choice: Choice,
    ) -> Result<Packed, TchError> {
        if choice == Choice::Never || self.cudnn(x, other).is_err() {
            return Ok(Packed::Plain);
        }
        if choice == Choice::Always {
            return Ok(Packed::Cudnn);
        }
        let Device::Cuda(index) = x.device() else {
            return Ok(Packed::Plain);
        };
        let best = |f: &dyn Fn() -> Result<Tensor, TchError>| -> Result<f64, TchError> {
            let _ = f()?;
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                tch::Cuda::synchronize(index as i64);
                let t = std::time::Instant::now();
                let _ = f()?;
                tch::Cuda::synchronize(index as i64);
                best = best.min(t.elapsed().as_secs_f64());
            }
            Ok(best)
        };
        let fused = best(&|| self.cudnn(x, other))?;
        let plain = best(&|| self.plain(x, other))?;
        Ok(if fused < plain {
            Packed::Cudnn
        } else {
            Packed::Plain
        })
    }
}

#[derive(Debug)]
struct FNode {
    step: FStep,
    inputs: Vec<usize>,
    frees: Vec<usize>,
}

/// One step of a profiled pass ([`Inference::profile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StepTime {
    /// What the step computes and what ran it, e.g. `conv 3×3/2 128→128 + ReLU [oneDNN]`.
    pub step: String,
    /// Its output's shape (N, C, H, W for maps).
    pub shape: Vec<i64>,
    /// Its wall time, in seconds (on CUDA with the device synchronized after it).
    pub seconds: f64,
}

/// What ran a plan step that chose how to run ([`Inference::runners`]): a convolution, a block's
/// last 1×1 with its shortcut, or the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runner {
    /// oneDNN's convolution, its weight pre-packed.
    OneDnn,
    /// oneDNN's matmul (a 1×1 convolution over rows of pixels, or the classifier).
    OneDnnMatmul,
    /// Two oneDNN convolutions (a block's last 1×1 and its projection shortcut).
    OneDnnPair,
    /// cuDNN's fused convolution + bias (+ residual) + ReLU.
    CudnnFused,
    /// libtorch's own operators.
    Libtorch,
    /// This crate's grouped 3×3 kernel (`csrc/grouped.cpp`).
    Grouped,
    /// This crate's Winograd kernel (`csrc/winograd.cpp`).
    Winograd,
    /// This crate's direct 3×3 kernel (`csrc/direct.cpp`).
    Direct,
    /// This crate's stem kernel (`csrc/stem.cpp`).
    Stem,
    /// This crate's pointwise kernel (`csrc/pointwise.cpp`).
    Pointwise,
}

impl Runner {
    /// The name the profile prints, e.g. `"oneDNN matmul"`.
    pub fn label(self) -> &'static str {
        match self {
            Runner::OneDnn => "oneDNN",
            Runner::OneDnnMatmul => "oneDNN matmul",
            Runner::OneDnnPair => "oneDNN, two convolutions",
            Runner::CudnnFused => "cuDNN fused",
            Runner::Libtorch => "libtorch",
            Runner::Grouped => "grouped kernel",
            Runner::Winograd => "Winograd kernel",
            Runner::Direct => "direct 3×3 kernel",
            Runner::Stem => "stem kernel",
            Runner::Pointwise => "pointwise kernel",
        }
    }

    /// What ran a step, from the way it was packed and the step's own kernel, if any (a
    /// [`FStep::Shortcut`] packed as [`Packed::Kernel`] has none: it is the pointwise kernel's).
    fn of(packed: Option<&Packed>, kernel: Option<&Kernel>) -> Runner {
        match (packed, kernel) {
            (Some(Packed::OneDnn(_)), _) => Runner::OneDnn,
            (Some(Packed::Matmul(_)), _) => Runner::OneDnnMatmul,
            (Some(Packed::Pair(..)), _) => Runner::OneDnnPair,
            (Some(Packed::Cudnn), _) => Runner::CudnnFused,
            (Some(Packed::Kernel), Some(Kernel::Grouped { .. })) => Runner::Grouped,
            (Some(Packed::Kernel), Some(Kernel::Winograd { .. })) => Runner::Winograd,
            (Some(Packed::Kernel), Some(Kernel::Direct { .. })) => Runner::Direct,
            (Some(Packed::Kernel), Some(Kernel::Stem { .. })) => Runner::Stem,
            (Some(Packed::Kernel), Some(Kernel::Pointwise { .. }) | None) => Runner::Pointwise,
            (Some(Packed::Plain) | None, _) => Runner::Libtorch,
        }
    }
}

/// A folded, channels-last, optionally bf16 copy of a [`Network`] for inference.
#[derive(Debug)]
pub struct Inference {
    nodes: Vec<FNode>,
    options: Options,
    /// Whether the convolutions run as oneDNN primitives with pre-packed weights.
    onednn: bool,
    /// Per input shape, how each convolution node runs (one set of packed weights per shape met,
    /// kept for the plan's life: a server that sees many batch sizes holds one copy each).
    packed: RefCell<HashMap<Vec<i64>, Vec<Option<Packed>>>>,
}

/// NHWC storage with NCHW sizes: PyTorch's channels-last representation.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() == 4 {
        t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        t.shallow_clone()
    }
}

/// An [`Inference`] pass captured as a CUDA graph at one input shape ([`Inference::capture`]).
/// It borrows the plan, whose weights the graph's kernels read.
#[derive(Debug)]
pub struct Captured<'a> {
    _plan: std::marker::PhantomData<&'a Inference>,
    /// The graph reads its input from here and writes its logits there, at fixed addresses.
    input: Tensor,
    output: Tensor,
    /// Declared last, so dropped after the tensors allocated in its memory pool.
    graph: ffi::CudaGraph,
}

impl Captured<'_> {
    /// The input shape the graph was captured for.
    pub fn shape(&self) -> Vec<i64> {
        self.input.size()
    }

    /// Runs the captured pass on a float NCHW batch of [`Captured::shape`] (on any device: it is
    /// copied into the graph's input); returns float logits on the graph's device.
    ///
    /// # Errors
    /// Where `xs` has another shape, or libtorch fails.
    pub fn forward(&mut self, xs: &Tensor) -> Result<Tensor, TchError> {
        if xs.size() != self.input.size() {
            return Err(TchError::Shape(format!(
                "the CUDA graph was captured for inputs of shape {:?}, not {:?}",
                self.input.size(),
                xs.size()
            )));
        }
        tch::no_grad(|| {
            self.input.f_copy_(xs)?;
            self.graph.replay()?;
            // The next replay overwrites the graph's output: hand back a copy.
            let mut y = self.output.f_empty_like()?;
            y.f_copy_(&self.output)?;
            Ok(y)
        })
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
        let device = net
            .nodes
            .iter()
            .find_map(|node| match &node.step {
                Step::Conv(c, _) => Some(c.ws.device()),
                _ => None,
            })
            .unwrap_or(Device::Cpu);
        let onednn = options.onednn
            && device == Device::Cpu
            && ffi::onednn_available()
            && ffi::onednn_supports(options.kind);
        // The residual add (+ ReLU) joins the block's last convolution: a oneDNN post-op on the
        // CPU, cuDNN's fused `cudnn_convolution_add_relu` (where it measures faster) on CUDA.
        let fused = if onednn || device.is_cuda() {
            residual_fusions(net, &consumers)
        } else {
            HashMap::new()
        };
        // Adds whose other input is a projection shortcut that joins the block's last 1×1 on the
        // pointwise kernel: add → (main conv, shortcut conv).
        let shortcuts: HashMap<usize, (usize, usize)> = fused
            .iter()
            .filter_map(|(&add, &(c, other))| {
                shortcut_fusion(net, &consumers, &options, onednn, add, c, other)
                    .map(|pair| (add, pair))
            })
            .collect();
        // The fused convolutions and their batch-norms: built at their add, not in order.
        let deferred: HashSet<usize> = fused
            .values()
            .flat_map(|&(c, _)| [c, consumers[c][0]])
            .chain(
                shortcuts
                    .values()
                    .flat_map(|&(m, s)| [m, consumers[m][0], s, consumers[s][0]]),
            )
            .collect();
        let prep = |t: &Tensor| {
            let t = t.detach().to_kind(options.kind);
            if options.channels_last {
                channels_last(&t)
            } else {
                t.contiguous()
            }
        };
        let vec_kind = |t: &Tensor| t.detach().to_kind(options.kind).contiguous();
        // The ReLU that consumes node i alone, if any: folded into node i's plan step.
        let relu_after = |i: usize, covers: &mut Vec<usize>| match only(i).filter(|&k| is_relu(k)) {
            Some(k) => {
                covers.push(k);
                true
            }
            None => false,
        };
        // alias[i]: the plan node whose output is original node i's value.
        let mut alias = vec![usize::MAX; n];
        let mut nodes: Vec<FNode> = Vec::new();
        for (i, node) in net.nodes.iter().enumerate() {
            if alias[i] != usize::MAX || deferred.contains(&i) {
                continue; // folded into an earlier plan node, or into a later residual add
            }
            let mut inputs: Vec<usize> = node.inputs.iter().map(|&x| alias[x]).collect();
            let mut covers = vec![i];
            let step = match &node.step {
                Step::Input => FStep::Input,
                Step::Conv(c, spec) => {
                    let (w, b, bn) = fold_conv(net, c, only(i));
                    let mut relu = false;
                    if let Some(j) = bn {
                        covers.push(j);
                        relu = relu_after(j, &mut covers);
                    }
                    let kernel = onednn
                        .then(|| own_kernel(&options, spec, &w, b.as_ref(), false))
                        .flatten();
                    // The stem kernel also takes the max-pool that alone consumes its output.
                    let next = covers.last().and_then(|&l| only(l));
                    let pool = match (&kernel, next.map(|p| (p, &net.nodes[p].step))) {
                        (Some(Kernel::Stem { .. }), Some((p, Step::MaxPool(pool)))) => {
                            covers.push(p);
                            Some(*pool)
                        }
                        _ => None,
                    };
                    FStep::Conv {
                        w: prep(&w),
                        b: b.as_ref().map(vec_kind),
                        g: geometry(spec),
                        relu,
                        add: false,
                        kernel,
                        pool,
                    }
                }
                Step::Bn(bn) => {
                    let (scale, shift) = bn_affine(bn);
                    FStep::Affine {
                        scale: vec_kind(&scale).view([1, -1, 1, 1]),
                        shift: vec_kind(&shift).view([1, -1, 1, 1]),
                        relu: relu_after(i, &mut covers),
                    }
                }
                Step::Relu => FStep::Relu,
                Step::MaxPool(pool) => FStep::MaxPool(*pool),
                Step::AvgPool => FStep::AvgPool,
                Step::Linear(l) => FStep::Linear {
                    w: vec_kind(&l.ws),
                    b: l.bs.as_ref().map(vec_kind),
                },
                Step::Add if shortcuts.contains_key(&i) => {
                    let (m, s) = shortcuts[&i];
                    let part = |c: usize| {
                        let Step::Conv(conv, spec) = &net.nodes[c].step else {
                            unreachable!("shortcut_fusion picks convolutions")
                        };
                        let (w, b, bn) = fold_conv(net, conv, only(c));
                        (w, b, bn, geometry(spec))
                    };
                    let (wm, bm, bnm, gm) = part(m);
                    let (ws, bs, bns, gs) = part(s);
                    covers.extend([m, s].into_iter().chain(bnm).chain(bns));
                    inputs = vec![alias[net.nodes[m].inputs[0]], alias[net.nodes[s].inputs[0]]];
                    let bias = |b: &Option<Tensor>, w: &Tensor| match b {
                        Some(b) => b.shallow_clone(),
                        None => Tensor::zeros([w.size()[0]], (Kind::Float, w.device())),
                    };
                    let both = Tensor::cat(&[&wm, &ws], 1);
                    let packed = pointwise_pack(&both);
                    FStep::Shortcut {
                        packed,
                        bias: (bias(&bm, &wm) + bias(&bs, &ws)).contiguous(),
                        main: Part {
                            w: prep(&wm),
                            b: bm.as_ref().map(vec_kind),
                            g: gm,
                        },
                        short: Part {
                            w: prep(&ws),
                            b: bs.as_ref().map(vec_kind),
                            g: gs,
                        },
                        relu: relu_after(i, &mut covers),
                    }
                }
                Step::Add => match fused.get(&i) {
                    // conv → bn → add (→ relu): one convolution with the add as a post-op.
                    Some(&(c, other)) => {
                        let Step::Conv(conv, spec) = &net.nodes[c].step else {
                            unreachable!("residual_fusions picks convolutions")
                        };
                        let (w, b, bn) = fold_conv(net, conv, only(c));
                        covers.extend([c].into_iter().chain(bn));
                        inputs = vec![alias[net.nodes[c].inputs[0]], alias[other]];
                        let kernel = onednn
                            .then(|| own_kernel(&options, spec, &w, b.as_ref(), true))
                            .flatten();
                        FStep::Conv {
                            w: prep(&w),
                            b: b.as_ref().map(vec_kind),
                            g: geometry(spec),
                            relu: relu_after(i, &mut covers),
                            add: true,
                            kernel,
                            pool: None,
                        }
                    }
                    None => FStep::Add {
                        relu: relu_after(i, &mut covers),
                    },
                },
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
        // A slice is a view: its source lives (and is never written in place) as long as it does.
        // Backwards, so that a slice of a slice passes its last use on to the first source.
        for i in (0..nodes.len()).rev() {
            if let (FStep::Slice { .. }, [src]) = (&nodes[i].step, nodes[i].inputs.as_slice()) {
                if last_use[i] != usize::MAX {
                    last_use[*src] = last_use[*src].max(last_use[i]);
                }
            }
        }
        for (x, &at) in last_use.iter().enumerate() {
            if at != usize::MAX {
                nodes[at].frees.push(x);
            }
        }
        Inference {
            nodes,
            options,
            onednn,
            packed: RefCell::new(HashMap::new()),
        }
    }

    /// The options the plan was built with.
    pub fn options(&self) -> Options {
        self.options
    }

    /// Whether the convolutions run as oneDNN primitives with pre-packed weights (the CPU, with
    /// [`Options::onednn`] on and a libtorch built with oneDNN).
    pub fn uses_onednn(&self) -> bool {
        self.onednn
    }

    /// Pre-packs the weights for inputs of `shape` (N, C, H, W) by running the plan once on
    /// zeros, so that the first real [`Inference::forward`] at that shape pays nothing extra.
    pub fn prepare(&self, shape: &[i64], device: Device) -> Result<(), TchError> {
        let x = Tensor::f_zeros(shape, (Kind::Float, device))?;
        self.f_forward(&x).map(|_| ())
    }

    /// Runs the plan on a float NCHW batch; returns float logits.
    ///
    /// # Panics
    /// Where libtorch fails (an input of the wrong shape, say); [`Inference::f_forward`] returns
    /// the error instead.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.f_forward(xs)
            .unwrap_or_else(|e| panic!("inference plan: {e}"))
    }

    /// Runs the plan on a float NCHW batch; returns float logits or libtorch's error.
    pub fn f_forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        tch::no_grad(|| self.run(&self.convert(xs)?, None)?.f_to_kind(Kind::Float))
    }

    /// Runs the plan on a float NCHW batch as [`Inference::f_forward`] does, timing each step:
    /// the float logits, and one [`StepTime`] for the input's conversion and for each plan step
    /// (a step covers what the plan fused into it: a convolution with its batch-norm, ReLU and
    /// residual add, say), in order. The first pass at a new input shape also packs weights and
    /// times alternatives; profile a shape the plan has run before ([`Inference::prepare`]).
    ///
    /// # Errors
    /// Where libtorch fails.
    pub fn profile(&self, xs: &Tensor) -> Result<(Tensor, Vec<StepTime>), TchError> {
        tch::no_grad(|| {
            let mut steps = Vec::new();
            let t = std::time::Instant::now();
            let x = self.convert(xs)?;
            sync(&x);
            steps.push(StepTime {
                step: format!("input: {:?} to {:?}", xs.kind(), self.options.kind),
                shape: x.size(),
                seconds: t.elapsed().as_secs_f64(),
            });
            let y = self.run(&x, Some(&mut steps))?;
            Ok((y.f_to_kind(Kind::Float)?, steps))
        })
    }

    /// What ran each convolution step (a block's last 1×1 with its shortcut counts as one), in
    /// plan order, for inputs of `shape` (N, C, H, W); `None` before the plan has run at that
    /// shape ([`Inference::prepare`]). A kernel forced with [`Choice::Always`] that this CPU or
    /// these shapes do not allow shows up nowhere.
    pub fn runners(&self, shape: &[i64]) -> Option<Vec<Runner>> {
        let packed = self.packed.borrow();
        let packed = packed.get(shape)?;
        let runners = self
            .nodes
            .iter()
            .zip(packed)
            .filter_map(|(node, p)| {
                let p = p.as_ref()?;
                match &node.step {
                    FStep::Conv { kernel, .. } => Some(Runner::of(Some(p), kernel.as_ref())),
                    FStep::Shortcut { .. } => Some(Runner::of(Some(p), None)),
                    _ => None,
                }
            })
            .collect();
        Some(runners)
    }

    /// A float NCHW batch in the plan's number type and layout.
    fn convert(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        {
            let x = if self.onednn
                && self.options.channels_last
                && xs.dim() == 4
                && xs.device() == Device::Cpu
                && xs.kind() == Kind::Float
                && xs.is_contiguous()
                && matches!(self.options.kind, Kind::Float | Kind::BFloat16)
            {
                // One pass, several times faster than libtorch's strided copy.
                ffi::to_channels_last(xs, self.options.kind == Kind::BFloat16)?
            } else if self.options.channels_last && xs.dim() == 4 {
                // One pass: convert and transpose into NHWC storage.
                let [n, c, h, w] = xs.size()[..] else {
                    unreachable!("dim is 4")
                };
                let mut y = Tensor::empty([n, h, w, c], (self.options.kind, xs.device()));
                y.f_copy_(&xs.f_permute([0, 2, 3, 1])?)?;
                y.f_permute([0, 3, 1, 2])?
            } else {
                xs.f_to_kind(self.options.kind)?
            };
            Ok(x)
        }
    }

    /// Whether this build can capture CUDA graphs ([`Inference::capture`]): libtorch had CUDA and
    /// the CUDA runtime's headers were found when the crate was built.
    pub fn cuda_graphs_available() -> bool {
        ffi::cuda_graphs_available()
    }

    /// The pass on inputs of `shape` (N, C, H, W) on a CUDA `device`, captured as one CUDA graph
    /// (PyTorch's `at::cuda::CUDAGraph`, what `torch.cuda.graph` and torch.compile's
    /// "reduce-overhead" mode use): replaying it launches every kernel of the pass with one call,
    /// so small batches are no longer bound by kernel-launch time. Three warm-up passes run first
    /// on a side stream (cuDNN's autotuning, when on, picks its algorithms then), the fourth is
    /// captured, with its memory from the graph's private pool. The capture is thread-local
    /// (`cudaStreamCaptureModeThreadLocal`): other threads may use CUDA meanwhile. Should the
    /// capture itself fail, the half-made graph is leaked rather than freed, because libtorch's
    /// allocator still refers to it.
    ///
    /// # Errors
    /// Where `device` is not CUDA, this build has no CUDA graphs
    /// ([`Inference::cuda_graphs_available`]), or libtorch fails.
    pub fn capture(&self, shape: &[i64], device: Device) -> Result<Captured<'_>, TchError> {
        let Device::Cuda(index) = device else {
            return Err(TchError::Torch(format!(
                "CUDA graphs need a CUDA device, not {device:?}"
            )));
        };
        // In a build without CUDA graphs this is the stub's error, which says why.
        let side = ffi::SideStream::enter(index)?;
        let input = Tensor::f_zeros(shape, (Kind::Float, device))?;
        for _ in 0..3 {
            let _ = self.f_forward(&input)?;
        }
        let mut graph = ffi::CudaGraph::new()?;
        graph.begin()?;
        let output = self.f_forward(&input);
        // End the capture even when the pass failed, so the stream is usable again.
        if let Err(e) = graph.end() {
            // PyTorch's CUDAGraph throws before it detaches from the caching allocator, which
            // keeps a pointer to it: freeing it now would leave that pointer dangling.
            std::mem::forget(graph);
            return Err(e);
        }
        let output = output?;
        side.exit()?;
        Ok(Captured {
            _plan: std::marker::PhantomData,
            input,
            output,
            graph,
        })
    }

    /// The plan's steps on `xs` (already converted); with `profile`, each step's time.
    fn run(
        &self,
        xs: &Tensor,
        mut profile: Option<&mut Vec<StepTime>>,
    ) -> Result<Tensor, TchError> {
        let _cache =
            (self.options.buffer_cache && xs.device() == Device::Cpu).then(ffi::PoolScope::enter);
        let mut packed = self.packed.borrow_mut();
        let packed = packed
            .entry(xs.size())
            .or_insert_with(|| (0..self.nodes.len()).map(|_| None).collect());
        let mut values: Vec<Option<Tensor>> = (0..self.nodes.len()).map(|_| None).collect();
        let mut last = None;
        for (i, node) in self.nodes.iter().enumerate() {
            let started = profile.is_some().then(std::time::Instant::now);
            let arg = |k: usize| computed(&values, node.inputs[k]);
            let y = match &node.step {
                FStep::Input => xs.shallow_clone(),
                FStep::Conv {
                    w,
                    b,
                    g,
                    relu,
                    add,
                    kernel,
                    pool,
                } if self.onednn => {
                    let x = arg(0);
                    if packed[i].is_none() {
                        let conv = Choosing {
                            x,
                            w,
                            b: b.as_ref(),
                            g,
                            relu: *relu,
                            other: add.then(|| arg(1)),
                            pool: pool.as_ref(),
                        };
                        let k = kernel.as_ref();
                        packed[i] = Some(conv.choose(k, &self.options)?);
                    }
                    let choice = packed[i].as_ref().expect("chosen above");
                    let y = match choice {
                        Packed::Kernel => {
                            let k = kernel.as_ref().expect("chosen only where it applies");
                            if *add {
                                let mut other = self.take_or_copy(node, 1, &mut values)?;
                                let x = computed(&values, node.inputs[0]);
                                k.run_add_(&mut other, x, *relu)?;
                                other
                            } else {
                                k.run(x, g, *relu, pool.as_ref())?
                            }
                        }
                        Packed::Matmul(w) => {
                            let other = add.then(|| arg(1));
                            run_matmul(x, w, b.as_ref(), *relu, other)?
                        }
                        Packed::OneDnn(w) if *add => {
                            // Write into the shortcut's buffer when this is its last use.
                            let mut other = self.take_or_copy(node, 1, &mut values)?;
                            let x = computed(&values, node.inputs[0]);
                            ffi::conv_add_(&mut other, x, w, b.as_ref(), g, *relu)?;
                            other
                        }
                        Packed::OneDnn(w) => ffi::conv_pointwise(x, w, b.as_ref(), g, *relu)?,
                        Packed::Cudnn | Packed::Plain | Packed::Pair(..) => {
                            return Err(TchError::Torch(
                                "inference plan: a choice of another step".into(),
                            ));
                        }
                    };
                    // A fused max-pool the kernel did not run (oneDNN measured faster).
                    match pool {
                        Some(pool) if !matches!(choice, Packed::Kernel) => max_pool(&y, pool)?,
                        _ => y,
                    }
                }
                FStep::Conv {
                    w,
                    b,
                    g,
                    relu,
                    add,
                    kernel: _,
                    pool,
                } => {
                    let x = arg(0);
                    let other = add.then(|| arg(1));
                    let conv = Conv {
                        w,
                        b: b.as_ref(),
                        g,
                        relu: *relu,
                    };
                    // On CUDA a convolution followed by ReLU may run as cuDNN's fused operator.
                    let fusable = *relu && x.device().is_cuda();
                    if fusable && packed[i].is_none() {
                        packed[i] = Some(conv.choose_cudnn(x, other, self.options.cudnn_fused)?);
                    }
                    let y = match packed[i] {
                        Some(Packed::Cudnn) => conv.cudnn(x, other)?,
                        _ => conv.plain(x, other)?,
                    };
                    match pool {
                        Some(pool) => pool.f_apply(&y)?,
                        None => y,
                    }
                }
                FStep::Affine { scale, shift, relu } => {
                    let mut y = arg(0).f_mul(scale)?.f_add(shift)?;
                    if *relu {
                        let _ = y.f_relu_()?;
                    }
                    y
                }
                FStep::Relu => arg(0).f_relu()?,
                FStep::MaxPool(pool) if self.onednn => max_pool(arg(0), pool)?,
                FStep::MaxPool(pool) => pool.f_apply(arg(0))?,
                FStep::AvgPool if self.onednn && is_channels_last(arg(0)) => {
                    ffi::global_avg_pool_nhwc(arg(0))?
                }
                FStep::AvgPool => arg(0).f_adaptive_avg_pool2d([1, 1])?,
                FStep::Linear { w, b }
                    if self.onednn
                        && w.kind() == Kind::BFloat16
                        && ffi::onednn_linear_available() =>
                {
                    // oneDNN's matmul with the weight packed once per batch size (libtorch's
                    // `linear` reorders it on every call).
                    let x = arg(0).f_flatten(1, -1)?;
                    if packed[i].is_none() {
                        let rows = x.size()[0];
                        packed[i] = Some(Packed::Matmul(ffi::reorder_linear_weight(w, rows)?));
                    }
                    match packed[i].as_ref() {
                        Some(Packed::Matmul(pw)) => {
                            ffi::linear_pointwise(&x, pw, b.as_ref(), false)?
                        }
                        _ => x.f_linear(w, b.as_ref())?,
                    }
                }
                FStep::Linear { w, b } => arg(0).f_flatten(1, -1)?.f_linear(w, b.as_ref())?,
                FStep::Add { relu } => {
                    // The branch output dies here: add into it in place.
                    let mut acc = self.take_or_copy(node, 0, &mut values)?;
                    for k in 1..node.inputs.len() {
                        let _ = acc.f_add_(computed(&values, node.inputs[k]))?;
                    }
                    if *relu {
                        let _ = acc.f_relu_()?;
                    }
                    acc
                }
                FStep::Concat => {
                    let parts: Vec<&Tensor> = (0..node.inputs.len()).map(arg).collect();
                    Tensor::f_cat(&parts, 1)?
                }
                FStep::Slice { index, parts } => crate::slice_channels(arg(0), *index, *parts),
                FStep::Shortcut {
                    main,
                    short,
                    relu,
                    packed: kw,
                    bias,
                } => {
                    let (x, x2) = (arg(0), arg(1));
                    let stride = short.g.stride[0];
                    if packed[i].is_none() {
                        let choice = self.options.pointwise_kernel;
                        packed[i] = Some(choose_shortcut(
                            x, x2, main, short, *relu, kw, bias, choice,
                        )?);
                    }
                    match packed[i].as_ref().expect("chosen above") {
                        Packed::Pair(pm, ps) => shortcut_onednn(x, x2, main, short, *relu, pm, ps)?,
                        _ => pointwise_conv(x, x2, stride, kw, bias, *relu)?,
                    }
                }
            };
            if let (Some(steps), Some(started)) = (profile.as_deref_mut(), started) {
                sync(&y);
                steps.push(StepTime {
                    step: describe(&node.step, packed[i].as_ref()),
                    shape: y.size(),
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            for &f in &node.frees {
                values[f] = None;
            }
            last = Some(y.shallow_clone());
            values[i] = Some(y);
        }
        Ok(last.expect("a network has nodes"))
    }

    /// Input `k` of `node` as a tensor the node may write into: the value itself when this node
    /// is its last use and it owns its storage (a step's fresh output, not the caller's input or
    /// a slice's view), else a copy.
    fn take_or_copy(
        &self,
        node: &FNode,
        k: usize,
        values: &mut [Option<Tensor>],
    ) -> Result<Tensor, TchError> {
        let x = node.inputs[k];
        let owned = !matches!(self.nodes[x].step, FStep::Input | FStep::Slice { .. });
        let once = node.inputs.iter().filter(|&&y| y == x).count() == 1;
        if owned && once && node.frees.contains(&x) {
            Ok(values[x].take().expect("plan: input computed"))
        } else {
            let x = computed(values, x);
            let mut copy = x.f_empty_like()?;
            copy.f_copy_(x)?;
            Ok(copy)
        }
    }
}

/// Waits for the device that holds `t` (CUDA runs asynchronously), so a step's time is its own.
fn sync(t: &Tensor) {
    if let Device::Cuda(i) = t.device() {
        tch::Cuda::synchronize(i as i64);
    }
}

/// A plan step in words, with what ran it (`packed`, where the step made a choice).
fn describe(step: &FStep, packed: Option<&Packed>) -> String {
    let conv = |w: &Tensor, g: &Geometry| {
        let size = w.size();
        let (cout, cin) = (size[0], size[1] * g.groups);
        let stride = if g.stride[0] > 1 {
            format!("/{}", g.stride[0])
        } else {
            String::new()
        };
        let groups = if g.groups > 1 {
            format!(", {} groups", g.groups)
        } else {
            String::new()
        };
        format!("conv {}×{}{stride} {cin}→{cout}{groups}", size[2], size[3])
    };
    let relu = |on: bool| if on { " + ReLU" } else { "" };
    let ran = |kernel: Option<&Kernel>| Runner::of(packed, kernel).label();
    match step {
        FStep::Input => "input".into(),
        FStep::Conv {
            w,
            g,
            relu: r,
            add,
            kernel,
            pool,
            ..
        } => format!(
            "{}{}{}{} [{}]",
            conv(w, g),
            if *add { " + residual" } else { "" },
            relu(*r),
            match pool {
                Some(p) => format!(" + max-pool {}×{}/{}", p.kernel[0], p.kernel[1], p.stride),
                None => String::new(),
            },
            ran(kernel.as_ref())
        ),
        FStep::Shortcut {
            main,
            short,
            relu: r,
            ..
        } => format!(
            "{} + shortcut {}{} [{}]",
            conv(&main.w, &main.g),
            conv(&short.w, &short.g),
            relu(*r),
            ran(None)
        ),
        FStep::Affine { relu: r, .. } => format!("batch-norm{}", relu(*r)),
        FStep::Relu => "ReLU".into(),
        FStep::MaxPool(p) => format!("max-pool {}×{}/{}", p.kernel[0], p.kernel[1], p.stride),
        FStep::AvgPool => "global average pool".into(),
        FStep::Linear { w, .. } => {
            let size = w.size();
            let how = Runner::of(packed, None).label();
            format!("linear {}→{} [{how}]", size[1], size[0])
        }
        FStep::Add { relu: r } => format!("add{}", relu(*r)),
        FStep::Concat => "concat".into(),
        FStep::Slice { index, parts } => format!("slice {}/{parts}", index + 1),
    }
}

/// This crate's own kernel for a convolution, where one applies (`w` and `b` folded, fp32):
/// - the grouped kernel: bf16 or fp32 channels-last, 3×3, padding 1, stride 1 or 2, as many
///   input as output channels (a multiple of 16), 4, 8, 16 or 32 channels per group in bf16 on
///   a CPU with AVX512-BF16 (4, 8 or 16 on AMX tiles where it has AMX), the same four in fp32 on a
///   CPU with AVX-512; never with a fused residual add;
/// - the Winograd kernel: bf16 or fp32 channels-last, 3×3, padding 1, stride 1, one group,
///   C_in a multiple of 16 and C_out of 32, on a CPU with AVX512-BF16 (bf16) or AVX-512 (fp32),
///   unless [`Options::winograd`] is `Never`;
/// - the direct 3×3 kernel, before the Winograd kernel where both apply: bf16 channels-last,
///   3×3, padding 1, stride 1, one group, C_in and C_out multiples of 32, on a CPU with AMX,
///   unless [`Options::direct_kernel`] is `Never` or [`Options::winograd`] is `Always`; never
///   with a fused residual add;
/// - the stem kernel: bf16 channels-last, one group, C_out a multiple of 32, a kernel row of at
///   most 32 values (width × C_in, C_in padded to make it even; wider than 1, so a narrow 1×1
///   keeps oneDNN's matmul as its alternative), on a CPU with AMX or AVX512-BF16, unless
///   [`Options::stem_kernel`] is `Never`; never with a fused residual add;
/// - the pointwise kernel: bf16 channels-last, 1×1, stride 1, no padding, one group, C_in and
///   C_out multiples of 32, on a CPU with AMX or AVX512-BF16, unless
///   [`Options::pointwise_kernel`] is `Never`
///   (with or without a fused residual add; oneDNN's convolution or matmul, whichever is
///   faster, is its alternative).
fn own_kernel(
    options: &Options,
    spec: &crate::__private::ConvSpec,
    w: &Tensor,
    b: Option<&Tensor>,
    add: bool,
) -> Option<Kernel> {
    let bf16 = options.kind == Kind::BFloat16;
    let bias = || match b {
        Some(b) => b.to_kind(Kind::Float).contiguous(),
        None => Tensor::zeros([spec.cout], (Kind::Float, w.device())),
    };
    let stem = bf16
        && options.channels_last
        && options.stem_kernel != Choice::Never
        && !add
        && spec.groups == 1
        && spec.kernel[1] > 1
        && spec.cout % 32 == 0
        && ffi::stem_supported(spec.cin, spec.kernel[1]);
    #[cfg(target_arch = "x86_64")]
    if stem {
        let packed = ffi::stem_pack(w).ok()?;
        return Some(Kernel::Stem {
            packed,
            bias: bias(),
            cin: spec.cin,
            size: spec.kernel,
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = stem;
    let pointwise = bf16
        && options.channels_last
        && options.pointwise_kernel != Choice::Never
        && spec.kernel == [1, 1]
        && spec.stride == 1
        && spec.pad == [0, 0]
        && spec.groups == 1
        && spec.cin % 32 == 0
        && spec.cout % 32 == 0
        && ffi::pointwise_supported();
    #[cfg(target_arch = "x86_64")]
    if pointwise {
        let packed = ffi::pointwise_pack(w).ok()?;
        return Some(Kernel::Pointwise {
            packed,
            bias: bias(),
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = pointwise;
    let cl_3x3 = options.channels_last && spec.kernel == [3, 3] && spec.pad == [1, 1];
    if !cl_3x3 || !(bf16 || options.kind == Kind::Float) {
        return None;
    }
    let cpg = spec.cin / spec.groups.max(1);
    let grouped = !add
        && spec.groups > 1
        && spec.cin == spec.cout
        && spec.cin % 16 == 0
        && (spec.stride == 1 || spec.stride == 2)
        && if bf16 {
            ffi::grouped_supported(cpg)
        } else {
            ffi::grouped_f32_supported(cpg)
        };
    let direct = bf16
        && spec.groups == 1
        && (spec.stride == 1 || spec.stride == 2)
        && !add
        && options.direct_kernel != Choice::Never
        && options.winograd != Choice::Always
        && spec.cin % 32 == 0
        && spec.cout % 32 == 0
        && ffi::direct_supported();
    let winograd = options.winograd != Choice::Never
        && spec.groups == 1
        && spec.stride == 1
        && spec.cin % 16 == 0
        && spec.cout % 32 == 0
        && ffi::winograd_supported(bf16);
    #[cfg(target_arch = "x86_64")]
    {
        if grouped {
            let packed = if bf16 {
                ffi::grouped_pack(&w.to_kind(Kind::BFloat16), cpg)
            } else {
                ffi::grouped_pack_f32(w, cpg)
            }
            .ok()?;
            return Some(Kernel::Grouped {
                packed,
                bias: bias(),
                cpg,
            });
        }
        if direct {
            let packed = ffi::direct_pack(w).ok()?;
            return Some(Kernel::Direct {
                packed,
                bias: bias(),
            });
        }
        if winograd {
            let packed = ffi::winograd_pack(w, bf16).ok()?;
            return Some(Kernel::Winograd {
                packed,
                bias: bias(),
            });
        }
        None
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (grouped, winograd, direct, bias);
        None
    }
}

/// The main and shortcut convolutions of add node `add` (fused with conv `c`, its other input
/// `other`) that the pointwise kernel runs as one product, if it takes them: both inputs of the
/// add are 1×1 convolutions with one group and no padding, each followed by a batch-norm that
/// only the add reads, one of them with stride 1 (the main one, on the block's bottleneck), the
/// other with stride 1 or 2 (the shortcut, on the block's input); bf16, channels-last, channels
/// multiples of 32, a CPU with AMX or AVX512-BF16, unless [`Options::pointwise_kernel`] is
/// `Never`.
fn shortcut_fusion(
    net: &Network,
    consumers: &[Vec<usize>],
    options: &Options,
    onednn: bool,
    add: usize,
    c: usize,
    other: usize,
) -> Option<(usize, usize)> {
    if !onednn
        || options.kind != Kind::BFloat16
        || !options.channels_last
        || options.pointwise_kernel == Choice::Never
        || !ffi::pointwise_supported()
    {
        return None;
    }
    // `other` must be conv → batch-norm with no other consumer, like `c`.
    let Step::Bn(_) = &net.nodes[other].step else {
        return None;
    };
    let s = *net.nodes[other].inputs.first()?;
    if consumers[other].as_slice() != [add] || consumers[s].as_slice() != [other] {
        return None;
    }
    let spec = |k: usize| match &net.nodes[k].step {
        Step::Conv(_, spec) => Some(spec),
        _ => None,
    };
    let (a, b) = (spec(c)?, spec(s)?);
    let pointwise = |x: &crate::__private::ConvSpec| {
        x.kernel == [1, 1]
            && x.pad == [0, 0]
            && x.groups == 1
            && x.cin % 32 == 0
            && x.cout % 32 == 0
            && (x.stride == 1 || x.stride == 2)
    };
    if !pointwise(a) || !pointwise(b) || a.cout != b.cout {
        return None;
    }
    match (a.stride, b.stride) {
        (1, _) => Some((c, s)),
        (_, 1) => Some((s, c)),
        _ => None,
    }
}

/// The pointwise kernel's weight: OIHW `w` over both inputs' channels, packed.
fn pointwise_pack(w: &Tensor) -> Tensor {
    #[cfg(target_arch = "x86_64")]
    {
        // Only built where `shortcut_fusion` found the kernel supported, with 1×1 weights whose
        // channels are multiples of 32, so packing does not fail.
        ffi::pointwise_pack(w).expect("pointwise kernel: packing a checked 1×1 weight")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        w.shallow_clone()
    }
}

/// A [`FStep::Shortcut`] on the pointwise kernel.
fn pointwise_conv(
    x: &Tensor,
    x2: &Tensor,
    stride: i64,
    packed: &Tensor,
    bias: &Tensor,
    relu: bool,
) -> Result<Tensor, TchError> {
    #[cfg(target_arch = "x86_64")]
    {
        ffi::pointwise_conv(x, Some((x2, stride)), packed, bias, None, relu)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, x2, stride, packed, bias, relu);
        Err(TchError::Torch(
            "this crate's kernels are x86-64 only".into(),
        ))
    }
}

/// A [`FStep::Shortcut`] as two oneDNN convolutions: the shortcut's, then the main one with the
/// shortcut's output as its fused residual add, written into it.
fn shortcut_onednn(
    x: &Tensor,
    x2: &Tensor,
    main: &Part,
    short: &Part,
    relu: bool,
    pm: &Tensor,
    ps: &Tensor,
) -> Result<Tensor, TchError> {
    let mut y = ffi::conv_pointwise(x2, ps, short.b.as_ref(), &short.g, false)?;
    ffi::conv_add_(&mut y, x, pm, main.b.as_ref(), &main.g, relu)?;
    Ok(y)
}

/// How a [`FStep::Shortcut`] runs at this shape: the pointwise kernel (`Always`, or `Measure`
/// where it is the faster) or two oneDNN convolutions (where the kernel refuses the input, or is
/// the slower).
#[allow(clippy::too_many_arguments)]
fn choose_shortcut(
    x: &Tensor,
    x2: &Tensor,
    main: &Part,
    short: &Part,
    relu: bool,
    packed: &Tensor,
    bias: &Tensor,
    choice: Choice,
) -> Result<Packed, TchError> {
    let pm = ffi::reorder_conv_weight(&main.w, &main.g, &x.size())?;
    let ps = ffi::reorder_conv_weight(&short.w, &short.g, &x2.size())?;
    let stride = short.g.stride[0];
    let mut ours = || pointwise_conv(x, x2, stride, packed, bias, relu);
    let faster = match (choice, ours()) {
        (Choice::Never, _) | (_, Err(_)) => false,
        (Choice::Always, Ok(_)) => true,
        (Choice::Measure, Ok(_)) => {
            // The two differ by less than this machine's drift over a few runs: alternate them.
            let mut theirs = || shortcut_onednn(x, x2, main, short, relu, &pm, &ps);
            let (ours, theirs) = alternating(&mut ours, &mut theirs, 5)?;
            ours < theirs
        }
    };
    Ok(if faster {
        Packed::Kernel
    } else {
        Packed::Pair(pm, ps)
    })
}

/// `pool` over `x`: this crate's kernel for channels-last bf16 or fp32 (`csrc/layout.cpp`,
/// libtorch's result bit for bit), else libtorch's.
fn max_pool(x: &Tensor, pool: &crate::MaxPool) -> Result<Tensor, TchError> {
    if matches!(x.kind(), Kind::Float | Kind::BFloat16) && is_channels_last(x) {
        ffi::max_pool_nhwc(x, pool.kernel, [pool.stride, pool.stride], pool.pad)
    } else {
        pool.f_apply(x)
    }
}

/// Whether `x` is a dense 4-D tensor in channels-last order (NHWC storage).
fn is_channels_last(x: &Tensor) -> bool {
    let size = x.size();
    if size.len() != 4 {
        return false;
    }
    let [n, c, h, w] = [size[0], size[1], size[2], size[3]];
    let want = [h * w * c, 1, w * c, c];
    // A dimension of size 1 may have any stride.
    x.stride()
        .iter()
        .zip(want)
        .zip([n, c, h, w])
        .all(|((&got, want), len)| len == 1 || got == want)
}

/// One oneDNN convolution of the plan at its first input shape, and what it may run as.
struct Choosing<'a> {
    x: &'a Tensor,
    w: &'a Tensor,
    b: Option<&'a Tensor>,
    g: &'a Geometry,
    relu: bool,
    /// The residual added before the ReLU, where the add is fused in.
    other: Option<&'a Tensor>,
    /// The max-pool after it, where it is fused in (the stem kernel).
    pool: Option<&'a crate::MaxPool>,
}

impl Choosing<'_> {
    /// oneDNN's convolution with its weight packed for this shape, or an alternative where one
    /// applies and `options` asks for it (or it measures faster): this crate's kernel for a
    /// narrow grouped 3×3 or a dense 3×3 with stride 1, oneDNN's matmul or this crate's
    /// pointwise kernel for a bf16 1×1 with stride 1.
    fn choose(&self, kernel: Option<&Kernel>, options: &Options) -> Result<Packed, TchError> {
        let packed = ffi::reorder_conv_weight(self.w, self.g, &self.x.size())?;
        if let Some(k @ Kernel::Pointwise { .. }) = kernel {
            let best = if self.matmul_applies() {
                self.matmul_or(packed, options.matmul)?
            } else {
                Packed::OneDnn(packed)
            };
            return self.pointwise_or(best, k, k.choice(options));
        }
        if let Some(k) = kernel {
            return self.kernel_or(packed, k, k.choice(options));
        }
        if self.matmul_applies() {
            return self.matmul_or(packed, options.matmul);
        }
        Ok(Packed::OneDnn(packed))
    }

    /// oneDNN (`packed`) or this crate's kernel `k`, as `choice` says: `Always` where the kernel
    /// takes the input, `Measure` where it is also faster here and not weight-bound
    /// ([`Kernel::weight_bound`]).
    fn kernel_or(&self, packed: Tensor, k: &Kernel, choice: Choice) -> Result<Packed, TchError> {
        let (x, g, relu, pool) = (self.x, self.g, self.relu, self.pool);
        if choice == Choice::Never {
            return Ok(Packed::OneDnn(packed));
        }
        if choice == Choice::Measure && k.weight_bound(x) {
            return Ok(Packed::OneDnn(packed));
        }
        let mut ours = |scratch: Option<&mut Tensor>| match scratch {
            Some(other) => k.run_add_(other, x, relu).map(|()| Tensor::new()),
            None => k.run(x, g, relu, pool),
        };
        // A kernel that refuses this input (a layout it does not take) leaves it to oneDNN.
        let works = match self.other {
            Some(other) => {
                let mut scratch = other.f_empty_like()?;
                scratch.f_copy_(other)?;
                ours(Some(&mut scratch)).is_ok()
            }
            None => ours(None).is_ok(),
        };
        let faster = match (choice, works) {
            (_, false) => false,
            (Choice::Always, true) => true,
            (_, true) => {
                // The two are often within this machine's drift over a few runs: alternate them.
                let (ours, theirs) =
                    self.alternate(&mut ours, &mut |scratch| self.run_onednn(&packed, scratch))?;
                ours < theirs
            }
        };
        Ok(if faster {
            Packed::Kernel
        } else {
            Packed::OneDnn(packed)
        })
    }

    /// oneDNN's convolution or matmul (`best`, the faster of the two) or the pointwise kernel
    /// `k`, as `choice` says: `Always` where the kernel takes the input, `Measure` where it is
    /// also faster here, the two timed alternating (they are often within this machine's drift).
    fn pointwise_or(&self, best: Packed, k: &Kernel, choice: Choice) -> Result<Packed, TchError> {
        let (x, b, g, relu) = (self.x, self.b, self.g, self.relu);
        if choice == Choice::Never {
            return Ok(best);
        }
        // Copies of the residual for each to write into.
        let copy = |other: &Tensor| -> Result<Tensor, TchError> {
            let mut s = other.f_empty_like()?;
            s.f_copy_(other)?;
            Ok(s)
        };
        let mut scratch = self.other.map(copy).transpose()?;
        let mut scratch2 = self.other.map(copy).transpose()?;
        let mut ours = || match scratch.as_mut() {
            Some(other) => k.run_add_(other, x, relu).map(|()| Tensor::new()),
            None => k.run(x, g, relu, None),
        };
        let faster = match (choice, ours()) {
            (_, Err(_)) => false,
            (Choice::Always, Ok(_)) => true,
            (_, Ok(_)) => {
                let mut theirs = || match (&best, scratch2.as_mut()) {
                    (Packed::Matmul(w), _) => run_matmul(x, w, b, relu, self.other),
                    (Packed::OneDnn(w), Some(other)) => {
                        ffi::conv_add_(other, x, w, b, g, relu).map(|()| Tensor::new())
                    }
                    (Packed::OneDnn(w), None) => ffi::conv_pointwise(x, w, b, g, relu),
                    _ => Err(TchError::Torch(
                        "inference plan: a choice of another step".into(),
                    )),
                };
                let (ours, theirs) = alternating(&mut ours, &mut theirs, 5)?;
                ours < theirs
            }
        };
        Ok(if faster { Packed::Kernel } else { best })
    }

    /// The best times of `a` and `b` over three rounds, run alternating ([`alternating`]: after
    /// one untimed run each; nine rounds where the two are close), each on its own copy of the
    /// residual where the add is fused in.
    fn alternate(
        &self,
        a: &mut dyn FnMut(Option<&mut Tensor>) -> Result<Tensor, TchError>,
        b: &mut dyn FnMut(Option<&mut Tensor>) -> Result<Tensor, TchError>,
    ) -> Result<(f64, f64), TchError> {
        match self.other {
            Some(other) => {
                let (mut sa, mut sb) = (other.f_empty_like()?, other.f_empty_like()?);
                sa.f_copy_(other)?;
                sb.f_copy_(other)?;
                alternating(&mut || a(Some(&mut sa)), &mut || b(Some(&mut sb)), 3)
            }
            None => alternating(&mut || a(None), &mut || b(None), 3),
        }
    }

    /// oneDNN's convolution on its packed weight (with the fused add into `scratch`; with the
    /// max-pool after it, where that is fused in).
    fn run_onednn(
        &self,
        packed: &Tensor,
        scratch: Option<&mut Tensor>,
    ) -> Result<Tensor, TchError> {
        let (x, b, g, relu) = (self.x, self.b, self.g, self.relu);
        match (scratch, self.pool) {
            (Some(other), _) => {
                ffi::conv_add_(other, x, packed, b, g, relu).map(|()| Tensor::new())
            }
            (None, Some(pool)) => max_pool(&ffi::conv_pointwise(x, packed, b, g, relu)?, pool),
            (None, None) => ffi::conv_pointwise(x, packed, b, g, relu),
        }
    }

    /// A bf16 1×1 convolution with stride 1, no padding and one group, on channels-last input:
    /// a matmul over the pixels' rows.
    fn matmul_applies(&self) -> bool {
        let g = self.g;
        let w = self.w.size();
        w.len() == 4
            && w[2..] == [1, 1]
            && g.stride == [1, 1]
            && g.padding == [0, 0]
            && g.groups == 1
            && self.x.kind() == Kind::BFloat16
            && is_channels_last(self.x)
            && self.other.is_none_or(is_channels_last)
            && ffi::onednn_linear_available()
    }

    /// oneDNN's convolution (`packed`) or its matmul, as `choice` says: `Always` where the matmul
    /// runs, `Measure` where it is also faster here (the fused residual add timed on a copy).
    fn matmul_or(&self, packed: Tensor, choice: Choice) -> Result<Packed, TchError> {
        if choice == Choice::Never {
            return Ok(Packed::OneDnn(packed));
        }
        let size = self.x.size();
        let rows = size[0] * size[2] * size[3];
        let w = self.w.f_flatten(1, -1)?;
        let Ok(matmul) = ffi::reorder_linear_weight(&w, rows) else {
            return Ok(Packed::OneDnn(packed));
        };
        let (x, b, relu, other) = (self.x, self.b, self.relu, self.other);
        let ours = run_matmul(x, &matmul, b, relu, other);
        if choice == Choice::Always {
            return Ok(match ours {
                Ok(_) => Packed::Matmul(matmul),
                Err(_) => Packed::OneDnn(packed),
            });
        }
        if ours.is_err() {
            return Ok(Packed::OneDnn(packed));
        }
        let (ours, theirs) = self.alternate(
            &mut |_| run_matmul(x, &matmul, b, relu, other),
            &mut |scratch| self.run_onednn(&packed, scratch),
        )?;
        Ok(if ours < theirs {
            Packed::Matmul(matmul)
        } else {
            Packed::OneDnn(packed)
        })
    }
}

/// The best of `rounds` timed runs of `a` and of `b`, the two alternating (after one untimed run
/// each), in seconds: a slow spell of the machine then costs both alike. Where the two bests are
/// within [`CLOSE`] of each other and short (under [`LONGER_BELOW`]), twice as many rounds more
/// decide: a few runs of a fast kernel are often within this machine's drift, while a long run
/// averages it out (and more of them would make the plan slow to build).
fn alternating(
    a: &mut dyn FnMut() -> Result<Tensor, TchError>,
    b: &mut dyn FnMut() -> Result<Tensor, TchError>,
    rounds: usize,
) -> Result<(f64, f64), TchError> {
    let _ = (a()?, b()?);
    let (mut best_a, mut best_b) = (f64::INFINITY, f64::INFINITY);
    let mut round = |best_a: &mut f64, best_b: &mut f64| -> Result<(), TchError> {
        let t = std::time::Instant::now();
        let _ = a()?;
        *best_a = best_a.min(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        let _ = b()?;
        *best_b = best_b.min(t.elapsed().as_secs_f64());
        Ok(())
    };
    for _ in 0..rounds {
        round(&mut best_a, &mut best_b)?;
    }
    let close = best_a < best_b * CLOSE && best_b < best_a * CLOSE;
    if close && best_a.max(best_b) < LONGER_BELOW {
        for _ in 0..2 * rounds {
            round(&mut best_a, &mut best_b)?;
        }
    }
    Ok((best_a, best_b))
}

/// How close two alternatives' best times are (as a ratio) for [`alternating`] to time them
/// longer.
const CLOSE: f64 = 1.15;

/// The longest best time (seconds) for which [`alternating`] times close alternatives longer.
const LONGER_BELOW: f64 = 0.004;

/// `relu?(conv1x1(x) + b (+ other))` as oneDNN's matmul over the rows of channels-last `x`
/// ([N·H·W, C_in]), `w` packed by `ffi::reorder_linear_weight`; channels-last like `x`.
fn run_matmul(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    relu: bool,
    other: Option<&Tensor>,
) -> Result<Tensor, TchError> {
    let [n, c, h, wd] = x.size()[..] else {
        return Err(TchError::Torch(
            "inference plan: a 1×1 matmul on a non-4-D input".into(),
        ));
    };
    // Views, since `x` (and `other`) are channels-last.
    let rows = x.f_permute([0, 2, 3, 1])?.f_reshape([-1, c])?;
    let y = match other {
        Some(other) => {
            let co = other.size()[1];
            let other = other.f_permute([0, 2, 3, 1])?.f_reshape([-1, co])?;
            let mut y = ffi::linear_add(&rows, &other, w, b)?;
            if relu {
                let _ = y.f_relu_()?;
            }
            y
        }
        None => ffi::linear_pointwise(&rows, w, b, relu)?,
    };
    let co = y.size()[1];
    y.f_view([n, h, wd, co])?.f_permute([0, 3, 1, 2])
}

/// The residual adds to fuse into a convolution: add node → (conv node, the add's other input),
/// for every two-input add one of whose inputs is conv → batch-norm with no other consumer.
/// Building the plan skips those convolutions and batch-norms and emits them at their add.
fn residual_fusions(net: &Network, consumers: &[Vec<usize>]) -> HashMap<usize, (usize, usize)> {
    let sole = |i: usize, of: usize| consumers[i].as_slice() == [of];
    let mut fused = HashMap::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let (Step::Add, [a, b]) = (&node.step, node.inputs.as_slice()) else {
            continue;
        };
        for (bn, other) in [(*a, *b), (*b, *a)] {
            let conv = net.nodes[bn].inputs.first().copied();
            if let (Step::Bn(_), Some(c)) = (&net.nodes[bn].step, conv) {
                if matches!(net.nodes[c].step, Step::Conv(..)) && sole(bn, i) && sole(c, bn) {
                    fused.insert(i, (c, other));
                    break;
                }
            }
        }
    }
    fused
}

/// A convolution's weight and bias with the batch-norm that alone consumes it (`next`) folded
/// in, in f32; the batch-norm's node when there was one.
fn fold_conv(
    net: &Network,
    c: &tch::nn::Conv2D,
    next: Option<usize>,
) -> (Tensor, Option<Tensor>, Option<usize>) {
    let mut w = c.ws.detach().to_kind(Kind::Float);
    let mut b = c.bs.as_ref().map(|b| b.detach().to_kind(Kind::Float));
    let Some(j) = next else {
        return (w, b, None);
    };
    let Step::Bn(bn) = &net.nodes[j].step else {
        return (w, b, None);
    };
    let (scale, shift) = bn_affine(bn);
    w = &w * scale.view([-1, 1, 1, 1]);
    b = Some(match b {
        Some(b) => b * &scale + shift,
        None => shift,
    });
    (w, b, Some(j))
}

fn geometry(spec: &crate::__private::ConvSpec) -> Geometry {
    Geometry {
        padding: spec.pad,
        stride: [spec.stride, spec.stride],
        dilation: [1, 1],
        groups: spec.groups,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc accepts the thresholds (this crate's CI runs on glibc).
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_memory_can_be_kept() {
        assert!(keep_freed_memory());
    }

    /// The peak probe picks the widest unit the CPU has, as /proc/cpuinfo lists it, and AMX's
    /// tile products outrun AVX-512's dot products where both exist.
    #[test]
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn peak_uses_the_widest_unit() {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let has = |flag: &str| info.split_whitespace().any(|w| w == flag);
        let (fp32, bf16) = (peak(Kind::Float, 1, 0.05), peak(Kind::BFloat16, 1, 0.05));
        assert_eq!(fp32.is_some(), has("avx512f"), "{fp32:?}");
        match bf16 {
            Some(p) if has("amx_bf16") => {
                assert_eq!(p.unit, "AMX tdpbf16ps");
                let avx = ffi::peak_flops(ffi::Unit::Avx512Bf16, 1, 0.05).unwrap_or(0.0);
                assert!(
                    p.flops > 2.0 * avx,
                    "AMX {:e} against AVX512-BF16 {avx:e}",
                    p.flops
                );
            }
            Some(p) => assert_eq!(p.unit, "AVX512-BF16 vdpbf16ps"),
            None => assert!(
                !has("avx512_bf16"),
                "no bf16 peak on a CPU with AVX512-BF16"
            ),
        }
    }

    /// The grouped kernel against libtorch's convolution of the same bf16 values (computed in
    /// fp32), for every group width it takes, both strides, odd sizes (rows that do not fill a
    /// register block), with and without ReLU: within bf16's rounding of the output; on its AMX
    /// path too where the CPU has AMX.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn grouped_kernel_matches_libtorch() {
        if !ffi::grouped_supported(4) {
            eprintln!("this CPU has no AVX512-BF16: the grouped kernel does not run here");
            return;
        }
        tch::manual_seed(0);
        for (c, cpg, hw, stride, relu) in [
            (128, 4, 13, 1, true),
            (64, 4, 20, 1, true),
            (64, 4, 12, 2, false),
            (64, 8, 9, 2, false),
            (256, 8, 21, 1, true),
            (32, 8, 1, 1, true),
            (64, 16, 10, 1, true),
            (512, 16, 9, 2, false),
            (96, 16, 7, 1, false),
            (64, 32, 7, 1, true),
            (128, 32, 10, 2, true),
            (32, 32, 1, 2, false),
        ] {
            let groups = c / cpg;
            let bf = |t: Tensor| t.to_kind(Kind::BFloat16);
            let x = bf(Tensor::randn(
                [2, c, hw, hw + 3],
                (Kind::Float, Device::Cpu),
            ));
            let w = bf(Tensor::randn([c, cpg, 3, 3], (Kind::Float, Device::Cpu)) * 0.2);
            let b = Tensor::randn([c], (Kind::Float, Device::Cpu));
            let mut reference = x.to_kind(Kind::Float).conv2d(
                &w.to_kind(Kind::Float),
                Some(&b),
                [stride, stride],
                [1, 1],
                [1, 1],
                groups,
            );
            if relu {
                reference = reference.relu();
            }
            // Both paths where the CPU has AMX and the groups fit its tiles.
            let paths: &[bool] = if ffi::grouped_amx() && cpg <= 16 {
                &[true, false]
            } else {
                &[false]
            };
            for &amx in paths {
                let packed = ffi::grouped_pack_for(&w, cpg, amx).unwrap();
                let xs = channels_last(&x);
                let y = ffi::grouped_conv(&xs, &packed, &b, stride, cpg, relu).unwrap();
                assert_eq!(y.size(), reference.size());
                let y = y.to_kind(Kind::Float);
                let err =
                    (&y - &reference).norm().double_value(&[]) / reference.norm().double_value(&[]);
                println!(
                    "c {c} cpg {cpg} {hw}x{} stride {stride} amx {amx}: {err:.2e}",
                    hw + 3
                );
                assert!(
                    err < 4e-3,
                    "c {c} cpg {cpg} stride {stride} amx {amx}: {err:.2e}"
                );
            }
        }
    }

    /// The stem kernel (on AMX tiles where the CPU has them, else on AVX512-BF16) against
    /// libtorch's convolution of the same bf16 values (computed in fp32): ResNet's 7×7/2 stem
    /// on RGB, and other kernels, strides, paddings and channel counts (on AMX C_in padded to
    /// make a kernel row even; without, kernel rows of an odd number of values, whose last
    /// pair is masked; maps narrower than one 16-pixel tile or one 12-pixel part),
    /// with and without ReLU, within bf16's rounding of the output. With a max-pool fused in,
    /// it equals libtorch's max-pool of its own unfused output bit for bit. Refuses what it
    /// does not take.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn stem_kernel_matches_libtorch() {
        if !ffi::stem_supported(3, 7) {
            eprintln!("this CPU has neither AMX nor AVX512-BF16: the stem kernel does not run");
            return;
        }
        assert!(
            !ffi::stem_supported(5, 7),
            "35 values do not fit a tile row"
        );
        tch::manual_seed(3);
        let cpu = (Kind::Float, Device::Cpu);
        let bf = |t: Tensor| t.to_kind(Kind::BFloat16);
        // ([batch, C_in, C_out, H, W], [kernel, stride, padding], ReLU, the pool's kernel,
        // stride and padding)
        type Case = ([i64; 5], [i64; 3], bool, Option<([i64; 2], i64, [i64; 2])>);
        let cases: [Case; 8] = [
            (
                [2, 3, 64, 64, 70],
                [7, 2, 3],
                true,
                Some(([3, 3], 2, [1, 1])),
            ),
            (
                [1, 3, 32, 9, 10],
                [7, 2, 3],
                false,
                Some(([3, 3], 2, [1, 1])),
            ),
            (
                [2, 4, 64, 30, 33],
                [5, 1, 2],
                true,
                Some(([2, 3], 2, [1, 1])),
            ),
            ([1, 1, 32, 20, 17], [3, 1, 1], true, None),
            (
                [3, 3, 96, 35, 41],
                [3, 2, 0],
                false,
                Some(([3, 2], 3, [0, 1])),
            ),
            (
                [1, 3, 64, 224, 224],
                [7, 2, 3],
                true,
                Some(([3, 3], 2, [1, 1])),
            ),
            // Pool windows that reach back across strips of 32 columns (the last strip
            // narrower than the window).
            (
                [1, 3, 32, 40, 150],
                [7, 2, 3],
                true,
                Some(([3, 5], 3, [1, 2])),
            ),
            (
                [2, 3, 32, 12, 68],
                [7, 2, 3],
                false,
                Some(([2, 5], 1, [1, 2])),
            ),
        ];
        for ([n, cin, cout, h, w], [k, stride, pad], relu, pool) in cases {
            let x = bf(Tensor::randn([n, cin, h, w], cpu));
            let wt = bf(Tensor::randn([cout, cin, k, k], cpu) * 0.1);
            let b = Tensor::randn([cout], cpu);
            let mut reference = x.to_kind(Kind::Float).conv2d(
                &wt.to_kind(Kind::Float),
                Some(&b),
                [stride, stride],
                [pad, pad],
                [1, 1],
                1,
            );
            if relu {
                reference = reference.relu();
            }
            assert!(ffi::stem_supported(cin, k));
            let packed = ffi::stem_pack(&wt).unwrap();
            let g = Geometry {
                padding: [pad, pad],
                stride: [stride, stride],
                dilation: [1, 1],
                groups: 1,
            };
            let xs = channels_last(&x);
            let y = ffi::stem_conv(&xs, &packed, &b, cin, [k, k], &g, None, relu).unwrap();
            assert_eq!(y.size(), reference.size());
            assert!(is_channels_last(&y));
            let err = (&y.to_kind(Kind::Float) - &reference)
                .norm()
                .double_value(&[])
                / reference.norm().double_value(&[]);
            println!("{n}x{cin}x{h}x{w} -> {cout}, {k}x{k}/{stride} pad {pad}: {err:.2e}");
            assert!(err < 4e-3, "{n}x{cin}x{h}x{w}, {k}x{k}/{stride}: {err:.2e}");
            if let Some((kernel, s, p)) = pool {
                let geometry = ffi::PoolGeometry {
                    kernel,
                    stride: [s, s],
                    pad: p,
                };
                let fused =
                    ffi::stem_conv(&xs, &packed, &b, cin, [k, k], &g, Some(&geometry), relu)
                        .unwrap();
                let pooled = y.max_pool2d(kernel, [s, s], p, [1, 1], false);
                assert_eq!(fused.size(), pooled.size());
                assert!(is_channels_last(&fused));
                assert!(
                    fused.equal(&pooled),
                    "{n}x{cin}x{h}x{w}: fused pool differs"
                );
            }
        }
        // What it refuses: fp32 input, a weight it did not pack, a bias of the wrong length,
        // an input with other channels than the weight's, a pool wider than 32.
        let x = channels_last(&bf(Tensor::randn([1, 3, 32, 32], cpu)));
        let wt = Tensor::randn([64, 3, 7, 7], cpu);
        let packed = ffi::stem_pack(&wt).unwrap();
        let b = Tensor::zeros([64], cpu);
        let g = Geometry {
            padding: [3, 3],
            stride: [2, 2],
            dilation: [1, 1],
            groups: 1,
        };
        let run = |x: &Tensor, p: &Tensor, b: &Tensor| {
            ffi::stem_conv(x, p, b, 3, [7, 7], &g, None, true).map(|_| ())
        };
        assert!(run(&x, &packed, &b).is_ok());
        assert!(run(&x.to_kind(Kind::Float), &packed, &b).is_err());
        assert!(run(&x, &wt, &b).is_err());
        assert!(run(&x, &packed, &Tensor::zeros([32], cpu)).is_err());
        // An input with other channels than the weight's (4 and 3 both pad to 4).
        let x4 = channels_last(&bf(Tensor::randn([1, 4, 32, 32], cpu)));
        assert!(run(&x4, &packed, &b).is_err());
        // A pool wider than its strips' carried columns reach is refused, not misread.
        let wide = ffi::PoolGeometry {
            kernel: [3, 40],
            stride: [2, 2],
            pad: [1, 1],
        };
        let x96 = channels_last(&bf(Tensor::randn([1, 3, 96, 96], cpu)));
        let pooled = ffi::stem_conv(&x96, &packed, &b, 3, [7, 7], &g, Some(&wide), true);
        assert!(pooled.is_err());
        assert!(ffi::stem_pack(&Tensor::randn([48, 3, 7, 7], cpu)).is_err());
        // A NaN reaches exactly the outputs whose windows hold it: in channel 0 of input column
        // 14, the value right after output column 5's window (7 × 3 values: 21, odd), which the
        // kernel without AMX reads as the second half of its last pair.
        let x = bf(Tensor::randn([1, 3, 16, 32], cpu));
        let _ = x
            .narrow(1, 0, 1)
            .narrow(3, 14, 1)
            .f_fill_(f64::NAN)
            .unwrap();
        let reference = x.to_kind(Kind::Float).conv2d(
            &wt.to_kind(Kind::BFloat16).to_kind(Kind::Float),
            Some(&b),
            [2, 2],
            [3, 3],
            [1, 1],
            1,
        );
        let y = ffi::stem_conv(&channels_last(&x), &packed, &b, 3, [7, 7], &g, None, false)
            .unwrap()
            .to_kind(Kind::Float);
        assert!(
            y.isnan().equal(&reference.isnan()),
            "NaN outside its windows"
        );
        assert!(reference.isnan().any().int64_value(&[]) == 1);
    }

    /// The AMX direct 3×3 kernel against libtorch's convolution of the same bf16 values
    /// (computed in fp32): late-stage and odd shapes (maps narrower than a tile, one pixel, more
    /// output than input channels), with and without ReLU, within bf16's rounding of the output.
    /// Refuses what it does not take.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn direct_kernel_matches_libtorch() {
        if !ffi::direct_supported() {
            eprintln!("this CPU has no AMX: the direct kernel does not run here");
            return;
        }
        tch::manual_seed(4);
        let cpu = (Kind::Float, Device::Cpu);
        let bf = |t: Tensor| t.to_kind(Kind::BFloat16);
        // [batch, C_in, C_out, H, W, stride], ReLU
        for ([n, cin, cout, h, w, stride], relu) in [
            ([2, 512, 512, 7, 7, 1], true),
            ([1, 256, 256, 14, 14, 1], false),
            ([3, 32, 64, 5, 9, 1], true),
            ([1, 64, 32, 1, 1, 1], true),
            ([2, 96, 64, 13, 11, 1], false),
            ([2, 512, 512, 14, 14, 2], true),
            ([1, 256, 256, 28, 28, 2], false),
            ([3, 32, 64, 7, 10, 2], true),
            ([1, 64, 32, 1, 1, 2], true),
            ([2, 96, 64, 13, 11, 2], false),
        ] {
            let x = bf(Tensor::randn([n, cin, h, w], cpu));
            let wt = bf(Tensor::randn([cout, cin, 3, 3], cpu) * 0.05);
            let b = Tensor::randn([cout], cpu);
            let mut reference = x.to_kind(Kind::Float).conv2d(
                &wt.to_kind(Kind::Float),
                Some(&b),
                [stride, stride],
                [1, 1],
                [1, 1],
                1,
            );
            if relu {
                reference = reference.relu();
            }
            let packed = ffi::direct_pack(&wt).unwrap();
            let y = ffi::direct_conv(&channels_last(&x), &packed, &b, stride, relu).unwrap();
            assert_eq!(y.size(), reference.size());
            assert!(is_channels_last(&y));
            let err = (&y.to_kind(Kind::Float) - &reference)
                .norm()
                .double_value(&[])
                / reference.norm().double_value(&[]);
            println!("{n}x{cin}x{h}x{w} -> {cout}, stride {stride}: {err:.2e}");
            assert!(
                err < 4e-3,
                "{n}x{cin}x{h}x{w} -> {cout}, stride {stride}: {err:.2e}"
            );
        }
        // What it refuses: fp32 input, other channels than the weight's, a foreign weight, a
        // bias of the wrong length, strides other than 1 and 2; channels that are not multiples
        // of 32.
        let x = channels_last(&bf(Tensor::randn([1, 64, 7, 7], cpu)));
        let wt = Tensor::randn([64, 64, 3, 3], cpu);
        let packed = ffi::direct_pack(&wt).unwrap();
        let b = Tensor::zeros([64], cpu);
        assert!(ffi::direct_conv(&x, &packed, &b, 1, true).is_ok());
        assert!(ffi::direct_conv(&x.to_kind(Kind::Float), &packed, &b, 1, true).is_err());
        let x96 = channels_last(&bf(Tensor::randn([1, 96, 7, 7], cpu)));
        assert!(ffi::direct_conv(&x96, &packed, &b, 1, true).is_err());
        assert!(ffi::direct_conv(&x, &wt, &b, 1, true).is_err());
        assert!(ffi::direct_conv(&x, &packed, &Tensor::zeros([32], cpu), 1, true).is_err());
        assert!(ffi::direct_conv(&x, &packed, &b, 3, true).is_err());
        assert!(ffi::direct_conv(&x, &packed, &b, 0, true).is_err());
        assert!(ffi::direct_pack(&Tensor::randn([48, 64, 3, 3], cpu)).is_err());
    }

    /// The global average pool of channels-last maps equals libtorch's `adaptive_avg_pool2d(x,
    /// 1)`, bit for bit in bf16, to a unit in the last place in fp32, on its AVX-512 and
    /// portable paths (channel counts that do and do not fill a work
    /// item, a one-pixel map); NCHW input is refused.
    #[test]
    fn global_avg_pool_matches_libtorch() {
        tch::manual_seed(6);
        // The AVX-512 path where the CPU has it, and the portable one.
        for (kind, vectors) in [
            (Kind::BFloat16, true),
            (Kind::Float, true),
            (Kind::BFloat16, false),
            (Kind::Float, false),
        ] {
            ffi::layout_vectors(vectors);
            for [n, c, h, w] in [[2, 2048, 7, 7], [3, 300, 5, 4], [1, 16, 1, 1]] {
                let x = channels_last(
                    &Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu)).to_kind(kind),
                );
                let ours = ffi::global_avg_pool_nhwc(&x).unwrap();
                let want = x.adaptive_avg_pool2d([1, 1]);
                assert_eq!(ours.size(), [n, c, 1, 1]);
                let diff = (ours.to_kind(Kind::Float) - want.to_kind(Kind::Float))
                    .abs()
                    .max()
                    .double_value(&[]);
                // bf16: the same fp32 sums, rounded once: equal. fp32: libtorch sums in
                // another order, a unit in the last place apart (means of randn are < 1).
                let bound = if kind == Kind::BFloat16 { 0.0 } else { 1e-6 };
                assert!(
                    diff <= bound,
                    "{kind:?} {n}x{c}x{h}x{w}: max difference {diff}"
                );
            }
        }
        ffi::layout_vectors(true);
        let nchw = Tensor::randn([2, 64, 7, 7], (Kind::Float, Device::Cpu));
        assert!(ffi::global_avg_pool_nhwc(&nchw).is_err());
    }

    /// The pointwise kernel against libtorch's convolutions of the same bf16 values (computed
    /// in fp32), on AMX tiles where the CPU has them and on AVX512-BF16: a block's last 1×1
    /// with its projection shortcut at stride 1 and 2 (odd maps, pixel counts that do not fill
    /// a 32-pixel block or a 6-pixel tile, one pixel), one input alone, with a residual written
    /// in place, with and without ReLU, within bf16's rounding of the output; the threads
    /// splitting the pixels (more pixels than output channels) and the channels (fewer), K in
    /// one chunk of 8 steps or several (also not a multiple of 8), weight panels of one or more,
    /// output channels that do not fill 64 (96: a last pair of 16-channel blocks). Refuses what
    /// it does not take.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn pointwise_kernel_matches_libtorch() {
        if !ffi::pointwise_supported() {
            eprintln!(
                "this CPU has neither AMX nor AVX512-BF16: the pointwise kernel does not run"
            );
            return;
        }
        let paths: &[bool] = if ffi::pointwise_amx() {
            &[true, false]
        } else {
            &[false]
        };
        tch::manual_seed(5);
        let cpu = (Kind::Float, Device::Cpu);
        let bf = |t: Tensor| t.to_kind(Kind::BFloat16);
        let f = |t: &Tensor| t.to_kind(Kind::Float);
        // [batch, C_main, C_short (0: none), C_out, H, W], shortcut stride, residual, ReLU
        for ([n, c1, c2, cout, h, w], stride, residual, relu) in [
            ([2, 64, 64, 256, 15, 11], 1, false, true),
            ([2, 320, 0, 64, 8, 9], 1, true, false),
            ([1, 128, 256, 512, 7, 5], 2, false, true),
            ([3, 256, 512, 1024, 3, 3], 2, false, false),
            ([1, 32, 64, 64, 1, 1], 2, false, true),
            ([2, 64, 0, 96, 6, 7], 1, true, true),
            ([1, 512, 0, 2048, 2, 3], 1, false, false),
            // Several 1 MB weight panels a thread (K = 1024: 16 column pairs each), split by
            // pixel blocks (read in place, the last one partial) and by channels (a stride-1
            // shortcut).
            ([1, 1024, 0, 1024, 40, 30], 1, true, true),
            ([2, 512, 512, 2048, 9, 10], 1, false, true),
        ] {
            let x = bf(Tensor::randn([n, c1, h, w], cpu));
            let w1 = bf(Tensor::randn([cout, c1, 1, 1], cpu) * 0.1);
            let b = Tensor::randn([cout], cpu);
            let mut reference = f(&x).conv2d(&f(&w1), Some(&b), [1, 1], [0, 0], [1, 1], 1);
            let mut weight = w1.shallow_clone();
            let x2 = (c2 > 0).then(|| {
                let (h2, w2) = ((h - 1) * stride + 1 + stride / 2, (w - 1) * stride + 1);
                bf(Tensor::randn([n, c2, h2, w2], cpu))
            });
            if let Some(x2) = &x2 {
                let w2 = bf(Tensor::randn([cout, c2, 1, 1], cpu) * 0.1);
                let short =
                    f(x2).conv2d::<Tensor>(&f(&w2), None, [stride, stride], [0, 0], [1, 1], 1);
                reference += short.narrow(2, 0, h).narrow(3, 0, w);
                weight = Tensor::cat(&[&w1, &w2], 1);
            }
            let other = residual.then(|| channels_last(&bf(Tensor::randn([n, cout, h, w], cpu))));
            if let Some(o) = &other {
                reference += f(o);
            }
            if relu {
                reference = reference.relu();
            }
            let packed = ffi::pointwise_pack(&weight).unwrap();
            let x2s = x2.as_ref().map(channels_last);
            for &amx in paths {
                let mut other = other.as_ref().map(|o| o.copy());
                let y = ffi::pointwise_conv_on(
                    &channels_last(&x),
                    x2s.as_ref().map(|t| (t, stride)),
                    &packed,
                    &b,
                    other.as_mut(),
                    relu,
                    amx,
                )
                .unwrap();
                assert_eq!(y.size(), reference.size());
                assert!(is_channels_last(&y));
                if let Some(o) = &other {
                    assert_eq!(
                        o.data_ptr(),
                        y.data_ptr(),
                        "the residual is written in place"
                    );
                }
                let err = (&f(&y) - &reference).norm().double_value(&[])
                    / reference.norm().double_value(&[]);
                let case = format!("{n}x({c1}+{c2})x{h}x{w} -> {cout}, stride {stride}, amx {amx}");
                println!("{case}: {err:.2e}");
                assert!(err < 4e-3, "{case}: {err:.2e}");
            }
        }
        // What it refuses: fp32 input, other channels than the weight's, a foreign weight, a
        // bias of the wrong length, a second input too small for the stride, a residual of
        // another shape; channels that are not multiples of 32.
        let x = channels_last(&bf(Tensor::randn([1, 64, 7, 7], cpu)));
        let x2 = channels_last(&bf(Tensor::randn([1, 64, 14, 14], cpu)));
        let packed = ffi::pointwise_pack(&Tensor::randn([128, 128, 1, 1], cpu)).unwrap();
        let b = Tensor::zeros([128], cpu);
        let run = |x: &Tensor, x2: &Tensor, s: i64, p: &Tensor, b: &Tensor| {
            ffi::pointwise_conv(x, Some((x2, s)), p, b, None, true)
        };
        assert!(run(&x, &x2, 2, &packed, &b).is_ok());
        assert!(run(&x.to_kind(Kind::Float), &x2, 2, &packed, &b).is_err());
        assert!(ffi::pointwise_conv(&x, None, &packed, &b, None, true).is_err());
        assert!(run(&x, &x2, 3, &packed, &b).is_err());
        assert!(run(&x, &x2, 2, &Tensor::randn([128, 128, 1, 1], cpu), &b).is_err());
        assert!(run(&x, &x2, 2, &packed, &Tensor::zeros([64], cpu)).is_err());
        let mut wrong = channels_last(&bf(Tensor::randn([1, 128, 7, 6], cpu)));
        assert!(
            ffi::pointwise_conv(&x, Some((&x2, 2)), &packed, &b, Some(&mut wrong), true).is_err()
        );
        assert!(ffi::pointwise_pack(&Tensor::randn([48, 64, 1, 1], cpu)).is_err());
    }

    /// The fp32 grouped kernel against libtorch's fp32 grouped convolution: 4, 8, 16 and 32
    /// channels per group, both strides, widths that do and do not fill tiles of 7 or 8 pixels,
    /// odd heights (a last row pair of one row), one- and two-pixel maps, with and without ReLU: within a few units in the
    /// last place (the same products, summed in another order). Refuses what it does not take.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn grouped_f32_kernel_matches_libtorch() {
        if !ffi::grouped_f32_supported(4) {
            eprintln!("this CPU has no AVX-512: the fp32 grouped kernel does not run here");
            return;
        }
        tch::manual_seed(2);
        let cpu = (Kind::Float, Device::Cpu);
        for (n, c, cpg, h, w, stride, relu) in [
            (2, 128, 4, 13, 16, 1, true),
            (1, 64, 4, 20, 27, 1, false),
            (3, 64, 4, 12, 9, 2, true),
            (2, 64, 8, 9, 12, 2, false),
            (2, 256, 8, 21, 24, 1, true),
            (1, 32, 8, 1, 1, 1, true),
            (1, 16, 4, 56, 56, 1, true),
            (2, 64, 16, 9, 13, 1, true),
            (1, 128, 16, 14, 14, 2, false),
            (2, 64, 32, 7, 10, 1, false),
            (1, 128, 32, 11, 9, 2, true),
            (1, 32, 32, 1, 1, 1, true),
            (1, 64, 16, 2, 2, 2, true),
        ] {
            let x = Tensor::randn([n, c, h, w], cpu);
            let wt = Tensor::randn([c, cpg, 3, 3], cpu) / (9.0 * cpg as f64).sqrt();
            let b = Tensor::randn([c], cpu) * 0.1;
            let mut reference = x.conv2d(&wt, Some(&b), [stride, stride], [1, 1], [1, 1], c / cpg);
            if relu {
                reference = reference.relu();
            }
            let packed = ffi::grouped_pack_f32(&wt, cpg).unwrap();
            let y = ffi::grouped_conv(&channels_last(&x), &packed, &b, stride, cpg, relu).unwrap();
            assert!(is_channels_last(&y));
            assert_eq!((y.kind(), y.size()), (Kind::Float, reference.size()));
            let err =
                (&y - &reference).norm().double_value(&[]) / reference.norm().double_value(&[]);
            println!("fp32 {n}x{c}x{h}x{w} cpg {cpg} stride {stride} relu {relu}: {err:.2e}");
            assert!(
                err <= 1e-6,
                "{n}x{c}x{h}x{w} cpg {cpg} stride {stride}: {err:.2e}"
            );
        }
        // Refused: 12 and 64 channels per group, bf16 input to an fp32 weight, an NCHW input, another
        // channel count than the weight's, an empty map, a malformed bf16 weight.
        let cpu_w = |c: i64, cpg: i64| Tensor::randn([c, cpg, 3, 3], cpu);
        assert!(ffi::grouped_pack_f32(&cpu_w(48, 12), 12).is_err());
        assert!(ffi::grouped_pack_f32(&cpu_w(64, 64), 64).is_err());
        let packed = ffi::grouped_pack_f32(&cpu_w(64, 4), 4).unwrap();
        let b = Tensor::zeros([64], cpu);
        let x = Tensor::randn([1, 64, 5, 5], cpu);
        let xb = channels_last(&x.to_kind(Kind::BFloat16));
        let err = ffi::grouped_conv(&xb, &packed, &b, 1, 4, false).unwrap_err();
        assert!(err.to_string().contains("fp32 channels-last"), "{err}");
        let err = ffi::grouped_conv(&x, &packed, &b, 1, 4, false).unwrap_err();
        assert!(err.to_string().contains("fp32 channels-last"), "{err}");
        let x = channels_last(&Tensor::randn([1, 32, 5, 5], cpu));
        let err = ffi::grouped_conv(&x, &packed, &b, 1, 4, false).unwrap_err();
        assert!(err.to_string().contains("channel count"), "{err}");
        // An empty map (stride 2 would otherwise make one output row of it), and a bf16 weight
        // of the wrong layout.
        let x = channels_last(&Tensor::randn([1, 64, 0, 5], cpu));
        let err = ffi::grouped_conv(&x, &packed, &b, 2, 4, false).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        if ffi::grouped_supported(4) {
            let bad = Tensor::zeros([4, 9, 2], (Kind::BFloat16, Device::Cpu));
            let x = channels_last(&Tensor::randn([1, 64, 5, 5], cpu).to_kind(Kind::BFloat16));
            let err = ffi::grouped_conv(&x, &bad, &b, 1, 4, false).unwrap_err();
            assert!(err.to_string().contains("not packed"), "{err}");
        }
    }

    /// The Winograd kernel against libtorch's fp32 convolution of the same input and fp32
    /// weight: sizes odd and even (partial 2×2 tiles), channel counts that fill one register
    /// block or several, blocks of tiles that end mid-register-block, with and without ReLU, and
    /// with the residual added in place. In fp32 it agrees within 2e-6 relative (the sums' own
    /// rounding: up to 7e-7 here). In bf16 its error stays within twice libtorch's direct bf16 convolution's:
    /// both round the weight and the output to bf16 once, and the Winograd kernel also rounds
    /// its transformed input, sums of up to four inputs (1.3–1.9 times the direct error here).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn winograd_kernel_matches_libtorch() {
        tch::manual_seed(4);
        let cpu = (Kind::Float, Device::Cpu);
        let rel = |a: &Tensor, b: &Tensor| {
            (a.to_kind(Kind::Float) - b).norm().double_value(&[]) / b.norm().double_value(&[])
        };
        for kind in [Kind::BFloat16, Kind::Float] {
            let bf16 = kind == Kind::BFloat16;
            if !ffi::winograd_supported(bf16) {
                eprintln!("this CPU has no AVX-512 for the {kind:?} Winograd kernel");
                continue;
            }
            let to = |t: &Tensor| t.to_kind(kind);
            for (n, cin, cout, h, w, relu, add) in [
                (2, 64, 64, 14, 14, true, false),
                (1, 16, 32, 7, 9, false, false),
                (3, 128, 96, 5, 6, true, true),
                (1, 32, 64, 1, 1, false, true),
                (2, 256, 256, 13, 28, true, false),
                (4, 512, 64, 7, 7, false, false),
            ] {
                let x = to(&Tensor::randn([n, cin, h, w], cpu));
                let wt = Tensor::randn([cout, cin, 3, 3], cpu) / (9.0 * cin as f64).sqrt();
                let b = Tensor::randn([cout], cpu) * 0.1;
                let res = to(&Tensor::randn([n, cout, h, w], cpu));
                let finish = |mut y: Tensor| {
                    if add {
                        y += res.to_kind(y.kind());
                    }
                    if relu { y.relu() } else { y }
                };
                let conv = |x: &Tensor, wt: &Tensor, b: &Tensor| {
                    x.conv2d(wt, Some(b), [1, 1], [1, 1], [1, 1], 1)
                };
                let reference = finish(conv(&x.to_kind(Kind::Float), &wt, &b));
                let packed = ffi::winograd_pack(&wt, bf16).unwrap();
                let xs = channels_last(&x);
                let y = if add {
                    // (A copy: with 1×1 maps, channels_last(&res) is a view of res itself.)
                    let mut r = channels_last(&res).copy();
                    ffi::winograd_conv_add_(&mut r, &xs, &packed, &b, relu).unwrap();
                    r
                } else {
                    ffi::winograd_conv(&xs, &packed, &b, relu).unwrap()
                };
                assert!(is_channels_last(&y));
                assert_eq!(y.kind(), kind);
                assert_eq!(y.size(), reference.size());
                let ours = rel(&y, &reference);
                let what = format!("{kind:?} {n}x{cin}x{h}x{w} -> {cout} relu {relu} add {add}");
                if bf16 {
                    let direct = rel(&finish(conv(&x, &to(&wt), &to(&b))), &reference);
                    println!("{what}: Winograd {ours:.2e}, direct {direct:.2e}");
                    assert!(
                        ours <= 2.0 * direct,
                        "{what}: {ours:.2e} against {direct:.2e}"
                    );
                } else {
                    println!("{what}: Winograd {ours:.2e}");
                    assert!(ours <= 2e-6, "{what}: {ours:.2e}");
                }
            }
        }
        if !ffi::winograd_supported(true) {
            return;
        }
        // Refused: another channel count than the weight's, an NCHW input, an input of another
        // type than the weight's, a C_out that is not a multiple of 32, a residual that is the
        // input.
        let wt = Tensor::randn([32, 16, 3, 3], cpu);
        let packed = ffi::winograd_pack(&wt, true).unwrap();
        let b = Tensor::zeros([32], cpu);
        let x = Tensor::randn([1, 32, 4, 4], cpu).to_kind(Kind::BFloat16);
        let err = ffi::winograd_conv(&channels_last(&x), &packed, &b, false).unwrap_err();
        assert!(err.to_string().contains("input channels"), "{err}");
        let x = Tensor::randn([1, 16, 4, 5], cpu);
        let err = ffi::winograd_conv(&x.to_kind(Kind::BFloat16), &packed, &b, false).unwrap_err();
        assert!(err.to_string().contains("channels-last"), "{err}");
        let err = ffi::winograd_conv(&channels_last(&x), &packed, &b, false).unwrap_err();
        assert!(err.to_string().contains("bf16"), "{err}");
        assert!(ffi::winograd_pack(&Tensor::randn([48, 16, 3, 3], cpu), false).is_err());
        // A residual that shares the input's memory (threads would write what others still read).
        let packed = ffi::winograd_pack(&Tensor::randn([32, 32, 3, 3], cpu), true).unwrap();
        let x = channels_last(&Tensor::randn([1, 32, 4, 4], cpu).to_kind(Kind::BFloat16));
        let mut same = x.shallow_clone();
        let err = ffi::winograd_conv_add_(&mut same, &x, &packed, &b, false).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
    }

    /// The max-pool kernel gives libtorch's `max_pool2d` bit for bit: bf16 and fp32, channel
    /// counts that are and are not multiples of 16, windows cut by the edges, negative values.
    /// A NaN makes its windows NaN, as in libtorch (on both paths); anything but a
    /// channels-last bf16 or fp32 tensor is refused.
    #[test]
    fn max_pool_kernel_matches_libtorch() {
        tch::manual_seed(1);
        for (kind, vectors) in [
            (Kind::Float, true),
            (Kind::BFloat16, true),
            (Kind::Float, false),
            (Kind::BFloat16, false),
        ] {
            ffi::layout_vectors(vectors);
            for (c, h, w, k, s, p) in [
                (64, 112, 112, 3, 2, 1),
                (5, 9, 11, 3, 2, 1),
                (17, 8, 7, 2, 2, 0),
                (33, 10, 6, 3, 1, 1),
                (16, 7, 7, 5, 3, 2),
                (3, 1, 1, 1, 1, 0),
            ] {
                let x = Tensor::randn([2, c, h, w], (Kind::Float, Device::Cpu)).to_kind(kind);
                let want = x.max_pool2d([k, k], [s, s], [p, p], [1, 1], false);
                let got = ffi::max_pool_nhwc(&channels_last(&x), [k, k], [s, s], [p, p]).unwrap();
                assert!(is_channels_last(&got));
                assert_eq!(got.size(), want.size());
                assert!(got.equal(&want), "{kind:?} c {c} {h}x{w} k {k} s {s} p {p}");
            }
        }
        ffi::layout_vectors(true);
        for (kind, vectors) in [
            (Kind::Float, true),
            (Kind::BFloat16, true),
            (Kind::BFloat16, false),
        ] {
            ffi::layout_vectors(vectors);
            let x = Tensor::randn([1, 20, 6, 6], (Kind::Float, Device::Cpu));
            let _ = x.get(0).get(3).get(2).get(2).fill_(f64::NAN);
            let _ = x.get(0).get(17).get(5).get(0).fill_(f64::NAN);
            let x = x.to_kind(kind);
            let want = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
            let got = ffi::max_pool_nhwc(&channels_last(&x), [3, 3], [2, 2], [1, 1]).unwrap();
            assert_eq!(got.isnan().sum(Kind::Int64).int64_value(&[]), 2, "{kind:?}");
            assert!(got.isnan().equal(&want.isnan()));
            assert!(
                got.nan_to_num(0.0, None, None)
                    .equal(&want.nan_to_num(0.0, None, None))
            );
        }
        ffi::layout_vectors(true);
        let nchw = Tensor::zeros([1, 20, 6, 6], (Kind::Float, Device::Cpu));
        let err = ffi::max_pool_nhwc(&nchw, [3, 3], [2, 2], [1, 1]).unwrap_err();
        assert!(err.to_string().contains("channels-last"), "{err}");
        let half = channels_last(&nchw.to_kind(Kind::Half));
        assert!(ffi::max_pool_nhwc(&half, [3, 3], [2, 2], [1, 1]).is_err());
        let wide = ffi::max_pool_nhwc(&channels_last(&nchw), [3, 3], [2, 2], [2, 2]).unwrap_err();
        assert!(wide.to_string().contains("half the window"), "{wide}");
    }

    /// The input conversion gives what libtorch's copy into channels-last storage gives, bit for
    /// bit, with bf16's round-to-nearest-even on exact ties.
    #[test]
    fn input_conversion_matches_libtorch() {
        tch::manual_seed(2);
        // 1 + 2^-8 and 1 + 3·2^-8 lie halfway between two bf16 values: even wins.
        let ties =
            Tensor::from_slice(&[1.0f32 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -1.0 - 1.0 / 256.0]);
        // Widths with no tail, tails of 1 and 14 pixels (the RGB path's second store partial).
        for (n, c, h, w) in [
            (2, 3, 224, 224),
            (1, 3, 5, 17),
            (1, 3, 3, 30),
            (3, 20, 4, 33),
            (1, 1, 1, 1),
        ] {
            let x = Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu)) * 100.0;
            if w >= 3 {
                x.get(0).get(0).get(0).narrow(0, 0, 3).copy_(&ties);
            }
            for (kind, bf16, vectors) in [
                (Kind::Float, false, true),
                (Kind::BFloat16, true, true),
                (Kind::BFloat16, true, false),
            ] {
                ffi::layout_vectors(vectors);
                let want = x.permute([0, 2, 3, 1]).to_kind(kind).contiguous();
                let got = ffi::to_channels_last(&x, bf16).unwrap();
                assert!(is_channels_last(&got));
                assert_eq!(got.size(), x.size());
                assert!(
                    got.permute([0, 2, 3, 1]).equal(&want),
                    "{n}x{c}x{h}x{w} {kind:?}"
                );
            }
            ffi::layout_vectors(true);
        }
        // A NaN stays a NaN (its payload aside), on both paths.
        let x = Tensor::randn([1, 3, 2, 20], (Kind::Float, Device::Cpu));
        let _ = x.get(0).get(1).get(1).get(7).fill_(f64::NAN);
        for vectors in [true, false] {
            ffi::layout_vectors(vectors);
            let got = ffi::to_channels_last(&x, true).unwrap();
            assert_eq!(got.isnan().sum(Kind::Int64).int64_value(&[]), 1);
            assert_eq!(got.get(0).get(1).get(1).get(7).isnan().int64_value(&[]), 1);
        }
        ffi::layout_vectors(true);
        let nhwc = channels_last(&Tensor::zeros([1, 3, 4, 5], (Kind::Float, Device::Cpu)));
        let err = ffi::to_channels_last(&nhwc, true).unwrap_err();
        assert!(err.to_string().contains("contiguous"), "{err}");
    }

    /// The buffer cache (`csrc/pool.h`): a kernel's output is the cache's, and once dropped the
    /// next output of its size reuses its memory, with the new values; a buffer in use is never
    /// handed out again. Inside a pass's scope libtorch's own allocations come from the cache
    /// too (and are reused), outside it they do not. (Sizes no other test allocates: the tests
    /// share the process's cache.)
    #[test]
    fn the_buffer_cache_reuses_freed_buffers_inside_a_pass_only() {
        let x = Tensor::randn([1, 3, 37, 41], (Kind::Float, Device::Cpu));
        let first = ffi::to_channels_last(&x, true).unwrap();
        assert!(ffi::pool_owns(&first));
        let ptr = first.data_ptr();
        drop(first);
        assert!(!ffi::pool_owns(&x));
        let y = Tensor::randn([1, 3, 37, 41], (Kind::Float, Device::Cpu));
        let second = ffi::to_channels_last(&y, true).unwrap();
        assert_eq!(second.data_ptr(), ptr, "the freed buffer was not reused");
        let want = y.permute([0, 2, 3, 1]).to_kind(Kind::BFloat16).contiguous();
        assert!(second.permute([0, 2, 3, 1]).equal(&want));
        let third = ffi::to_channels_last(&y, true).unwrap();
        assert_ne!(
            third.data_ptr(),
            second.data_ptr(),
            "a buffer in use was handed out"
        );

        let outside = Tensor::empty([12_347], (Kind::Float, Device::Cpu));
        assert!(!ffi::pool_owns(&outside), "cached outside a pass");
        drop(outside);
        {
            let _scope = ffi::PoolScope::enter();
            let inside = Tensor::empty([12_347], (Kind::Float, Device::Cpu));
            assert!(
                ffi::pool_owns(&inside),
                "libtorch's allocation inside a pass not cached"
            );
            let p = inside.data_ptr();
            drop(inside);
            let again = Tensor::ones([12_347], (Kind::Float, Device::Cpu));
            assert_eq!(again.data_ptr(), p);
            assert_eq!(again.sum(Kind::Double).double_value(&[]), 12_347.0);
        }
        let after = Tensor::empty([12_347], (Kind::Float, Device::Cpu));
        assert!(!ffi::pool_owns(&after), "cached after the pass ended");
    }

    /// A 1×1 convolution as oneDNN's matmul gives the convolution's result: with and without
    /// bias and ReLU, with the residual add, with a residual that is not channels-last, and its
    /// output is channels-last like the convolution's.
    #[test]
    fn matmul_matches_the_convolution() {
        if !ffi::onednn_available()
            || !ffi::onednn_linear_available()
            || !ffi::onednn_supports(Kind::BFloat16)
        {
            eprintln!("libtorch or this CPU runs no bf16 oneDNN matmul: nothing to check here");
            return;
        }
        tch::manual_seed(3);
        let bf = |t: Tensor| t.to_kind(Kind::BFloat16);
        let cpu = (Kind::Float, Device::Cpu);
        let g = Geometry {
            padding: [0, 0],
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
        };
        for (n, ci, co, hw) in [(2, 64, 32, 7), (1, 48, 96, 5)] {
            let x = channels_last(&bf(Tensor::randn([n, ci, hw, hw], cpu)));
            let w = bf(Tensor::randn([co, ci, 1, 1], cpu) * 0.1);
            let b = bf(Tensor::randn([co], cpu));
            let packed = ffi::reorder_conv_weight(&w, &g, &x.size()).unwrap();
            let rows = n * hw * hw;
            let matmul = ffi::reorder_linear_weight(&w.flatten(1, -1), rows).unwrap();
            let other = channels_last(&bf(Tensor::randn([n, co, hw, hw], cpu)));
            for (bias, relu) in [(Some(&b), true), (None, false), (Some(&b), false)] {
                let want = ffi::conv_pointwise(&x, &packed, bias, &g, relu).unwrap();
                let got = run_matmul(&x, &matmul, bias, relu, None).unwrap();
                assert!(is_channels_last(&got));
                assert_eq!(got.size(), want.size());
                let err = (got.to_kind(Kind::Float) - want.to_kind(Kind::Float))
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(err <= 0.05, "{n}x{ci}->{co}: {err}");
                // With the residual, channels-last or not.
                let mut sum = other.copy();
                ffi::conv_add_(&mut sum, &x, &packed, bias, &g, relu).unwrap();
                for residual in [other.shallow_clone(), other.contiguous()] {
                    let got = run_matmul(&x, &matmul, bias, relu, Some(&residual)).unwrap();
                    assert!(is_channels_last(&got));
                    let err = (got.to_kind(Kind::Float) - sum.to_kind(Kind::Float))
                        .abs()
                        .max()
                        .double_value(&[]);
                    assert!(err <= 0.05, "{n}x{ci}->{co} + residual: {err}");
                    if relu {
                        assert_eq!(got.lt(0.0).sum(Kind::Int64).int64_value(&[]), 0);
                    }
                }
            }
        }
    }
}
