// linear_probe.cpp — logistic regression on frozen CLIP image features (L-BFGS, f64) and the
// `--method probe` run; the math and the output are in linear_probe.h.
#include "train/linear_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <limits>
#include <optional>

#include "base/error.h"
#include "kernels/cpu/matmul.h"
#include "models/clip/clip.h"
#include "train/evaluator.h"
#include "train/feature_cache.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace tgpt {

namespace {

struct Problem {
  const std::vector<double>& x;  // [N, E]
  const std::vector<int64_t>& y;
  int64_t n, e, c;
  double l2;
};

// logits [N, C] = X Wᵀ + b for parameters theta = [W (C*E), b (C)].
void logits_into(const std::vector<double>& x, int64_t n, int64_t e, int64_t c, const double* w,
                 const double* b, std::vector<double>& out) {
  out.assign(static_cast<size_t>(n * c), 0.0);
  cpu::gemm(false, true, n, c, e, 1.0, x.data(), e, w, e, 0.0, out.data(), c);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k) out[static_cast<size_t>(i * c + k)] += b[k];
}

// L(theta) and, when grad is given, its gradient (same layout as theta).
double objective(const Problem& p, const std::vector<double>& theta, std::vector<double>* grad) {
  const double* w = theta.data();
  const double* b = theta.data() + p.c * p.e;
  std::vector<double> z;
  logits_into(p.x, p.n, p.e, p.c, w, b, z);
  double loss = 0;
  for (int64_t i = 0; i < p.n; ++i) {  // z becomes (P - Y) / N row by row
    double* row = z.data() + i * p.c;
    const double mx = *std::max_element(row, row + p.c);
    double s = 0;
    for (int64_t k = 0; k < p.c; ++k) s += std::exp(row[k] - mx);
    const double lse = mx + std::log(s);
    const int64_t yi = p.y[static_cast<size_t>(i)];
    loss += lse - row[yi];
    for (int64_t k = 0; k < p.c; ++k)
      row[k] = (std::exp(row[k] - lse) - (k == yi ? 1.0 : 0.0)) / static_cast<double>(p.n);
  }
  loss /= static_cast<double>(p.n);
  double wsq = 0;
  for (int64_t j = 0; j < p.c * p.e; ++j) wsq += w[j] * w[j];
  loss += 0.5 * p.l2 * wsq;
  if (grad) {
    grad->assign(theta.size(), 0.0);
    double* gw = grad->data();
    double* gb = grad->data() + p.c * p.e;
    // ∂L/∂W [C,E] = (P - Y)ᵀ [C,N] X [N,E] / N + λ W
    cpu::gemm(true, false, p.c, p.e, p.n, 1.0, z.data(), p.c, p.x.data(), p.e, 0.0, gw, p.e);
    for (int64_t j = 0; j < p.c * p.e; ++j) gw[j] += p.l2 * w[j];
    for (int64_t i = 0; i < p.n; ++i)
      for (int64_t k = 0; k < p.c; ++k) gb[k] += z[static_cast<size_t>(i * p.c + k)];
  }
  return loss;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace

LinearProbeModel fit_linear_probe(const std::vector<double>& x, const std::vector<int64_t>& labels,
                                  int64_t dim, int64_t num_classes, double l2, int64_t max_iter,
                                  double tolerance) {
  const int64_t n = static_cast<int64_t>(labels.size());
  TGPT_CHECK(n >= 1, "linear probe: no training features");
  TGPT_CHECK(dim >= 1 && static_cast<int64_t>(x.size()) == n * dim, "linear probe: ", x.size(),
             " feature values for ", n, " labels of dimension ", dim);
  TGPT_CHECK(num_classes >= 2, "linear probe: needs at least 2 classes, got ", num_classes);
  TGPT_CHECK(l2 > 0 && std::isfinite(l2), "linear probe: the L2 penalty must be > 0, got ", l2);
  TGPT_CHECK(max_iter >= 1, "linear probe: max_iter must be >= 1");
  for (int64_t y : labels)
    TGPT_CHECK(y >= 0 && y < num_classes, "linear probe: label ", y, " outside [0, ", num_classes,
               ")");
  for (double v : x) TGPT_CHECK(std::isfinite(v), "linear probe: a feature is not finite");

  const Problem p{x, labels, n, dim, num_classes, l2};
  const size_t size = static_cast<size_t>(num_classes * dim + num_classes);
  std::vector<double> theta(size, 0.0), grad, new_theta(size), new_grad;
  double f = objective(p, theta, &grad);
  // L-BFGS memory: pairs (s, y) with rho = 1 / (y·s), newest last.
  constexpr size_t kMemory = 10;
  std::deque<std::vector<double>> s_hist, y_hist;
  std::deque<double> rho_hist;
  int64_t it = 0;
  for (; it < max_iter && max_abs(grad) > tolerance; ++it) {
    // Two-loop recursion: d = -H g.
    std::vector<double> q = grad;
    std::vector<double> alpha(s_hist.size());
    for (size_t k = s_hist.size(); k-- > 0;) {
      alpha[k] = rho_hist[k] * dot(s_hist[k], q);
      for (size_t i = 0; i < size; ++i) q[i] -= alpha[k] * y_hist[k][i];
    }
    const double gamma =
        s_hist.empty() ? 1.0
                       : dot(s_hist.back(), y_hist.back()) / dot(y_hist.back(), y_hist.back());
    for (double& v : q) v *= gamma;
    for (size_t k = 0; k < s_hist.size(); ++k) {
      const double beta = rho_hist[k] * dot(y_hist[k], q);
      for (size_t i = 0; i < size; ++i) q[i] += (alpha[k] - beta) * s_hist[k][i];
    }
    std::vector<double>& d = q;
    for (double& v : d) v = -v;
    double slope = dot(grad, d);
    if (!(slope < 0)) {  // not a descent direction: restart from steepest descent
      s_hist.clear(), y_hist.clear(), rho_hist.clear();
      d = grad;
      for (double& v : d) v = -v;
      slope = dot(grad, d);
    }
    // Backtracking Armijo line search; the first step is scaled as PyTorch's L-BFGS does. Near
    // the optimum the decrease falls below the rounding of f: a step that leaves f unchanged
    // within rounding is taken when it shrinks the gradient.
    double t = s_hist.empty() && it == 0 ? std::min(1.0, 1.0 / max_abs(grad)) : 1.0;
    double f_new = 0;
    bool accepted = false, have_grad = false;
    const double noise = 8 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(f));
    for (int halvings = 0; halvings < 60; ++halvings, t *= 0.5) {
      for (size_t i = 0; i < size; ++i) new_theta[i] = theta[i] + t * d[i];
      f_new = objective(p, new_theta, nullptr);
      if (f_new <= f + 1e-4 * t * slope) {
        accepted = true;
        break;
      }
      if (f_new <= f + noise) {
        f_new = objective(p, new_theta, &new_grad);
        if (max_abs(new_grad) < max_abs(grad)) {
          accepted = have_grad = true;
          break;
        }
      }
    }
    if (!accepted) break;  // no progress at machine precision: as good as it gets
    if (!have_grad) f_new = objective(p, new_theta, &new_grad);
    std::vector<double> s(size), yv(size);
    for (size_t i = 0; i < size; ++i) {
      s[i] = new_theta[i] - theta[i];
      yv[i] = new_grad[i] - grad[i];
    }
    const double sy = dot(s, yv);
    if (sy > 1e-12 * std::sqrt(dot(s, s) * dot(yv, yv))) {
      if (s_hist.size() == kMemory) s_hist.pop_front(), y_hist.pop_front(), rho_hist.pop_front();
      s_hist.push_back(std::move(s));
      y_hist.push_back(std::move(yv));
      rho_hist.push_back(1.0 / sy);
    }
    theta.swap(new_theta);
    grad.swap(new_grad);
    f = f_new;
  }
  LinearProbeModel m;
  m.num_classes = num_classes;
  m.dim = dim;
  m.weight.assign(theta.begin(), theta.begin() + num_classes * dim);
  m.bias.assign(theta.begin() + num_classes * dim, theta.end());
  m.l2 = l2;
  m.objective = f;
  m.grad_max = max_abs(grad);
  m.iterations = it;
  return m;
}

