/*
 * evaluator.cpp — the batching loop (encode_batched and its CLIP wrappers), the zero-shot
 * classifier from prompts, AccuracyMeter, and the metrics files (JSON and CSV, written
 * atomically).
 */
#include "train/evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "base/error.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "engine/autograd.h"

namespace tgpt {

// ---------------------------------------------------------------------------------------------
// Batching

BatchSource image_file_source(std::vector<std::string> paths, int64_t resolution) {
  BatchSource s;
  s.count = static_cast<int64_t>(paths.size());
  s.load = [paths = std::move(paths), resolution](int64_t begin, int64_t count) {
    const std::vector<std::string> block(paths.begin() + begin, paths.begin() + begin + count);
    return preprocess_image_files(block, resolution);  // [count,3,R,R] f32
  };
  return s;
}

BatchSource tensor_source(const Tensor& inputs) {
  TGPT_CHECK(inputs.defined() && inputs.dim() >= 1, "tensor_source: input must be at least 1-D");
  BatchSource s;
  s.count = inputs.size(0);
  s.load = [inputs](int64_t begin, int64_t count) {
    const Tensor block = inputs.narrow(0, begin, count);
    return dtype_is_float(block.dtype()) ? block.to(DType::f32).contiguous() : block.contiguous();
  };
  return s;
}

Tensor encode_batched(const BatchSource& source, int64_t batch_size, int64_t embed_dim,
                      const BatchEncoder& encode, const BatchCallback& on_batch, const char* what) {
  TGPT_CHECK(batch_size > 0, what, ": batch size must be positive, got ", batch_size);
  TGPT_CHECK(source.count >= 0 && (source.count == 0 || source.load), what,
             ": no input rows to load");
  TGPT_CHECK(embed_dim > 0, what, ": feature size must be positive, got ", embed_dim);
  const int64_t n = source.count;
  Tensor out = Tensor::empty({n, embed_dim}, DType::f32);  // [N,E], the only copy of the features
  NoGradGuard no_grad;
  for (int64_t b = 0; b < n; b += batch_size) {
    const int64_t len = std::min(batch_size, n - b);
    const Tensor inputs = source.load(b, len);
    TGPT_CHECK(inputs.defined() && inputs.dim() >= 1 && inputs.size(0) == len, what,
               ": the loader returned ", inputs.defined() ? inputs.str() : "nothing", " for ", len,
               " rows");
    Tensor f = encode(inputs);
    TGPT_CHECK(f.defined() && f.dim() == 2 && f.size(0) == len && f.size(1) == embed_dim, what,
               ": encoder returned ", f.defined() ? f.shape().str() : "nothing", ", expected [",
               len, ", ", embed_dim, "]");
    TGPT_CHECK(dtype_is_float(f.dtype()), what, ": encoder returned ", f.str(),
               ", expected float features");
    Tensor rows = out.narrow(0, b, len);  // [len,E] view into the result
    rows.copy_(f);                        // device -> host and dtype -> f32 in one copy
    if (on_batch) on_batch(b, inputs, rows);
  }
  return out;
}

Tensor encode_images_batched(const ClipModel& model, const BatchSource& images, int64_t batch_size,
                             const BatchCallback& on_batch) {
  return encode_batched(
      images, batch_size, model.config().embed_dim,
      [&](const Tensor& x) { return model.encode_image(x); }, on_batch, "encode_images_batched");
}

Tensor encode_images_batched(const ClipModel& model, const Tensor& images, int64_t batch_size) {
  TGPT_CHECK(batch_size > 0, "encode_images_batched: batch size must be positive, got ",
             batch_size);
  TGPT_CHECK(images.defined() && images.dim() == 4, "encode_images_batched: images must be ",
             "[N,3,R,R], got ", images.defined() ? images.str() : "undefined");
  return encode_images_batched(model, tensor_source(images), batch_size);
}

Tensor encode_text_batched(const ClipModel& model, const Tensor& tokens, int64_t batch_size) {
  TGPT_CHECK(batch_size > 0, "encode_text_batched: batch size must be positive, got ", batch_size);
  TGPT_CHECK(tokens.defined() && tokens.dim() == 2, "encode_text_batched: tokens must be ",
             "[M,ctx], got ", tokens.defined() ? tokens.str() : "undefined");
  return encode_batched(
      tensor_source(tokens), batch_size, model.config().embed_dim,
      [&](const Tensor& x) { return model.encode_text(x); }, {}, "encode_text_batched");
}

ZeroShotClassifier build_zeroshot_classifier(
    const ClipModel& model, const ClipTokenizer& tokenizer,
    const std::vector<std::vector<std::string>>& class_prompts, int64_t batch_size) {
  TGPT_CHECK(!class_prompts.empty(), "zero-shot classifier: no classes");
  std::vector<std::string> all;
  std::vector<int64_t> per_class;
  for (size_t c = 0; c < class_prompts.size(); ++c) {
    TGPT_CHECK(!class_prompts[c].empty(), "zero-shot classifier: class ", c, " has no prompts");
    all.insert(all.end(), class_prompts[c].begin(), class_prompts[c].end());
    per_class.push_back(static_cast<int64_t>(class_prompts[c].size()));
  }
  const Tensor tokens = tokenize_for_model(model, tokenizer, all);  // [sum_c T_c, ctx]
  return build_zeroshot_classifier(encode_text_batched(model, tokens, batch_size), per_class);
}

// ---------------------------------------------------------------------------------------------
// AccuracyMeter

AccuracyMeter::AccuracyMeter(int64_t num_classes) : num_classes_(num_classes) {
  TGPT_CHECK(num_classes > 0, "AccuracyMeter: number of classes must be positive");
  TGPT_CHECK(num_classes <= (int64_t{1} << 20), "AccuracyMeter: ", num_classes,
             " classes is more than the confusion matrix is meant for");
  class_count_.assign(static_cast<size_t>(num_classes), 0);
  class_correct_.assign(static_cast<size_t>(num_classes), 0);
  confusion_.assign(static_cast<size_t>(num_classes * num_classes), 0);
}

void AccuracyMeter::add(const Tensor& logits, const std::vector<int64_t>& labels) {
  TGPT_CHECK(logits.defined() && logits.dim() == 2 && logits.size(1) == num_classes_,
             "AccuracyMeter: logits must be [B,", num_classes_, "], got ",
             logits.defined() ? logits.shape().str() : std::string("undefined"));
  TGPT_CHECK(dtype_is_float(logits.dtype()), "AccuracyMeter: logits must be float, got ",
             logits.str());
  const int64_t b = logits.size(0);
  TGPT_CHECK(static_cast<int64_t>(labels.size()) == b, "AccuracyMeter: ", labels.size(),
             " labels for ", b, " rows of logits");
  const Tensor l = logits.to(Device::CPU).to(DType::f32).contiguous();
  const float* p = l.data<float>();
  const int64_t k = num_classes_;
  // Check the whole batch first so a bad row leaves the counts unchanged.
  for (int64_t i = 0; i < b; ++i) {
    const int64_t y = labels[i];
    TGPT_CHECK(y >= 0 && y < k, "AccuracyMeter: label ", y, " out of range [0, ", k, ")");
    TGPT_CHECK(!std::isnan(p[i * k + y]), "AccuracyMeter: NaN logit in row ", i);
  }
  const int64_t top = std::min<int64_t>(5, k);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t y = labels[i];
    const float* row = p + i * k;
    int64_t rank = 0, best = 0;
    for (int64_t j = 0; j < k; ++j) {
      if (row[j] > row[y] || (row[j] == row[y] && j < y)) ++rank;
      if (row[j] > row[best]) best = j;
    }
    ++count_;
    ++class_count_[y];
    if (rank == 0) ++correct_top1_, ++class_correct_[y];
    if (rank < top) ++correct_top5_;
    predictions_.push_back(best);
    ++confusion_[y * k + best];
  }
}

