// A bf16 1×1 convolution on AMX tiles (or AVX512-BF16) that can read two inputs: a bottleneck
// block's last 1×1 convolution and its projection shortcut (another 1×1, stride 1 or 2) as one
// matrix product,
//   y = relu?(W_main · x + W_short · x2[s·oy, s·ox] + bias (+ other)),
// with K = C_main + C_short: the shortcut's output is never written to memory and read back,
// which is what a ResNet's first block of each stage spends most of its time on at large maps
// (the two convolutions are memory-bound). Without x2 it is a plain 1×1 (with the residual add
// fused in). Pixels are flattened (n, oy, ox); 32 consecutive pixels × 32 channels accumulate in
// four C tiles. A full block of 32 pixels is read in place by the tile loads (its rows C_in
// apart), with its shortcut where that has stride 1 on the same map; a partial block, or a
// strided shortcut's pixels (gathered), is packed once into contiguous A tiles; the next block's
// rows are prefetched meanwhile. The K steps are taken 8 at a time across a panel of weight
// columns, so a block's rows stay in L1 and the panel in L2. The threads split the output
// channels where there are fewer pixels than channels (the small maps of the late stages, whose
// weights are the larger operand), else the pixel blocks. The sums stay in fp32
// until the bias, the residual and the ReLU are applied, then round to bf16 once.
//
// Without AMX the same product runs on AVX512-BF16 (`vdpbf16ps`, e.g. AMD's Zen 4), from the
// same packed weight: see run_vector below.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include "amx.h"
#include "ffi.h"
#include "pool.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#define ARCHC_POINTWISE \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,prfchw")))
// The AVX512-BF16 path's (without AMX).
#define ARCHC_POINTWISE_AVX \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,prfchw")))
#define ARCHC_POINTWISE_INLINE ARCHC_POINTWISE_AVX __attribute__((always_inline)) inline

namespace {

using archc::guard;
using archc::TileConfig;

constexpr int64_t kTile = 16 * 32;  // one packed B tile: 16 pairs × 16 channels × 2 (1 KB)
// The weight columns one sweep over a thread's pixel blocks takes: at most this many bytes of
// packed weight, so the panel stays in L2 (2 MB a core on the Xeons with AMX) meanwhile.
constexpr int64_t kPanelBytes = 1024 * 1024;

bool ready() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("avx512bf16") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           archc::request_amx();
  }();
  return yes;
}

