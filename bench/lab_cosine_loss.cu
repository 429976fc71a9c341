/*
 * lab_cosine_loss.cu — kernel lab for TGP-T's classification loss:
 * loss = mean CE(100 · normalize(x [N, F]) · Wᵀ, target), W [K, F] not normalised; gradients for
 * x and W. llm.c dev/cuda style: CPU reference, numbered versions, validation, L2 flushed timings.
 *
 * Build: with the project (target lab_cosine_loss), or standalone from the repository root:
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. -DLAB_STANDALONE \
 *        bench/lab_cosine_loss.cu kernels/cuda/cosine_loss.cu base/dtype.cpp -o lab_cosine_loss
 * Run: ./lab_cosine_loss [--check-only] [version]
 *
 * Versions:
 *   1. naive: one thread per (n, k) logit (each recomputes ||x_n||), one thread per row for the
 *      softmax and the normalise backward, one thread per element of dW and of dxn, f32.
 *   2. engine, f32 (kernels/cuda/cosine_loss.cu): one warp per (n, k) dot product with coalesced
 *      loads, block-per-row softmax and l2-normalise backward, thread-per-(k, f) dW.
 *   3. engine, bf16 storage (f32 arithmetic).
 * Bytes counted: x and W read twice (forward, backward), dx and dW written once.
 */
#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/cosine_loss.h"

using namespace tgpt;

constexpr float kScale = 100.f, kEps = 1e-12f;

// CPU reference (double), upstream gradient 1.
double cosine_cpu(std::vector<double>& dx, std::vector<double>& dw, const std::vector<float>& x,
                  const std::vector<float>& w, const std::vector<int64_t>& t, int N, int F, int K) {
  dx.assign(static_cast<size_t>(N) * F, 0.0);
  dw.assign(static_cast<size_t>(K) * F, 0.0);
  double total = 0;
  for (int n = 0; n < N; ++n) {
    const float* xr = &x[static_cast<size_t>(n) * F];
    double ss = 0;
    for (int f = 0; f < F; ++f) ss += static_cast<double>(xr[f]) * xr[f];
    const double nrm = std::sqrt(ss), den = std::max(nrm, static_cast<double>(kEps));
    std::vector<double> z(K), dxn(F, 0.0);
    double mx = -INFINITY;
    for (int k = 0; k < K; ++k) {
      double d = 0;
      for (int f = 0; f < F; ++f)
        d += xr[f] * static_cast<double>(w[static_cast<size_t>(k) * F + f]);
      z[k] = kScale * d / den;
      mx = std::max(mx, z[k]);
    }
    double s = 0;
    for (int k = 0; k < K; ++k) s += std::exp(z[k] - mx);
    const double lse = mx + std::log(s);
    total += lse - z[t[n]];
    for (int k = 0; k < K; ++k) {
      const double dz = (std::exp(z[k] - lse) - (k == t[n])) / N;
      for (int f = 0; f < F; ++f) {
        dw[static_cast<size_t>(k) * F + f] += kScale * dz * xr[f] / den;
        dxn[f] += kScale * dz * w[static_cast<size_t>(k) * F + f];
      }
    }
    double dot = 0;
    for (int f = 0; f < F; ++f) dot += dxn[f] * xr[f];
    for (int f = 0; f < F; ++f)
      dx[static_cast<size_t>(n) * F + f] = dxn[f] / nrm - xr[f] * dot / (nrm * nrm * nrm);
  }
  return total / N;
}

// ---- version 1 ---------------------------------------------------------------------------------

