#!/usr/bin/env python3
"""Generates models/clip_tokenizer_tables.h: the Unicode and text-clean-up
tables of the CLIP text tokenizer (models/clip_tokenizer.cc).

Every table is read off the reference implementation itself, character by
character, so that the C++ tokenizer reproduces open_clip's SimpleTokenizer:

  * the pre-tokenizer classes come from the `regex` module with the exact
    character classes and IGNORECASE flag of open_clip's pattern;
  * str.isspace / str.lower (with its Final_Sigma rule) / NFC / `re`'s \\d
    come from this Python's `unicodedata`;
  * the ftfy.fix_text steps (C1 controls, ligatures, character width, curly
    quotes, control characters, HTML entities) come from ftfy's own functions;
  * html.unescape's tables come from the `html` module.

Run with the repo venv (tools/requirements.txt pins regex and ftfy):
  .venv/bin/python tools/gen_clip_tokenizer_tables.py > models/clip_tokenizer_tables.h
then clang-format is not needed (the output is already formatted).
"""

import html
import importlib.metadata
import html.entities
import re as stdlib_re
import sys
import unicodedata

import ftfy
import ftfy.chardata
import ftfy.fixes
import regex

re_unicode = stdlib_re.compile(r"supports Unicode ([0-9]+(?:\.[0-9]+)*)")
MAX_CP = 0x110000
SURROGATES = range(0xD800, 0xE000)


def code_points():
    for cp in range(MAX_CP):
        if cp not in SURROGATES:
            yield cp


def ranges_of(value_of):
    """[(first, last, value)] for the maximal runs of equal non-zero value_of(cp)."""
    out = []
    for cp in code_points():
        v = value_of(cp)
        if not v:
            continue
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        elif out and out[-1][1] == 0xD7FF and cp == 0xE000 and out[-1][2] == v:
            out[-1][1] = cp  # runs may span the surrogate gap
        else:
            out.append([cp, cp, v])
    return out


def c_string(s):
    """A C++ string literal holding s in UTF-8 (octal escapes: never greedy)."""
    out = []
    for b in s.encode("utf-8"):
        if 0x20 <= b < 0x7F and b not in (ord('"'), ord("\\"), ord("?")):
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def emit_ranges(name, rows, comment):
    print(f"// {comment}")
    print(f"constexpr CodePointRange {name}[] = {{")
    for first, last, v in rows:
        print(f"    {{0x{first:X}, 0x{last:X}, {v}}},")
    print("};\n")


def emit_string_map(name, pairs, comment):
    print(f"// {comment}")
    print(f"constexpr CodePointString {name}[] = {{")
    for cp, s in pairs:
        print(f"    {{0x{cp:X}, {c_string(s)}}},")
    print("};\n")


TYPES = """struct CodePointRange {
  char32_t first, last;
  uint8_t value;
};
struct CodePointString {
  char32_t cp;
  const char* utf8;
};
struct NamedString {
  const char* name;
  const char* utf8;
};
struct CodePointLower {
  char32_t cp;
  char32_t lower[3];  // zero-terminated when shorter
};
struct CodePointDecomposition {
  char32_t cp;
  char32_t nfd[4];  // zero-terminated when shorter
};
struct CodePointComposition {
  char32_t first, second, composed;
};
"""


