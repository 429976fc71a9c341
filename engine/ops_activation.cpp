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

// Act (relu, gelu, quick_gelu) is declared in engine/ops.h.

const char* act_name(Act a) {
  switch (a) {
    case Act::relu: return "relu";
    case Act::gelu: return "gelu";
    case Act::quick_gelu: return "quick_gelu";
  }
  return "activation";
}

struct ActivationNode : Node {
  Act act = Act::relu;
  Tensor x;  // input, contiguous, detached
  const char* name() const override { return act_name(act); }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();
#ifdef TGPT_WITH_CUDA
    if (x.device() == Device::CUDA) {
      Tensor dx = Tensor::empty(x.shape(), x.dtype(), Device::CUDA);
      cuda::activation_backward(x.dtype(), static_cast<cuda::ActOp>(act), dx.data_ptr(),
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
        case Act::relu: cpu::relu_backward(d, pg, px, n); break;
        case Act::gelu: cpu::gelu_backward(d, pg, px, n); break;
        case Act::quick_gelu: cpu::quick_gelu_backward(d, pg, px, n); break;
      }
      return 0;
    });
    gi[0] = dx;
  }
  void release() override {
    x = Tensor();
  }
};

Tensor activation(const Tensor& x_in, Act act) {
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
    cuda::activation_forward(x.dtype(), static_cast<cuda::ActOp>(act), out.data_ptr(), x.data_ptr(),
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
        case Act::relu: cpu::relu_forward(o, p, n); break;
        case Act::gelu: cpu::gelu_forward(o, p, n); break;
        case Act::quick_gelu: cpu::quick_gelu_forward(o, p, n); break;
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
  return activation(x, Act::relu);
}
Tensor gelu(const Tensor& x) {
  return activation(x, Act::gelu);
}
Tensor quick_gelu(const Tensor& x) {
  return activation(x, Act::quick_gelu);
}

}  // namespace tgpt
