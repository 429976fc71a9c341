/*
 * vocab_ce.cu — CUDA implementation of the fused vocabulary cross-entropy (see vocab_ce.h and
 * kernels/cpu/vocab_ce.h for the algorithm). Lab: bench/lab_vocab_ce.cu (version 2 here).
 *
 * Per chunk of Vc vocabulary rows, in stream order:
 *   1. cuBLAS: logits [N, Vc] f32 = hidden [N, W] @ E_chunkᵀ (f32 accumulation, no TF32).
 *   2. vocab_ce_chunk_kernel, one block per row: chunk max and sum of logits, new running max m,
 *      running sum of exp rescaled by exp(m_old - m_new), target logit, P̃ = exp(x - m) written
 *      in the GEMM input dtype (in place over the logits for f32), gradient accumulator row
 *      rescaled by exp(m_old - m_new).
 *   3. cuBLAS: acc [N, W] f32 += P̃ [N, Vc] @ E_chunk [Vc, W]   (only when a gradient is wanted).
 * Then vocab_ce_finalize_kernel forms each row's loss and gradient direction, and
 * loss_mean_kernel sums the row losses in a fixed order. The chunk's logits (N·Vc·4 bytes,
 * ~16 MB at the default size) stay in L2 between the GEMM and the row kernel.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "base/cuda/cuda_common.h"
#include "kernels/cuda/cublas.cuh"
#include "kernels/cuda/fused_util.cuh"
#include "kernels/cuda/vocab_ce.h"

namespace tgpt::cuda {

namespace {

// ---- kernels ----------------------------------------------------------------------------------

constexpr int kRowThreads = 512;

// One block per row n of the chunk [v0, v0 + Vc). probs may alias logits (f32): every element is
// read and then written by the same thread, and the target logit is taken in the first pass.
template <typename Tp>
__global__ void __launch_bounds__(kRowThreads)
    vocab_ce_chunk_kernel(Tp* probs, float* acc, const float* logits, float* row_max,
                          float* row_sum, double* row_sumx, float* row_xt, const int64_t* target,
                          int64_t ignore_index, int Vc, int v0, int W, bool first) {
  const int n = blockIdx.x;
  const float* x = logits + static_cast<size_t>(n) * Vc;
  Tp* p = probs ? probs + static_cast<size_t>(n) * Vc : nullptr;
  const int64_t t = target[n];
  if (t == ignore_index) {  // block-uniform: nothing to add for this row
    if (p)
      for (int c = threadIdx.x; c < Vc; c += blockDim.x) p[c] = from_f32<Tp>(0.f);
    return;
  }
  const int tc = (t >= v0 && t < static_cast<int64_t>(v0) + Vc) ? static_cast<int>(t - v0) : -1;
  float mx = -INFINITY, sx = 0.f;
  for (int c = threadIdx.x; c < Vc; c += blockDim.x) {
    const float v = x[c];
    mx = fmaxf(mx, v);
    sx += v;
    if (c == tc) row_xt[n] = v;
  }
  mx = block_max(mx);
  sx = block_sum(sx);
  const float m_old = first ? -INFINITY : row_max[n];
  const float m_new = fmaxf(m_old, mx);
  float se = 0.f;
  for (int c = threadIdx.x; c < Vc; c += blockDim.x) {
    const float e = expf(x[c] - m_new);
    se += e;
    if (p) p[c] = from_f32<Tp>(e);
  }
  se = block_sum(se);  // its barriers also order every read of row_max/row_sum before the writes
  const float alpha = first ? 0.f : expf(m_old - m_new);
  if (threadIdx.x == 0) {
    row_sum[n] = (first ? 0.f : row_sum[n] * alpha) + se;
    row_max[n] = m_new;
    row_sumx[n] = (first ? 0.0 : row_sumx[n]) + static_cast<double>(sx);
  }
  if (acc && !first && alpha != 1.f) {
    float* a = acc + static_cast<size_t>(n) * W;
    for (int w = threadIdx.x; w < W; w += blockDim.x) a[w] *= alpha;
  }
}

// One block per row: row loss and, when grad_dir, grad_dir[n] = acc[n] / s - (1-ls) E_t - ls/V Σ E.
template <typename T>
__global__ void __launch_bounds__(256)
    vocab_ce_finalize_kernel(float* row_loss, float* grad_dir, const T* emb, const float* colsum,
                             const float* row_max, const float* row_sum, const double* row_sumx,
                             const float* row_xt, const int64_t* target, int64_t ignore_index,
                             int W, int64_t V, float ls) {
  const int n = blockIdx.x;
  const int64_t t = target[n];
  float* g = grad_dir ? grad_dir + static_cast<size_t>(n) * W : nullptr;
  if (t == ignore_index) {
    if (threadIdx.x == 0) row_loss[n] = 0.f;
    if (g)
      for (int w = threadIdx.x; w < W; w += blockDim.x) g[w] = 0.f;
    return;
  }
  const float s = row_sum[n];
  if (threadIdx.x == 0) {
    const double lse = static_cast<double>(row_max[n]) + log(static_cast<double>(s));
    const double mean_x = row_sumx[n] / static_cast<double>(V);
    row_loss[n] = static_cast<float>((1.0 - ls) * (lse - row_xt[n]) + ls * (lse - mean_x));
  }
  if (!g) return;
  const float inv_s = 1.f / s, off = ls / static_cast<float>(V);
  const T* et = emb + static_cast<size_t>(t) * W;
  for (int w = threadIdx.x; w < W; w += blockDim.x) {
    float d = g[w] * inv_s - (1.f - ls) * to_f32(et[w]);
    if (colsum) d -= off * colsum[w];
    g[w] = d;
  }
}

// One block: loss = Σ row_loss / count (NaN when count is 0), summed in a fixed order.
__global__ void __launch_bounds__(1024)
    loss_mean_kernel(void* loss, DType dt, const float* row_loss, int N, int64_t count) {
  __shared__ double sh[1024];
  double s = 0.0;
  for (int i = threadIdx.x; i < N; i += blockDim.x) s += row_loss[i];
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) sh[threadIdx.x] += sh[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    write_scalar(loss, dt,
                 count > 0 ? static_cast<float>(sh[0] / static_cast<double>(count)) : NAN);
}

// Column sums of E [V, W]: split rows into kVocabColsumSplits ranges (partial [S, W]), then add
// the partials in order (deterministic).
template <typename T>
__global__ void colsum_partial_kernel(float* partial, const T* emb, int64_t V, int W,
                                      int64_t rows_per) {
  const int w = blockIdx.x * blockDim.x + threadIdx.x;
  const int s = blockIdx.y;
  if (w >= W) return;
  const int64_t r0 = s * rows_per, r1 = r0 + rows_per < V ? r0 + rows_per : V;
  float acc = 0.f;
  for (int64_t r = r0; r < r1; ++r) acc += to_f32(emb[r * W + w]);
  partial[static_cast<size_t>(s) * W + w] = acc;
}
__global__ void colsum_final_kernel(float* colsum, const float* partial, int W, int S) {
  const int w = blockIdx.x * blockDim.x + threadIdx.x;
  if (w >= W) return;
  float acc = 0.f;
  for (int s = 0; s < S; ++s) acc += partial[static_cast<size_t>(s) * W + w];
  colsum[w] = acc;
}

template <typename T>
__global__ void vocab_ce_backward_kernel(T* dh, const float* grad_dir, const void* dloss,
                                         DType dloss_dt, size_t n, int64_t count) {
  const float scale = count > 0 ? read_scalar(dloss, dloss_dt) / static_cast<float>(count) : NAN;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dh[i] = from_f32<T>(grad_dir[i] * scale);
}

// ---- host side --------------------------------------------------------------------------------

cudaDataType_t cuda_type(DType dt) {
  if (dt == DType::f16) return CUDA_R_16F;
  if (dt == DType::bf16) return CUDA_R_16BF;
  return CUDA_R_32F;
}

template <typename T>
void vocab_ce_forward_typed(const VocabCeForwardArgs& a) {
  const int N = static_cast<int>(a.N), W = static_cast<int>(a.W);
  const T* hidden = static_cast<const T*>(a.hidden);
  const T* emb = static_cast<const T*>(a.embedding);
  const bool grad = a.grad_dir != nullptr;
  // f32: P̃ overwrites the logits; 16-bit: P̃ goes to a separate buffer in the GEMM dtype.
  T* probs =
      grad ? (std::is_same_v<T, float> ? reinterpret_cast<T*>(a.logits) : static_cast<T*>(a.probs))
           : nullptr;
  const cudaDataType_t ty = cuda_type(a.dtype);
  cublasHandle_t h = cublas_handle();
  const float one = 1.f, zero = 0.f;
  if (N > 0) {
    if (grad) CUDA_CHECK(cudaMemsetAsync(a.grad_dir, 0, sizeof(float) * a.N * a.W, stream()));
    for (int64_t v0 = 0; v0 < a.V; v0 += a.chunk) {
      const int Vc = static_cast<int>(a.V - v0 < a.chunk ? a.V - v0 : a.chunk);
      const T* Ec = emb + v0 * a.W;
      // logits (col-major [Vc, N]) = E_chunk (col-major [W, Vc])ᵀ · hidden (col-major [W, N])
      CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, Vc, N, W, &one, Ec, ty, W, hidden, ty,
                                W, &zero, a.logits, CUDA_R_32F, Vc, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
      vocab_ce_chunk_kernel<T><<<N, kRowThreads, 0, stream()>>>(
          probs, a.grad_dir, a.logits, a.row_max, a.row_sum, a.row_sumx, a.row_xt, a.target,
          a.ignore_index, Vc, static_cast<int>(v0), W, v0 == 0);
      CUDA_CHECK_LAUNCH();
      if (grad) {
        // acc (col-major [W, N]) += E_chunk (col-major [W, Vc]) · P̃ (col-major [Vc, N])
        CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, W, N, Vc, &one, Ec, ty, W, probs, ty,
                                  Vc, &one, a.grad_dir, CUDA_R_32F, W, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
      }
    }
    const float* colsum = nullptr;
    if (grad && a.label_smoothing != 0.0) {
      const int64_t S = kVocabColsumSplits, rows_per = (a.V + S - 1) / S;
      colsum_partial_kernel<T>
          <<<dim3((W + 255) / 256, static_cast<unsigned>(S)), 256, 0, stream()>>>(
              a.colsum_partial, emb, a.V, W, rows_per);
      CUDA_CHECK_LAUNCH();
      colsum_final_kernel<<<(W + 255) / 256, 256, 0, stream()>>>(a.colsum, a.colsum_partial, W,
                                                                 static_cast<int>(S));
      CUDA_CHECK_LAUNCH();
      colsum = a.colsum;
    }
    vocab_ce_finalize_kernel<T><<<N, 256, 0, stream()>>>(
        a.row_loss, a.grad_dir, emb, colsum, a.row_max, a.row_sum, a.row_sumx, a.row_xt, a.target,
        a.ignore_index, W, a.V, static_cast<float>(a.label_smoothing));
    CUDA_CHECK_LAUNCH();
  }
  loss_mean_kernel<<<1, 1024, 0, stream()>>>(a.loss, a.dtype, a.row_loss, N, a.count);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void vocab_ce_forward(const VocabCeForwardArgs& a) {
  TGPT_CHECK(a.N <= INT_MAX && a.W <= INT_MAX && a.chunk <= INT_MAX && a.chunk > 0 &&
                 a.N * a.chunk <= (int64_t(1) << 40),
             "vocab_cross_entropy (CUDA): sizes out of range: N ", a.N, ", W ", a.W, ", chunk ",
             a.chunk);
  TGPT_CHECK(a.grad_dir == nullptr || a.dtype == DType::f32 || a.probs != nullptr,
             "vocab_cross_entropy (CUDA): missing probability workspace");
  switch (a.dtype) {
    case DType::f32: vocab_ce_forward_typed<float>(a); break;
    case DType::f16: vocab_ce_forward_typed<__half>(a); break;
    case DType::bf16: vocab_ce_forward_typed<__nv_bfloat16>(a); break;
    default: TGPT_FAIL("vocab_cross_entropy (CUDA): unsupported dtype ", dtype_name(a.dtype));
  }
}

void vocab_ce_backward(void* dhidden, DType dtype, const float* grad_dir, const void* dloss,
                       DType dloss_dtype, int64_t N, int64_t W, int64_t count) {
  const size_t n = static_cast<size_t>(N) * static_cast<size_t>(W);
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((n + 255) / 256, 4096));
  switch (dtype) {
    case DType::f32:
      vocab_ce_backward_kernel<float><<<blocks, 256, 0, stream()>>>(
          static_cast<float*>(dhidden), grad_dir, dloss, dloss_dtype, n, count);
      break;
    case DType::f16:
      vocab_ce_backward_kernel<__half><<<blocks, 256, 0, stream()>>>(
          static_cast<__half*>(dhidden), grad_dir, dloss, dloss_dtype, n, count);
      break;
    case DType::bf16:
      vocab_ce_backward_kernel<__nv_bfloat16><<<blocks, 256, 0, stream()>>>(
          static_cast<__nv_bfloat16*>(dhidden), grad_dir, dloss, dloss_dtype, n, count);
      break;
    default:
      TGPT_FAIL("vocab_cross_entropy backward (CUDA): unsupported dtype ", dtype_name(dtype));
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace tgpt::cuda
