/*
 * ops_fused_loss.cpp — fused losses of TGP-T with autograd:
 *   vocab_cross_entropy: cross-entropy over hidden @ embeddingᵀ (the frozen CLIP token
 *     embedding as the vocabulary head, V = 49408) computed in vocabulary chunks, never holding
 *     the [N, V] logits. The forward pass also accumulates the gradient direction for hidden
 *     when one is needed (kernels/cpu/vocab_ce.h explains the one-pass scheme), so backward is a
 *     scale by dloss / count.
 *   cosine_logit_loss: cross-entropy on scale · normalize(features) · weightᵀ.
 * CPU kernels: kernels/cpu/vocab_ce.h, kernels/cpu/cosine_loss.h (f32/f64; f16/bf16 through f32).
 * CUDA kernels (TGPT_WITH_CUDA): kernels/cuda/vocab_ce.h, kernels/cuda/cosine_loss.h (f32, f16,
 * bf16 computed natively with f32 accumulation).
 */
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/ops_common.h"
#include "kernels/cpu/cosine_loss.h"
#include "kernels/cpu/vocab_ce.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/cosine_loss.h"
#include "kernels/cuda/vocab_ce.h"
#endif

namespace tgpt {

namespace {

// Validated class indices of target [N] (i32/i64, any device): each in [0, K) or ignore_index
// (pass allow_ignore = false to refuse ignore_index). Returns the non-ignored count.
int64_t checked_targets(std::vector<int64_t>& tgt, const Tensor& target, int64_t N, int64_t K,
                        bool allow_ignore, int64_t ignore_index, const char* op) {
  TGPT_CHECK(target.defined(), op, ": target is undefined");
  TGPT_CHECK(target.dtype() == DType::i32 || target.dtype() == DType::i64, op,
             ": target must be i32 or i64 class indices, got ", dtype_name(target.dtype()));
  TGPT_CHECK(target.dim() == 1 && target.size(0) == N, op, ": target must be [", N, "], got ",
             target.shape().str());
  tgt = index_values(target, op);
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = tgt[static_cast<size_t>(n)];
    if (allow_ignore && t == ignore_index) continue;
    TGPT_CHECK(t >= 0 && t < K, op, ": target ", t, " at row ", n, " is out of range [0, ", K, ")",
               allow_ignore ? " and is not ignore_index" : "");
    ++count;
  }
  return count;
}

#ifdef TGPT_WITH_CUDA
// The targets as an i64 tensor on the CUDA device.
Tensor targets_on_device(const std::vector<int64_t>& tgt) {
  Tensor h = Tensor::empty({static_cast<int64_t>(tgt.size())}, DType::i64);
  if (!tgt.empty()) std::memcpy(h.data_ptr(), tgt.data(), tgt.size() * sizeof(int64_t));
  return h.to(Device::CUDA);
}

void check_cuda_dtype(const Tensor& x, const char* op) {
  TGPT_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f16 || x.dtype() == DType::bf16, op,
             ": CUDA kernels take f32, f16 or bf16, got ", dtype_name(x.dtype()));
}
#endif

// Rows of the vocabulary per chunk: about 4M logits per chunk, a multiple of 256.
int64_t auto_vocab_chunk(int64_t N, int64_t V) {
  int64_t c = (int64_t(1) << 22) / std::max<int64_t>(N, 1);
  c = std::max<int64_t>(256, (c + 255) / 256 * 256);
  return std::min(c, V);
}

// --- vocab_cross_entropy ---------------------------------------------------------------------