ARCHC_POINTWISE void configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  __asm__ __volatile__("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

ARCHC_POINTWISE void release() { _tile_release(); }

// 16 bf16 values widened to fp32.
ARCHC_POINTWISE inline __m512 widen(__m256i v) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

// The K steps (32 input channels each) one sweep over a panel's columns covers: the pixel
// block's packed rows for them (16 KB) stay in L1 while the columns' weights stream from L2.
constexpr int64_t kChunk = 8;

// How many pixel blocks ahead the output rows are prefetched.
constexpr int64_t kPrefetch = 1;

// One thread's share of a product and what it reads: the pointers and shapes of
// archc_pointwise_conv's operands.
struct Unit {
  const uint16_t *x, *x2, *wt;
  const float *bias;
  uint16_t *y;
  int64_t c1, c2, kc, kc1, co, h, w, h2, w2, stride2, pixels;
  bool add, relu;
  // The shortcut's row for output pixel p (flattened n, oy, ox), read at its stride.
  const uint16_t *row2(int64_t p) const {
    const int64_t b = p / (h * w), oy = (p / w) % h, ox = p % w;
    return x2 + ((b * h2 + oy * stride2) * w2 + ox * stride2) * c2;
  }
};

// Prefetches the input rows of pixels [p0, p1) (both inputs; the shortcut's at its stride), a
// share at each of `calls` calls to step(), so that they are spread over a block's products.
struct Ahead {
  const Unit &u;
  int64_t p, p1, line = 0, per = 0;
  const int64_t lines1, lines2;  // cache lines of one pixel's channels, per input
  const uint16_t *src1 = nullptr, *src2 = nullptr;
  ARCHC_POINTWISE_AVX Ahead(const Unit &u, int64_t p0, int64_t p1, int64_t calls)
      : u(u), p(p0), p1(p1), lines1(u.c1 / 32), lines2(u.x2 != nullptr ? u.c2 / 32 : 0) {
    const int64_t total = std::max<int64_t>(0, p1 - p0) * (lines1 + lines2);
    per = (total + calls - 1) / calls;
    if (p < p1) locate();
  }
  void locate() {
    src1 = u.x + p * u.c1;
    if (lines2 > 0) src2 = u.row2(p);
  }
  ARCHC_POINTWISE_INLINE void step() {
    for (int64_t i = 0; i < per && p < p1; ++i) {
      if (line < lines1) {
        __builtin_prefetch(src1 + 32 * line, 0, 3);
      } else {
        __builtin_prefetch(src2 + 32 * (line - lines1), 0, 3);
      }
      if (++line == lines1 + lines2) {
        line = 0;
        if (++p < p1) locate();
      }
    }
  }
};

template <typename T>
T *aligned64(std::vector<T> &v) {
  return reinterpret_cast<T *>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
}

// Output pixel blocks [b0, b1) × column pairs [j0, j1) of `u`. The weight's columns are taken a
// panel at a time (at most kPanelBytes, so they stay in L2 while the pixel blocks go by). A full
// pixel block is read in place by the tile loads, and so is its shortcut where that has stride
// 1 on the same map; a partial block, or a strided shortcut's pixels (gathered on the way), is
// first packed as A tiles ([K step][32 rows][32 channels]). The block's K steps are then taken
// kChunk at a time across the panel's columns, the partial sums of all but the last chunk kept
// in fp32, while the next block's input rows are prefetched, a share at each K step.
ARCHC_POINTWISE void run_unit(const Unit &u, int64_t b0, int64_t b1, int64_t j0, int64_t j1) {
  if (b0 >= b1 || j0 >= j1) return;
  configure();
  const int64_t kc = u.kc, kc2 = kc - u.kc1;
  std::vector<uint16_t> abuf(static_cast<size_t>(1024 * kc + 32));
  uint16_t *a = aligned64(abuf);
  const int64_t per =
      std::max<int64_t>(1, std::min(j1 - j0, kPanelBytes / (kc * 2 * kTile * 2)));
  std::vector<float> accbuf(static_cast<size_t>(kc > kChunk ? 1024 * per + 16 : 16));
  float *acc = aligned64(accbuf);
  alignas(64) float sums[2][1024];
  const int64_t blocks_end = std::min(u.pixels, b1 * 32);
  // Column pair j of pixel block p0's rows from its fp32 sums: bias (+ residual) (+ ReLU),
  // rounded to bf16 once.
  auto finish = [&](int64_t j, const float *sum, int64_t p0, int rows) ARCHC_POINTWISE {
    const __m512 bias0 = _mm512_loadu_ps(u.bias + 32 * j);
    const __m512 bias1 = _mm512_loadu_ps(u.bias + 32 * j + 16);
    for (int r = 0; r < rows; ++r) {
      uint16_t *dst = u.y + (p0 + r) * u.co + 32 * j;
      __m512 v0 = _mm512_add_ps(_mm512_load_ps(sum + 32 * r), bias0);
      __m512 v1 = _mm512_add_ps(_mm512_load_ps(sum + 32 * r + 16), bias1);
      if (u.add) {
        const __m512i z = _mm512_loadu_si512(dst);
        v0 = _mm512_add_ps(v0, widen(_mm512_castsi512_si256(z)));
        v1 = _mm512_add_ps(v1, widen(_mm512_extracti64x4_epi64(z, 1)));
      }
      if (u.relu) {
        // (max(0, v) keeps a NaN, as libtorch's ReLU does.)
        v0 = _mm512_max_ps(_mm512_setzero_ps(), v0);
        v1 = _mm512_max_ps(_mm512_setzero_ps(), v1);
      }
      _mm512_storeu_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(v1, v0));
    }
  };
  for (int64_t jc = j0; jc < j1; jc += per) {
    const int64_t je = std::min(j1, jc + per);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t p0 = blk * 32;
      const int rows = static_cast<int>(std::min<int64_t>(32, u.pixels - p0));
      // A full block is read in place, its rows C1 apart (packing would copy each row once
      // for the few column pairs that read it: a reduction's 64 or 128 output channels), and so
      // is a shortcut with stride 1 on the same map; a partial block, or one with a strided
      // shortcut (timed: packing both inputs is then the faster), is packed.
      const bool in2 = rows == 32 && kc2 > 0 && u.stride2 == 1 && u.h2 == u.h && u.w2 == u.w;
      const bool in1 = rows == 32 && (kc2 == 0 || in2);
      if (!in1) {
        for (int r = 0; r < 32; ++r) {
          const bool real = r < rows;
          const uint16_t *src = real ? u.x + (p0 + r) * u.c1 : nullptr;
          for (int64_t s = 0; s < u.kc1; ++s)
            _mm512_store_si512(a + (s * 32 + r) * 32, real ? _mm512_loadu_si512(src + 32 * s)
                                                            : _mm512_setzero_si512());
        }
      }
      if (kc2 > 0 && !in2) {
        for (int r = 0; r < 32; ++r) {
          const bool real = r < rows;
          const uint16_t *src2 = real ? u.row2(p0 + r) : nullptr;
          for (int64_t s = 0; s < kc2; ++s)
            _mm512_store_si512(a + ((u.kc1 + s) * 32 + r) * 32,
                               real ? _mm512_loadu_si512(src2 + 32 * s) : _mm512_setzero_si512());
        }
      }
      // Where K step s's A tiles are: the top one at step(s), the bottom one `half` on, rows
      // `stride` bytes apart.
      const uint16_t *const x_rows = u.x + p0 * u.c1;
      const uint16_t *const x2_rows = in2 ? u.x2 + p0 * u.c2 : nullptr;
      auto a_tiles = [&](int64_t s, const uint16_t *&top, int64_t &half, int64_t &stride) {
        if (s < u.kc1 && in1) {
          top = x_rows + 32 * s, half = 16 * u.c1, stride = 2 * u.c1;
        } else if (s >= u.kc1 && in2) {
          top = x2_rows + 32 * (s - u.kc1), half = 16 * u.c2, stride = 2 * u.c2;
        } else {
          top = a + s * 1024, half = 512, stride = 64;
        }
      };
      Ahead ahead_rows(u, p0 + 32, std::min(p0 + 64, blocks_end),
                       std::max<int64_t>(1, kc * (je - jc)));
      for (int64_t s0 = 0; s0 < kc; s0 += kChunk) {
        const int64_t s1 = std::min(kc, s0 + kChunk);
        const bool first = s0 == 0, last = s1 == kc;
        for (int64_t j = jc; j < je; ++j) {
          float *part = acc + (j - jc) * 1024;
          if (first) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
          } else {
            _tile_loadd(0, part, 128);
            _tile_loadd(1, part + 16, 128);
            _tile_loadd(2, part + 512, 128);
            _tile_loadd(3, part + 528, 128);
          }
          const uint16_t *w0 = u.wt + (2 * j) * kc * kTile, *w1 = w0 + kc * kTile;
          for (int64_t s = s0; s < s1; ++s) {
            ahead_rows.step();
            const uint16_t *top;
            int64_t half, stride;
            a_tiles(s, top, half, stride);
            _tile_loadd(4, top, stride);
            _tile_loadd(5, top + half, stride);
            _tile_loadd(6, w0 + s * kTile, 64);
            _tile_loadd(7, w1 + s * kTile, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
          // 32 rows of 32 fp32 (C tiles 0 | 1 above 2 | 3); the last chunk's alternate between
          // two buffers, so that column pair j's epilogue runs while pair j + 1's products do
          // (the tile unit works on while the vector units round and store).
          float *out = last ? sums[(j - jc) & 1] : part;
          _tile_stored(0, out, 128);
          _tile_stored(1, out + 16, 128);
          _tile_stored(2, out + 512, 128);
          _tile_stored(3, out + 528, 128);
          if (!last) continue;
          // The rows this thread writes (and, with the residual, reads) kPrefetch blocks on, in
          // these 32 channels: on large maps they come from memory, and the hardware does not
          // fetch 64 bytes of each row, a row apart, ahead on its own.
          const int64_t ahead = p0 + 32 * kPrefetch;
          for (int64_t r = ahead; r < std::min(ahead + 32, blocks_end); ++r)
            __builtin_prefetch(u.y + r * u.co + 32 * j, 1, 3);
          if (j > jc) finish(j - 1, sums[(j - 1 - jc) & 1], p0, rows);
          if (j == je - 1) finish(j, out, p0, rows);
        }
      }
    }
  }
  release();
}

