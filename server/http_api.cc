#include "server/http_api.h"

#include "server/http_thumbnails.h"
#include "server/proto_json.h"
#include "server/web_assets.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <utility>

namespace lookalike {
namespace pb = ::lookalike::v1;
using google::protobuf::Message;

std::string ConnectCodeName(StatusCode code) {
  std::string name = GrpcCodeName(static_cast<int>(code));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // gRPC spells it CANCELLED; Connect spells it canceled.
  return name == "cancelled" ? "canceled" : name;
}

int ConnectHttpStatus(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kCancelled:
      return 499;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kUnknown:
    case StatusCode::kInternal:
    case StatusCode::kDataLoss:
      return 500;
  }
  return 500;
}

namespace {

// The Connect error body; `http_status` overrides the code's own status
// (415, 405, 413 say more than the code alone).
HttpResponse ErrorWithStatus(const Status& status, int http_status) {
  HttpResponse r;
  r.status = http_status;
  r.content_type = "application/json";
  nlohmann::json body = {{"code", ConnectCodeName(status.code())}, {"message", status.message()}};
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (http_status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");  // RFC 6750
  return r;
}

HttpResponse JsonResponse(std::string body) {
  HttpResponse r;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

// GET / and /<file> of the web page, with revalidation by ETag; nullopt for
// another path.
std::optional<HttpResponse> WebPage(const HttpRequest& request) {
  const std::string path = request.path == "/" ? "/index.html" : request.path;
  for (const WebAsset& asset : WebAssets()) {
    if (path != asset.path) continue;
    if (std::optional<HttpResponse> refused = RefuseUnlessGet(request)) return refused;
    HttpResponse r;
    r.head_only = request.method == "HEAD";
    r.headers.emplace_back("ETag", asset.etag);
    r.headers.emplace_back("Cache-Control", "no-cache");  // revalidate: a new server, a new page
    if (request.Header("if-none-match") == asset.etag) {
      r.status = 304;
      r.head_only = true;
      r.content_type = asset.content_type;
      return r;
    }
    r.content_type = asset.content_type;
    r.body.assign(reinterpret_cast<const char*>(asset.data), asset.size);
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    return r;
  }
  return std::nullopt;
}

bool IsJsonContentType(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type == "application/json";
}

}  // namespace

HttpResponse ConnectErrorResponse(const Status& status) {
  return ErrorWithStatus(status, ConnectHttpStatus(status.code()));
}

// One served method: how to make its messages and run it. `call` is null for
// a method the HTTP API refuses (`refusal` says why).
struct HttpApi::Method {
  const google::protobuf::MethodDescriptor* descriptor = nullptr;
  std::function<std::unique_ptr<Message>()> new_request;
  std::function<std::unique_ptr<Message>()> new_response;
  std::function<void(LookalikeService&, const Message&, Message*,
                     LookalikeService::FinishFn finish)>
      call;
  Status refusal;
};

namespace {

using FinishFn = LookalikeService::FinishFn;

// A table entry from a typed call.
template <typename Request, typename Response>
std::unique_ptr<HttpApi::Method> Entry(
    std::function<void(LookalikeService&, const Request&, Response*, FinishFn)> call) {
  auto m = std::make_unique<HttpApi::Method>();
  m->new_request = [] { return std::make_unique<Request>(); };
  m->new_response = [] { return std::make_unique<Response>(); };
  m->call = [call = std::move(call)](LookalikeService& service, const Message& request,
                                     Message* response, FinishFn finish) {
    call(service, static_cast<const Request&>(request), static_cast<Response*>(response),
         std::move(finish));
  };
  return m;
}

// The same for work that is done when it returns.
template <typename Request, typename Response>
std::unique_ptr<HttpApi::Method> SyncEntry(
    std::function<Status(LookalikeService&, const Request&, Response*)> call) {
  return Entry<Request, Response>(
      [call = std::move(call)](LookalikeService& service, const Request& request,
                               Response* response,
                               FinishFn finish) { finish(call(service, request, response)); });
}

// Every method of lookalike.v1.Lookalike, by name: the one hand-written
// part, checked against the descriptor by HttpApi (types) and by a test
// (completeness).
std::map<std::string, std::unique_ptr<HttpApi::Method>> MethodTable() {
  using S = LookalikeService;
  std::map<std::string, std::unique_ptr<HttpApi::Method>> t;
  t["Embed"] = Entry<pb::EmbedRequest, pb::EmbedResponse>(
      [](S& s, const pb::EmbedRequest& q, pb::EmbedResponse* r, FinishFn f) {
        s.DoEmbed(q, r, std::move(f));
      });
  t["CreateCollection"] = SyncEntry<pb::CreateCollectionRequest, pb::CollectionInfo>(
      [](S& s, const pb::CreateCollectionRequest& q, pb::CollectionInfo* r) {
        return s.DoCreateCollection(q, r);
      });
  t["ListCollections"] = SyncEntry<pb::ListCollectionsRequest, pb::ListCollectionsResponse>(
      [](S& s, const pb::ListCollectionsRequest&, pb::ListCollectionsResponse* r) {
        return s.DoListCollections(r);
      });
  t["DescribeCollection"] = SyncEntry<pb::DescribeCollectionRequest, pb::CollectionInfo>(
      [](S& s, const pb::DescribeCollectionRequest& q, pb::CollectionInfo* r) {
        return s.DoDescribeCollection(q.name(), r);
      });
  t["DropCollection"] = SyncEntry<pb::DropCollectionRequest, pb::DropCollectionResponse>(
      [](S& s, const pb::DropCollectionRequest& q, pb::DropCollectionResponse*) {
        return s.DoDropCollection(q.name());
      });
  t["Upsert"] = Entry<pb::UpsertRequest, pb::UpsertResponse>(
      [](S& s, const pb::UpsertRequest& q, pb::UpsertResponse* r, FinishFn f) {
        s.DoUpsert(q, 0, r, std::move(f));
      });
  t["Search"] = Entry<pb::SearchRequest, pb::SearchResponse>(
      [](S& s, const pb::SearchRequest& q, pb::SearchResponse* r, FinishFn f) {
        s.DoSearch(q, r, std::move(f));
      });
  t["Get"] = SyncEntry<pb::GetRequest, pb::GetResponse>(
      [](S& s, const pb::GetRequest& q, pb::GetResponse* r) { return s.DoGet(q, r); });
  t["GetThumbnail"] = SyncEntry<pb::GetThumbnailRequest, pb::GetThumbnailResponse>(
      [](S& s, const pb::GetThumbnailRequest& q, pb::GetThumbnailResponse* r) {
        return s.DoGetThumbnail(q, r);
      });
  t["Delete"] = SyncEntry<pb::DeleteRequest, pb::DeleteResponse>(
      [](S& s, const pb::DeleteRequest& q, pb::DeleteResponse* r) { return s.DoDelete(q, r); });
  t["ListModels"] = SyncEntry<pb::ListModelsRequest, pb::ListModelsResponse>(
      [](S& s, const pb::ListModelsRequest&, pb::ListModelsResponse* r) {
        return s.DoListModels(r);
      });
  return t;
}

const google::protobuf::ServiceDescriptor* ServiceDescriptor() {
  return pb::EmbedRequest::descriptor()->file()->FindServiceByName("Lookalike");
}

}  // namespace

std::string HttpApi::MethodPrefix() { return "/" + ServiceDescriptor()->full_name() + "/"; }

HttpApi::HttpApi(LookalikeService* service, Metrics* metrics, std::function<bool()> healthy,
                 int64_t max_message_bytes)
    : service_(service),
      metrics_(metrics),
      healthy_(std::move(healthy)),
      max_message_bytes_(max_message_bytes) {
  std::map<std::string, std::unique_ptr<Method>> table = MethodTable();
  const google::protobuf::ServiceDescriptor* svc = ServiceDescriptor();
  for (int i = 0; i < svc->method_count(); ++i) {
    const google::protobuf::MethodDescriptor* d = svc->method(i);
    std::unique_ptr<Method> m;
    if (d->client_streaming() || d->server_streaming()) {
      m = std::make_unique<Method>();
      m->refusal = UnimplementedError(
          d->name() +
          " is a streaming method, which the HTTP API does not serve; send the same "
          "messages one by one to " +
          MethodPrefix() + "Upsert");
    } else if (auto it = table.find(d->name()); it != table.end()) {
      m = std::move(it->second);
      // A table entry with the wrong message types would misread requests.
      if (m->new_request()->GetDescriptor() != d->input_type() ||
          m->new_response()->GetDescriptor() != d->output_type()) {
        m->call = nullptr;
        m->refusal = InternalError(d->name() + ": the HTTP table's message types differ from " +
                                   d->full_name() + "'s");
      }
    } else {
      m = std::make_unique<Method>();
      m->refusal =
          UnimplementedError(d->name() + " is not served over HTTP yet (missing in http_api.cc)");
    }
    m->descriptor = d;
    methods_[d->name()] = std::move(m);
  }
}

HttpApi::~HttpApi() = default;

std::vector<std::string> HttpApi::MethodsWithoutHandler() const {
  std::vector<std::string> missing;
  for (const auto& [name, m] : methods_) {
    const bool streaming = m->descriptor->client_streaming() || m->descriptor->server_streaming();
    if (!streaming && !m->call) missing.push_back(name);
  }
  return missing;
}

HttpServerOptions HttpApi::ServerOptions() const {
  HttpServerOptions options;
  options.max_body_bytes = max_message_bytes_ / 3 * 4 + (64 << 10);
  options.error_response = [](int http_status, const std::string& message) {
    StatusCode code = StatusCode::kInvalidArgument;
    if (http_status == 413 || http_status == 431) code = StatusCode::kResourceExhausted;
    if (http_status == 408) code = StatusCode::kDeadlineExceeded;
    if (http_status >= 500) code = StatusCode::kInternal;
    return ErrorWithStatus(Status(code, message), http_status);
  };
  return options;
}

void HttpApi::Handle(HttpRequest request, HttpServer::Respond respond) {
  if (std::optional<HttpResponse> r =
          MetricsEndpoint(request, metrics_, healthy_, service_->authenticator())) {
    return respond(std::move(*r));
  }
  if (std::optional<HttpResponse> r = WebPage(request)) return respond(std::move(*r));
  if (HandleThumbnailRequest(service_, request, respond)) return;
  const std::string prefix = MethodPrefix();
  if (request.path.compare(0, prefix.size(), prefix) != 0) {
    return respond(ErrorWithStatus(NotFoundError("no such path: " + request.path +
                                                 " (methods are POST " + prefix + "<Method>)"),
                                   404));
  }
  const std::string name = request.path.substr(prefix.size());
  auto it = methods_.find(name);
  if (it == methods_.end()) {
    std::string known;
    for (const auto& [n, m] : methods_) known += (known.empty() ? "" : ", ") + n;
    return respond(ErrorWithStatus(
        UnimplementedError("no method \"" + name + "\" in " + ServiceDescriptor()->full_name() +
                           " (methods: " + known + ")"),
        404));
  }
  if (request.method != "POST") {
    HttpResponse r = ErrorWithStatus(
        UnimplementedError(request.method + " " + request.path + ": methods are called with POST"),
        405);
    r.headers.emplace_back("Allow", "POST");
    return respond(std::move(r));
  }
  const std::string content_type = request.Header("content-type");
  if (!IsJsonContentType(content_type)) {
    HttpResponse r = ErrorWithStatus(
        UnimplementedError("Content-Type must be application/json (got \"" + content_type +
                           "\"); request and response are protobuf's JSON mapping"),
        415);
    r.headers.emplace_back("Accept-Post", "application/json");
    return respond(std::move(r));
  }
  const Method& method = *it->second;
  // The key before the body is parsed; its right on the collection once it is.
  const ApiKey* key = nullptr;
  if (const Authenticator* auth = service_->authenticator()) {
    StatusOr<const ApiKey*> found = auth->Authenticate(request.Header("authorization"), name);
    if (!found.ok()) {
      service_->Record(method.descriptor->name().c_str(), found.status(), 0);
      return respond(ConnectErrorResponse(found.status()));
    }
    key = *found;
  }
  if (!method.call) return respond(ConnectErrorResponse(method.refusal));
  CallMethod(method, key, std::move(request), std::move(respond));
}

void HttpApi::CallMethod(const Method& method, const ApiKey* key, HttpRequest request,
                         HttpServer::Respond respond) {
  // Parsing and printing run on the handler pool with the call itself.
  std::shared_ptr<Message> in = method.new_request();
  std::shared_ptr<Message> out = method.new_response();
  auto body = std::make_shared<std::string>(std::move(request.body));
  const int64_t max_bytes = max_message_bytes_;
  service_->Run(
      method.descriptor->name().c_str(),
      [&method, key, in, out, body, max_bytes,
       service = service_](LookalikeService::FinishFn finish) {
        const Status parsed = JsonToMessage(body->empty() ? "{}" : *body, in.get());
        if (!parsed.ok()) {
          return finish(InvalidArgumentError("request body is not a JSON " +
                                             in->GetDescriptor()->full_name() + ": " +
                                             parsed.message()));
        }
        body->clear();
        body->shrink_to_fit();
        const size_t size = in->ByteSizeLong();
        if (static_cast<int64_t>(size) > max_bytes) {
          return finish(ResourceExhaustedError("request message is " + std::to_string(size) +
                                               " bytes, over limits.max_message_bytes (" +
                                               std::to_string(max_bytes) + ")"));
        }
        if (key != nullptr) {
          Status allowed =
              service->authenticator()->Authorize(*key, method.descriptor->name(), *in);
          if (!allowed.ok()) return finish(allowed);
        }
        method.call(*service, *in, out.get(), std::move(finish));
      },
      [in, out, respond = std::move(respond)](Status status) {
        if (!status.ok()) return respond(ConnectErrorResponse(status));
        std::string json;
        const Status printed = MessageToJson(*out, &json);
        if (!printed.ok()) return respond(ConnectErrorResponse(printed));
        respond(JsonResponse(std::move(json)));
      });
}

}  // namespace lookalike
