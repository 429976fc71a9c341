/*
 * adamw.cu — multi-tensor AdamW (see adamw.h).
 *
 * The descriptors are copied to the device together with each tensor's first block index. The
 * grid covers every tensor's elements in blocks of kThreads * kPerThread; a block finds its
 * tensor by binary search over the first-block indices and updates its slice. Elements are
 * independent, so the result is deterministic.
 */
#include <cmath>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/common.cuh"

namespace tgpt::cuda {

namespace {

constexpr int kThreads = 256, kPerThread = 4;
constexpr int64_t kBlockElems = int64_t(kThreads) * kPerThread;

struct DeviceDesc {
  AdamWTensor t;
  int64_t first_block;
  float neg_step_size;          // -lr / (1 - beta1^step)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
};

template <typename S>
__device__ __forceinline__ float load_grad(const void* g, int64_t i) {
  return to_f32(static_cast<const S*>(g)[i]);
}
template <typename S>
__device__ __forceinline__ void store_param(void* p, int64_t i, float v) {
  static_cast<S*>(p)[i] = from_f32<S>(v);
}

__global__ void adamw_kernel(const DeviceDesc* __restrict__ descs, int count, float decay, float b1,
                             float one_minus_b1, float b2, float one_minus_b2, float eps) {
  // Last descriptor whose first_block <= blockIdx.x.
  int lo = 0, hi = count - 1;
  const int64_t blk = blockIdx.x;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (descs[mid].first_block <= blk)
      lo = mid;
    else
      hi = mid - 1;
  }
  const AdamWTensor t = descs[lo].t;
  const float neg_step_size = descs[lo].neg_step_size;
  const float bc2_sqrt = descs[lo].bias_correction2_sqrt;
  const int64_t begin = (blk - descs[lo].first_block) * kBlockElems;
  const int64_t end = min(t.n, begin + kBlockElems);
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    float g;
    if (t.grad_dtype == DType::f16)
      g = load_grad<__half>(t.grad, i);
    else if (t.grad_dtype == DType::bf16)
      g = load_grad<__nv_bfloat16>(t.grad, i);
    else
      g = load_grad<float>(t.grad, i);
    float p = t.master[i] * decay;
    const float m = fmaf(one_minus_b1, g, t.exp_avg[i] * b1);
    const float v = fmaf(one_minus_b2 * g, g, t.exp_avg_sq[i] * b2);
    const float denom = sqrtf(v) / bc2_sqrt + eps;
    p = p + (neg_step_size * m) / denom;
    t.exp_avg[i] = m;
    t.exp_avg_sq[i] = v;
    t.master[i] = p;
    if (t.param_lowp) {
      if (t.grad_dtype == DType::f16)
        store_param<__half>(t.param_lowp, i, p);
      else
        store_param<__nv_bfloat16>(t.param_lowp, i, p);
    }
  }
}

}  // namespace

void adamw_multi_tensor(const std::vector<AdamWTensor>& tensors, double lr, double beta1,
                        double beta2, double eps, double weight_decay) {
  std::vector<DeviceDesc> descs;
  int64_t blocks = 0;
  for (const AdamWTensor& t : tensors) {
    if (t.n == 0) continue;
    TGPT_CHECK(
        t.grad_dtype == DType::f32 || t.grad_dtype == DType::f16 || t.grad_dtype == DType::bf16,
        "cuda AdamW: gradient dtype ", dtype_name(t.grad_dtype));
    TGPT_CHECK(t.param_lowp == nullptr || t.grad_dtype != DType::f32,
               "cuda AdamW: a 16-bit parameter needs a 16-bit gradient dtype");
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t.step));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t.step));
    descs.push_back(
        {t, blocks, static_cast<float>(-(lr / bc1)), static_cast<float>(std::sqrt(bc2))});
    blocks += (t.n + kBlockElems - 1) / kBlockElems;
  }
  if (descs.empty()) return;
  TGPT_CHECK(blocks <= INT32_MAX && descs.size() <= static_cast<size_t>(INT32_MAX),
             "cuda AdamW: too many elements");
  Scratch d(descs.size() * sizeof(DeviceDesc));
  // Pageable source: the copy has finished reading `descs` when cudaMemcpyAsync returns.
  CUDA_CHECK(cudaMemcpyAsync(d.as<DeviceDesc>(), descs.data(), descs.size() * sizeof(DeviceDesc),
                             cudaMemcpyHostToDevice, stream()));
  adamw_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream()>>>(
      d.as<DeviceDesc>(), static_cast<int>(descs.size()),
      static_cast<float>(1.0 - lr * weight_decay), static_cast<float>(beta1),
      static_cast<float>(1.0 - beta1), static_cast<float>(beta2), static_cast<float>(1.0 - beta2),
      static_cast<float>(eps));
  CUDA_CHECK_LAUNCH();
}

}  // namespace tgpt::cuda
