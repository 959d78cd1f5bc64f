// A grouped 3×3 convolution for ResNeXt's groups (4, 8, 16 or 32 channels per group), where
// oneDNN's direct kernel reaches a sixth to three quarters of the machine's peak (BENCHMARKS.md,
// "where the time goes"). Channels-last input and output, padding 1, stride 1 or 2, bias and
// ReLU fused, fp32 accumulation. One template runs it in bf16 on AVX512-BF16 (`vdpbf16ps`, the
// `Bf16` element type) and in fp32 on AVX-512 FMA (`F32`); on a CPU with AMX, bf16 with 4, 8 or
// 16 channels per group runs as tile products instead (the AMX section).
//
// Sixteen output channels fill one fp32 accumulator, and each lane must see *its own group's*
// input channels. `vdpbf16ps` multiplies one pair of input channels per lane: with 4 or 8
// channels per group, the 16 input channels of those groups (32 bytes) are broadcast to both
// 256-bit halves of a register; 128-bit lane L then holds input channels 8·(L mod 2) … +7, and
// an in-lane shuffle (no lane crossing) hands each lane its pair. That fixes which output
// channel each accumulator lane computes (`lane_channel`): the weights, the bias and the final
// store follow that order. In fp32 a lane takes one input channel, the i-th of its group, by one
// permute of the pixel's 16 channels, and lanes stay in channel order. With 16 or 32 channels per
// group, a block of 16 output channels lies in one group and every lane takes the same input
// (a pair in bf16), one broadcast from memory.
//
// A tile is two output rows of 7 or 8 pixels: each input pixel of the rows they read is loaded
// once and shuffled once per step (a pair of input channels in bf16, one in fp32), and serves
// every output pixel, row and kernel tap it overlaps (up to 2·3 products a shuffle at stride 1).
// The padding is read as zeros by masked loads, so the edges run the same straight-line code as
// the middle. Row pairs run in parallel on libtorch's own OpenMP threads (at::parallel_for).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include "amx.h"
#include "ffi.h"
#include "pool.h"

// GCC 12 warns that `_mm512_undefined_ps()`, which its own AVX-512 intrinsics use for unmasked
// operations, "may be used uninitialized" once they are inlined here: a false positive (the
// operations write every lane), so this file does not report it.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using archc::guard;

// The output channel (0..15, within its block of 16) that bf16 accumulator lane `a` computes.
int lane_channel(int cpg, int a) {
  const int half = (a / 4) % 2, k = a % 4;
  if (cpg == 4) return (2 * half + (a / 8)) * 4 + k;  // lane L: group 2·(L mod 2) + L/2
  if (cpg == 8) return half * 8 + (a / 8) * 4 + k;    // group L mod 2, pairs L/2
  return a;  // 16 or 32: a block lies inside one group, every lane sees the same input pair
}

struct Shape {
  int64_t n, h, w, c, oh, ow, stride;
};

// Both element types' kernels are compiled for AVX512-BF16 (one template serves both); the fp32
// instantiations emit only AVX-512 F/BW/VL instructions (the BF16 ones come only from the
// intrinsics the bf16 type calls), so they run on CPUs without BF16 too.
#define ARCHC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define ARCHC_INLINE ARCHC_AVX512 __attribute__((always_inline)) inline

// The address of element `off` of `x`, formed as an integer: outside the map it may lie outside
// the tensor, and only masked loads (which touch no memory for masked lanes) read from it.
template <class T> inline const T *address(const T *x, int64_t off) {
  return reinterpret_cast<const T *>(reinterpret_cast<uintptr_t>(x) +
                                     static_cast<uintptr_t>(off) * sizeof(T));
}

// Zeros that stand in for a padding pixel's channels where the loads are not masked: enough
// for 32 channels of either element type.
alignas(64) constexpr uint32_t kZeros[32] = {};

// bf16 on `vdpbf16ps`: a product takes one pair of input channels per lane.
struct Bf16 {
  using Elem = uint16_t;    // the activations' storage
  using W = uint32_t;       // one lane's weight: a pair of bf16
  using In = __m512bh;      // one product's input operand
  using Chunk = __m512i;    // an input pixel's block of channels, as loaded
  static constexpr int kPer = 2;  // input channels a lane takes per product

  struct Vectors {
    __m512i select[2];    // cpg 4: vpermilps controls for pair 0 and 1
    __m512i to_channels;  // accumulator lanes → channel order, for the store
    __m512i to_lanes;     // channel order → accumulator lanes, for the bias
  };

  ARCHC_AVX512 static Vectors vectors(int cpg) {
    Vectors v;
    alignas(64) int32_t lanes[16];
    for (int p = 0; p < 2; ++p) {
      for (int a = 0; a < 16; ++a) lanes[a] = (a / 8) * 2 + p;  // qword L/2 of the lane, dword p
      v.select[p] = _mm512_load_si512(lanes);
    }
    for (int c = 0; c < 16; ++c)
      for (int a = 0; a < 16; ++a)
        if (lane_channel(cpg, a) == c) lanes[c] = a;
    v.to_channels = _mm512_load_si512(lanes);
    for (int a = 0; a < 16; ++a) lanes[a] = lane_channel(cpg, a);
    v.to_lanes = _mm512_load_si512(lanes);
    return v;
  }

