/*
 * cuda_common.h — CUDA error-check macros and device queries shared by the CUDA backend.
 *
 * Every CUDA runtime call and kernel launch goes through CUDA_CHECK / CUDA_CHECK_LAUNCH, which
 * throw tgpt::Error with the CUDA error string, file and line.
 */
#pragma once

#include <cuda_runtime.h>

#include "engine/error.h"

#define CUDA_CHECK(call)                                                             \
  do {                                                                               \
    cudaError_t err_ = (call);                                                       \
    if (err_ != cudaSuccess)                                                         \
      ::tgpt::throw_error(                                                           \
          __FILE__, __LINE__,                                                        \
          ::tgpt::str_cat("CUDA error: ", cudaGetErrorString(err_), " in ", #call)); \
  } while (0)

#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

namespace tgpt::cuda {

// True when the CUDA runtime reports at least one device (never throws).
bool device_available();
// The stream every tgpt kernel runs on (one per process for now).
cudaStream_t stream();
// Test aid: while on, every block the CUDA allocator hands out is first filled with 0xff bytes
// (NaN in f32, f16 and bf16), so an op that leaves output elements unwritten is caught.
void set_poison_allocations(bool on);

}  // namespace tgpt::cuda
