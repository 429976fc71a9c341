/*
 * lab_clip_contrastive_loss.cu — kernel lab for CLIP's symmetric InfoNCE loss:
 * loss = (CE(Z, arange) + CE(Zᵀ, arange)) / 2, Z = exp(min(p, ln 100)) · normalize(I)
 * normalize(T)ᵀ, I, T [N, E]; gradients for I, T and p. llm.c dev/cuda style: CPU reference
 * (double), numbered versions, validation, L2 flushed timings.
 *
 * Build: with the project (target lab_clip_contrastive_loss), or standalone from the repository
 * root:
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. -DLAB_STANDALONE \
 *        bench/lab_clip_contrastive_loss.cu kernels/cuda/clip_contrastive_loss.cu base/dtype.cpp \
 *        -o lab_clip_contrastive_loss
 * Run: ./lab_clip_contrastive_loss [--check-only] [version]
 *
 * Versions:
 *   1. engine, f32 (kernels/cuda/clip_contrastive_loss.cu): block-per-row normalise, warp per
 *      logit, block per row/column log-sum-exp, thread per element of dZ and of dn.
 *   2. engine, bf16 storage (f32 arithmetic).
 * Bytes counted: I and T read twice (forward, backward), dI and dT written once, Z [N, N] f32
 * written once and read three times.
 */
#include "bench/lab_common.cuh"
#include "kernels/cuda/clip_contrastive_loss.h"
#include "kernels/cpu/blas_setup.h"

using namespace tgpt;

constexpr float kEps = 1e-12f;

// CPU reference (double), upstream gradient 1. Returns the loss; dparam = dL/dp.
double clip_cpu(std::vector<double>& di, std::vector<double>& dt, double& dparam,
                const std::vector<float>& img, const std::vector<float>& txt, double p, int N,
                int E) {
  const double s = std::exp(std::min(p, std::log(100.0)));
  std::vector<double> a(static_cast<size_t>(N) * E), b(a.size()), na(N), nb(N);
  for (int n = 0; n < N; ++n) {
    double sa = 0, sb = 0;
    for (int e = 0; e < E; ++e) {
      sa += static_cast<double>(img[n * E + e]) * img[n * E + e];
      sb += static_cast<double>(txt[n * E + e]) * txt[n * E + e];
    }
    na[n] = std::sqrt(sa), nb[n] = std::sqrt(sb);
    for (int e = 0; e < E; ++e)
      a[n * E + e] = img[n * E + e] / na[n], b[n * E + e] = txt[n * E + e] / nb[n];
  }
  std::vector<double> z(static_cast<size_t>(N) * N), lr(N), lc(N);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) {
      double d = 0;
      for (int e = 0; e < E; ++e) d += a[i * E + e] * b[j * E + e];
      z[static_cast<size_t>(i) * N + j] = s * d;
    }
  double loss = 0;
  for (int r = 0; r < N; ++r) {
    double mr = -INFINITY, mc = -INFINITY, sr = 0, sc = 0;
    for (int k = 0; k < N; ++k) mr = std::max(mr, z[r * N + k]), mc = std::max(mc, z[k * N + r]);
    for (int k = 0; k < N; ++k)
      sr += std::exp(z[r * N + k] - mr), sc += std::exp(z[k * N + r] - mc);
    lr[r] = mr + std::log(sr), lc[r] = mc + std::log(sc);
    loss += (lr[r] + lc[r] - 2 * z[r * N + r]) / (2.0 * N);
  }
  std::vector<double> dz(z.size());
  dparam = 0;
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) {
      const double zz = z[i * N + j];
      dz[i * N + j] = (std::exp(zz - lr[i]) + std::exp(zz - lc[j]) - 2.0 * (i == j)) / (2.0 * N);
      dparam += dz[i * N + j] * zz;
    }
  if (p > std::log(100.0)) dparam = 0;
  di.assign(a.size(), 0), dt.assign(a.size(), 0);
  for (int side = 0; side < 2; ++side) {
    std::vector<double>& out = side == 0 ? di : dt;
    const std::vector<double>& y = side == 0 ? a : b;
    const std::vector<double>& other = side == 0 ? b : a;
    const std::vector<double>& nrm = side == 0 ? na : nb;
    for (int r = 0; r < N; ++r) {
      std::vector<double> dn(E, 0.0);
      for (int k = 0; k < N; ++k) {
        const double d = side == 0 ? dz[r * N + k] : dz[k * N + r];
        for (int e = 0; e < E; ++e) dn[e] += s * d * other[k * E + e];
      }
      double dot = 0;
      for (int e = 0; e < E; ++e) dot += dn[e] * y[r * E + e];
      for (int e = 0; e < E; ++e) out[r * E + e] = (dn[e] - y[r * E + e] * dot) / nrm[r];
    }
  }
  return loss;
}

struct Run {
  int version, N, E;
  void *img, *txt, *di, *dt, *loss;
  float *an, *bn, *inorm, *tnorm, *logits, *lse_row, *lse_col, *dz, *dn, *dloss, *param, *dparam;
  Run(int v, const std::vector<float>& ih, const std::vector<float>& th, float p, int n, int e)
      : version(v), N(n), E(e) {
    const bool bf = v == 2;
    auto up = [&](const std::vector<float>& h) -> void* {
      return bf ? static_cast<void*>(lab::to_device<__nv_bfloat16>(h)) : lab::to_device<float>(h);
    };
    auto alloc = [&](size_t c) -> void* {
      return bf ? static_cast<void*>(lab::device_alloc<__nv_bfloat16>(c))
                : lab::device_alloc<float>(c);
    };
    img = up(ih), txt = up(th), di = alloc(ih.size()), dt = alloc(th.size()), loss = alloc(1);
    an = lab::device_alloc<float>(ih.size()), bn = lab::device_alloc<float>(ih.size());
    inorm = lab::device_alloc<float>(N), tnorm = lab::device_alloc<float>(N);
    logits = lab::device_alloc<float>(static_cast<size_t>(N) * N);
    dz = lab::device_alloc<float>(static_cast<size_t>(N) * N);
    lse_row = lab::device_alloc<float>(N), lse_col = lab::device_alloc<float>(N);
    dn = lab::device_alloc<float>(ih.size());
    dloss = lab::to_device<float>({1.f});
    param = lab::to_device<float>({p});
    dparam = lab::device_alloc<float>(1);
  }
  void forward_backward() {
    const DType dtype = version == 2 ? DType::bf16 : DType::f32;
    cuda::clip_contrastive_loss_forward(loss, dtype, an, bn, inorm, tnorm, logits, lse_row, lse_col,
                                        img, txt, param, DType::f32, N, E, kEps);
    cuda::clip_contrastive_loss_backward(di, dt, dparam, dtype, dz, dn, an, bn, inorm, tnorm,
                                         logits, lse_row, lse_col, param, DType::f32, N, E, kEps,
                                         dloss, DType::f32);
  }
  std::vector<float> host(const void* d, size_t n) {
    return version == 2 ? lab::to_host(static_cast<const __nv_bfloat16*>(d), n)
                        : lab::to_host(static_cast<const float*>(d), n);
  }
};

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  const float p0 = std::log(1 / 0.07f);
  for (auto [N, E, p] :
       {std::tuple{64, 512, p0}, std::tuple{33, 7, 0.3f}, std::tuple{16, 64, 5.f}}) {
    std::vector<float> img = lab::random_floats(static_cast<size_t>(N) * E, 2.f, 3);
    std::vector<float> txt = lab::random_floats(static_cast<size_t>(N) * E, 1.f, 4);
    for (size_t k = 0; k < txt.size(); ++k) txt[k] += 0.3f * img[k];
    std::printf("correctness N=%d E=%d p=%.3f\n", N, E, p);
    for (int version = 1; version <= 2; ++version) {
      if (only && version != only) continue;
      std::vector<float> iv = img, tv = txt;
      if (version == 2)
        for (auto* v : {&iv, &tv})
          for (auto& e : *v) e = __bfloat162float(__float2bfloat16_rn(e));
      std::vector<double> rdi, rdt;
      double rdp = 0;
      const double rl = clip_cpu(rdi, rdt, rdp, iv, tv, p, N, E);
      Run r(version, iv, tv, p, N, E);
      r.forward_backward();
      const double tol = version == 2 ? 2e-2 : 1e-4;
      char what[64];
      std::snprintf(what, sizeof what, "v%d loss", version);
      ok &= lab::validate(what, r.host(r.loss, 1), {rl}, tol);
      std::snprintf(what, sizeof what, "v%d dimage", version);
      ok &= lab::validate(what, r.host(r.di, img.size()), rdi, tol);
      std::snprintf(what, sizeof what, "v%d dtext", version);
      ok &= lab::validate(what, r.host(r.dt, txt.size()), rdt, tol);
      std::snprintf(what, sizeof what, "v%d dscale", version);
      ok &= lab::validate(what, lab::to_host(r.dparam, 1), {rdp}, tol);
    }
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;
  std::printf("\n%-16s %2s | %9s %9s\n", "shape (N, E)", "v", "f+b us", "GB/s");
  for (auto [N, E] : {std::tuple{256, 512}, std::tuple{1024, 512}, std::tuple{4096, 768}}) {
    std::vector<float> img = lab::random_floats(static_cast<size_t>(N) * E, 2.f, 9);
    std::vector<float> txt = lab::random_floats(static_cast<size_t>(N) * E, 1.f, 10);
    for (int version = 1; version <= 2; ++version) {
      if (only && version != only) continue;
      Run r(version, img, txt, p0, N, E);
      const double elt = version == 2 ? 2 : 4;
      const double bytes = 6.0 * static_cast<double>(N) * E * elt + 4.0 * N * N * 4;
      float ms = lab::benchmark_ms(20, [&] { r.forward_backward(); });
      std::printf("%5d x %4d      %2d | %9.2f %9.1f\n", N, E, version, ms * 1e3, bytes / ms * 1e-6);
    }
  }
  return ok ? 0 : 1;
}