  // 4 or 8 channels per group: the pixel's 16 input channels broadcast to both 256-bit halves
  // (one `vbroadcasti64x4` from memory), from kZeros for the padding (`valid` false). A masked
  // broadcast would read zeros too, but the compiler may load its source unmasked first, and
  // at the map's first or last row that address can lie on an unmapped page.
  ARCHC_INLINE static Chunk chunk(const Elem *x, int64_t off, bool valid) {
    const Elem *p = valid ? x + off : reinterpret_cast<const Elem *>(kZeros);
    return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
  }

  // A chunk arranged for pair `p`: an in-lane shuffle (no lane crossing) hands each accumulator
  // lane a pair of its own group's input channels.
  template <int CPG> ARCHC_INLINE static In select(Chunk chunk, const Vectors &v, int p) {
    if constexpr (CPG == 4) return (In)_mm512_permutevar_ps((__m512)chunk, v.select[p]);
    switch (p) {
      case 0: return (In)_mm512_shuffle_epi32(chunk, _MM_PERM_AAAA);
      case 1: return (In)_mm512_shuffle_epi32(chunk, _MM_PERM_BBBB);
      case 2: return (In)_mm512_shuffle_epi32(chunk, _MM_PERM_CCCC);
      default: return (In)_mm512_shuffle_epi32(chunk, _MM_PERM_DDDD);
    }
  }

  // 16 or 32 channels per group: a block lies inside one group and every lane takes the same
  // input pair, broadcast from the pixel's channels at `src` (kZeros for the padding).
  ARCHC_INLINE static In broadcast(const Elem *src, int p) {
    int32_t pair;
    std::memcpy(&pair, src + 2 * p, sizeof pair);
    return (In)_mm512_set1_epi32(pair);
  }

  ARCHC_INLINE static __m512 fma(__m512 acc, In in, In w) { return _mm512_dpbf16_ps(acc, in, w); }

  ARCHC_INLINE static In weight(const W *wb) { return (In)_mm512_loadu_si512(wb); }

  ARCHC_INLINE static __m512 bias(const float *b, const Vectors &v) {
    return _mm512_permutexvar_ps(v.to_lanes, _mm512_loadu_ps(b));
  }

  ARCHC_INLINE static void store(const __m512 *acc, int tn, const Vectors &v, bool relu, Elem *y,
                                 int64_t c) {
    const __m512 zero = _mm512_setzero_ps();
    for (int t = 0; t < tn; ++t) {
      __m512 r = _mm512_permutexvar_ps(v.to_channels, acc[t]);
      if (relu) r = _mm512_max_ps(r, zero);
      _mm256_storeu_si256(reinterpret_cast<__m256i *>(y + t * c),
                          (__m256i)_mm512_cvtneps_pbh(r));
    }
  }
};

// fp32 on FMA: a product takes one input channel per lane. Accumulator lane o is output channel
// o of its block, in channel order. With 4 or 8 channels per group, its group's input channels
// are lanes (o / cpg)·cpg … + cpg − 1 of the block's 16, so the i-th of them reaches every lane
// by one permute (in-lane for 4) of the pixel's 16 channels, against a weight vector holding
// each output channel's weight for input channel i of its group.
struct F32 {
  using Elem = float;
  using W = float;
  using In = __m512;
  using Chunk = __m512;
  static constexpr int kPer = 1;

  struct Vectors {
    __m512i select[8];  // cpg 8: lane o takes channel 8·(o / 8) + i
  };

  ARCHC_AVX512 static Vectors vectors(int) {
    Vectors v;
    alignas(64) int32_t lanes[16];
    for (int i = 0; i < 8; ++i) {
      for (int o = 0; o < 16; ++o) lanes[o] = (o / 8) * 8 + i;
      v.select[i] = _mm512_load_si512(lanes);
    }
    return v;
  }

  ARCHC_INLINE static Chunk chunk(const Elem *x, int64_t off, bool valid) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>(valid ? 0xFFFF : 0), address(x, off));
  }

  template <int CPG> ARCHC_INLINE static In select(Chunk chunk, const Vectors &v, int i) {
    if constexpr (CPG == 4) {
      switch (i) {
        case 0: return _mm512_permute_ps(chunk, 0x00);
        case 1: return _mm512_permute_ps(chunk, 0x55);
        case 2: return _mm512_permute_ps(chunk, 0xAA);
        default: return _mm512_permute_ps(chunk, 0xFF);
      }
    }
    return _mm512_permutexvar_ps(v.select[i], chunk);
  }

  ARCHC_INLINE static In broadcast(const Elem *src, int i) { return _mm512_set1_ps(src[i]); }

  ARCHC_INLINE static __m512 fma(__m512 acc, In in, In w) { return _mm512_fmadd_ps(in, w, acc); }

  ARCHC_INLINE static In weight(const W *wb) { return _mm512_loadu_ps(wb); }

  ARCHC_INLINE static __m512 bias(const float *b, const Vectors &) { return _mm512_loadu_ps(b); }

  ARCHC_INLINE static void store(const __m512 *acc, int tn, const Vectors &, bool relu, Elem *y,
                                 int64_t c) {
    const __m512 zero = _mm512_setzero_ps();
    for (int t = 0; t < tn; ++t)
      _mm512_storeu_ps(y + t * c, relu ? _mm512_max_ps(acc[t], zero) : acc[t]);
  }
};

