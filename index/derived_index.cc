#include "index/derived_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "index/cpu_index_flat.h"
#include "index/snapshot.h"

namespace lookalike {
namespace {

constexpr uint32_t kSnapshotFormat = 1;  // the payload layout below
constexpr int64_t kMinTrainOther = 1000;

template <typename T>
void Append(std::vector<uint8_t>* out, const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out->insert(out->end(), p, p + sizeof(T));
}

// Bounds-checked reader over a snapshot payload.
class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <typename T>
  bool Read(T* value) {
    if (n_ - pos_ < sizeof(T)) return false;
    std::memcpy(value, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool ReadBytes(void* out, size_t n) {
    if (n_ - pos_ < n) return false;
    if (n == 0) return true;  // out may be null (an empty vector's data())
    std::memcpy(out, p_ + pos_, n);
    pos_ += n;
    return true;
  }
  bool Skip(uint64_t n) {
    if (n_ - pos_ < n) return false;
    pos_ += static_cast<size_t>(n);
    return true;
  }
  size_t pos() const { return pos_; }
  size_t left() const { return n_ - pos_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

int64_t MinTrain(const faiss::Index* index) {
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    return std::max<int64_t>(1, 39 * static_cast<int64_t>(ivf->nlist));
  }
  return kMinTrainOther;
}

// Default probes: enough for good recall on small lists; filtered searches
// probe every list (see SearchImpl).
void SetDefaultNprobe(faiss::Index* index) {
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index)) {
    ivf->nprobe = std::min<size_t>(ivf->nlist, std::max<size_t>(8, ivf->nlist / 8));
  }
}

// FAISS' read_index sizes each vector from a length field in the body and
// allocates it before reading it, so a forged length (a snapshot whose
// checksum matches a corrupt body, or one written by a FAISS whose layout
// differs) asks for up to 1 TiB (found by fuzz_snapshot); it takes graph
// links and list ids as they come, which searches then follow; and it derives
// quantizer sizes from fields it does not check (a PQ with M = 0 divides by
// zero, a PQ or SQ whose table is shorter than its sizes say is read past its
// end). The bodies the project writes are therefore walked here before
// read_index, after the layout of faiss/impl/index_write.cpp (FAISS 1.7.3):
//   index header   d, ntotal, two reserved int64, is_trained (a bool byte),
//                  metric_type, metric_arg when metric_type > 1
//   flat (IxF2, IxFI, IxFl)  header, codes: a length (in floats or bytes by
//                  FAISS version) then ntotal * d floats
//   PQ             d, M, nbits (size_t each), centroids: M * 2^nbits * d / M
//                  floats; code size (nbits * M + 7) / 8 bytes
//   SQ             qtype, rangestat (int enums), rangestat_arg (float), d,
//                  code_size (size_t), trained (floats: 2 * d for the
//                  per-dimension types 8bit/4bit/6bit, 2 for the uniform ones,
//                  none for fp16 and 8bit_direct)
//   SQ index (IxSQ)  header, SQ, codes (ntotal * code_size bytes)
//   PQ index (IxPq)  header, PQ, codes (ntotal * code_size bytes),
//                  search_type (int enum), encode_signs (bool), polysemous_ht
//   IVF (IwFl, IwSq, IwPQ)  header, nlist, nprobe, the coarse quantizer (a
//                  flat index of nlist centroids), the direct map (type byte,
//                  an int64 array, for type 2 a pair table), then by type:
//                    IwFl  nothing (code size d floats)
//                    IwSq  SQ, code_size, by_residual (bool)
//                    IwPQ  by_residual (bool), code_size, PQ
//                  then the inverted lists: "ilar", nlist, code_size, "full" +
//                  nlist sizes or "sprs" + (list, size) pairs, then per list
//                  its codes and its ids
//   HNSW (IHNf, IHNs, IHNp)  header, assign_probas (double),
//                  cum_nneighbor_per_level (int), levels (int, one per
//                  vector), offsets (size_t, ntotal + 1), neighbors (int),
//                  entry_point, max_level, efConstruction, efSearch,
//                  upper_beam, then the storage of the ntotal vectors: a flat,
//                  SQ or PQ index respectively
// Checked: every length fits the bytes that follow; sizes agree with each
// other (list sizes sum to ntotal, list ids are slots of the table, offsets
// rise to the neighbour count, each vector's links match its level, links
// and the entry point name vectors that exist); quantizers match the index
// (dim, M dividing d, nbits 1..8 as FAISS' IVF-PQ and HNSW-PQ build them, the
// centroid and trained tables and the code size those imply, the lists' code
// size that one); enum and bool fields hold valid values; a nested index
// (quantizer, storage) is of the type its parent reads it as, with its
// parent's metric; the body ends where the index does. The other index types
// FAISS writes for specs the project accepts (IsUnwalkedIndexType) are not
// walked and go to read_index as before; any other type (read_index also
// reads legacy layouts, which no snapshot the project writes holds) is
// refused.
enum class BodyKind { kFlat, kScalarQuantizer, kProductQuantizer, kIvf, kHnsw, kOther };

struct IndexHeader {
  int32_t d = 0;
  int64_t ntotal = 0;
  int32_t metric_type = 0;
};

// The largest PQ nbits FAISS 1.7.3 builds an IVF-PQ (its constructor) or an
// HNSW-PQ (always 8) with; the HNSW-PQ load builds an M * 4^nbits table.
constexpr uint64_t kMaxPqBits = 8;
// ScalarQuantizer::QuantizerType and RangeStat (faiss/impl/ScalarQuantizer.h).
enum SqType : int32_t {
  kSq8bit,
  kSq4bit,
  kSq8bitUniform,
  kSq4bitUniform,
  kSqFp16,
  kSq8bitDirect,
  kSq6bit,
};
constexpr int32_t kSqRangeStats = 4;
constexpr int32_t kPqSearchTypes = 6;  // IndexPQ::Search_type_t

// Top-level index types FAISS 1.7.3 writes for index specs ClassifyIndex
// accepts whose bodies BodyWalker does not walk: the other IVF codecs
// (FlatDedup, spectral hash, PQ with refinement, PQ fast scan, additive
// quantizers, their fast scan) and HNSW over a two-level storage.
bool IsUnwalkedIndexType(uint32_t fourcc) {
  for (const char* type : {"IwFd", "IwSh", "IwQR", "IwPf", "IwLS", "IwRQ", "IwPL", "IwPR", "IVLf",
                           "IVRf", "NPLf", "NPRf", "IHN2"}) {
    if (fourcc == faiss::fourcc(type)) return true;
  }
  return false;
}

class BodyWalker {
 public:
  BodyWalker(const uint8_t* body, size_t n, uint64_t nslots) : cur_(body, n), nslots_(nslots) {}

