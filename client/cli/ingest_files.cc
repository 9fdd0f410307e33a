#include "client/cli/ingest_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace lookalike {

namespace fs = std::filesystem;

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string AbsoluteNormal(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) abs = p;
  return abs.lexically_normal().string();
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

Status StatFile(const fs::path& p, InputFile* f) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) {
    return NotFoundError("cannot stat " + p.string() + ": " + std::strerror(errno));
  }
  f->size = static_cast<int64_t>(st.st_size);
  f->mtime_ns = MtimeNs(st);
  return Status::Ok();
}

bool IsHidden(const fs::path& p) {
  std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

}  // namespace

bool HasImageExtension(const std::string& path) {
  static const char* kExtensions[] = {".jpg", ".jpeg", ".png",  ".webp",
                                      ".bmp", ".tif",  ".tiff", ".gif"};
  std::string ext = Lower(fs::path(path).extension().string());
  for (const char* e : kExtensions) {
    if (ext == e) return true;
  }
  return false;
}

StatusOr<std::vector<InputFile>> CollectImageFiles(const std::vector<std::string>& paths) {
  std::vector<InputFile> files;
  for (const auto& given : paths) {
    fs::path root(given);
    std::error_code ec;
    fs::file_status st = fs::status(root, ec);
    if (ec || !fs::exists(st)) return NotFoundError("no such file or directory: " + given);
    if (fs::is_regular_file(st)) {
      InputFile f;
      f.path = given;
      f.abs_path = AbsoluteNormal(root);
      f.id = root.filename().string();
      RETURN_IF_ERROR(StatFile(root, &f));
      files.push_back(std::move(f));
      continue;
    }
    if (!fs::is_directory(st))
      return InvalidArgumentError(given + " is neither a file nor a directory");
    fs::recursive_directory_iterator it(root,
                                        fs::directory_options::follow_directory_symlink |
                                            fs::directory_options::skip_permission_denied,
                                        ec);
    if (ec) return InvalidArgumentError("cannot read directory " + given + ": " + ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) return InvalidArgumentError("cannot read directory " + given + ": " + ec.message());
      const fs::path& p = it->path();
      if (IsHidden(p)) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec) || !HasImageExtension(p.string())) continue;
      InputFile f;
      f.path = p.string();
      f.abs_path = AbsoluteNormal(p);
      f.id = p.lexically_relative(root).generic_string();
      RETURN_IF_ERROR(StatFile(p, &f));
      files.push_back(std::move(f));
    }
  }
  std::sort(files.begin(), files.end(),
            [](const InputFile& a, const InputFile& b) { return a.id < b.id; });
  for (size_t i = 1; i < files.size(); ++i) {
    if (files[i].id == files[i - 1].id) {
      return InvalidArgumentError("two files would get the id \"" + files[i].id +
                                  "\": " + files[i - 1].path + " and " + files[i].path +
                                  " (index them in separate runs or collections)");
    }
  }
  return files;
}

// -------------------------------------------------------------- metadata ---

