/*
 * test_ops_index.cpp — embedding, gather_rows and concat: forward against index loops (i32 and
 * i64 ids, strided inputs, every concat dim), gradients against finite differences in f64
 * (repeated ids scatter-add), frozen inputs, f16/bf16, thread counts for the embedding
 * scatter-add, and errors (out-of-range ids naming the id, shape and dtype mismatches).
 */
#include <gtest/gtest.h>

#include "engine/ops.h"
#include "base/parallel.h"
#include "engine/random.h"
#include "tests/test_util.h"

using namespace tgpt;
using tgpt::test::expect_close;
using tgpt::test::expect_gradients_match;

namespace {

// The message of the Error thrown by f, or "" when none is thrown.
template <typename F>
std::string error_message(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// ---- embedding ----------------------------------------------------------------------------------

TEST(OpsEmbedding, ForwardGathersRows) {
  Generator gen(51);
  for (DType idt : {DType::i32, DType::i64}) {
    for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
      Tensor w = gen.randn({7, 4}).to(dt);
      Tensor ids = Tensor::from_vector({0, 6, 3, 3, 1, 6}, {2, 3}, idt);
      Tensor y = embedding(ids, w);
      EXPECT_EQ(y.shape(), Shape({2, 3, 4}));
      EXPECT_EQ(y.dtype(), dt);
      std::vector<double> wv = w.to_double_vector(), yv = y.to_double_vector();
      std::vector<double> idv = ids.to_double_vector();
      for (size_t i = 0; i < idv.size(); ++i)
        for (int c = 0; c < 4; ++c)
          EXPECT_EQ(yv[i * 4 + c], wv[static_cast<size_t>(idv[i]) * 4 + c]);
    }
  }
  // strided weight and ids, 0-d ids
  Tensor wt = gen.randn({4, 7}).transpose(0, 1);  // [7, 4]
  Tensor ids = Tensor::from_vector({5, 1, 2, 4}, {2, 2}, DType::i64).transpose(0, 1);
  Tensor y = embedding(ids, wt);
  std::vector<double> idv = ids.to_double_vector(), yv = y.to_double_vector();
  for (size_t i = 0; i < idv.size(); ++i)
    for (int c = 0; c < 4; ++c)
      EXPECT_EQ(yv[i * 4 + c], wt.select(0, static_cast<int64_t>(idv[i])).to_double_vector()[c]);
  Tensor y0 = embedding(Tensor::from_vector({2}, {}, DType::i32), wt);
  EXPECT_EQ(y0.shape(), Shape({4}));
  EXPECT_EQ(y0.to_double_vector(), wt.select(0, 2).to_double_vector());
}

TEST(OpsEmbedding, GradientScatterAddsRepeatedIds) {
  Generator gen(52);
  Tensor w = gen.randn({6, 3}, DType::f64).set_requires_grad(true);
  Tensor ids =
      Tensor::from_vector({1, 4, 1, 0, 1, 5}, {2, 3}, DType::i32);  // 1 repeats, 2/3 unused
  expect_gradients_match([ids](const std::vector<Tensor>& in) { return embedding(ids, in[0]); },
                         {w});
  // explicit: the gradient of sum(embedding) counts how often each row is used
  w.zero_grad();
  sum(embedding(ids, w)).backward();
  std::vector<double> g = w.grad().to_double_vector();
  double counts[6] = {1, 3, 0, 0, 1, 1};
  for (int r = 0; r < 6; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(g[r * 3 + c], counts[r]);
  // a frozen weight records nothing
  Tensor wf = gen.randn({6, 3});
  EXPECT_FALSE(embedding(ids, wf).requires_grad());
  EXPECT_EQ(tape_size(), 0u);
}

TEST(OpsEmbedding, HalfWeightGradientKeepsDtype) {
  Generator gen(53);
  Tensor w = gen.randn({5, 3}).to(DType::bf16).set_requires_grad(true);
  Tensor ids = Tensor::from_vector({2, 2, 4}, {3}, DType::i64);
  Tensor gout = gen.randn({3, 3}).to(DType::bf16);
  embedding(ids, w).backward(gout);
  Tensor g = w.grad();
  EXPECT_EQ(g.dtype(), DType::bf16);
  std::vector<double> gv = g.to_double_vector(), go = gout.to_double_vector();
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(gv[2 * 3 + c], go[c] + go[3 + c], 1e-2 * (std::abs(go[c]) + std::abs(go[3 + c])));
    EXPECT_EQ(gv[4 * 3 + c], go[6 + c]);
    EXPECT_EQ(gv[0 * 3 + c], 0.0);
  }
}

TEST(OpsEmbedding, BackwardBitIdenticalForOneAndTwoThreads) {
  Generator gen(54);
  Tensor w = gen.randn({50, 512}).set_requires_grad(true);
  Tensor ids = gen.randint({4, 77}, 0, 50);  // many repeats
  Tensor gout = gen.randn({4, 77, 512});
  int saved = num_threads();
  std::vector<std::vector<double>> y(2), g(2);
  for (int k = 0; k < 2; ++k) {
    set_num_threads(k + 1);
    w.zero_grad();
    Tensor out = embedding(ids, w);
    out.backward(gout);
    y[k] = out.to_double_vector();
    g[k] = w.grad().to_double_vector();
  }
  set_num_threads(saved);
  EXPECT_EQ(y[0], y[1]);
  EXPECT_EQ(g[0], g[1]);
}

TEST(OpsEmbedding, Errors) {
  Tensor w = Tensor::ones({5, 3});
  std::string m = error_message([&] {
    embedding(Tensor::from_vector({1, 7, 2}, {3}, DType::i64), w);
  });
  EXPECT_NE(m.find("embedding"), std::string::npos) << m;
  EXPECT_NE(m.find("id 7"), std::string::npos) << m;
  m = error_message([&] { embedding(Tensor::from_vector({-1}, {1}, DType::i32), w); });
  EXPECT_NE(m.find("id -1"), std::string::npos) << m;
  EXPECT_THROW(embedding(Tensor::from_vector({5}, {1}, DType::i32), w), Error);  // == V
  EXPECT_THROW(embedding(Tensor::from_vector({1}, {1}, DType::f32), w), Error);  // float ids
  EXPECT_THROW(embedding(Tensor::from_vector({1}, {1}, DType::i32), Tensor::ones({5})), Error);
  EXPECT_THROW(
      embedding(Tensor::from_vector({1}, {1}, DType::i32), Tensor::ones({5, 3}, DType::i32)),
      Error);
  EXPECT_THROW(embedding(Tensor::zeros({1, 1, 1, 1, 1}, DType::i32), w), Error);  // 6-D output
}

// ---- gather_rows --------------------------------------------------------------------------------

TEST(OpsGatherRows, ForwardPicksOneRowPerBatch) {
  Generator gen(61);
  for (DType idt : {DType::i32, DType::i64}) {
    for (DType dt : {DType::f32, DType::f64, DType::f16}) {
      Tensor x = gen.randn({3, 5, 4}).to(dt);
      Tensor index = Tensor::from_vector({4, 0, 2}, {3}, idt);
      Tensor y = gather_rows(x, index);
      EXPECT_EQ(y.shape(), Shape({3, 4}));
      EXPECT_EQ(y.dtype(), dt);
      for (int b = 0; b < 3; ++b)
        EXPECT_EQ(y.select(0, b).to_double_vector(),
                  x.select(0, b)
                      .select(0, static_cast<int64_t>(index.to_double_vector()[b]))
                      .to_double_vector());
    }
  }
  Tensor xs = gen.randn({5, 3, 4}).transpose(0, 1);  // [3, 5, 4] strided
  Tensor index = Tensor::from_vector({1, 3, 4}, {3}, DType::i64);
  Tensor y = gather_rows(xs, index);
  for (int b = 0; b < 3; ++b)
    EXPECT_EQ(y.select(0, b).to_double_vector(),
              xs.select(0, b)
                  .select(0, static_cast<int64_t>(index.to_double_vector()[b]))
                  .to_double_vector());
}

TEST(OpsGatherRows, GradientScattersIntoZeros) {
  Generator gen(62);
  Tensor x = gen.randn({3, 4, 2}, DType::f64).set_requires_grad(true);
  Tensor index = Tensor::from_vector({3, 3, 0}, {3}, DType::i32);
  expect_gradients_match(
      [index](const std::vector<Tensor>& in) { return gather_rows(in[0], index); }, {x});
}

TEST(OpsGatherRows, Errors) {
  Tensor x = Tensor::ones({2, 4, 3});
  std::string m = error_message([&] {
    gather_rows(x, Tensor::from_vector({1, 4}, {2}, DType::i64));
  });
  EXPECT_NE(m.find("gather_rows"), std::string::npos) << m;
  EXPECT_NE(m.find("4"), std::string::npos) << m;
  EXPECT_THROW(gather_rows(x, Tensor::from_vector({-1, 0}, {2}, DType::i32)), Error);
  EXPECT_THROW(gather_rows(x, Tensor::from_vector({1, 0, 2}, {3}, DType::i32)), Error);  // not [B]
  EXPECT_THROW(gather_rows(x, Tensor::from_vector({1, 0}, {2}, DType::f32)), Error);  // float idx
  EXPECT_THROW(gather_rows(Tensor::ones({2, 4}), Tensor::from_vector({1, 0}, {2}, DType::i32)),
               Error);  // x not 3-D
}

// ---- concat -------------------------------------------------------------------------------------

TEST(OpsConcat, ForwardAlongEveryDim) {
  Generator gen(71);
  for (int dim : {0, 1, 2, -1}) {
    Shape s0{2, 3, 4}, s1{2, 3, 4}, s2{2, 3, 4};
    int d = dim < 0 ? dim + 3 : dim;
    s0[d] = 1;
    s1[d] = 3;
    s2[d] = 2;
    Tensor a = gen.randn(s0), b = gen.randn(s1), c = gen.randn(s2);
    Tensor y = concat({a, b, c}, dim);
    Shape expect = s0;
    expect[d] = 6;
    ASSERT_EQ(y.shape(), expect);
    EXPECT_EQ(y.narrow(d, 0, 1).to_double_vector(), a.to_double_vector());
    EXPECT_EQ(y.narrow(d, 1, 3).to_double_vector(), b.to_double_vector());
    EXPECT_EQ(y.narrow(d, 4, 2).to_double_vector(), c.to_double_vector());
  }
  // strided input, one tensor, integer dtype, zero-length piece
  Tensor t = gen.randn({4, 2}).transpose(0, 1);  // [2, 4]
  Tensor u = gen.randn({2, 3});
  Tensor y = concat({t, u}, 1);
  EXPECT_EQ(y.narrow(1, 0, 4).to_double_vector(), t.to_double_vector());
  EXPECT_EQ(y.narrow(1, 4, 3).to_double_vector(), u.to_double_vector());
  EXPECT_EQ(concat({u}, 0).to_double_vector(), u.to_double_vector());
  Tensor i1 = Tensor::from_vector({1, 2}, {2}, DType::i64),
         i2 = Tensor::from_vector({3}, {1}, DType::i64);
  EXPECT_EQ(concat({i1, i2}, 0).to_double_vector(), std::vector<double>({1, 2, 3}));
  EXPECT_EQ(concat({u, Tensor::empty({2, 0})}, 1).to_double_vector(), u.to_double_vector());
  Tensor h = concat({u.to(DType::f16), u.to(DType::f16)}, 0);
  EXPECT_EQ(h.dtype(), DType::f16);
}

TEST(OpsConcat, GradientNarrowsForEachInput) {
  Generator gen(72);
  Tensor a = gen.randn({2, 1, 3}, DType::f64).set_requires_grad(true);
  Tensor b = gen.randn({2, 4, 3}, DType::f64);                       // frozen
  Tensor c = gen.randn({3, 2}, DType::f64).set_requires_grad(true);  // used transposed
  expect_gradients_match(
      [](const std::vector<Tensor>& in) {
        return concat({in[0], in[1], in[2].transpose(0, 1).unsqueeze(1)}, 1);
      },
      {a, b, c});
  EXPECT_FALSE(b.grad().defined());
  for (int dim : {0, 2}) {
    Tensor p = gen.randn({2, 3, 2}, DType::f64).set_requires_grad(true);
    Tensor q = gen.randn({2, 3, 2}, DType::f64).set_requires_grad(true);
    expect_gradients_match(
        [dim](const std::vector<Tensor>& in) {
          return concat({in[0], in[1]}, dim);
        },
        {p, q});
  }
  // nothing requires grad: no node
  EXPECT_FALSE(concat({b, b}, 0).requires_grad());
  EXPECT_EQ(tape_size(), 0u);
}

TEST(OpsConcat, Errors) {
  Tensor a = Tensor::ones({2, 3});
  EXPECT_THROW(concat({}, 0), Error);
  EXPECT_THROW(concat({a, Tensor::ones({3, 3})}, 1), Error);              // dim 0 differs
  EXPECT_THROW(concat({a, Tensor::ones({2, 3, 1})}, 0), Error);           // rank differs
  EXPECT_THROW(concat({a, Tensor::ones({2, 3}, DType::f64)}, 0), Error);  // dtype differs
  EXPECT_THROW(concat({a, a}, 2), Error);                                 // dim out of range
  EXPECT_THROW(concat({a, Tensor()}, 0), Error);                          // undefined
  EXPECT_THROW(concat({Tensor::ones({}), Tensor::ones({})}, 0), Error);   // 0-d
  std::string m = error_message([&] { concat({a, Tensor::ones({3, 3})}, 1); });
  EXPECT_NE(m.find("concat"), std::string::npos) << m;
}
