/*
 * matmul.cu — cuBLAS/cuBLASLt GEMMs and the kernels around them (see matmul.h).
 *
 * Row-major products are computed as column-major ones on the transposed problem:
 * C[M, N] row-major is Cᵀ [N, M] column-major, and Cᵀ = op(B)ᵀ op(A)ᵀ, so cuBLAS gets
 * (m, n, k) = (N, M, K) with A and B swapped. A row-major buffer read column-major is its
 * transpose, so the transpose flags carry over unchanged.
 */
#include <cublasLt.h>
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <mutex>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cublas.cuh"
#include "kernels/cuda/matmul.h"

namespace tgpt::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

bool g_allow_tf32 = false;

struct Blas {
  cublasHandle_t handle = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
};

// Created on first use and never destroyed (tensors and handles may outlive static destructors).
Blas& blas() {
  static Blas* b = [] {
    auto* x = new Blas();
    CUBLAS_CHECK(cublasCreate(&x->handle));
    CUBLAS_CHECK(cublasSetStream(x->handle, stream()));
    x->workspace = allocator_for(Device::CUDA).allocate(kWorkspaceBytes);
    CUBLAS_CHECK(cublasSetWorkspace(x->handle, x->workspace, kWorkspaceBytes));
    CUBLAS_CHECK(cublasLtCreate(&x->lt));
    return x;
  }();
  return *b;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: TGPT_FAIL("cuda gemm: dtype ", dtype_name(t), " is not supported (f32, f16, bf16)");
  }
}

cublasComputeType_t compute_type(DType ab_t) {
  return ab_t == DType::f32 && g_allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

int to_int(int64_t v, const char* what) {
  TGPT_CHECK(v >= 0 && v <= INT_MAX, "cuda gemm: ", what, " = ", v,
             " exceeds the cuBLAS int range");
  return static_cast<int>(v);
}

// Largest power of two (<= 256) dividing the address: the alignment cuBLASLt may assume.
uint32_t alignment_of(const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al >>= 1;
  return al;
}

// ---- kernels ------------------------------------------------------------------------------------

constexpr int kColTile = 32, kColRows = 8;

// partial[chunk, c] = sum over rows r in chunk (rows_per_chunk each) of g[r, c]. Block (32, 8):
// threadIdx.x picks the column, threadIdx.y strides the chunk's rows; the 8 row-partials are added
// in order. Writes `out` (dtype S) directly when there is a single chunk.
template <typename S>
__global__ void column_sum_partial_kernel(float* __restrict__ partial, S* __restrict__ out,
                                          const S* __restrict__ g, int64_t rows, int64_t cols,
                                          int64_t rows_per_chunk) {
  __shared__ float acc[kColRows][kColTile + 1];
  const int64_t c = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = min(rows, r0 + rows_per_chunk);
  float s = 0.f;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColRows) s += to_f32(g[r * cols + c]);
  acc[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float t = acc[0][threadIdx.x];
    for (int k = 1; k < kColRows; ++k) t += acc[k][threadIdx.x];
    if (gridDim.y == 1)
      out[c] = from_f32<S>(t);
    else
      partial[int64_t(blockIdx.y) * cols + c] = t;
  }
}

template <typename S>
__global__ void column_sum_final_kernel(S* __restrict__ out, const float* __restrict__ partial,
                                        int64_t chunks, int64_t cols) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols;
       c += int64_t(gridDim.x) * blockDim.x) {
    float t = 0.f;
    for (int64_t k = 0; k < chunks; ++k) t += partial[k * cols + c];
    out[c] = from_f32<S>(t);
  }
}

template <typename S>
__global__ void bias_add_from_f32_kernel(S* out, const float* in,  // may alias (f32 in place)
                                         const S* __restrict__ bias, int64_t n, int64_t C,
                                         int64_t L) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float v = in[i];
    if (bias) v += to_f32(bias[(i / L) % C]);
    out[i] = from_f32<S>(v);
  }
}

// One thread per patch element: patches[b, g, (c, py, px)] <-> x[b, c, gy*P + py, gx*P + px].
constexpr int kThreads = 256;

}  // namespace

cublasHandle_t cublas_handle() {
  return blas().handle;
}

void set_allow_tf32(bool allow) {
  g_allow_tf32 = allow;
}
bool allow_tf32() {
  return g_allow_tf32;
}

void gemm(DType ab_t, DType c_t, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const void* A, int64_t lda, int64_t stride_a, const void* B, int64_t ldb,
          int64_t stride_b, float beta, void* C, int64_t ldc, int64_t stride_c, int64_t batch) {
  TGPT_CHECK(c_t == ab_t || c_t == DType::f32, "cuda gemm: output dtype ", dtype_name(c_t),
             " for inputs ", dtype_name(ab_t));
  if (M == 0 || N == 0 || batch == 0) return;
  if (K == 0) {
    TGPT_CHECK(beta == 0.f || beta == 1.f, "cuda gemm: K = 0 with beta ", beta);
    if (beta == 0.f) {
      const size_t es = dtype_size(c_t);
      for (int64_t b = 0; b < batch; ++b)
        CUDA_CHECK(cudaMemset2DAsync(static_cast<char*>(C) + b * stride_c * es, ldc * es, 0, N * es,
                                     M, stream()));
    }
    return;
  }
  Blas& bl = blas();
  cudaDataType_t tab = cuda_type(ab_t), tc = cuda_type(c_t);
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      bl.handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
      to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, B, tab, to_int(ldb, "ldb"), stride_b,
      A, tab, to_int(lda, "lda"), stride_a, &beta, C, tc, to_int(ldc, "ldc"), stride_c,
      to_int(batch, "batch"), compute_type(ab_t), CUBLAS_GEMM_DEFAULT));
}

