// PyTorch's fused SGD (`at::_fused_sgd_`, what `torch.optim.SGD(fused=True)` runs) and its
// multi-tensor copy (`at::_foreach_copy_`), which tch does not bind: one launch for every
// parameter of a group instead of several per parameter (src/train/sgd.rs). Tensors cross as
// arrays of `torch::Tensor*` owned by the Rust side; errors as in onednn.cpp.

#include <ATen/core/Tensor.h>
#include <ATen/ops/_foreach_copy.h>
#include <ATen/ops/_fused_sgd.h>

#include "ffi.h"

#include <vector>

namespace {

std::vector<at::Tensor> list(const at::Tensor *const *ts, size_t n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (size_t i = 0; i < n; ++i) v.push_back(*ts[i]);
  return v;
}

}  // namespace

extern "C" {

// One SGD step over n parameters, in place: d = g + wd·p; buf = m·buf + d (buf = d on the
// first step is the same for zero buffers); p -= lr·(nesterov ? d + m·buf : buf). With
// momentum 0, `bufs` is not read.
char *archc_fused_sgd(const at::Tensor *const *params, const at::Tensor *const *grads,
                      const at::Tensor *const *bufs,
                      size_t n, double weight_decay, double momentum, double lr, int nesterov) {
  return archc::guard([&] {
    auto b = momentum != 0.0 ? list(bufs, n) : std::vector<at::Tensor>();
    at::_fused_sgd_(list(params, n), list(grads, n), b, weight_decay, momentum, lr,
                    /*dampening=*/0.0, nesterov != 0, /*maximize=*/false,
                    /*is_first_step=*/false);
  });
}

// dst[i] ← src[i] for n pairs (converting the number type), as one multi-tensor operation.
char *archc_foreach_copy(const at::Tensor *const *dst, const at::Tensor *const *src, size_t n) {
  return archc::guard([&] {
    auto d = list(dst, n);
    at::_foreach_copy_(d, list(src, n), /*non_blocking=*/false);
  });
}

}  // extern "C"
