/*
 * lab_elementwise.cu — kernel lab for the broadcast binary op and the row reductions of
 * kernels/cuda/elementwise.cu on x [N, C]: add with a [C] row broadcast (a bias add), the plain
 * same-shape add (a residual add), the sum over the last dim (out [N]) and the sum over the first
 * dim (out [C], the column sum of a bias gradient), in the style of llm.c's dev/cuda: CPU
 * reference, numbered versions, validation, L2-flushed timings at CLIP shapes in GB/s and % of
 * the measured device copy bandwidth.
 *
 * Build: with the project (cmake -DTGPT_CUDA=ON; target lab_elementwise), or standalone from the
 * repository root (row_sum takes scratch from the engine's caching allocator, hence the backend
 * sources; the column sum goes through the strided copy of tensor_kernels.cu, as the op does):
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. bench/lab_elementwise.cu \
 *        kernels/cuda/elementwise.cu kernels/cuda/tensor_kernels.cu base/cuda/cuda_backend.cu \
 *        base/device.cpp base/dtype.cpp -o lab_elementwise
 * Run: ./lab_elementwise [--check-only] [version]
 *
 * Versions:
 *   1. naive, f32: one thread per element for the adds (b[i % C] for the broadcast); one thread
 *      per row for the row sum, one thread per column (a walk down all rows) for the column sum.
 *   2. vectorised, f32: the adds with 16-byte float4 loads and stores in a grid-stride loop (the
 *      broadcast needs C % 4 == 0, the plain add N*C % 4 == 0, else version 1's kernel); the row
 *      sum one warp per row with float4 loads (suits many short rows; few very long rows leave the
 *      GPU idle); the column sum without a transpose: (32-column, row-chunk) blocks write
 *      per-chunk column partials (8 row-threads, added in order), a second kernel adds the chunks
 *      in chunk order (deterministic, as layernorm's dweight). Candidates to measure against 3.
 *   3. engine kernels, f32 (kernels/cuda/elementwise.cu): binary_broadcast (one thread per
 *      element; a broadcast operand takes the strided path, which splits every index into
 *      coordinates with 64-bit div/mod; a same-shape add takes the plain path), row_sum (a
 *      256-thread block per row, long rows split into chunks), and the column sum as the sum op
 *      does it: permute + contiguous (strided_copy of the transpose into a [C, N] temporary,
 *      kernels/cuda/tensor_kernels.cu), then row_sum over the rows of the transpose.
 *   4. engine kernels, bf16 storage (f32 arithmetic).
 * Bytes counted (the minimum): broadcast add reads x, writes out ([C] negligible); plain add reads
 * a and b, writes out; both sums read x once (the outputs are negligible; version 3-4's column sum
 * also writes and reads the transpose, which shows as a lower % of copy).
 */
#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/tensor_kernels.h"

using namespace tgpt;

enum class Op { add_bcast, add_plain, row_sum, col_sum };

const char* op_name(Op op) {
  return op == Op::add_bcast   ? "add [N,C]+[C]"
         : op == Op::add_plain ? "add [N,C]+[N,C]"
         : op == Op::row_sum   ? "sum dim -1"
                               : "sum dim 0";
}

// ----------------------------------------------------------------------------------------------
// CPU reference (double). b is [C] for the broadcast add, [N, C] for the plain add.

std::vector<double> reference(Op op, const std::vector<float>& a, const std::vector<float>& b,
                              int N, int C) {
  std::vector<double> out;
  if (op == Op::add_bcast || op == Op::add_plain) {
    out.resize(static_cast<size_t>(N) * C);
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = static_cast<double>(a[i]) + (op == Op::add_bcast ? b[i % C] : b[i]);
  } else if (op == Op::row_sum) {
    out.assign(N, 0.0);
    for (int r = 0; r < N; ++r)
      for (int c = 0; c < C; ++c) out[r] += a[static_cast<size_t>(r) * C + c];
  } else {
    out.assign(C, 0.0);
    for (int r = 0; r < N; ++r)
      for (int c = 0; c < C; ++c) out[c] += a[static_cast<size_t>(r) * C + c];
  }
  return out;
}

// ----------------------------------------------------------------------------------------------
// GPU kernels: version 1 (naive) and version 2 (vectorised, transpose-free column sum), f32

