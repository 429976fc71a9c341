/*
 * test_evaluator.cpp — train/evaluator.h without a model: the batching loop with a stand-in
 * encoder (every row encoded once, in order, whatever the batch size; the callback sees views of
 * the result; bad loaders/encoders are clear errors), the zero-shot classifier from prompt
 * features against f64 sums, AccuracyMeter against hand-worked logits (top-1/top-5, ties,
 * per-class, confusion matrix, macro F1), and the metrics files (JSON, CSV quoting, atomic).
 */
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/error.h"
#include "engine/ops.h"
#include "models/clip/zeroshot.h"
#include "tests/test_util.h"
#include "train/evaluator.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A temporary folder removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("tgpt_evaluator_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Batching loop

TEST(Evaluator, EncodeBatchedVisitsEveryRowOnce) {
  // inputs [7,3]: row i = (i, 2i, 3i); encoder: features [b,2] = (sum of the row, first value).
  std::vector<double> v;
  for (int i = 0; i < 7; ++i) v.insert(v.end(), {double(i), 2.0 * i, 3.0 * i});
  const Tensor inputs = Tensor::from_vector(v, {7, 3}, DType::f64);
  for (int64_t batch : {1, 3, 7, 100}) {
    std::vector<int64_t> begins;
    int64_t encoded_rows = 0;
    const Tensor f = encode_batched(
        tensor_source(inputs), batch, 2,
        [&](const Tensor& x) {
          EXPECT_EQ(x.dtype(), DType::f32);  // float inputs arrive as f32
          encoded_rows += x.size(0);
          return concat({sum(x, {1}, true), x.narrow(1, 0, 1)}, 1);
        },
        [&](int64_t b, const Tensor& x, const Tensor& rows) {
          begins.push_back(b);
          EXPECT_EQ(rows.size(0), x.size(0));
          // The callback's rows are the result's memory, already filled.
          EXPECT_FLOAT_EQ(rows.data<float>()[0], 6.0f * static_cast<float>(b));
        });
    EXPECT_EQ(encoded_rows, 7) << batch;
    ASSERT_EQ(f.shape(), Shape({7, 2}));
    EXPECT_EQ(f.dtype(), DType::f32);
    for (int i = 0; i < 7; ++i) {
      EXPECT_EQ(f.data<float>()[2 * i], 6.0f * i);
      EXPECT_EQ(f.data<float>()[2 * i + 1], 1.0f * i);
    }
    std::vector<int64_t> want;
    for (int64_t b = 0; b < 7; b += batch) want.push_back(b);
    EXPECT_EQ(begins, want);
  }
  // An empty source gives [0,E] without calling anything.
  const Tensor none = encode_batched(BatchSource{}, 4, 5, [](const Tensor&) -> Tensor {
    ADD_FAILURE() << "encoder called for no rows";
    return Tensor();
  });
  EXPECT_EQ(none.shape(), Shape({0, 5}));
}

TEST(Evaluator, EncodeBatchedErrors) {
  const Tensor inputs = Tensor::zeros({5, 3});
  auto ok = [](const Tensor& x) { return Tensor::zeros({x.size(0), 4}); };
  EXPECT_THROW(encode_batched(tensor_source(inputs), 0, 4, ok), Error);
  EXPECT_THROW(encode_batched(tensor_source(inputs), 2, 0, ok), Error);
  // Encoder output of the wrong width or row count.
  try {
    encode_batched(
        tensor_source(inputs), 2, 4,
        [](const Tensor& x) {
          return Tensor::zeros({x.size(0), 3});
        },
        {}, "my_encoder");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_encoder"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected [2, 4]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(encode_batched(tensor_source(inputs), 2, 4,
                              [](const Tensor&) {
                                return Tensor::zeros({1, 4});
                              }),
               Error);
  EXPECT_THROW(encode_batched(tensor_source(inputs), 2, 4,
                              [](const Tensor& x) {
                                return Tensor::zeros({x.size(0), 4}, DType::i32);
                              }),
               Error);
  // A loader returning the wrong number of rows, a source without a loader.
  BatchSource bad{5, [](int64_t, int64_t) { return Tensor::zeros({1, 3}); }};
  EXPECT_THROW(encode_batched(bad, 2, 4, ok), Error);
  EXPECT_THROW(encode_batched(BatchSource{3, {}}, 2, 4, ok), Error);
  // Errors from the loader (e.g. an unreadable image) come through unchanged.
  EXPECT_THROW(encode_batched(image_file_source({"/nonexistent/x.png"}, 16), 2, 4, ok), Error);
}