def main():
    # --- The pre-tokenizer (regex module, open_clip's flags). ---------------
    letter = regex.compile(r"[\p{L}]", regex.IGNORECASE)
    number = regex.compile(r"[\p{N}]", regex.IGNORECASE)
    other = regex.compile(r"[^\s\p{L}\p{N}]", regex.IGNORECASE)

    def token_class(cp):
        ch = chr(cp)
        return ((1 if letter.match(ch) else 0) | (2 if number.match(ch) else 0) |
                (4 if other.match(ch) else 0))

    token_classes = ranges_of(token_class)

    # Characters other than the pattern's own letters that IGNORECASE lets the
    # literal alternatives ('s, 't, ..., <start_of_text>) match.
    literal_letters = sorted(set("stremvldaofxn"))
    alternates = []
    for ch in literal_letters:
        pat = regex.compile(regex.escape(ch), regex.IGNORECASE)
        for cp in code_points():
            if chr(cp) != ch and pat.match(chr(cp)):
                alternates.append((ord(ch), cp))

    # --- Python str methods and unicodedata. ---------------------------------
    py_space = ranges_of(lambda cp: 1 if chr(cp).isspace() else 0)
    re_digit_pat = stdlib_re.compile(r"\d")
    re_digit = ranges_of(lambda cp: 1 if re_digit_pat.match(chr(cp)) else 0)

    lower = []
    max_lower = 0
    for cp in code_points():
        if cp == 0x3A3:
            continue  # GREEK CAPITAL SIGMA: Final_Sigma, handled in code
        lo = chr(cp).lower()
        if lo != chr(cp):
            lower.append((cp, lo))
            max_lower = max(max_lower, len(lo))

    # Final_Sigma (CPython's handle_capital_sigma): Case_Ignorable characters
    # are skipped, then the next character decides by being Cased. Probe both
    # properties through str.lower() itself: after "A\u03a3", x is
    # Case_Ignorable iff "A\u03a3" + x + "A" is not final while
    # "A\u03a3" + x is; x (not ignorable) is Cased iff "A\u03a3" + x is not final.
    def sigma_class(cp):
        x = chr(cp)
        final1 = ("A\u03a3" + x).lower()[1] == "\u03c2"
        final2 = ("A\u03a3" + x + "A").lower()[1] == "\u03c2"
        if final1 and not final2:
            return 1  # Case_Ignorable
        if not final1 and not final2:
            return 2  # Cased, not Case_Ignorable
        return 0

    sigma = ranges_of(sigma_class)

    ccc = ranges_of(lambda cp: unicodedata.combining(chr(cp)))
    decomp = []
    max_decomp = 0
    for cp in code_points():
        if 0xAC00 <= cp <= 0xD7A3:
            continue  # Hangul syllables: algorithmic
        d = unicodedata.normalize("NFD", chr(cp))
        if d != chr(cp):
            decomp.append((cp, d))
            max_decomp = max(max_decomp, len(d))
    compose = []
    for cp in code_points():
        if 0xAC00 <= cp <= 0xD7A3:
            continue
        d = unicodedata.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        parts = [int(p, 16) for p in d.split()]
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == chr(cp):
            compose.append((parts[0], parts[1], cp))
    compose.sort()
    assert min(b for _, b, _ in compose) >= 0x300, "NFC quick path assumes this"
    assert all(unicodedata.normalize("NFC", chr(cp)) == chr(cp) and not unicodedata.combining(chr(cp))
               for cp in range(0x300)), "NFC quick path assumes this"

    # --- ftfy.fix_text's per-character fixers. -------------------------------
    def char_map(fn):
        out = []
        for cp in code_points():
            r = fn(chr(cp))
            if r != chr(cp):
                out.append((cp, r))
        return out

    c1 = char_map(ftfy.fixes.fix_c1_controls)
    ligatures = char_map(ftfy.fixes.fix_latin_ligatures)
    width = char_map(ftfy.fixes.fix_character_width)
    quotes = char_map(ftfy.fixes.uncurl_quotes)
    removed = ranges_of(lambda cp: 1 if ftfy.fixes.remove_control_chars(chr(cp)) == "" else 0)
    assert all(ftfy.fixes.remove_control_chars(chr(cp)) in ("", chr(cp)) for cp in code_points())

    ftfy_entities = sorted(ftfy.chardata.HTML_ENTITIES.items(), key=lambda kv: kv[0].encode())
    html5 = sorted(html.entities.html5.items(), key=lambda kv: kv[0].encode())
    invalid_charrefs = sorted(html._invalid_charrefs.items())
    invalid_codepoints = ranges_of(lambda cp: 1 if cp in html._invalid_codepoints else 0)
    assert all(cp < MAX_CP for cp in html._invalid_codepoints)

    # --- Output. --------------------------------------------------------------
    # The regex module's Unicode version, as its package description states it.
    found = re_unicode.search(importlib.metadata.metadata("regex").get_payload() or "")
    regex_unicode = found.group(1) if found else "unknown"
    print("// Generated by tools/gen_clip_tokenizer_tables.py, do not edit.")
    print("//")
    print(f"// Python {sys.version.split()[0]}: unicodedata {unicodedata.unidata_version} "
          "(str.isspace, str.lower, NFC, re's \\d, html).")
    print(f"// regex {regex.__version__}: pre-tokenizer classes (its own tables, Unicode {regex_unicode}).")
    print(f"// ftfy {ftfy.__version__}: fix_text's character fixers and HTML entities.")
    print("// clang-format off")
    print("#pragma once\n")
    print("#include <cstdint>\n")
    print("namespace lookalike {")
    print("namespace clip_tables {\n")
    print(TYPES)
    print(f'constexpr char kUnicodeDataVersion[] = "{unicodedata.unidata_version}";')
    print(f'constexpr char kRegexVersion[] = "{regex.__version__}";')
    print(f'constexpr char kRegexUnicodeVersion[] = "{regex_unicode}";')
    print(f'constexpr char kFtfyVersion[] = "{ftfy.__version__}";\n')
    emit_ranges("kTokenClass", token_classes,
                "open_clip's [\\p{L}] (1), [\\p{N}] (2), [^\\s\\p{L}\\p{N}] (4), IGNORECASE.")
    print("// (pattern letter, another code point IGNORECASE matches it with).")
    print("constexpr char32_t kLiteralAlternates[][2] = {")
    for a, b in alternates:
        print(f"    {{0x{a:X}, 0x{b:X}}},")
    print("};\n")
    emit_ranges("kPythonSpace", py_space, "str.isspace() (str.split, str.strip).")
    emit_ranges("kReDigit", re_digit, "The re module's \\d (Unicode decimal digits).")
    print(f"constexpr int kMaxLower = {max_lower};")
    print("// str.lower() of every code point it changes, U+03A3 excepted (Final_Sigma).")
    print("constexpr CodePointLower kLower[] = {")
    for cp, lo in lower:
        cps = ", ".join(f"0x{ord(c):X}" for c in lo)
        print(f"    {{0x{cp:X}, {{{cps}}}}},")
    print("};\n")
    emit_ranges("kSigmaContext", sigma, "Final_Sigma context: 1 Case_Ignorable, 2 Cased (not ignorable).")
    emit_ranges("kCombiningClass", ccc, "Canonical_Combining_Class (non-zero).")
    print(f"constexpr int kMaxDecomposition = {max_decomp};")
    print("// Full canonical decompositions (NFD of one code point), Hangul excepted.")
    print("constexpr CodePointDecomposition kDecomposition[] = {")
    for cp, d in decomp:
        cps = ", ".join(f"0x{ord(c):X}" for c in d)
        print(f"    {{0x{cp:X}, {{{cps}}}}},")
    print("};\n")
    print("// Primary composites: (first, second) -> composed, sorted by (first, second).")
    print("constexpr CodePointComposition kComposition[] = {")
    for a, b, c in compose:
        print(f"    {{0x{a:X}, 0x{b:X}, 0x{c:X}}},")
    print("};\n")
    emit_string_map("kFtfyC1", c1, "ftfy.fixes.fix_c1_controls (sloppy Windows-1252).")
    emit_string_map("kFtfyLigatures", ligatures, "ftfy.fixes.fix_latin_ligatures.")
    emit_string_map("kFtfyWidth", width, "ftfy.fixes.fix_character_width.")
    emit_string_map("kFtfyQuotes", quotes, "ftfy.fixes.uncurl_quotes.")
    emit_ranges("kFtfyRemoved", removed, "ftfy.fixes.remove_control_chars: removed code points.")
    print("// ftfy.chardata.HTML_ENTITIES (\"&name;\" -> text), sorted by name bytes.")
    print("constexpr NamedString kFtfyEntities[] = {")
    for k, v in ftfy_entities:
        print(f"    {{{c_string(k)}, {c_string(v)}}},")
    print("};\n")
    print("// html.entities.html5 (name -> text), sorted by name bytes.")
    print("constexpr NamedString kHtml5Entities[] = {")
    for k, v in html5:
        print(f"    {{{c_string(k)}, {c_string(v)}}},")
    print("};\n")
    emit_string_map("kHtmlInvalidCharrefs", invalid_charrefs, "html._invalid_charrefs.")
    emit_ranges("kHtmlInvalidCodepoints", invalid_codepoints, "html._invalid_codepoints (replaced by nothing).")
    print("}  // namespace clip_tables")
    print("}  // namespace lookalike")
    print("// clang-format on")


if __name__ == "__main__":
    main()