namespace {

// Splits CSV text into rows of fields (RFC 4180: quotes, doubled quotes,
// embedded separators and newlines; \r\n or \n line ends).
StatusOr<std::vector<std::vector<std::string>>> ParseCsv(const std::string& text,
                                                         const std::string& name) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool in_quotes = false, field_started = false;
  int line = 1;
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte order mark
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = field_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      if (!(row.size() == 1 && row[0].empty())) rows.push_back(std::move(row));
      row.clear();
      ++line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (in_quotes)
    return InvalidArgumentError(name + ": unterminated quoted field (line " + std::to_string(line) +
                                ")");
  if (field_started || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

StatusOr<MetadataTable> MetadataTable::Load(const std::string& file) {
  ASSIGN_OR_RETURN(std::string text, ReadFileBytes(file));
  MetadataTable table;
  std::string ext = Lower(fs::path(file).extension().string());
  std::vector<std::pair<std::string, std::string>> keys;  // (id, path) per row
  if (ext == ".csv") {
    ASSIGN_OR_RETURN(auto rows, ParseCsv(text, file));
    if (rows.empty()) return InvalidArgumentError(file + ": empty CSV (a header row is required)");
    const auto& header = rows[0];
    for (size_t r = 1; r < rows.size(); ++r) {
      if (rows[r].size() != header.size()) {
        return InvalidArgumentError(file + ": row " + std::to_string(r + 1) + " has " +
                                    std::to_string(rows[r].size()) + " fields, the header has " +
                                    std::to_string(header.size()));
      }
      MetadataMap m;
      std::string id, path;
      for (size_t c = 0; c < header.size(); ++c) {
        if (header[c] == "id") {
          id = rows[r][c];
        } else {
          m[header[c]] = rows[r][c];
          if (header[c] == "path") path = rows[r][c];
        }
      }
      table.rows_.push_back(std::move(m));
      keys.emplace_back(id, path);
    }
  } else if (ext == ".jsonl" || ext == ".ndjson") {
    std::istringstream in(text);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        return InvalidArgumentError(file + ": line " + std::to_string(n) + " is not a JSON object");
      }
      MetadataMap m;
      std::string id, path;
      for (auto it = j.begin(); it != j.end(); ++it) {
        std::string value =
            it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
        if (it.key() == "id") {
          id = value;
        } else {
          if (it.key() == "path") path = value;
          m[it.key()] = std::move(value);
        }
      }
      table.rows_.push_back(std::move(m));
      keys.emplace_back(id, path);
    }
  } else {
    return InvalidArgumentError(file + ": metadata files must end in .csv or .jsonl");
  }
  fs::path base = fs::path(file).parent_path();
  for (size_t r = 0; r < keys.size(); ++r) {
    const auto& [id, path] = keys[r];
    if (id.empty() && path.empty()) {
      return InvalidArgumentError(file + ": record " + std::to_string(r + 1) +
                                  " has neither an id nor a path");
    }
    if (!id.empty()) {
      table.by_id_[id] = r;
      continue;
    }
    fs::path p(path);
    table.by_path_[path] = r;  // may equal a relative id
    table.by_path_[AbsoluteNormal(p)] = r;
    if (p.is_relative()) table.by_path_[AbsoluteNormal(base / p)] = r;
  }
  return table;
}

const MetadataMap* MetadataTable::Find(const InputFile& file) const {
  auto it = by_id_.find(file.id);
  if (it != by_id_.end()) return &rows_[it->second];
  for (const std::string* key : {&file.id, &file.abs_path, &file.path}) {
    auto p = by_path_.find(*key);
    if (p != by_path_.end()) return &rows_[p->second];
  }
  return nullptr;
}

// --------------------------------------------------------------- journal ---

IngestJournal::~IngestJournal() {
  if (fd_ >= 0) ::close(fd_);
}

std::string IngestJournal::DefaultPath(const std::string& server, const std::string& collection) {
  fs::path dir;
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (xdg != nullptr && xdg[0] != '\0') {
    dir = fs::path(xdg) / "lookalike";
  } else if (home != nullptr && home[0] != '\0') {
    dir = fs::path(home) / ".cache" / "lookalike";
  } else {
    dir = fs::temp_directory_path() / "lookalike";
  }
  std::string name = server + "__" + collection;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  return (dir / "journal" / (name + ".jsonl")).string();
}

std::string IngestJournal::Key(const std::string& collection, const std::string& path, int64_t size,
                               int64_t mtime_ns) {
  std::string key = collection;
  key.push_back('\0');
  key += path;
  key.push_back('\0');
  key += std::to_string(size) + ":" + std::to_string(mtime_ns);
  return key;
}

StatusOr<std::vector<JournalEntry>> IngestJournal::Read(const std::string& file) {
  std::vector<JournalEntry> entries;
  std::ifstream in(file);
  if (!in) return entries;  // no journal yet
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    // A torn last line (crash while appending) or foreign content is skipped:
    // the worst case is re-sending an item, which Upsert replaces by id.
    if (j.is_discarded() || !j.is_object()) continue;
    try {
      JournalEntry e;
      e.collection = j.at("collection").get<std::string>();
      e.path = j.at("path").get<std::string>();
      e.size = j.at("size").get<int64_t>();
      e.mtime_ns = j.at("mtime_ns").get<int64_t>();
      e.id = j.at("id").get<std::string>();
      entries.push_back(std::move(e));
    } catch (const nlohmann::json::exception&) {
      continue;
    }
  }
  return entries;
}

StatusOr<std::unique_ptr<IngestJournal>> IngestJournal::Open(const std::string& file) {
  std::error_code ec;
  fs::path parent = fs::path(file).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec)
    return InvalidArgumentError("cannot create journal folder " + parent.string() + ": " +
                                ec.message());
  auto journal = std::unique_ptr<IngestJournal>(new IngestJournal());
  journal->file_ = file;
  ASSIGN_OR_RETURN(journal->entries_, Read(file));
  for (const auto& e : journal->entries_)
    journal->keys_.insert(Key(e.collection, e.path, e.size, e.mtime_ns));
  journal->fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (journal->fd_ < 0)
    return InvalidArgumentError("cannot open journal " + file + ": " + std::strerror(errno));
  return journal;
}