std::vector<double> linear_probe_logits(const LinearProbeModel& m, const std::vector<double>& x) {
  TGPT_CHECK(m.dim >= 1 && x.size() % static_cast<size_t>(m.dim) == 0,
             "linear probe: features of the wrong dimension (", x.size(), " values, dim ", m.dim,
             ")");
  const int64_t n = static_cast<int64_t>(x.size()) / m.dim;
  std::vector<double> out;
  logits_into(x, n, m.dim, m.num_classes, m.weight.data(), m.bias.data(), out);
  return out;
}

namespace {

// Frozen, L2-normalised image features [N, E] of the items, f64 row-major (through the feature
// cache when there is one; `what` names the set in its log line).
std::vector<double> probe_features(const ClipModel& clip, const std::vector<LabeledImage>& items,
                                   int64_t batch_size, const ImageFeatureCache* cache,
                                   const LinearProbeOptions& o, TrainLog& log, const char* what) {
  std::vector<std::string> paths;
  for (const LabeledImage& it : items) paths.push_back(it.path);
  const int64_t n = static_cast<int64_t>(items.size()), e = clip.config().embed_dim;
  const int64_t R = clip.config().image_resolution;
  auto encode = [&]() -> CachedImageFeatures {
    return {encode_images_batched(clip, image_file_source(paths, R), batch_size), Tensor()};
  };
  const Tensor f = cache && n > 0
                       ? cache
                             ->load_or_encode(
                                 cache->key(paths, R, o.compute_dtype, o.device, false), n, e, 0,
                                 encode, [&log](const std::string& m) { log.line(m); }, what)
                             .cls
                       : encode().cls;
  std::vector<double> v = f.to_double_vector();
  TGPT_CHECK(static_cast<int64_t>(v.size()) == n * e, "linear probe: feature shape mismatch");
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < e; ++j)
      s += v[static_cast<size_t>(i * e + j)] * v[static_cast<size_t>(i * e + j)];
    const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
    for (int64_t j = 0; j < e; ++j) v[static_cast<size_t>(i * e + j)] *= inv;
  }
  return v;
}

