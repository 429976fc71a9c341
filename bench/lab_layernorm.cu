/*
 * lab_layernorm.cu — kernel lab for LayerNorm over the last dim, x [N, C], weight/bias [C]:
 * forward (out, mean, rstd) and backward (dx, dweight, dbias), in the style of llm.c's dev/cuda:
 * CPU reference, numbered versions, validation, L2-flushed timings at CLIP widths in GB/s and
 * % of the measured device copy bandwidth.
 *
 * Build: with the project (cmake -DTGPT_CUDA=ON; target lab_layernorm), or standalone from the
 * repository root (the engine's backward takes scratch from its caching allocator, hence the
 * backend sources):
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. bench/lab_layernorm.cu \
 *        kernels/cuda/norm.cu base/cuda/cuda_backend.cu base/device.cpp base/dtype.cpp \
 *        -o lab_layernorm
 * Run: ./lab_layernorm [--check-only] [version]
 *
 * Versions:
 *   1. naive port of the CPU loop: one thread per row (two passes for mean and variance, then
 *      the output); backward one thread per row for dx, one thread per column for dweight/dbias
 *      (a column walk over all rows), f32.
 *   2. one warp per row: lanes stride the row, warp shuffles reduce the statistics (forward and
 *      dx); dweight/dbias as in version 1, f32.
 *   3. engine kernel, f32 (kernels/cuda/norm.cu): one warp per row, dweight/dbias from per-chunk
 *      column partials summed in a fixed order.
 *   4. engine kernel, bf16 storage (f32 statistics).
 * Bytes counted: forward reads x, writes out; backward reads dout and x, writes dx (the [C]
 * parameters and the f32 [N] statistics are negligible).
 */
#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/norm.h"

using namespace tgpt;

constexpr double kEps = 1e-5;

// ----------------------------------------------------------------------------------------------
// CPU reference (double)

void layernorm_cpu(std::vector<double>& out, std::vector<double>& dx, std::vector<double>& dw,
                   std::vector<double>& db, const std::vector<float>& x,
                   const std::vector<float>& w, const std::vector<float>& b,
                   const std::vector<float>& dout, int N, int C) {
  out.assign(static_cast<size_t>(N) * C, 0.0);
  dx.assign(out.size(), 0.0);
  dw.assign(C, 0.0);
  db.assign(C, 0.0);
  std::vector<double> xhat(C), dn(C);
  for (int r = 0; r < N; ++r) {
    const float* xr = &x[static_cast<size_t>(r) * C];
    const float* gr = &dout[static_cast<size_t>(r) * C];
    double mean = 0, var = 0;
    for (int c = 0; c < C; ++c) mean += xr[c];
    mean /= C;
    for (int c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    const double rstd = 1.0 / std::sqrt(var / C + kEps);
    double m1 = 0, m2 = 0;
    for (int c = 0; c < C; ++c) {
      xhat[c] = (xr[c] - mean) * rstd;
      out[static_cast<size_t>(r) * C + c] = xhat[c] * w[c] + b[c];
      dn[c] = gr[c] * static_cast<double>(w[c]);
      m1 += dn[c];
      m2 += dn[c] * xhat[c];
      dw[c] += gr[c] * xhat[c];
      db[c] += gr[c];
    }
    m1 /= C;
    m2 /= C;
    for (int c = 0; c < C; ++c)
      dx[static_cast<size_t>(r) * C + c] = rstd * (dn[c] - m1 - xhat[c] * m2);
  }
}

// ----------------------------------------------------------------------------------------------
// GPU kernels: version 1 (thread per row) and version 2 (warp per row), f32

__global__ void layernorm_forward_kernel1(float* out, float* mean, float* rstd, const float* x,
                                          const float* w, const float* b, int N, int C) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= N) return;
  const float* xr = x + static_cast<long long>(r) * C;
  float m = 0.f, v = 0.f;
  for (int c = 0; c < C; ++c) m += xr[c];
  m /= C;
  for (int c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
  const float s = rsqrtf(v / C + static_cast<float>(kEps));
  float* o = out + static_cast<long long>(r) * C;
  for (int c = 0; c < C; ++c) o[c] = (xr[c] - m) * s * w[c] + b[c];
  mean[r] = m;
  rstd[r] = s;
}

