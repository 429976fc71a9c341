/*
 * test_fewshot.cpp — the Dassl / TGP-T few-shot draw (data/fewshot.h) against the Python
 * reference of tests/golden/gen_python_random.py (synthetic label lists, interleaved or grouped,
 * classes smaller than K, several seeds and shots, CoOp's and ImageNet's val rules), compared
 * exactly; captions files (data/captions.h: key rules, CRLF, errors naming file and line); the
 * few-shot split file (written, read back with read_coop_split, byte for byte what Python's
 * json.dump(indent=4) writes for the reference draw of a synthetic split, then the "fewshot"
 * record); load_coop_fewshot; the dataset table; bad input.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "data/captions.h"
#include "data/dataset.h"
#include "data/dataset_layout.h"
#include "data/fewshot.h"
#include "data/python_random.h"
#include "data/synth/world.h"
#include "tests/test_files.h"
#include "tests/test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

using test::error_message;

// prefix + decimal i.
std::string numbered(const char* prefix, int i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

class FewshotFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ =
        fs::temp_directory_path() / ("tgpt_test_fewshot_" + std::to_string(getpid()) + "_" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    test::write_file(p.string(), text);
  }
  fs::path dir_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Few-shot draw

TEST(Fewshot, MatchesPythonReference) {
  const nlohmann::json j = test::load_golden_json("python_random/fewshot.json");
  if (j.is_null()) GTEST_SKIP() << "run via ctest (tests/golden/gen_python_random.py)";
  ASSERT_GE(j["cases"].size(), 50u);
  size_t with_small_class = 0;
  for (const auto& c : j["cases"]) {
    const auto& d = j["datasets"][c["dataset"].get<std::string>()];
    const auto train_labels = d["train_labels"].get<std::vector<int64_t>>();
    const auto val_labels = d["val_labels"].get<std::vector<int64_t>>();
    const int64_t shots = c["shots"], seed = c["seed"];
    const FewshotValRule rule =
        c["val_rule"] == "imagenet" ? FewshotValRule::MaxShots8 : FewshotValRule::MinShots4;
    const FewshotIndices got = draw_fewshot_indices(train_labels, val_labels, shots, seed, rule);
    const std::string what = c["dataset"].get<std::string>() + " shots " + std::to_string(shots) +
                             " seed " + std::to_string(seed) + " " +
                             c["val_rule"].get<std::string>();
    ASSERT_EQ(got.train, c["train"].get<std::vector<size_t>>()) << what;
    ASSERT_EQ(got.val, c["val"].get<std::vector<size_t>>()) << what;
    std::map<int64_t, int64_t> per_class;
    for (const int64_t y : train_labels) ++per_class[y];
    for (const auto& [y, n] : per_class) with_small_class += n < shots;
  }
  EXPECT_GT(with_small_class, 0u);  // classes smaller than K occur
}

TEST(Fewshot, DrawRules) {
  // Labels in first-appearance order 2, 0, 1; class 1 has fewer than K items and keeps them all.
  const std::vector<int64_t> labels = {2, 0, 2, 1, 0, 2, 0, 2, 0};
  PythonRandom r(7), ref(7);
  const std::vector<size_t> got = sample_per_label(labels, 3, r);
  // Reference: per group in that order, sample(range(len), 3) positions.
  const std::vector<std::vector<size_t>> groups = {{0, 2, 5, 7}, {1, 4, 6, 8}, {3}};
  std::vector<size_t> want;
  for (const auto& g : groups) {
    if (g.size() >= 3) {
      for (const int64_t p : ref.sample(static_cast<int64_t>(g.size()), 3)) want.push_back(g[p]);
    } else {
      want.insert(want.end(), g.begin(), g.end());
    }
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(fewshot_val_shots(1, FewshotValRule::MinShots4), 1);
  EXPECT_EQ(fewshot_val_shots(16, FewshotValRule::MinShots4), 4);
  EXPECT_EQ(fewshot_val_shots(4, FewshotValRule::MaxShots8), 8);
  EXPECT_EQ(fewshot_val_shots(16, FewshotValRule::MaxShots8), 16);
  EXPECT_NE(
      error_message([&] { draw_fewshot_indices(labels, labels, 0, 1); }).find("shots must be >= 1"),
      std::string::npos);
  EXPECT_NE(
      error_message([&] { draw_fewshot_indices(labels, labels, 4, -1); }).find("seed must be >= 0"),
      std::string::npos);
}

TEST(Fewshot, GenerateFromSplit) {
  CoopSplit s;
  s.classnames = {"a", "b"};
  for (int i = 0; i < 6; ++i) s.train.push_back({numbered("/r/t", i), i % 2, numbered("t", i)});
  for (int i = 0; i < 4; ++i) s.val.push_back({numbered("/r/v", i), i % 2, numbered("v", i)});
  s.test = {{"/r/x", 1, "x"}};
  const FewshotSplit f = generate_fewshot(s, 2, 3);
  const FewshotIndices idx =
      draw_fewshot_indices({0, 1, 0, 1, 0, 1}, {0, 1, 0, 1}, 2, 3, FewshotValRule::MinShots4);
  ASSERT_EQ(f.train.size(), 4u);
  ASSERT_EQ(f.val.size(), 4u);  // min(2, 4) = 2 per class, both classes have 2
  for (size_t i = 0; i < idx.train.size(); ++i)
    EXPECT_EQ(f.train[i].relpath, s.train[idx.train[i]].relpath);
  for (size_t i = 0; i < idx.val.size(); ++i)
    EXPECT_EQ(f.val[i].relpath, s.val[idx.val[i]].relpath);
  EXPECT_EQ(f.test.size(), 1u);
  EXPECT_EQ(f.val_shots, 2);
  // ImageNet's val from another pool with max(shots, 8).
  std::vector<LabeledImage> pool;
  for (int i = 0; i < 20; ++i) pool.push_back({numbered("/p", i), i % 2, numbered("p", i)});
  FewshotOptions o;
  o.val_rule = FewshotValRule::MaxShots8;
  o.val_pool = &pool;
  const FewshotSplit g = generate_fewshot(s, 2, 3, o);
  EXPECT_EQ(g.val.size(), 16u);
  EXPECT_EQ(g.val_shots, 8);
  for (size_t i = 0; i < g.train.size(); ++i) EXPECT_EQ(g.train[i].relpath, f.train[i].relpath);
  // Bad input.
  CoopSplit bad = s;
  bad.train[3].label = 2;
  EXPECT_NE(error_message([&] { generate_fewshot(bad, 2, 3); }).find("outside 0..1"),
            std::string::npos);
  bad = s;
  bad.train.clear();
  EXPECT_NE(error_message([&] { generate_fewshot(bad, 2, 3); }).find("train subset is empty"),
            std::string::npos);
  EXPECT_THROW(generate_fewshot(s, 0, 3), Error);
  EXPECT_THROW(generate_fewshot(s, 2, -3), Error);
}

// ---------------------------------------------------------------------------------------------
// Captions

TEST(Captions, ParseAndLookUp) {
  const std::string text =
      "\xEF\xBB\xBF"
      "cat/a.jpg\tA cat on a mat.\tcat\r\n"
      "\n"
      "dog/b.jpg\tA dog.\r\n"
      "cat/a.jpg\tA cat on a mat.\n"  // the same text again: accepted
      "sub dir/c d.png\tspaces kept\tx\ty\r"
      "old/mac.jpg\tA lone CR ends a line, as in Python's text mode.\r"
      "e.jpg\tLast.";
  const CaptionTable t = parse_captions(text, "caps.txt", CaptionKeyRule::RelativePath);
  EXPECT_EQ(t.size(), 5u);
  ASSERT_NE(t.find("old/mac.jpg"), nullptr);
  EXPECT_EQ(*t.find("e.jpg"), "Last.");
  ASSERT_NE(t.find("cat/a.jpg"), nullptr);
  EXPECT_EQ(*t.find("cat/a.jpg"), "A cat on a mat.");
  EXPECT_EQ(*t.find("dog/b.jpg"), "A dog.");
  EXPECT_EQ(*t.find("sub dir/c d.png"), "spaces kept");
  EXPECT_EQ(t.find("cat/none.jpg"), nullptr);

  // StanfordCars: bare names are keyed under cars_train/, as the split paths are.
  const CaptionTable cars = parse_captions("00467.jpg\tA red car.\ncars_train/00001.jpg\tB.\n",
                                           "c.txt", CaptionKeyRule::StanfordCars);
  ASSERT_NE(cars.find("cars_train/00467.jpg"), nullptr);
  EXPECT_EQ(*cars.find("cars_train/00467.jpg"), "A red car.");
  ASSERT_NE(cars.find("cars_train/00001.jpg"), nullptr);  // not prefixed twice
  EXPECT_EQ(cars.find("00467.jpg"), nullptr);
  EXPECT_EQ(cars.find("cars_test/00467.jpg"), nullptr);
  // FGVC: <id>.jpg, looked up by file name.
  const CaptionTable fgvc =
      parse_captions("1025794.jpg\tA plane.\n", "f.txt", CaptionKeyRule::FGVCAircraft);
  ASSERT_NE(fgvc.find("1025794.jpg"), nullptr);
  ASSERT_NE(fgvc.find("images/1025794.jpg"), nullptr);
  // ImageNet: keys relative to $DATA.
  const CaptionTable inet = parse_captions("imagenet/images/train/n01/x.JPEG\tA fish.\n", "i.txt",
                                           CaptionKeyRule::ImageNet);
  ASSERT_NE(inet.find("train/n01/x.JPEG"), nullptr);
}

TEST(Captions, Errors) {
  auto msg = [](const std::string& text) {
    return error_message(
        [&] { parse_captions(text, "bad_caps.txt", CaptionKeyRule::RelativePath); });
  };
  std::string m = msg("a.jpg\tok\nb.jpg no tab here\n");
  EXPECT_NE(m.find("bad_caps.txt' line 2"), std::string::npos) << m;
  EXPECT_NE(m.find("no tab"), std::string::npos) << m;
  m = msg("a.jpg\tok\n\tno key\n");
  EXPECT_NE(m.find("line 2: empty key"), std::string::npos) << m;
  m = msg("a.jpg\tone\nb.jpg\tx\r\na.jpg\ttwo\n");
  EXPECT_NE(m.find("line 3"), std::string::npos) << m;
  EXPECT_NE(m.find("different caption (first on line 1)"), std::string::npos) << m;
  m = msg("a.jpg\t\tcat\n");
  EXPECT_NE(m.find("empty caption"), std::string::npos) << m;
  m = msg("a.jpg\tok\r\nb.jpg\tcaf\xE9\n");  // Latin-1, not UTF-8
  EXPECT_NE(m.find("line 2: not valid UTF-8"), std::string::npos) << m;
  EXPECT_THROW(read_captions("/nonexistent/captions.txt", CaptionKeyRule::RelativePath), Error);

  // Coverage: one error counting the missing ones and naming the first keys.
  const CaptionTable t = parse_captions("a.jpg\tA.\n", "caps.txt", CaptionKeyRule::RelativePath);
  std::vector<LabeledImage> items = {
      {"/r/a.jpg", 0, "a.jpg"}, {"/r/b.jpg", 0, "b.jpg"}, {"/r/c.jpg", 1, "c.jpg"}};
  EXPECT_EQ(count_captioned(t, items), 1u);
  m = error_message([&] { check_captions(t, items, "few-shot train"); });
  EXPECT_NE(m.find("few-shot train: 2 of 3 image(s) have no caption in 'caps.txt'"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("b.jpg"), std::string::npos) << m;
  EXPECT_NE(m.find("c.jpg"), std::string::npos) << m;
  items.resize(1);
  EXPECT_EQ(captions_for(t, items, "x"), std::vector<std::string>{"A."});
}

TEST_F(FewshotFiles, CaptionsFileNames) {
  EXPECT_EQ(find_captions_file(dir_.string()), "");
  EXPECT_NE(error_message([&] {
              read_dataset_captions(dir_.string(), CaptionKeyRule::RelativePath);
            }).find("captions.txt and descriptions.txt"),
            std::string::npos);
  write(dir_ / "descriptions.txt", "a.jpg\tfrom the README's name\tcat\n");
  EXPECT_EQ(find_captions_file(dir_.string()), (dir_ / "descriptions.txt").string());
  write(dir_ / "captions.txt", "a.jpg\tfrom the code's name\n");
  const CaptionTable t = read_dataset_captions(dir_.string(), CaptionKeyRule::RelativePath);
  EXPECT_EQ(*t.find("a.jpg"), "from the code's name");  // captions.txt first, as TGP-T's code
}

// ---------------------------------------------------------------------------------------------
// Split files and the CoOp-layout loader

TEST_F(FewshotFiles, SplitFileRoundTrip) {
  // A split with a class smaller than K and a non-ASCII class name.
  nlohmann::ordered_json split = {{"train", nlohmann::json::array()},
                                  {"val", nlohmann::json::array()},
                                  {"test", nlohmann::json::array()}};
  const std::vector<std::string> names = {"caf\xC3\xA9", "dog", "sea"};
  const int per_class[3] = {9, 2, 7};
  for (int c : {1, 0, 2})
    for (int i = 0; i < per_class[c]; ++i) {
      const std::string rel = names[c] + "/tr" + std::to_string(i) + ".jpg";
      split["train"].push_back({rel, c, names[c]});
      write(dir_ / "images" / rel, "");
    }
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 5; ++i) {
      const std::string rel = names[c] + "/va" + std::to_string(i) + ".jpg";
      split["val"].push_back({rel, c, names[c]});
      write(dir_ / "images" / rel, "");
    }
  split["test"].push_back({"dog/te.jpg", 1, "dog"});
  write(dir_ / "images/dog/te.jpg", "");
  write(dir_ / "split_zhou_Tiny.json", split.dump(2));
  std::string caps;
  for (const auto& e : split["train"]) caps += e[0].get<std::string>() + "\tA photo.\tx\n";
  write(dir_ / "captions.txt", caps);

  CoopFewshotRequest req;
  req.dataset_dir = dir_.string();
  req.split_json = (dir_ / "split_zhou_Tiny.json").string();
  req.image_root = (dir_ / "images").string();
  req.shots = 4;
  req.seed = 2;
  const CoopFewshotData d = load_coop_fewshot(req);
  ASSERT_EQ(d.split.train.size(), 4u + 2u + 4u);  // dog keeps its 2
  EXPECT_EQ(d.split.val.size(), 12u);
  EXPECT_EQ(d.train_captions.size(), d.split.train.size());
  EXPECT_EQ(d.captions_file, (dir_ / "captions.txt").string());
  // The draw is the label-list draw (labels in first-appearance order 1, 0, 2).
  std::vector<int64_t> tl;
  for (const auto& e : split["train"]) tl.push_back(e[1].get<int64_t>());
  std::vector<int64_t> vl;
  for (const auto& e : split["val"]) vl.push_back(e[1].get<int64_t>());
  const FewshotIndices idx = draw_fewshot_indices(tl, vl, 4, 2);
  for (size_t i = 0; i < idx.train.size(); ++i)
    EXPECT_EQ(d.split.train[i].relpath, split["train"][idx.train[i]][0].get<std::string>());
  EXPECT_EQ(d.split.train[0].label, 1);

  // Written and read back: same items in the same order, paths joined to the image root.
  const std::string out = (dir_ / "shot_4-seed_2.json").string();
  write_fewshot_split(out, d.split);
  const CoopSplit back = read_coop_split(out, req.image_root, true);
  ASSERT_EQ(back.train.size(), d.split.train.size());
  for (size_t i = 0; i < back.train.size(); ++i) {
    EXPECT_EQ(back.train[i].relpath, d.split.train[i].relpath);
    EXPECT_EQ(back.train[i].label, d.split.train[i].label);
    EXPECT_EQ(back.train[i].path, d.split.train[i].path);
  }
  ASSERT_EQ(back.val.size(), d.split.val.size());
  EXPECT_EQ(back.test.size(), 1u);
  EXPECT_EQ(back.classnames, names);
  // Python's json.dump(indent=4) layout with ASCII escapes, then the "fewshot" record.
  const std::string text = test::read_file(out);
  EXPECT_EQ(text.rfind("{\n    \"train\": [\n        [\n            \"dog/tr", 0), 0u) << text;
  EXPECT_NE(text.find("\"caf\\u00e9\""), std::string::npos);
  const nlohmann::json meta = nlohmann::json::parse(text)["fewshot"];
  EXPECT_EQ(meta["shots"], 4);
  EXPECT_EQ(meta["seed"], 2);
  EXPECT_EQ(meta["val_shots"], 4);
  EXPECT_EQ(meta["source"], req.split_json);
  const FewshotSplit again = read_fewshot_split(out, req.image_root, true);
  EXPECT_EQ(again.shots, 4);
  EXPECT_EQ(again.seed, 2);
  EXPECT_EQ(again.val_shots, 4);
  EXPECT_EQ(again.source, req.split_json);
  ASSERT_EQ(again.train.size(), d.split.train.size());
  EXPECT_EQ(again.train.back().relpath, d.split.train.back().relpath);
  EXPECT_EQ(again.classnames, names);
  // A plain split_zhou file reads with no record; a damaged record is an error.
  EXPECT_EQ(read_fewshot_split(req.split_json, req.image_root).shots, 0);
  nlohmann::json bad_meta = nlohmann::json::parse(text);
  bad_meta["fewshot"]["seed"] = -1;
  write(dir_ / "bad_meta.json", bad_meta.dump());
  EXPECT_NE(error_message([&] {
              read_fewshot_split((dir_ / "bad_meta.json").string(), "");
            }).find("\"seed\" must be >= 0"),
            std::string::npos);
  bad_meta["fewshot"] = "16 shots";
  write(dir_ / "bad_meta.json", bad_meta.dump());
  EXPECT_NE(error_message([&] {
              read_fewshot_split((dir_ / "bad_meta.json").string(), "");
            }).find("must be an object"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(out + ".tmp"));

  // Missing captions for drawn training images: one error naming how many and which.
  write(dir_ / "captions.txt", "dog/tr0.jpg\tA dog.\n");
  std::string m = error_message([&] { load_coop_fewshot(req); });
  EXPECT_NE(m.find("9 of 10 image(s) have no caption"), std::string::npos) << m;
  req.captions = false;
  EXPECT_NO_THROW(load_coop_fewshot(req));
  // Bad input: K <= 0, seed < 0, damaged JSON, missing image.
  req.shots = 0;
  EXPECT_NE(error_message([&] { load_coop_fewshot(req); }).find("shots must be >= 1"),
            std::string::npos);
  req.shots = 4;
  req.seed = -1;
  EXPECT_NE(error_message([&] { load_coop_fewshot(req); }).find("seed must be >= 0"),
            std::string::npos);
  req.seed = 1;
  write(dir_ / "split_zhou_Tiny.json", split.dump(2).substr(0, 100));
  EXPECT_NE(error_message([&] { load_coop_fewshot(req); }).find("not valid JSON"),
            std::string::npos);
  write(dir_ / "split_zhou_Tiny.json", split.dump(2));
  fs::remove(dir_ / "images/dog/te.jpg");
  EXPECT_NE(error_message([&] { load_coop_fewshot(req); }).find("te.jpg"), std::string::npos);
}

// The few-shot split of a synthetic split as Python's reference draws it and json.dump writes it
// (gen_python_random.py): the file written here holds the same bytes, then the "fewshot" record.
TEST(Fewshot, SplitFileMatchesPython) {
  const std::string dir = test::golden_dir() + "/python_random";
  if (test::golden_dir().empty() || !fs::exists(dir + "/fewshot_shot_4-seed_1.json"))
    GTEST_SKIP() << "run via ctest (tests/golden/gen_python_random.py)";
  const CoopSplit split = read_coop_split(dir + "/split_zhou_Synthetic.json", "/data/images");
  FewshotSplit f = generate_fewshot(split, 4, 1);
  f.source = "split_zhou_Synthetic.json";
  const std::string ours = fewshot_split_json(f);
  std::string python = test::read_file(dir + "/fewshot_shot_4-seed_1.json");
  ASSERT_GT(python.size(), 100u);
  ASSERT_EQ(python.substr(python.size() - 2), "\n}");
  python.resize(python.size() - 2);  // up to the end of "test"
  ASSERT_GE(ours.size(), python.size());
  EXPECT_EQ(ours.substr(0, python.size()), python);
  EXPECT_EQ(ours.substr(python.size(), 17), ",\n    \"fewshot\": ");
  EXPECT_NE(python.find("\\u00e9"), std::string::npos);         // non-ASCII escaped as Python does
  EXPECT_NE(python.find("\\ud83d\\ude00"), std::string::npos);  // (surrogate pairs)
}

TEST(DatasetLayout, Table) {
  // method.md §5's 13, ImageNet-A and -R (data.md §1.1), and the 4 synthetic ones.
  EXPECT_EQ(dataset_layouts().size(), 19u);
  // The synthetic datasets' layout matches what the world generator writes.
  for (const synth::SynthDatasetSpec& spec : synth::synth_datasets()) {
    const DatasetLayout& l = find_dataset_layout(spec.name);
    EXPECT_EQ(l.dir, spec.dir);
    EXPECT_EQ(l.split_file, spec.split_file);
    EXPECT_EQ(l.image_root, "images");
    EXPECT_EQ(l.num_classes, static_cast<int64_t>(spec.classes.size()));
  }
  const DatasetLayout& cars = find_dataset_layout("stanford_cars");
  EXPECT_EQ(cars.name, "StanfordCars");
  EXPECT_EQ(cars.image_root, "");
  EXPECT_EQ(cars.caption_rule, CaptionKeyRule::StanfordCars);
  EXPECT_EQ(find_dataset_layout("OXFORDPETS").split_file, "split_zhou_OxfordPets.json");
  EXPECT_EQ(find_dataset_layout("food-101").name, "Food101");
  EXPECT_EQ(find_dataset_layout("dtd").name, "DescribableTextures");
  EXPECT_EQ(find_dataset_layout("FGVCAircraft").split_file, "");
  EXPECT_NE(error_message([] { find_dataset_layout("Cifar10"); }).find("known: ImageNet"),
            std::string::npos);
}
