/*
 * bpe_learn.cpp — BPE merges learned from texts over ClipTokenizer's pre-tokens (see bpe_learn.h).
 *
 * Data: distinct words (pre-token -> symbol ids + count); symbols interned as strings; for every
 * adjacent pair (key = first << 32 | second) its weighted count and the words it was seen in; a
 * max-heap of (count, pair) with lazy deletion (an entry whose count differs from the pair's
 * current count is stale and skipped). A merge recounts only the words listed for its pair.
 */
#include "models/bpe_learn.h"

#include <cstdint>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "base/error.h"
#include "models/tokenizer.h"

namespace tgpt {

namespace {

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t pair_first(uint64_t key) {
  return static_cast<int32_t>(key >> 32);
}
int32_t pair_second(uint64_t key) {
  return static_cast<int32_t>(key & 0xFFFFFFFFu);
}

struct Word {
  std::vector<int32_t> symbols;
  long long count = 0;
};

struct HeapEntry {
  long long count;
  uint64_t pair;
};

class BpeLearner {
 public:
  int32_t intern(const std::string& symbol) {
    const auto [it, added] = symbol_ids_.emplace(symbol, static_cast<int32_t>(symbols_.size()));
    if (added) symbols_.push_back(symbol);
    return it->second;
  }

  void add_word(std::vector<int32_t> symbols, long long count) {
    const int w = static_cast<int>(words_.size());
    words_.push_back({std::move(symbols), count});
    add_pairs(w, /*only_symbol=*/-1);
  }

  // Heap entries for every pair counted so far.
  void start() {
    for (const auto& [key, count] : pair_count_)
      if (count > 0) heap_.push({count, key});
  }

  // Takes the most frequent pair (smallest on ties); false when none occurs min_frequency times.
  bool best_pair(long long min_frequency, uint64_t* key, long long* count) {
    while (!heap_.empty()) {
      const HeapEntry top = heap_.top();
      const auto it = pair_count_.find(top.pair);
      if (it == pair_count_.end() || it->second != top.count) {
        heap_.pop();  // stale
        continue;
      }
      if (top.count < min_frequency) return false;
      *key = top.pair;
      *count = top.count;
      return true;
    }
    return false;
  }

  // Replaces the pair in every word that holds it by the merged symbol and recounts those words.
  void merge(uint64_t key) {
    const int32_t a = pair_first(key), b = pair_second(key);
    const int32_t ab = intern(symbols_[static_cast<size_t>(a)] + symbols_[static_cast<size_t>(b)]);
    const std::vector<int> holders = std::move(pair_words_[key]);
    pair_words_.erase(key);
    changed_.clear();
    for (int w : holders) {
      Word& word = words_[static_cast<size_t>(w)];
      const std::vector<int32_t>& s = word.symbols;
      bool holds = false;
      for (size_t i = 0; i + 1 < s.size() && !holds; ++i) holds = s[i] == a && s[i + 1] == b;
      if (!holds) continue;  // listed twice, or the pair left this word with an earlier merge
      remove_pairs(w);
      std::vector<int32_t> merged;
      merged.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(ab);
          i += 2;
        } else {
          merged.push_back(s[i]);
          i += 1;
        }
      }
      word.symbols = std::move(merged);
      add_pairs(w, ab);
    }
    pair_count_.erase(key);
    for (uint64_t k : changed_) {
      const auto it = pair_count_.find(k);
      if (it == pair_count_.end()) continue;
      if (it->second > 0)
        heap_.push({it->second, k});
      else
        pair_count_.erase(it);
    }
  }

  const std::string& symbol(int32_t id) const { return symbols_[static_cast<size_t>(id)]; }
  long long distinct_words() const { return static_cast<long long>(words_.size()); }