  StatusOr<BodyKind> Walk() {
    IndexHeader h;
    auto kind = Index(/*nested=*/false, &h);
    // A top-level flat body is left to read_index past its checked header.
    if (!kind.ok() || *kind == BodyKind::kOther || *kind == BodyKind::kFlat) return kind;
    if (cur_.left() != 0) {
      return DataLossError("index body has " + std::to_string(cur_.left()) +
                           " bytes after the index");
    }
    return kind;
  }

 private:
  static Status Bad(const std::string& what) { return DataLossError("index body: " + what); }

  // A length-prefixed array of `elem`-byte values: its length, checked to
  // fit the bytes that follow; the cursor is left at its first value.
  Status ArrayLength(size_t elem, const char* what, uint64_t* count) {
    if (!cur_.Read(count)) return Bad(std::string(what) + " truncated");
    if (*count > cur_.left() / elem) {
      return Bad(std::string(what) + " claims " + std::to_string(*count) + " values, " +
                 std::to_string(cur_.left()) + " bytes left");
    }
    return Status::Ok();
  }

  template <typename T>
  Status ReadArray(const char* what, std::vector<T>* out) {
    uint64_t count = 0;
    RETURN_IF_ERROR(ArrayLength(sizeof(T), what, &count));
    out->resize(static_cast<size_t>(count));
    if (!cur_.ReadBytes(out->data(), count * sizeof(T)))
      return Bad(std::string(what) + " truncated");
    return Status::Ok();
  }

  // A length-prefixed array of `elem`-byte values that must hold exactly
  // `want` of them; skipped.
  Status SkipArray(size_t elem, const char* what, uint64_t want) {
    uint64_t count = 0;
    RETURN_IF_ERROR(ArrayLength(elem, what, &count));
    if (count != want) {
      return Bad(std::string(what) + " holds " + std::to_string(count) + " values, " +
                 std::to_string(want) + " expected");
    }
    if (!cur_.Skip(count * elem)) return Bad(std::string(what) + " truncated");
    return Status::Ok();
  }

  // A byte FAISS reads as a bool as it is.
  Status Bool(const char* what) {
    uint8_t value = 0;
    if (!cur_.Read(&value)) return Bad(std::string(what) + " truncated");
    if (value > 1) return Bad(std::string(what) + " is " + std::to_string(value) + ", not a bool");
    return Status::Ok();
  }

  Status Header(IndexHeader* h) {
    int64_t reserved = 0;
    uint8_t is_trained = 0;
    float metric_arg = 0;
    if (!cur_.Read(&h->d) || !cur_.Read(&h->ntotal) || !cur_.Read(&reserved) ||
        !cur_.Read(&reserved) || !cur_.Read(&is_trained) || !cur_.Read(&h->metric_type) ||
        (h->metric_type > 1 && !cur_.Read(&metric_arg))) {
      return Bad("index header truncated");
    }
    // is_trained is a bool FAISS reads from the file byte as it is.
    if (h->d <= 0 || h->ntotal < 0 || is_trained > 1) {
      return Bad("index header out of range (d " + std::to_string(h->d) + ", ntotal " +
                 std::to_string(h->ntotal) + ", is_trained " + std::to_string(is_trained) + ")");
    }
    return Status::Ok();
  }

  // The codes of `h->ntotal` vectors of `code_size` bytes: a byte array.
  Status Codes(const char* what, const IndexHeader& h, uint64_t code_size) {
    const uint64_t ntotal = static_cast<uint64_t>(h.ntotal);
    if (code_size != 0 && ntotal > cur_.left() / code_size) {
      return Bad(std::string(what) + " of " + std::to_string(ntotal) + " vectors of " +
                 std::to_string(code_size) + " bytes do not fit the body");
    }
    return SkipArray(1, what, ntotal * code_size);
  }

  // The flat index after its fourcc.
  Status Flat(IndexHeader* h, bool nested) {
    RETURN_IF_ERROR(Header(h));
    uint64_t codes_len = 0;
    if (!cur_.Read(&codes_len)) return Bad("flat index header truncated");
    const uint64_t left = cur_.left();
    if (codes_len > left) {
      return Bad("flat index header does not match its body (d " + std::to_string(h->d) +
                 ", ntotal " + std::to_string(h->ntotal) + ", codes " + std::to_string(codes_len) +
                 " of " + std::to_string(left) + " bytes left)");
    }
    if (!nested) return Status::Ok();  // read_index reads what it needs of the rest
    // Nested, the codes must be exactly the index's vectors to find what follows.
    const uint64_t floats = static_cast<uint64_t>(h->ntotal) * static_cast<uint64_t>(h->d);
    if (static_cast<uint64_t>(h->ntotal) > left || floats > left / sizeof(float)) {
      return Bad("flat index of " + std::to_string(h->ntotal) + " vectors does not fit its body");
    }
    if (codes_len != floats && codes_len != floats * sizeof(float)) {
      return Bad("flat index codes length " + std::to_string(codes_len) + " for " +
                 std::to_string(h->ntotal) + " x " + std::to_string(h->d));
    }
    if (!cur_.Skip(floats * sizeof(float))) return Bad("flat index codes truncated");
    return Status::Ok();
  }

