/*
 * test_config.cpp — the TGP-T config system (train/config.h): the default tree against
 * DEFAULTS.md, Python literal parsing and printing, yacs-style YAML merges and KEY VALUE
 * overrides with their errors, typed getters, dump -> merge round trips, and the per-dataset
 * presets against the official YAML files in ../shared/spec/configs (skipped when absent).
 */
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "tests/test_files.h"
#include "tests/test_util.h"
#include "train/config.h"

namespace tgpt {
namespace {

namespace fs = std::filesystem;

std::string configs_dir() {
  return test::shared_dir() + "/spec/configs";
}

// The message of the tgpt::Error that `f` throws ("" when it does not throw).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string repr_of(const std::string& text) {
  const std::optional<ConfigValue> v = parse_python_literal(text);
  return v ? v->repr() : "<not a literal>";
}

// A fresh temporary folder per test.
fs::path temp_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("tgpt_test_config_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Python literals

TEST(ConfigLiteral, ParsesWhatLiteralEvalParses) {
  EXPECT_EQ(repr_of("5e-5"), "5e-05");
  EXPECT_EQ(parse_python_literal("5e-5")->type, ConfigValue::Type::floating);
  EXPECT_EQ(repr_of("16"), "16");
  EXPECT_EQ(parse_python_literal("16")->type, ConfigValue::Type::integer);
  EXPECT_EQ(repr_of("-1"), "-1");
  EXPECT_EQ(repr_of("+ 3"), "3");
  EXPECT_EQ(repr_of("0x1F"), "31");
  EXPECT_EQ(repr_of("0o17"), "15");
  EXPECT_EQ(repr_of("0b101"), "5");
  EXPECT_EQ(repr_of("1_000"), "1000");
  EXPECT_EQ(repr_of("000"), "0");
  EXPECT_EQ(repr_of("0."), "0.0");
  EXPECT_EQ(repr_of(".5"), "0.5");
  EXPECT_EQ(repr_of("1E3"), "1000.0");
  EXPECT_EQ(repr_of("-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(repr_of("True"), "True");
  EXPECT_EQ(repr_of("False"), "False");
  EXPECT_EQ(repr_of("None"), "None");
  EXPECT_EQ(repr_of("'str'"), "'str'");
  EXPECT_EQ(repr_of("\"a photo of a\""), "'a photo of a'");
  EXPECT_EQ(repr_of("'a' \"b\""), "'ab'");
  EXPECT_EQ(repr_of("'it\\'s'"), "\"it's\"");
  EXPECT_EQ(parse_python_literal("'a\\tb\\x41\\u00e9\\n'")->s, "a\tbA\xc3\xa9\n");
  EXPECT_EQ(parse_python_literal("r'a\\tb'")->s, "a\\tb");
  EXPECT_EQ(parse_python_literal("'''x'y'''")->s, "x'y");
  EXPECT_EQ(repr_of("(224, 224)"), "(224, 224)");
  EXPECT_EQ(repr_of("( 224 ,224 , )"), "(224, 224)");
  EXPECT_EQ(repr_of("(5)"), "5");
  EXPECT_EQ(repr_of("(5,)"), "(5,)");
  EXPECT_EQ(repr_of("(-1, )"), "(-1,)");
  EXPECT_EQ(repr_of("()"), "()");
  EXPECT_EQ(repr_of("[]"), "[]");
  EXPECT_EQ(repr_of("1, 2"), "(1, 2)");
  EXPECT_EQ(repr_of("3,"), "(3,)");
  EXPECT_EQ(repr_of("[1, 2.5, 'x', (True, None)]"), "[1, 2.5, 'x', (True, None)]");
  EXPECT_EQ(repr_of("  [0.485,\n 0.456]  "), "[0.485, 0.456]");
}

TEST(ConfigLiteral, RefusesWhatLiteralEvalRefuses) {
  for (const char* text :
       {"bicubic",       "a photo of a", "ViT-B/16", "./output", "",       "  ",  "012",  "1j",
        "16abc",         "1e",           "1__0",     "1_",       "{1: 2}", "{1}", "b'x'", "f'x'",
        "'unterminated", "(1, 2",        "[1 2]",    "--5",      "-True",  "1 2", "inf",  "nan",
        "'\\N{DASH}'",   "'\\x4'",       "1, , 2",   "(,)",      "'a\nb'"})
    EXPECT_FALSE(parse_python_literal(text).has_value()) << "'" << text << "'";
  // Nesting beyond any config's needs is not a literal, and does not crash.
  EXPECT_FALSE(parse_python_literal(std::string(100000, '(')).has_value());
  EXPECT_FALSE(parse_python_literal(std::string(200, '[') + "1" + std::string(200, ']')));
  // Out of range is an error, not a string.
  EXPECT_NE(error_of([] { parse_python_literal("9223372036854775808"); }).find("64 bits"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_python_literal("1e999"); }).find("finite"), std::string::npos);
  // ... but only in text that is a literal otherwise (as literal_eval fails on the whole).
  EXPECT_FALSE(parse_python_literal("(99999999999999999999, bicubic)").has_value());
  EXPECT_FALSE(parse_python_literal("[1e999, --5]").has_value());
  // decode_config_value: the literal, else the text.
  EXPECT_EQ(decode_config_value("bicubic"), ConfigValue::string("bicubic"));
  EXPECT_EQ(decode_config_value("'bicubic'"), ConfigValue::string("bicubic"));
  EXPECT_EQ(decode_config_value("8"), ConfigValue::integer(8));
}

TEST(ConfigLiteral, ReprIsPythons) {
  auto f = [](double v) { return ConfigValue::floating(v).repr(); };
  EXPECT_EQ(f(0.0003), "0.0003");
  EXPECT_EQ(f(1e-4), "0.0001");
  EXPECT_EQ(f(1e-5), "1e-05");
  EXPECT_EQ(f(2e-5), "2e-05");
  EXPECT_EQ(f(1.5e-7), "1.5e-07");
  EXPECT_EQ(f(0.0), "0.0");
  EXPECT_EQ(f(-0.0), "-0.0");
  EXPECT_EQ(f(0.1), "0.1");
  EXPECT_EQ(f(-0.5), "-0.5");
  EXPECT_EQ(f(12800.0), "12800.0");
  EXPECT_EQ(f(0.48145466), "0.48145466");
  EXPECT_EQ(f(1e16), "1e+16");
  EXPECT_EQ(f(123456789012345.6), "123456789012345.6");
  EXPECT_EQ(f(1.2345678901234568e+17), "1.2345678901234568e+17");
  EXPECT_EQ(ConfigValue::string("it's").repr(), "\"it's\"");
  EXPECT_EQ(ConfigValue::string("a'\"b\\").repr(), "'a\\'\"b\\\\'");
  EXPECT_EQ(ConfigValue::tuple({ConfigValue::integer(-1)}).repr(), "(-1,)");
}

// ---------------------------------------------------------------------------------------------
// The default tree

TEST(Config, DefaultsMatchDefaultsMd) {
  const Config c = Config::defaults();
  EXPECT_EQ(c.keys().size(), 109u);
  EXPECT_EQ(c.keys().front(), "VERSION");
  EXPECT_EQ(c.keys().back(), "TRAINER.CTX_INIT");
  EXPECT_EQ(c.get_int("OPTIM.MAX_ITER"), 12800);
  EXPECT_EQ(c.get_double("OPTIM.LR"), 0.0003);
  EXPECT_EQ(c.get_int_list("INPUT.SIZE"), (std::vector<int64_t>{224, 224}));
  EXPECT_EQ(c.get("INPUT.SIZE").type, ConfigValue::Type::tuple);
  EXPECT_EQ(c.get("INPUT.PIXEL_MEAN").type, ConfigValue::Type::list);
  EXPECT_EQ(c.get_string("INPUT.TEXT_AUG"), "hand_crafted");
  EXPECT_TRUE(c.get_bool("USE_CUDA"));
  EXPECT_TRUE(c.is_node("DATALOADER.TRAIN_X"));
  EXPECT_FALSE(c.contains("DATALOADER.TRAIN_X"));

  // Every `KEY = VALUE` line of DEFAULTS.md, in order, decoded as Python literals.
  const std::string path = configs_dir() + "/DEFAULTS.md";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  std::ifstream f(path);
  std::string line;
  bool in_code = false;
  size_t n = 0;
  while (std::getline(f, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.rfind("```", 0) == 0) {
      in_code = !in_code;
      continue;
    }
    const size_t eq = line.find(" = ");
    if (!in_code || eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 3);
    if (value == "CN()") {
      EXPECT_TRUE(c.is_node(key)) << key;
      continue;
    }
    ASSERT_LT(n, c.keys().size()) << key;
    EXPECT_EQ(c.keys()[n], key) << "key " << n;
    const ConfigValue expected = decode_config_value(value);
    EXPECT_EQ(c.get(key), expected) << key << ": " << c.get(key).repr() << " vs " << value;
    ++n;
  }
  EXPECT_EQ(n, c.keys().size());
}

TEST(Config, TypedGettersNameTheKey) {
  const Config c = Config::defaults();
  EXPECT_NE(error_of([&] { c.get_int("OPTIM.LR"); }).find("OPTIM.LR is float 0.0003, not an int"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.get_string("SEED"); }).find("SEED is int 1"), std::string::npos);
  EXPECT_NE(error_of([&] { c.get_bool("SEED"); }).find("not a bool"), std::string::npos);
  EXPECT_NE(error_of([&] { c.get_int_list("INPUT.PIXEL_MEAN"); }).find("INPUT.PIXEL_MEAN"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.get("OPTIM.NOPE"); }).find("unknown config key OPTIM.NOPE"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.get("OPTIM"); }).find("group of keys"), std::string::npos);
  EXPECT_EQ(c.get_double("SEED"), 1.0);  // an int reads as a double
  EXPECT_EQ(c.get_double_list("INPUT.SIZE"), (std::vector<double>{224, 224}));
  EXPECT_TRUE(c.get_string_list("INPUT.TRANSFORMS").empty());
}

