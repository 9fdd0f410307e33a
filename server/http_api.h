// lookalike.v1.Lookalike over HTTP/JSON, in the Connect protocol's unary
// shape (https://connectrpc.com/docs/protocol), so Connect clients and plain
// `curl` both work:
//
//   POST /lookalike.v1.Lookalike/<Method>
//   Content-Type: application/json
//   {"collection": "shoes", "queries": [{"image": "<base64>"}], "k": 5}
//
// Request and response bodies are the method's messages in protobuf's
// canonical JSON mapping (server/proto_json.h; lowerCamelCase names; snake_case accepted on input;
// bytes as base64; 64-bit integers as strings; fields at their default value
// omitted). Unknown fields are errors.
//
// Errors: HTTP status from the code (ConnectHttpStatus) and a JSON body
//   {"code": "invalid_argument", "message": "queries[0]: ..."}
// with the code's Connect name (the gRPC name in lower case). Besides the
// service's own errors:
//   unknown method                                404 unimplemented
//   not POST                                      405 unimplemented (Allow: POST)
//   Content-Type other than application/json     415 unimplemented
//   UpsertStream (client-streaming)               501 unimplemented: use Upsert
//   body that is not the method's JSON message    400 invalid_argument
//   body over the limit                           413 resource_exhausted
//   message over limits.max_message_bytes         429 resource_exhausted
//   missing or unknown API key (server/auth.h)     401 unauthenticated (WWW-Authenticate: Bearer)
//   API key without the right                     403 permission_denied
// (the body limit is max_message_bytes * 4/3 + 64 KiB, room for base64; the
// decoded message then meets the same limit as on gRPC).
//
// Methods are found by name in the service's descriptor; every unary method
// of the descriptor must have an entry in the table of http_api.cc
// (HttpApi::MethodsWithoutHandler() lists any that lack one; a test keeps it
// empty). Work runs on the service's handler pool, not on the HTTP I/O threads.
//
// Also served on this port: the web page at / (server/web/, compiled in;
// ETag + Cache-Control: no-cache), item thumbnails at
// GET /collections/{name}/items/{id}/thumbnail (server/http_thumbnails.h),
// and GET /metrics and /healthz (server/metrics.h).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/auth.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/service.h"

namespace lookalike {

// The Connect name of a code: "invalid_argument"; "ok" for OK.
std::string ConnectCodeName(StatusCode code);
// The HTTP status Connect assigns to a code (200 for OK).
int ConnectHttpStatus(StatusCode code);
// The Connect unary error: {"code": ..., "message": ...} with its HTTP status.
HttpResponse ConnectErrorResponse(const Status& status);

class HttpApi {
 public:
  // The path prefix of the methods: "/lookalike.v1.Lookalike/".
  static std::string MethodPrefix();

  // `service` and `metrics` must outlive the API; `healthy` answers /healthz.
  HttpApi(LookalikeService* service, Metrics* metrics, std::function<bool()> healthy,
          int64_t max_message_bytes);
  ~HttpApi();

  // The HttpServer handler.
  void Handle(HttpRequest request, HttpServer::Respond respond);
  // Options for the HttpServer this API runs on (body limit, JSON errors).
  HttpServerOptions ServerOptions() const;

  // Unary methods of the service descriptor without an entry in the table;
  // empty when every method is served.
  std::vector<std::string> MethodsWithoutHandler() const;

  struct Method;

 private:
  // `key`: the caller's API key; null when the server has none.
  void CallMethod(const Method& method, const ApiKey* key, HttpRequest request,
                  HttpServer::Respond respond);

  LookalikeService* const service_;
  Metrics* const metrics_;
  const std::function<bool()> healthy_;
  const int64_t max_message_bytes_;
  std::map<std::string, std::unique_ptr<Method>> methods_;  // by method name
};

}  // namespace lookalike
