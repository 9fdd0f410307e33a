// Protobuf's canonical JSON mapping (proto3) for the HTTP/JSON API
// (server/http_api.h), driven by the message descriptors: any message type
// works, with no per-message code.
//
// Why not just protobuf's util::JsonStringToMessage / MessageToJsonString:
// in protobuf 3.21 they go through a generic object-writer pipeline that
// costs about a microsecond per float, which made a 1280-float vector search
// over HTTP/JSON 2.2x as expensive as over gRPC (docs/benchmarks/service.md).
// This codec reads and writes the JSON directly against the descriptors.
//
// Reading (JsonToMessage) accepts exactly what protobuf's parser accepts, to
// the same message: the direct reader handles the canonical forms (numbers,
// strings with any escapes, base64, enum names or numbers, arrays, maps,
// oneofs, both field-name spellings); anything else it declines, and then
// protobuf's parser decides. Where both refuse a body, the error is the
// direct reader's, which names the field ("queries[0].vector.values[3]:
// 1e39 is out of range for a float"). Message types with well-known types
// (google.protobuf.*) go to protobuf's util as a whole.
//
// Writing (MessageToJson) gives protobuf's canonical JSON: lowerCamelCase
// names, fields at their default omitted (set `optional` and oneof fields
// kept), 64-bit integers as strings, bytes as padded base64, enums by name,
// floats and doubles in their shortest round-trip form (std::to_chars; NaN
// and infinities as "NaN", "Infinity", "-Infinity"; negative zero as "-0.0",
// which protobuf's parser reads back with its sign, unlike "-0"), no
// whitespace. Strings
// that are not valid UTF-8 are written by protobuf's printer.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace google::protobuf {
class Message;
}

namespace lookalike {

// Parses `json` (a JSON object) into `message`, which is cleared first.
// INVALID_ARGUMENT naming the field when `json` is not one of the message's
// JSON forms (unknown fields are errors).
Status JsonToMessage(std::string_view json, google::protobuf::Message* message);

// Writes `message` as canonical JSON into `json` (replaced).
Status MessageToJson(const google::protobuf::Message& message, std::string* json);

namespace proto_json_internal {
// The direct reader alone, for tests: OK when it parsed `json`; otherwise
// the reason it declined (then `message` is unspecified), and JsonToMessage
// would ask protobuf's parser.
Status ReadDirect(std::string_view json, google::protobuf::Message* message);
// The direct writer alone, for tests: false when it declined (a string that
// is not UTF-8, a well-known type).
bool WriteDirect(const google::protobuf::Message& message, std::string* json);
}  // namespace proto_json_internal

}  // namespace lookalike