__global__ void add_kernel1(float* out, const float* a, const float* b, long long n, int C,
                            bool bcast) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[bcast ? i % C : i];
}

__global__ void row_sum_kernel1(float* out, const float* x, int N, int C) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= N) return;
  float s = 0.f;
  for (int c = 0; c < C; ++c) s += x[static_cast<long long>(r) * C + c];
  out[r] = s;
}

__global__ void col_sum_kernel1(float* out, const float* x, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = 0.f;
  for (int r = 0; r < N; ++r) s += x[static_cast<long long>(r) * C + c];
  out[c] = s;
}

__device__ __forceinline__ float4 add4(float4 x, float4 y) {
  return make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
}

// n4 = N * C / 4 float4s; with bcast, b is [C] and C4 = C / 4.
__global__ void add_kernel2(float4* out, const float4* a, const float4* b, long long n4, int C4,
                            bool bcast) {
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n4;
       i += static_cast<long long>(gridDim.x) * blockDim.x)
    out[i] = add4(a[i], b[bcast ? i % C4 : i]);
}

__device__ __forceinline__ float warp_sum_lab(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void row_sum_kernel2(float* out, const float* x, int N, int C) {
  const long long r = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= N) return;  // the whole warp leaves together
  const float* xr = x + r * C;
  float s = 0.f;
  if (C % 4 == 0) {  // 16-byte aligned rows
    const float4* x4 = reinterpret_cast<const float4*>(xr);
    for (int c = lane; c < C / 4; c += 32) {
      const float4 v = x4[c];
      s += (v.x + v.y) + (v.z + v.w);
    }
  } else {
    for (int c = lane; c < C; c += 32) s += xr[c];
  }
  s = warp_sum_lab(s);
  if (lane == 0) out[r] = s;
}

constexpr int kColTile = 32, kColRows = 8;

// Block (column tile, chunk) of 32 x 8 threads: thread (x, y) sums column c over rows r0 + y,
// r0 + y + 8, ... of the chunk; the 8 partials are added in y order into partial[chunk, c].
__global__ void col_sum_partial_kernel2(float* partial, const float* x, int N, int C,
                                        int rows_per_chunk) {
  __shared__ float part[kColRows][kColTile];
  const int c = blockIdx.x * kColTile + threadIdx.x;
  const int r0 = blockIdx.y * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
  float s = 0.f;
  if (c < C)
    for (int r = r0 + threadIdx.y; r < r1; r += kColRows) s += x[static_cast<long long>(r) * C + c];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = part[0][threadIdx.x];
    for (int k = 1; k < kColRows; ++k) t += part[k][threadIdx.x];
    partial[static_cast<long long>(blockIdx.y) * C + c] = t;
  }
}

__global__ void col_sum_final_kernel2(float* out, const float* partial, int chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = 0.f;
  for (int k = 0; k < chunks; ++k) s += partial[static_cast<long long>(k) * C + c];
  out[c] = s;
}

// Version 2's column-sum split: chunks of at least 256 rows, at most ~128 chunks.
int rows_per_chunk2(int N) {
  return std::max(256, (N + 127) / 128);
}
int chunks2(int N) {
  return std::max(1, lab::ceil_div(N, rows_per_chunk2(N)));
}

// ----------------------------------------------------------------------------------------------
// launchers

struct Bufs {
  void *a, *b, *out;
  void* tmp;       // versions 3-4 column sum: the [C, N] transpose
  float* partial;  // version 2 column sum: [chunks, C]
};

bool is_bf16(int version) {
  return version == 4;
}

