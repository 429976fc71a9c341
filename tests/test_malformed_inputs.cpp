/*
 * test_malformed_inputs.cpp — seeded mutation tests over every reader of user files: pickles and
 * TorchScript / torch.save archives (tgpt-convert), ZIP structure, safetensors, images (PNG, BMP,
 * JPEG, GIF; and WebP, TIFF, PPM/PGM through the golden decode fixtures), BPE merges files, CoOp split and templates JSON, and arbitrary bytes as tokenizer
 * text. Each damaged input must give either a result or a tgpt::Error: any other exception fails
 * here, and a crash, an out-of-bounds access or undefined behaviour fails the sanitizer build
 * (scripts/test.sh runs these tests under ASan + UBSan). Each test also requires that a good part
 * of its mutants were rejected, so a reader that ignores its input cannot pass.
 * Mutations: tests/test_files.h mutate_bytes (byte overwrites, boundary 32-bit values,
 * truncation, deleted / duplicated / inserted slices), from a fixed seed per test.
 */
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <stdlib.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "data/captions.h"
#include "data/dataset.h"
#include "data/fewshot.h"
#include "data/image.h"
#include "base/error.h"
#include "engine/random.h"
#include "engine/safetensors.h"
#include "convert/pickle_reader.h"
#include "convert/torch_checkpoint.h"
#include "convert/zip_reader.h"
#include "models/clip/clip.h"
#include "convert/clip_convert.h"
#include "models/tokenizer.h"
#include "tests/test_files.h"
#include "tests/test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

// Input k of a run: the undamaged input for k < originals, a mutant after.
std::string variant(const std::string& s, int k, std::mt19937_64& rng, size_t lo = 0,
                    size_t hi = std::string::npos, int originals = 1) {
  return k < originals ? s : test::mutate_bytes(s, rng, lo, hi);
}

// Counts how a batch of damaged inputs was handled.
struct Outcome {
  int ok = 0, rejected = 0;
  std::string first_error;
  // Runs f: a result counts as ok, a tgpt::Error as rejected, anything else is a failure. The
  // undamaged input (original) must give a result, or the harness itself is broken.
  void run(const std::function<void()>& f, const std::string& what, bool original = false) {
    try {
      f();
      ++ok;
    } catch (const Error& e) {
      if (original) ADD_FAILURE() << what << ": the undamaged input was rejected: " << e.what();
      if (rejected++ == 0) first_error = e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": escaped as a non-tgpt exception: " << e.what();
    }
  }
  void print(const std::string& what) const {
    std::printf("  %s: %d mutants read, %d rejected with a tgpt::Error (first: %s)\n", what.c_str(),
                ok, rejected, first_error.substr(0, first_error.find('\n')).c_str());
  }
};

class Malformed : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "tgpt_malformed_XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string tmp(const std::string& name) const { return (dir_ / name).string(); }
  static std::string fixture(const std::string& name) {
    return (fs::path(test::golden_dir()) / name).string();
  }
  static bool have(const std::string& name) {
    return !test::golden_dir().empty() && fs::exists(fixture(name));
  }
  fs::path dir_;
};

// The entries of a ZIP archive, in order, with their (uncompressed) bytes.
std::vector<std::pair<std::string, std::string>> zip_entries(const std::string& path) {
  ZipArchive z = ZipArchive::open(path);
  std::vector<std::pair<std::string, std::string>> v;
  for (const ZipEntry& e : z.entries()) v.emplace_back(e.name, z.read(e));
  return v;
}

size_t find_pickle(const std::vector<std::pair<std::string, std::string>>& entries) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& n = entries[i].first;
    if (n.size() >= 9 && n.compare(n.size() - 9, 9, "/data.pkl") == 0) return i;
  }
  return entries.size();
}

// ---- pickles and torch archives -------------------------------------------------------------

TEST_F(Malformed, PickleMutations) {
  for (const char* name :
       {"convert/openai_jit.pt", "convert/state_dict.pt", "convert/open_clip.pt"}) {
    if (!have(name)) GTEST_SKIP() << "golden fixtures not generated (run ctest)";
    const auto entries = zip_entries(fixture(name));
    const size_t i = find_pickle(entries);
    ASSERT_LT(i, entries.size()) << name;
    const std::string& pkl = entries[i].second;
    std::mt19937_64 rng(101);
    Outcome o;
    for (int k = 0; k < 1500; ++k) {
      const std::string bad = variant(pkl, k, rng);
      o.run([&] { read_pickle(bad, "mutant"); }, std::string(name) + " mutant " + std::to_string(k),
            k < 1);
    }
    o.print(name);
    EXPECT_GT(o.rejected, 500) << name << ": ok " << o.ok;
  }
}

// A damaged data.pkl inside an otherwise valid archive (correct CRCs), through the converter.
TEST_F(Malformed, TorchArchiveWithDamagedPickle) {
  for (const char* name : {"convert/state_dict.pt", "convert/openai_jit.pt"}) {
    if (!have(name)) GTEST_SKIP() << "golden fixtures not generated (run ctest)";
    auto entries = zip_entries(fixture(name));
    const size_t i = find_pickle(entries);
    ASSERT_LT(i, entries.size()) << name;
    const std::string pkl = entries[i].second;
    ConvertOptions quick_gelu;  // a state dict does not record the activation
    quick_gelu.activation = "quick_gelu";
    std::mt19937_64 rng(202);
    Outcome o;
    for (int k = 0; k < 80; ++k) {
      entries[i].second = variant(pkl, k, rng);
      const std::string path = tmp("mutant.pt");
      test::write_file(path, test::make_zip(entries));
      o.run([&] { convert_clip(path, quick_gelu); },
            std::string(name) + " mutant " + std::to_string(k), k < 1);
    }
    o.print(name);
    EXPECT_GT(o.rejected, 40) << name << ": ok " << o.ok;
  }
}

TEST_F(Malformed, ZipStructure) {
  // A small hand-made archive, damaged anywhere.
  const std::string zip = test::make_zip({{"a/data.pkl", std::string("\x80\x02}q\x00.", 6)},
                                          {"a/data/0", std::string(64, 'x')},
                                          {"a/version", "3\n"}});
  std::mt19937_64 rng(303);
  Outcome o;
  for (int k = 0; k < 600; ++k) {
    const std::string path = tmp("m.zip");
    test::write_file(path, variant(zip, k, rng));
    o.run(
        [&] {
          ZipArchive z = ZipArchive::open(path);
          for (const ZipEntry& e : z.entries()) (void)z.read(e);
        },
        "zip mutant " + std::to_string(k), k < 1);
  }
  o.print("hand-made zip");
  EXPECT_GT(o.rejected, 300) << "ok " << o.ok;

  // The TorchScript fixture with its local headers, central directory and end record damaged.
  if (!have("convert/openai_jit.pt")) GTEST_SKIP() << "golden fixtures not generated";
  const std::string jit = test::read_file(fixture("convert/openai_jit.pt"));
  Outcome o2;
  for (int k = 0; k < 60; ++k) {
    const bool tail = k % 2 == 0;
    const size_t lo = tail ? jit.size() - std::min<size_t>(jit.size(), 16384) : 0;
    const size_t hi = tail ? jit.size() : 4096;
    const std::string path = tmp("m.pt");
    test::write_file(path, variant(jit, k, rng, lo, hi));
    o2.run([&] { convert_clip(path, {}); }, "openai_jit mutant " + std::to_string(k), k < 1);
  }
  o2.print("openai_jit.pt headers");
  EXPECT_GT(o2.rejected, 30) << "ok " << o2.ok;
}

// ---- safetensors ------------------------------------------------------------------------------

TEST_F(Malformed, SafetensorsMutations) {
  Generator gen(7);
  const std::string good = tmp("good.safetensors");
  save_safetensors(good,
                   {{"a", gen.randn({3, 5})},
                    {"b", gen.randn({2, 2, 2}).to(DType::f16)},
                    {"c", Tensor::zeros({4}, DType::i64)},
                    {"d", gen.randn({0, 3})}},
                   {{"tgpt.note", "x"}});
  const std::string bytes = test::read_file(good);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = header << 8 | static_cast<uint8_t>(bytes[i]);
  ASSERT_LT(header + 8, bytes.size());
  std::mt19937_64 rng(404);
  Outcome o;
  for (int k = 0; k < 1000; ++k) {
    // Mostly the length prefix and the JSON header; sometimes anywhere.
    const size_t hi = k % 5 == 4 ? bytes.size() : static_cast<size_t>(header) + 8;
    const std::string path = tmp("m.safetensors");
    test::write_file(path, variant(bytes, k, rng, 0, hi));
    o.run(
        [&] {
          SafetensorsFile f = SafetensorsFile::open(path);
          for (const std::string& n : f.names()) {
            Tensor t = f.get(n);
            if (t.numel() > 0) (void)t.to(DType::f64).contiguous();
          }
          (void)f.metadata();
        },
        "safetensors mutant " + std::to_string(k), k < 1);
  }
  o.print("safetensors");
  EXPECT_GT(o.rejected, 500) << "ok " << o.ok;
}

