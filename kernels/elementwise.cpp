/*
 * elementwise.cpp — device dispatch of the broadcast binary ops and unary maps
 * (kernels/elementwise.h).
 */
#include "kernels/elementwise.h"

#include <cmath>

#include "kernels/cpu/elementwise.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/elementwise.h"
#endif

namespace tgpt::kernels {

void binary_forward(Device dev, DType dt, BinaryOp op, void* out_v, const void* a_v,
                    const void* b_v, const Shape& shape, const Shape& sa, const Shape& sb,
                    const char* name) {
  check_kernel_dtype(dev, dt, name);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::binary_broadcast(dt, op, out_v, a_v, b_v, shape.begin(), sa.begin(), sb.begin(),
                           static_cast<int>(shape.size()));
    return;
#else
    fail_without_cuda(name);
#endif
  }
  dispatch_float(dt, name, [&](auto t) {
    using T = decltype(t);
    T* o = static_cast<T*>(out_v);
    const T* pa = static_cast<const T*>(a_v);
    const T* pb = static_cast<const T*>(b_v);
    switch (op) {
      case BinaryOp::add:
        cpu::binary_broadcast_forward(o, pa, pb, shape, sa, sb, [](T x, T y) { return x + y; });
        break;
      case BinaryOp::sub:
        cpu::binary_broadcast_forward(o, pa, pb, shape, sa, sb, [](T x, T y) { return x - y; });
        break;
      case BinaryOp::mul:
        cpu::binary_broadcast_forward(o, pa, pb, shape, sa, sb, [](T x, T y) { return x * y; });
        break;
      case BinaryOp::div:
        cpu::binary_broadcast_forward(o, pa, pb, shape, sa, sb, [](T x, T y) { return x / y; });
        break;
    }
    return 0;
  });
}

void unary_forward(Device dev, DType dt, UnaryOp op, void* out_v, const void* x_v, int64_t n,
                   double s, const char* name) {
  check_kernel_dtype(dev, dt, name);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::unary(dt, op, out_v, x_v, n, s);
    return;
#else
    fail_without_cuda(name);
#endif
  }
  dispatch_float(dt, name, [&](auto t) {
    using T = decltype(t);
    T* o = static_cast<T*>(out_v);
    const T* p = static_cast<const T*>(x_v);
    T ts = static_cast<T>(s);
    switch (op) {
      case UnaryOp::neg: cpu::unary_forward(o, p, n, [](T v) { return -v; }); break;
      case UnaryOp::exp: cpu::unary_forward(o, p, n, [](T v) { return std::exp(v); }); break;
      case UnaryOp::log: cpu::unary_forward(o, p, n, [](T v) { return std::log(v); }); break;
      case UnaryOp::sqrt: cpu::unary_forward(o, p, n, [](T v) { return std::sqrt(v); }); break;
      case UnaryOp::pow: cpu::unary_forward(o, p, n, [ts](T v) { return std::pow(v, ts); }); break;
      case UnaryOp::add_scalar: cpu::unary_forward(o, p, n, [ts](T v) { return v + ts; }); break;
      case UnaryOp::mul_scalar: cpu::unary_forward(o, p, n, [ts](T v) { return v * ts; }); break;
    }
    return 0;
  });
}

}  // namespace tgpt::kernels
