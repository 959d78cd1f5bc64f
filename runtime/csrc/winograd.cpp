// A Winograd F(2×2, 3×3) convolution (Lavin and Gray, "Fast Algorithms for Convolutional Neural
// Networks", CVPR 2016) for the dense 3×3 convolutions with stride 1 and padding 1 of ResNet's
// bottlenecks and basic blocks, in bf16 on CPUs with AVX512-BF16 and in fp32 on CPUs with
// AVX-512. Channels-last input and output; bias, ReLU and the residual add (in place, as
// oneDNN's binary post-op does) fused.
//
// A direct 3×3 convolution does 36 multiply-adds per input channel for each 2×2 block of output
// pixels; F(2×2, 3×3) does 16: the 4×4 input tile d that covers the block becomes V = Bᵀ d B,
// the 3×3 weight g becomes U = G g Gᵀ (once, when the plan packs it), and for each of the 16
// positions of the 4×4 transformed tile the sum over input channels M = Σ_c U·V is a matrix
// product [tiles × C_in] · [C_in × C_out]; the 2×2 output is Y = Aᵀ M A. Where oneDNN's direct
// kernel already runs at the machine's peak (fp32 on AVX-512, bf16 on a CPU with AVX512-BF16 but
// no AMX), fewer products is what is left to gain.
//
// Rounding: Bᵀ and Aᵀ hold only 0 and ±1 and G only 0, ±½ and 1, so in fp32 the kernel's
// error is that of a direct convolution's sums, a few units in the last place. In bf16, V is
// computed in fp32 from the bf16 input and rounded to bf16 once, U from the fp32 weight and
// rounded once (where a direct convolution rounds the weight itself), the products accumulate
// in fp32, and Y is rounded to bf16 once, as a direct kernel's output is. The one extra rounding, of V (sums of up to four
// inputs), makes one convolution's error 1.3–1.9 times a direct one's; over a whole ResNet-50 it
// is lost among bf16's other roundings (runtime/tests/parity.rs). (The larger F(4×4, 3×3), with
// 4× fewer products, needs transforms with entries up to 8 and 1/24, which bf16's 8-bit
// significand does not survive.)
//
// Work is split into blocks of tiles, the threads' units: a block's transformed input
// V[16][tiles][C_in] goes into a per-thread buffer of kBlockBytes (L2), then for each register
// block (28 fp32 accumulators: 14 tiles × 32 output channels, or 7 × 64) the 16 positions'
// products run in registers (in bf16 `vdpbf16ps` takes a broadcast pair of a tile's input
// channels against 16 output channels' pairs of U; in fp32 an FMA one channel), into a small
// buffer the output transform reads at once.

#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include "ffi.h"
#include "pool.h"

// GCC 12's false "may be used uninitialized" in its own AVX-512 intrinsics (as in grouped.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#define ARCHC_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

namespace {

using archc::guard;

// A register block: 14 tiles × 32 output channels (two fp32 vectors), or 7 tiles × 64 where
// C_out is a multiple of 64 (fewer loads per product: 7 broadcasts and 4 weight vectors for 28
// products, against 14 and 2); 28 accumulators either way.
constexpr int kAcc = 28;
// A block's transformed input: at most this, or one register block's worth of tiles where C_in
// is so large that fewer would not fill one (224 KB in bf16, 448 KB in fp32 at C_in = 512).
constexpr int64_t kBlockBytes = 128 * 1024;

struct Shape {
  int64_t n, h, w, cin, cout, th, tw;
  int64_t tiles() const { return n * th * tw; }
};

// A tile's image and position: tile t covers output rows 2·th, 2·th + 1 and columns 2·tw, 2·tw + 1.
struct Tile {
  int64_t n, th, tw;
};

Tile tile_at(const Shape &s, int64_t t) {
  const int64_t per = s.th * s.tw, r = t % per;
  return {t / per, r / s.tw, r % s.tw};
}

ARCHC_AVX512_BF16 inline __m512 widen(__m256i bf16) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16), 16));
}