// Where a tile reads: input row `ih` of image n, columns `iw0` + i for i < count; input i is
// at element `first` + i·`step` of the input (the block's first input channel), and bit i of
// `valid` says whether it is inside the map (its row and column). The others are never read.
struct Reads {
  int64_t first, step;
  uint32_t valid;
  int64_t at(int i) const { return first + i * step; }
};

inline Reads reads(const Shape &s, int64_t n, int64_t ih, int64_t iw0, int count,
                   int64_t cin0) {
  Reads r{((n * s.h + ih) * s.w + iw0) * s.c + cin0, s.c, 0};
  if (ih < 0 || ih >= s.h) return r;
  for (int i = 0; i < count; ++i)
    if (iw0 + i >= 0 && iw0 + i < s.w) r.valid |= 1u << i;
  return r;
}

// One kernel row's inputs as a tile reads them: with 4 or 8 channels per group each pixel's
// chunk, loaded once; with 16 or 32, where each pixel's channels lie (kZeros for the padding),
// broadcast from there step by step.
template <class E, int CPG, int N> struct Row {
  typename E::Chunk chunk[CPG <= 8 ? N : 1];
  const typename E::Elem *src[CPG <= 8 ? 1 : N];
};

template <class E, int CPG, int N>
ARCHC_INLINE void load(Row<E, CPG, N> &row, const typename E::Elem *x, const Reads &r) {
#pragma GCC unroll 24
  for (int i = 0; i < N; ++i) {
    const bool valid = (r.valid >> i) & 1;
    if constexpr (CPG <= 8)
      row.chunk[i] = E::chunk(x, r.at(i), valid);
    else
      row.src[i] = valid ? x + r.at(i) : reinterpret_cast<const typename E::Elem *>(kZeros);
  }
}

// `count` inputs of a kernel row for step p (a pair of input channels in bf16, one in fp32),
// from `first` every `step`: the chunks shuffled (4 or 8 channels per group) or broadcast from
// memory (16 or 32).
template <class E, int CPG, int N>
ARCHC_INLINE void inputs(typename E::In *in, int count, const Row<E, CPG, N> &row, int first,
                         int step, const typename E::Vectors &v, int p) {
#pragma GCC unroll 24
  for (int j = 0; j < count; ++j) {
    const int i = first + j * step;
    if constexpr (CPG <= 8)
      in[j] = E::template select<CPG>(row.chunk[i], v, p);
    else
      in[j] = E::broadcast(row.src[i], p);
  }
}

// acc[t] += in[t + first] · (the weight of `tap`, step p) for the T output pixels of a tile.
template <class E, int T>
ARCHC_INLINE void products(__m512 *acc, const typename E::In *in, int first,
                           const typename E::W *wb, int tap, int steps, int p) {
  const typename E::In w = E::weight(wb + (tap * steps + p) * 16);
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = E::fma(acc[t], in[t + first], w);
}

// Two output rows (oh, oh + 1) of one tile of T pixels at once, stride 1. The four input rows
// they read are each loaded and shuffled once per step and serve every output row and kernel
// column they overlap: a shuffle feeds up to 2·3 products. Inputs outside the map (the
// padding, the row past the last where `rows` is 1) read zeros, so every tile runs the same
// straight-line code; pixels of a last, partial tile past the map's edge are computed from
// zeros and not stored. `y`: the output block's first channel.
template <class E, int CPG, int T>
ARCHC_AVX512 void tile_s1(const typename E::Elem *x, const typename E::W *wb, __m512 bias,
                          const typename E::Vectors &v, typename E::Elem *y, const Shape &s,
                          int64_t n, int64_t oh, int rows, int64_t ow0, int tn, int64_t cin0,
                          bool relu) {
  constexpr int P = CPG / E::kPer;
  constexpr int kInputs = T + 2;
  __m512 acc0[T], acc1[T];
  for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = bias;
#pragma GCC unroll 4
  for (int ri = 0; ri < 4; ++ri) {
    const int64_t ih = oh - 1 + ri;
    const Reads r = reads(s, n, ri == 3 && rows == 1 ? -1 : ih, ow0 - 1, kInputs, cin0);
    Row<E, CPG, kInputs> row;
    load(row, x, r);
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      typename E::In in[kInputs];
      inputs(in, kInputs, row, 0, 1, v, p);
      if (ri <= 2)
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; ++kw) products<E, T>(acc0, in, kw, wb, ri * 3 + kw, P, p);
      if (ri >= 1)
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; ++kw) products<E, T>(acc1, in, kw, wb, (ri - 1) * 3 + kw, P, p);
    }
  }
  typename E::Elem *out = y + ((n * s.oh + oh) * s.ow + ow0) * s.c;
  E::store(acc0, tn, v, relu, out, s.c);
  if (rows == 2) E::store(acc1, tn, v, relu, out + s.ow * s.c, s.c);
}