// Without AMX, on AVX512-BF16 (`vdpbf16ps`, AMD's Zen 4 and later): the same product from the
// same packed weight, whose [16 pairs][16 channels][2] rows are each one vector of 16 output
// channels × one pair of input channels. A tile of kRows pixels × 4 blocks of 16 channels keeps
// its 24 fp32 sums in registers over all of K: each K pair loads the 4 blocks' weight vectors
// and, for each pixel, broadcasts the pixel's pair of input values into 4 products. The pixels'
// rows are read in place (their K pairs in order, from L1 once the tile's first block of
// channels has read them); the weights of a panel of channels stay in L2 while the thread's
// pixels go by, tile after tile.


bool vector_ready() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return yes;
}

constexpr int kRows = 6;  // pixels a vector tile takes
// The packed weight a vector panel holds: half of Zen 4's 1 MB of L2 a core.
constexpr int64_t kVectorPanelBytes = 512 * 1024;

// acc[r][b] += the products of `pairs` K pairs: pixel r's input from rows[r], block b's weights
// from wt + b·block (one vector per pair).
template <int R, int B>
ARCHC_POINTWISE_INLINE void vector_steps(__m512 (&acc)[R][B], const uint16_t *const (&rows)[R],
                                         int64_t pairs, const uint16_t *wt, int64_t block,
                                         Ahead *ahead) {
  for (int64_t k0 = 0; k0 < pairs; k0 += 16) {
    if (ahead != nullptr) ahead->step();
#pragma GCC unroll 2
    for (int64_t k = k0; k < k0 + 16; ++k) {
      __m512bh w[B];
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) w[b] = (__m512bh)_mm512_loadu_si512(wt + b * block + 32 * k);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        int32_t pair;
        std::memcpy(&pair, rows[r] + 2 * k, sizeof pair);
        const __m512bh in = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 8
        for (int b = 0; b < B; ++b) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], in, w[b]);
      }
    }
  }
}

