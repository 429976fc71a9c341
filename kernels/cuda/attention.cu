/*
 * attention.cu — fused multi-head attention (forward and backward) on CLIP's packed qkv.
 * Lab: bench/lab_attention.cu (these are its versions 2 (f32) and 3 (f16/bf16 tensor cores)).
 *
 * Layout (kernels/cpu/attention.h): qkv [B, T, 3C], head h of NH reads columns h*D.. of Q, K, V.
 * One thread block of 256 threads (8 warps) works on one (batch, head) and one tile of 64 rows;
 * every operand tile lives in shared memory:
 *   forward   block (b·h, query tile): Q tile resident; for each 64-key tile: load K, V;
 *             S = Q Kᵀ; online softmax over the tile rows (4 threads per row, running max m and
 *             sum l, scores pre-scaled by log2(e)/sqrt(D) and exponentiated with exp2f); the
 *             f32 output accumulator O is rescaled by exp2(m_old - m_new) and O += P V. At the end
 *             out = O / l and lse = (m + log2 l)·ln 2. Causal tiles past the diagonal are skipped.
 *   backward  (FlashAttention-2) 1. dsum = rowsum(dout ∘ out) (one warp per row);
 *             2. block (b·h, key tile): K, V resident, loop over query tiles: recompute
 *                S = Q Kᵀ, P = exp(S - lse), dP = dO Vᵀ, dS = P ∘ (dP - dsum); dV += Pᵀ dO,
 *                dK += dSᵀ Q (f32 accumulators in shared memory);
 *             3. block (b·h, query tile): Q, dO resident, loop over key tiles: recompute S, P,
 *                dP, dS and dQ += dS K.
 *             dQ gets its own pass instead of FA2's atomicAdd into an f32 buffer: 7 tile products
 *             instead of 5, but every output is written by exactly one block in a fixed order,
 *             so backward is deterministic (bit-identical run to run).
 * Tile products: f32 storage uses FFMA with a 16 x 16 thread grid (each thread a strided 4 x N/16
 * block of C, conflict-free shared-memory padding); f16/bf16 storage uses tensor cores through
 * WMMA 16x16x16 (f32 accumulate), P and dS rounded to the storage type as in FlashAttention.
 * Rows past T are zero-filled on load and masked (-inf scores, zero probabilities), so any T >= 1
 * works; results for rows >= T are never written.
 */
#include <mma.h>

#include <climits>
#include <cmath>
#include <type_traits>

#include "base/cuda/cuda_common.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/fused_util.cuh"

