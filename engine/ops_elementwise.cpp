/*
 * ops_elementwise.cpp — broadcast binary ops, scalar and unary maps, broadcast_to, with autograd.
 */
#include <cmath>

#include "engine/ops_common.h"
#include "kernels/cpu/elementwise.h"
#ifdef TGPT_WITH_CUDA
#include "engine/cuda/op_support.h"
#include "kernels/cuda/elementwise.h"
#endif

namespace tgpt {

std::vector<int64_t> index_values(const Tensor& idx, const char* op) {
  TGPT_CHECK(idx.defined(), op, ": index tensor is undefined");
  TGPT_CHECK(idx.dtype() == DType::i32 || idx.dtype() == DType::i64, op,
             ": indices must be i32 or i64, got ", dtype_name(idx.dtype()));
  Tensor c = idx.device() == Device::CPU ? idx.contiguous() : idx.to(Device::CPU);
  std::vector<int64_t> v(static_cast<size_t>(c.numel()));
  if (c.dtype() == DType::i64) {
    const int64_t* p = c.data<int64_t>();
    v.assign(p, p + c.numel());
  } else {
    const int32_t* p = c.data<int32_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = p[i];
  }
  return v;
}

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

enum class BinOp { add, sub, mul, div };

Tensor binary_raw(const Tensor& a_in, const Tensor& b_in, BinOp op, const char* name) {
  check_float(a_in, name, "a");
  check_float(b_in, name, "b");
  check_same_dtype(a_in, b_in, name);
  check_same_device(a_in, b_in, name);
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Shape shape = broadcast_shapes(a.shape(), b.shape());
#ifdef TGPT_WITH_CUDA
  if (a.device() == Device::CUDA) {
    check_cuda_float(a, name);
    Tensor out = Tensor::empty(shape, a.dtype(), Device::CUDA);
    Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
    cuda::binary_broadcast(a.dtype(), static_cast<cuda::BinaryOp>(op), out.data_ptr(), a.data_ptr(),
                           b.data_ptr(), shape.begin(), sa.begin(), sb.begin(), shape.size());
    return out;
  }
#endif
  check_cpu_kernel(a, name);
  Tensor out = Tensor::empty(shape, a.dtype());
  Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
  dispatch_float(a.dtype(), name, [&](auto t) {
    using T = decltype(t);
    T* o = out.data<T>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    switch (op) {
      case BinOp::add:
        cpu::binary_broadcast_forward(o, pa, pb, shape, sa, sb, [](T x, T y) { return x + y; });
        break;
      case BinOp::sub:
        cpu::binary_broadcast_forward(o, pa, pb, shape, sa, sb, [](T x, T y) { return x - y; });
        break;
      case BinOp::mul:
        cpu::binary_broadcast_forward(o, pa, pb, shape, sa, sb, [](T x, T y) { return x * y; });
        break;
      case BinOp::div:
        cpu::binary_broadcast_forward(o, pa, pb, shape, sa, sb, [](T x, T y) { return x / y; });
        break;
    }
    return 0;
  });
  return out;
}

struct BinaryNode : Node {
  BinOp op;
  Tensor a, b;  // saved for mul/div
  const char* name() const override { return "binary"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    const Shape& sa = inputs[0].shape();
    const Shape& sb = inputs[1].shape();
    switch (op) {
      case BinOp::add:
        if (needs_grad(0)) gi[0] = sum_to_shape(g, sa);
        if (needs_grad(1)) gi[1] = sum_to_shape(g, sb);
        break;
      case BinOp::sub:
        if (needs_grad(0)) gi[0] = sum_to_shape(g, sa);
        if (needs_grad(1)) gi[1] = sum_to_shape(neg(g), sb);
        break;
      case BinOp::mul:
        if (needs_grad(0)) gi[0] = sum_to_shape(mul(g, b), sa);
        if (needs_grad(1)) gi[1] = sum_to_shape(mul(g, a), sb);
        break;
      case BinOp::div:
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

Tensor binary(const Tensor& a, const Tensor& b, BinOp op, const char* name) {
  if (a.defined() && b.defined() && is_half(a.dtype()) && a.dtype() == b.dtype() &&
      a.device() == Device::CPU)
    return binary(a.to(DType::f32), b.to(DType::f32), op, name).to(a.dtype());
  Tensor out = binary_raw(a, b, op, name);
  if (auto node = make_node<BinaryNode>({&a, &b})) {
    node->op = op;
    if (op == BinOp::mul || op == BinOp::div) {
      node->a = a.detach();
      node->b = b.detach();
    }
    record(out, node);
  }
  return out;
}

// --- unary maps ------------------------------------------------------------------------------

enum class UnOp { neg, exp, log, sqrt, pow, add_scalar, mul_scalar };

struct UnaryNode : Node {
  UnOp op;
  double s = 0;
  Tensor x, y;  // input / output (detached) where backward needs them
  const char* name() const override { return "unary"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    switch (op) {
      case UnOp::neg: gi[0] = neg(g); break;
      case UnOp::exp: gi[0] = mul(g, y); break;
      case UnOp::log: gi[0] = div(g, x); break;
      case UnOp::sqrt: gi[0] = div(mul(g, 0.5), y); break;
      case UnOp::pow: gi[0] = mul(mul(g, pow(x, s - 1.0)), s); break;
      case UnOp::add_scalar: gi[0] = g; break;
      case UnOp::mul_scalar: gi[0] = mul(g, s); break;
    }
  }
  void release() override {
    x = Tensor();
    y = Tensor();
  }
};

Tensor unary(const Tensor& x_in, UnOp op, double s, const char* name) {
  check_float(x_in, name, "x");
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return unary(x_in.to(DType::f32), op, s, name).to(x_in.dtype());
  Tensor x = x_in.contiguous();
  Tensor out;
#ifdef TGPT_WITH_CUDA
  if (x.device() == Device::CUDA) {
    check_cuda_float(x, name);
    out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    cuda::unary(x.dtype(), static_cast<cuda::UnaryOp>(op), out.data_ptr(), x.data_ptr(), x.numel(),
                s);
  }
#endif
  if (!out.defined()) {
    check_cpu_kernel(x, name);
    out = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), name, [&](auto t) {
      using T = decltype(t);
      T* o = out.data<T>();
      const T* p = x.data<T>();
      int64_t n = x.numel();
      T ts = static_cast<T>(s);
      switch (op) {
        case UnOp::neg: cpu::unary_forward(o, p, n, [](T v) { return -v; }); break;
        case UnOp::exp: cpu::unary_forward(o, p, n, [](T v) { return std::exp(v); }); break;
        case UnOp::log: cpu::unary_forward(o, p, n, [](T v) { return std::log(v); }); break;
        case UnOp::sqrt: cpu::unary_forward(o, p, n, [](T v) { return std::sqrt(v); }); break;
        case UnOp::pow: cpu::unary_forward(o, p, n, [ts](T v) { return std::pow(v, ts); }); break;
        case UnOp::add_scalar: cpu::unary_forward(o, p, n, [ts](T v) { return v + ts; }); break;
        case UnOp::mul_scalar: cpu::unary_forward(o, p, n, [ts](T v) { return v * ts; }); break;
      }
      return 0;
    });
  }
  if (auto node = make_node<UnaryNode>({&x_in})) {
    node->op = op;
    node->s = s;
    if (op == UnOp::log || op == UnOp::pow) node->x = x.detach();
    if (op == UnOp::exp || op == UnOp::sqrt) node->y = out.detach();
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
  return binary(a, b, BinOp::add, "add");
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary(a, b, BinOp::sub, "sub");
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary(a, b, BinOp::mul, "mul");
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary(a, b, BinOp::div, "div");
}
Tensor add(const Tensor& a, double s) {
  return unary(a, UnOp::add_scalar, s, "add");
}
Tensor mul(const Tensor& a, double s) {
  return unary(a, UnOp::mul_scalar, s, "mul");
}
Tensor neg(const Tensor& a) {
  return unary(a, UnOp::neg, 0, "neg");
}
Tensor exp(const Tensor& a) {
  return unary(a, UnOp::exp, 0, "exp");
}
Tensor log(const Tensor& a) {
  return unary(a, UnOp::log, 0, "log");
}
Tensor sqrt(const Tensor& a) {
  return unary(a, UnOp::sqrt, 0, "sqrt");
}
Tensor pow(const Tensor& a, double e) {
  return unary(a, UnOp::pow, e, "pow");
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
