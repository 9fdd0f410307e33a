// ClipTokenizer: CLIP's byte-level BPE text tokenizer, id for id the
// reference open_clip.tokenizer.SimpleTokenizer (open-clip-torch 3.3.0, the
// tokenizer OpenAI's CLIP and OpenCLIP models were trained with).
//
//   ASSIGN_OR_RETURN(auto tokenizer, ClipTokenizer::Load(path));
//   ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Tokenize("a photo of a cat"));
//   // ids.size() == 77: 49406 320 1125 539 320 2368 49407 0 0 ...
//
// Vocabulary and merges are read from a file, never downloaded:
//   * OpenCLIP's `bpe_simple_vocab_16e6.txt.gz` (shipped in the open-clip-torch
//     wheel; plain or gzip-compressed), or
//   * a Hugging Face checkpoint's `vocab.json` + `merges.txt` (pass the
//     directory or either file; the other is read from the same directory).
//
// Encoding follows the reference exactly:
//   1. clean-up: ftfy.fix_text (see below), html.unescape twice, strip,
//      whitespace runs -> one space (Python's str.split), str.lower();
//   2. pre-tokenization with open_clip's pattern (IGNORECASE)
//        <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//      (text spelling "<start_of_text>" / "<end_of_text>" yields those special
//      ids, as in the reference, whatever the vocabulary file calls them);
//   3. byte-level BPE of each piece's UTF-8 bytes with the merge ranks.
// The Unicode tables (models/clip_tokenizer_tables.h, generated from the
// reference's Python stack by tools/gen_clip_tokenizer_tables.py) state their
// versions: str.lower/isspace/NFC follow the unicodedata of the Python that
// generated them, the letter/number classes follow the `regex` module's.
//
// Difference from the reference: of ftfy.fix_text's steps, the mojibake
// repair (`fix_encoding`: re-decoding text that its badness heuristic judges
// to be UTF-8 misread as Latin-1/Windows-125x/MacRoman) is not reproduced.
// Every other step is: HTML entities (unless the line holds '<'), C1
// controls as Windows-1252, Latin ligatures, full/half width forms, curly
// quotes, line breaks, ANSI terminal escapes, control characters, NFC, repeated
// to a fixed point per line as ftfy does. Text that ftfy judges to be mojibake
// is tokenized as ftfy.fix_text(text, fix_encoding=False) would leave it.
// Two more, where the reference fails rather than answers: a numeric
// character reference of more than 4300 digits ("&#111...;") makes its
// html.unescape raise ValueError (Python's int-conversion limit), here it
// decodes as out of range (U+FFFD); and its BPE is quadratic in the length of
// one piece (a 1 MB run of letters takes hours), here O(n log n) with the
// same merge order.
//
// Thread-safe: all methods are const; the BPE results of short pieces are
// kept in a bounded cache (sharded, each shard under its own mutex), shared
// by copies of the tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace lookalike {

class ClipTokenizer {
 public:
  // CLIP's context length: every CLIP text tower takes 77 positions.
  static constexpr int kDefaultContextLength = 77;

  // Reads a vocabulary (see above). Errors: NOT_FOUND for a missing file,
  // DATA_LOSS for a malformed one (unreadable gzip, bad JSON, a merge whose
  // parts are not in the vocabulary, no start/end token).
  static StatusOr<ClipTokenizer> Load(const std::string& path);

  // The ids of `utf8` without start/end tokens and without truncation
  // (open_clip's SimpleTokenizer.encode). Invalid UTF-8 (overlong forms,
  // surrogates, code points above U+10FFFF, truncated sequences) is
  // INVALID_ARGUMENT naming the byte offset.
  StatusOr<std::vector<int32_t>> Encode(std::string_view utf8) const;

  // The model input for one text (open_clip's SimpleTokenizer.__call__):
  // exactly `context_length` ids = start token, Encode(utf8), end token,
  // truncated to `context_length` with the end token written into the last
  // position (the end token is always present), then padded with 0.
  // Pooling rule: the end token has the largest id of the vocabulary, so its
  // position is argmax(ids) (CLIP's text pooling), the first one if the text
  // itself spelled "<end_of_text>". context_length must be >= 1.
  StatusOr<std::vector<int32_t>> Tokenize(std::string_view utf8,
                                          int context_length = kDefaultContextLength) const;

  // Step 1 alone (clean-up), as UTF-8: open_clip's _clean_lower. For tests
  // and diagnostics.
  static StatusOr<std::string> CleanText(std::string_view utf8);

  int32_t start_token() const { return start_token_; }
  int32_t end_token() const { return end_token_; }
  // Number of ids (49408 for CLIP's vocabulary).
  int32_t vocab_size() const { return vocab_size_; }

 private:
  ClipTokenizer() = default;
  // Appends the BPE ids of one pre-tokenized piece (its UTF-8 bytes).
  void AppendPieceIds(std::string_view piece, std::vector<int32_t>* ids) const;
  void AppendPieceIdsUncached(std::string_view piece, std::vector<int32_t>* ids) const;

  struct Merge {
    int32_t rank;
    int32_t merged;  // id of the concatenated symbol
  };
  // (left id << 32 | right id) -> merge.
  std::unordered_map<uint64_t, Merge> merges_;
  class PieceCache;
  std::shared_ptr<PieceCache> cache_;
  int32_t byte_id_[256] = {};      // the byte's symbol inside a word
  int32_t byte_end_id_[256] = {};  // the byte's symbol ending a word ("</w>")
  int32_t start_token_ = -1;
  int32_t end_token_ = -1;
  int32_t vocab_size_ = 0;
};

}  // namespace lookalike
