/*
 * tgpt-convert — converts CLIP ViT weights (OpenAI .pt, torch.save state dict, open_clip .pt or
 * .safetensors, Hugging Face model.safetensors or its folder) into the tgpt CLIP weight file
 * (models/README.md).
 *
 *   tgpt-convert SRC -o OUT [--vocab FILE] [--dtype keep|f32|f16|bf16]
 *                [--activation auto|quick_gelu|gelu]
 *
 * The MLP activation is not stored in the weights. auto takes it from the HF config.json or
 * open_clip's open_clip_config.json beside the file, or from the format (OpenAI TorchScript:
 * quick_gelu); for a bare state dict or open_clip checkpoint it must be given.
 */
#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>

#include "base/error.h"
#include "convert/clip_convert.h"
#include "tools/tool_options.h"

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // first: may re-execute with other BLAS kernels
  CLI::App app{"Convert CLIP ViT weights into the tgpt CLIP weight file"};
  tgpt::tools::add_version_flag(app, "tgpt-convert");
  std::string src, out;
  tgpt::ConvertOptions opt;
  app.add_option("SRC", src, "source weights: a file, or a Hugging Face folder")->required();
  app.add_option("-o,--output", out, "output .safetensors file")->required();
  app.add_option("--vocab", opt.vocab_path,
                 "BPE merges file to embed (bpe_simple_vocab_16e6.txt.gz or merges.txt)");
  app.add_option("--dtype", opt.dtype, "output dtype of the tensors")
      ->check(CLI::IsMember({"keep", "f32", "f16", "bf16"}));
  app.add_option("--activation", opt.activation,
                 "MLP activation to record (auto: from config.json / open_clip_config.json beside SRC, or the OpenAI format; required otherwise)")
      ->check(CLI::IsMember({"auto", "quick_gelu", "gelu"}));
  CLI11_PARSE(app, argc, argv);

  try {
    tgpt::ConvertResult r = tgpt::convert_clip(src, opt);
    tgpt::write_converted_clip(out, r);
    std::map<std::string, std::pair<int, int64_t>> hist;  // dtype -> (tensors, elements)
    for (const auto& [name, t] : r.tensors) {
      auto& h = hist[tgpt::dtype_name(t.dtype())];
      h.first += 1;
      h.second += t.numel();
    }
    std::printf("source:       %s (%s)\n", r.source_path.c_str(), r.source_format.c_str());
    std::printf("architecture: %s\n", r.config.name().c_str());
    std::printf("config:       %s\n", r.config.to_json().c_str());
    std::printf("parameters:   %lld in %zu tensors\n", static_cast<long long>(r.parameter_count),
                r.tensors.size());
    for (const auto& [dt, h] : hist)
      std::printf("  %-5s %4d tensors, %lld elements\n", dt.c_str(), h.first,
                  static_cast<long long>(h.second));
    for (const auto& n : r.notes) std::printf("note:         %s\n", n.c_str());
    std::printf("sha256:       %s\n", r.metadata.at("tgpt.source_sha256").c_str());
    std::printf("wrote:        %s\n", out.c_str());
  } catch (const tgpt::Error& e) {
    std::fprintf(stderr, "tgpt-convert: %s\n", e.what());
    return 1;
  }
  return 0;
}
