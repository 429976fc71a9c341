/*
 * caching_allocator.cpp — the caching allocator core (caching_allocator.h).
 */
#include "base/caching_allocator.h"

#include "base/error.h"

namespace tgpt {

CachingAllocator::CachingAllocator(Device device, SystemAllocator system)
    : device_(device), sys_(system) {
  TGPT_CHECK(sys_.alloc && sys_.free && sys_.round_up && sys_.fill,
             "CachingAllocator: incomplete system allocator for ", device_name(device));
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = sys_.round_up(nbytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
    } else {
      p = sys_.alloc(size);
      if (!p) {
        // Give cached blocks back and try once more before failing.
        release_cached_locked();
        p = sys_.alloc(size);
      }
      TGPT_CHECK(p != nullptr, "out of ", device_name(device_), " memory allocating ", nbytes,
                 " bytes (", stats_.current_bytes, " bytes in use)");
      ++stats_.system_allocs;
      stats_.reserved_bytes += size;
    }
    stats_.current_bytes += size;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
  }
  if (poison_.load(std::memory_order_relaxed)) sys_.fill(p, 0xff, size);
  return p;
}

void CachingAllocator::deallocate(void* ptr, size_t nbytes) {
  if (!ptr) return;
  const size_t size = sys_.round_up(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.current_bytes -= size;
  free_[size].push_back(ptr);
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_bytes = stats_.current_bytes;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  bool any = false;
  for (auto& [size, blocks] : free_) any = any || !blocks.empty();
  if (!any) return;
  if (sys_.before_release) sys_.before_release();
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) {
      sys_.free(p);
      ++stats_.system_frees;
      stats_.reserved_bytes -= size;
    }
    blocks.clear();
  }
}

}  // namespace tgpt
