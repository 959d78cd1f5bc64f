// A bf16 1×1 convolution on AMX tiles that can read two inputs: a bottleneck block's last 1×1
// convolution and its projection shortcut (another 1×1, stride 1 or 2) as one matrix product,
//   y = relu?(W_main · x + W_short · x2[s·oy, s·ox] + bias (+ other)),
// with K = C_main + C_short: the shortcut's output is never written to memory and read back,
// which is what a ResNet's first block of each stage spends most of its time on at large maps
// (the two convolutions are memory-bound). Pixels are flattened (n, oy, ox); 32 consecutive
// pixels × 32 channels accumulate in four C tiles; the main input's rows load straight from `x`,
// the shortcut's are gathered (strided) into a per-thread block first. The sums stay in fp32
// until the bias, the residual and the ReLU are applied, then round to bf16 once.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include "amx.h"
#include "ffi.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#define ARCHC_POINTWISE \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

namespace {

using archc::guard;
using archc::TileConfig;

constexpr int64_t kTile = 16 * 32;  // one packed B tile: 16 pairs × 16 channels × 2 (1 KB)
// The weight columns one work item sweeps: at most this many bytes of packed weight, so the
// panel stays in L2 while a thread's consecutive pixel blocks go by.
constexpr int64_t kPanelBytes = 256 * 1024;

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

}  // namespace

extern "C" {

int archc_pointwise_supported() { return ready() ? 1 : 0; }

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
// [N, C_out, H, W]) the result is written into it; else into a new tensor.
char *archc_pointwise_conv(const at::Tensor *x, const at::Tensor *x2, int64_t stride2,
                           const at::Tensor *packed, const at::Tensor *bias, at::Tensor *other,
                           int relu, at::Tensor **out) {
  return guard([&] {
    TORCH_CHECK(ready(), "pointwise kernel: this CPU or kernel lends no AMX");
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
                                    : at::empty({n, h, w, co}, x->options()).permute({0, 3, 1, 2});
    auto *yp = reinterpret_cast<uint16_t *>(y.data_ptr<c10::BFloat16>());
    const auto *xp = reinterpret_cast<const uint16_t *>(x->data_ptr<c10::BFloat16>());
    const auto *x2p =
        x2 != nullptr ? reinterpret_cast<const uint16_t *>(x2->data_ptr<c10::BFloat16>())
                      : nullptr;
    const auto *wt = reinterpret_cast<const uint16_t *>(packed->data_ptr<c10::BFloat16>());
    const float *bp = bias->data_ptr<float>();
    const bool add = other != nullptr, on = relu != 0;
    const int64_t pixels = n * h * w, blocks = (pixels + 31) / 32;
    const int64_t kc1 = c1 / 32, kc2 = c2 / 32;
    // Channel pairs (32 output channels) per panel: the most that divide C_out/32 and keep the
    // panel's packed weight within kPanelBytes.
    const int64_t pairs = co / 32;
    int64_t per = std::max<int64_t>(1, std::min(pairs, kPanelBytes / (kc * 2 * kTile * 2)));
    while (pairs % per != 0) --per;
    const int64_t panels = pairs / per;
    at::parallel_for(0, panels * blocks, 1, [&](int64_t begin, int64_t end) ARCHC_POINTWISE {
      configure();
      alignas(64) float sums[1024];
      std::vector<uint16_t> a1(static_cast<size_t>(32 * c1)), a2(static_cast<size_t>(32 * c2));
      int64_t gathered = -1;  // the pixel block whose rows a1/a2 hold
      for (int64_t item = begin; item < end; ++item) {
        const int64_t panel = item / blocks, blk = item % blocks;
        const int64_t p0 = blk * 32;
        const int rows = static_cast<int>(std::min<int64_t>(32, pixels - p0));
        // The main input's rows: straight from x, or a zero-padded copy for the last block.
        const uint16_t *am = xp + p0 * c1;
        if (rows < 32 || x2p != nullptr) {
          if (gathered != blk) {
            if (rows < 32) {
              std::memcpy(a1.data(), am, static_cast<size_t>(rows * c1) * 2);
              std::memset(a1.data() + rows * c1, 0, static_cast<size_t>((32 - rows) * c1) * 2);
            }
            for (int r = 0; r < 32 && x2p != nullptr; ++r) {
              uint16_t *dst = a2.data() + r * c2;
              if (r >= rows) {
                std::memset(dst, 0, static_cast<size_t>(c2) * 2);
                continue;
              }
              const int64_t p = p0 + r, b = p / (h * w), oy = (p / w) % h, ox = p % w;
              std::memcpy(dst, x2p + ((b * h2 + oy * stride2) * w2 + ox * stride2) * c2,
                          static_cast<size_t>(c2) * 2);
            }
            gathered = blk;
          }
          if (rows < 32) am = a1.data();
        }
        for (int64_t j = panel * per; j < (panel + 1) * per; ++j) {
          const uint16_t *w0 = wt + (2 * j) * kc * kTile, *w1 = w0 + kc * kTile;
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
          for (int64_t c = 0; c < kc1; ++c) {
            _tile_loadd(4, am + 32 * c, c1 * 2);
            _tile_loadd(5, am + 16 * c1 + 32 * c, c1 * 2);
            _tile_loadd(6, w0 + c * kTile, 64);
            _tile_loadd(7, w1 + c * kTile, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
          for (int64_t c = 0; c < kc2; ++c) {
            _tile_loadd(4, a2.data() + 32 * c, c2 * 2);
            _tile_loadd(5, a2.data() + 16 * c2 + 32 * c, c2 * 2);
            _tile_loadd(6, w0 + (kc1 + c) * kTile, 64);
            _tile_loadd(7, w1 + (kc1 + c) * kTile, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
          // sums: 32 rows of 32 fp32 (C tiles 0 | 1 above 2 | 3).
          _tile_stored(0, sums, 128);
          _tile_stored(1, sums + 16, 128);
          _tile_stored(2, sums + 512, 128);
          _tile_stored(3, sums + 528, 128);
          const __m512 b0 = _mm512_loadu_ps(bp + 32 * j), b1 = _mm512_loadu_ps(bp + 32 * j + 16);
          for (int r = 0; r < rows; ++r) {
            uint16_t *dst = yp + (p0 + r) * co + 32 * j;
            __m512 v0 = _mm512_add_ps(_mm512_load_ps(sums + 32 * r), b0);
            __m512 v1 = _mm512_add_ps(_mm512_load_ps(sums + 32 * r + 16), b1);
            if (add) {
              const __m512i z = _mm512_loadu_si512(dst);
              v0 = _mm512_add_ps(v0, widen(_mm512_castsi512_si256(z)));
              v1 = _mm512_add_ps(v1, widen(_mm512_extracti64x4_epi64(z, 1)));
            }
            if (on) {
              // (max(0, v) keeps a NaN, as libtorch's ReLU does.)
              v0 = _mm512_max_ps(_mm512_setzero_ps(), v0);
              v1 = _mm512_max_ps(_mm512_setzero_ps(), v1);
            }
            _mm512_storeu_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(v1, v0));
          }
        }
      }
      release();
    });
    *out = new at::Tensor(std::move(y));
  });
}

}  // extern "C"
