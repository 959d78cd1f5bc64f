// A bf16 convolution on AMX tiles (or AVX512-BF16) for a network's stem: few input channels
// (RGB), a wide kernel, stride 2 (ResNet's 7×7/2 with 3 → 64 channels), optionally with the
// max-pool after it fused in. oneDNN runs ResNet's stem at about 1 TFLOP/s on AMX
// (BENCHMARKS.md, "the stem"), a seventh of the machine's bf16 peak: with 3 input channels its
// products are mostly padding.
//
// Here one kernel row's taps and channels are one product's K: output pixel ox, kernel row r
// reads input row s·oy − ph + r, pixels s·ox − pw … s·ox − pw + kw − 1, and in channels-last
// storage those pixels' channels lie side by side, kw·C values. So A[16 output pixels × K] loads
// straight from a copy of the input row, its rows s·C values apart (they overlap), and B[K ×
// 16 output channels] holds that kernel row's weights: one `tdpbf16ps` per kernel row and
// 16-channel block, K = kw·C (21 for 7×3, with C padded to 4 → 28, so that K is even and no
// product reads a value outside its own window). Each thread copies the input rows it reads
// into zero-padded slots (pixel p at p + pw, C padded to C', zeros past the row), so every A tile
// loads from memory without a bounds check. Tiles: 0-3 C (two pixel blocks × two channel
// blocks), 4-5 A, 6-7 B.
//
// The epilogue adds the bias, applies ReLU (NaNs kept, as libtorch's relu does), rounds to bf16
// (nearest even) and stores. With a fused max-pool, the C tiles go as they are into a ring of
// the convolution's rows a pooled row reads (fp32 sums of one strip of 32 columns and 32
// channels, the pool's height plus its stride, per thread: 4 KB a row, so it stays in L1); the pool
// takes the max over each window (a NaN in it gives NaN, as libtorch's) and only then adds the
// bias, applies ReLU and rounds, once per pooled value. All three are monotone, so that is the
// unfused result pooled, bit for bit (NaN payloads aside).
//
// Without AMX the same blocks of 32 pixels × 32 channels run on AVX512-BF16 (`vdpbf16ps`, e.g.
// AMD's Zen 4; vector_part below), from input rows copied without padding the channels (K =
// kw·C: 21 for 7×3, 11 pairs with the last one's second value masked off) and a weight packed
// to match; the rest (the slots, the fused pool) is shared.

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
#include <limits>
#include <vector>

#define ARCHC_STEM \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
// The AVX512-BF16 path's (without AMX).
#define ARCHC_STEM_AVX __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace {

using archc::guard;
using archc::TileConfig;

constexpr int64_t kTileElems = 16 * 32;  // one packed B tile: 16 rows of 32 bf16 (1 KB)

struct Geo {
  int64_t n, h, w, c, cp, kh, kw, sh, sw, ph, pw, oh, ow, cout;
  int64_t k;  // K of every product: kw · cp (on AMX even, at most 32)
};

struct PoolGeo {
  int64_t kh, kw, sh, sw, ph, pw, oh, ow;
};

bool vector_ready() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }();
  return yes;
}

bool ready() {
  static const bool yes = [] {
    return __builtin_cpu_supports("amx-bf16") && vector_ready() && archc::request_amx();
  }();
  return yes;
}

// The packed weight's K pairs per kernel row without AMX: kw · C values, no channel padding.
int64_t vector_pairs(int64_t c, int64_t kw) { return (kw * c + 1) / 2; }

// The channels each input pixel takes in the slots: the fewest ≥ c with kw · c' even and at
// most 32 values (0 where none is).
int64_t padded_channels(int64_t c, int64_t kw) {
  for (int64_t cp = c; cp * kw <= 32; ++cp)
    if ((cp * kw) % 2 == 0) return cp;
  return 0;
}