// Stride 2: output rows oh and oh + 1 read input rows 2·oh − 1 … 2·oh + 3 (the middle one
// serves both); output pixel t reads input columns 2t − 1 + kw. The even columns (kw 0 and 2)
// are taken first and the odd ones (kw 1) after, so that at most T + 1 inputs are live.
template <class E, int CPG, int T>
ARCHC_AVX512 void tile_s2(const typename E::Elem *x, const typename E::W *wb, __m512 bias,
                          const typename E::Vectors &v, typename E::Elem *y, const Shape &s,
                          int64_t n, int64_t oh, int rows, int64_t ow0, int tn, int64_t cin0,
                          bool relu) {
  constexpr int P = CPG / E::kPer;
  constexpr int kInputs = 2 * T + 1;
  __m512 acc0[T], acc1[T];
  for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = bias;
#pragma GCC unroll 5
  for (int ri = 0; ri < 5; ++ri) {
    const int64_t ih = 2 * oh - 1 + ri;
    if (ri >= 3 && rows == 1) break;
    const Reads r = reads(s, n, ih, 2 * ow0 - 1, kInputs, cin0);
    Row<E, CPG, kInputs> row;
    load(row, x, r);
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      typename E::In in[T + 1];
      inputs(in, T + 1, row, 0, 2, v, p);
      if (ri <= 2) {
        products<E, T>(acc0, in, 0, wb, ri * 3, P, p);
        products<E, T>(acc0, in, 1, wb, ri * 3 + 2, P, p);
      }
      if (ri >= 2) {
        products<E, T>(acc1, in, 0, wb, (ri - 2) * 3, P, p);
        products<E, T>(acc1, in, 1, wb, (ri - 2) * 3 + 2, P, p);
      }
      inputs(in, T, row, 1, 2, v, p);
      if (ri <= 2) products<E, T>(acc0, in, 0, wb, ri * 3 + 1, P, p);
      if (ri >= 2) products<E, T>(acc1, in, 0, wb, (ri - 2) * 3 + 1, P, p);
    }
  }
  typename E::Elem *out = y + ((n * s.oh + oh) * s.ow + ow0) * s.c;
  E::store(acc0, tn, v, relu, out, s.c);
  if (rows == 2) E::store(acc1, tn, v, relu, out + s.ow * s.c, s.c);
}

// Output rows oh and oh + 1 (only oh where `rows` is 1) of image n, every block of 16 channels.
// `wp`: [C/16][9][cpg / kPer][16] (bf16 pairs in accumulator-lane order, or fp32 in channel
// order); `bias`: fp32 in channel order.
template <class E, int CPG, int T>
ARCHC_AVX512 void row_pair(const typename E::Elem *x, const typename E::W *wp, const float *bias,
                           typename E::Elem *y, const Shape &s, int64_t n, int64_t oh, int rows,
                           bool relu) {
  constexpr int P = CPG / E::kPer;
  const typename E::Vectors v = E::vectors(CPG);
  // The input rows the next row pair reads that this one does not (of this image, or the
  // next one's first), one contiguous range, are prefetched into L2 a share at each block of
  // channels: on the early stages' large maps they come from memory, and the blocks read each
  // row 32 or 64 bytes a pixel at a time, a pattern the hardware does not fetch ahead on its own.
  int64_t nn = n, noh = oh + 2;
  if (noh >= s.oh) nn = n + 1, noh = 0;
  const int64_t past = nn == n ? (oh + 1) * s.stride + 1 : 0;  // the first row not read yet
  const int64_t ih0 = std::max<int64_t>({0, past, noh * s.stride - 1});
  const int64_t ih1 = std::min<int64_t>(s.h, noh * s.stride + (s.stride == 1 ? 3 : 4));
  const int64_t blocks = s.c / 16;
  const int64_t lines =
      nn < s.n && ih1 > ih0
          ? (ih1 - ih0) * s.w * s.c * static_cast<int64_t>(sizeof(typename E::Elem)) / 64
          : 0;
  const char *ahead = reinterpret_cast<const char *>(x + (nn * s.h + ih0) * s.w * s.c);
  const int64_t per = (lines + blocks - 1) / blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t l = b * per; l < std::min(lines, (b + 1) * per); ++l)
      __builtin_prefetch(ahead + 64 * l, 0, 2);
    const typename E::W *wb = wp + b * 9 * P * 16;
    const __m512 bv = E::bias(bias + 16 * b, v);
    // The block's first input channel: its own 16 (4 or 8 per group), its group's (16 or 32).
    const int64_t cin0 = CPG <= 8 ? 16 * b : 16 * b / CPG * CPG;
    for (int64_t ow0 = 0; ow0 < s.ow; ow0 += T) {
      const int tn = static_cast<int>(std::min<int64_t>(T, s.ow - ow0));
      if (s.stride == 1)
        tile_s1<E, CPG, T>(x, wb, bv, v, y + 16 * b, s, n, oh, rows, ow0, tn, cin0, relu);
      else
        tile_s2<E, CPG, T>(x, wb, bv, v, y + 16 * b, s, n, oh, rows, ow0, tn, cin0, relu);
    }
  }
}

template <class E>
using PairFn = void (*)(const typename E::Elem *, const typename E::W *, const float *,
                        typename E::Elem *, const Shape &, int64_t, int64_t, int, bool);

