/*
 * lab_attention.cu — kernel lab for fused multi-head attention on CLIP's packed qkv [B, T, 3C]
 * (forward + backward), in the style of llm.c's dev/cuda: CPU reference, numbered GPU versions,
 * correctness check of every version, timings at CLIP shapes with the L2 flushed before each
 * repeat.
 *
 * Build: with the project (cmake -DTGPT_CUDA=ON; target lab_attention), or standalone from the
 * repository root:
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. -DLAB_STANDALONE \
 *        bench/lab_attention.cu kernels/cuda/attention.cu base/dtype.cpp -o lab_attention
 * Run: ./lab_attention [--check-only] [version]
 *
 * Versions:
 *   1. naive: one thread per query row (online softmax over all keys, output row in registers);
 *      backward one thread per query row (dQ) and per key row (dK, dV), f32.
 *   2. engine kernel, f32 storage: 64x64 tiles in shared memory, online softmax, FFMA tile products
 *      (16x16 thread grid), dQ in its own deterministic pass (kernels/cuda/attention.cu).
 *   3. engine kernel, bf16 storage: the same tiles with WMMA tensor-core products (f32 accumulate).
 *
 * FLOPs counted as FlashAttention does: forward 4·B·T²·C (halved when causal), backward 2.5x.
 */
#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/attention.h"

using namespace tgpt;

// ----------------------------------------------------------------------------------------------
// CPU reference (double)

void attention_cpu(std::vector<double>& out, std::vector<double>& dqkv,
                   const std::vector<float>& qkv, const std::vector<float>& dout, int B, int T,
                   int NH, int D, bool causal) {
  const int C = NH * D, C3 = 3 * C;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  out.assign(static_cast<size_t>(B) * T * C, 0.0);
  dqkv.assign(static_cast<size_t>(B) * T * C3, 0.0);
  std::vector<double> P(static_cast<size_t>(T) * T);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h) {
      auto q = [&](int t, int d) {
        return static_cast<double>(qkv[(static_cast<size_t>(b) * T + t) * C3 + h * D + d]);
      };
      auto k = [&](int t, int d) { return q(t, d + C); };
      auto v = [&](int t, int d) { return q(t, d + 2 * C); };
      auto g = [&](int t, int d) {
        return static_cast<double>(dout[(static_cast<size_t>(b) * T + t) * C + h * D + d]);
      };
      for (int i = 0; i < T; ++i) {
        const int jend = causal ? i + 1 : T;
        double mx = -INFINITY;
        for (int j = 0; j < T; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += q(i, d) * k(j, d);
          P[static_cast<size_t>(i) * T + j] = j < jend ? s * scale : -INFINITY;
          if (j < jend) mx = std::max(mx, s * scale);
        }
        double z = 0;
        for (int j = 0; j < jend; ++j) z += std::exp(P[static_cast<size_t>(i) * T + j] - mx);
        for (int j = 0; j < T; ++j)
          P[static_cast<size_t>(i) * T + j] =
              j < jend ? std::exp(P[static_cast<size_t>(i) * T + j] - mx) / z : 0.0;
        for (int d = 0; d < D; ++d) {
          double o = 0;
          for (int j = 0; j < jend; ++j) o += P[static_cast<size_t>(i) * T + j] * v(j, d);
          out[(static_cast<size_t>(b) * T + i) * C + h * D + d] = o;
        }
      }
      for (int i = 0; i < T; ++i) {
        std::vector<double> dp(T);
        double rs = 0;
        for (int j = 0; j < T; ++j) {
          double s = 0;
          for (int d = 0; d < D; ++d) s += g(i, d) * v(j, d);
          dp[j] = s;
          rs += P[static_cast<size_t>(i) * T + j] * s;
        }
        for (int j = 0; j < T; ++j) {
          const double p = P[static_cast<size_t>(i) * T + j], ds = p * (dp[j] - rs) * scale;
          double* dq = &dqkv[(static_cast<size_t>(b) * T + i) * C3 + h * D];
          double* dk = &dqkv[(static_cast<size_t>(b) * T + j) * C3 + C + h * D];
          double* dv = dk + C;
          for (int d = 0; d < D; ++d) {
            dq[d] += ds * k(j, d);
            dk[d] += ds * q(i, d);
            dv[d] += p * g(i, d);
          }
        }
      }
    }
}

