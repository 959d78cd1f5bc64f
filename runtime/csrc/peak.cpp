// The machine's arithmetic limit, measured: every thread runs a loop of independent fused
// multiply-adds of the widest kind the CPU has (AVX-512 FMA for fp32, AVX512-BF16 `vdpbf16ps`
// for bf16, sixteen accumulators deep so that latency never limits the rate; or AMX's tile
// product `tdpbf16ps` for bf16, four accumulator tiles from two pairs of source tiles). The result is the
// FLOP/s (one multiply-add = 2 FLOPs) all threads reach together: the roofline that the
// inference mode's achieved FLOP/s is compared with.

#include <immintrin.h>

#include "amx.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

constexpr int kAcc = 16;

// The lanes' sum (kept out of the compiler's reach so the loops are not optimised away).
__attribute__((target("avx512f"))) float sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float s = 0.0f;
  for (float x : lanes) s += x;
  return s;
}

__attribute__((target("avx512f"))) float fma_loop(int64_t iters) {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(0.0f);
  const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
  for (int64_t n = 0; n < iters; ++n) {
#pragma GCC unroll 16
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_fmadd_ps(a, acc[i], b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, acc[i]);
  return sum(s);
}

__attribute__((target("avx512f,avx512bf16"))) float bf16_loop(int64_t iters) {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(0.0f);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  for (int64_t n = 0; n < iters; ++n) {
#pragma GCC unroll 16
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, acc[i]);
  return sum(s);
}

// AMX: 16 rows of 64 bytes in every tile (palette 1). C tiles 0-3 hold 16x16 fp32 sums, A tiles
// 4-5 16x32 bf16, B tiles 6-7 16 rows of 16 bf16 pairs: one tdpbf16ps is 16*16*32 multiply-adds.
using archc::TileConfig;

__attribute__((target("amx-tile,amx-bf16"))) float amx_loop(int64_t iters) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  // GCC's _tile_loadconfig tells the compiler it reads only the first 8 bytes, so at -O2 the
  // stores above could be dropped as dead: make the whole struct visibly used first.
  __asm__ __volatile__("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
  alignas(64) uint16_t src[16 * 32];
  for (auto &v : src) v = 0x3a83;  // bf16 for 1e-3
  alignas(64) float out[16 * 16];
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  // GCC's tile loads do not tell the compiler that they read memory: keep the stores above.
  __asm__ __volatile__("" : : "r"(src) : "memory");
  _tile_loadd(4, src, 64);
  _tile_loadd(5, src, 64);
  _tile_loadd(6, src, 64);
  _tile_loadd(7, src, 64);
  for (int64_t n = 0; n < iters; ++n) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  _tile_release();
  float s = 0.0f;
  for (float x : out) s += x;
  return s;
}

}  // namespace

namespace {
double peak(int kind, int threads, double seconds);
}  // namespace

extern "C" {

// FLOP/s of `threads` threads together: kind 0 = fp32 FMA, 1 = bf16 dot product (AVX512-BF16),
// 2 = bf16 tile product (AMX). 0.0 when the CPU lacks the instructions (no AVX-512, no
// AVX512-BF16 for kind 1, no AMX-BF16 or no permission from the kernel for kind 2).
double archc_peak_flops(int kind, int threads, double seconds) {
  try {
    return peak(kind, threads, seconds);
  } catch (...) {
    return 0.0;  // no thread could be started, or no memory: nothing measured
  }
}

}  // extern "C"

namespace {

double peak(int kind, int threads, double seconds) {
  __builtin_cpu_init();
  if (!(seconds > 0.0 && seconds < 3600.0)) return 0.0;
  if (kind == 2) {
    if (!__builtin_cpu_supports("amx-bf16") || !archc::request_amx()) return 0.0;
  } else {
    if (!__builtin_cpu_supports("avx512f")) return 0.0;
    if (kind == 1 && !__builtin_cpu_supports("avx512bf16")) return 0.0;
  }
  if (threads < 1) threads = 1;
  if (threads > 4096) threads = 4096;
  // FLOPs per loop iteration: 16 accumulators x 16 lanes x (1 FMA = 2, or 2 pairs = 4 FLOPs);
  // AMX: 4 tile products of 16x16x32 multiply-adds.
  const double per_iter = kind == 2 ? 4 * 16.0 * 16.0 * 32.0 * 2.0 : kAcc * 16.0 * (kind == 1 ? 4.0 : 2.0);
  auto run = [kind](int64_t iters) {
    return kind == 2 ? amx_loop(iters) : kind == 1 ? bf16_loop(iters) : fma_loop(iters);
  };
  // Calibrate on one thread to about a tenth of the requested time.
  int64_t iters = 1 << 16;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    volatile float sink = run(iters);
    (void)sink;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > seconds / 10.0 || iters > (int64_t(1) << 40)) {
      iters = static_cast<int64_t>(iters * (seconds / dt));
      break;
    }
    iters *= 4;
  }
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  std::vector<float> sinks(threads);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      sinks[t] = run(iters);
    });
  }
  while (ready.load() < threads) {
  }
  auto t0 = std::chrono::steady_clock::now();
  go.store(true);
  for (auto &th : pool) th.join();
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile float sink = sinks[0];
  (void)sink;
  return per_iter * static_cast<double>(iters) * threads / dt;
}

}  // namespace

