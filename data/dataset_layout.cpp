/*
 * dataset_layout.cpp — the per-dataset table of data.md §1.1 (see dataset_layout.h).
 */
#include "data/dataset_layout.h"

#include "base/error.h"

namespace tgpt {

namespace {

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

}  // namespace

const std::vector<DatasetLayout>& dataset_layouts() {
  using R = CaptionKeyRule;
  using F = DatasetFormat;
  static const std::vector<DatasetLayout> kLayouts = {
      // ImageNet's train size is ILSVRC-2012's (1,281,167 images; data.md §1.1 says 1.28M); its val
      // set is the test set, the few-shot val comes from split_ImageNet.json.
      {"ImageNet", "imagenet", "imagenet", "images", "", R::ImageNet, 1000, 1281167, 0, 50000,
       F::ImageNet},
      {"Caltech101", "caltech101", "caltech-101", "101_ObjectCategories",
       "split_zhou_Caltech101.json", R::RelativePath, 100, 4128, 1649, 2465},
      {"OxfordPets", "oxford_pets", "oxford_pets", "images", "split_zhou_OxfordPets.json",
       R::RelativePath, 37, 2944, 736, 3669},
      {"StanfordCars", "stanford_cars", "stanford_cars", "", "split_zhou_StanfordCars.json",
       R::StanfordCars, 196, 6509, 1635, 8041},
      {"OxfordFlowers", "oxford_flowers", "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json",
       R::RelativePath, 102, 4093, 1633, 2463},
      {"Food101", "food101", "food-101", "images", "split_zhou_Food101.json", R::RelativePath, 101,
       50500, 20200, 30300},
      {"FGVCAircraft", "fgvc_aircraft", "fgvc_aircraft", "images", "", R::FGVCAircraft, 100, 3334,
       3333, 3333, F::FGVCAircraft},
      {"SUN397", "sun397", "sun397", "SUN397", "split_zhou_SUN397.json", R::RelativePath, 397,
       15880, 3970, 19850},
      {"DescribableTextures", "dtd", "dtd", "images", "split_zhou_DescribableTextures.json",
       R::RelativePath, 47, 2820, 1128, 1692},
      {"EuroSAT", "eurosat", "eurosat", "2750", "split_zhou_EuroSAT.json", R::RelativePath, 10,
       13500, 5400, 8100},
      {"UCF101", "ucf101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", R::RelativePath,
       101, 7639, 1898, 3783},
      {"ImageNetV2", "imagenetv2", "imagenetv2", "imagenetv2-matched-frequency-format-val", "",
       R::RelativePath, 1000, 0, 0, 10000, F::ImageNetV2},
      {"ImageNetSketch", "imagenet_sketch", "imagenet-sketch", "images", "", R::RelativePath, 1000,
       0, 0, 50889, F::ImageNetSketch},
      // Not in method.md §5 (TGP-T evaluates V2 and Sketch only); data.md §1.1's DG targets.
      {"ImageNetA", "imagenet_a", "imagenet-adversarial", "imagenet-a", "", R::RelativePath, 200, 0,
       0, 7500, F::ImageNetSubset},
      {"ImageNetR", "imagenet_r", "imagenet-rendition", "imagenet-r", "", R::RelativePath, 200, 0,
       0, 30000, F::ImageNetSubset},
      // The built-in synthetic world (data/synth/world.h, tgpt-data synth); sizes depend on
      // options.
      {"SynthShapes", "synth_shapes", "synth_shapes", "images", "split_zhou_SynthShapes.json",
       R::RelativePath, 9, 0, 0, 0},
      {"SynthColors", "synth_colors", "synth_colors", "images", "split_zhou_SynthColors.json",
       R::RelativePath, 9, 0, 0, 0},
      {"SynthScenes", "synth_scenes", "synth_scenes", "images", "split_zhou_SynthScenes.json",
       R::RelativePath, 9, 0, 0, 0},
      {"SynthSpecies", "synth_species", "synth_species", "images", "split_zhou_SynthSpecies.json",
       R::RelativePath, 9, 0, 0, 0},
  };
  return kLayouts;
}

const DatasetLayout& find_dataset_layout(const std::string& name) {
  const std::string want = lower(name);
  for (const auto& l : dataset_layouts())
    if (lower(l.name) == want || l.config == want || lower(l.dir) == want) return l;
  std::string names;
  for (const auto& l : dataset_layouts()) names += (names.empty() ? "" : ", ") + l.name;
  TGPT_FAIL("unknown dataset \"", name, "\" (known: ", names, ")");
}

}  // namespace tgpt
