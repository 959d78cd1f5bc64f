// The inference mode's two memory-bound steps outside oneDNN, which libtorch runs several times
// slower than the memory allows (BENCHMARKS.md, "where the time goes"):
// - max-pooling over channels-last bf16 or fp32 activations (ResNet's stem pool): libtorch's
//   channels-last kernel took 2.7 ms at batch 8 where the pass reads 13 MB;
// - the input's conversion from fp32 NCHW to bf16 or fp32 channels-last storage.
// Both give what libtorch gives, bit for bit but for NaN payloads: max-pooling returns one of
// its inputs (a NaN in the window gives a NaN, as in libtorch), and the bf16 conversion rounds to
// nearest even as c10::BFloat16 does. AVX-512 where the CPU has it (16 channels or pixels a
// vector; the fp32 input conversion is plain C++ throughout), else plain C++. Rows run in
// parallel on libtorch's OpenMP threads (at::parallel_for).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ffi.h"
#include "pool.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace {

using archc::guard;

// Tests turn the vector paths off to check the portable ones on the same machine. Per thread:
// the flag is read on the calling thread, before the work is shared out, so tests running in
// parallel do not see each other's setting.
thread_local bool vectors_allowed = true;

bool has_avx512() {
#if defined(__x86_64__)
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return yes && vectors_allowed;
#else
  return false;
#endif
}

struct Pool {
  int64_t n, h, w, c, oh, ow, kh, kw, sh, sw, ph, pw;
};

// Scalar max over one output pixel's window: `y[0..c)` from the window's pixels of `x`.
template <typename T>
void pool_pixel_scalar(const T *x, T *y, const Pool &p, int64_t y0, int64_t y1, int64_t x0,
                       int64_t x1) {
  for (int64_t k = 0; k < p.c; ++k) {
    float best = -std::numeric_limits<float>::infinity();
    T pick = T(best);
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) {
        const T v = x[(iy * p.w + ix) * p.c + k];
        const float f = static_cast<float>(v);
        if (std::isnan(best)) continue;
        if (f > best || std::isnan(f)) {
          best = f;
          pick = v;
        }
      }
    y[k] = pick;
  }
}

#if defined(__x86_64__)
#define ARCHC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 channels widened to fp32: bf16 is the top half of an fp32, so the widening is exact and
// the narrowing back (dropping the low half) returns the very bits that were loaded.
ARCHC_AVX512 inline __m512 load16(const c10::BFloat16 *p, __mmask16 m) {
  const __m256i raw = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}
ARCHC_AVX512 inline __m512 load16(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
ARCHC_AVX512 inline void store16(c10::BFloat16 *p, __mmask16 m, __m512 v) {
  const __m256i top = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16));
  _mm256_mask_storeu_epi16(p, m, top);
}

// acc[k] += x[p·stride + k] for every pixel p < hw in order and channel k < len (≤ 256), in fp32:
// the scalar loop's sums, 16 channels to a register.
template <typename T>
ARCHC_AVX512 void sum_pixels_avx512(const T *x, int64_t hw, int64_t stride, int64_t len,
                                    float *acc) {
  __m512 v[16];
  const int64_t nv = (len + 15) / 16;
  __mmask16 last = static_cast<__mmask16>(len % 16 == 0 ? 0xffff : (1u << (len % 16)) - 1);
  for (int64_t i = 0; i < nv; ++i) v[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < hw; ++p) {
    const T *src = x + p * stride;
    for (int64_t i = 0; i < nv; ++i)
      v[i] = _mm512_add_ps(v[i], load16(src + 16 * i, i + 1 == nv ? last : 0xffff));
  }
  for (int64_t i = 0; i < nv; ++i)
    _mm512_mask_storeu_ps(acc + 16 * i, i + 1 == nv ? last : 0xffff, v[i]);
}
ARCHC_AVX512 inline void store16(float *p, __mmask16 m, __m512 v) { _mm512_mask_storeu_ps(p, m, v); }