__global__ void layernorm_backward_dx_kernel1(float* dx, const float* dout, const float* x,
                                              const float* w, const float* mean, const float* rstd,
                                              int N, int C) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= N) return;
  const long long off = static_cast<long long>(r) * C;
  const float m = mean[r], s = rstd[r];
  float m1 = 0.f, m2 = 0.f;
  for (int c = 0; c < C; ++c) {
    const float dn = dout[off + c] * w[c];
    m1 += dn;
    m2 += dn * (x[off + c] - m) * s;
  }
  m1 /= C;
  m2 /= C;
  for (int c = 0; c < C; ++c)
    dx[off + c] = s * (dout[off + c] * w[c] - m1 - (x[off + c] - m) * s * m2);
}

// dweight[c] = sum_r dout * xhat, dbias[c] = sum_r dout; one thread per column.
__global__ void layernorm_params_kernel1(float* dw, float* db, const float* dout, const float* x,
                                         const float* mean, const float* rstd, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sw = 0.f, sb = 0.f;
  for (int r = 0; r < N; ++r) {
    const long long i = static_cast<long long>(r) * C + c;
    sw += dout[i] * (x[i] - mean[r]) * rstd[r];
    sb += dout[i];
  }
  dw[c] = sw;
  db[c] = sb;
}

__device__ float warp_sum2(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void layernorm_forward_kernel2(float* out, float* mean, float* rstd, const float* x,
                                          const float* w, const float* b, int N, int C) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= N) return;
  const float* xr = x + static_cast<long long>(r) * C;
  float m = 0.f, v = 0.f;
  for (int c = lane; c < C; c += 32) m += xr[c];
  m = warp_sum2(m) / C;
  for (int c = lane; c < C; c += 32) v += (xr[c] - m) * (xr[c] - m);
  const float s = rsqrtf(warp_sum2(v) / C + static_cast<float>(kEps));
  float* o = out + static_cast<long long>(r) * C;
  for (int c = lane; c < C; c += 32) o[c] = (xr[c] - m) * s * w[c] + b[c];
  if (lane == 0) mean[r] = m, rstd[r] = s;
}

__global__ void layernorm_backward_dx_kernel2(float* dx, const float* dout, const float* x,
                                              const float* w, const float* mean, const float* rstd,
                                              int N, int C) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (r >= N) return;
  const long long off = static_cast<long long>(r) * C;
  const float m = mean[r], s = rstd[r];
  float m1 = 0.f, m2 = 0.f;
  for (int c = lane; c < C; c += 32) {
    const float dn = dout[off + c] * w[c];
    m1 += dn;
    m2 += dn * (x[off + c] - m) * s;
  }
  m1 = warp_sum2(m1) / C;
  m2 = warp_sum2(m2) / C;
  for (int c = lane; c < C; c += 32)
    dx[off + c] = s * (dout[off + c] * w[c] - m1 - (x[off + c] - m) * s * m2);
}

// ----------------------------------------------------------------------------------------------
// launchers

struct Bufs {
  void *x, *w, *b, *dout, *out, *dx, *dw, *db;
  float *mean, *rstd;
};

DType lab_dtype(int version) {
  return version == 4 ? DType::bf16 : DType::f32;
}

