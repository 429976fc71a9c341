/*
 * test_convert.cpp — the CLIP weight converter and its readers: SHA-256 against FIPS test vectors,
 * the ZIP reader and pickle reader on real and hand-made inputs (truncation, corruption, opcodes
 * that would execute code), and conversion of every fixture of tests/golden/gen_convert.py
 * (TorchScript, torch.save with strided/shared storages, open_clip, Hugging Face, bf16) compared
 * exactly with the reference state dict, plus the validation errors.
 */
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "convert/clip_convert.h"
#include "convert/pickle_reader.h"
#include "convert/sha256.h"
#include "convert/torch_checkpoint.h"
#include "convert/zip_reader.h"
#include "engine/safetensors.h"
#include "tests/test_files.h"
#include "tests/test_util.h"

using namespace tgpt;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

using test::make_zip;
using test::put16;
using test::put32;
using test::read_file;
using test::write_file;

// Pickle building blocks (protocol 2).
std::string p_unicode(const std::string& s) {
  std::string o = "X";
  put32(o, uint32_t(s.size()));
  return o + s;
}
std::string p_global(const std::string& mod, const std::string& name) {
  return "c" + mod + "\n" + name + "\n";
}
std::string p_int1(int v) {
  return std::string("K") + char(v);
}

// _rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel), 0, (n,), (1,), False,
// OrderedDict())
std::string p_float_tensor(const std::string& key, int numel, int n) {
  return p_global("torch._utils", "_rebuild_tensor_v2") + "((" + p_unicode("storage") +
         p_global("torch", "FloatStorage") + p_unicode(key) + p_unicode("cpu") + p_int1(numel) +
         "tQ" + p_int1(0) + "(" + p_int1(n) + "t(" + p_int1(1) + "t\x89" +
         p_global("collections", "OrderedDict") + ")RtR";
}

class Convert : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "tgpt_conv_XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir = templ;
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string tmp(const std::string& name) const { return (fs::path(dir) / name).string(); }
  std::string fixture(const std::string& name) const {
    return (fs::path(test::golden_dir()) / "convert" / name).string();
  }
  bool have_fixtures() const {
    return !test::golden_dir().empty() && fs::exists(fixture("expected.json"));
  }
  nlohmann::json expected() const {
    return nlohmann::json::parse(read_file(fixture("expected.json")));
  }

  // Converts, writes, reads back; every reference tensor must equal the output bitwise after
  // rounding the reference to the output's dtype (same rounding as torch's .half()/.bfloat16()).
  SafetensorsFile convert_and_compare(const std::string& src, const ConvertOptions& opt,
                                      const std::string& want_format) {
    ConvertResult r = convert_clip(src, opt);
    EXPECT_EQ(r.source_format, want_format);
    std::string out = tmp("out.safetensors");
    write_converted_clip(out, r);
    SafetensorsFile f = SafetensorsFile::open(out);
    SafetensorsFile ref = SafetensorsFile::open(fixture("reference.safetensors"));
    EXPECT_EQ(f.entries().size(), ref.entries().size());
    for (const std::string& name : ref.names()) {
      if (!f.contains(name)) {
        ADD_FAILURE() << "missing " << name;
        continue;
      }
      Tensor got = f.get(name), want = ref.get(name).to(got.dtype());
      EXPECT_EQ(got.shape(), want.shape()) << name;
      EXPECT_EQ(got.nbytes(), want.nbytes()) << name;
      if (got.shape() == want.shape()) {
        EXPECT_EQ(std::memcmp(got.data_ptr(), want.data_ptr(), got.nbytes()), 0)
            << name << " differs from the reference";
      }
    }
    nlohmann::json ex = expected();
    const auto& md = f.metadata();
    EXPECT_EQ(md.at("tgpt.format"), "clip");
    EXPECT_EQ(md.at("tgpt.format_version"), "1");
    EXPECT_EQ(md.at("tgpt.source_format"), want_format);
    std::string rel = fs::relative(r.source_path, fixture("")).string();
    EXPECT_EQ(md.at("tgpt.source_sha256"), ex["sha256"][rel].get<std::string>()) << rel;
    nlohmann::json cfg = nlohmann::json::parse(md.at("tgpt.config"));
    for (const auto& [k, v] : ex["config"].items()) EXPECT_EQ(cfg.at(k), v) << k;
    EXPECT_TRUE(cfg.contains("activation"));
    EXPECT_EQ(r.parameter_count, ex["parameter_count"].get<int64_t>());
    return f;
  }

  void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning '" << parts.front() << "'";
    } catch (const Error& e) {
      std::string msg = e.what();
      for (const auto& p : parts)
        EXPECT_NE(msg.find(p), std::string::npos) << "expected '" << p << "' in: " << msg;
    }
  }
  static ConvertOptions quick_gelu() {
    ConvertOptions o;
    o.activation = "quick_gelu";
    return o;
  }
  void expect_convert_error(const std::string& src, const std::vector<std::string>& parts) {
    expect_error([&] { convert_clip(src, {}); }, parts);
  }

  // The reference tensors, for building variants.
  std::vector<std::pair<std::string, Tensor>> reference_tensors() const {
    SafetensorsFile ref = SafetensorsFile::open(fixture("reference.safetensors"));
    std::vector<std::pair<std::string, Tensor>> v;
    for (const auto& n : ref.names()) v.emplace_back(n, ref.get(n).clone());
    return v;
  }

  std::string dir;
};