template <typename T>
ARCHC_AVX512 void pool_pixel_avx512(const T *x, T *y, const Pool &p, int64_t y0, int64_t y1,
                                    int64_t x0, int64_t x1) {
  for (int64_t k = 0; k < p.c; k += 16) {
    const __mmask16 m =
        p.c - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (p.c - k)) - 1u);
    __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    // vmaxps drops NaNs: any NaN met makes the lane NaN at the end, as in libtorch.
    __m512i nan = _mm512_setzero_si512();
    for (int64_t iy = y0; iy < y1; ++iy)
      for (int64_t ix = x0; ix < x1; ++ix) {
        const __m512 v = load16(x + (iy * p.w + ix) * p.c + k, m);
        best = _mm512_max_ps(v, best);
        nan = _mm512_mask_or_epi32(nan, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), nan,
                                   _mm512_castps_si512(v));
      }
    // `nan` holds the OR of the NaNs' bits (a NaN) in lanes that met one, else 0.
    const __m512 nans = _mm512_castsi512_ps(nan);
    const __mmask16 met = _mm512_cmp_ps_mask(nans, nans, _CMP_UNORD_Q);
    store16(y + k, m, _mm512_mask_mov_ps(best, met, nans));
  }
}
#endif

template <typename T> void max_pool(const T *x, T *y, const Pool &p) {
  const bool vec = has_avx512();
  (void)vec;
  at::parallel_for(0, p.n * p.oh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / p.oh, oy = r % p.oh;
      const int64_t y0 = std::max<int64_t>(oy * p.sh - p.ph, 0);
      const int64_t y1 = std::min<int64_t>(oy * p.sh - p.ph + p.kh, p.h);
      const T *xb = x + b * p.h * p.w * p.c;
      for (int64_t ox = 0; ox < p.ow; ++ox) {
        const int64_t x0 = std::max<int64_t>(ox * p.sw - p.pw, 0);
        const int64_t x1 = std::min<int64_t>(ox * p.sw - p.pw + p.kw, p.w);
        T *out = y + (r * p.ow + ox) * p.c;
#if defined(__x86_64__)
        if (vec) {
          pool_pixel_avx512(xb, out, p, y0, y1, x0, x1);
          continue;
        }
#endif
        pool_pixel_scalar(xb, out, p, y0, y1, x0, x1);
      }
    }
  });
}

#if defined(__x86_64__)
// 16 fp32 to bf16, rounded to nearest even as c10::BFloat16 does (a NaN becomes 0x7FC0).
ARCHC_AVX512 inline __m256i to_bf16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  __m512i top = _mm512_srli_epi32(rounded, 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  top = _mm512_mask_mov_epi32(top, nan, _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(top);
}

// One row of `w` RGB pixels: three planes to interleaved bf16, 16 pixels a step. The two
// outputs' lanes pick r[p], g[p] (16 + p in `rg`) or b[p] (32 + p, the second source).
ARCHC_AVX512 void row_rgb_avx512(const float *x, int64_t plane, c10::BFloat16 *y, int64_t w) {
  alignas(64) static const uint16_t pick[48] = {
      0, 16, 32, 1, 17, 33, 2,  18, 34, 3,  19, 35, 4,  20, 36, 5,  21, 37, 6,  22, 38, 7,  23, 39,
      8, 24, 40, 9, 25, 41, 10, 26, 42, 11, 27, 43, 12, 28, 44, 13, 29, 45, 14, 30, 46, 15, 31, 47};
  const __m512i lo = _mm512_load_si512(pick);
  const __m512i hi =
      _mm512_zextsi256_si512(_mm256_load_si256(reinterpret_cast<const __m256i *>(pick + 32)));
  auto *out = reinterpret_cast<uint16_t *>(y);
  for (int64_t i = 0; i < w; i += 16) {
    const int64_t n = std::min<int64_t>(16, w - i);
    const __mmask16 m = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
    const __m256i r = to_bf16(_mm512_maskz_loadu_ps(m, x + i));
    const __m256i g = to_bf16(_mm512_maskz_loadu_ps(m, x + plane + i));
    const __m256i b = to_bf16(_mm512_maskz_loadu_ps(m, x + 2 * plane + i));
    const __m512i rg = _mm512_inserti64x4(_mm512_castsi256_si512(r), g, 1);
    const __m512i bz = _mm512_castsi256_si512(b);
    const int64_t total = 3 * n;  // output values of these pixels
    const __mmask32 m0 = total >= 32 ? ~__mmask32(0) : (__mmask32(1) << total) - 1;
    const __mmask32 m1 = total > 32 ? (__mmask32(1) << (total - 32)) - 1 : 0;
    _mm512_mask_storeu_epi16(out + 3 * i, m0, _mm512_permutex2var_epi16(rg, lo, bz));
    _mm512_mask_storeu_epi16(out + 3 * i + 32, m1, _mm512_permutex2var_epi16(rg, hi, bz));
  }
}

// One row of `w` pixels: planes x[k * plane + i] to y[i * c + k], 16 pixels a step.
ARCHC_AVX512 void row_to_nhwc_avx512(const float *x, int64_t plane, c10::BFloat16 *y, int64_t w,
                                     int64_t c) {
  if (c == 3) return row_rgb_avx512(x, plane, y, w);
  alignas(64) uint16_t buf[16 * 16];
  auto *out = reinterpret_cast<uint16_t *>(y);
  for (int64_t i = 0; i < w; i += 16) {
    const int64_t n = std::min<int64_t>(16, w - i);
    const __mmask16 m = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
    for (int64_t k0 = 0; k0 < c; k0 += 16) {
      const int64_t kc = std::min<int64_t>(16, c - k0);
      for (int64_t k = 0; k < kc; ++k)
        _mm256_store_si256(reinterpret_cast<__m256i *>(buf + 16 * k),
                           to_bf16(_mm512_maskz_loadu_ps(m, x + (k0 + k) * plane + i)));
      for (int64_t p = 0; p < n; ++p)
        for (int64_t k = 0; k < kc; ++k) out[(i + p) * c + k0 + k] = buf[16 * k + p];
    }
  }
}
#endif

template <typename T>
void row_to_nhwc_scalar(const float *x, int64_t plane, T *y, int64_t w, int64_t c) {
  for (int64_t i = 0; i < w; ++i)
    for (int64_t k = 0; k < c; ++k) y[i * c + k] = T(x[k * plane + i]);
}

}  // namespace