TEST(Evaluator, ClassifierFromPromptFeatures) {
  // 3 classes with 2, 1, 3 prompts; features [6,4].
  Generator g(7);
  const Tensor feats = g.randn({6, 4});
  const ZeroShotClassifier zs = build_zeroshot_classifier(feats, {2, 1, 3});
  ASSERT_EQ(zs.class_features.shape(), Shape({3, 4}));
  const std::vector<double> f = feats.to_double_vector();
  const std::vector<float> mean = zs.class_features.to_float_vector();
  const std::vector<float> w = zs.weights.to_float_vector();
  const int64_t first[] = {0, 2, 3}, count[] = {2, 1, 3};
  for (int c = 0; c < 3; ++c) {
    double norm = 0;
    std::vector<double> m(4, 0.0);
    for (int d = 0; d < 4; ++d) {
      for (int64_t j = 0; j < count[c]; ++j) m[d] += f[(first[c] + j) * 4 + d];
      m[d] /= static_cast<double>(count[c]);
      norm += m[d] * m[d];
      EXPECT_NEAR(mean[c * 4 + d], m[d], 1e-6);
    }
    for (int d = 0; d < 4; ++d) EXPECT_NEAR(w[c * 4 + d], m[d] / std::sqrt(norm), 1e-6);
  }
  EXPECT_THROW(build_zeroshot_classifier(feats, {}), Error);
  EXPECT_THROW(build_zeroshot_classifier(feats, {2, 0, 4}), Error);
  EXPECT_THROW(build_zeroshot_classifier(feats, {2, 1, 2}), Error);  // 5 rows expected
  EXPECT_THROW(build_zeroshot_classifier(Tensor::zeros({6}), {6}), Error);
}

// ---------------------------------------------------------------------------------------------
// Accuracy meter

TEST(Evaluator, AccuracyMeterHandWorkedLogits) {
  AccuracyMeter m(6);
  const std::vector<double> logits = {
      1, 5, 3, 5, 0, 2,  // y=3: ties with class 1 (smaller index) -> rank 1; predicted 1
      0, 0, 0, 0, 0, 0,  // y=0: all tied, smallest index -> rank 0; predicted 0
      6, 5, 4, 3, 2, 1,  // y=5: rank 5; predicted 0
      1, 2, 3, 4, 5, 6,  // y=5: rank 0; predicted 5
  };
  m.add(Tensor::from_vector(std::vector<double>(logits.begin(), logits.begin() + 12), {2, 6}),
        {3, 0});
  m.add(Tensor::from_vector(std::vector<double>(logits.begin() + 12, logits.end()), {2, 6}),
        {5, 5});
  EXPECT_EQ(m.count(), 4);
  EXPECT_EQ(m.correct_top1(), 2);
  EXPECT_EQ(m.correct_top5(), 3);
  EXPECT_DOUBLE_EQ(m.top1(), 50.0);
  EXPECT_DOUBLE_EQ(m.top5(), 75.0);
  EXPECT_EQ(m.class_count(), (std::vector<int64_t>{1, 0, 0, 1, 0, 2}));
  EXPECT_EQ(m.class_correct(), (std::vector<int64_t>{1, 0, 0, 0, 0, 1}));
  EXPECT_EQ(m.predictions(), (std::vector<int64_t>{1, 0, 0, 5}));
  // Confusion: (3 -> 1), (0 -> 0), (5 -> 0), (5 -> 5).
  std::vector<int64_t> cm(36, 0);
  cm[3 * 6 + 1] = 1, cm[0 * 6 + 0] = 1, cm[5 * 6 + 0] = 1, cm[5 * 6 + 5] = 1;
  EXPECT_EQ(m.confusion(), cm);
  // Per class (classes with images: 0, 3, 5): accuracy 100, 0, 50 -> mean 50.
  EXPECT_DOUBLE_EQ(m.mean_per_class_accuracy(), 50.0);
  // F1: class 0 TP 1 FP 1 FN 0 -> 2/3; class 3 TP 0 -> 0; class 5 TP 1 FP 0 FN 1 -> 2/3.
  EXPECT_NEAR(m.macro_f1(), 100.0 * (2.0 / 3 + 0 + 2.0 / 3) / 3, 1e-12);

  AccuracyMeter three(3);  // top-5 counts top-3 = everything with 3 classes
  three.add(Tensor::from_vector({0, 1, 2, 2, 1, 0}, {2, 3}), {0, 0});
  EXPECT_EQ(three.correct_top1(), 1);
  EXPECT_EQ(three.correct_top5(), 2);
  EXPECT_EQ(AccuracyMeter(2).top1(), 0.0);  // no images yet
  EXPECT_EQ(AccuracyMeter(2).macro_f1(), 0.0);

  // Bad batches throw and count nothing (the good first row of a bad batch included).
  EXPECT_THROW(m.add(Tensor::zeros({1, 6}), {6}), Error);
  EXPECT_THROW(m.add(Tensor::zeros({1, 6}), {-1}), Error);
  EXPECT_THROW(m.add(Tensor::zeros({1, 5}), {0}), Error);
  EXPECT_THROW(m.add(Tensor::zeros({2, 6}), {0}), Error);
  EXPECT_THROW(m.add(Tensor::zeros({2, 6}), {0, 7}), Error);
  EXPECT_THROW(m.add(Tensor::zeros({1, 6}, DType::i32), {0}), Error);
  EXPECT_THROW(m.add(Tensor::full({1, 6}, std::nan("")), {2}), Error);
  EXPECT_EQ(m.count(), 4);
  EXPECT_EQ(m.confusion(), cm);
  EXPECT_THROW(AccuracyMeter(0), Error);
}

TEST(Evaluator, ResultBlockAndMetricsFiles) {
  TempDir tmp;
  AccuracyMeter m(2);
  m.add(Tensor::from_vector({1, 0, 0, 1, 1, 0}, {3, 2}), {0, 0, 1});  // predictions 0, 1, 0
  const std::string block = result_block(m);
  EXPECT_NE(block.find("=> result\n* total: 3\n* correct: 1\n* accuracy: 33.33%\n"),
            std::string::npos)
      << block;
  EXPECT_NE(block.find("* error: 66.67%"), std::string::npos) << block;
  EXPECT_EQ(block.find("top-5"), std::string::npos) << block;  // fewer than 5 classes

  const std::vector<std::string> names = {"say \"hi\", ok", "plain"};
  const fs::path dir = tmp.path / "out" / "nested";
  const std::string path = write_metrics(dir.string(), m, names, {{"task", "test"}, {"error", 1}});
  EXPECT_EQ(path, (dir / "metrics.json").string());
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"metrics.json", "per_class.csv", "confusion.csv"}));

  const nlohmann::json j = nlohmann::json::parse(read_text(dir / "metrics.json"));
  EXPECT_EQ(j["task"], "test");
  EXPECT_EQ(j["error"], 1);  // extra keys win
  EXPECT_EQ(j["num_images"], 3);
  EXPECT_EQ(j["top1_correct"], 1);
  EXPECT_TRUE(j["top5_accuracy"].is_null());
  EXPECT_DOUBLE_EQ(j["mean_per_class_accuracy"].get<double>(), 25.0);  // (50 + 0) / 2
  // F1: class 0 TP 1 FP 1 FN 1 -> 1/2; class 1 TP 0 -> 0.
  EXPECT_DOUBLE_EQ(j["macro_f1"].get<double>(), 25.0);
  EXPECT_EQ(j["per_class"][0]["classname"], names[0]);
  EXPECT_EQ(j["per_class"][1]["accuracy"], 0.0);

  EXPECT_EQ(read_text(dir / "per_class.csv"),
            "label,classname,count,correct,accuracy\n"
            "0,\"say \"\"hi\"\", ok\",2,1,50.000000\n"
            "1,\"plain\",1,0,0.000000\n");
  EXPECT_EQ(read_text(dir / "confusion.csv"),
            "\"true\\pred\",\"say \"\"hi\"\", ok\",\"plain\"\n"
            "\"say \"\"hi\"\", ok\",1,1\n"
            "\"plain\",1,0\n");

  // A class without images: empty accuracy field, null in JSON.
  AccuracyMeter unseen(2);
  unseen.add(Tensor::from_vector({1, 0}, {1, 2}), {0});
  write_metrics(dir.string(), unseen, names);
  EXPECT_EQ(read_text(dir / "per_class.csv"),
            "label,classname,count,correct,accuracy\n"
            "0,\"say \"\"hi\"\", ok\",1,1,100.000000\n"
            "1,\"plain\",0,0,\n");
  EXPECT_TRUE(
      nlohmann::json::parse(read_text(dir / "metrics.json"))["per_class"][1]["accuracy"].is_null());

  // Errors: class names of the wrong count, an output path that is a file.
  EXPECT_THROW(write_metrics(dir.string(), m, {"one"}), Error);
  EXPECT_THROW(metrics_json(m, {"a", "b", "c"}), Error);
  EXPECT_THROW(write_metrics((dir / "metrics.json").string(), m, names), Error);
}