struct VocabCrossEntropyNode : Node {
  Tensor grad_dir;  // [N, W] d loss_n / d hidden_n (hidden's dtype on the CPU, f32 on CUDA)
  DType dtype = DType::f32;
  int64_t count = 0;
  const char* name() const override { return "vocab_cross_entropy"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const int64_t N = grad_dir.size(0), W = grad_dir.size(1);
#ifdef TGPT_WITH_CUDA
    if (grad_dir.device() == Device::CUDA) {
      Tensor g = g_in.detach();
      if (g.device() != Device::CUDA) g = g.to(Device::CUDA);
      Tensor dh = Tensor::empty({N, W}, dtype, Device::CUDA);
      cuda::vocab_ce_backward(dh.data_ptr(), dtype, grad_dir.data<float>(), g.data_ptr(), g.dtype(),
                              N, W, count);
      gi[0] = dh;
      return;
    }
#endif
    const double scale = count > 0 ? g_in.item() / static_cast<double>(count)
                                   : std::numeric_limits<double>::quiet_NaN();
    Tensor dh = Tensor::empty({N, W}, dtype);
    dispatch_float(dtype, "vocab_cross_entropy backward", [&](auto t) {
      using T = decltype(t);
      const T* src = grad_dir.data<T>();
      T* dst = dh.data<T>();
      for (int64_t i = 0; i < N * W; ++i)
        dst[i] = static_cast<T>(static_cast<double>(src[i]) * scale);
      return 0;
    });
    gi[0] = dh;
  }
  void release() override {
    grad_dir = Tensor();
  }
};

}  // namespace

Tensor vocab_cross_entropy(const Tensor& hidden, const Tensor& embedding, const Tensor& target,
                           double label_smoothing, int64_t ignore_index, int64_t chunk) {
  const char* op = "vocab_cross_entropy";
  check_float(hidden, op, "hidden");
  check_float(embedding, op, "embedding");
  check_same_dtype(hidden, embedding, op);
  check_same_device(hidden, embedding, op);
  TGPT_CHECK(hidden.dim() == 2, op, ": hidden must be [N, W], got ", hidden.shape().str());
  TGPT_CHECK(embedding.dim() == 2 && embedding.size(1) == hidden.size(1), op,
             ": embedding must be [V, W] with W = ", hidden.size(1), ", got ",
             embedding.shape().str());
  TGPT_CHECK(!(grad_enabled() && embedding.requires_grad()), op,
             ": a gradient for the embedding is not supported (the vocabulary head must be frozen: "
             "call set_requires_grad(false) or detach() it)");
  const int64_t N = hidden.size(0), W = hidden.size(1), V = embedding.size(0);
  TGPT_CHECK(V > 0 && W > 0, op, ": empty vocabulary or width: embedding ",
             embedding.shape().str());
  TGPT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op,
             ": label_smoothing must be in [0, 1], got ", label_smoothing);
  TGPT_CHECK(chunk >= 0, op, ": chunk must be >= 0 (0 = automatic), got ", chunk);
  std::vector<int64_t> tgt;
  const int64_t count = checked_targets(tgt, target, N, V, true, ignore_index, op);
  chunk = chunk == 0 ? auto_vocab_chunk(N, V) : std::min(chunk, V);
  const bool want_grad = grad_enabled() && hidden.requires_grad();

#ifdef TGPT_WITH_CUDA
  if (hidden.device() == Device::CUDA) {
    check_cuda_dtype(hidden, op);
    const DType dt = hidden.dtype();
    Tensor h = hidden.detach().contiguous(), E = embedding.detach().contiguous();
    Tensor tgt_dev = targets_on_device(tgt);
    auto ws = [](const Shape& s, DType d) { return Tensor::empty(s, d, Device::CUDA); };
    Tensor logits = ws({N, chunk}, DType::f32);
    Tensor probs = dt == DType::f32 || !want_grad ? Tensor() : ws({N, chunk}, dt);
    Tensor rmax = ws({N}, DType::f32), rsum = ws({N}, DType::f32), rsumx = ws({N}, DType::f64);
    Tensor rxt = ws({N}, DType::f32), rloss = ws({N}, DType::f32);
    const bool need_colsum = want_grad && label_smoothing != 0.0;
    Tensor colsum = need_colsum ? ws({W}, DType::f32) : Tensor();
    Tensor colsum_part = need_colsum ? ws({cuda::kVocabColsumSplits, W}, DType::f32) : Tensor();
    Tensor out = ws({}, dt);
    Tensor grad_dir = want_grad ? ws({N, W}, DType::f32) : Tensor();
    cuda::VocabCeForwardArgs a;
    a.hidden = h.data_ptr();
    a.embedding = E.data_ptr();
    a.target = tgt_dev.data<int64_t>();
    a.dtype = dt;
    a.N = N, a.W = W, a.V = V, a.chunk = chunk;
    a.label_smoothing = label_smoothing;
    a.ignore_index = ignore_index;
    a.count = count;
    a.logits = logits.data<float>();
    a.probs = probs.defined() ? probs.data_ptr() : nullptr;
    a.row_max = rmax.data<float>(), a.row_sum = rsum.data<float>();
    a.row_sumx = rsumx.data<double>(), a.row_xt = rxt.data<float>();
    a.row_loss = rloss.data<float>();
    a.colsum = need_colsum ? colsum.data<float>() : nullptr;
    a.colsum_partial = need_colsum ? colsum_part.data<float>() : nullptr;
    a.loss = out.data_ptr();
    a.grad_dir = want_grad ? grad_dir.data<float>() : nullptr;
    cuda::vocab_ce_forward(a);
    if (auto node = make_node<VocabCrossEntropyNode>({&hidden})) {
      node->grad_dir = grad_dir;
      node->dtype = dt;
      node->count = count;
      record(out, node);
    }
    return out;
  }