namespace tgpt::cuda {

namespace {

using namespace nvcuda;

constexpr int kThreads = 256;  // 8 warps; a 16 x 16 grid for the FFMA tile products
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr size_t kMaxSmem = 227 * 1024;  // Hopper's opt-in limit per block

constexpr size_t align128(size_t x) {
  return (x + 127) / 128 * 128;
}

// Shared-memory row strides (elements). f32 tiles (FFMA): +1 on operand tiles so a warp's 16
// distinct rows hit distinct banks, +16 on result tiles so the two rows a warp writes land on
// disjoint bank halves. 16-bit tiles (WMMA): multiples of 8 elements / 4 floats as WMMA
// requires, padded by 16 bytes against bank conflicts.
template <typename Ts, int D, int BK>
struct Strides {
  static constexpr bool kF32 = std::is_same_v<Ts, float>;
  static constexpr int T = D + (kF32 ? 1 : 8);    // Q, K, V, dO tiles (Ts)
  static constexpr int S = BK + (kF32 ? 16 : 4);  // score-like tiles (f32)
  static constexpr int P = kF32 ? S : BK + 8;     // P / dS in Ts (aliases the f32 tile for f32)
  static constexpr int O = D + (kF32 ? 16 : 4);   // f32 accumulators
};

template <typename Ts, int D, int BQ, int BK>
struct FwdLayout {
  using St = Strides<Ts, D, BK>;
  static constexpr size_t q = 0;
  static constexpr size_t k = align128(q + sizeof(Ts) * BQ * St::T);
  static constexpr size_t v = align128(k + sizeof(Ts) * BK * St::T);
  static constexpr size_t s = align128(v + sizeof(Ts) * BK * St::T);
  static constexpr size_t p = St::kF32 ? s : align128(s + 4 * BQ * St::S);
  static constexpr size_t o = align128(St::kF32 ? s + 4 * BQ * St::S : p + sizeof(Ts) * BQ * St::P);
  static constexpr size_t linv = align128(o + 4 * BQ * St::O);
  static constexpr size_t bytes = linv + 4 * BQ;
  static_assert(bytes <= kMaxSmem, "attention forward tile does not fit in shared memory");
};

// Backward: NACC f32 accumulators of ACC_ROWS rows (dK and dV: 2 x BK; dQ: 1 x BQ).
template <typename Ts, int D, int BQ, int BK, int ACC_ROWS, int NACC>
struct BwdLayout {
  using St = Strides<Ts, D, BK>;
  static constexpr size_t q = 0;
  static constexpr size_t dout = align128(q + sizeof(Ts) * BQ * St::T);
  static constexpr size_t k = align128(dout + sizeof(Ts) * BQ * St::T);
  static constexpr size_t v = align128(k + sizeof(Ts) * BK * St::T);
  static constexpr size_t s = align128(v + sizeof(Ts) * BK * St::T);
  static constexpr size_t dp = align128(s + 4 * BQ * St::S);
  static constexpr size_t pt = St::kF32 ? s : align128(dp + 4 * BQ * St::S);
  static constexpr size_t dst = St::kF32 ? dp : align128(pt + sizeof(Ts) * BQ * St::P);
  static constexpr size_t acc =
      align128(St::kF32 ? dp + 4 * BQ * St::S : dst + sizeof(Ts) * BQ * St::P);
  static constexpr size_t acc_stride = align128(4 * ACC_ROWS * St::O);
  static constexpr size_t lse2 = acc + NACC * acc_stride;
  static constexpr size_t dsum = lse2 + 4 * BQ;
  static constexpr size_t bytes = dsum + 4 * BQ;
  static_assert(bytes <= kMaxSmem, "attention backward tile does not fit in shared memory");
};

// Query-tile rows of the dK/dV pass: 32 for f32 with D = 128 (shared-memory limit), else 64.
template <typename Ts, int D>
constexpr int dkdv_bq() {
  return std::is_same_v<Ts, float> && D > 80 ? 32 : 64;
}

// ---- tile products in shared memory -------------------------------------------------------
// C [M, N] (f32, row stride ldc) = (ACC ? C : 0) + op(A) op(B), op(A) [M, K], op(B) [K, N];
// TA: A is stored [K, M] (transposed); TB: B is stored [N, K]. All kThreads threads call it.

template <int M, int N, int K, bool TA, bool TB, bool ACC>
__device__ __forceinline__ void mm_ffma(float* C, int ldc, const float* A, int lda, const float* B,
                                        int ldb) {
  static_assert(M % 16 == 0 && N % 16 == 0, "tile sizes must be multiples of 16");
  constexpr int RM = M / 16, RN = N / 16;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[RM][RN];
#pragma unroll
  for (int i = 0; i < RM; ++i)
#pragma unroll
    for (int j = 0; j < RN; ++j) acc[i][j] = ACC ? C[(ty + 16 * i) * ldc + tx + 16 * j] : 0.f;
#pragma unroll 4
  for (int k = 0; k < K; ++k) {
    float a[RM], b[RN];
#pragma unroll
    for (int i = 0; i < RM; ++i) a[i] = TA ? A[k * lda + ty + 16 * i] : A[(ty + 16 * i) * lda + k];
#pragma unroll
    for (int j = 0; j < RN; ++j) b[j] = TB ? B[(tx + 16 * j) * ldb + k] : B[k * ldb + tx + 16 * j];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < RN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
#pragma unroll
  for (int i = 0; i < RM; ++i)
#pragma unroll
    for (int j = 0; j < RN; ++j) C[(ty + 16 * i) * ldc + tx + 16 * j] = acc[i][j];
}

template <int M, int N, int K, bool TA, bool TB, bool ACC, typename Ts>
__device__ __forceinline__ void mm_wmma(float* C, int ldc, const Ts* A, int lda, const Ts* B,
                                        int ldb) {
  static_assert(M % 16 == 0 && N % 16 == 0 && K % 16 == 0, "WMMA tiles are 16x16x16");
  using LayoutA = std::conditional_t<TA, wmma::col_major, wmma::row_major>;
  using LayoutB = std::conditional_t<TB, wmma::col_major, wmma::row_major>;
  constexpr int TM = M / 16, TN = N / 16;
  const int warp = threadIdx.x / 32;
  for (int t = warp; t < TM * TN; t += kThreads / 32) {
    const int tm = t / TN, tn = t % TN;
    float* c_ptr = C + tm * 16 * ldc + tn * 16;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
    if (ACC)
      wmma::load_matrix_sync(c, c_ptr, ldc, wmma::mem_row_major);
    else
      wmma::fill_fragment(c, 0.f);
#pragma unroll
    for (int k = 0; k < K; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, Ts, LayoutA> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, Ts, LayoutB> b;
      wmma::load_matrix_sync(a, TA ? A + k * lda + tm * 16 : A + tm * 16 * lda + k, lda);
      wmma::load_matrix_sync(b, TB ? B + tn * 16 * ldb + k : B + k * ldb + tn * 16, ldb);
      wmma::mma_sync(c, a, b, c);
    }
    wmma::store_matrix_sync(c_ptr, c, ldc, wmma::mem_row_major);
  }
}

template <int M, int N, int K, bool TA, bool TB, bool ACC, typename Ts>
__device__ __forceinline__ void mm(float* C, int ldc, const Ts* A, int lda, const Ts* B, int ldb) {
  if constexpr (std::is_same_v<Ts, float>)
    mm_ffma<M, N, K, TA, TB, ACC>(C, ldc, A, lda, B, ldb);
  else
    mm_wmma<M, N, K, TA, TB, ACC, Ts>(C, ldc, A, lda, B, ldb);
}

// ---- global <-> shared ------------------------------------------------------------------------

// dst [R, LD] <- rows t0 .. t0+R-1 of one head: row t at base + t * row_stride, D elements;
// rows >= T are zero. 16-byte loads (base and row_stride keep 16-byte alignment).
template <typename Ts, int R, int D, int LD>
__device__ __forceinline__ void load_tile(Ts* dst, const Ts* base, int64_t row_stride, int t0,
                                          int T) {
  constexpr int EPV = 16 / static_cast<int>(sizeof(Ts));
  constexpr int VPR = D / EPV;
  static_assert(D % EPV == 0, "head dim must fill whole 16-byte vectors");
  for (int i = threadIdx.x; i < R * VPR; i += kThreads) {
    const int r = i / VPR, c = (i % VPR) * EPV;
    const int t = t0 + r;
    Ts* d = dst + r * LD + c;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (t < T)
      v = __ldg(reinterpret_cast<const uint4*>(base + static_cast<int64_t>(t) * row_stride + c));
    if constexpr ((LD * sizeof(Ts)) % 16 == 0) {
      *reinterpret_cast<uint4*>(d) = v;
    } else {
      const Ts* e = reinterpret_cast<const Ts*>(&v);
#pragma unroll
      for (int j = 0; j < EPV; ++j) d[j] = e[j];
    }
  }
}

__device__ __forceinline__ void zero_smem(float* p, int n) {
  for (int i = threadIdx.x; i < n; i += kThreads) p[i] = 0.f;
}

// ---- forward -------------------------------------------------------------------------------

template <typename Ts, int D>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(Ts* __restrict__ out, float* __restrict__ lse,
                             const Ts* __restrict__ qkv, int T, int NH, bool causal,
                             float scale_log2) {
  constexpr int BQ = 64, BK = 64;
  using L = FwdLayout<Ts, D, BQ, BK>;
  using St = typename L::St;
  extern __shared__ __align__(128) unsigned char smem[];
  Ts* Qs = reinterpret_cast<Ts*>(smem + L::q);
  Ts* Ks = reinterpret_cast<Ts*>(smem + L::k);
  Ts* Vs = reinterpret_cast<Ts*>(smem + L::v);
  float* Ss = reinterpret_cast<float*>(smem + L::s);
  Ts* Ps = reinterpret_cast<Ts*>(smem + L::p);
  float* Os = reinterpret_cast<float*>(smem + L::o);
  float* Linv = reinterpret_cast<float*>(smem + L::linv);

  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.y * BQ;
  const int C = NH * D;
  const int64_t C3 = 3 * static_cast<int64_t>(C);
  const Ts* base = qkv + static_cast<int64_t>(b) * T * C3 + h * D;

  load_tile<Ts, BQ, D, St::T>(Qs, base, C3, q0, T);
  zero_smem(Os, BQ * St::O);

  // Softmax ownership: 4 consecutive lanes per query row, columns part, part+4, ...
  const int r = threadIdx.x / 4, part = threadIdx.x % 4;
  const int qi = q0 + r;
  float m = -INFINITY, l = 0.f;
  const int k_end = causal ? min(T, q0 + BQ) : T;
  for (int k0 = 0; k0 < k_end; k0 += BK) {
    __syncthreads();  // the previous O += P V is done with Ks, Vs, Ps
    load_tile<Ts, BK, D, St::T>(Ks, base + C, C3, k0, T);
    load_tile<Ts, BK, D, St::T>(Vs, base + 2 * C, C3, k0, T);
    __syncthreads();
    mm<BQ, BK, D, false, true, false>(Ss, St::S, Qs, St::T, Ks, St::T);
    __syncthreads();
    float sv[BK / 4];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < BK / 4; ++j) {
      const int c = part + 4 * j, kj = k0 + c;
      const bool ok = kj < T && (!causal || kj <= qi);
      sv[j] = ok ? Ss[r * St::S + c] * scale_log2 : -INFINITY;
      mx = fmaxf(mx, sv[j]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m, mx);
    const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing unmasked yet
    const float alpha = exp2f(m - m_use);                  // 0 while m = -inf
    float rs = 0.f;
#pragma unroll
    for (int j = 0; j < BK / 4; ++j) {
      const float p = exp2f(sv[j] - m_use);
      rs += p;
      Ps[r * St::P + part + 4 * j] = from_f32<Ts>(p);
    }
    rs += __shfl_xor_sync(0xffffffffu, rs, 1);
    rs += __shfl_xor_sync(0xffffffffu, rs, 2);
    l = l * alpha + rs;
    m = m_new;
    for (int c = part; c < D; c += 4) Os[r * St::O + c] *= alpha;
    __syncthreads();
    mm<BQ, D, BK, false, false, true>(Os, St::O, Ps, St::P, Vs, St::T);
  }
  if (part == 0) {
    Linv[r] = 1.f / l;
    if (qi < T) lse[static_cast<int64_t>(bh) * T + qi] = (m + log2f(l)) * kLn2;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < BQ * D; i += kThreads) {
    const int rr = i / D, c = i % D, t = q0 + rr;
    if (t < T)
      out[(static_cast<int64_t>(b) * T + t) * C + h * D + c] =
          from_f32<Ts>(Os[rr * St::O + c] * Linv[rr]);
  }
}

// ---- backward ------------------------------------------------------------------------------

// dsum[b, h, t] = Σ_d dout[b, t, h*D + d] · out[b, t, h*D + d]; one warp per (b, t, h).
template <typename Ts>
__global__ void attention_backward_dsum_kernel(float* __restrict__ dsum,
                                               const Ts* __restrict__ dout,
                                               const Ts* __restrict__ out, int B, int T, int NH,
                                               int D) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(B) * T * NH) return;  // warp-uniform
  const int h = static_cast<int>(row % NH);
  const int64_t bt = row / NH;
  const int b = static_cast<int>(bt / T), t = static_cast<int>(bt % T);
  const int64_t off = bt * NH * D + static_cast<int64_t>(h) * D;
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s += to_f32(dout[off + d]) * to_f32(out[off + d]);
  s = warp_sum(s);
  if (lane == 0) dsum[(static_cast<int64_t>(b) * NH + h) * T + t] = s;
}

// Recomputes, for query rows q0.. and key columns k0.. of one (b, h): P = exp(S - lse) and
// dS = P ∘ (dP - dsum) from S and dP in shared memory; writes P (if Pt) and dS in Ts.
template <typename Ts, int BQ, int BK, int LDS, int LDP>
__device__ __forceinline__ void attention_backward_ds(Ts* Pt, Ts* dSt, const float* Ss,
                                                      const float* dPs, const float* lse2s,
                                                      const float* dsums, int q0, int k0, int T,
                                                      bool causal, float scale_log2) {
  for (int i = threadIdx.x; i < BQ * BK; i += kThreads) {
    const int r = i / BK, c = i % BK, qi = q0 + r, kj = k0 + c;
    const bool ok = qi < T && kj < T && (!causal || kj <= qi);
    const float p = ok ? exp2f(Ss[r * LDS + c] * scale_log2 - lse2s[r]) : 0.f;
    const float ds = p * (dPs[r * LDS + c] - dsums[r]);
    if (Pt) Pt[r * LDP + c] = from_f32<Ts>(p);
    dSt[r * LDP + c] = from_f32<Ts>(ds);
  }
}

// Loads lse (in log2 units) and dsum of query rows q0.. into shared memory (0 past T).
__device__ __forceinline__ void load_row_stats(float* lse2s, float* dsums, const float* lse,
                                               const float* dsum, int64_t bh, int q0, int T,
                                               int BQ) {
  for (int i = threadIdx.x; i < BQ; i += kThreads) {
    const int t = q0 + i;
    lse2s[i] = t < T ? lse[bh * T + t] * kLog2e : 0.f;
    dsums[i] = t < T ? dsum[bh * T + t] : 0.f;
  }
}

// Block (b·h, key tile): dK and dV of keys k0 .. k0+BK-1.
template <typename Ts, int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_kernel(Ts* __restrict__ dqkv, const Ts* __restrict__ dout,
                                   const Ts* __restrict__ qkv, const float* __restrict__ lse,
                                   const float* __restrict__ dsum, int T, int NH, bool causal,
                                   float scale, float scale_log2) {
  constexpr int BQ = dkdv_bq<Ts, D>(), BK = 64;
  using L = BwdLayout<Ts, D, BQ, BK, BK, 2>;
  using St = typename L::St;
  extern __shared__ __align__(128) unsigned char smem[];
  Ts* Qs = reinterpret_cast<Ts*>(smem + L::q);
  Ts* dOs = reinterpret_cast<Ts*>(smem + L::dout);
  Ts* Ks = reinterpret_cast<Ts*>(smem + L::k);
  Ts* Vs = reinterpret_cast<Ts*>(smem + L::v);
  float* Ss = reinterpret_cast<float*>(smem + L::s);
  float* dPs = reinterpret_cast<float*>(smem + L::dp);
  Ts* Pt = reinterpret_cast<Ts*>(smem + L::pt);
  Ts* dSt = reinterpret_cast<Ts*>(smem + L::dst);
  float* dKs = reinterpret_cast<float*>(smem + L::acc);
  float* dVs = reinterpret_cast<float*>(smem + L::acc + L::acc_stride);
  float* lse2s = reinterpret_cast<float*>(smem + L::lse2);
  float* dsums = reinterpret_cast<float*>(smem + L::dsum);

  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int k0 = blockIdx.y * BK;
  const int C = NH * D;
  const int64_t C3 = 3 * static_cast<int64_t>(C);
  const Ts* base = qkv + static_cast<int64_t>(b) * T * C3 + h * D;
  const Ts* dbase = dout + static_cast<int64_t>(b) * T * C + h * D;

  load_tile<Ts, BK, D, St::T>(Ks, base + C, C3, k0, T);
  load_tile<Ts, BK, D, St::T>(Vs, base + 2 * C, C3, k0, T);
  zero_smem(dKs, BK * St::O);
  zero_smem(dVs, BK * St::O);
  const int q_start = causal ? k0 / BQ * BQ : 0;  // earlier queries see none of these keys
  for (int q0 = q_start; q0 < T; q0 += BQ) {
    __syncthreads();  // the previous tile's products are done with Qs, dOs, Pt, dSt
    load_tile<Ts, BQ, D, St::T>(Qs, base, C3, q0, T);
    load_tile<Ts, BQ, D, St::T>(dOs, dbase, C, q0, T);
    load_row_stats(lse2s, dsums, lse, dsum, bh, q0, T, BQ);
    __syncthreads();
    mm<BQ, BK, D, false, true, false>(Ss, St::S, Qs, St::T, Ks, St::T);    // S = Q Kᵀ
    mm<BQ, BK, D, false, true, false>(dPs, St::S, dOs, St::T, Vs, St::T);  // dP = dO Vᵀ
    __syncthreads();
    attention_backward_ds<Ts, BQ, BK, St::S, St::P>(Pt, dSt, Ss, dPs, lse2s, dsums, q0, k0, T,
                                                    causal, scale_log2);
    __syncthreads();
    mm<BK, D, BQ, true, false, true>(dVs, St::O, Pt, St::P, dOs, St::T);  // dV += Pᵀ dO
    mm<BK, D, BQ, true, false, true>(dKs, St::O, dSt, St::P, Qs, St::T);  // dK += dSᵀ Q
  }
  __syncthreads();
  for (int i = threadIdx.x; i < BK * D; i += kThreads) {
    const int rr = i / D, c = i % D, t = k0 + rr;
    if (t < T) {
      Ts* row = dqkv + (static_cast<int64_t>(b) * T + t) * C3 + h * D + c;
      row[C] = from_f32<Ts>(dKs[rr * St::O + c] * scale);
      row[2 * C] = from_f32<Ts>(dVs[rr * St::O + c]);
    }
  }
}

// Block (b·h, query tile): dQ of queries q0 .. q0+BQ-1.
template <typename Ts, int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(Ts* __restrict__ dqkv, const Ts* __restrict__ dout,
                                 const Ts* __restrict__ qkv, const float* __restrict__ lse,
                                 const float* __restrict__ dsum, int T, int NH, bool causal,
                                 float scale, float scale_log2) {
  constexpr int BQ = 64, BK = 64;
  using L = BwdLayout<Ts, D, BQ, BK, BQ, 1>;
  using St = typename L::St;
  extern __shared__ __align__(128) unsigned char smem[];
  Ts* Qs = reinterpret_cast<Ts*>(smem + L::q);
  Ts* dOs = reinterpret_cast<Ts*>(smem + L::dout);
  Ts* Ks = reinterpret_cast<Ts*>(smem + L::k);
  Ts* Vs = reinterpret_cast<Ts*>(smem + L::v);
  float* Ss = reinterpret_cast<float*>(smem + L::s);
  float* dPs = reinterpret_cast<float*>(smem + L::dp);
  Ts* dSt = reinterpret_cast<Ts*>(smem + L::dst);
  float* dQs = reinterpret_cast<float*>(smem + L::acc);
  float* lse2s = reinterpret_cast<float*>(smem + L::lse2);
  float* dsums = reinterpret_cast<float*>(smem + L::dsum);

  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.y * BQ;
  const int C = NH * D;
  const int64_t C3 = 3 * static_cast<int64_t>(C);
  const Ts* base = qkv + static_cast<int64_t>(b) * T * C3 + h * D;
  const Ts* dbase = dout + static_cast<int64_t>(b) * T * C + h * D;

  load_tile<Ts, BQ, D, St::T>(Qs, base, C3, q0, T);
  load_tile<Ts, BQ, D, St::T>(dOs, dbase, C, q0, T);
  load_row_stats(lse2s, dsums, lse, dsum, bh, q0, T, BQ);
  zero_smem(dQs, BQ * St::O);
  const int k_end = causal ? min(T, q0 + BQ) : T;
  for (int k0 = 0; k0 < k_end; k0 += BK) {
    __syncthreads();  // the previous dQ += dS K is done with Ks, dSt
    load_tile<Ts, BK, D, St::T>(Ks, base + C, C3, k0, T);
    load_tile<Ts, BK, D, St::T>(Vs, base + 2 * C, C3, k0, T);
    __syncthreads();
    mm<BQ, BK, D, false, true, false>(Ss, St::S, Qs, St::T, Ks, St::T);
    mm<BQ, BK, D, false, true, false>(dPs, St::S, dOs, St::T, Vs, St::T);
    __syncthreads();
    attention_backward_ds<Ts, BQ, BK, St::S, St::P>(static_cast<Ts*>(nullptr), dSt, Ss, dPs, lse2s,
                                                    dsums, q0, k0, T, causal, scale_log2);
    __syncthreads();
    mm<BQ, D, BK, false, false, true>(dQs, St::O, dSt, St::P, Ks, St::T);  // dQ += dS K
  }
  __syncthreads();
  for (int i = threadIdx.x; i < BQ * D; i += kThreads) {
    const int rr = i / D, c = i % D, t = q0 + rr;
    if (t < T)
      dqkv[(static_cast<int64_t>(b) * T + t) * C3 + h * D + c] =
          from_f32<Ts>(dQs[rr * St::O + c] * scale);
  }
}

// ---- host side --------------------------------------------------------------------------------

// Raises the dynamic shared-memory limit of a kernel once (needed above 48 KB).
template <typename K>
void set_smem(K kernel, size_t bytes, bool& done) {
  if (done) return;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(bytes)));
  done = true;
}

