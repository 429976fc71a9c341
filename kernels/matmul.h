/*
 * matmul.h — launchers for the matrix products with autograd in engine/ops_matmul.cpp: linear
 * (x @ wᵀ + b) and batched matmul.
 *
 * Buffers are row-major; a buffer flagged `*_t` holds the transpose of its logical matrix (a
 * transposed view whose transpose is contiguous), so no transpose is materialised. CPU:
 * kernels/cpu/matmul.h on oneDNN and OpenBLAS (f32, f64, and bf16 with f32 accumulation where
 * cpu_bf16_gemm()). CUDA: kernels/cuda/matmul.h on cuBLAS/cuBLASLt (f32, f16, bf16 with f32
 * accumulation). Backward reads x (for dw) and w (for dx), a and b.
 */
#pragma once

#include <cstdint>
#include <initializer_list>

#include "kernels/launch.h"

namespace tgpt::kernels {

// Whether the CPU runs bf16 GEMMs (linear, matmul, conv2d_patch) in bf16 (oneDNN on a CPU with
// bf16 dot products: cpu::bf16_gemm_native()). When not, the ops compute bf16 tensors in f32, and
// the first call prints a note saying so on stderr.
bool cpu_bf16_gemm();

// As check_kernel_dtype, and bf16 on the CPU (the GEMM-based kernels' CPU bf16 path).
void check_gemm_kernel_dtype(Device dev, DType dt, const char* op);

// As dispatch_float, and T = bf16 for bf16 (the GEMM-based CPU kernels).
template <typename F>
decltype(auto) dispatch_gemm_float(DType dt, const char* op, F&& f) {
  if (dt == DType::bf16) return f(bf16{});
  return dispatch_float(dt, op, f);
}

// Throws when an extent exceeds what the device's GEMM accepts (the BLAS integer on the CPU).
void check_gemm_extents(Device dev, const char* op, std::initializer_list<int64_t> extents);

// out [rows, outf] = x [rows, in] @ wᵀ + bias; w [outf, in] (w_t: the buffer holds wᵀ
// [in, outf]); bias [outf] or null.
void linear_forward(Device dev, DType dt, void* out, const void* x, const void* w, bool w_t,
                    const void* bias, int64_t rows, int64_t in, int64_t outf);
// dx [rows, in] = g @ w; dw [outf, in] = gᵀ @ x; dbias [outf] = column sums of g. Each of
// dx/dw/dbias may be null (skipped); x is read only for dw, w only for dx.
void linear_backward(Device dev, DType dt, void* dx, void* dw, void* dbias, const void* g,
                     const void* x, const void* w, bool w_t, int64_t rows, int64_t in,
                     int64_t outf);

// out [batch, M, N] = a [batch, M, K] @ b [(batch), K, N]; b_batched false: one b shared by
// every batch entry. a_t / b_t: each batch entry's buffer holds the transpose.
void matmul_forward(Device dev, DType dt, void* out, const void* a, bool a_t, const void* b,
                    bool b_t, int64_t batch, int64_t M, int64_t K, int64_t N, bool b_batched);
// da [batch, M, K] = g @ bᵀ; db [(batch), K, N] = aᵀ @ g (summed over the batch when b is
// shared). da or db may be null; they are written in logical row-major layout.
void matmul_backward(Device dev, DType dt, void* da, void* db, const void* g, const void* a,
                     bool a_t, const void* b, bool b_t, int64_t batch, int64_t M, int64_t K,
                     int64_t N, bool b_batched);

}  // namespace tgpt::kernels
