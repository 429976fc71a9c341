/*
 * test_checkpoint.cpp — train/checkpoint.h: resuming is bit-identical on the CPU (a 2-layer MLP
 * classifier trained N steps straight against N/2 steps, save, load into a fresh run built from
 * other initial values, N/2 steps: every parameter, optimizer moment, best-validation copy,
 * sampler position and generator compared bit for bit; AdamW + warm-up/cosine, and SGD with
 * momentum, groups and clipping), damaged and mismatched files are clear errors that change
 * nothing, and a failed write leaves the previous checkpoint in place.
 */
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "engine/safetensors.h"
#include "tests/test_files.h"
#include "tests/train_test_util.h"
#include "train/checkpoint.h"

using namespace tgpt;
using tgpt::test::MlpData;
using tgpt::test::MlpRun;
using tgpt::test::same_bits;
namespace fs = std::filesystem;

namespace {

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tgpt_checkpoint_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TrainingState state_of(MlpRun& run) {
  return TrainingState{run.trainer.get(), &run.sampler, {}};
}

std::string read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Expects every piece of training state of a and b to be the same, bit for bit.
void expect_same_state(MlpRun& a, MlpRun& b) {
  for (const auto& [name, t] : a.params.items())
    EXPECT_TRUE(same_bits(t, b.params.get(name))) << "parameter " << name;
  ASSERT_EQ(a.trainer->num_groups(), b.trainer->num_groups());
  for (size_t g = 0; g < a.trainer->num_groups(); ++g) {
    EXPECT_EQ(a.trainer->optimizer(g).lr(), b.trainer->optimizer(g).lr());
    if (auto* aw = dynamic_cast<AdamW*>(&a.trainer->optimizer(g))) {
      auto& bw = dynamic_cast<AdamW&>(b.trainer->optimizer(g));
      for (size_t i = 0; i < aw->num_params(); ++i) {
        EXPECT_EQ(aw->state(i).step, bw.state(i).step);
        EXPECT_TRUE(same_bits(aw->state(i).exp_avg, bw.state(i).exp_avg)) << g << "," << i;
        EXPECT_TRUE(same_bits(aw->state(i).exp_avg_sq, bw.state(i).exp_avg_sq)) << g << "," << i;
      }
    } else {
      auto& as = dynamic_cast<SGD&>(a.trainer->optimizer(g));
      auto& bs = dynamic_cast<SGD&>(b.trainer->optimizer(g));
      for (size_t i = 0; i < as.num_params(); ++i)
        EXPECT_TRUE(same_bits(as.momentum_buffer(i), bs.momentum_buffer(i))) << g << "," << i;
    }
  }
  EXPECT_EQ(a.trainer->iteration(), b.trainer->iteration());
  EXPECT_EQ(a.trainer->best_iteration(), b.trainer->best_iteration());
  EXPECT_EQ(a.trainer->best_score(), b.trainer->best_score());
  ASSERT_EQ(a.trainer->best_parameters().size(), b.trainer->best_parameters().size());
  for (const auto& [name, t] : a.trainer->best_parameters())
    EXPECT_TRUE(same_bits(t, b.trainer->best_parameters().at(name))) << "best " << name;
  EXPECT_EQ(a.sampler.epoch(), b.sampler.epoch());
  EXPECT_EQ(a.sampler.index(), b.sampler.index());
  EXPECT_EQ(a.sampler.permutation(), b.sampler.permutation());
  EXPECT_TRUE(a.sampler.state().rng == b.sampler.state().rng);
  EXPECT_TRUE(a.trainer->rng() == b.trainer->rng());
}

// A snapshot of a run's values, to check that a failed load changed nothing.
struct Snapshot {
  std::map<std::string, Tensor> params;
  int64_t iteration = 0, epoch = 0, index = 0;
  std::mt19937_64 rng;
  explicit Snapshot(MlpRun& r)
      : iteration(r.trainer->iteration()),
        epoch(r.sampler.epoch()),
        index(r.sampler.index()),
        rng(r.trainer->rng()) {
    for (const auto& [name, t] : r.params.items()) params[name] = t.clone();
  }
  void expect_unchanged(MlpRun& r, const std::string& what) const {
    for (const auto& [name, t] : r.params.items())
      EXPECT_TRUE(same_bits(t, params.at(name))) << what << ": " << name;
    EXPECT_EQ(r.trainer->iteration(), iteration) << what;
    EXPECT_EQ(r.sampler.epoch(), epoch) << what;
    EXPECT_EQ(r.sampler.index(), index) << what;
    EXPECT_TRUE(r.trainer->rng() == rng) << what;
  }
};

// Rewrites checkpoint src into dst after `edit` changes its tensors and metadata.
template <typename Edit>
void rewrite(const std::string& src, const std::string& dst, Edit edit) {
  const SafetensorsFile f = SafetensorsFile::open(src);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& e : f.entries()) tensors.emplace_back(e.name, f.get(e.name).clone());
  std::map<std::string, std::string> meta = f.metadata();
  nlohmann::json record = nlohmann::json::parse(meta.at("tgpt.checkpoint"));
  edit(tensors, meta, record);
  if (!meta.count("tgpt.checkpoint.raw")) meta["tgpt.checkpoint"] = record.dump();
  meta.erase("tgpt.checkpoint.raw");
  // A consistent file (as another run would write it) unless the edit set the hash itself.
  if (meta.at("tgpt.checkpoint_sha256") == f.metadata().at("tgpt.checkpoint_sha256"))
    meta["tgpt.checkpoint_sha256"] = checkpoint_content_hash(meta["tgpt.checkpoint"], tensors);
  save_safetensors(dst, tensors, meta);
}

using Tensors = std::vector<std::pair<std::string, Tensor>>;
using Meta = std::map<std::string, std::string>;

}  // namespace

TEST_F(CheckpointTest, RngStateText) {
  std::mt19937_64 g(123);
  for (int i = 0; i < 1000; ++i) g();
  const std::string text = rng_state_text(g);
  std::mt19937_64 back = parse_rng_state(text, "test");
  EXPECT_TRUE(back == g);
  EXPECT_EQ(back(), g());
  EXPECT_THROW(parse_rng_state("", "x"), Error);
  EXPECT_THROW(parse_rng_state("1 2 3", "x"), Error);
  EXPECT_THROW(parse_rng_state(text + " 5", "x"), Error);
  EXPECT_THROW(parse_rng_state(text.substr(0, text.size() / 2), "x"), Error);
}

// N straight vs N/2 + save + load into a fresh run + N/2, compared bit for bit.
TEST_F(CheckpointTest, ResumeIsBitIdentical) {
  const MlpData data;
  struct Config {
    const char* name;
    TrainerOptions options;
    std::vector<ParamGroup> groups;
  };
  std::vector<Config> configs(2);
  configs[0].name = "adamw";
  configs[0].options.eval_every = 5;
  configs[1].name = "sgd";
  configs[1].options.optimizer = OptimizerKind::sgd;
  configs[1].options.sgd.momentum = 0.9;
  configs[1].options.sgd.weight_decay = 1e-3;
  configs[1].options.clip_grad_norm = 0.5;
  configs[1].options.eval_every = 4;
  configs[1].groups.resize(1);
  configs[1].groups[0].name = "head";
  configs[1].groups[0].params = {"fc2.weight", "fc2.bias"};
  configs[1].groups[0].lr_scale = 2.0;
  const int64_t n = 26;  // 5 batches per epoch: the halves split epoch 3 mid-way
  for (const Config& c : configs) {
    SCOPED_TRACE(c.name);
    auto eval = [](MlpRun& r) { return [&r](int64_t) { return r.accuracy(); }; };
    MlpRun straight(data, 1, n, c.options, c.groups);
    ASSERT_EQ(straight.trainer->run(straight.step_fn(), eval(straight)).iteration, n);

    const std::string ck = path(std::string(c.name) + ".safetensors");
    {
      MlpRun first(data, 1, n, c.options, c.groups);
      first.trainer->set_checkpoint_fn([&](int64_t) { save_checkpoint(ck, state_of(first)); });
      clear_stop_request();
      first.trainer->run(first.step_fn(), eval(first), n / 2);
      save_checkpoint(ck, state_of(first));
    }
    MlpRun resumed(data, 99, n, c.options, c.groups);  // other initial values on purpose
    EXPECT_FALSE(same_bits(resumed.w1, straight.w1));
    load_checkpoint(ck, state_of(resumed));
    EXPECT_EQ(resumed.trainer->iteration(), n / 2);
    EXPECT_TRUE(resumed.trainer->has_best());
    ASSERT_EQ(resumed.trainer->run(resumed.step_fn(), eval(resumed)).iteration, n);
    expect_same_state(straight, resumed);

    // The file holds what the format says.
    const SafetensorsFile f = SafetensorsFile::open(ck);
    EXPECT_EQ(f.metadata().at("tgpt.format"), "checkpoint");
    EXPECT_EQ(f.metadata().at("tgpt.format_version"), "1");
    EXPECT_TRUE(f.contains("param.fc1.weight"));
    EXPECT_FALSE(f.contains("param.frozen.scale"));  // frozen parameters are not saved
    EXPECT_TRUE(f.contains("best.fc2.bias"));
    EXPECT_TRUE(f.contains("sampler.permutation"));
    EXPECT_TRUE(f.contains(c.options.optimizer == OptimizerKind::adamw
                               ? "optim.default.fc1.weight.exp_avg_sq"
                               : "optim.head.fc2.weight.momentum"));
    const nlohmann::json j = nlohmann::json::parse(f.metadata().at("tgpt.checkpoint"));
    EXPECT_EQ(j["iteration"], n / 2);
    EXPECT_EQ(j["num_classes"], 3);
    EXPECT_EQ(j["sampler"]["epoch"], 3);
    EXPECT_EQ(j["sampler"]["index"], (13 - 10) * 4);  // 3 batches of 4 into epoch 3
    EXPECT_TRUE(j["rng"].contains("trainer"));
    EXPECT_TRUE(j["rng"].contains("sampler"));
  }
}

// A checkpoint written at a stop request resumes like any other, and extra named generators are
// saved and restored.
TEST_F(CheckpointTest, StopRequestAndExtraGenerators) {
  const MlpData data;
  const int64_t n = 12;
  std::mt19937_64 aug_a(8), aug_b(8);
  MlpRun straight(data, 1, n);
  straight.trainer->run([&](int64_t k) {
    aug_a();
    return straight.step(k);
  });
  const std::string ck = path("stop.safetensors");
  {
    MlpRun first(data, 1, n);
    std::mt19937_64 aug(8);
    TrainingState st{first.trainer.get(), &first.sampler, {{"augment", &aug}}};
    first.trainer->set_checkpoint_fn([&](int64_t) { save_checkpoint(ck, st); });
    clear_stop_request();
    const TrainResult r = first.trainer->run([&](int64_t k) {
      aug();
      if (k == 5) request_stop();
      return first.step(k);
    });
    clear_stop_request();
    ASSERT_EQ(r.status, TrainStatus::interrupted);
    ASSERT_EQ(r.iteration, 5);
  }
  MlpRun resumed(data, 42, n);
  TrainingState st{resumed.trainer.get(), &resumed.sampler, {{"augment", &aug_b}}};
  load_checkpoint(ck, st);
  EXPECT_EQ(resumed.trainer->iteration(), 5);
  resumed.trainer->run([&](int64_t k) {
    aug_b();
    return resumed.step(k);
  });
  expect_same_state(straight, resumed);
  EXPECT_TRUE(aug_a == aug_b);

  // The generator set must match: missing or unknown names are errors.
  MlpRun other(data, 42, n);
  EXPECT_THROW(load_checkpoint(ck, state_of(other)), Error);
  std::mt19937_64 x;
  EXPECT_THROW(
      load_checkpoint(
          ck, TrainingState{other.trainer.get(), &other.sampler, {{"augment", &x}, {"extra", &x}}}),
      Error);
  EXPECT_THROW(
      save_checkpoint(ck, TrainingState{other.trainer.get(), &other.sampler, {{"trainer", &x}}}),
      Error);
}

