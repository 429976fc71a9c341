/*
 * test_cuda_attention.cpp — the CUDA attention kernels (kernels/cuda/attention.cu) through the
 * engine op, against the CPU op in f64 on the same input values:
 *   f32: output and dQ, dK, dV within 1e-5 (output) / 2e-5 (gradients) of the largest reference
 *        value, at T = 1, 50, 77, 197, 257, 577, causal and not, B x heads from 1 to 512;
 *   bf16 and f16: FlashAttention's rule (fused_test_util.h) against a low-precision reference
 *        computed here: attention the way PyTorch's eager bf16 ops do it (f32 accumulation in each
 *        product, S, P, O, dP, dS, dQ, dK, dV each rounded to the 16-bit type). dQ and dK get one
 *        more term, derived from the rounding the kernel does and the eager reference does not:
 *        the kernel (like FlashAttention-2 and PyTorch's fused SDPA backward) forms the softmax
 *        row term as dsum = rowsum(dO ∘ O) instead of rowsum(P ∘ dP); equal in exact arithmetic,
 *        but dS = P ∘ (dP - dsum) then carries the f32 rounding of two length-D dot products.
 *        Where dS is exactly 0 in the reference (T = 1: P = 1, dP = dsum) that residue is all
 *        the kernel's dQ and dK hold, so no bound relative to the reference can hold it; its
 *        size, bounded from the data in lowp_reference, is added to the bound, times
 *        FlashAttention's 2;
 *   head dims 80 and 128; a misaligned input view; bit-identical results run to run (no atomics);
 *   unsupported head dim and dtype errors.
 * Every output is allocated from blocks poisoned with NaN first, so an unwritten element fails.
 * Skips without a CUDA device.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/cuda/fused_test_util.h"

using namespace tgpt;
using namespace tgpt::test;

namespace {

struct Case {
  int64_t B, T, NH, D;
  bool causal;
};

std::string name_of(const Case& c, DType dt) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s B%lld T%lld H%lld D%lld %s", dtype_name(dt),
                static_cast<long long>(c.B), static_cast<long long>(c.T),
                static_cast<long long>(c.NH), static_cast<long long>(c.D),
                c.causal ? "causal" : "full");
  return buf;
}

struct Result {
  std::vector<double> out, dq, dk, dv;
  // Low-precision reference only: worst-case size of the kernel's f32 rounding residue in dQ and
  // dK from its row term dsum = rowsum(dO ∘ O) (see the file comment and lowp_reference).
  double dq_residue = 0, dk_residue = 0;
};

// Splits dqkv [B, T, 3C] (host values) into its Q, K and V column blocks.
void split_dqkv(const std::vector<double>& dqkv, int64_t BT, int64_t C, Result& r) {
  r.dq.clear(), r.dk.clear(), r.dv.clear();
  for (int64_t i = 0; i < BT; ++i)
    for (int64_t c = 0; c < 3 * C; ++c) {
      const double v = dqkv[static_cast<size_t>(i * 3 * C + c)];
      (c < C ? r.dq : c < 2 * C ? r.dk : r.dv).push_back(v);
    }
}

// The engine op on `device` in dtype dt: output and the gradient for upstream g.
Result run_op(const Tensor& qkv_host, const Tensor& g_host, int64_t NH, bool causal, DType dt,
              Device device) {
  const int64_t B = qkv_host.size(0), T = qkv_host.size(1), C = qkv_host.size(2) / 3;
  Tensor qkv = qkv_host.to(dt).to(device).set_requires_grad(true);
  Tensor g = g_host.to(dt).to(device);
  if (device == Device::CUDA)
    poison_cuda_cache({static_cast<size_t>(B * T * C) * dtype_size(dt),
                       static_cast<size_t>(B * T * 3 * C) * dtype_size(dt),
                       static_cast<size_t>(B * NH * T) * 4});
  Tensor out = attention(qkv, static_cast<int>(NH), causal);
  EXPECT_EQ(out.device(), device);
  EXPECT_EQ(out.dtype(), dt);
  out.backward(g);
  Result r;
  r.out = out.to_double_vector();
  split_dqkv(qkv.grad().to_double_vector(), B * T, C, r);
  return r;
}

// Attention as PyTorch's eager ops compute it in a 16-bit type (round = rounding to that type):
// every product accumulates in f32, every intermediate tensor is rounded.
// Also the bounds on the kernel's residue in dQ and dK: the kernel's dP[i, j] = Σ_d dO[i,d] V[j,d]
// and dsum[i] = Σ_d dO[i,d] O[i,d] are f32 sums of D products, each off by about
// γ Σ_d |dO[i,d]| |V[j,d]| (resp. |O[i,d]|) with γ = √D · 2^-23: Higham and Mary's probabilistic
// bound λ √D u (u = 2^-24, λ = 2) applied to the sum of absolute products, which is several times
// the partial sums the rounding acts on (the worst case D · u would double the 16-bit bounds for
// T > 1 for nothing). With E[i,j] = γ Σ_d |dO[i,d]| (|V[j,d]| + |O[i,d]|)
//   |residue of dQ[i,d]| <= scale Σ_j P[i,j] E[i,j] |K[j,d]|,
//   |residue of dK[j,d]| <= scale Σ_i P[i,j] E[i,j] |Q[i,d]|.
Result lowp_reference(const std::vector<double>& qkv, const std::vector<double>& g, int64_t B,
                      int64_t T, int64_t NH, int64_t D, bool causal,
                      const std::function<float(float)>& round) {
  const int64_t C = NH * D, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  std::vector<double> out(static_cast<size_t>(B * T * C)), dqkv(static_cast<size_t>(B * T * C3));
  auto Q = [&](int64_t b, int64_t t, int64_t h, int64_t d) {
    return static_cast<float>(qkv[static_cast<size_t>((b * T + t) * C3 + h * D + d)]);
  };
  auto K = [&](int64_t b, int64_t t, int64_t h, int64_t d) { return Q(b, t, h + NH, d); };
  auto V = [&](int64_t b, int64_t t, int64_t h, int64_t d) { return Q(b, t, h + 2 * NH, d); };
  auto G = [&](int64_t b, int64_t t, int64_t h, int64_t d) {
    return static_cast<float>(g[static_cast<size_t>((b * T + t) * C + h * D + d)]);
  };
  std::vector<float> P(static_cast<size_t>(T * T)), dS(static_cast<size_t>(T * T));
  std::vector<double> E(static_cast<size_t>(T * T));
  const double gamma = std::sqrt(static_cast<double>(D)) * 0x1p-23;
  double dq_residue = 0, dk_residue = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h) {
      std::vector<float> O(static_cast<size_t>(T * D));
      for (int64_t i = 0; i < T; ++i) {
        const int64_t jend = causal ? i + 1 : T;
        std::vector<float> s(static_cast<size_t>(jend));
        float mx = -INFINITY;
        for (int64_t j = 0; j < jend; ++j) {
          float acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += Q(b, i, h, d) * K(b, j, h, d);
          s[j] = round(acc * scale);
          mx = std::max(mx, s[j]);
        }
        float z = 0;
        for (int64_t j = 0; j < jend; ++j) z += std::exp(s[j] - mx);
        for (int64_t j = 0; j < T; ++j)
          P[i * T + j] = j < jend ? round(std::exp(s[j] - mx) / z) : 0.f;
        for (int64_t d = 0; d < D; ++d) {
          float acc = 0;
          for (int64_t j = 0; j < jend; ++j) acc += P[i * T + j] * V(b, j, h, d);
          O[i * D + d] = round(acc);
          out[static_cast<size_t>((b * T + i) * C + h * D + d)] = O[i * D + d];
        }
      }
      // backward: dP = G Vᵀ, dS = P (dP - rowsum(P dP)), dV = Pᵀ G, dQ = dS K s, dK = dSᵀ Q s
      for (int64_t i = 0; i < T; ++i) {
        std::vector<float> dp(static_cast<size_t>(T), 0.f);
        float rs = 0;
        for (int64_t j = 0; j < T; ++j) {
          if (causal && j > i) continue;
          float acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += G(b, i, h, d) * V(b, j, h, d);
          dp[j] = round(acc);
          rs += P[i * T + j] * dp[j];
        }
        for (int64_t j = 0; j < T; ++j) dS[i * T + j] = round(P[i * T + j] * (dp[j] - rs));
        for (int64_t j = 0; j < T; ++j) {
          double e = 0;
          for (int64_t d = 0; d < D; ++d)
            e += std::abs(G(b, i, h, d)) * (std::abs(V(b, j, h, d)) + std::abs(O[i * D + d]));
          E[i * T + j] = gamma * e;
        }
      }
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {
          float aq = 0, ak = 0, av = 0;
          double rq = 0, rk = 0;
          for (int64_t u = 0; u < T; ++u) {
            aq += dS[t * T + u] * K(b, u, h, d);
            ak += dS[u * T + t] * Q(b, u, h, d);
            av += P[u * T + t] * G(b, u, h, d);
            rq += P[t * T + u] * E[t * T + u] * std::abs(K(b, u, h, d));
            rk += P[u * T + t] * E[u * T + t] * std::abs(Q(b, u, h, d));
          }
          dq_residue = std::max(dq_residue, scale * rq);
          dk_residue = std::max(dk_residue, scale * rk);
          double* row = &dqkv[static_cast<size_t>((b * T + t) * C3 + h * D + d)];
          row[0] = round(aq * scale);
          row[C] = round(ak * scale);
          row[2 * C] = round(av);
        }
    }
  Result r;
  r.out = out;
  split_dqkv(dqkv, B * T, C, r);
  r.dq_residue = dq_residue;
  r.dk_residue = dk_residue;
  return r;
}

// Random qkv [B, T, 3C] and upstream gradient [B, T, C], rounded to dt's values (so the f64
// reference sees exactly the GPU's inputs).
void make_inputs(Generator& gen, const Case& c, DType dt, Tensor& qkv, Tensor& g) {
  const int64_t C = c.NH * c.D;
  qkv = gen.randn({c.B, c.T, 3 * C}, DType::f32, 1.5).to(dt).to(DType::f64);
  g = gen.randn({c.B, c.T, C}, DType::f32).to(dt).to(DType::f64);
}

// The largest reference gradient entry over dQ, dK and dV: the error scale of each of them (at
// T = 1, dQ and dK are exactly 0 while dV is not).
double grad_scale(const Result& ref) {
  return std::max({max_abs(ref.dq), max_abs(ref.dk), max_abs(ref.dv)});
}

void check_f32(const Case& c, uint64_t seed) {
  Generator gen(seed);
  Tensor qkv, g;
  make_inputs(gen, c, DType::f32, qkv, g);
  const std::string what = name_of(c, DType::f32);
  Result ref = run_op(qkv, g, c.NH, c.causal, DType::f64, Device::CPU);
  Result gpu = run_op(qkv, g, c.NH, c.causal, DType::f32, Device::CUDA);
  const double gs = grad_scale(ref);
  expect_rel_to_max(gpu.out, ref.out, 1e-5, what + " out");
  expect_rel_to_max(gpu.dq, ref.dq, 2e-5, what + " dq", gs);
  expect_rel_to_max(gpu.dk, ref.dk, 2e-5, what + " dk", gs);
  expect_rel_to_max(gpu.dv, ref.dv, 2e-5, what + " dv", gs);
}

void check_lowp(const Case& c, DType dt, uint64_t seed) {
  Generator gen(seed);
  Tensor qkv, g;
  make_inputs(gen, c, dt, qkv, g);
  const std::string what = name_of(c, dt);
  Result ref = run_op(qkv, g, c.NH, c.causal, DType::f64, Device::CPU);
  Result gpu = run_op(qkv, g, c.NH, c.causal, dt, Device::CUDA);
  auto round = dt == DType::bf16
                   ? std::function<float(float)>(round_bf16)
                   : std::function<float(float)>([](float x) { return f16_to_f32(f32_to_f16(x)); });
  Result lowp = lowp_reference(qkv.to_double_vector(), g.to_double_vector(), c.B, c.T, c.NH, c.D,
                               c.causal, round);
  const double gs = grad_scale(ref);
  expect_within_lowp(gpu.out, lowp.out, ref.out, what + " out");
  expect_within_lowp(gpu.dq, lowp.dq, ref.dq, what + " dq", gs, 2 * lowp.dq_residue);
  expect_within_lowp(gpu.dk, lowp.dk, ref.dk, what + " dk", gs, 2 * lowp.dk_residue);
  expect_within_lowp(gpu.dv, lowp.dv, ref.dv, what + " dv", gs);
}

const std::vector<Case>& clip_cases() {
  static const std::vector<Case> cases = {
      {3, 1, 2, 64, false},   {2, 50, 12, 64, false},  {4, 77, 8, 64, true},
      {1, 77, 1, 64, false},  {2, 197, 12, 64, false}, {1, 257, 16, 64, false},
      {1, 577, 1, 64, false}, {1, 577, 2, 64, true},   {2, 130, 3, 64, true},
  };
  return cases;
}

}  // namespace

TEST(CudaAttention, F32MatchesCpuF64) {
  SKIP_WITHOUT_CUDA_DEVICE();
  uint64_t seed = 100;
  for (Case c : clip_cases())
    for (bool causal : {false, true}) {
      c.causal = causal;
      check_f32(c, seed++);
    }
}

TEST(CudaAttention, Bf16WithinTwiceLowPrecisionError) {
  SKIP_WITHOUT_CUDA_DEVICE();
  uint64_t seed = 200;
  for (Case c : clip_cases())
    for (bool causal : {false, true}) {
      c.causal = causal;
      check_lowp(c, DType::bf16, seed++);
    }
}

TEST(CudaAttention, F16WithinTwiceLowPrecisionError) {
  SKIP_WITHOUT_CUDA_DEVICE();
  check_lowp({2, 77, 4, 64, true}, DType::f16, 300);
  check_lowp({1, 197, 3, 64, false}, DType::f16, 301);
}

TEST(CudaAttention, HeadDims80And128) {
  SKIP_WITHOUT_CUDA_DEVICE();
  uint64_t seed = 400;
  for (int64_t D : {80, 128})
    for (bool causal : {false, true}) {
      check_f32({2, 100, 3, D, causal}, seed++);
      check_lowp({1, 77, 2, D, causal}, DType::bf16, seed++);
    }
}

TEST(CudaAttention, ManyBatchHeads) {
  SKIP_WITHOUT_CUDA_DEVICE();
  check_f32({64, 77, 8, 64, true}, 500);  // the TGP-T text batch: 512 (batch, head) pairs
  check_lowp({16, 50, 12, 64, false}, DType::bf16, 501);
}

TEST(CudaAttention, SmallCasesForSanitizers) {
  // Small enough for compute-sanitizer (scripts/gpu_check.sh), yet two tiles in each direction.
  SKIP_WITHOUT_CUDA_DEVICE();
  check_f32({1, 70, 1, 64, true}, 900);
  check_lowp({1, 70, 2, 64, false}, DType::bf16, 901);
  check_f32({1, 66, 1, 128, false}, 902);
  check_lowp({1, 66, 1, 80, true}, DType::bf16, 903);
}

TEST(CudaAttention, MisalignedInputView) {
  SKIP_WITHOUT_CUDA_DEVICE();
  // A contiguous view starting one element into its storage: the op must realign it.
  Generator gen(600);
  const int64_t B = 2, T = 33, C = 128;
  Tensor flat = gen.randn({1 + B * T * 3 * C}, DType::f32).to(Device::CUDA);
  Tensor qkv = flat.narrow(0, 1, B * T * 3 * C).reshape({B, T, 3 * C});
  Tensor ref = attention(qkv.to(Device::CPU).to(DType::f64), 2, false);
  Tensor out = attention(qkv, 2, false);
  expect_rel_to_max(out.to_double_vector(), ref.to_double_vector(), 1e-5, "misaligned view");
}

TEST(CudaAttention, DeterministicRunToRun) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(700);
  Tensor qkv_h = gen.randn({4, 197, 3 * 768}, DType::f32).to(DType::bf16);
  Tensor g_h = gen.randn({4, 197, 768}, DType::f32).to(DType::bf16);
  std::vector<double> first;
  for (int run = 0; run < 2; ++run) {
    Tensor qkv = qkv_h.to(Device::CUDA).set_requires_grad(true);
    Tensor out = attention(qkv, 12, false);
    out.backward(g_h.to(Device::CUDA));
    std::vector<double> v = qkv.grad().to_double_vector();
    std::vector<double> o = out.to_double_vector();
    v.insert(v.end(), o.begin(), o.end());
    if (run == 0)
      first = v;
    else
      EXPECT_TRUE(v == first) << "results differ between two identical runs";
  }
}

TEST(CudaAttention, Errors) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(800);
  Tensor d32 = gen.randn({1, 5, 3 * 64}).to(Device::CUDA);  // head dim 32 with 2 heads
  EXPECT_THROW(attention(d32, 2, false), Error);
  Tensor f64 = gen.randn({1, 5, 3 * 64}, DType::f64).to(Device::CUDA);
  EXPECT_THROW(attention(f64, 1, false), Error);
}
