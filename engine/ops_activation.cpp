/*
 * ops_activation.cpp — relu, gelu (exact erf) and quick_gelu (x * sigmoid(1.702 x)), with
 * autograd. Launchers: kernels/activation.h; on the CPU f16/bf16 inputs are computed in f32.
 * Activation (relu, gelu, quick_gelu) is declared in base/activation.h.
 */
#include "engine/ops_common.h"
#include "kernels/activation.h"

namespace tgpt {

namespace {

struct ActivationNode : Node {
  Activation act = Activation::relu;
  Tensor x;  // input, contiguous, detached
  const char* name() const override { return activation_name(act); }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
    kernels::activation_backward(x.device(), x.dtype(), act, dx.data_ptr(), g.data_ptr(),
                                 x.data_ptr(), x.numel());
    gi[0] = dx;
  }
  void release() override { x = Tensor(); }
};

Tensor activation(const Tensor& x_in, Activation act) {
  const char* name = activation_name(act);
  check_float(x_in, name, "x");
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return activation(x_in.to(DType::f32), act).to(x_in.dtype());
  check_kernel_dtype(x_in.device(), x_in.dtype(), name);
  Tensor x = x_in.detach().contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::activation_forward(x.device(), x.dtype(), act, out.data_ptr(), x.data_ptr(), x.numel());
  if (auto node = make_node<ActivationNode>({&x_in})) {
    node->act = act;
    node->x = x;
    record(out, node);
  }
  return out;
}

}  // namespace

Tensor relu(const Tensor& x) {
  return activation(x, Activation::relu);
}
Tensor gelu(const Tensor& x) {
  return activation(x, Activation::gelu);
}
Tensor quick_gelu(const Tensor& x) {
  return activation(x, Activation::quick_gelu);
}

}  // namespace tgpt
