/*
 * test_tools_data.cpp — the tgpt-data binary (run with std::system from the build folder) on a
 * small dataset in the CoOp layout written by the test: `split` writes the few-shot split file
 * that the library draws (data/fewshot.h) and checks captions; `check` reports sizes, missing
 * images and captions; bad input exits 1 with a message and no file, never a crash.
 */
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/fewshot.h"
#include "tests/test_files.h"
#include "tests/tool_test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

using test::tool_path;
std::string q(const fs::path& p) {
  return test::shell_quote(p);
}

class DataToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bin_ = tool_path("tgpt-data");
    if (!fs::exists(bin_)) GTEST_SKIP() << "tgpt-data not built next to the tests";
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::temp_directory_path() /
           ("tgpt_test_tools_data_" + std::to_string(getpid()) + "_" + test);
    fs::remove_all(dir_);
    // $DATA/oxford_pets/{images/, split_zhou_OxfordPets.json, captions.txt}: 3 classes, the
    // second smaller than 4 shots. Images are empty files (nothing here decodes them).
    ds_ = dir_ / "data" / "oxford_pets";
    nlohmann::ordered_json split = {{"train", nlohmann::json::array()},
                                    {"val", nlohmann::json::array()},
                                    {"test", nlohmann::json::array()}};
    const char* names[3] = {"abyssinian", "boxer", "pug"};
    const int sizes[3][3] = {{8, 5, 2}, {3, 5, 2}, {12, 5, 2}};
    std::string caps;
    for (const char* subset : {"train", "val", "test"}) {
      const int s = subset[1] == 'r' ? 0 : subset[0] == 'v' ? 1 : 2;
      for (int i = 0; i < 12; ++i)
        for (int c = 0; c < 3; ++c) {
          if (i >= sizes[c][s]) continue;
          const std::string rel = std::string(names[c]) + "_" + subset + std::to_string(i) + ".jpg";
          split[subset].push_back({rel, c, names[c]});
          write(ds_ / "images" / rel, "");
          if (s == 0) caps += rel + "\tA photo of a pet.\t" + names[c] + "\n";
        }
    }
    split_text_ = split.dump(4);
    write(ds_ / "split_zhou_OxfordPets.json", split_text_);
    write(ds_ / "captions.txt", caps);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  static void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    test::write_file(p.string(), text);
  }
  // Runs the tool with `args`; returns the exit status (-1 when it did not exit normally).
  int run(const std::string& args, std::string* output) {
    const fs::path log = dir_ / "cmd.log";
    const int st = std::system((q(bin_) + " " + args + " > " + q(log) + " 2>&1").c_str());
    *output = test::read_file(log.string());
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
  }
  std::string coop_args() const {
    return "--dataset-dir " + q(ds_) + " --split-json " + q(ds_ / "split_zhou_OxfordPets.json") +
           " --image-root " + q(ds_ / "images");
  }

  fs::path bin_, dir_, ds_;
  std::string split_text_;
};

}  // namespace

