/*
 * test_synth.cpp — the synthetic world (data/synth/world.h): the same options give the same
 * bytes (a SHA-256 over every file of a small world, pinned, and equal for 1 and 2 threads);
 * the split files read back with read_coop_split, with balanced classes and captions for exactly
 * the train and val images; captions state the true attributes (parsed back with this test's own
 * vocabulary); classes fix their attributes; bad options and foreign folders are refused; a
 * re-run on the same world is a no-op and a run with other options replaces it.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/parallel.h"
#include "convert/sha256.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/synth/world.h"

using namespace tgpt;
using namespace tgpt::synth;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& test) {
  const fs::path p =
      fs::temp_directory_path() / ("tgpt_test_synth_" + std::to_string(getpid()) + "_" + test);
  fs::remove_all(p);
  return p;
}

WorldOptions small_options() {
  WorldOptions o;
  o.seed = 5;
  o.image_size = 32;
  o.pretrain_images = 30;
  o.train_per_class = 3;
  o.val_per_class = 2;
  o.test_per_class = 2;
  return o;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// relative path -> SHA-256 of every regular file under root.
std::map<std::string, std::string> tree_hashes(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file())
      out[fs::relative(e.path(), root).string()] = sha256_file_hex(e.path().string());
  return out;
}

std::string tree_digest(const std::map<std::string, std::string>& hashes) {
  std::string all;
  for (const auto& [path, hash] : hashes) all += path + '\0' + hash + '\n';
  return sha256_hex(all.data(), all.size());
}

std::map<std::string, std::string> read_captions(const fs::path& p) {
  std::map<std::string, std::string> out;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line)) {
    const size_t tab = line.find('\t');
    EXPECT_NE(tab, std::string::npos) << line;
    EXPECT_TRUE(out.emplace(line.substr(0, tab), line.substr(tab + 1)).second) << line;
  }
  return out;
}

// ---- caption parsing, with this test's own word lists ---------------------------------------

std::vector<std::string> words_of(const std::string& caption) {
  std::vector<std::string> w;
  std::string cur;
  for (char ch : caption) {
    if ((ch >= 'a' && ch <= 'z') || ch == '-') {
      cur += ch;
    } else if (ch >= 'A' && ch <= 'Z') {
      cur += static_cast<char>(ch - 'A' + 'a');
    } else if (!cur.empty()) {
      w.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) w.push_back(cur);
  return w;
}

// The values (canonical names) that the caption's words name, from a word -> value table.
std::set<std::string> found(const std::vector<std::string>& words,
                            const std::map<std::string, std::string>& table) {
  std::set<std::string> out;
  for (const std::string& w : words) {
    auto it = table.find(w);
    if (it != table.end()) out.insert(it->second);
  }
  return out;
}

const std::map<std::string, std::string> kShapeWords = {
    {"circle", "circle"},      {"circles", "circle"},     {"disc", "circle"},
    {"discs", "circle"},       {"square", "square"},      {"squares", "square"},
    {"triangle", "triangle"},  {"triangles", "triangle"}, {"star", "star"},
    {"stars", "star"},         {"cross", "cross"},        {"crosses", "cross"},
    {"plus", "cross"},         {"ring", "ring"},          {"rings", "ring"},
    {"hoop", "ring"},          {"hoops", "ring"},         {"crescent", "crescent"},
    {"crescents", "crescent"}, {"heart", "heart"},        {"hearts", "heart"}};
const std::map<std::string, std::string> kColourWords = {
    {"red", "red"},       {"orange", "orange"}, {"yellow", "yellow"},
    {"green", "green"},   {"blue", "blue"},     {"purple", "purple"},
    {"violet", "purple"}, {"pink", "pink"},     {"white", "white"}};
const std::map<std::string, std::string> kPatternWords = {
    {"solid", "solid"},         {"plain", "solid"},         {"no", "solid"} /* "no pattern" */,
    {"striped", "striped"},     {"stripes", "striped"},     {"dotted", "dotted"},
    {"spotted", "dotted"},      {"polka-dot", "dotted"},    {"dots", "dotted"},
    {"checkered", "checkered"}, {"chequered", "checkered"}, {"checkerboard", "checkered"}};
const std::map<std::string, std::string> kSizeWords = {
    {"small", "small"},      {"little", "small"}, {"tiny", "small"}, {"medium-sized", "medium"},
    {"mid-sized", "medium"}, {"large", "large"},  {"big", "large"}};
