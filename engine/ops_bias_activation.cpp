/*
 * ops_bias_activation.cpp — bias_activation(x [..., C], bias [C], act) = act(x + bias) as one op
 * with autograd (dx and dbias). CPU kernels in kernels/cpu/bias_activation.h (f16/bf16 inputs
 * computed in f32), CUDA kernels in kernels/cuda/bias_activation.cu.
 */
#include "engine/ops_common.h"
#include "kernels/cpu/bias_activation.h"
#ifdef TGPT_WITH_CUDA
#include "engine/cuda/op_support.h"
#include "kernels/cuda/bias_activation.h"
#endif

namespace tgpt {

namespace {

const char* bias_act_name(Activation a) {
  switch (a) {
    case Activation::relu: return "bias_activation(relu)";
    case Activation::gelu: return "bias_activation(gelu)";
    case Activation::quick_gelu: return "bias_activation(quick_gelu)";
  }
  return "bias_activation";
}

Activation cpu_act(Activation a) {
  switch (a) {
    case Activation::relu: return Activation::relu;
    case Activation::gelu: return Activation::gelu;
    case Activation::quick_gelu: return Activation::quick_gelu;
  }
  TGPT_FAIL("bias_activation: unknown activation");
}

struct BiasActivationNode : Node {
  Activation act = Activation::relu;
  Tensor x, bias;  // contiguous, detached
  int64_t N = 0, C = 0;
  const char* name() const override { return bias_act_name(act); }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();
    const bool want_dx = needs_grad(0), want_db = needs_grad(1);
    Tensor dx = want_dx ? Tensor::empty(x.shape(), x.dtype(), x.device()) : Tensor();
    Tensor db = want_db ? Tensor::empty(bias.shape(), bias.dtype(), bias.device()) : Tensor();
#ifdef TGPT_WITH_CUDA
    if (x.device() == Device::CUDA) {
      cuda::bias_activation_backward(x.dtype(), static_cast<Activation>(act), ptr_or_null(dx),
                                     ptr_or_null(db), g.data_ptr(), x.data_ptr(), bias.data_ptr(),
                                     N, C);
      gi[0] = dx;
      gi[1] = db;
      return;
    }
#endif
    dispatch_float(x.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      cpu::bias_activation_backward<T>(want_dx ? dx.data<T>() : nullptr,
                                       want_db ? db.data<T>() : nullptr, g.data<T>(), x.data<T>(),
                                       bias.data<T>(), N, C, cpu_act(act));
      return 0;
    });
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
  const char* name = bias_act_name(act);
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
  Tensor x = x_in.detach().contiguous(), bias = bias_in.detach().contiguous();
  const int64_t C = x.shape().back(), N = C > 0 ? x.numel() / C : 0;
  Tensor out;
#ifdef TGPT_WITH_CUDA
  if (x.device() == Device::CUDA) {
    check_cuda_float(x, name);
    out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    cuda::bias_activation_forward(x.dtype(), static_cast<Activation>(act), out.data_ptr(),
                                  x.data_ptr(), bias.data_ptr(), N, C);
  }
#endif
  if (!out.defined()) {
    check_cpu_kernel(x_in, name);
    out = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), name, [&](auto tag) {
      using T = decltype(tag);
      cpu::bias_activation_forward<T>(out.data<T>(), x.data<T>(), bias.data<T>(), N, C,
                                      cpu_act(act));
      return 0;
    });
  }
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