#define REQUIRE_FIXTURES() \
  if (!have_fixtures()) GTEST_SKIP() << "golden fixtures not generated (run ctest)"

// ---- SHA-256 ------------------------------------------------------------------------------------

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string four =
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
      "klmnopqrlmnopqrsmnopqrstnopqrstu";
  EXPECT_EQ(sha256_hex(four.data(), four.size()),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  std::string data(1000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 31 + 7);
  std::string whole = sha256_hex(data.data(), data.size());
  for (size_t chunk : {1, 3, 55, 56, 63, 64, 65, 127}) {
    Sha256 h;
    for (size_t p = 0; p < data.size(); p += chunk)
      h.update(data.data() + p, std::min(chunk, data.size() - p));
    EXPECT_EQ(h.finish_hex(), whole) << "chunk " << chunk;
  }
}

// ---- ZIP reader ---------------------------------------------------------------------------------

TEST_F(Convert, ZipReaderReadsTorchArchive) {
  REQUIRE_FIXTURES();
  ZipArchive z = ZipArchive::open(fixture("openai_jit.pt"));
  ASSERT_NE(z.find("openai_jit/data.pkl"), nullptr);
  int tensors = 0, deflated = 0;
  for (const ZipEntry& e : z.entries()) {
    if (e.name.find("/data/") != std::string::npos) {
      ++tensors;
      EXPECT_EQ(e.method, 0) << e.name;
      EXPECT_EQ(e.data_offset % 64, 0u) << e.name << ": PyTorch aligns data to 64 bytes";
      EXPECT_EQ(z.stored_data(e).size(), e.uncompressed_size);
    }
    if (e.method == 8) {
      ++deflated;
      std::string text = z.read(e);
      EXPECT_EQ(text.size(), e.uncompressed_size) << e.name;
    }
  }
  EXPECT_GT(tensors, 60);
  EXPECT_GT(deflated, 0);
  const ZipEntry* v = z.find("openai_jit/version");
  ASSERT_NE(v, nullptr);
  EXPECT_FALSE(z.read(*v).empty());
}

TEST_F(Convert, ZipReaderRejectsTruncatedArchives) {
  REQUIRE_FIXTURES();
  std::string bytes = read_file(fixture("openai_jit.pt"));
  size_t n = bytes.size();
  for (size_t cut : {size_t(1), size_t(4), size_t(30), size_t(100), n / 3, n / 2, n - 200, n - 60,
                     n - 23, n - 22, n - 1}) {
    std::string p = tmp("cut.pt");
    write_file(p, bytes.substr(0, cut));
    EXPECT_THROW(convert_clip(p, {}), Error) << "cut at " << cut;
    EXPECT_THROW(ZipArchive::open(p), Error) << "cut at " << cut;
  }
}

TEST_F(Convert, ZipReaderRejectsCorruptCentralDirectory) {
  REQUIRE_FIXTURES();
  std::string bytes = read_file(fixture("openai_jit.pt"));
  size_t cd = bytes.rfind(std::string("PK\x01\x02", 4));
  ASSERT_NE(cd, std::string::npos);
  {  // broken signature of the last central header
    std::string b = bytes;
    b[cd + 2] = 9;
    write_file(tmp("bad.pt"), b);
    expect_error([&] { ZipArchive::open(tmp("bad.pt")); }, {"corrupt central directory"});
  }
  {  // local header offset of that entry pointing past the end of the file
    std::string b = bytes;
    for (int i = 0; i < 4; ++i) b[cd + 42 + i] = char(0x7f);
    write_file(tmp("bad.pt"), b);
    expect_error([&] { ZipArchive::open(tmp("bad.pt")); }, {"local header"});
  }
  {  // entry count larger than the directory can hold
    std::string b = bytes;
    size_t eocd = b.rfind(std::string("PK\x05\x06", 4));
    ASSERT_NE(eocd, std::string::npos);
    b[eocd + 10] = char(0xfe), b[eocd + 11] = char(0x7f);
    b[eocd + 8] = char(0xfe), b[eocd + 9] = char(0x7f);
    write_file(tmp("bad.pt"), b);
    EXPECT_THROW(ZipArchive::open(tmp("bad.pt")), Error);
  }
  {  // a flipped byte inside tensor data fails the CRC check
    ZipArchive z = ZipArchive::open(fixture("openai_jit.pt"));
    const ZipEntry* e = z.find("openai_jit/data/0");
    ASSERT_NE(e, nullptr);
    std::string b = bytes;
    b[e->data_offset + 5] ^= 0x10;
    write_file(tmp("bad.pt"), b);
    expect_convert_error(tmp("bad.pt"), {"CRC-32 mismatch", "openai_jit/data/0"});
  }
}

