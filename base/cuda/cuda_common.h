/*
 * cuda_common.h — CUDA error-check macros and device queries shared by the CUDA backend.
 *
 * Every CUDA runtime call and kernel launch goes through CUDA_CHECK / CUDA_CHECK_LAUNCH, which
 * throw tgpt::Error with the CUDA error string, file and line. cuda::Event is an RAII CUDA event
 * recorded on the tgpt stream, for timing (the kernel labs use it).
 */
#pragma once

#include <cuda_runtime.h>

#include "base/error.h"

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

// A CUDA event owned by this object (destroyed with it), recorded on the tgpt stream:
//   cuda::Event a, b; a.record(); launch(...); b.record(); float ms = b.elapsed_ms_since(a);
class Event {
 public:
  Event() { CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() {
    if (e_) cudaEventDestroy(e_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&& o) noexcept : e_(o.e_) { o.e_ = nullptr; }
  Event& operator=(Event&& o) noexcept {
    if (this != &o) {
      if (e_) cudaEventDestroy(e_);
      e_ = o.e_;
      o.e_ = nullptr;
    }
    return *this;
  }
  // Records the event on tgpt's stream (after the work queued there so far).
  void record() { CUDA_CHECK(cudaEventRecord(e_, stream())); }
  void synchronize() { CUDA_CHECK(cudaEventSynchronize(e_)); }
  // Milliseconds from `start` to this event; waits for this event to complete.
  float elapsed_ms_since(const Event& start) {
    synchronize();
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return ms;
  }
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

}  // namespace tgpt::cuda