// ---------------------------------------------------------------------------------------------
// Overrides (yacs merge_from_list)

TEST(Config, OverridesParsePythonLiterals) {
  Config c = Config::defaults();
  const std::vector<std::string> set = c.merge_overrides({
      "OPTIM.LR",           "5e-5",                          //
      "OPTIM.MAX_ITER",     "16",                            //
      "OPTIM.WEIGHT_DECAY", "0",                             // int for a float key
      "TRAIN.DIST_TRAIN",   "True",                          //
      "TRAINER.CTX_INIT",   "a photo of a",                  // bare string
      "DATASET.NAME",       "'OxfordPets'",                  // quoted string
      "INPUT.SIZE",         "[320, 320]",                    // list for a tuple
      "INPUT.PIXEL_MEAN",   "(0.5, 1, 0.5)",                 // tuple for a list, int element
      "INPUT.TRANSFORMS",   "['random_flip', 'normalize']",  //
      "OPTIM.STEPSIZE",     "3, 5",                          // a bare tuple
  });
  EXPECT_EQ(set.size(), 10u);
  EXPECT_EQ(set[0], "OPTIM.LR");
  EXPECT_EQ(c.get_double("OPTIM.LR"), 5e-5);
  EXPECT_EQ(c.get_int("OPTIM.MAX_ITER"), 16);
  EXPECT_EQ(c.get("OPTIM.WEIGHT_DECAY"), ConfigValue::floating(0.0));
  EXPECT_TRUE(c.get_bool("TRAIN.DIST_TRAIN"));
  EXPECT_EQ(c.get_string("TRAINER.CTX_INIT"), "a photo of a");
  EXPECT_EQ(c.get_string("DATASET.NAME"), "OxfordPets");
  EXPECT_EQ(c.get("INPUT.SIZE").repr(), "(320, 320)");
  EXPECT_EQ(c.get("INPUT.PIXEL_MEAN").repr(), "[0.5, 1.0, 0.5]");
  EXPECT_EQ(c.get("INPUT.TRANSFORMS").repr(), "('random_flip', 'normalize')");
  EXPECT_EQ(c.get_int_list("OPTIM.STEPSIZE"), (std::vector<int64_t>{3, 5}));
  // The last override of a key wins.
  c.merge_overrides({"SEED", "2", "SEED", "3"});
  EXPECT_EQ(c.get_int("SEED"), 3);
  c.merge_overrides({});
  EXPECT_EQ(c.get_int("SEED"), 3);
}

