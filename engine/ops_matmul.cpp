/*
 * ops_matmul.cpp — linear (x @ wᵀ + b) and batched matmul, with autograd. Launchers:
 * kernels/matmul.h (oneDNN/OpenBLAS on the CPU, cuBLAS on CUDA). On the CPU bf16 inputs run as
 * bf16 GEMMs with f32 accumulation where the CPU has bf16 dot products (kernels::cpu_bf16_gemm);
 * f16 inputs, and bf16 ones elsewhere, are computed in f32 and returned in the input dtype.
 *
 * Operands are handed to gemm without copies when they are contiguous or are transposed views
 * of contiguous matrices (the transpose flag is passed instead); any other layout is copied to
 * contiguous first. Backward skips the GEMM of every input that does not need a gradient, so a
 * frozen weight costs no weight-gradient GEMM.
 */
#include "engine/ops_common.h"
#include "kernels/matmul.h"

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

// ---- linear -------------------------------------------------------------------------------------

struct LinearNode : Node {
  Tensor x;       // [N, in] contiguous, saved when the weight needs a gradient
  GemmOperand w;  // [out, in], saved when x needs a gradient
  int64_t rows = 0, in = 0, outf = 0;
  const char* name() const override { return "linear"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    Tensor g = g_in.contiguous();
    DType dt = g.dtype();
    const Device dev = g.device();
    Tensor dx = needs_grad(0) ? Tensor::empty(inputs[0].shape(), dt, dev) : Tensor();
    Tensor dw = needs_grad(1) ? Tensor::empty({outf, in}, dt, dev) : Tensor();
    Tensor db = needs_grad(2) ? Tensor::empty({outf}, dt, dev) : Tensor();
    kernels::linear_backward(dev, dt, ptr_or_null(dx), ptr_or_null(dw), ptr_or_null(db),
                             g.data_ptr(), ptr_or_null(x), ptr_or_null(w.data), w.t, rows, in,
                             outf);
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

// Records the linear node: x is saved when w needs a gradient, w when x does.
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
    const Device dev = g.device();
    Tensor da = needs_grad(0) ? Tensor::empty(inputs[0].shape(), dt, dev) : Tensor();
    Tensor db = needs_grad(1) ? Tensor::empty(inputs[1].shape(), dt, dev) : Tensor();
    kernels::matmul_backward(dev, dt, ptr_or_null(da), ptr_or_null(db), g.data_ptr(),
                             ptr_or_null(a.data), a.t, ptr_or_null(b.data), b.t, batch, M, K, N,
                             b_batched);
    gi[0] = da;
    gi[1] = db;
  }
  void release() override {
    a.data = Tensor();
    b.data = Tensor();
  }
};

// Records the matmul node (see MatmulNode for what is saved).
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

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  check_linear_args(x_in, w_in, b_in);
  if (cpu_computes_in_f32(x_in)) {
    Tensor b32 = b_in.defined() ? b_in.to(DType::f32) : Tensor();
    return linear(x_in.to(DType::f32), w_in.to(DType::f32), b32).to(x_in.dtype());
  }
  const Device dev = x_in.device();
  kernels::check_gemm_kernel_dtype(dev, x_in.dtype(), "linear");
  int64_t in = w_in.size(1), outf = w_in.size(0);
  int64_t rows = 1;  // x viewed as [rows, in]
  for (int d = 0; d + 1 < x_in.dim(); ++d) rows *= x_in.size(d);
  kernels::check_gemm_extents(dev, "linear", {rows, in, outf});
  Shape out_shape = x_in.shape();
  out_shape[out_shape.size() - 1] = outf;

  Tensor x = x_in.detach().contiguous();
  GemmOperand w = gemm_operand(w_in);
  Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(out_shape, x.dtype(), dev);
  kernels::linear_forward(dev, x.dtype(), out.data_ptr(), x.data_ptr(), w.data.data_ptr(), w.t,
                          ptr_or_null(b), rows, in, outf);
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
  if (cpu_computes_in_f32(a_in))
    return matmul(a_in.to(DType::f32), b_in.to(DType::f32)).to(a_in.dtype());
  const Device dev = a_in.device();
  kernels::check_gemm_kernel_dtype(dev, a_in.dtype(), "matmul");
  int64_t batch = 1;
  for (int d = 0; d < nd - 2; ++d) batch *= a_in.size(d);
  kernels::check_gemm_extents(dev, "matmul", {M, K, N, batch * M});
  Shape out_shape = a_in.shape();
  out_shape[nd - 1] = N;

  GemmOperand a = gemm_operand(a_in), b = gemm_operand(b_in);
  Tensor out = Tensor::empty(out_shape, a.data.dtype(), dev);
  kernels::matmul_forward(dev, a.data.dtype(), out.data_ptr(), a.data.data_ptr(), a.t,
                          b.data.data_ptr(), b.t, batch, M, K, N, b_batched);
  record_matmul(out, a_in, b_in, a, b, batch, M, K, N, b_batched);
  return out;
}

}  // namespace tgpt
