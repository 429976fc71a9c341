/*
 * ops_loss_mse.cpp — mse_loss(a, b) = mean((a - b)^2) over all elements, with autograd for both
 * inputs. Kernels in kernels/cpu/loss_mse.h; f16/bf16 inputs are computed in f32.
 */
#include "engine/ops_common.h"
#include "kernels/cpu/loss_mse.h"
#ifdef TGPT_WITH_CUDA
#include "engine/cuda/op_support.h"
#include "kernels/cuda/elementwise.h"
#endif

namespace tgpt {

namespace {

struct MseNode : Node {
  Tensor a, b;  // contiguous, detached
  const char* name() const override { return "mse_loss"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    Tensor da, db;
#ifdef TGPT_WITH_CUDA
    if (a.device() == Device::CUDA) {
      Tensor gd = g.detach();
      if (gd.dtype() != a.dtype()) gd = gd.to(a.dtype());
      if (gd.device() != Device::CUDA) gd = gd.to(Device::CUDA);
      if (needs_grad(0)) da = Tensor::empty(a.shape(), a.dtype(), Device::CUDA);
      if (needs_grad(1)) db = Tensor::empty(b.shape(), b.dtype(), Device::CUDA);
      cuda::mse_backward(a.dtype(), ptr_or_null(da), ptr_or_null(db), a.data_ptr(), b.data_ptr(),
                         gd.data_ptr(), a.numel());
      gi[0] = da;
      gi[1] = db;
      return;
    }
#endif
    double gv = g.item();
    if (needs_grad(0)) da = Tensor::empty(a.shape(), a.dtype());
    if (needs_grad(1)) db = Tensor::empty(b.shape(), b.dtype());
    dispatch_float(a.dtype(), "mse_loss backward", [&](auto tag) {
      using T = decltype(tag);
      cpu::mse_backward<T>(da.defined() ? da.data<T>() : nullptr,
                           db.defined() ? db.data<T>() : nullptr, a.data<T>(), b.data<T>(),
                           a.numel(), gv);
      return 0;
    });
    gi[0] = da;
    gi[1] = db;
  }
  void release() override {
    a = Tensor();
    b = Tensor();
  }
};

}  // namespace

Tensor mse_loss(const Tensor& a_in, const Tensor& b_in) {
  check_float(a_in, "mse_loss", "a");
  check_float(b_in, "mse_loss", "b");
  check_same_dtype(a_in, b_in, "mse_loss");
  check_same_device(a_in, b_in, "mse_loss");
  TGPT_CHECK(a_in.shape() == b_in.shape(), "mse_loss: shapes differ: ", a_in.shape().str(), " vs ",
             b_in.shape().str());
  if (a_in.device() == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    check_cuda_float(a_in, "mse_loss");
    Tensor a = a_in.detach().contiguous(), b = b_in.detach().contiguous();
    Tensor out = Tensor::empty({}, a.dtype(), Device::CUDA);
    cuda::mse_forward(a.dtype(), out.data_ptr(), a.data_ptr(), b.data_ptr(), a.numel());
    if (auto node = make_node<MseNode>({&a_in, &b_in})) {
      node->a = a;
      node->b = b;
      record(out, node);
    }
    return out;
#endif
  }
  if (is_half(a_in.dtype()))
    return mse_loss(a_in.to(DType::f32), b_in.to(DType::f32)).to(a_in.dtype());
  check_cpu_kernel(a_in, "mse_loss");
  Tensor a = a_in.detach().contiguous(), b = b_in.detach().contiguous();
  Tensor out = Tensor::empty({}, a.dtype());
  dispatch_float(a.dtype(), "mse_loss", [&](auto tag) {
    using T = decltype(tag);
    out.data<T>()[0] = static_cast<T>(cpu::mse_forward<T>(a.data<T>(), b.data<T>(), a.numel()));
    return 0;
  });
  if (auto node = make_node<MseNode>({&a_in, &b_in})) {
    node->a = a;
    node->b = b;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt
