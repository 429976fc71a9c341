/*
 * config.h — the official TGP-T config system: a yacs CfgNode tree with every key and default of
 * the official configs/defaults.py (../shared/spec/configs/DEFAULTS.md), the official per-dataset
 * YAML files read unchanged, yacs's `KEY VALUE` command-line overrides, typed getters, the
 * resolved tree printed for the top of a log, and per-dataset presets with the official numbers
 * (../shared/spec/method.md §4.2), so that `--dataset NAME` alone trains as the YAML does.
 *
 * Tree: leaf keys are dotted paths ("OPTIM.MAX_ITER"), kept in DEFAULTS.md's order; every
 * proper prefix of a leaf key is a node ("OPTIM", "DATALOADER.TRAIN_X"). Values are Python
 * literals of the types the tree uses: bool, int, float, str, list and tuple (of those).
 *
 * yacs semantics (yacs/config.py, _merge_a_into_b, merge_from_list, _decode_cfg_value,
 * _check_and_coerce_cfg_value_type):
 *   - a key that is not in the tree is an error (naming the file or override and the key);
 *   - a string value is decoded with Python literal syntax (ast.literal_eval): `5e-5` -> float,
 *     `16` -> int, `True` -> bool, `(224, 224)` -> tuple, `[1, 2]` -> list, `'a'` -> str; text that
 *     is not a literal stays a string (`bicubic`, `a photo of a`). In YAML this applies to quoted
 *     and plain scalars alike (yacs decodes the strings PyYAML returns); plain `yes/no/on/off`
 *     are YAML 1.1 booleans, as PyYAML reads them;
 *   - the new value must have the default's type; a list may replace a tuple and vice versa (the
 *     value takes the default's kind). Differences from yacs, all stricter or clearer: an int is
 *     accepted for a float key (converted); the elements of a list/tuple whose default is not
 *     empty must have the type of the default's first element (ints accepted for floats);
 *     None / YAML null and non-finite floats are refused (no key of the tree takes them).
 *   - plain scalars inside YAML sequences are read as YAML 1.1 scalars (bool, number, else
 *     string; a number in Python syntax such as `2e-5` counts as a number); quoted ones are
 *     strings, as PyYAML gives them to yacs.
 *
 * Printing (dump): nested YAML in the form of yacs's CfgNode.__str__ ("KEY: value", nodes
 * followed by their keys indented two spaces, values in Python syntax: True, 5e-05, (224, 224),
 * ['a', 'b'], strings bare), in the tree's order (DEFAULTS.md) or sorted as yacs prints. Strings
 * that would not read back as themselves (empty, "True", "a: b", ...) are quoted, and so are
 * lists that PyYAML would read differently (1e-05 in a flow sequence is a string to it), so
 * dump -> merge_yaml_string gives the same tree, and yacs reads the dump to the same values.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace tgpt {

// One value of the config tree: a Python literal.
struct ConfigValue {
  // none only comes out of parsing ("None"); the tree never holds it.
  enum class Type { none, boolean, integer, floating, string, list, tuple };
  Type type = Type::none;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<ConfigValue> items;  // list / tuple elements

  static ConfigValue boolean(bool v);
  static ConfigValue integer(int64_t v);
  static ConfigValue floating(double v);
  static ConfigValue string(std::string v);
  static ConfigValue list(std::vector<ConfigValue> v);
  static ConfigValue tuple(std::vector<ConfigValue> v);

  bool is_sequence() const { return type == Type::list || type == Type::tuple; }
  bool is_number() const { return type == Type::integer || type == Type::floating; }
  // Python's repr(): True, 16, 5e-05, 0.0003, 'a photo of a', (224, 224), (-1,), [1, 2], ().
  std::string repr() const;
  // Python's type name: bool, int, float, str, list, tuple, NoneType.
  const char* type_name() const;
  // Same type and value (list and tuple differ; floats compare by value).
  bool operator==(const ConfigValue& other) const;
};

// ast.literal_eval for the types of ConfigValue: ints (decimal, 0x/0o/0b, '_' separators, one
// leading sign), floats, True/False/None, '...'/"..." strings (escapes, r/u prefixes, adjacent
// literals joined), tuples (also bare `1, 2`), lists, nested. nullopt when `text` is not such a
// literal (dicts, sets, complex and bytes count as not). Throws tgpt::Error for an int outside
// 64 bits or a float literal that is not finite.
std::optional<ConfigValue> parse_python_literal(const std::string& text);
// yacs's _decode_cfg_value of a string: its Python literal, else the string itself.
ConfigValue decode_config_value(const std::string& text);

class Config {
 public:
  // The tree of DEFAULTS.md with its defaults. An empty Config has no keys.
  static Config defaults();
  Config() = default;

  // Merges an official YAML file (or text; `source` names it in errors) into the tree with yacs
  // semantics (header comment). Returns the leaf keys it set, in file order. Throws tgpt::Error
  // naming the file (and line where known) and the key on an unreadable file, bad YAML, an
  // unknown key, a node given a value or a key given a mapping, or a type mismatch (expected and
  // got). The tree is left unchanged when it throws.
  std::vector<std::string> merge_yaml_file(const std::string& path);
  std::vector<std::string> merge_yaml_string(const std::string& yaml,
                                             const std::string& source = "<yaml>");
  // yacs merge_from_list: KEY VALUE KEY VALUE ..., each VALUE decoded as a Python literal (else a
  // bare string). Odd count, unknown key, type mismatch: tgpt::Error naming the pair; the tree is
  // left unchanged when it throws. Returns the keys set.
  std::vector<std::string> merge_overrides(const std::vector<std::string>& key_values);
  // Sets one leaf, checked and coerced as a merge does (`source` names the caller in errors).
  void set(const std::string& key, const ConfigValue& value,
           const std::string& source = "Config::set");

  bool contains(const std::string& key) const;  // a leaf key
  bool is_node(const std::string& key) const;   // a node ("OPTIM", "DATALOADER.TRAIN_X")
  // The value of a leaf; throws tgpt::Error for an unknown key.
  const ConfigValue& get(const std::string& key) const;
  // Typed getters: throw tgpt::Error naming the key, its type and value on a mismatch.
  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;  // an int or a float
  const std::string& get_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;    // list or tuple of ints
  std::vector<double> get_double_list(const std::string& key) const;  // of ints or floats
  std::vector<std::string> get_string_list(const std::string& key) const;

  // Leaf keys in the tree's order.
  const std::vector<std::string>& keys() const { return keys_; }

  enum class KeyOrder {
    tree,    // DEFAULTS.md's order
    sorted,  // as yacs's CfgNode.__str__ prints (sorted keys at every level)
  };
  // The resolved tree as nested YAML (header comment); ends with a newline.
  std::string dump(KeyOrder order = KeyOrder::tree) const;

  // Same keys in the same order with equal values.
  bool operator==(const Config& other) const;

 private:
  void add_default(const std::string& key, ConfigValue value);
  size_t index_of(const std::string& key, const char* what) const;

  std::vector<std::string> keys_;
  std::vector<ConfigValue> values_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<std::string> nodes_;  // every proper prefix of a key, first-seen order
};

// ---------------------------------------------------------------------------------------------
// Presets: the official per-dataset TGP-T configs as data (method.md §4.2).

// The DATASET.NAMEs with a preset, in method.md's table order: Caltech101, DescribableTextures,
// EuroSAT, FGVCAircraft, Food101, ImageNet, OxfordFlowers, OxfordPets, StanfordCars, SUN397,
// UCF101. (ImageNetV2 / ImageNetSketch are evaluation-only targets of the ImageNet model.)
const std::vector<std::string>& preset_dataset_names();
// The leaf keys every preset sets on top of the defaults.
const std::vector<std::string>& preset_keys();
// Config::defaults() with the official values for `name`: a DATASET.NAME above, or the stem of
// its official YAML file (caltech101, dtd, eurosat, fgvc_aircraft, food101, imagenet,
// oxford_flowers, oxford_pets, stanford_cars, sun397, ucf101). Per dataset: DATASET.NAME,
// OPTIM.LR, OPTIM.MAX_ITER, TRAIN.SAVE_FREQ; shared: batch 8, test batch 128, 8 workers, 224x224
// bicubic input with CLIP's mean/std, random resized crop + flip + normalize, TEXT_AUG
// template_mining, AdamW, cosine schedule with linear warm-up over 100 iterations (WARMUP_LR
// 1e-5), PRINT_FREQ 50, TEST_FREQ 200, ViT-B/16, Bonder depth 1 with 32/64 queries, trainer TGPT
// in fp32, CTX_INIT "a photo of a". Throws tgpt::Error listing the names for an unknown one.
Config preset_for_dataset(const std::string& name);

// The config a training command line asks for: `yaml_path` (if not empty) merged into the
// defaults, else the preset of `dataset` (if not empty; a dataset without an official preset
// gets TGP-T's shared settings with LR 5e-5 and MAX_ITER 12800, the shortest official
// schedule, and its name as DATASET.NAME), else the defaults; then `overrides`
// (merge_overrides). With both a YAML and a dataset, the dataset must equal the YAML's
// DATASET.NAME (or fills it when the YAML leaves it empty); otherwise tgpt::Error.
Config resolve_config(const std::string& yaml_path, const std::string& dataset,
                      const std::vector<std::string>& overrides);

}  // namespace tgpt