unsigned tiles(int64_t T, int bq) {
  return static_cast<unsigned>((T + bq - 1) / bq);
}

template <typename Ts, int D>
void forward_typed(void* out, float* lse, const void* qkv, int B, int T, int NH, bool causal) {
  using L = FwdLayout<Ts, D, 64, 64>;
  static bool ready = false;
  set_smem(attention_forward_kernel<Ts, D>, L::bytes, ready);
  const float scale_log2 = kLog2e / sqrtf(static_cast<float>(D));
  dim3 grid(static_cast<unsigned>(B * NH), tiles(T, 64));
  attention_forward_kernel<Ts, D><<<grid, kThreads, L::bytes, stream()>>>(
      static_cast<Ts*>(out), lse, static_cast<const Ts*>(qkv), T, NH, causal, scale_log2);
  CUDA_CHECK_LAUNCH();
}

template <typename Ts, int D>
void backward_typed(void* dqkv, float* dsum, const void* dout, const void* qkv, const void* out,
                    const float* lse, int B, int T, int NH, bool causal) {
  constexpr int BQ = dkdv_bq<Ts, D>();
  using Lkv = BwdLayout<Ts, D, BQ, 64, 64, 2>;
  using Lq = BwdLayout<Ts, D, 64, 64, 64, 1>;
  static bool ready_kv = false, ready_q = false;
  set_smem(attention_backward_dkdv_kernel<Ts, D>, Lkv::bytes, ready_kv);
  set_smem(attention_backward_dq_kernel<Ts, D>, Lq::bytes, ready_q);
  const float scale = 1.f / sqrtf(static_cast<float>(D));
  const float scale_log2 = kLog2e * scale;
  const int64_t rows = static_cast<int64_t>(B) * T * NH;
  attention_backward_dsum_kernel<Ts>
      <<<static_cast<unsigned>((rows * 32 + 255) / 256), 256, 0, stream()>>>(
          dsum, static_cast<const Ts*>(dout), static_cast<const Ts*>(out), B, T, NH, D);
  CUDA_CHECK_LAUNCH();
  const unsigned bhs = static_cast<unsigned>(B * NH);
  attention_backward_dkdv_kernel<Ts, D>
      <<<dim3(bhs, tiles(T, 64)), kThreads, Lkv::bytes, stream()>>>(
          static_cast<Ts*>(dqkv), static_cast<const Ts*>(dout), static_cast<const Ts*>(qkv), lse,
          dsum, T, NH, causal, scale, scale_log2);
  CUDA_CHECK_LAUNCH();
  attention_backward_dq_kernel<Ts, D><<<dim3(bhs, tiles(T, 64)), kThreads, Lq::bytes, stream()>>>(
      static_cast<Ts*>(dqkv), static_cast<const Ts*>(dout), static_cast<const Ts*>(qkv), lse, dsum,
      T, NH, causal, scale, scale_log2);
  CUDA_CHECK_LAUNCH();
}

