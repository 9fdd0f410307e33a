// Text search end to end: lookalike-server serving a random-weight CLIP
// checkpoint (the clip_vit_b32 fixture of tests/models, a Hugging Face
// CLIPModel model.safetensors + config.json, with vocab.json + merges.txt
// beside it: the default tokenizer) next to the EfficientNet default model.
// The reference (tools/make_clip_text_reference.py --search) is
// transformers' CLIPModel on the same weights: its image-text cosine
// similarity matrix for the PNG images and texts of DIR/search.
//
// Skips when the fixture's generator recorded that the Python reference
// stack is absent (DIR/SKIPPED).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lookalike/v1/lookalike.grpc.pb.h"
#include "tests/integration/server_harness.h"

namespace lookalike::testing {
namespace {

// fp32 on both sides, the same 8-bit pixels (measured: ~1e-7). Random
// weights give similarities within ~1e-3 of each other, so the tolerance must
// be well below that for the ranking check to mean something.
constexpr float kTolerance = 2e-4f;

class TextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* dir = std::getenv("LOOKALIKE_CLIP_TEXT_DIR");
    if (dir == nullptr) {
      skip_ = "LOOKALIKE_CLIP_TEXT_DIR not set (run through ctest)";
      return;
    }
    fixture_ = dir;
    if (std::filesystem::exists(fixture_ + "/SKIPPED")) {
      skip_ = ReadAll(fixture_ + "/SKIPPED");
      return;
    }
    const std::string text = ReadAll(fixture_ + "/search/reference.json");
    if (text.empty()) {
      setup_error_ = "missing " + fixture_ + "/search/reference.json";
      return;
    }
    reference_ = new nlohmann::json(nlohmann::json::parse(text));
    dir_ = new TempDir();
    server_ = new ServerProcess(
        *dir_ / "data", {"--model", "clip=clip_vit_b32:" + fixture_ + "/model.safetensors"});
    if (Status s = server_->Start(std::chrono::seconds(240)); !s.ok()) {
      setup_error_ = s.ToString();
      return;
    }
    auto client = server_->MakeClient();
    v1::CreateCollectionRequest create;
    create.set_name("clip_images");
    create.set_model("clip");
    if (auto info = client->CreateCollection(create); !info.ok()) {
      setup_error_ = "create: " + info.status().ToString();
      return;
    }
    v1::UpsertRequest upsert;
    upsert.set_collection("clip_images");
    for (const auto& name : (*reference_)["images"]) {
      v1::Item* item = upsert.add_items();
      item->set_id(name.get<std::string>());
      item->set_image(ReadAll(fixture_ + "/search/" + name.get<std::string>() + ".png"));
      (*item->mutable_metadata())["half"] = name.get<std::string>() < "img3" ? "first" : "second";
    }
    auto written = client->Upsert(upsert);
    if (!written.ok() || written->failed() != 0) {
      setup_error_ =
          "upsert: " + (written.ok() ? written->DebugString() : written.status().ToString());
    }
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) (void)server_->Stop();
    delete server_;
    delete dir_;
    delete reference_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    client_ = server_->MakeClient(1);
  }
  void TearDown() override {
    if (!skip_.empty() || !client_) return;
    auto serving = client_->CheckHealth();
    ASSERT_TRUE(serving.ok()) << serving.status().ToString() << "\n" << server_->LogTail();
    EXPECT_TRUE(*serving);
  }

  static std::vector<std::string> Images() {
    return (*reference_)["images"].get<std::vector<std::string>>();
  }
  static std::vector<std::string> Texts() {
    return (*reference_)["texts"].get<std::vector<std::string>>();
  }
  static float Reference(size_t image, size_t text) {
    return (*reference_)["similarity"][image][text].get<float>();
  }

  static inline std::string fixture_;
  static inline std::string skip_;
  static inline std::string setup_error_;
  static inline nlohmann::json* reference_ = nullptr;
  static inline TempDir* dir_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
  std::unique_ptr<Client> client_;
};

float Dot(const v1::Vector& a, const v1::Vector& b) {
  float s = 0;
  for (int i = 0; i < a.values_size(); ++i) s += a.values(i) * b.values(i);
  return s;
}

TEST_F(TextTest, ListModelsSaysWhichModelEmbedsTexts) {
  auto models = client_->ListModels();
  ASSERT_TRUE(models.ok()) << models.status().ToString();
  std::map<std::string, bool> has_text;
  for (const auto& m : *models) has_text[m.name()] = m.has_text();
  EXPECT_TRUE(has_text.at("clip"));
  EXPECT_FALSE(has_text.at("efficientnet_lite0"));
}

