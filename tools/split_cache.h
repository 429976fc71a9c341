/*
 * split_cache.h — the official few-shot split caches for tgpt-train and tgpt-data split: when
 * <dataset_dir>/split_fewshot2/shot_K-seed_S.pkl (TGP-T) or <dataset_dir>/split_fewshot/
 * shot_K-seed_S.pkl (CoOp) exists, it wins over the draw as in the official code
 * (../shared/spec/data.md §1.3). The file is read with convert/fewshot_pickle.h (non-executing;
 * paths rewritten against the user's dataset folder; labels and class names checked against the
 * dataset) and handed to the data loaders as an ImportedFewshot. Prints "Loading preprocessed
 * few-shot data from <file>" to stdout, as Dassl logs it.
 */
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "convert/fewshot_pickle.h"
#include "data/fewshot.h"

namespace tgpt::tools {

// An importer for the data loaders; an empty function when `enabled` is false (--no-split-cache).
// tgpt_first: look in split_fewshot2/ before split_fewshot/. folder_names: other names the
// dataset folder may have in the cache's paths (the layout's folder).
inline FewshotImporter split_cache_importer(const std::string& dataset_dir, int64_t shots,
                                            int64_t seed, bool tgpt_first,
                                            std::vector<std::string> folder_names, bool enabled) {
  if (!enabled) return {};
  return
      [=](const CoopSplit& split, const std::string& image_root) -> std::optional<ImportedFewshot> {
        const std::string file = find_fewshot_pickle(dataset_dir, shots, seed, tgpt_first);
        if (file.empty()) return std::nullopt;
        std::printf("Loading preprocessed few-shot data from %s\n", file.c_str());
        std::fflush(stdout);
        FewshotPickleTarget target;
        target.dataset_dir = dataset_dir;
        target.image_root = image_root;
        target.classnames = split.classnames;
        target.folder_names = folder_names;
        const FewshotPickle p = read_fewshot_pickle(file, target);
        ImportedFewshot out;
        out.source = file;
        auto convert = [](const std::vector<FewshotPickleItem>& items,
                          std::vector<LabeledImage>& images) {
          images.reserve(items.size());
          for (const auto& it : items)
            images.push_back(LabeledImage{it.path, it.label, it.relpath});
        };
        convert(p.train, out.train);
        convert(p.val, out.val);
        if (p.format == FewshotPickleFormat::TgptDict)
          for (const auto& it : p.train) out.train_captions.push_back(it.caption);
        return out;
      };
}

}  // namespace tgpt::tools
