/*
 * onednn_gemm.cpp — GEMMs on oneDNN matmul primitives (onednn_gemm.h), cached per shape.
 */
#include "kernels/cpu/onednn_gemm.h"

#include <omp.h>

#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "base/error.h"

namespace tgpt::cpu {

namespace {

using dt = dnnl::memory::data_type;

// Everything a primitive depends on.
struct PrimitiveKey {
  dt ab = dt::f32, c = dt::f32;
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0, lda = 0, ldb = 0, ldc = 0;
  float alpha = 1.f, beta = 0.f;
  int threads = 1;       // omp_get_max_threads() at creation: oneDNN blocks the work for it
  bool in_parallel = 0;  // created inside an OpenMP parallel region (runs on the calling thread)
  bool operator==(const PrimitiveKey&) const = default;
};

struct PrimitiveKeyHash {
  size_t operator()(const PrimitiveKey& k) const {
    size_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(static_cast<uint64_t>(k.ab));
    mix(static_cast<uint64_t>(k.c));
    mix(k.trans_a * 2u + k.trans_b);
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc}) mix(static_cast<uint64_t>(v));
    uint32_t a, b;
    std::memcpy(&a, &k.alpha, 4);
    std::memcpy(&b, &k.beta, 4);
    mix(a);
    mix(b);
    mix(static_cast<uint64_t>(k.threads) * 2u + k.in_parallel);
    return h;
  }
};

struct CachedPrimitive {
  dnnl::matmul primitive;
  dnnl::memory::desc a, b, c, scratch;
};

// Bounded: shapes come from models (a few dozen) and the varying last batch; a full cache is
// dropped rather than grown without limit.
constexpr size_t kMaxCached = 1024;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

std::mutex g_cache_mutex;
std::unordered_map<PrimitiveKey, CachedPrimitive, PrimitiveKeyHash> g_cache;

CachedPrimitive create(const PrimitiveKey& k) {
  using dims = dnnl::memory::dims;
  // op(A) [M, K]: row-major A [M, K] has strides {lda, 1}; the transpose of A [K, M], {1, lda}.
  dnnl::memory::desc a({k.M, k.K}, k.ab, k.trans_a ? dims{1, k.lda} : dims{k.lda, 1});
  dnnl::memory::desc b({k.K, k.N}, k.ab, k.trans_b ? dims{1, k.ldb} : dims{k.ldb, 1});
  dnnl::memory::desc c({k.M, k.N}, k.c, dims{k.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (k.alpha != 1.f) attr.set_output_scales(0, {k.alpha});
  if (k.beta != 0.f) {
    dnnl::post_ops ops;
    ops.append_sum(k.beta);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, cpu_engine());
  return {dnnl::matmul(pd), a, b, c, pd.scratchpad_desc()};
}

const char* type_name(dt t) {
  return t == dt::bf16 ? "bf16" : "f32";
}

template <typename TAB, typename TC>
void run(dt ab_type, dt c_type, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
         float alpha, const TAB* A, int64_t lda, const TAB* B, int64_t ldb, float beta, TC* C,
         int64_t ldc) {
  PrimitiveKey key{ab_type,
                   c_type,
                   trans_a,
                   trans_b,
                   M,
                   N,
                   K,
                   lda,
                   ldb,
                   ldc,
                   alpha,
                   beta,
                   omp_get_max_threads(),
                   omp_in_parallel() != 0};
  CachedPrimitive p;
  try {
    {
      std::lock_guard<std::mutex> lock(g_cache_mutex);
      auto it = g_cache.find(key);
      if (it != g_cache.end()) p = it->second;
    }
    if (!p.primitive) {
      p = create(key);
      std::lock_guard<std::mutex> lock(g_cache_mutex);
      if (g_cache.size() >= kMaxCached) g_cache.clear();
      g_cache.emplace(key, p);
    }
    thread_local std::vector<uint8_t> scratch;
    const size_t scratch_bytes = p.scratch.get_size();
    if (scratch.size() < scratch_bytes) scratch.resize(scratch_bytes);
    thread_local dnnl::stream stream(cpu_engine());
    dnnl::engine& eng = cpu_engine();
    dnnl::memory ma(p.a, eng, const_cast<TAB*>(A)), mb(p.b, eng, const_cast<TAB*>(B)),
        mc(p.c, eng, C), ms(p.scratch, eng, scratch.data());
    p.primitive.execute(stream, {{DNNL_ARG_SRC, ma},
                                 {DNNL_ARG_WEIGHTS, mb},
                                 {DNNL_ARG_DST, mc},
                                 {DNNL_ARG_SCRATCHPAD, ms}});
    stream.wait();
  } catch (const dnnl::error& e) {
    TGPT_FAIL("oneDNN ", type_name(ab_type), " GEMM ", M, "x", N, "x", K, trans_a ? " A^T" : " A",
              trans_b ? " B^T" : " B", " (lda ", lda, ", ldb ", ldb, ", ldc ", ldc,
              ") failed: ", e.what());
  }
}

// C = beta * C over an M x N block (the K == 0 product).
template <typename TC>
void scale_block(TC* C, int64_t M, int64_t N, int64_t ldc, float beta) {
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < N; ++c) {
      TC& v = C[r * ldc + c];
      if constexpr (std::is_same_v<TC, bf16>)
        v = f32_to_bf16(beta == 0.f ? 0.f : beta * bf16_to_f32(v));
      else
        v = beta == 0.f ? 0.f : beta * v;
    }
}

}  // namespace

void gemm_onednn(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_block(C, M, N, ldc, beta);
  run(dt::f32, dt::f32, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const bf16* A, int64_t lda, const bf16* B, int64_t ldb, float beta, float* C,
               int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_block(C, M, N, ldc, beta);
  run(dt::bf16, dt::f32, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const bf16* A, int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C,
               int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_block(C, M, N, ldc, beta);
  run(dt::bf16, dt::bf16, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return str_cat("oneDNN ", v->major, ".", v->minor, ".", v->patch);
}

std::string onednn_isa() {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: break;
  }
  return "generic";
}

bool onednn_native_bf16() {
  const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  const unsigned bf16_isa = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
  return (isa & bf16_isa) == bf16_isa;  // ISA values are feature masks; AMX includes bf16
}

std::string onednn_impl_name(bool bf16) {
  try {
    const dt t = bf16 ? dt::bf16 : dt::f32;
    dnnl::memory::desc a({256, 512}, t, dnnl::memory::format_tag::ab);
    dnnl::memory::desc b({512, 512}, t, dnnl::memory::format_tag::ba);
    dnnl::memory::desc c({256, 512}, dt::f32, dnnl::memory::format_tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), cpu_engine());
    return pd.impl_info_str();
  } catch (const dnnl::error& e) {
    return std::string("unavailable (") + e.what() + ")";
  }
}

int64_t onednn_cached_primitives() {
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  return static_cast<int64_t>(g_cache.size());
}

}  // namespace tgpt::cpu
