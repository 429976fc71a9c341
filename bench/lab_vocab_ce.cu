/*
 * lab_vocab_ce.cu — kernel lab for the vocabulary cross-entropy of TGP-T's text supervision:
 * loss = cross_entropy(hidden [N, W] @ Eᵀ, target, ls = 0.1, ignore -100), E [V, W] frozen, and
 * dhidden, in the style of llm.c's dev/cuda (CPU reference, numbered versions, validation, L2
 * flushed before every timed repeat).
 *
 * Build: with the project (target lab_vocab_ce), or standalone from the repository root:
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. -DLAB_STANDALONE \
 *        bench/lab_vocab_ce.cu kernels/cuda/vocab_ce.cu base/dtype.cpp -lcublas -o lab_vocab_ce
 * Run: ./lab_vocab_ce [--check-only] [version]
 *
 * Versions:
 *   1. materialised (what matmul + cross_entropy does): cuBLAS logits [N, V] f32, one fused
 *      softmax-CE kernel per row writing the loss and dlogits in place (llm.c's fused
 *      classifier), cuBLAS dhidden = dlogits E. Memory N·V·4 bytes.
 *   2. engine, f32 (kernels/cuda/vocab_ce.cu): vocabulary chunks, online log-sum-exp, gradient
 *      accumulated in the same pass (acc += exp(x - m) E_chunk, rescaled when the max grows);
 *      2 GEMMs over V like version 1 but no [N, V] buffer and no extra passes over it.
 *   3. engine, bf16 inputs (tensor-core GEMMs, f32 logits and accumulation).
 */
#include <cublas_v2.h>

#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/vocab_ce.h"

using namespace tgpt;

constexpr float kLS = 0.1f;
constexpr int64_t kIgnore = -100;

// ----------------------------------------------------------------------------------------------
// CPU reference (double): loss and dhidden for upstream gradient 1.

double vocab_ce_cpu(std::vector<double>& dh, const std::vector<float>& h,
                    const std::vector<float>& E, const std::vector<int64_t>& t, int N, int W,
                    int V) {
  dh.assign(static_cast<size_t>(N) * W, 0.0);
  std::vector<double> x(V);
  double total = 0;
  int count = 0;
  for (int n = 0; n < N; ++n) count += t[n] != kIgnore;
  for (int n = 0; n < N; ++n) {
    if (t[n] == kIgnore) continue;
    double mx = -INFINITY, sx = 0;
    for (int v = 0; v < V; ++v) {
      double s = 0;
      for (int w = 0; w < W; ++w)
        s += static_cast<double>(h[static_cast<size_t>(n) * W + w]) *
             E[static_cast<size_t>(v) * W + w];
      x[v] = s, mx = std::max(mx, s), sx += s;
    }
    double z = 0;
    for (int v = 0; v < V; ++v) z += std::exp(x[v] - mx);
    const double lse = mx + std::log(z);
    total += (1 - kLS) * (lse - x[t[n]]) + kLS * (lse - sx / V);
    for (int v = 0; v < V; ++v) {
      const double d = (std::exp(x[v] - lse) - kLS / V - (v == t[n] ? 1 - kLS : 0)) / count;
      for (int w = 0; w < W; ++w)
        dh[static_cast<size_t>(n) * W + w] += d * E[static_cast<size_t>(v) * W + w];
    }
  }
  return total / count;
}

// ----------------------------------------------------------------------------------------------
// version 1: materialised logits

__global__ void ce_fused_kernel1(float* logits, float* row_loss, const int64_t* target, int V,
                                 float inv_count) {
  const int n = blockIdx.x;
  float* x = logits + static_cast<size_t>(n) * V;
  const int64_t t = target[n];
  __shared__ float sh[32];
  auto reduce = [&](float v, bool is_max) {
    for (int o = 16; o > 0; o >>= 1) {
      const float u = __shfl_xor_sync(0xffffffffu, v, o);
      v = is_max ? fmaxf(v, u) : v + u;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (threadIdx.x & 31) < (blockDim.x >> 5) ? sh[threadIdx.x & 31] : (is_max ? -INFINITY : 0.f);
    for (int o = 16; o > 0; o >>= 1) {
      const float u = __shfl_xor_sync(0xffffffffu, v, o);
      v = is_max ? fmaxf(v, u) : v + u;
    }
    return v;
  };
  if (t == kIgnore) {
    for (int v = threadIdx.x; v < V; v += blockDim.x) x[v] = 0.f;
    if (threadIdx.x == 0) row_loss[n] = 0.f;
    return;
  }
  float mx = -INFINITY, sx = 0.f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, x[v]), sx += x[v];
  mx = reduce(mx, true);
  sx = reduce(sx, false);
  float se = 0.f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) se += expf(x[v] - mx);
  se = reduce(se, false);
  const float lse = mx + logf(se), xt = x[t];
  __syncthreads();  // everyone has read x[t] before it is overwritten
  if (threadIdx.x == 0) row_loss[n] = (1 - kLS) * (lse - xt) + kLS * (lse - sx / V);
  for (int v = threadIdx.x; v < V; v += blockDim.x)
    x[v] = (expf(x[v] - lse) - kLS / V - (v == t ? 1 - kLS : 0.f)) * inv_count;
}

