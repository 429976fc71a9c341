/*
 * parameters.h — ParameterSet: the named tensors of a model (name → tensor, trainable flag).
 *
 * Every layer registers its tensors here under a dotted name ("transformer.resblocks.0.ln_1.weight",
 * "prompt_learner.bonder_category.cross_attn.q.weight"), so that the same names serve weight files,
 * optimizer parameter groups, checkpoints and the import of official PyTorch state dicts.
 *
 * Handles: `add` stores a tensor and returns the handle the layer keeps. A Tensor is a handle to
 * shared state, so placement changes made here (`to`) and values loaded here (`load`) are seen by
 * every copy of the handle: layers never look their parameters up again. Names keep their
 * insertion order (the order of `names()`, of saving and of the optimizer's groups).
 *
 * Trainable: a parameter is trainable when its tensor requires grad; `set_trainable` switches it
 * (frozen encoders: false; prompt/Bonder parameters: true). Only float tensors can be trainable.
 *
 * Loading (`load`): values are copied into the existing tensors (converted to their dtype, kept on
 * their device). Every expected name must be present with the expected shape and no other name may
 * be present, unless the options say otherwise; all problems are collected and reported together in
 * one tgpt::Error naming the source: missing names, unexpected names, wrong shapes, non-float data
 * for a float parameter. Nothing is modified when any problem is found.
 */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace tgpt::nn {

class ParameterSet {
 public:
  // Adds `value` under `name` and returns the handle the caller keeps (the same tensor, not a
  // copy; requires_grad set to `trainable`). Throws on an empty or duplicate name, an undefined
  // tensor, a non-leaf tensor, or a trainable non-float tensor.
  Tensor add(const std::string& name, const Tensor& value, bool trainable);

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // The tensor of `name`; throws naming the set's size when absent.
  const Tensor& get(const std::string& name) const;
  size_t size() const { return entries_.size(); }
  std::vector<std::string> names() const;  // insertion order

  bool trainable(const std::string& name) const { return get(name).requires_grad(); }
  void set_trainable(const std::string& name, bool trainable);
  void set_all_trainable(bool trainable);
  // Every (name, tensor) in insertion order; only trainable ones when trainable_only.
  std::vector<std::pair<std::string, Tensor>> items(bool trainable_only = false) const;
  int64_t numel(bool trainable_only = false) const;

  // Moves every tensor to `device` and casts the float ones to `dtype`; handles stay valid (the
  // tensors kept by layers see the new placement). Gradients are dropped.
  void to(Device device, DType dtype);
  void zero_grad();

  // Writes every tensor (or only the trainable ones) to a safetensors file, atomically, in
  // insertion order grouped by decreasing element size (so every tensor stays aligned).
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {},
            bool trainable_only = false) const;

  struct LoadOptions {
    bool allow_missing = false;     // names of the set absent from the source are left as they are
    bool allow_unexpected = false;  // names of the source unknown to the set are ignored
  };
  // Copies values by name from `tensors` (`source` names them in errors). Returns the names that
  // were loaded. All-or-nothing: on any problem nothing is changed and one Error lists them all.
  std::vector<std::string> load(const std::map<std::string, Tensor>& tensors,
                                const std::string& source, const LoadOptions& options);
  std::vector<std::string> load(const std::map<std::string, Tensor>& tensors,
                                const std::string& source) {
    return load(tensors, source, LoadOptions{});
  }
  // The same from a safetensors file.
  std::vector<std::string> load(const std::string& path, const LoadOptions& options);
  std::vector<std::string> load(const std::string& path) { return load(path, LoadOptions{}); }

 private:
  struct Entry {
    std::string name;
    Tensor value;
  };
  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;
};

}  // namespace tgpt::nn
