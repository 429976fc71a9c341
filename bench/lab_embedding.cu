/*
 * lab_embedding.cu — kernel lab for the embedding lookup, weight [V, C] gathered by n ids into
 * out [n, C], and its backward dweight [V, C] = scatter-add of the rows of g [n, C] by id, in the
 * style of llm.c's dev/cuda: CPU reference, numbered versions, validation (ids that repeat
 * heavily included), L2-flushed timings at CLIP / TGP-T shapes in GB/s and % of the measured
 * device copy bandwidth.
 *
 * Build: with the project (cmake -DTGPT_CUDA=ON; target lab_embedding), or standalone from the
 * repository root (the index kernels need no scratch, so the lab defines the stream):
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. -DLAB_STANDALONE \
 *        bench/lab_embedding.cu kernels/cuda/index.cu base/dtype.cpp -o lab_embedding
 * Run: ./lab_embedding [--check-only] [version]
 *
 * Versions:
 *   1. naive: forward one thread per output row copying it element by element; backward one
 *      thread per element of g with atomicAdd into dweight (non-deterministic order: the baseline
 *      the engine avoids), f32.
 *   2. device-only, sort-free: forward one warp per output row with 16-byte vector copies (when
 *      C % 4 == 0); backward one block per (position, 128-column tile): the block of the first
 *      occurrence of an id sums the g rows of all its positions in order (ids staged in shared
 *      memory), the blocks of later occurrences exit. Deterministic, same bits as the engine, and
 *      no host grouping or index uploads (which the engine op does on every backward); O(n^2) id
 *      comparisons, fine for n of a few thousand. f32. A candidate to measure against version 3.
 *   3. engine kernels, f32 (kernels/cuda/index.cu): gather_rows (one thread per element, 4-byte
 *      moves) and embedding_backward, a (segment, column tile) grid over the host-built CSR
 *      grouping of positions by id (built once here, outside the timing; tgpt-bench's
 *      embedding_fb row times the whole op including it).
 *   4. engine kernels, bf16 storage (2-byte moves; f32 sums).
 * To watch: in padded text batches the padding id owns most positions (~850 of 1232), so one
 * segment's column threads add ~850 rows serially in versions 2-4 ("text 16x77 (padded)" vs
 * "(random ids)"); splitting long segments into fixed chunks added in order is the candidate if
 * that tail shows. The engine gather splits every element index with 64-bit div/mod; version 2's
 * forward shows what a row-wise vector copy gains.
 * Bytes counted: forward reads n rows of weight, writes n rows of out; backward reads the n rows of
 * g and writes one dweight row per distinct id. Zeroing dweight [V, C] (the op does it before the
 * scatter, and version 1 needs it) is not in the kernel times; its own time is the "zero us"
 * column.
 */
#include <cstdint>

#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/index.h"

using namespace tgpt;

// ----------------------------------------------------------------------------------------------
// ids and the host grouping the engine op builds (engine/ops_index.cpp)

enum class Ids { random, heavy, positional, text };

// n ids in [0, V): random; heavy (every third position is id 7 -- 200 times for n = 600 -- the
// others random); positional (i % V, each id n / V times); text (CLIP-like token rows of 77:
// start token V-2, 3..39 random tokens, end token V-1, then padding id 0 to the end of the row).
std::vector<int64_t> make_ids(Ids kind, int n, int V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> any(0, V - 1);
  std::vector<int64_t> ids(n);
  for (int i = 0; i < n; ++i) {
    if (kind == Ids::random)
      ids[i] = any(rng);
    else if (kind == Ids::heavy)
      ids[i] = i % 3 == 0 ? std::min(7, V - 1) : any(rng);
    else if (kind == Ids::positional)
      ids[i] = i % V;
    else {
      const int t = i % 77;
      if (t == 0) {
        const int len = 4 + static_cast<int>(rng() % 37);
        for (int k = 0; k < 77 && i + k < n; ++k)
          ids[i + k] = k == 0 ? V - 2 : k <= len ? (k == len ? V - 1 : any(rng) % (V - 2)) : 0;
      }
    }
  }
  return ids;
}

