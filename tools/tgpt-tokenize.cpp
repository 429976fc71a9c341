/*
 * tgpt-tokenize.cpp — prints CLIP token ids (clip.tokenize, context length 77) for each TEXT, one
 * line per text, ids separated by spaces; `learn` learns a BPE merges file from captions.
 *
 *   tgpt-tokenize (--weights W | --vocab FILE | --merges-file FILE) [--truncate] [--] TEXT...
 *   tgpt-tokenize learn --captions FILE [--captions FILE ...] [--text-lines] --merges N
 *                       [--min-frequency 2] -o merges.txt
 *
 * --vocab takes OpenAI's bpe_simple_vocab_16e6.txt.gz or a Hugging Face merges.txt (CLIP's full
 * 48,894 merges); --merges-file takes a merges file of any length (e.g. one `learn` wrote);
 * --weights takes a tgpt weight file (tgpt-convert) and uses the merges embedded in it.
 * `learn` reads captions files (KEY TAB TEXT lines, data/captions.h; with --text-lines: one text
 * per non-blank line), learns up to N merges (models/bpe_learn.h) and writes them atomically in
 * CLIP's format. A text "learn" to tokenize goes after `--`.
 */
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "data/captions.h"
#include "data/dataset.h"
#include "models/bpe_learn.h"
#include "models/clip/zeroshot.h"
#include "models/tokenizer.h"
#include "tools/tool_options.h"

namespace {

struct LearnArgs {
  std::vector<std::string> captions;
  bool text_lines = false;
  int merges = -1;
  int min_frequency = 2;
  std::string output;
};

int run_learn(const LearnArgs& a) {
  std::vector<std::string> texts;
  for (const std::string& path : a.captions) {
    if (a.text_lines) {
      std::vector<std::string> lines = tgpt::read_list_file(path);
      texts.insert(texts.end(), lines.begin(), lines.end());
    } else {
      const tgpt::CaptionTable table =
          tgpt::read_captions(path, tgpt::CaptionKeyRule::RelativePath);
      for (const auto& [key, text] : table.text_by_key) texts.push_back(text);
    }
  }
  TGPT_CHECK(!texts.empty(), "tgpt-tokenize learn: the captions files hold no text");
  tgpt::BpeLearnStats stats;
  const std::string merges = tgpt::learn_bpe_merges(texts, a.merges, a.min_frequency, &stats);
  tgpt::write_text_file_atomic(a.output, merges);
  std::printf(
      "learned %d merges from %zu texts (%lld words, %lld distinct); vocabulary %d (512 bytes + "
      "%d merges + SOT, EOT); wrote %s\n",
      stats.merges, texts.size(), stats.words, stats.distinct, 512 + stats.merges + 2, stats.merges,
      a.output.c_str());
  if (stats.merges < a.merges)
    std::printf("stopped early: no pair occurs %d times or more\n", a.min_frequency);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // first: may re-execute with other BLAS kernels
  CLI::App app{"Print CLIP token ids (77 per text) for each TEXT; `learn` learns BPE merges"};
  tgpt::tools::add_version_flag(app, "tgpt-tokenize");
  app.require_subcommand(0, 1);
  std::string weights, vocab, merges_file;
  bool truncate = false;
  std::vector<std::string> texts;
  auto* weights_opt =
      app.add_option("--weights", weights, "tgpt weight file with embedded merges (tgpt-convert)");
  auto* vocab_opt = app.add_option(
      "--vocab", vocab, "BPE merges: bpe_simple_vocab_16e6.txt.gz or a Hugging Face merges.txt");
  auto* merges_opt = app.add_option("--merges-file", merges_file,
                                    "BPE merges file of any length (e.g. from `learn`)");
  weights_opt->excludes(vocab_opt)->excludes(merges_opt);
  vocab_opt->excludes(merges_opt);
  app.add_flag(
      "--truncate", truncate,
      "cut texts longer than the context instead of failing (last id becomes <|endoftext|>)");
  app.add_option("texts", texts, "texts to tokenize");

  LearnArgs l;
  CLI::App* learn = app.add_subcommand("learn", "learn BPE merges (CLIP's format) from captions");
  learn->add_option("--captions", l.captions, "captions file (KEY TAB TEXT lines); repeatable")
      ->required();
  learn->add_flag("--text-lines", l.text_lines,
                  "the --captions files hold one text per line (no keys)");
  learn->add_option("--merges", l.merges, "number of merges to learn (at most 48894)")
      ->required()
      ->check(CLI::Range(0, tgpt::ClipTokenizer::kNumMerges));
  learn
      ->add_option("--min-frequency", l.min_frequency,
                   "stop when no pair occurs this often (default 2)")
      ->check(CLI::Range(1, 1 << 30));
  learn->add_option("-o,--output", l.output, "merges file to write")->required();
  CLI11_PARSE(app, argc, argv);

  try {
    if (learn->parsed()) return run_learn(l);
    TGPT_CHECK(!texts.empty(), "tgpt-tokenize: give the TEXTs to tokenize (or `learn ...`)");
    TGPT_CHECK(!weights.empty() || !vocab.empty() || !merges_file.empty(),
               "tgpt-tokenize: give --vocab FILE (or --weights, --merges-file)");
    const tgpt::ClipTokenizer tok = !vocab.empty() ? tgpt::ClipTokenizer::from_file(vocab)
                                    : !merges_file.empty()
                                        ? tgpt::ClipTokenizer::from_merges_file(merges_file)
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