TEST_F(Convert, ZipReaderOnHandMadeArchive) {
  write_file(tmp("a.zip"), make_zip({{"x/a.txt", "hello"}, {"x/b", ""}}));
  ZipArchive z = ZipArchive::open(tmp("a.zip"));
  ASSERT_EQ(z.entries().size(), 2u);
  EXPECT_EQ(z.read(*z.find("x/a.txt")), "hello");
  EXPECT_EQ(z.read(*z.find("x/b")), "");
  EXPECT_EQ(z.find("nope"), nullptr);
  // Duplicate names are rejected.
  write_file(tmp("d.zip"), make_zip({{"x/a", "1"}, {"x/a", "2"}}));
  expect_error([&] { ZipArchive::open(tmp("d.zip")); }, {"duplicate entry"});
}

// ---- pickle reader ------------------------------------------------------------------------------

TEST(Pickle, ReadsValues) {
  // {'a': [1, -2, 3.5, True, None], 'b': ('x', 300, 70000), 'c': big} with memo reuse
  std::string p = "\x80\x02}q\x00("s + p_unicode("a") + "]q\x01(" + p_int1(1) + "J";
  put32(p, uint32_t(-2));
  p += "G";
  double d = 3.5;
  uint64_t u;
  std::memcpy(&u, &d, 8);
  for (int i = 7; i >= 0; --i) p += char((u >> (8 * i)) & 0xff);
  p += "\x88N";
  p += "e" + p_unicode("b") + p_unicode("x") + "M";
  put16(p, 300);
  p += "J";
  put32(p, 70000);
  p += "\x87" + p_unicode("c") + "\x8a\x05\x00\x00\x00\x00\x80"s;  // LONG1 -2^39
  p += p_unicode("d") + "h\x01u.";
  PickleRef v = read_pickle(p, "test");
  ASSERT_EQ(v->kind, PickleKind::dict);
  const PickleValue* a = v->get("a");
  ASSERT_TRUE(a && a->kind == PickleKind::list);
  ASSERT_EQ(a->items.size(), 5u);
  EXPECT_EQ(a->items[0]->integer, 1);
  EXPECT_EQ(a->items[1]->integer, -2);
  EXPECT_EQ(a->items[2]->floating, 3.5);
  EXPECT_TRUE(a->items[3]->boolean);
  EXPECT_EQ(a->items[4]->kind, PickleKind::none);
  const PickleValue* b = v->get("b");
  ASSERT_TRUE(b && b->kind == PickleKind::tuple && b->items.size() == 3);
  EXPECT_EQ(b->items[0]->text, "x");
  EXPECT_EQ(b->items[1]->integer, 300);
  EXPECT_EQ(b->items[2]->integer, 70000);
  EXPECT_EQ(v->get("c")->integer, -(int64_t(1) << 39));
  EXPECT_EQ(v->get("d"), a);  // BINGET returns the memoized list itself
}

TEST(Pickle, ReadsProtocol5Values) {
  // {"s": {1, 2}, "f": frozenset({3}), "b": b"ab", "u": "xy" (BINUNICODE8), "m": memo 1}, in a
  // frame, keys memoized with MEMOIZE.
  std::string p = "\x80\x05\x95\x00\x00\x00\x00\x00\x00\x00\x00}\x94("s;
  p += "\x8c\x01s\x94\x8f(K\x01K\x02\x90";
  p += "\x8c\x01"
       "f(K\x03\x91";
  p += "\x8c\x01"
       "bC\x02"
       "ab";
  p += "\x8c\x01u\x8d\x02\x00\x00\x00\x00\x00\x00\x00xy"s;
  p += "\x8c\x01mh\x01u.";
  PickleRef v = read_pickle(p, "p5");
  ASSERT_EQ(v->kind, PickleKind::dict);
  const PickleValue* set = v->get("s");
  ASSERT_TRUE(set && set->kind == PickleKind::set && set->items.size() == 2);
  EXPECT_EQ(set->items[1]->integer, 2);
  const PickleValue* fset = v->get("f");
  ASSERT_TRUE(fset && fset->kind == PickleKind::set && fset->items.size() == 1);
  EXPECT_EQ(fset->items[0]->integer, 3);
  ASSERT_TRUE(v->get("b") && v->get("b")->kind == PickleKind::bytes);
  EXPECT_EQ(v->get("b")->text, "ab");
  EXPECT_EQ(v->get("u")->text, "xy");
  ASSERT_TRUE(v->get("m"));
  EXPECT_EQ(v->get("m")->text, "s");  // MEMOIZE numbered the dict 0 and "s" 1
  // NEWOBJ_EX + BUILD: an opaque object with its state.
  std::string o =
      "\x80\x05\x8c\x01m\x8c\x01"
      "C\x93)}\x92}\x8c\x01"
      "a\x8c\x01"
      "bsb."s;
  PickleRef obj = read_pickle(o, "p5");
  ASSERT_EQ(obj->kind, PickleKind::object);
  EXPECT_EQ(obj->text, "m.C");
  ASSERT_TRUE(obj->state && obj->state->get("a"));
  EXPECT_EQ(obj->state->get("a")->text, "b");
}