const std::map<std::string, std::string> kCountWords = {
    {"two", "2"}, {"pair", "2"}, {"three", "3"}, {"four", "4"}};
const std::map<std::string, std::string> kBackgroundWords = {
    {"grass", "grass"}, {"lawn", "grass"},      {"sand", "sand"},         {"sandy", "sand"},
    {"snow", "snow"},   {"snowy", "snow"},      {"snow-covered", "snow"}, {"water", "water"},
    {"lake", "water"},  {"night", "night sky"}, {"brick", "brick wall"}};
const std::map<std::string, std::string> kPositionWords = {
    {"top", "top"},     {"bottom", "bottom"}, {"left", "left"},
    {"right", "right"}, {"center", "center"}, {"middle", "center"}};

// Checks that `caption` states exactly the attributes in `mentioned`, each with its true value.
void expect_caption_truthful(const SceneAttributes& a, unsigned mentioned,
                             const std::string& caption) {
  SCOPED_TRACE(caption);
  const std::vector<std::string> w = words_of(caption);
  auto expect_attr = [&](unsigned bit, const std::map<std::string, std::string>& table,
                         const std::string& truth) {
    const std::set<std::string> f = found(w, table);
    if (mentioned & bit) {
      EXPECT_EQ(f, std::set<std::string>{truth});
    } else {
      EXPECT_TRUE(f.empty()) << "states an attribute it should leave out: " << *f.begin();
    }
  };
  expect_attr(kShapeBit, kShapeWords, shape_name(a.shape));
  expect_attr(kColourBit, kColourWords, colour_name(a.colour));
  expect_attr(kPatternBit, kPatternWords, pattern_name(a.pattern));
  expect_attr(kSizeBit, kSizeWords, size_name(a.size));
  expect_attr(kBackgroundBit, kBackgroundWords, background_name(a.background));
  EXPECT_TRUE(mentioned & kCountBit);
  const std::set<std::string> counts = found(w, kCountWords);
  if (a.count == 1) {
    EXPECT_TRUE(counts.empty());
  } else {
    EXPECT_EQ(counts, std::set<std::string>{std::to_string(a.count)});
  }
  const std::set<std::string> pos = found(w, kPositionWords);
  if (mentioned & kPositionBit) {
    ASSERT_EQ(a.count, 1);
    const int row = a.position / 3, col = a.position % 3;
    EXPECT_EQ(pos.count("top") == 1, row == 0);
    EXPECT_EQ(pos.count("bottom") == 1, row == 2);
    EXPECT_EQ(pos.count("left") == 1, col == 0);
    EXPECT_EQ(pos.count("right") == 1, col == 2);
    if (a.position == 4) {
      EXPECT_TRUE(pos.count("center"));
    }
  } else {
    EXPECT_TRUE(pos.empty());
  }
}

}  // namespace

TEST(Synth, SameOptionsSameBytesAtAnyThreadCount) {
  const WorldOptions o = small_options();
  const fs::path a = temp_dir("det_a"), b = temp_dir("det_b"), c = temp_dir("det_c");
  ASSERT_EQ(generate_world(a.string(), o), WorldStatus::Written);
  const int threads = num_threads();
  set_num_threads(1);
  generate_world(b.string(), o);
  set_num_threads(threads);
  const auto ha = tree_hashes(a), hb = tree_hashes(b);
  EXPECT_EQ(ha, hb);
  // 30 pretraining images + captions, 4 datasets x (9 classes x 7 images + split, captions,
  // classnames), templates.json, world.json; no temporary or marker file left.
  EXPECT_EQ(ha.size(), 30u + 1 + 4 * (9 * 7 + 3) + 2);
  for (const auto& [path, hash] : ha) {
    EXPECT_EQ(path.find(".tmp"), std::string::npos) << path;
    EXPECT_EQ(path.find("incomplete"), std::string::npos) << path;
  }
  // Pinned: this changes only when the generator's output changes, which must bump
  // kWorldGeneratorVersion (the manifest records it).
  EXPECT_EQ(tree_digest(ha), "0400fb30289ec92158e6517e569a309589b4ec0806b4c5a3568c7b8d2dbf92b7");
  WorldOptions other = o;
  other.seed = 6;
  generate_world(c.string(), other);
  EXPECT_NE(tree_digest(tree_hashes(c)), tree_digest(ha));
  fs::remove_all(a);
  fs::remove_all(b);
  fs::remove_all(c);
}

