/*
 * device.cpp — the caching CPU allocator, the allocator registry and cross-device copies.
 *
 * The CPU allocator rounds requests up to 64 bytes (cache line) and keeps freed blocks in per-size
 * free lists; a later request of the same rounded size reuses one without calling the system.
 */
#include "base/device.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "base/error.h"

namespace tgpt {

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

namespace {

constexpr size_t kAlign = 64;

class CpuCachingAllocator final : public Allocator {
 public:
  ~CpuCachingAllocator() override { release_cached(); }
  Device device() const override { return Device::CPU; }

  void* allocate(size_t nbytes) override {
    size_t size = round_up(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size;
    } else {
      p = std::aligned_alloc(kAlign, size);
      if (!p) {
        // Give cached blocks back and try once more before failing.
        release_cached_locked();
        p = std::aligned_alloc(kAlign, size);
      }
      TGPT_CHECK(p != nullptr, "out of host memory allocating ", nbytes, " bytes");
      ++stats_.system_allocs;
      stats_.reserved_bytes += size;
    }
    stats_.current_bytes += size;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    return p;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    size_t size = round_up(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.current_bytes -= size;
    free_[size].push_back(ptr);
    cached_bytes_ += size;
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
  static size_t round_up(size_t n) { return n == 0 ? kAlign : (n + kAlign - 1) / kAlign * kAlign; }
  void release_cached_locked() {
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        std::free(p);
        ++stats_.system_frees;
        stats_.reserved_bytes -= size;
      }
      blocks.clear();
    }
    cached_bytes_ = 0;
  }

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
  MemoryStats stats_;
};

// Function-local statics: the CPU allocator outlives every tensor with static storage duration
// that is created after first use.
CpuCachingAllocator& cpu_allocator() {
  static auto* a = new CpuCachingAllocator();  // never destroyed: tensors may outlive statics
  return *a;
}
Allocator*& cuda_allocator_slot() {
  static Allocator* a = nullptr;
  return a;
}
CopyFn& device_copy_slot() {
  static CopyFn fn = nullptr;
  return fn;
}

}  // namespace

#ifdef TGPT_WITH_CUDA
bool cuda_backend_init();  // base/cuda/cuda_backend.cu
#else
static bool cuda_backend_init() { return false; }
#endif

bool cuda_available() { return cuda_backend_init(); }

Allocator& allocator_for(Device d) {
  if (d == Device::CPU) return cpu_allocator();
  cuda_backend_init();
  Allocator* a = cuda_allocator_slot();
  TGPT_CHECK(a != nullptr,
             "no CUDA device available (tgpt built without TGPT_CUDA, or no GPU was found)");
  return *a;
}

void register_allocator(Device d, Allocator* a) {
  TGPT_CHECK(d == Device::CUDA, "the CPU allocator is built in");
  cuda_allocator_slot() = a;
}

MemoryStats memory_stats(Device d) { return allocator_for(d).stats(); }
void reset_peak_memory(Device d) { allocator_for(d).reset_peak(); }

void register_device_copy(CopyFn fn) { device_copy_slot() = fn; }

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev == Device::CPU && src_dev == Device::CPU) {
    std::memmove(dst, src, nbytes);
    return;
  }
  cuda_backend_init();
  CopyFn fn = device_copy_slot();
  TGPT_CHECK(fn != nullptr, "no CUDA device available for a copy involving CUDA memory");
  fn(dst, dst_dev, src, src_dev, nbytes);
}

}  // namespace tgpt