ARCHC_STEM void configure(int64_t k) {
  TileConfig cfg;
  for (int t = 0; t < 4; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;  // C: 16 × 16 fp32
  for (int t = 4; t < 6; ++t)
    cfg.rows[t] = 16, cfg.colsb[t] = static_cast<uint16_t>(2 * k);  // A: 16 pixels × K bf16
  for (int t = 6; t < 8; ++t)
    cfg.rows[t] = static_cast<uint8_t>(k / 2), cfg.colsb[t] = 64;  // B: K/2 × 16 pairs
  // GCC's _tile_loadconfig says it reads only 8 bytes: keep the stores above.
  __asm__ __volatile__("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

ARCHC_STEM void release() { _tile_release(); }

// The input rows a thread reads, zero-padded: slot r % capacity (kh by default: the rows of one
// output row) holds input row tag of image `image`,
// pixel p's C values at (p + pw) · cp, zeros for the padding, the padded channels and past
// the row (far enough for the last 16-pixel block's A rows).
struct Slots {
  int64_t len = 0, image = -1;
  std::vector<int64_t> tag;
  std::vector<uint16_t> data;

  explicit Slots(const Geo &g, int64_t capacity = 0) {
    const int64_t blocks = (g.ow + 15) / 16 * 16;
    const int64_t pixels = std::max(g.w + 2 * g.pw, g.sw * (blocks - 1) + g.kw);
    len = pixels * g.cp + 32;
    capacity = std::max(capacity, g.kh);
    tag.assign(static_cast<size_t>(capacity), -1);
    data.assign(static_cast<size_t>(capacity * len), 0);
  }

  // Input row iy of image n, padded; nullptr where iy is padding.
  ARCHC_STEM const uint16_t *row(const uint16_t *x, const Geo &g, int64_t n, int64_t iy) {
    if (iy < 0 || iy >= g.h) return nullptr;
    if (n != image) {
      image = n;
      std::fill(tag.begin(), tag.end(), -1);
    }
    const int64_t k = iy % static_cast<int64_t>(tag.size());
    uint16_t *slot = data.data() + k * len;
    if (tag[k] != iy) {
      const uint16_t *src = x + (n * g.h + iy) * g.w * g.c;
      uint16_t *to = slot + g.pw * g.cp;
      if (g.cp == g.c) {
        std::memcpy(to, src, static_cast<size_t>(g.w * g.c) * sizeof(uint16_t));
      } else if (g.c == 3 && g.cp == 4) {
        // Eight pixels a step: 24 values spread to 32, every fourth lane zero.
        alignas(64) static const uint16_t spread[32] = {0,  1,  2,  0, 3,  4,  5,  0,
                                                        6,  7,  8,  0, 9,  10, 11, 0,
                                                        12, 13, 14, 0, 15, 16, 17, 0,
                                                        18, 19, 20, 0, 21, 22, 23, 0};
        const __m512i idx = _mm512_load_si512(spread);
        const __mmask32 keep = 0x77777777u;
        for (int64_t p = 0; p < g.w; p += 8) {
          const int64_t m = std::min<int64_t>(8, g.w - p);
          const __mmask32 in = (__mmask32(1) << (3 * m)) - 1;
          const __mmask32 out = m == 8 ? ~__mmask32(0) : (__mmask32(1) << (4 * m)) - 1;
          const __m512i v = _mm512_maskz_loadu_epi16(in, src + 3 * p);
          _mm512_mask_storeu_epi16(to + 4 * p, out, _mm512_maskz_permutexvar_epi16(keep, idx, v));
        }
      } else {
        for (int64_t p = 0; p < g.w; ++p)
          for (int64_t ch = 0; ch < g.c; ++ch) to[p * g.cp + ch] = src[p * g.c + ch];
      }
      tag[k] = iy;
      // GCC's tile load does not tell the compiler that it reads memory: keep these stores.
      __asm__ __volatile__("" : : "r"(slot) : "memory");
    }
    return slot;
  }
};

// relu?(sums + bias) for 16 channels' fp32 sums.
ARCHC_STEM inline __m512 finish(const float *sums, __m512 bias, bool relu) {
  const __m512 v = _mm512_add_ps(_mm512_load_ps(sums), bias);
  // max(0, v) returns v where v is NaN (the second operand), as libtorch's relu.
  return relu ? _mm512_max_ps(_mm512_setzero_ps(), v) : v;
}

// The products of one block of the output row whose kernel rows are `in` (nullptr where
// padding): output pixels ox0 … ox0+31 and channels 16·cb … 16·cb+31, left in C tiles 0-1
// (pixels ox0 …, channel blocks cb and cb+1) and, where `two`, 2-3 (pixels ox0+16 …).
ARCHC_STEM inline void conv_block(const uint16_t *const *in, const uint16_t *wp, const Geo &g,
                                  int64_t ox0, int64_t cb, bool two) {
  const int64_t step = g.sw * g.cp * 2;  // bytes between two A rows (output pixels)
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t r = 0; r < g.kh; ++r) {
    if (in[r] == nullptr) continue;
    // Output pixel ox reads padded pixels s·ox … s·ox + kw − 1.
    const uint16_t *a = in[r] + ox0 * g.sw * g.cp;
    const uint16_t *b = wp + (cb * g.kh + r) * kTileElems;
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b + g.kh * kTileElems, 64);
    _tile_loadd(4, a, step);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (two) {
      _tile_loadd(5, a + 16 * g.sw * g.cp, step);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
}

// AMX: the sums of output pixels ox0 … ox0 + width − 1 (width ≤ 32) and channels 16·cb …
// 16·cb + 31 of the row whose kernel rows are `in`, pixel i's at sums + i·ld (channel block cb)
// and sums + i·ld + 16 (cb + 1), 32 rows (those past width are written too, and meaningless).
ARCHC_STEM inline void amx_block(const uint16_t *const *in, const uint16_t *wp, const Geo &g,
                                 int64_t ox0, int64_t cb, int64_t width, float *sums,
                                 int64_t ld) {
  conv_block(in, wp, g, ox0, cb, width > 16);
  _tile_stored(0, sums, ld * 4);
  _tile_stored(1, sums + 16, ld * 4);
  if (width > 16) {
    _tile_stored(2, sums + 16 * ld, ld * 4);
    _tile_stored(3, sums + 16 * ld + 16, ld * 4);
  }
}

// Without AMX, on AVX512-BF16: pixels ox0 … ox0 + R − 1 of the same block. Each K pair of a
// kernel row loads the two channel blocks' weight vectors (16 channels × a pair of values) and,
// for each pixel, broadcasts the pair of its window's values into two products (`vdpbf16ps`);
// the 2·R fp32 sums stay in registers over all kernel rows. Where K (kw · C) is odd, the last
// pair's second value (the next pixel's first channel, zero-weighted) is masked off, so that a
// NaN there cannot reach this pixel.
template <int R>
ARCHC_STEM_AVX void vector_part(const uint16_t *const *in, const uint16_t *wp, const Geo &g,
                                int64_t ox0, int64_t cb, float *sums, int64_t ld) {
  __m512 acc[R][2];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const int64_t pairs = (g.k + 1) / 2, full = g.k / 2, step = g.sw * g.cp;
  for (int64_t r = 0; r < g.kh; ++r) {
    if (in[r] == nullptr) continue;
    const uint16_t *a = in[r] + ox0 * step;
    const uint16_t *w0 = wp + (cb * g.kh + r) * pairs * 32, *w1 = w0 + g.kh * pairs * 32;
    auto products = [&](int64_t j, uint32_t keep) ARCHC_STEM_AVX {
      const __m512bh v0 = (__m512bh)_mm512_loadu_si512(w0 + 32 * j);
      const __m512bh v1 = (__m512bh)_mm512_loadu_si512(w1 + 32 * j);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        uint32_t pair;
        std::memcpy(&pair, a + i * step + 2 * j, sizeof pair);
        const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair & keep));
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, v0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, v1);
      }
    };
    for (int64_t j = 0; j < full; ++j) products(j, ~0u);
    if (full < pairs) products(full, 0xffffu);  // (little-endian: the pair's first value)
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    _mm512_storeu_ps(sums + i * ld, acc[i][0]);
    _mm512_storeu_ps(sums + i * ld + 16, acc[i][1]);
  }
}

