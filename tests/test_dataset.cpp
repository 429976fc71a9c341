/*
 * test_dataset.cpp — dataset readers: image folders (class order, extension filter, hidden
 * entries, errors), CoOp split files (parsing, path joining, validation errors naming the file
 * and entry), template files (selection by dataset name, placeholder checks, the mined-templates
 * data file when ../shared has it), list files and atomic text writes. Trees are built in a
 * temporary folder; images are tiny PNGs written with stb_image_write.
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "data/dataset.h"
#include "data/image.h"
#include "base/error.h"
#include "tests/test_util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wpedantic"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

using namespace tgpt;
namespace fs = std::filesystem;

namespace {

// A fresh temporary folder per test, removed afterwards.
class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ =
        fs::temp_directory_path() / ("tgpt_test_dataset_" + std::to_string(getpid()) + "_" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << "cannot write " << p;
}

// A 2x3 PNG whose pixels depend on `seed`.
void write_png(const fs::path& p, int seed) {
  fs::create_directories(p.parent_path());
  const int w = 3, h = 2;
  std::vector<uint8_t> px(w * h * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((seed * 37 + i * 11) % 256);
  ASSERT_TRUE(stbi_write_png(p.string().c_str(), w, h, 3, px.data(), w * 3)) << p;
}

using test::error_message;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Image folder

TEST(Dataset, ImageFileExtensions) {
  for (const char* ok :
       {"a.jpg", "a.JPG", "b.jpeg", "c.JpEg", "d.png", "e.PNG", "f.bmp", "g.gif", "x.y.png",
        "h.webp", "i.tif", "j.TIFF", "k.ppm", "l.pgm"})
    EXPECT_TRUE(is_image_file_name(ok)) << ok;
  for (const char* bad :
       {"a.txt", "jpg", ".png", "a.png.bak", "a.pbm", "a.pnm", "a.svg", "a.", "a.jp"})
    EXPECT_FALSE(is_image_file_name(bad)) << bad;
}

TEST_F(DatasetTest, ImageFolderOrderLabelsAndFilter) {
  // Classes deliberately created out of order; names sort byte-wise ('B' < 'a').
  write_png(dir_ / "zebra_fish" / "2.png", 1);
  write_png(dir_ / "zebra_fish" / "10.PNG", 2);
  write_text(dir_ / "zebra_fish" / "notes.txt", "not an image");
  write_png(dir_ / "zebra_fish" / ".hidden.png", 3);
  write_png(dir_ / "apple" / "b.jpg", 4);  // content is PNG; selection is by extension only
  write_png(dir_ / "apple" / "a.gif", 5);
  write_png(dir_ / "apple" / "sub" / "deep.png", 6);  // not recursive
  write_png(dir_ / "Banana" / "x.bmp", 7);
  write_png(dir_ / ".git" / "y.png", 8);  // hidden class folder
  write_text(dir_ / "README.txt", "files in the root are ignored");

  const ImageDataset ds = read_image_folder(dir_.string());
  ASSERT_EQ(ds.classnames, (std::vector<std::string>{"Banana", "apple", "zebra fish"}));
  std::vector<std::pair<std::string, int64_t>> got;
  for (const auto& it : ds.items)
    got.emplace_back(fs::path(it.path).lexically_relative(dir_), it.label);
  const std::vector<std::pair<std::string, int64_t>> want = {{"Banana/x.bmp", 0},
                                                             {"apple/a.gif", 1},
                                                             {"apple/b.jpg", 1},
                                                             {"zebra_fish/10.PNG", 2},
                                                             {"zebra_fish/2.png", 2}};
  EXPECT_EQ(got, want);
  for (size_t i = 0; i < ds.items.size(); ++i)  // relative to the root, as a split file writes it
    EXPECT_EQ(ds.items[i].relpath, want[i].first);
  EXPECT_EQ(ds.num_classes(), 3);
  EXPECT_EQ(ds.labels(), (std::vector<int64_t>{0, 1, 1, 2, 2}));
  ASSERT_EQ(ds.paths().size(), 5u);
  // The listed files decode.
  for (const auto& p : ds.paths()) EXPECT_EQ(decode_image_file(p).width, 3);
}

TEST_F(DatasetTest, ImageFolderErrors) {
  std::string msg = error_message([&] { read_image_folder((dir_ / "nope").string()); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;

  write_text(dir_ / "file.txt", "x");
  msg = error_message([&] { read_image_folder((dir_ / "file.txt").string()); });
  EXPECT_NE(msg.find("not a folder"), std::string::npos) << msg;

  fs::create_directories(dir_ / "empty_root");
  write_text(dir_ / "empty_root" / "x.png", "a file in the root is not a class");
  msg = error_message([&] { read_image_folder((dir_ / "empty_root").string()); });
  EXPECT_NE(msg.find("no class sub-folders"), std::string::npos) << msg;

  write_png(dir_ / "root" / "cat" / "1.png", 1);
  write_text(dir_ / "root" / "dog" / "readme.md", "no images here");
  msg = error_message([&] { read_image_folder((dir_ / "root").string()); });
  EXPECT_NE(msg.find("'dog'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no image files"), std::string::npos) << msg;

  EXPECT_THROW(read_image_folder(""), Error);
}

// ---------------------------------------------------------------------------------------------
// CoOp split files

TEST_F(DatasetTest, CoopSplitReads) {
  // Whitespace-independent; Dassl's indent=4 layout and a compact one give the same result.
  const std::string json = R"({
    "train": [["b/1.jpg", 1, "Apply_Eye_Makeup"], ["a/2.jpg", 0, "2012 Tesla Model S"],
              ["/abs/x.jpg", 2, "sea or lake"]],
    "val": [["a/3.jpg", 0, "2012 Tesla Model S"]],
    "test": [],
    "extra": "ignored"})";
  write_text(dir_ / "split_zhou_Test.json", json);
  const CoopSplit s = read_coop_split((dir_ / "split_zhou_Test.json").string(), "/data/root");
  EXPECT_EQ(s.classnames,
            (std::vector<std::string>{"2012 Tesla Model S", "Apply_Eye_Makeup", "sea or lake"}));
  ASSERT_EQ(s.train.size(), 3u);
  EXPECT_EQ(s.train[0].path, "/data/root/b/1.jpg");
  EXPECT_EQ(s.train[0].label, 1);
  EXPECT_EQ(s.train[1].path, "/data/root/a/2.jpg");
  EXPECT_EQ(s.train[2].path, "/abs/x.jpg");  // os.path.join keeps an absolute path
  EXPECT_EQ(s.train[0].relpath, "b/1.jpg");   // as written in the file
  EXPECT_EQ(s.train[2].relpath, "/abs/x.jpg");
  ASSERT_EQ(s.val.size(), 1u);
  EXPECT_EQ(s.val[0].label, 0);
  EXPECT_TRUE(s.test.empty());

  const ImageDataset v = coop_split_subset(s, "val");
  EXPECT_EQ(v.classnames, s.classnames);  // the full class list, not just the classes in val
  EXPECT_EQ(v.items.size(), 1u);
  EXPECT_EQ(coop_split_subset(s, "train").items.size(), 3u);
  EXPECT_TRUE(coop_split_subset(s, "test").items.empty());
  EXPECT_THROW(coop_split_subset(s, "Test"), Error);
}

TEST_F(DatasetTest, CoopSplitChecksFiles) {
  write_png(dir_ / "img" / "a" / "1.png", 1);
  write_text(dir_ / "s.json",
             R"({"train": [["a/1.png", 0, "a"]], "val": [["a/missing.png", 0, "a"]], "test": []})");
  const std::string path = (dir_ / "s.json").string();
  const std::string root = (dir_ / "img").string();
  EXPECT_NO_THROW(read_coop_split(path, root, false));
  const std::string msg = error_message([&] { read_coop_split(path, root, true); });
  EXPECT_NE(msg.find("1 image file(s) not found"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"val\"[0]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("s.json"), std::string::npos) << msg;

  // Per subset: train is complete, val is not.
  const CoopSplit s = read_coop_split(path, root, false);
  EXPECT_NO_THROW(check_image_files_exist(coop_split_subset(s, "train"), "train"));
  const std::string m2 =
      error_message([&] { check_image_files_exist(coop_split_subset(s, "val"), "subset val"); });
  EXPECT_NE(m2.find("subset val: 1 of 1 image file(s) not found"), std::string::npos) << m2;
  EXPECT_NE(m2.find("[0] '"), std::string::npos) << m2;
}

TEST_F(DatasetTest, CoopSplitErrors) {
  struct Case {
    const char* json;
    const char* expect;  // substring of the error
  };
  const Case cases[] = {
      {R"({"train": [["a.jpg", 0, "a"]], "val": [], )", "not valid JSON"},
      {R"([1, 2])", "top level must be an object"},
      {R"({"train": [], "val": []})", "missing key \"test\""},
      {R"({"train": {}, "val": [], "test": []})", "\"train\" must be a list"},
      {R"({"train": [["a.jpg", 0]], "val": [], "test": []})", "\"train\"[0] must be ["},
      {R"({"train": [["a.jpg", 0, "a"], ["b.jpg", "1", "b"]], "val": [], "test": []})",
       "\"train\"[1] label must be an integer"},
      {R"({"train": [["a.jpg", 0.5, "a"]], "val": [], "test": []})", "label must be an integer"},
      {R"({"train": [["a.jpg", true, "a"]], "val": [], "test": []})", "label must be an integer"},
      {R"({"train": [["a.jpg", -1, "a"]], "val": [], "test": []})", "label must be >= 0"},
      {R"({"train": [["a.jpg", 99999999999, "a"]], "val": [], "test": []})", "too large"},
      {R"({"train": [["", 0, "a"]], "val": [], "test": []})", "path must be a non-empty string"},
      {R"({"train": [[3, 0, "a"]], "val": [], "test": []})", "path must be a non-empty string"},
      {R"({"train": [["a.jpg", 0, ""]], "val": [], "test": []})", "classname must be"},
      {R"({"train": [["a.jpg", 0, "cat"]], "val": [["b.jpg", 0, "dog"]], "test": []})",
       "\"val\"[0] label 0 has classname \"dog\" but earlier entries call it \"cat\""},
      {R"({"train": [["a.jpg", 0, "cat"]], "val": [], "test": [["b.jpg", 1, "cat"]]})",
       "\"test\"[0] classname \"cat\" has label 1 but earlier entries give it label 0"},
      {R"({"train": [["a.jpg", 0, "cat"], ["b.jpg", 2, "dog"]], "val": [], "test": []})",
       "label 1 is never used"},
      {R"({"train": [["a.jpg", 1, "cat"]], "val": [], "test": []})", "label 0 is never used"},
      {R"({"train": [], "val": [], "test": []})", "no entries"},
  };
  for (const Case& c : cases) {
    write_text(dir_ / "split.json", c.json);
    const std::string msg =
        error_message([&] { read_coop_split((dir_ / "split.json").string(), "/r"); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.json << "\n-> " << msg;
    EXPECT_NE(msg.find("split.json"), std::string::npos) << msg;
  }
  const std::string msg =
      error_message([&] { read_coop_split((dir_ / "none.json").string(), ""); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_THROW(read_coop_split(dir_.string(), ""), Error);  // a folder
}

// ---------------------------------------------------------------------------------------------
// Templates

TEST(Dataset, TemplateChecksAndFill) {
  EXPECT_NO_THROW(check_template("a photo of a {}.", "t"));
  EXPECT_NO_THROW(check_template("{}", "t"));
  EXPECT_EQ(fill_template("a photo of a {}.", "Apply_Eye_Makeup"),
            "a photo of a Apply_Eye_Makeup.");
  EXPECT_EQ(fill_template("{} here", "x"), "x here");
  for (const char* bad : {"a photo.", "{} and {}", "a {x} {}", "a {{}} photo", "{ }", "a }{"})
    EXPECT_THROW(check_template(bad, "t"), Error) << bad;
  const std::string msg = [] {
    try {
      check_template("no placeholder", "file 'x.json': \"DS\"[3]");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(msg.find("\"DS\"[3]"), std::string::npos) << msg;
}

TEST(Dataset, ClassPrompts) {
  const auto p = class_prompts({"cat", "Apply_Eye_Makeup"}, {"a {}.", "{} photo", "x {} y"});
  const std::vector<std::vector<std::string>> want = {
      {"a cat.", "cat photo", "x cat y"},
      {"a Apply_Eye_Makeup.", "Apply_Eye_Makeup photo", "x Apply_Eye_Makeup y"}};
  EXPECT_EQ(p, want);
  EXPECT_THROW(class_prompts({}, {"a {}."}), Error);
  EXPECT_THROW(class_prompts({"cat"}, {}), Error);
  EXPECT_THROW(class_prompts({"cat"}, {"a {}.", "no placeholder"}), Error);
}

TEST_F(DatasetTest, TemplatesFile) {
  write_text(dir_ / "t.json",
             R"({"Zeta": ["z {}.", "zz {}!"], "Alpha": ["a photo of a {}."], "Mid": ["{}"]})");
  const TemplateLists lists = read_templates_file((dir_ / "t.json").string());
  ASSERT_EQ(lists.size(), 3u);
  EXPECT_EQ(lists[0].first, "Zeta");  // file order kept
  EXPECT_EQ(lists[1].first, "Alpha");
  EXPECT_EQ(select_templates(lists, "Zeta"), (std::vector<std::string>{"z {}.", "zz {}!"}));
  EXPECT_EQ(select_templates(lists, "Mid"), (std::vector<std::string>{"{}"}));
  const std::string msg = error_message([&] { select_templates(lists, "zeta", "t.json"); });
  EXPECT_NE(msg.find("\"zeta\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("Zeta, Alpha, Mid"), std::string::npos) << msg;

  struct Case {
    const char* json;
    const char* expect;
  };
  const Case cases[] = {
      {R"({"A": ["a {}."])", "not valid JSON"},
      {R"(["a {}."])", "top level must be an object"},
      {R"({})", "no template lists"},
      {R"({"A": []})", "\"A\" must be a non-empty list"},
      {R"({"A": "a {}."})", "\"A\" must be a non-empty list"},
      {R"({"A": ["a {}.", 3]})", "\"A\"[1] must be a string"},
      {R"({"A": ["a {}."], "B": ["ok {}", "two {} {}"]})",
       "\"B\"[1]: template \"two {} {}\" has more"},
      {R"({"A": ["none."]})", "\"A\"[0]: template \"none.\" has no \"{}\""},
  };
  for (const Case& c : cases) {
    write_text(dir_ / "bad.json", c.json);
    const std::string m = error_message([&] { read_templates_file((dir_ / "bad.json").string()); });
    EXPECT_NE(m.find(c.expect), std::string::npos) << c.json << "\n-> " << m;
    EXPECT_NE(m.find("bad.json"), std::string::npos) << m;
  }
}

// The mined-templates data file (third-party; read from ../shared when present, never copied).
TEST(Dataset, MinedTemplatesFileWhenPresent) {
  const fs::path file =
      fs::path(test::shared_dir()) / "spec" / "templates" / "tgpt_mined_templates.json";
  if (!fs::exists(file)) GTEST_SKIP() << "no " << file;
  const TemplateLists lists = read_templates_file(file.string());
  EXPECT_EQ(lists.size(), 16u);  // method.md §10: 16 keys
  size_t total = 0;
  for (const auto& [name, templates] : lists) {
    EXPECT_EQ(templates.size(), 21u) << name;
    total += templates.size();
  }
  EXPECT_EQ(total, 336u);
  for (const char* name :
       {"Caltech101", "DescribableTextures", "EuroSAT", "FGVCAircraft", "Food101", "ImageNet",
        "ImageNetSketch", "ImageNetV2", "OxfordFlowers", "OxfordPets", "StanfordCars", "SUN397",
        "UCF101", "ImageNetA", "ImageNetR", "ImageNet_wval"})
    EXPECT_EQ(select_templates(lists, name).size(), 21u) << name;
  EXPECT_EQ(select_templates(lists, "ImageNetV2"), select_templates(lists, "ImageNet"));
}

// ---------------------------------------------------------------------------------------------
// Files

TEST_F(DatasetTest, ListFile) {
  write_text(dir_ / "list.txt", "a.png\n\n  \nb c.jpg\r\n\tpadded text \nlast");
  EXPECT_EQ(read_list_file((dir_ / "list.txt").string()),
            (std::vector<std::string>{"a.png", "b c.jpg", "\tpadded text ", "last"}));
  write_text(dir_ / "empty.txt", "");
  EXPECT_TRUE(read_list_file((dir_ / "empty.txt").string()).empty());
  EXPECT_THROW(read_list_file((dir_ / "missing.txt").string()), Error);
}

TEST_F(DatasetTest, AtomicTextWrite) {
  const std::string p = (dir_ / "out.json").string();
  write_text_file_atomic(p, "first");
  write_text_file_atomic(p, "{\"second\": 2}\n");
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), "{\"second\": 2}\n");
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++n;
  EXPECT_EQ(n, 1u);  // no temporary left behind
  EXPECT_EQ(fs::status(p).permissions() & fs::perms::owner_read, fs::perms::owner_read);
  EXPECT_THROW(write_text_file_atomic((dir_ / "no_dir" / "x.json").string(), "x"), Error);
}
