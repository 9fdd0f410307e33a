// The lookalike.v1.Lookalike service on gRPC's callback API.
//
// Each RPC's work runs on the service's handler pool (never on gRPC's
// callback threads, which must not block): decode on the decode pool, embed
// through the model's Batcher, read and write collections
// (index/collection.h). Every RPC is timed and counted in Metrics.
//
// Collections and models: a collection names the model that embeds its images
// (CollectionSpec::model). CreateCollection with model "" uses the default
// model; dim 0 means the model's dim. A collection created with model "none"
// (or with model "" and a dim that differs from the default model's, or when
// the server serves no model) stores raw vectors only: image items and image
// queries are refused for it.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "index/collection.h"
#include "lookalike/v1/lookalike.grpc.pb.h"
#include "models/embedder.h"
#include "server/batcher.h"
#include "server/config.h"
#include "server/decode.h"
#include "server/metrics.h"
#include "server/thread_pool.h"

namespace lookalike {

// A model the server serves.
struct ServedModel {
  std::string name;                    // used in requests and collections
  ModelInfo info;                      // preset, dim, input size, backend
  std::shared_ptr<Embedder> embedder;  // the engine; may be null when `embed` is set
  // More engines of the same model (engine_replicas > 1): the batcher runs
  // one worker per engine, `embedder` included.
  std::vector<std::shared_ptr<Embedder>> more_replicas;
  // What the batcher runs; empty = embedder->Embed. (Tests pass a function.)
  Batcher::EmbedFn embed;
};

struct ServiceOptions {
  LimitsConfig limits;
  BatcherConfig batcher;
  std::string default_model;  // "" = none
  // Threads running RPC bodies. Each request blocks one while its images are
  // decoded and embedded, so this bounds how many requests can share a batch.
  int handler_threads = 0;  // 0 = max(32, 4 * cores)
};

// Model name for "vectors only" collections.
inline constexpr const char* kNoModel = "none";

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
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const lookalike::v1::ListModelsRequest* request,
                                       lookalike::v1::ListModelsResponse* response) override;

  // ---- the work of each RPC (transport-free) -------------------------------
  Status DoEmbed(const lookalike::v1::EmbedRequest& request,
                 lookalike::v1::EmbedResponse* response);
  Status DoCreateCollection(const lookalike::v1::CreateCollectionRequest& request,
                            lookalike::v1::CollectionInfo* response);
  Status DoListCollections(lookalike::v1::ListCollectionsResponse* response);
  Status DoDescribeCollection(const std::string& name, lookalike::v1::CollectionInfo* response);
  Status DoDropCollection(const std::string& name);
  // Items are labelled items[index_base + i] in messages.
  Status DoUpsert(const lookalike::v1::UpsertRequest& request, int64_t index_base,
                  lookalike::v1::UpsertResponse* response);
  Status DoSearch(const lookalike::v1::SearchRequest& request,
                  lookalike::v1::SearchResponse* response);
  Status DoGet(const lookalike::v1::GetRequest& request, lookalike::v1::GetResponse* response);
  Status DoDelete(const lookalike::v1::DeleteRequest& request,
                  lookalike::v1::DeleteResponse* response);
  Status DoListModels(lookalike::v1::ListModelsResponse* response);

  // Embedding queue depth per model (metrics).
  std::vector<std::pair<std::string, double>> QueueDepths() const;

 private:
  class UpsertStreamReactor;
  struct Model {
    ServedModel served;
    std::unique_ptr<Batcher> batcher;
  };

  // Runs `work` on the handler pool, then finishes `reactor` with its status;
  // records metrics for `method`.
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* ctx, const char* method,
                                     std::function<Status()> work);
  void Record(const char* method, const Status& status, double seconds);

  StatusOr<Model*> FindModel(const std::string& name);  // "" = default
  // Decodes and embeds `payloads` with `model`. item_status[i] is the decode
  // result of payload i; vectors holds payloads.size() * dim floats (rows of
  // failed payloads are zero). The return is the failure of the embedding
  // itself (queue full, engine error), which fails the whole request. With
  // `all_or_nothing` (Embed, Search: one bad image fails the call) nothing is
  // embedded once any payload fails to decode.
  Status EmbedPayloads(Model& model, const std::vector<std::string_view>& payloads,
                       bool all_or_nothing, std::vector<Status>* item_status,
                       std::vector<float>* vectors);
  void FillCollectionInfo(Collection& collection, lookalike::v1::CollectionInfo* info);

  const ServiceOptions options_;
  CollectionManager* const collections_;
  Metrics* const metrics_;
  std::map<std::string, std::unique_ptr<Model>> models_;
  DecodePool decode_pool_;
  ThreadPool handlers_;
};

}  // namespace lookalike
