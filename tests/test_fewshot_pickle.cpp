/*
 * test_fewshot_pickle.cpp — the official few-shot split caches (convert/fewshot_pickle.h) against
 * the pickles Python itself writes (tests/golden/gen_fewshot_pickles.py): CoOp's Datum caches and
 * TGP-T's dict caches import exactly (paths rewritten against the dataset folder, labels, class
 * names, captions, order); damaged caches (truncated, mutated, wrong types, executing callables)
 * give a tgpt::Error and never run anything; the data loaders take the import over the draw with
 * captions.txt winning over the cache's captions; `tgpt-data split` uses a cache in the dataset
 * folder and --no-split-cache draws instead.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "convert/fewshot_pickle.h"
#include "convert/pickle_reader.h"
#include "data/captions.h"
#include "data/dataset.h"
#include "data/fewshot.h"
#include "tests/test_files.h"
#include "tests/tool_test_util.h"
#include "tools/split_cache.h"

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

class FewshotPickleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    expected_ = test::load_golden_json("fewshot_pickles/expected.json");
    if (expected_.is_null()) GTEST_SKIP() << "run via ctest (tests/golden/gen_fewshot_pickles.py)";
    root_ = fs::path(test::golden_dir()) / "fewshot_pickles";
    ds_ = root_ / "data" / "oxford_pets";
    split_ = read_coop_split((ds_ / "split_zhou_OxfordPets.json").string(),
                             (ds_ / "images").string(), true);
    target_.dataset_dir = ds_.string();
    target_.image_root = (ds_ / "images").string();
    target_.classnames = split_.classnames;
  }

  // The items against the expected [relpath, label, classname] list, in order.
  void expect_items(const std::vector<FewshotPickleItem>& got, const nlohmann::json& want,
                    const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    const std::string author = expected_["author_root"];
    for (size_t i = 0; i < got.size(); ++i) {
      const std::string rel = want[i][0];
      EXPECT_EQ(got[i].relpath, rel) << what << " " << i;
      EXPECT_EQ(got[i].path, (ds_ / "images" / rel).string()) << what << " " << i;
      EXPECT_EQ(got[i].original_path, author + "/oxford_pets/images/" + rel) << what << " " << i;
      EXPECT_EQ(got[i].label, want[i][1].get<int64_t>()) << what << " " << i;
      EXPECT_EQ(got[i].classname, want[i][2].get<std::string>()) << what << " " << i;
    }
  }

  std::string pkl(const char* folder, int shots) const {
    return (ds_ / folder / ("shot_" + std::to_string(shots) + "-seed_1.pkl")).string();
  }

  nlohmann::json expected_;
  fs::path root_, ds_;
  CoopSplit split_;
  FewshotPickleTarget target_;
};

}  // namespace

TEST_F(FewshotPickleTest, ImportsCoopDatumCachesExactly) {
  for (int shots : {1, 2}) {
    const FewshotPickle p = read_fewshot_pickle(pkl("split_fewshot", shots), target_);
    const nlohmann::json& want = expected_["coop_shot" + std::to_string(shots)];
    EXPECT_EQ(p.format, FewshotPickleFormat::CoopDatum);
    EXPECT_TRUE(p.has_val);
    expect_items(p.train, want["train"], "train");
    expect_items(p.val, want["val"], "val");
    for (const auto& it : p.train) EXPECT_FALSE(it.caption.has_value());
  }
}

TEST_F(FewshotPickleTest, ImportsTgptDictCachesExactly) {
  const FewshotPickle p = read_fewshot_pickle(pkl("split_fewshot2", 2), target_);
  const nlohmann::json& want = expected_["tgpt_shot2"];
  EXPECT_EQ(p.format, FewshotPickleFormat::TgptDict);
  expect_items(p.train, want["train"], "train");
  expect_items(p.val, want["val"], "val");
  ASSERT_EQ(p.train.size(), want["captions"].size());
  for (size_t i = 0; i < p.train.size(); ++i) {
    ASSERT_TRUE(p.train[i].caption.has_value()) << i;
    EXPECT_EQ(*p.train[i].caption, want["captions"][i].get<std::string>()) << i;
  }
}

TEST_F(FewshotPickleTest, TheTensorPayloadStaysOpaque) {
  // tokenized_caption: _rebuild_tensor_v2(_load_from_bytes(<bytes>), ...) kept as an object.
  const PickleRef v = read_pickle(test::read_file(pkl("split_fewshot2", 2)), "t.pkl");
  const PickleValue* item = v->get("train")->items.at(0).get();
  const PickleValue* tok = item->get("tokenized_caption");
  ASSERT_TRUE(tok != nullptr);
  EXPECT_EQ(tok->kind, PickleKind::object);
  EXPECT_EQ(tok->text, "torch._utils._rebuild_tensor_v2");
  ASSERT_FALSE(tok->items.empty());
  EXPECT_EQ(tok->items[0]->text, "torch.storage._load_from_bytes");
  ASSERT_EQ(tok->items[0]->items.size(), 1u);
  EXPECT_EQ(tok->items[0]->items[0]->kind, PickleKind::bytes);
}

TEST_F(FewshotPickleTest, PathRewriting) {
  const std::string ds = "/home/me/data/oxford_pets";
  EXPECT_EQ(rewrite_fewshot_path("/nas/a/oxford_pets/images/x.jpg", ds, {}), ds + "/images/x.jpg");
  // The last folder of that name wins; another name of the dataset folder is accepted.
  EXPECT_EQ(rewrite_fewshot_path("/oxford_pets/b/oxford_pets/images/x.jpg", ds, {}),
            ds + "/images/x.jpg");
  EXPECT_EQ(rewrite_fewshot_path("/nas/pets_v1/images/x.jpg", "/d/mine", {"pets_v1"}),
            "/d/mine/images/x.jpg");
  auto expect_error = [&](const std::string& p, const std::string& part) {
    try {
      rewrite_fewshot_path(p, ds, {});
      ADD_FAILURE() << "accepted " << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error("/nas/a/pets/x.jpg", "holds no folder named 'oxford_pets'");
  expect_error("/nas/a/oxford_pets", "holds no folder named");
  expect_error("/nas/oxford_pets/../../etc/passwd", "climbs out");
}

TEST_F(FewshotPickleTest, DamagedCachesAreRefusedAndNothingRuns) {
  const fs::path marker = expected_["marker"].get<std::string>();
  for (const auto& [name, part] : expected_["damaged"].items()) {
    const std::string file = (root_ / "damaged" / name).string();
    try {
      read_fewshot_pickle(file, target_);
      ADD_FAILURE() << name << " accepted; expected " << part;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(part.get<std::string>()), std::string::npos) << name << ": " << msg;
      EXPECT_NE(msg.find(file), std::string::npos) << name << ": " << msg;
    }
  }
  // The executing pickles name the opcode and its offset.
  try {
    read_fewshot_pickle((root_ / "damaged" / "evil.pkl").string(), target_);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("opcode 0x52 ('R') at offset"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(marker));
  // A missing file.
  EXPECT_THROW(read_fewshot_pickle((root_ / "nothere.pkl").string(), target_), Error);
  // Another class list: the first class name disagrees.
  FewshotPickleTarget other = target_;
  other.classnames[0] = "bengal";
  EXPECT_THROW(read_fewshot_pickle(pkl("split_fewshot", 2), other), Error);
}

TEST_F(FewshotPickleTest, TruncatedAndMutatedCachesGiveErrorsNotCrashes) {
  for (const std::string& file : {pkl("split_fewshot", 2), pkl("split_fewshot2", 2)}) {
    const std::string good = test::read_file(file);
    for (size_t n = 0; n < good.size(); ++n) {
      try {
        parse_fewshot_pickle(std::string_view(good).substr(0, n), file, target_);
        ADD_FAILURE() << file << " truncated to " << n << " bytes was accepted";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      }
    }
    std::mt19937_64 rng(11);
    for (int k = 0; k < 3000; ++k) {
      const std::string bad = test::mutate_bytes(good, rng);
      try {
        parse_fewshot_pickle(bad, file, target_);  // a harmless change may still parse
      } catch (const Error&) {
      }
    }
  }
}

TEST_F(FewshotPickleTest, FindsTheCacheTgptFirst) {
  EXPECT_EQ(find_fewshot_pickle(ds_.string(), 2, 1, true), pkl("split_fewshot2", 2));
  EXPECT_EQ(find_fewshot_pickle(ds_.string(), 2, 1, false), pkl("split_fewshot", 2));
  EXPECT_EQ(find_fewshot_pickle(ds_.string(), 1, 1, true), pkl("split_fewshot", 1));
  EXPECT_EQ(find_fewshot_pickle(ds_.string(), 4, 1, true), "");
  EXPECT_EQ(find_fewshot_pickle(ds_.string(), 2, 2, true), "");
}

TEST_F(FewshotPickleTest, LoaderTakesTheCacheWithCaptionsTxtFirst) {
  CoopFewshotRequest req;
  req.dataset_dir = ds_.string();
  req.split_json = (ds_ / "split_zhou_OxfordPets.json").string();
  req.image_root = (ds_ / "images").string();
  req.shots = 2;
  req.seed = 1;
  req.import_fewshot = tools::split_cache_importer(ds_.string(), 2, 1, true, {}, true);
  const CoopFewshotData d = load_coop_fewshot(req);
  EXPECT_EQ(d.split.source, pkl("split_fewshot2", 2));
  EXPECT_EQ(d.split.test.size(), split_.test.size());
  const nlohmann::json& want = expected_["tgpt_shot2"];
  ASSERT_EQ(d.split.train.size(), want["train"].size());
  ASSERT_EQ(d.train_captions.size(), d.split.train.size());
  const CaptionTable table = read_dataset_captions(ds_.string(), CaptionKeyRule::RelativePath);
  int from_txt = 0, from_pickle = 0;
  for (size_t i = 0; i < d.split.train.size(); ++i) {
    const std::string rel = want["train"][i][0];
    EXPECT_EQ(d.split.train[i].relpath, rel);
    EXPECT_EQ(d.split.train[i].label, want["train"][i][1].get<int64_t>());
    if (const std::string* c = table.find(rel)) {
      EXPECT_EQ(d.train_captions[i], *c) << rel;  // captions.txt wins
      ++from_txt;
    } else {
      EXPECT_EQ(d.train_captions[i], want["captions"][i].get<std::string>()) << rel;
      ++from_pickle;
    }
  }
  EXPECT_GT(from_txt, 0);
  EXPECT_GT(from_pickle, 0);
  ASSERT_EQ(d.split.val.size(), want["val"].size());
  for (size_t i = 0; i < d.split.val.size(); ++i)
    EXPECT_EQ(d.split.val[i].relpath, want["val"][i][0].get<std::string>());

  // A CoOp cache has no captions: images without one in captions.txt are an error.
  req.shots = 1;
  req.import_fewshot = tools::split_cache_importer(ds_.string(), 1, 1, true, {}, true);
  try {
    load_coop_fewshot(req);
    const nlohmann::json& w1 = expected_["coop_shot1"]["train"];
    for (const auto& it : w1)
      EXPECT_NE(table.find(it[0].get<std::string>()), nullptr) << "accepted without a caption";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("have no caption"), std::string::npos) << e.what();
  }
  // Disabled: the draw.
  req.captions = false;
  req.import_fewshot = tools::split_cache_importer(ds_.string(), 1, 1, true, {}, false);
  const CoopFewshotData drawn = load_coop_fewshot(req);
  EXPECT_EQ(drawn.split.source, req.split_json);
  const FewshotSplit want_draw = generate_fewshot(split_, 1, 1);
  ASSERT_EQ(drawn.split.train.size(), want_draw.train.size());
  for (size_t i = 0; i < want_draw.train.size(); ++i)
    EXPECT_EQ(drawn.split.train[i].relpath, want_draw.train[i].relpath);
}

TEST_F(FewshotPickleTest, DataToolSplitUsesTheCache) {
  const fs::path bin = test::tool_path("tgpt-data");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-data not built next to the tests";
  const fs::path dir =
      fs::temp_directory_path() / ("tgpt_test_fewshot_pickle_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto listing = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::recursive_directory_iterator(ds_)) names.push_back(e.path().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  const std::vector<std::string> before = listing();
  const std::string data_args = "--dataset OxfordPets --root " + test::shell_quote(root_ / "data");
  auto run_split = [&](int shots, const std::string& extra, std::string* out) {
    const fs::path file =
        dir / ("s" + std::to_string(shots) + "_" + std::to_string(extra.size()) + ".json");
    const int rc = test::run_command(test::shell_quote(bin) + " split " + data_args + " --shots " +
                                         std::to_string(shots) + " --seed 1 -o " +
                                         test::shell_quote(file) + " " + extra,
                                     dir, out);
    EXPECT_EQ(rc, 0) << *out;
    return read_coop_split(file.string(), (ds_ / "images").string(), true);
  };
  std::string out;
  // shots 2: TGP-T's cache (split_fewshot2/ first); captions from captions.txt and the cache.
  CoopSplit got = run_split(2, "", &out);
  EXPECT_NE(out.find("Loading preprocessed few-shot data from " + pkl("split_fewshot2", 2)),
            std::string::npos)
      << out;
  const nlohmann::json& w2 = expected_["tgpt_shot2"];
  ASSERT_EQ(got.train.size(), w2["train"].size());
  for (size_t i = 0; i < got.train.size(); ++i)
    EXPECT_EQ(got.train[i].relpath, w2["train"][i][0].get<std::string>());
  ASSERT_EQ(got.val.size(), w2["val"].size());
  for (size_t i = 0; i < got.val.size(); ++i)
    EXPECT_EQ(got.val[i].relpath, w2["val"][i][0].get<std::string>());
  // shots 1: CoOp's cache (without captions, so --no-captions).
  got = run_split(1, "--no-captions", &out);
  EXPECT_NE(out.find("Loading preprocessed few-shot data from " + pkl("split_fewshot", 1)),
            std::string::npos)
      << out;
  const nlohmann::json& w1 = expected_["coop_shot1"];
  ASSERT_EQ(got.train.size(), w1["train"].size());
  for (size_t i = 0; i < got.train.size(); ++i)
    EXPECT_EQ(got.train[i].relpath, w1["train"][i][0].get<std::string>());
  // --no-split-cache: the library's draw, no cache message.
  got = run_split(1, "--no-captions --no-split-cache", &out);
  EXPECT_EQ(out.find("Loading preprocessed"), std::string::npos) << out;
  const FewshotSplit want = generate_fewshot(split_, 1, 1);
  ASSERT_EQ(got.train.size(), want.train.size());
  for (size_t i = 0; i < got.train.size(); ++i)
    EXPECT_EQ(got.train[i].relpath, want.train[i].relpath);
  // The user's tree is only read.
  EXPECT_EQ(listing(), before);
  fs::remove_all(dir);
}

// tgpt-data check --shots K --seed S reports the split tgpt-train would use: the cache when the
// dataset folder holds one (its captions standing in for those captions.txt lacks), else the draw.
TEST_F(FewshotPickleTest, DataToolCheckUsesTheCache) {
  const fs::path bin = test::tool_path("tgpt-data");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-data not built next to the tests";
  const fs::path dir =
      fs::temp_directory_path() / ("tgpt_test_fewshot_pickle_check_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string cmd = test::shell_quote(bin) + " check --dataset OxfordPets --root " +
                          test::shell_quote(root_ / "data") + " --shots 2 --seed 1";
  std::string out;
  EXPECT_EQ(test::run_command(cmd, dir, &out), 0) << out;
  EXPECT_NE(out.find("Loading preprocessed few-shot data from " + pkl("split_fewshot2", 2)),
            std::string::npos)
      << out;
  const nlohmann::json& w2 = expected_["tgpt_shot2"];
  const std::string cached =
      "few-shot:       2 shots, seed 1: " + std::to_string(w2["train"].size()) + " train, " +
      std::to_string(w2["val"].size()) + " val images (from the official cache " +
      pkl("split_fewshot2", 2) + ")";
  EXPECT_NE(out.find(cached), std::string::npos) << out;
  EXPECT_NE(out.find("check passed"), std::string::npos) << out;
  // --no-split-cache: the draw (whose odd-numbered training images have no caption).
  test::run_command(cmd + " --no-split-cache", dir, &out);
  EXPECT_EQ(out.find("Loading preprocessed"), std::string::npos) << out;
  const FewshotSplit want = generate_fewshot(split_, 2, 1);
  EXPECT_NE(out.find("few-shot:       2 shots, seed 1: " + std::to_string(want.train.size()) +
                     " train, " + std::to_string(want.val.size()) +
                     " val images (drawn as the official code draws it)"),
            std::string::npos)
      << out;
  fs::remove_all(dir);
}

TEST_F(FewshotPickleTest, TrainToolUsesTheCacheOfItsMethod) {
  // tgpt-train writes the run folder's split_fewshot.json before it loads the weights, so a
  // missing weight file still shows which split it took: TGP-T's cache for --method tgpt,
  // CoOp's for --method coop.
  const fs::path bin = test::tool_path("tgpt-train");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-train not built next to the tests";
  const fs::path dir =
      fs::temp_directory_path() / ("tgpt_test_fewshot_pickle_train_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* method : {"tgpt", "coop"}) {
    std::string out;
    test::run_command(test::shell_quote(bin) + " --method " + method +
                          " --dataset OxfordPets --root " + test::shell_quote(root_ / "data") +
                          " --shots 2 --seed 1 --weights " +
                          test::shell_quote(dir / "missing.safetensors") + " --output " +
                          test::shell_quote(dir / method) + " INPUT.TEXT_AUG hand_crafted",
                      dir, &out);
    const bool tgpt = std::string(method) == "tgpt";
    const std::string file = pkl(tgpt ? "split_fewshot2" : "split_fewshot", 2);
    EXPECT_NE(out.find("Loading preprocessed few-shot data from " + file), std::string::npos)
        << out;
    const CoopSplit got = read_coop_split(
        (dir / method / "OxfordPets" / "2shots" / "seed1" / "split_fewshot.json").string(),
        (ds_ / "images").string(), true);
    const nlohmann::json& want = expected_[tgpt ? "tgpt_shot2" : "coop_shot2"]["train"];
    ASSERT_EQ(got.train.size(), want.size()) << method;
    for (size_t i = 0; i < got.train.size(); ++i)
      EXPECT_EQ(got.train[i].relpath, want[i][0].get<std::string>()) << method << " " << i;
  }
  fs::remove_all(dir);
}

TEST_F(FewshotPickleTest, TgptCacheCaptionsServeADatasetWithoutCaptionsFile) {
  // A copy of the dataset without captions.txt, under another folder name (the cache's paths
  // name oxford_pets; the layout's folder name is given as the other name).
  const fs::path dir =
      fs::temp_directory_path() / ("tgpt_test_fewshot_pickle_nocap_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const fs::path copy = dir / "pets_copy";
  fs::create_directories(dir);
  fs::copy(ds_, copy, fs::copy_options::recursive);
  fs::remove(copy / "captions.txt");
  CoopFewshotRequest req;
  req.dataset_dir = copy.string();
  req.split_json = (copy / "split_zhou_OxfordPets.json").string();
  req.image_root = (copy / "images").string();
  req.shots = 2;
  req.seed = 1;
  req.import_fewshot =
      tools::split_cache_importer(copy.string(), 2, 1, true, {"oxford_pets"}, true);
  const CoopFewshotData d = load_coop_fewshot(req);
  const nlohmann::json& want = expected_["tgpt_shot2"];
  EXPECT_EQ(d.captions_file, (copy / "split_fewshot2" / "shot_2-seed_1.pkl").string());
  ASSERT_EQ(d.train_captions.size(), want["captions"].size());
  for (size_t i = 0; i < d.train_captions.size(); ++i) {
    EXPECT_EQ(d.train_captions[i], want["captions"][i].get<std::string>()) << i;
    EXPECT_EQ(d.split.train[i].path, (copy / "images" / want["train"][i][0]).string()) << i;
  }
  // CoOp's cache carries no captions: the missing captions file is the error.
  req.shots = 1;
  req.import_fewshot =
      tools::split_cache_importer(copy.string(), 1, 1, true, {"oxford_pets"}, true);
  try {
    load_coop_fewshot(req);
    ADD_FAILURE() << "accepted a CoOp cache without any captions";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("captions.txt"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
