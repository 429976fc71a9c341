/*
 * bench_input_pipeline.cpp — images/s of the training input pipeline alone
 * (data/batch_prefetcher.h): decode + training view (RandomResizedCrop + flip, or Resize) + CLIP
 * normalisation, batches of 32 handed out in order by the BatchPrefetcher with 1 or 2 worker
 * threads, nothing else running.
 *
 * Images are generated once into a temporary folder with stb_image_write: 64 JPEGs of 500x375
 * (quality 90; ImageNet's typical size) and 64 PNGs of 64x64 (the synthetic world's), smooth
 * colour gradients with noise so that they compress like photographs rather than white noise.
 * Cases (Google Benchmark, real time; items_per_second = images/s):
 *   BM_loader/<case>/<threads>   the BatchPrefetcher, batches planned from a RandomSampler
 *   BM_inline/<case>             preprocess_image_files on the calling thread's OpenMP team
 *                                (today's path without --loader-threads), for comparison
 * <case>: 0 = JPEG 500x375 -> 224 RandomResizedCrop + flip (ImageNet, ViT-B/16);
 *         1 = PNG 64x64 -> 224 RandomResizedCrop + flip (the synthetic world at ViT-B/16 size);
 *         2 = PNG 64x64 -> 64 Resize only (the main job's few-shot setting, no augmentation).
 */
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "data/batch_prefetcher.h"
#include "data/preprocess.h"
#include "kernels/cpu/blas_setup.h"
#include "train/sampler.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

constexpr int kImages = 64;
constexpr int64_t kBatch = 32;

// A w x h RGB image: per-image colour gradients plus noise.
std::vector<unsigned char> photo_like(int w, int h, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 6.0);
  const double a[3] = {u(rng), u(rng), u(rng)}, b[3] = {u(rng), u(rng), u(rng)};
  std::vector<unsigned char> px(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const double v = 255.0 * (0.5 + 0.25 * std::sin(6.0 * a[c] * x / w + 3.0 * b[c]) +
                                  0.2 * std::cos(5.0 * b[c] * y / h)) +
                         noise(rng);
        px[(static_cast<size_t>(y) * w + x) * 3 + c] =
            static_cast<unsigned char>(std::clamp(v, 0.0, 255.0));
      }
  return px;
}

struct Images {
  fs::path dir;
  std::vector<std::string> jpeg, png;
  Images() {
    dir = fs::temp_directory_path() / ("tgpt_bench_input_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::mt19937_64 rng(1);
    for (int i = 0; i < kImages; ++i) {
      const std::string j = (dir / ("img" + std::to_string(i) + ".jpg")).string();
      const std::vector<unsigned char> big = photo_like(500, 375, rng);
      if (!stbi_write_jpg(j.c_str(), 500, 375, 3, big.data(), 90)) std::abort();
      jpeg.push_back(j);
      const std::string p = (dir / ("img" + std::to_string(i) + ".png")).string();
      const std::vector<unsigned char> small = photo_like(64, 64, rng);
      if (!stbi_write_png(p.c_str(), 64, 64, 3, small.data(), 64 * 3)) std::abort();
      png.push_back(p);
    }
  }
  ~Images() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const Images& images() {
  static const Images im;
  return im;
}

struct Case {
  const std::vector<std::string>* paths;
  int64_t size;
  TrainTransform transform;
};

Case make_case(int64_t k) {
  const Images& im = images();
  if (k == 0) return {&im.jpeg, 224, TrainTransform{}};
  if (k == 1) return {&im.png, 224, TrainTransform{}};
  return {&im.png, 64, train_transform_from_names({"normalize"}, {0.08, 1.0})};
}

void BM_loader(benchmark::State& state) {
  const Case c = make_case(state.range(0));
  BatchPrefetcherOptions lo;
  lo.threads = static_cast<int>(state.range(1));
  lo.depth = 4;
  RandomSampler sampler(kImages, kBatch, 1);
  std::mt19937_64 rng(2);
  BatchPrefetcher loader(
      {3, c.size, c.size},
      [plan_sampler = sampler, plan_rng = rng]() mutable {
        BatchRequest r;
        r.items = plan_sampler.next_batch();
        r.seed = plan_rng();
        return r;
      },
      train_image_prepare(*c.paths, c.size, c.transform), lo);
  for (auto _ : state) {
    BatchRequest r;
    r.items = sampler.next_batch();
    r.seed = rng();
    const Tensor batch = loader.next(r);
    benchmark::DoNotOptimize(batch.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_inline(benchmark::State& state) {
  const Case c = make_case(state.range(0));
  RandomSampler sampler(kImages, kBatch, 1);
  std::mt19937_64 rng(2);
  for (auto _ : state) {
    std::vector<std::string> paths;
    for (int64_t i : sampler.next_batch()) paths.push_back((*c.paths)[static_cast<size_t>(i)]);
    const Tensor batch = preprocess_image_files(paths, c.size, true, rng(), c.transform);
    benchmark::DoNotOptimize(batch.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

}  // namespace

BENCHMARK(BM_loader)
    ->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->ArgNames({"case", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_inline)
    ->ArgsProduct({{0, 1, 2}})
    ->ArgNames({"case"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