// vector_part for any width ≤ 32: in parts of at most 12 pixels (24 sums in registers), as
// even as they come (32: 11, 11 and 10).
ARCHC_STEM_AVX void vector_block(const uint16_t *const *in, const uint16_t *wp, const Geo &g,
                                 int64_t ox0, int64_t cb, int64_t width, float *sums,
                                 int64_t ld) {
  const int64_t parts = (width + 11) / 12, most = (width + parts - 1) / parts;
  for (int64_t i = 0; i < width; i += most) {
    const int64_t at = ox0 + i;
    float *to = sums + i * ld;
    switch (std::min<int64_t>(most, width - i)) {
      case 1: vector_part<1>(in, wp, g, at, cb, to, ld); break;
      case 2: vector_part<2>(in, wp, g, at, cb, to, ld); break;
      case 3: vector_part<3>(in, wp, g, at, cb, to, ld); break;
      case 4: vector_part<4>(in, wp, g, at, cb, to, ld); break;
      case 5: vector_part<5>(in, wp, g, at, cb, to, ld); break;
      case 6: vector_part<6>(in, wp, g, at, cb, to, ld); break;
      case 7: vector_part<7>(in, wp, g, at, cb, to, ld); break;
      case 8: vector_part<8>(in, wp, g, at, cb, to, ld); break;
      case 9: vector_part<9>(in, wp, g, at, cb, to, ld); break;
      case 10: vector_part<10>(in, wp, g, at, cb, to, ld); break;
      case 11: vector_part<11>(in, wp, g, at, cb, to, ld); break;
      default: vector_part<12>(in, wp, g, at, cb, to, ld); break;
    }
  }
}

