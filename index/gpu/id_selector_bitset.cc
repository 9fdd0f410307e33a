#include "index/gpu/id_selector_bitset.h"

namespace lookalike {
namespace {

template <typename Pred>
std::vector<uint32_t> Build(const int64_t* row_labels, int64_t rows, const Pred& pred) {
  std::vector<uint32_t> bits(static_cast<size_t>((rows + 31) / 32), 0u);
  for (int64_t r = 0; r < rows; ++r) {
    if (pred(row_labels[r])) bits[r >> 5] |= 1u << (r & 31);
  }
  return bits;
}

}  // namespace

std::vector<uint32_t> RowBitsetFromSelector(const faiss::IDSelector& sel, const int64_t* row_labels,
                                            int64_t rows) {
  if (const auto* range = dynamic_cast<const faiss::IDSelectorRange*>(&sel)) {
    const int64_t lo = range->imin;
    const int64_t hi = range->imax;
    return Build(row_labels, rows, [lo, hi](int64_t id) { return id >= lo && id < hi; });
  }
  if (const auto* bitmap = dynamic_cast<const faiss::IDSelectorBitmap*>(&sel)) {
    const uint8_t* map = bitmap->bitmap;
    const int64_t n = static_cast<int64_t>(bitmap->n);
    return Build(row_labels, rows, [map, n](int64_t id) {
      return id >= 0 && (id >> 3) < n && ((map[id >> 3] >> (id & 7)) & 1) != 0;
    });
  }
  return Build(row_labels, rows, [&sel](int64_t id) { return sel.is_member(id); });
}

}  // namespace lookalike
