// Bad input against the real server: every case gets its documented gRPC code
// and a message naming what was wrong, and the server keeps SERVING.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/integration/server_harness.h"

namespace lookalike::testing {
namespace {

class ErrorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new ServerProcess(*dir_ / "data");
    Status s = server_->Start();
    if (!s.ok()) {
      setup_error_ = s.ToString();
      return;
    }
    auto client = server_->MakeClient();
    v1::CreateCollectionRequest create;
    create.set_name("err");
    auto info = client->CreateCollection(create);
    if (!info.ok()) {
      setup_error_ = "create: " + info.status().ToString();
      return;
    }
    dim_ = info->dim();
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) (void)server_->Stop();
    delete server_;
    delete dir_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    client_ = server_->MakeClient(1);
  }
  void TearDown() override {
    // Whatever the test sent, the server is still up and answering.
    auto serving = client_->CheckHealth();
    ASSERT_TRUE(serving.ok()) << serving.status().ToString() << "\n" << server_->LogTail();
    EXPECT_TRUE(*serving);
    EXPECT_TRUE(server_->running());
    EXPECT_TRUE(client_->DescribeCollection("err").ok());
  }

  static std::string Photo(const std::string& id) { return ReadAll(GetPaths().photos + "/" + id); }
  static v1::Item VectorItem(const std::string& id, std::vector<float> v) {
    v1::Item item;
    item.set_id(id);
    for (float x : v) item.mutable_vector()->add_values(x);
    return item;
  }
  std::vector<float> Unit() const {
    std::vector<float> v(static_cast<size_t>(dim_), 0.f);
    v[0] = 1.f;
    return v;
  }

  static inline TempDir* dir_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
  static inline std::string setup_error_;
  static inline int dim_ = 0;
  std::unique_ptr<Client> client_;
};

TEST_F(ErrorsTest, BadItemsAreRejectedOneByOneAndGoodOnesWritten) {
  std::string jpeg = Photo("chelsea/original.jpg");
  ASSERT_GT(jpeg.size(), 4000u);
  std::vector<float> nan = Unit();
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> inf = Unit();
  inf[1] = std::numeric_limits<float>::infinity();

  v1::UpsertRequest req;
  req.set_collection("err");
  auto add_image = [&](const std::string& id, const std::string& bytes) {
    v1::Item* item = req.add_items();
    item->set_id(id);
    item->set_image(bytes);
  };
  add_image("empty.jpg", "");                                   // 0
  add_image("truncated.jpg", jpeg.substr(0, jpeg.size() / 3));  // 1
  add_image("text.jpg", "this is not an image at all");         // 2
  *req.add_items() = VectorItem("nan", nan);                    // 3
  *req.add_items() = VectorItem("inf", inf);                    // 4
  *req.add_items() = VectorItem("short", {1.f, 0.f, 0.f});      // 5: wrong dim
  *req.add_items() = VectorItem("good-vector", Unit());         // 6
  add_image("good.jpg", jpeg);                                  // 7
  v1::Item* no_content = req.add_items();                       // 8: neither image nor vector
  no_content->set_id("nothing");
  *req.add_items() = VectorItem("", Unit());  // 9: empty id

  auto r = client_->Upsert(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->statuses_size(), req.items_size());
  for (int i = 0; i < req.items_size(); ++i) {
    const auto& st = r->statuses(i);
    const bool should_pass = i == 6 || i == 7;
    EXPECT_EQ(st.id(), req.items(i).id()) << i;
    if (should_pass) {
      EXPECT_EQ(st.code(), 0) << i << ": " << st.message();
      continue;
    }
    EXPECT_EQ(st.code(), 3) << "item " << i << " (" << st.id() << "): " << st.message();
    EXPECT_FALSE(st.message().empty()) << i;
  }
  EXPECT_EQ(r->upserted(), 2);
  EXPECT_EQ(r->failed(), req.items_size() - 2);
  // Messages say what was wrong.
  EXPECT_NE(r->statuses(5).message().find(std::to_string(dim_)), std::string::npos)
      << r->statuses(5).message();

  v1::GetRequest get;
  get.set_collection("err");
  for (const char* id : {"good-vector", "good.jpg", "nan", "truncated.jpg"}) get.add_ids(id);
  auto got = client_->Get(get);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->items_size(), 2);
  EXPECT_EQ(got->items(0).id(), "good-vector");
  EXPECT_EQ(got->items(1).id(), "good.jpg");
  ASSERT_EQ(got->missing_ids_size(), 2);
}

TEST_F(ErrorsTest, UnknownCollectionIsNotFound) {
  v1::UpsertRequest up;
  up.set_collection("no_such_collection");
  *up.add_items() = VectorItem("a", Unit());
  auto u = client_->Upsert(up);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kNotFound);
  EXPECT_NE(u.status().message().find("no_such_collection"), std::string::npos)
      << u.status().message();

  v1::SearchRequest s;
  s.set_collection("no_such_collection");
  *s.add_queries()->mutable_vector() = VectorItem("q", Unit()).vector();
  auto sr = client_->Search(s);
  ASSERT_FALSE(sr.ok());
  EXPECT_EQ(sr.status().code(), StatusCode::kNotFound);

  EXPECT_EQ(client_->DescribeCollection("no_such_collection").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(client_->DropCollection("no_such_collection").code(), StatusCode::kNotFound);

  // The CLI prints the server's message and exits with 1.
  CommandResult cli = RunCli(*server_, {"search", "no_such_collection", "--vector", "1,0,0"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("NOT_FOUND"), std::string::npos) << cli.err;
  EXPECT_NE(cli.err.find("no_such_collection"), std::string::npos) << cli.err;
  CommandResult idx =
      RunCli(*server_, {"index", "no_such_collection", GetPaths().photos + "/coins"});
  EXPECT_EQ(idx.exit_code, 1);
  EXPECT_NE(idx.err.find("NOT_FOUND"), std::string::npos) << idx.err;
}

TEST_F(ErrorsTest, BadSearchRequestsAreInvalidArgument) {
  auto search = [&](const std::function<void(v1::SearchRequest*)>& edit) {
    v1::SearchRequest s;
    s.set_collection("err");
    s.set_k(5);
    *s.add_queries()->mutable_vector() = VectorItem("q", Unit()).vector();
    edit(&s);
    return client_->Search(s);
  };
  auto too_large_k = search([](v1::SearchRequest* s) { s->set_k(2049); });
  ASSERT_FALSE(too_large_k.ok());
  EXPECT_EQ(too_large_k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_large_k.status().message().find("2048"), std::string::npos)
      << too_large_k.status().message();

  auto negative_k = search([](v1::SearchRequest* s) { s->set_k(-1); });
  EXPECT_EQ(negative_k.status().code(), StatusCode::kInvalidArgument);

  auto wrong_dim = search(
      [](v1::SearchRequest* s) { s->mutable_queries(0)->mutable_vector()->add_values(1.f); });
  ASSERT_FALSE(wrong_dim.ok());
  EXPECT_EQ(wrong_dim.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_dim.status().message().find(std::to_string(dim_)), std::string::npos)
      << wrong_dim.status().message();

  auto nan = search([](v1::SearchRequest* s) {
    s->mutable_queries(0)->mutable_vector()->set_values(2, std::numeric_limits<float>::quiet_NaN());
  });
  EXPECT_EQ(nan.status().code(), StatusCode::kInvalidArgument) << nan.status().ToString();

  auto no_queries = search([](v1::SearchRequest* s) { s->clear_queries(); });
  EXPECT_EQ(no_queries.status().code(), StatusCode::kInvalidArgument);

  auto bad_image =
      search([](v1::SearchRequest* s) { s->mutable_queries(0)->set_image("GIF89a broken"); });
  EXPECT_EQ(bad_image.status().code(), StatusCode::kInvalidArgument)
      << bad_image.status().ToString();

  auto unknown_id =
      search([](v1::SearchRequest* s) { s->mutable_queries(0)->set_id("never-stored"); });
  ASSERT_FALSE(unknown_id.ok());
  EXPECT_EQ(unknown_id.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown_id.status().message().find("never-stored"), std::string::npos);

  CommandResult cli = RunCli(*server_, {"search", "err", "--vector", "nan,1,2"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("INVALID_ARGUMENT"), std::string::npos) << cli.err;
}

TEST_F(ErrorsTest, TooManyItemsIsInvalidArgument) {
  v1::UpsertRequest req;
  req.set_collection("err");
  for (int i = 0; i < 4097; ++i) *req.add_items() = VectorItem("many" + std::to_string(i), {1.f});
  auto r = client_->Upsert(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("4096"), std::string::npos) << r.status().message();
  v1::GetRequest get;
  get.set_collection("err");
  get.add_ids("many0");
  auto g = client_->Get(get);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->items_size(), 0);  // nothing of the rejected request was written
}

TEST_F(ErrorsTest, BadEmbedAndCollectionRequests) {
  v1::EmbedRequest empty;
  empty.add_images("");
  EXPECT_EQ(client_->Embed(empty).status().code(), StatusCode::kInvalidArgument);
  v1::EmbedRequest text;
  text.add_images(Photo("coins/original.jpg"));
  text.add_images("plain text");
  auto t = client_->Embed(text);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("1"), std::string::npos)
      << t.status().message();  // names images[1]
  v1::EmbedRequest model;
  model.set_model("no_such_model");
  model.add_images(Photo("coins/original.jpg"));
  EXPECT_EQ(client_->Embed(model).status().code(), StatusCode::kNotFound);

  v1::CreateCollectionRequest dup;
  dup.set_name("err");
  EXPECT_EQ(client_->CreateCollection(dup).status().code(), StatusCode::kAlreadyExists);
  v1::CreateCollectionRequest bad_name;
  bad_name.set_name("bad name/with slash");
  EXPECT_EQ(client_->CreateCollection(bad_name).status().code(), StatusCode::kInvalidArgument);
  v1::CreateCollectionRequest bad_model;
  bad_model.set_name("x");
  bad_model.set_model("no_such_model");
  EXPECT_EQ(client_->CreateCollection(bad_model).status().code(), StatusCode::kNotFound);

  CommandResult cli = RunCli(*server_, {"collections", "create", "err"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("ALREADY_EXISTS"), std::string::npos) << cli.err;
}

TEST_F(ErrorsTest, CliIndexListsFailedFilesAndKeepsGoing) {
  TempDir dir;
  std::string good = ReadAll(GetPaths().photos + "/flower/original.jpg");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::FILE* f = std::fopen((dir / name).c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  };
  write("a_good.jpg", good);
  write("b_empty.jpg", "");
  write("c_truncated.jpg", good.substr(0, 500));
  write("d_text.png", "hello");
  write("e_good.jpg", good);
  write("notes.txt", "ignored: not an image extension");
  CommandResult r = RunCli(
      *server_, {"index", "err", dir.path(), "--journal", dir / "journal.jsonl", "--no-progress"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("indexed 2, already indexed 0, failed 3 (of 5 files)"), std::string::npos)
      << r.out;
  for (const char* name : {"b_empty.jpg", "c_truncated.jpg", "d_text.png"}) {
    EXPECT_NE(r.err.find(std::string(name) + ": INVALID_ARGUMENT"), std::string::npos)
        << name << "\n"
        << r.err;
  }
  EXPECT_EQ(r.err.find("a_good.jpg:"), std::string::npos) << r.err;
  // Re-running retries only the failures.
  CommandResult again =
      RunCli(*server_, {"index", "err", dir.path(), "--journal", dir / "journal.jsonl"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.out.find("indexed 0, already indexed 2, failed 3"), std::string::npos)
      << again.out;
}

// A vectors-only collection: the server says model "none" (never ""), so the
// CLI refuses to index images into it before reading any file, and describe
// and list say so. (The CLI used to test for "", so it went on to upload every
// file, each one refused, and describe printed a bare "none".)
TEST_F(ErrorsTest, CliKnowsVectorsOnlyCollections) {
  CommandResult create =
      RunCli(*server_, {"collections", "create", "raw_cli", "--model", "none", "--dim", "3"});
  ASSERT_EQ(create.exit_code, 0) << create.out << create.err;
  EXPECT_NE(create.out.find("(model none, dim 3"), std::string::npos) << create.out;

  TempDir dir;
  CommandResult index = RunCli(*server_, {"index", "raw_cli", GetPaths().photos + "/flower",
                                          "--journal", dir / "journal.jsonl", "--no-progress"});
  EXPECT_EQ(index.exit_code, 1) << index.out << index.err;
  EXPECT_NE(index.err.find("FAILED_PRECONDITION: collection \"raw_cli\" stores raw vectors only "
                           "(no model); it cannot index images"),
            std::string::npos)
      << index.err;
  EXPECT_EQ(index.out.find("indexed"), std::string::npos) << index.out;  // nothing was sent

  CommandResult describe = RunCli(*server_, {"collections", "describe", "raw_cli"});
  ASSERT_EQ(describe.exit_code, 0) << describe.err;
  EXPECT_NE(describe.out.find("model:        none (vectors only)"), std::string::npos)
      << describe.out;
  CommandResult json = RunCli(*server_, {"collections", "describe", "raw_cli", "--json"});
  EXPECT_NE(json.out.find("\"model\": \"none\""), std::string::npos) << json.out;
  EXPECT_TRUE(client_->DropCollection("raw_cli").ok());
}

}  // namespace
}  // namespace lookalike::testing