double AccuracyMeter::top1() const {
  return count_ ? 100.0 * static_cast<double>(correct_top1_) / static_cast<double>(count_) : 0.0;
}

double AccuracyMeter::top5() const {
  return count_ ? 100.0 * static_cast<double>(correct_top5_) / static_cast<double>(count_) : 0.0;
}

double AccuracyMeter::mean_per_class_accuracy() const {
  double sum = 0;
  int64_t seen = 0;
  for (int64_t c = 0; c < num_classes_; ++c) {
    if (class_count_[c] == 0) continue;
    sum += 100.0 * static_cast<double>(class_correct_[c]) / static_cast<double>(class_count_[c]);
    ++seen;
  }
  return seen ? sum / static_cast<double>(seen) : 0.0;
}

double AccuracyMeter::macro_f1() const {
  // Per class: TP = C[c][c], FN = row sum - TP, FP = column sum - TP. Classes without images are
  // left out (sklearn with labels = the true labels present, as Dassl calls it).
  const int64_t k = num_classes_;
  double sum = 0;
  int64_t seen = 0;
  for (int64_t c = 0; c < k; ++c) {
    if (class_count_[c] == 0) continue;
    int64_t col = 0;
    for (int64_t y = 0; y < k; ++y) col += confusion_[y * k + c];
    const int64_t tp = confusion_[c * k + c];
    const int64_t fn = class_count_[c] - tp, fp = col - tp;
    sum += 100.0 * 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + fn);
    ++seen;
  }
  return seen ? sum / static_cast<double>(seen) : 0.0;
}

// ---------------------------------------------------------------------------------------------
// Metrics files

