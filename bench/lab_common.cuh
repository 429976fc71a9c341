/*
 * lab_common.cuh — shared helpers of the kernel labs (bench/lab_*.cu), in the style of llm.c's
 * dev/cuda/common.h: error checks, random host data, host<->device buffers, validation against a
 * CPU reference, and timing with CUDA events where every repeat starts with a flushed L2 (an
 * L2-sized memset) so inputs come from device memory, as in a real step, and the measured
 * device copy bandwidth that memory-bound labs report their GB/s against.
 *
 * The labs call the engine's CUDA launchers, which run on tgpt::cuda::stream(), a non-blocking
 * stream: it does not wait for work on the legacy default stream (plain cudaMemcpy/cudaMemset).
 * So every setup copy and fill here (inputs, NaN poison, flush buffers) is issued on that same
 * stream (upload(), fill_bytes()), and reads back synchronise it first (to_host()).
 * Built by CMake
 * they link libtgpt (which defines the stream); built standalone (the nvcc line in each lab's
 * header, with -DLAB_STANDALONE) this file defines the stream itself.
 */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "base/cuda/cuda_common.h"

#ifdef LAB_STANDALONE
namespace tgpt::cuda {
cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}
bool device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
}  // namespace tgpt::cuda
#endif

namespace lab {

#define LAB_CHECK(call)                                                                      \
  do {                                                                                       \
    cudaError_t e_ = (call);                                                                 \
    if (e_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, \
                   __LINE__, #call);                                                         \
      std::exit(2);                                                                          \
    }                                                                                        \
  } while (0)

inline int ceil_div(long long a, long long b) {
  return static_cast<int>((a + b - 1) / b);
}

inline std::vector<float> random_floats(size_t n, float scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Copies `bytes` from host memory to device memory on tgpt's stream and waits for the copy, so
// the host buffer may go away and every later launch on the stream sees the data.
inline void upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t s = tgpt::cuda::stream();
  LAB_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
  LAB_CHECK(cudaStreamSynchronize(s));
}

// Fills `bytes` of device memory with `value` on tgpt's stream (ordered before later launches).
inline void fill_bytes(void* dst, int value, size_t bytes) {
  LAB_CHECK(cudaMemsetAsync(dst, value, bytes, tgpt::cuda::stream()));
}

// Device buffer of T holding the host floats converted to T (or uninitialised when empty).
template <typename T>
T* to_device(const std::vector<float>& h) {
  std::vector<T> c(h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    if constexpr (std::is_same_v<T, float>)
      c[i] = h[i];
    else if constexpr (std::is_same_v<T, __half>)
      c[i] = __float2half_rn(h[i]);
    else
      c[i] = __float2bfloat16_rn(h[i]);
  }
  T* d = nullptr;
  LAB_CHECK(cudaMalloc(&d, std::max<size_t>(1, c.size()) * sizeof(T)));
  upload(d, c.data(), c.size() * sizeof(T));
  return d;
}

template <typename T>
T* device_alloc(size_t n) {
  T* d = nullptr;
  LAB_CHECK(cudaMalloc(&d, std::max<size_t>(1, n) * sizeof(T)));
  fill_bytes(d, 0xff, std::max<size_t>(1, n) * sizeof(T));  // NaN in every float type
  return d;
}

template <typename T>
std::vector<float> to_host(const T* d, size_t n) {
  std::vector<T> c(n);
  cudaStream_t s = tgpt::cuda::stream();
  if (n > 0) LAB_CHECK(cudaMemcpyAsync(c.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost, s));
  LAB_CHECK(cudaStreamSynchronize(s));
  std::vector<float> h(n);
  for (size_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<T, float>)
      h[i] = c[i];
    else if constexpr (std::is_same_v<T, __half>)
      h[i] = __half2float(c[i]);
    else
      h[i] = __bfloat162float(c[i]);
  }
  return h;
}

