/*
 * train_test_util.h — a small training problem for the trainer and checkpoint tests: a 2-layer
 * MLP classifier (D=6 -> H=8 -> K=3, ReLU, cross-entropy) on 20 generated points labelled by a
 * random linear teacher, mini-batches of 4 from a seeded RandomSampler, Gaussian input noise
 * drawn from the trainer's generator (so its state matters), AdamW + warm-up/cosine.
 */
#pragma once

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/random.h"
#include "models/nn/parameters.h"
#include "train/sampler.h"
#include "train/trainer.h"

namespace tgpt::test {

struct MlpData {
  static constexpr int64_t kN = 20, kD = 6, kH = 8, kK = 3;
  Tensor x;                     // [N,D] f32
  std::vector<int64_t> labels;  // [N] in [0,K)
  MlpData() {
    Generator g(11);
    x = g.randn({kN, kD});
    const Tensor teacher = g.randn({kK, kD});
    const std::vector<float> xv = x.to_float_vector(), tv = teacher.to_float_vector();
    for (int64_t i = 0; i < kN; ++i) {
      int64_t best = 0;
      double best_v = -1e30;
      for (int64_t c = 0; c < kK; ++c) {
        double v = 0;
        for (int64_t d = 0; d < kD; ++d) v += double(xv[i * kD + d]) * tv[c * kD + d];
        if (v > best_v) best_v = v, best = c;
      }
      labels.push_back(best);
    }
  }
};

// One training run's live state, as a fresh process would build it.
struct MlpRun {
  nn::ParameterSet params;
  Tensor w1, b1, w2, b2;
  WarmupCosineSchedule schedule;
  RandomSampler sampler;
  std::unique_ptr<Trainer> trainer;
  const MlpData& data;

  // init_seed: parameter initialisation (a resumed run starts from other values on purpose).
  MlpRun(const MlpData& d, uint64_t init_seed, int64_t max_iter, TrainerOptions options = {},
         std::vector<ParamGroup> groups = {}, TrainLog* log = nullptr)
      : schedule(1e-2, max_iter, 5), sampler(MlpData::kN, 4, /*seed=*/77), data(d) {
    Generator g(init_seed);
    w1 = params.add("fc1.weight", g.randn({MlpData::kH, MlpData::kD}, DType::f32, 0.4), true);
    b1 = params.add("fc1.bias", g.randn({MlpData::kH}, DType::f32, 0.1), true);
    w2 = params.add("fc2.weight", g.randn({MlpData::kK, MlpData::kH}, DType::f32, 0.4), true);
    b2 = params.add("fc2.bias", g.randn({MlpData::kK}, DType::f32, 0.1), true);
    params.add("frozen.scale", Tensor::full({1}, 1.0), false);
    options.max_iter = max_iter;
    options.num_classes = MlpData::kK;
    if (options.seed == 0) options.seed = 5;
    trainer = std::make_unique<Trainer>(params, schedule, options, std::move(groups), log);
  }

  // The logits of rows `idx` (no noise).
  Tensor logits(const Tensor& x) const { return linear(relu(linear(x, w1, b1)), w2, b2); }

  StepOutput step(int64_t) {
    const std::vector<int64_t> idx = sampler.next_batch();
    std::vector<double> ids(idx.begin(), idx.end()), y;
    for (int64_t i : idx) y.push_back(static_cast<double>(data.labels[i]));
    const int64_t b = static_cast<int64_t>(idx.size());
    Tensor x = embedding(Tensor::from_vector(ids, {b}, DType::i64), data.x);  // [b,D]
    std::normal_distribution<double> noise(0.0, 0.05);
    std::vector<double> nv(static_cast<size_t>(b * MlpData::kD));
    for (double& v : nv) v = noise(trainer->rng());
    x = add(x, Tensor::from_vector(nv, {b, MlpData::kD}));
    StepOutput out;
    out.loss = cross_entropy(logits(x), Tensor::from_vector(y, {b}, DType::i64));
    out.items = b;
    return out;
  }
  StepFn step_fn() {
    return [this](int64_t k) { return step(k); };
  }
  // Top-1 accuracy (percent) on all points.
  double accuracy() const {
    NoGradGuard no_grad;
    const std::vector<float> l = logits(data.x).to_float_vector();
    int64_t ok = 0;
    for (int64_t i = 0; i < MlpData::kN; ++i) {
      int64_t best = 0;
      for (int64_t c = 1; c < MlpData::kK; ++c)
        if (l[i * MlpData::kK + c] > l[i * MlpData::kK + best]) best = c;
      ok += best == data.labels[i];
    }
    return 100.0 * static_cast<double>(ok) / MlpData::kN;
  }
};

// True when the two tensors have the same shape, dtype and bytes.
inline bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

}  // namespace tgpt::test
