#!/usr/bin/env python3
"""Writes the CLIP tokenizer parity fixture (tests/models/clip_tokenizer_test.cc).

  .venv/bin/python tools/make_clip_tokenizer_reference.py --out DIR

The reference is open_clip's SimpleTokenizer from the open-clip-torch wheel
pinned in tools/requirements-nodeps.txt. Only open_clip/tokenizer.py is
imported (by path): the package's __init__ needs torch >= 2 and timm >= 1,
the tokenizer needs only ftfy, regex, numpy and torch (any version).

DIR receives:
  bpe_simple_vocab_16e6.txt.gz  the wheel's vocabulary (copied)
  hf/vocab.json, hf/merges.txt  the same vocabulary in Hugging Face's layout
  corpus.tsv                    one string per line, tab-separated:
      hex(UTF-8 text)  hex(cleaned text)  encode ids  tokenize(77) ids  class  ftfy ids
    ids are space-separated; class is "exact", or "mojibake" when ftfy's
    fix_encoding step changes the text (the C++ tokenizer does not reproduce
    that step): then the ids and cleaned text are the reference's with
    fix_text(fix_encoding=False), and the last column holds the reference's
    own ids (for counting the difference); otherwise the last column is "-".
  summary.txt                   key value lines: the reference's speed and
                                the Hugging Face cross-check
With --time-only, only re-times the reference on DIR/corpus.tsv (ctest does so
on every run, so that the C++ test compares speeds measured moments apart).
"""

import argparse
import gzip
import importlib.util
import json
import os
import random
import shutil
import sys
import time
import unicodedata