// ----------------------------------------------------------------------------------------------
// GPU kernels: version 1 (naive)

template <int D>
__global__ void attention_forward_kernel1(float* out, float* lse, const float* qkv, int B, int T,
                                          int NH, bool causal, float scale) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<long long>(B) * NH * T) return;
  const int i = static_cast<int>(idx % T), bh = static_cast<int>(idx / T), b = bh / NH, h = bh % NH;
  const int C = NH * D, C3 = 3 * C;
  const float* q = qkv + (static_cast<long long>(b) * T + i) * C3 + h * D;
  float qr[D], o[D];
  for (int d = 0; d < D; ++d) qr[d] = q[d] * scale, o[d] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int jend = causal ? i + 1 : T;
  for (int j = 0; j < jend; ++j) {
    const float* k = qkv + (static_cast<long long>(b) * T + j) * C3 + C + h * D;
    float s = 0.f;
    for (int d = 0; d < D; ++d) s += qr[d] * k[d];
    const float mn = fmaxf(m, s), a = expf(m - mn), p = expf(s - mn);
    l = l * a + p;
    for (int d = 0; d < D; ++d) o[d] = o[d] * a + p * k[C + d];
    m = mn;
  }
  float* orow = out + (static_cast<long long>(b) * T + i) * C + h * D;
  for (int d = 0; d < D; ++d) orow[d] = o[d] / l;
  lse[idx] = m + logf(l);
}

// dsum[bh*T+i] = dO_i · O_i
template <int D>
__global__ void attention_dsum_kernel1(float* dsum, const float* dout, const float* out, int B,
                                       int T, int NH) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<long long>(B) * NH * T) return;
  const int i = static_cast<int>(idx % T), bh = static_cast<int>(idx / T), b = bh / NH, h = bh % NH;
  const long long off = (static_cast<long long>(b) * T + i) * NH * D + h * D;
  float s = 0.f;
  for (int d = 0; d < D; ++d) s += dout[off + d] * out[off + d];
  dsum[idx] = s;
}

// One thread per query row (dQ) when KEY_ROWS is false, per key row (dK, dV) when true.
template <int D, bool KEY_ROWS>
__global__ void attention_backward_kernel1(float* dqkv, const float* dout, const float* qkv,
                                           const float* lse, const float* dsum, int B, int T,
                                           int NH, bool causal, float scale) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<long long>(B) * NH * T) return;
  const int r = static_cast<int>(idx % T), bh = static_cast<int>(idx / T), b = bh / NH, h = bh % NH;
  const int C = NH * D, C3 = 3 * C;
  auto row = [&](int t) { return qkv + (static_cast<long long>(b) * T + t) * C3 + h * D; };
  auto grow = [&](int t) { return dout + (static_cast<long long>(b) * T + t) * C + h * D; };
  float a1[D], a2[D];
  for (int d = 0; d < D; ++d) a1[d] = a2[d] = 0.f;
  const int lo = KEY_ROWS && causal ? r : 0, hi = !KEY_ROWS && causal ? r + 1 : T;
  for (int o = lo; o < hi; ++o) {
    const int i = KEY_ROWS ? o : r, j = KEY_ROWS ? r : o;  // query i, key j
    const float *q = row(i), *k = row(j) + C, *v = row(j) + 2 * C, *g = grow(i);
    float s = 0.f, dp = 0.f;
    for (int d = 0; d < D; ++d) s += q[d] * k[d], dp += g[d] * v[d];
    const float p = expf(s * scale - lse[static_cast<long long>(bh) * T + i]);
    const float ds = p * (dp - dsum[static_cast<long long>(bh) * T + i]) * scale;
    for (int d = 0; d < D; ++d) {
      if (KEY_ROWS) {
        a1[d] += ds * q[d];
        a2[d] += p * g[d];
      } else {
        a1[d] += ds * k[d];
      }
    }
  }
  float* dst = dqkv + (static_cast<long long>(b) * T + r) * C3 + h * D;
  for (int d = 0; d < D; ++d) {
    if (KEY_ROWS) {
      dst[C + d] = a1[d];
      dst[2 * C + d] = a2[d];
    } else {
      dst[d] = a1[d];
    }
  }
}

