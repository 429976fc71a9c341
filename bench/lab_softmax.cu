/*
 * lab_softmax.cu — kernel lab for softmax over the last dim, x [N, C]: forward (out, and the
 * engine's f32 logsumexp per row) and backward dx = p * (dout - sum(dout * p)), in the style of
 * llm.c's dev/cuda: CPU reference, numbered versions, validation, L2-flushed timings at CLIP /
 * TGP-T shapes (attention-probability rows [B*H*T, T] and the 1000-class and 49408-vocab rows) in
 * GB/s and % of the measured device copy bandwidth.
 *
 * Build: with the project (cmake -DTGPT_CUDA=ON; target lab_softmax), or standalone from the
 * repository root (norm.cu also holds the LayerNorm backward, which takes scratch from the
 * engine's caching allocator, hence the backend sources):
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. bench/lab_softmax.cu \
 *        kernels/cuda/norm.cu base/cuda/cuda_backend.cu base/device.cpp base/dtype.cpp \
 *        -o lab_softmax
 * Run: ./lab_softmax [--check-only] [version]
 *
 * Versions:
 *   1. naive port of the CPU loop: one thread per row, three passes (max, sum of exp, write);
 *      backward one thread per row, two passes over dout and the saved probabilities, f32.
 *   2. one warp per row: one pass with an online max/sum per lane (the running sum is rescaled
 *      when the max grows), lanes merged with xor shuffles, then the write pass; backward one warp
 *      per row over dout and the saved probabilities, f32.
 *   3. one block per row (up to 1024 threads, >= 8 elements each), online max/sum merged over the
 *      block's warps in warp order: the idea for wide rows, where one warp per row leaves the GPU
 *      idle ([768, 49408] is 768 warps in all); f32. A candidate to measure against version 4.
 *   4. engine kernel, f32 (kernels/cuda/norm.cu): one warp per row, three passes (max, sum,
 *      write), saves the row's logsumexp; backward recomputes p = exp(x - lse) from x.
 *   5. engine kernel, bf16 storage (f32 math and lse).
 * Bytes counted: forward reads x, writes out; backward reads dout and x (versions 4-5) or the
 * probabilities (1-3), writes dx (the f32 [N] lse is negligible).
 */
#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/norm.h"

using namespace tgpt;

constexpr int kVersions = 5;

// ----------------------------------------------------------------------------------------------
// CPU reference (double)

void softmax_cpu(std::vector<double>& out, std::vector<double>& dx, const std::vector<float>& x,
                 const std::vector<float>& dout, int N, int C) {
  out.assign(static_cast<size_t>(N) * C, 0.0);
  dx.assign(out.size(), 0.0);
  for (int r = 0; r < N; ++r) {
    const size_t off = static_cast<size_t>(r) * C;
    double mx = -INFINITY, s = 0, d = 0;
    for (int c = 0; c < C; ++c) mx = std::max(mx, static_cast<double>(x[off + c]));
    for (int c = 0; c < C; ++c) s += std::exp(x[off + c] - mx);
    for (int c = 0; c < C; ++c) {
      out[off + c] = std::exp(x[off + c] - mx) / s;
      d += dout[off + c] * out[off + c];
    }
    for (int c = 0; c < C; ++c) dx[off + c] = out[off + c] * (dout[off + c] - d);
  }
}

// ----------------------------------------------------------------------------------------------
// GPU kernels: versions 1-3, f32

__global__ void softmax_forward_kernel1(float* out, const float* x, int N, int C) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= N) return;
  const float* xr = x + static_cast<long long>(r) * C;
  float* o = out + static_cast<long long>(r) * C;
  float mx = -INFINITY, s = 0.f;
  for (int c = 0; c < C; ++c) mx = fmaxf(mx, xr[c]);
  for (int c = 0; c < C; ++c) s += expf(xr[c] - mx);
  for (int c = 0; c < C; ++c) o[c] = expf(xr[c] - mx) / s;
}

