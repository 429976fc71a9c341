/*
 * test_tensor.cpp — tensor factories, dtype conversion, views, strided copies, allocator stats.
 */
#include "engine/tensor.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/test_util.h"

using namespace tgpt;

TEST(Tensor, FactoriesAndMetadata) {
  Tensor t = Tensor::zeros({2, 3, 4});
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.strides(), Shape({12, 4, 1}));
  EXPECT_EQ(t.str(), "f32[2, 3, 4] cpu");
  Tensor f = Tensor::full({5}, 2.5, DType::f64);
  for (double v : f.to_double_vector()) EXPECT_EQ(v, 2.5);
  Tensor s = Tensor::full({}, 7.0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 7.0);
  EXPECT_THROW(Tensor::zeros({1, 2, 3, 4, 5, 6}), Error);
  EXPECT_THROW(Tensor::empty({-1, 2}), Error);
  EXPECT_THROW(t.data<double>(), Error);
}

TEST(Tensor, AllDtypesRoundTrip) {
  std::vector<double> v = {0.0, 1.0, 2.0, 3.0, 100.0, 255.0};
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64,
                   DType::u8}) {
    Tensor t = Tensor::from_vector(v, {2, 3}, dt);
    EXPECT_EQ(t.nbytes(), 6 * dtype_size(dt));
    EXPECT_EQ(t.to_double_vector(), v) << dtype_name(dt);
  }
}

TEST(Tensor, HalfConversionsRoundToNearestEven) {
  // f16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> rounds to even (1).
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11))), 1.0f + std::ldexp(1.0f, -9));
  EXPECT_EQ(f16_to_f32(f32_to_f16(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(70000.0f))));
  EXPECT_EQ(f16_to_f32(f32_to_f16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));  // subnormal
  EXPECT_EQ(f16_to_f32(f32_to_f16(std::ldexp(1.0f, -14))), std::ldexp(1.0f, -14));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  // every f16 bit pattern survives f16 -> f32 -> f16
  for (uint32_t b = 0; b < 65536; ++b) {
    f16 h{static_cast<uint16_t>(b)};
    float f = f16_to_f32(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f).bits, h.bits) << b;
  }
  // bf16: 1 + 2^-8 halfway -> 1 (even); 1 + 3*2^-8 -> 1 + 2^-6
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), Shape({3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.to_double_vector(), std::vector<double>({0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(tt.storage().get(), t.storage().get());
  Tensor c = tt.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage().get(), t.storage().get());
  Tensor n = t.narrow(1, 1, 2);
  EXPECT_EQ(n.to_double_vector(), std::vector<double>({1, 2, 4, 5}));
  EXPECT_EQ(t.select(0, 1).to_double_vector(), std::vector<double>({3, 4, 5}));
  Tensor r = t.reshape({3, -1});
  EXPECT_EQ(r.shape(), Shape({3, 2}));
  EXPECT_EQ(r.storage().get(), t.storage().get());
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(t.narrow(1, 2, 2), Error);
  Tensor p = Tensor::from_vector(std::vector<double>(24, 0.0), {2, 3, 4}).permute({2, 0, 1});
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(t.unsqueeze(0).shape(), Shape({1, 2, 3}));
  EXPECT_EQ(t.unsqueeze(0).squeeze(0).shape(), Shape({2, 3}));
  EXPECT_EQ(t.flatten().shape(), Shape({6}));
  // writes through a view are visible in the base
  n.fill_(9);
  EXPECT_EQ(t.to_double_vector(), std::vector<double>({0, 9, 9, 3, 9, 9}));
}

TEST(Tensor, CopyBetweenLayoutsAndDtypes) {
  Tensor src = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::f64);
  Tensor dst = Tensor::zeros({3, 2}, DType::bf16);
  dst.copy_(src.transpose(0, 1));
  EXPECT_EQ(dst.to_double_vector(), std::vector<double>({1, 4, 2, 5, 3, 6}));
  Tensor big = Tensor::zeros({4, 4});
  big.narrow(0, 1, 2).narrow(1, 1, 2).copy_(Tensor::ones({2, 2}));
  EXPECT_EQ(sum(big).item(), 4.0);
  EXPECT_EQ(big.to_double_vector()[5], 1.0);
  EXPECT_THROW(dst.copy_(src), Error);
}

TEST(Tensor, CudaWithoutDeviceIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present (see the cuda-labelled tests)";
  try {
    Tensor::empty({2}, DType::f32, Device::CUDA);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

TEST(Allocator, CachesBlocksAndTracksPeak) {
  Allocator& a = allocator_for(Device::CPU);
  {
    Tensor warm = Tensor::empty({1000});
  }
  MemoryStats s0 = a.stats();
  a.reset_peak();
  {
    Tensor t = Tensor::empty({1000});  // reuses the cached block
    MemoryStats s1 = a.stats();
    EXPECT_EQ(s1.system_allocs, s0.system_allocs);
    EXPECT_GE(s1.current_bytes, s0.current_bytes + 4000);
    EXPECT_GE(s1.peak_bytes, s1.current_bytes);
  }
  EXPECT_EQ(a.stats().current_bytes, s0.current_bytes);
}