TEST(Synth, SplitsReadBackBalancedWithCaptionsForTrainAndVal) {
  const WorldOptions o = small_options();
  const fs::path root = temp_dir("splits");
  generate_world(root.string(), o);
  // Pretraining captions: one per image, keys relative to pretrain/images, as the item says.
  const auto pre = read_captions(root / "pretrain" / "captions.txt");
  ASSERT_EQ(pre.size(), 30u);
  for (int64_t i = 0; i < o.pretrain_images; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "%06lld.png", static_cast<long long>(i));
    ASSERT_TRUE(pre.count(key)) << key;
    const WorldItem it = make_pretrain_item(o, i);
    EXPECT_EQ(pre.at(key), it.caption);
    if (i < 3) {  // the PNG holds exactly the rendered pixels
      const Image img = decode_image_file((root / "pretrain" / "images" / key).string());
      EXPECT_EQ(img.height, 32);
      EXPECT_EQ(img.width, 32);
      EXPECT_EQ(img.pixels, it.image.pixels);
    }
  }

  const auto templates = read_templates_file((root / "templates.json").string());
  ASSERT_EQ(templates.size(), synth_datasets().size());
  for (size_t di = 0; di < synth_datasets().size(); ++di) {
    const SynthDatasetSpec& d = synth_datasets()[di];
    SCOPED_TRACE(d.name);
    EXPECT_EQ(templates[di].first, d.name);
    EXPECT_GE(templates[di].second.size(), 3u);
    const fs::path dir = root / d.dir;
    const CoopSplit split = read_coop_split((dir / d.split_file).string(),
                                            (dir / "images").string(), /*check_files=*/true);
    std::vector<std::string> expected_names;
    for (const SynthClass& c : d.classes) expected_names.push_back(c.name);
    EXPECT_EQ(split.classnames, expected_names);
    EXPECT_EQ(read_list_file((dir / "classnames.txt").string()), expected_names);
    const size_t k = d.classes.size();
    EXPECT_GE(k, 6u);
    EXPECT_LE(k, 12u);
    auto per_class = [&](const std::vector<LabeledImage>& items) {
      std::vector<int64_t> n(k, 0);
      for (const LabeledImage& it : items) ++n[static_cast<size_t>(it.label)];
      return n;
    };
    EXPECT_EQ(per_class(split.train), std::vector<int64_t>(k, 3));
    EXPECT_EQ(per_class(split.val), std::vector<int64_t>(k, 2));
    EXPECT_EQ(per_class(split.test), std::vector<int64_t>(k, 2));
    // Captions: exactly the train and val images, keyed by their split-relative paths.
    const auto caps = read_captions(dir / "captions.txt");
    std::set<std::string> keys, expected_keys;
    for (const auto& [key, text] : caps) keys.insert(key);
    const std::string prefix = (dir / "images").string() + "/";
    for (const auto* subset : {&split.train, &split.val})
      for (const LabeledImage& it : *subset) {
        ASSERT_EQ(it.path.rfind(prefix, 0), 0u) << it.path;
        expected_keys.insert(it.path.substr(prefix.size()));
      }
    EXPECT_EQ(keys, expected_keys);
    // A caption in the file is the item's caption, and states its class's attributes.
    const std::string key0 = d.classes[1].folder + "/0000.png";
    ASSERT_TRUE(caps.count(key0));
    EXPECT_EQ(caps.at(key0), make_dataset_item(o, static_cast<int>(di), 1, 0).caption);
  }
  fs::remove_all(root);
}

TEST(Synth, CaptionsStateTrueAttributes) {
  WorldOptions o = small_options();
  o.image_size = 16;
  o.pretrain_images = 400;
  std::set<unsigned> mention_sets;
  for (int64_t i = 0; i < o.pretrain_images; ++i) {
    const WorldItem it = make_pretrain_item(o, i);
    expect_caption_truthful(it.attributes, it.mentioned, it.caption);
    mention_sets.insert(it.mentioned);
  }
  // Varied: attributes are left out in many combinations, and all of them sometimes appear.
  EXPECT_GE(mention_sets.size(), 20u);
  unsigned any = 0;
  for (unsigned m : mention_sets) any |= m;
  EXPECT_EQ(any, 0x7Fu);
  // Downstream captions always state the class's attributes.
  for (size_t di = 0; di < synth_datasets().size(); ++di) {
    const SynthDatasetSpec& d = synth_datasets()[di];
    for (size_t ci = 0; ci < d.classes.size(); ++ci) {
      for (int64_t i = 0; i < 5; ++i) {
        const WorldItem it = make_dataset_item(o, static_cast<int>(di), static_cast<int>(ci), i);
        EXPECT_EQ(it.mentioned & d.classes[ci].fixed, d.classes[ci].fixed) << it.caption;
        expect_caption_truthful(it.attributes, it.mentioned, it.caption);
      }
    }
  }
}

// SynthSpecies' made-up names are unknown to pretraining: no pretraining caption and no caption
// of the dataset's own images contains one (the captions describe the animals in known words).
TEST(Synth, SpeciesNamesAppearInNoCaption) {
  WorldOptions o = small_options();
  o.image_size = 16;
  o.pretrain_images = 2000;
  const auto& ds = synth_datasets();
  const auto it = std::find_if(ds.begin(), ds.end(),
                               [](const SynthDatasetSpec& d) { return d.name == "SynthSpecies"; });
  ASSERT_NE(it, ds.end());
  const int di = static_cast<int>(it - ds.begin());
  std::vector<std::string> names;
  for (const SynthClass& c : it->classes) names.push_back(c.name);
  auto lower = [](std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  };
  auto expect_no_name = [&](const std::string& caption) {
    const std::string l = lower(caption);
    for (const std::string& n : names) EXPECT_EQ(l.find(n), std::string::npos) << caption;
  };
  for (int64_t i = 0; i < o.pretrain_images; ++i) expect_no_name(make_pretrain_item(o, i).caption);
  for (int ci = 0; ci < static_cast<int>(names.size()); ++ci)
    for (int64_t i = 0; i < 7; ++i) expect_no_name(make_dataset_item(o, di, ci, i).caption);
}

TEST(Synth, ClassesFixTheirAttributesAndVaryTheRest) {
  const WorldOptions o = small_options();
  for (size_t di = 0; di < synth_datasets().size(); ++di) {
    const SynthDatasetSpec& d = synth_datasets()[di];
    std::set<int> shapes, colours, backgrounds;
    for (size_t ci = 0; ci < d.classes.size(); ++ci) {
      const SynthClass& c = d.classes[ci];
      for (int64_t i = 0; i < 7; ++i) {
        const SceneAttributes a =
            make_dataset_item(o, static_cast<int>(di), static_cast<int>(ci), i).attributes;
        if (c.fixed & kShapeBit) {
          EXPECT_EQ(a.shape, c.value.shape);
        }
        if (c.fixed & kPatternBit) {
          EXPECT_EQ(a.pattern, c.value.pattern);
        }
        if (c.fixed & kColourBit) {
          EXPECT_EQ(a.colour, c.value.colour);
        }
        if (c.fixed & kCountBit) {
          EXPECT_EQ(a.count, c.value.count);
        }
        if (c.fixed & kBackgroundBit) {
          EXPECT_EQ(a.background, c.value.background);
        }
        if (c.fixed & kPositionBit) {
          EXPECT_EQ(a.position % 3, c.value.position);  // the class fixes the column
        }
        if (c.fixed & kPatternBit) {
          EXPECT_NE(a.size, Size::Small);  // the class's pattern stays visible
        }
        EXPECT_EQ(a.count == 1, a.position >= 0 && a.position < 9);
        shapes.insert(static_cast<int>(a.shape));
        colours.insert(static_cast<int>(a.colour));
        backgrounds.insert(static_cast<int>(a.background));
      }
    }
    EXPECT_GE(shapes.size(), 3u) << d.name;
    EXPECT_GE(colours.size(), 3u) << d.name;
    EXPECT_GE(backgrounds.size(), 3u) << d.name;
    // Class names are distinct and their folders are the names with '_' for ' '.
    std::set<std::string> names;
    for (const SynthClass& c : d.classes) {
      names.insert(c.name);
      std::string folder = c.name;
      std::replace(folder.begin(), folder.end(), ' ', '_');
      EXPECT_EQ(c.folder, folder);
    }
    EXPECT_EQ(names.size(), d.classes.size());
  }
}

