/*
 * ops_index.cpp — embedding lookup, per-batch row gather (EOT pooling) and concat, with autograd.
 *
 * Forward passes move bytes (any float dtype as is; concat takes any dtype). The embedding
 * backward scatter-adds into a zero [V, C] gradient, in f32 for f16/bf16 weights.
 * Kernels in kernels/cpu/index.h.
 */
#include "engine/ops_common.h"
#include "kernels/cpu/index.h"
#ifdef TGPT_WITH_CUDA
#include <algorithm>

#include "engine/cuda/op_support.h"
#include "kernels/cuda/index.h"
#endif

namespace tgpt {

namespace {

void check_cpu(const Tensor& x, const char* op, const char* arg) {
  TGPT_CHECK(x.device() == Device::CPU, op, ": no CUDA kernel in this build for ", arg, " ",
             x.str());
}

#ifdef TGPT_WITH_CUDA
// Embedding gradient on the device: positions grouped by id on the host (a counting sort keeps
// positions in increasing order within each id), then one segmented-sum launch.
Tensor embedding_backward_cuda(const Tensor& g, const std::vector<int64_t>& ids, int64_t V,
                               int64_t C, DType wdt) {
  Tensor dw = Tensor::zeros({V, C}, wdt, Device::CUDA);
  if (ids.empty() || C == 0) return dw;
  std::vector<int64_t> count(static_cast<size_t>(V) + 1, 0);
  for (int64_t id : ids) ++count[static_cast<size_t>(id) + 1];
  std::vector<int64_t> seg_ids, offsets{0};
  for (int64_t v = 0; v < V; ++v)
    if (count[static_cast<size_t>(v) + 1] > 0) {
      seg_ids.push_back(v);
      offsets.push_back(offsets.back() + count[static_cast<size_t>(v) + 1]);
    }
  for (int64_t v = 0; v < V; ++v)
    count[static_cast<size_t>(v) + 1] += count[static_cast<size_t>(v)];
  std::vector<int64_t> positions(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    positions[static_cast<size_t>(count[static_cast<size_t>(ids[i])]++)] = static_cast<int64_t>(i);
  Tensor d_ids = upload_indices(seg_ids), d_off = upload_indices(offsets),
         d_pos = upload_indices(positions);
  cuda::embedding_backward(wdt, dw.data_ptr(), g.data_ptr(), d_ids.data<int64_t>(),
                           d_off.data<int64_t>(), d_pos.data<int64_t>(),
                           static_cast<int64_t>(seg_ids.size()), C);
  return dw;
}

// Rows b*T + index[b] of x viewed as [B*T, C].
std::vector<int64_t> flat_rows(const std::vector<int64_t>& index, int64_t T) {
  std::vector<int64_t> r(index.size());
  for (size_t b = 0; b < index.size(); ++b) r[b] = static_cast<int64_t>(b) * T + index[b];
  return r;
}
#endif

// ---- embedding ----------------------------------------------------------------------------------

struct EmbeddingNode : Node {
  std::vector<int64_t> ids;
  int64_t V = 0, C = 0;
  const char* name() const override { return "embedding"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    DType wdt = inputs[0].dtype();
#ifdef TGPT_WITH_CUDA
    if (g_in.device() == Device::CUDA) {
      Tensor gc = g_in.detach();
      if (gc.dtype() != wdt) gc = gc.to(wdt);
      gi[0] = embedding_backward_cuda(gc.contiguous(), ids, V, C, wdt);
      return;
    }
#endif
    Tensor g = (is_half(g_in.dtype()) ? g_in.to(DType::f32) : g_in).contiguous();
    Tensor dw = Tensor::zeros({V, C}, g.dtype());
    dispatch_float(g.dtype(), "embedding backward", [&](auto tag) {
      using T = decltype(tag);
      if (dw.numel() > 0)
        cpu::embedding_backward<T>(dw.data<T>(), g.data<T>(), ids.data(),
                                   static_cast<int64_t>(ids.size()), C);
      return 0;
    });
    gi[0] = dw.dtype() == wdt ? dw : dw.to(wdt);
  }
  void release() override {
    ids = std::vector<int64_t>();
  }
};

// ---- gather_rows --------------------------------------------------------------------------------

struct GatherRowsNode : Node {
  std::vector<int64_t> index;
  const char* name() const override { return "gather_rows"; }
  void backward(const Tensor& g_in, std::vector<Tensor>& gi) override {
    const Shape& xs = inputs[0].shape();
    Tensor g = g_in.contiguous();
#ifdef TGPT_WITH_CUDA
    if (g.device() == Device::CUDA) {
      Tensor dx = Tensor::zeros(xs, g.dtype(), Device::CUDA);
      Tensor rows = upload_indices(flat_rows(index, xs[1]));
      cuda::scatter_rows(dx.data_ptr(), g.data_ptr(), rows.data<int64_t>(), xs[0], xs[2],
                         dtype_size(g.dtype()));
      gi[0] = dx;
      return;
    }
#endif
    Tensor dx = Tensor::zeros(xs, g.dtype());
    int64_t row_bytes = xs[2] * static_cast<int64_t>(dtype_size(g.dtype()));
    if (dx.numel() > 0)
      cpu::gather_rows_backward(static_cast<char*>(dx.data_ptr()),
                                static_cast<const char*>(g.data_ptr()), index.data(), xs[0], xs[1],
                                row_bytes);
    gi[0] = dx;
  }
  void release() override {
    index = std::vector<int64_t>();
  }
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
  if (weight.device() != Device::CUDA) check_cpu(weight, "embedding", "weight");
  int64_t V = weight.size(0), C = weight.size(1);
  std::vector<int64_t> idv = index_values(ids, "embedding");
  for (size_t i = 0; i < idv.size(); ++i)
    TGPT_CHECK(idv[i] >= 0 && idv[i] < V, "embedding: id ", idv[i], " at position ", i,
               " is out of range [0, ", V, ")");
  Shape out_shape = ids.shape();
  out_shape.push_back(C);
  Tensor w = weight.detach().contiguous();
  Tensor out = Tensor::empty(out_shape, w.dtype(), w.device());
#ifdef TGPT_WITH_CUDA
  if (w.device() == Device::CUDA) {
    Tensor d_ids = upload_indices(idv);
    cuda::gather_rows(out.data_ptr(), w.data_ptr(), d_ids.data<int64_t>(),
                      static_cast<int64_t>(idv.size()), C, dtype_size(w.dtype()));
  } else
#endif
      if (out.numel() > 0)
    cpu::embedding_forward(
        static_cast<char*>(out.data_ptr()), static_cast<const char*>(w.data_ptr()), idv.data(),
        static_cast<int64_t>(idv.size()), C * static_cast<int64_t>(dtype_size(w.dtype())));
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
  if (x.device() != Device::CUDA) check_cpu(x, "gather_rows", "x");
  int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  std::vector<int64_t> idx = index_values(index, "gather_rows");
  for (int64_t b = 0; b < B; ++b)
    TGPT_CHECK(idx[b] >= 0 && idx[b] < T, "gather_rows: index[", b, "] = ", idx[b],
               " is out of range [0, ", T, ")");
  Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty({B, C}, xc.dtype(), xc.device());
#ifdef TGPT_WITH_CUDA
  if (xc.device() == Device::CUDA) {
    Tensor rows = upload_indices(flat_rows(idx, T));
    cuda::gather_rows(out.data_ptr(), xc.data_ptr(), rows.data<int64_t>(), B, C,
                      dtype_size(xc.dtype()));
  } else
#endif
      if (out.numel() > 0)
    cpu::gather_rows_forward(static_cast<char*>(out.data_ptr()),
                             static_cast<const char*>(xc.data_ptr()), idx.data(), B, T,
                             C * static_cast<int64_t>(dtype_size(xc.dtype())));
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
  if (x0.device() != Device::CUDA) check_cpu(x0, "concat", "tensor");
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
#ifdef TGPT_WITH_CUDA
    if (out.device() == Device::CUDA) {
      if (out.numel() > 0 && xc.numel() > 0)
        cuda::copy_blocks(static_cast<char*>(out.data_ptr()) + offset, xc.data_ptr(), outer, block,
                          total * inner * esize);
    } else
#endif
        if (out.numel() > 0 && xc.numel() > 0)
      cpu::copy_blocks(static_cast<char*>(out.data_ptr()) + offset,
                       static_cast<const char*>(xc.data_ptr()), outer, block,
                       total * inner * esize);
    offset += block;
    needs_node = needs_node || x.requires_grad();
  }
  if (grad_enabled() && needs_node) {
    auto node = std::make_shared<ConcatNode>();
    node->inputs = xs;
    node->dim = d;
    record(out, node);
  }
  return out;
}

}  // namespace tgpt
