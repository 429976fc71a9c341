/*
 * test_trainer.cpp — train/trainer.h and train/sampler.h on a 2-layer MLP classifier
 * (tests/train_test_util.h): the loop against a hand-written AdamW loop with two parameter groups
 * (bit for bit), global-norm clipping, best-validation tracking, a non-finite loss, a stop
 * request (the flag the SIGINT handler sets, raised directly), the log sink on a terminal and
 * not, and the sampler's epochs.
 */
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/error.h"
#include "engine/autograd.h"
#include "tests/train_test_util.h"

using namespace tgpt;
using tgpt::test::MlpData;
using tgpt::test::MlpRun;
using tgpt::test::same_bits;
namespace fs = std::filesystem;

namespace {

std::string read_file(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

// A group with the optimizer's weight decay.
ParamGroup group(const std::string& name, std::vector<std::string> params, double lr_scale = 1.0) {
  ParamGroup g;
  g.name = name;
  g.params = std::move(params);
  g.lr_scale = lr_scale;
  return g;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST(Sampler, EpochsArePermutationsAndSeeded) {
  RandomSampler s(10, 4, 3);
  std::vector<int64_t> sizes;
  std::vector<int64_t> epoch1;
  for (int i = 0; i < 3; ++i) {
    const auto b = s.next_batch();
    sizes.push_back(static_cast<int64_t>(b.size()));
    epoch1.insert(epoch1.end(), b.begin(), b.end());
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));  // drop_last=False
  EXPECT_EQ(s.epoch(), 1);
  EXPECT_EQ(std::set<int64_t>(epoch1.begin(), epoch1.end()).size(), 10u);
  EXPECT_EQ(epoch1, s.permutation());
  const auto next = s.next_batch();  // a new permutation
  EXPECT_EQ(s.epoch(), 2);
  EXPECT_EQ(s.index(), 4);
  EXPECT_NE(s.permutation(), epoch1);  // (fixed seed: these two orders differ)
  RandomSampler same(10, 4, 3), other(10, 4, 4);
  EXPECT_EQ(same.next_batch(), std::vector<int64_t>(epoch1.begin(), epoch1.begin() + 4));
  EXPECT_NE(other.next_batch(), std::vector<int64_t>(epoch1.begin(), epoch1.begin() + 4));

  // State round trip continues exactly; bad states are refused without change.
  RandomSampler copy(10, 4, 99);
  copy.set_state(s.state());
  for (int i = 0; i < 7; ++i) EXPECT_EQ(copy.next_batch(), s.next_batch());
  RandomSampler::State bad = s.state();
  bad.permutation[0] = bad.permutation[1];
  EXPECT_THROW(copy.set_state(bad), Error);
  bad = s.state();
  bad.index = 11;
  EXPECT_THROW(copy.set_state(bad), Error);
  bad = s.state();
  bad.permutation.pop_back();
  EXPECT_THROW(copy.set_state(bad), Error);
  EXPECT_EQ(copy.next_batch(), s.next_batch());
  EXPECT_THROW(RandomSampler(0, 4, 1), Error);
  EXPECT_THROW(RandomSampler(4, 0, 1), Error);
}

// The trainer's loop is the hand-written TGP-T loop, bit for bit, with two parameter groups.
TEST(Trainer, MatchesHandWrittenLoopWithGroups) {
  const MlpData data;
  const int64_t n = 15;
  TrainerOptions o;
  MlpRun run(data, 1, n, o, {ParamGroup{"hidden", {"fc1.weight", "fc1.bias"}, 0.5, 0.0}});
  ASSERT_EQ(run.trainer->num_groups(), 2u);
  EXPECT_EQ(run.trainer->group(0).name, "hidden");
  EXPECT_EQ(run.trainer->group(1).name, "default");
  EXPECT_EQ(run.trainer->group(1).params, (std::vector<std::string>{"fc2.weight", "fc2.bias"}));
  const TrainResult r = run.trainer->run(run.step_fn());
  EXPECT_EQ(r.status, TrainStatus::finished);
  EXPECT_EQ(r.iteration, n);
  EXPECT_EQ(run.trainer->optimizer(0).lr(), 0.5 * run.schedule.lr_at(n));
  EXPECT_EQ(run.trainer->optimizer(1).lr(), run.schedule.lr_at(n));

  // By hand: the same state, two AdamW optimizers, lr set before each update.
  MlpRun ref(data, 1, n);
  AdamWOptions hidden = AdamWOptions::tgpt(0);
  hidden.weight_decay = 0.0;
  AdamW opt1({ref.w1, ref.b1}, hidden), opt2({ref.w2, ref.b2}, AdamWOptions::tgpt(0));
  for (int64_t k = 1; k <= n; ++k) {
    opt1.set_lr(0.5 * ref.schedule.lr_at(k));
    opt2.set_lr(ref.schedule.lr_at(k));
    opt1.zero_grad();
    opt2.zero_grad();
    ref.step(k).loss.backward();
    opt1.step();
    opt2.step();
  }
  for (const auto& [name, t] : run.params.items())
    EXPECT_TRUE(same_bits(t, ref.params.get(name))) << name;
  EXPECT_GT(run.accuracy(), 60.0);  // it learns (3 classes: chance is ~33%)

  // Bad groups.
  auto make = [&](std::vector<ParamGroup> groups) { MlpRun bad(data, 1, n, o, std::move(groups)); };
  EXPECT_THROW(make({group("g", {"nope"})}), Error);
  EXPECT_THROW(make({group("g", {"frozen.scale"})}), Error);
  EXPECT_THROW(make({group("g", {"fc1.bias"}), group("h", {"fc1.bias"})}), Error);
  EXPECT_THROW(make({group("g", {"fc1.bias"}), group("g", {"fc2.bias"})}), Error);
  EXPECT_THROW(make({group("g", {})}), Error);
  EXPECT_THROW(make({group("g", {"fc1.bias"}, -1.0)}), Error);
  EXPECT_THROW(make({group("default", {"fc1.bias"})}), Error);
  EXPECT_THROW(MlpRun(data, 1, 0), Error);
  EXPECT_THROW(run.trainer->run(run.step_fn(), {}, n + 1), Error);
}

// Global-norm clipping: one SGD step of lr 1 moves the parameters by exactly the clipped
// gradient, whose global norm is max_norm·total/(total+1e-6).
TEST(Trainer, GlobalNormClipping) {
  const MlpData data;
  TrainerOptions o;
  o.optimizer = OptimizerKind::sgd;
  o.clip_grad_norm = 0.01;
  nn::ParameterSet ps;
  Generator g(3);
  const Tensor a = ps.add("a", g.randn({5}, DType::f64), true);
  const Tensor b = ps.add("b", g.randn({2, 3}, DType::f64), true);
  const std::vector<double> a0 = a.to_double_vector(), b0 = b.to_double_vector();
  ConstantSchedule lr1(1.0);
  o.max_iter = 1;
  Trainer t(ps, lr1, o);
  double total = 0;
  t.run([&](int64_t) {
    // loss = sum(3a) + sum(b^2): gradients 3 and 2b.
    StepOutput out;
    out.loss = add(sum(mul(a, 3.0)), sum(mul(b, b)));
    total = 9.0 * 5;
    for (double v : b0) total += 4 * v * v;
    total = std::sqrt(total);
    return out;
  });
  const double coef = 0.01 / (total + 1e-6);
  const std::vector<double> a1 = a.to_double_vector(), b1 = b.to_double_vector();
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(a0[i] - a1[i], 3 * coef, 1e-15);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(b0[i] - b1[i], 2 * b0[i] * coef, 1e-15);
  o.clip_grad_norm = -1;
  EXPECT_THROW(Trainer(ps, lr1, o), Error);
}

TEST(Trainer, BestValidationIsKept) {
  const MlpData data;
  TrainerOptions o;
  o.eval_every = 2;
  MlpRun run(data, 2, 10, o);
  const std::vector<double> scores = {10, 30, 20, 30, 5};  // at iterations 2, 4, 6, 8, 10
  std::map<int64_t, Tensor> w2_at;
  run.trainer->run(run.step_fn(), [&](int64_t k) {
    w2_at[k] = run.w2.clone();
    return scores.at(static_cast<size_t>(k / 2 - 1));
  });
  EXPECT_TRUE(run.trainer->has_best());
  EXPECT_EQ(run.trainer->best_score(), 30);
  EXPECT_EQ(run.trainer->best_iteration(), 4);  // strictly greater replaces; the tie at 8 does not
  const auto& best = run.trainer->best_parameters();
  EXPECT_EQ(best.size(), 4u);  // trainable only
  EXPECT_TRUE(same_bits(best.at("fc2.weight"), w2_at.at(4)));
  EXPECT_FALSE(same_bits(run.w2, w2_at.at(4)));
  run.trainer->restore_best();
  EXPECT_TRUE(same_bits(run.w2, w2_at.at(4)));

  MlpRun none(data, 2, 4, o);
  EXPECT_THROW(none.trainer->restore_best(), Error);
  EXPECT_THROW(none.trainer->run(none.step_fn(), [](int64_t) { return std::nan(""); }), Error);
}

TEST(Trainer, NonFiniteLossStopsWithTheStep) {
  const MlpData data;
  TrainerOptions o;
  o.checkpoint_every = 2;
  MlpRun run(data, 3, 10, o);
  std::vector<int64_t> checkpoints;
  run.trainer->set_checkpoint_fn([&](int64_t k) { checkpoints.push_back(k); });
  std::map<std::string, Tensor> before;
  try {
    run.trainer->run([&](int64_t k) {
      StepOutput out = run.step(k);
      if (k == 3) {
        for (const auto& [name, t] : run.params.items()) before[name] = t.clone();
        out.loss = mul(out.loss, std::nan(""));
      }
      return out;
    });
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("iteration 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("last checkpoint is from iteration 2"), std::string::npos) << msg;
  }
  EXPECT_EQ(run.trainer->iteration(), 2);
  EXPECT_EQ(checkpoints, (std::vector<int64_t>{2}));
  for (const auto& [name, t] : run.params.items())
    EXPECT_TRUE(same_bits(t, before.at(name))) << name;  // nothing of step 3 was applied

  // An infinite loss, and a step returning no loss or a non-scalar one.
  MlpRun inf(data, 3, 10, o);
  EXPECT_THROW(inf.trainer->run([&](int64_t) {
    StepOutput out;
    out.loss = Tensor::full({1}, INFINITY);
    return out;
  }),
               Error);
  EXPECT_THROW(inf.trainer->run([&](int64_t) { return StepOutput{}; }), Error);
  EXPECT_THROW(inf.trainer->run([&](int64_t) {
    StepOutput out;
    out.loss = Tensor::zeros({2});
    return out;
  }),
               Error);
}

// Ctrl-C: the handler only raises the flag; the loop finishes the step, checkpoints, returns.
TEST(Trainer, StopRequestCheckpointsAndReturns) {
  const MlpData data;
  MlpRun run(data, 4, 10);
  std::vector<int64_t> checkpoints;
  run.trainer->set_checkpoint_fn([&](int64_t k) { checkpoints.push_back(k); });
  clear_stop_request();
  const TrainResult r = run.trainer->run([&](int64_t k) {
    if (k == 3) request_stop();  // as if Ctrl-C came during step 3
    return run.step(k);
  });
  EXPECT_TRUE(stop_requested());
  clear_stop_request();
  EXPECT_EQ(r.status, TrainStatus::interrupted);
  EXPECT_EQ(r.iteration, 3);
  EXPECT_EQ(run.trainer->iteration(), 3);
  EXPECT_EQ(checkpoints, (std::vector<int64_t>{3}));
  EXPECT_EQ(run.trainer->last_checkpoint(), 3);
  EXPECT_EQ(kInterruptedExitCode, 130);
  // Continuing runs the remaining steps.
  const TrainResult rest = run.trainer->run(run.step_fn());
  EXPECT_EQ(rest.status, TrainStatus::finished);
  EXPECT_EQ(rest.iteration, 10);
}

TEST(Trainer, LogLinesAndProgressBar) {
  const fs::path dir = fs::temp_directory_path() / ("tgpt_trainlog_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const MlpData data;
  TrainerOptions o;
  o.log_every = 2;
  o.eval_every = 4;
  for (bool terminal : {false, true}) {
    std::FILE* console = std::tmpfile();
    ASSERT_NE(console, nullptr);
    const fs::path log_path = dir / (terminal ? "tty.log" : "plain.log");
    {
      TrainLog log(console, terminal, log_path.string());
      MlpRun run(data, 5, 4, o, {}, &log);
      run.trainer->run(
          [&](int64_t k) {
            StepOutput out = run.step(k);
            out.metric = 50.0;
            return out;
          },
          [&](int64_t) { return run.accuracy(); });
      log.line("Finish training");
    }
    const std::string shown = read_file(console);
    std::fclose(console);
    const std::string file = read_text(log_path);
    // The file always has the plain lines.
    EXPECT_NE(file.find("Iter [2/4] time "), std::string::npos) << file;
    EXPECT_NE(file.find("Iter [4/4] time "), std::string::npos) << file;
    EXPECT_NE(file.find(" acc 50.0000 (50.0000) lr "), std::string::npos) << file;
    EXPECT_NE(file.find(" eta 0:00:00 items/s "), std::string::npos) << file;
    EXPECT_NE(file.find("Validation at iteration 4: "), std::string::npos) << file;
    EXPECT_NE(file.find("Finish training\n"), std::string::npos) << file;
    EXPECT_EQ(file.find('\r'), std::string::npos) << file;
    if (terminal) {
      EXPECT_EQ(shown.find("Iter ["), std::string::npos) << shown;  // a bar instead
      EXPECT_NE(shown.find("\r\033[K[##############################] 4/4 loss "), std::string::npos)
          << shown;
      EXPECT_NE(shown.find("items/s eta "), std::string::npos) << shown;
      // Lines go above the bar, which is redrawn; the last bar stays on screen.
      EXPECT_NE(shown.find("\r\033[KValidation at iteration 4: "), std::string::npos) << shown;
      EXPECT_NE(shown.find(" eta 0:00:00\nFinish training\n"), std::string::npos) << shown;
    } else {
      EXPECT_EQ(shown, file);
    }
  }
  fs::remove_all(dir);
  EXPECT_EQ(format_eta(3725), "1:02:05");
  EXPECT_EQ(format_eta(-1), "0:00:00");
  EXPECT_EQ(format_eta(NAN), "0:00:00");
  EXPECT_THROW(TrainLog(stdout, false, (dir / "missing" / "x.log").string()), Error);
}