__global__ void logits_kernel1(float* z, float* norm, const float* x, const float* w, int N, int F,
                               int K) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N * K) return;
  const int n = i / K, k = i % K;
  float ss = 0, d = 0;
  for (int f = 0; f < F; ++f) ss += x[n * F + f] * x[n * F + f], d += x[n * F + f] * w[k * F + f];
  z[i] = kScale * d / fmaxf(sqrtf(ss), kEps);
  if (k == 0) norm[n] = sqrtf(ss);
}
__global__ void softmax_kernel1(float* z, float* row_loss, const int64_t* t, int N, int K) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  float* r = z + static_cast<size_t>(n) * K;
  float mx = -INFINITY, s = 0;
  for (int k = 0; k < K; ++k) mx = fmaxf(mx, r[k]);
  for (int k = 0; k < K; ++k) s += expf(r[k] - mx);
  const float lse = mx + logf(s);
  row_loss[n] = lse - r[t[n]];
  for (int k = 0; k < K; ++k) r[k] = expf(r[k] - lse);
}
__global__ void mean_kernel1(float* loss, const float* row_loss, int N) {
  float s = 0;
  for (int n = 0; n < N; ++n) s += row_loss[n];
  *loss = s / N;
}
__global__ void dw_kernel1(float* dw, const float* p, const float* norm, const float* x,
                           const int64_t* t, int N, int F, int K) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= K * F) return;
  const int k = i / F, f = i % F;
  float acc = 0;
  for (int n = 0; n < N; ++n)
    acc += (p[n * K + k] - (t[n] == k)) * x[n * F + f] / fmaxf(norm[n], kEps);
  dw[i] = kScale * acc / N;
}
__global__ void dxn_kernel1(float* dxn, const float* p, const float* w, const int64_t* t, int N,
                            int F, int K) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N * F) return;
  const int n = i / F, f = i % F;
  float a = 0;
  for (int k = 0; k < K; ++k) a += (p[n * K + k] - (t[n] == k)) * w[k * F + f];
  dxn[i] = kScale * a / N;
}
__global__ void dx_kernel1(float* dx, const float* dxn, const float* norm, const float* x, int N,
                           int F) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  float dot = 0;
  for (int f = 0; f < F; ++f) dot += dxn[n * F + f] * x[n * F + f];
  const float nrm = norm[n];
  for (int f = 0; f < F; ++f)
    dx[n * F + f] = dxn[n * F + f] / nrm - x[n * F + f] * dot / (nrm * nrm * nrm);
}

// ------------------------------------------------------------------------------------------------