// Tiles of 7 pixels where the output width is a multiple of 7 (ResNeXt's 56, 28, 14 and 7 waste
// no lanes), else 8.
template <class E, int CPG> PairFn<E> pair_fn(int64_t width) {
  return width % 7 == 0 ? row_pair<E, CPG, 7> : row_pair<E, CPG, 8>;
}

// The kernel for `cpg` channels per group (4, 8, 16 or 32), else null.
template <class E> PairFn<E> kernel(int64_t cpg, int64_t width) {
  switch (cpg) {
    case 4: return pair_fn<E, 4>(width);
    case 8: return pair_fn<E, 8>(width);
    case 16: return pair_fn<E, 16>(width);
    case 32: return pair_fn<E, 32>(width);
    default: return nullptr;
  }
}

// Every row pair of the output, in parallel on libtorch's own OpenMP threads.
template <class E>
void run_pairs(PairFn<E> fn, const typename E::Elem *x, const typename E::W *wp, const float *bias,
               typename E::Elem *y, const Shape &s, bool relu) {
  const int64_t pairs = (s.oh + 1) / 2;  // output rows two at a time
  at::parallel_for(0, s.n * pairs, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = 2 * (r % pairs);
      fn(x, wp, bias, y, s, r / pairs, oh, oh + 1 < s.oh ? 2 : 1, relu);
    }
  });
}

// ---- AMX ----------------------------------------------------------------------------------
// On a CPU with AMX the same convolution runs as tile products (`tdpbf16ps`): C[16 output
// pixels × 16 output channels] += A[16 pixels × 16 input channels of those channels' groups] ·
// B[16 input × 16 output channels], one product per kernel tap. B is block-diagonal (4, 2 or 1
// groups of a 16-channel block), so a product does a quarter (cpg 4), half (cpg 8) or all of
// its work usefully; AMX still does that several times faster than AVX512-BF16.
// A tile's 16 rows are 16 output pixels of one row: each thread first copies the three input
// rows an output row reads into zero-padded buffers ordered by 16-channel block (PaddedRows), so
// every A tile loads straight from a buffer, its rows `stride` pixels (32 bytes each) apart.
// In those buffers the 16 channels of pixel p+1 follow those of pixel p, so one A row of 64
// bytes holds two neighbouring taps (kernel columns 0 and 1), and the packed B tiles of those
// two taps lie one after the other: one product with K = 32 does two taps, and a kernel row
// takes two products (K 32 and 16) instead of three. Two pixel blocks share each B tile.
// Tiles: 0-1 C; 2-3 A and 4 B for the tap pair; 5-6 A and 7 B for the third tap.

using archc::TileConfig;

// Whether the CPU has AMX-BF16 (and AVX512-BF16 for the epilogue) and Linux lent the tiles.
bool amx_ready() {
  static const bool ready = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("avx512bf16") &&
           archc::request_amx();
  }();
  return ready;
}