namespace {

// cuBLASLt: out = x @ wᵀ + bias with the bias epilogue. Returns false (nothing launched) when
// cuBLASLt offers no algorithm.
bool linear_forward_lt(DType dt, void* out, const void* x, const void* w, bool w_t,
                       const void* bias, int64_t rows, int64_t in, int64_t outf) {
  Blas& bl = blas();
  cudaDataType_t t = cuda_type(dt);
  // Column-major: D [outf, rows] = op(w) [outf, in] @ x' [in, rows].
  const uint64_t m = static_cast<uint64_t>(outf), n = static_cast<uint64_t>(rows),
                 k = static_cast<uint64_t>(in);
  cublasOperation_t opa = w_t ? CUBLAS_OP_N : CUBLAS_OP_T, opb = CUBLAS_OP_N;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  bool ok = false;
  try {
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, compute_type(dt), CUDA_R_32F));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof(bias)));
    // Stored shapes: w is [in, outf] column-major (ld in) unless w_t ([outf, in], ld outf).
    if (w_t)
      CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, t, m, k, static_cast<int64_t>(m)));
    else
      CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, t, k, m, static_cast<int64_t>(k)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, t, k, n, static_cast<int64_t>(k)));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, t, m, n, static_cast<int64_t>(m)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = kWorkspaceBytes;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    uint32_t al_a = alignment_of(w), al_b = alignment_of(x), al_c = alignment_of(out);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(bl.lt, desc, la, lb, lc, lc, pref, 1, &res, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
      const float alpha = 1.f, beta = 0.f;
      CUBLAS_CHECK(cublasLtMatmul(bl.lt, desc, &alpha, w, la, x, lb, &beta, out, lc, out, lc,
                                  &res.algo, bl.workspace, kWorkspaceBytes, stream()));
      ok = true;
    }
  } catch (...) {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (desc) cublasLtMatmulDescDestroy(desc);
    throw;
  }
  CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lc));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
  CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
  return ok;
}

}  // namespace

void linear_forward(DType dt, void* out, const void* x, const void* w, bool w_t, const void* bias,
                    int64_t rows, int64_t in, int64_t outf) {
  if (rows == 0 || outf == 0) return;
  const int64_t ldw = w_t ? outf : in;
  if (!bias) {
    gemm(dt, dt, false, !w_t, rows, outf, in, 1.f, x, in, 0, w, ldw, 0, 0.f, out, outf, 0, 1);
    return;
  }
  // The bias epilogue needs K > 0, int-sized extents and a 16-byte aligned bias vector.
  if (in > 0 && rows <= INT_MAX && in <= INT_MAX && outf <= INT_MAX && alignment_of(bias) >= 16 &&
      linear_forward_lt(dt, out, x, w, w_t, bias, rows, in, outf))
    return;
  if (dt == DType::f32) {
    gemm(dt, dt, false, !w_t, rows, outf, in, 1.f, x, in, 0, w, ldw, 0, 0.f, out, outf, 0, 1);
    bias_add_from_f32(dt, out, static_cast<const float*>(out), bias, rows, outf, 1);
    return;
  }
  Scratch tmp(static_cast<size_t>(rows * outf) * sizeof(float));
  gemm(dt, DType::f32, false, !w_t, rows, outf, in, 1.f, x, in, 0, w, ldw, 0, 0.f, tmp.as<float>(),
       outf, 0, 1);
  bias_add_from_f32(dt, out, tmp.as<float>(), bias, rows, outf, 1);
}

void column_sum(DType dt, void* out, const void* g, int64_t rows, int64_t cols) {
  if (cols == 0) return;
  const int64_t rows_per_chunk = std::max<int64_t>(256, (rows + 127) / 128);
  const int64_t chunks = std::max<int64_t>(1, (rows + rows_per_chunk - 1) / rows_per_chunk);
  Scratch partial(chunks > 1 ? static_cast<size_t>(chunks * cols) * sizeof(float) : 0);
  dim3 grid(static_cast<unsigned>((cols + kColTile - 1) / kColTile), static_cast<unsigned>(chunks));
  TGPT_CHECK(grid.x <= INT_MAX, "cuda column_sum: too many columns");
  dispatch_storage(dt, "column_sum", [&](auto tag) {
    using S = decltype(tag);
    column_sum_partial_kernel<S><<<grid, dim3(kColTile, kColRows), 0, stream()>>>(
        partial.as<float>(), static_cast<S*>(out), static_cast<const S*>(g), rows, cols,
        rows_per_chunk);
    CUDA_CHECK_LAUNCH();
    if (chunks > 1) {
      column_sum_final_kernel<S><<<grid_for(cols, kThreads), kThreads, 0, stream()>>>(
          static_cast<S*>(out), partial.as<float>(), chunks, cols);
      CUDA_CHECK_LAUNCH();
    }
  });
}

void bias_add_from_f32(DType dt, void* out, const float* in, const void* bias, int64_t outer,
                       int64_t C, int64_t L) {
  const int64_t n = outer * C * L;
  if (n == 0) return;
  dispatch_storage(dt, "bias_add", [&](auto tag) {
    using S = decltype(tag);
    bias_add_from_f32_kernel<S><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<S*>(out), in, static_cast<const S*>(bias), n, C, L);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tgpt::cuda
