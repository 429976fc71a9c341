/*
 * parallel.h — CPU parallel loops (OpenMP) and the engine's thread count.
 *
 * parallel_for splits [0, n) into contiguous static chunks, so every index is processed by exactly
 * one thread with the same arithmetic whatever the thread count: kernels that parallelise over
 * independent rows give bit-identical results for any number of threads.
 */
#pragma once

#include <omp.h>

#include <cstdint>

namespace tgpt {

inline int num_threads() { return omp_get_max_threads(); }
inline void set_num_threads(int n) { omp_set_num_threads(n > 0 ? n : 1); }

// Calls f(i) for i in [0, n); runs serially when n < min_parallel.
template <typename F>
void parallel_for(int64_t n, F&& f, int64_t min_parallel = 2) {
  if (n < min_parallel || omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace tgpt
