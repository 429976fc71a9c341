/*
 * ops_activation.cpp — relu, gelu (exact erf) and quick_gelu (x * sigmoid(1.702 x)), with
 * autograd. Kernels in kernels/cpu/activations.h; f16/bf16 inputs are computed in f32.
 */
#include "engine/ops_common.h"
#include "kernels/cpu/activations.h"
#ifdef TGPT_WITH_CUDA
#include "engine/cuda/op_support.h"
#include "kernels/cuda/elementwise.h"
#endif

namespace tgpt {

namespace {

// Activation (relu, gelu, quick_gelu) is declared in base/activation.h.

const char* act_name(Activation a) {
  switch (a) {
    case Activation::relu: return "relu";
    case Activation::gelu: return "gelu";
    case Activation::quick_gelu: return "quick_gelu";
  }
  return "activation";
}

struct ActivationNode : Node {
  Activation act = Activation::relu;
  Tensor x;  // input, contiguous, detached
  const char* name() const override { return act_name(act); }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();
#ifdef TGPT_WITH_CUDA
    if (x.device() == Device::CUDA) {
      Tensor dx = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
      cuda::activation_backward(x.dtype(), static_cast<Activation>(act), dx.data_ptr(),
                                g.data_ptr(), x.data_ptr(), x.numel());
      gi[0] = dx;
      return;
    }
#endif
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), name(), [&](auto tag) {
      using T = decltype(tag);
      T* d = dx.data<T>();
      const T* pg = g.data<T>();
      const T* px = x.data<T>();
      int64_t n = x.numel();
      switch (act) {
        case Activation::relu: cpu::relu_backward(d, pg, px, n); break;
        case Activation::gelu: cpu::gelu_backward(d, pg, px, n); break;
        case Activation::quick_gelu: cpu::quick_gelu_backward(d, pg, px, n); break;
      }
      return 0;
    });
    gi[0] = dx;
  }
  void release() override {
    x = Tensor();
  }
};

Tensor activation(const Tensor& x_in, Activation act) {
  const char* name = act_name(act);
  check_float(x_in, name, "x");
  if (is_half(x_in.dtype()) && x_in.device() == Device::CPU)
    return activation(x_in.to(DType::f32), act).to(x_in.dtype());
  Tensor x = x_in.detach().contiguous();
  Tensor out;
#ifdef TGPT_WITH_CUDA
  if (x.device() == Device::CUDA) {
    check_cuda_float(x, name);
    out = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
    cuda::activation_forward(x.dtype(), static_cast<Activation>(act), out.data_ptr(), x.data_ptr(),
                             nullptr, x.numel(), 0);
  }
#endif
  if (!out.defined()) {
    check_cpu_kernel(x_in, name);
    out = Tensor::empty(x.shape(), x.dtype());
    dispatch_float(x.dtype(), name, [&](auto tag) {
      using T = decltype(tag);
      T* o = out.data<T>();
      const T* p = x.data<T>();
      int64_t n = x.numel();
      switch (act) {
        case Activation::relu: cpu::relu_forward(o, p, n); break;
        case Activation::gelu: cpu::gelu_forward(o, p, n); break;
        case Activation::quick_gelu: cpu::quick_gelu_forward(o, p, n); break;
      }
      return 0;
    });
  }
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
