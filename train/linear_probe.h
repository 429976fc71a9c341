/*
 * linear_probe.h — the linear-probe baseline of CLIP (Radford et al. 2021 §3.2; the "Linear
 * probe CLIP" row of CoOp's and TGP-T's tables): multinomial logistic regression on the frozen,
 * L2-normalised image features, and `tgpt-train --method probe` around it.
 *
 * Fit. Features x_n [E] (rows of X [N,E]), labels y_n in [0, C). Minimises, in f64,
 *   L(W, b) = (1/N) Σ_n CE(W x_n + b, y_n) + (λ/2) ||W||²      W [C,E], b [C]
 * (the bias is not penalised) with L-BFGS (memory 10, two-loop recursion, backtracking Armijo
 * line search from step 1, c1 = 1e-4; within the rounding of L a step that shrinks the gradient
 * is taken) from W = 0, b = 0, until the largest gradient entry is at
 * most `tolerance` or `max_iter` iterations. The gradient is
 *   ∂L/∂W = (P - Y)ᵀ X / N + λ W,   ∂L/∂b = Σ_n (p_n - y_n) / N,   P = softmax(X Wᵀ + b) [N,C]
 * (Y one-hot). Every gradient of b sums to zero over the classes, so from b = 0 the iterates keep
 * Σ_c b_c = 0 and the minimiser they reach is unique for λ > 0: any correct solver started at
 * zero gives the same W and b (the golden test checks it against PyTorch's L-BFGS).
 *
 * Choice of λ, as CoOp's linear probe chooses sklearn's C: every value of a grid is fitted on
 * the few-shot train set and scored by top-1 on the few-shot val set; the best wins (ties: the
 * larger λ, the simpler model). Without a val set the middle of the grid is used.
 *
 * The run (run_linear_probe): the train, val and test images through the frozen image encoder
 * with the evaluation transform (no augmentation, as CLIP's probe; through the on-disk feature
 * cache when one is given), features L2-normalised, the λ search, then the test set with the
 * chosen model. Output folder: log.txt (the search and the
 * result block), metrics.json (write_metrics plus run_info: "method": "probe", "l2", the grid's
 * val accuracies), per_class.csv, confusion.csv.
 */
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/device.h"
#include "base/dtype.h"
#include "train/fewshot_run.h"

namespace tgpt {

struct LinearProbeModel {
  int64_t num_classes = 0, dim = 0;
  std::vector<double> weight;  // [C, E] row-major
  std::vector<double> bias;    // [C]
  double l2 = 0;               // λ
  double objective = 0;        // L(W, b) at the end
  double grad_max = 0;         // largest |gradient entry| at the end
  int64_t iterations = 0;
};

// Fits the model above. x: N rows of dim E (row-major), labels in [0, C). N >= 1, C >= 2,
// λ > 0; anything else is a tgpt::Error.
LinearProbeModel fit_linear_probe(const std::vector<double>& x, const std::vector<int64_t>& labels,
                                  int64_t dim, int64_t num_classes, double l2,
                                  int64_t max_iter = 500, double tolerance = 1e-7);

// Logits [N, C] of N rows of x.
std::vector<double> linear_probe_logits(const LinearProbeModel& m, const std::vector<double>& x);

struct LinearProbeOptions {
  std::string weights;     // tgpt CLIP weight file
  std::string output_dir;  // the run folder (created)
  std::string header;      // text written at the top of log.txt
  std::vector<double> l2_grid = {1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1};
  int64_t batch_size = 128;       // images per encoder call
  std::string feature_cache_dir;  // the on-disk image feature cache (train/feature_cache.h)
  Device device = Device::CPU;
  DType compute_dtype = DType::f32;
  nlohmann::json run_info = nlohmann::json::object();  // merged into metrics.json
  std::FILE* console = stdout;
};

struct LinearProbeResult {
  double l2 = 0;
  double val_accuracy = 0;   // percent, of the chosen λ (0 without a val set)
  double test_accuracy = 0;  // percent
  double seconds = 0;
};

LinearProbeResult run_linear_probe(const LinearProbeOptions& options, const FewshotData& data);

}  // namespace tgpt