// Compares got with ref: max |got - ref| <= tol * max |ref| and no NaN. Prints one line.
inline bool validate(const char* what, const std::vector<float>& got,
                     const std::vector<double>& ref, double tol) {
  double err = 0, mx = 0;
  size_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(static_cast<double>(got[i]) - ref[i]);
    if (!(d == d)) ++bad;
    err = std::max(err, d == d ? d : 0.0);
    mx = std::max(mx, std::abs(ref[i]));
  }
  const bool ok = bad == 0 && err <= tol * mx;
  std::printf("  %-34s max err %.3e of max %.3e (rel %.2e, tol %.0e)%s %s\n", what, err, mx,
              mx > 0 ? err / mx : err, tol, bad ? " NaN!" : "", ok ? "OK" : "FAIL");
  return ok;
}

// Median time in ms of fn() over `repeats` runs on tgpt's stream, each after an L2 flush.
inline float benchmark_ms(int repeats, const std::function<void()>& fn) {
  static char* flush = nullptr;
  static size_t flush_bytes = 0;
  cudaStream_t s = tgpt::cuda::stream();
  if (!flush) {
    int dev = 0;
    cudaDeviceProp p;
    LAB_CHECK(cudaGetDevice(&dev));
    LAB_CHECK(cudaGetDeviceProperties(&p, dev));
    flush_bytes = static_cast<size_t>(p.l2CacheSize) * 2;
    LAB_CHECK(cudaMalloc(&flush, flush_bytes));
  }
  tgpt::cuda::Event a, b;
  fn();  // warm-up
  std::vector<float> t;
  for (int r = 0; r < repeats; ++r) {
    LAB_CHECK(cudaMemsetAsync(flush, r & 0xff, flush_bytes, s));
    a.record();
    fn();
    b.record();
    t.push_back(b.elapsed_ms_since(a));
  }
  LAB_CHECK(cudaGetLastError());
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Measured device-to-device copy bandwidth in GB/s (bytes read + bytes written per second) of a
// 512 MB cudaMemcpyAsync on tgpt's stream: the practical ceiling for a memory-bound kernel.
inline double copy_bandwidth_gbs() {
  static double gbs = 0;
  if (gbs > 0) return gbs;
  const size_t bytes = size_t(512) << 20;
  char *src = nullptr, *dst = nullptr;
  LAB_CHECK(cudaMalloc(&src, bytes));
  LAB_CHECK(cudaMalloc(&dst, bytes));
  fill_bytes(src, 1, bytes);
  const float ms = benchmark_ms(20, [&] {
    LAB_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, tgpt::cuda::stream()));
  });
  LAB_CHECK(cudaFree(src));
  LAB_CHECK(cudaFree(dst));
  gbs = 2.0 * static_cast<double>(bytes) / (ms * 1e-3) * 1e-9;
  return gbs;
}

// GB/s of moving `bytes` in `ms`, and that as a percentage of the measured copy bandwidth.
inline double gbs_of(double bytes, float ms) {
  return bytes / (static_cast<double>(ms) * 1e-3) * 1e-9;
}
inline double pct_of_copy(double bytes, float ms) {
  return 100.0 * gbs_of(bytes, ms) / copy_bandwidth_gbs();
}

// Prints the device line; without a usable CUDA device says so and exits with status 1 (every
// lab calls this first, so a lab run on a machine without a GPU stops here with a clear message).
inline void print_device() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::fprintf(stderr, "no CUDA device (%s): the kernel labs need an NVIDIA GPU\n",
                 e != cudaSuccess ? cudaGetErrorString(e) : "the runtime reports 0 devices");
    std::exit(1);
  }
  int dev = 0;
  cudaDeviceProp p;
  LAB_CHECK(cudaGetDevice(&dev));
  LAB_CHECK(cudaGetDeviceProperties(&p, dev));
  std::printf("device: %s, %d SMs, L2 %d MB, smem/block opt-in %zu KB\n", p.name,
              p.multiProcessorCount, p.l2CacheSize >> 20, p.sharedMemPerBlockOptin >> 10);
}

// The command line every lab takes, [--check-only] [VERSION] (0: all versions), parsed after
// print_device() (so without a GPU the lab stops first with its message).
struct Args {
  bool check_only = false;
  int only = 0;
};
inline Args start(int argc, char** argv) {
  print_device();
  Args a;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--check-only")
      a.check_only = true;
    else
      a.only = std::atoi(argv[i]);
  }
  return a;
}

}  // namespace lab