  // A product quantizer for vectors of the index's dim; its code size.
  Status ProductQuantizer(const IndexHeader& h, uint64_t* code_size) {
    uint64_t d = 0, m = 0, nbits = 0;
    if (!cur_.Read(&d) || !cur_.Read(&m) || !cur_.Read(&nbits)) return Bad("PQ truncated");
    if (d != static_cast<uint64_t>(h.d)) {
      return Bad("PQ of dim " + std::to_string(d) + " in an index of dim " + std::to_string(h.d));
    }
    // read_index divides d by M before anything else.
    if (m == 0 || d % m != 0) {
      return Bad("PQ M " + std::to_string(m) + " does not divide dim " + std::to_string(d));
    }
    if (nbits < 1 || nbits > kMaxPqBits) {
      return Bad("PQ nbits " + std::to_string(nbits) + " out of range 1.." +
                 std::to_string(kMaxPqBits));
    }
    // M * 2^nbits centroids of d / M floats.
    RETURN_IF_ERROR(SkipArray(sizeof(float), "PQ centroids", d << nbits));
    *code_size = (nbits * m + 7) / 8;
    return Status::Ok();
  }

  // A scalar quantizer for vectors of the index's dim; its code size.
  Status ScalarQuantizer(const IndexHeader& h, uint64_t* code_size) {
    int32_t qtype = 0, rangestat = 0;
    float rangestat_arg = 0;
    uint64_t d = 0;
    if (!cur_.Read(&qtype) || !cur_.Read(&rangestat) || !cur_.Read(&rangestat_arg) ||
        !cur_.Read(&d) || !cur_.Read(code_size)) {
      return Bad("SQ truncated");
    }
    if (rangestat < 0 || rangestat >= kSqRangeStats) {
      return Bad("SQ range statistic " + std::to_string(rangestat));
    }
    if (d != static_cast<uint64_t>(h.d)) {
      return Bad("SQ of dim " + std::to_string(d) + " in an index of dim " + std::to_string(h.d));
    }
    uint64_t want_code = 0, want_trained = 0;
    switch (qtype) {
      case kSq8bit:
        want_code = d, want_trained = 2 * d;
        break;
      case kSq4bit:
        want_code = (d + 1) / 2, want_trained = 2 * d;
        break;
      case kSq6bit:
        want_code = (d * 6 + 7) / 8, want_trained = 2 * d;
        break;
      case kSq8bitUniform:
        want_code = d, want_trained = 2;
        break;
      case kSq4bitUniform:
        want_code = (d + 1) / 2, want_trained = 2;
        break;
      case kSqFp16:
        want_code = 2 * d, want_trained = 0;
        break;
      case kSq8bitDirect:
        want_code = d, want_trained = 0;
        break;
      default:
        return Bad("SQ quantizer type " + std::to_string(qtype));
    }
    if (*code_size != want_code) {
      return Bad("SQ code size " + std::to_string(*code_size) + " for quantizer type " +
                 std::to_string(qtype) + " of dim " + std::to_string(d) + " (" +
                 std::to_string(want_code) + " expected)");
    }
    return SkipArray(sizeof(float), "SQ trained values", want_trained);
  }

  // The SQ index (IxSQ) after its fourcc.
  Status ScalarQuantizerIndex(IndexHeader* h) {
    RETURN_IF_ERROR(Header(h));
    uint64_t code_size = 0;
    RETURN_IF_ERROR(ScalarQuantizer(*h, &code_size));
    return Codes("SQ index codes", *h, code_size);
  }

  // The PQ index (IxPq) after its fourcc.
  Status ProductQuantizerIndex(IndexHeader* h) {
    RETURN_IF_ERROR(Header(h));
    uint64_t code_size = 0;
    RETURN_IF_ERROR(ProductQuantizer(*h, &code_size));
    RETURN_IF_ERROR(Codes("PQ index codes", *h, code_size));
    int32_t search_type = 0, polysemous_ht = 0;
    if (!cur_.Read(&search_type)) return Bad("PQ index search type truncated");
    if (search_type < 0 || search_type >= kPqSearchTypes) {
      return Bad("PQ index search type " + std::to_string(search_type));
    }
    RETURN_IF_ERROR(Bool("PQ index encode_signs"));
    if (!cur_.Read(&polysemous_ht)) return Bad("PQ index polysemous_ht truncated");
    return Status::Ok();
  }

  // An index nested in `parent` (an IVF quantizer, an HNSW storage), which
  // reads it as `want`.
  Status Nested(BodyKind want, const IndexHeader& parent, const char* what, IndexHeader* h) {
    ASSIGN_OR_RETURN(BodyKind kind, Index(/*nested=*/true, h));
    if (kind != want) return Bad(std::string(what) + " of another index type");
    if (h->metric_type != parent.metric_type) {
      return Bad(std::string(what) + " metric " + std::to_string(h->metric_type) +
                 ", the index's is " + std::to_string(parent.metric_type));
    }
    return Status::Ok();
  }

  StatusOr<BodyKind> Index(bool nested, IndexHeader* h) {
    uint32_t fourcc = 0;
    if (!cur_.Read(&fourcc)) return Bad("truncated");
    if (fourcc == faiss::fourcc("IxFI") || fourcc == faiss::fourcc("IxF2") ||
        fourcc == faiss::fourcc("IxFl")) {
      RETURN_IF_ERROR(Flat(h, nested));
      return BodyKind::kFlat;
    }
    if (fourcc == faiss::fourcc("IxSQ")) {
      RETURN_IF_ERROR(ScalarQuantizerIndex(h));
      return BodyKind::kScalarQuantizer;
    }
    if (fourcc == faiss::fourcc("IxPq")) {
      RETURN_IF_ERROR(ProductQuantizerIndex(h));
      return BodyKind::kProductQuantizer;
    }
    if (nested) return Bad("nested index of an unexpected type");
    if (fourcc == faiss::fourcc("IwFl") || fourcc == faiss::fourcc("IwSq") ||
        fourcc == faiss::fourcc("IwPQ")) {
      RETURN_IF_ERROR(Ivf(fourcc, h));
      return BodyKind::kIvf;
    }
    if (fourcc == faiss::fourcc("IHNf") || fourcc == faiss::fourcc("IHNs") ||
        fourcc == faiss::fourcc("IHNp")) {
      RETURN_IF_ERROR(Hnsw(fourcc, h));
      return BodyKind::kHnsw;
    }
    if (IsUnwalkedIndexType(fourcc)) return BodyKind::kOther;
    return Bad("index type '" + faiss::fourcc_inv_printable(fourcc) +
               "' is not one FAISS writes for an index spec");
  }

  // The IVF index of type `fourcc` after its fourcc.
  Status Ivf(uint32_t fourcc, IndexHeader* h) {
    RETURN_IF_ERROR(Header(h));
    uint64_t nlist = 0, nprobe = 0;
    if (!cur_.Read(&nlist) || !cur_.Read(&nprobe)) return Bad("IVF header truncated");
    IndexHeader quantizer;
    RETURN_IF_ERROR(Nested(BodyKind::kFlat, *h, "IVF quantizer", &quantizer));
    if (quantizer.d != h->d || static_cast<uint64_t>(quantizer.ntotal) != nlist || nlist == 0) {
      return Bad("IVF quantizer holds " + std::to_string(quantizer.ntotal) + " centroids of dim " +
                 std::to_string(quantizer.d) + " for nlist " + std::to_string(nlist));
    }
    // The direct map: a type byte, an id array, for a hash table its pairs.
    uint8_t map_type = 0;
    uint64_t count = 0;
    if (!cur_.Read(&map_type) || map_type > 2) return Bad("IVF direct map type");
    RETURN_IF_ERROR(ArrayLength(sizeof(int64_t), "IVF direct map", &count));
    if (!cur_.Skip(count * sizeof(int64_t))) return Bad("IVF direct map truncated");
    if (map_type == 2) {
      RETURN_IF_ERROR(ArrayLength(2 * sizeof(int64_t), "IVF direct map table", &count));
      if (!cur_.Skip(count * 2 * sizeof(int64_t))) return Bad("IVF direct map truncated");
    }
    // The encoder, and the code size of a vector in the lists.
    uint64_t code_size = static_cast<uint64_t>(h->d) * sizeof(float);
    if (fourcc == faiss::fourcc("IwSq")) {
      uint64_t sq_code_size = 0;
      RETURN_IF_ERROR(ScalarQuantizer(*h, &sq_code_size));
      if (!cur_.Read(&code_size)) return Bad("IVF-SQ code size truncated");
      if (code_size != sq_code_size) {
        return Bad("IVF-SQ code size " + std::to_string(code_size) + ", its SQ's is " +
                   std::to_string(sq_code_size));
      }
      RETURN_IF_ERROR(Bool("IVF-SQ by_residual"));
    } else if (fourcc == faiss::fourcc("IwPQ")) {
      RETURN_IF_ERROR(Bool("IVF-PQ by_residual"));
      if (!cur_.Read(&code_size)) return Bad("IVF-PQ code size truncated");
      uint64_t pq_code_size = 0;
      RETURN_IF_ERROR(ProductQuantizer(*h, &pq_code_size));
      if (code_size != pq_code_size) {
        return Bad("IVF-PQ code size " + std::to_string(code_size) + ", its PQ's is " +
                   std::to_string(pq_code_size));
      }
    }
    return InvertedLists(*h, nlist, code_size);
  }

  // The inverted lists of an IVF index: `nlist` lists of `code_size`-byte
  // codes and slot ids, `h.ntotal` vectors in all.
  Status InvertedLists(const IndexHeader& h, uint64_t nlist, uint64_t code_size) {
    uint32_t lists_fourcc = 0, list_type = 0;
    uint64_t lists = 0, lists_code_size = 0;
    if (!cur_.Read(&lists_fourcc) || lists_fourcc != faiss::fourcc("ilar") || !cur_.Read(&lists) ||
        !cur_.Read(&lists_code_size) || !cur_.Read(&list_type)) {
      return Bad("IVF inverted lists header");
    }
    if (lists != nlist || lists_code_size != code_size) {
      return Bad("IVF inverted lists of " + std::to_string(lists) + " lists, code size " +
                 std::to_string(lists_code_size) + " for nlist " + std::to_string(nlist) +
                 ", code size " + std::to_string(code_size));
    }
    std::vector<uint64_t> sizes;
    if (list_type == faiss::fourcc("full")) {
      RETURN_IF_ERROR(ReadArray("IVF list sizes", &sizes));
      if (sizes.size() != nlist) return Bad("IVF list sizes do not cover the lists");
    } else if (list_type == faiss::fourcc("sprs")) {
      std::vector<uint64_t> pairs;
      RETURN_IF_ERROR(ReadArray("IVF list sizes", &pairs));
      if (pairs.size() % 2 != 0) return Bad("IVF sparse list sizes");
      if (nlist > cur_.left()) return Bad("IVF nlist does not fit the body");
      sizes.assign(static_cast<size_t>(nlist), 0);
      for (size_t j = 0; j < pairs.size(); j += 2) {
        if (pairs[j] >= nlist) return Bad("IVF sparse list sizes name a list past nlist");
        sizes[static_cast<size_t>(pairs[j])] = pairs[j + 1];
      }
    } else {
      return Bad("IVF list type");
    }
    uint64_t total = 0;
    for (uint64_t n : sizes) {
      if (n > cur_.left() / (code_size + sizeof(int64_t))) {
        return Bad("IVF list of " + std::to_string(n) + " vectors, " + std::to_string(cur_.left()) +
                   " bytes left");
      }
      total += n;
      if (!cur_.Skip(n * code_size)) return Bad("IVF list codes truncated");
      for (uint64_t i = 0; i < n; ++i) {
        int64_t id = 0;
        if (!cur_.Read(&id)) return Bad("IVF list ids truncated");
        // Labels are slots of the snapshot's table (add_with_ids).
        if (id < 0 || static_cast<uint64_t>(id) >= nslots_) {
          return Bad("IVF list id " + std::to_string(id) + " is not a slot (" +
                     std::to_string(nslots_) + " slots)");
        }
      }
    }
    if (total != static_cast<uint64_t>(h.ntotal)) {
      return Bad("IVF lists hold " + std::to_string(total) + " vectors, header says " +
                 std::to_string(h.ntotal));
    }
    return Status::Ok();
  }