TEST(Pickle, RejectsBadInput) {
  // INST (protocol 0 'i') would instantiate os.system: refused by opcode.
  auto expect = [](const std::string& p, const std::string& part) {
    try {
      read_pickle(p, "t.pkl");
      ADD_FAILURE() << "accepted; expected " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect("\x80\x02(ios\nsystem\n" + p_unicode("true") + ".",
         "unsupported opcode 0x69 ('i') at offset 3");
  expect(std::string("\x80\x02\x8c\x02os\x8c\x06system\x93).", 17), "STOP with 2 values");
  expect("\x80\x06.", "protocol 6 is not supported");
  expect("\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N."s, "frame of 255 bytes runs past");
  expect(
      "\x80\x04\x8c\x05"
      "ab."s,
      "runs past the end");
  expect("\x80\x04K\x01K\x02\x93."s, "module and name are not strings");
  expect("\x80\x04\x94."s, "stack underflow");
  expect("\x80\x04\x8fK\x01\x90."s, "no MARK");
  expect("\x80\x04](K\x01\x90."s, "not a set");
  // With a list of allowed callables, any other is refused (REDUCE and NEWOBJ).
  PickleLimits only;
  only.allowed_callables = {"a.b"};
  for (const std::string op : {"R", "\x81"}) {
    const std::string p = "\x80\x04\x8c\x02os\x8c\x06system\x93)"s + op + ".";
    try {
      read_pickle(p, "t.pkl", only);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("callable 'os.system' is not allowed"),
                std::string::npos)
          << e.what();
    }
  }
  expect("\x80\x02}", "without STOP");
  expect(
      "\x80\x02X\xff\x00\x00\x00"
      "ab"s,
      "runs past the end");
  expect("\x80\x02h\x05.", "memo key 5 was never stored");
  expect("\x80\x02s.", "stack underflow");
  expect("\x80\x02" + p_int1(1) + p_int1(2) + ".", "STOP with 2 values");
  expect("\x80\x02" + p_global("os", "system") + "(" + p_unicode("x") + "tQ.",
         "unsupported persistent id");
  // Recursive data: a list appended to itself, a list changed after a dict took it.
  expect(
      "\x80\x02]q\x00h\x00"
      "a."s,
      "would hold itself");
  expect("\x80\x02]q\x00}q\x01"s + p_unicode("k") +
             "h\x00sh\x00K\x01"
             "a."s,
         "already holds");
  std::string deep = "\x80\x02";
  for (int i = 0; i < 300; ++i) deep += "]";
  for (int i = 0; i < 299; ++i) deep += "a";
  deep += ".";
  expect(deep, "nesting deeper");
}

TEST_F(Convert, PickleNeverExecutesGlobals) {
  // GLOBAL os.system + REDUCE with a command that would create a file.
  std::string marker = tmp("executed");
  std::string cmd = "touch " + marker;
  std::string evil = "\x80\x02" + p_global("os", "system") + p_unicode(cmd) + "\x85R.";
  PickleRef v = read_pickle(evil, "evil.pkl");
  EXPECT_EQ(v->kind, PickleKind::object);
  EXPECT_EQ(v->text, "os.system");
  EXPECT_FALSE(fs::exists(marker));
  // As the root of a checkpoint archive, and as a value of a state dict: rejected, not run.
  write_file(tmp("evil.pt"), make_zip({{"evil/data.pkl", evil}}));
  expect_convert_error(tmp("evil.pt"), {"os.system"});
  std::string in_dict =
      "\x80\x02}(" + p_unicode("w") + p_global("os", "system") + p_unicode(cmd) + "\x85Ru.";
  write_file(tmp("evil2.pt"), make_zip({{"evil2/data.pkl", in_dict}}));
  expect_convert_error(tmp("evil2.pt"), {"holds no tensors"});
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(Convert, TorchCheckpointBoundsAndSharedStorages) {
  // A tensor reaching past the end of its storage is rejected.
  std::string pk = "\x80\x02}(" + p_unicode("t") + p_float_tensor("0", 4, 5) + "u.";
  write_file(tmp("oob.pt"), make_zip({{"a/data.pkl", pk}, {"a/data/0", std::string(16, '\0')}}));
  expect_error([&] { load_torch_checkpoint(tmp("oob.pt")); }, {"reaches past the end"});
  // The storage entry must hold numel * itemsize bytes.
  write_file(tmp("short.pt"), make_zip({{"a/data.pkl", pk}, {"a/data/0", std::string(12, '\0')}}));
  expect_error([&] { load_torch_checkpoint(tmp("short.pt")); }, {"a/data/0"});
  // Missing storage entry.
  write_file(tmp("nostore.pt"), make_zip({{"a/data.pkl", pk}}));
  expect_error([&] { load_torch_checkpoint(tmp("nostore.pt")); }, {"missing archive entry"});
  // No data.pkl at all.
  write_file(tmp("nopkl.pt"), make_zip({{"a/other", "x"}}));
  expect_error([&] { load_torch_checkpoint(tmp("nopkl.pt")); }, {"data.pkl"});
}

TEST_F(Convert, TorchCheckpointStridedAndShared) {
  REQUIRE_FIXTURES();
  TorchCheckpoint ck = load_torch_checkpoint(fixture("state_dict.pt"));
  EXPECT_EQ(ck.kind, TorchCheckpointKind::state_dict);
  EXPECT_EQ(ck.prefix, "state_dict");
  SafetensorsFile ref = SafetensorsFile::open(fixture("reference.safetensors"));
  ASSERT_EQ(ck.tensors.size(), ref.entries().size());
  for (const auto& [name, t] : ck.tensors) {
    EXPECT_TRUE(t.is_contiguous()) << name;
    test::expect_close(t, ref.get(name), 0, 0, name);
  }
  TorchCheckpoint jit = load_torch_checkpoint(fixture("openai_jit.pt"));
  EXPECT_EQ(jit.kind, TorchCheckpointKind::torchscript_module);
  EXPECT_EQ(jit.tensors.size(), ref.entries().size() + 3);  // + the 3 int64 buffers
}

// ---- conversion ---------------------------------------------------------------------------------

TEST_F(Convert, OpenAiTorchScriptKeepsMixedLayout) {
  REQUIRE_FIXTURES();
  SafetensorsFile f = convert_and_compare(fixture("openai_jit.pt"), {}, "openai-torchscript");
  std::set<std::string> f16;
  nlohmann::json ex = expected();
  for (const auto& n : ex["openai_f16"]) f16.insert(n.get<std::string>());
  for (const auto& e : f.entries())
    EXPECT_EQ(e.dtype, f16.count(e.name) ? DType::f16 : DType::f32) << e.name;
  EXPECT_FALSE(f.contains("input_resolution"));
  EXPECT_EQ(nlohmann::json::parse(f.metadata().at("tgpt.config"))["activation"], "quick_gelu");
  EXPECT_FALSE(f.metadata().count("tgpt.bpe_merges"));
}

TEST_F(Convert, TorchSaveStateDict) {
  REQUIRE_FIXTURES();
  // A bare state dict does not record the activation: refused until --activation says it.
  expect_convert_error(fixture("state_dict.pt"),
                       {"state_dict.pt", "activation is not recorded", "--activation quick_gelu"});
  SafetensorsFile f =
      convert_and_compare(fixture("state_dict.pt"), quick_gelu(), "torch-state-dict");
  for (const auto& e : f.entries()) EXPECT_EQ(e.dtype, DType::f32) << e.name;
  EXPECT_EQ(nlohmann::json::parse(f.metadata().at("tgpt.config"))["activation"], "quick_gelu");
}

TEST_F(Convert, OpenClipCheckpoint) {
  REQUIRE_FIXTURES();
  expect_convert_error(fixture("open_clip.pt"), {"activation is not recorded", "open-clip"});
  ConvertOptions gelu;
  gelu.activation = "gelu";
  SafetensorsFile f = convert_and_compare(fixture("open_clip.pt"), gelu, "open-clip");
  EXPECT_EQ(nlohmann::json::parse(f.metadata().at("tgpt.config"))["activation"], "gelu");
  ConvertOptions o;
  o.activation = "quick_gelu";
  SafetensorsFile g = convert_and_compare(fixture("open_clip.pt"), o, "open-clip");
  EXPECT_EQ(nlohmann::json::parse(g.metadata().at("tgpt.config"))["activation"], "quick_gelu");
}

TEST_F(Convert, OpenClipSafetensors) {
  REQUIRE_FIXTURES();
  expect_convert_error(fixture("reference.safetensors"),
                       {"activation is not recorded", "open-clip-safetensors"});
  SafetensorsFile f =
      convert_and_compare(fixture("reference.safetensors"), quick_gelu(), "open-clip-safetensors");
  EXPECT_EQ(nlohmann::json::parse(f.metadata().at("tgpt.config"))["activation"], "quick_gelu");
}

// open_clip's hub layout records the activation in open_clip_config.json beside the weights.
TEST_F(Convert, OpenClipConfigBesideTheWeights) {
  REQUIRE_FIXTURES();
  fs::copy_file(fixture("reference.safetensors"), tmp("open_clip_model.safetensors"));
  fs::copy_file(fixture("open_clip.pt"), tmp("open_clip_pytorch_model.bin"));
  auto activation_of = [&](const std::string& config_json, const std::string& weights) {
    write_file(tmp("open_clip_config.json"), config_json);
    return activation_name(convert_clip(tmp(weights), {}).config.activation);
  };
  for (const char* w : {"open_clip_model.safetensors", "open_clip_pytorch_model.bin"}) {
    SCOPED_TRACE(w);
    EXPECT_STREQ(activation_of(R"({"model_cfg": {"embed_dim": 64, "quick_gelu": true},
                                   "preprocess_cfg": {}})",
                               w),
                 "quick_gelu");
    EXPECT_STREQ(activation_of(R"({"model_cfg": {"embed_dim": 64}})", w), "gelu");
    EXPECT_STREQ(activation_of(R"({"model_cfg": {"quick_gelu": false}})", w), "gelu");
    // A bare open_clip model config (model_configs/*.json).
    EXPECT_STREQ(activation_of(R"({"embed_dim": 64, "vision_cfg": {}, "quick_gelu": true})", w),
                 "quick_gelu");
  }
  // The folder alone (HF-style folder lookup of open_clip_model.safetensors) reads it too.
  EXPECT_EQ(convert_clip(dir, {}).config.activation, Activation::quick_gelu);
  // --activation wins over the file.
  ConvertOptions o;
  o.activation = "gelu";
  EXPECT_EQ(convert_clip(tmp("open_clip_model.safetensors"), o).config.activation,
            Activation::gelu);
  // A damaged config is an error naming it, never a guess.
  const std::string w = tmp("open_clip_model.safetensors");
  write_file(tmp("open_clip_config.json"), "{\"model_cfg\": ");
  expect_convert_error(w, {"open_clip_config.json", "invalid JSON"});
  write_file(tmp("open_clip_config.json"), R"({"model_cfg": {"quick_gelu": "yes"}})");
  expect_convert_error(w, {"open_clip_config.json", "quick_gelu is not true or false"});
  write_file(tmp("open_clip_config.json"), R"({"preprocess_cfg": {}})");
  expect_convert_error(w, {"open_clip_config.json", "no open_clip model config"});
  write_file(tmp("open_clip_config.json"), "[1, 2]");
  expect_convert_error(w, {"open_clip_config.json", "not a JSON object"});
}

