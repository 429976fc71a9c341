/*
 * tgpt-train — TGP-T training.
 *
 *   tgpt-train replay --weights CLIP --init INIT --batch BATCH --steps N --lr LR --max-iter M
 *       [--warmup-iter W] --trace OUT [--vocab FILE] [--device ...] [--precision ...]
 *
 * replay: N training steps on one fixed batch from a given initial state, every loss, learning
 * rate, first forward, first gradient and parameters after each step written to OUT
 * (train/tgpt_replay.h), for checking against the official code step by step.
 * Errors go to stderr with exit 1; an interrupted run exits 130 (train/trainer.h).
 */
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "base/error.h"
#include "tools/tool_options.h"
#include "train/tgpt_replay.h"
#include "train/trainer.h"

namespace {

struct ReplayArgs {
  tgpt::TgptReplayOptions options;
  tgpt::tools::PlacementOptions placement;
};

int run_replay(ReplayArgs& a) {
  // f64 (CPU only) runs the whole step in f64: a reference for checking against f64 traces.
  const bool f64 = a.placement.precision == "f64";
  if (f64) a.placement.precision = "f32";
  const tgpt::tools::Placement place = tgpt::tools::resolve_placement(a.placement);
  TGPT_CHECK(!f64 || place.device == tgpt::Device::CPU, "--precision f64 runs on the CPU only");
  a.options.device = place.device;
  a.options.compute_dtype = f64 ? tgpt::DType::f64 : place.dtype;
  tgpt::TrainLog log(stdout);
  tgpt::run_tgpt_replay(a.options, &log);
  log.end_bar();
  std::printf("wrote %s\n", a.options.trace.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tgpt training (TGP-T)"};
  app.require_subcommand(1);

  ReplayArgs r;
  r.placement.precision = "f32";
  CLI::App* rp = app.add_subcommand(
      "replay", "N steps on one fixed batch from a given initial state, with a full trace");
  rp->add_option("--weights", r.options.weights, "tgpt CLIP weight file")->required();
  rp->add_option("--init", r.options.init, "initial TGP-T state (safetensors, official names)")
      ->required();
  rp->add_option("--batch", r.options.batch,
                 "the batch (safetensors: images, labels, caption_tokens, "
                 "category_sentence_tokens)")
      ->required();
  rp->add_option("--steps", r.options.steps, "training steps N")->required();
  rp->add_option("--lr", r.options.lr, "base learning rate")->required();
  rp->add_option("--max-iter", r.options.max_iter, "schedule length T (OPTIM.MAX_ITER)")
      ->required();
  rp->add_option("--warmup-iter", r.options.warmup_iter,
                 "warm-up iterations W (OPTIM.WARMUP_ITER, default 100)");
  rp->add_option("--trace", r.options.trace, "output trace (safetensors)")->required();
  rp->add_option("--vocab", r.options.merges,
                 "BPE merges (default: the merges in the weight file)");
  rp->add_option("--device", r.placement.device, "where it runs: auto (cuda if present), cpu, cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  rp->add_option("--precision", r.placement.precision,
                 "frozen CLIP compute precision: f32 (default), f16, bf16, or f64 (CPU: the "
                 "whole step in f64)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "f64"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  try {
    if (rp->parsed()) return run_replay(r);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tgpt-train: %s\n", e.what());
    return 1;
  }
  return 1;
}
