#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/half.h"
#include "models/json.h"

namespace lookalike {
namespace {

struct DTypeEntry {
  const char* name;
  SafeDType dtype;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {"F64", SafeDType::kF64, 8},   {"F32", SafeDType::kF32, 4}, {"F16", SafeDType::kF16, 2},
    {"BF16", SafeDType::kBF16, 2}, {"I64", SafeDType::kI64, 8}, {"I32", SafeDType::kI32, 4},
    {"I16", SafeDType::kI16, 2},   {"I8", SafeDType::kI8, 1},   {"U8", SafeDType::kU8, 1},
    {"BOOL", SafeDType::kBool, 1},
};

// Largest header we accept (the reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

template <typename T>
T LoadUnaligned(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

const char* SafeDTypeName(SafeDType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.name;
  return "?";
}

size_t SafeDTypeSize(SafeDType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.size;
  return 0;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr && size_ > 0) munmap(const_cast<uint8_t*>(map_), size_);
}

Status SafetensorsFile::Error(const std::string& what) const {
  return InvalidArgumentError("safetensors file '" + path_ + "': " + what);
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = "safetensors file '" + path + "': cannot open: " + std::strerror(err);
    return err == ENOENT ? NotFoundError(msg) : InvalidArgumentError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return file->Error("not a regular file");
  }
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ < 8) {
    ::close(fd);
    return file->Error("truncated: " + std::to_string(file->size_) +
                       " bytes, shorter than the 8-byte header length");
  }
  void* map = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    file->size_ = 0;
    return file->Error(std::string("mmap failed: ") + std::strerror(errno));
  }
  file->map_ = static_cast<const uint8_t*>(map);
  RETURN_IF_ERROR(file->Parse());
  return file;
}

Status SafetensorsFile::Parse() {
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | map_[i];
  if (header_len == 0) return Error("header length is 0");
  if (header_len > kMaxHeaderBytes) {
    return Error("header length " + std::to_string(header_len) + " exceeds the " +
                 std::to_string(kMaxHeaderBytes) + "-byte limit");
  }
  if (header_len > size_ - 8) {
    return Error("truncated: header length " + std::to_string(header_len) + " but only " +
                 std::to_string(size_ - 8) + " bytes follow the length field");
  }
  const char* hbegin = reinterpret_cast<const char*>(map_ + 8);
  const char* hend = hbegin + header_len;
  auto parsed = ParseJson(hbegin, static_cast<size_t>(header_len));
  if (!parsed.ok()) return Error("header is not valid JSON: " + parsed.status().message());
  const JsonValue& header = *parsed;
  if (!header.is_object()) return Error("header JSON is not an object");

  const uint8_t* data = map_ + 8 + header_len;
  const uint64_t data_size = size_ - 8 - header_len;

  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (const auto& member : header.members()) {
    const std::string& name = member.first;
    const JsonValue& v = member.second;
    if (name == "__metadata__") {
      if (!v.is_object()) return Error("__metadata__ is not an object");
      for (const auto& m : v.members()) {
        if (!m.second.is_string())
          return Error("__metadata__ value '" + m.first + "' is not a string");
        metadata_[m.first] = m.second.as_string();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (tensors_.count(name)) return Error(where + "appears twice in the header");
    if (!v.is_object()) return Error(where + "entry is not an object");
    const JsonValue* dt = v.Find("dtype");
    const JsonValue* sh = v.Find("shape");
    const JsonValue* off = v.Find("data_offsets");
    if (dt == nullptr || !dt->is_string()) return Error(where + "missing or non-string 'dtype'");
    if (sh == nullptr || !sh->is_array()) return Error(where + "missing or non-array 'shape'");
    if (off == nullptr || !off->is_array() || off->items().size() != 2) {
      return Error(where + "'data_offsets' must be an array [begin, end]");
    }
    SafeTensorInfo info;
    info.name = name;
    const std::string dname = dt->as_string();
    size_t esize = 0;
    for (const auto& e : kDTypes) {
      if (dname == e.name) {
        info.dtype = e.dtype;
        esize = e.size;
      }
    }
    if (esize == 0) return Error(where + "unsupported dtype '" + dname + "'");
    uint64_t numel = 1;
    for (const JsonValue& d : sh->items()) {
      if (!d.is_integer() || d.as_int() < 0) {
        return Error(where + "shape entries must be non-negative integers, got " + sh->Dump());
      }
      const uint64_t dim = static_cast<uint64_t>(d.as_int());
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / dim) {
        return Error(where + "shape " + sh->Dump() + " is too large");
      }
      numel *= dim;
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const JsonValue& o : off->items()) {
      if (!o.is_integer() || o.as_int() < 0) {
        return Error(where + "data_offsets must be non-negative integers, got " + off->Dump());
      }
    }
    const uint64_t begin = static_cast<uint64_t>(off->items()[0].as_int());
    const uint64_t end = static_cast<uint64_t>(off->items()[1].as_int());
    if (begin > end) {
      return Error(where + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                   "] has begin > end");
    }
    if (end > data_size) {
      return Error(where + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                   "] out of range: the data section has " + std::to_string(data_size) + " bytes");
    }
    if (end - begin != numel * esize) {
      return Error(where + "byte range [" + std::to_string(begin) + ", " + std::to_string(end) +
                   ") holds " + std::to_string(end - begin) + " bytes but dtype " + dname +
                   " with shape " + ShapeToString(info.shape) + " needs " +
                   std::to_string(numel * esize));
    }
    info.numel = static_cast<int64_t>(numel);
    info.nbytes = static_cast<size_t>(end - begin);
    info.data = data + begin;
    auto inserted = tensors_.emplace(name, std::move(info));
    ranges.push_back({begin, end, &inserted.first->first});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const Range& prev = ranges[i - 1];
    const Range& cur = ranges[i];
    // Empty tensors occupy no bytes and cannot overlap anything.
    if (cur.begin < prev.end && cur.end > cur.begin && prev.end > prev.begin) {
      return Error("tensors '" + *prev.name + "' [" + std::to_string(prev.begin) + ", " +
                   std::to_string(prev.end) + ") and '" + *cur.name + "' [" +
                   std::to_string(cur.begin) + ", " + std::to_string(cur.end) + ") overlap");
    }
  }
  for (const Range& r : ranges) names_.push_back(*r.name);
  return Status::Ok();
}

const SafeTensorInfo* SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {

// A tensor's bytes are read once, into the model's own copy: dropping its
// pages from the resident set right after keeps a model's peak memory at load
// its weights, not its weights plus the whole mapped file (ViT-B/16: 344 MB
// more). Only the pages wholly inside the tensor go; the mapping is a
// read-only private file mapping, so a later read faults them in from the file
// again.
void DropResidentPages(const uint8_t* begin, size_t bytes) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(begin) + bytes) & ~(page - 1);
  if (end > first) madvise(reinterpret_cast<void*>(first), end - first, MADV_DONTNEED);
}

}  // namespace