void check_sizes(int64_t B, int64_t T, int64_t C, int64_t NH) {
  TGPT_CHECK(NH > 0 && C % NH == 0 && attention_head_dim_supported(C / NH),
             "attention (CUDA): head dim ", NH > 0 ? C / NH : 0, " is not supported (64, 80, 128)");
  TGPT_CHECK(B * NH <= INT_MAX && T <= 65535LL * 64 && B * T * 3 * C <= (int64_t(1) << 46),
             "attention (CUDA): sizes out of range: B ", B, ", T ", T, ", C ", C, ", heads ", NH);
}

// Calls f.template operator()<Ts, D>() for the run-time dtype and head dim.
template <typename F>
void dispatch(DType dt, int64_t D, F&& f) {
  auto by_dim = [&](auto tag) {
    using Ts = decltype(tag);
    if (D == 64) return f.template operator()<Ts, 64>();
    if (D == 80) return f.template operator()<Ts, 80>();
    return f.template operator()<Ts, 128>();
  };
  switch (dt) {
    case DType::f32: return by_dim(float{});
    case DType::f16: return by_dim(__half{});
    case DType::bf16: return by_dim(__nv_bfloat16{});
    default: TGPT_FAIL("attention (CUDA): unsupported dtype ", dtype_name(dt));
  }
}

