/*
 * lab_bias_activation.cu — kernel lab for the MLP's bias + activation out = act(x + bias) on rows
 * x [N, C], bias [C] (forward; backward dx and dbias), for exact GELU and QuickGELU, in the style
 * of llm.c's dev/cuda: CPU reference, numbered versions, validation, L2-flushed timings in GB/s
 * and % of the measured device copy bandwidth.
 *
 * Build: with the project (cmake -DTGPT_CUDA=ON; target lab_bias_activation), or standalone
 * from the repository root (the engine's backward takes scratch from its caching allocator,
 * hence the backend sources):
 *   nvcc -O3 -std=c++17 -arch=sm_90 --expt-relaxed-constexpr -I. bench/lab_bias_activation.cu \
 *        kernels/cuda/bias_activation.cu base/cuda/cuda_backend.cu base/device.cpp \
 *        base/dtype.cpp -o lab_bias_activation
 * Run: ./lab_bias_activation [--check-only] [version]
 *
 * Versions:
 *   1. unfused, f32: a bias-add kernel writes x + bias to a temporary, an activation kernel reads
 *      it; backward an activation-backward kernel writes dx and one thread per column sums dbias.
 *   2. engine fused kernel, f32 (kernels/cuda/bias_activation.cu): one elementwise pass forward;
 *      backward a (32-column, row-chunk) grid writing dx and per-chunk dbias partials, then a
 *      fixed-order sum over chunks.
 *   3. the same engine kernel with bf16 storage (f32 math).
 * Bytes counted are the fused minimum: forward reads x, writes out; backward reads dout and x,
 * writes dx (bias and dbias are negligible), so % of copy bandwidth is comparable across versions.
 */
#include "bench/lab_common.cuh"
#include "kernels/cpu/blas_setup.h"
#include "kernels/cuda/bias_activation.h"

using namespace tgpt;

// ----------------------------------------------------------------------------------------------
// CPU reference (double)

double act_cpu(Activation op, double v) {
  if (op == Activation::gelu) return v * 0.5 * (1.0 + std::erf(v / std::sqrt(2.0)));
  if (op == Activation::relu) return v > 0 ? v : 0.0;
  return v / (1.0 + std::exp(-1.702 * v));
}
double act_grad_cpu(Activation op, double v) {
  if (op == Activation::gelu)
    return 0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) +
           v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI);
  if (op == Activation::relu) return v > 0 ? 1.0 : 0.0;
  const double s = 1.0 / (1.0 + std::exp(-1.702 * v));
  return s + 1.702 * v * s * (1.0 - s);
}

void bias_activation_cpu(std::vector<double>& out, std::vector<double>& dx,
                         std::vector<double>& dbias, const std::vector<float>& x,
                         const std::vector<float>& bias, const std::vector<float>& dout, int N,
                         int C, Activation op) {
  out.assign(static_cast<size_t>(N) * C, 0.0);
  dx.assign(out.size(), 0.0);
  dbias.assign(C, 0.0);
  for (int r = 0; r < N; ++r)
    for (int c = 0; c < C; ++c) {
      const size_t i = static_cast<size_t>(r) * C + c;
      const double v = static_cast<double>(x[i]) + bias[c];
      out[i] = act_cpu(op, v);
      dx[i] = dout[i] * act_grad_cpu(op, v);
      dbias[c] += dx[i];
    }
}

// ----------------------------------------------------------------------------------------------
// GPU kernels: version 1 (unfused, f32)

__device__ float act1(Activation op, float v) {
  if (op == Activation::gelu) return v * 0.5f * (1.f + erff(v * 0.70710678118654752440f));
  if (op == Activation::relu) return v > 0.f ? v : 0.f;
  return v / (1.f + expf(-1.702f * v));
}
__device__ float act_grad1(Activation op, float v) {
  if (op == Activation::gelu)
    return 0.5f * (1.f + erff(v * 0.70710678118654752440f)) +
           v * 0.39894228040143267794f * expf(-0.5f * v * v);
  if (op == Activation::relu) return v > 0.f ? 1.f : 0.f;
  const float s = 1.f / (1.f + expf(-1.702f * v));
  return s + 1.702f * v * s * (1.f - s);
}

__global__ void bias_add_kernel1(float* out, const float* x, const float* bias, long long n,
                                 int C) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = x[i] + bias[i % C];
}
__global__ void activation_kernel1(float* out, const float* x, long long n, Activation op) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = act1(op, x[i]);
}
// dx = dout * act'(pre) where pre = x + bias is the saved temporary of the forward.
__global__ void activation_backward_kernel1(float* dx, const float* dout, const float* pre,
                                            long long n, Activation op) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dx[i] = dout[i] * act_grad1(op, pre[i]);
}
__global__ void column_sum_kernel1(float* dbias, const float* dx, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = 0.f;
  for (int r = 0; r < N; ++r) s += dx[static_cast<long long>(r) * C + c];
  dbias[c] = s;
}

// ----------------------------------------------------------------------------------------------
// launchers

struct Bufs {
  void *x, *bias, *dout, *out, *dx, *dbias;
  float* pre;  // version 1's temporary x + bias
};

void forward(int version, const Bufs& m, int N, int C, Activation op) {
  if (version == 1) {
    const long long n = static_cast<long long>(N) * C;
    cudaStream_t s = cuda::stream();
    bias_add_kernel1<<<lab::ceil_div(n, 256), 256, 0, s>>>(m.pre, static_cast<const float*>(m.x),
                                                           static_cast<const float*>(m.bias), n, C);
    activation_kernel1<<<lab::ceil_div(n, 256), 256, 0, s>>>(static_cast<float*>(m.out), m.pre, n,
                                                             op);
    LAB_CHECK(cudaGetLastError());
  } else {
    cuda::bias_activation_forward(version == 2 ? DType::f32 : DType::bf16, op, m.out, m.x, m.bias,
                                  N, C);
  }
}

void backward(int version, const Bufs& m, int N, int C, Activation op) {
  if (version == 1) {
    const long long n = static_cast<long long>(N) * C;
    cudaStream_t s = cuda::stream();
    activation_backward_kernel1<<<lab::ceil_div(n, 256), 256, 0, s>>>(
        static_cast<float*>(m.dx), static_cast<const float*>(m.dout), m.pre, n, op);
    column_sum_kernel1<<<lab::ceil_div(C, 128), 128, 0, s>>>(static_cast<float*>(m.dbias),
                                                             static_cast<const float*>(m.dx), N, C);
    LAB_CHECK(cudaGetLastError());
  } else {
    cuda::bias_activation_backward(version == 2 ? DType::f32 : DType::bf16, op, m.dx, m.dbias,
                                   m.dout, m.x, m.bias, N, C);
  }
}

template <typename T>
Bufs make_bufs_t(const std::vector<float>& x, const std::vector<float>& bias,
                 const std::vector<float>& dout, bool with_pre) {
  Bufs m;
  m.x = lab::to_device<T>(x);
  m.bias = lab::to_device<T>(bias);
  m.dout = lab::to_device<T>(dout);
  m.out = lab::device_alloc<T>(x.size());
  m.dx = lab::device_alloc<T>(x.size());
  m.dbias = lab::device_alloc<T>(bias.size());
  m.pre = with_pre ? lab::device_alloc<float>(x.size()) : nullptr;
  return m;
}
Bufs make_bufs(int version, const std::vector<float>& x, const std::vector<float>& bias,
               const std::vector<float>& dout) {
  return version == 3 ? make_bufs_t<__nv_bfloat16>(x, bias, dout, false)
                      : make_bufs_t<float>(x, bias, dout, version == 1);
}
void free_bufs(Bufs& m) {
  for (void* p : {m.x, m.bias, m.dout, m.out, m.dx, m.dbias, static_cast<void*>(m.pre)})
    if (p) LAB_CHECK(cudaFree(p));
}
std::vector<float> host_of(int version, const void* d, size_t n) {
  return version == 3 ? lab::to_host(static_cast<const __nv_bfloat16*>(d), n)
                      : lab::to_host(static_cast<const float*>(d), n);
}
std::vector<float> rounded(int version, std::vector<float> v) {
  if (version == 3)
    for (auto& x : v) x = __bfloat162float(__float2bfloat16_rn(x));
  return v;
}

const char* act_name(Activation op) {
  return op == Activation::gelu ? "gelu" : op == Activation::relu ? "relu" : "quick_gelu";
}

bool check(int version, int N, int C, Activation op, uint64_t seed) {
  auto x = rounded(version, lab::random_floats(static_cast<size_t>(N) * C, 2.f, seed));
  auto bias = rounded(version, lab::random_floats(C, 1.f, seed + 1));
  auto dout = rounded(version, lab::random_floats(static_cast<size_t>(N) * C, 1.f, seed + 2));
  std::vector<double> ref_out, ref_dx, ref_db;
  bias_activation_cpu(ref_out, ref_dx, ref_db, x, bias, dout, N, C, op);
  Bufs m = make_bufs(version, x, bias, dout);
  forward(version, m, N, C, op);
  backward(version, m, N, C, op);
  const double tol = version == 3 ? 3e-2 : 2e-5;
  char what[96];
  std::snprintf(what, sizeof what, "v%d %s N=%d C=%d out", version, act_name(op), N, C);
  bool ok = lab::validate(what, host_of(version, m.out, ref_out.size()), ref_out, tol);
  std::snprintf(what, sizeof what, "v%d %s N=%d C=%d dx", version, act_name(op), N, C);
  ok &= lab::validate(what, host_of(version, m.dx, ref_dx.size()), ref_dx, tol);
  std::snprintf(what, sizeof what, "v%d %s N=%d C=%d dbias", version, act_name(op), N, C);
  ok &= lab::validate(what, host_of(version, m.dbias, ref_db.size()), ref_db, tol);
  free_bufs(m);
  return ok;
}

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // CPU references at the CPU's speed
  const auto [check_only, only] = lab::start(argc, argv);
  bool ok = true;
  std::printf("correctness vs CPU f64\n");
  uint64_t seed = 1;
  for (int version = 1; version <= 3; ++version) {
    if (only && version != only) continue;
    for (Activation op : {Activation::gelu, Activation::quick_gelu, Activation::relu})
      for (auto [N, C] : {std::pair{1, 1}, {77, 33}, {1000, 768}, {3000, 5}})
        ok &= check(version, N, C, op, seed += 3);
  }
  std::printf("correctness: %s\n", ok ? "all OK" : "FAILURES");
  if (check_only) return ok ? 0 : 1;

  std::printf("device copy bandwidth: %.0f GB/s (read + write)\n", lab::copy_bandwidth_gbs());
  struct Shape {
    const char* name;
    int N, C;
    Activation op;
  };
  const Shape shapes[] = {{"text MLP (16x77)", 16 * 77, 2048, Activation::quick_gelu},
                          {"ViT-B/16 MLP (64x197)", 64 * 197, 3072, Activation::quick_gelu},
                          {"ViT-L/14 MLP (32x257)", 32 * 257, 4096, Activation::quick_gelu},
                          {"exact GELU (64x197)", 64 * 197, 3072, Activation::gelu}};
  std::printf("\n%-22s %6s %5s %2s | %8s %7s %5s | %8s %7s %5s\n", "shape", "N", "C", "v", "fwd us",
              "GB/s", "%cp", "bwd us", "GB/s", "%cp");
  for (const Shape& s : shapes) {
    auto x = lab::random_floats(static_cast<size_t>(s.N) * s.C, 2.f, 7);
    auto bias = lab::random_floats(s.C, 1.f, 8);
    auto dout = lab::random_floats(static_cast<size_t>(s.N) * s.C, 1.f, 9);
    for (int version = 1; version <= 3; ++version) {
      if (only && version != only) continue;
      Bufs m = make_bufs(version, x, bias, dout);
      const double elem = version == 3 ? 2.0 : 4.0, n = static_cast<double>(s.N) * s.C;
      forward(version, m, s.N, s.C, s.op);  // version 1's backward reads the forward temporary
      const float tf = lab::benchmark_ms(20, [&] { forward(version, m, s.N, s.C, s.op); });
      const float tb = lab::benchmark_ms(20, [&] { backward(version, m, s.N, s.C, s.op); });
      std::printf("%-22s %6d %5d %2d | %8.1f %7.0f %5.1f | %8.1f %7.0f %5.1f\n", s.name, s.N, s.C,
                  version, tf * 1e3, lab::gbs_of(2 * n * elem, tf),
                  lab::pct_of_copy(2 * n * elem, tf), tb * 1e3, lab::gbs_of(3 * n * elem, tb),
                  lab::pct_of_copy(3 * n * elem, tb));
      free_bufs(m);
    }
  }
  return ok ? 0 : 1;
}