// Output pixels [p0, p0 + R) × channel blocks [ob, ob + B) of `u` (B even), with the epilogue:
// bias (+ residual) (+ ReLU), rounded to bf16 once.
template <int R, int B>
ARCHC_POINTWISE_AVX void vector_tile(const Unit &u, int64_t p0, int64_t ob, Ahead *ahead) {
  const uint16_t *rows[R], *rows2[R];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    rows[r] = u.x + (p0 + r) * u.c1;
    rows2[r] = u.x2 != nullptr ? u.row2(p0 + r) : nullptr;
  }
  __m512 acc[R][B];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int b = 0; b < B; ++b) acc[r][b] = _mm512_setzero_ps();
  const int64_t block = u.kc * kTile;
  const uint16_t *wt = u.wt + ob * block;
  vector_steps<R, B>(acc, rows, u.c1 / 2, wt, block, ahead);
  if (u.x2 != nullptr) vector_steps<R, B>(acc, rows2, u.c2 / 2, wt + 16 * u.c1, block, ahead);
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    uint16_t *dst = u.y + (p0 + r) * u.co + 16 * ob;
    #pragma GCC unroll 8
    for (int b = 0; b < B; b += 2) {
      __m512 v0 = _mm512_add_ps(acc[r][b], _mm512_loadu_ps(u.bias + 16 * (ob + b)));
      __m512 v1 = _mm512_add_ps(acc[r][b + 1], _mm512_loadu_ps(u.bias + 16 * (ob + b + 1)));
      if (u.add) {
        const __m512i z = _mm512_loadu_si512(dst + 16 * b);
        v0 = _mm512_add_ps(v0, widen(_mm512_castsi512_si256(z)));
        v1 = _mm512_add_ps(v1, widen(_mm512_extracti64x4_epi64(z, 1)));
      }
      if (u.relu) {
        v0 = _mm512_max_ps(_mm512_setzero_ps(), v0);
        v1 = _mm512_max_ps(_mm512_setzero_ps(), v1);
      }
      _mm512_storeu_si512(dst + 16 * b, (__m512i)_mm512_cvtne2ps_pbh(v1, v0));
    }
  }
}

template <int B>
ARCHC_POINTWISE_AVX void vector_tile(const Unit &u, int rows, int64_t p0, int64_t ob,
                                     Ahead *ahead) {
  switch (rows) {
    case 1: return vector_tile<1, B>(u, p0, ob, ahead);
    case 2: return vector_tile<2, B>(u, p0, ob, ahead);
    case 3: return vector_tile<3, B>(u, p0, ob, ahead);
    case 4: return vector_tile<4, B>(u, p0, ob, ahead);
    case 5: return vector_tile<5, B>(u, p0, ob, ahead);
    default: return vector_tile<kRows, B>(u, p0, ob, ahead);
  }
}

