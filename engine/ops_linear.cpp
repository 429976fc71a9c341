/*
 * ops_linear.cpp — linear (x @ wᵀ + b) and batched matmul, with autograd, on OpenBLAS.
 *
 * Operands are handed to gemm without copies when they are contiguous or are transposed views
 * of contiguous matrices (the transpose flag is passed instead); any other layout is copied to
 * contiguous first. Backward skips the GEMM of every input that does not need a gradient, so a
 * frozen weight costs no weight-gradient GEMM.
 */
#include "engine/ops_common.h"
#include "kernels/cpu/matmul.h"
#ifdef TGPT_WITH_CUDA
#include "engine/cuda/op_support.h"
#include "kernels/cuda/matmul.h"
#endif

namespace tgpt {

namespace {

// A tensor [..., R, C] ready for gemm: `data` holds it row-major (t = false) or holds its
// transpose over the last two dims row-major (t = true).
struct GemmOperand {
  Tensor data;
  bool t = false;
};

GemmOperand gemm_operand(const Tensor& x) {
  Tensor d = x.detach();
  if (d.is_contiguous()) return {d, false};
  if (d.dim() >= 2 && d.transpose(-2, -1).is_contiguous()) return {d, true};
  return {d.contiguous(), false};
}

void check_gemm_extents(const char* op, std::initializer_list<int64_t> extents) {
  for (int64_t e : extents)
    TGPT_CHECK(e <= cpu::gemm_max_extent(), op, ": extent ", e, " exceeds the BLAS integer limit ",
               cpu::gemm_max_extent());
}

// ---- linear -------------------------------------------------------------------------------------

struct LinearNode : Node {
  Tensor x;       // [N, in] contiguous, saved when the weight needs a gradient
  GemmOperand w;  // [out, in], saved when x needs a gradient
  int64_t rows = 0, in = 0, outf = 0;
  const char* name() const override { return "linear"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();
    DType dt = g.dtype();
    Tensor dx, dw, db;
#ifdef TGPT_WITH_CUDA
    if (g.device() == Device::CUDA) {
      if (needs_grad(0)) {
        // dx [rows, in] = g [rows, outf] @ w [outf, in]
        dx = Tensor::empty(inputs[0].shape(), dt, Device::CUDA);
        cuda::gemm(dt, dt, false, w.t, rows, in, outf, 1.f, g.data_ptr(), outf, 0,
                   w.data.data_ptr(), w.t ? outf : in, 0, 0.f, dx.data_ptr(), in, 0, 1);
      }
      if (needs_grad(1)) {
        // dw [outf, in] = gᵀ [outf, rows] @ x [rows, in]
        dw = Tensor::empty({outf, in}, dt, Device::CUDA);
        cuda::gemm(dt, dt, true, false, outf, in, rows, 1.f, g.data_ptr(), outf, 0, x.data_ptr(),
                   in, 0, 0.f, dw.data_ptr(), in, 0, 1);
      }
      if (needs_grad(2)) {
        db = Tensor::empty({outf}, dt, Device::CUDA);
        cuda::column_sum(dt, db.data_ptr(), g.data_ptr(), rows, outf);
      }
      gi[0] = dx;
      gi[1] = dw;
      gi[2] = db;
      return;
    }
#endif
    if (needs_grad(0)) dx = Tensor::empty(inputs[0].shape(), dt);
    if (needs_grad(1)) dw = Tensor::empty({outf, in}, dt);
    if (needs_grad(2)) db = Tensor::empty({outf}, dt);
    dispatch_float(dt, "linear backward", [&](auto tag) {
      using T = decltype(tag);
      cpu::linear_backward_cpu<T>(
          dx.defined() ? dx.data<T>() : nullptr, dw.defined() ? dw.data<T>() : nullptr,
          db.defined() ? db.data<T>() : nullptr, g.data<T>(), x.defined() ? x.data<T>() : nullptr,
          w.data.defined() ? w.data.data<T>() : nullptr, rows, in, outf, w.t);
      return 0;
    });
    gi[0] = dx;
    gi[1] = dw;
    gi[2] = db;
  }
  void release() override {
    x = Tensor();
    w.data = Tensor();
  }
};

void check_linear_args(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_float(x, "linear", "x");
  check_float(w, "linear", "weight");
  check_same_dtype(x, w, "linear");
  check_same_device(x, w, "linear");
  TGPT_CHECK(x.dim() >= 1, "linear: x must have at least 1 dim, got ", x.str());
  TGPT_CHECK(w.dim() == 2, "linear: weight must be [out, in], got ", w.shape().str());
  TGPT_CHECK(x.size(-1) == w.size(1), "linear: x ", x.shape().str(), " has in = ", x.size(-1),
             " but weight ", w.shape().str(), " expects in = ", w.size(1));
  if (b.defined()) {
    check_float(b, "linear", "bias");
    check_same_dtype(x, b, "linear");
    check_same_device(x, b, "linear");
    TGPT_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: bias ", b.shape().str(),
               " does not match weight ", w.shape().str(), " (expected [", w.size(0), "])");
  }
}

// Records the linear node for either device: x is saved when w needs a gradient, w when x does.
void record_linear(Tensor& out, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in,
                   const Tensor& x, const GemmOperand& w, int64_t rows, int64_t in, int64_t outf) {
  if (auto node = make_node<LinearNode>({&x_in, &w_in, &b_in})) {
    if (node->needs_grad(1)) node->x = x;
    if (node->needs_grad(0)) node->w = w;
    node->rows = rows;
    node->in = in;
    node->outf = outf;
    record(out, node);
  }
}

// ---- matmul -------------------------------------------------------------------------------------

struct MatmulNode : Node {
  GemmOperand a, b;  // b saved when a needs a gradient, a when b does
  int64_t batch = 0, M = 0, K = 0, N = 0;
  bool b_batched = false;
  const char* name() const override { return "matmul"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();
    DType dt = g.dtype();
    Tensor da, db;
#ifdef TGPT_WITH_CUDA
    if (g.device() == Device::CUDA) {
      if (needs_grad(0)) {
        // da[b] [M, K] = g[b] [M, N] @ b[b]ᵀ [N, K]
        da = Tensor::empty(inputs[0].shape(), dt, Device::CUDA);
        cuda::gemm(dt, dt, false, !b.t, M, K, N, 1.f, g.data_ptr(), N, M * N, b.data.data_ptr(),
                   b.t ? K : N, b_batched ? K * N : 0, 0.f, da.data_ptr(), K, M * K, batch);
      }
      if (needs_grad(1)) {
        db = Tensor::empty(inputs[1].shape(), dt, Device::CUDA);
        if (b_batched) {
          // db[b] [K, N] = a[b]ᵀ [K, M] @ g[b] [M, N]
          cuda::gemm(dt, dt, !a.t, false, K, N, M, 1.f, a.data.data_ptr(), a.t ? M : K, M * K,
                     g.data_ptr(), N, M * N, 0.f, db.data_ptr(), N, K * N, batch);
        } else {
          // Shared b: db [K, N] = aᵀ [K, batch*M] @ g [batch*M, N], a as one [batch*M, K] matrix.
          Tensor ac = a.t ? a.data.contiguous() : a.data;
          cuda::gemm(dt, dt, true, false, K, N, batch * M, 1.f, ac.data_ptr(), K, 0, g.data_ptr(),
                     N, 0, 0.f, db.data_ptr(), N, 0, 1);
        }
      }
      gi[0] = da;
      gi[1] = db;
      return;
    }
#endif
    if (needs_grad(0)) da = Tensor::empty(inputs[0].shape(), dt);
    if (needs_grad(1)) db = Tensor::empty(inputs[1].shape(), dt);
    dispatch_float(dt, "matmul backward", [&](auto tag) {
      using T = decltype(tag);
      cpu::matmul_backward_cpu<T>(
          da.defined() ? da.data<T>() : nullptr, db.defined() ? db.data<T>() : nullptr, g.data<T>(),
          a.data.defined() ? a.data.data<T>() : nullptr,
          b.data.defined() ? b.data.data<T>() : nullptr, batch, M, K, N, a.t, b.t, b_batched);
      return 0;
    });
    gi[0] = da;
    gi[1] = db;
  }
  void release() override {
    a.data = Tensor();
    b.data = Tensor();
  }
};

// Records the matmul node for either device (see MatmulNode for what is saved).
void record_matmul(Tensor& out, const Tensor& a_in, const Tensor& b_in, const GemmOperand& a,
                   const GemmOperand& b, int64_t batch, int64_t M, int64_t K, int64_t N,
                   bool b_batched) {
  if (auto node = make_node<MatmulNode>({&a_in, &b_in})) {
    if (node->needs_grad(1)) node->a = a;
    if (node->needs_grad(0)) node->b = b;
    node->batch = batch;
    node->M = M;
    node->K = K;
    node->N = N;
    node->b_batched = b_batched;
    record(out, node);
  }
}

// ---- CUDA forward passes (arguments already checked)
// ---------------------------------------------

Tensor linear_cuda(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
#ifdef TGPT_WITH_CUDA
  check_cuda_float(x_in, "linear");
  int64_t in = w_in.size(1), outf = w_in.size(0);
  int64_t rows = 1;
  for (int d = 0; d + 1 < x_in.dim(); ++d) rows *= x_in.size(d);
  Shape out_shape = x_in.shape();
  out_shape[out_shape.size() - 1] = outf;
  Tensor x = x_in.detach().contiguous();
  GemmOperand w = gemm_operand(w_in);
  Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(out_shape, x.dtype(), Device::CUDA);
  cuda::linear_forward(x.dtype(), out.data_ptr(), x.data_ptr(), w.data.data_ptr(), w.t,
                       ptr_or_null(b), rows, in, outf);
  record_linear(out, x_in, w_in, b_in, x, w, rows, in, outf);
  return out;
#else
  TGPT_FAIL("linear: ", x_in.str(), " is a CUDA tensor but tgpt was built without CUDA ",
            w_in.str(), b_in.defined());
#endif
}

Tensor matmul_cuda(const Tensor& a_in, const Tensor& b_in, bool b_batched) {
#ifdef TGPT_WITH_CUDA
  check_cuda_float(a_in, "matmul");
  int nd = a_in.dim();
  int64_t M = a_in.size(-2), K = a_in.size(-1), N = b_in.size(-1);
  int64_t batch = 1;
  for (int d = 0; d < nd - 2; ++d) batch *= a_in.size(d);
  Shape out_shape = a_in.shape();
  out_shape[nd - 1] = N;
  GemmOperand a = gemm_operand(a_in), b = gemm_operand(b_in);
  Tensor out = Tensor::empty(out_shape, a.data.dtype(), Device::CUDA);
  // out[b] [M, N] = a[b] [M, K] @ b[b] [K, N]
  cuda::gemm(a.data.dtype(), a.data.dtype(), a.t, b.t, M, N, K, 1.f, a.data.data_ptr(), a.t ? M : K,
             M * K, b.data.data_ptr(), b.t ? K : N, b_batched ? K * N : 0, 0.f, out.data_ptr(), N,
             M * N, batch);
  record_matmul(out, a_in, b_in, a, b, batch, M, K, N, b_batched);
  return out;
#else
  TGPT_FAIL("matmul: ", a_in.str(), " is a CUDA tensor but tgpt was built without CUDA ",
            b_in.str(), b_batched);
#endif
}

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  check_linear_args(x_in, w_in, b_in);
  if (x_in.device() == Device::CUDA) return linear_cuda(x_in, w_in, b_in);
  if (is_half(x_in.dtype())) {
    Tensor b32 = b_in.defined() ? b_in.to(DType::f32) : Tensor();
    return linear(x_in.to(DType::f32), w_in.to(DType::f32), b32).to(x_in.dtype());
  }
  check_cpu_kernel(x_in, "linear");
  int64_t in = w_in.size(1), outf = w_in.size(0);
  int64_t rows = 1;  // x viewed as [rows, in]
  for (int d = 0; d + 1 < x_in.dim(); ++d) rows *= x_in.size(d);
  check_gemm_extents("linear", {rows, in, outf});
  Shape out_shape = x_in.shape();
  out_shape[out_shape.size() - 1] = outf;

