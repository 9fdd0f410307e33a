#include "server/auth.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "server/metrics.h"

namespace lookalike {
namespace {

std::array<uint8_t, 32> Sha256(std::string_view data) {
  std::array<uint8_t, 32> digest{};
  unsigned int size = 0;
  // EVP_Digest only fails on allocation failure or a missing provider, and
  // SHA-256 is built into OpenSSL's default provider.
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != digest.size()) {
    throw std::runtime_error("OpenSSL EVP_Digest(SHA-256) failed");
  }
  return digest;
}

std::string Hex(const std::array<uint8_t, 32>& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// "file:3" for a node (yaml-cpp counts lines from 0).
std::string Where(const std::string& source, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return source;
  return source + ":" + std::to_string(mark.line + 1);
}

// One entry: {name, role, collections, sha256}.
StatusOr<ApiKey> ParseEntry(const std::string& source, const YAML::Node& entry) {
  const std::string where = Where(source, entry);
  if (!entry.IsMap()) {
    return InvalidArgumentError(where +
                                ": expected a map {name: ..., role: ..., sha256: ...[, "
                                "collections: [...]]} (make one with tools/make_api_key.py)");
  }
  ApiKey key;
  bool has_role = false;
  bool has_hash = false;
  for (const auto& kv : entry) {
    const std::string field = kv.first.Scalar();
    const YAML::Node& value = kv.second;
    if (field == "collections") {
      if (!value.IsSequence()) {
        return InvalidArgumentError(where + ": collections: expected a list of collection names");
      }
      for (const YAML::Node& c : value) {
        if (!c.IsScalar() || c.Scalar().empty()) {
          return InvalidArgumentError(where + ": collections: expected non-empty names");
        }
        key.collections.push_back(c.Scalar());
      }
      if (key.collections.empty()) {
        return InvalidArgumentError(
            where + ": collections: empty list (leave it out for a key valid on every collection)");
      }
      continue;
    }
    if (!value.IsScalar()) {
      return InvalidArgumentError(where + ": " + field + ": expected a single value");
    }
    const std::string text = value.Scalar();
    if (field == "name") {
      key.name = text;
    } else if (field == "role") {
      has_role = true;
      if (text == "admin") {
        key.role = ApiRole::kAdmin;
      } else if (text == "write") {
        key.role = ApiRole::kWrite;
      } else if (text == "read") {
        key.role = ApiRole::kRead;
      } else {
        return InvalidArgumentError(where + ": role: \"" + text +
                                    "\" is not one of admin, write, read");
      }
    } else if (field == "sha256") {
      has_hash = true;
      if (text.size() != 64 ||
          !std::all_of(text.begin(), text.end(), [](char c) { return HexValue(c) >= 0; })) {
        return InvalidArgumentError(
            where + ": sha256: expected 64 hex digits (the SHA-256 of the key), got " +
            std::to_string(text.size()) + " characters" +
            (text.rfind("lk_", 0) == 0 ? " that look like a key: store its hash, never the key"
                                       : ""));
      }
      for (size_t i = 0; i < key.sha256.size(); ++i) {
        key.sha256[i] =
            static_cast<uint8_t>(HexValue(text[2 * i]) * 16 + HexValue(text[2 * i + 1]));
      }
    } else {
      return InvalidArgumentError(where + ": unknown key \"" + field +
                                  "\" (expected name, role, collections, sha256)");
    }
  }
  if (!has_hash) return InvalidArgumentError(where + ": sha256: missing");
  if (!has_role) return InvalidArgumentError(where + ": role: missing (admin, write or read)");
  if (key.name.empty()) key.name = where;
  return key;
}

// How each method of lookalike.v1.Lookalike is guarded.
struct MethodRule {
  ApiRole role;
  const char* collection_field;  // the request's field naming the collection; null = none
  bool all_collections = false;
};

const std::map<std::string, MethodRule>& MethodRules() {
  static const auto* rules = new std::map<std::string, MethodRule>{
      {"Embed", {ApiRole::kRead, nullptr}},
      {"ListModels", {ApiRole::kRead, nullptr}},
      // Its answer names every collection.
      {"ListCollections", {ApiRole::kRead, nullptr, /*all_collections=*/true}},
      {"DescribeCollection", {ApiRole::kRead, "name"}},
      {"Search", {ApiRole::kRead, "collection"}},
      {"Get", {ApiRole::kRead, "collection"}},
      // Also GET /collections/{name}/items/{id}/thumbnail (server/http_thumbnails.h).
      {"GetThumbnail", {ApiRole::kRead, "collection"}},
      {"Upsert", {ApiRole::kWrite, "collection"}},
      {"UpsertStream", {ApiRole::kWrite, "collection"}},
      {"Delete", {ApiRole::kWrite, "collection"}},
      {"CreateCollection", {ApiRole::kAdmin, "name"}},
      {"DropCollection", {ApiRole::kAdmin, "name"}},
  };
  return *rules;
}

}  // namespace

const char* ApiRoleName(ApiRole role) {
  switch (role) {
    case ApiRole::kRead:
      return "read";
    case ApiRole::kWrite:
      return "write";
    case ApiRole::kAdmin:
      return "admin";
  }
  return "none";
}

std::string Sha256Hex(std::string_view key) { return Hex(Sha256(key)); }

StatusOr<std::vector<ApiKey>> ParseApiKeys(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    // e.what() carries "yaml-cpp: error at line L, column C: ...".
    return InvalidArgumentError(source + ": invalid YAML: " + e.what());
  }
  if (root.IsNull()) {
    return InvalidArgumentError(source +
                                ": no keys (add entries made by tools/make_api_key.py, or leave "
                                "out api_keys to serve without keys)");
  }
  if (!root.IsSequence()) {
    return InvalidArgumentError(Where(source, root) +
                                ": expected a list of keys, one \"- {name: ..., role: ..., "
                                "sha256: ...}\" per line");
  }
  std::vector<ApiKey> keys;
  std::map<std::array<uint8_t, 32>, std::string> seen;  // hash -> where
  try {
    for (const YAML::Node& entry : root) {
      ASSIGN_OR_RETURN(ApiKey key, ParseEntry(source, entry));
      auto [it, inserted] = seen.emplace(key.sha256, Where(source, entry));
      if (!inserted) {
        return InvalidArgumentError(Where(source, entry) + ": sha256: the same key as at " +
                                    it->second);
      }
      keys.push_back(std::move(key));
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(source + ": invalid YAML: " + e.what());
  }
  if (keys.empty()) return InvalidArgumentError(source + ": no keys");
  return keys;
}

StatusOr<std::vector<ApiKey>> LoadApiKeys(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError("api_keys: cannot read \"" + path + "\"");
  std::stringstream text;
  text << in.rdbuf();
  return ParseApiKeys(text.str(), path);
}

StatusOr<AccessNeed> AccessNeeded(const std::string& method,
                                  const google::protobuf::Message& request) {
  auto it = MethodRules().find(method);
  if (it == MethodRules().end()) {
    return NotFoundError("method " + method + " has no access rule (server/auth.cc)");
  }
  const MethodRule& rule = it->second;
  AccessNeed need;
  need.role = rule.role;
  need.all_collections = rule.all_collections;
  if (rule.collection_field != nullptr) {
    need.names_collection = true;
    const google::protobuf::FieldDescriptor* field =
        request.GetDescriptor()->FindFieldByName(rule.collection_field);
    if (field == nullptr || field->type() != google::protobuf::FieldDescriptor::TYPE_STRING ||
        field->is_repeated()) {
      return NotFoundError("method " + method + ": request " +
                           request.GetDescriptor()->full_name() + " has no string field \"" +
                           rule.collection_field + "\"");
    }
    need.collection = request.GetReflection()->GetString(request, field);
  }
  return need;
}

AccessNeed MetricsAccess() {
  AccessNeed need;
  need.role = ApiRole::kRead;
  need.all_collections = true;  // metrics name every collection
  return need;
}

Status CheckAccess(const ApiKey& key, const std::string& what, const AccessNeed& need) {
  const std::string on =
      need.names_collection ? " on collection \"" + need.collection + "\"" : std::string();
  if (key.role < need.role) {
    return PermissionDeniedError(what + " needs the " + ApiRoleName(need.role) + " right" + on +
                                 "; key \"" + key.name + "\" has " + ApiRoleName(key.role));
  }
  if (key.collections.empty()) return Status::Ok();
  if (need.all_collections) {
    return PermissionDeniedError(what + " needs a key valid on every collection; key \"" +
                                 key.name + "\" is limited to " + Join(key.collections));
  }
  if (need.names_collection && std::find(key.collections.begin(), key.collections.end(),
                                         need.collection) == key.collections.end()) {
    return PermissionDeniedError(what + " needs the " + ApiRoleName(need.role) + " right" + on +
                                 "; key \"" + key.name + "\" is limited to " +
                                 Join(key.collections));
  }
  return Status::Ok();
}

std::string_view BearerToken(std::string_view authorization) {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!authorization.empty() && is_space(authorization.front())) authorization.remove_prefix(1);
  while (!authorization.empty() && is_space(authorization.back())) authorization.remove_suffix(1);
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() || !is_space(authorization[kScheme.size()])) {
    return {};
  }
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  authorization.remove_prefix(kScheme.size());
  while (!authorization.empty() && is_space(authorization.front())) authorization.remove_prefix(1);
  return authorization;
}

