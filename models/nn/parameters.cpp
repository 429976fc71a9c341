/*
 * parameters.cpp — ParameterSet (models/nn/parameters.h): registration, placement, save/load by
 * name with every problem reported at once.
 */
#include "models/nn/parameters.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/safetensors.h"

namespace tgpt::nn {

namespace {

// "a, b, c, ... (N more)" for error messages.
std::string name_list(const std::vector<std::string>& names, size_t shown_max = 20) {
  std::string s;
  const size_t shown = std::min(names.size(), shown_max);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > shown) s += str_cat(", ... (", names.size() - shown, " more)");
  return s;
}

}  // namespace

Tensor ParameterSet::add(const std::string& name, const Tensor& value, bool trainable) {
  TGPT_CHECK(!name.empty(), "ParameterSet::add: empty parameter name");
  TGPT_CHECK(!contains(name), "ParameterSet::add: duplicate parameter name \"", name, "\"");
  TGPT_CHECK(value.defined(), "ParameterSet::add: \"", name, "\" is an undefined tensor");
  TGPT_CHECK(value.is_leaf(), "ParameterSet::add: \"", name,
             "\" was produced by a recorded op (detach it first)");
  TGPT_CHECK(!trainable || dtype_is_float(value.dtype()), "ParameterSet::add: \"", name,
             "\" is ", dtype_name(value.dtype()), " and cannot be trainable");
  Tensor t = value;
  t.set_requires_grad(trainable);
  index_.emplace(name, entries_.size());
  entries_.push_back({name, t});
  return t;
}

const Tensor& ParameterSet::get(const std::string& name) const {
  auto it = index_.find(name);
  TGPT_CHECK(it != index_.end(), "ParameterSet: no parameter named \"", name, "\" (", size(),
             " parameters)");
  return entries_[it->second].value;
}

std::vector<std::string> ParameterSet::names() const {
  std::vector<std::string> n;
  n.reserve(entries_.size());
  for (const Entry& e : entries_) n.push_back(e.name);
  return n;
}

void ParameterSet::set_trainable(const std::string& name, bool trainable) {
  Tensor t = get(name);
  TGPT_CHECK(!trainable || dtype_is_float(t.dtype()), "ParameterSet::set_trainable: \"", name,
             "\" is ", dtype_name(t.dtype()), " and cannot be trainable");
  t.set_requires_grad(trainable);
}

void ParameterSet::set_all_trainable(bool trainable) {
  for (const Entry& e : entries_) set_trainable(e.name, trainable);
}

std::vector<std::pair<std::string, Tensor>> ParameterSet::items(bool trainable_only) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Entry& e : entries_)
    if (!trainable_only || e.value.requires_grad()) out.emplace_back(e.name, e.value);
  return out;
}

int64_t ParameterSet::numel(bool trainable_only) const {
  int64_t n = 0;
  for (const Entry& e : entries_)
    if (!trainable_only || e.value.requires_grad()) n += e.value.numel();
  return n;
}

void ParameterSet::to(Device device, DType dtype) {
  TGPT_CHECK(dtype_is_float(dtype), "ParameterSet::to: ", dtype_name(dtype),
             " is not a float type");
  // Convert everything first, then swap the handles' contents, so a failure leaves the set as it
  // was.
  std::vector<Tensor> converted;
  converted.reserve(entries_.size());
  for (const Entry& e : entries_) {
    Tensor c = e.value.detach();
    if (dtype_is_float(c.dtype()) && c.dtype() != dtype) {
      // f64 is cast on the host (the CUDA kernels do not take it).
      if (c.device() != device && c.dtype() == DType::f64) c = c.to(dtype);
      if (c.device() != device) c = c.to(device);
      if (c.dtype() != dtype) c = c.to(dtype);
    } else if (c.device() != device) {
      c = c.to(device);
    }
    converted.push_back(c.contiguous());
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    TensorImpl& dst = entries_[i].value.impl();
    const TensorImpl& src = converted[i].impl();
    if (&dst == &src) continue;
    dst.storage = src.storage;
    dst.offset = src.offset;
    dst.shape = src.shape;
    dst.strides = src.strides;
    dst.dtype = src.dtype;
    dst.grad.reset();
  }
}

void ParameterSet::zero_grad() {
  for (Entry& e : entries_) e.value.zero_grad();
}

void ParameterSet::save(const std::string& path, const std::map<std::string, std::string>& metadata,
                        bool trainable_only) const {
  std::vector<std::pair<std::string, Tensor>> tensors = items(trainable_only);
  // Larger elements first keeps every tensor aligned in the file (zero-copy when read back).
  std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });
  for (auto& [name, t] : tensors) t = t.detach();
  save_safetensors(path, tensors, metadata);
}

std::vector<std::string> ParameterSet::load(const std::map<std::string, Tensor>& tensors,
                                            const std::string& source,
                                            const LoadOptions& options) {
  std::vector<std::string> missing, unexpected, problems, loaded;
  for (const Entry& e : entries_) {
    auto it = tensors.find(e.name);
    if (it == tensors.end()) {
      if (!options.allow_missing) missing.push_back(e.name);
      continue;
    }
    const Tensor& src = it->second;
    if (!src.defined()) {
      problems.push_back(str_cat(e.name, " is an undefined tensor"));
    } else if (src.shape() != e.value.shape()) {
      problems.push_back(str_cat(e.name, " has shape ", src.shape().str(), ", expected ",
                                 e.value.shape().str()));
    } else if (dtype_is_float(e.value.dtype()) != dtype_is_float(src.dtype())) {
      problems.push_back(str_cat(e.name, " has dtype ", dtype_name(src.dtype()), ", expected ",
                                 dtype_is_float(e.value.dtype()) ? "a float type" : "an integer type"));
    } else {
      loaded.push_back(e.name);
    }
  }
  if (!options.allow_unexpected)
    for (const auto& [name, t] : tensors)
      if (!contains(name)) unexpected.push_back(name);
  if (!missing.empty())
    problems.push_back(str_cat(missing.size(), " missing: ", name_list(missing)));
  if (!unexpected.empty())
    problems.push_back(str_cat(unexpected.size(), " unexpected: ", name_list(unexpected)));
  if (!problems.empty()) {
    std::string msg = str_cat(source, ": parameters do not match (", problems.size(), " problem",
                              problems.size() == 1 ? "" : "s", "):");
    for (const std::string& p : problems) msg += "\n  - " + p;
    throw Error(msg);
  }
  NoGradGuard no_grad;
  for (const std::string& name : loaded) {
    Tensor dst = get(name);
    dst.copy_(tensors.at(name));
  }
  return loaded;
}

std::vector<std::string> ParameterSet::load(const std::string& path, const LoadOptions& options) {
  SafetensorsFile file = SafetensorsFile::open(path);
  std::map<std::string, Tensor> tensors;
  for (const SafetensorsEntry& e : file.entries()) tensors.emplace(e.name, file.get(e.name));
  return load(tensors, path, options);
}

}  // namespace tgpt::nn
