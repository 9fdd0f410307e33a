// Client library for the lookalike.v1 gRPC API.
//
//   ClientOptions options;                  // server "" = $LOOKALIKE_SERVER or localhost:50051
//   ASSIGN_OR_RETURN(auto client, Client::Connect(options));
//   ASSIGN_OR_RETURN(v1::SearchResponse r, client->Search(request));
//
// Every RPC is a typed method that returns lookalike::Status / StatusOr; the
// grpc::Status -> lookalike::Status conversion is FromGrpcStatus
// (server/grpc_status.h, the small library lookalike_grpc_status shared with
// the server). Each attempt has its own deadline (ClientOptions::timeout);
// UNAVAILABLE and RESOURCE_EXHAUSTED are retried with exponential backoff and
// jitter up to ClientOptions::max_attempts. Every RPC of the API is safe to
// retry: Upsert replaces by id, Delete and Drop are idempotent in effect (a
// retried Drop/Create whose first attempt did land reports NOT_FOUND /
// ALREADY_EXISTS, which callers should treat accordingly).
//
// Thread safety: a Client may be shared by any number of threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/status.h"
#include "index/types.h"
#include "lookalike/v1/lookalike.grpc.pb.h"
#include "server/grpc_status.h"

namespace lookalike {

constexpr char kDefaultServer[] = "localhost:50051";
constexpr char kServerEnvVar[] = "LOOKALIKE_SERVER";

// `flag` if non-empty, else $LOOKALIKE_SERVER if set and non-empty, else
// localhost:50051.
std::string ResolveServerAddress(const std::string& flag);

constexpr char kApiKeyEnvVar[] = "LOOKALIKE_API_KEY";

// `flag` if non-empty, else $LOOKALIKE_API_KEY if set, else "" (no key).
std::string ResolveApiKey(const std::string& flag);

// True for the codes a caller should retry after a pause.
bool IsRetryable(StatusCode code);

// True for a collection that stores raw vectors only: its model is
// kVectorsOnly ("none", index/types.h), so image items and image queries are
// refused.
bool StoresVectorsOnly(const v1::CollectionInfo& info);

struct ClientOptions {
  std::string server;                        // HOST:PORT; "" = ResolveServerAddress("")
  std::chrono::milliseconds timeout{60000};  // deadline of each attempt
  int max_attempts = 6;                      // 1 = no retries; 6 waits ~6 s in all
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  double backoff_multiplier = 2.0;
  int max_message_bytes = 64 << 20;  // receive/send limit of this channel

  // API key (docs/security.md), sent as "authorization: Bearer <key>" with
  // every call; "" = ResolveApiKey(""): $LOOKALIKE_API_KEY, or no key.
  std::string api_key;
  // TLS (docs/security.md#tls): PEM file paths; setting any of them makes the
  // channel TLS. tls_ca: the CA certificates that must have signed the
  // server's certificate ("" = gRPC's default roots). tls_cert + tls_key:
  // this client's certificate for a server that requires mutual TLS.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  bool tls() const { return !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty(); }
};

// Insecure credentials, or SSL credentials from the options' TLS files
// (read now). Errors name the option and the file:
//   tls_ca: cannot read "/x/ca.pem": No such file or directory
StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const ClientOptions& options);

// An UNAVAILABLE `status` whose gRPC message shows a failed TLS handshake
// gets a first sentence saying which side refused what ("TLS: the server's
// certificate is not signed by a CA in tls_ca ..."), gRPC's text kept in
// brackets; the client does not retry these. A connection the server closed
// gets a hint about TLS settings appended. Any other status comes back as is.
Status ExplainTlsFailure(const Status& status, const ClientOptions& options);