__global__ void mean_kernel1(float* loss, const float* row_loss, int N, float inv_count) {
  if (threadIdx.x != 0) return;
  float s = 0;
  for (int n = 0; n < N; ++n) s += row_loss[n];
  *loss = s * inv_count;
}

// ----------------------------------------------------------------------------------------------

struct Problem {
  int N, W, V;
  int count;
  std::vector<float> h, E;
  std::vector<int64_t> t;
};

Problem make_problem(int N, int W, int V, uint64_t seed) {
  Problem p{N,
            W,
            V,
            0,
            lab::random_floats(static_cast<size_t>(N) * W, 0.5f, seed),
            lab::random_floats(static_cast<size_t>(V) * W, 0.05f, seed + 1),
            {}};
  std::mt19937_64 rng(seed + 2);
  for (int n = 0; n < N; ++n) {
    p.t.push_back(rng() % 10 < 3 ? kIgnore : static_cast<int64_t>(rng() % V));
    p.count += p.t.back() != kIgnore;
  }
  return p;
}

struct Run {
  int version;
  const Problem& p;
  void *h, *E, *dh;
  int64_t* t;
  float* loss;  // f32 [1] (v1) ; engine writes the input dtype
  void* loss_typed;
  // v1
  float *logits = nullptr, *row_loss = nullptr;
  cublasHandle_t handle = nullptr;
  // engine
  cuda::VocabCeForwardArgs a;
  float* dloss = nullptr;
  size_t workspace = 0;