void run(Op op, int version, const Bufs& m, int N, int C) {
  const long long n = static_cast<long long>(N) * C;
  cudaStream_t s = cuda::stream();
  const float* a = static_cast<const float*>(m.a);
  const float* b = static_cast<const float*>(m.b);
  float* out = static_cast<float*>(m.out);
  const bool bcast = op == Op::add_bcast;
  if (version <= 2 && (op == Op::add_bcast || op == Op::add_plain)) {
    if (version == 2 && (bcast ? C % 4 == 0 : n % 4 == 0)) {
      const long long n4 = n / 4;
      const int blocks = std::min(lab::ceil_div(n4, 256), 1 << 20);  // grid-stride beyond
      add_kernel2<<<blocks, 256, 0, s>>>(reinterpret_cast<float4*>(out),
                                         reinterpret_cast<const float4*>(a),
                                         reinterpret_cast<const float4*>(b), n4, C / 4, bcast);
    } else {
      add_kernel1<<<lab::ceil_div(n, 256), 256, 0, s>>>(out, a, b, n, C, bcast);
    }
  } else if (version == 1) {
    if (op == Op::row_sum)
      row_sum_kernel1<<<lab::ceil_div(N, 128), 128, 0, s>>>(out, a, N, C);
    else
      col_sum_kernel1<<<lab::ceil_div(C, 128), 128, 0, s>>>(out, a, N, C);
  } else if (version == 2) {
    if (op == Op::row_sum) {
      row_sum_kernel2<<<lab::ceil_div(static_cast<long long>(N) * 32, 256), 256, 0, s>>>(out, a, N,
                                                                                         C);
    } else {
      const dim3 grid(lab::ceil_div(C, kColTile), chunks2(N));
      col_sum_partial_kernel2<<<grid, dim3(kColTile, kColRows), 0, s>>>(m.partial, a, N, C,
                                                                        rows_per_chunk2(N));
      col_sum_final_kernel2<<<lab::ceil_div(C, 256), 256, 0, s>>>(out, m.partial, chunks2(N), C);
    }
  } else {
    const DType dt = is_bf16(version) ? DType::bf16 : DType::f32;
    if (op == Op::add_bcast || op == Op::add_plain) {
      const int64_t shape[2] = {N, C}, sa[2] = {C, 1}, sb_bcast[2] = {0, 1};
      cuda::binary_broadcast(dt, cuda::BinaryOp::add, m.out, m.a, m.b, shape, sa,
                             bcast ? sb_bcast : sa, 2);
    } else if (op == Op::row_sum) {
      cuda::row_sum(dt, m.out, m.a, N, C, 1.0);
    } else {  // sum(x, {0}): x.permute({1, 0}).contiguous(), then a row sum of each column
      const int64_t shape[2] = {C, N}, dst_strides[2] = {N, 1}, src_strides[2] = {1, C};
      cuda::strided_copy(m.tmp, dst_strides, m.a, src_strides, shape, 2, is_bf16(version) ? 2 : 4);
      cuda::row_sum(dt, m.out, m.tmp, C, N, 1.0);
    }
  }
  LAB_CHECK(cudaGetLastError());
}

size_t out_size(Op op, int N, int C) {
  return op == Op::row_sum ? N : op == Op::col_sum ? C : static_cast<size_t>(N) * C;
}

template <typename T>
Bufs make_bufs_t(Op op, int version, const std::vector<float>& a, const std::vector<float>& b,
                 int N, int C) {
  Bufs m;
  m.a = lab::to_device<T>(a);
  m.b = lab::to_device<T>(b);
  m.out = lab::device_alloc<T>(out_size(op, N, C));
  m.tmp = op == Op::col_sum && version >= 3 ? lab::device_alloc<T>(a.size()) : nullptr;
  m.partial = op == Op::col_sum && version == 2
                  ? lab::device_alloc<float>(static_cast<size_t>(chunks2(N)) * C)
                  : nullptr;
  return m;
}
Bufs make_bufs(Op op, int version, const std::vector<float>& a, const std::vector<float>& b, int N,
               int C) {
  return is_bf16(version) ? make_bufs_t<__nv_bfloat16>(op, version, a, b, N, C)
                          : make_bufs_t<float>(op, version, a, b, N, C);
}
void free_bufs(Bufs& m) {
  for (void* p : {m.a, m.b, m.out, m.tmp, static_cast<void*>(m.partial)})
    if (p) LAB_CHECK(cudaFree(p));
}
std::vector<float> host_of(int version, const void* d, size_t n) {
  return is_bf16(version) ? lab::to_host(static_cast<const __nv_bfloat16*>(d), n)
                          : lab::to_host(static_cast<const float*>(d), n);
}
std::vector<float> rounded(int version, std::vector<float> v) {
  if (is_bf16(version))
    for (auto& x : v) x = __bfloat162float(__float2bfloat16_rn(x));
  return v;
}

