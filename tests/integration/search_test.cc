// End to end against the real lookalike-server and real EfficientNet-Lite0
// weights: index the sample photo set with the CLI, then search, filter, get,
// delete, embed, and run the Python example backend. One server and one
// indexed collection are shared by the tests of this file.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/server_harness.h"

namespace lookalike::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr char kCollection[] = "photos";

// metadata.csv of the photo set: path,source,variant,format.
struct Photo {
  std::string id, source, variant;
};

std::vector<Photo> ReadPhotoList(const std::string& dir) {
  std::vector<Photo> photos;
  std::ifstream in(dir + "/metadata.csv");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    size_t start = 0;
    for (size_t c; (c = line.find(',', start)) != std::string::npos; start = c + 1)
      f.push_back(line.substr(start, c - start));
    f.push_back(line.substr(start));
    if (f.size() >= 3) photos.push_back({f[0], f[1], f[2]});
  }
  return photos;
}

json ParseJson(const CommandResult& r) {
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << "\nstderr: " << r.err;
  return j;
}

class SearchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new ServerProcess(*dir_ / "data");
    photos_ = ReadPhotoList(GetPaths().photos);
    if (photos_.size() < 90) {
      setup_error_ = "photo set at " + GetPaths().photos + " has only " +
                     std::to_string(photos_.size()) + " photos";
      return;
    }
    Status s = server_->Start();
    if (!s.ok()) {
      setup_error_ = s.ToString();
      return;
    }
    CommandResult create = RunCli(*server_, {"collections", "create", kCollection});
    if (create.exit_code != 0) {
      setup_error_ = "collections create failed: " + create.err;
      return;
    }
    index_run_ =
        RunCli(*server_, {"index", kCollection, GetPaths().photos, "--metadata",
                          GetPaths().photos + "/metadata.csv", "--journal", *dir_ / "journal.jsonl",
                          "--concurrency", "2", "--batch", "8", "--json"});
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) (void)server_->Stop();
    delete server_;
    delete dir_;
    server_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  static std::string PhotoPath(const std::string& id) { return GetPaths().photos + "/" + id; }

  static inline TempDir* dir_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
  static inline std::vector<Photo> photos_;
  static inline std::string setup_error_;
  static inline CommandResult index_run_;
};

