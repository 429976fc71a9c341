/*
 * ops.h — the engine's differentiable operations (functional API).
 *
 * Every op checks its arguments (shapes, dtypes, devices) and throws tgpt::Error naming the op
 * and the problem. Floating inputs may be f32 or f64 (CPU, for gradient checks); f16/bf16 CPU
 * inputs are computed in f32 and the result is returned in the input dtype. Every op records a Node for
 * autograd when an input requires grad (see autograd.h). Shapes in comments: B batch, T tokens,
 * C channels/width, H heads, V vocabulary, N rows.
 *
 * Implementations: engine/ops_<op>.cpp, one autograd node per op for both devices; each calls its
 * launcher kernels/<op>.h, which picks the CPU kernel (kernels/cpu/<op>.h) or the CUDA kernel
 * (kernels/cuda/<op>.h). On the CPU f16/bf16 go through f32; CUDA takes f32, f16 and bf16.
 */
#pragma once

#include <cstdint>
#include <vector>

#include "base/activation.h"
#include "engine/tensor.h"

namespace tgpt {

// ---- linear algebra (OpenBLAS on the CPU) ---------------------------------------------------
// x [..., in], w [out, in] (PyTorch Linear layout), b [out] or undefined -> [..., out]
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
// a [..., M, K] @ b [..., K, N] -> [..., M, N]. Leading (batch) dims must match, or b is 2-D.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- elementwise with NumPy broadcasting ------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
// Repeats size-1 (or missing leading) dims to `shape`; backward sums them back.
Tensor broadcast_to(const Tensor& x, const Shape& shape);
// The broadcast shape of two shapes (NumPy rules); throws when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

// ---- activations ------------------------------------------------------------------------------
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);        // exact: x * 0.5 * (1 + erf(x / sqrt(2)))
Tensor quick_gelu(const Tensor& x);  // x * sigmoid(1.702 x)  (OpenAI CLIP)

// ---- reductions -------------------------------------------------------------------------------
Tensor sum(const Tensor& x);  // all elements -> [] (0-d)
Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim = false);

// ---- normalisation ----------------------------------------------------------------------------
// Over the last dim: x [..., C], weight/bias [C] (either may be undefined: no affine part).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// LayerNorm of the residual sum s = x + residual (same shape, no broadcasting): returns
// layer_norm(s, weight, bias, eps) and, when sum_out is non-null, stores s (the updated residual
// stream) in *sum_out. Gradients flow through both outputs. On CUDA the add and the normalisation
// are one kernel (s rounded to the dtype as a separate add would be); on the CPU it is add then
// layer_norm.
Tensor add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                      const Tensor& bias, double eps = 1e-5, Tensor* sum_out = nullptr);
// x / max(||x||_2, eps) over the last dim (torch.nn.functional.normalize).
Tensor l2_normalize(const Tensor& x, double eps = 1e-12);
Tensor softmax(const Tensor& x);      // over the last dim
Tensor log_softmax(const Tensor& x);  // over the last dim

// ---- indexing ---------------------------------------------------------------------------------
// ids (i32 or i64) [...], weight [V, C] -> [..., C]; backward scatter-adds into weight.
Tensor embedding(const Tensor& ids, const Tensor& weight);
// x [B, T, C], index (i32 or i64) [B] -> [B, C] with row b = x[b, index[b]] (EOT pooling).
Tensor gather_rows(const Tensor& x, const Tensor& index);
// Concatenates along dim; all other extents must match.
Tensor concat(const std::vector<Tensor>& xs, int dim);

// ---- attention --------------------------------------------------------------------------------
// qkv [B, T, 3C] packed as in CLIP's nn.MultiheadAttention (columns [0,C) Q, [C,2C) K, [2C,3C) V;
// head h uses columns h*C/H .. (h+1)*C/H-1 of each). Scores scaled by 1/sqrt(C/H); causal masks
// keys after the query. Returns the heads concatenated: [B, T, C].
Tensor attention(const Tensor& qkv, int n_heads, bool causal);

// ---- convolution ------------------------------------------------------------------------------
// Patch embedding: x [B, Cin, H, W], w [Cout, Cin, P, P], stride P, no padding, bias optional.
// -> [B, Cout, H/P, W/P] (H and W must be multiples of P).
Tensor conv2d_patch(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// ---- losses -----------------------------------------------------------------------------------
// logits [N, V], target (i32 or i64) [N]. PyTorch's cross_entropy with reduction 'mean':
// mean over rows whose target != ignore_index of
//   (1 - ls) * (-log p[target]) + ls / V * sum_c(-log p[c]).
// With every row ignored the result is NaN, as in PyTorch.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing = 0.0,
                     int64_t ignore_index = -100);
Tensor mse_loss(const Tensor& a, const Tensor& b);  // mean((a - b)^2)

// ---- fused losses (engine/ops_vocab_ce.cpp, engine/ops_cosine_loss.cpp, ...) ------------------
// cross_entropy(hidden @ embeddingᵀ, target, label_smoothing, ignore_index) (semantics as
// cross_entropy above) without storing the [N, V] logits: hidden [N, W], embedding [V, W],
// target (i32 or i64) [N]. The vocabulary is processed `chunk` rows of the embedding at a time
// (0 picks a size). Gradient for hidden only: an embedding that requires grad is refused.
Tensor vocab_cross_entropy(const Tensor& hidden, const Tensor& embedding, const Tensor& target,
                           double label_smoothing = 0.0, int64_t ignore_index = -100,
                           int64_t chunk = 0);
// TGP-T's classification loss: mean cross_entropy(scale · l2_normalize(features) · weightᵀ,
// target) with features [N, F], weight [K, F] (not normalised), target (i32 or i64) [N] in
// [0, K). Gradients for features and weight.
Tensor cosine_logit_loss(const Tensor& features, const Tensor& weight, const Tensor& target,
                         double scale = 100.0);
// CLIP's symmetric InfoNCE loss over N (image, text) pairs (engine/ops_clip_contrastive_loss.cpp),
// open_clip's ClipLoss on one device: with a = l2_normalize(image_features) [N, E],
// b = l2_normalize(text_features) [N, E], s = exp(min(logit_scale_param, ln 100)) and
// logits = s · a bᵀ [N, N], loss = (cross_entropy(logits, arange(N)) +
// cross_entropy(logitsᵀ, arange(N))) / 2. logit_scale_param is the scalar ([] or [1]) parameter
// (CLIP's logit_scale, ln(1/0.07) at init), any float dtype on the features' device. The clamp is
// in the forward (OpenAI's choice): no gradient reaches the parameter while it is above ln 100.
// Gradients for both features and the parameter.
Tensor clip_contrastive_loss(const Tensor& image_features, const Tensor& text_features,
                             const Tensor& logit_scale_param);

}  // namespace tgpt

namespace tgpt {

// ---- fused bias + activation (engine/ops_bias_activation.cpp) ---------------------------------
// act(x + bias) with x [..., C], bias [C], computed in one pass (x + bias is not rounded to a
// 16-bit dtype in between). Gradients for x and bias (dbias = sum over rows of dx).
Tensor bias_activation(const Tensor& x, const Tensor& bias, Activation act);

}  // namespace tgpt
