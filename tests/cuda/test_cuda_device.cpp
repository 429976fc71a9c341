/*
 * test_cuda_device.cpp — CUDA device tensors: host<->device round trips in every dtype, the
 * caching allocator's accounting. Labelled `cuda`; skips when no CUDA device is present.
 */
#include <gtest/gtest.h>

#include "engine/ops.h"
#include "engine/random.h"

using namespace tgpt;

#define SKIP_WITHOUT_CUDA() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device"

TEST(CudaDevice, RoundTripAllDtypes) {
  SKIP_WITHOUT_CUDA();
  Generator gen(1);
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64,
                   DType::u8}) {
    Tensor h = gen.uniform({3, 5, 7}, 0, 100, DType::f64).to(dt);
    Tensor d = h.to(Device::CUDA);
    EXPECT_EQ(d.device(), Device::CUDA);
    EXPECT_EQ(d.to(Device::CPU).to_double_vector(), h.to_double_vector()) << dtype_name(dt);
  }
}

TEST(CudaDevice, StridedHostViewUploadsContiguous) {
  SKIP_WITHOUT_CUDA();
  Tensor h = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor d = h.transpose(0, 1).to(Device::CUDA);
  EXPECT_EQ(d.to_double_vector(), std::vector<double>({0, 3, 1, 4, 2, 5}));
}

TEST(CudaDevice, AllocatorCachesAndCounts) {
  SKIP_WITHOUT_CUDA();
  { Tensor warm = Tensor::empty({1 << 20}, DType::f32, Device::CUDA); }
  MemoryStats s0 = memory_stats(Device::CUDA);
  {
    Tensor t = Tensor::empty({1 << 20}, DType::f32, Device::CUDA);
    MemoryStats s1 = memory_stats(Device::CUDA);
    EXPECT_EQ(s1.system_allocs, s0.system_allocs);
    EXPECT_GE(s1.current_bytes, s0.current_bytes + (4u << 20));
    EXPECT_GE(s1.peak_bytes, s1.current_bytes);
  }
  EXPECT_EQ(memory_stats(Device::CUDA).current_bytes, s0.current_bytes);
}
