/*
 * device.h — where a tensor's memory lives, and the allocator interface with memory accounting.
 *
 * Every device has one allocator. Allocators count bytes handed out (current and peak) so that
 * benchmarks can report peak memory, and count calls to the system allocator so that tests can
 * prove a repeated training step allocates nothing new. The CPU allocator caches freed blocks by
 * size; the CUDA backend registers its own caching allocator when it is compiled in.
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace tgpt {

enum class Device : uint8_t { CPU, CUDA };

const char* device_name(Device d);

// True when tgpt was built with TGPT_CUDA and a CUDA device is present (initialises the backend).
bool cuda_available();

struct MemoryStats {
  size_t current_bytes = 0;   // bytes held by live storages
  size_t peak_bytes = 0;      // maximum of current_bytes since the last reset_peak()
  size_t reserved_bytes = 0;  // bytes obtained from the system (live + cached)
  uint64_t system_allocs = 0; // calls to the system allocator (malloc / cudaMalloc)
  uint64_t system_frees = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  virtual void* allocate(size_t nbytes) = 0;  // never returns null for nbytes > 0 (throws)
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void release_cached() = 0;  // return cached blocks to the system
};

// The allocator of a device. Throws tgpt::Error for CUDA when no CUDA backend is available.
Allocator& allocator_for(Device d);
// Installs the allocator used for a device (the CUDA backend calls this).
void register_allocator(Device d, Allocator* a);
MemoryStats memory_stats(Device d);
void reset_peak_memory(Device d);

// Copies nbytes between buffers on any pair of devices (CPU<->CUDA goes through the backend).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);
// Installs the routine used when either side of copy_bytes is not the CPU.
using CopyFn = void (*)(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);
void register_device_copy(CopyFn fn);

}  // namespace tgpt