// CSR grouping of the positions by id, positions increasing within an id (a counting sort).
struct Segments {
  std::vector<int64_t> ids, offsets{0}, positions;
};
Segments group_by_id(const std::vector<int64_t>& ids, int V) {
  Segments s;
  std::vector<int64_t> start(static_cast<size_t>(V) + 1, 0);
  for (int64_t id : ids) ++start[static_cast<size_t>(id) + 1];
  for (int v = 0; v < V; ++v)
    if (start[static_cast<size_t>(v) + 1] > 0) {
      s.ids.push_back(v);
      s.offsets.push_back(s.offsets.back() + start[static_cast<size_t>(v) + 1]);
    }
  for (int v = 0; v < V; ++v) start[static_cast<size_t>(v) + 1] += start[static_cast<size_t>(v)];
  s.positions.resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    s.positions[static_cast<size_t>(start[static_cast<size_t>(ids[i])]++)] =
        static_cast<int64_t>(i);
  return s;
}

// ----------------------------------------------------------------------------------------------
// CPU reference (double)

void embedding_cpu(std::vector<double>& out, std::vector<double>& dw, const std::vector<float>& w,
                   const std::vector<int64_t>& ids, const std::vector<float>& g, int V, int C) {
  const size_t n = ids.size();
  out.assign(n * C, 0.0);
  dw.assign(static_cast<size_t>(V) * C, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < C; ++c) {
      out[i * C + c] = w[static_cast<size_t>(ids[i]) * C + c];
      dw[static_cast<size_t>(ids[i]) * C + c] += g[i * C + c];
    }
}

// ----------------------------------------------------------------------------------------------
// GPU kernels: version 1 (naive) and version 2 (row-wise, sort-free), f32

__global__ void embedding_forward_kernel1(float* out, const float* w, const int64_t* ids, int n,
                                          int C) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= n) return;
  const float* src = w + ids[r] * C;
  float* dst = out + static_cast<long long>(r) * C;
  for (int c = 0; c < C; ++c) dst[c] = src[c];
}

__global__ void embedding_backward_kernel1(float* dw, const float* g, const int64_t* ids,
                                           long long total, int C) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  atomicAdd(&dw[ids[i / C] * C + i % C], g[i]);
}

__global__ void embedding_forward_kernel2(float* out, const float* w, const int64_t* ids, int n,
                                          int C) {
  const long long r = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= n) return;
  const float* src = w + ids[r] * C;
  float* dst = out + r * C;
  if (C % 4 ==
      0) {  // rows start 16-byte aligned (cudaMalloc'd bases, C * 4 bytes a multiple of 16)
    const float4* s4 = reinterpret_cast<const float4*>(src);
    float4* d4 = reinterpret_cast<float4*>(dst);
    for (int c = lane; c < C / 4; c += 32) d4[c] = s4[c];
  } else {
    for (int c = lane; c < C; c += 32) dst[c] = src[c];
  }
}

constexpr int kThreads2 = 128;

// Block (i, tile): position i's id, columns [tile * 128, +128). Only the block of the first
// occurrence of the id writes its dweight row: the sum of g over all positions j >= i with that
// id, in increasing j.
__global__ void embedding_backward_kernel2(float* dw, const float* g, const int64_t* ids, int n,
                                           int C) {
  __shared__ int64_t tile_ids[kThreads2];
  const int i = blockIdx.x;
  const int64_t id = ids[i];
  const int c = blockIdx.y * kThreads2 + threadIdx.x;
  int earlier = 0;
  for (int j = threadIdx.x; j < i; j += kThreads2) earlier |= ids[j] == id;
  if (__syncthreads_or(earlier)) return;  // the same answer in every thread of the block
  float acc = 0.f;
  for (int j0 = i; j0 < n; j0 += kThreads2) {
    if (j0 + threadIdx.x < n) tile_ids[threadIdx.x] = ids[j0 + threadIdx.x];
    __syncthreads();
    const int jn = min(kThreads2, n - j0);
    if (c < C)
      for (int k = 0; k < jn; ++k)
        if (tile_ids[k] == id) acc += g[static_cast<long long>(j0 + k) * C + c];
    __syncthreads();  // before the next tile overwrites tile_ids
  }
  if (c < C) dw[id * C + c] = acc;
}

// ----------------------------------------------------------------------------------------------
// launchers

struct Bufs {
  void *w, *g, *out, *dw;
  int64_t *ids, *seg_ids, *offsets, *positions;
  int64_t n_segments;
};

DType lab_dtype(int version) {
  return version == 4 ? DType::bf16 : DType::f32;
}

void forward(int version, const Bufs& m, int n, int C) {
  const float* w = static_cast<const float*>(m.w);
  float* out = static_cast<float*>(m.out);
  if (version == 1) {
    embedding_forward_kernel1<<<lab::ceil_div(n, 128), 128, 0, cuda::stream()>>>(out, w, m.ids, n,
                                                                                 C);
    LAB_CHECK(cudaGetLastError());
  } else if (version == 2) {
    embedding_forward_kernel2<<<lab::ceil_div(static_cast<long long>(n) * 32, 256), 256, 0,
                                cuda::stream()>>>(out, w, m.ids, n, C);
    LAB_CHECK(cudaGetLastError());
  } else {
    cuda::gather_rows(m.out, m.w, m.ids, n, C, version == 4 ? 2 : 4);
  }
}

// Version 1 adds into dweight (which must be zero first); 2-4 write the rows of the ids present.
void backward(int version, const Bufs& m, int n, int C) {
  float* dw = static_cast<float*>(m.dw);
  const float* g = static_cast<const float*>(m.g);
  if (version == 1) {
    const long long total = static_cast<long long>(n) * C;
    embedding_backward_kernel1<<<lab::ceil_div(total, 256), 256, 0, cuda::stream()>>>(dw, g, m.ids,
                                                                                      total, C);
    LAB_CHECK(cudaGetLastError());
  } else if (version == 2) {
    dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(lab::ceil_div(C, kThreads2)));
    embedding_backward_kernel2<<<grid, kThreads2, 0, cuda::stream()>>>(dw, g, m.ids, n, C);
    LAB_CHECK(cudaGetLastError());
  } else {
    cuda::embedding_backward(lab_dtype(version), m.dw, m.g, m.seg_ids, m.offsets, m.positions,
                             m.n_segments, C);
  }
}

int64_t* ids_to_device(const std::vector<int64_t>& v) {
  int64_t* d = nullptr;
  LAB_CHECK(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(int64_t)));
  lab::upload(d, v.data(), v.size() * sizeof(int64_t));
  return d;
}

template <typename T>
Bufs make_bufs_t(const std::vector<float>& w, const std::vector<int64_t>& ids,
                 const std::vector<float>& g, int V) {
  Bufs m;
  m.w = lab::to_device<T>(w);
  m.g = lab::to_device<T>(g);
  m.out = lab::device_alloc<T>(g.size());
  m.dw = lab::device_alloc<T>(w.size());
  m.ids = ids_to_device(ids);
  const Segments s = group_by_id(ids, V);
  m.seg_ids = ids_to_device(s.ids);
  m.offsets = ids_to_device(s.offsets);
  m.positions = ids_to_device(s.positions);
  m.n_segments = static_cast<int64_t>(s.ids.size());
  return m;
}
Bufs make_bufs(int version, const std::vector<float>& w, const std::vector<int64_t>& ids,
               const std::vector<float>& g, int V) {
  return version == 4 ? make_bufs_t<__nv_bfloat16>(w, ids, g, V) : make_bufs_t<float>(w, ids, g, V);
}
void free_bufs(Bufs& m) {
  for (void* p : {m.w, m.g, m.out, m.dw, static_cast<void*>(m.ids), static_cast<void*>(m.seg_ids),
                  static_cast<void*>(m.offsets), static_cast<void*>(m.positions)})
    LAB_CHECK(cudaFree(p));
}
std::vector<float> host_of(int version, const void* d, size_t n) {
  return version == 4 ? lab::to_host(static_cast<const __nv_bfloat16*>(d), n)
                      : lab::to_host(static_cast<const float*>(d), n);
}
std::vector<float> rounded(int version, std::vector<float> v) {
  if (version == 4)
    for (auto& x : v) x = __bfloat162float(__float2bfloat16_rn(x));
  return v;
}
void zero_dweight(int version, const Bufs& m, size_t elems) {
  LAB_CHECK(cudaMemsetAsync(m.dw, 0, elems * (version == 4 ? 2 : 4), cuda::stream()));
}

const char* ids_name(Ids k) {
  return k == Ids::random       ? "random"
         : k == Ids::heavy      ? "heavy"
         : k == Ids::positional ? "pos"
                                : "text";
}

