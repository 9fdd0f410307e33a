// libFuzzer target: the CLIP tokenizer on arbitrary bytes (UTF-8 validation,
// clean-up, pre-tokenization, BPE). The vocabulary is CLIP's when
// LOOKALIKE_CLIP_VOCAB names bpe_simple_vocab_16e6.txt.gz, else a small
// merges file written here (same code paths, fewer merges). Contract checked:
// no crash; Tokenize returns exactly the context length with the end token
// present, or INVALID_ARGUMENT.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "models/clip_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const lookalike::ClipTokenizer& Tokenizer() {
  static const lookalike::ClipTokenizer tokenizer = [] {
    std::string path;
    if (const char* vocab = std::getenv("LOOKALIKE_CLIP_VOCAB"); vocab && *vocab) {
      path = vocab;
    } else {
      const std::string merges =
          "#version: 0.2\nt h\nth e</w>\na n\nan d</w>\ni n\nin g</w>\no n\nc a\nca t</w>\n"
          "d o\ndo g</w>\nr e\ne d</w>\n";
      path = lookalike::fuzz::WriteInput(reinterpret_cast<const uint8_t*>(merges.data()),
                                         merges.size(), ".bpe.txt");
    }
    auto loaded = lookalike::ClipTokenizer::Load(path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "fuzz_clip_tokenizer: %s\n", loaded.status().ToString().c_str());
      std::abort();
    }
    return std::move(*loaded);
  }();
  return tokenizer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const lookalike::ClipTokenizer& tok = Tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ids = tok.Tokenize(text);
  if (!ids.ok()) {
    if (ids.status().code() != lookalike::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  if (ids->size() != static_cast<size_t>(lookalike::ClipTokenizer::kDefaultContextLength)) {
    __builtin_trap();
  }
  if (std::find(ids->begin(), ids->end(), tok.end_token()) == ids->end()) __builtin_trap();
  for (int32_t id : *ids) {
    if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
  }
  return 0;
}
