/*
 * onednn_gemm.h — CPU GEMMs on oneDNN (libdnnl 2.x matmul primitives), which picks its kernels
 * from the CPU's instruction set at run time (AVX2, AVX-512, AVX512-BF16, AMX): f32, and bf16
 * operands with f32 accumulation and an f32 or bf16 result.
 *
 * Same contract as kernels/cpu/matmul.h's gemm: C[M,N] = alpha * op(A) op(B) + beta * C,
 * row-major; op(A) is A[M,K] (lda >= K) or, with trans_a, the transpose of A[K,M] (lda >= M);
 * likewise for B. Transposes and leading dimensions become memory strides (nothing is copied);
 * alpha is oneDNN's output scale, beta a sum post-op (C is read only when beta != 0).
 *
 * One primitive per (types, shape, strides, alpha, beta, thread count) is created on first use
 * and kept (creation costs 0.2-0.5 ms; executing a cached one ~5 us of overhead). Scratch memory
 * is per calling thread, so calls from several threads are safe. Call from outside OpenMP
 * parallel regions for multi-threaded GEMMs (inside one, oneDNN runs on the calling thread).
 */
#pragma once

#include <cstdint>
#include <string>

#include "base/dtype.h"

namespace tgpt::cpu {

void gemm_onednn(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc);

// bf16 A and B, f32 accumulation; C f32 or bf16 (rounded to nearest even once, at the end).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const bf16* A, int64_t lda, const bf16* B, int64_t ldb, float beta, float* C,
               int64_t ldc);
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const bf16* A, int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C,
               int64_t ldc);

// oneDNN's version, e.g. "oneDNN 2.6.3".
std::string onednn_version();
// The instruction set oneDNN's kernels use on this CPU (dnnl_get_effective_cpu_isa), e.g.
// "avx512_core_bf16".
std::string onednn_isa();
// True when that instruction set has bf16 dot products (AVX512-BF16 or AMX): bf16 GEMMs run
// natively. Otherwise oneDNN would emulate them, slower than f32.
bool onednn_native_bf16();
// The implementation oneDNN picks for an f32 (bf16 = false) or bf16 GEMM of a typical shape
// (e.g. "brg:avx512_core"), for reports.
std::string onednn_impl_name(bool bf16);

// Number of cached primitives (for tests and benchmarks).
int64_t onednn_cached_primitives();

}  // namespace tgpt::cpu