// dx = p * (dout - sum(dout * p)), p the saved forward output.
__global__ void softmax_backward_kernel1(float* dx, const float* dout, const float* p, int N,
                                         int C) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= N) return;
  const long long off = static_cast<long long>(r) * C;
  float d = 0.f;
  for (int c = 0; c < C; ++c) d += dout[off + c] * p[off + c];
  for (int c = 0; c < C; ++c) dx[off + c] = p[off + c] * (dout[off + c] - d);
}

// Online softmax statistics: m the running max, s the sum of exp(v - m) so far.
__device__ __forceinline__ void online_add(float& m, float& s, float v) {
  if (v > m) {
    s = s * expf(m - v) + 1.f;  // m = -inf at the start: expf(-inf) = 0
    m = v;
  } else if (v > -INFINITY) {  // a masked (-inf) element adds nothing, even while m is -inf
    s += expf(v - m);
  }
}
// Merges the statistics (mo, so) of another part of the row into (m, s). Symmetric in the two
// parts (a + b == b + a in floating point), so both lanes of a shuffle pair get the same bits.
__device__ __forceinline__ void online_merge(float& m, float& s, float mo, float so) {
  const float mn = fmaxf(m, mo);
  if (mn == -INFINITY) return;  // both parts empty or fully masked
  s = s * expf(m - mn) + so * expf(mo - mn);
  m = mn;
}
__device__ __forceinline__ void warp_online_merge(float& m, float& s) {
  for (int o = 16; o > 0; o >>= 1) {
    const float mo = __shfl_xor_sync(0xffffffffu, m, o);
    const float so = __shfl_xor_sync(0xffffffffu, s, o);
    online_merge(m, s, mo, so);
  }
}
__device__ __forceinline__ float warp_sum_lab(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void softmax_forward_kernel2(float* out, const float* x, int N, int C) {
  const long long r = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= N) return;  // the whole warp leaves together
  const float* xr = x + r * C;
  float m = -INFINITY, s = 0.f;
  for (int c = lane; c < C; c += 32) online_add(m, s, xr[c]);
  warp_online_merge(m, s);
  const float inv = 1.f / s;
  float* o = out + r * C;
  for (int c = lane; c < C; c += 32) o[c] = expf(xr[c] - m) * inv;
}

__global__ void softmax_backward_kernel2(float* dx, const float* dout, const float* p, int N,
                                         int C) {
  const long long r = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= N) return;
  const long long off = r * C;
  float d = 0.f;
  for (int c = lane; c < C; c += 32) d += dout[off + c] * p[off + c];
  d = warp_sum_lab(d);
  for (int c = lane; c < C; c += 32) dx[off + c] = p[off + c] * (dout[off + c] - d);
}

// One block per row; blockDim.x a multiple of 32, at most 1024.
__global__ void softmax_forward_kernel3(float* out, const float* x, int C) {
  __shared__ float wm[32], ws[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  const long long off = static_cast<long long>(blockIdx.x) * C;
  float m = -INFINITY, s = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) online_add(m, s, x[off + c]);
  warp_online_merge(m, s);
  if (lane == 0) wm[warp] = m, ws[warp] = s;
  __syncthreads();
  m = wm[0];
  s = ws[0];
  for (int w = 1; w < nwarps; ++w) online_merge(m, s, wm[w], ws[w]);  // warp order, every thread
  const float inv = 1.f / s;
  for (int c = threadIdx.x; c < C; c += blockDim.x) out[off + c] = expf(x[off + c] - m) * inv;
}

__global__ void softmax_backward_kernel3(float* dx, const float* dout, const float* p, int C) {
  __shared__ float wd[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  const long long off = static_cast<long long>(blockIdx.x) * C;
  float d = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) d += dout[off + c] * p[off + c];
  d = warp_sum_lab(d);
  if (lane == 0) wd[warp] = d;
  __syncthreads();
  d = wd[0];
  for (int w = 1; w < nwarps; ++w) d += wd[w];
  for (int c = threadIdx.x; c < C; c += blockDim.x) dx[off + c] = p[off + c] * (dout[off + c] - d);
}