TEST_F(SearchTest, IndexUploadsEveryPhotoWithMetadata) {
  ASSERT_EQ(index_run_.exit_code, 0) << index_run_.out << index_run_.err;
  json j = ParseJson(index_run_);
  EXPECT_EQ(j["files"].get<size_t>(), photos_.size());
  EXPECT_EQ(j["indexed"].get<size_t>(), photos_.size());
  EXPECT_EQ(j["skipped"].get<int>(), 0);
  EXPECT_TRUE(j["failed"].empty()) << j["failed"].dump();

  auto client = server_->MakeClient();
  auto info = client->DescribeCollection(kCollection);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->count(), static_cast<int64_t>(photos_.size()));
  EXPECT_EQ(info->model(), "efficientnet_lite0");

  CommandResult get = RunCli(*server_, {"get", kCollection, "chelsea/flip.jpg", "--json"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  json item = ParseJson(get)["items"][0];
  EXPECT_EQ(item["id"], "chelsea/flip.jpg");
  EXPECT_EQ(item["metadata"]["source"], "chelsea");
  EXPECT_EQ(item["metadata"]["variant"], "flip");
  EXPECT_EQ(item["metadata"]["path"], "chelsea/flip.jpg");
  EXPECT_EQ(item["vector"].size(), static_cast<size_t>(info->dim()));
}

TEST_F(SearchTest, RerunningIndexSendsNothingAlreadyAcknowledged) {
  CommandResult again = RunCli(*server_, {"index", kCollection, GetPaths().photos, "--journal",
                                          *dir_ / "journal.jsonl", "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  json j = ParseJson(again);
  EXPECT_EQ(j["indexed"].get<int>(), 0);
  EXPECT_EQ(j["skipped"].get<size_t>(), photos_.size());
}

TEST_F(SearchTest, SearchByImageReturnsItselfFirstThenDescendingScores) {
  for (const std::string id :
       {"chelsea/original.jpg", "coffee/png.png", "rocket/jpeg_q25.jpg", "coins/rotate.jpg"}) {
    CommandResult r =
        RunCli(*server_, {"search", kCollection, "--image", PhotoPath(id), "--k", "20", "--json"});
    ASSERT_EQ(r.exit_code, 0) << id << ": " << r.err;
    json hits = ParseJson(r)["hits"];
    ASSERT_EQ(hits.size(), 20u) << id;
    EXPECT_EQ(hits[0]["id"], id);
    EXPECT_NEAR(hits[0]["score"].get<double>(), 1.0, 1e-3) << id;
    for (size_t i = 1; i < hits.size(); ++i) {
      EXPECT_LE(hits[i]["score"].get<double>(), hits[i - 1]["score"].get<double>())
          << id << " rank " << i;
      EXPECT_NE(hits[i]["id"], id) << "duplicate hit";
    }
  }
  // The human-readable table names the best match on its first row.
  CommandResult text = RunCli(
      *server_, {"search", kCollection, "--image", PhotoPath("coffee/original.jpg"), "--k", "3"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("RANK"), std::string::npos);
  std::string first_row = text.out.substr(text.out.find('\n') + 1);
  first_row = first_row.substr(0, first_row.find('\n'));
  EXPECT_EQ(first_row.rfind("   1  ", 0), 0u) << text.out;
  EXPECT_NE(first_row.find("coffee/original.jpg"), std::string::npos) << text.out;
  EXPECT_NE(first_row.find("source=coffee"), std::string::npos) << text.out;
}

TEST_F(SearchTest, VariantsOfTheSamePhotoRankAboveUnrelatedPhotos) {
  auto client = server_->MakeClient();
  std::map<std::string, std::string> source_of;
  for (const auto& p : photos_) source_of[p.id] = p.source;
  int queries = 0, sibling_better = 0;
  double sum_sibling_rank = 0, sum_other_rank = 0;
  for (const auto& p : photos_) {
    v1::SearchRequest req;
    req.set_collection(kCollection);
    req.set_k(static_cast<int>(photos_.size()));
    req.add_queries()->set_id(p.id);
    auto r = client->Search(req);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const auto& hits = r->results(0).hits();
    // Search by id leaves the query item out of its own results.
    ASSERT_EQ(hits.size(), static_cast<int>(photos_.size()) - 1) << p.id;
    double sib_rank = 0, other_rank = 0;
    int sibs = 0, others = 0;
    for (int i = 0; i < hits.size(); ++i) {
      ASSERT_NE(hits[i].id(), p.id);
      if (source_of[hits[i].id()] == p.source) {
        sib_rank += i;
        ++sibs;
      } else {
        other_rank += i;
        ++others;
      }
    }
    ASSERT_GT(sibs, 0);
    sib_rank /= sibs;
    other_rank /= others;
    sum_sibling_rank += sib_rank;
    sum_other_rank += other_rank;
    sibling_better += sib_rank < other_rank;
    ++queries;
  }
  const double mean_sib = sum_sibling_rank / queries, mean_other = sum_other_rank / queries;
  RecordProperty("mean_sibling_rank", std::to_string(mean_sib));
  RecordProperty("mean_unrelated_rank", std::to_string(mean_other));
  std::printf("mean rank of siblings %.2f vs unrelated %.2f; siblings ahead for %d of %d queries\n",
              mean_sib, mean_other, sibling_better, queries);
  // Averaged over every query, a photo's variants come well before unrelated
  // photos (random order would put both near (N-2)/2).
  EXPECT_LT(mean_sib * 3, mean_other);
  EXPECT_GE(sibling_better, queries * 9 / 10);
}

TEST_F(SearchTest, FiltersRestrictResults) {
  auto ids_of = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {
        "search", kCollection, "--image", PhotoPath("coffee/original.jpg"), "--k", "200", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = RunCli(*server_, args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const json parsed = ParseJson(r);  // kept alive for the loop below
    std::vector<json> hits;
    for (const auto& h : parsed["hits"]) hits.push_back(h);
    return hits;
  };
  auto coffee = ids_of({"--filter", "source=coffee"});
  EXPECT_EQ(coffee.size(), 9u);
  for (const auto& h : coffee) EXPECT_EQ(h["metadata"]["source"], "coffee") << h.dump();

  auto two = ids_of({"--filter", "source=coffee", "--filter", "source=rocket"});
  EXPECT_EQ(two.size(), 18u);
  for (const auto& h : two) {
    EXPECT_TRUE(h["metadata"]["source"] == "coffee" || h["metadata"]["source"] == "rocket")
        << h.dump();
  }

  auto one = ids_of({"--filter", "source=rocket", "--filter", "variant=png"});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]["id"], "rocket/png.png");

  EXPECT_TRUE(ids_of({"--filter", "source=no-such-source"}).empty());

  auto confident = ids_of({"--min-score", "0.6"});
  ASSERT_FALSE(confident.empty());
  EXPECT_LT(confident.size(), photos_.size());
  for (const auto& h : confident) EXPECT_GE(h["score"].get<double>(), 0.6);
}

TEST_F(SearchTest, EmbedMatchesStoredVectorAndVectorSearchFindsIt) {
  const std::string id = "astronaut/original.jpg";
  CommandResult embed = RunCli(*server_, {"embed", PhotoPath(id), "--json"});
  ASSERT_EQ(embed.exit_code, 0) << embed.err;
  std::vector<float> v = ParseJson(embed)[0]["vector"].get<std::vector<float>>();
  CommandResult get = RunCli(*server_, {"get", kCollection, id, "--json"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  std::vector<float> stored = ParseJson(get)["items"][0]["vector"].get<std::vector<float>>();
  ASSERT_EQ(v.size(), stored.size());
  double dot = 0, norm = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    dot += static_cast<double>(v[i]) * stored[i];
    norm += static_cast<double>(v[i]) * v[i];
  }
  EXPECT_NEAR(norm, 1.0, 1e-3);  // embeddings are L2-normalized
  EXPECT_NEAR(dot, 1.0, 1e-4);   // same bytes, same model: same vector

  std::string csv;
  for (size_t i = 0; i < v.size(); ++i) csv += (i ? "," : "") + std::to_string(v[i]);
  CommandResult r =
      RunCli(*server_, {"search", kCollection, "--vector", csv, "--k", "3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseJson(r)["hits"][0]["id"], id);
}

TEST_F(SearchTest, DeleteHidesItemsAtOnce) {
  // A separate collection filled with stored vectors, so the shared one stays whole.
  auto client = server_->MakeClient();
  v1::CreateCollectionRequest create;
  create.set_name("deletions");
  ASSERT_TRUE(client->CreateCollection(create).ok());
  v1::GetRequest get;
  get.set_collection(kCollection);
  get.set_include_vectors(true);
  for (const auto& p : photos_) {
    if (p.source == "chelsea" || p.source == "rocket") get.add_ids(p.id);
  }
  auto items = client->Get(get);
  ASSERT_TRUE(items.ok()) << items.status().ToString();
  ASSERT_EQ(items->items_size(), 18);
  v1::UpsertRequest up;
  up.set_collection("deletions");
  for (const auto& it : items->items()) *up.add_items() = it;
  auto upserted = client->Upsert(up);
  ASSERT_TRUE(upserted.ok()) << upserted.status().ToString();
  ASSERT_EQ(upserted->upserted(), 18);

  CommandResult del =
      RunCli(*server_, {"delete", "deletions", "chelsea/flip.jpg", "chelsea/zoom.jpg"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_NE(del.out.find("deleted 2 of 2"), std::string::npos) << del.out;

  CommandResult s = RunCli(*server_, {"search", "deletions", "--image",
                                      PhotoPath("chelsea/flip.jpg"), "--k", "50", "--json"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  json hits = ParseJson(s)["hits"];
  EXPECT_EQ(hits.size(), 16u);
  for (const auto& h : hits) {
    EXPECT_NE(h["id"], "chelsea/flip.jpg");
    EXPECT_NE(h["id"], "chelsea/zoom.jpg");
  }
  CommandResult g =
      RunCli(*server_, {"get", "deletions", "chelsea/flip.jpg", "chelsea/crop_a.jpg"});
  EXPECT_EQ(g.exit_code, 1);
  EXPECT_NE(g.err.find("NOT_FOUND"), std::string::npos) << g.err;
  EXPECT_NE(g.err.find("chelsea/flip.jpg"), std::string::npos) << g.err;
  EXPECT_NE(g.out.find("chelsea/crop_a.jpg"), std::string::npos) << g.out;

  auto info = client->DescribeCollection("deletions");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->count(), 16);
  CommandResult again = RunCli(*server_, {"delete", "deletions", "chelsea/flip.jpg"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("deleted 0 of 1"), std::string::npos) << again.out;

  CommandResult drop = RunCli(*server_, {"collections", "drop", "deletions"});
  ASSERT_EQ(drop.exit_code, 0) << drop.err;
  CommandResult gone = RunCli(*server_, {"collections", "describe", "deletions"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_NE(gone.err.find("NOT_FOUND"), std::string::npos) << gone.err;
}

// `lookalike thumbnail`: the JPEG the server keeps of an item, over gRPC
// alone (GetThumbnail); what is missing is named, nothing is written.
TEST_F(SearchTest, ThumbnailCommandSavesTheKeptJpeg) {
  CommandResult create =
      RunCli(*server_, {"collections", "create", "thumbs", "--thumbnail-size", "64"});
  ASSERT_EQ(create.exit_code, 0) << create.err;
  // A file argument: the item id is its name.
  CommandResult index =
      RunCli(*server_, {"index", "thumbs", PhotoPath("chelsea/original.jpg"), "--journal",
                        *dir_ / "thumbs_journal.jsonl", "--no-progress"});
  ASSERT_EQ(index.exit_code, 0) << index.out << index.err;

  const std::string out = *dir_ / "thumb.jpg";
  CommandResult saved = RunCli(*server_, {"thumbnail", "thumbs", "original.jpg", "-o", out});
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  std::ifstream file(out, std::ios::binary);
  const std::string jpeg((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ASSERT_GT(jpeg.size(), 3u);
  EXPECT_EQ(jpeg.substr(0, 3), std::string("\xff\xd8\xff"));  // a JPEG
  auto kept = server_->MakeClient()->GetThumbnail("thumbs", "original.jpg");
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_EQ(kept->jpeg(), jpeg);
  EXPECT_NE(saved.out.find("wrote " + std::to_string(jpeg.size()) + " bytes to " + out),
            std::string::npos)
      << saved.out;
  EXPECT_NE(saved.out.find(kept->etag()), std::string::npos) << saved.out;
  // -o -: the bytes on standard output.
  CommandResult piped = RunCli(*server_, {"thumbnail", "thumbs", "original.jpg", "-o", "-"});
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, jpeg);

  const std::string none = *dir_ / "none.jpg";
  CommandResult missing = RunCli(*server_, {"thumbnail", "thumbs", "nope.jpg", "-o", none});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("NOT_FOUND"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("nope.jpg"), std::string::npos) << missing.err;
  CommandResult plain =
      RunCli(*server_, {"thumbnail", kCollection, "chelsea/flip.jpg", "-o", none});
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_NE(plain.err.find("FAILED_PRECONDITION"), std::string::npos) << plain.err;
  EXPECT_NE(plain.err.find("keeps no thumbnails"), std::string::npos) << plain.err;
  EXPECT_FALSE(fs::exists(none));
  // -o is required.
  EXPECT_EQ(RunCli(*server_, {"thumbnail", "thumbs", "original.jpg"}).exit_code, 2);
}

TEST_F(SearchTest, ModelsAndCollectionsCommands) {
  CommandResult models = RunCli(*server_, {"models", "--json"});
  ASSERT_EQ(models.exit_code, 0) << models.err;
  json m = ParseJson(models);
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m[0]["name"], "efficientnet_lite0");
  EXPECT_EQ(m[0]["dim"], 1280);
  EXPECT_EQ(m[0]["l2_normalized"], true);

  CommandResult list = RunCli(*server_, {"collections", "list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  bool found = false;
  for (const auto& c : ParseJson(list)) {
    if (c["name"] == kCollection) {
      found = true;
      EXPECT_EQ(c["count"].get<size_t>(), photos_.size());
      EXPECT_EQ(c["metric"], "cosine");
      EXPECT_EQ(c["index_spec"], "Flat");
    }
  }
  EXPECT_TRUE(found) << list.out;
  // Search by id: the item itself is left out, its variants come first.
  CommandResult by_id =
      RunCli(*server_, {"search", kCollection, "--id", "rocket/flip.jpg", "--k", "8", "--json"});
  ASSERT_EQ(by_id.exit_code, 0) << by_id.err;
  const json id_hits = ParseJson(by_id)["hits"];
  ASSERT_EQ(id_hits.size(), 8u);
  for (const auto& h : id_hits) {
    EXPECT_NE(h["id"], "rocket/flip.jpg");
    EXPECT_EQ(h["metadata"]["source"], "rocket") << h.dump();
  }

  CommandResult health = RunCli(*server_, {"health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_NE(health.out.find("SERVING"), std::string::npos);
}

TEST_F(SearchTest, PythonExampleBackendAgainstRealServer) {
  const std::string id = "motorcycle/crop_b.jpg";
  CommandResult r = RunCommand(
      {GetPaths().python, GetPaths().source_dir + "/client/python/example_backend.py", "--server",
       server_->address(), "--collection", kCollection, "--query", PhotoPath(id), "--k", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json hits = ParseJson(r);
  ASSERT_EQ(hits.size(), 5u);
  EXPECT_EQ(hits[0]["id"], id);
  EXPECT_NEAR(hits[0]["score"].get<double>(), 1.0, 1e-3);
  EXPECT_EQ(hits[0]["metadata"]["source"], "motorcycle");
}

}  // namespace
}  // namespace lookalike::testing