 private:
  // Counts the pairs of word w; lists w under the pairs that contain only_symbol (all when -1).
  void add_pairs(int w, int32_t only_symbol) {
    const Word& word = words_[static_cast<size_t>(w)];
    const std::vector<int32_t>& s = word.symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = pair_key(s[i], s[i + 1]);
      pair_count_[k] += word.count;
      changed_.insert(k);
      if (only_symbol < 0 || s[i] == only_symbol || s[i + 1] == only_symbol) {
        std::vector<int>& list = pair_words_[k];
        if (list.empty() || list.back() != w) list.push_back(w);
      }
    }
  }
  void remove_pairs(int w) {
    const Word& word = words_[static_cast<size_t>(w)];
    const std::vector<int32_t>& s = word.symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = pair_key(s[i], s[i + 1]);
      pair_count_[k] -= word.count;
      changed_.insert(k);
    }
  }

  // Heap order: larger count first; on equal counts the smaller (first, second) symbol strings.
  struct HeapLess {
    const BpeLearner* self;
    bool operator()(const HeapEntry& x, const HeapEntry& y) const {
      if (x.count != y.count) return x.count < y.count;
      const std::string& xa = self->symbol(pair_first(x.pair));
      const std::string& ya = self->symbol(pair_first(y.pair));
      if (xa != ya) return xa > ya;
      return self->symbol(pair_second(x.pair)) > self->symbol(pair_second(y.pair));
    }
  };

  std::vector<std::string> symbols_;                     // symbol id -> text
  std::unordered_map<std::string, int32_t> symbol_ids_;  // text -> symbol id
  std::vector<Word> words_;
  std::unordered_map<uint64_t, long long> pair_count_;
  std::unordered_map<uint64_t, std::vector<int>> pair_words_;  // may list stale words
  std::unordered_set<uint64_t> changed_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapLess> heap_{HeapLess{this}};
};

}  // namespace

std::string learn_bpe_merges(const std::vector<std::string>& texts, int num_merges,
                             int min_frequency, BpeLearnStats* stats) {
  TGPT_CHECK(num_merges >= 0 && num_merges <= ClipTokenizer::kNumMerges,
             "learn_bpe_merges: num_merges must be in [0, ", ClipTokenizer::kNumMerges, "], got ",
             num_merges);
  TGPT_CHECK(min_frequency >= 1, "learn_bpe_merges: min_frequency must be >= 1, got ",
             min_frequency);

  // Words and their counts, over ClipTokenizer's cleaning and pre-tokenisation.
  std::unordered_map<std::string, long long> word_counts;
  long long total_words = 0;
  for (size_t t = 0; t < texts.size(); ++t) {
    std::vector<std::string> pretokens;
    try {
      pretokens = clip_pretokenize(clip_clean_text(texts[t]));
    } catch (const Error& e) {
      TGPT_FAIL("learn_bpe_merges: text ", t, ": ", e.what());
    }
    for (std::string& p : pretokens) {
      if (p.empty() || p == "<|startoftext|>" || p == "<|endoftext|>") continue;
      ++word_counts[std::move(p)];
      ++total_words;
    }
  }

  BpeLearner learner;
  const std::vector<std::string>& byte_symbols = clip_byte_symbols();
  int32_t byte_ids[256], byte_end_ids[256];
  for (int b = 0; b < 256; ++b) {
    byte_ids[b] = learner.intern(byte_symbols[static_cast<size_t>(b)]);
    byte_end_ids[b] = learner.intern(byte_symbols[static_cast<size_t>(b)] + "</w>");
  }
  for (const auto& [word, count] : word_counts) {
    std::vector<int32_t> symbols;
    symbols.reserve(word.size());
    for (size_t i = 0; i < word.size(); ++i) {
      const auto byte = static_cast<unsigned char>(word[i]);
      symbols.push_back(i + 1 == word.size() ? byte_end_ids[byte] : byte_ids[byte]);
    }
    learner.add_word(std::move(symbols), count);
  }
  learner.start();

  std::string text = "#version: 0.2\n";
  int learned = 0;
  long long last_count = 0;
  uint64_t key = 0;
  long long count = 0;
  while (learned < num_merges && learner.best_pair(min_frequency, &key, &count)) {
    text += learner.symbol(pair_first(key));
    text += ' ';
    text += learner.symbol(pair_second(key));
    text += '\n';
    learner.merge(key);
    ++learned;
    last_count = count;
  }
  if (stats) {
    stats->merges = learned;
    stats->words = total_words;
    stats->distinct = learner.distinct_words();
    stats->last_count = last_count;
  }
  return text;
}

}  // namespace tgpt