std::vector<int64_t> labels_of(const std::vector<LabeledImage>& items) {
  std::vector<int64_t> out;
  for (const LabeledImage& it : items) out.push_back(it.label);
  return out;
}

void count_into(AccuracyMeter& meter, const LinearProbeModel& m, const std::vector<double>& x,
                const std::vector<int64_t>& labels) {
  const int64_t n = static_cast<int64_t>(labels.size());
  if (n == 0) return;
  const std::vector<double> z = linear_probe_logits(m, x);
  meter.add(Tensor::from_vector(z, {n, m.num_classes}, DType::f64), labels);
}

}  // namespace

LinearProbeResult run_linear_probe(const LinearProbeOptions& o, const FewshotData& data) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const int64_t C = static_cast<int64_t>(data.classnames.size());
  TGPT_CHECK(C >= 2, "linear probe: needs at least 2 classes, got ", C);
  TGPT_CHECK(!data.train.empty(), "linear probe: the training set is empty");
  TGPT_CHECK(!o.l2_grid.empty(), "linear probe: the L2 grid is empty");
  for (const auto* list : {&data.train, &data.val, &data.test})
    for (const LabeledImage& it : *list)
      TGPT_CHECK(it.label >= 0 && it.label < C, "linear probe: ", it.path, " has label ", it.label,
                 " outside [0, ", C, ")");
  fs::create_directories(o.output_dir);
  const std::string log_path = (fs::path(o.output_dir) / "log.txt").string();
  keep_existing_log(log_path);
  TrainLog log(o.console, std::nullopt, log_path);
  char buf[512];
  if (!o.header.empty()) log.line(o.header);
  std::snprintf(buf, sizeof buf, "Dataset %s: %lld classes, %lld train, %lld val, %lld test images",
                data.dataset.c_str(), static_cast<long long>(C),
                static_cast<long long>(data.train.size()), static_cast<long long>(data.val.size()),
                static_cast<long long>(data.test.size()));
  log.line(buf);
  const ClipModel clip = ClipModel::load(o.weights, o.device, o.compute_dtype);
  log.line("Loading CLIP (backbone: " + clip.config().name() + ") on " + device_name(o.device) +
           " (" + dtype_name(o.compute_dtype) + ")");
  log.line("Linear probe: logistic regression on the frozen, L2-normalised image features");
  const int64_t E = clip.config().embed_dim;
  std::optional<ImageFeatureCache> cache;
  if (!o.feature_cache_dir.empty()) {
    cache.emplace(o.feature_cache_dir, o.weights);
    log.line("Image feature cache: " + o.feature_cache_dir);
  }
  const ImageFeatureCache* fc = cache ? &*cache : nullptr;
  const std::vector<double> xtr =
      probe_features(clip, data.train, o.batch_size, fc, o, log, "train");
  const std::vector<double> xva = probe_features(clip, data.val, o.batch_size, fc, o, log, "val");
  const std::vector<int64_t> ytr = labels_of(data.train), yva = labels_of(data.val);

  // λ search on the val set (ties: the larger λ).
  LinearProbeModel best;
  double best_val = -1;
  nlohmann::json search = nlohmann::json::array();
  if (data.val.empty()) {
    best = fit_linear_probe(xtr, ytr, E, C, o.l2_grid[o.l2_grid.size() / 2]);
    log.line("No val set: L2 penalty " + std::to_string(best.l2) + " (the grid's middle)");
  } else {
    for (double l2 : o.l2_grid) {
      LinearProbeModel m = fit_linear_probe(xtr, ytr, E, C, l2);
      AccuracyMeter meter(C);
      count_into(meter, m, xva, yva);
      std::snprintf(buf, sizeof buf,
                    "L2 %.0e: val %.2f%% (objective %.6f, %lld L-BFGS iterations, max |grad| %.1e)",
                    l2, meter.top1(), m.objective, static_cast<long long>(m.iterations),
                    m.grad_max);
      log.line(buf);
      search.push_back({{"l2", l2}, {"val_accuracy", meter.top1()}, {"objective", m.objective}});
      if (meter.top1() >= best_val) {
        best_val = meter.top1();
        best = std::move(m);
      }
    }
  }
  std::snprintf(buf, sizeof buf, "Chosen L2 penalty: %.0e", best.l2);
  log.line(buf);

  log.line("Evaluate on the *test* set");
  AccuracyMeter test(C);
  count_into(test, best, probe_features(clip, data.test, o.batch_size, fc, o, log, "test"),
             labels_of(data.test));
  log.line(result_block(test));
  LinearProbeResult r;
  r.l2 = best.l2;
  r.val_accuracy = std::max(best_val, 0.0);
  r.test_accuracy = test.top1();
  nlohmann::json extra = o.run_info;
  extra["method"] = "probe";
  extra["dataset"] = data.dataset;
  extra["l2"] = best.l2;
  extra["l2_search"] = search;
  extra["weights"] = o.weights;
  write_metrics(o.output_dir, test, data.classnames, extra);
  r.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  log.line("Elapsed: " + format_eta(r.seconds));
  return r;
}

}  // namespace tgpt
