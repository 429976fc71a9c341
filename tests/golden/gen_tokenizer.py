"""gen_tokenizer.py — expected CLIP token ids and cleaning results from our Python reference
(clip_tokenizer_ref.py, which cleans text with the real ftfy.fix_text) for tests/test_tokenizer.cpp
and tests/test_tokenizer_ftfy.cpp; writes OUT/tokenizer.json and OUT/tokenizer_text.json.

Uses the real merges file ../shared/clip/bpe_simple_vocab_16e6.txt.gz next to the source tree
(TGPT_SHARED_DIR or TGPT_SOURCE_DIR/../shared, else relative to this file). Without it nothing is
written and the C++ golden tests skip. Cleaning/pre-tokenisation cases that need no merges
(html.unescape, NFC, str.lower, clean_text, pretokenize over every code point) are written to
OUT/tokenizer_text.json regardless. ftfy must be importable (clip_tokenizer_ref raises otherwise):
the generator fails rather than write fixtures from a different cleaning.
"""
import html
import json
import os
import pathlib
import random
import unicodedata

import clip_tokenizer_ref as ref
from clip_tokenizer_ref import ftfy

MERGES_NAME = "clip/bpe_simple_vocab_16e6.txt.gz"

TOKENIZE_CASES = [
    ("a photo of a cat", False),
    ("Hello, World! 123", False),
    ("", False),
    ("don't", False),
    ("A PHOTO OF A DOG.", False),
    ("It's, they're, we've, I'm, you'll, he'd, can't", False),
    ("IT'S LOUD", False),
    ("rock'n'roll ''s 'st", False),
    ("12345 3.14159 1,000,000 2nd 4th", False),
    ("  leading   and\ttrailing \n\n white   space  ", False),
    ("\u00a0non-breaking\u2003em space\u3000ideographic", False),
    ("fish &amp; chips &lt;3 &quot;quoted&quot;", False),
    ("double &amp;amp; escaped, triple &amp;amp;amp;", False),
    ("&#65;&#x42;&#X43; &#128512; &copy; &notit; &amp &#0; &#x110000;", False),
    ("caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00dcber Stra\u00dfe", False),
    ("cafe\u0301 decomposed vs caf\u00e9", False),
    ("\u00c5ngstr\u00f6m \u212b \u2126hm", False),
    ("\u4e00\u5f35\u732b\u306e\u5199\u771f \u3053\u3093\u306b\u3061\u306f \ud55c\uad6d\uc5b4", False),
    ("emoji \U0001F600\U0001F431\U0001F44D\U0001F3FD and flags \U0001F1EF\U0001F1F5", False),
    ("\u201ccurly quotes\u201d and \u2018apostrophes\u2019: don\u2019t", False),
    ("<|startoftext|>literal special tokens<|endoftext|> inside", False),
    ("<|ENDOFTEXT|> upper special and <|endoftext|", False),
    ("\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3 \u0130stanbul", False),
    ("\u0410 \u0444\u043e\u0442\u043e \u043a\u043e\u0448\u043a\u0438 \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627", False),
    ("tabs\tand\rcarriage\r\nreturns\x0bvt\x0cff", False),
    ("control \x01\x02 chars \x1c\x1d and \u200b zero width", False),
    ("symbols !@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~", False),
    ("a.b.c, x-y-z, snake_case, CamelCase, e-mail@example.com", False),
    ("\u2160\u2161 roman \u00bd\u00be fractions \u0663\u0664 arabic digits \uff11\uff12", False),
    ("superscript x\u00b2 \ufb01 ligature \uff21\uff22 fullwidth", False),
    ("a photo of a " + "very " * 80 + "big cat", True),
    ("a photo of a " + "very " * 80 + "big cat", False),
    ("1234567890" * 8, True),
    ("1" * 75, False),
    ("1" * 76, False),
    ("1" * 76, True),
    ("supercalifragilisticexpialidocious antidisestablishmentarianism", False),
    ("\u0345 iota subscript a\u0345b \u017f long s it'\u017f", False),
    ("\U0001d400\U0001d401 math bold \u24b6\u24d0 circled", False),
    # ftfy.fix_text steps
    ("\ufb01sh \ufb02ower e\ufb00ort o\ufb03ce wa\ufb04e \ufb05 \ufb06 \u0132\u0133 \u0149 \u01c4\u01c5\u01c6", False),
    ("\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33\uff01 \uff11\uff12\uff13 \uff08\uff41\uff09 \uff76\uff9e\uff71", False),
    ("\x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[0m, \x1b[unfinished, \x1b alone", False),
    ("nul\x00 bel\x07 bs\x08 vt\x0b so\x0e esc\x1b us\x1f del\x7f end", False),
    ("\ufeffbom, zero\u200bwidth, zwj a\u200db, lrm\u200e, \u206aarabic\u206f, \ufff9ann\ufffb \ufffc", False),
    ("line one\r\nline two\rline three\u2028four\u2029five\n", False),
    ("fish &amp; chips, 5 &lt; 6, &eacute;t&eacute;, &EACUTE;T&EACUTE;, STRA&SZLIG;E, &nTILDE;", False),
    ("<b>fish &amp; chips</b> &eacute;t&eacute; &EACUTE;", False),
    ("entity first &amp;amp; then\n<i>markup</i> &amp;amp; after", False),
    ("triple &amp;amp;amp; and quadruple &amp;amp;amp;amp; escaped", False),
    ("&#65;&#x42;&#67 &#x1F600; &#0; &#128; &#150; &#xD800; &#99999999; &#x41 &#xZZ;", False),
    ("this&not that, &notit; &amp &hellip; &CounterClockwiseContourIntegral; &ThickSpace;", False),
    ("\u2018single\u2019 \u201cdouble\u201d \u201alow\u201b \u201elow\u201f it\u02bcs", False),
    ("e\u0301 a\u0308 c\u0327 o\u0302\u0323 \u1100\u1161\u11a8 A\u030a \u212b", False),
    ("\uff06amp\uff1b fullwidth entity, \uff1cb\uff1e fullwidth markup", False),
    ("c1 \x80 euro \x93quoted\x94 \x85 next line", False),
]


