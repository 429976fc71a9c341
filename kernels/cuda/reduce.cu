/*
 * reduce.cu — row sums behind the sum / mean reductions (see reduce.h; algorithm in reduce.cuh).
 */
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/reduce.h"

namespace tgpt::cuda {

using row_sums::launch_row_sum;
using row_sums::LoadValue;

void row_sum(DType dt, void* out, const void* x, int64_t rows, int64_t n, double divisor) {
  dispatch_storage(dt, "sum", [&](auto tag) {
    using S = decltype(tag);
    launch_row_sum<S>(static_cast<S*>(out), LoadValue<S>{static_cast<const S*>(x)}, rows, n,
                      static_cast<float>(divisor));
  });
}

}  // namespace tgpt::cuda
