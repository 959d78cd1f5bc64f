// A bf16 grouped 3×3 convolution for ResNeXt's narrow groups (4 or 8 channels per group), where
// oneDNN's direct kernel reaches about a sixth of the machine's bf16 peak (BENCHMARKS.md, "where
// the time goes"). Channels-last input and output, padding 1, stride 1 or 2, bias and ReLU fused,
// fp32 accumulation with AVX512-BF16 `vdpbf16ps`.
//
// Sixteen output channels fill one fp32 accumulator. `vdpbf16ps` multiplies one pair of input
// channels per lane, so each lane must see a pair of *its own group's* input channels. The 16
// input channels of those groups (32 bytes) are broadcast to both 256-bit halves of a register;
// 128-bit lane L then holds input channels 8·(L mod 2) … +7, and an in-lane shuffle (no lane
// crossing) hands each lane its pair. That fixes which output channel each accumulator lane
// computes (`lane_channel`): the weights, the bias and the final store follow that order.
// Eight output pixels share every weight vector; for stride 1 each input pixel of a kernel row
// is shuffled once and serves the three output pixels it overlaps. Rows run in parallel on
// libtorch's own OpenMP threads (at::parallel_for).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include "ffi.h"

// GCC 12 warns that `_mm512_undefined_ps()`, which its own AVX-512 intrinsics use for unmasked
// operations, "may be used uninitialized" once they are inlined here: a false positive (the
// operations write every lane), so this file does not report it.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cstdint>

namespace {

using archc::guard;

constexpr int kTile = 8;                 // output pixels per register block
alignas(64) const uint16_t kZeros[16] = {};  // the padding's input channels

// The output channel (0..15, within its block of 16) that accumulator lane `a` computes.
int lane_channel(int cpg, int a) {
  const int half = (a / 4) % 2, k = a % 4;
  if (cpg == 4) return (2 * half + (a / 8)) * 4 + k;  // lane L: group 2·(L mod 2) + L/2
  return half * 8 + (a / 8) * 4 + k;                   // cpg 8: group L mod 2, pairs L/2
}

struct Shape {
  int64_t n, h, w, c, oh, ow, stride;
};

struct Vectors {
  __m512i select[4];  // cpg 4: vpermilps controls for pair 0 and 1
  __m512i to_channels;  // accumulator lanes → channel order, for the store
};

template <int CPG>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline)) inline __m512
select_pair(__m512 chunk, const Vectors &v, int p) {
  if constexpr (CPG == 4) {
    return _mm512_permutevar_ps(chunk, v.select[p]);
  } else {
    switch (p) {
      case 0: return _mm512_castsi512_ps(_mm512_shuffle_epi32(_mm512_castps_si512(chunk), _MM_PERM_AAAA));
      case 1: return _mm512_castsi512_ps(_mm512_shuffle_epi32(_mm512_castps_si512(chunk), _MM_PERM_BBBB));
      case 2: return _mm512_castsi512_ps(_mm512_shuffle_epi32(_mm512_castps_si512(chunk), _MM_PERM_CCCC));
      default: return _mm512_castsi512_ps(_mm512_shuffle_epi32(_mm512_castps_si512(chunk), _MM_PERM_DDDD));
    }
  }
}

template <int CPG>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline)) inline __m512
load_chunk(const uint16_t *p) {
  return _mm512_castsi512_ps(
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))));
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline)) inline void store(
    const __m512 *acc, int tn, const Vectors &v, bool relu, uint16_t *y, int64_t c) {
  const __m512 zero = _mm512_setzero_ps();
  for (int t = 0; t < tn; ++t) {
    __m512 r = _mm512_permutexvar_ps(v.to_channels, acc[t]);
    if (relu) r = _mm512_max_ps(r, zero);
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(y + t * c), (__m256i)_mm512_cvtneps_pbh(r));
  }
}

