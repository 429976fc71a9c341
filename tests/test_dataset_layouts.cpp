/*
 * test_dataset_layouts.cpp — the dataset layouts without a CoOp split file
 * (data/layout_readers.h): FGVCAircraft's list files, ImageNet's class folders and
 * split_ImageNet.json, ImageNetV2, ImageNet-Sketch, ImageNet-A and ImageNet-R, each on a fake
 * $DATA tree of tiny PNG/JPEG files written here: labels, class names, orders, relpaths, the
 * A/R ImageNet class indices, size warnings, errors for damaged files and folders; the few-shot
 * draws of FGVCAircraft and ImageNet against the Python reference of
 * tests/golden/gen_dataset_layouts.py (Dassl's readers and draw, compared exactly); and the
 * tools: tgpt-data split/check on these layouts, tgpt-train's refusal of the test-only sets.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/dataset_layout.h"
#include "data/fewshot.h"
#include "data/layout_readers.h"
#include "tests/test_files.h"
#include "tests/test_util.h"
#include "tests/tool_test_util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

using test::error_message;

std::vector<std::string> relpaths(const std::vector<LabeledImage>& items) {
  std::vector<std::string> out;
  for (const auto& it : items) out.push_back(it.relpath);
  return out;
}
std::vector<int64_t> labels(const std::vector<LabeledImage>& items) {
  std::vector<int64_t> out;
  for (const auto& it : items) out.push_back(it.label);
  return out;
}

class LayoutTree : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ =
        fs::temp_directory_path() / ("tgpt_test_layouts_" + std::to_string(getpid()) + "_" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    data_ = dir_ / "data";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    test::write_file(p.string(), text);
  }
  // A tiny 4x4 image, PNG or JPEG by the extension.
  static void image(const fs::path& p) {
    fs::create_directories(p.parent_path());
    unsigned char px[4 * 4 * 3];
    for (int i = 0; i < 48; ++i) px[i] = static_cast<unsigned char>(i * 5);
    const std::string ext = p.extension().string();
    const bool ok = ext == ".png" ? stbi_write_png(p.string().c_str(), 4, 4, 3, px, 12) != 0
                                  : stbi_write_jpg(p.string().c_str(), 4, 4, 3, px, 90) != 0;
    ASSERT_TRUE(ok) << p;
  }

  // $DATA/fgvc_aircraft: 3 variants (one with a space, one with '/'), lists in a shuffled order.
  fs::path make_fgvc() {
    const fs::path d = data_ / "fgvc_aircraft";
    write(d / "variants.txt", "707-320\nF-16A/B\r\nCessna 172\n\n");
    write(d / "images_variant_train.txt",
          "1000003 Cessna 172\n1000001 707-320\n1000002 F-16A/B\n1000004 707-320\n"
          "1000005 Cessna 172\n1000006 Cessna 172\n");
    write(d / "images_variant_val.txt", "2000001 F-16A/B\n2000002 707-320\n");
    write(d / "images_variant_test.txt", "3000001 Cessna 172\n");
    for (const char* id : {"1000001", "1000002", "1000003", "1000004", "1000005", "1000006",
                           "2000001", "2000002", "3000001"})
      image(d / "images" / (std::string(id) + ".jpg"));
    return d;
  }

  // $DATA/imagenet: 3 classes, train files created out of order, val in wnid folders.
  fs::path make_imagenet(bool with_val_json = true) {
    const fs::path d = data_ / "imagenet";
    write(d / "classnames.txt",
          "n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n");
    for (const char* f : {"c.JPEG", "a.JPEG", "b.png", "notes.txt", ".hidden.JPEG"})
      image(d / "images/train/n01440764" / f);
    for (const char* f : {"z.JPEG", "y.JPEG"}) image(d / "images/train/n01443537" / f);
    for (const char* f : {"m.JPEG", "k.JPEG", "l.JPEG", "j.JPEG"})
      image(d / "images/train/n01484850" / f);
    for (const char* wnid : {"n01440764", "n01443537", "n01484850"})
      image(d / "images/val" / wnid / "ILSVRC2012_val_1.JPEG");
    image(d / "images/val/n01484850/ILSVRC2012_val_0.JPEG");
    if (with_val_json) {
      nlohmann::json val = nlohmann::json::array();
      val.push_back({"train/n01484850/j.JPEG", 2, "great white shark"});
      val.push_back({"train/n01440764/a.JPEG", 0, "tench"});
      val.push_back({"train/n01484850/k.JPEG", 2, "great white shark"});
      write(d / "split_ImageNet.json", nlohmann::json({{"val", val}}).dump(4));
    }
    return d;
  }

  // classnames.txt of 6 ImageNet classes (a copy of ImageNet's, sorted).
  static std::string six_classnames() {
    return "n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n"
           "n01491361 tiger shark\nn01494475 hammerhead shark\nn01496331 electric ray\n";
  }

  fs::path dir_, data_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// FGVCAircraft

TEST_F(LayoutTree, FgvcAircraft) {
  const fs::path d = make_fgvc();
  const DatasetSplit s = read_fgvc_aircraft(d.string());
  EXPECT_EQ(s.split.classnames, (std::vector<std::string>{"707-320", "F-16A/B", "Cessna 172"}));
  // File order, label = line of variants.txt, relpath <id>.jpg under images/.
  EXPECT_EQ(relpaths(s.split.train),
            (std::vector<std::string>{"1000003.jpg", "1000001.jpg", "1000002.jpg", "1000004.jpg",
                                      "1000005.jpg", "1000006.jpg"}));
  EXPECT_EQ(labels(s.split.train), (std::vector<int64_t>{2, 0, 1, 0, 2, 2}));
  EXPECT_EQ(labels(s.split.val), (std::vector<int64_t>{1, 0}));
  ASSERT_EQ(s.split.test.size(), 1u);
  EXPECT_EQ(s.split.test[0].path, (d / "images" / "3000001.jpg").string());
  EXPECT_EQ(s.image_root, (d / "images").string());
  EXPECT_EQ(s.val_rule, FewshotValRule::MinShots4);

  // Through the table: sizes against the published ones are warnings.
  const DatasetSplit t = read_dataset(find_dataset_layout("fgvc_aircraft"), d.string());
  ASSERT_EQ(t.warnings.size(), 4u);
  EXPECT_EQ(t.warnings[0], "train has 6 images; the published FGVCAircraft split has 3334");
  EXPECT_EQ(t.warnings[3], "3 classes; the published FGVCAircraft split has 100");

  // The few-shot draw is the generic one: train K, then val min(K, 4) from the same stream.
  const FewshotSplit f = draw_dataset_fewshot(s, 2, 5);
  const FewshotIndices idx = draw_fewshot_indices(labels(s.split.train), labels(s.split.val), 2, 5);
  ASSERT_EQ(f.train.size(), idx.train.size());
  for (size_t i = 0; i < idx.train.size(); ++i)
    EXPECT_EQ(f.train[i].relpath, s.split.train[idx.train[i]].relpath);
  EXPECT_EQ(f.val.size(), 2u);
  EXPECT_EQ(f.val_shots, 2);
  EXPECT_EQ(f.source, d.string());
}

TEST_F(LayoutTree, FgvcAircraftErrors) {
  const fs::path d = make_fgvc();
  const std::string train = (d / "images_variant_train.txt").string();
  write(train, "1000001 707-320\n1000002\n");
  EXPECT_ERROR(read_fgvc_aircraft(d.string()), "images_variant_train.txt' line 2: expected");
  write(train, "1000001 707-320\n1000002 Boeing 747\n");
  EXPECT_ERROR(read_fgvc_aircraft(d.string()),
               "line 2: variant \"Boeing 747\" is not in '" + (d / "variants.txt").string());
  write(train, "1000001 707-320\n\n1000002 F-16A/B\n");
  EXPECT_ERROR(read_fgvc_aircraft(d.string()), "train.txt' line 2: blank line");
  write(train, "1000001 707-320\n1000099 F-16A/B\n");
  EXPECT_ERROR(read_fgvc_aircraft(d.string()), "1000099.jpg");
  EXPECT_NO_THROW(read_fgvc_aircraft(d.string(), /*check_files=*/false));
  write(train, "");
  EXPECT_ERROR(read_fgvc_aircraft(d.string()), "has no entries");
  write(d / "variants.txt", "707-320\nF-16A/B\n707-320\n");
  EXPECT_ERROR(read_fgvc_aircraft(d.string()),
               "variants.txt' line 3: variant \"707-320\" again (first on line 1)");
  fs::remove(d / "variants.txt");
  EXPECT_ERROR(read_fgvc_aircraft(d.string()), "variants.txt' does not exist");
  fs::remove(d / "images_variant_test.txt");
  fs::remove_all(d / "images");
  EXPECT_ERROR(read_fgvc_aircraft(d.string()), "image folder '" + (d / "images").string());
  EXPECT_ERROR(read_fgvc_aircraft((dir_ / "nope").string()), "does not exist");
}

// ---------------------------------------------------------------------------------------------
// ImageNet

TEST_F(LayoutTree, ImageNet) {
  const fs::path d = make_imagenet();
  const DatasetSplit s = read_imagenet(d.string());
  EXPECT_EQ(s.split.classnames,
            (std::vector<std::string>{"tench", "goldfish", "great white shark"}));
  // Label = classnames.txt line = sorted folder; within a class sorted by file name; images
  // only (notes.txt and hidden files skipped).
  EXPECT_EQ(relpaths(s.split.train),
            (std::vector<std::string>{
                "train/n01440764/a.JPEG", "train/n01440764/b.png", "train/n01440764/c.JPEG",
                "train/n01443537/y.JPEG", "train/n01443537/z.JPEG", "train/n01484850/j.JPEG",
                "train/n01484850/k.JPEG", "train/n01484850/l.JPEG", "train/n01484850/m.JPEG"}));
  EXPECT_EQ(labels(s.split.train), (std::vector<int64_t>{0, 0, 0, 1, 1, 2, 2, 2, 2}));
  EXPECT_EQ(s.split.train[0].path, (d / "images/train/n01440764/a.JPEG").string());
  EXPECT_EQ(relpaths(s.split.test),
            (std::vector<std::string>{
                "val/n01440764/ILSVRC2012_val_1.JPEG", "val/n01443537/ILSVRC2012_val_1.JPEG",
                "val/n01484850/ILSVRC2012_val_0.JPEG", "val/n01484850/ILSVRC2012_val_1.JPEG"}));
  EXPECT_EQ(labels(s.split.test), (std::vector<int64_t>{0, 1, 2, 2}));
  // val = split_ImageNet.json's "val", in file order.
  EXPECT_EQ(relpaths(s.split.val),
            (std::vector<std::string>{"train/n01484850/j.JPEG", "train/n01440764/a.JPEG",
                                      "train/n01484850/k.JPEG"}));
  EXPECT_EQ(labels(s.split.val), (std::vector<int64_t>{2, 0, 2}));
  EXPECT_EQ(s.val_rule, FewshotValRule::MaxShots8);
  ASSERT_FALSE(s.notes.empty());
  EXPECT_NE(s.notes.back().find("os.listdir"), std::string::npos);
  const DatasetSplit t = read_dataset(find_dataset_layout("ImageNet"), d.string());
  EXPECT_EQ(t.warnings, (std::vector<std::string>{
                            "train has 9 images; the published ImageNet split has 1281167",
                            "test has 4 images; the published ImageNet split has 50000",
                            "3 classes; the published ImageNet split has 1000"}));

  // Few-shot with captions keyed as TGP-T's impath[28:] (relative to $DATA).
  std::string caps;
  for (const auto& it : s.split.train) caps += "imagenet/images/" + it.relpath + "\tA fish.\n";
  write(d / "captions.txt", caps);
  DatasetFewshotRequest req;
  req.layout = &find_dataset_layout("imagenet");
  req.dataset_dir = d.string();
  req.shots = 2;
  req.seed = 1;
  const DatasetFewshotData fd = load_dataset_fewshot(req);
  const FewshotSplit& f = fd.fewshot.split;
  EXPECT_EQ(f.train.size(), 6u);
  EXPECT_EQ(f.val.size(), 3u);  // max(2, 8) per class: all of the pool's 1 + 2
  EXPECT_EQ(f.val_shots, 8);
  EXPECT_EQ(fd.fewshot.train_captions, std::vector<std::string>(6, "A fish."));
  EXPECT_EQ(fd.image_root, (d / "images").string());
  const FewshotIndices idx = draw_fewshot_indices(labels(s.split.train), labels(s.split.val), 2, 1,
                                                  FewshotValRule::MaxShots8);
  for (size_t i = 0; i < idx.train.size(); ++i)
    EXPECT_EQ(f.train[i].relpath, s.split.train[idx.train[i]].relpath);

  // Without split_ImageNet.json: no few-shot val, and a note says why.
  fs::remove(d / "split_ImageNet.json");
  const DatasetSplit n = read_imagenet(d.string());
  EXPECT_TRUE(n.split.val.empty());
  EXPECT_NE(n.notes.front().find("few-shot val is empty"), std::string::npos);
  req.captions = false;
  EXPECT_TRUE(load_dataset_fewshot(req).fewshot.split.val.empty());
}

