#include "server/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

namespace lookalike {
namespace {

// Sends `request` to 127.0.0.1:port and returns everything the server sends
// back before closing.
std::string Exchange(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    ADD_FAILURE() << "cannot connect to port " << port;
    return "";
  }
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  shutdown(fd, SHUT_WR);
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
  close(fd);
  return response;
}

TEST(MetricsTest, RendersRequestsErrorsLatencyBatchesAndSamples) {
  Metrics metrics;
  metrics.ObserveRequest("Search", 0, 0.003);
  metrics.ObserveRequest("Search", 0, 0.004);
  metrics.ObserveRequest("Upsert", 3, 0.2);
  metrics.ObserveBatch("efficientnet_lite0", 5);
  std::vector<std::pair<std::string, double>> items = {{"photos", 42}, {"old", 1}};
  metrics.SetCollectionItemsSampler([&] { return items; });
  metrics.SetQueueDepthSampler([] {
    return std::vector<std::pair<std::string, double>>{{"efficientnet_lite0", 3}};
  });
  std::string text = metrics.Render();
  EXPECT_NE(text.find("lookalike_requests_total{code=\"OK\",method=\"Search\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lookalike_requests_total{code=\"INVALID_ARGUMENT\",method=\"Upsert\"} 1"),
            std::string::npos);
  EXPECT_NE(
      text.find("lookalike_request_errors_total{code=\"INVALID_ARGUMENT\",method=\"Upsert\"} 1"),
      std::string::npos);
  EXPECT_EQ(text.find("lookalike_request_errors_total{code=\"OK\""), std::string::npos);
  EXPECT_NE(text.find("lookalike_request_duration_seconds_count{method=\"Search\"} 2"),
            std::string::npos);
  EXPECT_NE(
      text.find("lookalike_request_duration_seconds_bucket{method=\"Search\",le=\"0.005\"} 2"),
      std::string::npos);
  EXPECT_NE(text.find("lookalike_embed_batch_size_sum{model=\"efficientnet_lite0\"} 5"),
            std::string::npos);
  EXPECT_NE(text.find("lookalike_embed_queue_depth{model=\"efficientnet_lite0\"} 3"),
            std::string::npos);
  EXPECT_NE(text.find("lookalike_collection_items{collection=\"photos\"} 42"), std::string::npos);
  EXPECT_NE(text.find("lookalike_collection_items{collection=\"old\"} 1"), std::string::npos);
  // A dropped collection disappears from the next scrape.
  items = {{"photos", 43}};
  text = metrics.Render();
  EXPECT_NE(text.find("lookalike_collection_items{collection=\"photos\"} 43"), std::string::npos);
  EXPECT_EQ(text.find("collection=\"old\""), std::string::npos);
}

TEST(MetricsTest, FollowLagPerCollection) {
  Metrics metrics;
  metrics.SetFollowLagSamplers(
      [] {
        return std::vector<std::pair<std::string, double>>{{"photos", 3}};
      },
      [] {
        return std::vector<std::pair<std::string, double>>{{"photos", 250}};
      },
      [] {
        return std::vector<std::pair<std::string, double>>{{"photos", 0.25}};
      });
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("lookalike_follow_lag_batches{collection=\"photos\"} 3"), std::string::npos)
      << text;
  EXPECT_NE(text.find("lookalike_follow_lag_items{collection=\"photos\"} 250"), std::string::npos)
      << text;
  EXPECT_NE(text.find("lookalike_follow_lag_seconds{collection=\"photos\"} 0.25"),
            std::string::npos)
      << text;
}

TEST(MetricsTest, HttpServesMetricsHealthAndSurvivesGarbage) {
  Metrics metrics;
  metrics.ObserveRequest("Embed", 0, 0.01);
  std::atomic<bool> healthy{false};
  MetricsHttpServer http(&metrics, [&] { return healthy.load(); });
  ASSERT_TRUE(http.Start("127.0.0.1:0").ok());
  const int port = http.port();
  ASSERT_GT(port, 0);

  std::string r = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(r.find("lookalike_requests_total{code=\"OK\",method=\"Embed\"} 1"), std::string::npos);

  r = Exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 503", 0), 0u) << r;
  EXPECT_NE(r.find("NOT_SERVING"), std::string::npos);
  healthy = true;
  r = Exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("SERVING"), std::string::npos);

  r = Exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 405", 0), 0u) << r;
  r = Exchange(port, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 404", 0), 0u) << r;
  // Malformed requests: answered with an error or closed, never a crash.
  r = Exchange(port, "\x01\x02\x03 garbage\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  r = Exchange(port, "GET\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  r = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n");  // head never ends
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  Exchange(port, std::string(20000, 'A') + "\r\n\r\n");  // 431, or reset while sending
  healthy = false;
  r = Exchange(port, "HEAD /healthz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 503", 0), 0u) << r;
  EXPECT_EQ(r.find("NOT_SERVING"), std::string::npos) << "HEAD has no body";
  r = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << "server still serves after garbage";

  MetricsHttpServer second(&metrics, nullptr);
  Status busy = second.Start("127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable);
  http.Stop();
}

}  // namespace
}  // namespace lookalike
