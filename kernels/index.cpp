/*
 * index.cpp — device dispatch of the row gathers and scatters (kernels/index.h).
 */
#include "kernels/index.h"

#include <vector>

#include "kernels/cpu/index.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/index.h"
#endif

namespace tgpt::kernels {

#ifdef TGPT_WITH_CUDA
namespace {

// Rows b*T + index[b] of x viewed as [B*T, C].
std::vector<int64_t> flat_rows(const int64_t* index, int64_t B, int64_t T) {
  std::vector<int64_t> r(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) r[static_cast<size_t>(b)] = b * T + index[b];
  return r;
}

}  // namespace
#endif

void embedding_forward(Device dev, void* out, const void* weight, const int64_t* ids, int64_t n,
                       int64_t C, size_t esize) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    IndicesOn d_ids(dev, ids, n);
    cuda::gather_rows(out, weight, d_ids.get(), n, C, esize);
    return;
#else
    fail_without_cuda("embedding");
#endif
  }
  if (n * C == 0) return;
  cpu::embedding_forward(static_cast<char*>(out), static_cast<const char*>(weight), ids, n,
                         C * static_cast<int64_t>(esize));
}

DType embedding_grad_dtype(Device dev, DType wdt) {
  if (dev == Device::CPU && (wdt == DType::f16 || wdt == DType::bf16)) return DType::f32;
  return wdt;
}

void embedding_backward(Device dev, DType dt, void* dweight, const void* g, const int64_t* ids,
                        int64_t n, int64_t V, int64_t C) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    // Positions grouped by id on the host (a counting sort keeps positions in increasing order
    // within each id), then one segmented-sum launch.
    if (n == 0 || C == 0) return;
    std::vector<int64_t> count(static_cast<size_t>(V) + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++count[static_cast<size_t>(ids[i]) + 1];
    std::vector<int64_t> seg_ids, offsets{0};
    for (int64_t v = 0; v < V; ++v)
      if (count[static_cast<size_t>(v) + 1] > 0) {
        seg_ids.push_back(v);
        offsets.push_back(offsets.back() + count[static_cast<size_t>(v) + 1]);
      }
    for (int64_t v = 0; v < V; ++v)
      count[static_cast<size_t>(v) + 1] += count[static_cast<size_t>(v)];
    std::vector<int64_t> positions(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      positions[static_cast<size_t>(count[static_cast<size_t>(ids[i])]++)] = i;
    const int64_t n_seg = static_cast<int64_t>(seg_ids.size());
    IndicesOn d_ids(dev, seg_ids.data(), n_seg), d_off(dev, offsets.data(), n_seg + 1),
        d_pos(dev, positions.data(), n);
    cuda::embedding_backward(dt, dweight, g, d_ids.get(), d_off.get(), d_pos.get(), n_seg, C);
    return;
#else
    fail_without_cuda("embedding backward");
#endif
  }
  if (V * C == 0) return;
  dispatch_float(dt, "embedding backward", [&](auto tag) {
    using T = decltype(tag);
    cpu::embedding_backward<T>(static_cast<T*>(dweight), static_cast<const T*>(g), ids, n, C);
    return 0;
  });
}

void gather_rows_forward(Device dev, void* out, const void* x, const int64_t* index, int64_t B,
                         int64_t T, int64_t C, size_t esize) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    std::vector<int64_t> rows = flat_rows(index, B, T);
    IndicesOn d_rows(dev, rows.data(), B);
    cuda::gather_rows(out, x, d_rows.get(), B, C, esize);
    return;
#else
    fail_without_cuda("gather_rows");
#endif
  }
  if (B * C == 0) return;
  cpu::gather_rows_forward(static_cast<char*>(out), static_cast<const char*>(x), index, B, T,
                           C * static_cast<int64_t>(esize));
}

void gather_rows_backward(Device dev, void* dx, const void* g, const int64_t* index, int64_t B,
                          int64_t T, int64_t C, size_t esize) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    std::vector<int64_t> rows = flat_rows(index, B, T);
    IndicesOn d_rows(dev, rows.data(), B);
    cuda::scatter_rows(dx, g, d_rows.get(), B, C, esize);
    return;
#else
    fail_without_cuda("gather_rows backward");
#endif
  }
  if (B * T * C == 0) return;
  cpu::gather_rows_backward(static_cast<char*>(dx), static_cast<const char*>(g), index, B, T,
                            C * static_cast<int64_t>(esize));
}

void copy_blocks(Device dev, void* dst, const void* src, int64_t outer, int64_t block_bytes,
                 int64_t dst_stride_bytes) {
  if (dev == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    cuda::copy_blocks(dst, src, outer, block_bytes, dst_stride_bytes);
    return;
#else
    fail_without_cuda("concat");
#endif
  }
  cpu::copy_blocks(static_cast<char*>(dst), static_cast<const char*>(src), outer, block_bytes,
                   dst_stride_bytes);
}

}  // namespace tgpt::kernels