extern "C" {

// Whether the kernels below may use AVX-512 where the CPU has it (on by default); returns the
// previous setting.
int archc_layout_vectors(int on) {
  const bool was = vectors_allowed;
  vectors_allowed = on != 0;
  return was ? 1 : 0;
}

// max_pool2d(x, kernel, stride, pad) with dilation 1 and floor rounding, on a channels-last bf16
// or fp32 CPU tensor; the result is channels-last too.
char *archc_max_pool_nhwc(const at::Tensor *x, const int64_t *kernel, const int64_t *stride,
                          const int64_t *pad, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(x->device().is_cpu() && x->dim() == 4 &&
                    x->is_contiguous(at::MemoryFormat::ChannelsLast),
                "max-pool kernel: input must be a 4-d channels-last CPU tensor");
    TORCH_CHECK(x->scalar_type() == at::kBFloat16 || x->scalar_type() == at::kFloat,
                "max-pool kernel: input must be bf16 or fp32");
    TORCH_CHECK(kernel[0] > 0 && kernel[1] > 0 && stride[0] > 0 && stride[1] > 0 &&
                    pad[0] >= 0 && pad[1] >= 0 && 2 * pad[0] <= kernel[0] &&
                    2 * pad[1] <= kernel[1],
                "max-pool kernel: padding must be at most half the window");
    Pool p{x->size(0), x->size(2), x->size(3), x->size(1), 0,         0,
           kernel[0],  kernel[1],  stride[0],  stride[1],  pad[0],    pad[1]};
    TORCH_CHECK(p.h + 2 * p.ph >= p.kh && p.w + 2 * p.pw >= p.kw,
                "max-pool kernel: window larger than the padded input");
    p.oh = (p.h + 2 * p.ph - p.kh) / p.sh + 1;
    p.ow = (p.w + 2 * p.pw - p.kw) / p.sw + 1;
    at::Tensor y = archc::empty_channels_last(p.n, p.c, p.oh, p.ow, x->scalar_type());
    if (x->scalar_type() == at::kBFloat16)
      max_pool(x->data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(), p);
    else
      max_pool(x->data_ptr<float>(), y.data_ptr<float>(), p);
    *out = new at::Tensor(std::move(y));
  });
}