Authenticator::Authenticator(std::vector<ApiKey> keys, Metrics* metrics, bool metrics_require_key)
    : keys_(std::move(keys)), metrics_(metrics), metrics_require_key_(metrics_require_key) {}

void Authenticator::CountFailure(const char* reason) const {
  if (metrics_) metrics_->ObserveAuthFailure(reason);
}

StatusOr<const ApiKey*> Authenticator::Authenticate(std::string_view authorization,
                                                    const std::string& what) const {
  const std::string_view token = BearerToken(authorization);
  if (token.empty()) {
    CountFailure("missing_key");
    spdlog::debug("{}: refused: no API key", what);
    return UnauthenticatedError(
        authorization.empty()
            ? "missing API key: send \"authorization: Bearer <key>\""
            : "authorization: expected \"Bearer <key>\" (the API key after the word Bearer)");
  }
  const std::array<uint8_t, 32> digest = Sha256(token);
  // Every entry is compared, each in constant time, so the time taken does
  // not depend on which entry (if any) matches, nor on how much of it.
  const ApiKey* found = nullptr;
  for (const ApiKey& key : keys_) {
    const bool same = CRYPTO_memcmp(digest.data(), key.sha256.data(), digest.size()) == 0;
    found = same ? &key : found;
  }
  if (found == nullptr) {
    CountFailure("unknown_key");
    spdlog::info("{}: refused: unknown API key", what);
    return UnauthenticatedError("unknown API key (not in the server's keys file)");
  }
  return found;
}

Status Authenticator::Authorize(const ApiKey& key, const std::string& method,
                                const google::protobuf::Message& request) const {
  StatusOr<AccessNeed> need = AccessNeeded(method, request);
  Status status =
      need.ok() ? CheckAccess(key, method, *need) : PermissionDeniedError(need.status().message());
  if (!status.ok()) {
    CountFailure("permission_denied");
    spdlog::info("refused: {}", status.message());  // names the method and the key
  }
  return status;
}

Status Authenticator::Check(std::string_view authorization, const std::string& method,
                            const google::protobuf::Message& request) const {
  ASSIGN_OR_RETURN(const ApiKey* key, Authenticate(authorization, method));
  return Authorize(*key, method, request);
}

Status Authenticator::CheckMetrics(std::string_view authorization) const {
  if (!metrics_require_key_) return Status::Ok();
  ASSIGN_OR_RETURN(const ApiKey* key, Authenticate(authorization, "/metrics"));
  Status status = CheckAccess(*key, "/metrics", MetricsAccess());
  if (!status.ok()) {
    CountFailure("permission_denied");
    spdlog::info("refused: {}", status.message());
  }
  return status;
}

}  // namespace lookalike
