// The activations this crate's kernels write (a convolution's output, a pooled map, the input in
// channels-last) come from a small cache of freed buffers instead of a fresh allocation each:
// with glibc's defaults, a buffer of more than the mmap threshold goes back to the system when
// freed and its pages come back as page faults on the next pass (about 1 µs per 4 KB page:
// 25 ms for a 100 MB map), which torch.compile's generated code avoids by reusing its buffers
// within a pass. A freed buffer is kept by its exact size, the most recently freed handed out
// first, up to kCachedBytes in all; beyond that, or for a size never freed, the memory comes
// from and goes back to c10's CPU allocator functions. Header-only: every kernel's translation
// unit shares the one cache (an inline function's static).
#pragma once

#include <ATen/EmptyTensor.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstddef>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace archc {

class ActivationPool final : public c10::Allocator {
 public:
  // The most freed memory the cache keeps.
  static constexpr size_t kCachedBytes = size_t{2} << 30;

  c10::DataPtr allocate(size_t n) override {
    void *p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(n);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_ -= n;
      }
    }
    if (p == nullptr) p = c10::alloc_cpu(n);  // 64-byte aligned; throws when out of memory
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_[p] = n;
    }
    // The context is the data pointer itself, as libtorch's raw_allocate (oneDNN's scratch
    // memory, say) requires.
    return {p, p, &ActivationPool::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &ActivationPool::release; }

  void copy_data(void *dest, const void *src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Bytes the cache holds now (freed buffers waiting for reuse).
  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

  // Gives every cached buffer back.
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto &[bytes, blocks] : free_)
      for (void *b : blocks) c10::free_cpu(b);
    free_.clear();
    cached_ = 0;
  }

 private:
  static void release(void *p);

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void *>> free_;  // by size, the latest freed last
  std::unordered_map<void *, size_t> live_;                // handed out: their sizes
  size_t cached_ = 0;
};

// The process's one cache (never destroyed: tensors may be freed during exit).
inline ActivationPool &activation_pool() {
  static ActivationPool *pool = new ActivationPool();
  return *pool;
}

inline void ActivationPool::release(void *p) {
  if (p == nullptr) return;
  ActivationPool &pool = activation_pool();
  {
    std::lock_guard<std::mutex> lock(pool.mu_);
    auto it = pool.live_.find(p);
    if (it == pool.live_.end()) {  // not the cache's: cannot happen, but never leak or crash
      c10::free_cpu(p);
      return;
    }
    const size_t n = it->second;
    pool.live_.erase(it);
    if (pool.cached_ + n <= kCachedBytes) {
      pool.free_[n].push_back(p);
      pool.cached_ += n;
      return;
    }
  }
  c10::free_cpu(p);
}

// While a plan's pass runs (between enter and exit, which nest), every CPU allocation of
// libtorch's (oneDNN's outputs included) comes from the cache too: c10's CPU allocator is
// swapped for the cache's at priority 0, the default's, and swapped back after (where another
// allocator was installed with a higher priority, the swap does nothing). A tensor keeps the
// allocator that made it, so one allocated inside and freed outside goes back to the cache.
struct PoolScope {
  std::mutex mu;
  int depth = 0;
  c10::Allocator *saved = nullptr;
};

inline PoolScope &pool_scope() {
  static PoolScope *scope = new PoolScope();
  return *scope;
}

inline void pool_scope_enter() {
  PoolScope &s = pool_scope();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.depth++ == 0) {
    s.saved = c10::GetCPUAllocator();
    c10::SetCPUAllocator(&activation_pool(), 0);
  }
}

inline void pool_scope_exit() {
  PoolScope &s = pool_scope();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.depth > 0 && --s.depth == 0 && c10::GetCPUAllocator() == &activation_pool())
    c10::SetCPUAllocator(s.saved, 0);
}

// A CPU tensor of NHWC storage `[n, h, w, c]` seen with NCHW sizes (PyTorch's channels-last),
// of `type`, from the cache.
inline at::Tensor empty_channels_last(int64_t n, int64_t c, int64_t h, int64_t w,
                                      c10::ScalarType type) {
  at::Tensor t = at::detail::empty_generic({n, h, w, c}, &activation_pool(),
                                           c10::DispatchKeySet(c10::DispatchKey::CPU), type,
                                           std::nullopt);
  return t.permute({0, 3, 1, 2});
}

}  // namespace archc