// adaptive_avg_pool2d(x, 1) on a channels-last bf16 or fp32 CPU tensor: each channel's mean over
// the map, summed in fp32 pixel by pixel and divided by the pixel count, as libtorch's
// channels-last kernel does; the result [N, C, 1, 1] has x's type.
char *archc_global_avg_pool_nhwc(const at::Tensor *x, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(x->device().is_cpu() && x->dim() == 4 &&
                    x->is_contiguous(at::MemoryFormat::ChannelsLast),
                "average-pool kernel: input must be a 4-d channels-last CPU tensor");
    const bool bf16 = x->scalar_type() == at::kBFloat16;
    TORCH_CHECK(bf16 || x->scalar_type() == at::kFloat,
                "average-pool kernel: input must be bf16 or fp32");
    const int64_t n = x->size(0), c = x->size(1), hw = x->size(2) * x->size(3);
    TORCH_CHECK(hw > 0, "average-pool kernel: an empty map");
    at::Tensor y = at::empty({n, c, 1, 1}, x->options());
    constexpr int64_t kChunk = 256;  // channels per work item
    const int64_t chunks = (c + kChunk - 1) / kChunk;
    const float count = static_cast<float>(hw);
    const c10::BFloat16 *xb = bf16 ? x->data_ptr<c10::BFloat16>() : nullptr;
    const float *xf = bf16 ? nullptr : x->data_ptr<float>();
    c10::BFloat16 *yb = bf16 ? y.data_ptr<c10::BFloat16>() : nullptr;
    float *yf = bf16 ? nullptr : y.data_ptr<float>();
    const bool vec = has_avx512();
    at::parallel_for(0, n * chunks, 1, [&](int64_t begin, int64_t end) {
      alignas(64) float acc[kChunk];
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / chunks, c0 = (item % chunks) * kChunk;
        const int64_t len = std::min(kChunk, c - c0);
        std::fill(acc, acc + len, 0.f);
#if defined(__x86_64__)
        if (vec) {
          // The same sums, pixel by pixel, 16 channels to a register.
          if (bf16)
            sum_pixels_avx512(xb + b * hw * c + c0, hw, c, len, acc);
          else
            sum_pixels_avx512(xf + b * hw * c + c0, hw, c, len, acc);
        }
#endif
        for (int64_t p = 0; p < hw && !vec; ++p) {
          const int64_t at = (b * hw + p) * c + c0;
          if (bf16) {
            const c10::BFloat16 *src = xb + at;
            for (int64_t k = 0; k < len; ++k) acc[k] += static_cast<float>(src[k]);
          } else {
            const float *src = xf + at;
            for (int64_t k = 0; k < len; ++k) acc[k] += src[k];
          }
        }
        for (int64_t k = 0; k < len; ++k) {
          if (bf16)
            yb[b * c + c0 + k] = c10::BFloat16(acc[k] / count);
          else
            yf[b * c + c0 + k] = acc[k] / count;
        }
      }
    });
    *out = new at::Tensor(std::move(y));
  });
}

// A contiguous fp32 NCHW CPU tensor converted to `bf16` (else fp32) in channels-last storage:
// what `empty(N, H, W, C).copy_(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)` gives.
char *archc_to_channels_last(const at::Tensor *x, int bf16, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(x->device().is_cpu() && x->dim() == 4 && x->scalar_type() == at::kFloat &&
                    x->is_contiguous(),
                "input conversion: input must be a contiguous 4-d fp32 CPU tensor");
    const int64_t n = x->size(0), c = x->size(1), h = x->size(2), w = x->size(3);
    const auto type = bf16 != 0 ? at::kBFloat16 : at::kFloat;
    at::Tensor y = archc::empty_channels_last(n, c, h, w, type);
    const float *xp = x->data_ptr<float>();
    auto *yb = bf16 != 0 ? y.data_ptr<c10::BFloat16>() : nullptr;
    auto *yf = bf16 != 0 ? nullptr : y.data_ptr<float>();
    const bool vec = has_avx512();
    at::parallel_for(0, n * h, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / h, iy = r % h;
        const float *src = xp + (b * c * h + iy) * w;
        if (bf16 != 0) {
          auto *dst = yb + r * w * c;
#if defined(__x86_64__)
          if (vec) {
            row_to_nhwc_avx512(src, h * w, dst, w, c);
            continue;
          }
#endif
          row_to_nhwc_scalar(src, h * w, dst, w, c);
        } else {
          row_to_nhwc_scalar(src, h * w, yf + r * w * c, w, c);
        }
      }
    });
    (void)vec;
    *out = new at::Tensor(std::move(y));
  });
}

// Enters (1) or leaves (0), on the calling thread, a pass during which its CPU allocations come
// from the cache (pool.h); entering installs the cache first, once. Never throws.
void archc_pool_scope(int enter) {
  if (enter != 0) {
    ++archc::ActivationPool::depth();
    try {
      archc::activation_pool().install();
    } catch (...) {  // not installed: the pass allocates as before
    }
  } else if (archc::ActivationPool::depth() > 0) {
    --archc::ActivationPool::depth();
  }
}

// Gives every cached buffer back to the system.
void archc_pool_clear() { archc::activation_pool().clear(); }

// Bytes of freed activations the buffer cache holds now (pool.h).
int64_t archc_pool_cached_bytes() {
  return static_cast<int64_t>(archc::activation_pool().cached());
}

// 1 when `t`'s data is a block the cache handed out (and that is in use), else 0.
int archc_pool_owns(const at::Tensor *t) {
  return archc::activation_pool().owns(t->data_ptr()) ? 1 : 0;
}

}  // extern "C"
