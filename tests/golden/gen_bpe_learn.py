"""gen_bpe_learn.py — reference for models/bpe_learn (learning CLIP-format BPE merges from texts).

Writes bpe_learn.json: a generated caption corpus (ASCII words with capitals, digits, punctuation,
contractions, a few accented and CJK words, HTML entities, the special tokens) and, for a few
(num_merges, min_frequency) settings, the merges text that the plain algorithm below learns.

The algorithm, written for clarity (a full recount per merge), from bpe_learn.h:
  words: CLIP's pre-tokens of the cleaned texts (clip_tokenizer_ref.clean_text / pretokenize,
         special tokens skipped) as bytes_to_unicode symbols, '</w>' on the last one, with counts;
  each step: count adjacent pairs weighted by word counts; the best pair is the one with the
         largest count, ties to the smallest (first, second) (Python str order = code point order =
         UTF-8 byte order); stop when its count < min_frequency or num_merges merges are made;
         replace the pair in every word left to right without overlap.
Standard library plus the real ftfy (through clip_tokenizer_ref); no torch.
"""
import collections
import json
import pathlib
import random

import clip_tokenizer_ref as ref


def corpus():
    rng = random.Random(20261206)
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white", "Gray"]
    shapes = ["circle", "square", "triangle", "star", "cross", "ring", "disk", "stripe", "wave"]
    places = ["left", "right", "top", "bottom", "center", "corner", "edge"]
    extras = ["café", "naïve", "über", "猫", "señor", "crème brûlée", "it's", "they're",
              "we'll", "&amp;", "&quot;big&quot;", "3.14", "42", "x2", "<|endoftext|>", "U.S.A.",
              "--", "!!", "(small)", "multi-coloured", "straße", "ΣΊΣΥΦΟΣ"]
    texts = []
    for _ in range(400):
        n = rng.randint(1, 4)
        parts = []
        for _ in range(n):
            parts.append(f"a {rng.choice(colours)} {rng.choice(shapes)}")
            if rng.random() < 0.5:
                parts[-1] += f" at the {rng.choice(places)}"
            if rng.random() < 0.3:
                parts[-1] += " " + rng.choice(extras)
        text = (", " if rng.random() < 0.5 else " and ").join(parts)
        if rng.random() < 0.3:
            text = text.capitalize() + "."
        if rng.random() < 0.1:
            text = "  " + text.upper() + "\t"
        texts.append(text)
    return texts


def word_counts(texts):
    table, _ = ref.bytes_to_unicode()
    counts = collections.Counter()
    for text in texts:
        for tok in ref.pretokenize(ref.clean_text(text)):
            if tok in (ref.SOT, ref.EOT) or not tok:
                continue
            symbols = [table[b] for b in tok.encode("utf-8")]
            symbols[-1] += "</w>"
            counts[tuple(symbols)] += 1
    return counts


def merge_word(word, a, b):
    out = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def learn(texts, num_merges, min_frequency):
    words = word_counts(texts)
    lines = ["#version: 0.2"]
    for _ in range(num_merges):
        pairs = collections.Counter()
        for word, count in words.items():
            for i in range(len(word) - 1):
                pairs[(word[i], word[i + 1])] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < min_frequency:
            break
        lines.append(f"{best[0]} {best[1]}")
        merged = collections.Counter()
        for word, count in words.items():
            merged[merge_word(word, *best)] += count
        words = merged
    return "\n".join(lines) + "\n"


def generate(out_dir):
    texts = corpus()
    cases = []
    for num_merges, min_frequency in [(100, 2), (5000, 2), (5000, 25), (5000, 1)]:
        merges = learn(texts, num_merges, min_frequency)
        cases.append({"num_merges": num_merges, "min_frequency": min_frequency, "merges": merges})
    path = pathlib.Path(out_dir) / "bpe_learn.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"texts": texts, "cases": cases}, f, ensure_ascii=False)


if __name__ == "__main__":
    import sys
    generate(sys.argv[1])