  // The HNSW index of type `fourcc` after its fourcc.
  Status Hnsw(uint32_t fourcc, IndexHeader* h) {
    RETURN_IF_ERROR(Header(h));
    const uint64_t ntotal = static_cast<uint64_t>(h->ntotal);
    uint64_t count = 0;
    RETURN_IF_ERROR(ArrayLength(sizeof(double), "HNSW assign_probas", &count));
    if (!cur_.Skip(count * sizeof(double))) return Bad("HNSW assign_probas truncated");
    std::vector<int32_t> cum, levels, neighbors;
    std::vector<uint64_t> offsets;
    RETURN_IF_ERROR(ReadArray("HNSW cum_nneighbor_per_level", &cum));
    RETURN_IF_ERROR(ReadArray("HNSW levels", &levels));
    RETURN_IF_ERROR(ReadArray("HNSW offsets", &offsets));
    RETURN_IF_ERROR(ReadArray("HNSW neighbors", &neighbors));
    int32_t entry_point = 0, max_level = 0, ef_construction = 0, ef_search = 0, upper_beam = 0;
    if (!cur_.Read(&entry_point) || !cur_.Read(&max_level) || !cur_.Read(&ef_construction) ||
        !cur_.Read(&ef_search) || !cur_.Read(&upper_beam)) {
      return Bad("HNSW parameters truncated");
    }
    if (cum.empty() || cum[0] != 0) return Bad("HNSW cum_nneighbor_per_level");
    for (size_t i = 1; i < cum.size(); ++i) {
      if (cum[i] < cum[i - 1]) return Bad("HNSW cum_nneighbor_per_level decreases");
    }
    if (levels.size() != ntotal || offsets.size() != ntotal + 1) {
      return Bad("HNSW levels / offsets for " + std::to_string(ntotal) + " vectors: " +
                 std::to_string(levels.size()) + " / " + std::to_string(offsets.size()));
    }
    if (offsets[0] != 0 || offsets[ntotal] != neighbors.size()) return Bad("HNSW offsets");
    for (uint64_t i = 0; i < ntotal; ++i) {
      // A vector on level L - 1 has links on levels 0 .. L - 1 (FAISS stores L).
      const int32_t level = levels[i];
      if (level < 1 || static_cast<size_t>(level) >= cum.size()) return Bad("HNSW level");
      if (offsets[i + 1] < offsets[i] ||
          offsets[i + 1] - offsets[i] != static_cast<uint64_t>(cum[static_cast<size_t>(level)])) {
        return Bad("HNSW offsets do not match the levels");
      }
    }
    for (int32_t link : neighbors) {
      if (link < -1 || (link >= 0 && static_cast<uint64_t>(link) >= ntotal)) {
        return Bad("HNSW link to vector " + std::to_string(link) + " of " + std::to_string(ntotal));
      }
    }
    if (ntotal == 0 ? entry_point != -1
                    : (entry_point < 0 || static_cast<uint64_t>(entry_point) >= ntotal ||
                       max_level != levels[static_cast<size_t>(entry_point)] - 1)) {
      return Bad("HNSW entry point " + std::to_string(entry_point) + " (max level " +
                 std::to_string(max_level) + ")");
    }
    const BodyKind storage_kind = fourcc == faiss::fourcc("IHNs")   ? BodyKind::kScalarQuantizer
                                  : fourcc == faiss::fourcc("IHNp") ? BodyKind::kProductQuantizer
                                                                    : BodyKind::kFlat;
    IndexHeader storage;
    RETURN_IF_ERROR(Nested(storage_kind, *h, "HNSW storage", &storage));
    if (storage.d != h->d || storage.ntotal != h->ntotal) {
      return Bad("HNSW storage holds " + std::to_string(storage.ntotal) + " vectors of dim " +
                 std::to_string(storage.d) + ", the graph " + std::to_string(h->ntotal) +
                 " of dim " + std::to_string(h->d));
    }
    return Status::Ok();
  }

  Cursor cur_;
  const uint64_t nslots_;
};

bool ScoreBetter(const ScoredId& a, const ScoredId& b) {
  if (a.score != b.score) return a.score > b.score;
  return a.internal_id < b.internal_id;
}

}  // namespace

std::vector<ScoredId> ExactTopK(const float* query, int dim, Metric metric, const float* vectors,
                                const int64_t* internal_ids, int64_t n, int k) {
  std::vector<ScoredId> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* v = vectors + i * dim;
    double acc = 0;
    if (metric == Metric::kL2) {
      for (int j = 0; j < dim; ++j) {
        double d = static_cast<double>(query[j]) - v[j];
        acc += d * d;
      }
      acc = -acc;
    } else {
      for (int j = 0; j < dim; ++j) acc += static_cast<double>(query[j]) * v[j];
    }
    all[static_cast<size_t>(i)] = ScoredId{internal_ids[i], static_cast<float>(acc)};
  }
  const size_t keep = std::min<size_t>(all.size(), static_cast<size_t>(std::max(k, 0)));
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(keep), all.end(),
                    ScoreBetter);
  all.resize(keep);
  return all;
}

DerivedIndex::DerivedIndex(CollectionSpec spec, Device device)
    : spec_(std::move(spec)), device_(device) {}

DerivedIndex::~DerivedIndex() = default;

StatusOr<std::unique_ptr<DerivedIndex>> DerivedIndex::Create(const CollectionSpec& spec,
                                                             const Device& device) {
  ASSIGN_OR_RETURN(DerivedIndexParts parts, MakeDerivedIndex(spec, device));
  std::unique_ptr<DerivedIndex> d(new DerivedIndex(spec, device));
  if (!parts.index->is_trained) {
    d->exact_mode_ = true;
    d->min_train_ = MinTrain(parts.index.get());
    d->index_ = std::make_unique<CpuIndexFlat>(spec.dim, FaissMetric(spec.metric));
    d->family_ = IndexFamily::kFlat;
  } else {
    d->index_ = std::move(parts.index);
    d->family_ = parts.family;
    SetDefaultNprobe(d->index_.get());
  }
  return d;
}