// The second operand: [C] for the broadcast add, [N, C] for the plain add, unused by the sums.
size_t b_size(Op op, int N, int C) {
  return op == Op::add_bcast ? C : op == Op::add_plain ? static_cast<size_t>(N) * C : 1;
}

bool check(Op op, int version, int N, int C, uint64_t seed) {
  auto a = rounded(version, lab::random_floats(static_cast<size_t>(N) * C, 1.f, seed));
  auto b = rounded(version, lab::random_floats(b_size(op, N, C), 1.f, seed + 1));
  const std::vector<double> ref = reference(op, a, b, N, C);
  Bufs m = make_bufs(op, version, a, b, N, C);
  run(op, version, m, N, C);
  const bool sum = op == Op::row_sum || op == Op::col_sum;
  const double tol = is_bf16(version) ? 1e-2 : sum ? 2e-5 : 1e-6;
  char what[96];
  std::snprintf(what, sizeof what, "v%d %s N=%d C=%d", version, op_name(op), N, C);
  const bool ok = lab::validate(what, host_of(version, m.out, ref.size()), ref, tol);
  free_bufs(m);
  return ok;
}

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  std::printf("correctness vs CPU f64\n");
  const Op ops[] = {Op::add_bcast, Op::add_plain, Op::row_sum, Op::col_sum};
  uint64_t seed = 1;
  for (int version = 1; version <= 4; ++version) {
    if (only && version != only) continue;
    for (Op op : ops)
      for (auto [N, C] : {std::pair{1, 1},
                          {3, 7},
                          {77, 512},
                          {1000, 33},
                          {5, 100000},
                          {20000, 3},
                          {197 * 4, 768}})
        ok &= check(op, version, N, C, seed += 2);
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;

  std::printf("device copy bandwidth: %.0f GB/s (read + write)\n", lab::copy_bandwidth_gbs());
  struct Shape {
    Op op;
    const char* name;
    int N, C;
  };
  const Shape shapes[] = {{Op::add_bcast, "text 16x77x512", 16 * 77, 512},
                          {Op::add_bcast, "ViT-B/16 64x197x768", 64 * 197, 768},
                          {Op::add_bcast, "ViT-B/16 MLP x3072", 64 * 197, 3072},
                          {Op::add_plain, "text 16x77x512", 16 * 77, 512},
                          {Op::add_plain, "ViT-B/16 64x197x768", 64 * 197, 768},
                          {Op::add_plain, "ViT-B/16 MLP x3072", 64 * 197, 3072},
                          {Op::row_sum, "ViT-B/16 64x197x768", 64 * 197, 768},
                          {Op::row_sum, "long rows 8x1M", 8, 1 << 20},
                          {Op::col_sum, "bias grad 1232x512", 16 * 77, 512},
                          {Op::col_sum, "bias grad 12608x768", 64 * 197, 768},
                          {Op::col_sum, "bias grad 12608x3072", 64 * 197, 3072}};
  std::printf("\n%-16s %-22s %6s %7s %2s | %8s %7s %5s\n", "op", "shape", "N", "C", "v", "us",
              "GB/s", "%cp");
  for (const Shape& s : shapes) {
    auto a = lab::random_floats(static_cast<size_t>(s.N) * s.C, 1.f, 7);
    auto b = lab::random_floats(b_size(s.op, s.N, s.C), 1.f, 8);
    const double n = static_cast<double>(s.N) * s.C;
    const double passes = s.op == Op::add_bcast ? 2 : s.op == Op::add_plain ? 3 : 1;
    for (int version = 1; version <= 4; ++version) {
      if (only && version != only) continue;
      Bufs m = make_bufs(s.op, version, a, b, s.N, s.C);
      const double bytes = passes * n * (is_bf16(version) ? 2.0 : 4.0);
      const int reps = version == 1 && (s.op == Op::row_sum || s.op == Op::col_sum) ? 5 : 20;
      const float t = lab::benchmark_ms(reps, [&] { run(s.op, version, m, s.N, s.C); });
      std::printf("%-16s %-22s %6d %7d %2d | %8.1f %7.0f %5.1f\n", op_name(s.op), s.name, s.N, s.C,
                  version, t * 1e3, lab::gbs_of(bytes, t), lab::pct_of_copy(bytes, t));
      free_bufs(m);
    }
  }
  return ok ? 0 : 1;
}