// The two element types the kernel runs in: bf16, whose products are `vdpbf16ps` on pairs of
// input channels (a step of 2), and fp32, whose products are FMAs on one input channel at a
// time. Both hold 16 channels in a register as fp32.
struct Bf16 {
  using T = uint16_t;
  using Step = int32_t;  // a pair of bf16 input channels
  static constexpr int kStep = 2;
  ARCHC_AVX512_BF16 static __m512 load(__mmask16 mask, const T *p) {
    return widen(_mm256_maskz_loadu_epi16(mask, p));
  }
  ARCHC_AVX512_BF16 static __m512 load(const T *p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
  }
  ARCHC_AVX512_BF16 static void store(T *p, __m512 v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), (__m256i)_mm512_cvtneps_pbh(v));
  }
};

// (The fp32 code is compiled with the same target as the bf16 code, AVX512-BF16 included, but
// uses no bf16 instruction: GCC emits those only for their intrinsics, which it does not call.
// It runs wherever AVX-512 F, BW and VL are, `supported(false)`.)
struct F32 {
  using T = float;
  using Step = float;
  static constexpr int kStep = 1;
  ARCHC_AVX512_BF16 static __m512 load(__mmask16 mask, const T *p) {
    return _mm512_maskz_loadu_ps(mask, p);
  }
  ARCHC_AVX512_BF16 static __m512 load(const T *p) { return _mm512_loadu_ps(p); }
  ARCHC_AVX512_BF16 static void store(T *p, __m512 v) { _mm512_storeu_ps(p, v); }
};

// V = Bᵀ d B for tiles t0 … t0 + tn - 1 into v ([16][rows][C_in], position-major, the positions
// `stride` elements apart: a little more than rows · C_in, so that the 16 positions' rows do not
// all fall into the same L1 sets), where Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Input
// pixels outside the image read as zeros (masked loads).
template <typename E>
ARCHC_AVX512_BF16 void transform_input(const typename E::T *x, const Shape &s, int64_t t0, int tn,
                                       int64_t stride, typename E::T *v) {
  using T = typename E::T;
  for (int r = 0; r < tn; ++r) {
    const Tile t = tile_at(s, t0 + r);
    const T *px[16];
    __mmask16 mask[16];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int64_t ih = 2 * t.th - 1 + i, iw = 2 * t.tw - 1 + j;
        const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
        // (A masked-off load reads nothing, but its address stays one of the input's.)
        px[i * 4 + j] = inside ? x + ((t.n * s.h + ih) * s.w + iw) * s.cin : x;
        mask[i * 4 + j] = inside ? 0xFFFF : 0;
      }
    for (int64_t c = 0; c < s.cin; c += 16) {
      __m512 d[16];
      for (int k = 0; k < 16; ++k) d[k] = E::load(mask[k], px[k] + c);
      __m512 e[16];  // Bᵀ d
      for (int j = 0; j < 4; ++j) {
        e[0 + j] = _mm512_sub_ps(d[0 + j], d[8 + j]);
        e[4 + j] = _mm512_add_ps(d[4 + j], d[8 + j]);
        e[8 + j] = _mm512_sub_ps(d[8 + j], d[4 + j]);
        e[12 + j] = _mm512_sub_ps(d[4 + j], d[12 + j]);
      }
      for (int i = 0; i < 4; ++i) {  // (Bᵀ d) B
        const __m512 *row = e + 4 * i;
        T *to = v + 4 * i * stride + r * s.cin + c;
        E::store(to, _mm512_sub_ps(row[0], row[2]));
        E::store(to + stride, _mm512_add_ps(row[1], row[2]));
        E::store(to + 2 * stride, _mm512_sub_ps(row[2], row[1]));
        E::store(to + 3 * stride, _mm512_sub_ps(row[1], row[3]));
      }
    }
  }
}

// M[r][16·NV] = Σ_c V[r][c] · U[c][16·NV channels] for one position and r = 0 … R - 1: `a`
// points at the register block's first row of V (rows `steps` steps apart: C_in / kStep), `w` at
// the position's and channel block's U ([steps][16·NV][kStep]), `m` at M's first row (rows
// 16·NV floats apart). R · NV accumulators.
template <typename E, int R, int NV>
ARCHC_AVX512_BF16 void products(const typename E::Step *a, int64_t steps,
                                const typename E::T *w, float *m) {
  constexpr int cols = 16 * NV;
  __m512 acc[R][NV];
#pragma GCC unroll 14
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) acc[r][q] = _mm512_setzero_ps();
  for (int64_t k = 0; k < steps; ++k) {
    const typename E::T *wk = w + k * cols * E::kStep;
    if constexpr (E::kStep == 2) {
      __m512bh wq[NV];
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) wq[q] = (__m512bh)_mm512_loadu_si512(wk + 32 * q);
#pragma GCC unroll 14
      for (int r = 0; r < R; ++r) {
        const __m512bh pair = (__m512bh)_mm512_set1_epi32(a[r * steps + k]);
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], pair, wq[q]);
      }
    } else {
      __m512 wq[NV];
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) wq[q] = _mm512_loadu_ps(wk + 16 * q);
#pragma GCC unroll 14
      for (int r = 0; r < R; ++r) {
        const __m512 one = _mm512_set1_ps(a[r * steps + k]);
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) acc[r][q] = _mm512_fmadd_ps(one, wq[q], acc[r][q]);
      }
    }
  }