def merges_path():
    if os.environ.get("TGPT_SHARED_DIR"):
        return pathlib.Path(os.environ["TGPT_SHARED_DIR"]) / MERGES_NAME
    if os.environ.get("TGPT_SOURCE_DIR"):
        return pathlib.Path(os.environ["TGPT_SOURCE_DIR"]).parent / "shared" / MERGES_NAME
    return pathlib.Path(__file__).resolve().parents[2].parent / "shared" / MERGES_NAME


def random_text(rng, pool, max_len):
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, max_len)))


# Character classes for the ftfy comparison (random strings below). Mojibake is avoided by
# construction: the pools hold no Latin-1 supplement characters (U+00A0..U+00FF) and no C1
# controls, which are what ftfy's fix_encoding reads as UTF-8 decoded in a single-byte code page;
# the one entity in the pool that decodes to a Latin-1 letter (&EACUTE;) is rare enough not to
# meet a second one. Every
# generated string is checked to be left alone by ftfy.fix_encoding, and to get the same result from
# fix_text with and without fix_encoding, so the comparison never depends on mojibake repair.
FTFY_POOL = (
    ["a", "photo", "of", "the", "Cat", "X", "7", "0", " ", "  ", ".", ",", "!", "-", "#", ";", "&",
     "amp", "lt", "[", "m"] +
    [chr(c) for c in (0x132, 0x133, 0x149, 0x1F1, 0x1F2, 0x1F3, 0x1C4, 0x1C5, 0x1C6, 0x1C7, 0x1C8,
                      0x1C9, 0x1CA, 0x1CB, 0x1CC, 0xFB00, 0xFB01, 0xFB02, 0xFB03, 0xFB04, 0xFB05,
                      0xFB06)] +
    ["\uff21", "\uff5a", "\uff10", "\uff19", "\uff01", "\uff06", "\uff1b", "\uff03", "\uff1c",
     "\uff40", "\uff5e", "\u3000", "\uff76", "\uff9e", "\uff9f", "\uffa1", "\uffe3", "\uffe8",
     "\uffe0", "\uffee"] +
    ["\x1b[31m", "\x1b[0m", "\x1b[1;32m", "\x1b[", "\x1b", "\x1b[\u0661m", "\x1b[;H"] +
    [chr(c) for c in list(range(0x00, 0x20)) + [0x7F]] +
    ["\r\n", "\u2028", "\u2029", "\ufeff", "\u200b", "\u200c", "\u200d", "\u200e", "\u202a",
     "\u206a", "\u206f", "\ufff9", "\ufffa", "\ufffb", "\ufffc", "\ufffd", "\U000e0067"] +
    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x41;", "&#65", "&#x1F600;", "&#0;", "&#128;",
     "&#xD800;", "&hellip;", "&mdash;", "&amp", "&nTILDE;", "&EACUTE;", "&SZLIG;", "&ThickSpace;",
     "&Jscr;", "&CounterClockwiseContourIntegral;", "&amp;amp;", "&amp;lt;", "<", ">"] +
    ["\u2018", "\u2019", "\u201a", "\u201b", "\u201c", "\u201d", "\u201e", "\u201f", "\u02bc"] +
    ["e\u0301", "\u0301", "\u0308", "\u0327", "\u0323", "\u0345", "A\u030a", "\u1100\u1161",
     "\u4e00", "\U0001F600", "\u03a3", "\u0130", "\u0663"])


def ftfy_cases(rng):
    cases = []
    for _ in range(600):
        s = random_text(rng, FTFY_POOL, 14)
        assert ftfy.fix_encoding(s) == s, f"gen_tokenizer: mojibake-like random case {s!r}"
        fixed = ftfy.fix_text(s)
        assert fixed == ftfy.fix_text(s, fix_encoding=False), f"gen_tokenizer: {s!r}"
        cases.append([s, fixed, ref.clean_text(s)])
    for text, _ in TOKENIZE_CASES:
        cases.append([text, ftfy.fix_text(text), ref.clean_text(text)])
    return cases


def text_cases():
    rng = random.Random(20240607)
    # Every assigned code point (and every 97th unassigned or private-use one), in code point
    # order, in chunks of 256.
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and
           (unicodedata.category(chr(c)) not in ("Cn", "Co") or c % 97 == 0)]
    chunks = ["".join(map(chr, cps[i:i + 256])) for i in range(0, len(cps), 256)]
    marks = ["\u0300", "\u0301", "\u0308", "\u0323", "\u0327", "\u031b", "\u0345", "\u05b0",
             "\u0591", "\u302a", "\u3099", "\u309a", "\u0f71", "\u0f72", "\u1dce"]
    bases = ["a", "e", "o", "u", "A", "O", "\u00e9", "\u00c5", "\u1100", "\u1161", "\u11a8",
             "\uac00", "\uac01", "\u212b", "\u2126", "\u0958", "\u1e9b", "\u03a3", "\u0130", "\u304b",
             "\u30cf", "\u0f40", " ", "\u0391", "\u03b1", "\u1f00"]
    nfc_cases = [random_text(rng, bases + marks * 2, 12) for _ in range(3000)]
    greek = ["\u03a3", "\u03a3", "A", "\u03b1", " ", ".", "'", "\u0301", "\u02b0", "1", "\u00ad",
             "\u0130", "\u1f88", "\u01c5", "\u2160"]
    lower_cases = [random_text(rng, greek, 10) for _ in range(3000)] + chunks
    ent_parts = ["&", "amp;", "amp", "#", "x", "X", "41", "3B", ";", "lt", "gt;", "notin;", "not",
                 "copy", "a", " ", "\t", "\u00e9", "9", "0", "65", "AElig", "frac12", "#x1F600;",
                 "&#", "&#x", "quot", "nbsp", "\n", "<", "ThickSpace;", "1114112", "128"]
    unescape_cases = [random_text(rng, ent_parts, 10) for _ in range(5000)]
    unescape_cases += ["&" + "a" * 40 + ";", "&amp" + "x" * 40, "&#" + "9" * 40 + ";",
                       "&#x" + "f" * 40, "&" + "\u00e9" * 33 + ";", "&&&", "&;", "&#;"]
    clean_pool = (marks + bases + greek + ent_parts[:12] +
                  ["\u201c", "\u201d", "\u2018", "\u2019", "\u02bc", "\u00a0", "\u1680", "\x1c",
                   "\x1f", "\u3000", "\r\n", "\u0085", "\u2028", "B"])
    clean_cases = [random_text(rng, clean_pool, 16) for _ in range(4000)]
    # This pool mixes Latin-1 letters with U+0085 and curly quotes, so a few strings are mojibake
    # that ftfy's fix_encoding repairs (e.g. "\u00c5\u0085" -> U+0146); the C++ tokenizer does not
    # repair mojibake, so those are left out here.
    clean = [[s, ref.clean_text(s)] for s in clean_cases
             if ftfy.fix_text(s) == ftfy.fix_text(s, fix_encoding=False)]
    # The sweep over every code point holds runs of Latin-1 and C1 characters that ftfy would
    # "repair" as mojibake, which the C++ tokenizer does not do: clean it with fix_encoding off.
    clean += [[s, ref.clean_text(s, fix_encoding=False)] for s in chunks[::8]]
    pre_pool = list("abc 'sStTrRvVmMlLdD<|>!?.,19\t") + ["\u017f", "\u0345", "\u00e9", "\u0663",
                                                          "\u4e00", "\U0001F600", "<|endoftext|>",
                                                          "<|startoftext|>", "'re", "'ll", "\u3000"]
    pre_inputs = [random_text(rng, pre_pool, 20) for _ in range(4000)] + [ref.clean_text(c, fix_encoding=False)
                                                                for c in chunks]
    return {
        "unicode_version": unicodedata.unidata_version,
        "unescape": [[s, html.unescape(s)] for s in unescape_cases],
        "nfc": [[s, unicodedata.normalize("NFC", s)] for s in nfc_cases + chunks],
        "lower": [[s, s.lower()] for s in lower_cases],
        "clean": clean,
        "pretokenize": [[s, ref.pretokenize(s)] for s in pre_inputs],
        "ftfy_version": ftfy.__version__,
        "ftfy": ftfy_cases(rng),
    }