// One block's sums on the path the kernel runs on.
template <bool kAmx>
ARCHC_STEM inline void block(const uint16_t *const *in, const uint16_t *wp, const Geo &g,
                             int64_t ox0, int64_t cb, int64_t width, float *sums, int64_t ld) {
  if constexpr (kAmx) {
    amx_block(in, wp, g, ox0, cb, width, sums, ld);
  } else {
    vector_block(in, wp, g, ox0, cb, width, sums, ld);
  }
}

// The convolution alone: rows of the output in parallel, each in blocks of 32 pixels × 32
// channels.
template <bool kAmx>
void run_conv(const uint16_t *x, const uint16_t *wp, const float *bias, uint16_t *y, const Geo &g,
              bool relu) {
  at::parallel_for(0, g.n * g.oh, 1, [&](int64_t begin, int64_t end) ARCHC_STEM {
    if constexpr (kAmx) configure(g.k);
    Slots slots(g);
    alignas(64) float sums[32 * 32];
    const uint16_t *in[32];
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / g.oh, oy = row % g.oh;
      uint16_t *out = y + row * g.ow * g.cout;
      for (int64_t r = 0; r < g.kh; ++r) in[r] = slots.row(x, g, n, oy * g.sh - g.ph + r);
      for (int64_t ox0 = 0; ox0 < g.ow; ox0 += 32) {
        const int64_t width = std::min<int64_t>(32, g.ow - ox0);
        for (int64_t cb = 0; cb < g.cout / 16; cb += 2) {
          block<kAmx>(in, wp, g, ox0, cb, width, sums, 32);
          for (int64_t b = 0; b < 2; ++b) {
            const __m512 bv = _mm512_loadu_ps(bias + 16 * (cb + b));
            for (int64_t i = 0; i < width; ++i)
              _mm256_storeu_si256(
                  reinterpret_cast<__m256i *>(out + (ox0 + i) * g.cout + 16 * (cb + b)),
                  (__m256i)_mm512_cvtneps_pbh(finish(sums + 32 * i + 16 * b, bv, relu)));
          }
        }
      }
    }
    if constexpr (kAmx) release();
  });
}

// max(a, b) over 16 lanes, NaN where either is NaN (vrangeps; vmaxps would drop a NaN a).
ARCHC_STEM inline __m512 max_nan(__m512 a, __m512 b) { return _mm512_range_ps(a, b, 0x05); }

// The convolution with the max-pool after it: rows of the pooled output in parallel. Bias and
// ReLU are monotone, so the pool takes the max of the raw sums and applies them once to it
// (max relu(v + b) = relu(max v + b), exactly, in fp32 as in bf16): the C tiles go straight into
// a ring of the convolution's rows, with no epilogue. So that the ring stays in L1, each thread
// works through its range of pooled rows (within one image at a time) once per block of 32
// channels and strip of 32 columns of the convolution's output: the ring holds that strip's
// rows (the pool's height plus its stride, 4 KB each), and a pooled pixel is finished in the
// strip that holds the last column of its window, the window's columns left of the strip kept
// from the previous strip (their max down the window, per pooled row).
template <bool kAmx>
void run_conv_pool(const uint16_t *x, const uint16_t *wp, const float *bias, uint16_t *y,
                   const Geo &g, const PoolGeo &p, bool relu) {
  at::parallel_for(0, g.n * p.oh, 1, [&](int64_t begin, int64_t end) ARCHC_STEM {
    if constexpr (kAmx) configure(g.k);
    // The convolution's rows pooled row py reads: [first, last).
    auto first = [&](int64_t py) { return std::max<int64_t>(py * p.sh - p.ph, 0); };
    auto last = [&](int64_t py) { return std::min<int64_t>(py * p.sh - p.ph + p.kh, g.oh); };
    // Every input row that one image's pooled rows in this range read, copied once: at most
    // (most − 1)·stride + height rows of the convolution's output, each kh input rows tall.
    const int64_t most = std::min<int64_t>(end - begin, p.oh);
    Slots slots(g, ((most - 1) * p.sh + p.kh) * g.sh + g.kh);
    const int64_t ring_n = p.kh + p.sh, left = p.kw - 1;
    constexpr int64_t kStrip = 32, kLd = 32;  // columns and channels of a strip
    std::vector<float> ring_data(static_cast<size_t>(ring_n * kStrip * kLd));
    float *ring = ring_data.data();
    std::vector<int64_t> tag(static_cast<size_t>(ring_n));
    std::vector<float> column(static_cast<size_t>((kStrip + left) * kLd));
    std::vector<float> edges(static_cast<size_t>(most * std::max<int64_t>(left, 1) * kLd));
    const uint16_t *in[32];
    for (int64_t seg = begin; seg < end;) {
      const int64_t n = seg / p.oh, py0 = seg % p.oh;
      const int64_t py1 = std::min(p.oh, py0 + (end - seg));
      seg += py1 - py0;
      for (int64_t cb = 0; cb < g.cout / 16; cb += 2) {
        const __m512 b0 = _mm512_loadu_ps(bias + 16 * cb), b1 = _mm512_loadu_ps(bias + 16 * cb + 16);
        for (int64_t c0 = 0; c0 < g.ow; c0 += kStrip) {
          const int64_t c1 = std::min(c0 + kStrip, g.ow), width = c1 - c0;
          std::fill(tag.begin(), tag.end(), -1);
          for (int64_t py = py0; py < py1; ++py) {
            const int64_t y0 = first(py), y1 = last(py);
            const float *rows[32];
            for (int64_t cy = y0; cy < y1; ++cy) {
              const int64_t k = cy % ring_n;
              float *slot = ring + k * kStrip * kLd;
              if (tag[k] != cy) {
                for (int64_t r = 0; r < g.kh; ++r) in[r] = slots.row(x, g, n, cy * g.sh - g.ph + r);
                block<kAmx>(in, wp, g, c0, cb, width, slot, kLd);
                tag[k] = cy;
              }
              rows[cy - y0] = slot;
            }
            // Down the window's rows, this strip's columns, after the kept ones left of it.
            float *edge = edges.data() + (py - py0) * std::max<int64_t>(left, 1) * kLd;
            float *col = column.data();
            if (c0 > 0) std::memcpy(col, edge, static_cast<size_t>(left * kLd) * sizeof(float));
            for (int64_t j = 0; j < width * kLd; j += 16) {
              __m512 best = _mm512_loadu_ps(rows[0] + j);
              for (int64_t i = 1; i < y1 - y0; ++i)
                best = max_nan(best, _mm512_loadu_ps(rows[i] + j));
              _mm512_storeu_ps(col + left * kLd + j, best);
            }
            // (Columns [width, width + left) of `column`: the strip's last `left`, counting
            // those carried in where the strip is narrower than the window.)
            if (left > 0)
              std::memcpy(edge, col + width * kLd, static_cast<size_t>(left * kLd) * sizeof(float));
            // The pooled pixels whose window ends in this strip; then bias, ReLU, rounding.
            uint16_t *out = y + ((n * p.oh + py) * p.ow) * g.cout + 16 * cb;
            const int64_t px0 = std::max<int64_t>((c0 + p.pw - p.kw + 1 + p.sw - 1) / p.sw, 0);
            for (int64_t px = px0; px < p.ow; ++px) {
              const int64_t x0 = std::max<int64_t>(px * p.sw - p.pw, 0);
              const int64_t x1 = std::min<int64_t>(px * p.sw - p.pw + p.kw, g.ow);
              if (x1 - 1 < c0) continue;
              if (x1 - 1 >= c1) break;
              const float *from = col + (x0 - c0 + left) * kLd;
              __m512 m0 = _mm512_loadu_ps(from), m1 = _mm512_loadu_ps(from + 16);
              for (int64_t cx = 1; cx < x1 - x0; ++cx) {
                m0 = max_nan(m0, _mm512_loadu_ps(from + cx * kLd));
                m1 = max_nan(m1, _mm512_loadu_ps(from + cx * kLd + 16));
              }
              m0 = _mm512_add_ps(m0, b0);
              m1 = _mm512_add_ps(m1, b1);
              if (relu) {  // max(0, v) keeps a NaN v
                m0 = _mm512_max_ps(_mm512_setzero_ps(), m0);
                m1 = _mm512_max_ps(_mm512_setzero_ps(), m1);
              }
              _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + px * g.cout),
                                  (__m256i)_mm512_cvtneps_pbh(m0));
              _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + px * g.cout + 16),
                                  (__m256i)_mm512_cvtneps_pbh(m1));
            }
          }
        }
      }
    }
    if constexpr (kAmx) release();
  });
}

}  // namespace

extern "C" {

// Whether this CPU runs the stem kernel (AMX-BF16 with AVX-512, and Linux lent the tiles; else
// AVX512-BF16) for `cin` input channels and a kernel `kw` wide: kw · cin, with cin padded up to
// make it even, at most 32.
int archc_stem_supported(int64_t cin, int64_t kw) {
  return cin > 0 && kw > 0 && padded_channels(cin, kw) > 0 && (ready() || vector_ready()) ? 1
                                                                                           : 0;
}

// Packs an OIHW weight (O a multiple of 32) for the kernel on this CPU's path, one block of K
// pairs × 16 channels × 2 for each 16-channel block and kernel row: on AMX [O/16][kh][16][32]
// bf16, the B tiles, with k = kw·C' + c (zeros for the padded channels and past K); without,
// [O/16][kh][P][32] with P = ⌈kw·C / 2⌉ and k = kw·C + c (a zero past K where it is odd).
char *archc_stem_pack(const at::Tensor *weight, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(weight->dim() == 4 && weight->is_cpu(), "stem kernel: an OIHW CPU weight");
    const at::Tensor w = weight->to(at::kFloat).contiguous();
    const int64_t co = w.size(0), c = w.size(1), kh = w.size(2), kw = w.size(3);
    TORCH_CHECK(co % 32 == 0 && co > 0, "stem kernel: output channels must be a multiple of 32");
    TORCH_CHECK(padded_channels(c, kw) > 0 && kh <= 32,
                "stem kernel: kernel rows must hold at most 32 values");
    const bool amx = ready();
    const int64_t cp = amx ? padded_channels(c, kw) : c;
    const int64_t pairs = amx ? 16 : vector_pairs(c, kw);
    at::Tensor packed = at::zeros({co / 16, kh, pairs, 32}, w.options().dtype(at::kBFloat16));
    const float *src = w.data_ptr<float>();
    auto *dst = packed.data_ptr<c10::BFloat16>();
    for (int64_t o = 0; o < co; ++o)
      for (int64_t r = 0; r < kh; ++r)
        for (int64_t k = 0; k < kw * cp; ++k) {
          const int64_t q = k / cp, ch = k % cp;
          if (ch >= c) continue;
          const int64_t at = (((o / 16) * kh + r) * pairs + k / 2) * 32 + (o % 16) * 2 + k % 2;
          dst[at] = c10::BFloat16(src[((o * c + ch) * kh + r) * kw + q]);
        }
    *out = new at::Tensor(std::move(packed));
  });
}

