/*
 * device.cpp — the CPU allocator, the allocator registry and cross-device copies.
 *
 * The CPU allocator is the caching allocator core (base/caching_allocator.h) on aligned_alloc:
 * requests are rounded up to 64 bytes (cache line) and freed blocks are kept in per-size free
 * lists; a later request of the same rounded size reuses one without calling the system.
 */
#include "base/device.h"

#include <cstdlib>
#include <cstring>

#include "base/caching_allocator.h"
#include "base/error.h"

namespace tgpt {

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

namespace {

constexpr size_t kAlign = 64;  // a cache line

// The CPU side of the caching allocator: 64-byte aligned blocks, rounded to 64 bytes.
SystemAllocator cpu_system() {
  SystemAllocator s;
  s.alloc = [](size_t n) { return std::aligned_alloc(kAlign, n); };
  s.free = [](void* p) { std::free(p); };
  s.round_up = [](size_t n) { return n == 0 ? kAlign : (n + kAlign - 1) / kAlign * kAlign; };
  s.fill = [](void* p, int byte, size_t n) { std::memset(p, byte, n); };
  return s;
}

// Function-local statics: the CPU allocator outlives every tensor with static storage duration
// that is created after first use.
CachingAllocator& cpu_allocator() {
  static auto* a = new CachingAllocator(Device::CPU, cpu_system());  // never destroyed: tensors
  return *a;                                                         // may outlive statics
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
