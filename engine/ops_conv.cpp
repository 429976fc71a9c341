/*
 * ops_conv.cpp — conv2d_patch: the patch-embedding convolution of CLIP's ViT (kernel = stride =
 * P, no padding), with autograd.
 *
 * Patches do not overlap, so im2col is a pure permutation: x [B, Cin, H, W] is rearranged into
 * patches [B, G, Cin*P*P] (G = H/P * W/P), and each batch entry is one GEMM with the weight viewed
 * [Cout, Cin*P*P], written straight into the output layout [B, Cout, H/P, W/P]. The backward
 * permutes the patch gradient back (col2im without overlaps). Kernels in kernels/cpu/matmul.h.
 */
#include "engine/ops_common.h"
#include "kernels/cpu/matmul.h"
#ifdef TGPT_WITH_CUDA
#include "engine/cuda/op_support.h"
#include "kernels/cuda/matmul.h"
#endif

namespace tgpt {

namespace {

struct ConvPatchNode : Node {
  Tensor patches;  // [B, G, D], saved when the weight needs a gradient
  Tensor w;        // [Cout, D] contiguous, saved when x needs a gradient
  int64_t B = 0, Cin = 0, H = 0, W = 0, P = 0, Cout = 0;
  const char* name() const override { return "conv2d_patch"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();  // [B, Cout, Gh, Gw]
    DType dt = g.dtype();
    int64_t G = (H / P) * (W / P), D = Cin * P * P;
    Tensor dpatches, dx, dw, db;
#ifdef TGPT_WITH_CUDA
    if (g.device() == Device::CUDA) {
      if (needs_grad(0)) {
        // dpatches[b] [G, D] = g[b]ᵀ [G, Cout] @ w [Cout, D], then the inverse permutation.
        dpatches = Tensor::empty({B, G, D}, dt, Device::CUDA);
        cuda::gemm(dt, dt, true, false, G, D, Cout, 1.f, g.data_ptr(), G, Cout * G, w.data_ptr(), D,
                   0, 0.f, dpatches.data_ptr(), D, G * D, B);
        dx = Tensor::empty(inputs[0].shape(), dt, Device::CUDA);
        cuda::unpatchify(dt, dx.data_ptr(), dpatches.data_ptr(), B, Cin, H, W, P);
      }
      if (needs_grad(1)) {
        // dw [Cout, D] = g' [Cout, B*G] @ patches [B*G, D] with g' = g permuted to [Cout, B, G].
        Tensor gp = g.detach().permute({1, 0, 2, 3}).contiguous();
        dw = Tensor::empty(inputs[1].shape(), dt, Device::CUDA);
        cuda::gemm(dt, dt, false, false, Cout, D, B * G, 1.f, gp.data_ptr(), B * G, 0,
                   patches.data_ptr(), D, 0, 0.f, dw.data_ptr(), D, 0, 1);
      }
      if (needs_grad(2)) db = sum(g.detach(), {0, 2, 3});
      gi[0] = dx;
      gi[1] = dw;
      gi[2] = db;
      return;
    }
#endif
    if (needs_grad(0)) {
      dpatches = Tensor::empty({B, G, D}, dt);
      dx = Tensor::empty(inputs[0].shape(), dt);
    }
    if (needs_grad(1)) dw = Tensor::empty(inputs[1].shape(), dt);
    if (needs_grad(2)) db = Tensor::empty({Cout}, dt);
    dispatch_float(dt, "conv2d_patch backward", [&](auto tag) {
      using T = decltype(tag);
      cpu::conv2d_patch_backward_cpu<T>(dpatches.defined() ? dpatches.data<T>() : nullptr,
                                        dw.defined() ? dw.data<T>() : nullptr,
                                        db.defined() ? db.data<T>() : nullptr, g.data<T>(),
                                        patches.defined() ? patches.data<T>() : nullptr,
                                        w.defined() ? w.data<T>() : nullptr, B, G, D, Cout);
      if (dx.defined() && dx.numel() > 0)
        cpu::unpatchify_cpu<T>(dx.data<T>(), dpatches.data<T>(), B, Cin, H, W, P);
      return 0;
    });
    gi[0] = dx;
    gi[1] = dw;
    gi[2] = db;
  }
  void release() override {
    patches = Tensor();
    w = Tensor();
  }
};

// The CUDA forward (arguments already checked): patchify kernel, then one strided-batched GEMM
// per image with the weight shared; with a bias the GEMM accumulates into f32 and one kernel adds
// the bias and rounds.
Tensor conv2d_patch_cuda(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
#ifdef TGPT_WITH_CUDA
  check_cuda_float(x_in, "conv2d_patch");
  int64_t B = x_in.size(0), Cin = x_in.size(1), H = x_in.size(2), W = x_in.size(3);
  int64_t Cout = w_in.size(0), P = w_in.size(2);
  int64_t Gh = H / P, Gw = W / P, G = Gh * Gw, D = Cin * P * P;
  DType dt = x_in.dtype();
  Tensor x = x_in.detach().contiguous();
  Tensor w = w_in.detach().contiguous();
  Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  Tensor patches = Tensor::empty({B, G, D}, dt, Device::CUDA);
  cuda::patchify(dt, patches.data_ptr(), x.data_ptr(), B, Cin, H, W, P);
  Tensor out = Tensor::empty({B, Cout, Gh, Gw}, dt, Device::CUDA);
  // out[b] [Cout, G] = w [Cout, D] @ patches[b]ᵀ [D, G]
  Tensor acc =
      b.defined() && dt != DType::f32 ? Tensor::empty({B, Cout, G}, DType::f32, Device::CUDA) : out;
  cuda::gemm(dt, acc.dtype(), false, true, Cout, G, D, 1.f, w.data_ptr(), D, 0, patches.data_ptr(),
             D, G * D, 0.f, acc.data_ptr(), G, Cout * G, B);
  if (b.defined())
    cuda::bias_add_from_f32(dt, out.data_ptr(), acc.data<float>(), b.data_ptr(), B, Cout, G);
  if (auto node = make_node<ConvPatchNode>({&x_in, &w_in, &b_in})) {
    if (node->needs_grad(1)) node->patches = patches;
    if (node->needs_grad(0)) node->w = w;
    node->B = B;
    node->Cin = Cin;
    node->H = H;
    node->W = W;
    node->P = P;
    node->Cout = Cout;
    record(out, node);
  }
  return out;
#else
  TGPT_FAIL("conv2d_patch: ", x_in.str(), " is a CUDA tensor but tgpt was built without CUDA ",
            w_in.str(), b_in.defined());
#endif
}

}  // namespace

Tensor conv2d_patch(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  const char* op = "conv2d_patch";
  check_float(x_in, op, "x");
  check_float(w_in, op, "weight");
  check_same_dtype(x_in, w_in, op);
  check_same_device(x_in, w_in, op);
  TGPT_CHECK(x_in.dim() == 4, "conv2d_patch: x must be [B, Cin, H, W], got ", x_in.shape().str());
  TGPT_CHECK(w_in.dim() == 4, "conv2d_patch: weight must be [Cout, Cin, P, P], got ",
             w_in.shape().str());
  int64_t B = x_in.size(0), Cin = x_in.size(1), H = x_in.size(2), W = x_in.size(3);
  int64_t Cout = w_in.size(0), P = w_in.size(2);
  TGPT_CHECK(w_in.size(3) == P && P > 0, "conv2d_patch: kernel must be square and non-empty, got ",
             w_in.shape().str());
  TGPT_CHECK(w_in.size(1) == Cin, "conv2d_patch: x has Cin = ", Cin, " but weight ",
             w_in.shape().str(), " expects ", w_in.size(1));
  TGPT_CHECK(H % P == 0 && W % P == 0, "conv2d_patch: image ", H, "x", W,
             " is not a multiple of the patch size ", P);
  if (b_in.defined()) {
    check_float(b_in, op, "bias");
    check_same_dtype(x_in, b_in, op);
    check_same_device(x_in, b_in, op);
    TGPT_CHECK(b_in.dim() == 1 && b_in.size(0) == Cout, "conv2d_patch: bias ", b_in.shape().str(),
               " does not match Cout = ", Cout);
  }
  if (x_in.device() == Device::CUDA) return conv2d_patch_cuda(x_in, w_in, b_in);
  if (is_half(x_in.dtype())) {
    Tensor b32 = b_in.defined() ? b_in.to(DType::f32) : Tensor();
    return conv2d_patch(x_in.to(DType::f32), w_in.to(DType::f32), b32).to(x_in.dtype());
  }
  check_cpu_kernel(x_in, op);
  int64_t Gh = H / P, Gw = W / P, G = Gh * Gw, D = Cin * P * P;
  TGPT_CHECK(
      Cout <= cpu::gemm_max_extent() && G <= cpu::gemm_max_extent() && D <= cpu::gemm_max_extent(),
      "conv2d_patch: extents exceed the BLAS integer limit");

  Tensor x = x_in.detach().contiguous();
  Tensor w = w_in.detach().contiguous();
  Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  Tensor patches = Tensor::empty({B, G, D}, x.dtype());
  Tensor out = Tensor::empty({B, Cout, Gh, Gw}, x.dtype());
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if (patches.numel() > 0) cpu::patchify_cpu<T>(patches.data<T>(), x.data<T>(), B, Cin, H, W, P);
    if (out.numel() > 0)
      cpu::conv2d_patch_forward_cpu<T>(out.data<T>(), patches.data<T>(), w.data<T>(),
                                       b.defined() ? b.data<T>() : nullptr, B, G, D, Cout);
    return 0;
  });
  if (auto node = make_node<ConvPatchNode>({&x_in, &w_in, &b_in})) {
    if (node->needs_grad(1)) node->patches = patches;
    if (node->needs_grad(0)) node->w = w;
    node->B = B;
    node->Cin = Cin;
    node->H = H;
    node->W = W;
    node->P = P;
    node->Cout = Cout;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt
