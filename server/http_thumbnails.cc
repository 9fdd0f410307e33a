#include "server/http_thumbnails.h"

#include <memory>
#include <utility>
#include <vector>

#include "server/auth.h"
#include "server/http_api.h"

namespace lookalike {
namespace {

namespace pb = ::lookalike::v1;

constexpr const char* kThumbnailShape = "GET /collections/{name}/items/{id}/thumbnail";
// Counted in the metrics, and checked against API keys, as the rpc.
constexpr const char* kMethod = "GetThumbnail";

// The path's segments after the leading "/".
std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string ThumbnailPath(const std::string& collection, const std::string& id) {
  return std::string(kCollectionsPathPrefix) + PercentEncode(collection) + "/items/" +
         PercentEncode(id) + "/thumbnail";
}

bool HandleThumbnailRequest(LookalikeService* service, const HttpRequest& request,
                            const HttpServer::Respond& respond) {
  const std::string prefix = kCollectionsPathPrefix;
  if (request.path.compare(0, prefix.size(), prefix) != 0) return false;
  const std::vector<std::string> parts = Segments(request.path);
  if (parts.size() != 5 || parts[1].empty() || parts[2] != "items" || parts[3].empty() ||
      parts[4] != "thumbnail") {
    respond(ConnectErrorResponse(NotFoundError("no such path: " + request.path +
                                               " (thumbnails are " + kThumbnailShape + ")")));
    return true;
  }
  if (std::optional<HttpResponse> refused = RefuseUnlessGet(request)) {
    HttpResponse r = ConnectErrorResponse(
        UnimplementedError(request.method + " " + request.path + ": thumbnails are read with GET"));
    r.status = 405;
    r.headers = refused->headers;
    respond(std::move(r));
    return true;
  }
  StatusOr<std::string> collection = PercentDecode(parts[1]);
  StatusOr<std::string> id = PercentDecode(parts[3]);
  if (!collection.ok() || !id.ok()) {
    const Status& bad = !collection.ok() ? collection.status() : id.status();
    respond(ConnectErrorResponse(InvalidArgumentError(request.path + ": " + bad.message())));
    return true;
  }
  // The GetThumbnail rpc's request: the same access rule (server/auth.cc),
  // the same lookup and the same errors (LookalikeService::DoGetThumbnail).
  auto call = std::make_shared<pb::GetThumbnailRequest>();
  call->set_collection(*std::move(collection));
  call->set_id(*std::move(id));
  if (const Authenticator* auth = service->authenticator()) {
    const Status allowed = auth->Check(request.Header("authorization"), kMethod, *call);
    if (!allowed.ok()) {
      service->Record(kMethod, allowed, 0);
      respond(ConnectErrorResponse(allowed));
      return true;
    }
  }
  auto thumbnail = std::make_shared<pb::GetThumbnailResponse>();
  const bool head = request.method == "HEAD";
  const std::string if_none_match = request.Header("if-none-match");
  service->Run(
      kMethod,
      [service, call, thumbnail](LookalikeService::FinishFn finish) {
        finish(service->DoGetThumbnail(*call, thumbnail.get()));
      },
      [thumbnail, head, if_none_match, respond](Status status) {
        if (!status.ok()) return respond(ConnectErrorResponse(status));
        HttpResponse r;
        r.content_type = "image/jpeg";
        r.headers.emplace_back("ETag", thumbnail->etag());
        r.headers.emplace_back("Cache-Control", "no-cache");
        r.headers.emplace_back("X-Content-Type-Options", "nosniff");
        if (!if_none_match.empty() && IfNoneMatchMatches(if_none_match, thumbnail->etag())) {
          r.status = 304;
          r.head_only = true;  // no body; Content-Length of the body it stands for
        } else {
          r.head_only = head;
        }
        r.body = std::move(*thumbnail->mutable_jpeg());
        respond(std::move(r));
      });
  return true;
}

}  // namespace lookalike
