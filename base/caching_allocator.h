/*
 * caching_allocator.h — the one caching allocator core behind every device's allocator: a
 * size-bucketed cache of freed blocks, memory statistics and an optional poison fill, on top of a
 * device's system allocate/free (malloc for the CPU, cudaMalloc for CUDA).
 *
 * Requests are rounded up by the device's rounding rule; a freed block goes to the free list of
 * its rounded size and a later request of that size reuses it without calling the system. When
 * the system allocation fails, cached blocks are given back and the allocation is tried once
 * more before a tgpt::Error. With poisoning on, every block handed out is filled with 0xff bytes
 * (NaN in f32, f16 and bf16) so that reads of unwritten memory show up in results.
 */
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/device.h"

namespace tgpt {

// What a device supplies to the core. alloc returns null on failure (never throws); fill writes
// nbytes copies of byte at p (may be asynchronous on the device's stream); before_release, when
// non-null, runs before cached blocks are freed (CUDA: waits for the stream).
struct SystemAllocator {
  void* (*alloc)(size_t nbytes) = nullptr;
  void (*free)(void* p) = nullptr;
  size_t (*round_up)(size_t nbytes) = nullptr;
  void (*fill)(void* p, int byte, size_t nbytes) = nullptr;
  void (*before_release)() = nullptr;
};

class CachingAllocator final : public Allocator {
 public:
  // Never returns its cached blocks on destruction: make it a never-destroyed object (tensors
  // may outlive static destructors).
  CachingAllocator(Device device, SystemAllocator system);

  Device device() const override { return device_; }
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  MemoryStats stats() const override;
  void reset_peak() override;
  void release_cached() override;

  // Fill every block handed out from now on with 0xff bytes (off by default).
  void set_poison(bool on) { poison_.store(on, std::memory_order_relaxed); }

 private:
  void release_cached_locked();

  const Device device_;
  const SystemAllocator sys_;
  std::atomic<bool> poison_{false};
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats stats_;
};

}  // namespace tgpt
