/*
 * gpu_bench_common.cuh — shared pieces of the GPU benchmark runners (bench/*_bench.cu): the
 * device peaks measured in the same run (device-to-device copy bandwidth, bytes read + written;
 * cuBLAS bf16 GEMM rate at 8192³), median timing with CUDA events on tgpt's stream and an
 * L2-sized memset before every repeat, the peak device memory of one call (caching allocator
 * stats), and the result table (console and TSV: name, ms, value, unit, pct_of_peak, peak_mb,
 * "n/a" for a case that failed) read by bench/compare_gpu.py.
 */
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "base/cuda/cuda_common.h"
#include "base/device.h"
#include "base/error.h"
#include "engine/autograd.h"

namespace tgpt::bench {

struct BenchRow {
  std::string name;
  double ms = 0, value = 0;
  std::string unit;  // "TFLOP/s", "GB/s", "img/s", ...
  double pct = 0;    // of the measured device peak
  double peak_mb = 0;
  std::string note;  // set when the case failed: "n/a: <error>"
};

struct DevicePeaks {
  std::string name;
  double copy_gbs = 0, gemm_tflops = 0;
};

// The L2 flush buffer (2× the L2 size), allocated by measure_device_peaks().
struct FlushBuffer {
  char* ptr = nullptr;
  size_t bytes = 0;
};
inline FlushBuffer& flush_buffer() {
  static FlushBuffer f;
  return f;
}

// Median ms of fn over repeats (after two warm-up calls), each after an L2 flush.
inline double time_ms(int repeats, const std::function<void()>& fn) {
  cudaStream_t s = cuda::stream();
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  fn();
  fn();
  CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<float> t;
  for (int r = 0; r < repeats; ++r) {
    if (flush_buffer().ptr)
      CUDA_CHECK(cudaMemsetAsync(flush_buffer().ptr, r & 0xff, flush_buffer().bytes, s));
    CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    CUDA_CHECK(cudaEventRecord(b, s));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CUDA_CHECK(cudaEventDestroy(a));
  CUDA_CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Peak device memory (MB) one call of fn takes beyond what was live before it.
inline double peak_mb(const std::function<void()>& fn) {
  CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  reset_peak_memory(Device::CUDA);
  const size_t before = memory_stats(Device::CUDA).current_bytes;
  fn();
  CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  return (memory_stats(Device::CUDA).peak_bytes - before) / 1e6;
}

__global__ void bench_fill_random_bf16(__nv_bfloat16* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    p[i] = __float2bfloat16((h & 0xffff) / 65536.f - 0.5f);
  }
}

// Allocates the L2 flush buffer and measures the copy bandwidth and the cuBLAS bf16 GEMM rate.
inline DevicePeaks measure_device_peaks() {
  DevicePeaks p;
  int dev = 0;
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  p.name = prop.name;
  FlushBuffer& fb = flush_buffer();
  if (!fb.ptr) {
    fb.bytes = static_cast<size_t>(prop.l2CacheSize) * 2;
    CUDA_CHECK(cudaMalloc(&fb.ptr, fb.bytes));
  }

  const size_t bytes = size_t(1) << 30;
  char *src, *dst;
  CUDA_CHECK(cudaMalloc(&src, bytes));
  CUDA_CHECK(cudaMalloc(&dst, bytes));
  CUDA_CHECK(cudaMemsetAsync(src, 1, bytes, cuda::stream()));  // on the stream the copies use
  double ms = time_ms(10, [&] {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda::stream()));
  });
  p.copy_gbs = 2.0 * bytes / ms * 1e-6;
  CUDA_CHECK(cudaFree(src));
  CUDA_CHECK(cudaFree(dst));

  const int n = 8192;
  __nv_bfloat16 *A, *B, *C;
  const size_t nn = static_cast<size_t>(n) * n;
  CUDA_CHECK(cudaMalloc(&A, nn * 2));
  CUDA_CHECK(cudaMalloc(&B, nn * 2));
  CUDA_CHECK(cudaMalloc(&C, nn * 2));
  bench_fill_random_bf16<<<1024, 256, 0, cuda::stream()>>>(A, nn, 1);
  bench_fill_random_bf16<<<1024, 256, 0, cuda::stream()>>>(B, nn, 2);
  CUDA_CHECK_LAUNCH();
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) TGPT_FAIL("cublasCreate failed");
  cublasSetStream(h, cuda::stream());
  const float one = 1.f, zero = 0.f;
  ms = time_ms(10, [&] {
    cublasStatus_t st =
        cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, A, CUDA_R_16BF, n, B, CUDA_R_16BF,
                     n, &zero, C, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) TGPT_FAIL("cublasGemmEx failed");
  });
  p.gemm_tflops = 2.0 * n * n * static_cast<double>(n) / ms * 1e-9;
  cublasDestroy(h);
  CUDA_CHECK(cudaFree(A));
  CUDA_CHECK(cudaFree(B));
  CUDA_CHECK(cudaFree(C));
  return p;
}

// Times fn and measures its peak memory; value, unit and pct are the caller's. An engine error
// becomes the row's note (the case prints "n/a").
inline BenchRow run_bench_case(const std::string& name, int repeats,
                               const std::function<void()>& fn) {
  BenchRow r;
  r.name = name;
  try {
    r.ms = time_ms(repeats, fn);
    r.peak_mb = peak_mb(fn);
  } catch (const Error& e) {
    r.note = std::string("n/a: ") + e.what();
    r.note = r.note.substr(0, r.note.find('\n'));
    (void)cudaGetLastError();
    clear_tape();
  }
  return r;
}

// Console table; the TSV too when tsv_path is given. Returns false if the TSV cannot be written.
inline bool print_bench_rows(const std::vector<BenchRow>& rows, const char* tsv_path,
                             const DevicePeaks& peaks) {
  std::printf("\n%-40s %10s %10s %-8s %7s %9s\n", "case", "ms", "rate", "unit", "%peak", "peak MB");
  for (const BenchRow& r : rows) {
    if (!r.note.empty()) {
      std::printf("%-40s %s\n", r.name.c_str(), r.note.substr(0, 100).c_str());
      continue;
    }
    std::printf("%-40s %10.4f %10.2f %-8s %6.1f%% %9.1f\n", r.name.c_str(), r.ms, r.value,
                r.unit.c_str(), r.pct, r.peak_mb);
  }
  if (!tsv_path) return true;
  FILE* f = std::fopen(tsv_path, "w");
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", tsv_path);
    return false;
  }
  std::fprintf(f, "# device\t%s\tcopy_gbs\t%.1f\tgemm_tflops\t%.1f\n", peaks.name.c_str(),
               peaks.copy_gbs, peaks.gemm_tflops);
  for (const BenchRow& r : rows)
    std::fprintf(f, "%s\t%.5f\t%.3f\t%s\t%.2f\t%.2f\t%s\n", r.name.c_str(), r.ms, r.value,
                 r.unit.c_str(), r.pct, r.peak_mb, r.note.empty() ? "" : "n/a");
  std::fclose(f);
  return true;
}

}  // namespace tgpt::bench
