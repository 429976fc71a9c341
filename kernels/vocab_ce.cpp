/*
 * vocab_ce.cpp — device dispatch of the fused vocabulary cross-entropy (kernels/vocab_ce.h).
 */
#include "kernels/vocab_ce.h"

#include <limits>
#include <vector>

#include "kernels/cpu/vocab_ce.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/vocab_ce.h"
#endif

namespace tgpt::kernels {

DType vocab_ce_grad_dtype(Device dev, DType dt) {
  return dev == Device::CPU ? dt : DType::f32;
}

void vocab_ce_forward(Device dev, DType dt, void* loss, void* grad_dir, const void* hidden,
                      const void* embedding, const int64_t* target, int64_t N, int64_t W, int64_t V,
                      int64_t chunk, double label_smoothing, int64_t ignore_index, int64_t count) {
  const char* op = "vocab_cross_entropy";
  check_kernel_dtype(dev, dt, op);
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    const bool want_grad = grad_dir != nullptr;
    auto bytes = [](int64_t n, size_t esize) { return static_cast<size_t>(n) * esize; };
    Scratch logits(dev, bytes(N * chunk, sizeof(float)));
    Scratch probs(dev, dt == DType::f32 || !want_grad ? 0 : bytes(N * chunk, dtype_size(dt)));
    Scratch rmax(dev, bytes(N, sizeof(float))), rsum(dev, bytes(N, sizeof(float)));
    Scratch rsumx(dev, bytes(N, sizeof(double)));
    Scratch rxt(dev, bytes(N, sizeof(float))), rloss(dev, bytes(N, sizeof(float)));
    const bool need_colsum = want_grad && label_smoothing != 0.0;
    Scratch colsum(dev, need_colsum ? bytes(W, sizeof(float)) : 0);
    Scratch colsum_part(dev, need_colsum ? bytes(cuda::kVocabColsumSplits * W, sizeof(float)) : 0);
    cuda::VocabCeForwardArgs a;
    a.hidden = hidden;
    a.embedding = embedding;
    a.target = target;
    a.dtype = dt;
    a.N = N, a.W = W, a.V = V, a.chunk = chunk;
    a.label_smoothing = label_smoothing;
    a.ignore_index = ignore_index;
    a.count = count;
    a.logits = logits.as<float>();
    a.probs = probs.get();
    a.row_max = rmax.as<float>(), a.row_sum = rsum.as<float>();
    a.row_sumx = rsumx.as<double>(), a.row_xt = rxt.as<float>();
    a.row_loss = rloss.as<float>();
    a.colsum = colsum.as<float>();
    a.colsum_partial = colsum_part.as<float>();
    a.loss = loss;
    a.grad_dir = static_cast<float*>(grad_dir);
    cuda::vocab_ce_forward(a);
    return;
#else
    fail_without_cuda(op);
#endif
  }
  std::vector<double> row_loss(static_cast<size_t>(N));
  dispatch_float(dt, op, [&](auto t) {
    using T = decltype(t);
    cpu::vocab_ce_forward_cpu<T>(row_loss.data(), static_cast<T*>(grad_dir),
                                 static_cast<const T*>(hidden), static_cast<const T*>(embedding),
                                 target, N, W, V, chunk, label_smoothing, ignore_index);
    return 0;
  });
  double total = 0.0;  // in row order: independent of the thread count
  for (double l : row_loss) total += l;
  store_from_double(
      loss, dt, 0,
      count > 0 ? total / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN());
}

void vocab_ce_backward(Device dev, DType dt, void* dhidden, const void* grad_dir, const void* dloss,
                       DType dloss_dt, int64_t N, int64_t W, int64_t count) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::vocab_ce_backward(dhidden, dt, static_cast<const float*>(grad_dir), dloss, dloss_dt, N, W,
                            count);
    return;
#else
    fail_without_cuda("vocab_cross_entropy backward");
#endif
  }
  const double scale = count > 0 ? load_as_double(dloss, dloss_dt, 0) / static_cast<double>(count)
                                 : std::numeric_limits<double>::quiet_NaN();
  dispatch_float(dt, "vocab_cross_entropy backward", [&](auto t) {
    using T = decltype(t);
    const T* src = static_cast<const T*>(grad_dir);
    T* dst = static_cast<T*>(dhidden);
    for (int64_t i = 0; i < N * W; ++i)
      dst[i] = static_cast<T>(static_cast<double>(src[i]) * scale);
    return 0;
  });
}

}  // namespace tgpt::kernels
