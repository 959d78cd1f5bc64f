// A bf16 dense 3×3 convolution (stride 1 or 2, padding 1) on AMX tiles, for the late stages'
// small maps, as an implicit matrix product over the zero-padded input: with the map padded to
// (H + 2) × (W + 2) pixels, output pixel q = oy·(W + 2) + ox reads, for tap (kh, kw), padded pixel
// q + kh·(W + 2) + kw, so 16 consecutive q form an A tile whose rows are C_in apart in the padded
// image, across row ends too (the two padding columns of each row are computed and dropped).
// With stride 2 the padded input is first split into its four phases (even and odd rows and
// columns), each tap reading one of them at stride 1 the same way. C[32 pixels × 32 channels]
// accumulates 9 taps × C_in/32 products of K = 32 per tile, 8 K steps at a time over the taps so
// the block's input rows stay in L1.

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
#include <memory>
#include <vector>

#define ARCHC_DIRECT \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

namespace {

using archc::guard;
using archc::TileConfig;

constexpr int64_t kTile = 16 * 32;  // one packed B tile: 16 pairs × 16 channels × 2 (1 KB)

bool ready() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("avx512bf16") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           archc::request_amx();
  }();
  return yes;
}

ARCHC_DIRECT void configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
  __asm__ __volatile__("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

ARCHC_DIRECT void release() { _tile_release(); }

}  // namespace

extern "C" {

int archc_direct_supported() { return ready() ? 1 : 0; }

// Packs an OIHW 3×3 weight (O and I multiples of 32) into B tiles:
// [O/16][9][I/32][16 pairs][16 channels][2] bf16.
char *archc_direct_pack(const at::Tensor *weight, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(weight->dim() == 4 && weight->is_cpu() && weight->size(2) == 3 &&
                    weight->size(3) == 3,
                "direct kernel: a 3×3 OIHW CPU weight");
    const at::Tensor w = weight->to(at::kFloat).contiguous();
    const int64_t co = w.size(0), ci = w.size(1);
    TORCH_CHECK(co % 32 == 0 && ci % 32 == 0 && co > 0 && ci > 0,
                "direct kernel: channels must be multiples of 32");
    const int64_t kc = ci / 32;
    at::Tensor packed = at::zeros({co / 16, 9, kc, 16, 32}, w.options().dtype(at::kBFloat16));
    const float *src = w.data_ptr<float>();
    auto *dst = packed.data_ptr<c10::BFloat16>();
    for (int64_t o = 0; o < co; ++o)
      for (int64_t t = 0; t < 9; ++t)
        for (int64_t i = 0; i < ci; ++i) {
          const int64_t k = i % 32;
          const int64_t at = ((((o / 16) * 9 + t) * kc + i / 32) * 16 + k / 2) * 32 + (o % 16) * 2 + k % 2;
          dst[at] = c10::BFloat16(src[(o * ci + i) * 9 + t]);
        }
    *out = new at::Tensor(std::move(packed));
  });
}