  Tensor x = x_in.detach().contiguous();
  GemmOperand w = gemm_operand(w_in);
  Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(out_shape, x.dtype());
  dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    if (out.numel() == 0) return 0;
    cpu::linear_forward_cpu<T>(out.data<T>(), x.data<T>(), w.data.data<T>(),
                               b.defined() ? b.data<T>() : nullptr, rows, in, outf, w.t);
    return 0;
  });
  record_linear(out, x_in, w_in, b_in, x, w, rows, in, outf);
  return out;
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_float(a_in, "matmul", "a");
  check_float(b_in, "matmul", "b");
  check_same_dtype(a_in, b_in, "matmul");
  check_same_device(a_in, b_in, "matmul");
  TGPT_CHECK(a_in.dim() >= 2 && b_in.dim() >= 2, "matmul: both operands need at least 2 dims, got ",
             a_in.shape().str(), " and ", b_in.shape().str());
  int nd = a_in.dim();
  int64_t M = a_in.size(-2), K = a_in.size(-1), N = b_in.size(-1);
  TGPT_CHECK(b_in.size(-2) == K, "matmul: inner dims differ: a ", a_in.shape().str(), " @ b ",
             b_in.shape().str(), " (", K, " vs ", b_in.size(-2), ")");
  bool b_batched = b_in.dim() > 2;
  if (b_batched) {
    bool same = b_in.dim() == nd;
    for (int d = 0; same && d < nd - 2; ++d) same = a_in.size(d) == b_in.size(d);
    TGPT_CHECK(same, "matmul: batch dims of a ", a_in.shape().str(), " and b ", b_in.shape().str(),
               " must be equal (or b must be 2-D)");
  }
  if (a_in.device() == Device::CUDA) return matmul_cuda(a_in, b_in, b_batched);
  if (is_half(a_in.dtype()))
    return matmul(a_in.to(DType::f32), b_in.to(DType::f32)).to(a_in.dtype());
  check_cpu_kernel(a_in, "matmul");
  int64_t batch = 1;
  for (int d = 0; d < nd - 2; ++d) batch *= a_in.size(d);
  check_gemm_extents("matmul", {M, K, N, batch * M});
  Shape out_shape = a_in.shape();
  out_shape[nd - 1] = N;

  GemmOperand a = gemm_operand(a_in), b = gemm_operand(b_in);
  Tensor out = Tensor::empty(out_shape, a.data.dtype());
  dispatch_float(a.data.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    if (out.numel() == 0) return 0;
    cpu::matmul_forward_cpu<T>(out.data<T>(), a.data.data<T>(), b.data.data<T>(), batch, M, K, N,
                               a.t, b.t, b_batched);
    return 0;
  });
  record_matmul(out, a_in, b_in, a, b, batch, M, K, N, b_batched);
  return out;
}

}  // namespace tgpt
