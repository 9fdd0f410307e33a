// The lookalike.v1.Lookalike service on gRPC's callback API: proto <-> domain.
//
// RPC bodies run on the service's handler pool (never on gRPC's callback
// threads, which must not block). Images go through the EmbedPipeline
// (decode, batch, scatter; server/embed_pipeline.h), whose completion runs the
// rest of the request on the handler pool and finishes its reactor: no thread
// waits for a batch. Collections are read and written through
// index/collection.h. Every RPC is timed and counted in Metrics.
//
// Collections and models: a collection names the model that embeds its images
// (CollectionSpec::model). CreateCollection with model "" uses the default
// model; dim 0 means the model's dim. A collection created with model
// kVectorsOnly ("none", index/types.h), or with model "" and a dim that
// differs from the default model's, or when the server serves no model,
// stores raw vectors only: image items and image queries are refused for it.
// The model is copied straight through to CollectionInfo.model.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "index/collection.h"
#include "lookalike/v1/lookalike.grpc.pb.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/embed_pipeline.h"
#include "server/metrics.h"
#include "server/thread_pool.h"

namespace lookalike {

struct ServiceOptions {
  LimitsConfig limits;
  BatcherConfig batcher;
  std::string default_model;  // "" = none
  // Threads running RPC bodies. A request holds one while its images are
  // decoded, not while they wait for or run in a batch.
  int handler_threads = 0;  // 0 = max(32, 4 * cores)
  // API keys (server/auth.h): every call is checked against them, on gRPC
  // here and over HTTP by HttpApi. Null = no keys, every call allowed.
  // Must outlive the service.
  const Authenticator* auth = nullptr;
};

class LookalikeService final : public lookalike::v1::Lookalike::CallbackService {
 public:
  // `collections` and `metrics` (may be null) must outlive the service.
  LookalikeService(ServiceOptions options, CollectionManager* collections,
                   std::vector<ServedModel> models, Metrics* metrics);
  ~LookalikeService() override;

  // Finishes queued embedding work and stops the batchers; later RPCs that
  // embed fail with UNAVAILABLE.
  void Shutdown();

  // ---- gRPC entry points --------------------------------------------------
  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* ctx,
                                  const lookalike::v1::EmbedRequest* request,
                                  lookalike::v1::EmbedResponse* response) override;
  grpc::ServerUnaryReactor* CreateCollection(grpc::CallbackServerContext* ctx,
                                             const lookalike::v1::CreateCollectionRequest* request,
                                             lookalike::v1::CollectionInfo* response) override;
  grpc::ServerUnaryReactor* ListCollections(
      grpc::CallbackServerContext* ctx, const lookalike::v1::ListCollectionsRequest* request,
      lookalike::v1::ListCollectionsResponse* response) override;
  grpc::ServerUnaryReactor* DescribeCollection(
      grpc::CallbackServerContext* ctx, const lookalike::v1::DescribeCollectionRequest* request,
      lookalike::v1::CollectionInfo* response) override;
  grpc::ServerUnaryReactor* DropCollection(
      grpc::CallbackServerContext* ctx, const lookalike::v1::DropCollectionRequest* request,
      lookalike::v1::DropCollectionResponse* response) override;
  grpc::ServerUnaryReactor* Upsert(grpc::CallbackServerContext* ctx,
                                   const lookalike::v1::UpsertRequest* request,
                                   lookalike::v1::UpsertResponse* response) override;
  grpc::ServerReadReactor<lookalike::v1::UpsertRequest>* UpsertStream(
      grpc::CallbackServerContext* ctx, lookalike::v1::UpsertResponse* response) override;
  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* ctx,
                                   const lookalike::v1::SearchRequest* request,
                                   lookalike::v1::SearchResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx,
                                const lookalike::v1::GetRequest* request,
                                lookalike::v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const lookalike::v1::DeleteRequest* request,
                                   lookalike::v1::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* GetThumbnail(grpc::CallbackServerContext* ctx,
                                         const lookalike::v1::GetThumbnailRequest* request,
                                         lookalike::v1::GetThumbnailResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const lookalike::v1::ListModelsRequest* request,
                                       lookalike::v1::ListModelsResponse* response) override;

