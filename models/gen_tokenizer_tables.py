#!/usr/bin/python3
"""gen_tokenizer_tables.py — writes models/tokenizer_tables.inc, the Unicode and HTML data that the
CLIP tokenizer (models/tokenizer.cpp) needs, from Python's standard library.

Run once with Debian's /usr/bin/python3 (3.11, unicodedata.unidata_version 14.0.0) from the repo
root and commit the output:

    /usr/bin/python3 models/gen_tokenizer_tables.py > models/tokenizer_tables.inc

Sources: unicodedata (categories, canonical decompositions, combining classes, NFC, NFKC),
str.lower / str.islower / str.isupper / str.istitle (lowercase mapping and the Final_Sigma context),
str.isdecimal (the `re` module's \\d), and html.entities.html5 (the HTML5 named character references
used by html.unescape). All of it is data of the Python standard library (PSF licence).

The tables for the ftfy.fix_text steps (ligatures, character width, upper-case entity names) are
derived here from the standard library by the rules ftfy 6.3 documents; when ftfy is importable
(the repo's .pydeps, installed by scripts/install-deps.sh) they are also checked against ftfy's own
tables. The generated file does not depend on ftfy.
"""
import html
import html.entities
import pathlib
import sys
import unicodedata

MAX_CP = 0x110000


def code_points():
    for c in range(MAX_CP):
        if 0xD800 <= c <= 0xDFFF:
            continue
        yield c


def ranges(pred):
    out = []
    for c in code_points():
        if pred(c):
            if out and out[-1][1] == c - 1:
                out[-1][1] = c
            else:
                out.append([c, c])
    return out


def emit_ranges(name, rs, comment):
    print(f"// {comment} ({len(rs)} ranges, inclusive)")
    print(f"static const CodePointRange {name}[] = {{")
    line = ""
    for lo, hi in rs:
        item = f"{{0x{lo:X}, 0x{hi:X}}}, "
        if len(line) + len(item) > 98:
            print("    " + line.rstrip())
            line = ""
        line += item
    if line:
        print("    " + line.rstrip())
    print("};\n")


def is_cased(ch):
    # CPython: Cased = Lowercase | Uppercase | Lt; for one character, istitle() is Lt or Uppercase.
    return ch.islower() or ch.isupper() or ch.istitle()


def is_case_ignorable(c):
    # Not exposed by Python; probed through str.lower()'s Final_Sigma rule (CPython
    # handle_capital_sigma): in "A" + X + "Σ" the sigma becomes final (ς) iff X is case-ignorable
    # or cased; in "AΣ" + X it stays final iff X is case-ignorable or not cased.
    ch = chr(c)
    before = ("A" + ch + "\u03a3").lower()[-1] == "\u03c2"
    after = ("A\u03a3" + ch).lower()[1] == "\u03c2"
    if is_cased(ch):
        return after
    return before


# Latin ligatures and legacy digraphs that ftfy.fix_latin_ligatures takes apart (ftfy 6.3's list;
# it leaves out ligatures such as U+00E6 that are written on purpose). Each becomes its one-level
# compatibility decomposition, e.g. U+FB03 -> "ffi", U+FB05 -> U+017F "t", U+01C4 -> "D" U+017D.
LATIN_LIGATURES = [0x132, 0x133, 0x149, 0x1F1, 0x1F2, 0x1F3, 0x1C4, 0x1C5, 0x1C6, 0x1C7, 0x1C8,
                   0x1C9, 0x1CA, 0x1CB, 0x1CC, 0xFB00, 0xFB01, 0xFB02, 0xFB03, 0xFB04, 0xFB05,
                   0xFB06]


def ligature_map():
    out = {}
    for c in LATIN_LIGATURES:
        d = unicodedata.decomposition(chr(c)).split()
        assert d[0] == "<compat>", hex(c)
        out[c] = "".join(chr(int(x, 16)) for x in d[1:])
    return out


def width_map():
    # ftfy.fix_character_width: U+3000 -> space, and every halfwidth/fullwidth form
    # U+FF01..U+FFEF whose NFKC differs -> its NFKC.
    out = {0x3000: " "}
    for c in range(0xFF01, 0xFFF0):
        k = unicodedata.normalize("NFKC", chr(c))
        if k != chr(c):
            out[c] = k
    return out


def uppercase_entities():
    # ftfy.fixes.unescape_html also decodes the upper-case spelling of an all-lower-case HTML5
    # name that ends in ';' (e.g. &EACUTE; -> U+00C9, &SZLIG; -> "SS") when html.unescape would
    # leave that spelling alone; the value is str.upper() of the entity's value.
    out = {}
    for name, value in html.entities.html5.items():
        if name.endswith(";") and name == name.lower():
            up = name.upper()
            if html.unescape("&" + up) == "&" + up:
                out[up] = value.upper()
    return out


def check_against_ftfy(ligatures, width, upper):
    root = pathlib.Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / ".pydeps"))
    try:
        from ftfy import chardata
    except ImportError:
        print("gen_tokenizer_tables: ftfy not importable; tables not cross-checked", file=sys.stderr)
        return
    assert {k: v for k, v in chardata.LIGATURES.items()} == ligatures, "ligature table differs"
    assert dict(chardata.WIDTH_MAP) == width, "width table differs"
    ftfy_upper = {k[1:]: v for k, v in chardata.HTML_ENTITIES.items()
                  if k[1:] not in html.entities.html5}
    assert ftfy_upper == upper, "upper-case entity table differs"
    assert all(chardata.HTML_ENTITIES["&" + k] == v for k, v in html.entities.html5.items()
               if k.endswith(";"))