TEST_F(LayoutTree, ImageNetErrors) {
  const fs::path d = make_imagenet();
  const std::string cls = (d / "classnames.txt").string();
  // classnames.txt: malformed, unsorted, duplicate, blank line in the middle.
  write(cls, "n01440764 tench\nn01443537\nn01484850 great white shark\n");
  EXPECT_ERROR(read_imagenet(d.string()), "classnames.txt' line 2: expected \"<wnid> <class");
  write(cls, "n01443537 goldfish\nn01440764 tench\nn01484850 great white shark\n");
  EXPECT_ERROR(read_imagenet(d.string()), "line 2: wnid 'n01440764' comes after 'n01443537'");
  write(cls, "n01440764 tench\nn01440764 tench\n");
  EXPECT_ERROR(read_imagenet(d.string()), "line 2: wnid 'n01440764' again");
  write(cls, "n01440764 tench\n\nn01443537 goldfish\nn01484850 great white shark\n");
  EXPECT_ERROR(read_imagenet(d.string()), "line 2: blank line");
  // A class of classnames.txt without a folder; a folder that is not a class.
  write(cls, "n01440764 tench\nn01443537 goldfish\nn01480000 ray\nn01484850 great white shark\n");
  EXPECT_ERROR(read_imagenet(d.string()), "has no folder for 1 of the 4 classes");
  EXPECT_ERROR(read_imagenet(d.string()), "n01480000 (ray)");
  write(cls, "n01440764 tench\nn01443537 goldfish\n");
  EXPECT_ERROR(read_imagenet(d.string()), "sub-folder 'n01484850' is not a wnid of");
  write(cls, "n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n");
  // split_ImageNet.json: label out of range, damaged JSON, a missing image.
  write(d / "split_ImageNet.json", R"({"val": [["train/n01440764/a.JPEG", 3, "x"]]})");
  EXPECT_ERROR(read_imagenet(d.string()), "\"val\"[0] label 3 is outside 0..2");
  write(d / "split_ImageNet.json", R"({"val": [["train/n01440764/a.JPEG", 0]]})");
  EXPECT_ERROR(read_imagenet(d.string()), "\"val\"[0] must be [relative_path");
  write(d / "split_ImageNet.json", R"({"val": [)");
  EXPECT_ERROR(read_imagenet(d.string()), "is not valid JSON");
  write(d / "split_ImageNet.json", R"({"val": [["train/n01440764/gone.JPEG", 0, "tench"]]})");
  EXPECT_ERROR(read_imagenet(d.string()), "gone.JPEG");
  // A class name that differs from classnames.txt is a note; classnames.txt's names are used.
  write(d / "split_ImageNet.json", R"({"val": [["train/n01440764/a.JPEG", 0, "Tinca tinca"]]})");
  const DatasetSplit s = read_imagenet(d.string());
  EXPECT_NE(s.notes.front().find("\"Tinca tinca\" for \"tench\""), std::string::npos);
  // A class folder with no images; val not sorted into wnid folders.
  fs::remove_all(d / "images/train/n01443537");
  fs::create_directories(d / "images/train/n01443537");
  EXPECT_ERROR(read_imagenet(d.string()), "n01443537' has no image files");
  image(d / "images/train/n01443537/y.JPEG");
  fs::remove_all(d / "images/val");
  image(d / "images/val/ILSVRC2012_val_00000001.JPEG");
  EXPECT_ERROR(read_imagenet(d.string()), "has no class sub-folders");
  fs::remove_all(d / "images/val");
  EXPECT_ERROR(read_imagenet(d.string()), "ImageNet val folder '");
  fs::remove(cls);
  EXPECT_ERROR(read_imagenet(d.string()), "classnames.txt' does not exist");
}