  // ---- the work of each RPC (transport-free) -------------------------------
  // Called exactly once with the RPC's status, on a handler thread.
  using FinishFn = std::function<void(Status status)>;
  // Embed, Upsert and Search embed images: they return once the images are
  // queued, and `finish` runs when the batch is done.
  void DoEmbed(const lookalike::v1::EmbedRequest& request, lookalike::v1::EmbedResponse* response,
               FinishFn finish);
  Status DoCreateCollection(const lookalike::v1::CreateCollectionRequest& request,
                            lookalike::v1::CollectionInfo* response);
  Status DoListCollections(lookalike::v1::ListCollectionsResponse* response);
  Status DoDescribeCollection(const std::string& name, lookalike::v1::CollectionInfo* response);
  Status DoDropCollection(const std::string& name);
  // Items are labelled items[index_base + i] in messages.
  void DoUpsert(const lookalike::v1::UpsertRequest& request, int64_t index_base,
                lookalike::v1::UpsertResponse* response, FinishFn finish);
  void DoSearch(const lookalike::v1::SearchRequest& request,
                lookalike::v1::SearchResponse* response, FinishFn finish);
  Status DoGet(const lookalike::v1::GetRequest& request, lookalike::v1::GetResponse* response);
  // The thumbnail of an item (JPEG; CollectionSpec::thumbnail_size) and its
  // ETag: the one lookup and the one set of errors of the GetThumbnail rpc and
  // of GET /collections/{name}/items/{id}/thumbnail (server/http_thumbnails.h).
  // NOT_FOUND for an unknown collection or item, or an item without one;
  // FAILED_PRECONDITION for a collection that keeps no thumbnails.
  Status DoGetThumbnail(const lookalike::v1::GetThumbnailRequest& request,
                        lookalike::v1::GetThumbnailResponse* response);
  Status DoDelete(const lookalike::v1::DeleteRequest& request,
                  lookalike::v1::DeleteResponse* response);
  Status DoListModels(lookalike::v1::ListModelsResponse* response);

  // Runs `work` on the handler pool as RPC `method`: its status is counted
  // in Metrics and an escaped exception becomes a status. `done` is called
  // exactly once, with the status `work` hands to its `finish`. For
  // transports other than gRPC's (server/http_api.h).
  void Run(const char* method, std::function<void(FinishFn finish)> work, FinishFn done);

  // The API keys calls are checked against; null when there are none.
  const Authenticator* authenticator() const { return options_.auth; }
  // Counts a finished call of `method` in Metrics (and logs a failure at
  // debug). Run does this itself; for calls refused before Run (API keys).
  void Record(const char* method, const Status& status, double seconds);

  // Embedding queue depth per model (metrics).
  std::vector<std::pair<std::string, double>> QueueDepths() const;

 private:
  class UpsertStreamReactor;
  struct SearchPlan;

  // Checks the call's API key (ServiceOptions::auth) for `method` and
  // `request`, then runs `work` on the handler pool; it (or a completion it
  // hands `finish` to) finishes the reactor. Records metrics for `method`.
  grpc::ServerUnaryReactor* RunUnaryAsync(grpc::CallbackServerContext* ctx, const char* method,
                                          const google::protobuf::Message& request,
                                          std::function<void(FinishFn finish)> work);
  // The same for work that is done when it returns.
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* ctx, const char* method,
                                     const google::protobuf::Message& request,
                                     std::function<Status()> work);

  Status PlanSearch(const lookalike::v1::SearchRequest& request, SearchPlan* plan,
                    std::vector<int>* image_queries, std::vector<int>* text_queries);
  // The rest of a search once every query is a vector.
  Status FinishSearch(const SearchPlan& plan, const lookalike::v1::SearchRequest& request,
                      lookalike::v1::SearchResponse* response);
  void FillCollectionInfo(Collection& collection, lookalike::v1::CollectionInfo* info);

  const ServiceOptions options_;
  CollectionManager* const collections_;
  Metrics* const metrics_;
  // Declared before the pipeline: the pipeline's completions run here, so it
  // is destroyed after the pipeline's batchers have drained into it.
  std::unique_ptr<ThreadPool> handlers_;
  // Unary RPCs accepted and not yet finished (limits.max_pending_requests).
  std::atomic<int> pending_{0};
  EmbedPipeline pipeline_;
};

}  // namespace lookalike