// relu?(conv(x) + bias), then max_pool2d(pool_kernel, pool_stride, pool_pad) where pool_kernel
// is non-null: x bf16 channels-last [N, cin, H, W], the weight from archc_stem_pack (kh × kw,
// cin input channels: the packed tiles do not record them), bias fp32; the result is bf16
// channels-last.
char *archc_stem_conv(const at::Tensor *x, const at::Tensor *packed, const at::Tensor *bias,
                      int64_t cin, int64_t kh, int64_t kw, const archc_geometry *geometry,
                      const int64_t *pool_kernel, const int64_t *pool_stride,
                      const int64_t *pool_pad, int relu, at::Tensor **out) {
  return guard([&] {
    const bool amx = ready();
    TORCH_CHECK(amx || vector_ready(), "stem kernel: this CPU has neither AMX nor AVX512-BF16");
    TORCH_CHECK(x->is_cpu() && packed->is_cpu() && bias->is_cpu(),
                "stem kernel: tensors must be on the CPU");
    TORCH_CHECK(x->scalar_type() == at::kBFloat16 && x->dim() == 4 &&
                    x->is_contiguous(at::MemoryFormat::ChannelsLast),
                "stem kernel: input must be bf16 channels-last");
    const archc_geometry &gm = *geometry;
    TORCH_CHECK(gm.groups == 1 && gm.dilation[0] == 1 && gm.dilation[1] == 1,
                "stem kernel: one group, no dilation");
    TORCH_CHECK(gm.stride[0] > 0 && gm.stride[1] > 0 && gm.stride[0] <= 64 &&
                    gm.stride[1] <= 64 && gm.padding[0] >= 0 &&
                    gm.padding[1] >= 0 && gm.padding[0] < kh && gm.padding[1] < kw,
                "stem kernel: a stride of 1 to 64 and padding smaller than the kernel");
    Geo g{};
    TORCH_CHECK(x->size(1) == cin, "stem kernel: the input has ", x->size(1),
                " channels, the weight was packed for ", cin);
    g.n = x->size(0), g.c = x->size(1), g.h = x->size(2), g.w = x->size(3);
    g.kh = kh, g.kw = kw, g.sh = gm.stride[0], g.sw = gm.stride[1];
    g.ph = gm.padding[0], g.pw = gm.padding[1];
    g.cp = kw > 0 ? padded_channels(g.c, kw) : 0;
    TORCH_CHECK(kh > 0 && kh <= 32 && g.cp > 0, "stem kernel: kernel rows must hold at most 32 values");
    if (!amx) g.cp = g.c;
    g.k = kw * g.cp;
    const int64_t pairs = amx ? 16 : vector_pairs(g.c, kw);
    TORCH_CHECK(packed->scalar_type() == at::kBFloat16 && packed->dim() == 4 &&
                    packed->size(1) == kh && packed->size(2) == pairs && packed->size(3) == 32 &&
                    packed->size(0) % 2 == 0 && packed->is_contiguous(),
                "stem kernel: weight not packed by archc_stem_pack");
    g.cout = packed->size(0) * 16;
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->is_contiguous() &&
                    bias->numel() == g.cout,
                "stem kernel: bias must be contiguous fp32, one per output channel");
    TORCH_CHECK(g.h + 2 * g.ph >= kh && g.w + 2 * g.pw >= kw && g.n > 0,
                "stem kernel: an empty batch or a kernel larger than the padded input");
    g.oh = (g.h + 2 * g.ph - kh) / g.sh + 1;
    g.ow = (g.w + 2 * g.pw - kw) / g.sw + 1;
    const auto *xp = reinterpret_cast<const uint16_t *>(x->data_ptr<c10::BFloat16>());
    const auto *wp = reinterpret_cast<const uint16_t *>(packed->data_ptr<c10::BFloat16>());
    const float *bp = bias->data_ptr<float>();
    if (pool_kernel == nullptr) {
      at::Tensor y = archc::empty_channels_last(g.n, g.cout, g.oh, g.ow, x->scalar_type());
      auto *yp = reinterpret_cast<uint16_t *>(y.data_ptr<c10::BFloat16>());
      if (amx) {
        run_conv<true>(xp, wp, bp, yp, g, relu != 0);
      } else {
        run_conv<false>(xp, wp, bp, yp, g, relu != 0);
      }
      *out = new at::Tensor(std::move(y));
      return;
    }
    PoolGeo p{pool_kernel[0], pool_kernel[1], pool_stride[0], pool_stride[1],
              pool_pad[0],    pool_pad[1],    0,              0};
    TORCH_CHECK(p.kh > 0 && p.kw > 0 && p.kh <= 32 && p.kw <= 32 && p.sh > 0 && p.sw > 0 &&
                    p.sh <= 64 && p.sw <= 64 && p.ph >= 0 &&
                    p.pw >= 0 && 2 * p.ph <= p.kh && 2 * p.pw <= p.kw,
                "stem kernel: pool padding must be at most half its window (at most 32 × 32)");
    TORCH_CHECK(g.oh + 2 * p.ph >= p.kh && g.ow + 2 * p.pw >= p.kw,
                "stem kernel: pool window larger than the padded convolution output");
    p.oh = (g.oh + 2 * p.ph - p.kh) / p.sh + 1;
    p.ow = (g.ow + 2 * p.pw - p.kw) / p.sw + 1;
    at::Tensor y = archc::empty_channels_last(g.n, g.cout, p.oh, p.ow, x->scalar_type());
    auto *yp = reinterpret_cast<uint16_t *>(y.data_ptr<c10::BFloat16>());
    if (amx) {
      run_conv_pool<true>(xp, wp, bp, yp, g, p, relu != 0);
    } else {
      run_conv_pool<false>(xp, wp, bp, yp, g, p, relu != 0);
    }
    *out = new at::Tensor(std::move(y));
  });
}

}  // extern "C"
