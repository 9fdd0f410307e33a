// The image path end to end with the real engine: encoded images -> decode ->
// batcher -> Embedder (EfficientNet-Lite0 on the CPU backend) -> collection
// (SQLite + FAISS) -> search, through a gRPC server on a loopback port.
// Needs weights/efficientnet_lite0.safetensors (tools/prepare_weights.py);
// skipped without it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "index/collection.h"
#include "models/embedder.h"
#include "server/grpc_server.h"
#include "server/service.h"

namespace lookalike {
namespace {

namespace pb = ::lookalike::v1;

const std::string kWeights = std::string(LOOKALIKE_SOURCE_DIR) +
                             "/weights/efficientnet_lite0.safetensors";

// Distinct synthetic scenes (BGR), 160 x 120.
cv::Mat Scene(int kind) {
  cv::Mat m(120, 160, CV_8UC3, cv::Scalar(30, 30, 30));
  switch (kind) {
    case 0:  // checkerboard
      for (int y = 0; y < m.rows; ++y) {
        for (int x = 0; x < m.cols; ++x) {
          if (((x / 16) + (y / 16)) % 2) m.at<cv::Vec3b>(y, x) = cv::Vec3b(240, 240, 240);
        }
      }
      break;
    case 1:  // concentric circles
      for (int r = 60; r > 0; r -= 12) {
        cv::circle(m, {80, 60}, r, r % 24 ? cv::Scalar(0, 0, 255) : cv::Scalar(0, 255, 255), -1);
      }
      break;
    default:  // horizontal gradient with stripes
      for (int x = 0; x < m.cols; ++x) m.col(x).setTo(cv::Scalar(x * 255 / m.cols, 90, 20));
      for (int y = 0; y < m.rows; y += 20) m.row(y).setTo(cv::Scalar(255, 255, 255));
  }
  return m;
}

std::string Encode(const cv::Mat& m, const std::string& ext, std::vector<int> params = {}) {
  std::vector<uint8_t> buf;
  cv::imencode(ext, m, buf, params);
  return std::string(buf.begin(), buf.end());
}

TEST(RealModelTest, EmbedUpsertSearchWithEfficientNetLite0) {
  if (!std::filesystem::exists(kWeights)) {
    GTEST_SKIP() << kWeights << " not prepared (run .venv/bin/python tools/prepare_weights.py)";
  }
  EmbedderOptions options;
  options.preset = "efficientnet_lite0";
  options.weights_path = kWeights;
  options.device = "cpu";
  options.num_threads = 2;
  StatusOr<std::unique_ptr<Embedder>> embedder = Embedder::Load(options);
  ASSERT_TRUE(embedder.ok()) << embedder.status().ToString();
  ServedModel model;
  model.name = "efficientnet_lite0";
  model.info = (*embedder)->info();
  model.embedder = std::shared_ptr<Embedder>(std::move(*embedder));
  const int dim = model.info.dim;

  const std::string data_dir = ::testing::TempDir() + "/lookalike_real_model_" +
                               std::to_string(getpid());
  std::filesystem::remove_all(data_dir);
  CollectionManagerOptions manager_options;
  manager_options.data_dir = data_dir;
  StatusOr<std::unique_ptr<CollectionManager>> manager = CollectionManager::Open(manager_options);
  ASSERT_TRUE(manager.ok()) << manager.status().ToString();

  ServiceOptions service_options;
  service_options.default_model = "efficientnet_lite0";
  service_options.handler_threads = 4;
  std::vector<ServedModel> models;
  models.push_back(std::move(model));
  auto service = std::make_unique<LookalikeService>(service_options, manager->get(),
                                                    std::move(models), nullptr);
  StatusOr<std::unique_ptr<GrpcServer>> server =
      GrpcServer::Start("127.0.0.1:0", 64 << 20, service.get());
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto stub = pb::Lookalike::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials()));

  // Embed: one vector per image, unit norm; the same pixels in two lossless
  // formats give the same vector.
  {
    pb::EmbedRequest req;
    req.add_images(Encode(Scene(1), ".png"));
    req.add_images(Encode(Scene(1), ".bmp"));
    grpc::ClientContext ctx;
    pb::EmbedResponse resp;
    grpc::Status s = stub->Embed(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.model().dim(), dim);
    ASSERT_EQ(resp.vectors_size(), 2);
    ASSERT_EQ(resp.vectors(0).values_size(), dim);
    double norm = 0, diff = 0;
    for (int i = 0; i < dim; ++i) {
      norm += double(resp.vectors(0).values(i)) * resp.vectors(0).values(i);
      diff += std::abs(resp.vectors(0).values(i) - resp.vectors(1).values(i));
    }
    EXPECT_NEAR(std::sqrt(norm), 1.0, 1e-4);
    EXPECT_LT(diff, 1e-4);
  }

  {
    pb::CreateCollectionRequest req;
    req.set_name("scenes");
    grpc::ClientContext ctx;
    pb::CollectionInfo info;
    ASSERT_TRUE(stub->CreateCollection(&ctx, req, &info).ok());
    EXPECT_EQ(info.dim(), dim);
  }
  {
    pb::UpsertRequest req;
    req.set_collection("scenes");
    const char* ids[3] = {"checkerboard", "circles", "stripes"};
    for (int k = 0; k < 3; ++k) {
      pb::Item* item = req.add_items();
      item->set_id(ids[k]);
      item->set_image(Encode(Scene(k), ".png"));
    }
    grpc::ClientContext ctx;
    pb::UpsertResponse resp;
    grpc::Status s = stub->Upsert(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.upserted(), 3);
  }
  // Query: the circles, resized and JPEG-compressed, must find the circles.
  {
    cv::Mat query;
    cv::resize(Scene(1), query, {200, 150});
    pb::SearchRequest req;
    req.set_collection("scenes");
    req.add_queries()->set_image(Encode(query, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 80}));
    req.set_k(3);
    grpc::ClientContext ctx;
    pb::SearchResponse resp;
    grpc::Status s = stub->Search(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(resp.results(0).hits_size(), 3);
    EXPECT_EQ(resp.results(0).hits(0).id(), "circles");
    EXPECT_GT(resp.results(0).hits(0).score(), resp.results(0).hits(1).score());
  }
  (*server)->Shutdown(std::chrono::seconds(2));
  service.reset();
  manager->reset();
  std::filesystem::remove_all(data_dir);
}

}  // namespace
}  // namespace lookalike