#pragma GCC unroll 14
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) _mm512_store_ps(m + r * cols + 16 * q, acc[r][q]);
}

template <typename E>
using ProductsFn = void (*)(const typename E::Step *, int64_t, const typename E::T *, float *);

template <typename E, int NV, size_t... I>
constexpr std::array<ProductsFn<E>, sizeof...(I)> products_table(std::index_sequence<I...>) {
  return {&products<E, static_cast<int>(I) + 1, NV>...};
}
// products_for<E>(cols)[R - 1] handles R rows of `cols` channels (32: up to 14 rows; 64: 7).
template <typename E> const ProductsFn<E> *products_for(int cols) {
  static constexpr auto two = products_table<E, 2>(std::make_index_sequence<14>());
  static constexpr auto four = products_table<E, 4>(std::make_index_sequence<7>());
  return cols == 64 ? four.data() : two.data();
}

// Y = Aᵀ M A (Aᵀ = [1 1 1 0; 0 1 -1 -1]) + bias (+ the residual), ReLU'd, rounded to the
// element type, for R tiles from t0 and `cols` output channels from c0, M being
// [16][mrows][cols] fp32; the 2×2 pixels outside the image (an odd height or width) are not
// written. `res` is null or the residual (y itself: in place).
template <typename E>
ARCHC_AVX512_BF16 void transform_output(const float *m, int R, int64_t mrows, int cols,
                                        const Shape &s, int64_t t0, int64_t c0,
                                        const float *bias, bool relu,
                                        const typename E::T *res, typename E::T *y) {
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < R; ++r) {
    const Tile t = tile_at(s, t0 + r);
    for (int half = 0; half < cols / 16; ++half) {
      const int64_t c = c0 + 16 * half;
      __m512 q[16];
      for (int p = 0; p < 16; ++p) q[p] = _mm512_load_ps(m + (p * mrows + r) * cols + 16 * half);
      __m512 a[8];  // Aᵀ M: 2 × 4
      for (int j = 0; j < 4; ++j) {
        a[j] = _mm512_add_ps(_mm512_add_ps(q[j], q[4 + j]), q[8 + j]);
        a[4 + j] = _mm512_sub_ps(_mm512_sub_ps(q[4 + j], q[8 + j]), q[12 + j]);
      }
      const __m512 b = _mm512_loadu_ps(bias + c);
      for (int i = 0; i < 2; ++i) {
        const int64_t oh = 2 * t.th + i;
        if (oh >= s.h) break;
        const __m512 *row = a + 4 * i;
        const __m512 out[2] = {
            _mm512_add_ps(_mm512_add_ps(row[0], row[1]), row[2]),
            _mm512_sub_ps(_mm512_sub_ps(row[1], row[2]), row[3]),
        };
        for (int jj = 0; jj < 2; ++jj) {
          const int64_t ow = 2 * t.tw + jj;
          if (ow >= s.w) break;
          const int64_t at = ((t.n * s.h + oh) * s.w + ow) * s.cout + c;
          __m512 o = _mm512_add_ps(out[jj], b);
          if (res != nullptr) o = _mm512_add_ps(o, E::load(res + at));
          if (relu) o = _mm512_max_ps(o, zero);
          E::store(y + at, o);
        }
      }
    }
  }
}

// The whole convolution in element type E (shapes checked by the caller).
template <typename E>
void convolve(const at::Tensor &x, const at::Tensor &packed, const float *bias, bool relu,
              const Shape &s, bool in_place, at::Tensor &y) {
  using T = typename E::T;
  const int cols = static_cast<int>(packed.size(3)), reg_rows = kAcc / (cols / 16);
  const auto *xp = reinterpret_cast<const T *>(x.data_ptr());
  const auto *up = reinterpret_cast<const T *>(packed.data_ptr());
  auto *yp = reinterpret_cast<T *>(y.data_ptr());
  const T *rp = in_place ? yp : nullptr;
  // Tiles per block: the transformed input within kBlockBytes (but at least a register
  // block's rows), a multiple of the register block, and at most a thread's share of the tiles
  // (so every thread gets work; that share need not be a multiple).
  const int64_t tiles = s.tiles(), threads = std::max(1, at::get_num_threads());
  const int64_t per_tile = 16 * s.cin * static_cast<int64_t>(sizeof(T));
  int64_t rows = std::max<int64_t>(reg_rows, kBlockBytes / per_tile / reg_rows * reg_rows);
  rows = std::max<int64_t>(1, std::min(rows, (tiles + threads - 1) / threads));
  const int64_t nblocks = (tiles + rows - 1) / rows;
  const int64_t stride = rows * s.cin + 32;  // between positions in a block's buffer
  const int64_t steps = s.cin / E::kStep, blocks = s.cout / cols;
  const ProductsFn<E> *table = products_for<E>(cols);
  at::parallel_for(0, nblocks, 1, [&](int64_t begin, int64_t end) {
    // Per thread, kept between calls (no allocation and zeroing per convolution).
    thread_local std::vector<T> v;
    if (v.size() < static_cast<size_t>(16 * stride)) v.resize(16 * stride);
    alignas(64) float m[16 * kAcc * 16];  // M of one register block: [16][rows][cols]
    for (int64_t b = begin; b < end; ++b) {
      const int64_t t0 = b * rows;
      const int tn = static_cast<int>(std::min(rows, tiles - t0));
      transform_input<E>(xp, s, t0, tn, stride, v.data());
      for (int64_t j = 0; j < blocks; ++j)
        for (int r0 = 0; r0 < tn; r0 += reg_rows) {
          const int rn = std::min(reg_rows, tn - r0);
          for (int p = 0; p < 16; ++p)
            table[rn - 1](reinterpret_cast<const typename E::Step *>(v.data() + p * stride +
                                                                      r0 * s.cin),
                          steps, up + (p * blocks + j) * steps * cols * E::kStep,
                          m + p * rn * cols);
          transform_output<E>(m, rn, rn, cols, s, t0 + r0, j * cols, bias, relu, rp, yp);
        }
    }
  });
}

// Whether this CPU runs the kernel: AVX512-BF16 for bf16, AVX-512 (F, BW, VL) for fp32.
bool supported(bool bf16) {
  static const bool avx512 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  static const bool with_bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
  return bf16 ? with_bf16 : avx512;
}

void check_input(const at::Tensor &x, at::ScalarType kind, const char *what) {
  TORCH_CHECK(x.is_cpu(), "Winograd kernel: ", what, " must be on the CPU");
  TORCH_CHECK(x.scalar_type() == kind && x.dim() == 4 &&
                  x.is_contiguous(at::MemoryFormat::ChannelsLast),
              "Winograd kernel: ", what, " must be ", kind == at::kBFloat16 ? "bf16" : "fp32",
              " channels-last");
}

}  // namespace

