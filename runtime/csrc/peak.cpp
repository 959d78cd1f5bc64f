// The machine's arithmetic limit, measured: every thread runs a loop of independent fused
// multiply-adds of the widest kind the CPU has (AVX-512 FMA for fp32, AVX512-BF16 `vdpbf16ps`
// for bf16), sixteen accumulators deep so that latency never limits the rate. The result is the
// FLOP/s (one multiply-add = 2 FLOPs) all threads reach together: the roofline that the
// inference mode's achieved FLOP/s is compared with.

#include <immintrin.h>

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

}  // namespace

namespace {
double peak(int kind, int threads, double seconds);
}  // namespace

extern "C" {

// FLOP/s of `threads` threads together: kind 0 = fp32 FMA, 1 = bf16 dot product. 0.0 when the
// CPU lacks the instructions (no AVX-512, or no AVX512-BF16 for kind 1).
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
  if (!__builtin_cpu_supports("avx512f")) return 0.0;
  if (kind == 1 && !__builtin_cpu_supports("avx512bf16")) return 0.0;
  if (threads < 1) threads = 1;
  if (threads > 4096) threads = 4096;
  // FLOPs per loop iteration: 16 accumulators x 16 lanes x (1 FMA = 2, or 2 pairs = 4 FLOPs).
  const double per_iter = kAcc * 16.0 * (kind == 1 ? 4.0 : 2.0);
  auto run = [kind](int64_t iters) { return kind == 1 ? bf16_loop(iters) : fma_loop(iters); };
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

