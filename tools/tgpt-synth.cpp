/*
 * tgpt-synth.cpp — writes the synthetic captioned image world (data/synth/world.h): a
 * pretraining set (images + captions) and the downstream classification datasets SynthShapes,
 * SynthColors and SynthScenes in the CoOp layout, with templates.json and the world.json
 * manifest. The same options give the same bytes.
 *
 *   tgpt-synth --out DIR [--seed S] [--pretrain N] [--size PX] [--train-per-class N]
 *              [--val-per-class N] [--test-per-class N] [--quiet]
 *
 * DIR must be missing, empty, or a world written before by tgpt-synth: the same options make it
 * a no-op; other options (or an interrupted run) replace it. Any other non-empty folder is
 * refused.
 */
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "base/error.h"
#include "data/synth/world.h"
#include "tools/tool_options.h"

int main(int argc, char** argv) {
  namespace synth = tgpt::synth;
  tgpt::select_blas_kernels(argc, argv);  // first: may re-execute with other BLAS kernels
  CLI::App app{"Write the synthetic captioned image world (pretraining set + CoOp datasets)"};
  tgpt::tools::add_version_flag(app, "tgpt-synth");
  synth::WorldOptions o;
  std::string out;
  bool quiet = false;
  app.add_option("--out", out, "output folder (missing, empty, or a previous world)")->required();
  app.add_option("--seed", o.seed, "world seed")->capture_default_str();
  app.add_option("--pretrain", o.pretrain_images, "pretraining images")->capture_default_str();
  app.add_option("--size", o.image_size, "image side in pixels (16..512)")->capture_default_str();
  app.add_option("--train-per-class", o.train_per_class, "train images per class")
      ->capture_default_str();
  app.add_option("--val-per-class", o.val_per_class, "val images per class")->capture_default_str();
  app.add_option("--test-per-class", o.test_per_class, "test images per class")
      ->capture_default_str();
  app.add_flag("--quiet", quiet, "no progress line");
  CLI11_PARSE(app, argc, argv);

  std::string last_stage;  // the stage the progress line shows ("" = none printed)
  try {
    const auto t0 = std::chrono::steady_clock::now();
    auto progress = [&](const std::string& stage, int64_t done, int64_t total) {
      if (quiet) return;
      if (!last_stage.empty() && stage != last_stage) std::fprintf(stderr, "\n");
      last_stage = stage;
      std::fprintf(stderr, "\r%-12s %lld/%lld images", stage.c_str(), static_cast<long long>(done),
                   static_cast<long long>(total));
      std::fflush(stderr);
    };
    const synth::WorldStatus status = synth::generate_world(out, o, progress);
    if (!last_stage.empty()) std::fprintf(stderr, "\n");
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    switch (status) {
      case synth::WorldStatus::Unchanged:
        std::printf(
            "%s already holds this world (seed %llu, generator version %d): nothing to do\n",
            out.c_str(), static_cast<unsigned long long>(o.seed), synth::kWorldGeneratorVersion);
        break;
      case synth::WorldStatus::Replaced:
      case synth::WorldStatus::Written:
        std::printf("%s world in %s (seed %llu): %lld pretraining images",
                    status == synth::WorldStatus::Replaced ? "replaced the" : "wrote the",
                    out.c_str(), static_cast<unsigned long long>(o.seed),
                    static_cast<long long>(o.pretrain_images));
        for (const synth::SynthDatasetSpec& d : synth::synth_datasets())
          std::printf(", %s (%zu classes)", d.name.c_str(), d.classes.size());
        std::printf(" in %.1f s\n", secs);
        break;
    }
  } catch (const std::exception& e) {  // tgpt::Error, or std::bad_alloc
    std::fprintf(stderr, "%stgpt-synth: %s\n", last_stage.empty() ? "" : "\n", e.what());
    return 1;
  }
  return 0;
}