// The server's image and text embeddings give the reference's similarity
// matrix.
TEST_F(TextTest, ImageTextSimilarityMatchesTheReference) {
  const std::vector<std::string> images = Images();
  const std::vector<std::string> texts = Texts();
  v1::EmbedRequest by_image;
  by_image.set_model("clip");
  for (const std::string& name : images) {
    by_image.add_images(ReadAll(fixture_ + "/search/" + name + ".png"));
  }
  auto image_vectors = client_->Embed(by_image);
  ASSERT_TRUE(image_vectors.ok()) << image_vectors.status().ToString();
  v1::EmbedRequest by_text;
  by_text.set_model("clip");
  for (const std::string& t : texts) by_text.add_texts(t);
  auto text_vectors = client_->Embed(by_text);
  ASSERT_TRUE(text_vectors.ok()) << text_vectors.status().ToString();
  ASSERT_EQ(image_vectors->vectors_size(), static_cast<int>(images.size()));
  ASSERT_EQ(text_vectors->vectors_size(), static_cast<int>(texts.size()));
  EXPECT_TRUE(text_vectors->model().has_text());
  float worst = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    for (size_t t = 0; t < texts.size(); ++t) {
      const float got = Dot(image_vectors->vectors(static_cast<int>(i)),
                            text_vectors->vectors(static_cast<int>(t)));
      worst = std::max(worst, std::abs(got - Reference(i, t)));
      EXPECT_NEAR(got, Reference(i, t), kTolerance) << images[i] << " x \"" << texts[t] << "\"";
    }
  }
  std::printf("image-text similarity: largest difference from the reference %.2e (%zu x %zu)\n",
              worst, images.size(), texts.size());
}

// A text query over the image collection ranks the images as the reference's
// similarities do (pairs closer than the tolerance may come in either order),
// with the reference's scores; the CLI gives the same first hit.
TEST_F(TextTest, TextQueryRanksImagesAsTheReference) {
  const std::vector<std::string> images = Images();
  const std::vector<std::string> texts = Texts();
  v1::SearchRequest search;
  search.set_collection("clip_images");
  search.set_k(static_cast<int>(images.size()));
  for (const std::string& t : texts) search.add_queries()->set_text(t);
  auto found = client_->Search(search);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_EQ(found->results_size(), static_cast<int>(texts.size()));
  for (size_t t = 0; t < texts.size(); ++t) {
    const auto& hits = found->results(static_cast<int>(t)).hits();
    ASSERT_EQ(hits.size(), static_cast<int>(images.size()));
    std::vector<float> reference;
    for (const auto& hit : hits) {
      const size_t i = std::find(images.begin(), images.end(), hit.id()) - images.begin();
      ASSERT_LT(i, images.size()) << hit.id();
      EXPECT_NEAR(hit.score(), Reference(i, t), kTolerance)
          << hit.id() << " \"" << texts[t] << "\"";
      reference.push_back(Reference(i, t));
    }
    for (size_t j = 1; j < reference.size(); ++j) {
      EXPECT_GE(reference[j - 1], reference[j] - 2 * kTolerance)
          << "\"" << texts[t] << "\": hit " << j << " ranks above a better one";
    }
  }

  // Filters and k, as for other queries.
  search.clear_queries();
  search.add_queries()->set_text(texts[0]);
  search.set_k(2);
  v1::FieldFilter* filter = search.add_filter();
  filter->set_key("half");
  filter->add_values("second");
  auto filtered = client_->Search(search);
  ASSERT_TRUE(filtered.ok()) << filtered.status().ToString();
  ASSERT_EQ(filtered->results(0).hits_size(), 2);
  for (const auto& hit : filtered->results(0).hits()) EXPECT_GE(hit.id(), "img3");

  CommandResult cli = RunCli(*server_, {"search", "clip_images", "--text", texts[1], "--json"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  const auto hits = nlohmann::json::parse(cli.out)["hits"];
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0]["id"], found->results(1).hits(0).id());
  CommandResult embed =
      RunCli(*server_, {"embed", "--model", "clip", "--text", texts[2], "--json"});
  ASSERT_EQ(embed.exit_code, 0) << embed.err;
  EXPECT_EQ(nlohmann::json::parse(embed.out)[0]["vector"].size(), 512u);
}

TEST_F(TextTest, TextErrorsNameTheModelOrTheItem) {
  // The default model (EfficientNet) has no text tower.
  v1::CreateCollectionRequest create;
  create.set_name("plain");
  ASSERT_TRUE(client_->CreateCollection(create).ok() || client_->DescribeCollection("plain").ok());
  CommandResult cli = RunCli(*server_, {"search", "plain", "--text", "red"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("FAILED_PRECONDITION"), std::string::npos) << cli.err;
  EXPECT_NE(cli.err.find("queries[0]: collection \"plain\"'s model \"efficientnet_lite0\""),
            std::string::npos)
      << cli.err;

  v1::SearchRequest search;
  search.set_collection("clip_images");
  search.add_queries()->set_text("fine");
  search.add_queries()->set_text("");
  auto r = client_->Search(search);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "queries[1]: text is empty");

  // Over the context: truncated as CLIP does, not refused.
  v1::EmbedRequest long_text;
  long_text.set_model("clip");
  std::string words;
  for (int i = 0; i < 200; ++i) words += "word ";
  long_text.add_texts(words);
  EXPECT_TRUE(client_->Embed(long_text).ok());

  // Not UTF-8: the client refuses it naming the item. Sent anyway (a raw
  // stub), protobuf's parser refuses the message before the service sees it
  // (gRPC answers UNIMPLEMENTED, without a message, on a request it cannot
  // parse) and the server stays up.
  v1::EmbedRequest bad;
  bad.set_model("clip");
  bad.add_texts(std::string("caf\xC3", 4));
  auto e = client_->Embed(bad);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "texts[0]: text is not valid UTF-8");
  auto stub = v1::Lookalike::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::EmbedResponse response;
  const grpc::Status raw = stub->Embed(&ctx, bad, &response);
  EXPECT_FALSE(raw.ok());
  std::printf("invalid UTF-8 sent raw: %d %s\n", static_cast<int>(raw.error_code()),
              raw.error_message().c_str());
}

}  // namespace
}  // namespace lookalike::testing