Status DerivedIndex::Add(int64_t n, const float* x, const int64_t* internal_ids) {
  if (n <= 0) return Status::Ok();
  const int64_t first_slot = static_cast<int64_t>(slots_.size());
  try {
    if (family_ == IndexFamily::kIvf) {
      std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = first_slot + i;
      index_->add_with_ids(n, x, labels.data());
    } else {
      index_->add(n, x);
    }
  } catch (const std::exception& e) {
    return InternalError(std::string("adding vectors to the index: ") + e.what());
  }
  slots_.insert(slots_.end(), internal_ids, internal_ids + n);
  live_bits_.resize((slots_.size() + 7) / 8, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = first_slot + i;
    id_to_slot_[internal_ids[i]] = slot;
    live_bits_[static_cast<size_t>(slot >> 3)] |= static_cast<uint8_t>(1u << (slot & 7));
  }
  live_count_ += n;
  if (exact_mode_ && live_count_ >= min_train_) {
    Status st = SwitchToMainIndex();
    if (!st.ok()) {
      spdlog::warn(
          "collection '{}': training index '{}' on {} vectors failed ({}); searches stay "
          "exact, retrying at {} vectors",
          spec_.name, spec_.index_spec, live_count_, st.message(), 2 * min_train_);
      min_train_ *= 2;
    }
  }
  return Status::Ok();
}