// ---------------------------------------------------------------------------------------------
// The test-only variants

TEST_F(LayoutTree, ImageNetV2) {
  const fs::path d = data_ / "imagenetv2";
  const fs::path root = d / "imagenetv2-matched-frequency-format-val";
  write(d / "classnames.txt", "n01440764 tench\nn01443537 goldfish\nn01484850 great white shark\n");
  image(root / "0/b.jpeg");
  image(root / "0/a.jpeg");
  image(root / "1/x.png");
  image(root / "2/q.jpeg");
  write(root / "README.txt", "files in the root are skipped");
  const DatasetLayout& l = find_dataset_layout("ImageNetV2");
  EXPECT_TRUE(l.test_only());
  const DatasetSplit s = read_dataset(l, d.string());
  EXPECT_TRUE(s.split.train.empty() && s.split.val.empty());
  EXPECT_EQ(relpaths(s.split.test),
            (std::vector<std::string>{"0/a.jpeg", "0/b.jpeg", "1/x.png", "2/q.jpeg"}));
  EXPECT_EQ(labels(s.split.test), (std::vector<int64_t>{0, 0, 1, 2}));
  EXPECT_EQ(s.split.classnames[2], "great white shark");
  EXPECT_EQ(s.imagenet_index, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(s.warnings[0], "test has 4 images; the published ImageNetV2 split has 10000");
  // Folder i is the i-th class: each must exist, nothing else may.
  image(root / "3/r.jpeg");
  EXPECT_ERROR(read_dataset(l, d.string()), "sub-folder '3' is not a class number 0..2");
  fs::remove_all(root / "3");
  fs::remove_all(root / "1");
  EXPECT_ERROR(read_dataset(l, d.string()), "no folder '1' for class 1 (n01443537 goldfish)");
  fs::create_directories(root / "1");
  EXPECT_ERROR(read_dataset(l, d.string()),
               "class folder '" + (root / "1").string() + "' has no image files");
}

TEST_F(LayoutTree, ImageNetSketch) {
  const fs::path d = data_ / "imagenet-sketch";
  write(d / "classnames.txt", six_classnames());
  for (const char* wnid : {"n01496331", "n01440764", "n01484850"})
    for (const char* f : {"sketch_2.JPEG", "sketch_1.JPEG"}) image(d / "images" / wnid / f);
  const DatasetSplit s = read_dataset(find_dataset_layout("imagenet_sketch"), d.string());
  EXPECT_EQ(s.split.classnames,
            (std::vector<std::string>{"tench", "great white shark", "electric ray"}));
  EXPECT_EQ(labels(s.split.test), (std::vector<int64_t>{0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(s.split.test[1].relpath, "n01440764/sketch_2.JPEG");
  EXPECT_EQ(s.imagenet_index, (std::vector<int64_t>{0, 2, 5}));
  EXPECT_EQ(s.warnings.size(), 2u);  // test size and classes
}

TEST_F(LayoutTree, ImageNetAandR) {
  for (const char* name : {"ImageNetA", "ImageNetR"}) {
    SCOPED_TRACE(name);
    const DatasetLayout& l = find_dataset_layout(name);
    EXPECT_TRUE(l.test_only());
    const fs::path d = data_ / l.dir;
    const fs::path root = d / l.image_root;
    write(d / "classnames.txt", six_classnames());
    // 3 of the 6 classes, created out of order; README.txt in the root is skipped.
    image(root / "n01494475/0.jpg");
    image(root / "n01443537/1.png");
    image(root / "n01443537/0.png");
    image(root / "n01491361/5.jpg");
    write(root / "README.txt", "This is ImageNet-A/R.");
    const DatasetSplit s = read_dataset(l, d.string());
    // Labels 0..2 in sorted-folder order, names looked up by wnid.
    EXPECT_EQ(s.split.classnames,
              (std::vector<std::string>{"goldfish", "tiger shark", "hammerhead shark"}));
    EXPECT_EQ(relpaths(s.split.test),
              (std::vector<std::string>{"n01443537/0.png", "n01443537/1.png", "n01491361/5.jpg",
                                        "n01494475/0.jpg"}));
    EXPECT_EQ(labels(s.split.test), (std::vector<int64_t>{0, 0, 1, 2}));
    // The rows of ImageNet's 1000-way head to select (index into classnames.txt).
    EXPECT_EQ(s.imagenet_index, (std::vector<int64_t>{1, 3, 4}));
    ASSERT_EQ(s.warnings.size(), 2u);
    EXPECT_EQ(s.warnings[1], "3 classes; the published " + l.name + " split has 200");
    // Errors: a wnid not in classnames.txt, an empty class folder, no class folders.
    image(root / "n09999999/0.jpg");
    EXPECT_ERROR(read_dataset(l, d.string()),
                 "sub-folder 'n09999999' is not a wnid of '" + (d / "classnames.txt").string());
    fs::remove_all(root / "n09999999");
    fs::create_directories(root / "n01496331");
    EXPECT_ERROR(read_dataset(l, d.string()), "n01496331' has no image files");
    fs::remove_all(root);
    fs::create_directories(root);
    EXPECT_ERROR(read_dataset(l, d.string()), "has no class sub-folders");
    // Test sets only: no few-shot split, with the reason.
    DatasetFewshotRequest req;
    req.layout = &l;
    req.dataset_dir = d.string();
    EXPECT_ERROR(load_dataset_fewshot(req), "evaluated with a model trained on ImageNet");
  }
}

TEST(DatasetLayout, NewLayoutsInTheTable) {
  EXPECT_EQ(find_dataset_layout("FGVCAircraft").format, DatasetFormat::FGVCAircraft);
  EXPECT_EQ(find_dataset_layout("imagenet").format, DatasetFormat::ImageNet);
  EXPECT_FALSE(find_dataset_layout("imagenet").test_only());
  EXPECT_EQ(find_dataset_layout("imagenet-adversarial").name, "ImageNetA");
  EXPECT_EQ(find_dataset_layout("imagenet_r").dir, "imagenet-rendition");
  EXPECT_EQ(find_dataset_layout("ImageNetR").image_root, "imagenet-r");
  EXPECT_EQ(find_dataset_layout("OxfordPets").format, DatasetFormat::CoopSplit);
  for (const DatasetLayout& l : dataset_layouts())
    EXPECT_EQ(l.split_file.empty(), l.format != DatasetFormat::CoopSplit) << l.name;
}

// ---------------------------------------------------------------------------------------------
// The few-shot draws against Python (tests/golden/gen_dataset_layouts.py)

TEST(DatasetLayoutsGolden, FewshotMatchesPython) {
  const nlohmann::json j = test::load_golden_json("dataset_layouts/expected.json");
  if (j.is_null()) GTEST_SKIP() << "run via ctest (tests/golden/gen_dataset_layouts.py)";
  const std::string dir = test::golden_dir() + "/dataset_layouts/";
  for (const char* name : {"fgvc_aircraft", "imagenet"}) {
    SCOPED_TRACE(name);
    const DatasetLayout& l = find_dataset_layout(name);
    const DatasetSplit d = read_dataset(l, dir + name);
    const nlohmann::json& e = j[name];
    EXPECT_EQ(d.split.train.size(), e["num_train"].get<size_t>());
    EXPECT_EQ(d.split.val.size(), e["num_val"].get<size_t>());
    ASSERT_EQ(e["cases"].size(), 15u);
    for (const auto& c : e["cases"]) {
      const int64_t shots = c["shots"], seed = c["seed"];
      SCOPED_TRACE("shots " + std::to_string(shots) + " seed " + std::to_string(seed));
      const FewshotSplit f = draw_dataset_fewshot(d, shots, seed);
      auto as_json = [&](const std::vector<LabeledImage>& items) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& it : items)
          out.push_back({it.relpath, it.label, f.classnames[static_cast<size_t>(it.label)]});
        return out;
      };
      ASSERT_EQ(as_json(f.train), c["train"]);
      ASSERT_EQ(as_json(f.val), c["val"]);
    }
  }
  // FGVC through the loader, with its captions (keys <id>.jpg).
  DatasetFewshotRequest req;
  req.layout = &find_dataset_layout("FGVCAircraft");
  req.dataset_dir = dir + "fgvc_aircraft";
  req.shots = 16;
  req.seed = 3;
  const DatasetFewshotData fd = load_dataset_fewshot(req);
  EXPECT_EQ(fd.fewshot.train_captions.size(), fd.fewshot.split.train.size());
  EXPECT_NE(fd.fewshot.train_captions[0].find("A photo of a "), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Tools

class LayoutTools : public LayoutTree {
 protected:
  void SetUp() override {
    LayoutTree::SetUp();
    data_bin_ = test::tool_path("tgpt-data");
    if (!fs::exists(data_bin_)) GTEST_SKIP() << "tgpt-data not built next to the tests";
  }
  int run(const std::string& cmd, std::string* out) { return test::run_command(cmd, dir_, out); }
  std::string data(const std::string& args) {
    return test::shell_quote(data_bin_) + " " + args + " --root " + test::shell_quote(data_);
  }
  fs::path data_bin_;
};

TEST_F(LayoutTools, DataSplitAndCheck) {
  make_fgvc();
  make_imagenet();
  std::string out;
  // FGVCAircraft: the library's draw, written in the split_zhou format.
  const fs::path file = dir_ / "fgvc.json";
  ASSERT_EQ(run(data("split --dataset FGVCAircraft --shots 2 --seed 1 --no-captions -o " +
                     test::shell_quote(file)),
                &out),
            0)
      << out;
  EXPECT_NE(out.find("warning: train has 6 images; the published FGVCAircraft split has 3334"),
            std::string::npos)
      << out;
  const DatasetSplit s = read_fgvc_aircraft((data_ / "fgvc_aircraft").string());
  const FewshotSplit want = draw_dataset_fewshot(s, 2, 1);
  const FewshotSplit got = read_fewshot_split(file.string(), s.image_root, true);
  EXPECT_EQ(relpaths(got.train), relpaths(want.train));
  EXPECT_EQ(relpaths(got.val), relpaths(want.val));
  EXPECT_EQ(got.classnames, s.split.classnames);
  EXPECT_EQ(got.val_shots, 2);
  // ImageNet: captions missing is an error, --no-captions draws; val max(K, 8).
  const fs::path inet = dir_ / "imagenet.json";
  EXPECT_EQ(
      run(data("split --dataset ImageNet --shots 1 --seed 2 -o " + test::shell_quote(inet)), &out),
      1)
      << out;
  EXPECT_NE(out.find("captions.txt and descriptions.txt"), std::string::npos) << out;
  ASSERT_EQ(run(data("split --dataset ImageNet --shots 1 --seed 2 --no-captions -o " +
                     test::shell_quote(inet)),
                &out),
            0)
      << out;
  EXPECT_NE(out.find("val:          3 images (8 per class)"), std::string::npos) << out;
  EXPECT_NE(out.find("note: ImageNet's images are taken in file-name order"), std::string::npos)
      << out;
  EXPECT_EQ(
      read_fewshot_split(inet.string(), (data_ / "imagenet/images").string(), true).train.size(),
      3u);
  // Test-only sets have no few-shot split; check reads them.
  write(data_ / "imagenet-adversarial/classnames.txt", six_classnames());
  image(data_ / "imagenet-adversarial/imagenet-a/n01443537/0.jpg");
  image(data_ / "imagenet-adversarial/imagenet-a/n01496331/0.jpg");
  EXPECT_EQ(run(data("split --dataset ImageNetA --shots 1 --seed 1 -o " +
                     test::shell_quote(dir_ / "a.json")),
                &out),
            1);
  EXPECT_NE(out.find("ImageNetA is a test set only"), std::string::npos) << out;
  ASSERT_EQ(run(data("check --dataset imagenet_a"), &out), 0) << out;
  EXPECT_NE(out.find("test            2 images, 1..1 per class"), std::string::npos) << out;
  EXPECT_NE(out.find("ImageNet classes of labels 0..1: 1, 5\n"), std::string::npos) << out;
  EXPECT_NE(out.find("check passed"), std::string::npos) << out;
  // check on FGVC and ImageNet; a missing image and a damaged list are reported.
  ASSERT_EQ(run(data("check --dataset FGVCAircraft"), &out), 0) << out;
  EXPECT_NE(out.find("train           6 images, 1..3 per class"), std::string::npos) << out;
  ASSERT_EQ(run(data("check --dataset ImageNet"), &out), 0) << out;
  EXPECT_NE(out.find("val             3 images, 0..2 per class"), std::string::npos) << out;
  EXPECT_NE(out.find("source:         " + (data_ / "imagenet").string()), std::string::npos) << out;
  fs::remove(data_ / "fgvc_aircraft/images/2000002.jpg");
  EXPECT_EQ(run(data("check --dataset FGVCAircraft"), &out), 1) << out;
  EXPECT_NE(out.find("2000002.jpg"), std::string::npos) << out;
  write(data_ / "fgvc_aircraft/images_variant_val.txt", "2000001\n");
  EXPECT_EQ(run(data("check --dataset FGVCAircraft"), &out), 1) << out;
  EXPECT_NE(out.find("images_variant_val.txt' line 1: expected"), std::string::npos) << out;
}

TEST_F(LayoutTools, TrainRefusesTestOnlySets) {
  const fs::path bin = test::tool_path("tgpt-train");
  if (!fs::exists(bin)) GTEST_SKIP() << "tgpt-train not built next to the tests";
  for (const char* name : {"ImageNetV2", "imagenet_sketch", "ImageNetA", "ImageNetR"}) {
    std::string out;
    EXPECT_EQ(
        run(test::shell_quote(bin) + " --dataset " + name + " --root " + test::shell_quote(data_) +
                " --shots 1 --seed 1 --weights " + test::shell_quote(dir_ / "none.safetensors") +
                " --output " + test::shell_quote(dir_ / "out"),
            &out),
        1)
        << name;
    EXPECT_NE(out.find("is a test set only: it is evaluated with a model trained on ImageNet"),
              std::string::npos)
        << name << ": " << out;
  }
}