// Version 3's block size: at least 8 elements per thread, a multiple of 32, 32..1024.
int block_threads3(int C) {
  const int per8 = (C + 7) / 8;
  return std::min(1024, std::max(32, (per8 + 31) / 32 * 32));
}

// ----------------------------------------------------------------------------------------------
// launchers

struct Bufs {
  void *x, *dout, *out, *dx;
  float* lse;
};

void forward(int version, const Bufs& m, int N, int C) {
  const float* x = static_cast<const float*>(m.x);
  float* out = static_cast<float*>(m.out);
  cudaStream_t s = cuda::stream();
  if (version == 1) {
    softmax_forward_kernel1<<<lab::ceil_div(N, 128), 128, 0, s>>>(out, x, N, C);
  } else if (version == 2) {
    softmax_forward_kernel2<<<lab::ceil_div(static_cast<long long>(N) * 32, 256), 256, 0, s>>>(
        out, x, N, C);
  } else if (version == 3) {
    softmax_forward_kernel3<<<N, block_threads3(C), 0, s>>>(out, x, C);
  } else {
    cuda::softmax_forward(version == 5 ? DType::bf16 : DType::f32, false, m.out, m.lse, m.x, N, C);
  }
  LAB_CHECK(cudaGetLastError());
}

// Versions 1-3 read the probabilities of the last forward (m.out); 4-5 recompute them from x.
void backward(int version, const Bufs& m, int N, int C) {
  float* dx = static_cast<float*>(m.dx);
  const float* g = static_cast<const float*>(m.dout);
  const float* p = static_cast<const float*>(m.out);
  cudaStream_t s = cuda::stream();
  if (version == 1) {
    softmax_backward_kernel1<<<lab::ceil_div(N, 128), 128, 0, s>>>(dx, g, p, N, C);
  } else if (version == 2) {
    softmax_backward_kernel2<<<lab::ceil_div(static_cast<long long>(N) * 32, 256), 256, 0, s>>>(
        dx, g, p, N, C);
  } else if (version == 3) {
    softmax_backward_kernel3<<<N, block_threads3(C), 0, s>>>(dx, g, p, C);
  } else {
    cuda::softmax_backward(version == 5 ? DType::bf16 : DType::f32, false, m.dx, m.dout, m.x, m.lse,
                           N, C);
  }
  LAB_CHECK(cudaGetLastError());
}

template <typename T>
Bufs make_bufs_t(const std::vector<float>& x, const std::vector<float>& dout, int N) {
  Bufs m;
  m.x = lab::to_device<T>(x);
  m.dout = lab::to_device<T>(dout);
  m.out = lab::device_alloc<T>(x.size());
  m.dx = lab::device_alloc<T>(x.size());
  m.lse = lab::device_alloc<float>(N);
  return m;
}
Bufs make_bufs(int version, const std::vector<float>& x, const std::vector<float>& dout, int N) {
  return version == 5 ? make_bufs_t<__nv_bfloat16>(x, dout, N) : make_bufs_t<float>(x, dout, N);
}
void free_bufs(Bufs& m) {
  for (void* p : {m.x, m.dout, m.out, m.dx, static_cast<void*>(m.lse)}) LAB_CHECK(cudaFree(p));
}
std::vector<float> host_of(int version, const void* d, size_t n) {
  return version == 5 ? lab::to_host(static_cast<const __nv_bfloat16*>(d), n)
                      : lab::to_host(static_cast<const float*>(d), n);
}
std::vector<float> rounded(int version, std::vector<float> v) {
  if (version == 5)
    for (auto& x : v) x = __bfloat162float(__float2bfloat16_rn(x));
  return v;
}

