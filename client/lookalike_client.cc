#include "client/lookalike_client.h"

#include <algorithm>
#include <cstdlib>
#include <random>
#include <utility>

#include <google/protobuf/stubs/common.h>
#include <grpcpp/generic/generic_stub.h>

#include "common/file.h"

namespace lookalike {

std::string ResolveServerAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv(kServerEnvVar);
  if (env != nullptr && env[0] != '\0') return env;
  return kDefaultServer;
}

std::string ResolveApiKey(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv(kApiKeyEnvVar);
  return env != nullptr ? env : "";
}

bool StoresVectorsOnly(const v1::CollectionInfo& info) { return info.model() == kVectorsOnly; }

bool IsRetryable(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kResourceExhausted;
}

StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientOptions& options) {
  if (!options.tls()) return grpc::InsecureChannelCredentials();
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return InvalidArgumentError(options.tls_cert.empty()
                                    ? "tls_key is set but tls_cert is not (give both or neither)"
                                    : "tls_cert is set but tls_key is not (give both or neither)");
  }
  grpc::SslCredentialsOptions ssl;
  const std::pair<const std::string*, std::string*> files[] = {
      {&options.tls_ca, &ssl.pem_root_certs},
      {&options.tls_cert, &ssl.pem_cert_chain},
      {&options.tls_key, &ssl.pem_private_key}};
  const char* names[] = {"tls_ca", "tls_cert", "tls_key"};
  for (int i = 0; i < 3; ++i) {
    if (files[i].first->empty()) continue;
    StatusOr<std::string> pem = ReadSmallFile(*files[i].first);
    if (!pem.ok()) return Status(pem.status().code(), names[i] + (": " + pem.status().message()));
    *files[i].second = std::move(*pem);
  }
  return grpc::SslCredentials(ssl);
}

Status ExplainTlsFailure(const Status& status, const ClientOptions& options) {
  if (status.code() != StatusCode::kUnavailable) return status;
  const std::string& m = status.message();
  auto has = [&m](const char* text) { return m.find(text) != std::string::npos; };
  std::string why;
  if (has("certificate verify failed") || has("is not in peer certificate")) {
    why = options.tls_ca.empty()
              ? "the server's certificate is not signed by a CA in gRPC's default roots, or does "
                "not name this host; set tls_ca (--tls-ca) to the CA that signed it"
              : "the server's certificate is not signed by a CA in tls_ca \"" + options.tls_ca +
                    "\", or does not name the host of " + options.server;
  } else if (options.tls() && (has("wrong version number") || has("packet length too long"))) {
    why = "the server at " + options.server + " does not speak TLS (leave out tls_ca, --tls-ca)";
  } else if (has("certificate required") ||
             (has("handshake failure") && options.tls_cert.empty())) {
    why = "the server requires a client certificate (tls_cert and tls_key, --tls-cert --tls-key)";
  } else if (has("unknown ca") || has("bad certificate")) {
    why = "the server does not accept the client certificate tls_cert \"" + options.tls_cert +
          "\" (not signed by a CA it trusts)";
  } else if (has("Socket closed")) {
    // The server hung up during the handshake: also what a TLS server does to
    // a plain client, and (TLS 1.3) to a client certificate it refuses. A
    // hint, since a restarting server looks the same.
    const std::string hint =
        !options.tls() ? "if the server uses TLS, set tls_ca (--tls-ca)"
        : options.tls_cert.empty()
            ? "if the server requires client certificates, set tls_cert and tls_key"
            : "the server may not trust the client certificate tls_cert \"" + options.tls_cert +
                  "\"";
    return Status(status.code(), m + " (" + hint + ")");
  } else {
    return status;
  }
  return Status(status.code(), "TLS: " + why + " [" + m + "]");
}

StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  ClientOptions resolved = options;
  resolved.server = ResolveServerAddress(options.server);
  if (resolved.server.find_first_of(" \t\r\n") != std::string::npos) {
    return InvalidArgumentError("server address \"" + resolved.server +
                                "\" contains whitespace; expected HOST:PORT");
  }
  if (resolved.max_attempts < 1) return InvalidArgumentError("max_attempts must be >= 1");
  resolved.api_key = ResolveApiKey(options.api_key);
  // gRPC metadata values are printable ASCII; a key with a line break (a
  // file read with its newline) would fail every call obscurely.
  if (!std::all_of(resolved.api_key.begin(), resolved.api_key.end(),
                   [](char c) { return c > ' ' && c < 0x7f; })) {
    return InvalidArgumentError(
        "API key contains spaces, line breaks or non-ASCII characters (keys look like lk_...)");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(resolved.max_message_bytes);
  args.SetMaxSendMessageSize(resolved.max_message_bytes);
  // Retries are done here (CallWithRetry) so they are visible and bounded in
  // one place; keep gRPC's own transparent retries off to avoid multiplying.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   MakeChannelCredentials(resolved));
  auto channel = grpc::CreateCustomChannel(resolved.server, credentials, args);
  if (channel == nullptr)
    return InvalidArgumentError("cannot create a channel to \"" + resolved.server + "\"");
  return std::make_unique<Client>(std::move(channel), std::move(resolved));
}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : channel_(std::move(channel)),
      stub_(v1::Lookalike::NewStub(channel_)),
      options_(std::move(options)) {}

Status Client::WaitForConnected(std::chrono::milliseconds timeout) {
  if (channel_->WaitForConnected(std::chrono::system_clock::now() + timeout)) return Status::Ok();
  return UnavailableError("cannot connect to the server at " + options_.server + " within " +
                          std::to_string(timeout.count()) +
                          " ms (is lookalike-server running? set --server or " + kServerEnvVar +
                          ")");
}

namespace {

// A proto3 string must be UTF-8: the server's parser refuses a request that
// carries anything else before any handler sees it, so a text is checked
// here, where the error can name it ("texts[2]: ...").
Status CheckUtf8(const std::string& text, const std::string& label) {
  if (google::protobuf::internal::IsStructurallyValidUTF8(text)) return Status::Ok();
  return InvalidArgumentError(label + ": text is not valid UTF-8");
}

// grpc.health.v1 messages are tiny; encoding them by hand avoids shipping a
// copy of health.proto. HealthCheckRequest { string service = 1; }
// HealthCheckResponse { ServingStatus status = 1; }, SERVING = 1.
std::string EncodeHealthRequest(const std::string& service) {
  std::string out;
  if (service.empty()) return out;
  out.push_back(0x0a);  // field 1, length-delimited
  uint64_t n = service.size();
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
  out += service;
  return out;
}

// Returns the ServingStatus enum value (0 when absent = UNKNOWN), or -1 when
// the bytes are not a HealthCheckResponse.
int DecodeHealthStatus(const std::string& bytes) {
  size_t i = 0;
  int status = 0;
  auto read_varint = [&](uint64_t* v) {
    *v = 0;
    for (int shift = 0; i < bytes.size() && shift < 64; shift += 7) {
      uint8_t b = static_cast<uint8_t>(bytes[i++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  while (i < bytes.size()) {
    uint64_t key;
    if (!read_varint(&key)) return -1;
    uint64_t field = key >> 3, wire = key & 7;
    uint64_t v;
    if (wire == 0) {
      if (!read_varint(&v)) return -1;
      if (field == 1) status = static_cast<int>(v);
    } else if (wire == 2) {
      if (!read_varint(&v) || i + v > bytes.size()) return -1;
      i += v;
    } else {
      return -1;
    }
  }
  return status;
}

}  // namespace

void Client::PrepareContext(grpc::ClientContext* context, std::chrono::milliseconds timeout) const {
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  if (!options_.api_key.empty())
    context->AddMetadata("authorization", "Bearer " + options_.api_key);
}

StatusOr<bool> Client::CheckHealth(const std::string& service, std::chrono::milliseconds timeout) {
  grpc::GenericStub generic(channel_);
  grpc::ClientContext context;
  PrepareContext(&context, timeout);
  std::string request_bytes = EncodeHealthRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::CompletionQueue cq;
  auto call = generic.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  if (!cq.Next(&tag, &ok)) return InternalError("health check: completion queue shut down");
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  RETURN_IF_ERROR(ExplainTlsFailure(FromGrpcStatus(status), options_)
                      .WithPrefix("health check of " + options_.server));
  grpc::Slice out;
  std::string bytes;
  if (response.Length() > 0) {
    if (!response.DumpToSingleSlice(&out).ok())
      return InternalError("health check: unreadable reply");
    bytes.assign(reinterpret_cast<const char*>(out.begin()), out.size());
  }
  int serving = DecodeHealthStatus(bytes);
  if (serving < 0) return InternalError("health check: malformed HealthCheckResponse");
  return serving == 1;
}

Status Client::CallWithRetry(const char* method,
                             const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  thread_local std::mt19937 rng(std::random_device{}());
  double backoff_ms = static_cast<double>(options_.initial_backoff.count());
  Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    grpc::ClientContext context;
    PrepareContext(&context, options_.timeout);
    last = FromGrpcStatus(call(&context));
    if (last.ok() || !IsRetryable(last.code()) || attempt == options_.max_attempts) break;
    // A certificate that is refused stays refused: no retries.
    if (ExplainTlsFailure(last, options_).message().rfind("TLS: ", 0) == 0) break;
    retries_.fetch_add(1);
    // Full jitter in [backoff/2, backoff] spreads the retries of concurrent
    // callers so they do not hit a recovering server at the same instant.
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(static_cast<int64_t>(backoff_ms * jitter(rng))));
    backoff_ms = std::min(backoff_ms * options_.backoff_multiplier,
                          static_cast<double>(options_.max_backoff.count()));
  }
  last = ExplainTlsFailure(last, options_);
  if (!last.ok() && last.code() == StatusCode::kUnavailable) {
    return Status(last.code(),
                  last.message() + " (server " + options_.server + ", method " + method + ")");
  }
  return last;
}

StatusOr<std::vector<v1::ModelInfo>> Client::ListModels() {
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  RETURN_IF_ERROR(CallWithRetry("ListModels", [&](grpc::ClientContext* c) {
    return stub_->ListModels(c, request, &response);
  }));
  return std::vector<v1::ModelInfo>(response.models().begin(), response.models().end());
}

StatusOr<v1::EmbedResponse> Client::Embed(const v1::EmbedRequest& request) {
  for (int i = 0; i < request.texts_size(); ++i) {
    RETURN_IF_ERROR(CheckUtf8(request.texts(i), "texts[" + std::to_string(i) + "]"));
  }
  v1::EmbedResponse response;
  RETURN_IF_ERROR(CallWithRetry(
      "Embed", [&](grpc::ClientContext* c) { return stub_->Embed(c, request, &response); }));
  return response;
}

StatusOr<v1::CollectionInfo> Client::CreateCollection(const v1::CreateCollectionRequest& request) {
  v1::CollectionInfo response;
  RETURN_IF_ERROR(CallWithRetry("CreateCollection", [&](grpc::ClientContext* c) {
    return stub_->CreateCollection(c, request, &response);
  }));
  return response;
}

StatusOr<std::vector<v1::CollectionInfo>> Client::ListCollections() {
  v1::ListCollectionsRequest request;
  v1::ListCollectionsResponse response;
  RETURN_IF_ERROR(CallWithRetry("ListCollections", [&](grpc::ClientContext* c) {
    return stub_->ListCollections(c, request, &response);
  }));
  return std::vector<v1::CollectionInfo>(response.collections().begin(),
                                         response.collections().end());
}

StatusOr<v1::CollectionInfo> Client::DescribeCollection(const std::string& name) {
  v1::DescribeCollectionRequest request;
  request.set_name(name);
  v1::CollectionInfo response;
  RETURN_IF_ERROR(CallWithRetry("DescribeCollection", [&](grpc::ClientContext* c) {
    return stub_->DescribeCollection(c, request, &response);
  }));
  return response;
}

Status Client::DropCollection(const std::string& name) {
  v1::DropCollectionRequest request;
  request.set_name(name);
  v1::DropCollectionResponse response;
  return CallWithRetry("DropCollection", [&](grpc::ClientContext* c) {
    return stub_->DropCollection(c, request, &response);
  });
}

StatusOr<v1::UpsertResponse> Client::Upsert(const v1::UpsertRequest& request) {
  v1::UpsertResponse response;
  RETURN_IF_ERROR(CallWithRetry(
      "Upsert", [&](grpc::ClientContext* c) { return stub_->Upsert(c, request, &response); }));
  return response;
}

StatusOr<v1::UpsertResponse> Client::UpsertStream(const std::string& collection,
                                                  const std::vector<v1::UpsertRequest>& batches) {
  grpc::ClientContext context;
  PrepareContext(&context, options_.timeout);
  v1::UpsertResponse response;
  auto writer = stub_->UpsertStream(&context, &response);
  bool first = true;
  for (const auto& batch : batches) {
    v1::UpsertRequest message = batch;
    if (first && message.collection().empty()) message.set_collection(collection);
    first = false;
    if (!writer->Write(message)) break;  // the server ended the call; Finish() says why
  }
  writer->WritesDone();
  RETURN_IF_ERROR(FromGrpcStatus(writer->Finish()));
  return response;
}

StatusOr<v1::SearchResponse> Client::Search(const v1::SearchRequest& request) {
  for (int i = 0; i < request.queries_size(); ++i) {
    if (request.queries(i).has_text()) {
      RETURN_IF_ERROR(CheckUtf8(request.queries(i).text(), "queries[" + std::to_string(i) + "]"));
    }
  }
  v1::SearchResponse response;
  RETURN_IF_ERROR(CallWithRetry(
      "Search", [&](grpc::ClientContext* c) { return stub_->Search(c, request, &response); }));
  return response;
}

StatusOr<v1::GetResponse> Client::Get(const v1::GetRequest& request) {
  v1::GetResponse response;
  RETURN_IF_ERROR(CallWithRetry(
      "Get", [&](grpc::ClientContext* c) { return stub_->Get(c, request, &response); }));
  return response;
}

StatusOr<int64_t> Client::Delete(const std::string& collection,
                                 const std::vector<std::string>& ids) {
  v1::DeleteRequest request;
  request.set_collection(collection);
  for (const auto& id : ids) request.add_ids(id);
  v1::DeleteResponse response;
  RETURN_IF_ERROR(CallWithRetry(
      "Delete", [&](grpc::ClientContext* c) { return stub_->Delete(c, request, &response); }));
  return response.deleted();
}

StatusOr<v1::GetThumbnailResponse> Client::GetThumbnail(const std::string& collection,
                                                        const std::string& id) {
  v1::GetThumbnailRequest request;
  request.set_collection(collection);
  request.set_id(id);
  v1::GetThumbnailResponse response;
  RETURN_IF_ERROR(CallWithRetry("GetThumbnail", [&](grpc::ClientContext* c) {
    return stub_->GetThumbnail(c, request, &response);
  }));
  return response;
}

// ---------------------------------------------------------- BulkUploader ---

BulkUploader::BulkUploader(Client* client, std::string collection, BulkUploadOptions options,
                           BatchCallback on_batch)
    : client_(client),
      collection_(std::move(collection)),
      options_(options),
      on_batch_(std::move(on_batch)) {
  options_.concurrency = std::max(1, options_.concurrency);
  options_.batch_items = std::max(1, options_.batch_items);
  options_.batch_bytes = std::max<int64_t>(1, options_.batch_bytes);
  pending_.request.set_collection(collection_);
  for (int i = 0; i < options_.concurrency; ++i) workers_.emplace_back([this] { Worker(); });
}

BulkUploader::~BulkUploader() { Finish(); }

void BulkUploader::Add(v1::Item item, int64_t tag) {
  std::unique_lock<std::mutex> lock(mu_);
  int64_t bytes = static_cast<int64_t>(item.ByteSizeLong());
  if (pending_.request.items_size() > 0 && (pending_.request.items_size() >= options_.batch_items ||
                                            pending_.bytes + bytes > options_.batch_bytes)) {
    // Wait for a free slot in the window before handing the batch over.
    cv_.wait(lock, [this] { return in_flight_ < options_.concurrency; });
    FlushLocked();
  }
  *pending_.request.add_items() = std::move(item);
  pending_.tags.push_back(tag);
  pending_.bytes += bytes;
}

void BulkUploader::FlushLocked() {
  if (pending_.request.items_size() == 0) return;
  queue_.push_back(std::move(pending_));
  ++in_flight_;
  pending_ = Batch();
  pending_.request.set_collection(collection_);
  cv_.notify_all();
}

void BulkUploader::Finish() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    cv_.wait(lock, [this] { return in_flight_ < options_.concurrency; });
    FlushLocked();
    closing_ = true;
    cv_.notify_all();
  }
  for (auto& t : workers_) t.join();
  workers_.clear();
}

