/*
 * ops_bias_activation.cpp — bias_activation(x [..., C], bias [C], act) = act(x + bias) as one op
 * with autograd (dx and dbias). Launchers: kernels/bias_activation.h; on the CPU f16/bf16 inputs
 * are computed in f32.
 */
#include "engine/ops_common.h"
#include "kernels/bias_activation.h"

namespace tgpt {

namespace {

struct BiasActivationNode : Node {
  Activation act = Activation::relu;
  Tensor x, bias;  // contiguous, detached
  int64_t N = 0, C = 0;
  const char* name() const override { return kernels::bias_activation_name(act); }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();
    Tensor dx = needs_grad(0) ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
    Tensor db = needs_grad(1) ? Tensor::empty(bias.shape(), bias.dtype(), bias.device()) : Tensor();
    kernels::bias_activation_backward(x.device(), x.dtype(), act, ptr_or_null(dx), ptr_or_null(db),
                                      g.data_ptr(), x.data_ptr(), bias.data_ptr(), N, C);
    gi[0] = dx;
    gi[1] = db;
  }
  void release() override {
    x = Tensor();
    bias = Tensor();
  }
};

}  // namespace

Tensor bias_activation(const Tensor& x_in, const Tensor& bias_in, Activation act) {
  const char* name = kernels::bias_activation_name(act);
  check_float(x_in, name, "x");
  check_float(bias_in, name, "bias");
  check_same_dtype(x_in, bias_in, name);
  check_same_device(x_in, bias_in, name);
  TGPT_CHECK(x_in.dim() >= 1, name, ": x must have at least one dim, got ", x_in.str());
  TGPT_CHECK(bias_in.dim() == 1 && bias_in.shape()[0] == x_in.shape().back(), name,
             ": bias must be [C] with C the last dim of x; got x ", x_in.str(), ", bias ",
             bias_in.str());
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return bias_activation(x_in.to(DType::f32), bias_in.to(DType::f32), act).to(x_in.dtype());
  check_kernel_dtype(x_in.device(), x_in.dtype(), name);
  Tensor x = x_in.detach().contiguous(), bias = bias_in.detach().contiguous();
  const int64_t C = x.shape().back(), N = C > 0 ? x.numel() / C : 0;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::bias_activation_forward(x.device(), x.dtype(), act, out.data_ptr(), x.data_ptr(),
                                   bias.data_ptr(), N, C);
  if (auto node = make_node<BiasActivationNode>({&x_in, &bias_in})) {
    node->act = act;
    node->x = x;
    node->bias = bias;
    node->N = N;
    node->C = C;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt
