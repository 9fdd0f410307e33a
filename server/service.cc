#include "server/service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "common/hash.h"
#include "server/grpc_status.h"

namespace lookalike {
namespace pb = ::lookalike::v1;

namespace {

constexpr int kDefaultK = 10;

// items[3] (id "x"); long ids are shortened so messages stay readable.
std::string ItemLabel(const char* field, int64_t index, const std::string& id) {
  std::string shown = id.size() > 80 ? id.substr(0, 77) + "..." : id;
  return std::string(field) + "[" + std::to_string(index) + "] (id \"" + shown + "\")";
}
std::string IndexLabel(const char* field, int64_t index) {
  return std::string(field) + "[" + std::to_string(index) + "]";
}

// A strong HTTP entity tag of `bytes`: their FNV-1a 64 (common/hash.h) as 16
// hex digits in double quotes (GetThumbnailResponse.etag, the ETag header).
std::string StrongEtag(const std::string& bytes) {
  char tag[24];
  std::snprintf(tag, sizeof(tag), "\"%016" PRIx64 "\"", Fnv1a64(bytes.data(), bytes.size()));
  return tag;
}

Status CheckVector(const pb::Vector& vector, int dim) {
  if (vector.values_size() != dim) {
    return InvalidArgumentError("vector has " + std::to_string(vector.values_size()) +
                                " values; the collection's dim is " + std::to_string(dim));
  }
  for (int i = 0; i < vector.values_size(); ++i) {
    if (!std::isfinite(vector.values(i))) {
      return InvalidArgumentError("vector has a non-finite value (NaN or Inf) at index " +
                                  std::to_string(i));
    }
  }
  return Status::Ok();
}

StatusOr<Metric> FromProtoMetric(pb::Metric metric) {
  switch (metric) {
    case pb::METRIC_UNSPECIFIED:
    case pb::COSINE:
      return Metric::kCosine;
    case pb::INNER_PRODUCT:
      return Metric::kInnerProduct;
    case pb::L2:
      return Metric::kL2;
    default:
      return InvalidArgumentError("metric: unknown value " + std::to_string(metric));
  }
}

pb::Metric ToProtoMetric(Metric metric) {
  switch (metric) {
    case Metric::kCosine:
      return pb::COSINE;
    case Metric::kInnerProduct:
      return pb::INNER_PRODUCT;
    case Metric::kL2:
      return pb::L2;
  }
  return pb::METRIC_UNSPECIFIED;
}

void FillModelInfo(const ServedModel& model, pb::ModelInfo* out) {
  out->set_name(model.name);
  out->set_preset(model.info.preset);
  out->set_dim(model.info.dim);
  out->set_l2_normalized(model.info.l2_normalized);
  out->set_input_height(model.info.input_height);
  out->set_input_width(model.info.input_width);
  out->set_backend(model.info.backend);
  out->set_has_text(model.info.has_text);
  out->set_text_context_length(model.info.text_context_length);
}

// Runs `work`, turning escaped exceptions into statuses: the engine and index
// report errors as values, but allocation failures surface as bad_alloc.
Status Guard(const std::function<Status()>& work) {
  try {
    return work();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory; retry later or send smaller requests");
  } catch (const std::exception& e) {
    return InternalError(std::string("internal error: ") + e.what());
  }
}

// The `authorization` metadata of a call ("" when absent).
std::string_view AuthorizationOf(const grpc::CallbackServerContext* ctx) {
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

// Rejects a request carrying more than `limit` entries of `field` ("images",
// "items", "ids", "queries"): "items: 5000 items is over the limit of 4096".
Status CheckCount(const std::string& field, int count, int limit) {
  if (count <= limit) return Status::Ok();
  return InvalidArgumentError(field + ": " + std::to_string(count) + " " + field +
                              " is over the limit of " + std::to_string(limit));
}

}  // namespace

LookalikeService::LookalikeService(ServiceOptions options, CollectionManager* collections,
                                   std::vector<ServedModel> models, Metrics* metrics)
    : options_(std::move(options)),
      collections_(collections),
      metrics_(metrics),
      handlers_(std::make_unique<ThreadPool>(
          options_.handler_threads > 0
              ? options_.handler_threads
              : std::max(32, 4 * static_cast<int>(std::thread::hardware_concurrency())))),
      pipeline_(std::move(models), options_.default_model, options_.limits, options_.batcher,
                handlers_.get(), metrics) {}

LookalikeService::~LookalikeService() {
  Shutdown();
  handlers_.reset();  // runs the completions the batchers drained into it
}

void LookalikeService::Shutdown() { pipeline_.Shutdown(); }

std::vector<std::pair<std::string, double>> LookalikeService::QueueDepths() const {
  return pipeline_.QueueDepths();
}

void LookalikeService::Record(const char* method, const Status& status, double seconds) {
  if (metrics_) metrics_->ObserveRequest(method, static_cast<int>(status.code()), seconds);
  if (!status.ok()) {
    spdlog::debug("{}: {}", method, status.ToString());
  }
}

void LookalikeService::Run(const char* method, std::function<void(FinishFn finish)> work,
                           FinishFn done) {
  const auto start = std::chrono::steady_clock::now();
  // Finishes once: a completion that threw after handing on `finish` must
  // not finish the call twice.
  auto finished = std::make_shared<std::atomic<bool>>(false);
  FinishFn finish = [this, method, start, finished, done = std::move(done)](Status status) {
    if (finished->exchange(true)) return;
    pending_.fetch_sub(1);
    Record(method, status,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    done(std::move(status));
  };
  // Overload sheds here, before the request is queued anywhere: the handler
  // pool's queue is unbounded, this count is not.
  const int limit = options_.limits.max_pending_requests;
  if (pending_.fetch_add(1) >= limit) {
    finish(ResourceExhaustedError("server is busy: " + std::to_string(limit) +
                                  " requests pending (limits.max_pending_requests); retry later"));
    return;
  }
  handlers_->Submit([work = std::move(work), finish = std::move(finish)] {
    const Status status = Guard([&] {
      work(finish);
      return Status::Ok();
    });
    if (!status.ok()) finish(status);
  });
}

grpc::ServerUnaryReactor* LookalikeService::RunUnaryAsync(
    grpc::CallbackServerContext* ctx, const char* method, const google::protobuf::Message& request,
    std::function<void(FinishFn finish)> work) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (options_.auth != nullptr) {
    const Status allowed =
        Guard([&] { return options_.auth->Check(AuthorizationOf(ctx), method, request); });
    if (!allowed.ok()) {
      Record(method, allowed, 0);
      reactor->Finish(ToGrpcStatus(allowed));
      return reactor;
    }
  }
  Run(method, std::move(work),
      [reactor](const Status& status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* LookalikeService::RunUnary(grpc::CallbackServerContext* ctx,
                                                     const char* method,
                                                     const google::protobuf::Message& request,
                                                     std::function<Status()> work) {
  return RunUnaryAsync(ctx, method, request,
                       [work = std::move(work)](FinishFn finish) { finish(Guard(work)); });
}

void LookalikeService::FillCollectionInfo(Collection& collection, pb::CollectionInfo* info) {
  const CollectionStats stats = collection.Stats();
  info->set_name(stats.spec.name);
  info->set_model(stats.spec.model);
  info->set_dim(stats.spec.dim);
  info->set_metric(ToProtoMetric(stats.spec.metric));
  info->set_index_spec(stats.spec.index_spec);
  info->set_count(stats.count);
  info->set_disk_bytes(stats.disk_bytes);
  info->set_index_bytes(stats.index_bytes);
  info->set_gpu_bytes(stats.gpu_bytes);
  info->set_index_device(stats.index_device);
  info->set_storage(stats.storage);
  info->set_thumbnail_size(stats.spec.thumbnail_size);
}

// ---- Embed --------------------------------------------------------------------

void LookalikeService::DoEmbed(const pb::EmbedRequest& request, pb::EmbedResponse* response,
                               FinishFn finish) {
  StatusOr<const ServedModel*> found = pipeline_.FindModel(request.model());
  if (!found.ok()) return finish(found.status());
  const ServedModel* model = *found;
  const bool texts = request.texts_size() > 0;
  if (texts && request.images_size() > 0) {
    return finish(InvalidArgumentError("set images or texts, not both"));
  }
  if (!texts && request.images_size() == 0) {
    return finish(InvalidArgumentError("images: at least one image (or text) is required"));
  }
  const char* field = texts ? "texts" : "images";
  auto respond = [model, response, finish, field](StatusOr<EmbeddedImages> embedded) {
    finish(Guard([&]() -> Status {
      if (!embedded.ok()) return embedded.status();
      for (size_t i = 0; i < embedded->item_status.size(); ++i) {
        const Status& s = embedded->item_status[i];
        if (!s.ok()) return Status(s.code(), IndexLabel(field, i) + ": " + s.message());
      }
      FillModelInfo(*model, response->mutable_model());
      const size_t dim = static_cast<size_t>(model->info.dim);
      for (size_t i = 0; i < embedded->item_status.size(); ++i) {
        auto* values = response->add_vectors()->mutable_values();
        values->Add(embedded->vectors.begin() + i * dim, embedded->vectors.begin() + (i + 1) * dim);
      }
      return Status::Ok();
    }));
  };
  Status queued;
  if (texts) {
    const std::vector<std::string_view> payloads(request.texts().begin(), request.texts().end());
    queued = pipeline_.EmbedTexts(*model, payloads, field, {}, std::move(respond));
  } else {
    std::vector<std::string_view> payloads(request.images().begin(), request.images().end());
    queued = pipeline_.Embed(*model, std::move(payloads), field, /*all_or_nothing=*/true,
                             std::move(respond));
  }
  if (!queued.ok()) finish(queued);
}

// ---- collections ------------------------------------------------------------------

Status LookalikeService::DoCreateCollection(const pb::CreateCollectionRequest& request,
                                            pb::CollectionInfo* response) {
  if (request.dim() < 0) {
    return InvalidArgumentError("dim: " + std::to_string(request.dim()) + " is negative");
  }
  CollectionSpec spec;
  spec.name = request.name();
  ASSIGN_OR_RETURN(spec.metric, FromProtoMetric(request.metric()));
  if (!request.index_spec().empty()) spec.index_spec = request.index_spec();
  spec.thumbnail_size = request.thumbnail_size();  // range checked with the spec
  if (request.model() == kVectorsOnly) {
    spec.model = kVectorsOnly;
    spec.dim = request.dim();
  } else if (request.model().empty()) {
    StatusOr<const ServedModel*> model = pipeline_.FindModel("");
    if (model.ok() && (request.dim() == 0 || request.dim() == (*model)->info.dim)) {
      spec.model = (*model)->name;
      spec.dim = (*model)->info.dim;
    } else {
      spec.model = kVectorsOnly;
      spec.dim = request.dim();
    }
  } else {
    ASSIGN_OR_RETURN(const ServedModel* model, pipeline_.FindModel(request.model()));
    const int model_dim = model->info.dim;
    if (request.dim() != 0 && request.dim() != model_dim) {
      return InvalidArgumentError("dim: " + std::to_string(request.dim()) +
                                  " differs from model \"" + request.model() + "\"'s dim " +
                                  std::to_string(model_dim));
    }
    spec.model = model->name;
    spec.dim = model_dim;
  }
  if (spec.dim == 0) {
    return InvalidArgumentError(
        "dim: required for a vectors-only collection (no model to take it from)");
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, collections_->Create(spec));
  FillCollectionInfo(*collection, response);
  return Status::Ok();
}

Status LookalikeService::DoListCollections(pb::ListCollectionsResponse* response) {
  for (const std::string& name : collections_->List()) {
    StatusOr<std::shared_ptr<Collection>> collection = collections_->Get(name);
    if (!collection.ok()) continue;  // dropped meanwhile
    FillCollectionInfo(**collection, response->add_collections());
  }
  return Status::Ok();
}

Status LookalikeService::DoDescribeCollection(const std::string& name,
                                              pb::CollectionInfo* response) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, collections_->Get(name));
  FillCollectionInfo(*collection, response);
  return Status::Ok();
}

Status LookalikeService::DoDropCollection(const std::string& name) {
  return collections_->Drop(name);
}

// ---- Upsert ---------------------------------------------------------------------

namespace {

// Writes the valid items of `request` (status[i] OK) in one durable batch and
// reports every item. image_items[j] is the request index of image item j,
// whose vector is row j of `image_vectors` and whose thumbnail is
// image_thumbnails[j] (when the collection keeps thumbnails; else empty).
Status WriteItems(Collection& collection, const pb::UpsertRequest& request, int64_t index_base,
                  std::vector<Status> status, const std::vector<int>& image_items,
                  const std::vector<float>& image_vectors,
                  std::vector<std::string> image_thumbnails, pb::UpsertResponse* response) {
  const int n = request.items_size();
  const size_t dim = static_cast<size_t>(collection.spec().dim);
  std::vector<Item> items;
  std::vector<int> written;  // request index of items[k]
  items.reserve(n);
  size_t image_j = 0;
  for (int i = 0; i < n; ++i) {
    const pb::Item& item = request.items(i);
    const bool is_image = image_j < image_items.size() && image_items[image_j] == i;
    const size_t j = is_image ? image_j++ : 0;
    if (!status[i].ok()) continue;
    Item out;
    out.id = item.id();
    if (is_image) {
      out.vector.assign(image_vectors.begin() + j * dim, image_vectors.begin() + (j + 1) * dim);
      if (j < image_thumbnails.size()) out.thumbnail = std::move(image_thumbnails[j]);
    } else {
      out.vector.assign(item.vector().values().begin(), item.vector().values().end());
    }
    out.metadata.insert(item.metadata().begin(), item.metadata().end());
    items.push_back(std::move(out));
    written.push_back(i);
  }
  if (!items.empty()) {
    ASSIGN_OR_RETURN(std::vector<Status> results, collection.Upsert(items));
    for (size_t k = 0; k < written.size() && k < results.size(); ++k) {
      status[written[k]] = results[k];
    }
  }
  for (int i = 0; i < n; ++i) {
    pb::ItemStatus* out = response->add_statuses();
    out->set_id(request.items(i).id());
    out->set_code(static_cast<int>(status[i].code()));
    if (status[i].ok()) {
      response->set_upserted(response->upserted() + 1);
    } else {
      out->set_message(ItemLabel("items", index_base + i, request.items(i).id()) + ": " +
                       status[i].message());
      response->set_failed(response->failed() + 1);
    }
  }
  return Status::Ok();
}

}  // namespace

void LookalikeService::DoUpsert(const pb::UpsertRequest& request, int64_t index_base,
                                pb::UpsertResponse* response, FinishFn finish) {
  StatusOr<std::shared_ptr<Collection>> found = collections_->Get(request.collection());
  if (!found.ok()) return finish(found.status());
  std::shared_ptr<Collection> collection = *std::move(found);
  const int n = request.items_size();
  if (Status s = CheckCount("items", n, options_.limits.max_items_per_upsert); !s.ok()) {
    return finish(s);
  }
  const CollectionSpec& spec = collection->spec();
  std::vector<Status> status(n, Status::Ok());
  std::vector<int> image_items;
  for (int i = 0; i < n; ++i) {
    const pb::Item& item = request.items(i);
    switch (item.content_case()) {
      case pb::Item::kVector:
        status[i] = CheckVector(item.vector(), spec.dim);
        break;
      case pb::Item::kImage:
        image_items.push_back(i);
        break;
      default:
        status[i] = InvalidArgumentError("item has neither an image nor a vector");
    }
  }
  if (image_items.empty()) {
    return finish(
        WriteItems(*collection, request, index_base, std::move(status), {}, {}, {}, response));
  }
  // Images: embedded with the collection's model; a collection without one
  // (vectors only, or its model not served here) fails its image items alone.
  StatusOr<const ServedModel*> model = pipeline_.ModelForCollection(spec);
  if (!model.ok()) {
    for (int i : image_items) status[i] = model.status();
    return finish(
        WriteItems(*collection, request, index_base, std::move(status), {}, {}, {}, response));
  }
  std::vector<std::string_view> payloads;
  for (int i : image_items) payloads.push_back(request.items(i).image());
  Status queued = pipeline_.Embed(
      **model, std::move(payloads), "items", /*all_or_nothing=*/false,
      [&request, index_base, response, finish, collection, status = std::move(status),
       image_items](StatusOr<EmbeddedImages> embedded) mutable {
        finish(Guard([&]() -> Status {
          if (!embedded.ok()) return embedded.status();
          for (size_t j = 0; j < image_items.size(); ++j) {
            status[image_items[j]] = embedded->item_status[j];
          }
          return WriteItems(*collection, request, index_base, std::move(status), image_items,
                            embedded->vectors, std::move(embedded->thumbnails), response);
        }));
      },
      spec.thumbnail_size);
  if (!queued.ok()) finish(queued);
}

// Client-streaming bulk ingest: each message is written as it arrives (one at
// a time, in order), then one reply summarises them all.
class LookalikeService::UpsertStreamReactor final
    : public grpc::ServerReadReactor<pb::UpsertRequest> {
 public:
  UpsertStreamReactor(LookalikeService* service, grpc::CallbackServerContext* ctx,
                      pb::UpsertResponse* response)
      : service_(service), response_(response), start_(std::chrono::steady_clock::now()) {
    // The key is checked once here, and its right on the collection per message.
    if (const Authenticator* auth = service_->options_.auth) {
      const Status checked = Guard([&] {
        ASSIGN_OR_RETURN(key_, auth->Authenticate(AuthorizationOf(ctx), "UpsertStream"));
        return Status::Ok();
      });
      if (!checked.ok()) {
        Done(checked);
        return;
      }
    }
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // client finished sending (or the call broke)
      Done(Status::Ok());
      return;
    }
    service_->handlers_->Submit([this] {
      const Status status = Guard([this] {
        WriteMessage();
        return Status::Ok();
      });
      if (!status.ok()) Done(status);
    });
  }

  void OnCancel() override {}
  void OnDone() override { delete this; }

 private:
  // Writes message_; the next read starts (or the call ends) when the write
  // is done, so messages are written one at a time, in order.
  void WriteMessage() {
    if (collection_.empty()) {
      if (message_.collection().empty()) {
        return Done(InvalidArgumentError("collection: the first message must name the collection"));
      }
      collection_ = message_.collection();
    } else if (!message_.collection().empty() && message_.collection() != collection_) {
      return Done(InvalidArgumentError("collection: message names \"" + message_.collection() +
                                       "\" but the stream writes to \"" + collection_ + "\""));
    }
    message_.set_collection(collection_);
    if (key_ != nullptr) {
      const Status allowed = service_->options_.auth->Authorize(*key_, "UpsertStream", message_);
      if (!allowed.ok()) return Done(allowed);
    }
    part_.Clear();
    service_->DoUpsert(message_, items_seen_, &part_, [this](Status status) {
      if (!status.ok()) return Done(status);
      items_seen_ += message_.items_size();
      response_->mutable_statuses()->MergeFrom(part_.statuses());
      response_->set_upserted(response_->upserted() + part_.upserted());
      response_->set_failed(response_->failed() + part_.failed());
      message_.Clear();
      StartRead(&message_);
    });
  }

  void Done(const Status& status) {
    service_->Record(
        "UpsertStream", status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    Finish(ToGrpcStatus(status));
  }

  LookalikeService* const service_;
  pb::UpsertResponse* const response_;
  const std::chrono::steady_clock::time_point start_;
  pb::UpsertRequest message_;
  pb::UpsertResponse part_;  // the reply to message_
  std::string collection_;
  int64_t items_seen_ = 0;
  const ApiKey* key_ = nullptr;  // the caller's, when the server has keys
};

// ---- Search ----------------------------------------------------------------------

// A search whose queries are being resolved to vectors.
struct LookalikeService::SearchPlan {
  std::shared_ptr<Collection> collection;
  SearchParams params;
  int dim = 0;
  std::vector<float> queries;          // nq x dim
  std::vector<std::string> query_ids;  // the id of a by-id query (excluded from its hits), or ""
};

// Checks the request and resolves its vector and by-id queries into `plan`;
// the indexes of image and text queries go to `image_queries` and
// `text_queries`.
Status LookalikeService::PlanSearch(const pb::SearchRequest& request, SearchPlan* plan,
                                    std::vector<int>* image_queries,
                                    std::vector<int>* text_queries) {
  ASSIGN_OR_RETURN(plan->collection, collections_->Get(request.collection()));
  Collection* collection = plan->collection.get();
  const CollectionSpec& spec = collection->spec();
  const int nq = request.queries_size();
  if (nq == 0) return InvalidArgumentError("queries: at least one query is required");
  RETURN_IF_ERROR(CheckCount("queries", nq, options_.limits.max_queries_per_search));
  const int k = request.k() == 0 ? kDefaultK : request.k();
  if (k < 1 || k > options_.limits.max_k) {
    return InvalidArgumentError("k: " + std::to_string(request.k()) + " is out of range [1, " +
                                std::to_string(options_.limits.max_k) + "]");
  }
  SearchParams& params = plan->params;
  params.k = k;
  if (request.has_min_score()) {
    if (!std::isfinite(request.min_score())) {
      return InvalidArgumentError("min_score: must be a finite number");
    }
    params.min_score = request.min_score();
  }
  for (int f = 0; f < request.filter_size(); ++f) {
    const pb::FieldFilter& filter = request.filter(f);
    if (filter.key().empty()) {
      return InvalidArgumentError(IndexLabel("filter", f) + ": key is empty");
    }
    if (filter.values_size() == 0) {
      return InvalidArgumentError(IndexLabel("filter", f) + " (key \"" + filter.key() +
                                  "\"): at least one value is required");
    }
    std::vector<std::string> values(filter.values().begin(), filter.values().end());
    auto it = params.filter.any_of.find(filter.key());
    if (it == params.filter.any_of.end()) {
      params.filter.any_of[filter.key()] = std::move(values);
    } else {  // two conditions on one key: both must hold
      std::vector<std::string> both;
      for (const std::string& v : it->second) {
        if (std::find(values.begin(), values.end(), v) != values.end()) both.push_back(v);
      }
      it->second = std::move(both);
    }
  }

  // Resolve every query to a vector.
  const int dim = plan->dim = spec.dim;
  std::vector<float>& queries = plan->queries;
  queries.resize(static_cast<size_t>(nq) * dim);
  std::vector<std::string>& query_ids = plan->query_ids;
  query_ids.resize(nq);
  for (int q = 0; q < nq; ++q) {
    const pb::Query& query = request.queries(q);
    switch (query.query_case()) {
      case pb::Query::kVector: {
        Status s = CheckVector(query.vector(), dim);
        if (!s.ok()) return InvalidArgumentError(IndexLabel("queries", q) + ": " + s.message());
        std::copy(query.vector().values().begin(), query.vector().values().end(),
                  queries.begin() + static_cast<size_t>(q) * dim);
        break;
      }
      case pb::Query::kId: {
        ASSIGN_OR_RETURN(std::vector<std::optional<Item>> found, collection->Get({query.id()}));
        if (found.empty() || !found[0].has_value()) {
          return NotFoundError(IndexLabel("queries", q) + ": id \"" + query.id() +
                               "\" is not in collection \"" + spec.name + "\"");
        }
        if (static_cast<int>(found[0]->vector.size()) != dim) {
          return InternalError(IndexLabel("queries", q) + ": stored vector has the wrong dim");
        }
        std::copy(found[0]->vector.begin(), found[0]->vector.end(),
                  queries.begin() + static_cast<size_t>(q) * dim);
        query_ids[q] = query.id();
        break;
      }
      case pb::Query::kImage:
        image_queries->push_back(q);
        break;
      case pb::Query::kText:
        text_queries->push_back(q);
        break;
      default:
        return InvalidArgumentError(IndexLabel("queries", q) +
                                    ": set one of image, vector, id or text");
    }
  }
  return Status::Ok();
}

void LookalikeService::DoSearch(const pb::SearchRequest& request, pb::SearchResponse* response,
                                FinishFn finish) {
  auto plan = std::make_shared<SearchPlan>();
  std::vector<int> image_queries;
  std::vector<int> text_queries;
  if (Status s = PlanSearch(request, plan.get(), &image_queries, &text_queries); !s.ok()) {
    return finish(s);
  }
  if (image_queries.empty() && text_queries.empty()) {
    return finish(Guard([&] { return FinishSearch(*plan, request, response); }));
  }
  const int first = std::min(image_queries.empty() ? INT_MAX : image_queries[0],
                             text_queries.empty() ? INT_MAX : text_queries[0]);
  StatusOr<const ServedModel*> model = pipeline_.ModelForCollection(plan->collection->spec());
  if (!model.ok()) {
    return finish(Status(model.status().code(),
                         IndexLabel("queries", first) + ": " + model.status().message()));
  }
  if (!text_queries.empty()) {
    if (Status s = pipeline_.CheckServesTexts(**model); !s.ok()) {
      return finish(Status(s.code(), IndexLabel("queries", text_queries[0]) + ": collection \"" +
                                         plan->collection->spec().name + "\"'s " + s.message()));
    }
  }
  // Images and texts embed on their own batchers; each writes its rows into
  // plan->queries, and the last to finish runs the search. `pending` counts
  // them plus this function, so nothing finishes before both are queued.
  struct Join {
    std::mutex mu;
    int pending = 1;
    Status status;
  };
  auto join = std::make_shared<Join>();
  auto arrive = [this, plan, join, &request, response, finish](Status status) {
    {
      std::lock_guard<std::mutex> lock(join->mu);
      if (!status.ok() && join->status.ok()) join->status = status;
      if (--join->pending > 0) return;
    }
    if (!join->status.ok()) return finish(join->status);
    finish(Guard([&] { return FinishSearch(*plan, request, response); }));
  };
  // Copies a batch's rows to their queries' places.
  auto scatter = [plan, arrive](std::vector<int> queries) {
    return [plan, arrive, queries = std::move(queries)](StatusOr<EmbeddedImages> embedded) {
      arrive(Guard([&]() -> Status {
        if (!embedded.ok()) return embedded.status();
        const size_t dim = static_cast<size_t>(plan->dim);
        for (size_t j = 0; j < queries.size(); ++j) {
          const Status& s = embedded->item_status[j];
          if (!s.ok()) {
            return Status(s.code(), IndexLabel("queries", queries[j]) + ": " + s.message());
          }
          std::copy(embedded->vectors.begin() + j * dim, embedded->vectors.begin() + (j + 1) * dim,
                    plan->queries.begin() + static_cast<size_t>(queries[j]) * dim);
        }
        return Status::Ok();
      }));
    };
  };
  auto add_pending = [join] {
    std::lock_guard<std::mutex> lock(join->mu);
    ++join->pending;
  };
  Status queued;
  if (!text_queries.empty()) {
    std::vector<std::string_view> texts;
    for (int q : text_queries) texts.push_back(request.queries(q).text());
    add_pending();
    queued = pipeline_.EmbedTexts(**model, texts, "queries", text_queries, scatter(text_queries));
    if (!queued.ok()) arrive(queued);
  }
  if (queued.ok() && !image_queries.empty()) {
    std::vector<std::string_view> payloads;
    for (int q : image_queries) payloads.push_back(request.queries(q).image());
    add_pending();
    queued = pipeline_.Embed(**model, std::move(payloads), "queries", /*all_or_nothing=*/true,
                             scatter(image_queries));
    if (!queued.ok()) arrive(queued);
  }
  arrive(Status::Ok());
}

Status LookalikeService::FinishSearch(const SearchPlan& plan, const pb::SearchRequest& request,
                                      pb::SearchResponse* response) {
  const int nq = request.queries_size();
  const int dim = plan.dim;
  const std::vector<float>& queries = plan.queries;
  const std::vector<std::string>& query_ids = plan.query_ids;
  const SearchParams& params = plan.params;
  Collection* collection = plan.collection.get();
  // Queries without an id exclusion run together; each by-id query runs
  // alone with its own id excluded.
  std::vector<std::vector<SearchHit>> hits(nq);
  std::vector<int> plain;
  for (int q = 0; q < nq; ++q) {
    if (query_ids[q].empty()) plain.push_back(q);
  }
  if (!plain.empty()) {
    std::vector<float> batch(plain.size() * dim);
    for (size_t j = 0; j < plain.size(); ++j) {
      std::copy(queries.begin() + static_cast<size_t>(plain[j]) * dim,
                queries.begin() + static_cast<size_t>(plain[j] + 1) * dim, batch.begin() + j * dim);
    }
    ASSIGN_OR_RETURN(auto results,
                     collection->Search(batch.data(), static_cast<int>(plain.size()), params));
    for (size_t j = 0; j < plain.size() && j < results.size(); ++j) {
      hits[plain[j]] = std::move(results[j]);
    }
  }
  for (int q = 0; q < nq; ++q) {
    if (query_ids[q].empty()) continue;
    SearchParams own = params;
    own.exclude_ids = {query_ids[q]};
    ASSIGN_OR_RETURN(auto results,
                     collection->Search(queries.data() + static_cast<size_t>(q) * dim, 1, own));
    if (!results.empty()) hits[q] = std::move(results[0]);
  }

  // Vectors of the hits, when asked for: one Get for all of them.
  std::map<std::string, std::vector<float>> hit_vectors;
  if (request.include_vectors()) {
    std::vector<std::string> ids;
    for (const auto& list : hits) {
      for (const SearchHit& hit : list) ids.push_back(hit.id);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    if (!ids.empty()) {
      ASSIGN_OR_RETURN(auto found, collection->Get(ids));
      for (size_t i = 0; i < ids.size() && i < found.size(); ++i) {
        if (found[i].has_value()) hit_vectors[ids[i]] = std::move(found[i]->vector);
      }
    }
  }
  for (int q = 0; q < nq; ++q) {
    pb::QueryResult* result = response->add_results();
    for (const SearchHit& hit : hits[q]) {
      pb::Hit* out = result->add_hits();
      out->set_id(hit.id);
      out->set_score(hit.score);
      if (request.include_metadata()) {
        out->mutable_metadata()->insert(hit.metadata.begin(), hit.metadata.end());
      }
      if (request.include_vectors()) {
        auto it = hit_vectors.find(hit.id);
        if (it != hit_vectors.end()) {
          out->mutable_vector()->mutable_values()->Add(it->second.begin(), it->second.end());
        }
      }
    }
  }
  return Status::Ok();
}

// ---- Get / Delete / ListModels ------------------------------------------------------

Status LookalikeService::DoGet(const pb::GetRequest& request, pb::GetResponse* response) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, collections_->Get(request.collection()));
  RETURN_IF_ERROR(CheckCount("ids", request.ids_size(), options_.limits.max_ids_per_request));
  std::vector<std::string> ids(request.ids().begin(), request.ids().end());
  ASSIGN_OR_RETURN(auto found, collection->Get(ids));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i >= found.size() || !found[i].has_value()) {
      response->add_missing_ids(ids[i]);
      continue;
    }
    pb::Item* item = response->add_items();
    item->set_id(found[i]->id);
    item->mutable_metadata()->insert(found[i]->metadata.begin(), found[i]->metadata.end());
    if (request.include_vectors()) {
      item->mutable_vector()->mutable_values()->Add(found[i]->vector.begin(),
                                                    found[i]->vector.end());
    }
  }
  return Status::Ok();
}

Status LookalikeService::DoGetThumbnail(const pb::GetThumbnailRequest& request,
                                        pb::GetThumbnailResponse* response) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, collections_->Get(request.collection()));
  if (collection->spec().thumbnail_size == 0) {
    return FailedPreconditionError("collection \"" + request.collection() +
                                   "\" keeps no thumbnails (it was created without "
                                   "thumbnail_size)");
  }
  if (request.id().empty()) return InvalidArgumentError("id: the item's id is required");
  ASSIGN_OR_RETURN(std::string jpeg, collection->GetThumbnail(request.id()));
  response->set_etag(StrongEtag(jpeg));
  response->set_jpeg(std::move(jpeg));
  return Status::Ok();
}

Status LookalikeService::DoDelete(const pb::DeleteRequest& request, pb::DeleteResponse* response) {
  ASSIGN_OR_RETURN(std::shared_ptr<Collection> collection, collections_->Get(request.collection()));
  RETURN_IF_ERROR(CheckCount("ids", request.ids_size(), options_.limits.max_ids_per_request));
  std::vector<std::string> ids(request.ids().begin(), request.ids().end());
  ASSIGN_OR_RETURN(int64_t deleted, collection->Delete(ids));
  response->set_deleted(deleted);
  return Status::Ok();
}

Status LookalikeService::DoListModels(pb::ListModelsResponse* response) {
  for (const ServedModel* model : pipeline_.Models()) FillModelInfo(*model, response->add_models());
  return Status::Ok();
}

// ---- gRPC entry points ----------------------------------------------------------------

grpc::ServerUnaryReactor* LookalikeService::Embed(grpc::CallbackServerContext* ctx,
                                                  const pb::EmbedRequest* request,
                                                  pb::EmbedResponse* response) {
  return RunUnaryAsync(ctx, "Embed", *request,
                       [=](FinishFn finish) { DoEmbed(*request, response, std::move(finish)); });
}

grpc::ServerUnaryReactor* LookalikeService::CreateCollection(
    grpc::CallbackServerContext* ctx, const pb::CreateCollectionRequest* request,
    pb::CollectionInfo* response) {
  return RunUnary(ctx, "CreateCollection", *request,
                  [=] { return DoCreateCollection(*request, response); });
}

grpc::ServerUnaryReactor* LookalikeService::ListCollections(
    grpc::CallbackServerContext* ctx, const pb::ListCollectionsRequest* request,
    pb::ListCollectionsResponse* response) {
  return RunUnary(ctx, "ListCollections", *request, [=] { return DoListCollections(response); });
}

grpc::ServerUnaryReactor* LookalikeService::DescribeCollection(
    grpc::CallbackServerContext* ctx, const pb::DescribeCollectionRequest* request,
    pb::CollectionInfo* response) {
  return RunUnary(ctx, "DescribeCollection", *request,
                  [=] { return DoDescribeCollection(request->name(), response); });
}

grpc::ServerUnaryReactor* LookalikeService::DropCollection(grpc::CallbackServerContext* ctx,
                                                           const pb::DropCollectionRequest* request,
                                                           pb::DropCollectionResponse*) {
  return RunUnary(ctx, "DropCollection", *request,
                  [=] { return DoDropCollection(request->name()); });
}

grpc::ServerUnaryReactor* LookalikeService::Upsert(grpc::CallbackServerContext* ctx,
                                                   const pb::UpsertRequest* request,
                                                   pb::UpsertResponse* response) {
  return RunUnaryAsync(ctx, "Upsert", *request, [=](FinishFn finish) {
    DoUpsert(*request, 0, response, std::move(finish));
  });
}

grpc::ServerReadReactor<pb::UpsertRequest>* LookalikeService::UpsertStream(
    grpc::CallbackServerContext* ctx, pb::UpsertResponse* response) {
  return new UpsertStreamReactor(this, ctx, response);
}

grpc::ServerUnaryReactor* LookalikeService::Search(grpc::CallbackServerContext* ctx,
                                                   const pb::SearchRequest* request,
                                                   pb::SearchResponse* response) {
  return RunUnaryAsync(ctx, "Search", *request,
                       [=](FinishFn finish) { DoSearch(*request, response, std::move(finish)); });
}

grpc::ServerUnaryReactor* LookalikeService::Get(grpc::CallbackServerContext* ctx,
                                                const pb::GetRequest* request,
                                                pb::GetResponse* response) {
  return RunUnary(ctx, "Get", *request, [=] { return DoGet(*request, response); });
}

grpc::ServerUnaryReactor* LookalikeService::Delete(grpc::CallbackServerContext* ctx,
                                                   const pb::DeleteRequest* request,
                                                   pb::DeleteResponse* response) {
  return RunUnary(ctx, "Delete", *request, [=] { return DoDelete(*request, response); });
}

grpc::ServerUnaryReactor* LookalikeService::GetThumbnail(grpc::CallbackServerContext* ctx,
                                                         const pb::GetThumbnailRequest* request,
                                                         pb::GetThumbnailResponse* response) {
  return RunUnary(ctx, "GetThumbnail", *request,
                  [=] { return DoGetThumbnail(*request, response); });
}

grpc::ServerUnaryReactor* LookalikeService::ListModels(grpc::CallbackServerContext* ctx,
                                                       const pb::ListModelsRequest* request,
                                                       pb::ListModelsResponse* response) {
  return RunUnary(ctx, "ListModels", *request, [=] { return DoListModels(response); });
}

}  // namespace lookalike
