/*
 * bpe_learn.h — learning a CLIP-format BPE merges table from texts (Sennrich et al. 2016), so that
 * a model can be pretrained without OpenAI's merges file.
 *
 * Words are exactly ClipTokenizer's: each text is cleaned (clip_clean_text) and split into
 * pre-tokens (clip_pretokenize; the special tokens <|startoftext|> / <|endoftext|> are skipped);
 * a pre-token is a sequence of bytes_to_unicode symbols (clip_byte_symbols) with '</w>' appended
 * to its last symbol, and is weighted by how often it occurs in the texts.
 *
 * Training: count every adjacent symbol pair over all words (count = sum of the counts of the
 * words it occurs in, once per occurrence); repeatedly take the most frequent pair — ties go to
 * the smallest pair (first symbols compared as UTF-8 byte strings, then second symbols) — record
 * it as the next merge and replace its occurrences in every word, left to right without overlap
 * (as ClipTokenizer applies a merge). Stops after num_merges merges or when the most frequent
 * pair occurs fewer than min_frequency times. Pair counts are updated incrementally: only the
 * words that contain the merged pair are recounted.
 *
 * Output: merges text in CLIP's format, "#version: 0.2\n" then one "a b\n" per merge in the order
 * learned; ClipTokenizer(text) then has vocab_size() = 512 + merges + 2 (SOT, EOT last).
 */
#pragma once

#include <string>
#include <vector>

namespace tgpt {

struct BpeLearnStats {
  int merges = 0;            // merges learned
  long long words = 0;       // pre-tokens in the texts (with repeats)
  long long distinct = 0;    // distinct pre-tokens
  long long last_count = 0;  // pair count of the last merge (0 when none)
};

// Learns up to num_merges merges (0 <= num_merges <= ClipTokenizer::kNumMerges) from the texts;
// min_frequency >= 1. Texts must be valid UTF-8 (a tgpt::Error names the text otherwise).
std::string learn_bpe_merges(const std::vector<std::string>& texts, int num_merges,
                             int min_frequency = 2, BpeLearnStats* stats = nullptr);

}  // namespace tgpt