def token_cases(path):
    tok = ref.Tokenizer(ref.read_merges_text(path))
    rng = random.Random(77)
    cases = []
    for text, truncate in TOKENIZE_CASES:
        try:
            ids = tok.tokenize([text], truncate=truncate)[0]
        except ValueError:
            ids = None  # too long without truncation
        cases.append({"text": text, "truncate": truncate, "ids": ids})
    pool = (list("abcdefghijklmnopqrstuvwxyz      ABCXYZ0123456789.,!?'-&;#") +
            ["the ", "photo ", "of ", "'s ", "'ll ", "&amp;", "&lt;", "\u00e9", "\u00fc", "\u00df",
             "\u4e00", "\u732b", "\U0001F600", "\u0645", "\u03a3", "\u2019", "<|endoftext|>", "\u00a0"])
    encode = []
    for _ in range(600):
        text = random_text(rng, pool, 30)
        encode.append([text, tok.encode(text)])
    return {"merges": str(path), "vocab_size": len(tok.encoder), "tokenize": cases,
            "encode": encode}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)


def generate(out_dir):
    out_dir = pathlib.Path(out_dir)
    write_json(out_dir / "tokenizer_text.json", text_cases())
    path = merges_path()
    target = out_dir / "tokenizer.json"
    if not path.is_file():
        print(f"gen_tokenizer: {path} not found; token id fixtures not written")
        if target.exists():
            target.unlink()
        return
    write_json(target, token_cases(path))


if __name__ == "__main__":
    import sys
    generate(sys.argv[1])