__attribute__((target("amx-tile"))) void amx_configure() {
  TileConfig cfg;
  for (int t = 0; t < 2; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;  // C: 16 x 16 fp32
  for (int t = 2; t < 4; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;  // A: 16 x 2 taps x 16 bf16
  cfg.rows[4] = 16, cfg.colsb[4] = 64;                               // B: 2 taps x 8 x 16 pairs
  for (int t = 5; t < 7; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 32;  // A: 16 x 16 bf16
  cfg.rows[7] = 8, cfg.colsb[7] = 64;                                // B: 8 x 16 bf16 pairs
  // GCC's _tile_loadconfig tells the compiler it reads only the first 8 bytes, so at -O2 the
  // stores above would be dropped as dead: make the whole struct visibly used first.
  __asm__ __volatile__("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

// The input rows a thread's output rows read, zero-padded and regrouped by blocks of 16
// channels: slot k holds input row `tag[k]` of image `image` as [C/16][width][16] bf16, pixel iw
// at index iw + 1, zeros for the padding and past the row. An A tile (16 pixels of one block)
// then loads straight from a slot, its rows 32 bytes apart (stride 1) instead of a whole pixel.
// Three slots, one per kernel row; consecutive output rows reuse two of them.
struct PaddedRows {
  int64_t width = 0, c = 0, image = -1;
  int64_t tag[3] = {-1, -1, -1};
  std::vector<uint16_t> data;

  PaddedRows(const Shape &s) : width(((s.ow + 31) / 32 * 32) * s.stride + 3), c(s.c) {
    data.assign(static_cast<size_t>(3 * width * c), 0);
  }

  // Input row ih of image n, padded; nullptr where ih is padding.
  __attribute__((target("avx2"))) const uint16_t *row(const uint16_t *x, const Shape &s,
                                                      int64_t n, int64_t ih) {
    if (ih < 0 || ih >= s.h) return nullptr;
    if (n != image) {
      image = n;
      tag[0] = tag[1] = tag[2] = -1;
    }
    const int k = static_cast<int>(ih % 3);
    uint16_t *slot = data.data() + k * width * c;
    if (tag[k] != ih) {
      // (Locals: the stores below may alias anything, so fields would be reloaded each time.)
      const int64_t w = s.w, c = s.c, blocks = c / 16, span = width * 16;
      const uint16_t *src = x + (n * s.h + ih) * w * c;
      for (int64_t iw = 0; iw < w; ++iw) {
        const uint16_t *from = src + iw * c;
        uint16_t *to = slot + (iw + 1) * 16;
        for (int64_t b = 0; b < blocks; ++b)
          _mm256_storeu_si256(
              reinterpret_cast<__m256i *>(to + b * span),
              _mm256_loadu_si256(reinterpret_cast<const __m256i *>(from + 16 * b)));
      }
      tag[k] = ih;
      // GCC's tile load does not tell the compiler that it reads memory: keep these stores.
      __asm__ __volatile__("" : : "r"(slot) : "memory");
    }
    return slot;
  }
};

// relu?(C + bias) rounded to bf16, rows 0 … tn-1, into y (row stride c).
__attribute__((target("amx-tile,avx512f,avx512bf16"), always_inline)) inline void amx_store(
    const float *sums, int tn, __m512 bias, bool relu, uint16_t *y, int64_t c) {
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < tn; ++r) {
    __m512 v = _mm512_add_ps(_mm512_load_ps(sums + 16 * r), bias);
    if (relu) v = _mm512_max_ps(v, zero);
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(y + r * c), (__m256i)_mm512_cvtneps_pbh(v));
  }
}

// One output row (image n, row oh), every block of 16 channels. `wp`: [C/16][9][8][16][2] bf16,
// B tiles in AMX's pair-interleaved order; `bias`: fp32 in channel order.
__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16"))) void amx_row(
    const uint16_t *x, const uint16_t *wp, const float *bias, uint16_t *y, const Shape &s,
    int64_t n, int64_t oh, bool relu, PaddedRows &rows) {
  alignas(64) float sums[16 * 16];
  const uint16_t *in[3];
  for (int kh = 0; kh < 3; ++kh) in[kh] = rows.row(x, s, n, oh * s.stride - 1 + kh);
  const int64_t step = s.stride * 32;  // bytes between the input pixels of two rows of A
  for (int64_t b = 0; b < s.c / 16; ++b) {
    const int64_t cin0 = 16 * b;
    const __m512 bv = _mm512_loadu_ps(bias + cin0);
    for (int64_t ow0 = 0; ow0 < s.ow; ow0 += 32) {
      const int tn0 = static_cast<int>(std::min<int64_t>(16, s.ow - ow0));
      const int tn1 = static_cast<int>(std::clamp<int64_t>(s.ow - ow0 - 16, 0, 16));
      _tile_zero(0);
      _tile_zero(1);
      for (int kh = 0; kh < 3; ++kh) {
        if (in[kh] == nullptr) continue;
        // Output pixel ow, tap kw reads padded index ow·stride + kw: taps 0 and 1 as one A row
        // of 32 channels (K = 32) against their two B tiles stacked, then tap 2 alone.
        const uint16_t *a = in[kh] + (b * rows.width + ow0 * s.stride) * 16;
        const uint16_t *w = wp + (b * 9 + kh * 3) * 8 * 16 * 2;
        _tile_loadd(4, w, 64);
        _tile_loadd(2, a, step);
        _tile_dpbf16ps(0, 2, 4);
        if (tn1 > 0) {
          _tile_loadd(3, a + 16 * s.stride * 16, step);
          _tile_dpbf16ps(1, 3, 4);
        }
        _tile_loadd(7, w + 2 * 8 * 16 * 2, 64);
        _tile_loadd(5, a + 2 * 16, step);
        _tile_dpbf16ps(0, 5, 7);
        if (tn1 > 0) {
          _tile_loadd(6, a + (16 * s.stride + 2) * 16, step);
          _tile_dpbf16ps(1, 6, 7);
        }
      }
      uint16_t *yrow = y + ((n * s.oh + oh) * s.ow + ow0) * s.c + cin0;
      _tile_stored(0, sums, 64);
      amx_store(sums, tn0, bv, relu, yrow, s.c);
      if (tn1 > 0) {
        _tile_stored(1, sums, 64);
        amx_store(sums, tn1, bv, relu, yrow + 16 * s.c, s.c);
      }
    }
  }
}

__attribute__((target("amx-tile"))) void amx_release() { _tile_release(); }

// ---- fp32 ----------------------------------------------------------------------------------
// The same convolution in fp32 (the `F32` element type above, AVX-512 FMA), where oneDNN's
// direct kernel reaches 15% of the fp32 peak for 4 channels per group and 30–40% for 8
// (BENCHMARKS.md).

// The fp32 kernel for `cpg` channels per group (4, 8, 16 or 32) where this CPU has AVX-512 (F,
// BW, VL), else null.
PairFn<F32> f32_kernel(int64_t cpg, int64_t width) {
  static const bool avx512 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return avx512 ? kernel<F32>(cpg, width) : nullptr;
}

// The fp32 convolution (archc_grouped_conv with an fp32 packed weight).
void f32_conv(const at::Tensor &x, const at::Tensor &packed, const at::Tensor &bias,
              int64_t stride, int64_t cpg, bool relu, at::Tensor **out) {
  TORCH_CHECK(f32_kernel(cpg, 1) != nullptr,
              "grouped kernel: fp32 takes 4, 8, 16 or 32 channels per group, on a CPU with "
              "AVX-512");
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 4 &&
                  (x.size(2) == 0 || x.size(3) == 0 ||
                   x.is_contiguous(at::MemoryFormat::ChannelsLast)),
              "grouped kernel: input must be fp32 channels-last (the weight's type)");
  TORCH_CHECK(x.size(2) > 0 && x.size(3) > 0, "grouped kernel: an empty map");
  const Shape s{x.size(0), x.size(2), x.size(3), x.size(1),
                (x.size(2) - 1) / stride + 1, (x.size(3) - 1) / stride + 1, stride};
  TORCH_CHECK(packed.dim() == 4 && packed.size(1) == 9 && packed.size(2) == cpg &&
                  packed.size(3) == 16 && packed.is_contiguous(),
              "grouped kernel: weight not packed by archc_grouped_pack_f32 for ", cpg,
              " channels per group");
  TORCH_CHECK(s.c % 16 == 0 && s.c % cpg == 0 && packed.size(0) * 16 == s.c &&
                  bias.numel() == s.c,
              "grouped kernel: channel count mismatch");
  at::Tensor y = archc::empty_channels_last(s.n, s.c, s.oh, s.ow, x.scalar_type());
  run_pairs<F32>(f32_kernel(cpg, s.ow), x.data_ptr<float>(), packed.data_ptr<float>(),
                 bias.data_ptr<float>(), y.data_ptr<float>(), s, relu);
  *out = new at::Tensor(std::move(y));
}

}  // namespace

