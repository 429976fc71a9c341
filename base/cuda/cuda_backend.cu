/*
 * cuda_backend.cu — the CUDA device backend: the caching allocator core (base/caching_allocator.h)
 * on cudaMalloc (no cudaMalloc in a steady training step), host<->device copies on the tgpt
 * stream, and registration with the engine's device interface (base/device.h).
 *
 * Requests are rounded up to 512 bytes (small) or 2 MiB (large). A freed block may be handed out
 * again at once: frees are stream-ordered because every tgpt kernel runs on the one tgpt stream;
 * blocks go back to the system only after the stream has finished.
 */
#include <atomic>

#include "base/caching_allocator.h"
#include "base/cuda/cuda_common.h"
#include "base/device.h"

namespace tgpt::cuda {

namespace {

std::atomic<bool> g_poison{false};

// The CUDA side of the caching allocator: cudaMalloc'd blocks rounded up to 512 bytes (small) or
// 2 MiB (large); cached blocks are freed only after the stream has finished with them.
SystemAllocator cuda_system() {
  SystemAllocator s;
  s.alloc = [](size_t n) -> void* {
    void* p = nullptr;
    if (cudaMalloc(&p, n) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky-free error state of a failed allocation
      return nullptr;
    }
    return p;
  };
  s.free = [](void* p) { CUDA_CHECK(cudaFree(p)); };
  s.round_up = [](size_t n) {
    constexpr size_t kSmall = 512, kLarge = size_t(2) << 20;
    if (n == 0) return kSmall;
    const size_t q = n < kLarge ? kSmall : kLarge;
    return (n + q - 1) / q * q;
  };
  s.fill = [](void* p, int byte, size_t n) { CUDA_CHECK(cudaMemsetAsync(p, byte, n, stream())); };
  s.before_release = [] { CUDA_CHECK(cudaStreamSynchronize(stream())); };
  return s;
}

// Created by cuda_backend_init and never destroyed (tensors may outlive static destructors).
CachingAllocator* g_allocator = nullptr;

void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  cudaMemcpyKind kind =
      dst_dev == Device::CUDA
          ? (src_dev == Device::CUDA ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
          : cudaMemcpyDeviceToHost;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, stream()));
  if (kind != cudaMemcpyDeviceToDevice) CUDA_CHECK(cudaStreamSynchronize(stream()));
}

}  // namespace

void set_poison_allocations(bool on) {
  g_poison.store(on, std::memory_order_relaxed);
  if (g_allocator) g_allocator->set_poison(on);
}

bool device_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}

}  // namespace tgpt::cuda

namespace tgpt {

// Called by the engine the first time CUDA memory is requested (base/device.cpp).
bool cuda_backend_init() {
  static const bool ok = [] {
    if (!cuda::device_available()) return false;
    cuda::g_allocator = new CachingAllocator(Device::CUDA, cuda::cuda_system());
    cuda::g_allocator->set_poison(cuda::g_poison.load(std::memory_order_relaxed));
    register_allocator(Device::CUDA, cuda::g_allocator);
    register_device_copy(&cuda::device_copy);
    return true;
  }();
  return ok;
}

}  // namespace tgpt
