/*
 * ops_reduce.cpp — sum and mean over all elements or over chosen dims, with autograd. The reduced
 * dims are moved last and summed as contiguous rows by the launcher kernels/reduce.h.
 */
#include <algorithm>

#include "engine/ops_common.h"
#include "kernels/reduce.h"

namespace tgpt {

namespace {

struct SumNode : Node {
  Shape keep_shape;  // output shape with reduced dims kept as 1
  double scale = 1.0;
  const char* name() const override { return "sum"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    Tensor gk = g.reshape(keep_shape);
    if (scale != 1.0) gk = mul(gk, scale);
    gi[0] = broadcast_to(gk, inputs[0].shape());
  }
};

Tensor reduce(const Tensor& x_in, std::vector<int> dims, bool keepdim, bool is_mean,
              const char* name) {
  check_float(x_in, name, "x");
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return reduce(x_in.to(DType::f32), dims, keepdim, is_mean, name).to(x_in.dtype());
  int nd = x_in.dim();
  std::vector<char> reduced(std::max(nd, 1), 0);
  for (int& d : dims) {
    d = wrap_dim(d, nd);
    TGPT_CHECK(!reduced[d], name, ": dim ", d, " repeated");
    reduced[d] = 1;
  }
  // Move the reduced dims to the end, then sum contiguous rows.
  std::vector<int> perm;
  Shape out_shape, keep_shape;
  int64_t rows = 1, n = 1;
  for (int d = 0; d < nd; ++d) {
    if (!reduced[d]) {
      perm.push_back(d);
      out_shape.push_back(x_in.shape()[d]);
      keep_shape.push_back(x_in.shape()[d]);
      rows *= x_in.shape()[d];
    } else {
      keep_shape.push_back(1);
      if (keepdim) out_shape.push_back(1);
    }
  }
  for (int d = 0; d < nd; ++d)
    if (reduced[d]) {
      perm.push_back(d);
      n *= x_in.shape()[d];
    }
  Tensor x = x_in.detach();
  if (nd > 0) x = x.permute(perm).contiguous();
  check_kernel_dtype(x.device(), x.dtype(), name);
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  kernels::sum_rows(x.device(), x.dtype(), out.data_ptr(), x.data_ptr(), rows, n, is_mean, name);
  if (auto node = make_node<SumNode>({&x_in})) {
    node->keep_shape = keep_shape;
    node->scale = is_mean ? 1.0 / static_cast<double>(n) : 1.0;
    record(out, node);
  }
  return out;
}

std::vector<int> all_dims(const Tensor& x) {
  std::vector<int> d(x.dim());
  for (int i = 0; i < x.dim(); ++i) d[i] = i;
  return d;
}

}  // namespace

Tensor sum(const Tensor& x) {
  return reduce(x, all_dims(x), false, false, "sum");
}
Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  return reduce(x, dims, keepdim, false, "sum");
}
Tensor mean(const Tensor& x) {
  return reduce(x, all_dims(x), false, true, "mean");
}
Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  return reduce(x, dims, keepdim, true, "mean");
}

}  // namespace tgpt
