/*
 * test_batch_prefetcher.cpp — the threaded input pipeline (data/batch_prefetcher.h): batches
 * identical, bit for bit, to preparing them inline with preprocess_image_files for 1, 2 and 4
 * workers, in the order the trainer draws them; a request other than predicted still gets the right
 * batch; failing images surface as one error naming every bad file of the batch; stopping early
 * joins the workers.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/batch_prefetcher.h"
#include "data/preprocess.h"
#include "tests/test_util.h"
#include "train/sampler.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace fs = std::filesystem;
using namespace tgpt;

namespace {

class BatchPrefetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tgpt_test_batch_prefetcher_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::mt19937_64 rng(3);
    // 11 images of different sizes and formats (PNG and JPEG).
    for (int i = 0; i < 11; ++i) {
      const int w = 19 + 5 * i, h = 40 - 2 * i;
      std::vector<unsigned char> px(static_cast<size_t>(w * h * 3));
      for (auto& v : px) v = static_cast<unsigned char>(rng() & 255);
      const fs::path p = dir_ / ("img" + std::to_string(i) + (i % 3 == 0 ? ".jpg" : ".png"));
      if (i % 3 == 0)
        ASSERT_TRUE(stbi_write_jpg(p.string().c_str(), w, h, 3, px.data(), 90));
      else
        ASSERT_TRUE(stbi_write_png(p.string().c_str(), w, h, 3, px.data(), w * 3));
      paths_.push_back(p.string());
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The paths of a batch's items.
  std::vector<std::string> batch_paths(const std::vector<int64_t>& items) const {
    std::vector<std::string> out;
    for (int64_t i : items) out.push_back(paths_[static_cast<size_t>(i)]);
    return out;
  }

  fs::path dir_;
  std::vector<std::string> paths_;
  static constexpr int64_t kSize = 16;
};

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(),
                                               static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

// The trainer's draws (sampler, then a seed from its generator) with the inline path as the
// reference, and the loader fed from copies of the same sampler and generator.
TEST_F(BatchPrefetcherTest, IdenticalToInlineForAnyThreadCountAndInOrder) {
  TrainTransform transform;  // random_resized_crop + random_flip
  for (int threads : {1, 2, 4}) {
    RandomSampler sampler(static_cast<int64_t>(paths_.size()), 4, 7);  // short last batch: 11 % 4
    std::mt19937_64 trainer_rng(9);
    const int64_t steps = 9;  // more than two epochs
    BatchPrefetcherOptions lo;
    lo.threads = threads;
    lo.depth = 3;
    lo.max_batches = steps;
    BatchPrefetcher loader(
        {3, kSize, kSize},
        [plan_sampler = sampler, plan_rng = trainer_rng]() mutable {
          BatchRequest r;
          r.items = plan_sampler.next_batch();
          r.seed = plan_rng();
          return r;
        },
        train_image_prepare(paths_, kSize, transform), lo);
    EXPECT_EQ(loader.threads(), threads);
    for (int64_t k = 0; k < steps; ++k) {
      BatchRequest r;
      r.items = sampler.next_batch();
      r.seed = trainer_rng();
      const Tensor want =
          preprocess_image_files(batch_paths(r.items), kSize, true, r.seed, transform);
      const Tensor got = loader.next(r);
      EXPECT_TRUE(bit_identical(got, want)) << "threads " << threads << ", batch " << k;
    }
    EXPECT_TRUE(loader.prefetching()) << threads;
    // Past max_batches: prepared on demand, still right.
    BatchRequest r;
    r.items = sampler.next_batch();
    r.seed = trainer_rng();
    EXPECT_TRUE(bit_identical(loader.next(r), preprocess_image_files(batch_paths(r.items), kSize,
                                                                     true, r.seed, transform)));
  }
}

// A request other than the predicted one (someone else drew from the generator): the right
// batch anyway, and every later one, without prediction.
TEST_F(BatchPrefetcherTest, UnpredictedRequestStillGetsItsBatch) {
  const TrainTransform transform = train_transform_from_names({"random_flip"}, {0.5, 1.0});
  RandomSampler sampler(static_cast<int64_t>(paths_.size()), 3, 1);
  std::mt19937_64 trainer_rng(2);
  BatchPrefetcherOptions lo;
  lo.threads = 2;
  BatchPrefetcher loader(
      {3, kSize, kSize},
      [plan_sampler = sampler, plan_rng = trainer_rng]() mutable {
        BatchRequest r;
        r.items = plan_sampler.next_batch();
        r.seed = plan_rng();
        return r;
      },
      train_image_prepare(paths_, kSize, transform), lo);
  for (int k = 0; k < 6; ++k) {
    if (k == 2) (void)trainer_rng();  // an extra draw the plan does not know of
    BatchRequest r;
    r.items = sampler.next_batch();
    r.seed = trainer_rng();
    EXPECT_TRUE(bit_identical(loader.next(r), preprocess_image_files(batch_paths(r.items), kSize,
                                                                     true, r.seed, transform)))
        << k;
    EXPECT_EQ(loader.prefetching(), k < 2) << k;
  }
}

// Missing and corrupt images: the batch holding them fails with every bad file named; the
// batches around it are unaffected.
TEST_F(BatchPrefetcherTest, FailingImagesAreNamedOnTheirBatch) {
  std::vector<std::string> paths = paths_;
  paths[4] = (dir_ / "missing.png").string();
  std::ofstream(dir_ / "corrupt.png", std::ios::binary) << "\x89PNG\r\n\x1a\nnot really";
  paths[5] = (dir_ / "corrupt.png").string();
  // Batches in a fixed order: {0,1,2}, {3,4,5,6}, {7,8}.
  const std::vector<std::vector<int64_t>> batches = {{0, 1, 2}, {3, 4, 5, 6}, {7, 8}};
  BatchPrefetcherOptions lo;
  lo.threads = 2;
  lo.max_batches = 3;
  lo.what = "training batch";
  BatchPrefetcher loader(
      {3, kSize, kSize},
      [k = size_t{0}, &batches]() mutable {
        return BatchRequest{batches[k++], 5};
      },
      train_image_prepare(paths, kSize, TrainTransform{}), lo);
  EXPECT_EQ(loader.next(BatchRequest{batches[0], 5}).size(0), 3);
  const std::string msg = test::error_message([&] { loader.next(BatchRequest{batches[1], 5}); });
  for (const char* s : {"training batch: 2 of 4 images failed", "missing.png", "corrupt.png"})
    EXPECT_NE(msg.find(s), std::string::npos) << s << "\n" << msg;
  EXPECT_EQ(msg.find("img3"), std::string::npos) << msg;
  EXPECT_EQ(loader.next(BatchRequest{batches[2], 5}).size(0), 2);
}

// A consumer that stops early (Ctrl-C, an error in the step): the destructor stops the workers,
// which finish at most the image they are on, and joins them; so does one never asked.
TEST_F(BatchPrefetcherTest, StoppingEarlyJoinsTheWorkers) {
  std::atomic<int64_t> prepared{0};
  const BatchPrefetcher::PrepareFn slow = [&](const BatchRequest&, int64_t, float* dst) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    dst[0] = 1.0f;
    ++prepared;
  };
  auto plan = [n = int64_t{0}]() mutable {
    BatchRequest r;
    r.items.assign(8, n);
    r.seed = static_cast<uint64_t>(n++);
    return r;
  };
  const auto t0 = std::chrono::steady_clock::now();
  {
    BatchPrefetcherOptions lo;
    lo.threads = 4;
    lo.depth = 4;  // endless plan (max_batches -1), at most 4 batches ahead
    BatchPrefetcher loader({1}, plan, slow, lo);
    BatchRequest first;
    first.items.assign(8, 0);
    EXPECT_EQ(loader.next(first).size(0), 8);
  }
  {
    BatchPrefetcherOptions lo;
    lo.threads = 3;
    BatchPrefetcher never_asked({1}, plan, slow, lo);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Bounded work: at most depth batches of 8 images ahead, not an endless stream.
  EXPECT_LE(prepared.load(), 4 * 8 + 4 * 8);
  EXPECT_LT(secs, 5.0);
}

TEST(BatchPrefetcher, BadOptions) {
  auto plan = [] { return BatchRequest{}; };
  auto prepare = [](const BatchRequest&, int64_t, float*) {};
  BatchPrefetcherOptions lo;
  lo.threads = 0;
  EXPECT_ERROR(BatchPrefetcher({1}, plan, prepare, lo), "threads must be in [1, 256]");
  lo.threads = 1;
  lo.depth = 0;
  EXPECT_ERROR(BatchPrefetcher({1}, plan, prepare, lo), "depth must be >= 1");
  EXPECT_GE(default_loader_threads(true), 1);
  EXPECT_EQ(default_loader_threads(false), 0);  // the CPU model's OpenMP team has every core
}

}  // namespace