void forward(int version, const Bufs& m, int N, int C) {
  auto f = [](const void* p) { return static_cast<const float*>(p); };
  if (version == 1) {
    layernorm_forward_kernel1<<<lab::ceil_div(N, 128), 128, 0, cuda::stream()>>>(
        static_cast<float*>(m.out), m.mean, m.rstd, f(m.x), f(m.w), f(m.b), N, C);
    LAB_CHECK(cudaGetLastError());
  } else if (version == 2) {
    layernorm_forward_kernel2<<<lab::ceil_div(static_cast<long long>(N) * 32, 256), 256, 0,
                                cuda::stream()>>>(static_cast<float*>(m.out), m.mean, m.rstd,
                                                  f(m.x), f(m.w), f(m.b), N, C);
    LAB_CHECK(cudaGetLastError());
  } else {
    cuda::layernorm_forward(lab_dtype(version), m.out, m.mean, m.rstd, m.x, nullptr, nullptr, m.w,
                            m.b, N, C, kEps);
  }
}

void backward(int version, const Bufs& m, int N, int C) {
  auto f = [](const void* p) { return static_cast<const float*>(p); };
  if (version <= 2) {
    cudaStream_t s = cuda::stream();
    if (version == 1)
      layernorm_backward_dx_kernel1<<<lab::ceil_div(N, 128), 128, 0, s>>>(
          static_cast<float*>(m.dx), f(m.dout), f(m.x), f(m.w), m.mean, m.rstd, N, C);
    else
      layernorm_backward_dx_kernel2<<<lab::ceil_div(static_cast<long long>(N) * 32, 256), 256, 0,
                                      s>>>(static_cast<float*>(m.dx), f(m.dout), f(m.x), f(m.w),
                                           m.mean, m.rstd, N, C);
    layernorm_params_kernel1<<<lab::ceil_div(C, 128), 128, 0, s>>>(
        static_cast<float*>(m.dw), static_cast<float*>(m.db), f(m.dout), f(m.x), m.mean, m.rstd, N,
        C);
    LAB_CHECK(cudaGetLastError());
  } else {
    cuda::layernorm_backward(lab_dtype(version), m.dx, m.dw, m.db, m.dout, m.x, m.w, m.mean, m.rstd,
                             N, C);
  }
}

template <typename T>
Bufs make_bufs_t(const std::vector<float>& x, const std::vector<float>& w,
                 const std::vector<float>& b, const std::vector<float>& dout, int N) {
  Bufs m;
  m.x = lab::to_device<T>(x);
  m.w = lab::to_device<T>(w);
  m.b = lab::to_device<T>(b);
  m.dout = lab::to_device<T>(dout);
  m.out = lab::device_alloc<T>(x.size());
  m.dx = lab::device_alloc<T>(x.size());
  m.dw = lab::device_alloc<T>(w.size());
  m.db = lab::device_alloc<T>(w.size());
  m.mean = lab::device_alloc<float>(N);
  m.rstd = lab::device_alloc<float>(N);
  return m;
}
Bufs make_bufs(int version, const std::vector<float>& x, const std::vector<float>& w,
               const std::vector<float>& b, const std::vector<float>& dout, int N) {
  return version == 4 ? make_bufs_t<__nv_bfloat16>(x, w, b, dout, N)
                      : make_bufs_t<float>(x, w, b, dout, N);
}
void free_bufs(Bufs& m) {
  for (void* p : {m.x, m.w, m.b, m.dout, m.out, m.dx, m.dw, m.db, static_cast<void*>(m.mean),
                  static_cast<void*>(m.rstd)})
    LAB_CHECK(cudaFree(p));
}
std::vector<float> host_of(int version, const void* d, size_t n) {
  return version == 4 ? lab::to_host(static_cast<const __nv_bfloat16*>(d), n)
                      : lab::to_host(static_cast<const float*>(d), n);
}
std::vector<float> rounded(int version, std::vector<float> v) {
  if (version == 4)
    for (auto& x : v) x = __bfloat162float(__float2bfloat16_rn(x));
  return v;
}

