// The few libtorch operators the inference mode needs that tch does not bind: oneDNN's
// convolution with fused post-ops (`mkldnn::_convolution_pointwise`, its in-place `.binary`
// overload for the residual add) and the weight pre-packing they read
// (`mkldnn::_reorder_convolution_weight`); oneDNN's matmul with the same post-ops
// (`mkldnn::_linear_pointwise`, `.binary`) and its packing (`_reorder_linear_weight`), which
// can run a 1×1 convolution on channels-last activations faster. torch.compile's freezing pass
// calls the same operators.
//
// Tensors cross the boundary as tch does it: a `torch::Tensor*` owned by the Rust side. Every
// function catches C++ exceptions and returns them as a malloc'ed message (nullptr on success),
// freed with archc_free_error; nothing unwinds into Rust.

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/stack.h>

#include "ffi.h"

#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

using archc::guard;

std::vector<int64_t> ints(const int64_t *p, size_t n) { return std::vector<int64_t>(p, p + n); }

c10::IValue no_scalars() {
  return c10::IValue(c10::List<std::optional<at::Scalar>>());
}

c10::IValue optional_tensor(const at::Tensor *t) {
  return t == nullptr ? c10::IValue() : c10::IValue(*t);
}

c10::IValue optional_string(const char *s) {
  return s == nullptr ? c10::IValue() : c10::IValue(std::string(s));
}

// The geometry's four arguments, as every mkldnn convolution operator takes them in a row.
void push_geometry(torch::jit::Stack &stack, const archc_geometry *g) {
  stack.emplace_back(ints(g->padding, 2));
  stack.emplace_back(ints(g->stride, 2));
  stack.emplace_back(ints(g->dilation, 2));
  stack.emplace_back(g->groups);
}

c10::OperatorHandle op(const char *name, const char *overload) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

}  // namespace

extern "C" {

void archc_free_error(char *error) { std::free(error); }

// 1 when libtorch registers the three convolution operators (a build with oneDNN), else 0.
int archc_onednn_available() {
  auto &d = c10::Dispatcher::singleton();
  return d.findSchema({"mkldnn::_convolution_pointwise", ""}).has_value() &&
         d.findSchema({"mkldnn::_convolution_pointwise_", "binary"}).has_value() &&
         d.findSchema({"mkldnn::_reorder_convolution_weight", ""}).has_value();
}

// 1 when oneDNN runs convolutions in `kind` on this CPU: 0 fp32 (always), 1 bf16, 2 fp16 (libtorch
// refuses bf16 without AVX512-BW/VL/DQ or AVX-NE-CONVERT, and fp16 without AVX512-FP16).
int archc_onednn_supports(int kind) {
  if (kind == 0) return 1;
  const char *name = kind == 1 ? "mkldnn::_is_mkldnn_bf16_supported" : "mkldnn::_is_mkldnn_fp16_supported";
  try {
    auto handle = c10::Dispatcher::singleton().findSchema({name, ""});
    if (!handle.has_value()) return 0;
    torch::jit::Stack stack;
    handle->callBoxed(&stack);
    return stack.at(0).toBool() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

// `weight` (OIHW, the dtype the convolution will run in) pre-packed into oneDNN's blocked layout
// for inputs of `input_size` (N, C, H, W).
char *archc_reorder_conv_weight(const at::Tensor *weight, const archc_geometry *g,
                                const int64_t *input_size, size_t input_dims, at::Tensor **out) {
  return guard([&] {
    static const auto handle = op("mkldnn::_reorder_convolution_weight", "");
    torch::jit::Stack stack{*weight};
    push_geometry(stack, g);
    stack.emplace_back(ints(input_size, input_dims));
    handle.callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
  });
}

// y = unary(conv(x, weight) + bias), unary being "none" or "relu".
char *archc_conv_pointwise(const at::Tensor *x, const at::Tensor *weight, const at::Tensor *bias,
                           const archc_geometry *g, const char *unary, at::Tensor **out) {
  return guard([&] {
    static const auto handle = op("mkldnn::_convolution_pointwise", "");
    torch::jit::Stack stack{*x, *weight, optional_tensor(bias)};
    push_geometry(stack, g);
    for (auto v : {c10::IValue(std::string(unary)), no_scalars(), c10::IValue()})
      stack.push_back(std::move(v));
    handle.callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
  });
}

// other = unary(conv(x, weight) + bias + other), in place; unary is nullptr or "relu".
char *archc_conv_add_(at::Tensor *other, const at::Tensor *x, const at::Tensor *weight,
                      const at::Tensor *bias, const archc_geometry *g, const char *unary) {
  return guard([&] {
    static const auto handle = op("mkldnn::_convolution_pointwise_", "binary");
    torch::jit::Stack stack{*other, *x, *weight, optional_tensor(bias)};
    push_geometry(stack, g);
    for (auto v : {c10::IValue(std::string("add")), c10::IValue(), optional_string(unary),
                   no_scalars(), c10::IValue()})
      stack.push_back(std::move(v));
    handle.callBoxed(&stack);
  });
}

// `weight` ([N, K], the dtype the product will run in) pre-packed for oneDNN's matmul with M =
// `batch` rows.
char *archc_reorder_linear_weight(const at::Tensor *weight, int64_t batch, at::Tensor **out) {
  return guard([&] {
    static const auto handle = op("mkldnn::_reorder_linear_weight", "");
    torch::jit::Stack stack{*weight, c10::IValue(batch)};
    handle.callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
  });
}

// y = unary(x · weightᵀ + bias) for x [M, K]; unary is "none" or "relu".
char *archc_linear_pointwise(const at::Tensor *x, const at::Tensor *weight, const at::Tensor *bias,
                             const char *unary, at::Tensor **out) {
  return guard([&] {
    static const auto handle = op("mkldnn::_linear_pointwise", "");
    torch::jit::Stack stack{*x, *weight, optional_tensor(bias)};
    for (auto v : {c10::IValue(std::string(unary)), no_scalars(), c10::IValue()})
      stack.push_back(std::move(v));
    handle.callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
  });
}

// y = x · weightᵀ + bias + other for x [M, K], other [M, N] (a new tensor).
char *archc_linear_add(const at::Tensor *x, const at::Tensor *other, const at::Tensor *weight,
                       const at::Tensor *bias, at::Tensor **out) {
  return guard([&] {
    static const auto handle = op("mkldnn::_linear_pointwise", "binary");
    torch::jit::Stack stack{*x, *other, *weight, optional_tensor(bias),
                            c10::IValue(std::string("add"))};
    handle.callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
  });
}

// 1 when libtorch registers oneDNN's matmul operators (`_linear_pointwise` and its packing).
int archc_onednn_linear_available() {
  auto &d = c10::Dispatcher::singleton();
  return d.findSchema({"mkldnn::_linear_pointwise", ""}).has_value() &&
         d.findSchema({"mkldnn::_linear_pointwise", "binary"}).has_value() &&
         d.findSchema({"mkldnn::_reorder_linear_weight", ""}).has_value();
}

// Keeps freed memory in the process: glibc then serves every allocation from its heap (no
// mmap) and never trims the heap, so a pass's large activations reuse the pages the previous
// pass freed instead of faulting in fresh zeroed ones. 1 on success; 0 where the C library is
// not glibc.
int archc_keep_freed_memory() {
#if defined(__GLIBC__)
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, -1) == 1;
#else
  return 0;
#endif
}

}  // extern "C"