  Run(int v, const Problem& pr) : version(v), p(pr) {
    const bool bf = version == 3;
    h = bf ? static_cast<void*>(lab::to_device<__nv_bfloat16>(p.h)) : lab::to_device<float>(p.h);
    E = bf ? static_cast<void*>(lab::to_device<__nv_bfloat16>(p.E)) : lab::to_device<float>(p.E);
    dh = bf ? static_cast<void*>(lab::device_alloc<__nv_bfloat16>(p.h.size()))
            : lab::device_alloc<float>(p.h.size());
    t = lab::device_alloc<int64_t>(p.N);
    lab::upload(t, p.t.data(), p.N * sizeof(int64_t));
    loss = lab::device_alloc<float>(1);
    loss_typed = bf ? static_cast<void*>(lab::device_alloc<__nv_bfloat16>(1)) : loss;
    const size_t N = p.N, W = p.W;
    if (version == 1) {
      logits = lab::device_alloc<float>(N * p.V);
      row_loss = lab::device_alloc<float>(N);
      workspace = N * p.V * 4;
      if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) std::exit(3);
      cublasSetStream(handle, cuda::stream());
      return;
    }
    int64_t chunk = std::max<int64_t>(256, ((int64_t(1) << 22) / p.N + 255) / 256 * 256);
    chunk = std::min<int64_t>(chunk, p.V);
    a.hidden = h, a.embedding = E, a.target = t;
    a.dtype = bf ? DType::bf16 : DType::f32;
    a.N = p.N, a.W = p.W, a.V = p.V, a.chunk = chunk;
    a.label_smoothing = kLS, a.ignore_index = kIgnore, a.count = p.count;
    a.logits = lab::device_alloc<float>(N * chunk);
    a.probs = bf ? static_cast<void*>(lab::device_alloc<__nv_bfloat16>(N * chunk)) : nullptr;
    a.row_max = lab::device_alloc<float>(N), a.row_sum = lab::device_alloc<float>(N);
    a.row_sumx = lab::device_alloc<double>(N), a.row_xt = lab::device_alloc<float>(N);
    a.row_loss = lab::device_alloc<float>(N);
    a.colsum = lab::device_alloc<float>(W);
    a.colsum_partial = lab::device_alloc<float>(cuda::kVocabColsumSplits * W);
    a.loss = loss_typed;
    a.grad_dir = lab::device_alloc<float>(N * W);
    dloss = lab::to_device<float>({1.f});
    workspace =
        N * chunk * (bf ? 6 : 4) + N * W * 4 + N * 24 + W * 4 * (1 + cuda::kVocabColsumSplits);
  }

  void forward_backward() {
    if (version == 1) {
      const float one = 1.f, zero = 0.f;
      // logits (col-major [V, N]) = Eᵀ-view · h ; dh (col-major [W, N]) = E-view · dlogits
      cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, p.V, p.N, p.W, &one, static_cast<float*>(E),
                  p.W, static_cast<float*>(h), p.W, &zero, logits, p.V);
      ce_fused_kernel1<<<p.N, 512, 0, cuda::stream()>>>(logits, row_loss, t, p.V, 1.f / p.count);
      mean_kernel1<<<1, 32, 0, cuda::stream()>>>(loss, row_loss, p.N, 1.f / p.count);
      cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, p.W, p.N, p.V, &one, static_cast<float*>(E),
                  p.W, logits, p.V, &zero, static_cast<float*>(dh), p.W);
      LAB_CHECK(cudaGetLastError());
      return;
    }
    cuda::vocab_ce_forward(a);
    cuda::vocab_ce_backward(dh, a.dtype, a.grad_dir, dloss, DType::f32, p.N, p.W, p.count);
  }

  float loss_value() {
    return version == 3 ? lab::to_host(static_cast<__nv_bfloat16*>(loss_typed), 1)[0]
                        : lab::to_host(loss, 1)[0];
  }
  std::vector<float> dh_host() {
    return version == 3 ? lab::to_host(static_cast<__nv_bfloat16*>(dh), p.h.size())
                        : lab::to_host(static_cast<float*>(dh), p.h.size());
  }
};

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  for (auto [N, W, V] :
       {std::tuple{8, 64, 3000}, std::tuple{1, 37, 999}, std::tuple{33, 128, 20000}}) {
    Problem p = make_problem(N, W, V, 11);
    std::vector<double> ref_dh;
    const double ref_loss = vocab_ce_cpu(ref_dh, p.h, p.E, p.t, N, W, V);
    std::printf("correctness N=%d W=%d V=%d (loss %.6f)\n", N, W, V, ref_loss);
    for (int version = 1; version <= 3; ++version) {
      if (only && version != only) continue;
      Problem q = p;
      if (version == 3)  // the reference sees version 3's bf16 inputs
        for (auto* v : {&q.h, &q.E})
          for (auto& x : *v) x = __bfloat162float(__float2bfloat16_rn(x));
      std::vector<double> rdh = ref_dh;
      double rl = ref_loss;
      if (version == 3) rl = vocab_ce_cpu(rdh, q.h, q.E, q.t, N, W, V);
      Run r(version, q);
      r.forward_backward();
      const double tol = version == 3 ? 2e-2 : 1e-5;
      char what[64];
      std::snprintf(what, sizeof what, "v%d loss", version);
      ok &= lab::validate(what, {r.loss_value()}, {rl}, tol);
      std::snprintf(what, sizeof what, "v%d dhidden", version);
      ok &= lab::validate(what, r.dh_host(), rdh, tol);
    }
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;

  std::printf("\n%-22s %2s | %9s %9s %12s\n", "shape (N, W, V)", "v", "f+b ms", "TFLOP/s",
              "workspace MB");
  for (auto [N, W, V] : {std::tuple{768, 512, 49408}, std::tuple{256, 512, 49408}}) {
    Problem p = make_problem(N, W, V, 5);
    const double flops = 2 * 2.0 * N * W * static_cast<double>(V);
    for (int version = 1; version <= 3; ++version) {
      if (only && version != only) continue;
      Run r(version, p);
      float ms = lab::benchmark_ms(30, [&] { r.forward_backward(); });
      std::printf("%5d x %3d x %6d    %2d | %9.4f %9.2f %12.1f\n", N, W, V, version, ms,
                  flops / ms * 1e-9, r.workspace / 1e6);
    }
  }
  return ok ? 0 : 1;
}