TEST_F(DataToolTest, SplitWritesTheLibraryDraw) {
  std::string out;
  const fs::path file = dir_ / "out" / "shot_4-seed_1.json";
  ASSERT_EQ(run("split " + coop_args() + " --shots 4 --seed 1 -o " + q(file), &out), 0) << out;
  EXPECT_NE(out.find("train:        11 images (4 shots, seed 1); 1 class(es) have fewer than 4"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("every training image has one"), std::string::npos) << out;
  // The file holds the library's draw, in draw order.
  const CoopSplit src =
      read_coop_split((ds_ / "split_zhou_OxfordPets.json").string(), (ds_ / "images").string());
  const FewshotSplit want = generate_fewshot(src, 4, 1);
  const CoopSplit got = read_coop_split(file.string(), (ds_ / "images").string(), true);
  ASSERT_EQ(got.train.size(), want.train.size());
  for (size_t i = 0; i < got.train.size(); ++i)
    EXPECT_EQ(got.train[i].relpath, want.train[i].relpath) << i;
  ASSERT_EQ(got.val.size(), want.val.size());
  for (size_t i = 0; i < got.val.size(); ++i) EXPECT_EQ(got.val[i].relpath, want.val[i].relpath);
  EXPECT_EQ(got.test.size(), src.test.size());

  // The same through --dataset / --root; another seed draws another split.
  const fs::path file2 = dir_ / "by_name.json";
  ASSERT_EQ(run("split --dataset OxfordPets --root " + q(dir_ / "data") +
                    " --shots 4 --seed 1 -o " + q(file2),
                &out),
            0)
      << out;
  EXPECT_EQ(nlohmann::json::parse(test::read_file(file2.string()))["train"],
            nlohmann::json::parse(test::read_file(file.string()))["train"]);
  ASSERT_EQ(run("split " + coop_args() + " --shots 4 --seed 2 -o " + q(file2), &out), 0) << out;
  EXPECT_NE(nlohmann::json::parse(test::read_file(file2.string()))["train"],
            nlohmann::json::parse(test::read_file(file.string()))["train"]);
}

TEST_F(DataToolTest, SplitErrors) {
  const fs::path file = dir_ / "bad.json";
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"split " + coop_args() + " --shots 0 --seed 1 -o " + q(file), "--shots must be >= 1"},
      {"split " + coop_args() + " --shots 4 --seed -3 -o " + q(file), "--seed must be >= 0"},
      {"split " + coop_args() + " --shots 4 -o " + q(file), "--seed"},  // required
      {"split --dataset-dir " + q(ds_) + " --split-json " + q(ds_ / "nope.json") +
           " --image-root " + q(ds_ / "images") + " --shots 4 --seed 1 -o " + q(file),
       "does not exist"},
      {"split --dataset Cifar10 --root " + q(dir_ / "data") + " --shots 4 --seed 1 -o " + q(file),
       "unknown dataset \"Cifar10\""},
      {"split --dataset FGVCAircraft --root " + q(dir_) + " --shots 4 --seed 1 -o " + q(file),
       "fgvc_aircraft' does not exist or is not a folder"},
      {"split --dataset OxfordPets --shots 4 --seed 1 -o " + q(file), "needs --root"},
      {"split --shots 4 --seed 1 -o " + q(file), "give --dataset-dir"},
      {"", ""},  // no subcommand
  };
  for (const Case& c : cases) {
    std::string out;
    EXPECT_EQ(run(c.args, &out), 1) << c.args << "\n" << out;
    EXPECT_NE(out.find(c.expect), std::string::npos) << c.args << "\n" << out;
  }
  // Damaged JSON, labels out of order, missing captions, a missing image.
  std::string out;
  write(ds_ / "split_zhou_OxfordPets.json", split_text_.substr(0, split_text_.size() / 2));
  EXPECT_EQ(run("split " + coop_args() + " --shots 4 --seed 1 -o " + q(file), &out), 1);
  EXPECT_NE(out.find("not valid JSON"), std::string::npos) << out;
  nlohmann::json j = nlohmann::json::parse(split_text_);
  j["test"][0][1] = 7;
  j["test"][0][2] = "seven";
  write(ds_ / "split_zhou_OxfordPets.json", j.dump());
  EXPECT_EQ(run("split " + coop_args() + " --shots 4 --seed 1 -o " + q(file), &out), 1);
  EXPECT_NE(out.find("labels must be 0..K-1"), std::string::npos) << out;
  write(ds_ / "split_zhou_OxfordPets.json", split_text_);
  write(ds_ / "captions.txt", "abyssinian_train0.jpg\tOnly one.\n");
  EXPECT_EQ(run("split " + coop_args() + " --shots 4 --seed 1 -o " + q(file), &out), 1);
  EXPECT_NE(out.find("have no caption"), std::string::npos) << out;
  EXPECT_EQ(run("split " + coop_args() + " --shots 4 --seed 1 --no-captions -o " + q(file), &out),
            0)
      << out;
  fs::remove(file);
  fs::remove(ds_ / "images" / "pug_test1.jpg");
  EXPECT_EQ(run("split " + coop_args() + " --shots 4 --seed 1 --no-captions -o " + q(file), &out),
            1);
  EXPECT_NE(out.find("pug_test1.jpg"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(DataToolTest, Check) {
  std::string out;
  ASSERT_EQ(run("check --dataset oxford_pets --root " + q(dir_ / "data"), &out), 0) << out;
  EXPECT_NE(out.find("classes:        3"), std::string::npos) << out;
  EXPECT_NE(out.find("train           23 images, 3..12 per class"), std::string::npos) << out;
  EXPECT_NE(out.find("warning: train has 23 images; the published OxfordPets split has 2944"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("train         23 of 23 images have a caption"), std::string::npos) << out;
  EXPECT_NE(out.find("test          0 of 6 images have a caption"), std::string::npos) << out;
  EXPECT_NE(out.find("check passed"), std::string::npos) << out;
  ASSERT_EQ(run("check " + coop_args() + " --shots 2 --seed 3", &out), 0) << out;
  EXPECT_NE(out.find("few-shot train (2 shots, seed 3): all 6 images have a caption"),
            std::string::npos)
      << out;

  // Problems: a missing image and missing captions, reported together.
  fs::remove(ds_ / "images" / "boxer_val2.jpg");
  write(ds_ / "captions.txt", "abyssinian_train0.jpg\tOnly one.\n");
  EXPECT_EQ(run("check " + coop_args(), &out), 1) << out;
  EXPECT_NE(out.find("check found 2 problem(s)"), std::string::npos) << out;
  EXPECT_NE(out.find("boxer_val2.jpg"), std::string::npos) << out;
  EXPECT_NE(out.find("22 of 23 image(s) have no caption"), std::string::npos) << out;
  // Damaged caption file; no caption file at all is only a note.
  write(ds_ / "captions.txt", "no tab on this line\n");
  EXPECT_EQ(run("check " + coop_args(), &out), 1) << out;
  EXPECT_NE(out.find("line 1: no tab"), std::string::npos) << out;
  fs::remove(ds_ / "captions.txt");
  write(ds_ / "images" / "boxer_val2.jpg", "");
  EXPECT_EQ(run("check " + coop_args(), &out), 0) << out;
  EXPECT_NE(out.find("captions:       none"), std::string::npos) << out;
  // --deep decodes every image: the fixture's empty files cannot be, a tiny PGM can (the
  // decoders go by the bytes, not the name).
  EXPECT_EQ(run("check " + coop_args() + " --deep", &out), 1) << out;
  EXPECT_NE(out.find("23 of 23 train image(s) cannot be decoded"), std::string::npos) << out;
  EXPECT_NE(out.find("abyssinian_train0.jpg"), std::string::npos) << out;
  for (const auto& e : fs::directory_iterator(ds_ / "images"))
    write(e.path(), std::string("P5\n2 2\n255\n") + std::string("\x10\x20\x30\x40", 4));
  ASSERT_EQ(run("check " + coop_args() + " --deep", &out), 0) << out;
  EXPECT_NE(out.find("train         all 23 images decode"), std::string::npos) << out;
  EXPECT_NE(out.find("check passed"), std::string::npos) << out;
  // Bad arguments.
  EXPECT_EQ(run("check " + coop_args() + " --shots 0 --seed 1", &out), 1) << out;
  EXPECT_EQ(run("check " + coop_args() + " --shots 2", &out), 1) << out;
  EXPECT_EQ(run("check --dataset-dir " + q(ds_) + " --split-json " + q(ds_ / "captions.txt") +
                    " --image-root " + q(ds_ / "images"),
                &out),
            1)
      << out;
}