bool check(int version, int V, int C, int n, Ids kind, uint64_t seed) {
  auto w = rounded(version, lab::random_floats(static_cast<size_t>(V) * C, 1.f, seed));
  auto g = rounded(version, lab::random_floats(static_cast<size_t>(n) * C, 1.f, seed + 1));
  const auto ids = make_ids(kind, n, V, seed + 2);
  std::vector<double> ref_out, ref_dw;
  embedding_cpu(ref_out, ref_dw, w, ids, g, V, C);
  Bufs m = make_bufs(version, w, ids, g, V);
  forward(version, m, n, C);
  zero_dweight(version, m, w.size());
  backward(version, m, n, C);
  char what[96];
  std::snprintf(what, sizeof what, "v%d V=%d C=%d n=%d %s out", version, V, C, n, ids_name(kind));
  bool ok = lab::validate(what, host_of(version, m.out, ref_out.size()), ref_out, 0.0);  // a copy
  std::snprintf(what, sizeof what, "v%d V=%d C=%d n=%d %s dweight", version, V, C, n,
                ids_name(kind));
  ok &= lab::validate(what, host_of(version, m.dw, ref_dw.size()), ref_dw,
                      version == 4 ? 1e-2 : 1e-5);
  free_bufs(m);
  return ok;
}

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  std::printf("correctness vs CPU f64 (forward exact)\n");
  struct Case {
    int V, C, n;
    Ids kind;
  };
  const Case cases[] = {{1, 1, 1, Ids::random},         {50, 33, 300, Ids::random},
                        {1000, 512, 1232, Ids::random}, {1000, 512, 600, Ids::heavy},
                        {1000, 70, 601, Ids::heavy},    {77, 512, 16 * 77, Ids::positional},
                        {49408, 64, 16 * 77, Ids::text}};
  uint64_t seed = 1;
  for (int version = 1; version <= 4; ++version) {
    if (only && version != only) continue;
    for (const Case& c : cases) ok &= check(version, c.V, c.C, c.n, c.kind, seed += 3);
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;

  std::printf("device copy bandwidth: %.0f GB/s (read + write)\n", lab::copy_bandwidth_gbs());
  struct Shape {
    const char* name;
    int V, C, n;
    Ids kind;
  };
  const Shape shapes[] = {{"text 16x77 (padded)", 49408, 512, 16 * 77, Ids::text},
                          {"text 16x77 (random ids)", 49408, 512, 16 * 77, Ids::random},
                          {"TGP-T 768 ids", 49408, 512, 768, Ids::random},
                          {"positional 16x77", 77, 512, 16 * 77, Ids::positional}};
  std::printf("\n%-24s %5s %5s %5s %2s | %8s %7s %5s | %8s %7s %5s | %7s\n", "shape", "n", "uniq",
              "C", "v", "fwd us", "GB/s", "%cp", "bwd us", "GB/s", "%cp", "zero us");
  for (const Shape& s : shapes) {
    auto w = lab::random_floats(static_cast<size_t>(s.V) * s.C, 1.f, 7);
    auto g = lab::random_floats(static_cast<size_t>(s.n) * s.C, 1.f, 8);
    const auto ids = make_ids(s.kind, s.n, s.V, 9);
    const double uniq = static_cast<double>(group_by_id(ids, s.V).ids.size());
    for (int version = 1; version <= 4; ++version) {
      if (only && version != only) continue;
      Bufs m = make_bufs(version, w, ids, g, s.V);
      const double elem = version == 4 ? 2.0 : 4.0;
      const float tf = lab::benchmark_ms(20, [&] { forward(version, m, s.n, s.C); });
      zero_dweight(version, m, w.size());
      const float tb = lab::benchmark_ms(20, [&] { backward(version, m, s.n, s.C); });
      const float tz = lab::benchmark_ms(20, [&] { zero_dweight(version, m, w.size()); });
      const double bf = 2.0 * s.n * s.C * elem, bb = (s.n + uniq) * s.C * elem;
      std::printf("%-24s %5d %5.0f %5d %2d | %8.1f %7.0f %5.1f | %8.1f %7.0f %5.1f | %7.1f\n",
                  s.name, s.n, uniq, s.C, version, tf * 1e3, lab::gbs_of(bf, tf),
                  lab::pct_of_copy(bf, tf), tb * 1e3, lab::gbs_of(bb, tb), lab::pct_of_copy(bb, tb),
                  tz * 1e3);
      free_bufs(m);
    }
  }
  return ok ? 0 : 1;
}
