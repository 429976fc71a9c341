/*
 * attention.cpp — device dispatch of multi-head attention (kernels/attention.h).
 */
#include "kernels/attention.h"

#include "kernels/cpu/attention.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/attention.h"
#endif

namespace tgpt::kernels {

int64_t attention_alignment(Device dev) {
  return dev == Device::CUDA ? 16 : 1;
}

bool attention_saves_probabilities(Device dev) {
  return dev == Device::CPU;
}

void check_attention(Device dev, DType dt, int64_t C, int64_t NH) {
  check_kernel_dtype(dev, dt, "attention");
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    TGPT_CHECK(cuda::attention_head_dim_supported(C / NH), "attention: head dim ", C / NH,
               " (C = ", C, ", ", NH, " heads) has no CUDA kernel (64, 80 or 128)");
#else
    fail_without_cuda("attention");
#endif
  }
}

void attention_forward(Device dev, DType dt, void* out, void* probs, float* lse, const void* qkv,
                       int64_t B, int64_t T, int64_t C, int64_t NH, bool causal) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::attention_forward(out, lse, qkv, dt, B, T, C, NH, causal);
    return;
#else
    fail_without_cuda("attention");
#endif
  }
  dispatch_float(dt, "attention", [&](auto t) {
    using Tp = decltype(t);
    cpu::attention_forward_cpu<Tp>(static_cast<Tp*>(out), static_cast<Tp*>(probs),
                                   static_cast<const Tp*>(qkv), B, T, C, NH, causal);
    return 0;
  });
}

void attention_backward(Device dev, DType dt, void* dqkv, const void* dout, const void* qkv,
                        const void* probs, const void* out, const float* lse, int64_t B, int64_t T,
                        int64_t C, int64_t NH, bool causal) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    Scratch dsum(dev, static_cast<size_t>(B * NH * T) * sizeof(float));  // rowsum(dout ∘ out)
    cuda::attention_backward(dqkv, dsum.as<float>(), dout, qkv, out, lse, dt, B, T, C, NH, causal);
    return;
#else
    fail_without_cuda("attention backward");
#endif
  }
  dispatch_float(dt, "attention backward", [&](auto t) {
    using Tp = decltype(t);
    cpu::attention_backward_cpu<Tp>(static_cast<Tp*>(dqkv), static_cast<const Tp*>(dout),
                                    static_cast<const Tp*>(qkv), static_cast<const Tp*>(probs), B,
                                    T, C, NH, causal);
    return 0;
  });
}

}  // namespace tgpt::kernels