namespace {

nlohmann::json percent_or_null(int64_t correct, int64_t count) {
  if (count == 0) return nullptr;
  return 100.0 * static_cast<double>(correct) / static_cast<double>(count);
}

// A CSV field (RFC 4180): quoted, inner quotes doubled.
std::string csv_field(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string format_percent(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", x);
  return buf;
}

void check_classnames(const AccuracyMeter& meter, const std::vector<std::string>& classnames) {
  TGPT_CHECK(static_cast<int64_t>(classnames.size()) == meter.num_classes(),
             "metrics: ", classnames.size(), " class names for ", meter.num_classes(), " classes");
}

}  // namespace

nlohmann::json metrics_json(const AccuracyMeter& meter,
                            const std::vector<std::string>& classnames) {
  check_classnames(meter, classnames);
  const int64_t k = meter.num_classes();
  nlohmann::json per_class = nlohmann::json::array();
  for (int64_t c = 0; c < k; ++c) {
    const int64_t cnt = meter.class_count()[c], cor = meter.class_correct()[c];
    per_class.push_back({{"label", c},
                         {"classname", classnames[c]},
                         {"count", cnt},
                         {"correct", cor},
                         {"accuracy", percent_or_null(cor, cnt)}});
  }
  const bool any = meter.count() > 0;
  return {
      {"num_images", meter.count()},
      {"num_classes", k},
      {"top1_correct", meter.correct_top1()},
      {"accuracy", meter.top1()},
      {"error", 100.0 - meter.top1()},
      {"top5_correct", k >= 5 ? nlohmann::json(meter.correct_top5()) : nlohmann::json()},
      {"top5_accuracy", k >= 5 ? nlohmann::json(meter.top5()) : nlohmann::json()},
      {"mean_per_class_accuracy",
       any ? nlohmann::json(meter.mean_per_class_accuracy()) : nlohmann::json()},
      {"macro_f1", any ? nlohmann::json(meter.macro_f1()) : nlohmann::json()},
      {"per_class", per_class},
  };
}

std::string write_metrics(const std::string& dir, const AccuracyMeter& meter,
                          const std::vector<std::string>& classnames, const nlohmann::json& extra) {
  namespace fs = std::filesystem;
  check_classnames(meter, classnames);
  TGPT_CHECK(extra.is_object(), "write_metrics: extra fields must be a JSON object");
  std::error_code ec;
  fs::create_directories(dir, ec);
  TGPT_CHECK(fs::is_directory(dir), "cannot create output folder '", dir,
             "': ", ec ? ec.message() : "not a folder");
  const int64_t k = meter.num_classes();

  nlohmann::json m = metrics_json(meter, classnames);
  for (auto it = extra.begin(); it != extra.end(); ++it) m[it.key()] = it.value();

  std::ostringstream per_class;
  per_class << "label,classname,count,correct,accuracy\n";
  for (int64_t c = 0; c < k; ++c) {
    const int64_t cnt = meter.class_count()[c], cor = meter.class_correct()[c];
    per_class << c << ',' << csv_field(classnames[c]) << ',' << cnt << ',' << cor << ','
              << (cnt ? format_percent(100.0 * static_cast<double>(cor) / static_cast<double>(cnt))
                      : std::string())
              << '\n';
  }
  std::ostringstream confusion;
  confusion << csv_field("true\\pred");
  for (int64_t c = 0; c < k; ++c) confusion << ',' << csv_field(classnames[c]);
  confusion << '\n';
  for (int64_t y = 0; y < k; ++y) {
    confusion << csv_field(classnames[y]);
    for (int64_t p = 0; p < k; ++p) confusion << ',' << meter.confusion()[y * k + p];
    confusion << '\n';
  }
  // The CSVs first: metrics.json, the file tools look for, appears last.
  write_text_file_atomic((fs::path(dir) / "per_class.csv").string(), per_class.str());
  write_text_file_atomic((fs::path(dir) / "confusion.csv").string(), confusion.str());
  const std::string path = (fs::path(dir) / "metrics.json").string();
  write_text_file_atomic(path,
                         m.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  return path;
}

std::string result_block(const AccuracyMeter& meter) {
  char buf[512];
  std::string s = "=> result\n";
  std::snprintf(buf, sizeof buf, "* total: %lld\n* correct: %lld\n* accuracy: %.2f%%\n",
                static_cast<long long>(meter.count()), static_cast<long long>(meter.correct_top1()),
                meter.top1());
  s += buf;
  std::snprintf(buf, sizeof buf, "* error: %.2f%%\n* macro_f1: %.2f%%\n", 100.0 - meter.top1(),
                meter.macro_f1());
  s += buf;
  if (meter.num_classes() >= 5) {
    std::snprintf(buf, sizeof buf, "* top-5 accuracy: %.2f%%\n", meter.top5());
    s += buf;
  }
  return s;
}

}  // namespace tgpt
