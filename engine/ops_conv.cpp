/*
 * ops_conv.cpp — conv2d_patch: the patch-embedding convolution of CLIP's ViT (kernel = stride =
 * P, no padding), with autograd.
 *
 * Patches do not overlap, so im2col is a pure permutation: x [B, Cin, H, W] is rearranged into
 * patches [B, G, Cin*P*P] (G = H/P * W/P), and each batch entry is one GEMM with the weight viewed
 * [Cout, Cin*P*P], written straight into the output layout [B, Cout, H/P, W/P]. The backward
 * permutes the patch gradient back (col2im without overlaps). Launchers: kernels/conv.h; on the
 * CPU bf16 inputs run as bf16 GEMMs where the CPU has bf16 dot products (kernels::cpu_bf16_gemm),
 * f16 inputs (and bf16 elsewhere) are computed in f32.
 */
#include "engine/ops_common.h"
#include "kernels/conv.h"
#include "kernels/matmul.h"

namespace tgpt {

namespace {

struct ConvPatchNode : Node {
  Tensor patches;  // [B, G, D], saved when the weight needs a gradient
  Tensor w;        // [Cout, D] contiguous, saved when x needs a gradient
  int64_t B = 0, Cin = 0, H = 0, W = 0, P = 0, Cout = 0;
  const char* name() const override { return "conv2d_patch"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();  // [B, Cout, Gh, Gw]
    const DType dt = g.dtype();
    const Device dev = g.device();
    Tensor dx = needs_grad(0) ? Tensor::empty(inputs[0].shape(), dt, dev) : Tensor();
    Tensor dw = needs_grad(1) ? Tensor::empty(inputs[1].shape(), dt, dev) : Tensor();
    Tensor db = needs_grad(2) ? Tensor::empty({Cout}, dt, dev) : Tensor();
    kernels::conv2d_patch_backward(dev, dt, ptr_or_null(dx), ptr_or_null(dw), ptr_or_null(db),
                                   g.data_ptr(), ptr_or_null(patches), ptr_or_null(w), B, Cin, H, W,
                                   P, Cout);
    gi[0] = dx;
    gi[1] = dw;
    gi[2] = db;
  }
  void release() override {
    patches = Tensor();
    w = Tensor();
  }
};

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
  if (cpu_computes_in_f32(x_in)) {
    Tensor b32 = b_in.defined() ? b_in.to(DType::f32) : Tensor();
    return conv2d_patch(x_in.to(DType::f32), w_in.to(DType::f32), b32).to(x_in.dtype());
  }
  const Device dev = x_in.device();
  kernels::check_gemm_kernel_dtype(dev, x_in.dtype(), op);
  int64_t Gh = H / P, Gw = W / P, G = Gh * Gw, D = Cin * P * P;
  kernels::check_gemm_extents(dev, op, {Cout, G, D});

  Tensor x = x_in.detach().contiguous();
  Tensor w = w_in.detach().contiguous();
  Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  Tensor patches = Tensor::empty({B, G, D}, x.dtype(), dev);
  Tensor out = Tensor::empty({B, Cout, Gh, Gw}, x.dtype(), dev);
  kernels::conv2d_patch_forward(dev, x.dtype(), out.data_ptr(), patches.data_ptr(), x.data_ptr(),
                                w.data_ptr(), ptr_or_null(b), B, Cin, H, W, P, Cout);
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
