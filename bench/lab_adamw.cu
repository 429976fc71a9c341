/*
 * lab_adamw.cu — kernel lab for the AdamW step over a model's list of parameter tensors (torch
 * AdamW semantics, see kernels/cpu/adamw.h), in the style of llm.c's dev/cuda: CPU reference,
 * numbered versions, validation, L2-flushed timings in GB/s and % of the measured device copy
 * bandwidth.
 *
 * Build: with the project (cmake -DTGPT_CUDA=ON; target lab_adamw), or standalone from the
 * repository root (the engine's launcher takes scratch from its caching allocator, hence the
 * backend sources):
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. bench/lab_adamw.cu \
 *        kernels/cuda/adamw.cu base/cuda/cuda_backend.cu base/device.cpp base/dtype.cpp \
 *        -o lab_adamw
 * Run: ./lab_adamw [--check-only] [version]
 *
 * Versions:
 *   1. one launch per tensor: a plain elementwise kernel (one thread per element), f32.
 *   2. engine multi-tensor launch, f32 (kernels/cuda/adamw.cu): one kernel over all tensors,
 *      each block finds its tensor by binary search over the descriptors' first-block indices.
 *   3. the same launch for bf16 parameters and gradients with f32 master weights and moments.
 * Bytes counted per element: read param (master), grad, m, v; write param (master), m, v
 * (+ the bf16 copy in version 3): 28 bytes in every version.
 */
#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/adamw.h"

using namespace tgpt;

struct Hyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, wd = 0.01;
  int64_t step = 3;
};

// ----------------------------------------------------------------------------------------------
// CPU reference (double), kernels/cpu/adamw.h's update in torch's order

void adamw_cpu(std::vector<double>& p, std::vector<double>& m, std::vector<double>& v,
               const std::vector<float>& g, const Hyper& h) {
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  for (size_t i = 0; i < p.size(); ++i) {
    const double pi = p[i] * (1.0 - h.lr * h.wd);
    m[i] = m[i] * h.beta1 + (1.0 - h.beta1) * g[i];
    v[i] = v[i] * h.beta2 + (1.0 - h.beta2) * g[i] * g[i];
    p[i] = pi - (h.lr / bc1) * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + h.eps);
  }
}

// ----------------------------------------------------------------------------------------------
// GPU kernel: version 1 (one launch per tensor, f32)

__global__ void adamw_kernel1(float* p, const float* g, float* m, float* v, long long n,
                              float decay, float b1, float b2, float neg_step_size, float bc2_sqrt,
                              float eps) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float gi = g[i];
  const float mi = fmaf(1.f - b1, gi, m[i] * b1);
  const float vi = fmaf((1.f - b2) * gi, gi, v[i] * b2);
  p[i] = p[i] * decay + (neg_step_size * mi) / (sqrtf(vi) / bc2_sqrt + eps);
  m[i] = mi;
  v[i] = vi;
}

// ----------------------------------------------------------------------------------------------
// buffers: one allocation per role, tensors carved out by offset

struct Bufs {
  float *master, *m, *v;
  void *grad, *param_lowp;  // grad f32 (versions 1-2) or bf16 (3); param_lowp bf16 (3) or null
  std::vector<int64_t> sizes, offsets;
};

Bufs make_bufs(int version, const std::vector<int64_t>& sizes, const std::vector<float>& p,
               const std::vector<float>& g, const std::vector<float>& m,
               const std::vector<float>& v) {
  Bufs b;
  b.sizes = sizes;
  int64_t off = 0;
  for (int64_t s : sizes) b.offsets.push_back(off), off += s;
  b.master = lab::to_device<float>(p);
  b.m = lab::to_device<float>(m);
  b.v = lab::to_device<float>(v);
  if (version == 3) {
    b.grad = lab::to_device<__nv_bfloat16>(g);
    b.param_lowp = lab::to_device<__nv_bfloat16>(p);
  } else {
    b.grad = lab::to_device<float>(g);
    b.param_lowp = nullptr;
  }
  return b;
}
void free_bufs(Bufs& b) {
  for (void* q : {static_cast<void*>(b.master), static_cast<void*>(b.m), static_cast<void*>(b.v),
                  b.grad, b.param_lowp})
    if (q) LAB_CHECK(cudaFree(q));
}

void step(int version, const Bufs& b, const Hyper& h) {
  if (version == 1) {
    const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
    const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
    for (size_t k = 0; k < b.sizes.size(); ++k) {
      const int64_t o = b.offsets[k], n = b.sizes[k];
      adamw_kernel1<<<lab::ceil_div(n, 256), 256, 0, cuda::stream()>>>(
          b.master + o, static_cast<const float*>(b.grad) + o, b.m + o, b.v + o, n,
          static_cast<float>(1.0 - h.lr * h.wd), static_cast<float>(h.beta1),
          static_cast<float>(h.beta2), static_cast<float>(-(h.lr / bc1)),
          static_cast<float>(std::sqrt(bc2)), static_cast<float>(h.eps));
    }
    LAB_CHECK(cudaGetLastError());
    return;
  }
  std::vector<cuda::AdamWTensor> ts;
  for (size_t k = 0; k < b.sizes.size(); ++k) {
    const int64_t o = b.offsets[k];
    cuda::AdamWTensor t;
    t.master = b.master + o;
    t.exp_avg = b.m + o;
    t.exp_avg_sq = b.v + o;
    t.n = b.sizes[k];
    t.step = h.step;
    if (version == 3) {
      t.grad = static_cast<const __nv_bfloat16*>(b.grad) + o;
      t.param_lowp = static_cast<__nv_bfloat16*>(b.param_lowp) + o;
      t.grad_dtype = DType::bf16;
    } else {
      t.grad = static_cast<const float*>(b.grad) + o;
      t.grad_dtype = DType::f32;
    }
    ts.push_back(t);
  }
  cuda::adamw_multi_tensor(ts, h.lr, h.beta1, h.beta2, h.eps, h.wd);
}

// Host data for a list of tensor sizes: params, grads (rounded to bf16 for version 3), moments.
struct Host {
  std::vector<float> p, g, m, v;
};
Host make_host(int version, int64_t total, uint64_t seed) {
  Host hst;
  hst.p = lab::random_floats(total, 0.05f, seed);
  hst.g = lab::random_floats(total, 0.01f, seed + 1);
  hst.m = lab::random_floats(total, 0.001f, seed + 2);
  hst.v = lab::random_floats(total, 1e-4f, seed + 3);
  for (auto& x : hst.v) x = x * x;  // second moments are non-negative
  if (version == 3)
    for (auto& x : hst.g) x = __bfloat162float(__float2bfloat16_rn(x));
  return hst;
}

bool check(int version, const std::vector<int64_t>& sizes, uint64_t seed) {
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  Host hst = make_host(version, total, seed);
  Hyper h;
  std::vector<double> p(hst.p.begin(), hst.p.end()), m(hst.m.begin(), hst.m.end()),
      v(hst.v.begin(), hst.v.end());
  adamw_cpu(p, m, v, hst.g, h);
  Bufs b = make_bufs(version, sizes, hst.p, hst.g, hst.m, hst.v);
  step(version, b, h);
  char what[96];
  bool ok = true;
  std::snprintf(what, sizeof what, "v%d %zu tensors param", version, sizes.size());
  ok &= lab::validate(what, lab::to_host(b.master, total), p, 1e-6);
  std::snprintf(what, sizeof what, "v%d %zu tensors exp_avg", version, sizes.size());
  ok &= lab::validate(what, lab::to_host(b.m, total), m, 1e-6);
  std::snprintf(what, sizeof what, "v%d %zu tensors exp_avg_sq", version, sizes.size());
  ok &= lab::validate(what, lab::to_host(b.v, total), v, 1e-6);
  if (version == 3) {
    std::snprintf(what, sizeof what, "v%d %zu tensors bf16 param", version, sizes.size());
    ok &= lab::validate(what, lab::to_host(static_cast<const __nv_bfloat16*>(b.param_lowp), total),
                        p, 1e-2);
  }
  free_bufs(b);
  return ok;
}

// The parameter list of a pre-LN transformer: per layer ln1 (w, b), qkv (w, b), proj (w, b),
// ln2 (w, b), fc1 (w, b), fc2 (w, b).
std::vector<int64_t> transformer_sizes(int layers, int64_t C) {
  std::vector<int64_t> s;
  for (int l = 0; l < layers; ++l)
    for (int64_t n : {C, C, 3 * C * C, 3 * C, C * C, C, C, C, 4 * C * C, 4 * C, 4 * C * C, C})
      s.push_back(n);
  return s;
}

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  std::printf("correctness vs CPU f64\n");
  uint64_t seed = 1;
  for (int version = 1; version <= 3; ++version) {
    if (only && version != only) continue;
    ok &= check(version, {1}, seed += 4);
    ok &= check(version, {3, 1025, 1, 4096, 77}, seed += 4);
    ok &= check(version, transformer_sizes(2, 64), seed += 4);
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;

  std::printf("device copy bandwidth: %.0f GB/s (read + write)\n", lab::copy_bandwidth_gbs());
  struct Config {
    const char* name;
    std::vector<int64_t> sizes;
  };
  const Config configs[] = {
      {"TGP-T prompts (4 x 16x512)", {16 * 512, 16 * 512, 16 * 512, 16 * 512}},
      {"text tower (12 x 512)", transformer_sizes(12, 512)},
      {"ViT-B/16 tower (12 x 768)", transformer_sizes(12, 768)},
      {"500 small (768 each)", std::vector<int64_t>(500, 768)}};
  std::printf("\n%-28s %7s %10s %2s | %9s %7s %5s\n", "parameters", "tensors", "elements", "v",
              "step us", "GB/s", "%cp");
  for (const Config& c : configs) {
    int64_t total = 0;
    for (int64_t s : c.sizes) total += s;
    const Host hst = make_host(1, total, 7);  // version 3 uploads the gradients as bf16
    for (int version = 1; version <= 3; ++version) {
      if (only && version != only) continue;
      Bufs b = make_bufs(version, c.sizes, hst.p, hst.g, hst.m, hst.v);
      Hyper h;
      const float ms = lab::benchmark_ms(20, [&] { step(version, b, h); });
      const double bytes = 28.0 * static_cast<double>(total);
      std::printf("%-28s %7zu %10lld %2d | %9.1f %7.0f %5.1f\n", c.name, c.sizes.size(),
                  static_cast<long long>(total), version, ms * 1e3, lab::gbs_of(bytes, ms),
                  lab::pct_of_copy(bytes, ms));
      free_bufs(b);
    }
  }
  return ok ? 0 : 1;
}
