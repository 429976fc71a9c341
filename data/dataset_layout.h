/*
 * dataset_layout.h — where each benchmark dataset lives under $DATA (../shared/spec/data.md §1.1,
 * method.md §5): its folder, the image root the split paths are relative to, its split file, the
 * caption key rule (data/captions.h) and the sizes the published splits have (for warnings).
 *
 * Datasets with a CoOp split file (split_zhou_<Name>.json) are read in the CoOp layout
 * (data/fewshot.h: load_coop_fewshot). ImageNet (class folders + classnames.txt +
 * split_ImageNet.json), FGVCAircraft (variants.txt + images_variant_*.txt) and the ImageNet
 * variants V2, Sketch, A and R have no split_zhou file: their entries have split_file "" and a
 * DatasetFormat naming their own layout, read by data/layout_readers.h. The variants are test
 * sets only (evaluated with a model trained on ImageNet).
 * Names are matched without regard to case against DATASET.NAME ("OxfordPets"), the config file
 * stem ("oxford_pets") and the folder ("oxford_pets").
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/captions.h"

namespace tgpt {

// How a dataset's files are read (data/layout_readers.h).
enum class DatasetFormat {
  CoopSplit,       // split_zhou_<Name>.json under dir, paths relative to image_root
  FGVCAircraft,    // variants.txt + images_variant_{train,val,test}.txt, images/<id>.jpg
  ImageNet,        // classnames.txt + images/{train,val}/<wnid>/*, split_ImageNet.json's "val"
  ImageNetV2,      // test only: classnames.txt + <image_root>/<0..999>/*
  ImageNetSketch,  // test only: classnames.txt + <image_root>/<wnid>/* (1000 classes)
  ImageNetSubset,  // test only: classnames.txt + <image_root>/<wnid>/* (ImageNet-A/-R, 200)
};

struct DatasetLayout {
  std::string name;        // DATASET.NAME, e.g. "OxfordPets"
  std::string config;      // config file stem, e.g. "oxford_pets"
  std::string dir;         // folder under $DATA, e.g. "oxford_pets"
  std::string image_root;  // relative to dir ("" = dir itself, StanfordCars)
  std::string split_file;  // in dir; "" = no CoOp split file (format says what is read)
  CaptionKeyRule caption_rule = CaptionKeyRule::RelativePath;
  int64_t num_classes = 0;  // expected sizes of the published split; 0 = not known
  int64_t num_train = 0, num_val = 0, num_test = 0;
  DatasetFormat format = DatasetFormat::CoopSplit;

  // ImageNetV2, -Sketch, -A, -R: no train or val, evaluated with an ImageNet model.
  bool test_only() const {
    return format == DatasetFormat::ImageNetV2 || format == DatasetFormat::ImageNetSketch ||
           format == DatasetFormat::ImageNetSubset;
  }
};

// The datasets of method.md §5 in its order, then ImageNet-A and -R, then the synthetic ones.
const std::vector<DatasetLayout>& dataset_layouts();
// Finds a dataset by name, config stem or folder (any case); the error lists the known names.
const DatasetLayout& find_dataset_layout(const std::string& name);

}  // namespace tgpt