#endif
  if (is_half(hidden.dtype()))
    return vocab_cross_entropy(hidden.to(DType::f32), embedding.detach().to(DType::f32), target,
                               label_smoothing, ignore_index, chunk)
        .to(hidden.dtype());
  check_cpu_kernel(hidden, op);
  Tensor h = hidden.detach().contiguous(), E = embedding.detach().contiguous();
  Tensor grad_dir = want_grad ? Tensor::empty({N, W}, h.dtype()) : Tensor();
  std::vector<double> row_loss(static_cast<size_t>(N));
  dispatch_float(h.dtype(), op, [&](auto t) {
    using T = decltype(t);
    cpu::vocab_ce_forward_cpu<T>(row_loss.data(), want_grad ? grad_dir.data<T>() : nullptr,
                                 h.data<T>(), E.data<T>(), tgt.data(), N, W, V, chunk,
                                 label_smoothing, ignore_index);
    return 0;
  });
  double total = 0.0;  // in row order: independent of the thread count
  for (double l : row_loss) total += l;
  const double loss =
      count > 0 ? total / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
  Tensor out = Tensor::full({}, loss, h.dtype());
  if (auto node = make_node<VocabCrossEntropyNode>({&hidden})) {
    node->grad_dir = grad_dir;
    node->dtype = h.dtype();
    node->count = count;
    record(out, node);
  }
  return out;
}

// --- cosine_logit_loss -----------------------------------------------------------------------

namespace {

constexpr double kCosineEps = 1e-12;  // as l2_normalize's default

struct CosineLogitLossNode : Node {
  Tensor x, w;        // features [N, F], weight [K, F], contiguous
  Tensor xn, norm;    // CPU: normalize(x) [N, F] and ||x|| [N]; CUDA: norm only (f32)
  Tensor prob;        // [N, K] softmax probabilities (f32 on CUDA)
  Tensor target_dev;  // CUDA: i64 [N]
  std::vector<int64_t> target;
  double scale = 100.0;
  const char* name() const override { return "cosine_logit_loss"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const int64_t N = x.size(0), F = x.size(1), K = w.size(0);
    const bool want_dx = needs_grad(0), want_dw = needs_grad(1);
#ifdef TGPT_WITH_CUDA
    if (x.device() == Device::CUDA) {
      Tensor g = g_in.detach();
      if (g.device() != Device::CUDA) g = g.to(Device::CUDA);
      auto ws = [](const Shape& s, DType d) { return Tensor::empty(s, d, Device::CUDA); };
      Tensor dx = want_dx ? ws({N, F}, x.dtype()) : Tensor();
      Tensor dw = want_dw ? ws({K, F}, x.dtype()) : Tensor();
      Tensor dxn = want_dx ? ws({N, F}, DType::f32) : Tensor();
      cuda::cosine_logit_loss_backward(
          want_dx ? dx.data_ptr() : nullptr, want_dw ? dw.data_ptr() : nullptr,
          want_dx ? dxn.data<float>() : nullptr, prob.data<float>(), norm.data<float>(),
          x.data_ptr(), w.data_ptr(), x.dtype(), target_dev.data<int64_t>(), N, F, K,
          static_cast<float>(scale), static_cast<float>(kCosineEps), g.data_ptr(), g.dtype());
      gi[0] = dx;
      gi[1] = dw;
      return;
    }
#endif
    const double dloss = g_in.item();
    Tensor dx = want_dx ? Tensor::empty({N, F}, x.dtype()) : Tensor();
    Tensor dw = want_dw ? Tensor::empty({K, F}, x.dtype()) : Tensor();
    dispatch_float(x.dtype(), "cosine_logit_loss backward", [&](auto t) {
      using T = decltype(t);
      cpu::cosine_logit_loss_backward_cpu<T>(want_dx ? dx.data<T>() : nullptr,
                                             want_dw ? dw.data<T>() : nullptr, prob.data<T>(),
                                             xn.data<T>(), norm.data<T>(), x.data<T>(), w.data<T>(),
                                             target.data(), N, F, K, scale, kCosineEps, dloss);
      return 0;
    });
    gi[0] = dx;
    gi[1] = dw;
  }
  void release() override {
    x = w = xn = norm = prob = target_dev = Tensor();
    target.clear();
  }
};

}  // namespace