// Damaged or mismatched checkpoints: a clear error naming the problem, and nothing changes.
TEST_F(CheckpointTest, DamagedAndMismatchedFilesChangeNothing) {
  const MlpData data;
  const int64_t n = 10;
  TrainerOptions o;
  o.eval_every = 2;
  const std::string good = path("good.safetensors");
  {
    MlpRun run(data, 1, n, o);
    run.trainer->run(
        run.step_fn(), [&](int64_t) { return run.accuracy(); }, 4);
    save_checkpoint(good, state_of(run));
  }
  const std::string bytes = read_bytes(good);

  struct Case {
    std::string name, expect;
    std::function<void(const std::string&)> make;  // writes the damaged file
  };
  auto edited = [&](std::function<void(Tensors&, Meta&, nlohmann::json&)> edit) {
    return [edit, &good](const std::string& p) { rewrite(good, p, edit); };
  };
  auto raw = [](std::string content) {
    return [content](const std::string& p) { std::ofstream(p, std::ios::binary) << content; };
  };
  std::vector<Case> cases = {
      {"truncated", "cannot read checkpoint", raw(bytes.substr(0, bytes.size() / 2))},
      {"truncated header", "cannot read checkpoint", raw(bytes.substr(0, 12))},
      {"empty", "cannot read checkpoint", raw("")},
      {"flipped data byte", "is damaged",
       [&](const std::string& p) {
         std::string b = bytes;
         b[b.size() - 5] ^= 0x10;  // inside the last tensor's data
         std::ofstream(p, std::ios::binary) << b;
       }},
      {"edited record, old hash", "is damaged", edited([](Tensors&, Meta& m, nlohmann::json&) {
         nlohmann::json j = nlohmann::json::parse(m["tgpt.checkpoint"]);
         j["iteration"] = 3;
         m["tgpt.checkpoint"] = j.dump();
         m["tgpt.checkpoint.raw"] = "1";
         m["tgpt.checkpoint_sha256"] = std::string(64, '0');
       })},
      {"version", "format version \"2\"",
       edited([](Tensors&, Meta& m, nlohmann::json&) { m["tgpt.format_version"] = "2"; })},
      {"not a checkpoint", "not a tgpt training checkpoint",
       edited([](Tensors&, Meta& m, nlohmann::json&) { m.erase("tgpt.format"); })},
      {"broken record", "damaged tgpt.checkpoint record",
       edited([](Tensors&, Meta& m, nlohmann::json&) {
         m["tgpt.checkpoint"] = "{\"iteration\": 3";
         m["tgpt.checkpoint.raw"] = "1";
       })},
      {"record types", "damaged tgpt.checkpoint record",
       edited([](Tensors&, Meta&, nlohmann::json& j) { j["iteration"] = "four"; })},
      {"renamed parameter", "missing tensor \"param.fc1.bias\"",
       edited([](Tensors& t, Meta&, nlohmann::json&) {
         for (auto& [name, v] : t)
           if (name == "param.fc1.bias") name = "param.fc1.b";
       })},
      {"shape", "has shape [8, 5], the model's is [8, 6]",
       edited([](Tensors& t, Meta&, nlohmann::json&) {
         for (auto& [name, v] : t)
           if (name == "param.fc1.weight") v = Tensor::zeros({8, 5});
       })},
      {"moment shape", "optim.default.fc2.bias.exp_avg\" has shape [4]",
       edited([](Tensors& t, Meta&, nlohmann::json&) {
         for (auto& [name, v] : t)
           if (name == "optim.default.fc2.bias.exp_avg") v = Tensor::zeros({4});
       })},
      {"classes", "written for 4 classes, the model has 3",
       edited([](Tensors&, Meta&, nlohmann::json& j) { j["num_classes"] = 4; })},
      {"max_iter", "max_iter 20",
       edited([](Tensors&, Meta&, nlohmann::json& j) { j["max_iter"] = 20; })},
      {"optimizer", "optimizer \"sgd\"",
       edited([](Tensors&, Meta&, nlohmann::json& j) { j["optimizer"]["kind"] = "sgd"; })},
      {"rng", "generator \"trainer\": not a complete",
       edited([](Tensors&, Meta&, nlohmann::json& j) { j["rng"]["trainer"] = "12 34"; })},
      {"sampler size", "the sampler was over 21 items",
       edited([](Tensors&, Meta&, nlohmann::json& j) { j["sampler"]["size"] = 21; })},
      {"sampler permutation", "not a permutation", edited([](Tensors& t, Meta&, nlohmann::json&) {
         for (auto& [name, v] : t)
           if (name == "sampler.permutation") v = Tensor::zeros({20}, DType::i64);
       })},
      {"unexpected tensor", "unexpected tensor \"param.extra\"",
       edited([](Tensors& t, Meta&, nlohmann::json&) {
         t.emplace_back("param.extra", Tensor::zeros({2}));
       })},
      {"steps", "AdamW step count 9", edited([](Tensors&, Meta&, nlohmann::json& j) {
         j["optimizer"]["groups"][0]["steps"][0] = 9;
       })},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string bad = path("bad.safetensors");
    fs::remove(bad);
    c.make(bad);
    MlpRun run(data, 7, n, o);
    run.trainer->run(run.step_fn(), {}, 2);  // some state of its own to keep
    const Snapshot before(run);
    try {
      load_checkpoint(bad, state_of(run));
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
    before.expect_unchanged(run, c.name);
  }

  // A run with another model (other parameter names) or without a sampler.
  MlpRun run(data, 7, n, o);
  const Snapshot before(run);
  run.params.set_trainable("fc1.bias", false);  // its trainable set now differs
  EXPECT_THROW(load_checkpoint(good, state_of(run)), Error);
  run.params.set_trainable("fc1.bias", true);
  EXPECT_THROW(load_checkpoint(good, TrainingState{run.trainer.get(), nullptr, {}}), Error);
  EXPECT_THROW(load_checkpoint(path("missing.safetensors"), state_of(run)), Error);
  before.expect_unchanged(run, "other model");
  load_checkpoint(good, state_of(run));  // and the good file loads
  EXPECT_EQ(run.trainer->iteration(), 4);
}

// A write that fails part-way (here: the file-size limit) leaves the previous checkpoint as it
// was, and no temporary file behind.
TEST_F(CheckpointTest, FailedWriteKeepsThePreviousCheckpoint) {
  const MlpData data;
  MlpRun run(data, 1, 10);
  run.trainer->run(run.step_fn(), {}, 3);
  const std::string ck = path("ck.safetensors");
  save_checkpoint(ck, state_of(run));
  const std::string before = read_bytes(ck);
  run.trainer->run(run.step_fn(), {}, 6);

  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 256;  // bytes: the header alone is larger
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  try {
    save_checkpoint(ck, state_of(run));
  } catch (const Error&) {
    threw = true;
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw);
  EXPECT_EQ(read_bytes(ck), before);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) ++files, (void)e;
  EXPECT_EQ(files, 1);  // no temporary left

  // The previous checkpoint still loads and resumes from iteration 3.
  MlpRun fresh(data, 5, 10);
  load_checkpoint(ck, state_of(fresh));
  EXPECT_EQ(fresh.trainer->iteration(), 3);
}

