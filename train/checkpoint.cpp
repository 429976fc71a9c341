/*
 * checkpoint.cpp — writing and reading training checkpoints (format in checkpoint.h). Loading
 * is two passes: check the whole file against the live training state, collecting every
 * problem; then, only when there is none, copy values in.
 */
#include "train/checkpoint.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/error.h"
#include "convert/sha256.h"
#include "engine/autograd.h"
#include "engine/safetensors.h"

namespace tgpt {

using json = nlohmann::json;

std::string rng_state_text(const std::mt19937_64& rng) {
  std::ostringstream os;
  os << rng;
  return os.str();
}

std::mt19937_64 parse_rng_state(const std::string& text, const std::string& what) {
  std::istringstream is(text);
  std::mt19937_64 rng;
  is >> rng;
  TGPT_CHECK(!is.fail(), what, ": not a complete std::mt19937_64 state");
  is >> std::ws;
  TGPT_CHECK(is.eof(), what, ": text after the std::mt19937_64 state");
  return rng;
}

namespace {

const char* optimizer_kind_name(OptimizerKind k) {
  return k == OptimizerKind::adamw ? "adamw" : "sgd";
}

void check_state(const TrainingState& s) {
  TGPT_CHECK(s.trainer != nullptr, "checkpoint: no trainer in the training state");
  std::set<std::string> names = {"trainer"};
  if (s.sampler) names.insert("sampler");
  for (const auto& [name, rng] : s.generators) {
    TGPT_CHECK(rng != nullptr, "checkpoint: generator \"", name, "\" is null");
    TGPT_CHECK(!name.empty() && names.insert(name).second, "checkpoint: generator name \"", name,
               "\" is empty or used twice (\"trainer\" and \"sampler\" are taken)");
  }
}

// Every generator of the state by name.
std::map<std::string, std::mt19937_64*> generators_of(const TrainingState& s,
                                                      std::mt19937_64* sampler_rng) {
  std::map<std::string, std::mt19937_64*> g = {{"trainer", &s.trainer->rng()}};
  if (sampler_rng) g["sampler"] = sampler_rng;
  for (const auto& [name, rng] : s.generators) g[name] = rng;
  return g;
}

}  // namespace

std::string checkpoint_content_hash(const std::string& record,
                                    std::vector<std::pair<std::string, Tensor>> tensors) {
  std::sort(tensors.begin(), tensors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  Sha256 h;
  h.update(record.data(), record.size());
  for (const auto& [name, t] : tensors) {
    const std::string head = name + '\0' + dtype_name(t.dtype()) + t.shape().str();
    h.update(head.data(), head.size());
    const Tensor c = t.to(Device::CPU).contiguous();
    if (c.nbytes() > 0) h.update(c.data_ptr(), c.nbytes());
  }
  return h.finish_hex();
}

namespace {

// The shape and dtype the optimizer state of parameter p must have.
DType state_dtype(const Tensor& p) {
  return p.device() == Device::CUDA ? DType::f32 : p.dtype();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Save

void save_checkpoint(const std::string& path, const TrainingState& s) {
  check_state(s);
  const Trainer& tr = *s.trainer;
  const nn::ParameterSet& params = tr.parameters();
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : params.items(/*trainable_only=*/true))
    tensors.emplace_back("param." + name, t);

  json groups = json::array();
  for (size_t g = 0; g < tr.num_groups(); ++g) {
    const ParamGroup& grp = tr.group(g);
    json steps = json::array();
    const std::string prefix = "optim." + grp.name + ".";
    if (auto* adamw = dynamic_cast<const AdamW*>(&tr.optimizer(g))) {
      for (size_t i = 0; i < grp.params.size(); ++i) {
        const AdamWState& st = adamw->state(i);
        steps.push_back(st.step);
        if (st.step > 0) {
          tensors.emplace_back(prefix + grp.params[i] + ".exp_avg", st.exp_avg);
          tensors.emplace_back(prefix + grp.params[i] + ".exp_avg_sq", st.exp_avg_sq);
        }
      }
    } else {
      const auto& sgd = dynamic_cast<const SGD&>(tr.optimizer(g));
      for (size_t i = 0; i < grp.params.size(); ++i)
        if (sgd.momentum_buffer(i).defined())
          tensors.emplace_back(prefix + grp.params[i] + ".momentum", sgd.momentum_buffer(i));
    }
    groups.push_back(
        {{"name", grp.name}, {"lr_scale", grp.lr_scale}, {"params", grp.params}, {"steps", steps}});
  }
  for (const auto& [name, t] : tr.best_parameters()) tensors.emplace_back("best." + name, t);

  json sampler = nullptr;
  std::mt19937_64 sampler_rng;
  if (s.sampler) {
    const RandomSampler::State st = s.sampler->state();
    sampler = {{"size", s.sampler->size()},
               {"batch_size", s.sampler->batch_size()},
               {"seed", s.sampler->seed()},
               {"epoch", st.epoch},
               {"index", st.index}};
    if (!st.permutation.empty())
      tensors.emplace_back(
          "sampler.permutation",
          Tensor::from_data(st.permutation.data(), {static_cast<int64_t>(st.permutation.size())}));
    sampler_rng = st.rng;
  }
  json rng = json::object();
  for (const auto& [name, g] : generators_of(s, s.sampler ? &sampler_rng : nullptr))
    rng[name] = rng_state_text(*g);

  const json meta = {
      {"iteration", tr.iteration()},
      {"max_iter", tr.options().max_iter},
      {"num_classes", tr.options().num_classes},
      {"optimizer", {{"kind", optimizer_kind_name(tr.options().optimizer)}, {"groups", groups}}},
      {"best", tr.has_best() ? json{{"score", tr.best_score()}, {"iteration", tr.best_iteration()}}
                             : json(nullptr)},
      {"sampler", sampler},
      {"rng", rng},
  };
  // Larger elements first keeps every tensor aligned in the file.
  std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });
  const std::string record = meta.dump();
  save_safetensors(path, tensors,
                   {{"tgpt.format", "checkpoint"},
                    {"tgpt.format_version", std::to_string(kCheckpointFormatVersion)},
                    {"tgpt.checkpoint", record},
                    {"tgpt.checkpoint_sha256", checkpoint_content_hash(record, tensors)}});
}

// ---------------------------------------------------------------------------------------------
// Load

namespace {

// The problems found while checking a checkpoint, reported together.
struct Problems {
  std::vector<std::string> list;
  template <typename... Args>
  void add(const Args&... args) {
    list.push_back(str_cat(args...));
  }
  void throw_if_any(const std::string& path) const {
    if (list.empty()) return;
    std::string msg = "checkpoint '" + path + "' does not fit this training run (" +
                      std::to_string(list.size()) + " problem" + (list.size() > 1 ? "s" : "") +
                      "; nothing was loaded):";
    const size_t shown = std::min<size_t>(list.size(), 20);
    for (size_t i = 0; i < shown; ++i) msg += "\n  " + list[i];
    if (shown < list.size()) msg += "\n  ... and " + std::to_string(list.size() - shown) + " more";
    throw Error(msg);
  }
};

// Checks that entry `name` exists with `shape` and `dtype` (dtype: any float when unset).
void expect_tensor(const SafetensorsFile& f, const std::string& name, const Shape& shape,
                   std::optional<DType> dtype, Problems& p) {
  if (!f.contains(name)) {
    p.add("missing tensor \"", name, "\"");
    return;
  }
  const SafetensorsEntry& e = f.entry(name);
  if (e.shape != shape)
    p.add("tensor \"", name, "\" has shape ", e.shape.str(), ", the model's is ", shape.str());
  if (dtype ? e.dtype != *dtype : !dtype_is_float(e.dtype))
    p.add("tensor \"", name, "\" has dtype ", dtype_name(e.dtype), ", expected ",
          dtype ? dtype_name(*dtype) : "a float dtype");
}

}  // namespace

void load_checkpoint(const std::string& path, const TrainingState& s) {
  check_state(s);
  Trainer& tr = *s.trainer;
  nn::ParameterSet& params = tr.parameters();
  const SafetensorsFile f = [&] {
    try {
      return SafetensorsFile::open(path);
    } catch (const Error& e) {
      throw Error("cannot read checkpoint: " + std::string(e.what()));
    }
  }();
  const auto& md = f.metadata();
  auto meta_of = [&](const std::string& key) {
    auto it = md.find(key);
    return it == md.end() ? std::string() : it->second;
  };
  TGPT_CHECK(meta_of("tgpt.format") == "checkpoint", "'", path,
             "' is not a tgpt training checkpoint (tgpt.format is \"", meta_of("tgpt.format"),
             "\", expected \"checkpoint\")");
  TGPT_CHECK(meta_of("tgpt.format_version") == std::to_string(kCheckpointFormatVersion),
             "checkpoint '", path, "' has format version \"", meta_of("tgpt.format_version"),
             "\"; this build reads version ", kCheckpointFormatVersion);

  {
    std::vector<std::pair<std::string, Tensor>> all;
    for (const std::string& name : f.names()) all.emplace_back(name, f.get(name));
    TGPT_CHECK(checkpoint_content_hash(meta_of("tgpt.checkpoint"), std::move(all)) ==
                   meta_of("tgpt.checkpoint_sha256"),
               "checkpoint '", path,
               "' is damaged: its contents do not match the SHA-256 recorded when it was written");
  }

  // The JSON record, read into plain values (a wrong type or a missing key is an error).
  int64_t iteration = 0, max_iter = 0, num_classes = 0, best_iteration = 0;
  double best_score = 0;
  std::string kind;
  struct GroupRecord {
    std::string name;
    double lr_scale = 1;
    std::vector<std::string> params;
    std::vector<int64_t> steps;
  };
  std::vector<GroupRecord> groups;
  bool has_sampler = false;
  int64_t s_size = 0, s_batch = 0, s_epoch = 0, s_index = 0;
  uint64_t s_seed = 0;
  std::map<std::string, std::string> rng_text;
  try {
    const json j = json::parse(meta_of("tgpt.checkpoint"));
    iteration = j.at("iteration").get<int64_t>();
    max_iter = j.at("max_iter").get<int64_t>();
    num_classes = j.at("num_classes").get<int64_t>();
    kind = j.at("optimizer").at("kind").get<std::string>();
    for (const json& g : j.at("optimizer").at("groups")) {
      GroupRecord r;
      r.name = g.at("name").get<std::string>();
      r.lr_scale = g.at("lr_scale").get<double>();
      r.params = g.at("params").get<std::vector<std::string>>();
      r.steps = g.at("steps").get<std::vector<int64_t>>();
      groups.push_back(std::move(r));
    }
    if (!j.at("best").is_null()) {
      best_score = j.at("best").at("score").get<double>();
      best_iteration = j.at("best").at("iteration").get<int64_t>();
    }
    if (!j.at("sampler").is_null()) {
      const json& sj = j.at("sampler");
      has_sampler = true;
      s_size = sj.at("size").get<int64_t>();
      s_batch = sj.at("batch_size").get<int64_t>();
      s_seed = sj.at("seed").get<uint64_t>();
      s_epoch = sj.at("epoch").get<int64_t>();
      s_index = sj.at("index").get<int64_t>();
    }
    rng_text = j.at("rng").get<std::map<std::string, std::string>>();
  } catch (const json::exception& e) {
    TGPT_FAIL("checkpoint '", path, "': damaged tgpt.checkpoint record (", e.what(), ")");
  }

  Problems p;
  const TrainerOptions& o = tr.options();
  if (num_classes != o.num_classes)
    p.add("it was written for ", num_classes, " classes, the model has ", o.num_classes);
  if (max_iter != o.max_iter)
    p.add("it was written for max_iter ", max_iter, ", this run has ", o.max_iter,
          " (the schedule would differ)");
  if (iteration < 0 || iteration > o.max_iter)
    p.add("iteration ", iteration, " outside [0, ", o.max_iter, "]");
  if (best_iteration < 0 || best_iteration > iteration)
    p.add("best-validation iteration ", best_iteration, " outside [0, ", iteration, "]");
  if (kind != optimizer_kind_name(o.optimizer))
    p.add("optimizer \"", kind, "\", this run uses \"", optimizer_kind_name(o.optimizer), "\"");

  // Parameters: exactly the trainable ones, by name, shape and float dtype.
  const auto trainable = params.items(/*trainable_only=*/true);
  std::set<std::string> expected;
  for (const auto& [name, t] : trainable) {
    expected.insert("param." + name);
    expect_tensor(f, "param." + name, t.shape(), std::nullopt, p);
    if (best_iteration > 0) {
      expected.insert("best." + name);
      expect_tensor(f, "best." + name, t.shape(), std::nullopt, p);
    }
  }

  // Optimizer groups and state.
  const bool same_kind = kind == optimizer_kind_name(o.optimizer);
  if (groups.size() != tr.num_groups()) {
    p.add(groups.size(), " optimizer groups, this run has ", tr.num_groups());
  } else {
    for (size_t g = 0; g < groups.size(); ++g) {
      const GroupRecord& r = groups[g];
      const ParamGroup& live = tr.group(g);
      if (r.name != live.name || r.params != live.params) {
        p.add("optimizer group ", g, " is \"", r.name, "\" with ", r.params.size(),
              " parameters, this run's is \"", live.name, "\" with ", live.params.size(),
              " (other parameter names or order)");
        continue;
      }
      if (r.lr_scale != live.lr_scale)
        p.add("optimizer group \"", r.name, "\" has lr_scale ", r.lr_scale, ", this run's is ",
              live.lr_scale);
      if (!same_kind) continue;
      const std::string prefix = "optim." + r.name + ".";
      const std::vector<Tensor>& tensors = tr.optimizer(g).params();
      if (o.optimizer == OptimizerKind::adamw) {
        if (r.steps.size() != r.params.size()) {
          p.add("optimizer group \"", r.name, "\" has ", r.steps.size(), " step counts for ",
                r.params.size(), " parameters");
          continue;
        }
        for (size_t i = 0; i < r.params.size(); ++i) {
          if (r.steps[i] < 0 || r.steps[i] > iteration)
            p.add("parameter \"", r.params[i], "\" has AdamW step count ", r.steps[i],
                  " outside [0, ", iteration, "]");
          if (r.steps[i] <= 0) continue;
          for (const char* m : {".exp_avg", ".exp_avg_sq"}) {
            expected.insert(prefix + r.params[i] + m);
            expect_tensor(f, prefix + r.params[i] + m, tensors[i].shape(), state_dtype(tensors[i]),
                          p);
          }
        }
      } else {
        for (size_t i = 0; i < r.params.size(); ++i) {
          const std::string name = prefix + r.params[i] + ".momentum";
          if (!f.contains(name)) continue;
          expected.insert(name);
          expect_tensor(f, name, tensors[i].shape(), state_dtype(tensors[i]), p);
        }
      }
    }
  }

  // Sampler.
  std::optional<RandomSampler::State> sampler_state;
  if (has_sampler != (s.sampler != nullptr)) {
    p.add(has_sampler ? "it holds a data sampler's position but this run has no sampler"
                      : "it holds no data sampler position but this run has a sampler");
  } else if (s.sampler) {
    if (s_size != s.sampler->size() || s_batch != s.sampler->batch_size())
      p.add("the sampler was over ", s_size, " items in batches of ", s_batch,
            ", this run's is over ", s.sampler->size(), " in batches of ", s.sampler->batch_size(),
            " (another dataset or batch size)");
    RandomSampler::State st;
    st.epoch = s_epoch;
    st.index = s_index;
    if (f.contains("sampler.permutation")) {
      expected.insert("sampler.permutation");
      const SafetensorsEntry& e = f.entry("sampler.permutation");
      if (e.dtype != DType::i64 || e.shape.size() != 1) {
        p.add("tensor \"sampler.permutation\" must be i64 [N], got ", dtype_name(e.dtype),
              e.shape.str());
      } else {
        const Tensor perm = f.get("sampler.permutation");
        st.permutation.assign(perm.data<int64_t>(), perm.data<int64_t>() + perm.numel());
      }
    }
    if (rng_text.count("sampler")) {
      try {
        st.rng = parse_rng_state(rng_text.at("sampler"), "generator \"sampler\"");
      } catch (const Error& e) {
        p.add(e.what());
      }
    }
    if (s_seed != s.sampler->seed())
      p.add("the sampler was seeded with ", s_seed, ", this run's with ", s.sampler->seed());
    // Check the position against a scratch sampler of the same size.
    try {
      RandomSampler scratch(s.sampler->size(), s.sampler->batch_size(), s.sampler->seed());
      scratch.set_state(st);
      sampler_state = st;
    } catch (const Error& e) {
      p.add("sampler position: ", e.what());
    }
  }

  // Generators: the same names, each a complete state.
  std::mt19937_64 unused;
  const auto live_generators = generators_of(s, s.sampler ? &unused : nullptr);
  std::map<std::string, std::mt19937_64> parsed;
  for (const auto& [name, g] : live_generators) {
    if (!rng_text.count(name)) {
      p.add("no state for generator \"", name, "\"");
    } else if (name != "sampler") {
      try {
        parsed[name] = parse_rng_state(rng_text.at(name), "generator \"" + name + "\"");
      } catch (const Error& e) {
        p.add(e.what());
      }
    }
  }
  for (const auto& [name, text] : rng_text)
    if (!live_generators.count(name))
      p.add("state for generator \"", name, "\" that this run lacks");

  // Nothing else may be in the file.
  for (const std::string& name : f.names())
    if (!expected.count(name)) p.add("unexpected tensor \"", name, "\"");
  p.throw_if_any(path);

  // Everything fits: copy values in. Parameters first (ParameterSet::load is all-or-nothing).
  std::map<std::string, Tensor> values, best;
  for (const auto& [name, t] : trainable) {
    values[name] = f.get("param." + name);
    if (best_iteration > 0) {
      NoGradGuard no_grad;
      best[name] = f.get("best." + name).to(t.dtype()).to(t.device()).clone();
    }
  }
  nn::ParameterSet::LoadOptions lo;
  lo.allow_missing = true;  // frozen parameters are not in checkpoints
  params.load(values, "checkpoint '" + path + "'", lo);
  for (size_t g = 0; g < groups.size(); ++g) {
    const GroupRecord& r = groups[g];
    const std::string prefix = "optim." + r.name + ".";
    if (auto* adamw = dynamic_cast<AdamW*>(&tr.optimizer(g))) {
      for (size_t i = 0; i < r.params.size(); ++i) {
        AdamWState st;
        st.step = r.steps[i];
        if (st.step > 0) {
          st.exp_avg = f.get(prefix + r.params[i] + ".exp_avg");
          st.exp_avg_sq = f.get(prefix + r.params[i] + ".exp_avg_sq");
        }
        adamw->set_state(i, st);
      }
    } else {
      auto& sgd = dynamic_cast<SGD&>(tr.optimizer(g));
      for (size_t i = 0; i < r.params.size(); ++i) {
        const std::string name = prefix + r.params[i] + ".momentum";
        sgd.set_momentum_buffer(i, f.contains(name) ? f.get(name) : Tensor());
      }
    }
  }
  tr.restore_position(iteration, best_score, best_iteration, std::move(best));
  if (s.sampler) s.sampler->set_state(*sampler_state);
  for (const auto& [name, g] : live_generators)
    if (name != "sampler") *g = parsed.at(name);
}

}  // namespace tgpt
