"""clip_tokenizer_ref.py — our Python reference of CLIP's BPE tokenizer and clip.tokenize, written
from /work/shared/spec/clip.md §4 with the standard library plus the real ftfy (re is not used for
the CLIP pattern; its classes are spelled out with unicodedata, because Debian 12 has no `regex`
module).

Text cleaning, as CLIP's simple_tokenizer does it:
  1. ftfy.fix_text(text) with ftfy's defaults. ftfy 6.3.1 (FTFY_VERSION) is not in Debian 12; it is
     imported from the repo's .pydeps, where scripts/install-deps.sh installs it from PyPI. Without
     it this module raises ImportError: there is no fallback.
  2. html.unescape twice, str.strip().
  3. Runs of White_Space (the `regex` module's \\s) -> one space, str.strip().
  4. str.lower().
Pre-tokenisation follows the pattern of §4 under IGNORECASE, as the `regex` module matches it:
'ſ' (U+017F) matches 's' in the special tokens and in 's, and U+0345 (which case-folds to a letter)
is matched by neither [\\p{L}]+ nor [^\\s\\p{L}\\p{N}]+, so it is dropped. Categories are those of
unicodedata (Unicode 14.0 with Python 3.11).
"""
import gzip
import html
import pathlib
import sys
import unicodedata

FTFY_VERSION = "6.3.1"
PYDEPS = pathlib.Path(__file__).resolve().parents[2] / ".pydeps"
if str(PYDEPS) not in sys.path:
    sys.path.insert(0, str(PYDEPS))
try:
    import ftfy
except ImportError as e:
    raise ImportError(
        f"clip_tokenizer_ref: cannot import ftfy ({e}); the tokenizer reference needs "
        f"ftfy=={FTFY_VERSION} in {PYDEPS}: run scripts/install-deps.sh") from e
if ftfy.__version__ != FTFY_VERSION:
    raise ImportError(f"clip_tokenizer_ref: ftfy {ftfy.__version__} found, {FTFY_VERSION} needed "
                      f"(run scripts/install-deps.sh)")

N_MERGES = 49152 - 256 - 2
SOT = "<|startoftext|>"
EOT = "<|endoftext|>"

# The `regex` module's \s (Unicode White_Space).
WHITE_SPACE = set(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def bytes_to_unicode():
    printable = (list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100)))
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    order = printable + [b for b in range(256) if b not in printable]
    return table, order


def read_merges_text(path):
    """Text of an OpenAI .txt.gz merges file or a plain merges.txt."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8")


class Tokenizer:
    def __init__(self, merges_text):
        lines = merges_text.split("\n")
        assert "#version" in lines[0], "merges text must start with a #version header"
        merges = [tuple(line.split(" ")) for line in lines[1:N_MERGES + 1] if line]
        self.byte_table, order = bytes_to_unicode()
        vocab = [self.byte_table[b] for b in order]
        vocab += [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += [SOT, EOT]
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot = self.encoder[SOT]
        self.eot = self.encoder[EOT]

    def bpe(self, token):
        if token in (SOT, EOT):
            return [token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            best = None
            for pair in zip(word, word[1:]):
                r = self.ranks.get(pair)
                if r is not None and (best is None or r < best[0]):
                    best = (r, pair)
            if best is None:
                break
            first, second = best[1]
            merged = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word

    def encode(self, text):
        ids = []
        for token in pretokenize(clean_text(text)):
            mapped = "".join(self.byte_table[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(mapped))
        return ids

    def tokenize(self, texts, context_length=77, truncate=False):
        rows = []
        for text in texts:
            ids = [self.sot] + self.encode(text) + [self.eot]
            if len(ids) > context_length:
                if not truncate:
                    raise ValueError(f"Input {text} is too long for context length {context_length}")
                ids = ids[:context_length]
                ids[-1] = self.eot
            rows.append(ids + [0] * (context_length - len(ids)))
        return rows


def collapse_white_space(text):
    out = []
    in_space = False
    for ch in text:
        if ch in WHITE_SPACE:
            if not in_space:
                out.append(" ")
            in_space = True
        else:
            out.append(ch)
            in_space = False
    return "".join(out)


def clean_text(text, fix_encoding=True):
    """CLIP's cleaning. fix_encoding=False turns off ftfy's mojibake repair only (for sweeps over
    code points that would otherwise look like mojibake; the C++ tokenizer does not repair it)."""
    text = ftfy.fix_text(text, fix_encoding=fix_encoding)
    text = html.unescape(html.unescape(text)).strip()
    text = collapse_white_space(text).strip()
    return text.lower()


def is_letter(ch):
    return unicodedata.category(ch)[0] == "L"


def is_number(ch):
    return unicodedata.category(ch)[0] == "N"


def is_other(ch):
    # [^\s\p{L}\p{N}] under IGNORECASE; U+0345 counts as a letter there (its case fold is iota).
    return not (ch in WHITE_SPACE or is_letter(ch) or is_number(ch) or ch == "\u0345")


def _match_literal(text, i, lit):
    """Length of lit if text[i:] starts with it under the pattern's IGNORECASE, else 0."""
    if i + len(lit) > len(text):
        return 0
    for k, p in enumerate(lit):
        c = text[i + k]
        if c == p or c == p.upper() or (p == "s" and c == "\u017f"):
            continue
        return 0
    return len(lit)


def pretokenize(text):
    tokens = []
    i = 0
    n = len(text)
    while i < n:
        m = 0
        for lit in (SOT, EOT, "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            m = _match_literal(text, i, lit)
            if m:
                break
        if not m:
            if is_letter(text[i]):
                m = 1
                while i + m < n and is_letter(text[i + m]):
                    m += 1
            elif is_number(text[i]):
                m = 1
            elif is_other(text[i]):
                m = 1
                while i + m < n and is_other(text[i + m]):
                    m += 1
        if m:
            tokens.append(text[i:i + m])
            i += m
        else:
            i += 1  # white space (or U+0345): no alternative matches here
    return tokens