std::vector<BulkItemResult> BulkUploader::SendBatch(const Batch& batch) {
  const int n = batch.request.items_size();
  std::vector<BulkItemResult> results(n);
  for (int i = 0; i < n; ++i) {
    results[i].id = batch.request.items(i).id();
    results[i].tag = batch.tags[i];
  }
  // Whole-call failures are retried inside Client::Upsert. Items the server
  // rejected one by one with a retryable code (e.g. RESOURCE_EXHAUSTED when
  // its queue is full) are re-sent here, alone, with the same backoff policy.
  std::vector<int> todo(n);
  for (int i = 0; i < n; ++i) todo[i] = i;
  const ClientOptions& copts = client_->options();
  double backoff_ms = static_cast<double>(copts.initial_backoff.count());
  for (int attempt = 1; !todo.empty(); ++attempt) {
    v1::UpsertRequest request;
    request.set_collection(batch.request.collection());
    for (int i : todo) *request.add_items() = batch.request.items(i);
    auto reply = client_->Upsert(request);
    std::vector<int> again;
    if (!reply.ok()) {
      for (int i : todo) results[i].status = reply.status();
    } else if (reply->statuses_size() != request.items_size()) {
      Status bad =
          InternalError("server replied with " + std::to_string(reply->statuses_size()) +
                        " item statuses for " + std::to_string(request.items_size()) + " items");
      for (int i : todo) results[i].status = bad;
    } else {
      for (int j = 0; j < reply->statuses_size(); ++j) {
        const auto& s = reply->statuses(j);
        int i = todo[j];
        if (s.code() == 0) {
          results[i].status = Status::Ok();
          continue;
        }
        int code =
            s.code() > 0 && s.code() <= static_cast<int>(StatusCode::kDataLoss) ? s.code() : 2;
        results[i].status = Status(static_cast<StatusCode>(code), s.message());
        if (IsRetryable(results[i].status.code())) again.push_back(i);
      }
    }
    if (again.empty() || attempt >= copts.max_attempts) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(backoff_ms)));
    backoff_ms = std::min(backoff_ms * copts.backoff_multiplier,
                          static_cast<double>(copts.max_backoff.count()));
    todo = std::move(again);
  }
  return results;
}

void BulkUploader::Worker() {
  for (;;) {
    Batch batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;  // closing and drained
      batch = std::move(queue_.front());
      queue_.pop_front();
    }
    std::vector<BulkItemResult> results = SendBatch(batch);
    {
      std::lock_guard<std::mutex> callback_lock(callback_mu_);
      if (on_batch_) on_batch_(results);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      --in_flight_;
    }
    cv_.notify_all();
  }
}

}  // namespace lookalike