struct Run {
  int version, N, F, K;
  void *x, *w, *dx, *dw, *loss;
  int64_t* t;
  float *prob, *norm, *row_loss, *dxn, *dloss;
  Run(int v, const std::vector<float>& xh, const std::vector<float>& wh,
      const std::vector<int64_t>& th, int n, int f, int k)
      : version(v), N(n), F(f), K(k) {
    const bool bf = v == 3;
    auto up = [&](const std::vector<float>& h) -> void* {
      return bf ? static_cast<void*>(lab::to_device<__nv_bfloat16>(h)) : lab::to_device<float>(h);
    };
    auto alloc = [&](size_t c) -> void* {
      return bf ? static_cast<void*>(lab::device_alloc<__nv_bfloat16>(c))
                : lab::device_alloc<float>(c);
    };
    x = up(xh), w = up(wh), dx = alloc(xh.size()), dw = alloc(wh.size()), loss = alloc(1);
    t = lab::device_alloc<int64_t>(N);
    lab::upload(t, th.data(), N * sizeof(int64_t));
    prob = lab::device_alloc<float>(static_cast<size_t>(N) * K);
    norm = lab::device_alloc<float>(N), row_loss = lab::device_alloc<float>(N);
    dxn = lab::device_alloc<float>(xh.size());
    dloss = lab::to_device<float>({1.f});
  }
  void forward_backward() {
    cudaStream_t s = cuda::stream();
    if (version == 1) {
      const float* xf = static_cast<float*>(x);
      const float* wf = static_cast<float*>(w);
      logits_kernel1<<<lab::ceil_div(N * K, 256), 256, 0, s>>>(prob, norm, xf, wf, N, F, K);
      softmax_kernel1<<<lab::ceil_div(N, 64), 64, 0, s>>>(prob, row_loss, t, N, K);
      mean_kernel1<<<1, 1, 0, s>>>(static_cast<float*>(loss), row_loss, N);
      dw_kernel1<<<lab::ceil_div(K * F, 256), 256, 0, s>>>(static_cast<float*>(dw), prob, norm, xf,
                                                           t, N, F, K);
      dxn_kernel1<<<lab::ceil_div(N * F, 256), 256, 0, s>>>(dxn, prob, wf, t, N, F, K);
      dx_kernel1<<<lab::ceil_div(N, 64), 64, 0, s>>>(static_cast<float*>(dx), dxn, norm, xf, N, F);
      LAB_CHECK(cudaGetLastError());
      return;
    }
    const DType dt = version == 3 ? DType::bf16 : DType::f32;
    cuda::cosine_logit_loss_forward(loss, norm, prob, row_loss, x, w, dt, t, N, F, K, kScale, kEps);
    cuda::cosine_logit_loss_backward(dx, dw, dxn, prob, norm, x, w, dt, t, N, F, K, kScale, kEps,
                                     dloss, DType::f32);
  }
  std::vector<float> host(const void* d, size_t n) {
    return version == 3 ? lab::to_host(static_cast<const __nv_bfloat16*>(d), n)
                        : lab::to_host(static_cast<const float*>(d), n);
  }
};

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  auto problem = [](int N, int F, int K, uint64_t seed, std::vector<float>& x,
                    std::vector<float>& w, std::vector<int64_t>& t) {
    x = lab::random_floats(static_cast<size_t>(N) * F, 2.f, seed);
    w = lab::random_floats(static_cast<size_t>(K) * F, 1.f / std::sqrt(static_cast<float>(F)),
                           seed + 1);
    std::mt19937_64 rng(seed + 2);
    t.resize(N);
    for (auto& v : t) v = static_cast<int64_t>(rng() % K);
  };
  for (auto [N, F, K] : {std::tuple{8, 1024, 1000}, std::tuple{1, 33, 1}, std::tuple{5, 7, 300}}) {
    std::vector<float> x, w;
    std::vector<int64_t> t;
    problem(N, F, K, 3, x, w, t);
    std::printf("correctness N=%d F=%d K=%d\n", N, F, K);
    for (int version = 1; version <= 3; ++version) {
      if (only && version != only) continue;
      std::vector<float> xv = x, wv = w;
      if (version == 3)
        for (auto* v : {&xv, &wv})
          for (auto& e : *v) e = __bfloat162float(__float2bfloat16_rn(e));
      std::vector<double> rdx, rdw;
      const double rl = cosine_cpu(rdx, rdw, xv, wv, t, N, F, K);
      Run r(version, xv, wv, t, N, F, K);
      r.forward_backward();
      const double tol = version == 3 ? 2e-2 : 1e-5;
      char what[64];
      std::snprintf(what, sizeof what, "v%d loss", version);
      ok &= lab::validate(what, r.host(r.loss, 1), {rl}, tol);
      std::snprintf(what, sizeof what, "v%d dfeatures", version);
      ok &= lab::validate(what, r.host(r.dx, x.size()), rdx, tol);
      std::snprintf(what, sizeof what, "v%d dweight", version);
      ok &= lab::validate(what, r.host(r.dw, w.size()), rdw, tol);
    }
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;
  std::printf("\n%-20s %2s | %9s %9s\n", "shape (N, F, K)", "v", "f+b us", "GB/s");
  for (auto [N, F, K] : {std::tuple{8, 1024, 1000}, std::tuple{256, 1024, 1000}}) {
    std::vector<float> x, w;
    std::vector<int64_t> t;
    problem(N, F, K, 9, x, w, t);
    for (int version = 1; version <= 3; ++version) {
      if (only && version != only) continue;
      Run r(version, x, w, t, N, F, K);
      const double elt = version == 3 ? 2 : 4;
      const double bytes = 3.0 * (static_cast<double>(N) * F + static_cast<double>(K) * F) * elt;
      float ms = lab::benchmark_ms(version == 1 ? 5 : 100, [&] { r.forward_backward(); });
      std::printf("%4d x %4d x %5d   %2d | %9.2f %9.1f\n", N, F, K, version, ms * 1e3,
                  bytes / ms * 1e-6);
    }
  }
  return ok ? 0 : 1;
}