def load_reference_module():
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_clip (open-clip-torch) is not installed")
    root = spec.submodule_search_locations[0]
    path = os.path.join(root, "tokenizer.py")
    mod_spec = importlib.util.spec_from_file_location("open_clip_tokenizer_reference", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module, os.path.join(root, "bpe_simple_vocab_16e6.txt.gz")


# ---------------------------------------------------------------------------
# The corpus: hand-picked cases plus seeded random strings of each class.
# ---------------------------------------------------------------------------

HAND = [
    "", " ", "   \t\n  ", "a photo of a cat", "A PHOTO OF A DOG.", "a diagram", "Hello, World!",
    "it's a dog's life, isn't it? we'll see; they'd've", "IT'S", "'S 'T 'RE 'VE 'M 'LL 'D", "''s",
    "rock'n'roll", "o'clock", "'", "'''", "3.14159", "1,000,000 dollars", "2024-05-17T12:00:00Z",
    "<start_of_text>", "<end_of_text>", "a<start_of_text>b<end_of_text>c", "<START_OF_TEXT>",
    "<|startoftext|>", "<|endoftext|>", "<ſtart_of_text>", "'ſ", "ſ", "ﬅ ﬆ ﬁ ﬂ ﬀ ﬃ ﬄ Ĳ ĳ ǅ",
    "café", "cafe\u0301", "Ångström", "A\u030a", "naïve résumé", "Straße STRASSE ẞ", "İstanbul ıi",
    "ΟΔΟΣ Σ ΣΑ ὈΔΥΣΣΕΎΣ", "Σ.", "AΣ'", "ΑΣ\u0301", "日本語のテキスト", "中文测试：你好，世界！", "한국어 텍스트",
    "\u1100\u1161\u11a8", "ｈｅｌｌｏ　ｗｏｒｌｄ！", "ﾊﾝｶｸ ｶﾀｶﾅ", "😀 😃 😄 👍🏽 👨‍👩‍👧‍👦 🇯🇵 🏳️‍🌈",
    "I ❤️ NY", "x² + y³ = z⁴", "½ ¼ ¾ ⅓", "Ⅻ ⅻ ① ⑳", "٣ ٤ ٥ १२३ 𝟙𝟚𝟛", "𝒥ohn ℋancock 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "&amp; &lt; &gt; &quot; &#39; &#x27; &nbsp; &copy; &hellip;", "&amp;amp;lt;", "AT&T", "&notit;",
    "&NTILDE; &EACUTE;", "&#0; &#13; &#128; &#x110000; &#xD800; &#65; &#x41g;", "&#59;", "&bogus;",
    "<b>bold</b> &amp; done", "line one &amp;\n<tag> &amp;\nthird &amp;", "&ampx &ltfoo &copy2",
    "“curly” ‘quotes’ „low‟ ‚single‛ ʼ", "em—dash en–dash … ellipsis", "\x85 \x80 \x9f \x81",
    "tab\there", "cr\rlf\r\nls\u2028ps\u2029nel", "nbsp\u00a0here", "\u3000ideographic\u3000space",
    "zero\u200bwidth\u200cnon\u200djoiner", "\ufeffbom", "soft\u00adhyphen", "\x1b[31mred\x1b[0m",
    "\x1b[1;2;3Hx", "\x1b[12", "ctrl\x00\x01\x07\x08\x0b\x0c\x0e\x1f\x7f", "\u206a\u206f\ufff9\ufffc",
    "\x1c\x1d\x1e\x1f separators", "RTL \u202eevil\u202c", "עברית العربية", "ไทย ภาษา", "हिन्दी",
    "Ελληνικά Русский Українська", "Tiếng Việt có dấu", "ÅÄÖ åäö", "Æ Ø Œ œ ð þ", "µ ß ſ K Å Ω",
    "e\u0301\u0301\u0327", "q\u0307\u0323", "\u0301 leading mark", "a\u0345\u0301", "ǰ\u0323",
    "$100 €50 £30 ¥1000 ₹500", "C++ / C# / F#", "foo@bar.com http://example.com/a?b=c&d=e#f",
    "#hashtag @mention", "snake_case camelCase kebab-case", "!!!???...", "((((nested))))",
    "a" * 300, "ab " * 100, "supercalifragilisticexpialidocious" * 5, "🙂" * 50,
    "𠜎𠜱𠝹𠱓 𪚥", "\U000e0067\U000e0062 tags", "\U0010fffd \uffff \ufdd0 \U0001fffe", "\ue000 private",
    "\u00c3\u00a9t\u00c3\u00a9", "Ã©tÃ©", "ÃƒÂ©", "sÃ³", "voilÃ le travail", "â€œquotedâ€\x9d",
]

ASCII_WORDS = (
    "a the of and photo picture image cat dog car tree house red blue green big small old new two three "
    "man woman child running sitting on in under over with near beach mountain city street night day "
    "sunset forest river bird flower table chair computer phone book person people group playing ball "
    "black white yellow wooden metal glass painting drawing sketch render 3d close-up aerial view of"
).split()
ACCENTED = "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿāăąćčďđēėęěğīįıłńňőœřśşšťūůűųźżž ÀÉÎÕÜÇÑŁŠŽ"
SCRIPTS = [
    "你好世界中文图片猫狗汽车山水城市夜晚",  # CJK
    "こんにちは世界ねこいぬカタカナひらがな",  # Japanese
    "안녕하세요세계고양이강아지사진",  # Hangul
    "Привет мир кошка собака фото ЁЖЗ",  # Cyrillic
    "Γειά σου κόσμε γάτα σκύλος ΣΟΦΙΑ",  # Greek
    "مرحبا بالعالم قطة كلب صورة",  # Arabic
    "שלום עולם חתול כלב",  # Hebrew
    "नमस्ते दुनिया बिल्ली कुत्ता",  # Devanagari
    "สวัสดีชาวโลกแมวหมา",  # Thai
    "ሰላም ዓለም",  # Ethiopic
    "ᚠᚢᚦᚨᚱᚲ",  # Runic
]
EMOJI = ["😀", "🐱", "🐶", "🚗", "🌅", "👍", "👍🏻", "👩‍💻", "❤️", "🇫🇷", "🏳️‍⚧️", "✨", "🔥", "🎉", "🤖", "🧑‍🤝‍🧑"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["…", "—", "–", "«", "»", "¿", "¡", "·", "•", "§", "¶", "†", "‰"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2009", "\u3000", "\u200b", "\u2028", "\x0b", "\x0c", "\x1c", "\u1680", "\u202f"]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&nbsp;", "&copy;", "&eacute;", "&#233;", "&#xe9;",
            "&hearts;", "&amp", "&lt", "&rarr;", "&EACUTE;", "&#8220;", "&#x1F600;", "&#9999999;", "&amp;amp;"]


def random_code_point(rng):
    """Any assigned-or-not code point but surrogates, biased to the BMP."""
    while True:
        r = rng.random()
        if r < 0.3:
            cp = rng.randrange(0x20, 0x250)
        elif r < 0.8:
            cp = rng.randrange(0x250, 0x10000)
        else:
            cp = rng.randrange(0x10000, 0x110000)
        if not 0xD800 <= cp < 0xE000:
            return chr(cp)


def make_corpus(seed, per_class):
    rng = random.Random(seed)
    out = list(HAND)

    def words(n, pool):
        return [rng.choice(pool) for _ in range(n)]

    for _ in range(per_class):  # ASCII sentences with case and punctuation
        w = words(rng.randint(1, 15), ASCII_WORDS)
        s = " ".join(x.upper() if rng.random() < 0.1 else (x.capitalize() if rng.random() < 0.2 else x) for x in w)
        out.append(s + rng.choice(["", ".", "!", "?", "...", " :)"]))
    for _ in range(per_class):  # punctuation, numbers, contractions
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.3:
                parts.append("".join(words(rng.randint(1, 4), PUNCT)))
            elif r < 0.6:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
            elif r < 0.8:
                parts.append(rng.choice(ASCII_WORDS) + rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'x"]))
            else:
                parts.append(rng.choice(ASCII_WORDS))
        out.append(rng.choice(["", " "]).join(parts))
    for _ in range(per_class):  # accents, composed and decomposed
        w = []
        for _ in range(rng.randint(1, 8)):
            word = "".join(rng.choice(ACCENTED + "abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9)))
            form = rng.choice(["NFC", "NFD", "NFKD", None])
            w.append(unicodedata.normalize(form, word) if form else word)
        out.append(" ".join(w))
    for _ in range(per_class):  # scripts, mixed
        n = rng.randint(1, 6)
        segs = []
        for _ in range(n):
            src = rng.choice(SCRIPTS + [" ".join(ASCII_WORDS)])
            a = rng.randrange(len(src))
            segs.append(src[a:a + rng.randint(1, 12)])
        out.append(rng.choice(["", " "]).join(segs))
    for _ in range(per_class):  # emoji and symbols
        segs = words(rng.randint(1, 8), EMOJI + ASCII_WORDS + ["★", "☃", "♥", "→", "∑", "√", "∞", "©", "®", "™"])
        out.append(rng.choice(["", " "]).join(segs))
    for _ in range(per_class):  # whitespace oddities
        segs = []
        for _ in range(rng.randint(1, 8)):
            segs.append(rng.choice(ASCII_WORDS + SCRIPTS[:2]))
            segs.append("".join(words(rng.randint(1, 3), SPACES)))
        out.append("".join(segs))
    for _ in range(per_class):  # HTML entities, curly quotes, ligatures, widths, controls
        pool = ENTITIES + ["“", "”", "‘", "’", "ﬁ", "ﬂ", "Ａ", "ｂ", "１", "ｶ", "\x1b[0m", "\x00", "\x7f", "\x85", "\x93", "<p>"]
        segs = [rng.choice(pool) if rng.random() < 0.4 else rng.choice(ASCII_WORDS) for _ in range(rng.randint(1, 10))]
        out.append(rng.choice(["", " "]).join(segs))
    for _ in range(per_class // 2):  # long: well past 77 tokens
        w = words(rng.randint(80, 400), ASCII_WORDS + EMOJI + [s[:3] for s in SCRIPTS])
        out.append(" ".join(w))
    for _ in range(per_class // 2):  # BPE stress: long runs over small alphabets, repeats
        alphabet = rng.choice(["ab", "lo", "erst", "aeiou", "ss", "thn", "ing", "xyz", "ée", "あい"])
        if rng.random() < 0.5:
            word = "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 300)))
        else:
            word = rng.choice(ASCII_WORDS + ["ab", "ll", "ing", "tion", "ss"]) * rng.randint(2, 60)
        out.append(word if rng.random() < 0.7 else word.upper())
    for _ in range(per_class):  # code point soup (all planes)
        out.append("".join(random_code_point(rng) for _ in range(rng.randint(1, 20))))
    for _ in range(per_class // 2):  # Latin-1 / Windows-1252 soup (mojibake look-alikes)
        out.append("".join(chr(rng.choice(list(range(0x20, 0x7F)) + list(range(0xA0, 0x100)) + [0x152, 0x153, 0x160, 0x161, 0x178, 0x2013, 0x2014, 0x2018, 0x2019, 0x201C, 0x201D, 0x20AC, 0x2122]))
                           for _ in range(rng.randint(1, 16))))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20240517)
    ap.add_argument("--per-class", type=int, default=400)
    ap.add_argument("--time-only", action="store_true",
                    help="only re-time the reference on DIR/corpus.tsv (updates summary.txt)")
    args = ap.parse_args()

    ref, bpe_path = load_reference_module()
    import ftfy  # the reference's own

    def time_reference(corpus):
        """Tokens and seconds of one pass over the corpus with a fresh
        tokenizer (its word cache empty), best of three, as the C++ test
        times itself."""
        seconds = float("inf")
        for _ in range(3):
            timed = ref.SimpleTokenizer(bpe_path)
            t0 = time.perf_counter()
            n_tokens = sum(len(timed.encode(s)) for s in corpus)
            seconds = min(seconds, time.perf_counter() - t0)
        return n_tokens, seconds

    summary_path = os.path.join(args.out, "summary.txt")
    if args.time_only:
        with open(os.path.join(args.out, "corpus.tsv")) as f:
            corpus = [bytes.fromhex(line.split("\t")[0]).decode("utf-8") for line in f if line.strip()]
        n_tokens, seconds = time_reference(corpus)
        with open(summary_path) as f:
            kept = [line for line in f if not line.startswith(("python_tokens ", "python_seconds "))]
        with open(summary_path, "w") as f:
            f.write("".join(kept) + f"python_tokens {n_tokens}\npython_seconds {seconds:.6f}\n")
        print(f"reference {n_tokens / seconds:.0f} tokens/s")
        return

    os.makedirs(os.path.join(args.out, "hf"), exist_ok=True)
    shutil.copyfile(bpe_path, os.path.join(args.out, "bpe_simple_vocab_16e6.txt.gz"))

    tok = ref.SimpleTokenizer(bpe_path)
    corpus = make_corpus(args.seed, args.per_class)

    n_tokens, seconds = time_reference(corpus)

    # The same tokenizer with ftfy's fix_encoding step turned off.
    real_fix_text = ftfy.fix_text

    def encode_without_fix_encoding(s):
        ref.ftfy.fix_text = lambda t: real_fix_text(t, fix_encoding=False)
        try:
            return tok.encode(s), ref._clean_lower(s)
        finally:
            ref.ftfy.fix_text = real_fix_text

    rows = []
    n_mojibake = 0
    for s in corpus:
        ids = tok.encode(s)
        clean = ref._clean_lower(s)
        tokenized = tok(s)[0].tolist()
        cls, own = "exact", "-"
        if real_fix_text(s) != real_fix_text(s, fix_encoding=False):
            nofix_ids, nofix_clean = encode_without_fix_encoding(s)
            if nofix_ids != ids or nofix_clean != clean:
                cls, own = "mojibake", " ".join(map(str, ids))
                n_mojibake += 1
                ids, clean = nofix_ids, nofix_clean
                tokenized = ([tok.sot_token_id] + ids + [tok.eot_token_id])[:77]
                tokenized[-1] = tok.eot_token_id
                tokenized += [0] * (77 - len(tokenized))
        rows.append("\t".join([s.encode("utf-8").hex(), clean.encode("utf-8").hex(),
                               " ".join(map(str, ids)), " ".join(map(str, tokenized)), cls, own]))
    with open(os.path.join(args.out, "corpus.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")

    # Hugging Face layout of the same vocabulary, and transformers'
    # CLIPTokenizer (the slow one, which uses ftfy too) as a cross-check.
    vocab = {}
    for token, i in tok.encoder.items():
        token = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}.get(token, token)
        vocab[token] = i
    with open(os.path.join(args.out, "hf", "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    with open(os.path.join(args.out, "hf", "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    hf_line = "hf_checked 0\nhf_agree 0\nhf_note transformers not importable"
    try:
        import transformers
        hf = transformers.CLIPTokenizer(os.path.join(args.out, "hf", "vocab.json"),
                                        os.path.join(args.out, "hf", "merges.txt"))
        # HF's clean-up has no html.unescape and its special tokens are
        # spelled <|...|>: compare where neither matters.
        checked = agree = 0
        for s in corpus:
            if "&" in s or "<" in s:
                continue
            checked += 1
            agree += hf.encode(s, add_special_tokens=False) == tok.encode(s)
        hf_line = f"hf_checked {checked}\nhf_agree {agree}\nhf_note transformers {transformers.__version__} CLIPTokenizer (slow)"
    except ImportError as e:
        print(f"transformers cross-check skipped: {e}", file=sys.stderr)

    with open(summary_path, "w") as f:
        f.write(f"strings {len(corpus)}\nmojibake {n_mojibake}\n"
                f"python_tokens {n_tokens}\npython_seconds {seconds:.6f}\n{hf_line}\n")
    print(f"{len(corpus)} strings ({n_mojibake} mojibake), reference {n_tokens / seconds:.0f} tokens/s")


if __name__ == "__main__":
    main()