// Output pixels [q0, q1) × column pairs [j0, j1) of `u` on AVX512-BF16.
ARCHC_POINTWISE_AVX void run_vector(const Unit &u, int64_t q0, int64_t q1, int64_t j0,
                                    int64_t j1) {
  const int64_t o0 = 2 * j0, o1 = 2 * j1;
  const int64_t per =
      std::max<int64_t>(4, kVectorPanelBytes / (u.kc * kTile * 2) / 4 * 4);
  for (int64_t oc = o0; oc < o1; oc += per) {
    const int64_t oe = std::min(o1, oc + per);
    for (int64_t p = q0; p < q1; p += kRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kRows, q1 - p));
      // The next tile's input rows are prefetched during this one's first block of channels.
      Ahead ahead(u, p + kRows, std::min(q1, p + 2 * kRows), u.kc);
      const int64_t next = std::min(q1, p + 2 * kRows);
      for (int64_t ob = oc; ob < oe; ob += 4) {
        Ahead *rows_ahead = ob == oc ? &ahead : nullptr;
        // And the next tile's output rows (with the residual: read first) in these channels.
        for (int64_t r = p + kRows; r < next; ++r)
          for (int64_t c = 16 * ob; c < 16 * std::min(oe, ob + 4); c += 32)
            __builtin_prefetch(u.y + r * u.co + c, 1, 3);
        if (oe - ob >= 4) {
          vector_tile<4>(u, rows, p, ob, rows_ahead);
        } else {
          vector_tile<2>(u, rows, p, ob, rows_ahead);
        }
      }
    }
  }
}

}  // namespace

extern "C" {

int archc_pointwise_supported() { return ready() || vector_ready() ? 1 : 0; }

// Whether archc_pointwise_conv can run on AMX tiles here (else it runs on AVX512-BF16).
int archc_pointwise_amx() { return ready() ? 1 : 0; }

// Packs an [O, I, 1, 1] weight (O and I multiples of 32) into B tiles:
// [O/16][I/32][16 pairs][16 channels][2] bf16.
char *archc_pointwise_pack(const at::Tensor *weight, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(weight->dim() == 4 && weight->is_cpu() && weight->size(2) == 1 &&
                    weight->size(3) == 1,
                "pointwise kernel: a 1×1 OIHW CPU weight");
    const at::Tensor w = weight->to(at::kFloat).contiguous();
    const int64_t co = w.size(0), ci = w.size(1);
    TORCH_CHECK(co % 32 == 0 && ci % 32 == 0 && co > 0 && ci > 0,
                "pointwise kernel: channels must be multiples of 32");
    const int64_t kc = ci / 32;
    at::Tensor packed = at::zeros({co / 16, kc, 16, 32}, w.options().dtype(at::kBFloat16));
    const float *src = w.data_ptr<float>();
    auto *dst = packed.data_ptr<c10::BFloat16>();
    for (int64_t o = 0; o < co; ++o)
      for (int64_t i = 0; i < ci; ++i) {
        const int64_t k = i % 32;
        const int64_t at = (((o / 16) * kc + i / 32) * 16 + k / 2) * 32 + (o % 16) * 2 + k % 2;
        dst[at] = c10::BFloat16(src[o * ci + i]);
      }
    *out = new at::Tensor(std::move(packed));
  });
}

