/*
 * test_cuda_ops.cpp — every CUDA op against the CPU reference on fresh random inputs (never
 * zeros), forward and backward, in f32, bf16 and f16, at CLIP shapes and awkward ones (batch 1,
 * T = 1, 50, 77, 197, 257, 577, widths 1, 3, 769). Tolerance rule and output poisoning: see
 * cuda_test_util.h. Labelled `cuda`; every test skips when no CUDA device is present.
 *
 * Ops whose backward is a composition of other ops (div, exp, log, sqrt, pow, and broadcast
 * binary ops, whose gradient is reduced by sum) are checked backward in f32 only: in 16-bit
 * dtypes the composition rounds each intermediate, which the CPU's f32 low-precision reference
 * does not, so the 2x rule would measure the composition rather than a kernel. Their forward is
 * checked in every dtype, and the composed ops are each checked on their own.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "engine/optim.h"
#include "kernels/cuda/matmul.h"
#include "tests/cuda/cuda_test_util.h"

using namespace tgpt;
using namespace tgpt::cudatest;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, double std = 1.0) {
  Generator g(seed);
  return g.randn(s, DType::f32, std);
}
Tensor pos(const Shape& s, uint64_t seed) {  // values in [0.5, 2): safe for log, sqrt, div, pow
  Generator g(seed);
  return g.uniform(s, 0.5, 2.0, DType::f32);
}

}  // namespace

// ---- tensor basics on the device --------------------------------------------------------------

TEST(CudaTensor, StridedCopyFillConvert) {
  SKIP_WITHOUT_CUDA();
  PoisonGuard poison;
  Tensor h = rnd({3, 77, 5}, 1);
  Tensor d = h.to(Device::CUDA);
  // contiguous() of device views: transpose, permute, narrow.
  EXPECT_EQ(d.transpose(0, 2).contiguous().to_double_vector(),
            h.transpose(0, 2).contiguous().to_double_vector());
  EXPECT_EQ(d.permute({1, 2, 0}).contiguous().to_double_vector(),
            h.permute({1, 2, 0}).contiguous().to_double_vector());
  EXPECT_EQ(d.narrow(1, 3, 50).contiguous().to_double_vector(),
            h.narrow(1, 3, 50).contiguous().to_double_vector());
  EXPECT_EQ(d.transpose(0, 1).clone().to_double_vector(),
            h.transpose(0, 1).clone().to_double_vector());
  // copy_ into a strided device view, from CPU and from device sources.
  Tensor dst_d = Tensor::zeros({5, 77, 3}, DType::f32, Device::CUDA);
  Tensor dst_h = Tensor::zeros({5, 77, 3});
  dst_d.transpose(0, 2).copy_(h);
  dst_h.transpose(0, 2).copy_(h);
  EXPECT_EQ(dst_d.to_double_vector(), dst_h.to_double_vector());
  dst_d.narrow(1, 1, 2).copy_(d.narrow(1, 0, 2).transpose(0, 2));
  dst_h.narrow(1, 1, 2).copy_(h.narrow(1, 0, 2).transpose(0, 2));
  EXPECT_EQ(dst_d.to_double_vector(), dst_h.to_double_vector());
  // fill_ of a strided view, every dtype.
  for (DType dt :
       {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    Tensor a = Tensor::zeros({4, 6}, dt, Device::CUDA), b = Tensor::zeros({4, 6}, dt);
    a.narrow(1, 1, 3).fill_(3.25);
    b.narrow(1, 1, 3).fill_(3.25);
    EXPECT_EQ(a.to_double_vector(), b.to_double_vector()) << dtype_name(dt);
  }
  // dtype conversion on the device matches the CPU's for every pair.
  Tensor vals = Generator(5).uniform({1000}, -300, 300, DType::f64);
  for (DType s : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64}) {
    Tensor hs = vals.to(s);
    Tensor ds = hs.to(Device::CUDA);
    for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64}) {
      EXPECT_EQ(ds.to(t).to_double_vector(), hs.to(t).to_double_vector())
          << dtype_name(s) << " -> " << dtype_name(t);
    }
  }
  // Conversion of a strided device view.
  EXPECT_EQ(d.transpose(0, 1).to(DType::bf16).to_double_vector(),
            h.transpose(0, 1).to(DType::bf16).to_double_vector());
}

TEST(CudaTensor, CastBackwardOnDevice) {
  SKIP_WITHOUT_CUDA();
  Tensor x = rnd({7, 3}, 2).to(Device::CUDA).set_requires_grad(true);
  Tensor y = x.to(DType::bf16);
  EXPECT_EQ(y.device(), Device::CUDA);
  sum(y).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().dtype(), DType::f32);
  EXPECT_EQ(x.grad().to_double_vector(), std::vector<double>(21, 1.0));
}

// ---- elementwise --------------------------------------------------------------------------------

TEST(CudaOps, BinarySameShape) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    for (Shape s : {Shape{2, 77, 769}, Shape{1, 1, 3}, Shape{197}}) {
      std::vector<Tensor> in = {rnd(s, 10), pos(s, 11)};
      check_op([](const std::vector<Tensor>& v) { return add(v[0], v[1]); }, in, {true, true}, dt,
               true, "add " + s.str());
      check_op([](const std::vector<Tensor>& v) { return sub(v[0], v[1]); }, in, {true, true}, dt,
               true, "sub " + s.str());
      check_op([](const std::vector<Tensor>& v) { return mul(v[0], v[1]); }, in, {true, true}, dt,
               true, "mul " + s.str());
      check_op([](const std::vector<Tensor>& v) { return div(v[0], v[1]); }, in, {true, true}, dt,
               dt == DType::f32, "div " + s.str());
    }
  }
}

TEST(CudaOps, BinaryBroadcast) {
  SKIP_WITHOUT_CUDA();
  struct Pair {
    Shape a, b;
  };
  for (DType dt : all_float_dtypes()) {
    for (const Pair& p : {Pair{{2, 77, 769}, {769}}, Pair{{5, 1, 3}, {1, 4, 3}},
                          Pair{{197, 1}, {1, 50}}, Pair{{1}, {2, 3}}, Pair{{}, {3, 1}}}) {
      std::vector<Tensor> in = {rnd(p.a, 12), pos(p.b, 13)};
      const bool bw = dt == DType::f32;
      const std::string w = p.a.str() + " with " + p.b.str();
      check_op([](const std::vector<Tensor>& v) { return add(v[0], v[1]); }, in, {true, true}, dt,
               bw, "add " + w);
      check_op([](const std::vector<Tensor>& v) { return sub(v[0], v[1]); }, in, {true, true}, dt,
               bw, "sub " + w);
      check_op([](const std::vector<Tensor>& v) { return mul(v[0], v[1]); }, in, {true, true}, dt,
               bw, "mul " + w);
      check_op([](const std::vector<Tensor>& v) { return div(v[0], v[1]); }, in, {true, true}, dt,
               bw, "div " + w);
    }
  }
}

TEST(CudaOps, UnaryMaps) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    for (Shape s : {Shape{2, 50, 769}, Shape{1}, Shape{3, 257}}) {
      const bool bw = dt == DType::f32;
      std::vector<Tensor> r = {rnd(s, 20)}, p = {pos(s, 21)};
      check_op([](const std::vector<Tensor>& v) { return neg(v[0]); }, r, {true}, dt, true,
               "neg " + s.str());
      check_op([](const std::vector<Tensor>& v) { return add(v[0], 0.75); }, r, {true}, dt, true,
               "add scalar " + s.str());
      check_op([](const std::vector<Tensor>& v) { return mul(v[0], -1.5); }, r, {true}, dt, bw,
               "mul scalar " + s.str());
      check_op([](const std::vector<Tensor>& v) { return exp(v[0]); }, r, {true}, dt, bw,
               "exp " + s.str());
      check_op([](const std::vector<Tensor>& v) { return log(v[0]); }, p, {true}, dt, bw,
               "log " + s.str());
      check_op([](const std::vector<Tensor>& v) { return sqrt(v[0]); }, p, {true}, dt, bw,
               "sqrt " + s.str());
      check_op([](const std::vector<Tensor>& v) { return pow(v[0], 2.5); }, p, {true}, dt, bw,
               "pow " + s.str());
    }
  }
}

TEST(CudaOps, Activations) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    for (Shape s : {Shape{2, 77, 769}, Shape{1, 1, 3}, Shape{4, 197, 1}}) {
      std::vector<Tensor> in = {rnd(s, 30, 2.0)};
      check_op([](const std::vector<Tensor>& v) { return relu(v[0]); }, in, {true}, dt, true,
               "relu " + s.str());
      check_op([](const std::vector<Tensor>& v) { return gelu(v[0]); }, in, {true}, dt, true,
               "gelu " + s.str());
      check_op([](const std::vector<Tensor>& v) { return quick_gelu(v[0]); }, in, {true}, dt, true,
               "quick_gelu " + s.str());
    }
  }
}

// ---- reductions ---------------------------------------------------------------------------------

TEST(CudaOps, SumMean) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    // [3, 257, 769] summed whole uses the chunked two-pass path (few long rows).
    std::vector<Tensor> big = {rnd({3, 257, 769}, 40)};
    check_op([](const std::vector<Tensor>& v) { return sum(v[0]); }, big, {true}, dt, true,
             "sum all");
    check_op([](const std::vector<Tensor>& v) { return mean(v[0]); }, big, {true}, dt, true,
             "mean all");
    check_op(
        [](const std::vector<Tensor>& v) {
          return sum(v[0], {0, 2});
        },
        big, {true}, dt, true, "sum {0,2}");
    std::vector<Tensor> x = {rnd({2, 77, 769}, 41)};
    check_op([](const std::vector<Tensor>& v) { return sum(v[0], {-1}); }, x, {true}, dt, true,
             "sum last");
    check_op([](const std::vector<Tensor>& v) { return mean(v[0], {1}, true); }, x, {true}, dt,
             true, "mean {1} keepdim");
    check_op([](const std::vector<Tensor>& v) { return sum(v[0], {0}); }, {rnd({1, 3}, 42)}, {true},
             dt, true, "sum batch 1");
    check_op([](const std::vector<Tensor>& v) { return mean(v[0]); }, {rnd({1}, 43)}, {true}, dt,
             true, "mean of one");
  }
}

// ---- normalisation ------------------------------------------------------------------------------

TEST(CudaOps, LayerNorm) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    for (Shape s : {Shape{2, 77, 768}, Shape{1, 50, 3}, Shape{2, 197, 769}, Shape{1, 257, 1},
                    Shape{3, 1, 1024}}) {
      const int64_t C = s.back();
      std::vector<Tensor> in = {rnd(s, 50, 2.0), add(rnd({C}, 51, 0.3), 1.0), rnd({C}, 52, 0.3)};
      check_op([](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2], 1e-5); }, in,
               {true, true, true}, dt, true, "layer_norm " + s.str());
      check_op([](const std::vector<Tensor>& v) { return layer_norm(v[0], Tensor(), Tensor()); },
               {in[0]}, {true}, dt, true, "layer_norm no affine " + s.str());
    }
  }
}

TEST(CudaOps, AddLayerNormFused) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    for (Shape s : {Shape{2, 77, 768}, Shape{1, 1, 3}, Shape{2, 50, 769}}) {
      const int64_t C = s.back();
      std::vector<Tensor> in = {rnd(s, 53), rnd(s, 54), add(rnd({C}, 55, 0.3), 1.0),
                                rnd({C}, 56, 0.3)};
      // Both outputs used: the LayerNorm output and the updated residual stream.
      auto f = [](const std::vector<Tensor>& v) {
        Tensor s_out;
        Tensor y = add_layer_norm(v[0], v[1], v[2], v[3], 1e-5, &s_out);
        return concat({y, mul(s_out, 0.5)}, -1);
      };
      check_op(f, in, {true, true, true, true}, dt, true, "add_layer_norm " + s.str());
    }
  }
}

namespace {

// 1 / (the smallest L2 norm of a last-dim row of x rounded to dt).
double inverse_min_row_norm(const Tensor& x, DType dt) {
  const std::vector<double> v = x.to(dt).to_double_vector();
  const size_t C = static_cast<size_t>(x.size(-1));
  double min_norm = INFINITY;
  for (size_t r = 0; r + C <= v.size(); r += C) {
    double ss = 0;
    for (size_t c = 0; c < C; ++c) ss += v[r + c] * v[r + c];
    min_norm = std::min(min_norm, std::sqrt(ss));
  }
  return 1.0 / min_norm;
}

}  // namespace

TEST(CudaOps, SoftmaxL2) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    for (Shape s : {Shape{2, 77, 512}, Shape{3, 1}, Shape{5, 577}, Shape{2, 3, 769}}) {
      std::vector<Tensor> in = {rnd(s, 60, 3.0)};
      check_op([](const std::vector<Tensor>& v) { return softmax(v[0]); }, in, {true}, dt, true,
               "softmax " + s.str());
      check_op([](const std::vector<Tensor>& v) { return log_softmax(v[0]); }, in, {true}, dt, true,
               "log_softmax " + s.str());
      // l2_normalize's backward dx = (g - y (g . y)) / n, y = x / n, subtracts two terms of size
      // |g| / n; on a row of length 1 they cancel exactly (y = ±1) and every reference is 0. Each
      // term carries up to ~2 eps of rounding in a same-precision computation (y, then y times
      // g . y), so the gradient's tolerance gets the absolute floor
      //   4 * eps(dt) * max|g| / min n          (n: the row norms of the rounded input)
      // on top of cuda_test_util.h's rule (2x the low-precision error + 1e-5 max|ref| in 16 bits,
      // 1e-5 (|ref| + max|ref|) in f32).
      check_op([](const std::vector<Tensor>& v) { return l2_normalize(v[0]); }, in, {true}, dt,
               true, "l2_normalize " + s.str(), 4.0 * inverse_min_row_norm(in[0], dt));
    }
  }
}

// ---- GEMMs --------------------------------------------------------------------------------------

TEST(CudaOps, Linear) {
  SKIP_WITHOUT_CUDA();
  struct Case {
    Shape x;
    int64_t outf;
  };
  for (DType dt : all_float_dtypes()) {
    for (const Case& c :
         {Case{{2, 77, 768}, 769}, Case{{1, 1, 3}, 1}, Case{{4, 50, 3}, 5}, Case{{197, 64}, 96}}) {
      const int64_t in = c.x.back();
      std::vector<Tensor> v = {rnd(c.x, 70), rnd({c.outf, in}, 71, 0.05), rnd({c.outf}, 72)};
      const std::string w = c.x.str() + " -> " + std::to_string(c.outf);
      check_op([](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); }, v,
               {true, true, true}, dt, true, "linear " + w);
      check_op([](const std::vector<Tensor>& t) { return linear(t[0], t[1]); }, {v[0], v[1]},
               {true, true}, dt, true, "linear no bias " + w);
      // Frozen weight: only dx and db.
      check_op([](const std::vector<Tensor>& t) { return linear(t[0], t[1], t[2]); }, v,
               {true, false, true}, dt, true, "linear frozen weight " + w);
      // Weight given as a transposed view of an [in, out] matrix.
      std::vector<Tensor> vt = {v[0], v[1].transpose(0, 1).contiguous(), v[2]};
      check_op(
          [](const std::vector<Tensor>& t) { return linear(t[0], t[1].transpose(0, 1), t[2]); }, vt,
          {true, true, true}, dt, true, "linear transposed weight " + w);
    }
  }
}

TEST(CudaOps, LinearFrozenWeightHasNoGradient) {
  SKIP_WITHOUT_CUDA();
  Tensor x = rnd({3, 8}, 73).to(Device::CUDA).set_requires_grad(true);
  Tensor w = rnd({5, 8}, 74).to(Device::CUDA);
  sum(linear(x, w)).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
}

TEST(CudaOps, Matmul) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    check_op([](const std::vector<Tensor>& t) { return matmul(t[0], t[1]); },
             {rnd({2, 3, 77, 64}, 80), rnd({2, 3, 64, 77}, 81)}, {true, true}, dt, true,
             "matmul batched");
    check_op([](const std::vector<Tensor>& t) { return matmul(t[0], t[1]); },
             {rnd({5, 50, 769}, 82), rnd({769, 3}, 83, 0.05)}, {true, true}, dt, true,
             "matmul shared b");
    check_op([](const std::vector<Tensor>& t) { return matmul(t[0], t[1]); },
             {rnd({1, 1}, 84), rnd({1, 1}, 85)}, {true, true}, dt, true, "matmul 1x1");
    // Transposed views of both operands (a_t, b_t), batched and shared b.
    check_op(
        [](const std::vector<Tensor>& t) {
          return matmul(t[0].transpose(-2, -1), t[1].transpose(-2, -1));
        },
        {rnd({2, 64, 50}, 86), rnd({2, 33, 64}, 87)}, {true, true}, dt, true,
        "matmul transposed views");
    check_op([](const std::vector<Tensor>& t) { return matmul(t[0].transpose(-2, -1), t[1]); },
             {rnd({3, 17, 5}, 88), rnd({17, 9}, 89)}, {true, true}, dt, true,
             "matmul transposed a, shared b");
  }
}

TEST(CudaOps, MatmulTf32Flag) {
  SKIP_WITHOUT_CUDA();
  // With TF32 allowed an f32 product is still close (10-bit mantissa inputs), and the flag
  // restores exact-f32 products when cleared.
  Tensor a = rnd({64, 256}, 90), b = rnd({256, 48}, 91);
  Tensor ref = matmul(a.to(DType::f64), b.to(DType::f64));
  cuda::set_allow_tf32(true);
  Tensor t = matmul(a.to(Device::CUDA), b.to(Device::CUDA)).to(Device::CPU);
  cuda::set_allow_tf32(false);
  Tensor e = matmul(a.to(Device::CUDA), b.to(Device::CUDA)).to(Device::CPU);
  std::vector<double> vr = ref.to_double_vector(), vt = t.to_double_vector(),
                      ve = e.to_double_vector();
  double et = 0, ee = 0, max_ref = 0;
  for (size_t i = 0; i < vr.size(); ++i) {
    et = std::max(et, std::abs(vt[i] - vr[i]));
    ee = std::max(ee, std::abs(ve[i] - vr[i]));
    max_ref = std::max(max_ref, std::abs(vr[i]));
  }
  EXPECT_LT(et, 1e-2 * max_ref);  // TF32 inputs carry ~5e-4 relative rounding
  EXPECT_LT(ee, 1e-5 * max_ref);  // exact f32 products, f32 accumulation
}

TEST(CudaOps, Conv2dPatch) {
  SKIP_WITHOUT_CUDA();
  struct Case {
    Shape x;
    int64_t cout, p;
  };
  for (DType dt : all_float_dtypes()) {
    for (const Case& c :
         {Case{{2, 3, 64, 64}, 96, 16}, Case{{1, 3, 32, 32}, 5, 32}, Case{{2, 1, 6, 9}, 3, 3}}) {
      std::vector<Tensor> v = {rnd(c.x, 100), rnd({c.cout, c.x[1], c.p, c.p}, 101, 0.05),
                               rnd({c.cout}, 102)};
      const std::string w = c.x.str() + " P " + std::to_string(c.p);
      check_op([](const std::vector<Tensor>& t) { return conv2d_patch(t[0], t[1], t[2]); }, v,
               {true, true, true}, dt, true, "conv2d_patch " + w);
      check_op([](const std::vector<Tensor>& t) { return conv2d_patch(t[0], t[1]); }, {v[0], v[1]},
               {true, true}, dt, true, "conv2d_patch no bias " + w);
    }
  }
}

// ---- indexing -----------------------------------------------------------------------------------

TEST(CudaOps, Embedding) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    for (DType it : {DType::i64, DType::i32}) {
      // ids drawn from 50 of the 1000 rows: many repeats for the segmented backward.
      Tensor ids = Generator(110).randint({2, 77}, 0, 50, it);
      check_op([](const std::vector<Tensor>& t) { return embedding(t[0], t[1]); },
               {ids, rnd({1000, 769}, 111)}, {false, true}, dt, true, "embedding");
      Tensor one = Generator(112).randint({1}, 0, 3, it);
      check_op([](const std::vector<Tensor>& t) { return embedding(t[0], t[1]); },
               {one, rnd({3, 1}, 113)}, {false, true}, dt, true, "embedding single id");
    }
  }
}

TEST(CudaOps, EmbeddingRejectsBadIds) {
  SKIP_WITHOUT_CUDA();
  Tensor w = rnd({10, 4}, 114).to(Device::CUDA);
  Tensor ids = Tensor::from_vector({1, 10}, {2}, DType::i64).to(Device::CUDA);
  EXPECT_THROW(embedding(ids, w), Error);
}

TEST(CudaOps, GatherRowsConcat) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    Tensor idx = Tensor::from_vector({76, 0, 33}, {3}, DType::i64);
    check_op([](const std::vector<Tensor>& t) { return gather_rows(t[0], t[1]); },
             {rnd({3, 77, 769}, 120), idx}, {true, false}, dt, true, "gather_rows");
    check_op([](const std::vector<Tensor>& t) { return gather_rows(t[0], t[1]); },
             {rnd({1, 1, 3}, 121), Tensor::from_vector({0}, {1}, DType::i32)}, {true, false}, dt,
             true, "gather_rows T = 1");
    std::vector<Tensor> in = {rnd({2, 5, 769}, 122), rnd({2, 1, 769}, 123), rnd({2, 71, 769}, 124)};
    check_op([](const std::vector<Tensor>& t) { return concat(t, 1); }, in, {true, false, true}, dt,
             true, "concat dim 1");
    check_op([](const std::vector<Tensor>& t) { return concat(t, 0); },
             {rnd({1, 3}, 125), rnd({4, 3}, 126)}, {true, true}, dt, true, "concat dim 0");
    check_op([](const std::vector<Tensor>& t) { return concat(t, -1); },
             {rnd({2, 1}, 127), rnd({2, 768}, 128)}, {true, true}, dt, true, "concat last dim");
  }
}

// ---- losses -------------------------------------------------------------------------------------

TEST(CudaOps, CrossEntropy) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    Tensor tgt = Generator(130).randint({50}, 0, 1000, DType::i64);
    tgt.data<int64_t>()[3] = -100;  // one ignored row
    tgt.data<int64_t>()[17] = -100;
    for (double ls : {0.0, 0.1}) {
      check_op([ls](const std::vector<Tensor>& t) { return cross_entropy(t[0], t[1], ls); },
               {rnd({50, 1000}, 131, 2.0), tgt}, {true, false}, dt, true,
               "cross_entropy ls " + std::to_string(ls));
    }
    check_op([](const std::vector<Tensor>& t) { return cross_entropy(t[0], t[1]); },
             {rnd({1, 3}, 132), Tensor::from_vector({2}, {1}, DType::i32)}, {true, false}, dt, true,
             "cross_entropy one row");
  }
}

TEST(CudaOps, CrossEntropyAllIgnoredIsNaN) {
  SKIP_WITHOUT_CUDA();
  Tensor logits = rnd({4, 7}, 133).to(Device::CUDA).set_requires_grad(true);
  Tensor tgt = Tensor::full({4}, -100, DType::i64).to(Device::CUDA);
  Tensor loss = cross_entropy(logits, tgt);
  EXPECT_TRUE(std::isnan(loss.item()));
}

TEST(CudaOps, MseLoss) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : all_float_dtypes()) {
    for (Shape s : {Shape{2, 77, 769}, Shape{1}, Shape{3, 512}}) {
      check_op([](const std::vector<Tensor>& t) { return mse_loss(t[0], t[1]); },
               {rnd(s, 140), rnd(s, 141)}, {true, true}, dt, true, "mse_loss " + s.str());
    }
  }
}

// ---- determinism and allocation -----------------------------------------------------------------

TEST(CudaOps, BackwardIsBitwiseDeterministic) {
  SKIP_WITHOUT_CUDA();
  auto run = [] {
    Tensor x = rnd({4, 197, 769}, 150).to(Device::CUDA).set_requires_grad(true);
    Tensor w = add(rnd({769}, 151, 0.3), 1.0).to(Device::CUDA).set_requires_grad(true);
    Tensor b = rnd({769}, 152).to(Device::CUDA).set_requires_grad(true);
    Tensor lw = rnd({64, 769}, 153, 0.05).to(Device::CUDA).set_requires_grad(true);
    Tensor y = linear(layer_norm(x, w, b), lw);
    Tensor loss = add(sum(mul(y, y)), mean(x));
    loss.backward();
    return std::vector<std::vector<double>>{
        loss.to_double_vector(), x.grad().to_double_vector(), w.grad().to_double_vector(),
        b.grad().to_double_vector(), lw.grad().to_double_vector()};
  };
  EXPECT_EQ(run(), run());
}

TEST(CudaOps, SteadyTrainingStepAllocatesNothingNew) {
  SKIP_WITHOUT_CUDA();
  Tensor w1 = rnd({96, 64}, 160, 0.1).to(Device::CUDA).set_requires_grad(true);
  Tensor lnw = add(rnd({96}, 161, 0.1), 1.0).to(Device::CUDA).set_requires_grad(true);
  Tensor lnb = rnd({96}, 162, 0.1).to(Device::CUDA).set_requires_grad(true);
  Tensor emb = rnd({100, 64}, 163, 0.1).to(Device::CUDA).set_requires_grad(true);
  Tensor ids = Generator(164).randint({4, 77}, 0, 100).to(Device::CUDA);
  Tensor tgt = Generator(165).randint({4 * 77}, 0, 96);
  AdamW opt({w1, lnw, lnb, emb}, AdamWOptions::tgpt(1e-3));
  auto step = [&] {
    opt.zero_grad();
    Tensor h = quick_gelu(linear(embedding(ids, emb), w1));
    Tensor logits = layer_norm(h, lnw, lnb).reshape({4 * 77, 96});
    cross_entropy(logits, tgt).backward();
    opt.step();
  };
  step();
  step();
  const uint64_t before = memory_stats(Device::CUDA).system_allocs;
  step();
  step();
  EXPECT_EQ(memory_stats(Device::CUDA).system_allocs, before);
}

// ---- AdamW --------------------------------------------------------------------------------------

TEST(CudaAdamW, MultiTensorMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  const std::vector<Shape> shapes = {{1}, {769, 3}, {3}, {2, 77, 5}, {4096 + 1}};
  std::vector<Tensor> cpu_p, dev_p;
  for (size_t i = 0; i < shapes.size(); ++i) {
    Tensor p = rnd(shapes[i], 170 + i);
    cpu_p.push_back(p.clone().set_requires_grad(true));
    dev_p.push_back(p.to(Device::CUDA).set_requires_grad(true));
  }
  AdamWOptions o{3e-3, 0.9, 0.999, 1e-7, 1e-2};
  AdamW cpu_opt(cpu_p, o), dev_opt(dev_p, o);
  for (int step = 0; step < 4; ++step) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (step == 1 && i == 2) {  // a parameter without gradient in one step is skipped
        cpu_p[i].zero_grad();
        dev_p[i].zero_grad();
        continue;
      }
      Tensor g = rnd(shapes[i], 1000 + 10 * step + i);
      cpu_p[i].set_grad(g);
      dev_p[i].set_grad(g.to(Device::CUDA));
    }
    cpu_opt.step();
    dev_opt.step();
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(dev_opt.state(i).step, cpu_opt.state(i).step);
    std::vector<double> a = dev_p[i].to_double_vector(), b = cpu_p[i].to_double_vector();
    std::vector<double> ma = dev_opt.state(i).exp_avg.to_double_vector(),
                        mb = cpu_opt.state(i).exp_avg.to_double_vector();
    for (size_t k = 0; k < a.size(); ++k) {
      // Same f32 formula with the same fused multiply-adds; sqrt and division are IEEE on both.
      EXPECT_NEAR(a[k], b[k], 1e-6 * (std::abs(b[k]) + 1e-3)) << "param " << i << " elem " << k;
      EXPECT_NEAR(ma[k], mb[k], 1e-6 * (std::abs(mb[k]) + 1e-6)) << "param " << i << " elem " << k;
    }
  }
}

TEST(CudaAdamW, Bf16ParametersUseF32Master) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::bf16, DType::f16}) {
    Tensor p0 = rnd({769}, 180).to(dt);  // the 16-bit starting values
    Tensor cpu_p = p0.to(DType::f32).set_requires_grad(true);
    Tensor dev_p = p0.to(Device::CUDA).set_requires_grad(true);
    AdamWOptions o{1e-2, 0.9, 0.999, 1e-7, 1e-4};
    AdamW cpu_opt({cpu_p}, o), dev_opt({dev_p}, o);
    for (int step = 0; step < 3; ++step) {
      Tensor g = rnd({769}, 190 + step).to(dt);
      cpu_p.set_grad(g.to(DType::f32));
      dev_p.set_grad(g.to(Device::CUDA));
      cpu_opt.step();
      dev_opt.step();
    }
    // The device parameter is the f32 master (tracking the CPU f32 run) rounded to the dtype.
    std::vector<double> a = dev_p.to_double_vector(), b = cpu_p.to(dt).to_double_vector();
    std::vector<double> exact = cpu_p.to_double_vector();
    // A different rounding is allowed only when the f32 value sits (within f32 noise) on a
    // rounding midpoint, i.e. both neighbours are equally close.
    int bad = 0;
    for (size_t k = 0; k < a.size(); ++k)
      if (a[k] != b[k] && std::abs(std::abs(a[k] - exact[k]) - std::abs(b[k] - exact[k])) >
                              1e-6 * std::abs(exact[k]))
        ++bad;
    EXPECT_EQ(bad, 0) << dtype_name(dt);
    EXPECT_EQ(dev_opt.state(0).exp_avg.dtype(), DType::f32);
  }
}

TEST(CudaAdamW, RejectsF64AndSgdOnDevice) {
  SKIP_WITHOUT_CUDA();
  Tensor p64 = Tensor::zeros({3}, DType::f64, Device::CUDA).set_requires_grad(true);
  EXPECT_THROW(AdamW({p64}), Error);
  Tensor p = Tensor::zeros({3}, DType::f32, Device::CUDA).set_requires_grad(true);
  EXPECT_THROW(SGD({p}, 0.1), Error);
}

TEST(CudaOps, F64IsRejectedClearly) {
  SKIP_WITHOUT_CUDA();
  Tensor x = Tensor::ones({2, 3}, DType::f64, Device::CUDA);
  try {
    (void)relu(x);
    FAIL() << "relu accepted an f64 CUDA tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f32, f16 or bf16"), std::string::npos) << e.what();
  }
}
