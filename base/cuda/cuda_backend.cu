/*
 * cuda_backend.cu — the CUDA device backend: a caching device allocator (no cudaMalloc in a
 * steady training step), host<->device copies on the tgpt stream, and registration with the
 * engine's device interface (base/device.h).
 *
 * The allocator rounds requests up to 512 bytes (small) or 2 MiB (large) and keeps freed blocks
 * in per-size free lists. Blocks are reused only after the stream has finished with them: frees
 * are stream-ordered because every tgpt kernel runs on the one tgpt stream.
 */
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/cuda/cuda_common.h"
#include "base/device.h"

namespace tgpt::cuda {

namespace {

std::atomic<bool> g_poison{false};

class CudaCachingAllocator final : public Allocator {
 public:
  Device device() const override { return Device::CUDA; }

  void* allocate(size_t nbytes) override {
    size_t size = round_up(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    void* p = nullptr;
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
    } else {
      cudaError_t err = cudaMalloc(&p, size);
      if (err != cudaSuccess) {
        (void)cudaGetLastError();
        release_cached_locked();
        CUDA_CHECK(cudaMalloc(&p, size));
      }
      ++stats_.system_allocs;
      stats_.reserved_bytes += size;
    }
    stats_.current_bytes += size;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    if (g_poison.load(std::memory_order_relaxed))
      CUDA_CHECK(cudaMemsetAsync(p, 0xff, size, stream()));  // NaN in f32, f16 and bf16
    return p;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    size_t size = round_up(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.current_bytes -= size;
    free_[size].push_back(ptr);
  }

  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes = stats_.current_bytes;
  }
  void release_cached() override {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

 private:
  static size_t round_up(size_t n) {
    constexpr size_t kSmall = 512, kLarge = size_t(2) << 20;
    if (n == 0) return kSmall;
    size_t q = n < kLarge ? kSmall : kLarge;
    return (n + q - 1) / q * q;
  }
  void release_cached_locked() {
    CUDA_CHECK(cudaStreamSynchronize(stream()));
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        CUDA_CHECK(cudaFree(p));
        ++stats_.system_frees;
        stats_.reserved_bytes -= size;
      }
      blocks.clear();
    }
  }

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats stats_;
};

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
    static cuda::CudaCachingAllocator allocator;
    register_allocator(Device::CUDA, &allocator);
    register_device_copy(&cuda::device_copy);
    return true;
  }();
  return ok;
}

}  // namespace tgpt