Tensor cosine_logit_loss(const Tensor& features, const Tensor& weight, const Tensor& target,
                         double scale) {
  const char* op = "cosine_logit_loss";
  check_float(features, op, "features");
  check_float(weight, op, "weight");
  check_same_dtype(features, weight, op);
  check_same_device(features, weight, op);
  TGPT_CHECK(features.dim() == 2, op, ": features must be [N, F], got ", features.shape().str());
  TGPT_CHECK(weight.dim() == 2 && weight.size(1) == features.size(1), op,
             ": weight must be [K, F] with F = ", features.size(1), ", got ", weight.shape().str());
  TGPT_CHECK(std::isfinite(scale), op, ": scale must be finite, got ", scale);
  const int64_t N = features.size(0), F = features.size(1), K = weight.size(0);
  TGPT_CHECK(N > 0 && F > 0 && K > 0, op, ": empty input: features ", features.shape().str(),
             ", weight ", weight.shape().str());
  std::vector<int64_t> tgt;
  checked_targets(tgt, target, N, K, false, 0, op);

#ifdef TGPT_WITH_CUDA
  if (features.device() == Device::CUDA) {
    check_cuda_dtype(features, op);
    Tensor x = features.detach().contiguous(), w = weight.detach().contiguous();
    Tensor tgt_dev = targets_on_device(tgt);
    auto ws = [](const Shape& s, DType d) { return Tensor::empty(s, d, Device::CUDA); };
    Tensor norm = ws({N}, DType::f32), prob = ws({N, K}, DType::f32);
    Tensor rloss = ws({N}, DType::f32), out = ws({}, x.dtype());
    cuda::cosine_logit_loss_forward(out.data_ptr(), norm.data<float>(), prob.data<float>(),
                                    rloss.data<float>(), x.data_ptr(), w.data_ptr(), x.dtype(),
                                    tgt_dev.data<int64_t>(), N, F, K, static_cast<float>(scale),
                                    static_cast<float>(kCosineEps));
    if (auto node = make_node<CosineLogitLossNode>({&features, &weight})) {
      node->x = x, node->w = w, node->norm = norm, node->prob = prob;
      node->target_dev = tgt_dev;
      node->scale = scale;
      record(out, node);
    }
    return out;
  }
#endif
  if (is_half(features.dtype()))
    return cosine_logit_loss(features.to(DType::f32), weight.to(DType::f32), target, scale)
        .to(features.dtype());
  check_cpu_kernel(features, op);
  Tensor x = features.detach().contiguous(), w = weight.detach().contiguous();
  Tensor xn = Tensor::empty({N, F}, x.dtype()), norm = Tensor::empty({N}, x.dtype());
  Tensor prob = Tensor::empty({N, K}, x.dtype());
  std::vector<double> row_loss(static_cast<size_t>(N));
  dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    cpu::cosine_logit_loss_forward_cpu<T>(row_loss.data(), xn.data<T>(), norm.data<T>(),
                                          prob.data<T>(), x.data<T>(), w.data<T>(), tgt.data(), N,
                                          F, K, scale, kCosineEps);
    return 0;
  });
  double total = 0.0;
  for (double l : row_loss) total += l;
  Tensor out = Tensor::full({}, total / static_cast<double>(N), x.dtype());
  if (auto node = make_node<CosineLogitLossNode>({&features, &weight})) {
    node->x = x, node->w = w, node->xn = xn, node->norm = norm, node->prob = prob;
    node->target = std::move(tgt);
    node->scale = scale;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt
