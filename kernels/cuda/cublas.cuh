/*
 * cublas.cuh — tgpt's one cuBLAS handle (created in matmul.cu on first use, bound to the tgpt
 * stream, with its workspace from the caching allocator) and the cuBLAS status check. For .cu
 * files that call cuBLAS directly (matmul.cu, vocab_ce.cu).
 */
#pragma once

#include <cublas_v2.h>

#include "base/error.h"

#define CUBLAS_CHECK(call)                                                               \
  do {                                                                                   \
    cublasStatus_t st_ = (call);                                                         \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::tgpt::throw_error(                                                               \
          __FILE__, __LINE__,                                                            \
          ::tgpt::str_cat("cuBLAS error: ", cublasGetStatusString(st_), " in ", #call)); \
  } while (0)

namespace tgpt::cuda {

cublasHandle_t cublas_handle();

}  // namespace tgpt::cuda