extern "C" {

// Whether AMX tiles run `cpg` channels per group: a 16-channel block holds whole groups.
bool amx_takes(int64_t cpg) { return cpg == 4 || cpg == 8 || cpg == 16; }

// Whether the AVX512-BF16 path runs `cpg` channels per group on this CPU.
bool avx_takes(int64_t cpg) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && kernel<Bf16>(cpg, 1) != nullptr;
}

// 1 when this CPU runs the kernel for `cpg` channels per group: 4, 8, 16 or 32 with
// AVX512-BF16; 4, 8 or 16 with AMX.
int archc_grouped_supported(int64_t cpg) {
  return avx_takes(cpg) || (amx_takes(cpg) && amx_ready());
}

// 1 when this CPU runs the kernel on AMX tiles (and the kernel lent the tile state).
int archc_grouped_amx() { return amx_ready() ? 1 : 0; }

// Packs an OIHW 3×3 weight (O = C, I = cpg) for the kernel. AVX512-BF16 (`amx` 0):
// [C/16][9][cpg/2][32], pairs of bf16 for the 16 accumulator lanes in their order. AMX (`amx`
// 1): [C/16][9][8][16][2], B tiles (16 input × 16 output channels of a block, block-diagonal by
// group, pair-interleaved). The rank tells the two apart in archc_grouped_conv.
char *archc_grouped_pack(const at::Tensor *weight, int64_t cpg, int amx, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(amx != 0 ? amx_takes(cpg) : avx_takes(cpg),
                amx != 0 ? "grouped kernel: AMX takes 4, 8 or 16 channels per group"
                         : "grouped kernel: 4, 8, 16 or 32 channels per group, on a CPU with "
                           "AVX512-BF16");
    TORCH_CHECK(amx == 0 || amx_ready(), "grouped kernel: this CPU or kernel lends no AMX");
    TORCH_CHECK(weight->is_cpu(), "grouped kernel: the weight must be on the CPU");
    const at::Tensor w = weight->to(at::kFloat).contiguous();
    TORCH_CHECK(w.dim() == 4 && w.size(1) == cpg && w.size(2) == 3 && w.size(3) == 3 &&
                    w.size(0) % 16 == 0 && w.size(0) % cpg == 0,
                "grouped kernel: weight must be [C, cpg, 3, 3], C a multiple of 16 and of cpg");
    const int64_t c = w.size(0), pairs = amx != 0 ? 8 : cpg / 2;
    const auto bf16 = w.options().dtype(at::kBFloat16);
    at::Tensor packed = amx != 0 ? at::zeros({c / 16, 9, pairs, 16, 2}, bf16)
                                 : at::zeros({c / 16, 9, pairs, 32}, bf16);
    const float *src = w.data_ptr<float>();
    auto *dst = packed.data_ptr<c10::BFloat16>();
    for (int64_t b = 0; b < c / 16; ++b)
      for (int64_t t = 0; t < 9; ++t)
        for (int64_t p = 0; p < pairs; ++p)
          for (int a = 0; a < 16; ++a)
            for (int64_t i = 0; i < 2; ++i) {
              float v;
              if (amx != 0) {
                // Input channel k = 2p + i of the block against output channel a.
                const int64_t k = 2 * p + i;
                v = k / cpg == a / cpg ? src[((16 * b + a) * cpg + k % cpg) * 9 + t] : 0.0f;
              } else {
                const int64_t o = 16 * b + lane_channel(static_cast<int>(cpg), a);
                v = src[(o * cpg + 2 * p + i) * 9 + t];
              }
              dst[(((b * 9 + t) * pairs + p) * 16 + a) * 2 + i] = c10::BFloat16(v);
            }
    *out = new at::Tensor(std::move(packed));
  });
}

// 1 when this CPU runs the fp32 kernel for `cpg` channels per group (4, 8, 16 or 32, AVX-512).
int archc_grouped_f32_supported(int64_t cpg) { return f32_kernel(cpg, 1) != nullptr ? 1 : 0; }