TEST_F(Convert, HuggingFaceFolder) {
  REQUIRE_FIXTURES();
  SafetensorsFile f = convert_and_compare(fixture("hf"), {}, "hf-safetensors");
  EXPECT_EQ(nlohmann::json::parse(f.metadata().at("tgpt.config"))["activation"], "quick_gelu");
  EXPECT_EQ(f.metadata().at("tgpt.bpe_merges"), "i n\nt h\na n\n");  // merges.txt beside it
}

TEST_F(Convert, HuggingFaceConfigActivationAndMismatch) {
  REQUIRE_FIXTURES();
  fs::create_directory(tmp("hf"));
  fs::copy_file(fixture("hf/model.safetensors"), tmp("hf/model.safetensors"));
  nlohmann::json cfg = nlohmann::json::parse(read_file(fixture("hf/config.json")));
  cfg["text_config"]["hidden_act"] = "gelu";
  cfg["vision_config"]["hidden_act"] = "gelu";
  write_file(tmp("hf/config.json"), cfg.dump());
  ConvertResult r = convert_clip(tmp("hf/model.safetensors"), {});
  EXPECT_EQ(r.config.activation, Activation::gelu);
  EXPECT_FALSE(r.metadata.count("tgpt.bpe_merges"));
  cfg["projection_dim"] = 65;
  write_file(tmp("hf/config.json"), cfg.dump());
  expect_convert_error(tmp("hf"), {"projection_dim = 65 but the weights say 64"});
}

TEST_F(Convert, Bf16StateDictAndDtypeOption) {
  REQUIRE_FIXTURES();
  SafetensorsFile f =
      convert_and_compare(fixture("bf16_state_dict.pt"), quick_gelu(), "torch-state-dict");
  for (const auto& e : f.entries()) EXPECT_EQ(e.dtype, DType::bf16) << e.name;
  ConvertOptions o = quick_gelu();
  o.dtype = "f16";
  SafetensorsFile g = convert_and_compare(fixture("state_dict.pt"), o, "torch-state-dict");
  for (const auto& e : g.entries()) EXPECT_EQ(e.dtype, DType::f16) << e.name;
  // f32 from the mixed layout: the f16 tensors widen exactly.
  o.dtype = "f32";
  ConvertResult r = convert_clip(fixture("openai_jit.pt"), o);
  SafetensorsFile ref = SafetensorsFile::open(fixture("reference.safetensors"));
  nlohmann::json ex = expected();
  std::set<std::string> f16;
  for (const auto& n : ex["openai_f16"]) f16.insert(n.get<std::string>());
  EXPECT_EQ(f16.size(), 35u);
  for (const auto& [name, t] : r.tensors) {
    EXPECT_EQ(t.dtype(), DType::f32) << name;
    Tensor want = ref.get(name);
    if (f16.count(name)) want = want.to(DType::f16).to(DType::f32);
    test::expect_close(t, want, 0, 0, name);
  }
  o.dtype = "f8";
  EXPECT_THROW(convert_clip(fixture("state_dict.pt"), o), Error);
}

