/*
 * ops_common.cpp — the index helpers shared by the op implementations (ops_common.h).
 */
#include "engine/ops_common.h"

namespace tgpt {

std::vector<int64_t> index_values(const Tensor& idx, const char* op) {
  TGPT_CHECK(idx.defined(), op, ": index tensor is undefined");
  TGPT_CHECK(idx.dtype() == DType::i32 || idx.dtype() == DType::i64, op,
             ": indices must be i32 or i64, got ", dtype_name(idx.dtype()));
  Tensor c = idx.device() == Device::CPU ? idx.contiguous() : idx.to(Device::CPU);
  std::vector<int64_t> v(static_cast<size_t>(c.numel()));
  if (c.dtype() == DType::i64) {
    const int64_t* p = c.data<int64_t>();
    v.assign(p, p + c.numel());
  } else {
    const int32_t* p = c.data<int32_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = p[i];
  }
  return v;
}

Tensor index_tensor(const std::vector<int64_t>& v, Device dev) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::i64, dev);
  copy_bytes(t.data_ptr(), dev, v.data(), Device::CPU, v.size() * sizeof(int64_t));
  return t;
}

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

}  // namespace tgpt