// ---- images -----------------------------------------------------------------------------------

void append_bytes(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

TEST_F(Malformed, ImageMutations) {
  const int w = 37, h = 23;
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 4);
  std::mt19937_64 rng(505);
  for (auto& p : px) p = static_cast<uint8_t>(rng() & 0xff);
  std::vector<std::pair<std::string, std::string>> seeds;
  std::string png, png_rgba, bmp, jpg, jpg_grey;
  ASSERT_TRUE(stbi_write_png_to_func(append_bytes, &png, w, h, 3, px.data(), w * 3));
  ASSERT_TRUE(stbi_write_png_to_func(append_bytes, &png_rgba, w, h, 4, px.data(), w * 4));
  ASSERT_TRUE(stbi_write_bmp_to_func(append_bytes, &bmp, w, h, 3, px.data()));
  ASSERT_TRUE(stbi_write_jpg_to_func(append_bytes, &jpg, w, h, 3, px.data(), 90));
  ASSERT_TRUE(stbi_write_jpg_to_func(append_bytes, &jpg_grey, w, h, 1, px.data(), 75));
  seeds = {
      {"png", png}, {"png_rgba", png_rgba}, {"bmp", bmp}, {"jpg", jpg}, {"jpg_grey", jpg_grey}};
  // Files written by PIL (palette GIF, progressive JPEG, ...) when the golden fixtures exist.
  if (!test::golden_dir().empty() && fs::is_directory(fixture("image")))
    for (const auto& e : fs::directory_iterator(fixture("image")))
      if (e.path().filename().string().rfind("dec_", 0) == 0 && e.path().extension() != ".rgb")
        seeds.emplace_back(e.path().filename().string(), test::read_file(e.path().string()));
  for (const auto& [name, data] : seeds) {
    Outcome o;
    for (int k = 0; k < 300; ++k) {
      const std::string bad = variant(data, k, rng);
      o.run(
          [&] {
            Image im = decode_image_memory(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(),
                                           "mutant");
            EXPECT_GT(im.width, 0);
            EXPECT_GT(im.height, 0);
            EXPECT_EQ(im.pixels.size(), static_cast<size_t>(im.width * im.height * 3));
          },
          name + " mutant " + std::to_string(k), k < 1);
    }
    o.print(name);
    EXPECT_GT(o.rejected, 30) << name << ": ok " << o.ok;
  }
}

// ---- text inputs ------------------------------------------------------------------------------

TEST_F(Malformed, MergesFileMutations) {
  std::string merges = "#version: 0.2\n";
  for (const char* m : {"t h", "th e</w>", "a n", "i n", "o n</w>", "e r", "a t"})
    merges += std::string(m) + "\n";
  // Gzip-compressed copy too (OpenAI's bpe_simple_vocab_16e6.txt.gz).
  const std::string gz_path = tmp("merges.txt.gz");
  gzFile g = gzopen(gz_path.c_str(), "wb");
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(gzwrite(g, merges.data(), static_cast<unsigned>(merges.size())),
            static_cast<int>(merges.size()));
  gzclose(g);
  const std::string gz = test::read_file(gz_path);
  std::mt19937_64 rng(606);
  Outcome o;
  for (int k = 0; k < 600; ++k) {
    const std::string path = tmp(k % 2 ? "m.txt" : "m.txt.gz");
    const std::string bad = variant(k % 2 ? merges : gz, k, rng, 0, std::string::npos, 2);
    test::write_file(path, bad);
    o.run(
        [&] {
          // The file reader (as tgpt-convert --vocab uses it), then the tokenizer on its result
          // and, for the plain-text mutants, on the damaged text itself.
          const ClipTokenizer t("#version: 0.2\n" + read_bpe_merges(path, 0), "mutant");
          (void)t.encode("the cat sat on a mat");
          if (k % 2) (void)ClipTokenizer(bad, "mutant").encode("an ant");
        },
        "merges mutant " + std::to_string(k), k < 2);
  }
  o.print("merges files");
  EXPECT_GT(o.rejected, 100) << "ok " << o.ok;
}

