// API keys: who may call what (docs/security.md, "API keys").
//
// A keys file (--api-keys FILE, config `api_keys`) lists one entry per key:
// the SHA-256 of the key (never the key itself), a role, optionally the
// collections the key is limited to, and a name for logs. It is a YAML list,
// one flow map per line, so an entry made by tools/make_api_key.py can be
// appended as it is:
//
//   - {name: web-shop, role: read, collections: [shoes, bags], sha256: 9f86d081...}
//
// Roles, each including the rights of the ones below it:
//   admin  CreateCollection, DropCollection (and everything below)
//   write  Upsert, UpsertStream, Delete     (and everything below)
//   read   Search, Get, GetThumbnail (also over HTTP GET), Embed, ListModels,
//          ListCollections, DescribeCollection
// A key limited to collections may call a method that names a collection only
// for those, methods that name none (Embed, ListModels) freely, and never
// ListCollections (its answer names every collection).
//
// Clients send `authorization: Bearer <key>` (gRPC metadata or HTTP header).
// A missing or unknown key is UNAUTHENTICATED; a known key without the right
// is PERMISSION_DENIED naming the right (and the collection). Both transports
// call the same Authenticator, whose rule is AccessNeeded + CheckAccess.
//
// Keys are 256-bit random strings, so a single SHA-256 is enough at rest: a
// slow password hash guards guessable secrets, and these are not guessable.
// The presented key is hashed and compared with every entry in constant time.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace google::protobuf {
class Message;
}  // namespace google::protobuf

namespace lookalike {

class Metrics;

// Ordered: each role has the rights of the smaller ones.
enum class ApiRole { kRead = 1, kWrite = 2, kAdmin = 3 };

// "read", "write", "admin".
const char* ApiRoleName(ApiRole role);

struct ApiKey {
  std::string name;  // for logs and messages; never the key
  ApiRole role = ApiRole::kRead;
  std::vector<std::string> collections;  // empty = every collection
  std::array<uint8_t, 32> sha256{};      // SHA-256 of the key's UTF-8 bytes
};

// SHA-256 of `key` (lowercase hex: 64 characters).
std::string Sha256Hex(std::string_view key);

// Parses a keys file. `source` (the path) names the file in errors, with the
// line and what is wrong: "keys.yaml:3: role: \"reader\" is not one of admin,
// write, read". A file without keys is an error (leave out --api-keys to serve
// without keys).
StatusOr<std::vector<ApiKey>> ParseApiKeys(const std::string& text, const std::string& source);
// Reads and parses the file at `path`.
StatusOr<std::vector<ApiKey>> LoadApiKeys(const std::string& path);

// What a call needs.
struct AccessNeed {
  ApiRole role = ApiRole::kAdmin;
  bool names_collection = false;  // the method names a collection (maybe "")
  std::string collection;         // ... this one
  bool all_collections = false;   // needs a key not limited to collections
};

// The right each method of lookalike.v1.Lookalike needs, with the collection
// its `request` names. NOT_FOUND for a method without a rule (refused: a new
// rpc must be given one; a test checks every method of the descriptor).
StatusOr<AccessNeed> AccessNeeded(const std::string& method,
                                  const google::protobuf::Message& request);
// The right reading /metrics needs when metrics_require_key is set.
AccessNeed MetricsAccess();

// The rule: OK when `key` has `need`, else PERMISSION_DENIED naming `what`
// (the method), the role needed and the collection.
Status CheckAccess(const ApiKey& key, const std::string& what, const AccessNeed& need);

// The key of an `authorization` value "Bearer <key>" (scheme case-insensitive,
// spaces around the key ignored); "" when absent or another scheme.
std::string_view BearerToken(std::string_view authorization);

// The keys of a server, with failure counting (lookalike_auth_failures_total)
// and logging (key names, never keys). Thread-safe; immutable once built.
class Authenticator {
 public:
  // `metrics` may be null; it must outlive the authenticator.
  Authenticator(std::vector<ApiKey> keys, Metrics* metrics, bool metrics_require_key);

  // The key an `authorization` value carries: UNAUTHENTICATED when it carries
  // none or one not in the file. `what` (method or path) is for the log.
  StatusOr<const ApiKey*> Authenticate(std::string_view authorization,
                                       const std::string& what) const;
  // AccessNeeded + CheckAccess for a call of `method` by `key`.
  Status Authorize(const ApiKey& key, const std::string& method,
                   const google::protobuf::Message& request) const;
  // Authenticate, then Authorize.
  Status Check(std::string_view authorization, const std::string& method,
               const google::protobuf::Message& request) const;
  // GET /metrics: OK when metrics are open, else as Check for MetricsAccess().
  Status CheckMetrics(std::string_view authorization) const;

  size_t size() const { return keys_.size(); }

 private:
  void CountFailure(const char* reason) const;

  const std::vector<ApiKey> keys_;
  Metrics* const metrics_;
  const bool metrics_require_key_;
};

}  // namespace lookalike