// Packs an OIHW 3×3 weight (O = C, I = cpg: 4, 8, 16 or 32) for the fp32 kernel:
// [C/16][9][cpg][16] fp32, for each 16-channel block and tap the weight of input channel i of
// each output channel's group, the 16 in channel order.
char *archc_grouped_pack_f32(const at::Tensor *weight, int64_t cpg, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(f32_kernel(cpg, 1) != nullptr,
                "grouped kernel: fp32 takes 4, 8, 16 or 32 channels per group, on a CPU with "
                "AVX-512");
    TORCH_CHECK(weight->is_cpu(), "grouped kernel: the weight must be on the CPU");
    const at::Tensor w = weight->to(at::kFloat).contiguous();
    TORCH_CHECK(w.dim() == 4 && w.size(1) == cpg && w.size(2) == 3 && w.size(3) == 3 &&
                    w.size(0) % 16 == 0 && w.size(0) % cpg == 0,
                "grouped kernel: weight must be [C, cpg, 3, 3], C a multiple of 16 and of cpg");
    const int64_t c = w.size(0);
    at::Tensor packed = at::empty({c / 16, 9, cpg, 16}, w.options());
    const float *src = w.data_ptr<float>();
    float *dst = packed.data_ptr<float>();
    for (int64_t b = 0; b < c / 16; ++b)
      for (int64_t t = 0; t < 9; ++t)
        for (int64_t i = 0; i < cpg; ++i)
          for (int64_t o = 0; o < 16; ++o)
            dst[((b * 9 + t) * cpg + i) * 16 + o] = src[((16 * b + o) * cpg + i) * 9 + t];
    *out = new at::Tensor(std::move(packed));
  });
}

// relu?(grouped_conv3x3(x) + bias): x channels-last [N, C, H, W] in bf16 (a weight from
// archc_grouped_pack) or fp32 (from archc_grouped_pack_f32), padding 1.
char *archc_grouped_conv(const at::Tensor *x, const at::Tensor *packed, const at::Tensor *bias,
                         int64_t stride, int64_t cpg, int relu, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(stride == 1 || stride == 2, "grouped kernel: stride 1 or 2");
    TORCH_CHECK(x->is_cpu() && packed->is_cpu() && bias->is_cpu(),
                "grouped kernel: tensors must be on the CPU");
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->is_contiguous(),
                "grouped kernel: bias must be contiguous fp32");
    if (packed->scalar_type() == at::kFloat)
      return f32_conv(*x, *packed, *bias, stride, cpg, relu != 0, out);
    const bool amx = packed->dim() == 5;
    TORCH_CHECK(amx ? amx_takes(cpg) && amx_ready() : avx_takes(cpg),
                "grouped kernel: unsupported");
    TORCH_CHECK(packed->scalar_type() == at::kBFloat16 && packed->size(0) > 0 &&
                    packed->size(1) == 9 && packed->is_contiguous() &&
                    (amx ? packed->size(2) == 8 && packed->size(3) == 16 && packed->size(4) == 2
                         : packed->dim() == 4 && packed->size(2) == cpg / 2 &&
                               packed->size(3) == 32),
                "grouped kernel: weight not packed by archc_grouped_pack for ", cpg,
                " channels per group");
    TORCH_CHECK(x->scalar_type() == at::kBFloat16 && x->dim() == 4 &&
                    (x->size(2) == 0 || x->size(3) == 0 ||
                     x->is_contiguous(at::MemoryFormat::ChannelsLast)),
                "grouped kernel: input must be bf16 channels-last");
    TORCH_CHECK(x->size(2) > 0 && x->size(3) > 0, "grouped kernel: an empty map");
    const Shape s{x->size(0), x->size(2), x->size(3), x->size(1),
                  (x->size(2) - 1) / stride + 1, (x->size(3) - 1) / stride + 1, stride};

    TORCH_CHECK(s.c % 16 == 0 && s.c % cpg == 0 && packed->size(0) * 16 == s.c &&
                    bias->numel() == s.c,
                "grouped kernel: channel count mismatch");
    at::Tensor y = archc::empty_channels_last(s.n, s.c, s.oh, s.ow, x->scalar_type());
    const auto *xp = reinterpret_cast<const uint16_t *>(x->data_ptr<c10::BFloat16>());
    const auto *wp = reinterpret_cast<const uint32_t *>(packed->data_ptr<c10::BFloat16>());
    const float *bp = bias->data_ptr<float>();
    auto *yp = reinterpret_cast<uint16_t *>(y.data_ptr<c10::BFloat16>());
    if (amx) {
      const auto *wa = reinterpret_cast<const uint16_t *>(wp);
      at::parallel_for(0, s.n * s.oh, 1, [&](int64_t begin, int64_t end) {
        amx_configure();  // per thread: the tile configuration is thread state
        PaddedRows rows(s);
        for (int64_t r = begin; r < end; ++r)
          amx_row(xp, wa, bp, yp, s, r / s.oh, r % s.oh, relu != 0, rows);
        amx_release();
      });
    } else {
      run_pairs<Bf16>(kernel<Bf16>(cpg, s.ow), xp, wp, bp, yp, s, relu != 0);
    }
    *out = new at::Tensor(std::move(y));
  });
}

}  // extern "C"