TEST_F(Malformed, TokenizerArbitraryBytes) {
  const ClipTokenizer tok("#version: 0.2\nt h\nth e</w>\na n\n");
  std::mt19937_64 rng(707);
  // Fragments that exercise cleaning and pre-tokenisation, glued with random bytes.
  const std::vector<std::string> parts = {"&amp;",
                                          "&#x1F600;",
                                          "&#99999999999;",
                                          "&",
                                          "<|endoftext|>",
                                          "<|startoftext|>",
                                          "'s",
                                          "\xe2\x80\x99",
                                          "\xef\xac\x81",
                                          "\xef\xbc\xa1",
                                          "\x1b[31m",
                                          "\xcc\x81",
                                          "\xf0\x9f\x98\x80",
                                          "\xed\xa0\x80",
                                          "\xc0\xaf",
                                          "\xff",
                                          "\xf4\x90\x80\x80",
                                          "\r\n",
                                          "\t",
                                          "123",
                                          "A",
                                          " "};
  Outcome o;
  for (int k = 0; k < 3000; ++k) {
    std::string s;
    const int n = static_cast<int>(rng() % 24);
    for (int i = 0; i < n; ++i) {
      if (rng() % 3 == 0)
        s += char(rng() & 0xff);
      else
        s += parts[rng() % parts.size()];
    }
    o.run(
        [&] {
          (void)clip_clean_text(s);
          (void)tok.encode(s);
          (void)tok.tokenize({s}, ClipTokenizer::kContextLength, true);
        },
        "text " + std::to_string(k));
  }
  o.print("tokenizer texts");
  EXPECT_GT(o.rejected, 300) << "ok " << o.ok;  // invalid UTF-8 is an error
  EXPECT_GT(o.ok, 300) << "rejected " << o.rejected;
}

TEST_F(Malformed, SplitAndTemplatesJson) {
  const std::string split =
      R"({"train": [["a/1.jpg", 0, "cat"], ["b/2.jpg", 1, "dog"]],)"
      R"( "val": [["a/3.jpg", 0, "cat"]], "test": [["b/4.jpg", 1, "dog"], ["a/5.jpg", 0, "cat"]]})";
  const std::string templates = R"({"OxfordPets": ["a photo of a {}.", "a {} pet."],)"
                                R"( "Caltech101": ["{} in the wild"]})";
  std::mt19937_64 rng(808);
  Outcome o_split, o_templates;
  for (int k = 0; k < 600; ++k) {
    const std::string sp = tmp("split_zhou_X.json"), tp = tmp("templates.json");
    test::write_file(sp, variant(split, k, rng));
    test::write_file(tp, variant(templates, k, rng));
    o_split.run(
        [&] {
          CoopSplit s = read_coop_split(sp, dir_.string());
          for (const char* sub : {"train", "val", "test"}) {
            try {
              (void)coop_split_subset(s, sub);
            } catch (const Error&) {  // an empty subset is an error; the others still run
            }
          }
        },
        "split mutant " + std::to_string(k), k < 1);
    o_templates.run([&] { (void)read_templates_file(tp); }, "templates mutant " + std::to_string(k),
                    k < 1);
  }
  o_split.print("CoOp split");
  EXPECT_GT(o_split.rejected, 300) << "ok " << o_split.ok;
  o_templates.print("templates");
  EXPECT_GT(o_templates.rejected, 300) << "ok " << o_templates.ok;
}

// Caption files and few-shot draws (data/captions.h, data/fewshot.h) from damaged inputs: a
// result or a tgpt::Error, never a crash. The few-shot split of each readable split mutant is
// written and read back.
TEST_F(Malformed, CaptionsAndFewshotSplits) {
  const std::string captions =
      "a/1.jpg\tA cat on a mat.\tcat\r\nb/2.jpg\tA dog.\n00467.jpg\tA car.\n\na/3.jpg\tA cat.\n";
  const std::string split =
      R"({"train": [["a/1.jpg", 0, "cat"], ["b/2.jpg", 1, "dog"], ["a/3.jpg", 0, "cat"]],)"
      R"( "val": [["a/3.jpg", 0, "cat"]], "test": [["b/4.jpg", 1, "dog"]]})";
  std::mt19937_64 rng(909);
  Outcome o_captions, o_split;
  for (int k = 0; k < 600; ++k) {
    const std::string text = variant(captions, k, rng);
    o_captions.run(
        [&] {
          for (const CaptionKeyRule rule :
               {CaptionKeyRule::RelativePath, CaptionKeyRule::StanfordCars,
                CaptionKeyRule::FGVCAircraft, CaptionKeyRule::ImageNet}) {
            const CaptionTable t = parse_captions(text, "captions.txt", rule);
            (void)count_captioned(t, {{"/r/a/1.jpg", 0, "a/1.jpg"}, {"/r/x", 0, ""}});
          }
        },
        "captions mutant " + std::to_string(k), k < 1);
    const std::string sp = tmp("split_zhou_X.json"), out = tmp("fewshot.json");
    test::write_file(sp, variant(split, k, rng));
    o_split.run(
        [&] {
          const CoopSplit s = read_coop_split(sp, dir_.string());
          const FewshotSplit f = generate_fewshot(s, 1 + k % 3, k % 5);
          write_fewshot_split(out, f);
          (void)read_fewshot_split(out, dir_.string());
        },
        "few-shot split mutant " + std::to_string(k), k < 1);
  }
  o_captions.print("captions");
  EXPECT_GT(o_captions.rejected, 100) << "ok " << o_captions.ok;
  EXPECT_GT(o_captions.ok, 100) << "rejected " << o_captions.rejected;
  o_split.print("few-shot splits");
  EXPECT_GT(o_split.rejected, 300) << "ok " << o_split.ok;
}

