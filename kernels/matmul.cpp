/*
 * matmul.cpp — device dispatch of linear and matmul (kernels/matmul.h). The CUDA backward passes
 * are written here as cuBLAS GEMMs (kernels/cuda/matmul.h) with the same shapes as the CPU
 * kernels' BLAS calls.
 */
#include "kernels/matmul.h"

#include <cstdio>
#include <mutex>
#include <string>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/onednn_gemm.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/tensor_kernels.h"
#endif

namespace tgpt::kernels {

bool cpu_bf16_gemm() {
  if (cpu::bf16_gemm_native()) return true;
  static std::once_flag noted;
  std::call_once(noted, [] {
    const std::string why =
        !cpu::onednn_native_bf16()
            ? "oneDNN's instruction set here, " + cpu::onednn_isa() + ", has no bf16 dot products"
        : cpu::gemm_backend() == cpu::GemmBackend::OpenBlas ? std::string("TGPT_GEMM=openblas")
                                                            : std::string("bf16 self-test failed");
    std::fprintf(stderr,
                 "tgpt: note: bf16 matrix products are computed in f32 on the CPU (%s); the "
                 "results are the f32 ones rounded to bf16\n",
                 why.c_str());
  });
  return false;
}

void check_gemm_kernel_dtype(Device dev, DType dt, const char* op) {
  if (dev == Device::CPU && dt == DType::bf16) return;
  check_kernel_dtype(dev, dt, op);
}

void check_gemm_extents(Device dev, const char* op, std::initializer_list<int64_t> extents) {
  if (dev != Device::CPU) return;  // cuBLAS takes 64-bit problem sizes through tgpt's wrapper
  for (int64_t e : extents)
    TGPT_CHECK(e <= cpu::gemm_max_extent(), op, ": extent ", e, " exceeds the BLAS integer limit ",
               cpu::gemm_max_extent());
}

void linear_forward(Device dev, DType dt, void* out, const void* x, const void* w, bool w_t,
                    const void* bias, int64_t rows, int64_t in, int64_t outf) {
  check_gemm_kernel_dtype(dev, dt, "linear");
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::linear_forward(dt, out, x, w, w_t, bias, rows, in, outf);
    return;
#else
    fail_without_cuda("linear");
#endif
  }
  if (rows == 0 || outf == 0) return;
  dispatch_gemm_float(dt, "linear", [&](auto tag) {
    using T = decltype(tag);
    cpu::linear_forward_cpu<T>(static_cast<T*>(out), static_cast<const T*>(x),
                               static_cast<const T*>(w), static_cast<const T*>(bias), rows, in,
                               outf, w_t);
    return 0;
  });
}

void linear_backward(Device dev, DType dt, void* dx, void* dw, void* dbias, const void* g,
                     const void* x, const void* w, bool w_t, int64_t rows, int64_t in,
                     int64_t outf) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    // dx [rows, in] = g [rows, outf] @ w [outf, in]
    if (dx)
      cuda::gemm(dt, dt, false, w_t, rows, in, outf, 1.f, g, outf, 0, w, w_t ? outf : in, 0, 0.f,
                 dx, in, 0, 1);
    // dw [outf, in] = gᵀ [outf, rows] @ x [rows, in]
    if (dw)
      cuda::gemm(dt, dt, true, false, outf, in, rows, 1.f, g, outf, 0, x, in, 0, 0.f, dw, in, 0, 1);
    if (dbias) cuda::column_sum(dt, dbias, g, rows, outf);
    return;
#else
    fail_without_cuda("linear backward");
#endif
  }
  dispatch_gemm_float(dt, "linear backward", [&](auto tag) {
    using T = decltype(tag);
    cpu::linear_backward_cpu<T>(static_cast<T*>(dx), static_cast<T*>(dw), static_cast<T*>(dbias),
                                static_cast<const T*>(g), static_cast<const T*>(x),
                                static_cast<const T*>(w), rows, in, outf, w_t);
    return 0;
  });
}

void matmul_forward(Device dev, DType dt, void* out, const void* a, bool a_t, const void* b,
                    bool b_t, int64_t batch, int64_t M, int64_t K, int64_t N, bool b_batched) {
  check_gemm_kernel_dtype(dev, dt, "matmul");
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    // out[b] [M, N] = a[b] [M, K] @ b[b] [K, N]
    cuda::gemm(dt, dt, a_t, b_t, M, N, K, 1.f, a, a_t ? M : K, M * K, b, b_t ? K : N,
               b_batched ? K * N : 0, 0.f, out, N, M * N, batch);
    return;
#else
    fail_without_cuda("matmul");
#endif
  }
  if (batch * M * N == 0) return;
  dispatch_gemm_float(dt, "matmul", [&](auto tag) {
    using T = decltype(tag);
    cpu::matmul_forward_cpu<T>(static_cast<T*>(out), static_cast<const T*>(a),
                               static_cast<const T*>(b), batch, M, K, N, a_t, b_t, b_batched);
    return 0;
  });
}

void matmul_backward(Device dev, DType dt, void* da, void* db, const void* g, const void* a,
                     bool a_t, const void* b, bool b_t, int64_t batch, int64_t M, int64_t K,
                     int64_t N, bool b_batched) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    // da[b] [M, K] = g[b] [M, N] @ b[b]ᵀ [N, K]
    if (da)
      cuda::gemm(dt, dt, false, !b_t, M, K, N, 1.f, g, N, M * N, b, b_t ? K : N,
                 b_batched ? K * N : 0, 0.f, da, K, M * K, batch);
    if (db && b_batched) {
      // db[b] [K, N] = a[b]ᵀ [K, M] @ g[b] [M, N]
      cuda::gemm(dt, dt, !a_t, false, K, N, M, 1.f, a, a_t ? M : K, M * K, g, N, M * N, 0.f, db, N,
                 K * N, batch);
    } else if (db) {
      // Shared b: db [K, N] = aᵀ [K, batch*M] @ g [batch*M, N], a as one [batch*M, K] matrix
      // (a transposed buffer is first copied to that layout).
      const size_t esize = dtype_size(dt);
      Scratch a_rows(dev, a_t ? static_cast<size_t>(batch * M * K) * esize : 0);
      const void* ac = a;
      if (a_t) {
        const int64_t shape[3] = {batch, M, K};
        const int64_t src_strides[3] = {M * K, 1, M}, dst_strides[3] = {M * K, K, 1};
        cuda::strided_copy(a_rows.get(), dst_strides, a, src_strides, shape, 3, esize);
        ac = a_rows.get();
      }
      cuda::gemm(dt, dt, true, false, K, N, batch * M, 1.f, ac, K, 0, g, N, 0, 0.f, db, N, 0, 1);
    }
    return;
#else
    fail_without_cuda("matmul backward");
#endif
  }
  dispatch_gemm_float(dt, "matmul backward", [&](auto tag) {
    using T = decltype(tag);
    cpu::matmul_backward_cpu<T>(static_cast<T*>(da), static_cast<T*>(db), static_cast<const T*>(g),
                                static_cast<const T*>(a), static_cast<const T*>(b), batch, M, K, N,
                                a_t, b_t, b_batched);
    return 0;
  });
}

}  // namespace tgpt::kernels