// ----------------------------------------------------------------------------------------------
// launchers: every version computes out, lse, then dqkv (dsum is scratch)

struct Bufs {
  void *qkv, *dout, *out, *dqkv;
  float *lse, *dsum;
};

void forward(int version, const Bufs& m, int B, int T, int NH, int D, bool causal) {
  const int C = NH * D;
  if (version == 1) {
    const long long rows = static_cast<long long>(B) * NH * T;
    attention_forward_kernel1<64><<<lab::ceil_div(rows, 128), 128, 0, cuda::stream()>>>(
        static_cast<float*>(m.out), m.lse, static_cast<const float*>(m.qkv), B, T, NH, causal,
        1.f / std::sqrt(static_cast<float>(D)));
    LAB_CHECK(cudaGetLastError());
  } else {
    cuda::attention_forward(m.out, m.lse, m.qkv, version == 2 ? DType::f32 : DType::bf16, B, T, C,
                            NH, causal);
  }
}

void backward(int version, const Bufs& m, int B, int T, int NH, int D, bool causal) {
  const int C = NH * D;
  if (version == 1) {
    const long long rows = static_cast<long long>(B) * NH * T;
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    cudaStream_t s = cuda::stream();
    attention_dsum_kernel1<64><<<lab::ceil_div(rows, 128), 128, 0, s>>>(
        m.dsum, static_cast<const float*>(m.dout), static_cast<const float*>(m.out), B, T, NH);
    attention_backward_kernel1<64, false><<<lab::ceil_div(rows, 128), 128, 0, s>>>(
        static_cast<float*>(m.dqkv), static_cast<const float*>(m.dout),
        static_cast<const float*>(m.qkv), m.lse, m.dsum, B, T, NH, causal, scale);
    attention_backward_kernel1<64, true><<<lab::ceil_div(rows, 128), 128, 0, s>>>(
        static_cast<float*>(m.dqkv), static_cast<const float*>(m.dout),
        static_cast<const float*>(m.qkv), m.lse, m.dsum, B, T, NH, causal, scale);
    LAB_CHECK(cudaGetLastError());
  } else {
    cuda::attention_backward(m.dqkv, m.dsum, m.dout, m.qkv, m.out, m.lse,
                             version == 2 ? DType::f32 : DType::bf16, B, T, C, NH, causal);
  }
}

Bufs make_bufs(int version, const std::vector<float>& qkv, const std::vector<float>& dout, int B,
               int T, int NH) {
  Bufs m;
  const size_t n3 = qkv.size(), n1 = dout.size(), nr = static_cast<size_t>(B) * NH * T;
  if (version == 3) {
    m.qkv = lab::to_device<__nv_bfloat16>(qkv);
    m.dout = lab::to_device<__nv_bfloat16>(dout);
    m.out = lab::device_alloc<__nv_bfloat16>(n1);
    m.dqkv = lab::device_alloc<__nv_bfloat16>(n3);
  } else {
    m.qkv = lab::to_device<float>(qkv);
    m.dout = lab::to_device<float>(dout);
    m.out = lab::device_alloc<float>(n1);
    m.dqkv = lab::device_alloc<float>(n3);
  }
  m.lse = lab::device_alloc<float>(nr);
  m.dsum = lab::device_alloc<float>(nr);
  return m;
}

void free_bufs(Bufs& m) {
  for (void* p :
       {m.qkv, m.dout, m.out, m.dqkv, static_cast<void*>(m.lse), static_cast<void*>(m.dsum)})
    LAB_CHECK(cudaFree(p));
}

std::vector<float> host_of(int version, const void* d, size_t n) {
  return version == 3 ? lab::to_host(static_cast<const __nv_bfloat16*>(d), n)
                      : lab::to_host(static_cast<const float*>(d), n);
}

