/*
 * ops_elementwise.cpp — broadcast binary ops, scalar and unary maps, broadcast_to, with autograd.
 * Launchers: kernels/elementwise.h (which also defines the BinaryOp / UnaryOp codes). On the CPU
 * f16/bf16 inputs are computed in f32; backward passes are compositions of these ops.
 */
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/elementwise.h"

namespace tgpt {

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  int n = std::max(a.size(), b.size());
  Shape out;
  for (int i = 0; i < n; ++i) {
    int ia = i - (n - a.size()), ib = i - (n - b.size());
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    TGPT_CHECK(da == db || da == 1 || db == 1, "shapes ", a.str(), " and ", b.str(),
               " cannot be broadcast together");
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

namespace {

// Strides of x (contiguous) expanded to `shape`: 0 on broadcast dims.
Shape broadcast_strides(const Tensor& x, const Shape& shape) {
  Shape st;
  int n = shape.size(), xd = x.dim();
  for (int i = 0; i < n; ++i) {
    int j = i - (n - xd);
    st.push_back(j < 0 || x.shape()[j] == 1 ? 0 : x.strides()[j]);
  }
  return st;
}

Tensor binary_raw(const Tensor& a_in, const Tensor& b_in, BinaryOp op, const char* name) {
  check_float(a_in, name, "a");
  check_float(b_in, name, "b");
  check_same_dtype(a_in, b_in, name);
  check_same_device(a_in, b_in, name);
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  check_kernel_dtype(a.device(), a.dtype(), name);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
  kernels::binary_forward(a.device(), a.dtype(), op, out.data_ptr(), a.data_ptr(), b.data_ptr(),
                          shape, sa, sb, name);
  return out;
}

struct BinaryNode : Node {
  BinaryOp op;
  Tensor a, b;  // saved for mul/div
  const char* name() const override { return "binary"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    const Shape& sa = inputs[0].shape();
    const Shape& sb = inputs[1].shape();
    switch (op) {
      case BinaryOp::add:
        if (needs_grad(0)) gi[0] = sum_to_shape(g, sa);
        if (needs_grad(1)) gi[1] = sum_to_shape(g, sb);
        break;
      case BinaryOp::sub:
        if (needs_grad(0)) gi[0] = sum_to_shape(g, sa);
        if (needs_grad(1)) gi[1] = sum_to_shape(neg(g), sb);
        break;
      case BinaryOp::mul:
        if (needs_grad(0)) gi[0] = sum_to_shape(mul(g, b), sa);
        if (needs_grad(1)) gi[1] = sum_to_shape(mul(g, a), sb);
        break;
      case BinaryOp::div:
        if (needs_grad(0)) gi[0] = sum_to_shape(div(g, b), sa);
        if (needs_grad(1)) gi[1] = sum_to_shape(neg(div(mul(g, a), mul(b, b))), sb);
        break;
    }
  }
  void release() override {
    a = Tensor();
    b = Tensor();
  }
};

Tensor binary(const Tensor& a, const Tensor& b, BinaryOp op, const char* name) {
  if (a.defined() && b.defined() && is_half(a.dtype()) && a.dtype() == b.dtype() &&
      a.device() == Device::CPU)
    return binary(a.to(DType::f32), b.to(DType::f32), op, name).to(a.dtype());
  Tensor out = binary_raw(a, b, op, name);
  if (auto node = make_node<BinaryNode>({&a, &b})) {
    node->op = op;
    if (op == BinaryOp::mul || op == BinaryOp::div) {
      node->a = a.detach();
      node->b = b.detach();
    }
    record(out, node);
  }
  return out;
}

// --- unary maps ------------------------------------------------------------------------------

struct UnaryNode : Node {
  UnaryOp op;
  double s = 0;
  Tensor x, y;  // input / output (detached) where backward needs them
  const char* name() const override { return "unary"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    switch (op) {
      case UnaryOp::neg: gi[0] = neg(g); break;
      case UnaryOp::exp: gi[0] = mul(g, y); break;
      case UnaryOp::log: gi[0] = div(g, x); break;
      case UnaryOp::sqrt: gi[0] = div(mul(g, 0.5), y); break;
      case UnaryOp::pow: gi[0] = mul(mul(g, pow(x, s - 1.0)), s); break;
      case UnaryOp::add_scalar: gi[0] = g; break;
      case UnaryOp::mul_scalar: gi[0] = mul(g, s); break;
    }
  }
  void release() override {
    x = Tensor();
    y = Tensor();
  }
};

Tensor unary(const Tensor& x_in, UnaryOp op, double s, const char* name) {
  check_float(x_in, name, "x");
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return unary(x_in.to(DType::f32), op, s, name).to(x_in.dtype());
  Tensor x = x_in.contiguous();
  check_kernel_dtype(x.device(), x.dtype(), name);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::unary_forward(x.device(), x.dtype(), op, out.data_ptr(), x.data_ptr(), x.numel(), s,
                         name);
  if (auto node = make_node<UnaryNode>({&x_in})) {
    node->op = op;
    node->s = s;
    if (op == UnaryOp::log || op == UnaryOp::pow) node->x = x.detach();
    if (op == UnaryOp::exp || op == UnaryOp::sqrt) node->y = out.detach();
    record(out, node);
  }
  return out;
}

struct BroadcastNode : Node {
  const char* name() const override { return "broadcast_to"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    gi[0] = sum_to_shape(g, inputs[0].shape());
  }
};

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary(a, b, BinaryOp::add, "add");
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(a, b, BinaryOp::sub, "sub");
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(a, b, BinaryOp::mul, "mul");
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(a, b, BinaryOp::div, "div");
}
Tensor add(const Tensor& a, double s) {
  return unary(a, UnaryOp::add_scalar, s, "add");
}
Tensor mul(const Tensor& a, double s) {
  return unary(a, UnaryOp::mul_scalar, s, "mul");
}
Tensor neg(const Tensor& a) {
  return unary(a, UnaryOp::neg, 0, "neg");
}
Tensor exp(const Tensor& a) {
  return unary(a, UnaryOp::exp, 0, "exp");
}
Tensor log(const Tensor& a) {
  return unary(a, UnaryOp::log, 0, "log");
}
Tensor sqrt(const Tensor& a) {
  return unary(a, UnaryOp::sqrt, 0, "sqrt");
}
Tensor pow(const Tensor& a, double e) {
  return unary(a, UnaryOp::pow, e, "pow");
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  TGPT_CHECK(x.defined(), "broadcast_to: undefined tensor");
  if (x.shape() == shape) return x;
  TGPT_CHECK(broadcast_shapes(x.shape(), shape) == shape, "broadcast_to: ", x.shape().str(),
             " cannot be broadcast to ", shape.str());
  Tensor c = x.detach().contiguous();
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = c.storage();
  impl->offset = c.offset();
  impl->shape = shape;
  impl->strides = broadcast_strides(c, shape);
  impl->dtype = c.dtype();
  Tensor out = Tensor(impl).contiguous();  // materialises stride-0 dims as a copy
  if (auto node = make_node<BroadcastNode>({&x})) record(out, node);
  return out;
}

}  // namespace tgpt