TEST_F(Convert, OpenAiBpeMerges) {
  REQUIRE_FIXTURES();
  std::string gz = test::shared_dir() + "/clip/bpe_simple_vocab_16e6.txt.gz";
  if (!fs::exists(gz)) GTEST_SKIP() << gz << " not present";
  std::string merges = read_bpe_merges(gz, 48894);
  EXPECT_EQ(std::count(merges.begin(), merges.end(), '\n'), 48894);
  EXPECT_EQ(merges.substr(0, 8), "i n\nt h\n");
  std::string last = merges.substr(merges.rfind('\n', merges.size() - 2) + 1);
  last.erase(std::remove(last.begin(), last.end(), ' '), last.end());
  EXPECT_EQ(last, "jekyll</w>\n");  // id 49405 = jekyll</w> (clip.md §4)
  ConvertOptions o;
  o.vocab_path = gz;
  ConvertResult r = convert_clip(fixture("openai_jit.pt"), o);
  const std::string& m = r.metadata.at("tgpt.bpe_merges");
  EXPECT_EQ(std::count(m.begin(), m.end(), '\n'), 1000 - 514);  // vocab 1000 uses 486 merges
  EXPECT_EQ(m, merges.substr(0, m.size()));
  // A file that is not a merges list is refused.
  write_file(tmp("notmerges.txt"), "#version: 0.2\nabc\n");
  expect_error([&] { read_bpe_merges(tmp("notmerges.txt"), 0); }, {"not a merge pair"});
}

TEST_F(Convert, ReportsAllProblemsInOneError) {
  REQUIRE_FIXTURES();
  auto v = reference_tensors();
  std::vector<std::pair<std::string, Tensor>> w;
  for (auto& [n, t] : v) {
    if (n == "transformer.resblocks.1.mlp.c_fc.bias" || n == "visual.ln_post.weight") continue;
    if (n == "ln_final.bias") t = Tensor::zeros({129});
    w.emplace_back(n, t);
  }
  w.emplace_back("foo.bar", Tensor::zeros({2}));
  w.emplace_back("visual.transformer.resblocks.0.ls_1.gamma", Tensor::zeros({128}));
  save_safetensors(tmp("bad.safetensors"), w);
  expect_convert_error(
      tmp("bad.safetensors"),
      {"missing tensors (2)", "transformer.resblocks.1.mlp.c_fc.bias [512]",
       "visual.ln_post.weight [128]", "wrong shape or dtype (1)",
       "ln_final.bias: [129], expected [128]", "unexpected tensors (2)", "foo.bar", "ls_1.gamma"});
}