// Rounds host data to bf16 so the CPU reference sees version 3's exact inputs.
std::vector<float> rounded(int version, std::vector<float> v) {
  if (version == 3)
    for (auto& x : v) x = __bfloat162float(__float2bfloat16_rn(x));
  return v;
}

bool check(int version, int B, int T, int NH, bool causal, uint64_t seed) {
  const int D = 64, C = NH * D;
  auto qkv = rounded(version, lab::random_floats(static_cast<size_t>(B) * T * 3 * C, 1.5f, seed));
  auto dout = rounded(version, lab::random_floats(static_cast<size_t>(B) * T * C, 1.f, seed + 1));
  std::vector<double> ref_out, ref_dqkv;
  attention_cpu(ref_out, ref_dqkv, qkv, dout, B, T, NH, D, causal);
  Bufs m = make_bufs(version, qkv, dout, B, T, NH);
  forward(version, m, B, T, NH, D, causal);
  backward(version, m, B, T, NH, D, causal);
  const double tol = version == 3 ? 3e-2 : 2e-5;
  char what[96];
  std::snprintf(what, sizeof what, "v%d T=%d %s out", version, T, causal ? "causal" : "full");
  bool ok = lab::validate(what, host_of(version, m.out, ref_out.size()), ref_out, tol);
  std::snprintf(what, sizeof what, "v%d T=%d %s dqkv", version, T, causal ? "causal" : "full");
  ok &= lab::validate(what, host_of(version, m.dqkv, ref_dqkv.size()), ref_dqkv, tol);
  free_bufs(m);
  return ok;
}

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  std::printf("correctness (B=2, heads=2, D=64) vs CPU f64\n");
  uint64_t seed = 1;
  for (int version = 1; version <= 3; ++version) {
    if (only && version != only) continue;
    for (int T : {1, 50, 77, 197, 257, 577})
      for (bool causal : {false, true}) ok &= check(version, 2, T, 2, causal, seed += 2);
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;

  struct Shape {
    const char* name;
    int B, T, NH;
    bool causal;
  };
  const Shape shapes[] = {
      {"text TGP-T step", 16, 77, 8, true}, {"text zero-shot", 256, 77, 8, true},
      {"ViT-B/32", 256, 50, 12, false},     {"ViT-B/16", 64, 197, 12, false},
      {"ViT-L/14", 32, 257, 16, false},     {"ViT-L/14@336", 8, 577, 16, false}};
  std::printf("\n%-16s %4s %4s %3s %2s | %9s %8s | %9s %8s\n", "shape", "B", "T", "H", "v",
              "fwd ms", "TFLOP/s", "f+b ms", "TFLOP/s");
  for (const Shape& s : shapes) {
    const int D = 64, C = s.NH * D;
    auto qkv = lab::random_floats(static_cast<size_t>(s.B) * s.T * 3 * C, 1.5f, 7);
    auto dout = lab::random_floats(static_cast<size_t>(s.B) * s.T * C, 1.f, 8);
    const double fwd_flops = 4.0 * s.B * s.T * s.T * C * (s.causal ? 0.5 : 1.0);
    for (int version = 1; version <= 3; ++version) {
      if (only && version != only) continue;
      Bufs m = make_bufs(version, qkv, dout, s.B, s.T, s.NH);
      const int reps = version == 1 ? 5 : 50;
      float tf = lab::benchmark_ms(reps, [&] { forward(version, m, s.B, s.T, s.NH, D, s.causal); });
      float tfb = lab::benchmark_ms(reps, [&] {
        forward(version, m, s.B, s.T, s.NH, D, s.causal);
        backward(version, m, s.B, s.T, s.NH, D, s.causal);
      });
      std::printf("%-16s %4d %4d %3d %2d | %9.4f %8.2f | %9.4f %8.2f\n", s.name, s.B, s.T, s.NH,
                  version, tf, fwd_flops / tf * 1e-9, tfb, 3.5 * fwd_flops / tfb * 1e-9);
      free_bufs(m);
    }
  }
  return ok ? 0 : 1;
}