// Seeded random damage anywhere in a checkpoint (tests/test_files.h mutate_bytes): every mutant is
// refused with a tgpt::Error, and the run it was loaded into is unchanged.
TEST_F(CheckpointTest, SeededMutationsAreRefused) {
  const MlpData data;
  TrainerOptions o;
  o.eval_every = 2;
  const std::string good = path("good.safetensors");
  {
    MlpRun run(data, 1, 10, o);
    run.trainer->run(
        run.step_fn(), [&](int64_t) { return run.accuracy(); }, 4);
    save_checkpoint(good, state_of(run));
  }
  const std::string bytes = read_bytes(good);
  MlpRun run(data, 7, 10, o);
  run.trainer->run(run.step_fn(), {}, 2);
  const Snapshot before(run);
  std::mt19937_64 rng(2024);
  int refused = 0;
  const int kMutants = 300;
  for (int k = 0; k < kMutants; ++k) {
    const std::string mutant = test::mutate_bytes(bytes, rng);
    if (mutant == bytes) continue;
    const std::string p = path("m.safetensors");
    std::ofstream(p, std::ios::binary | std::ios::trunc) << mutant;
    try {
      load_checkpoint(p, state_of(run));
      ADD_FAILURE() << "mutant " << k << " loaded";
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, kMutants * 9 / 10);
  before.expect_unchanged(run, "after the mutants");
}
