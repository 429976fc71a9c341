/*
 * test_cuda_clip_trainable.cpp — the trainable CLIP (ClipModel::init_random) on CUDA in f32 against
 * the same model (same seed, same weights) on the CPU in f64: the contrastive loss
 * (clip_contrastive_loss of both towers' features) within 1e-4 relative, and the gradient of
 * every weight within 1e-3 of that tensor's largest reference value; save() of the CUDA model ->
 * ClipModel::load on the CPU gives the same features within 1e-4. Head dim 64 (what the CUDA
 * attention kernel takes): widths 128 / 2 heads. Skips without a CUDA device.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "models/clip/clip.h"
#include "tests/cuda/fused_test_util.h"

using namespace tgpt;
using namespace tgpt::test;
namespace fs = std::filesystem;

namespace {

ClipConfig small_config() {
  ClipConfig c;
  c.embed_dim = 64;
  c.image_resolution = 32;
  c.vision_layers = 1;
  c.vision_width = 128;
  c.vision_patch_size = 8;
  c.vision_heads = 2;
  c.context_length = 16;
  c.vocab_size = 64;
  c.transformer_width = 128;
  c.transformer_heads = 2;
  c.transformer_layers = 1;
  return c;
}

Tensor small_tokens(int64_t N, const ClipConfig& c) {
  std::vector<double> v(static_cast<size_t>(N * c.context_length), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t len = 3 + n % 9;
    v[static_cast<size_t>(n * c.context_length)] = 62;
    for (int64_t t = 1; t < len; ++t)
      v[static_cast<size_t>(n * c.context_length + t)] = static_cast<double>((n * 5 + t * 3) % 60);
    v[static_cast<size_t>(n * c.context_length + len)] = 63;
  }
  return Tensor::from_vector(v, {N, c.context_length}, DType::i64);
}

}  // namespace

TEST(CudaClipTrainable, GradientsMatchCpuF64) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const ClipConfig c = small_config();
  ClipModel cpu = ClipModel::init_random(c, 5, Device::CPU, DType::f64);
  ClipModel gpu = ClipModel::init_random(c, 5, Device::CUDA, DType::f32);
  Generator gen(6);
  const int64_t N = 12;
  Tensor images = gen.randn({N, 3, 32, 32});
  Tensor tokens = small_tokens(N, c);
  double loss[2];
  int k = 0;
  for (ClipModel* m : {&cpu, &gpu}) {
    m->mutable_parameters().zero_grad();
    Tensor l = clip_contrastive_loss(m->encode_image(images), m->encode_text(tokens),
                                     m->logit_scale_param());
    l.backward();
    loss[k++] = l.item();
  }
  std::printf("    loss cpu f64 %.8g, cuda f32 %.8g\n", loss[0], loss[1]);
  EXPECT_NEAR(loss[1], loss[0], 1e-4 * std::abs(loss[0]));
  for (const auto& [name, t] : cpu.parameters().items()) {
    const Tensor& g = gpu.parameters().get(name).grad();
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_EQ(g.device(), Device::CUDA) << name;
    expect_rel_to_max(g.to(Device::CPU).to_double_vector(), t.grad().to_double_vector(), 1e-3, name,
                      1e-12);
  }
}

TEST(CudaClipTrainable, SavedWeightsLoadOnTheCpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const ClipConfig c = small_config();
  ClipModel gpu = ClipModel::init_random(c, 7, Device::CUDA, DType::f32);
  const fs::path dir =
      fs::temp_directory_path() / ("tgpt_cuda_clip_trainable_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "clip.safetensors").string();
  gpu.save(path);
  ClipModel cpu = ClipModel::load(path);
  Generator gen(8);
  Tensor images = gen.randn({4, 3, 32, 32});
  Tensor tokens = small_tokens(4, c);
  NoGradGuard ng;
  expect_rel_to_max(gpu.encode_image(images).to(Device::CPU).to_double_vector(),
                    cpu.encode_image(images).to_double_vector(), 1e-4, "image features");
  expect_rel_to_max(gpu.encode_text(tokens).to(Device::CPU).to_double_vector(),
                    cpu.encode_text(tokens).to_double_vector(), 1e-4, "text features");
  fs::remove_all(dir);
}
