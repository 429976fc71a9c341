/*
 * test_cuda_clip_contrastive_loss.cpp — the CUDA clip_contrastive_loss through the engine op
 * against the CPU op in f64: f32 features (CLIP batch shapes N = 256, E = 512 and odd ones, N = 1)
 * at the initial scale ln(1/0.07), a small scale and a clamped one (dscale exactly 0), loss within
 * 2e-5 relative and every gradient within 1e-4 of its largest value; bf16 features with an f32
 * parameter within 2e-2; a frozen text side and parameter (no gradients computed for them); a
 * parameter on another device refused. Outputs come from NaN-poisoned blocks. Skips without a
 * CUDA device.
 */
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "tests/cuda/fused_test_util.h"

using namespace tgpt;
using namespace tgpt::test;

namespace {

struct ClipResult {
  double loss = 0;
  std::vector<double> dimg, dtxt;
  double dscale = 0;
  bool has_dscale = false;
};

ClipResult run_clip(const Tensor& img_host, const Tensor& txt_host, double p, DType dt,
                    DType param_dt, Device dev, bool grad_txt = true, bool grad_param = true) {
  Tensor img = img_host.to(dt).to(dev).set_requires_grad(true);
  Tensor txt = txt_host.to(dt).to(dev);
  if (grad_txt) txt.set_requires_grad(true);
  Tensor ps = Tensor::full({}, p, param_dt).to(dev);
  if (grad_param) ps.set_requires_grad(true);
  if (dev == Device::CUDA)
    poison_cuda_cache({dtype_size(dt), static_cast<size_t>(img.numel()) * dtype_size(dt),
                       static_cast<size_t>(img.size(0) * img.size(0)) * 4});
  Tensor loss = clip_contrastive_loss(img, txt, ps);
  EXPECT_EQ(loss.device(), dev);
  loss.backward(Tensor::full({}, 0.75, loss.dtype()).to(dev));
  ClipResult r;
  r.loss = loss.item();
  r.dimg = img.grad().to_double_vector();
  if (grad_txt) r.dtxt = txt.grad().to_double_vector();
  if (grad_param) {
    r.dscale = ps.grad().item();
    r.has_dscale = true;
  }
  return r;
}

void expect_loss_close(double ours, double ref, double rel, const std::string& what) {
  std::printf("    %-40s loss %.8g vs %.8g (rel %.2e)\n", what.c_str(), ours, ref,
              std::abs(ours - ref) / std::abs(ref));
  EXPECT_TRUE(std::isfinite(ours)) << what;
  EXPECT_LE(std::abs(ours - ref), rel * std::abs(ref)) << what;
}

}  // namespace

TEST(CudaClipContrastiveLoss, F32MatchesCpuF64) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(41);
  struct S {
    int64_t N, E;
  };
  for (S s : {S{256, 512}, S{128, 1024}, S{33, 5}, S{7, 300}}) {
    Tensor img = gen.randn({s.N, s.E}, DType::f32, 2.0);
    Tensor txt = gen.randn({s.N, s.E}, DType::f32) + img * 0.3;
    for (double p : {std::log(1 / 0.07), 0.3, 5.0}) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "N%lld E%lld p %.4f", static_cast<long long>(s.N),
                    static_cast<long long>(s.E), p);
      const std::string what = buf;
      ClipResult ref = run_clip(img, txt, p, DType::f64, DType::f64, Device::CPU);
      ClipResult gpu = run_clip(img, txt, p, DType::f32, DType::f32, Device::CUDA);
      expect_loss_close(gpu.loss, ref.loss, 2e-5, what);
      expect_rel_to_max(gpu.dimg, ref.dimg, 1e-4, what + " dimage");
      expect_rel_to_max(gpu.dtxt, ref.dtxt, 1e-4, what + " dtext");
      if (p > std::log(100.0)) {
        EXPECT_EQ(gpu.dscale, 0.0) << what;
      } else {
        EXPECT_NEAR(gpu.dscale, ref.dscale, 1e-4 * std::max(1.0, std::abs(ref.dscale))) << what;
      }
    }
  }
  // N = 1: both cross-entropies are 0 and so is every gradient.
  Tensor one = gen.randn({1, 16});
  ClipResult r = run_clip(one, gen.randn({1, 16}), 2.0, DType::f32, DType::f32, Device::CUDA);
  EXPECT_EQ(r.loss, 0.0);
  EXPECT_EQ(max_abs(r.dimg), 0.0);
}

TEST(CudaClipContrastiveLoss, Bf16FeaturesAndFrozenInputs) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(42);
  Tensor img = gen.randn({64, 512}, DType::f32, 2.0).to(DType::bf16).to(DType::f32);
  Tensor txt = (gen.randn({64, 512}, DType::f32) + img * 0.3).to(DType::bf16).to(DType::f32);
  const double p = std::log(1 / 0.07);
  ClipResult ref = run_clip(img, txt, p, DType::f64, DType::f64, Device::CPU);
  ClipResult gpu = run_clip(img, txt, p, DType::bf16, DType::f32, Device::CUDA);
  // bf16 storage of the outputs costs up to 2^-9 relative; f32 arithmetic inside.
  expect_loss_close(gpu.loss, ref.loss, 8e-3, "bf16");
  expect_rel_to_max(gpu.dimg, ref.dimg, 2e-2, "bf16 dimage");
  expect_rel_to_max(gpu.dtxt, ref.dtxt, 2e-2, "bf16 dtext");
  EXPECT_NEAR(gpu.dscale, ref.dscale, 1e-3 * std::max(1.0, std::abs(ref.dscale)));
  ClipResult frozen = run_clip(img, txt, p, DType::f32, DType::f32, Device::CUDA, false, false);
  expect_rel_to_max(frozen.dimg, ref.dimg, 1e-4, "frozen text and scale: dimage");
  EXPECT_TRUE(frozen.dtxt.empty());
  EXPECT_FALSE(frozen.has_dscale);
}

TEST(CudaClipContrastiveLoss, ParameterOnAnotherDeviceIsRefused) {
  SKIP_WITHOUT_CUDA_DEVICE();
  Generator gen(43);
  Tensor img = gen.randn({4, 8}).to(Device::CUDA), txt = gen.randn({4, 8}).to(Device::CUDA);
  EXPECT_THROW(clip_contrastive_loss(img, txt, Tensor::full({}, 1.0)), Error);
  EXPECT_THROW(clip_contrastive_loss(img, txt, Tensor::full({}, 1.0, DType::f64).to(Device::CUDA)),
               Error);
}
