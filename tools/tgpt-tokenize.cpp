/*
 * tgpt-tokenize.cpp — prints CLIP token ids (clip.tokenize, context length 77) for each TEXT, one
 * line per text, ids separated by spaces.
 *
 *   tgpt-tokenize (--weights W | --vocab FILE) [--truncate] [--] TEXT...
 *
 * --vocab takes OpenAI's bpe_simple_vocab_16e6.txt.gz or a Hugging Face merges.txt; --weights
 * takes a tgpt weight file (tgpt-convert) and uses the merges embedded in it.
 */
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "models/clip/zeroshot.h"
#include "models/tokenizer.h"
#include "tools/tool_options.h"

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // first: may re-execute with other BLAS kernels
  CLI::App app{"Print CLIP token ids (77 per text) for each TEXT"};
  tgpt::tools::add_version_flag(app, "tgpt-tokenize");
  std::string weights, vocab;
  bool truncate = false;
  std::vector<std::string> texts;
  auto* weights_opt =
      app.add_option("--weights", weights, "tgpt weight file with embedded merges (tgpt-convert)");
  auto* vocab_opt = app.add_option(
      "--vocab", vocab, "BPE merges: bpe_simple_vocab_16e6.txt.gz or a Hugging Face merges.txt");
  weights_opt->excludes(vocab_opt);
  app.add_flag(
      "--truncate", truncate,
      "cut texts longer than the context instead of failing (last id becomes <|endoftext|>)");
  app.add_option("texts", texts, "texts to tokenize")->required();
  CLI11_PARSE(app, argc, argv);

  try {
    TGPT_CHECK(!weights.empty() || !vocab.empty(),
               "tgpt-tokenize: give --vocab FILE (or --weights)");
    const tgpt::ClipTokenizer tok = weights.empty() ? tgpt::ClipTokenizer::from_file(vocab)
                                                    : tgpt::clip_tokenizer_from_weights(weights);
    const std::vector<int32_t> ids =
        tok.tokenize(texts, tgpt::ClipTokenizer::kContextLength, truncate);
    const size_t ctx = tgpt::ClipTokenizer::kContextLength;
    std::string line;
    for (size_t t = 0; t < texts.size(); ++t) {
      line.clear();
      for (size_t k = 0; k < ctx; ++k) {
        if (k) line += ' ';
        line += std::to_string(ids[t * ctx + k]);
      }
      std::printf("%s\n", line.c_str());
    }
  } catch (const tgpt::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