// relu?(W · [x | x2 at stride s] + bias (+ other)): x bf16 channels-last [N, C1, H, W]; x2
// (nullable) bf16 channels-last [N, C2, H2, W2] read at pixel (s·oy, s·ox); the weight from
// archc_pointwise_pack with C1 + C2 input channels; bias fp32. With `other` (bf16 channels-last
// [N, C_out, H, W]) the result is written into it; else into a new tensor. On AMX tiles where
// the CPU has them and `amx` is 1; else on AVX512-BF16.
char *archc_pointwise_conv(const at::Tensor *x, const at::Tensor *x2, int64_t stride2,
                           const at::Tensor *packed, const at::Tensor *bias, at::Tensor *other,
                           int relu, int amx_allowed, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK((amx_allowed != 0 && ready()) || vector_ready(),
                "pointwise kernel: this CPU has neither AMX nor AVX512-BF16");
    auto bf16_nhwc = [](const at::Tensor &t) {
      return t.is_cpu() && t.scalar_type() == at::kBFloat16 && t.dim() == 4 &&
             t.is_contiguous(at::MemoryFormat::ChannelsLast);
    };
    TORCH_CHECK(bf16_nhwc(*x), "pointwise kernel: input must be bf16 channels-last on the CPU");
    TORCH_CHECK(packed->is_cpu() && packed->scalar_type() == at::kBFloat16 &&
                    packed->dim() == 4 && packed->size(2) == 16 && packed->size(3) == 32 &&
                    packed->size(0) % 2 == 0 && packed->is_contiguous(),
                "pointwise kernel: weight not packed by archc_pointwise_pack");
    const int64_t n = x->size(0), c1 = x->size(1), h = x->size(2), w = x->size(3);
    const int64_t co = packed->size(0) * 16, kc = packed->size(1);
    TORCH_CHECK(n > 0 && h > 0 && w > 0, "pointwise kernel: an empty map");
    TORCH_CHECK(c1 % 32 == 0, "pointwise kernel: input channels must be a multiple of 32");
    int64_t c2 = 0, h2 = 0, w2 = 0;
    if (x2 != nullptr) {
      TORCH_CHECK(bf16_nhwc(*x2),
                  "pointwise kernel: the second input must be bf16 channels-last on the CPU");
      c2 = x2->size(1), h2 = x2->size(2), w2 = x2->size(3);
      TORCH_CHECK(stride2 >= 1 && stride2 <= 64, "pointwise kernel: stride must be 1 to 64");
      TORCH_CHECK(x2->size(0) == n && c2 % 32 == 0 && (h - 1) * stride2 < h2 &&
                      (w - 1) * stride2 < w2,
                  "pointwise kernel: the second input's batch, channels (", c2,
                  ") or map (", h2, "×", w2, ") do not fit the output's ", h, "×", w,
                  " at stride ", stride2);
    }
    TORCH_CHECK(c1 + c2 == kc * 32, "pointwise kernel: the inputs have ", c1 + c2,
                " channels, the weight was packed for ", kc * 32);
    TORCH_CHECK(bias->is_cpu() && bias->scalar_type() == at::kFloat && bias->is_contiguous() &&
                    bias->numel() == co,
                "pointwise kernel: bias must be contiguous fp32, one per output channel");
    if (other != nullptr) {
      TORCH_CHECK(bf16_nhwc(*other) && other->size(0) == n && other->size(1) == co &&
                      other->size(2) == h && other->size(3) == w,
                  "pointwise kernel: the residual must be bf16 channels-last of the output's "
                  "shape");
    }
    at::Tensor y = other != nullptr ? *other
                                    : archc::empty_channels_last(n, co, h, w, x->scalar_type());
    auto *yp = reinterpret_cast<uint16_t *>(y.data_ptr<c10::BFloat16>());
    const auto *xp = reinterpret_cast<const uint16_t *>(x->data_ptr<c10::BFloat16>());
    const auto *x2p =
        x2 != nullptr ? reinterpret_cast<const uint16_t *>(x2->data_ptr<c10::BFloat16>())
                      : nullptr;
    const auto *wt = reinterpret_cast<const uint16_t *>(packed->data_ptr<c10::BFloat16>());
    const float *bp = bias->data_ptr<float>();
    const bool add = other != nullptr, on = relu != 0;
    const int64_t pixels = n * h * w, blocks = (pixels + 31) / 32;
    const int64_t kc1 = c1 / 32, pairs = co / 32;
    // How the threads share the product: each reads all of one operand and its share of the
    // other, so they split the output channels where the pixels are fewer (the late stages'
    // small maps, whose weights are the larger operand) and the pixel blocks elsewhere.
    const bool amx = amx_allowed != 0 && ready();
    const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
    const bool split_channels = pixels < co && pairs >= threads;
    const int64_t units = std::min(threads, split_channels ? pairs : blocks);
    at::parallel_for(0, units, 1, [&](int64_t begin, int64_t end) ARCHC_POINTWISE {
      for (int64_t unit = begin; unit < end; ++unit) {
        int64_t b0 = 0, b1 = blocks, j0 = 0, j1 = pairs;
        if (split_channels) {
          j0 = pairs * unit / units, j1 = pairs * (unit + 1) / units;
        } else {
          b0 = blocks * unit / units, b1 = blocks * (unit + 1) / units;
        }
        const Unit u{xp, x2p, wt, bp, yp, c1, c2, kc, kc1, co, h, w, h2, w2, stride2, pixels,
                     add, on};
        if (amx) {
          run_unit(u, b0, b1, j0, j1);
        } else {
          run_vector(u, b0 * 32, std::min(pixels, b1 * 32), j0, j1);
        }
      }
    });
    *out = new at::Tensor(std::move(y));
  });
}

}  // extern "C"
