// Safetensors reader (and a small writer used by tools and tests).
//
// File format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of UTF-8 JSON header][data section]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin,
// end]} (offsets relative to the data section start) plus an optional
// "__metadata__" object of string values.
//
// SafetensorsFile::Open memory-maps the file read-only and validates all of it
// before returning: header size within the file, the header is a JSON object,
// every entry has a known dtype, a shape of non-negative integers, offsets with
// begin <= end inside the data section, (end - begin) == numel * dtype size,
// and no two tensors overlap. Every error is INVALID_ARGUMENT (NOT_FOUND for a
// missing file) and its message starts with the file path and names the tensor
// and what is wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace lookalike {

enum class SafeDType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32", "BF16", ... as spelled in the header.
const char* SafeDTypeName(SafeDType dtype);
size_t SafeDTypeSize(SafeDType dtype);

struct SafeTensorInfo {
  std::string name;
  SafeDType dtype = SafeDType::kF32;
  std::vector<int64_t> shape;
  int64_t numel = 1;
  const uint8_t* data = nullptr;  // into the mapping; may be unaligned
  size_t nbytes = 0;
};

// "[64, 3, 7, 7]"
std::string ShapeToString(const std::vector<int64_t>& shape);

class SafetensorsFile {
 public:
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  const std::string& path() const { return path_; }
  // Tensor names in ascending data-offset order.
  const std::vector<std::string>& names() const { return names_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const SafeTensorInfo* Find(const std::string& name) const;

  // The tensor converted to fp32 (from F32, F16, BF16, F64 or an integer
  // dtype). NOT_FOUND when absent.
  StatusOr<std::vector<float>> ReadF32(const std::string& name) const;
  // Raw U8 contents (dtype must be U8).
  StatusOr<std::vector<uint8_t>> ReadU8(const std::string& name) const;
  // I32 or I64 contents widened to int64.
  StatusOr<std::vector<int64_t>> ReadInt(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  Status Parse();
  Status Error(const std::string& what) const;

  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  std::vector<std::string> names_;
  std::map<std::string, SafeTensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: raw little-endian bytes of `dtype`.
struct SafeTensorToWrite {
  std::string name;
  SafeDType dtype = SafeDType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
SafeTensorToWrite MakeF32Tensor(const std::string& name, std::vector<int64_t> shape,
                                const std::vector<float>& values);

// Writes a valid safetensors file (tensors in the given order, packed).
Status WriteSafetensors(const std::string& path, const std::vector<SafeTensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace lookalike