TEST_F(Convert, MissingWrongShapeUnexpectedEach) {
  REQUIRE_FIXTURES();
  auto v = reference_tensors();
  {
    auto w = v;
    w.erase(
        std::remove_if(w.begin(), w.end(), [](const auto& p) { return p.first == "logit_scale"; }),
        w.end());
    save_safetensors(tmp("m.safetensors"), w);
    expect_convert_error(tmp("m.safetensors"), {"missing tensors (1)", "logit_scale []"});
  }
  {
    auto w = v;
    for (auto& [n, t] : w)
      if (n == "visual.transformer.resblocks.1.attn.in_proj_weight") t = Tensor::zeros({384, 127});
    save_safetensors(tmp("s.safetensors"), w);
    expect_convert_error(tmp("s.safetensors"),
                         {"visual.transformer.resblocks.1.attn.in_proj_weight: [384, 127], "
                          "expected [384, 128]"});
  }
  {
    auto w = v;
    w.emplace_back("logit_bias", Tensor::zeros({}));
    save_safetensors(tmp("u.safetensors"), w);
    expect_convert_error(tmp("u.safetensors"), {"unexpected tensors (1)", "logit_bias"});
  }
  {  // ResNet weights
    std::vector<std::pair<std::string, Tensor>> rn = {
        {"visual.layer1.0.conv1.weight", Tensor::zeros({64, 64, 1, 1})},
        {"visual.attnpool.positional_embedding", Tensor::zeros({50, 2048})}};
    save_safetensors(tmp("rn.safetensors"), rn);
    expect_convert_error(tmp("rn.safetensors"), {"ResNet CLIP not supported yet"});
  }
}

TEST_F(Convert, HuggingFaceMissingProjection) {
  REQUIRE_FIXTURES();
  SafetensorsFile hf = SafetensorsFile::open(fixture("hf/model.safetensors"));
  std::vector<std::pair<std::string, Tensor>> w;
  for (const auto& n : hf.names())
    if (n != "text_model.encoder.layers.1.self_attn.k_proj.weight") w.emplace_back(n, hf.get(n));
  save_safetensors(tmp("model.safetensors"), w);
  expect_convert_error(tmp("model.safetensors"),
                       {"missing tensors (1)", "transformer.resblocks.1.attn.in_proj_weight",
                        "q/k/v projections incomplete"});
}

TEST_F(Convert, NotACheckpoint) {
  write_file(tmp("empty.bin"), "");
  expect_convert_error(tmp("empty.bin"), {"empty file"});
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = char(rng() & 0xff);
  noise[0] = 'x';
  write_file(tmp("noise.bin"), noise);
  expect_convert_error(tmp("noise.bin"), {"not a recognised checkpoint"});
  write_file(tmp("legacy.pt"), std::string("\x80\x02\x8a\x0a", 4) + noise);
  expect_convert_error(tmp("legacy.pt"), {"legacy (non-ZIP) torch.save"});
  write_file(tmp("pk.bin"), std::string("PK\x03\x04", 4) + noise);
  EXPECT_THROW(convert_clip(tmp("pk.bin"), {}), Error);
  expect_convert_error(tmp("does-not-exist"), {"cannot open"});
  fs::create_directory(tmp("emptydir"));
  expect_convert_error(tmp("emptydir"), {"without model.safetensors"});
}

TEST(ConvertConfig, ArchitectureNames) {
  ClipConfig c{512, 224, 12, 768, 16, 12, 77, 49408, 512, 8, 12, Activation::quick_gelu};
  EXPECT_EQ(c.name(), "ViT-B/16");
  c.vision_patch_size = 32;
  EXPECT_EQ(c.name(), "ViT-B/32");
  ClipConfig l{768, 336, 24, 1024, 14, 16, 77, 49408, 768, 12, 12, Activation::quick_gelu};
  EXPECT_EQ(l.name(), "ViT-L/14@336px");
  l.vocab_size = 1000;
  EXPECT_NE(l.name().find("vocab 1000"), std::string::npos);
  // OpenAI's ViT-B/16 state dict has 302 keys and the parameter counts of clip.md §1.1.
  auto count = [](const ClipConfig& cfg) {
    int64_t n = 0;
    for (const auto& [name, shape] : expected_clip_tensors(cfg)) n += shape.numel();
    return n;
  };
  c.vision_patch_size = 16;
  EXPECT_EQ(expected_clip_tensors(c).size(), 302u);
  EXPECT_EQ(count(c), 149620737);
  c.vision_patch_size = 32;
  EXPECT_EQ(count(c), 151277313);
  l.vocab_size = 49408;
  l.image_resolution = 224;
  EXPECT_EQ(l.name(), "ViT-L/14");
  EXPECT_EQ(count(l), 427616513);
  // The presets by name give back the same configs, and round-trip through name().
  for (const char* n : {"ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"}) {
    const ClipConfig p = ClipConfig::openai(n);
    EXPECT_EQ(p.name(), n);
    EXPECT_TRUE(p.problems().empty()) << n;
  }
  ClipConfig b16 = c;
  b16.vision_patch_size = 16;
  EXPECT_EQ(ClipConfig::openai("ViT-B/16").to_json(), b16.to_json());
  EXPECT_EQ(count(ClipConfig::openai("ViT-L/14")), 427616513);
  try {
    ClipConfig::openai("ViT-H/14");
    ADD_FAILURE() << "no error for an unknown name";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ViT-L/14@336px"), std::string::npos) << e.what();
  }
}

}  // namespace