TEST(Synth, BadOptionsAndForeignFoldersAreRefused) {
  auto bad = [](auto mutate) {
    WorldOptions o = small_options();
    mutate(o);
    return o;
  };
  EXPECT_THROW(validate_options(bad([](WorldOptions& o) { o.image_size = 8; })), Error);
  EXPECT_THROW(validate_options(bad([](WorldOptions& o) { o.image_size = 1024; })), Error);
  EXPECT_THROW(validate_options(bad([](WorldOptions& o) { o.pretrain_images = 0; })), Error);
  EXPECT_THROW(validate_options(bad([](WorldOptions& o) { o.train_per_class = 0; })), Error);
  EXPECT_THROW(validate_options(bad([](WorldOptions& o) { o.val_per_class = -1; })), Error);
  EXPECT_THROW(validate_options(bad([](WorldOptions& o) { o.test_per_class = 0; })), Error);
  EXPECT_NO_THROW(validate_options(small_options()));

  const WorldOptions o = small_options();
  EXPECT_THROW(generate_world("", o), Error);
  // A folder with a user's file: refused, and the file is left alone.
  const fs::path user = temp_dir("user");
  fs::create_directories(user);
  write_text_file_atomic((user / "notes.txt").string(), "mine\n");
  try {
    generate_world(user.string(), o);
    ADD_FAILURE() << "a foreign folder was written into";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a world written by tgpt-synth"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(read_file(user / "notes.txt"), "mine\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(user), fs::directory_iterator()), 1);
  // A file where the folder should be.
  EXPECT_THROW(generate_world((user / "notes.txt").string(), o), Error);
  fs::remove_all(user);
}

TEST(Synth, RerunIsANoOpAndOtherOptionsReplaceThePreviousWorld) {
  WorldOptions o = small_options();
  const fs::path root = temp_dir("rerun");
  ASSERT_EQ(generate_world(root.string(), o), WorldStatus::Written);
  const auto before = tree_hashes(root);
  const auto mtime = fs::last_write_time(root / "pretrain" / "images" / "000000.png");
  EXPECT_EQ(generate_world(root.string(), o), WorldStatus::Unchanged);
  EXPECT_EQ(tree_hashes(root), before);
  EXPECT_EQ(fs::last_write_time(root / "pretrain" / "images" / "000000.png"), mtime);

  // Fewer pretraining images: the world is replaced, nothing stale remains.
  WorldOptions fewer = o;
  fewer.pretrain_images = 20;
  EXPECT_EQ(generate_world(root.string(), fewer), WorldStatus::Replaced);
  EXPECT_FALSE(fs::exists(root / "pretrain" / "images" / "000025.png"));
  EXPECT_TRUE(fs::exists(root / "pretrain" / "images" / "000019.png"));
  EXPECT_EQ(read_file(root / "world.json"), world_manifest(fewer));
  // The replaced world equals one written fresh.
  const fs::path fresh = temp_dir("rerun_fresh");
  generate_world(fresh.string(), fewer);
  EXPECT_EQ(tree_hashes(root), tree_hashes(fresh));

  // An interrupted run (marker present, no manifest) is regenerated.
  fs::remove(root / "world.json");
  write_text_file_atomic((root / ".tgpt-synth-incomplete").string(), "x");
  EXPECT_EQ(generate_world(root.string(), fewer), WorldStatus::Replaced);
  EXPECT_EQ(tree_hashes(root), tree_hashes(fresh));

  // A previous world with a file tgpt-synth did not write is not replaced.
  write_text_file_atomic((root / "results.csv").string(), "acc\n");
  EXPECT_THROW(generate_world(root.string(), o), Error);
  EXPECT_TRUE(fs::exists(root / "results.csv"));
  EXPECT_TRUE(fs::exists(root / "world.json"));
  fs::remove_all(root);
  fs::remove_all(fresh);
}

TEST(Synth, ManifestRecordsGeneratorOptionsAndDatasets) {
  const WorldOptions o = small_options();
  const std::string m = world_manifest(o);
  EXPECT_NE(m.find("\"generator\": \"tgpt-synth\""), std::string::npos) << m;
  EXPECT_NE(m.find("\"version\": " + std::to_string(kWorldGeneratorVersion)), std::string::npos);
  EXPECT_NE(m.find("\"seed\": 5"), std::string::npos);
  for (const SynthDatasetSpec& d : synth_datasets()) {
    EXPECT_NE(m.find("\"" + d.name + "\""), std::string::npos) << d.name;
    EXPECT_NE(m.find(d.dir + "/" + d.split_file), std::string::npos) << d.name;
  }
  // No absolute paths or times: the manifest depends on the options only.
  EXPECT_EQ(m, world_manifest(o));
  EXPECT_EQ(m.find("/tmp"), std::string::npos);
}