// With `causal`, rows are attention rows [*, C] of a C x C causal mask: row r may see the
// columns j <= r % C, the others are -inf (as a masked score).
bool check(int version, int N, int C, bool causal, uint64_t seed) {
  auto x = lab::random_floats(static_cast<size_t>(N) * C, 3.f, seed);
  if (causal)
    for (int r = 0; r < N; ++r)
      for (int j = r % C + 1; j < C; ++j) x[static_cast<size_t>(r) * C + j] = -INFINITY;
  x = rounded(version, x);
  auto dout = rounded(version, lab::random_floats(static_cast<size_t>(N) * C, 1.f, seed + 1));
  std::vector<double> ref_out, ref_dx;
  softmax_cpu(ref_out, ref_dx, x, dout, N, C);
  Bufs m = make_bufs(version, x, dout, N);
  forward(version, m, N, C);
  backward(version, m, N, C);
  const double tol = version == 5 ? 1e-2 : 1e-4;
  char what[96];
  std::snprintf(what, sizeof what, "v%d N=%d C=%d%s out", version, N, C, causal ? " causal" : "");
  bool ok = lab::validate(what, host_of(version, m.out, ref_out.size()), ref_out, tol);
  std::snprintf(what, sizeof what, "v%d N=%d C=%d%s dx", version, N, C, causal ? " causal" : "");
  ok &= lab::validate(what, host_of(version, m.dx, ref_dx.size()), ref_dx, tol);
  free_bufs(m);
  return ok;
}

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  std::printf("correctness vs CPU f64\n");
  uint64_t seed = 1;
  struct Case {
    int N, C;
    bool causal;
  };
  const Case cases[] = {{1, 1, false},        {3, 7, false},     {2 * 77, 77, true},
                        {2 * 197, 197, true}, {37, 197, false},  {8, 1000, false},
                        {5, 4099, false},     {4, 49408, false}, {300, 33, false}};
  for (int version = 1; version <= kVersions; ++version) {
    if (only && version != only) continue;
    for (const Case& c : cases) ok &= check(version, c.N, c.C, c.causal, seed += 2);
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;

  std::printf("device copy bandwidth: %.0f GB/s (read + write)\n", lab::copy_bandwidth_gbs());
  struct Shape {
    const char* name;
    int N, C;
  };
  const Shape shapes[] = {{"text attn 16x8x77", 16 * 8 * 77, 77},
                          {"ViT-B/16 attn 64x12x197", 64 * 12 * 197, 197},
                          {"ViT-L/14@336 8x16x577", 8 * 16 * 577, 577},
                          {"classes 8x1000", 8, 1000},
                          {"vocab 768x49408", 768, 49408}};
  std::printf("\n%-24s %6s %5s %2s | %8s %7s %5s | %8s %7s %5s\n", "shape", "N", "C", "v", "fwd us",
              "GB/s", "%cp", "bwd us", "GB/s", "%cp");
  for (const Shape& s : shapes) {
    auto x = lab::random_floats(static_cast<size_t>(s.N) * s.C, 3.f, 7);
    auto dout = lab::random_floats(static_cast<size_t>(s.N) * s.C, 1.f, 8);
    for (int version = 1; version <= kVersions; ++version) {
      if (only && version != only) continue;
      Bufs m = make_bufs(version, x, dout, s.N);
      const double elem = version == 5 ? 2.0 : 4.0, n = static_cast<double>(s.N) * s.C;
      const int reps = version == 1 ? 5 : 20;
      forward(version, m, s.N, s.C);  // probabilities / lse for the backward timing
      const float tf = lab::benchmark_ms(reps, [&] { forward(version, m, s.N, s.C); });
      const float tb = lab::benchmark_ms(reps, [&] { backward(version, m, s.N, s.C); });
      std::printf("%-24s %6d %5d %2d | %8.1f %7.0f %5.1f | %8.1f %7.0f %5.1f\n", s.name, s.N, s.C,
                  version, tf * 1e3, lab::gbs_of(2 * n * elem, tf),
                  lab::pct_of_copy(2 * n * elem, tf), tb * 1e3, lab::gbs_of(3 * n * elem, tb),
                  lab::pct_of_copy(3 * n * elem, tb));
      free_bufs(m);
    }
  }
  return ok ? 0 : 1;
}
