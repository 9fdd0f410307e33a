// Converts a faiss::IDSelector into a GpuFlatStore row allow-set.
// CPU only (needs FAISS headers, no CUDA): testable without a device.
#pragma once

#include <faiss/impl/IDSelector.h>

#include <cstdint>
#include <vector>

namespace lookalike {

// row_labels: `rows` labels, one per store row (GpuFlatStore::RowLabels()).
// Returns ceil(rows / 32) words: bit (r % 32) of word r / 32 is set iff
// sel.is_member(row_labels[r]). IDSelectorRange and IDSelectorBitmap are
// evaluated inline; any other selector through is_member (so IndexIDMap's
// translated selectors work too).
std::vector<uint32_t> RowBitsetFromSelector(const faiss::IDSelector& sel, const int64_t* row_labels,
                                            int64_t rows);

}  // namespace lookalike