// relu?(conv3x3(x) + bias), stride 1 or 2, padding 1: x bf16 channels-last, the weight from
// archc_direct_pack, bias fp32; bf16 channels-last.
char *archc_direct_conv(const at::Tensor *x, const at::Tensor *packed, const at::Tensor *bias,
                        int64_t stride, int relu, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(ready(), "direct kernel: this CPU or kernel lends no AMX");
    TORCH_CHECK(x->is_cpu() && packed->is_cpu() && bias->is_cpu(),
                "direct kernel: tensors must be on the CPU");
    TORCH_CHECK(x->scalar_type() == at::kBFloat16 && x->dim() == 4 &&
                    x->is_contiguous(at::MemoryFormat::ChannelsLast),
                "direct kernel: input must be bf16 channels-last");
    TORCH_CHECK(packed->scalar_type() == at::kBFloat16 && packed->dim() == 5 &&
                    packed->size(1) == 9 && packed->size(3) == 16 && packed->size(4) == 32 &&
                    packed->size(0) % 2 == 0 && packed->is_contiguous(),
                "direct kernel: weight not packed by archc_direct_pack");
    TORCH_CHECK(stride == 1 || stride == 2, "direct kernel: stride must be 1 or 2, not ", stride);
    const int64_t n = x->size(0), ci = x->size(1), h = x->size(2), w = x->size(3);
    const int64_t co = packed->size(0) * 16, kc = packed->size(2);
    TORCH_CHECK(ci == kc * 32, "direct kernel: the input has ", ci,
                " channels, the weight was packed for ", kc * 32);
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->is_contiguous() && bias->numel() == co,
                "direct kernel: bias must be contiguous fp32, one per output channel");
    TORCH_CHECK(n > 0 && h > 0 && w > 0, "direct kernel: an empty map");
    // The zero-padded input, (H + 2) × (W + 2), split into stride² phases: phase (py, px) holds
    // padded pixels (s·i + py, s·j + px), ph × pw of them. Output pixel q = oy·pw + ox then reads,
    // for tap (kh, kw), pixel q + (kh/s)·pw + kw/s of phase (kh mod s, kw mod s); the columns
    // ox ≥ W_out are computed and dropped.
    const int64_t s = stride, phases = s * s;
    const int64_t oh = (h - 1) / s + 1, ow = (w - 1) / s + 1;
    const int64_t ph = (h + 2 + s - 1) / s, pw = (w + 2 + s - 1) / s;
    const int64_t m = oh * pw;                      // output rows incl. the dropped columns
    const int64_t blocks = (m + 31) / 32;           // 32-pixel blocks of each image
    const int64_t flen = (ph * pw + 32 + 2 * pw + 2) * ci;  // one phase + tile slack
    const int64_t plen = phases * flen;                      // one image's phases
    // Only the padding is zeroed, not the slack past each phase: that feeds only the rows of
    // dropped output pixels (each output pixel's sums read only its own A row).
    std::unique_ptr<uint16_t[]> pad(new uint16_t[static_cast<size_t>(n * plen)]);
    const auto *xp = reinterpret_cast<const uint16_t *>(x->data_ptr<c10::BFloat16>());
    const size_t pixel = static_cast<size_t>(ci) * sizeof(uint16_t);
    // Work: one phase row (i, phase) of one image.
    at::parallel_for(0, n * phases * ph, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / (phases * ph), phase = (r / ph) % phases, i = r % ph;
        const int64_t qy = phase / s, qx = phase % s, py = s * i + qy;  // the padded row
        uint16_t *row = pad.get() + b * plen + phase * flen + i * pw * ci;
        if (py == 0 || py > h) {
          std::memset(row, 0, pw * pixel);
          continue;
        }
        const uint16_t *src = xp + (b * h + py - 1) * w * ci;
        if (s == 1) {
          std::memset(row, 0, pixel);
          std::memcpy(row + ci, src, w * pixel);
          std::memset(row + (w + 1) * ci, 0, pixel);
          continue;
        }
        for (int64_t j = 0; j < pw; ++j) {
          const int64_t px = s * j + qx;  // the padded column
          if (px == 0 || px > w) {
            std::memset(row + j * ci, 0, pixel);
          } else {
            std::memcpy(row + j * ci, src + (px - 1) * ci, pixel);
          }
        }
      }
    });
    at::Tensor y = archc::empty_channels_last(n, co, oh, ow, x->scalar_type());
    auto *yp = reinterpret_cast<uint16_t *>(y.data_ptr<c10::BFloat16>());
    const auto *wt = reinterpret_cast<const uint16_t *>(packed->data_ptr<c10::BFloat16>());
    const float *bp = bias->data_ptr<float>();
    const uint16_t *pd = pad.get();
    const bool on = relu != 0;
    // Each tap's A rows, as an offset into an image's phases.
    int64_t shift[9];
    for (int64_t t = 0; t < 9; ++t) {
      const int64_t kh = t / 3, kw = t % 3;
      shift[t] = ((kh % s) * s + kw % s) * flen + ((kh / s) * pw + kw / s) * ci;
    }
    // Work: (pair of 16-channel blocks, image); each sweeps its image's pixel blocks with that
    // pair's B tiles.
    at::parallel_for(0, (co / 32) * n, 1, [&](int64_t begin, int64_t end) ARCHC_DIRECT {
      configure();
      alignas(64) float sums[256];
      const int64_t step = ci * 2;  // bytes between two A rows
      for (int64_t item = begin; item < end; ++item) {
        const int64_t cb = (item / n) * 2, b = item % n;
        const uint16_t *img = pd + b * plen;
        const uint16_t *w0 = wt + cb * 9 * kc * kTile, *w1 = w0 + 9 * kc * kTile;
        const __m512 bias0 = _mm512_loadu_ps(bp + 16 * cb), bias1 = _mm512_loadu_ps(bp + 16 * cb + 16);
        for (int64_t blk = 0; blk < blocks; ++blk) {
          const int64_t q0 = blk * 32;
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
          // 8 K steps (256 input channels) at a time over the nine taps: the block's input
          // rows for them stay in L1 across the taps.
          for (int64_t c0 = 0; c0 < kc; c0 += 8) {
            const int64_t c1 = std::min<int64_t>(kc, c0 + 8);
            for (int64_t t = 0; t < 9; ++t) {
              const uint16_t *a = img + shift[t] + q0 * ci;
              for (int64_t c = c0; c < c1; ++c) {
                const int64_t off = (t * kc + c) * kTile;
                _tile_loadd(6, w0 + off, 64);
                _tile_loadd(7, w1 + off, 64);
                _tile_loadd(4, a + 32 * c, step);
                _tile_loadd(5, a + 16 * ci + 32 * c, step);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
              }
            }
          }
          auto emit = [&](int64_t qb, int64_t ch, __m512 bv) ARCHC_DIRECT {
            for (int r = 0; r < 16; ++r) {
              const int64_t q = qb + r;
              if (q >= m) break;
              const int64_t oy = q / pw, ox = q % pw;
              if (ox >= ow) continue;
              __m512 v = _mm512_add_ps(_mm512_load_ps(sums + 16 * r), bv);
              if (on) v = _mm512_max_ps(_mm512_setzero_ps(), v);
              _mm256_storeu_si256(
                  reinterpret_cast<__m256i *>(yp + ((b * oh + oy) * ow + ox) * co + ch),
                  (__m256i)_mm512_cvtneps_pbh(v));
            }
          };
          _tile_stored(0, sums, 64);
          emit(q0, 16 * cb, bias0);
          _tile_stored(1, sums, 64);
          emit(q0, 16 * cb + 16, bias1);
          _tile_stored(2, sums, 64);
          emit(q0 + 16, 16 * cb, bias0);
          _tile_stored(3, sums, 64);
          emit(q0 + 16, 16 * cb + 16, bias1);
        }
      }
      release();
    });
    *out = new at::Tensor(std::move(y));
  });
}

}  // extern "C"