extern "C" {

// 1 when this CPU runs the Winograd kernel in bf16 (`bf16` 1: AVX512-BF16) or fp32 (0: AVX-512).
int archc_winograd_supported(int bf16) { return supported(bf16 != 0) ? 1 : 0; }

// Packs an OIHW 3×3 weight ([C_out, C_in, 3, 3], C_in a multiple of 16, C_out of 32; fp32 for
// the best rounding) as U = G g Gᵀ, G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], computed in double and
// rounded to fp32 and from there (`bf16` 1) to bf16, laid out [16 positions][C_out/cols][C_in/step][cols]
// [step]: for each position and register block of `cols` output channels (64 where C_out is a
// multiple of 64, else 32), one step of input channels after another (a pair in bf16, one in
// fp32), the block's channels per step.
char *archc_winograd_pack(const at::Tensor *weight, int bf16, at::Tensor **out) {
  return guard([&] {
    const at::Tensor w = weight->to(at::kDouble).contiguous();
    TORCH_CHECK(w.dim() == 4 && w.size(2) == 3 && w.size(3) == 3 && w.size(1) > 0 &&
                    w.size(1) % 16 == 0 && w.size(0) > 0 && w.size(0) % 32 == 0,
                "Winograd kernel: weight must be [32k, 16m, 3, 3]");
    const int64_t cout = w.size(0), cin = w.size(1), cols = cout % 64 == 0 ? 64 : 32;
    const int64_t blocks = cout / cols, step = bf16 != 0 ? 2 : 1;
    // Computed in fp32, rounded to the kernel's type once at the end.
    at::Tensor u = at::empty({16, blocks, cin / step, cols, step}, w.options().dtype(at::kFloat));
    const double *src = w.data_ptr<double>();
    float *dst = u.data_ptr<float>();
    const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t c = 0; c < cin; ++c) {
        const double *g = src + (o * cin + c) * 9;
        double gg[4][3];  // G g
        for (int i = 0; i < 4; ++i)
          for (int k = 0; k < 3; ++k)
            gg[i][k] = G[i][0] * g[k] + G[i][1] * g[3 + k] + G[i][2] * g[6 + k];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) {
            const double v = gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2];
            const int64_t p = i * 4 + j;
            dst[(((p * blocks + o / cols) * (cin / step) + c / step) * cols + o % cols) * step +
                c % step] = static_cast<float>(v);
          }
      }
    *out = new at::Tensor(bf16 != 0 ? u.to(at::kBFloat16) : std::move(u));
  });
}

// relu?(conv3x3(x) + bias (+ res)), stride 1, padding 1: x channels-last [N, C_in, H, W] in the
// packed weight's type (bf16 or fp32), `packed` from archc_winograd_pack, `bias` fp32 [C_out].
// With `res` (channels-last [N, C_out, H, W], the same type) the result is written into it in
// place and *out is left alone; else *out is a new channels-last tensor.
char *archc_winograd_conv(const at::Tensor *x, const at::Tensor *packed, const at::Tensor *bias,
                          at::Tensor *res, int relu, at::Tensor **out) {
  return guard([&] {
    const at::ScalarType kind = packed->scalar_type();
    const bool bf16 = kind == at::kBFloat16;
    const int64_t step = bf16 ? 2 : 1;
    TORCH_CHECK(packed->is_cpu() && bias->is_cpu(), "Winograd kernel: weights must be on the CPU");
    TORCH_CHECK((bf16 || kind == at::kFloat) && packed->dim() == 5 && packed->size(0) == 16 &&
                    (packed->size(3) == 32 || packed->size(3) == 64) &&
                    packed->size(4) == step && packed->is_contiguous(),
                "Winograd kernel: weight not packed by archc_winograd_pack");
    TORCH_CHECK(supported(bf16), "Winograd kernel: this CPU has no ",
                bf16 ? "AVX512-BF16" : "AVX-512");
    check_input(*x, kind, "the input");
    const int64_t cin = x->size(1), cout = packed->size(1) * packed->size(3);
    TORCH_CHECK(packed->size(2) * step == cin, "Winograd kernel: the weight takes ",
                packed->size(2) * step, " input channels, the input has ", cin);
    TORCH_CHECK(cin > 0 && cin % 16 == 0, "Winograd kernel: C_in must be a multiple of 16");
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->is_contiguous() &&
                    bias->numel() == cout,
                "Winograd kernel: bias must be contiguous fp32 [C_out]");
    const Shape s{x->size(0), x->size(2), x->size(3), cin, cout,
                  (x->size(2) + 1) / 2, (x->size(3) + 1) / 2};
    at::Tensor y;
    if (res != nullptr) {
      check_input(*res, kind, "the residual");
      TORCH_CHECK(res->size(0) == s.n && res->size(1) == cout && res->size(2) == s.h &&
                      res->size(3) == s.w,
                  "Winograd kernel: the residual's shape is not the output's");
      // Blocks read input tiles that other threads' blocks write as output.
      at::assert_no_overlap(*x, *res);
      y = *res;
    } else {
      y = archc::empty_channels_last(s.n, cout, s.h, s.w, x->scalar_type());
    }
    const float *bp = bias->data_ptr<float>();
    if (bf16)
      convolve<Bf16>(*x, *packed, bp, relu != 0, s, res != nullptr, y);
    else
      convolve<F32>(*x, *packed, bp, relu != 0, s, res != nullptr, y);
    if (res == nullptr) *out = new at::Tensor(std::move(y));
  });
}

}  // extern "C"