// A JPEG whose Huffman table declares more than 256 codes (stb_image 2.27, which tgpt once used
// for JPEG, wrote past its tables on such a file) is refused, also when the segment is cut short.
TEST_F(Malformed, JpegHuffmanTableWithTooManyCodes) {
  const int w = 16, h = 8;
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3, 100);
  std::string jpg;
  ASSERT_TRUE(stbi_write_jpg_to_func(append_bytes, &jpg, w, h, 3, px.data(), 90));
  ASSERT_NO_THROW(decode_image_memory(reinterpret_cast<const uint8_t*>(jpg.data()), jpg.size()));
  const size_t dht = jpg.find("\xff\xc4");
  ASSERT_NE(dht, std::string::npos);
  std::string bad = jpg;
  for (int i = 0; i < 16; ++i) bad[dht + 5 + i] = char(20);  // 16 counts of 20: 320 codes
  for (const std::string& b : {bad, bad.substr(0, dht + 40)}) {
    try {
      decode_image_memory(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "x.jpg");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("x.jpg: corrupt JPEG"), std::string::npos) << e.what();
    }
  }
}

// Damaged metadata of a tgpt CLIP weight file (the tgpt.config JSON, the format fields) through
// ClipModel::load, and a damaged config.json beside a Hugging Face model through the converter.
TEST_F(Malformed, ModelConfigJson) {
  if (!have("clip_model/B.safetensors") || !have("convert/hf/config.json"))
    GTEST_SKIP() << "golden fixtures not generated (run ctest)";
  const SafetensorsFile good = SafetensorsFile::open(fixture("clip_model/B.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& n : good.names()) tensors.emplace_back(n, good.get(n));
  const std::map<std::string, std::string> meta = good.metadata();
  ASSERT_TRUE(meta.count("tgpt.config"));
  std::mt19937_64 rng(909);
  Outcome o;
  for (int k = 0; k < 200; ++k) {
    std::map<std::string, std::string> m = meta;
    const char* key = k % 10 == 9 ? "tgpt.format_version" : "tgpt.config";
    m[key] = variant(m[key], k, rng);
    for (char& c : m[key]) c = static_cast<char>(c & 0x7f);  // metadata must stay UTF-8 to save
    const std::string path = tmp("model.safetensors");
    save_safetensors(path, tensors, m);
    o.run(
        [&] {
          const ClipModel model = ClipModel::load(path);
          (void)model.config().name();
        },
        "model config mutant " + std::to_string(k), k < 1);
  }
  o.print("tgpt.config");
  EXPECT_GT(o.rejected, 100) << "ok " << o.ok;

  // HF folder: config.json damaged, model.safetensors intact.
  const fs::path hf = dir_ / "hf";
  fs::create_directories(hf);
  fs::copy_file(fixture("convert/hf/model.safetensors"), hf / "model.safetensors");
  fs::copy_file(fixture("convert/hf/merges.txt"), hf / "merges.txt");
  const std::string config = test::read_file(fixture("convert/hf/config.json"));
  Outcome o2;
  for (int k = 0; k < 200; ++k) {
    test::write_file((hf / "config.json").string(), variant(config, k, rng));
    o2.run([&] { (void)convert_clip(hf.string(), {}); }, "hf config mutant " + std::to_string(k),
           k < 1);
  }
  o2.print("HF config.json");
  EXPECT_GT(o2.rejected, 100) << "ok " << o2.ok;
}

}  // namespace