TEST(Config, OverrideErrorsAreClearAndChangeNothing) {
  const Config before = Config::defaults();
  Config c = before;
  auto err = [&](std::vector<std::string> kv) { return error_of([&] { c.merge_overrides(kv); }); };
  EXPECT_NE(err({"OPTIM.LR", "1e-3", "SEED"}).find("KEY VALUE pairs"), std::string::npos);
  std::string e = err({"OPTIM.LR", "1e-3", "LR", "1e-3"});
  EXPECT_NE(e.find("unknown config key LR"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean OPTIM.LR"), std::string::npos) << e;
  e = err({"OPTIM.MAX_ITER", "1e3"});
  EXPECT_NE(e.find("type mismatch for config key OPTIM.MAX_ITER: expected int (default 12800), "
                   "got float 1000.0"),
            std::string::npos)
      << e;
  e = err({"TRAIN.DIST_TRAIN", "1"});
  EXPECT_NE(e.find("expected bool"), std::string::npos) << e;
  e = err({"DATASET.NAME", "101"});
  EXPECT_NE(e.find("expected str"), std::string::npos) << e;
  e = err({"INPUT.SIZE", "224"});
  EXPECT_NE(e.find("expected tuple"), std::string::npos) << e;
  e = err({"INPUT.PIXEL_MEAN", "['a', 'b', 'c']"});
  EXPECT_NE(e.find("element 0 of config key INPUT.PIXEL_MEAN: expected float"), std::string::npos)
      << e;
  e = err({"OPTIM.MAX_ITER", "None"});
  EXPECT_NE(e.find("cannot be None"), std::string::npos) << e;
  e = err({"OPTIM", "5"});
  EXPECT_NE(e.find("group of keys"), std::string::npos) << e;
  e = err({"SEED", "99999999999999999999"});
  EXPECT_NE(e.find("64 bits"), std::string::npos) << e;
  EXPECT_TRUE(c == before);  // the valid first pairs of failed calls were not applied
}

// ---------------------------------------------------------------------------------------------
// YAML merges

TEST(Config, YamlMergeDecodesAsYacs) {
  Config c = Config::defaults();
  const std::vector<std::string> set = c.merge_yaml_string(R"(
# a comment
OPTIM:
  LR: 2e-5              # plain: decoded with Python syntax
  WARMUP_LR: "1e-5"     # quoted: yacs decodes strings too
  MAX_ITER: 100
  STAGED_LR: yes        # YAML 1.1 boolean
INPUT:
  SIZE: (320, 320)
  INTERPOLATION: "bicubic"
  PIXEL_MEAN: [0.5, 1, 2e-1]
  TRANSFORMS: ["random_resized_crop", random_flip, 'normalize']
  NO_TRANSFORM: False
MODEL:
  BACKBONE:
    NAME: "ViT-B/16"
TRAINER:
  CTX_INIT: a photo of a
  PREC: !!str fp16
)",
                                                           "inline.yaml");
  EXPECT_EQ(set,
            (std::vector<std::string>{"OPTIM.LR", "OPTIM.WARMUP_LR", "OPTIM.MAX_ITER",
                                      "OPTIM.STAGED_LR", "INPUT.SIZE", "INPUT.INTERPOLATION",
                                      "INPUT.PIXEL_MEAN", "INPUT.TRANSFORMS", "INPUT.NO_TRANSFORM",
                                      "MODEL.BACKBONE.NAME", "TRAINER.CTX_INIT", "TRAINER.PREC"}));
  EXPECT_EQ(c.get("OPTIM.LR"), ConfigValue::floating(2e-5));
  EXPECT_EQ(c.get("OPTIM.WARMUP_LR"), ConfigValue::floating(1e-5));
  EXPECT_EQ(c.get_int("OPTIM.MAX_ITER"), 100);
  EXPECT_TRUE(c.get_bool("OPTIM.STAGED_LR"));
  EXPECT_EQ(c.get("INPUT.SIZE").repr(), "(320, 320)");
  EXPECT_EQ(c.get_string("INPUT.INTERPOLATION"), "bicubic");
  EXPECT_EQ(c.get("INPUT.PIXEL_MEAN").repr(), "[0.5, 1.0, 0.2]");
  EXPECT_EQ(c.get("INPUT.TRANSFORMS").repr(),
            "('random_resized_crop', 'random_flip', 'normalize')");
  EXPECT_FALSE(c.get_bool("INPUT.NO_TRANSFORM"));
  EXPECT_EQ(c.get_string("MODEL.BACKBONE.NAME"), "ViT-B/16");
  EXPECT_EQ(c.get_string("TRAINER.CTX_INIT"), "a photo of a");
  EXPECT_EQ(c.get_string("TRAINER.PREC"), "fp16");
  // An empty file (or only comments) changes nothing.
  const Config before = c;
  EXPECT_TRUE(c.merge_yaml_string("# nothing\n", "empty.yaml").empty());
  EXPECT_TRUE(c == before);
}

TEST(Config, YamlErrorsNameFileLineAndKey) {
  const fs::path dir = temp_dir("yaml_errors");
  const Config before = Config::defaults();
  auto err = [&](const std::string& text) {
    const std::string path = (dir / "cfg.yaml").string();
    test::write_file(path, text);
    Config c = before;
    std::string e = error_of([&] { c.merge_yaml_file(path); });
    EXPECT_TRUE(c == before) << "a failed merge changed the tree: " << text;
    return e;
  };
  std::string e = err("OPTIM:\n  LR: 1e-3\n  NOT_A_KEY: 1\n");
  EXPECT_NE(e.find("cfg.yaml:3: unknown config key OPTIM.NOT_A_KEY"), std::string::npos) << e;
  e = err("TRAIN:\n  SAVE_FREQ: 12800\n  PRINT_FREQ: fifty\n");
  EXPECT_NE(e.find("cfg.yaml:3: type mismatch for config key TRAIN.PRINT_FREQ: expected int "
                   "(default 10), got str 'fifty'"),
            std::string::npos)
      << e;
  e = err("OPTIM.LR: 1e-3\n");
  EXPECT_NE(e.find("cfg.yaml:1: config key 'OPTIM.LR': write nested keys as nested mappings"),
            std::string::npos)
      << e;
  e = err("OPTIM: 5\n");
  EXPECT_NE(e.find("cfg.yaml:1: config key OPTIM is a group of keys"), std::string::npos) << e;
  e = err("OPTIM:\n  LR:\n    X: 1\n");
  EXPECT_NE(e.find("config key OPTIM.LR takes a value"), std::string::npos) << e;
  e = err("OPTIM:\n  LR:\n");
  EXPECT_NE(e.find("OPTIM.LR cannot be None/null"), std::string::npos) << e;
  e = err("OPTIM:\n  LR: [1e-3\n");
  EXPECT_NE(e.find("cfg.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  e = err("- 1\n- 2\n");
  EXPECT_NE(e.find("must be a mapping"), std::string::npos) << e;
  e = err("INPUT:\n  PIXEL_MEAN: [0.1, {a: 1}, 0.2]\n");
  EXPECT_NE(e.find("INPUT.PIXEL_MEAN: a sequence element is a mapping"), std::string::npos) << e;
  e = err("INPUT:\n  PIXEL_MEAN: [0.1, x, 0.2]\n");
  EXPECT_NE(e.find("element 1 of config key INPUT.PIXEL_MEAN: expected float"), std::string::npos)
      << e;
  e = error_of([] { Config::defaults().merge_yaml_file("/nonexistent/cfg.yaml"); });
  EXPECT_NE(e.find("cannot read config file '/nonexistent/cfg.yaml'"), std::string::npos) << e;
  fs::remove_all(dir);
}

// Damaged YAML (a dumped preset, randomly mutated) either merges or throws tgpt::Error.
TEST(Config, DamagedYamlNeverCrashes) {
  const std::string good = preset_for_dataset("OxfordPets").dump();
  std::mt19937_64 rng(7);
  int merged = 0, refused = 0;
  for (int i = 0; i < 400; ++i) {
    std::string bad = test::mutate_bytes(good, rng);
    if (i % 4 == 0) bad = test::mutate_bytes(bad, rng);
    Config c = Config::defaults();
    try {
      c.merge_yaml_string(bad, "fuzz.yaml");
      ++merged;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("fuzz.yaml", 0), 0u) << e.what();
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(merged, 0);
  // Deep nesting: refused, no stack overflow.
  for (const std::string& deep :
       {"INPUT:\n  SIZE: " + std::string(100000, '['),
        "INPUT:\n  SIZE: " + std::string(100000, '{'), std::string(50000, '-') + " x",
        "INPUT:\n  PIXEL_MEAN: " + std::string(1000, '[') + std::string(1000, ']')}) {
    Config c = Config::defaults();
    EXPECT_THROW(c.merge_yaml_string(deep, "deep.yaml"), Error);
  }
}

// ---------------------------------------------------------------------------------------------
// dump

TEST(Config, DumpPrintsYacsStyleNestedYaml) {
  const Config c = Config::defaults();
  const std::string d = c.dump();
  EXPECT_EQ(d.rfind("VERSION: 1\nOUTPUT_DIR: ./output\nRESUME: ''\nSEED: 1\nUSE_CUDA: True\n", 0),
            0u)
      << d;
  EXPECT_NE(d.find("\nINPUT:\n  SIZE: (224, 224)\n  INTERPOLATION: bilinear\n  TRANSFORMS: ()\n"),
            std::string::npos);
  EXPECT_NE(d.find("  PIXEL_MEAN: [0.485, 0.456, 0.406]\n"), std::string::npos);
  EXPECT_NE(d.find("\nDATALOADER:\n  NUM_WORKERS: 4\n  K_TRANSFORMS: 1\n  RETURN_IMG0: False\n"
                   "  TRAIN_X:\n    SAMPLER: RandomSampler\n"),
            std::string::npos);
  EXPECT_NE(d.find("  LR: 0.0003\n  WEIGHT_DECAY: 0.0001\n"), std::string::npos);
  EXPECT_NE(d.find("  STEPSIZE: (-1,)\n"), std::string::npos);
  EXPECT_NE(d.find("  WARMUP_LR: 1e-05\n"), std::string::npos);
  EXPECT_NE(d.find("  ALPHA: 0.0\n"), std::string::npos);
  // Sorted as yacs's __str__ prints: nodes and values interleaved alphabetically.
  const std::string s = c.dump(Config::KeyOrder::sorted);
  EXPECT_EQ(s.rfind("DATALOADER:\n  K_TRANSFORMS: 1\n  NUM_WORKERS: 4\n  RETURN_IMG0: False\n"
                    "  TEST:\n    BATCH_SIZE: 32\n",
                    0),
            0u)
      << s;
  EXPECT_NE(s.find("\nVERBOSE: True\nVERSION: 1\nWANDB: False\n"), std::string::npos);
}

TEST(Config, DumpRoundTrips) {
  std::vector<Config> trees = {Config::defaults(), preset_for_dataset("FGVCAircraft")};
  // Strings and sequences that YAML or yacs would read differently unless quoted.
  Config odd = Config::defaults();
  using V = ConfigValue;
  odd.set("DATASET.NAME", V::string("True"));
  odd.set("OUTPUT_DIR", V::string("a: b #c"));
  odd.set("RESUME", V::string("it's \"x\"\n\\"));
  odd.set("TRAINER.CTX_INIT", V::string(" padded "));
  odd.set("MODEL.INIT_WEIGHTS", V::string("16"));
  odd.set("MODEL.HEAD.NAME", V::string("[1, 2]"));
  odd.set("MODEL.BACKBONE.NAME", V::string("yes"));
  odd.set("TEST.SPLIT", V::string("~"));
  odd.set("TRAINER.PREC", V::string("-x"));
  odd.set("INPUT.TRANSFORMS", V::tuple({V::string("a,b"), V::string("x'y"), V::string("")}));
  odd.set("DATASET.SOURCE_DOMAINS", V::list({V::string("a: b")}));
  odd.set("MODEL.HEAD.HIDDEN_LAYERS",
          V::tuple({V::tuple({V::integer(1), V::integer(2)}), V::list({V::floating(1e-5)})}));
  odd.set("OPTIM.NEW_LAYERS", V::list({V::tuple({V::boolean(true)}), V::string("n")}));
  odd.set("INPUT.PIXEL_MEAN", V::list({V::floating(1e-7), V::floating(-0.0), V::floating(1e20)}));
  odd.set("OPTIM.LR", V::floating(0.1 + 0.2));
  odd.set("SEED", V::integer(-9223372036854775807LL - 1));
  trees.push_back(odd);
  // PyYAML reads 1e-07 in a flow sequence as a string: such a list is written as quoted text.
  EXPECT_NE(odd.dump().find("  PIXEL_MEAN: \"[1e-07, -0.0, 1e+20]\"\n"), std::string::npos);
  for (const Config& t : trees) {
    for (Config::KeyOrder order : {Config::KeyOrder::tree, Config::KeyOrder::sorted}) {
      const std::string text = t.dump(order);
      Config back = Config::defaults();
      ASSERT_NO_THROW(back.merge_yaml_string(text, "dump")) << text;
      for (const std::string& k : t.keys())
        EXPECT_EQ(back.get(k), t.get(k))
            << k << ": " << back.get(k).repr() << " vs " << t.get(k).repr() << "\n"
            << text;
      EXPECT_TRUE(back == t);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Presets

TEST(ConfigPreset, OfficialNumbers) {
  EXPECT_EQ(preset_dataset_names().size(), 11u);
  const Config pets = preset_for_dataset("OxfordPets");
  EXPECT_EQ(pets.get_string("DATASET.NAME"), "OxfordPets");
  EXPECT_EQ(pets.get_double("OPTIM.LR"), 2e-5);
  EXPECT_EQ(pets.get_int("OPTIM.MAX_ITER"), 25600);
  EXPECT_EQ(pets.get_int("TRAIN.SAVE_FREQ"), 12800);
  EXPECT_EQ(pets.get_int("DATALOADER.TRAIN_X.BATCH_SIZE"), 8);
  EXPECT_EQ(pets.get_int("DATALOADER.TEST.BATCH_SIZE"), 128);
  EXPECT_EQ(pets.get_int("OPTIM.WARMUP_ITER"), 100);
  EXPECT_EQ(pets.get_int("TRAIN.TEST_FREQ"), 200);
  EXPECT_EQ(pets.get_int("TRAIN.PRINT_FREQ"), 50);
  EXPECT_EQ(pets.get_int("MODEL.BONDER.NUM_Q_CTG"), 32);
  EXPECT_EQ(pets.get_int("MODEL.BONDER.NUM_Q_CON"), 64);
  EXPECT_EQ(pets.get_string("TRAINER.CTX_INIT"), "a photo of a");
  EXPECT_EQ(pets.get_string("INPUT.TEXT_AUG"), "template_mining");
  EXPECT_EQ(pets.get_string("OPTIM.NAME"), "adamw");
  EXPECT_EQ(pets.get_string("OPTIM.LR_SCHEDULER"), "cosine");
  EXPECT_TRUE(preset_for_dataset("oxford_pets") == pets);
  EXPECT_EQ(preset_for_dataset("FGVCAircraft").get_int("TRAIN.SAVE_FREQ"), 25600);
  EXPECT_EQ(preset_for_dataset("EuroSAT").get_int("OPTIM.MAX_ITER"), 51200);
  EXPECT_EQ(preset_for_dataset("imagenet").get_double("OPTIM.LR"), 5e-5);
  // Keys a preset does not set keep their defaults.
  EXPECT_EQ(pets.get_double("OPTIM.WEIGHT_DECAY"), 1e-4);
  const std::string e = error_of([] { preset_for_dataset("ImageNetV2"); });
  EXPECT_NE(e.find("no TGP-T preset for dataset 'ImageNetV2'"), std::string::npos) << e;
  EXPECT_NE(e.find("Caltech101, DescribableTextures"), std::string::npos) << e;
}

// Every official YAML merged into the defaults gives its preset's values on every key it sets.
TEST(ConfigPreset, MatchesOfficialYamlFiles) {
  const std::string dir = configs_dir();
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " not found";
  const std::set<std::string> preset_key_set(preset_keys().begin(), preset_keys().end());
  std::set<std::string> checked;
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    const std::string path = entry.path().string();
    Config merged = Config::defaults();
    std::vector<std::string> set;
    ASSERT_NO_THROW(set = merged.merge_yaml_file(path)) << path;
    const std::string name = merged.get_string("DATASET.NAME");
    ASSERT_FALSE(name.empty()) << path;
    if (std::find(preset_dataset_names().begin(), preset_dataset_names().end(), name) ==
        preset_dataset_names().end()) {
      // Evaluation-only targets of the ImageNet model (method.md §4.6).
      EXPECT_TRUE(name == "ImageNetV2" || name == "ImageNetSketch") << path << ": " << name;
      EXPECT_EQ(set, std::vector<std::string>{"DATASET.NAME"}) << path;
      continue;
    }
    const Config preset = preset_for_dataset(name);
    for (const std::string& key : set) {
      EXPECT_TRUE(preset_key_set.count(key)) << path << " sets " << key << ", no preset key";
      EXPECT_EQ(merged.get(key), preset.get(key))
          << path << ": " << key << " = " << merged.get(key).repr() << ", preset "
          << preset.get(key).repr();
    }
    EXPECT_TRUE(merged == preset) << path;
    // The preset by the file's stem is the same tree.
    EXPECT_TRUE(preset_for_dataset(entry.path().stem().string()) == preset) << path;
    checked.insert(name);
  }
  EXPECT_EQ(files, 13u);
  EXPECT_EQ(checked.size(), 11u);
}

TEST(ConfigPreset, ResolveConfig) {
  Config c = resolve_config("", "OxfordPets", {"OPTIM.MAX_ITER", "10"});
  Config expected = preset_for_dataset("OxfordPets");
  expected.set("OPTIM.MAX_ITER", ConfigValue::integer(10));
  EXPECT_TRUE(c == expected);
  EXPECT_TRUE(resolve_config("", "", {}) == Config::defaults());
  // A dataset without an official preset: TGP-T's shared settings under its own name.
  const Config custom = resolve_config("", "SynthShapes", {});
  EXPECT_EQ(custom.get_string("DATASET.NAME"), "SynthShapes");
  EXPECT_EQ(custom.get_double("OPTIM.LR"), 5e-5);
  EXPECT_EQ(custom.get_int("OPTIM.MAX_ITER"), 12800);
  EXPECT_EQ(custom.get_int("DATALOADER.TRAIN_X.BATCH_SIZE"), 8);
  EXPECT_EQ(custom.get_int("TRAIN.TEST_FREQ"), 200);
  EXPECT_EQ(custom.get_string("INPUT.TEXT_AUG"), "template_mining");

  const fs::path dir = temp_dir("resolve");
  const std::string path = (dir / "pets.yaml").string();
  test::write_file(path, "DATASET:\n  NAME: \"OxfordPets\"\nOPTIM:\n  LR: 2e-5\n");
  c = resolve_config(path, "oxford_pets", {"SEED", "2"});
  EXPECT_EQ(c.get_string("DATASET.NAME"), "OxfordPets");
  EXPECT_EQ(c.get_int("SEED"), 2);
  EXPECT_EQ(c.get_int("OPTIM.MAX_ITER"), 12800);  // the YAML's defaults, not the preset's
  const std::string e = error_of([&] { resolve_config(path, "EuroSAT", {}); });
  EXPECT_NE(e.find("--dataset EuroSAT disagrees with DATASET.NAME OxfordPets"), std::string::npos)
      << e;
  test::write_file(path, "OPTIM:\n  LR: 2e-5\n");
  EXPECT_EQ(resolve_config(path, "EuroSAT", {}).get_string("DATASET.NAME"), "EuroSAT");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tgpt
