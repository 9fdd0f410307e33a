// Durability against the real server: a restart keeps collections, items,
// metadata and deletions (with SQLite storage and with a real PostgreSQL,
// tests/pg_harness.h); `kill -9` in the middle of a bulk ingest loses no
// acknowledged item and duplicates none, and the CLI resumes from its journal.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/cli/ingest_files.h"
#include "tests/integration/server_harness.h"
#include "tests/pg_harness.h"

namespace lookalike::testing {
namespace {

using json = nlohmann::json;

std::vector<std::string> PhotoIds(const std::vector<std::string>& sources) {
  std::vector<std::string> ids;
  for (const auto& s : sources) {
    for (const char* v : {"original.jpg", "crop_a.jpg", "crop_b.jpg", "flip.jpg", "zoom.jpg",
                          "rotate.jpg", "jitter.jpg", "jpeg_q25.jpg", "png.png"}) {
      ids.push_back(s + "/" + v);
    }
  }
  return ids;
}

// Every item of `collection`, by a search that returns them all.
std::vector<std::string> AllIds(Client* client, const std::string& collection, int dim) {
  v1::SearchRequest req;
  req.set_collection(collection);
  req.set_k(2048);
  v1::Vector* q = req.add_queries()->mutable_vector();
  for (int i = 0; i < dim; ++i) q->add_values(i == 0 ? 1.f : 0.f);
  auto r = client->Search(req);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> ids;
  if (r.ok()) {
    for (const auto& h : r->results(0).hits()) ids.push_back(h.id());
  }
  return ids;
}

// `flags`: extra server flags (the storage).
void RestartKeepsCollectionsItemsMetadataAndDeletions(const std::vector<std::string>& flags) {
  TempDir dir;
  ServerProcess server(dir / "data", flags);
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  auto client = server.MakeClient();

  v1::CreateCollectionRequest photos;
  photos.set_name("keep");
  auto info = client->CreateCollection(photos);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  const int dim = info->dim();
  v1::CreateCollectionRequest raw;
  raw.set_name("raw_l2");
  raw.set_metric(v1::L2);
  raw.set_dim(dim);
  ASSERT_TRUE(client->CreateCollection(raw).ok());

  v1::UpsertRequest up;
  up.set_collection("keep");
  for (const auto& id : PhotoIds({"chelsea", "coffee"})) {
    v1::Item* item = up.add_items();
    item->set_id(id);
    item->set_image(ReadAll(GetPaths().photos + "/" + id));
    (*item->mutable_metadata())["source"] = id.substr(0, id.find('/'));
  }
  auto written = client->Upsert(up);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  ASSERT_EQ(written->upserted(), 18);
  auto deleted = client->Delete("keep", {"coffee/flip.jpg"});
  ASSERT_TRUE(deleted.ok());
  ASSERT_EQ(*deleted, 1);

  v1::UpsertRequest vecs;
  vecs.set_collection("raw_l2");
  for (int i = 0; i < 5; ++i) {
    v1::Item* item = vecs.add_items();
    item->set_id("v" + std::to_string(i));
    for (int d = 0; d < dim; ++d) item->mutable_vector()->add_values(d == i ? 2.f : 0.f);
  }
  ASSERT_TRUE(client->Upsert(vecs).ok());

  ASSERT_TRUE(server.Stop().ok());  // graceful: SIGTERM
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  client = server.MakeClient();

  auto keep = client->DescribeCollection("keep");
  ASSERT_TRUE(keep.ok()) << keep.status().ToString();
  EXPECT_EQ(keep->count(), 17);
  EXPECT_EQ(keep->model(), "efficientnet_lite0");
  auto l2 = client->DescribeCollection("raw_l2");
  ASSERT_TRUE(l2.ok());
  EXPECT_EQ(l2->count(), 5);
  EXPECT_EQ(l2->metric(), v1::L2);

  CommandResult s =
      RunCli(server, {"search", "keep", "--image", GetPaths().photos + "/coffee/original.jpg",
                      "--k", "20", "--json"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  json hits = json::parse(s.out)["hits"];
  ASSERT_EQ(hits.size(), 17u);
  EXPECT_EQ(hits[0]["id"], "coffee/original.jpg");
  EXPECT_NEAR(hits[0]["score"].get<double>(), 1.0, 1e-3);
  EXPECT_EQ(hits[0]["metadata"]["source"], "coffee");
  for (const auto& h : hits) EXPECT_NE(h["id"], "coffee/flip.jpg");

  // L2 scores survive too: v3 is nearest to itself (score -0).
  v1::SearchRequest q;
  q.set_collection("raw_l2");
  q.set_k(5);
  q.add_queries()->set_id("v3");
  auto r = client->Search(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->results(0).hits_size(), 4);                 // itself excluded
  EXPECT_NEAR(r->results(0).hits(0).score(), -8.f, 1e-4);  // -(2^2 + 2^2)

  // Acknowledged writes survive a crash as well (no graceful snapshot).
  v1::UpsertRequest more;
  more.set_collection("raw_l2");
  for (int i = 5; i < 8; ++i) {
    v1::Item* item = more.add_items();
    item->set_id("v" + std::to_string(i));
    for (int d = 0; d < dim; ++d) item->mutable_vector()->add_values(d == i ? 2.f : 0.f);
  }
  ASSERT_TRUE(client->Upsert(more).ok());
  ASSERT_TRUE(client->Delete("raw_l2", {"v0"}).ok());
  server.Kill9();
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  client = server.MakeClient();
  std::vector<std::string> ids = AllIds(client.get(), "raw_l2", dim);
  std::multiset<std::string> got(ids.begin(), ids.end());
  EXPECT_EQ(got, (std::multiset<std::string>{"v1", "v2", "v3", "v4", "v5", "v6", "v7"}));
}

TEST(DurabilityTest, RestartKeepsCollectionsItemsMetadataAndDeletions) {
  RestartKeepsCollectionsItemsMetadataAndDeletions({});
}

// The same with `--storage postgresql://...`; then a second server with an
// empty data directory on the same database finds the collections and their
// items (its index rebuilt from the database), and a server whose database
// is unreachable exits naming it.
TEST(DurabilityTest, PostgresRestartKeepsCollectionsItemsMetadataAndDeletions) {
  std::string why;
  PgHarness* pg = PgHarness::Get(&why);
  if (pg == nullptr && !PgHarness::Installed()) GTEST_SKIP() << why;
  ASSERT_NE(pg, nullptr) << why;
  auto uri = pg->NewDatabase();
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  RestartKeepsCollectionsItemsMetadataAndDeletions({"--storage", *uri});
  if (HasFatalFailure()) return;

  TempDir dir;
  ServerProcess replica(dir / "data", {"--storage", *uri});
  ASSERT_TRUE(replica.Start().ok()) << replica.LogTail();
  auto client = replica.MakeClient();
  auto keep = client->DescribeCollection("keep");
  ASSERT_TRUE(keep.ok()) << keep.status().ToString();
  EXPECT_EQ(keep->count(), 17);
  std::vector<std::string> ids = AllIds(client.get(), "raw_l2", keep->dim());
  std::multiset<std::string> got(ids.begin(), ids.end());
  EXPECT_EQ(got, (std::multiset<std::string>{"v1", "v2", "v3", "v4", "v5", "v6", "v7"}));
  ASSERT_TRUE(replica.Stop().ok());

  ServerProcess unreachable(dir / "data2",
                            {"--storage", "postgresql://lookalike@127.0.0.1:1/nowhere"});
  EXPECT_FALSE(unreachable.Start(std::chrono::seconds(60)).ok());
  EXPECT_NE(unreachable.LogTail().find("postgresql://lookalike@127.0.0.1:1/nowhere"),
            std::string::npos)
      << unreachable.LogTail();
}

TEST(DurabilityTest, Kill9DuringBulkIngestKeepsEveryAcknowledgedItemExactlyOnce) {
  TempDir dir;
  ServerProcess server(dir / "data");
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  auto client = server.MakeClient();
  v1::CreateCollectionRequest create;
  create.set_name("bulk");
  auto info = client->CreateCollection(create);
  ASSERT_TRUE(info.ok());
  const int dim = info->dim();

  auto files = CollectImageFiles({GetPaths().photos});
  ASSERT_TRUE(files.ok());
  const size_t total = files->size();
  const std::string journal = dir / "journal.jsonl";
  const std::string cli_log = dir / "cli.log";
  std::vector<std::string> argv = {GetPaths().cli_bin, "index", "bulk",          GetPaths().photos,
                                   "--journal",        journal, "--batch",       "2",
                                   "--concurrency",    "2",     "--attempts",    "2",
                                   "--timeout",        "20",    "--no-progress", "--server",
                                   server.address()};
  pid_t cli = SpawnBackground(argv, cli_log);

  // Crash the server once a good part of the ingest is acknowledged.
  size_t acked_at_kill = 0;
  bool cli_done = false;
  int cli_rc = -1;
  for (int i = 0; i < 6000; ++i) {
    auto entries = IngestJournal::Read(journal);
    acked_at_kill = entries.ok() ? entries->size() : 0;
    if (acked_at_kill >= 20) break;
    int status = 0;
    if (waitpid(cli, &status, WNOHANG) == cli) {
      cli_done = true;
      cli_rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(cli_done) << "the ingest ended (rc " << cli_rc << ") before the crash:\n"
                         << ReadAll(cli_log);
  server.Kill9();
  cli_rc = WaitProcess(cli);
  std::string log = ReadAll(cli_log);
  auto entries = IngestJournal::Read(journal);
  ASSERT_TRUE(entries.ok());
  std::set<std::string> acked;
  for (const auto& e : *entries) {
    EXPECT_TRUE(acked.insert(e.id).second) << "journal acknowledges " << e.id << " twice";
  }
  ASSERT_GE(acked.size(), 20u);
  ASSERT_LT(acked.size(), total) << "everything was acknowledged before the crash";
  EXPECT_EQ(cli_rc, 1) << log;  // the run reports the files it could not send
  EXPECT_NE(log.find("UNAVAILABLE"), std::string::npos) << log;

  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  client = server.MakeClient();
  v1::GetRequest get;
  get.set_collection("bulk");
  for (const auto& id : acked) get.add_ids(id);
  auto got = client->Get(get);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->missing_ids_size(), 0) << "acknowledged but lost: " << got->missing_ids(0);
  EXPECT_EQ(got->items_size(), static_cast<int>(acked.size()));
  std::vector<std::string> stored = AllIds(client.get(), "bulk", dim);
  std::multiset<std::string> stored_set(stored.begin(), stored.end());
  for (const auto& id : stored) EXPECT_EQ(stored_set.count(id), 1u) << id << " stored twice";
  auto described = client->DescribeCollection("bulk");
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->count(), static_cast<int64_t>(stored.size()));
  EXPECT_GE(stored.size(), acked.size());  // in-flight batches may have landed unacknowledged

  // Resume: only what was not acknowledged is sent; the collection ends whole.
  std::vector<std::string> resume = {"index",     "bulk",  GetPaths().photos,
                                     "--journal", journal, "--json"};
  CommandResult r = RunCli(server, resume);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["skipped"].get<size_t>(), acked.size());
  EXPECT_EQ(j["indexed"].get<size_t>(), total - acked.size());
  stored = AllIds(client.get(), "bulk", dim);
  std::multiset<std::string> final_set(stored.begin(), stored.end());
  EXPECT_EQ(stored.size(), total);
  for (const auto& f : *files) EXPECT_EQ(final_set.count(f.id), 1u) << f.id;
  described = client->DescribeCollection("bulk");
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->count(), static_cast<int64_t>(total));
}

}  // namespace
}  // namespace lookalike::testing