// Any tile: each output pixel's input pointers are computed per tap (the padding reads zeros).
template <int CPG>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void tile_any(
    const uint16_t *x, const uint32_t *wb, __m512 bias, const Vectors &v, uint16_t *y,
    const Shape &s, int64_t n, int64_t oh, int64_t ow0, int tn, int64_t cin0, bool relu) {
  constexpr int P = CPG / 2;
  __m512 acc[kTile];
  for (int t = 0; t < kTile; ++t) acc[t] = bias;
  for (int kh = 0; kh < 3; ++kh) {
    const int64_t ih = oh * s.stride - 1 + kh;
    if (ih < 0 || ih >= s.h) continue;
    const uint16_t *xrow = x + (n * s.h + ih) * s.w * s.c;
    for (int kw = 0; kw < 3; ++kw) {
      __m512 chunk[kTile];
      for (int t = 0; t < kTile; ++t) {
        const int64_t iw = (ow0 + t) * s.stride - 1 + kw;
        const bool inside = t < tn && iw >= 0 && iw < s.w;
        chunk[t] = load_chunk<CPG>(inside ? xrow + iw * s.c + cin0 : kZeros);
      }
      for (int p = 0; p < P; ++p) {
        const __m512bh w = (__m512bh)_mm512_loadu_si512(wb + ((kh * 3 + kw) * P + p) * 16);
        for (int t = 0; t < kTile; ++t)
          acc[t] = _mm512_dpbf16_ps(acc[t], (__m512bh)select_pair<CPG>(chunk[t], v, p), w);
      }
    }
  }
  store(acc, tn, v, relu, y + ((n * s.oh + oh) * s.ow + ow0) * s.c + cin0, s.c);
}

// Stride 1, a full tile away from the left and right edges: each of the kTile + 2 input pixels
// of a kernel row is shuffled once per pair and serves three output pixels.
template <int CPG>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void tile_inner(
    const uint16_t *x, const uint32_t *wb, __m512 bias, const Vectors &v, uint16_t *y,
    const Shape &s, int64_t n, int64_t oh, int64_t ow0, int64_t cin0, bool relu) {
  constexpr int P = CPG / 2;
  constexpr int kInputs = kTile + 2;
  __m512 acc[kTile];
  for (int t = 0; t < kTile; ++t) acc[t] = bias;
  for (int kh = 0; kh < 3; ++kh) {
    const int64_t ih = oh - 1 + kh;
    if (ih < 0 || ih >= s.h) continue;
    const uint16_t *base = x + ((n * s.h + ih) * s.w + ow0 - 1) * s.c + cin0;
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      __m512 sel[kInputs];
#pragma GCC unroll 10
      for (int i = 0; i < kInputs; ++i)
        sel[i] = select_pair<CPG>(load_chunk<CPG>(base + i * s.c), v, p);
#pragma GCC unroll 3
      for (int kw = 0; kw < 3; ++kw) {
        const __m512bh w = (__m512bh)_mm512_loadu_si512(wb + ((kh * 3 + kw) * P + p) * 16);
#pragma GCC unroll 8
        for (int t = 0; t < kTile; ++t)
          acc[t] = _mm512_dpbf16_ps(acc[t], (__m512bh)sel[t + kw], w);
      }
    }
  }
  store(acc, kTile, v, relu, y + ((n * s.oh + oh) * s.ow + ow0) * s.c + cin0, s.c);
}

// One output row (image n, row oh), every block of 16 channels. `wp`: [C/16][9][P][16] bf16
// pairs in accumulator-lane order; `bias`: fp32 in channel order.
template <int CPG>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void row(
    const uint16_t *x, const uint32_t *wp, const float *bias, uint16_t *y, const Shape &s,
    int64_t n, int64_t oh, bool relu) {
  constexpr int P = CPG / 2;
  Vectors v;
  alignas(64) int32_t lanes[16];
  for (int p = 0; p < 2; ++p) {
    for (int a = 0; a < 16; ++a) lanes[a] = (a / 8) * 2 + p;  // qword L/2 of the lane, dword p
    v.select[p] = _mm512_load_si512(lanes);
  }
  for (int c = 0; c < 16; ++c)
    for (int a = 0; a < 16; ++a)
      if (lane_channel(CPG, a) == c) lanes[c] = a;
  v.to_channels = _mm512_load_si512(lanes);
  for (int a = 0; a < 16; ++a) lanes[a] = lane_channel(CPG, a);
  const __m512i to_lanes = _mm512_load_si512(lanes);
  for (int64_t b = 0; b < s.c / 16; ++b) {
    const uint32_t *wb = wp + b * 9 * P * 16;
    const __m512 bv = _mm512_permutexvar_ps(to_lanes, _mm512_loadu_ps(bias + 16 * b));
    for (int64_t ow0 = 0; ow0 < s.ow; ow0 += kTile) {
      const int tn = static_cast<int>(std::min<int64_t>(kTile, s.ow - ow0));
      const bool inner = s.stride == 1 && tn == kTile && ow0 >= 1 && ow0 + kTile < s.w;
      if (inner)
        tile_inner<CPG>(x, wb, bv, v, y, s, n, oh, ow0, 16 * b, relu);
      else
        tile_any<CPG>(x, wb, bv, v, y, s, n, oh, ow0, tn, 16 * b, relu);
    }
  }
}

