// The HTTP/JSON API's message coding in isolation: server/proto_json.h
// against protobuf's util (JsonStringToMessage / MessageToJsonString), in the
// same process, on the messages of a search: a SearchRequest with one --dim
// float query, one with an --image-bytes image query (bytes: base64 in JSON),
// and a SearchResponse with --k hits (id and score).
//
//   build/bench/service/proto_json_bench [--dim 1280] [--image-bytes 52224] [--k 10] [--rounds 5]
//
// Prints microseconds per message for each coder and their ratio: medians of
// --rounds rounds, the coders' order alternating between rounds.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <CLI/CLI.hpp>

#include "lookalike/v1/lookalike.pb.h"
#include "server/proto_json.h"

namespace lookalike {
namespace {

// Microseconds per call of `op`, over at least 0.3 s.
double MicrosPerCall(const std::function<void()>& op) {
  int64_t n = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    for (int i = 0; i < 20; ++i) op();
    n += 20;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < 0.3);
  return elapsed * 1e6 / static_cast<double>(n);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  int dim = 1280, k = 10, rounds = 5, image_bytes = 52224;
  CLI::App app{"proto3 JSON coding: server/proto_json.h vs protobuf's util", "proto_json_bench"};
  app.add_option("--dim", dim, "Floats in the query vector")->capture_default_str();
  app.add_option("--image-bytes", image_bytes, "Bytes of the image query (the sample photos' mean)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64 << 20));
  app.add_option("--k", k, "Hits in the response")->capture_default_str();
  app.add_option("--rounds", rounds, "Rounds (medians are reported)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 0.03f);
  v1::SearchRequest request;
  request.set_collection("bench");
  request.set_k(k);
  v1::Vector* query = request.add_queries()->mutable_vector();
  for (int i = 0; i < dim; ++i) query->add_values(normal(rng));
  v1::SearchRequest image_request;
  image_request.set_collection("bench");
  image_request.set_k(k);
  std::string image(static_cast<size_t>(image_bytes), '\0');
  for (char& c : image) c = static_cast<char>(rng() & 0xff);
  image_request.add_queries()->set_image(std::move(image));
  v1::SearchResponse response;
  v1::QueryResult* result = response.add_results();
  for (int i = 0; i < k; ++i) {
    v1::Hit* hit = result->add_hits();
    hit->set_id("item-" + std::to_string(rng() % 100000));
    hit->set_score(std::uniform_real_distribution<float>(0.f, 1.f)(rng));
  }

  std::string request_json, image_request_json, response_json;
  (void)google::protobuf::util::MessageToJsonString(request, &request_json);
  (void)google::protobuf::util::MessageToJsonString(image_request, &image_request_json);
  (void)google::protobuf::util::MessageToJsonString(response, &response_json);

  struct Op {
    const char* name;
    std::function<void()> protobuf, ours;
  };
  std::string out;
  v1::SearchRequest parsed_request;
  v1::SearchResponse parsed_response;
  const std::vector<Op> ops = {
      {"parse SearchRequest",
       [&] { (void)google::protobuf::util::JsonStringToMessage(request_json, &parsed_request); },
       [&] { (void)JsonToMessage(request_json, &parsed_request); }},
      {"print SearchRequest",
       [&] { (void)google::protobuf::util::MessageToJsonString(request, &(out = {})); },
       [&] { (void)MessageToJson(request, &out); }},
      {"parse image SearchRequest",
       [&] {
         (void)google::protobuf::util::JsonStringToMessage(image_request_json, &parsed_request);
       },
       [&] { (void)JsonToMessage(image_request_json, &parsed_request); }},
      {"print image SearchRequest",
       [&] { (void)google::protobuf::util::MessageToJsonString(image_request, &(out = {})); },
       [&] { (void)MessageToJson(image_request, &out); }},
      {"parse SearchResponse",
       [&] { (void)google::protobuf::util::JsonStringToMessage(response_json, &parsed_response); },
       [&] { (void)JsonToMessage(response_json, &parsed_response); }},
      {"print SearchResponse",
       [&] { (void)google::protobuf::util::MessageToJsonString(response, &(out = {})); },
       [&] { (void)MessageToJson(response, &out); }},
  };
  std::printf(
      "SearchRequest: %d floats, %zu bytes of JSON; image SearchRequest: %d bytes, %zu bytes of "
      "JSON; SearchResponse: %d hits, %zu bytes\n",
      dim, request_json.size(), image_bytes, image_request_json.size(), k, response_json.size());
  std::printf("%-28s %14s %14s %8s\n", "operation", "protobuf us", "proto_json us", "ratio");
  for (const Op& op : ops) {
    std::vector<double> theirs, ours;
    for (int r = 0; r < rounds; ++r) {
      if (r % 2 == 0) {
        theirs.push_back(MicrosPerCall(op.protobuf));
        ours.push_back(MicrosPerCall(op.ours));
      } else {
        ours.push_back(MicrosPerCall(op.ours));
        theirs.push_back(MicrosPerCall(op.protobuf));
      }
    }
    std::printf("%-28s %14.1f %14.1f %7.1fx\n", op.name, Median(theirs), Median(ours),
                Median(theirs) / Median(ours));
  }
  return 0;
}

}  // namespace
}  // namespace lookalike

int main(int argc, char** argv) { return lookalike::Main(argc, argv); }