// Launch arguments bound for dispatch().
struct ForwardRun {
  void* out;
  float* lse;
  const void* qkv;
  int B, T, NH;
  bool causal;
  template <typename Ts, int D>
  void operator()() {
    forward_typed<Ts, D>(out, lse, qkv, B, T, NH, causal);
  }
};
struct BackwardRun {
  void* dqkv;
  float* dsum;
  const void *dout, *qkv, *out;
  const float* lse;
  int B, T, NH;
  bool causal;
  template <typename Ts, int D>
  void operator()() {
    backward_typed<Ts, D>(dqkv, dsum, dout, qkv, out, lse, B, T, NH, causal);
  }
};

}  // namespace

bool attention_head_dim_supported(int64_t D) {
  return D == 64 || D == 80 || D == 128;
}

void attention_forward(void* out, float* lse, const void* qkv, DType dtype, int64_t B, int64_t T,
                       int64_t C, int64_t NH, bool causal) {
  check_sizes(B, T, C, NH);
  if (B == 0 || T == 0) return;
  ForwardRun run{out,   lse, qkv, static_cast<int>(B), static_cast<int>(T), static_cast<int>(NH),
                 causal};
  dispatch(dtype, C / NH, run);
}

void attention_backward(void* dqkv, float* dsum, const void* dout, const void* qkv, const void* out,
                        const float* lse, DType dtype, int64_t B, int64_t T, int64_t C, int64_t NH,
                        bool causal) {
  check_sizes(B, T, C, NH);
  if (B == 0 || T == 0) return;
  BackwardRun run{dqkv,
                  dsum,
                  dout,
                  qkv,
                  out,
                  lse,
                  static_cast<int>(B),
                  static_cast<int>(T),
                  static_cast<int>(NH),
                  causal};
  dispatch(dtype, C / NH, run);
}

}  // namespace tgpt::cuda