class Client {
 public:
  // Creates the channel (it connects lazily, on the first call). Fails only on
  // an empty or malformed address, or TLS files that cannot be read.
  static StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);

  // Wraps an existing channel (tests, custom credentials).
  Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options);

  const std::string& server() const { return options_.server; }
  const ClientOptions& options() const { return options_; }

  // Waits until the channel is connected; UNAVAILABLE naming the server after
  // `timeout`.
  Status WaitForConnected(std::chrono::milliseconds timeout);

  // grpc.health.v1.Health/Check for `service` ("" = the whole server).
  // Returns true when SERVING. Not retried.
  StatusOr<bool> CheckHealth(const std::string& service = "",
                             std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

  StatusOr<std::vector<v1::ModelInfo>> ListModels();
  // Embed and Search refuse a text that is not valid UTF-8 before sending
  // (INVALID_ARGUMENT naming it, "texts[i]" / "queries[i]"): a proto3 string
  // must be UTF-8, and the server's parser would refuse the whole call.
  StatusOr<v1::EmbedResponse> Embed(const v1::EmbedRequest& request);

  StatusOr<v1::CollectionInfo> CreateCollection(const v1::CreateCollectionRequest& request);
  StatusOr<std::vector<v1::CollectionInfo>> ListCollections();
  StatusOr<v1::CollectionInfo> DescribeCollection(const std::string& name);
  Status DropCollection(const std::string& name);

  // The call succeeds when the request as a whole was accepted; items may
  // still have failed individually (see UpsertResponse::statuses).
  StatusOr<v1::UpsertResponse> Upsert(const v1::UpsertRequest& request);
  // Sends `batches` over one UpsertStream call (the first names the
  // collection). Not retried: a broken stream leaves an unknown prefix written;
  // use BulkUploader for resumable ingest.
  StatusOr<v1::UpsertResponse> UpsertStream(const std::string& collection,
                                            const std::vector<v1::UpsertRequest>& batches);

  StatusOr<v1::SearchResponse> Search(const v1::SearchRequest& request);
  StatusOr<v1::GetResponse> Get(const v1::GetRequest& request);
  // Returns how many of the ids existed.
  StatusOr<int64_t> Delete(const std::string& collection, const std::vector<std::string>& ids);
  // The JPEG thumbnail kept with item `id` and its ETag (GetThumbnailResponse).
  StatusOr<v1::GetThumbnailResponse> GetThumbnail(const std::string& collection,
                                                  const std::string& id);

  // Attempts made so far by this client that were retried (for tests/metrics).
  int64_t retries() const { return retries_.load(); }

 private:
  // Runs `call(context)` with a fresh context and deadline per attempt,
  // retrying retryable failures with backoff.
  Status CallWithRetry(const char* method,
                       const std::function<grpc::Status(grpc::ClientContext*)>& call);
  // The deadline `timeout` from now and the API key's metadata, if any.
  void PrepareContext(grpc::ClientContext* context, std::chrono::milliseconds timeout) const;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Lookalike::Stub> stub_;
  ClientOptions options_;
  std::atomic<int64_t> retries_{0};
};

// ------------------------------------------------------------ bulk upload ---
//
// BulkUploader sends items to one collection as concurrent unary Upsert calls,
// at most `concurrency` requests in flight. Unary calls rather than
// UpsertStream because each unary reply acknowledges its own batch: the
// caller learns per batch which items are durable (and can journal them) while
// the upload runs, a failed batch is retried on its own (Upsert is idempotent
// by id), and several batches are embedded by the server concurrently.
// UpsertStream replies once at the end, so a broken stream leaves the caller
// unable to tell which items landed.
//
// Add() blocks while the window is full (bounded memory). Items are grouped
// into batches of at most `batch_items` items and `batch_bytes` bytes
// (an item larger than batch_bytes goes alone).

struct BulkUploadOptions {
  int concurrency = 4;            // requests in flight
  int batch_items = 16;           // items per request
  int64_t batch_bytes = 3 << 20;  // approximate payload per request
};

// One finished item: its id, the caller's tag given to Add(), and its status
// (OK = durable on the server).
struct BulkItemResult {
  std::string id;
  int64_t tag = 0;
  Status status;
};

class BulkUploader {
 public:
  // Called once per finished batch from an uploader thread, serialized (never
  // two at once). A whole-batch failure (after retries) reports that status
  // for every item of the batch.
  using BatchCallback = std::function<void(const std::vector<BulkItemResult>&)>;

  BulkUploader(Client* client, std::string collection, BulkUploadOptions options,
               BatchCallback on_batch);
  ~BulkUploader();  // calls Finish()

  // Queues one item; `tag` comes back in its result. Blocks while the
  // in-flight window is full.
  void Add(v1::Item item, int64_t tag);
  // Sends what is pending and waits for every reply.
  void Finish();

 private:
  struct Batch {
    v1::UpsertRequest request;
    std::vector<int64_t> tags;
    int64_t bytes = 0;
  };
  void FlushLocked();
  void Worker();
  std::vector<BulkItemResult> SendBatch(const Batch& batch);

  Client* client_;
  std::string collection_;
  BulkUploadOptions options_;
  BatchCallback on_batch_;

  std::mutex mu_;
  std::condition_variable cv_;
  Batch pending_;
  std::deque<Batch> queue_;  // ready to send, FIFO
  int in_flight_ = 0;        // queued + being sent
  bool closing_ = false;
  std::mutex callback_mu_;
  std::vector<std::thread> workers_;
  bool finished_ = false;
};

}  // namespace lookalike
