// A full disk under the real server: the data directory lives on a small
// tmpfs (mounted here; needs root, else the test is skipped saying so) that a
// ballast file fills. Writes then fail with RESOURCE_EXHAUSTED naming the
// disk, nothing acknowledged is lost, searches keep working, the last good
// snapshot stays intact, and once the ballast is removed writes succeed again
// without a restart; after a restart every acknowledged item is there.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/server_harness.h"

namespace lookalike::testing {
namespace {

constexpr int kDim = 64;
constexpr char kCollection[] = "full_disk";

class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, const std::string& size) : dir_(dir) {
    ::mkdir(dir.c_str(), 0755);
    if (::geteuid() != 0) {
      error_ = "needs root to mount a size-limited tmpfs";
    } else if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) {
      error_ = std::string("mount tmpfs: ") + std::strerror(errno);
    } else {
      mounted_ = true;
    }
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

// Writes zeros to `path` until the filesystem is full; returns bytes written.
int64_t FillDisk(const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  const std::vector<char> block(64 << 10, 0);
  int64_t written = 0;
  while (out.write(block.data(), static_cast<std::streamsize>(block.size()))) {
    out.flush();
    if (!out) break;
    written += static_cast<int64_t>(block.size());
  }
  return written;
}

v1::UpsertRequest Batch(const std::string& prefix, int begin, int n, std::mt19937* rng) {
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  v1::UpsertRequest request;
  request.set_collection(kCollection);
  for (int i = begin; i < begin + n; ++i) {
    v1::Item* item = request.add_items();
    item->set_id(prefix + std::to_string(i));
    (*item->mutable_metadata())["note"] = std::string(200, 'x');
    for (int d = 0; d < kDim; ++d) item->mutable_vector()->add_values(value(*rng));
  }
  return request;
}

std::vector<std::string> MissingOf(Client* client, const std::vector<std::string>& ids) {
  std::vector<std::string> missing;
  for (size_t begin = 0; begin < ids.size(); begin += 1000) {
    v1::GetRequest get;
    get.set_collection(kCollection);
    for (size_t i = begin; i < std::min(ids.size(), begin + 1000); ++i) get.add_ids(ids[i]);
    auto got = client->Get(get);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    if (got.ok())
      missing.insert(missing.end(), got->missing_ids().begin(), got->missing_ids().end());
  }
  return missing;
}

TEST(FullDiskTest, WritesFailCleanlyAndRecoverWhenSpaceIsFreed) {
  TempDir dir;
  const std::string data = dir / "disk";  // the mount point; the server log stays outside
  TmpfsMount disk(data, "16m");
  if (!disk.mounted()) GTEST_SKIP() << disk.error();
  // Snapshots only when a collection opens and replays storage (never
  // periodically), so the test knows which snapshot is on disk.
  ServerProcess server(data, {"--snapshot-every-writes", "1000000000"});
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  ClientOptions options;
  options.max_attempts = 1;  // see each refusal (the client retries RESOURCE_EXHAUSTED)
  auto connect = [&] {
    options.server = server.address();
    auto client = Client::Connect(options);
    EXPECT_TRUE(client.ok());
    return std::move(*client);
  };
  std::unique_ptr<Client> client = connect();

  v1::CreateCollectionRequest create;
  create.set_name(kCollection);
  create.set_model(kVectorsOnly);
  create.set_dim(kDim);
  ASSERT_TRUE(client->CreateCollection(create).ok());

  std::mt19937 rng(7);
  std::vector<std::string> acked;
  auto upsert = [&](const std::string& prefix, int begin, int n) {
    auto response = client->Upsert(Batch(prefix, begin, n, &rng));
    if (response.ok()) {
      for (const auto& s : response->statuses()) {
        if (s.code() == 0) acked.push_back(s.id());
      }
    }
    return response;
  };
  // 300 items, then a crash: the restart replays them and writes a snapshot.
  for (int b = 0; b < 3; ++b) ASSERT_TRUE(upsert("a", b * 100, 100).ok());
  server.Kill9();
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  client = connect();
  const std::string snapshot = data + "/" + kCollection + "/index.snap";
  const std::string good_snapshot = ReadAll(snapshot);
  ASSERT_FALSE(good_snapshot.empty()) << "no snapshot after recovery";
  ASSERT_TRUE(upsert("b", 0, 100).ok());  // past the snapshot

  // Fill the disk, then write until the server refuses.
  ASSERT_GT(FillDisk(data + "/ballast"), 0);
  Status refused;
  for (int b = 1; b < 200 && refused.ok(); ++b) {
    auto response = upsert("b", b * 100, 100);
    if (!response.ok()) refused = response.status();
  }
  ASSERT_FALSE(refused.ok()) << "writes never failed on a full disk";
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted) << refused.ToString();
  EXPECT_NE(refused.message().find("disk holding it is full"), std::string::npos)
      << refused.ToString();
  EXPECT_NE(refused.message().find(data), std::string::npos)
      << "the message names the data directory: " << refused.ToString();

  // Reads keep working and nothing acknowledged is lost.
  auto check_reads = [&](Client* c) {
    v1::SearchRequest search;
    search.set_collection(kCollection);
    search.set_k(5);
    v1::Vector* query = search.add_queries()->mutable_vector();
    for (int d = 0; d < kDim; ++d) query->add_values(d == 0 ? 1.f : 0.f);
    auto found = c->Search(search);
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    EXPECT_EQ(found->results(0).hits_size(), 5);
    EXPECT_TRUE(MissingOf(c, acked).empty());
    auto info = c->DescribeCollection(kCollection);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->count(),
              static_cast<int64_t>(std::set<std::string>(acked.begin(), acked.end()).size()));
  };
  check_reads(client.get());

  // A crash with the disk still full: the restart replays the "b" items and
  // its snapshot fails, leaving the previous snapshot as it was.
  server.Kill9();
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  client = connect();
  EXPECT_NE(server.LogTail(20000).find("snapshot after recovery failed: RESOURCE_EXHAUSTED"),
            std::string::npos)
      << server.LogTail();
  EXPECT_EQ(ReadAll(snapshot), good_snapshot) << "the failed snapshot changed the previous one";
  struct stat st {};
  EXPECT_NE(::stat((snapshot + ".tmp").c_str(), &st), 0) << "a failed snapshot left its temp file";
  check_reads(client.get());
  EXPECT_EQ(upsert("d", 0, 100).status().code(), StatusCode::kResourceExhausted);

  // Space freed: writes and deletes succeed again, without a restart.
  ASSERT_EQ(::unlink((data + "/ballast").c_str()), 0);
  auto again = upsert("c", 0, 100);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->upserted(), 100);
  auto deleted = client->Delete(kCollection, {"a0", "a1"});
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  acked.erase(std::remove_if(acked.begin(), acked.end(),
                             [](const std::string& id) { return id == "a0" || id == "a1"; }),
              acked.end());
  check_reads(client.get());

  // After a crash and restart every acknowledged item is still there.
  server.Kill9();
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  client = connect();
  check_reads(client.get());
  ASSERT_TRUE(server.Stop().ok());
}

}  // namespace
}  // namespace lookalike::testing
