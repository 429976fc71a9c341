/*
 * ops_mse_loss.cpp — mse_loss(a, b) = mean((a - b)^2) over all elements, with autograd for both
 * inputs. Launchers: kernels/mse_loss.h; on the CPU f16/bf16 inputs are computed in f32.
 */
#include "engine/ops_common.h"
#include "kernels/mse_loss.h"

namespace tgpt {

namespace {

struct MseNode : Node {
  Tensor a, b;  // contiguous, detached
  const char* name() const override { return "mse_loss"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = grad_as(g_in, a);
    Tensor da = needs_grad(0) ? Tensor::empty(a.shape(), a.dtype(), a.device()) : Tensor();
    Tensor db = needs_grad(1) ? Tensor::empty(b.shape(), b.dtype(), b.device()) : Tensor();
    kernels::mse_loss_backward(a.device(), a.dtype(), ptr_or_null(da), ptr_or_null(db),
                               a.data_ptr(), b.data_ptr(), g.data_ptr(), a.numel());
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
  if (is_half(a_in.dtype()) && a_in.device() == Device::CPU)
    return mse_loss(a_in.to(DType::f32), b_in.to(DType::f32)).to(a_in.dtype());
  check_kernel_dtype(a_in.device(), a_in.dtype(), "mse_loss");
  Tensor a = a_in.detach().contiguous(), b = b_in.detach().contiguous();
  Tensor out = Tensor::empty({}, a.dtype(), a.device());
  kernels::mse_loss_forward(a.device(), a.dtype(), out.data_ptr(), a.data_ptr(), b.data_ptr(),
                            a.numel());
  if (auto node = make_node<MseNode>({&a_in, &b_in})) {
    node->a = a;
    node->b = b;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt
