/*
 * test_safetensors.cpp — safetensors round trips, a file written by Python, zero-copy and
 * copy-on-write behaviour, rejection of malformed files, and atomic saves.
 */
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "engine/safetensors.h"
#include "tests/test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "tgpt_st_XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir = templ;
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string file(const std::string& name) const { return (fs::path(dir) / name).string(); }

  // Writes an 8-byte little-endian header length (header.size() unless given), the header bytes
  // and the data bytes.
  std::string write_raw(const std::string& header, const std::string& data,
                        std::optional<uint64_t> header_len = std::nullopt) {
    std::string p = file("raw.safetensors");
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    uint64_t n = header_len.value_or(header.size());
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << header << data;
    return p;
  }

  // Expects open() to throw an error naming the file and containing `problem`.
  void expect_rejected(const std::string& path, const std::string& problem) {
    try {
      SafetensorsFile::open(path);
      ADD_FAILURE() << "accepted a malformed file; expected: " << problem;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(path + ": "), std::string::npos) << msg;
      EXPECT_NE(msg.find(problem), std::string::npos) << "expected '" << problem << "' in: " << msg;
    }
  }
  void expect_rejected(const std::string& header, const std::string& data,
                       const std::string& problem) {
    expect_rejected(write_raw(header, data), problem);
  }

  std::vector<std::string> dir_listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string dir;
};

// {"a": F32 [shape] at [begin, end]} as header JSON.
std::string entry_json(const std::string& name, const std::string& dtype, const std::string& shape,
                       const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

void expect_equal_exactly(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.dtype(), b.dtype());
  ASSERT_EQ(a.shape(), b.shape());
  std::vector<double> va = a.to_double_vector(), vb = b.to_double_vector();
  for (size_t i = 0; i < va.size(); ++i) EXPECT_EQ(va[i], vb[i]) << "element " << i;
}

}  // namespace

TEST_F(Safetensors, RoundTripAllDtypesScalarEmptyAndMetadata) {
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"f64", Tensor::from_vector({1.0 / 3, -2.5e300, 0, 7}, {2, 2}, DType::f64)},
      {"u8", Tensor::from_vector({0, 1, 255}, {3}, DType::u8)},  // leaves the rest unaligned
      {"f32", Tensor::from_vector({0.1, -3.25, 1e30, 5, 6, 7}, {1, 2, 3}, DType::f32)},
      {"f16", Tensor::from_vector({0.5, -65504, 1e-4}, {3}, DType::f16)},
      {"bf16", Tensor::from_vector({1.5, -3e38, 0.1}, {3, 1}, DType::bf16)},
      {"i32", Tensor::from_vector({-2147483648.0, 2147483647.0}, {2}, DType::i32)},
      {"i64", Tensor::from_vector({-1, 1099511627776.0, 3}, {1, 1, 1, 1, 3}, DType::i64)},
      {"scalar", Tensor::full({}, 4.25, DType::f32)},
      {"empty", Tensor::empty({2, 0, 3}, DType::f16)},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"unicode", "h\xc3\xa9llo"}};
  std::string p = file("rt.safetensors");
  save_safetensors(p, ts, meta);

  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.path(), p);
  EXPECT_EQ(f.metadata(), meta);
  std::vector<std::string> expected_names;
  for (const auto& [name, t] : ts) expected_names.push_back(name);
  EXPECT_EQ(f.names(), expected_names);  // written in the given order, listed in file order
  for (const auto& [name, t] : ts) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(f.contains(name));
    Tensor got = f.get(name);
    EXPECT_TRUE(got.is_contiguous());
    EXPECT_EQ(got.device(), Device::CPU);
    EXPECT_EQ(f.entry(name).end - f.entry(name).begin, t.nbytes());
    expect_equal_exactly(got, t);
  }
  EXPECT_EQ(f.get("scalar").dim(), 0);
  EXPECT_EQ(f.get("empty").numel(), 0);
  EXPECT_FALSE(f.contains("nope"));
  EXPECT_THROW(f.get("nope"), Error);
  EXPECT_THROW(f.entry("nope"), Error);
}

TEST_F(Safetensors, HeaderIsPaddedToEightBytesWithSpaces) {
  std::string p = file("pad.safetensors");
  save_safetensors(p, {{"x", Tensor::full({3}, 1.0, DType::u8)}});
  std::ifstream in(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 3);
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  size_t close = header.rfind('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);
}

TEST_F(Safetensors, NonContiguousInputIsStoredContiguous) {
  Tensor base = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3}, DType::f32);
  Tensor t = base.transpose(0, 1);  // [3, 2], strided
  ASSERT_FALSE(t.is_contiguous());
  Tensor n = base.narrow(1, 1, 2);  // [2, 2], offset view
  std::string p = file("nc.safetensors");
  save_safetensors(p, {{"t", t}, {"n", n}});
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.get("t").to_double_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(f.get("n").to_double_vector(), (std::vector<double>{1, 2, 4, 5}));
}

TEST_F(Safetensors, ZeroCopyWhenAlignedCopyOnWriteAndOutlivesTheFile) {
  std::string p = file("zc.safetensors");
  save_safetensors(p, {{"a", Tensor::from_vector({1, 2, 3, 4}, {4}, DType::f32)},
                       {"b", Tensor::from_vector({7, 8, 9}, {3}, DType::u8)},
                       {"c", Tensor::from_vector({5, 6}, {2}, DType::f32)}});
  Tensor a, c;
  {
    SafetensorsFile f = SafetensorsFile::open(p);
    a = f.get("a");  // offset 0: aligned, shares the mapping
    c = f.get("c");  // offset 19: unaligned, copied
    EXPECT_EQ(f.get("a").data_ptr(), a.data_ptr());
    EXPECT_NE(f.get("c").data_ptr(), c.data_ptr());
  }
  EXPECT_EQ(a.to_double_vector(), (std::vector<double>{1, 2, 3, 4}));  // mapping still alive
  EXPECT_EQ(c.to_double_vector(), (std::vector<double>{5, 6}));
  a.fill_(-1);  // copy-on-write: the file is unchanged
  EXPECT_EQ(SafetensorsFile::open(p).get("a").to_double_vector(),
            (std::vector<double>{1, 2, 3, 4}));
}

TEST_F(Safetensors, ReadsFileWrittenByPython) {
  std::string p = test::golden_dir() + "/st_python.safetensors";
  if (test::golden_dir().empty() || !fs::exists(p)) GTEST_SKIP() << "run via ctest for fixtures";
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "golden"}}));
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a_u8", "b_f32", "c_f64", "d_f16", "e_bf16",
                                                 "f_i32", "g_i64", "h_scalar", "i_empty"}));
  std::vector<double> b, c, d, e;
  for (int i = 0; i < 6; ++i) {
    b.push_back((i - 3) * 0.25);
    c.push_back(i / 3.0);
    d.push_back(i * 0.5 - 1);
    e.push_back(i * 2 - 5);
  }
  auto check = [&](const std::string& name, DType dt, const Shape& shape,
                   const std::vector<double>& values) {
    SCOPED_TRACE(name);
    Tensor t = f.get(name);
    EXPECT_EQ(t.dtype(), dt);
    EXPECT_EQ(t.shape(), shape);
    EXPECT_EQ(t.to_double_vector(), values);
  };
  check("a_u8", DType::u8, {3}, {0, 127, 255});
  check("b_f32", DType::f32, {2, 3}, b);
  check("c_f64", DType::f64, {3, 2}, c);
  check("d_f16", DType::f16, {6}, d);
  check("e_bf16", DType::bf16, {1, 2, 3}, e);
  check("f_i32", DType::i32, {4}, {-2147483648.0, -1, 0, 2147483647.0});
  check("g_i64", DType::i64, {3}, {-4611686018427387904.0, -1, 1099511627783.0});
  EXPECT_EQ(f.get("g_i64").data<int64_t>()[0], -(int64_t{1} << 62));  // exact beyond 2^53
  check("h_scalar", DType::f32, {}, {3.5});
  check("i_empty", DType::f32, {0, 3}, {});
}

TEST_F(Safetensors, EmptyHeaderIsAValidFileWithNoTensors) {
  SafetensorsFile f = SafetensorsFile::open(write_raw("{}      ", ""));
  EXPECT_TRUE(f.entries().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST_F(Safetensors, RejectsMalformedFiles) {
  const std::string a4 = entry_json("a", "F32", "[1]", "[0,4]");
  const std::string four(4, '\0');

  std::ofstream(file("empty.safetensors")).close();
  expect_rejected(file("empty.safetensors"), "0 bytes, too short");
  std::ofstream(file("short.safetensors"), std::ios::binary) << "abc";
  expect_rejected(file("short.safetensors"), "3 bytes, too short");
  expect_rejected(write_raw("{}", "", 100), "header length 100 runs past the end of the file");
  expect_rejected(write_raw("{}", "", uint64_t{1} << 63), "exceeds the limit");
  expect_rejected(write_raw("{}", "", 100'000'001), "exceeds the limit");
  expect_rejected("", "", "not valid JSON");
  expect_rejected("{\"a\":", "", "not valid JSON");
  expect_rejected("{} x", "", "not valid JSON");
  expect_rejected("[1, 2]", "", "not a JSON object");
  expect_rejected(" {}", "", "must start with '{'");
  expect_rejected("{\"\xff\":1}", "", "not valid UTF-8");
  expect_rejected("{\"\xc0\xaf\":1}", "", "not valid UTF-8");      // overlong '/'
  expect_rejected("{\"\xed\xa0\x80\":1}", "", "not valid UTF-8");  // surrogate
  expect_rejected("{\"\xe2\x82\":1}", "", "not valid UTF-8");      // truncated sequence
  expect_rejected("{" + entry_json("a", "Q7", "[1]", "[0,4]") + "}", four, "unknown dtype 'Q7'");
  expect_rejected("{" + entry_json("a", "BOOL", "[4]", "[0,4]") + "}", four,
                  "unsupported dtype BOOL");
  expect_rejected("{" + entry_json("a", "F8_E4M3", "[4]", "[0,4]") + "}", four,
                  "unsupported dtype F8_E4M3");
  expect_rejected("{" + entry_json("a", "F32", "[2]", "[0,4]") + "}", four, "needs 8");
  expect_rejected("{" + a4 + "," + entry_json("b", "F32", "[1]", "[2,6]") + "}",
                  std::string(6, '\0'), "overlap the previous tensor");
  expect_rejected("{" + a4 + "," + entry_json("b", "F32", "[1]", "[0,4]") + "}", four,
                  "overlap the previous tensor");
  expect_rejected("{" + a4 + "," + entry_json("b", "F32", "[1]", "[8,12]") + "}",
                  std::string(12, '\0'), "leave a gap");
  expect_rejected("{" + entry_json("a", "F32", "[1]", "[4,8]") + "}", std::string(8, '\0'),
                  "first tensor must begin at 0");
  expect_rejected("{" + a4 + "}", "abc", "data buffer is 3 bytes but the tensors cover 4");
  expect_rejected("{" + a4 + "}", "abcde", "data buffer is 5 bytes but the tensors cover 4");
  expect_rejected("{}", "x", "data buffer is 1 bytes but the tensors cover 0");
  expect_rejected("{" + a4 + "," + a4 + "}", four, "duplicate key 'a'");
  expect_rejected(
      "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", four,
      "duplicate key 'dtype'");
  expect_rejected("{\"__metadata__\":{\"k\":1}}", "", "value of 'k' is not a string");
  expect_rejected("{\"__metadata__\":[\"k\"]}", "", "__metadata__ is not a JSON object");
  expect_rejected("{" + entry_json("a", "F32", "[-1]", "[0,0]") + "}", "",
                  "not a non-negative integer");
  expect_rejected("{" + entry_json("a", "F32", "[1.5]", "[0,4]") + "}", four,
                  "not a non-negative integer");
  expect_rejected("{" + entry_json("a", "F32", "[\"1\"]", "[0,4]") + "}", four,
                  "not a non-negative integer");
  expect_rejected("{" + entry_json("a", "F32", "3", "[0,4]") + "}", four, "shape is not an array");
  expect_rejected("{" + entry_json("a", "F32", "[1,1,1,1,1,1]", "[0,4]") + "}", four,
                  "has 6 dims; at most 5");
  expect_rejected("{" + entry_json("a", "F32", "[4294967296,4294967296]", "[0,4]") + "}", four,
                  "too many elements");
  expect_rejected("{" + entry_json("a", "F64", "[2305843009213693952]", "[0,0]") + "}", "",
                  "too many elements");  // 2^61 elements * 8 bytes overflows
  expect_rejected("{" + entry_json("a", "F32", "[1]", "[0,4,8]") + "}", four,
                  "is not [begin, end]");
  expect_rejected("{" + entry_json("a", "F32", "[1]", "[4]") + "}", four, "is not [begin, end]");
  expect_rejected("{" + entry_json("a", "F32", "[1]", "[-1,3]") + "}", four, "is not [begin, end]");
  expect_rejected("{" + entry_json("a", "F32", "[0]", "[4,0]") + "}", four, "begin > end");
  expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", four,
                  "lacks the field 'data_offsets'");
  expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", four,
                  "unexpected field 'x'");
  expect_rejected("{\"a\":[1]}", "", "tensor 'a' is not a JSON object");
  expect_rejected(file("missing.safetensors"), "cannot open");
  expect_rejected(dir, "not a regular file");
}

TEST_F(Safetensors, SaveRejectsBadNames) {
  Tensor t = Tensor::zeros({2});
  std::string p = file("bad.safetensors");
  EXPECT_THROW(save_safetensors(p, {{"", t}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"x", t}, {"x", t}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"__metadata__", t}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"bad\xff", t}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"u", Tensor()}}), Error);
  EXPECT_TRUE(dir_listing().empty());
}

TEST_F(Safetensors, FailedSaveThrowsAndLeavesNoTemporaryFile) {
  Tensor t = Tensor::zeros({2});
  std::string missing = file("no/such/dir/x.safetensors");
  try {
    save_safetensors(missing, {{"x", t}});
    ADD_FAILURE() << "saved into a missing directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing + ": "), std::string::npos) << e.what();
  }
  // A destination that is a directory fails at the rename, after the temp file was written.
  fs::create_directory(file("target"));
  EXPECT_THROW(save_safetensors(file("target"), {{"x", t}}), Error);
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"target"});
}

TEST_F(Safetensors, SaveReplacesAnExistingFile) {
  std::string p = file("m.safetensors");
  save_safetensors(p, {{"old", Tensor::full({100}, 1.0)}}, {{"v", "1"}});
  save_safetensors(p, {{"new", Tensor::full({2}, 2.0, DType::i64)}}, {{"v", "2"}});
  EXPECT_EQ(dir_listing(), std::vector<std::string>{"m.safetensors"});
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.names(), std::vector<std::string>{"new"});
  EXPECT_EQ(f.metadata().at("v"), "2");
  EXPECT_EQ(f.get("new").to_double_vector(), (std::vector<double>{2, 2}));
}

TEST(SafetensorsDtype, NamesRoundTripAndUnknownNamesThrow) {
  for (DType t :
       {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8})
    EXPECT_EQ(parse_safetensors_dtype(safetensors_dtype_name(t)), t);
  EXPECT_STREQ(safetensors_dtype_name(DType::bf16), "BF16");
  EXPECT_THROW(parse_safetensors_dtype("U16"), Error);
  EXPECT_THROW(parse_safetensors_dtype("f32"), Error);
}
