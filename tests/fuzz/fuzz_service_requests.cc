// libFuzzer target: the service's request checks on arbitrary messages. The
// first byte picks a unary method of lookalike.v1.Lookalike; the rest is its
// request message in the binary protobuf encoding (so the fuzzer reaches
// shapes a JSON body spells only with effort: NaN and huge vectors, every
// oneof case, k and ids at their limits). A message that parses is written
// as JSON (server/proto_json.h), which must read back to the same JSON,
// and POSTed through HttpApi to the real LookalikeService over the fake model
// and in-memory collections (service_harness.h). Contract checked: no crash,
// no sanitizer report, every answer meets CheckAnswer (no 500).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "server/proto_json.h"
#include "tests/fuzz/service_harness.h"

namespace {

lookalike::fuzz::ServiceHarness& Harness() {
  static auto* harness = new lookalike::fuzz::ServiceHarness();  // lives for the process
  return *harness;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const google::protobuf::ServiceDescriptor* service =
      lookalike::v1::SearchRequest::descriptor()->file()->service(0);
  const google::protobuf::MethodDescriptor* method =
      service->method(data[0] % service->method_count());
  const google::protobuf::Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(method->input_type());
  std::unique_ptr<google::protobuf::Message> message(prototype->New());
  if (!message->ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  message->DiscardUnknownFields();  // JSON has no spelling for them
  std::string json;
  if (!lookalike::MessageToJson(*message, &json).ok()) __builtin_trap();
  std::unique_ptr<google::protobuf::Message> back(prototype->New());
  if (!lookalike::JsonToMessage(json, back.get()).ok()) __builtin_trap();
  // The same message again (compared as JSON: NaN payloads are not kept).
  std::string again;
  if (!lookalike::MessageToJson(*back, &again).ok() || again != json) __builtin_trap();

  lookalike::fuzz::ServiceHarness& harness = Harness();
  harness.Reset();
  lookalike::HttpRequest request;
  request.method = "POST";
  request.target = request.path = lookalike::HttpApi::MethodPrefix() + method->name();
  request.headers["content-type"] = "application/json";
  request.body = std::move(json);
  lookalike::fuzz::CheckAnswer(request, harness.Handle(request));
  return 0;
}
