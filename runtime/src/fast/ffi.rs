//! The crate's one foreign-function boundary: `csrc/onednn.cpp` (libtorch's oneDNN operators
//! that tch does not bind, called through libtorch's dispatcher), `csrc/peak.cpp` (the
//! peak-FLOP/s probe), `csrc/grouped.cpp` (the grouped 3×3 kernel), `csrc/winograd.cpp` (the
//! Winograd kernel for dense 3×3s), `csrc/stem.cpp` (the AMX stem kernel), `csrc/direct.cpp` (the AMX direct 3×3
//! kernel), `csrc/pointwise.cpp` (the AMX 1×1 kernel with a second input), `csrc/layout.cpp`
//! (max-pooling and the input's conversion to channels-last), `csrc/sgd.cpp` (PyTorch's fused
//! SGD) and `csrc/cuda_graph.cpp` (PyTorch's CUDA graphs). Tensors cross it as tch passes them, a
//! pointer to a `torch::Tensor`; the C++ side catches every exception and returns its message, so
//! nothing unwinds across the boundary.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use tch::{TchError, Tensor};
use torch_sys::C_tensor;

unsafe extern "C" {
    fn archc_free_error(error: *mut c_char);
    fn archc_onednn_available() -> c_int;
    fn archc_onednn_supports(kind: c_int) -> c_int;
    fn archc_keep_freed_memory() -> c_int;
    fn archc_reorder_conv_weight(
        weight: *const C_tensor,
        g: *const Geometry,
        input_size: *const i64,
        input_dims: usize,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn archc_conv_pointwise(
        x: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        g: *const Geometry,
        unary: *const c_char,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn archc_conv_add_(
        other: *mut C_tensor,
        x: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        g: *const Geometry,
        unary: *const c_char,
    ) -> *mut c_char;
    fn archc_onednn_linear_available() -> c_int;
    fn archc_reorder_linear_weight(
        weight: *const C_tensor,
        batch: i64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn archc_linear_pointwise(
        x: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        unary: *const c_char,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn archc_linear_add(
        x: *const C_tensor,
        other: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_grouped_supported(cpg: i64) -> c_int;
    #[cfg(target_arch = "x86_64")]
    fn archc_grouped_amx() -> c_int;
    #[cfg(target_arch = "x86_64")]
    fn archc_grouped_f32_supported(cpg: i64) -> c_int;
    #[cfg(target_arch = "x86_64")]
    fn archc_grouped_pack_f32(
        weight: *const C_tensor,
        cpg: i64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_grouped_pack(
        weight: *const C_tensor,
        cpg: i64,
        amx: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_grouped_conv(
        x: *const C_tensor,
        packed: *const C_tensor,
        bias: *const C_tensor,
        stride: i64,
        cpg: i64,
        relu: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_direct_supported() -> c_int;
    #[cfg(target_arch = "x86_64")]
    fn archc_direct_pack(weight: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_direct_conv(
        x: *const C_tensor,
        packed: *const C_tensor,
        bias: *const C_tensor,
        stride: i64,
        relu: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_pointwise_supported() -> c_int;
    #[cfg(target_arch = "x86_64")]
    fn archc_pointwise_pack(weight: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_pointwise_conv(
        x: *const C_tensor,
        x2: *const C_tensor,
        stride2: i64,
        packed: *const C_tensor,
        bias: *const C_tensor,
        other: *mut C_tensor,
        relu: c_int,
        amx: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(all(target_arch = "x86_64", test))]
    fn archc_pointwise_amx() -> c_int;
    #[cfg(target_arch = "x86_64")]
    fn archc_stem_supported(cin: i64, kw: i64) -> c_int;
    #[cfg(target_arch = "x86_64")]
    fn archc_stem_pack(weight: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_stem_conv(
        x: *const C_tensor,
        packed: *const C_tensor,
        bias: *const C_tensor,
        cin: i64,
        kh: i64,
        kw: i64,
        g: *const Geometry,
        pool_kernel: *const i64,
        pool_stride: *const i64,
        pool_pad: *const i64,
        relu: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn archc_fused_sgd(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        bufs: *const *const C_tensor,
        n: usize,
        weight_decay: f64,
        momentum: f64,
        lr: f64,
        nesterov: c_int,
    ) -> *mut c_char;
    fn archc_foreach_copy(
        dst: *const *const C_tensor,
        src: *const *const C_tensor,
        n: usize,
    ) -> *mut c_char;
    fn archc_max_pool_nhwc(
        x: *const C_tensor,
        kernel: *const i64,
        stride: *const i64,
        pad: *const i64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(test)]
    fn archc_layout_vectors(on: c_int) -> c_int;
    fn archc_pool_cached_bytes() -> i64;
    fn archc_pool_scope(enter: c_int);
    fn archc_pool_clear();
    #[cfg(test)]
    fn archc_pool_owns(t: *const C_tensor) -> c_int;
    fn archc_global_avg_pool_nhwc(x: *const C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    fn archc_to_channels_last(
        x: *const C_tensor,
        bf16: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn archc_cuda_graphs_available() -> c_int;
    fn archc_cuda_side_stream_enter(device: c_int, out: *mut *mut c_void) -> *mut c_char;
    fn archc_cuda_side_stream_exit(side: *mut c_void) -> *mut c_char;
    fn archc_cuda_graph_new(out: *mut *mut c_void) -> *mut c_char;
    fn archc_cuda_graph_free(graph: *mut c_void);
    fn archc_cuda_graph_begin(graph: *mut c_void) -> *mut c_char;
    fn archc_cuda_graph_end(graph: *mut c_void) -> *mut c_char;
    fn archc_cuda_graph_replay(graph: *mut c_void) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_winograd_supported(bf16: c_int) -> c_int;
    #[cfg(target_arch = "x86_64")]
    fn archc_winograd_pack(
        weight: *const C_tensor,
        bf16: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_winograd_conv(
        x: *const C_tensor,
        packed: *const C_tensor,
        bias: *const C_tensor,
        res: *mut C_tensor,
        relu: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    #[cfg(target_arch = "x86_64")]
    fn archc_peak_flops(kind: c_int, threads: c_int, seconds: f64) -> f64;
}

/// Turns the C++ side's error message (null: success) into a `Result`, freeing it.
fn check(error: *mut c_char) -> Result<(), TchError> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error is a NUL-terminated string malloc'ed by the C++ side, read once
    // and freed once here.
    let message = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    unsafe { archc_free_error(error) };
    Err(TchError::Torch(message))
}

/// Runs a C++ call that writes a new tensor into its `out` argument, and takes ownership of it.
fn returning(call: impl FnOnce(*mut *mut C_tensor) -> *mut c_char) -> Result<Tensor, TchError> {
    let mut out = std::ptr::null_mut();
    check(call(&mut out))?;
    // SAFETY: on success the C++ side wrote a fresh `new torch::Tensor` into `out`, owned by
    // nobody else; tch's `Tensor` frees it on drop.
    Ok(unsafe { Tensor::from_ptr(out) })
}

fn bias_ptr(bias: Option<&Tensor>) -> *const C_tensor {
    bias.map_or(std::ptr::null(), Tensor::as_ptr)
}

/// The convolution's geometry, as oneDNN's operators take it (`archc_geometry` in
/// `csrc/ffi.h`: the same fields in the same order).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Geometry {
    pub padding: [i64; 2],
    pub stride: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

/// Whether this libtorch has the oneDNN operators (a build with oneDNN; every x86-64 and
/// aarch64 wheel has them).
pub(crate) fn onednn_available() -> bool {
    // SAFETY: takes and returns plain values.
    unsafe { archc_onednn_available() != 0 }
}

/// Whether oneDNN runs convolutions in `kind` on this CPU (fp32 always; bf16 and fp16 only where
/// libtorch says the CPU has the instructions for them).
pub(crate) fn onednn_supports(kind: tch::Kind) -> bool {
    let code = match kind {
        tch::Kind::Float => 0,
        tch::Kind::BFloat16 => 1,
        tch::Kind::Half => 2,
        _ => return false,
    };
    // SAFETY: takes and returns plain values; the C++ side catches everything.
    unsafe { archc_onednn_supports(code) != 0 }
}

/// Makes glibc keep freed memory in the process (see `fast::keep_freed_memory`).
pub(crate) fn keep_freed_memory() -> bool {
    // SAFETY: takes no arguments; mallopt only changes the allocator's thresholds.
    unsafe { archc_keep_freed_memory() != 0 }
}

/// `weight` pre-packed into oneDNN's blocked layout for inputs of `input_size`.
pub(crate) fn reorder_conv_weight(
    weight: &Tensor,
    g: &Geometry,
    input_size: &[i64],
) -> Result<Tensor, TchError> {
    // SAFETY: every pointer is valid for the call: the tensor and the geometry are borrowed,
    // `input_size` has `input_size.len()` elements, `out` is written once on success.
    returning(|out| unsafe {
        archc_reorder_conv_weight(
            weight.as_ptr(),
            g,
            input_size.as_ptr(),
            input_size.len(),
            out,
        )
    })
}

/// `relu?(conv(x, weight) + bias)` as one oneDNN primitive.
pub(crate) fn conv_pointwise(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: &Geometry,
    relu: bool,
) -> Result<Tensor, TchError> {
    let unary = CString::new(if relu { "relu" } else { "none" }).expect("no NUL");
    // SAFETY: as in `reorder_conv_weight`; `unary` lives across the call.
    returning(|out| unsafe {
        archc_conv_pointwise(
            x.as_ptr(),
            weight.as_ptr(),
            bias_ptr(bias),
            g,
            unary.as_ptr(),
            out,
        )
    })
}

/// `other ← relu?(conv(x, weight) + bias + other)`, in place, as one oneDNN primitive (the
/// residual add as a post-op).
pub(crate) fn conv_add_(
    other: &mut Tensor,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: &Geometry,
    relu: bool,
) -> Result<(), TchError> {
    let relu_name = CString::new("relu").expect("no NUL");
    let unary = if relu {
        relu_name.as_ptr()
    } else {
        std::ptr::null()
    };
    // SAFETY: as in `conv_pointwise`; `other` is borrowed mutably, so no one else reads it while
    // oneDNN writes into it.
    let error = unsafe {
        archc_conv_add_(
            other.as_mut_ptr(),
            x.as_ptr(),
            weight.as_ptr(),
            bias_ptr(bias),
            g,
            unary,
        )
    };
    check(error)
}

/// Whether libtorch has oneDNN's matmul operators (`mkldnn::_linear_pointwise` and
/// `_reorder_linear_weight`).
pub(crate) fn onednn_linear_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: takes nothing, returns a plain value; looks operators up in libtorch's registry.
    *AVAILABLE.get_or_init(|| unsafe { archc_onednn_linear_available() != 0 })
}

/// `weight` ([N, K]) pre-packed for oneDNN's matmul with `batch` rows.
pub(crate) fn reorder_linear_weight(weight: &Tensor, batch: i64) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call; `out` is written once on success.
    returning(|out| unsafe { archc_reorder_linear_weight(weight.as_ptr(), batch, out) })
}

/// `relu?(x · weightᵀ + bias)` for `x` [M, K], by oneDNN's matmul with its ReLU as a post-op.
pub(crate) fn linear_pointwise(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    relu: bool,
) -> Result<Tensor, TchError> {
    let unary = CString::new(if relu { "relu" } else { "none" }).expect("no NUL");
    // SAFETY: the tensors are borrowed for the call, `unary` lives across it; `out` is written
    // once on success.
    returning(|out| unsafe {
        archc_linear_pointwise(
            x.as_ptr(),
            weight.as_ptr(),
            bias_ptr(bias),
            unary.as_ptr(),
            out,
        )
    })
}

/// `x · weightᵀ + bias + other` for `x` [M, K] and `other` [M, N], by oneDNN's matmul with the
/// add as a post-op; a new tensor.
pub(crate) fn linear_add(
    x: &Tensor,
    other: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor, TchError> {
    // SAFETY: the tensors are borrowed for the call; `out` is written once on success.
    returning(|out| unsafe {
        archc_linear_add(
            x.as_ptr(),
            other.as_ptr(),
            weight.as_ptr(),
            bias_ptr(bias),
            out,
        )
    })
}

/// `max_pool2d(x, kernel, stride, pad)` (dilation 1, floor rounding) on a bf16 or fp32
/// channels-last CPU tensor by `csrc/layout.cpp`: libtorch's result bit for bit (NaN payloads
/// aside), several times faster than libtorch's channels-last kernel. The result is
/// channels-last.
pub(crate) fn max_pool_nhwc(
    x: &Tensor,
    kernel: [i64; 2],
    stride: [i64; 2],
    pad: [i64; 2],
) -> Result<Tensor, TchError> {
    // SAFETY: the tensor and the three arrays are borrowed for the call; the C++ side checks the
    // tensor's device, dtype and layout before reading it; `out` is written once on success.
    returning(|out| unsafe {
        archc_max_pool_nhwc(
            x.as_ptr(),
            kernel.as_ptr(),
            stride.as_ptr(),
            pad.as_ptr(),
            out,
        )
    })
}

/// Each channel's mean over the map of a bf16 or fp32 channels-last CPU tensor, by
/// `csrc/layout.cpp` (summed in fp32 pixel by pixel, as libtorch's channels-last kernel does):
/// `adaptive_avg_pool2d(x, 1)`, [N, C, 1, 1] of x's type.
pub(crate) fn global_avg_pool_nhwc(x: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call and checked on the C++ side; `out` is written
    // once on success.
    returning(|out| unsafe { archc_global_avg_pool_nhwc(x.as_ptr(), out) })
}

/// A contiguous fp32 NCHW CPU batch converted, in one pass, to bf16 (`bf16`) or fp32 in
/// channels-last storage; bf16 rounds to nearest even, as libtorch does.
pub(crate) fn to_channels_last(x: &Tensor, bf16: bool) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call and checked on the C++ side; `out` is written
    // once on success.
    returning(|out| unsafe { archc_to_channels_last(x.as_ptr(), c_int::from(bf16), out) })
}

/// Bytes of freed buffers that the buffer cache (`csrc/pool.h`) holds now.
pub(crate) fn pool_cached_bytes() -> i64 {
    // SAFETY: takes nothing, returns a plain value.
    unsafe { archc_pool_cached_bytes() }
}

/// Gives the buffer cache's memory back to the system.
pub(crate) fn pool_clear() {
    // SAFETY: takes nothing; cached buffers are owned by the cache alone.
    unsafe { archc_pool_clear() }
}

/// Whether `t`'s data is a block the buffer cache handed out (and that is in use).
#[cfg(test)]
pub(crate) fn pool_owns(t: &Tensor) -> bool {
    // SAFETY: the tensor is borrowed for the call, which only reads its data pointer.
    unsafe { archc_pool_owns(t.as_ptr()) != 0 }
}

/// While alive, the calling thread's CPU allocations (libtorch's and oneDNN's included) come
/// from the buffer cache (`csrc/pool.h`, installed as c10's CPU allocator on first use); scopes
/// nest. Not `Send`: the scope belongs to the thread that entered it.
pub(crate) struct PoolScope(std::marker::PhantomData<*const ()>);

impl PoolScope {
    pub(crate) fn enter() -> PoolScope {
        // SAFETY: takes and returns plain values; the C++ side counts nested scopes.
        unsafe { archc_pool_scope(1) };
        PoolScope(std::marker::PhantomData)
    }
}

impl Drop for PoolScope {
    fn drop(&mut self) {
        // SAFETY: as in `enter`; one exit per enter.
        unsafe { archc_pool_scope(0) };
    }
}

/// Lets `csrc/layout.cpp`'s kernels use AVX-512 (the default) or only their portable paths,
/// which give the same bits: tests check both on one machine. Returns the previous setting.
#[cfg(test)]
pub(crate) fn layout_vectors(on: bool) -> bool {
    // SAFETY: takes and returns plain values.
    unsafe { archc_layout_vectors(c_int::from(on)) != 0 }
}

/// Whether this CPU runs `csrc/grouped.cpp`'s bf16 grouped 3×3 kernel for `cpg` channels per
/// group (AVX512-BF16: 4, 8, 16 or 32 channels per group; AMX: 4, 8 or 16).
pub(crate) fn grouped_supported(cpg: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: takes and returns plain values.
        unsafe { archc_grouped_supported(cpg) != 0 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cpg;
        false
    }
}

/// Whether this CPU runs `csrc/grouped.cpp`'s fp32 grouped 3×3 kernel for `cpg` channels per
/// group (4, 8, 16 or 32, AVX-512).
pub(crate) fn grouped_f32_supported(cpg: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: takes and returns plain values.
        unsafe { archc_grouped_f32_supported(cpg) != 0 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cpg;
        false
    }
}

/// A grouped 3×3 weight (OIHW, O = C, I = `cpg`: 4, 8, 16 or 32) packed for the fp32 grouped kernel,
/// which [`grouped_conv`] then runs on fp32 input.
#[cfg(target_arch = "x86_64")]
pub(crate) fn grouped_pack_f32(weight: &Tensor, cpg: i64) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call; `out` is written once on success.
    returning(|out| unsafe { archc_grouped_pack_f32(weight.as_ptr(), cpg, out) })
}

/// Whether the grouped kernel runs on AMX tiles here (AMX-BF16, and Linux lent the process the
/// tile state).
#[cfg(target_arch = "x86_64")]
pub(crate) fn grouped_amx() -> bool {
    // SAFETY: takes and returns plain values.
    unsafe { archc_grouped_amx() != 0 }
}

/// A grouped 3×3 weight (OIHW, O = C, I = `cpg`) packed for the grouped kernel: for its AMX
/// path where [`grouped_amx`] and the groups fit its tiles (4, 8 or 16 channels), else for its
/// AVX512-BF16 path (4, 8, 16 or 32).
#[cfg(target_arch = "x86_64")]
pub(crate) fn grouped_pack(weight: &Tensor, cpg: i64) -> Result<Tensor, TchError> {
    grouped_pack_for(weight, cpg, grouped_amx() && cpg <= 16)
}

/// [`grouped_pack`] for the path `amx` says (an error where AMX is asked for and missing).
#[cfg(target_arch = "x86_64")]
pub(crate) fn grouped_pack_for(weight: &Tensor, cpg: i64, amx: bool) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call; `out` is written once on success.
    returning(|out| unsafe { archc_grouped_pack(weight.as_ptr(), cpg, c_int::from(amx), out) })
}

/// `relu?(grouped_conv3x3(x) + bias)` with padding 1 on channels-last `x`, bf16 or fp32 as the
/// weight was packed ([`grouped_pack`] or [`grouped_pack_f32`]); `bias` in fp32.
#[cfg(target_arch = "x86_64")]
pub(crate) fn grouped_conv(
    x: &Tensor,
    packed: &Tensor,
    bias: &Tensor,
    stride: i64,
    cpg: i64,
    relu: bool,
) -> Result<Tensor, TchError> {
    // SAFETY: the tensors are borrowed for the call; the kernel checks their dtypes, layouts and
    // sizes before reading them; `out` is written once on success.
    returning(|out| unsafe {
        archc_grouped_conv(
            x.as_ptr(),
            packed.as_ptr(),
            bias.as_ptr(),
            stride,
            cpg,
            c_int::from(relu),
            out,
        )
    })
}

/// Whether this CPU runs `csrc/direct.cpp`'s bf16 AMX 3×3 kernel.
pub(crate) fn direct_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: takes and returns plain values.
        unsafe { archc_direct_supported() != 0 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A 3×3 OIHW weight (channels multiples of 32) packed for the direct kernel.
#[cfg(target_arch = "x86_64")]
pub(crate) fn direct_pack(weight: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call; `out` is written once on success.
    returning(|out| unsafe { archc_direct_pack(weight.as_ptr(), out) })
}

/// `relu?(conv3x3(x) + bias)`, stride 1 or 2, padding 1, on bf16 channels-last `x` with a weight
/// from [`direct_pack`]; bf16 channels-last.
#[cfg(target_arch = "x86_64")]
pub(crate) fn direct_conv(
    x: &Tensor,
    packed: &Tensor,
    bias: &Tensor,
    stride: i64,
    relu: bool,
) -> Result<Tensor, TchError> {
    // SAFETY: the tensors are borrowed for the call; the kernel checks their dtypes, layouts
    // and sizes before reading them; `out` is written once on success.
    returning(|out| unsafe {
        archc_direct_conv(
            x.as_ptr(),
            packed.as_ptr(),
            bias.as_ptr(),
            stride,
            c_int::from(relu),
            out,
        )
    })
}

/// Whether this CPU runs `csrc/pointwise.cpp`'s bf16 AMX 1×1 kernel.
pub(crate) fn pointwise_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: takes and returns plain values.
        unsafe { archc_pointwise_supported() != 0 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A 1×1 OIHW weight (channels multiples of 32) packed for the pointwise kernel.
#[cfg(target_arch = "x86_64")]
pub(crate) fn pointwise_pack(weight: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call; `out` is written once on success.
    returning(|out| unsafe { archc_pointwise_pack(weight.as_ptr(), out) })
}

/// `relu?(W · [x | x2 at stride s] + bias (+ other))` on bf16 channels-last inputs, with a
/// weight from [`pointwise_pack`] over both inputs' channels: `x2` (with its stride) is read at
/// pixel (s·oy, s·ox) of its map. With `other` the result is written into it (and returned);
/// else a new bf16 channels-last tensor. On AMX tiles where the CPU has them, else on
/// AVX512-BF16.
#[cfg(target_arch = "x86_64")]
pub(crate) fn pointwise_conv(
    x: &Tensor,
    x2: Option<(&Tensor, i64)>,
    packed: &Tensor,
    bias: &Tensor,
    other: Option<&mut Tensor>,
    relu: bool,
) -> Result<Tensor, TchError> {
    pointwise_conv_on(x, x2, packed, bias, other, relu, true)
}

/// Whether [`pointwise_conv`] runs on AMX tiles on this CPU.
#[cfg(all(target_arch = "x86_64", test))]
pub(crate) fn pointwise_amx() -> bool {
    // SAFETY: takes and returns plain values.
    unsafe { archc_pointwise_amx() != 0 }
}

/// [`pointwise_conv`], on AMX tiles only where `amx` allows them (else on AVX512-BF16).
#[cfg(target_arch = "x86_64")]
pub(crate) fn pointwise_conv_on(
    x: &Tensor,
    x2: Option<(&Tensor, i64)>,
    packed: &Tensor,
    bias: &Tensor,
    other: Option<&mut Tensor>,
    relu: bool,
    amx: bool,
) -> Result<Tensor, TchError> {
    let (x2, stride2) = match x2 {
        Some((t, s)) => (t.as_ptr(), s),
        None => (std::ptr::null(), 1),
    };
    let other = other.map_or(std::ptr::null_mut(), |t| t.as_mut_ptr());
    // SAFETY: the tensors are borrowed for the call (`other` mutably, so no one else reads it
    // while the kernel writes it); the kernel checks their dtypes, layouts and sizes before
    // reading them; `out` is written once on success.
    returning(|out| unsafe {
        archc_pointwise_conv(
            x.as_ptr(),
            x2,
            stride2,
            packed.as_ptr(),
            bias.as_ptr(),
            other,
            c_int::from(relu),
            c_int::from(amx),
            out,
        )
    })
}

/// Whether this CPU runs `csrc/stem.cpp`'s bf16 kernel (AMX, else AVX512-BF16) for a
/// convolution with `cin` input channels and a kernel `kw` wide (a kernel row's `kw · cin`
/// values, `cin` padded to make them even, fill at most one 32-value tile row).
pub(crate) fn stem_supported(cin: i64, kw: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: takes and returns plain values.
        unsafe { archc_stem_supported(cin, kw) != 0 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (cin, kw);
        false
    }
}

/// An OIHW weight (O a multiple of 32) packed for the stem kernel on this CPU's path: one bf16
/// block of K pairs × 16 channels per 16-channel block and kernel row (on AMX a B tile).
#[cfg(target_arch = "x86_64")]
pub(crate) fn stem_pack(weight: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call; `out` is written once on success.
    returning(|out| unsafe { archc_stem_pack(weight.as_ptr(), out) })
}

/// The max-pool fused into the stem kernel: kernel, stride and padding (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub pad: [i64; 2],
}

/// `relu?(conv(x) + bias)` on bf16 channels-last `x` with a weight from [`stem_pack`] of
/// `cin` input channels and `kernel` (height, width), then, with `pool`, `max_pool2d` over it
/// (dilation 1, floor rounding); bf16 channels-last, `bias` in fp32. An input with other than
/// `cin` channels is refused.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn stem_conv(
    x: &Tensor,
    packed: &Tensor,
    bias: &Tensor,
    cin: i64,
    kernel: [i64; 2],
    g: &Geometry,
    pool: Option<&PoolGeometry>,
    relu: bool,
) -> Result<Tensor, TchError> {
    let none = std::ptr::null();
    let (pk, ps, pp) = pool.map_or((none, none, none), |p| {
        (p.kernel.as_ptr(), p.stride.as_ptr(), p.pad.as_ptr())
    });
    // SAFETY: the tensors, the geometry and the pool's arrays are borrowed for the call; the
    // kernel checks the tensors' devices, dtypes, layouts and sizes before reading them; `out`
    // is written once on success.
    returning(|out| unsafe {
        archc_stem_conv(
            x.as_ptr(),
            packed.as_ptr(),
            bias.as_ptr(),
            cin,
            kernel[0],
            kernel[1],
            g,
            pk,
            ps,
            pp,
            c_int::from(relu),
            out,
        )
    })
}

/// Whether this CPU runs `csrc/winograd.cpp`'s Winograd F(2×2, 3×3) kernel in bf16
/// (AVX512-BF16) or fp32 (AVX-512).
pub(crate) fn winograd_supported(bf16: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: takes and returns plain values.
        unsafe { archc_winograd_supported(c_int::from(bf16)) != 0 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = bf16;
        false
    }
}

/// A dense 3×3 weight (OIHW, C_out a multiple of 32, C_in of 16; fp32 for the best rounding)
/// transformed and packed for the Winograd kernel in bf16 or fp32.
#[cfg(target_arch = "x86_64")]
pub(crate) fn winograd_pack(weight: &Tensor, bf16: bool) -> Result<Tensor, TchError> {
    // SAFETY: the tensor is borrowed for the call; `out` is written once on success.
    returning(|out| unsafe { archc_winograd_pack(weight.as_ptr(), c_int::from(bf16), out) })
}

/// `relu?(conv3x3(x) + bias)`, stride 1 and padding 1, on channels-last `x` (bf16 or fp32, the
/// packed weight's type) by the Winograd kernel; `bias` in fp32; a new channels-last tensor.
#[cfg(target_arch = "x86_64")]
pub(crate) fn winograd_conv(
    x: &Tensor,
    packed: &Tensor,
    bias: &Tensor,
    relu: bool,
) -> Result<Tensor, TchError> {
    // SAFETY: the tensors are borrowed for the call; the kernel checks their devices, dtypes,
    // layouts and sizes before reading them; with no residual, `out` is written once on success.
    returning(|out| unsafe {
        archc_winograd_conv(
            x.as_ptr(),
            packed.as_ptr(),
            bias.as_ptr(),
            std::ptr::null_mut(),
            c_int::from(relu),
            out,
        )
    })
}

/// `res ← relu?(conv3x3(x) + bias + res)`, in place, by the Winograd kernel (the residual add
/// fused, as [`conv_add_`] fuses it into oneDNN's convolution).
#[cfg(target_arch = "x86_64")]
pub(crate) fn winograd_conv_add_(
    res: &mut Tensor,
    x: &Tensor,
    packed: &Tensor,
    bias: &Tensor,
    relu: bool,
) -> Result<(), TchError> {
    let mut unused = std::ptr::null_mut();
    // SAFETY: as in `winograd_conv`; `res` is borrowed mutably, and the kernel refuses an `x`
    // whose memory overlaps it (tch handles may share storage), so nothing it reads is written
    // under it; with a residual the kernel writes nothing into `unused`.
    check(unsafe {
        archc_winograd_conv(
            x.as_ptr(),
            packed.as_ptr(),
            bias.as_ptr(),
            res.as_mut_ptr(),
            c_int::from(relu),
            &mut unused,
        )
    })
}

/// The instruction a peak probe runs (`csrc/peak.cpp`'s kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// AVX-512 FMA, fp32.
    Fma = 0,
    /// AVX512-BF16 `vdpbf16ps`.
    Avx512Bf16 = 1,
    /// AMX `tdpbf16ps`.
    Amx = 2,
}

/// The FLOP/s `threads` threads reach together running `unit` in a loop; `None` where the CPU
/// lacks it (or the kernel does not lend the process AMX's tile state).
pub(crate) fn peak_flops(unit: Unit, threads: usize, seconds: f64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let threads = c_int::try_from(threads.max(1)).unwrap_or(c_int::MAX);
        // SAFETY: takes and returns plain values; the probe only runs arithmetic on its threads.
        let flops = unsafe { archc_peak_flops(unit as c_int, threads, seconds) };
        (flops > 0.0).then_some(flops)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (unit, threads, seconds);
        None
    }
}

/// Whether this build can capture CUDA graphs (libtorch with CUDA and the CUDA runtime's headers
/// at build time).
pub(crate) fn cuda_graphs_available() -> bool {
    // SAFETY: takes and returns plain values.
    unsafe { archc_cuda_graphs_available() != 0 }
}

/// A stream from libtorch's pool made the current one on a CUDA device (CUDA cannot capture the
/// default stream); dropping it waits for the device and makes the previous stream current again.
pub(crate) struct SideStream(*mut c_void);

impl SideStream {
    /// Waits for `device`, then makes a side stream current on it.
    pub(crate) fn enter(device: usize) -> Result<SideStream, TchError> {
        let device = c_int::try_from(device)
            .map_err(|_| TchError::Torch(format!("CUDA device index {device}")))?;
        let mut out = std::ptr::null_mut();
        // SAFETY: `out` is written once on success with a handle owned by the new `SideStream`.
        check(unsafe { archc_cuda_side_stream_enter(device, &mut out) })?;
        Ok(SideStream(out))
    }

    /// Waits for the side stream and restores the previous one, reporting libtorch's error.
    pub(crate) fn exit(mut self) -> Result<(), TchError> {
        let handle = std::mem::replace(&mut self.0, std::ptr::null_mut());
        // SAFETY: the handle came from `archc_cuda_side_stream_enter` and is given back once
        // (`Drop` sees null afterwards).
        check(unsafe { archc_cuda_side_stream_exit(handle) })
    }
}

impl Drop for SideStream {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: as in `exit`; an error here has no one to report to (an unwinding caller).
            let _ = check(unsafe { archc_cuda_side_stream_exit(self.0) });
        }
    }
}

/// One `at::cuda::CUDAGraph`: captured once, replayed many times; freed on drop with its memory
/// pool.
pub(crate) struct CudaGraph(*mut c_void);

impl CudaGraph {
    pub(crate) fn new() -> Result<CudaGraph, TchError> {
        let mut out = std::ptr::null_mut();
        // SAFETY: `out` is written once on success with a graph owned by the new `CudaGraph`.
        check(unsafe { archc_cuda_graph_new(&mut out) })?;
        Ok(CudaGraph(out))
    }

    /// Starts capturing the current stream (a [`SideStream`]) into the graph.
    pub(crate) fn begin(&mut self) -> Result<(), TchError> {
        // SAFETY: the graph is alive and borrowed mutably for the call.
        check(unsafe { archc_cuda_graph_begin(self.0) })
    }

    /// Ends the capture and instantiates the graph.
    pub(crate) fn end(&mut self) -> Result<(), TchError> {
        // SAFETY: as in `begin`.
        check(unsafe { archc_cuda_graph_end(self.0) })
    }

    /// Launches the captured work on the current stream.
    pub(crate) fn replay(&mut self) -> Result<(), TchError> {
        // SAFETY: as in `begin`.
        check(unsafe { archc_cuda_graph_replay(self.0) })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: the graph came from `archc_cuda_graph_new` and is freed once, here.
        unsafe { archc_cuda_graph_free(self.0) }
    }
}

impl std::fmt::Debug for CudaGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CudaGraph")
    }
}

fn pointers(ts: &[&Tensor]) -> Vec<*const C_tensor> {
    ts.iter().map(|t| t.as_ptr()).collect()
}

/// PyTorch's fused SGD step over parameters of one number type and device, in place (see
/// `csrc/sgd.cpp`); `bufs` are the momentum buffers (not read when `momentum` is 0).
pub(crate) struct SgdGroup<'a> {
    pub params: &'a [&'a Tensor],
    pub grads: &'a [&'a Tensor],
    pub bufs: &'a [&'a Tensor],
}

pub(crate) fn fused_sgd(
    group: &SgdGroup<'_>,
    weight_decay: f64,
    momentum: f64,
    lr: f64,
    nesterov: bool,
) -> Result<(), TchError> {
    let n = group.params.len();
    if group.grads.len() != n || group.bufs.len() != n {
        return Err(TchError::Torch(format!(
            "fused SGD: {n} parameters, {} gradients, {} buffers",
            group.grads.len(),
            group.bufs.len()
        )));
    }
    let (p, g, b) = (
        pointers(group.params),
        pointers(group.grads),
        pointers(group.bufs),
    );
    // SAFETY: three arrays of `n` live tensors, borrowed for the call; libtorch changes the
    // parameters and buffers in place, which their owners expect of an optimizer step.
    check(unsafe {
        archc_fused_sgd(
            p.as_ptr(),
            g.as_ptr(),
            b.as_ptr(),
            n,
            weight_decay,
            momentum,
            lr,
            c_int::from(nesterov),
        )
    })
}

/// `dst[i] ← src[i]` for every pair, converting the number type, as one multi-tensor operation.
pub(crate) fn foreach_copy(dst: &[&Tensor], src: &[&Tensor]) -> Result<(), TchError> {
    if dst.len() != src.len() {
        return Err(TchError::Torch(format!(
            "foreach copy: {} destinations, {} sources",
            dst.len(),
            src.len()
        )));
    }
    let (d, s) = (pointers(dst), pointers(src));
    // SAFETY: two arrays of `dst.len()` live tensors, borrowed for the call; the destinations
    // are written in place.
    check(unsafe { archc_foreach_copy(d.as_ptr(), s.as_ptr(), d.len()) })
}