bool IngestJournal::Contains(const std::string& collection, const InputFile& f) const {
  return keys_.count(Key(collection, f.abs_path, f.size, f.mtime_ns)) > 0;
}

size_t IngestJournal::Count(const std::string& collection) const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(),
                    [&](const JournalEntry& e) { return e.collection == collection; }));
}

namespace {

Status WriteAll(int fd, const std::string& data, const std::string& file) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return InternalError("cannot write journal " + file + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0)
    return InternalError("cannot fsync journal " + file + ": " + std::strerror(errno));
  return Status::Ok();
}

std::string EntryLine(const JournalEntry& e) {
  nlohmann::json j = {{"collection", e.collection},
                      {"path", e.path},
                      {"size", e.size},
                      {"mtime_ns", e.mtime_ns},
                      {"id", e.id}};
  // Invalid UTF-8 in a path is replaced rather than failing the run.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

Status IngestJournal::Append(const std::vector<JournalEntry>& entries) {
  if (entries.empty()) return Status::Ok();
  std::string data;
  for (const auto& e : entries) data += EntryLine(e);
  RETURN_IF_ERROR(WriteAll(fd_, data, file_));
  for (const auto& e : entries) {
    keys_.insert(Key(e.collection, e.path, e.size, e.mtime_ns));
    entries_.push_back(e);
  }
  return Status::Ok();
}

Status IngestJournal::Forget(const std::string& collection) {
  std::vector<JournalEntry> kept;
  for (auto& e : entries_) {
    if (e.collection != collection) kept.push_back(e);
  }
  // Rewrite via temp file + fsync + rename so a crash leaves either journal.
  std::string tmp = file_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return InternalError("cannot write " + tmp + ": " + std::strerror(errno));
  std::string data;
  for (const auto& e : kept) data += EntryLine(e);
  Status s = WriteAll(fd, data, tmp);
  ::close(fd);
  RETURN_IF_ERROR(s);
  if (::rename(tmp.c_str(), file_.c_str()) != 0) {
    return InternalError("cannot replace journal " + file_ + ": " + std::strerror(errno));
  }
  ::close(fd_);
  fd_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return InternalError("cannot reopen journal " + file_ + ": " + std::strerror(errno));
  entries_ = std::move(kept);
  keys_.clear();
  for (const auto& e : entries_) keys_.insert(Key(e.collection, e.path, e.size, e.mtime_ns));
  return Status::Ok();
}

// ----------------------------------------------------------------- misc ---

StatusOr<std::vector<float>> ParseVector(const std::string& text) {
  std::vector<float> out;
  std::string s = text;
  // Accept "[a, b, c]" as pasted from JSON output.
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  if (b != std::string::npos && s[b] == '[' && s[e] == ']') s = s.substr(b + 1, e - b - 1);
  std::stringstream ss(s);
  std::string tok;
  int index = 0;
  while (std::getline(ss, tok, ',')) {
    size_t tb = tok.find_first_not_of(" \t"), te = tok.find_last_not_of(" \t");
    std::string t = tb == std::string::npos ? "" : tok.substr(tb, te - tb + 1);
    char* end = nullptr;
    errno = 0;
    float v = std::strtof(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || errno == ERANGE) {
      return InvalidArgumentError("--vector element " + std::to_string(index) + " (\"" + t +
                                  "\") is not a number");
    }
    out.push_back(v);
    ++index;
  }
  if (out.empty())
    return InvalidArgumentError("--vector is empty; expected comma-separated numbers");
  return out;
}

StatusOr<std::map<std::string, std::vector<std::string>>> ParseFilters(
    const std::vector<std::string>& specs) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& spec : specs) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgumentError("--filter \"" + spec + "\" must look like key=value");
    }
    out[spec.substr(0, eq)].push_back(spec.substr(eq + 1));
  }
  return out;
}

StatusOr<std::string> ReadFileBytes(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFoundError("no such file: " + path);
  if (fs::is_directory(path, ec)) return InvalidArgumentError(path + " is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError("cannot open " + path + ": " + std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return InvalidArgumentError("cannot read " + path);
  return data;
}

}  // namespace lookalike
