/*
 * ops_index.cpp — embedding lookup, per-batch row gather (EOT pooling) and concat, with autograd.
 *
 * Forward passes move bytes (any float dtype as is; concat takes any dtype). The embedding
 * backward scatter-adds into a zero [V, C] gradient (on the CPU in f32 for f16/bf16 weights).
 * Launchers: kernels/index.h.
 */
#include "engine/ops_common.h"
#include "kernels/index.h"

namespace tgpt {

namespace {

// ---- embedding ----------------------------------------------------------------------------------

struct EmbeddingNode : Node {
  std::vector<int64_t> ids;
  int64_t V = 0, C = 0;
  const char* name() const override { return "embedding"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const DType wdt = inputs[0].dtype();
    const Device dev = g_in.device();
    const DType acc = kernels::embedding_grad_dtype(dev, wdt);
    Tensor g = g_in.detach();
    if (g.dtype() != acc) g = g.to(acc);
    g = g.contiguous();
    Tensor dw = Tensor::zeros({V, C}, acc, dev);
    kernels::embedding_backward(dev, acc, dw.data_ptr(), g.data_ptr(), ids.data(),
                                static_cast<int64_t>(ids.size()), V, C);
    gi[0] = dw.dtype() == wdt ? dw : dw.to(wdt);
  }
  void release() override { ids = std::vector<int64_t>(); }
};

// ---- gather_rows --------------------------------------------------------------------------------

struct GatherRowsNode : Node {
  std::vector<int64_t> index;
  const char* name() const override { return "gather_rows"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const Shape& xs = inputs[0].shape();
    Tensor g = g_in.contiguous();
    Tensor dx = Tensor::zeros(xs, g.dtype(), g.device());
    kernels::gather_rows_backward(g.device(), dx.data_ptr(), g.data_ptr(), index.data(), xs[0],
                                  xs[1], xs[2], dtype_size(g.dtype()));
    gi[0] = dx;
  }
  void release() override { index = std::vector<int64_t>(); }
};

// ---- concat -------------------------------------------------------------------------------------

struct ConcatNode : Node {
  int dim = 0;
  const char* name() const override { return "concat"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    int64_t start = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      int64_t len = inputs[i].size(dim);
      if (needs_grad(i)) gi[i] = g.narrow(dim, start, len).contiguous();
      start += len;
    }
  }
};

}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& weight) {
  TGPT_CHECK(ids.defined(), "embedding: ids are undefined");
  check_float(weight, "embedding", "weight");
  TGPT_CHECK(weight.dim() == 2, "embedding: weight must be [V, C], got ", weight.shape().str());
  TGPT_CHECK(ids.dim() < kMaxDims, "embedding: ids ", ids.shape().str(), " have too many dims (",
             "the output adds one; at most ", kMaxDims, ")");
  int64_t V = weight.size(0), C = weight.size(1);
  std::vector<int64_t> idv = index_values(ids, "embedding");
  for (size_t i = 0; i < idv.size(); ++i)
    TGPT_CHECK(idv[i] >= 0 && idv[i] < V, "embedding: id ", idv[i], " at position ", i,
               " is out of range [0, ", V, ")");
  Shape out_shape = ids.shape();
  out_shape.push_back(C);
  Tensor w = weight.detach().contiguous();
  Tensor out = Tensor::empty(out_shape, w.dtype(), w.device());
  kernels::embedding_forward(w.device(), out.data_ptr(), w.data_ptr(), idv.data(),
                             static_cast<int64_t>(idv.size()), C, dtype_size(w.dtype()));
  if (auto node = make_node<EmbeddingNode>({&weight})) {
    node->ids = std::move(idv);
    node->V = V;
    node->C = C;
    record(out, node);
  }
  return out;
}

Tensor gather_rows(const Tensor& x, const Tensor& index) {
  check_float(x, "gather_rows", "x");
  TGPT_CHECK(x.dim() == 3, "gather_rows: x must be [B, T, C], got ", x.shape().str());
  TGPT_CHECK(index.defined(), "gather_rows: index is undefined");
  TGPT_CHECK(index.dim() == 1 && index.size(0) == x.size(0), "gather_rows: index must be [B] = [",
             x.size(0), "], got ", index.shape().str());
  int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  std::vector<int64_t> idx = index_values(index, "gather_rows");
  for (int64_t b = 0; b < B; ++b)
    TGPT_CHECK(idx[b] >= 0 && idx[b] < T, "gather_rows: index[", b, "] = ", idx[b],
               " is out of range [0, ", T, ")");
  Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty({B, C}, xc.dtype(), xc.device());
  kernels::gather_rows_forward(xc.device(), out.data_ptr(), xc.data_ptr(), idx.data(), B, T, C,
                               dtype_size(xc.dtype()));
  if (auto node = make_node<GatherRowsNode>({&x})) {
    node->index = std::move(idx);
    record(out, node);
  }
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  TGPT_CHECK(!xs.empty(), "concat: needs at least one tensor");
  for (size_t i = 0; i < xs.size(); ++i) {
    TGPT_CHECK(xs[i].defined(), "concat: tensor ", i, " is undefined");
    TGPT_CHECK(xs[i].dim() > 0, "concat: tensor ", i, " is zero-dimensional");
  }
  const Tensor& x0 = xs[0];
  int nd = x0.dim();
  int d = wrap_dim(dim, nd);
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    TGPT_CHECK(x.dtype() == x0.dtype(), "concat: tensor ", i, " is ", dtype_name(x.dtype()),
               ", tensor 0 is ", dtype_name(x0.dtype()));
    TGPT_CHECK(x.device() == x0.device(), "concat: tensor ", i, " is on ", device_name(x.device()),
               ", tensor 0 on ", device_name(x0.device()));
    TGPT_CHECK(x.dim() == nd, "concat: tensor ", i, " ", x.shape().str(), " has ", x.dim(),
               " dims, tensor 0 ", x0.shape().str(), " has ", nd);
    for (int k = 0; k < nd; ++k)
      TGPT_CHECK(k == d || x.size(k) == x0.size(k), "concat: tensor ", i, " ", x.shape().str(),
                 " differs from tensor 0 ", x0.shape().str(), " in dim ", k, " (only dim ", d,
                 " may differ)");
    total += x.size(d);
  }
  Shape out_shape = x0.shape();
  out_shape[d] = total;
  Tensor out = Tensor::empty(out_shape, x0.dtype(), x0.device());
  int64_t outer = 1, inner = 1;
  for (int k = 0; k < d; ++k) outer *= out_shape[k];
  for (int k = d + 1; k < nd; ++k) inner *= out_shape[k];
  int64_t esize = static_cast<int64_t>(dtype_size(x0.dtype()));
  int64_t offset = 0;
  bool needs_node = false;
  for (const Tensor& x : xs) {
    Tensor xc = x.detach().contiguous();
    int64_t block = x.size(d) * inner * esize;
    if (out.numel() > 0 && xc.numel() > 0)
      kernels::copy_blocks(out.device(), static_cast<char*>(out.data_ptr()) + offset, xc.data_ptr(),
                           outer, block, total * inner * esize);
    offset += block;
    needs_node = needs_node || x.requires_grad();
  }
  if (grad_enabled() && needs_node) {
    auto node = std::make_shared<ConcatNode>();
    for (const Tensor& x : xs) node->inputs.push_back(gradient_route(x));
    node->dim = d;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt
