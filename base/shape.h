/*
 * shape.h — Shape: up to kMaxDims (5) extents or strides, stored inline (no heap allocation).
 */
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "base/error.h"

namespace tgpt {

constexpr int kMaxDims = 5;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    TGPT_CHECK(dims.size() <= kMaxDims, "tensors have at most ", kMaxDims, " dims, got ",
               dims.size());
    for (int64_t d : dims) d_[n_++] = d;
  }
  explicit Shape(const std::vector<int64_t>& dims) {
    TGPT_CHECK(dims.size() <= kMaxDims, "tensors have at most ", kMaxDims, " dims, got ",
               dims.size());
    for (int64_t d : dims) d_[n_++] = d;
  }
  int size() const { return n_; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t& operator[](int i) { return d_[i]; }
  int64_t back() const { return d_[n_ - 1]; }
  void push_back(int64_t v) {
    TGPT_CHECK(n_ < kMaxDims, "tensors have at most ", kMaxDims, " dims");
    d_[n_++] = v;
  }
  void insert(int pos, int64_t v) {
    TGPT_CHECK(n_ < kMaxDims, "tensors have at most ", kMaxDims, " dims");
    for (int i = n_; i > pos; --i) d_[i] = d_[i - 1];
    d_[pos] = v;
    ++n_;
  }
  void erase(int pos) {
    for (int i = pos; i + 1 < n_; ++i) d_[i] = d_[i + 1];
    --n_;
  }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  int64_t numel() const {
    int64_t p = 1;
    for (int i = 0; i < n_; ++i) p *= d_[i];
    return p;
  }
  std::vector<int64_t> vec() const { return std::vector<int64_t>(begin(), end()); }
  bool operator==(const Shape& o) const {
    if (n_ != o.n_) return false;
    for (int i = 0; i < n_; ++i)
      if (d_[i] != o.d_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < n_; ++i) s += (i ? ", " : "") + std::to_string(d_[i]);
    return s + "]";
  }

 private:
  int64_t d_[kMaxDims] = {0, 0, 0, 0, 0};
  int n_ = 0;
};

// Row-major (C-order) strides of a shape, in elements.
inline Shape contiguous_strides(const Shape& shape) {
  Shape s = shape;
  int64_t acc = 1;
  for (int i = shape.size() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

}  // namespace tgpt