bool check(int version, int N, int C, uint64_t seed) {
  auto x = rounded(version, lab::random_floats(static_cast<size_t>(N) * C, 2.f, seed));
  auto w = rounded(version, lab::random_floats(C, 1.f, seed + 1));
  auto b = rounded(version, lab::random_floats(C, 1.f, seed + 2));
  auto dout = rounded(version, lab::random_floats(static_cast<size_t>(N) * C, 1.f, seed + 3));
  for (auto& v : x) v += 0.5f;  // a non-zero mean
  x = rounded(version, x);
  std::vector<double> ro, rdx, rdw, rdb;
  layernorm_cpu(ro, rdx, rdw, rdb, x, w, b, dout, N, C);
  Bufs m = make_bufs(version, x, w, b, dout, N);
  forward(version, m, N, C);
  backward(version, m, N, C);
  const double tol = version == 4 ? 3e-2 : 3e-5;
  char what[96];
  bool ok = true;
  const std::pair<const char*, std::pair<void*, const std::vector<double>*>> outs[] = {
      {"out", {m.out, &ro}},
      {"dx", {m.dx, &rdx}},
      {"dweight", {m.dw, &rdw}},
      {"dbias", {m.db, &rdb}}};
  for (const auto& [name, pr] : outs) {
    std::snprintf(what, sizeof what, "v%d N=%d C=%d %s", version, N, C, name);
    ok &= lab::validate(what, host_of(version, pr.first, pr.second->size()), *pr.second, tol);
  }
  free_bufs(m);
  return ok;
}

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  std::printf("correctness vs CPU f64 (eps 1e-5)\n");
  uint64_t seed = 1;
  for (int version = 1; version <= 4; ++version) {
    if (only && version != only) continue;
    for (auto [N, C] : {std::pair{1, 1}, {3, 7}, {77, 512}, {197, 768}, {2000, 1024}})
      ok &= check(version, N, C, seed += 4);
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;

  std::printf("device copy bandwidth: %.0f GB/s (read + write)\n", lab::copy_bandwidth_gbs());
  struct Shape {
    const char* name;
    int N, C;
  };
  const Shape shapes[] = {{"text (256x77)", 256 * 77, 512},
                          {"ViT-B/16 (64x197)", 64 * 197, 768},
                          {"ViT-L/14 (32x257)", 32 * 257, 1024}};
  std::printf("\n%-18s %6s %5s %2s | %8s %7s %5s | %8s %7s %5s\n", "shape", "N", "C", "v", "fwd us",
              "GB/s", "%cp", "bwd us", "GB/s", "%cp");
  for (const Shape& s : shapes) {
    auto x = lab::random_floats(static_cast<size_t>(s.N) * s.C, 2.f, 7);
    auto w = lab::random_floats(s.C, 1.f, 8), b = lab::random_floats(s.C, 1.f, 9);
    auto dout = lab::random_floats(static_cast<size_t>(s.N) * s.C, 1.f, 10);
    for (int version = 1; version <= 4; ++version) {
      if (only && version != only) continue;
      Bufs m = make_bufs(version, x, w, b, dout, s.N);
      const double elem = version == 4 ? 2.0 : 4.0, n = static_cast<double>(s.N) * s.C;
      const int reps = version == 1 ? 5 : 20;
      forward(version, m, s.N, s.C);  // mean/rstd for the backward timing
      const float tf = lab::benchmark_ms(reps, [&] { forward(version, m, s.N, s.C); });
      const float tb = lab::benchmark_ms(reps, [&] { backward(version, m, s.N, s.C); });
      std::printf("%-18s %6d %5d %2d | %8.1f %7.0f %5.1f | %8.1f %7.0f %5.1f\n", s.name, s.N, s.C,
                  version, tf * 1e3, lab::gbs_of(2 * n * elem, tf),
                  lab::pct_of_copy(2 * n * elem, tf), tb * 1e3, lab::gbs_of(3 * n * elem, tb),
                  lab::pct_of_copy(3 * n * elem, tb));
      free_bufs(m);
    }
  }
  return ok ? 0 : 1;
}