def emit_replacements(name, table, comment):
    assert max(len(v) for v in table.values()) <= 3
    print(f"// {comment} ({len(table)}: code point, replacement padded with 0), sorted")
    print(f"static const Replacement {name}[] = {{")
    items = sorted(table.items())
    for i in range(0, len(items), 3):
        row = []
        for c, v in items[i:i + 3]:
            cps = [ord(x) for x in v] + [0] * (3 - len(v))
            row.append(f"{{0x{c:X}, {{0x{cps[0]:X}, 0x{cps[1]:X}, 0x{cps[2]:X}}}}},")
        print("    " + " ".join(row))
    print("};\n")


def main():
    out = sys.stdout
    print("// tokenizer_tables.inc — Unicode " + unicodedata.unidata_version +
          " and HTML5 entity data for models/tokenizer.cpp.")
    print("// GENERATED by models/gen_tokenizer_tables.py with /usr/bin/python3 " +
          sys.version.split()[0] + " from the Python standard library")
    print("// (unicodedata, str case methods, html.entities.html5; PSF licence). Do not edit by hand.\n")
    print(f'static const char kUnicodeVersion[] = "{unicodedata.unidata_version}";\n')

    emit_ranges("kLetterRanges", ranges(lambda c: unicodedata.category(chr(c))[0] == "L"),
                "general category L* (regex \\p{L})")
    emit_ranges("kNumberRanges", ranges(lambda c: unicodedata.category(chr(c))[0] == "N"),
                "general category N* (regex \\p{N})")
    emit_ranges("kDecimalRanges", ranges(lambda c: chr(c).isdecimal()),
                "str.isdecimal(), the `re` module's \\d (general category Nd)")
    emit_ranges("kCasedRanges", ranges(lambda c: is_cased(chr(c))), "Cased property")
    emit_ranges("kCaseIgnorableRanges", ranges(is_case_ignorable), "Case_Ignorable property")

    # Canonical combining classes (non-zero only).
    ccc = []
    for c in code_points():
        k = unicodedata.combining(chr(c))
        if k:
            if ccc and ccc[-1][1] == c - 1 and ccc[-1][2] == k:
                ccc[-1][1] = c
            else:
                ccc.append([c, c, k])
    print(f"// canonical combining class, non-zero ({len(ccc)} ranges: lo, hi, class)")
    print("static const CombiningClassRange kCombiningClasses[] = {")
    for i in range(0, len(ccc), 5):
        print("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, {k}}}," for a, b, k in ccc[i:i + 5]))
    print("};\n")

    # Canonical single-level decompositions (Hangul syllables are algorithmic, not listed).
    decomp = []
    for c in code_points():
        d = unicodedata.decomposition(chr(c))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        assert 1 <= len(parts) <= 2, hex(c)
        decomp.append((c, parts[0], parts[1] if len(parts) == 2 else 0))
    print(f"// canonical decompositions, one level ({len(decomp)}: code point, first, second or 0)")
    print("static const Decomposition kDecompositions[] = {")
    for i in range(0, len(decomp), 4):
        print("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, 0x{s:X}}}," for a, b, s in decomp[i:i + 4]))
    print("};\n")

    # Primary composites: pairs whose composition NFC performs (excludes composition exclusions).
    comp = []
    for c, a, b in decomp:
        if b and unicodedata.normalize("NFC", chr(c)) == chr(c):
            comp.append((a, b, c))
    comp.sort()
    print(f"// canonical compositions ({len(comp)}: first, second, composite), sorted")
    print("static const Composition kCompositions[] = {")
    for i in range(0, len(comp), 4):
        print("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, 0x{s:X}}}," for a, b, s in comp[i:i + 4]))
    print("};\n")

    # str.lower(): one-to-one mappings; U+0130 (-> i + U+0307) and capital sigma are handled in code.
    lower = []
    for c in code_points():
        lo = chr(c).lower()
        if lo == chr(c) or c == 0x3A3:
            continue
        if len(lo) != 1:
            assert c == 0x130 and lo == "i\u0307", hex(c)
            continue
        lower.append((c, ord(lo)))
    print(f"// str.lower() one-to-one mappings ({len(lower)}: code point, lowercase), sorted")
    print("static const CaseMapping kLowercase[] = {")
    for i in range(0, len(lower), 6):
        print("    " + " ".join(f"{{0x{a:X}, 0x{b:X}}}," for a, b in lower[i:i + 6]))
    print("};\n")

    # HTML5 named character references.
    ents = sorted(html.entities.html5.items())
    print(f"// html.entities.html5 ({len(ents)}: name as written after '&', UTF-8 value), sorted")
    print("static const HtmlEntity kHtmlEntities[] = {")
    for name, val in ents:
        assert name.isascii()
        esc = "".join(f"\\x{b:02x}" for b in val.encode("utf-8"))
        print(f'    {{"{name}", "{esc}"}},')
    print("};\n")

    ligatures, width, upper = ligature_map(), width_map(), uppercase_entities()
    check_against_ftfy(ligatures, width, upper)
    emit_replacements("kLatinLigatures", ligatures, "ftfy.fix_latin_ligatures")
    emit_replacements("kCharacterWidth", width, "ftfy.fix_character_width")
    print(f"// ftfy.fixes.unescape_html's upper-case names ({len(upper)}: name with ';', UTF-8 value),"
          " sorted")
    print("static const HtmlEntity kUppercaseEntities[] = {")
    for name, val in sorted(upper.items()):
        assert name.isascii()
        esc = "".join(f"\\x{b:02x}" for b in val.encode("utf-8"))
        print(f'    {{"{name}", "{esc}"}},')
    print("};")


if __name__ == "__main__":
    main()