using RowFn = void (*)(const uint16_t *, const uint32_t *, const float *, uint16_t *,
                       const Shape &, int64_t, int64_t, bool);

RowFn kernel(int64_t cpg) {
  switch (cpg) {
    case 4: return row<4>;
    case 8: return row<8>;
    default: return nullptr;
  }
}

}  // namespace

extern "C" {

// 1 when this CPU runs the kernel (AVX512-BF16) for `cpg` channels per group (4 or 8).
int archc_grouped_supported(int64_t cpg) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && kernel(cpg) != nullptr;
}

// Packs an OIHW 3×3 weight (O = C, I = cpg) into [C/16][9][cpg/2][16] pairs of bf16, the 16 in
// accumulator-lane order.
char *archc_grouped_pack(const at::Tensor *weight, int64_t cpg, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(kernel(cpg) != nullptr, "grouped kernel: 4 or 8 channels per group");
    const at::Tensor w = weight->to(at::kFloat).contiguous();
    TORCH_CHECK(w.dim() == 4 && w.size(1) == cpg && w.size(2) == 3 && w.size(3) == 3 &&
                    w.size(0) % 16 == 0,
                "grouped kernel: weight must be [16k, cpg, 3, 3]");
    const int64_t c = w.size(0), pairs = cpg / 2;
    at::Tensor packed = at::empty({c / 16, 9, pairs, 16, 2}, w.options().dtype(at::kBFloat16));
    const float *src = w.data_ptr<float>();
    auto *dst = packed.data_ptr<c10::BFloat16>();
    for (int64_t b = 0; b < c / 16; ++b)
      for (int64_t t = 0; t < 9; ++t)
        for (int64_t p = 0; p < pairs; ++p)
          for (int a = 0; a < 16; ++a)
            for (int64_t i = 0; i < 2; ++i) {
              const int64_t o = 16 * b + lane_channel(static_cast<int>(cpg), a);
              dst[(((b * 9 + t) * pairs + p) * 16 + a) * 2 + i] =
                  c10::BFloat16(src[(o * cpg + 2 * p + i) * 9 + t]);
            }
    *out = new at::Tensor(std::move(packed));
  });
}

// relu?(grouped_conv3x3(x) + bias): x bf16 channels-last [N, C, H, W], padding 1.
char *archc_grouped_conv(const at::Tensor *x, const at::Tensor *packed, const at::Tensor *bias,
                         int64_t stride, int64_t cpg, int relu, at::Tensor **out) {
  return guard([&] {
    RowFn fn = kernel(cpg);
    TORCH_CHECK(fn != nullptr && archc_grouped_supported(cpg), "grouped kernel: unsupported");
    TORCH_CHECK(stride == 1 || stride == 2, "grouped kernel: stride 1 or 2");
    TORCH_CHECK(x->scalar_type() == at::kBFloat16 && x->dim() == 4 &&
                    x->is_contiguous(at::MemoryFormat::ChannelsLast),
                "grouped kernel: input must be bf16 channels-last");
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->is_contiguous(),
                "grouped kernel: bias must be contiguous fp32");
    const Shape s{x->size(0), x->size(2), x->size(3), x->size(1),
                  (x->size(2) - 1) / stride + 1, (x->size(3) - 1) / stride + 1, stride};
    TORCH_CHECK(s.c % 16 == 0 && packed->size(0) * 16 == s.c && packed->size(2) == cpg / 2 &&
                    bias->numel() == s.c,
                "grouped kernel: channel count mismatch");
    at::Tensor y = at::empty({s.n, s.oh, s.ow, s.c}, x->options()).permute({0, 3, 1, 2});
    const auto *xp = reinterpret_cast<const uint16_t *>(x->data_ptr<c10::BFloat16>());
    const auto *wp = reinterpret_cast<const uint32_t *>(packed->data_ptr<c10::BFloat16>());
    const float *bp = bias->data_ptr<float>();
    auto *yp = reinterpret_cast<uint16_t *>(y.data_ptr<c10::BFloat16>());
    at::parallel_for(0, s.n * s.oh, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) fn(xp, wp, bp, yp, s, r / s.oh, r % s.oh, relu != 0);
    });
    *out = new at::Tensor(std::move(y));
  });
}

}  // extern "C"
