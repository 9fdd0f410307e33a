// Helpers of `lookalike index`: finding the image files under the given paths,
// the per-file metadata table, and the resume journal.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"

namespace lookalike {

using MetadataMap = std::map<std::string, std::string>;

// One image file to index.
struct InputFile {
  std::string path;      // as found (root joined with the relative path)
  std::string abs_path;  // absolute, lexically normal
  std::string id;        // default item id: path relative to the given root ('/' separators)
  int64_t size = 0;      // bytes
  int64_t mtime_ns = 0;  // modification time, ns since the epoch
};

// True for the extensions the server decodes: jpg jpeg png webp bmp tif tiff
// gif (case-insensitive).
bool HasImageExtension(const std::string& path);

// Walks each path: a directory is searched recursively for image files (by
// extension; hidden entries skipped), a file is taken as is (id = its file
// name). Results are sorted by id. Errors: NOT_FOUND for a missing path,
// INVALID_ARGUMENT when two files would get the same id.
StatusOr<std::vector<InputFile>> CollectImageFiles(const std::vector<std::string>& paths);

// Per-file metadata from a .csv (header row, RFC 4180 quoting) or .jsonl (one
// JSON object per line) file. Each row is keyed by its `id` column when
// present, else by its `path` column; all other columns become metadata, and a
// `path` column is kept as metadata too. JSON values that are not strings are
// stored as their JSON text.
class MetadataTable {
 public:
  static StatusOr<MetadataTable> Load(const std::string& file);

  // Metadata for `file` (nullptr if none): by id first, then by path (the path
  // column may be absolute, relative to the working directory, relative to the
  // metadata file's folder, or equal to the id).
  const MetadataMap* Find(const InputFile& file) const;

  size_t size() const { return rows_.size(); }

 private:
  std::vector<MetadataMap> rows_;
  std::unordered_map<std::string, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_path_;
};

// Resume journal: one JSON line per acknowledged (durable) item, keyed by
// collection + absolute file path + size + mtime. Appended and fsynced after
// each acknowledged batch, so after any crash (of the client or the server)
// every line names an item the server reported durable. A torn last line is
// ignored on load.
struct JournalEntry {
  std::string collection;
  std::string path;  // absolute
  int64_t size = 0;
  int64_t mtime_ns = 0;
  std::string id;
};

class IngestJournal {
 public:
  ~IngestJournal();
  // Opens `file` for appending (creating it and its folders) and loads its
  // entries.
  static StatusOr<std::unique_ptr<IngestJournal>> Open(const std::string& file);

  // Default location: $XDG_CACHE_HOME/lookalike/journal (or
  // ~/.cache/lookalike/journal) / "<server>__<collection>.jsonl", with
  // characters outside [A-Za-z0-9._-] replaced by '_'.
  static std::string DefaultPath(const std::string& server, const std::string& collection);

  bool Contains(const std::string& collection, const InputFile& file) const;
  // Number of entries for `collection`.
  size_t Count(const std::string& collection) const;
  // Forgets the entries of `collection` (rewrites the file without them).
  Status Forget(const std::string& collection);
  // Appends and fsyncs.
  Status Append(const std::vector<JournalEntry>& entries);

  const std::string& file() const { return file_; }
  // Every entry loaded or appended, in order (tests and diagnostics).
  std::vector<JournalEntry> Entries() const { return entries_; }

  // Reads a journal file without opening it for writing.
  static StatusOr<std::vector<JournalEntry>> Read(const std::string& file);

 private:
  static std::string Key(const std::string& collection, const std::string& path, int64_t size,
                         int64_t mtime_ns);
  std::string file_;
  int fd_ = -1;
  std::vector<JournalEntry> entries_;
  std::unordered_set<std::string> keys_;
};

// Parses "0.1,0.2,-3" (spaces allowed) into floats; INVALID_ARGUMENT naming
// the bad element.
StatusOr<std::vector<float>> ParseVector(const std::string& text);

// Parses "key=value" filters; the same key given twice means "any of".
StatusOr<std::map<std::string, std::vector<std::string>>> ParseFilters(
    const std::vector<std::string>& specs);

// Reads a whole file; NOT_FOUND / INVALID_ARGUMENT naming it.
StatusOr<std::string> ReadFileBytes(const std::string& path);

}  // namespace lookalike
