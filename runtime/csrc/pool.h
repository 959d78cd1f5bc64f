// A cache of freed CPU buffers for the inference plan. With glibc's defaults a buffer larger
// than the mmap threshold goes back to the system when freed, and its pages come back as page
// faults on the next pass (about 1 µs per 4 KB page: 25 ms for a 100 MB map); torch.compile's
// generated code avoids that for its own kernels' buffers by reusing them within a pass.
//
// The cache is a c10::Allocator, installed as c10's CPU allocator once (at priority 0, the
// default's; where another allocator was installed with a higher priority, it is not) and
// never taken out again, so that whatever libtorch allocates through it is freed through it:
// oneDNN's scratch memory pairs `raw_allocate` with `raw_deallocate`, each looking up the
// current allocator, so swapping allocators back and forth would hand a block to the wrong one.
// It caches only on a thread inside a plan's pass (`CacheScope`, nested scopes counted per
// thread) and for this crate's kernels' outputs (`empty_channels_last`); every other
// allocation, on other threads or outside a pass, goes to the allocator it replaced, untouched.
// A cached block is kept, when freed, by its exact size, the latest freed handed out first;
// when keeping one would pass kCachedBytes, the blocks of every other size are given back first
// (a new input shape), and if it still does not fit it is given back itself.
// Header-only: every kernel's translation unit shares the one cache (leaked on purpose, so
// tensors freed during exit still find it).
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

  // How deep the calling thread is in cached work (plan passes, kernel outputs).
  static int &depth() {
    static thread_local int d = 0;
    return d;
  }

  c10::DataPtr allocate(size_t n) override {
    if (depth() == 0 && previous_ != nullptr) return previous_->allocate(n);
    void *p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(n);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_ -= n;
        live_[p] = n;
      }
    }
    if (p == nullptr && n > 0) {
      p = c10::alloc_cpu(n);  // 64-byte aligned; throws when out of memory
      try {
        std::lock_guard<std::mutex> lock(mu_);
        live_[p] = n;
      } catch (...) {
        c10::free_cpu(p);
        throw;
      }
    }
    // The context is the data pointer itself, as libtorch's raw_allocate requires.
    return {p, p, &ActivationPool::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &ActivationPool::release; }

  void copy_data(void *dest, const void *src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Installs the cache as c10's CPU allocator, once; whether it is c10's CPU allocator now.
  bool install() {
    std::call_once(installed_, [this] {
      c10::Allocator *current = c10::GetCPUAllocator();
      if (current == this) return;
      previous_ = current;
      c10::SetCPUAllocator(this, 0);
    });
    return c10::GetCPUAllocator() == this;
  }

  // Bytes the cache holds now (freed buffers waiting for reuse).
  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

  // Whether `p` is a block the cache handed out and that is still in use.
  bool owns(const void *p) {
    std::lock_guard<std::mutex> lock(mu_);
    return live_.count(const_cast<void *>(p)) != 0;
  }

  // Gives every cached buffer back (blocks in use are untouched).
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    drop_cached(std::nullopt);
  }

 private:
  static void release(void *p);

  // Frees the cached blocks of every size but `keep` (of every size without one). Called with
  // mu_ held.
  void drop_cached(std::optional<size_t> keep) {
    for (auto it = free_.begin(); it != free_.end();) {
      if (it->first == keep) {
        ++it;
        continue;
      }
      for (void *b : it->second) c10::free_cpu(b);
      cached_ -= it->first * it->second.size();
      it = free_.erase(it);
    }
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void *>> free_;  // by size, the latest freed last
  std::unordered_map<void *, size_t> live_;                // handed out: their sizes
  size_t cached_ = 0;
  std::once_flag installed_;
  c10::Allocator *previous_ = nullptr;  // the allocator the cache replaced, once installed
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
    if (it != pool.live_.end()) {
      const size_t n = it->second;
      pool.live_.erase(it);
      if (pool.cached_ + n > kCachedBytes) pool.drop_cached(n);
      if (pool.cached_ + n <= kCachedBytes) {
        try {
          pool.free_[n].push_back(p);
          pool.cached_ += n;
          return;
        } catch (...) {  // no memory for the bookkeeping: give the block back instead
        }
      }
      c10::free_cpu(p);
      return;
    }
  }
  // Not the cache's: a raw allocation the replaced allocator made (through the cache's
  // pass-through, or before the cache was installed), given back to it.
  c10::Allocator *previous = pool.previous_;
  c10::DeleterFnPtr deleter = previous != nullptr ? previous->raw_deleter() : nullptr;
  if (deleter != nullptr)
    deleter(p);
  else
    c10::free_cpu(p);
}

// While alive on a thread, that thread's CPU allocations (libtorch's and oneDNN's included) come
// from the cache. Scopes nest.
struct CacheScope {
  CacheScope() { ++ActivationPool::depth(); }
  ~CacheScope() { --ActivationPool::depth(); }
  CacheScope(const CacheScope &) = delete;
  CacheScope &operator=(const CacheScope &) = delete;
};

// A CPU tensor of NHWC storage `[n, h, w, c]` seen with NCHW sizes (PyTorch's channels-last),
// of `type`, from the cache.
inline at::Tensor empty_channels_last(int64_t n, int64_t c, int64_t h, int64_t w,
                                      c10::ScalarType type) {
  CacheScope scope;
  at::Tensor t = at::detail::empty_generic({n, h, w, c}, &activation_pool(),
                                           c10::DispatchKeySet(c10::DispatchKey::CPU), type,
                                           std::nullopt);
  return t.permute({0, 3, 1, 2});
}

}  // namespace archc