StatusOr<std::vector<float>> SafetensorsFile::ReadF32(const std::string& name) const {
  const SafeTensorInfo* t = Find(name);
  if (t == nullptr)
    return NotFoundError("safetensors file '" + path_ + "': no tensor '" + name + "'");
  std::vector<float> out(static_cast<size_t>(t->numel));
  const uint8_t* p = t->data;
  const size_t n = out.size();
  switch (t->dtype) {
    case SafeDType::kF32:
      if (n) std::memcpy(out.data(), p, n * 4);
      break;
    case SafeDType::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = HalfToFloat(LoadUnaligned<uint16_t>(p + 2 * i));
      break;
    case SafeDType::kBF16:
      for (size_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(LoadUnaligned<uint16_t>(p + 2 * i));
      break;
    case SafeDType::kF64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(LoadUnaligned<double>(p + 8 * i));
      break;
    case SafeDType::kI64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(LoadUnaligned<int64_t>(p + 8 * i));
      break;
    case SafeDType::kI32:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(LoadUnaligned<int32_t>(p + 4 * i));
      break;
    case SafeDType::kI16:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(LoadUnaligned<int16_t>(p + 2 * i));
      break;
    case SafeDType::kI8:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int8_t>(p[i]));
      break;
    case SafeDType::kU8:
    case SafeDType::kBool:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
      break;
  }
  DropResidentPages(p, t->nbytes);
  return out;
}

StatusOr<std::vector<uint8_t>> SafetensorsFile::ReadU8(const std::string& name) const {
  const SafeTensorInfo* t = Find(name);
  if (t == nullptr)
    return NotFoundError("safetensors file '" + path_ + "': no tensor '" + name + "'");
  if (t->dtype != SafeDType::kU8) {
    return Error("tensor '" + name + "' has dtype " + SafeDTypeName(t->dtype) + ", expected U8");
  }
  return std::vector<uint8_t>(t->data, t->data + t->nbytes);
}

StatusOr<std::vector<int64_t>> SafetensorsFile::ReadInt(const std::string& name) const {
  const SafeTensorInfo* t = Find(name);
  if (t == nullptr)
    return NotFoundError("safetensors file '" + path_ + "': no tensor '" + name + "'");
  std::vector<int64_t> out(static_cast<size_t>(t->numel));
  if (t->dtype == SafeDType::kI64) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = LoadUnaligned<int64_t>(t->data + 8 * i);
  } else if (t->dtype == SafeDType::kI32) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = LoadUnaligned<int32_t>(t->data + 4 * i);
  } else {
    return Error("tensor '" + name + "' has dtype " + SafeDTypeName(t->dtype) +
                 ", expected I32 or I64");
  }
  return out;
}

SafeTensorToWrite MakeF32Tensor(const std::string& name, std::vector<int64_t> shape,
                                const std::vector<float>& values) {
  SafeTensorToWrite t;
  t.name = name;
  t.dtype = SafeDType::kF32;
  t.shape = std::move(shape);
  t.bytes.resize(values.size() * 4);
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

Status WriteSafetensors(const std::string& path, const std::vector<SafeTensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  std::string json = "{";
  bool first = true;
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it) {
      json +=
          (it == metadata.begin() ? "" : ",") + JsonQuote(it->first) + ":" + JsonQuote(it->second);
    }
    json += "}";
    first = false;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    std::string shape = "[";
    for (size_t i = 0; i < t.shape.size(); ++i)
      shape += (i ? "," : "") + std::to_string(t.shape[i]);
    shape += "]";
    json += (first ? "" : ",") + JsonQuote(t.name) + ":{\"dtype\":\"" + SafeDTypeName(t.dtype) +
            "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(offset) + "," +
            std::to_string(offset + t.bytes.size()) + "]}";
    first = false;
    offset += t.bytes.size();
  }
  json += "}";
  while ((json.size() + 8) % 8 != 0) json.push_back(' ');  // align the data section
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgumentError("cannot create safetensors file '" + path + "'");
  uint8_t len[8];
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(json.data(), static_cast<std::streamsize>(json.size()));
  for (const auto& t : tensors) {
    out.write(reinterpret_cast<const char*>(t.bytes.data()),
              static_cast<std::streamsize>(t.bytes.size()));
  }
  out.close();
  if (!out) return InternalError("failed writing safetensors file '" + path + "'");
  return Status::Ok();
}

}  // namespace lookalike