Status DerivedIndex::SwitchToMainIndex() {
  auto* flat = dynamic_cast<faiss::IndexFlat*>(index_.get());
  if (flat == nullptr) return InternalError("exact mode without a flat index");
  ASSIGN_OR_RETURN(DerivedIndexParts parts, MakeDerivedIndex(spec_, device_));
  const int dim = spec_.dim;
  std::vector<float> vectors;
  std::vector<int64_t> ids;
  vectors.reserve(static_cast<size_t>(live_count_) * dim);
  ids.reserve(static_cast<size_t>(live_count_));
  const float* xb = flat->get_xb();
  for (size_t slot = 0; slot < slots_.size(); ++slot) {
    if (slots_[slot] < 0) continue;
    vectors.insert(vectors.end(), xb + slot * dim, xb + (slot + 1) * dim);
    ids.push_back(slots_[slot]);
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  try {
    parts.index->train(n, vectors.data());
    SetDefaultNprobe(parts.index.get());
    if (parts.family == IndexFamily::kIvf) {
      std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = i;
      parts.index->add_with_ids(n, vectors.data(), labels.data());
    } else {
      parts.index->add(n, vectors.data());
    }
  } catch (const std::exception& e) {
    return InternalError(e.what());
  }
  index_ = std::move(parts.index);
  family_ = parts.family;
  exact_mode_ = false;
  slots_ = std::move(ids);
  id_to_slot_.clear();
  live_bits_.assign((slots_.size() + 7) / 8, 0);
  for (size_t slot = 0; slot < slots_.size(); ++slot) {
    id_to_slot_[slots_[slot]] = static_cast<int64_t>(slot);
    live_bits_[slot >> 3] |= static_cast<uint8_t>(1u << (slot & 7));
  }
  removed_in_place_ = 0;
  spdlog::info("collection '{}': trained index '{}' on {} vectors", spec_.name, spec_.index_spec,
               n);
  return Status::Ok();
}

Status DerivedIndex::Remove(const std::vector<int64_t>& internal_ids) {
  std::vector<faiss::Index::idx_t> slots;
  for (int64_t id : internal_ids) {
    auto it = id_to_slot_.find(id);
    if (it == id_to_slot_.end()) continue;  // unknown, or listed twice
    slots.push_back(it->second);
    id_to_slot_.erase(it);
  }
  if (slots.empty()) return Status::Ok();
  for (auto slot : slots) {
    slots_[static_cast<size_t>(slot)] = -1;
    live_bits_[static_cast<size_t>(slot >> 3)] &= static_cast<uint8_t>(~(1u << (slot & 7)));
  }
  live_count_ -= static_cast<int64_t>(slots.size());
  if (family_ != IndexFamily::kIvf) {
    removed_in_place_ += static_cast<int64_t>(slots.size());
    return Status::Ok();
  }
  try {
    faiss::IDSelectorBatch sel(slots.size(), slots.data());
    index_->remove_ids(sel);
  } catch (const std::exception& e) {
    // The maps already hide the ids; the caller rebuilds the index.
    return InternalError(std::string("removing vectors from the index: ") + e.what());
  }
  return Status::Ok();
}

bool DerivedIndex::NeedsCompaction() const {
  return removed_in_place_ > 1024 && removed_in_place_ > live_count_;
}

std::vector<uint8_t> DerivedIndex::SelectorBitmap(const Query& query, int64_t* candidates) const {
  std::vector<uint8_t> bits;
  if (query.allowed != nullptr) {
    bits.assign(live_bits_.size(), 0);
    *candidates = 0;
    for (int64_t id : *query.allowed) {
      auto it = id_to_slot_.find(id);
      if (it == id_to_slot_.end()) continue;
      const int64_t slot = it->second;
      uint8_t& byte = bits[static_cast<size_t>(slot >> 3)];
      const auto mask = static_cast<uint8_t>(1u << (slot & 7));
      if ((byte & mask) == 0) {
        byte |= mask;
        ++*candidates;
      }
    }
  } else {
    bits = live_bits_;
    *candidates = live_count_;
  }
  if (query.excluded != nullptr) {
    for (int64_t id : *query.excluded) {
      auto it = id_to_slot_.find(id);
      if (it == id_to_slot_.end()) continue;
      const int64_t slot = it->second;
      uint8_t& byte = bits[static_cast<size_t>(slot >> 3)];
      const auto mask = static_cast<uint8_t>(1u << (slot & 7));
      if ((byte & mask) != 0) {
        byte &= static_cast<uint8_t>(~mask);
        --*candidates;
      }
    }
  }
  return bits;
}

std::vector<int64_t> DerivedIndex::Candidates(const std::vector<int64_t>* allowed,
                                              const std::vector<int64_t>* excluded) const {
  Query q;
  q.allowed = allowed;
  q.excluded = excluded;
  int64_t n = 0;
  std::vector<uint8_t> bits = SelectorBitmap(q, &n);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  for (size_t slot = 0; slot < slots_.size(); ++slot) {
    if (bits[slot >> 3] & (1u << (slot & 7))) out.push_back(slots_[slot]);
  }
  return out;
}

StatusOr<DerivedIndex::Result> DerivedIndex::Search(const Query& query) const {
  try {
    return SearchImpl(query);
  } catch (const std::exception& e) {
    return InternalError(std::string("index search failed: ") + e.what());
  }
}

StatusOr<DerivedIndex::Result> DerivedIndex::SearchImpl(const Query& query) const {
  Result result;
  result.hits.resize(static_cast<size_t>(query.nq));
  result.incomplete.assign(static_cast<size_t>(query.nq), false);
  int64_t candidates = 0;
  std::vector<uint8_t> bits = SelectorBitmap(query, &candidates);
  const int64_t need = std::min<int64_t>(query.k, candidates);
  if (need <= 0 || query.nq <= 0) return result;
  const bool restricted =
      query.allowed != nullptr || candidates < live_count_ || removed_in_place_ > 0;
  faiss::IDSelectorBitmap selector(bits.size(), bits.data());

  // How many labels to ask FAISS for per query, and with which parameters.
  const int64_t fetch = need;
  std::vector<float> distances;
  std::vector<faiss::Index::idx_t> labels;
  auto run = [&](const faiss::SearchParameters* params) {
    distances.assign(static_cast<size_t>(query.nq * fetch), 0.f);
    labels.assign(static_cast<size_t>(query.nq * fetch), -1);
    index_->search(query.nq, query.x, fetch, distances.data(), labels.data(), params);
  };
  auto count_valid = [&](int q) {
    int64_t c = 0;
    for (int64_t j = 0; j < fetch; ++j) {
      const auto label = labels[static_cast<size_t>(q * fetch + j)];
      if (label >= 0 && (bits[static_cast<size_t>(label >> 3)] & (1u << (label & 7)))) ++c;
    }
    return c;
  };

  switch (family_) {
    case IndexFamily::kFlat:
    case IndexFamily::kGpuFlat: {
      faiss::SearchParameters params;
      params.sel = &selector;
      run(restricted ? &params : nullptr);
      break;
    }
    case IndexFamily::kIvf: {
      const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index_.get());
      faiss::SearchParametersIVF params;
      params.sel = restricted ? &selector : nullptr;
      // A filter can leave the probed lists nearly empty: probe every list so
      // a filtered search returns min(k, matches) hits.
      params.nprobe = query.allowed != nullptr ? ivf->nlist : ivf->nprobe;
      run(&params);
      bool short_any = false;
      for (int q = 0; q < query.nq; ++q) short_any = short_any || count_valid(q) < need;
      if (short_any && params.nprobe < ivf->nlist) {
        params.nprobe = ivf->nlist;
        run(&params);
      }
      break;
    }
    case IndexFamily::kHnsw: {
      if (query.allowed != nullptr) {
        // A restrictive selector starves the graph walk: answer exactly.
        result.incomplete.assign(static_cast<size_t>(query.nq), true);
        return result;
      }
      const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index_.get());
      faiss::SearchParametersHNSW params;
      params.sel = restricted ? &selector : nullptr;
      params.efSearch = std::max<int>(hnsw->hnsw.efSearch, static_cast<int>(need));
      run(&params);
      break;
    }
  }

  for (int q = 0; q < query.nq; ++q) {
    auto& hits = result.hits[static_cast<size_t>(q)];
    for (int64_t j = 0; j < fetch && static_cast<int64_t>(hits.size()) < need; ++j) {
      const auto label = labels[static_cast<size_t>(q * fetch + j)];
      if (label < 0 || static_cast<size_t>(label) >= slots_.size()) continue;
      if (!(bits[static_cast<size_t>(label >> 3)] & (1u << (label & 7)))) continue;
      const float d = distances[static_cast<size_t>(q * fetch + j)];
      hits.push_back(
          ScoredId{slots_[static_cast<size_t>(label)], spec_.metric == Metric::kL2 ? -d : d});
    }
    if (static_cast<int64_t>(hits.size()) < need) result.incomplete[static_cast<size_t>(q)] = true;
  }
  return result;
}

int64_t DerivedIndex::HostBytes() const {
  int64_t bytes = static_cast<int64_t>(slots_.size() * sizeof(int64_t) + live_bits_.size() +
                                       id_to_slot_.size() * 32);
  const faiss::Index* index = index_.get();
  if (family_ == IndexFamily::kGpuFlat) return bytes;  // device memory, see Stats
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    bytes += ivf->ntotal * static_cast<int64_t>(ivf->code_size + sizeof(faiss::Index::idx_t));
    bytes += static_cast<int64_t>(ivf->nlist) * ivf->d * static_cast<int64_t>(sizeof(float));
  } else if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index)) {
    bytes += static_cast<int64_t>(hnsw->hnsw.neighbors.size() * sizeof(int32_t));
    bytes += hnsw->ntotal * hnsw->d * static_cast<int64_t>(sizeof(float));
  } else if (const auto* codes = dynamic_cast<const faiss::IndexFlatCodes*>(index)) {
    bytes += static_cast<int64_t>(codes->codes.size());
  }
  return bytes;
}

Status DerivedIndex::WriteSnapshot(const std::string& path, int64_t seq) const {
  ASSIGN_OR_RETURN(std::vector<uint8_t> payload, SnapshotPayload());
  return WriteSnapshotFile(path, seq, payload);
}

StatusOr<std::vector<uint8_t>> DerivedIndex::SnapshotPayload() const {
  if (!CanSnapshot()) return UnimplementedError("the GPU index is not snapshotted");
  faiss::VectorIOWriter writer;
  std::vector<uint8_t>& payload = writer.data;
  Append(&payload, kSnapshotFormat);
  Append(&payload, static_cast<uint32_t>(exact_mode_ ? 1 : 0));
  Append(&payload, min_train_);
  Append(&payload, static_cast<int32_t>(spec_.dim));
  Append(&payload, static_cast<int32_t>(spec_.metric));
  Append(&payload, static_cast<uint32_t>(spec_.index_spec.size()));
  payload.insert(payload.end(), spec_.index_spec.begin(), spec_.index_spec.end());
  Append(&payload, static_cast<uint64_t>(slots_.size()));
  const auto* slot_bytes = reinterpret_cast<const uint8_t*>(slots_.data());
  payload.insert(payload.end(), slot_bytes, slot_bytes + slots_.size() * sizeof(int64_t));
  try {
    faiss::write_index(index_.get(), &writer);
  } catch (const std::exception& e) {
    return InternalError(std::string("serializing the index: ") + e.what());
  }
  return std::move(payload);
}

StatusOr<std::unique_ptr<DerivedIndex>> DerivedIndex::LoadSnapshot(const std::string& path,
                                                                   const CollectionSpec& spec,
                                                                   int64_t* seq) {
  ASSIGN_OR_RETURN(SnapshotFile file, ReadSnapshotFile(path));
  auto corrupt = [&](const std::string& why) { return DataLossError(path + ": " + why); };
  const uint8_t* payload = file.payload.data();
  const size_t payload_bytes = file.payload.size();
  Cursor cur(payload, payload_bytes);
  uint32_t format = 0, exact = 0, spec_len = 0;
  int64_t min_train = 0;
  int32_t dim = 0, metric = 0;
  if (!cur.Read(&format) || format != kSnapshotFormat) return corrupt("unknown snapshot format");
  if (!cur.Read(&exact) || !cur.Read(&min_train) || !cur.Read(&dim) || !cur.Read(&metric) ||
      !cur.Read(&spec_len)) {
    return corrupt("snapshot header fields truncated");
  }
  if (spec_len > payload_bytes - cur.pos()) return corrupt("snapshot spec truncated");
  std::string index_spec(spec_len, '\0');
  if (!cur.ReadBytes(index_spec.data(), spec_len)) return corrupt("snapshot spec truncated");
  if (dim != spec.dim || metric != static_cast<int32_t>(spec.metric) ||
      index_spec != spec.index_spec) {
    return corrupt("snapshot was written for another spec (dim " + std::to_string(dim) +
                   ", index '" + index_spec + "')");
  }
  uint64_t nslots = 0;
  if (!cur.Read(&nslots) || nslots > payload_bytes / sizeof(int64_t)) {
    return corrupt("snapshot slot table truncated");
  }
  std::unique_ptr<DerivedIndex> d(new DerivedIndex(spec, Device{}));  // snapshots are CPU indexes
  d->slots_.resize(nslots);
  if (!cur.ReadBytes(d->slots_.data(), nslots * sizeof(int64_t))) {
    return corrupt("snapshot slot table truncated");
  }
  auto body = BodyWalker(payload + cur.pos(), payload_bytes - cur.pos(), nslots).Walk();
  if (!body.ok()) return corrupt(body.status().message());
  if (*body != BodyKind::kFlat && (exact != 0 || spec.index_spec == "Flat")) {
    return corrupt("snapshot of a flat index holds another index type");
  }
  faiss::VectorIOReader reader;
  reader.data.assign(payload + cur.pos(), payload + payload_bytes);
  try {
    d->index_.reset(faiss::read_index(&reader));
    // FAISS stores any int read from the file as its MetricType: check the
    // value before anything reads it as the enum (found by fuzz_snapshot).
    int metric_value = 0;
    std::memcpy(&metric_value, &d->index_->metric_type, sizeof(metric_value));
    if (metric_value != static_cast<int>(FaissMetric(spec.metric))) {
      return corrupt("snapshot index has another metric");
    }
    d->index_ = CpuIndexFlat::Adopt(std::move(d->index_));
  } catch (const std::exception& e) {
    return corrupt(std::string("snapshot index unreadable: ") + e.what());
  }
  if (d->index_->d != spec.dim || d->index_->metric_type != FaissMetric(spec.metric)) {
    return corrupt("snapshot index has another dimension or metric");
  }
  d->exact_mode_ = exact != 0;
  d->min_train_ = min_train;
  if (d->exact_mode_) {
    if (dynamic_cast<faiss::IndexFlat*>(d->index_.get()) == nullptr) {
      return corrupt("snapshot in exact mode without a flat index");
    }
    d->family_ = IndexFamily::kFlat;
  } else {
    auto family = ClassifyIndex(d->index_.get(), spec.index_spec);
    if (!family.ok()) return corrupt(family.status().message());
    d->family_ = *family;
  }
  d->live_bits_.assign((nslots + 7) / 8, 0);
  for (size_t slot = 0; slot < nslots; ++slot) {
    const int64_t id = d->slots_[slot];
    if (id < 0) continue;
    if (!d->id_to_slot_.emplace(id, static_cast<int64_t>(slot)).second) {
      return corrupt("snapshot maps an item twice");
    }
    d->live_bits_[slot >> 3] |= static_cast<uint8_t>(1u << (slot & 7));
  }
  d->live_count_ = static_cast<int64_t>(d->id_to_slot_.size());
  if (d->family_ == IndexFamily::kIvf) {
    if (d->index_->ntotal != d->live_count_)
      return corrupt("snapshot index and slot table disagree");
  } else {
    if (d->index_->ntotal != static_cast<int64_t>(nslots)) {
      return corrupt("snapshot index and slot table disagree");
    }
    d->removed_in_place_ = static_cast<int64_t>(nslots) - d->live_count_;
  }
  *seq = file.seq;
  return d;
}

}  // namespace lookalike
