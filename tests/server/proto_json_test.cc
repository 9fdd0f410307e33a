// server/proto_json.h against protobuf's own JSON util, on randomized
// messages of every message type of the API and on randomized damage to
// their JSON: the same messages accepted, the same messages produced.
#include "server/proto_json.h"

#include <gtest/gtest.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lookalike/v1/lookalike.pb.h"

namespace lookalike {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Deterministic bytes of a message (maps sorted): equal messages, equal
// bytes, down to the bits of a float.
std::string Bytes(const Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

// Every message type of the API's file (requests, responses and the types
// inside them), map entries excluded.
std::vector<const Descriptor*> ApiMessageTypes() {
  const google::protobuf::FileDescriptor* file = v1::SearchRequest::descriptor()->file();
  std::vector<const Descriptor*> types;
  for (int i = 0; i < file->message_type_count(); ++i) types.push_back(file->message_type(i));
  return types;
}

std::unique_ptr<Message> New(const Descriptor* d) {
  return std::unique_ptr<Message>(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(d)->New());
}

class RandomMessages {
 public:
  explicit RandomMessages(uint32_t seed) : rng_(seed) {}

  void Fill(Message* m, int depth) {
    const Descriptor* d = m->GetDescriptor();
    const Reflection* r = m->GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (Uniform(3) == 0) continue;  // unset
      if (f->is_map()) {
        const int n = Uniform(4);
        for (int j = 0; j < n; ++j) {
          Message* entry = r->AddMessage(m, f);
          SetValue(entry, f->message_type()->map_key(), depth);
          SetValue(entry, f->message_type()->map_value(), depth);
        }
      } else if (f->is_repeated()) {
        const int n = f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT && Uniform(2) ? Uniform(1300)
                                                                                    : Uniform(4);
        for (int j = 0; j < n; ++j) AddValue(m, f, depth);
      } else if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || depth < 4) {
        SetValue(m, f, depth);
      }
    }
  }

  int Uniform(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }

  float Float() {
    switch (Uniform(12)) {
      case 0:
        return std::numeric_limits<float>::quiet_NaN();
      case 1:
        return Uniform(2) ? std::numeric_limits<float>::infinity()
                          : -std::numeric_limits<float>::infinity();
      case 2:
        return Uniform(2) ? 0.0f : -0.0f;
      case 3:
        return Uniform(2) ? std::numeric_limits<float>::max()
                          : std::numeric_limits<float>::lowest();
      case 4:
        return std::numeric_limits<float>::denorm_min() * static_cast<float>(1 + Uniform(1000));
      case 5:
        return static_cast<float>(Uniform(2000000) - 1000000);  // integers
      case 6: {                                                 // any finite bit pattern
        uint32_t bits;
        float f;
        do {
          bits = static_cast<uint32_t>(rng_());
          std::memcpy(&f, &bits, 4);
        } while (!std::isfinite(f));
        return f;
      }
      default:
        return std::normal_distribution<float>(0.0f, 0.05f)(rng_);
    }
  }

  std::string Text() {
    static const char* const kPieces[] = {"a", "Z",  "0",  " ",    "\"",   "\\",
                                          "/", "\n", "\t", "\x01", "\x1f", "\x7f",
                                          "é", "漢", "😀",  "<",    "&",    "\u2028"};
    std::string s;
    const int n = Uniform(12);
    for (int i = 0; i < n; ++i) {
      const int k = Uniform(static_cast<int>(std::size(kPieces)) + 1);
      if (k == static_cast<int>(std::size(kPieces))) {
        s.push_back('\0');
      } else {
        s += kPieces[k];
      }
    }
    return s;
  }

  std::string Blob() {
    std::string s(static_cast<size_t>(Uniform(20)), '\0');
    for (char& c : s) c = static_cast<char>(rng_());
    return s;
  }

  int64_t Int64() {
    switch (Uniform(4)) {
      case 0:
        return Uniform(2) ? std::numeric_limits<int64_t>::max()
                          : std::numeric_limits<int64_t>::min();
      case 1:
        return static_cast<int64_t>((uint64_t{rng_()} << 32) | rng_());
      default:
        return Uniform(2001) - 1000;
    }
  }

  int EnumValue(const FieldDescriptor* f) {
    const auto* e = f->enum_type();
    if (Uniform(8) == 0) return 1000 + Uniform(100);  // a number without a name
    return e->value(Uniform(e->value_count()))->number();
  }

#define LOOKALIKE_VALUE(SET)                                                            \
  switch (f->cpp_type()) {                                                              \
    case FieldDescriptor::CPPTYPE_INT32:                                                \
      r->SET##Int32(m, f, static_cast<int32_t>(Int64()));                               \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_INT64:                                                \
      r->SET##Int64(m, f, Int64());                                                     \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_UINT32:                                               \
      r->SET##UInt32(m, f, static_cast<uint32_t>(Int64()));                             \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_UINT64:                                               \
      r->SET##UInt64(m, f, static_cast<uint64_t>(Int64()));                             \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_FLOAT:                                                \
      r->SET##Float(m, f, Float());                                                     \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_DOUBLE:                                               \
      r->SET##Double(m, f, static_cast<double>(Float()) * (1 + Uniform(3)));            \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_BOOL:                                                 \
      r->SET##Bool(m, f, Uniform(2) == 1);                                              \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_ENUM:                                                 \
      r->SET##EnumValue(m, f, EnumValue(f));                                            \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_STRING:                                               \
      r->SET##String(m, f, f->type() == FieldDescriptor::TYPE_BYTES ? Blob() : Text()); \
      break;                                                                            \
    case FieldDescriptor::CPPTYPE_MESSAGE:                                              \
      break;                                                                            \
  }

  void SetValue(Message* m, const FieldDescriptor* f, int depth) {
    const Reflection* r = m->GetReflection();
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Fill(r->MutableMessage(m, f), depth + 1);
      return;
    }
    LOOKALIKE_VALUE(Set)
  }

  void AddValue(Message* m, const FieldDescriptor* f, int depth) {
    const Reflection* r = m->GetReflection();
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Fill(r->AddMessage(m, f), depth + 1);
      return;
    }
    LOOKALIKE_VALUE(Add)
  }
#undef LOOKALIKE_VALUE

  std::mt19937 rng_;
};

// Protobuf's parser on `json`: OK and the message, or not OK.
bool TheirParse(const std::string& json, Message* m) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  m->Clear();
  return google::protobuf::util::JsonStringToMessage(json, m, options).ok();
}

std::string TheirPrint(const Message& m) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(m, &json).ok());
  return json;
}

constexpr int kMessagesPerType = 100;

TEST(ProtoJsonTest, OurOutputParsesToTheSameMessageWithProtobufAndWithOurs) {
  RandomMessages random(1);
  int direct_writes = 0, total = 0;
  for (const Descriptor* d : ApiMessageTypes()) {
    for (int i = 0; i < kMessagesPerType; ++i) {
      std::unique_ptr<Message> m = New(d);
      random.Fill(m.get(), 0);
      std::string ours;
      ASSERT_TRUE(MessageToJson(*m, &ours).ok());
      direct_writes += proto_json_internal::WriteDirect(*m, &ours) ? 1 : 0;
      ++total;
      std::unique_ptr<Message> theirs_parsed = New(d), ours_parsed = New(d);
      ASSERT_TRUE(TheirParse(ours, theirs_parsed.get())) << d->full_name() << ": " << ours;
      EXPECT_EQ(Bytes(*theirs_parsed), Bytes(*m)) << d->full_name() << ": " << ours;
      ASSERT_TRUE(JsonToMessage(ours, ours_parsed.get()).ok()) << ours;
      EXPECT_EQ(Bytes(*ours_parsed), Bytes(*m)) << d->full_name() << ": " << ours;
      // Direct, not by way of protobuf's parser.
      ASSERT_TRUE(proto_json_internal::ReadDirect(ours, ours_parsed.get()).ok()) << ours;
      EXPECT_EQ(Bytes(*ours_parsed), Bytes(*m));
    }
  }
  // Every generated string is UTF-8, so the direct writer wrote every one.
  EXPECT_EQ(direct_writes, total);
}

TEST(ProtoJsonTest, ProtobufOutputParsesDirectlyToProtobufsOwnResult) {
  RandomMessages random(2);
  for (const Descriptor* d : ApiMessageTypes()) {
    for (int i = 0; i < kMessagesPerType; ++i) {
      std::unique_ptr<Message> m = New(d);
      random.Fill(m.get(), 0);
      const std::string json = TheirPrint(*m);
      std::unique_ptr<Message> theirs = New(d), ours = New(d);
      ASSERT_TRUE(TheirParse(json, theirs.get())) << json;
      const Status direct = proto_json_internal::ReadDirect(json, ours.get());
      ASSERT_TRUE(direct.ok()) << direct.ToString() << "\n" << json;
      EXPECT_EQ(Bytes(*ours), Bytes(*theirs)) << json;
    }
  }
}

// Damage to a valid body: each result either refused by both parsers or
// accepted by both with the same message; and a body the direct reader takes
// is one protobuf takes, to the same message.
std::string Damage(const std::string& json, RandomMessages& random) {
  static const char* const kInserts[] = {"null",
                                         "NaN",
                                         "Infinity",
                                         "-Infinity",
                                         "\"NaN\"",
                                         "\"Infinity\"",
                                         "1e39",
                                         "-1e39",
                                         "1e400",
                                         "1e-400",
                                         "0",
                                         "-0",
                                         "1.0",
                                         "1.5",
                                         "\"1\"",
                                         "\"1.5\"",
                                         "true",
                                         "\"true\"",
                                         "[]",
                                         "{}",
                                         "[1,2]",
                                         "\"\"",
                                         "\"QQ\"",
                                         "\"QQ==\"",
                                         "\"QR==\"",
                                         "\"Q\"",
                                         "\"-_\"",
                                         "\"+/\"",
                                         "\"a\\ud800\"",
                                         "\"\\u00e9\"",
                                         "\"\\x\"",
                                         "16777217",
                                         "9007199254740993",
                                         "2147483648",
                                         "-2147483649",
                                         "\"COSINE\"",
                                         "\"L2\"",
                                         "3",
                                         "7",
                                         "\"cosine\"",
                                         "01",
                                         "1e2",
                                         ",",
                                         ":",
                                         "\"unknownField\":1,",
                                         "\"k\":1,",
                                         "\"collection\":\"x\",",
                                         "{\"image\":\"\"}",
                                         "\"\xff\"",
                                         "\"\x01\"",
                                         " ",
                                         "\n",
                                         "}",
                                         "]"};
  std::string s = json;
  const int edits = 1 + random.Uniform(3);
  for (int e = 0; e < edits && !s.empty(); ++e) {
    const size_t pos = static_cast<size_t>(random.Uniform(static_cast<int>(s.size())));
    switch (random.Uniform(4)) {
      case 0:  // delete a few bytes
        s.erase(pos, static_cast<size_t>(1 + random.Uniform(4)));
        break;
      case 1:  // insert a token
        s.insert(pos, kInserts[random.Uniform(static_cast<int>(std::size(kInserts)))]);
        break;
      default: {  // replace a value: from after a ':' or '[' or ',' to the next delimiter
        size_t start = s.find_first_of(":[,", pos);
        if (start == std::string::npos) break;
        ++start;
        size_t end = s.find_first_of(",]}", start);
        if (end == std::string::npos) break;
        s.replace(start, end - start,
                  kInserts[random.Uniform(static_cast<int>(std::size(kInserts)))]);
      }
    }
  }
  return s;
}

TEST(ProtoJsonTest, DamagedBodiesAreAcceptedOrRefusedAsProtobufDoes) {
  RandomMessages random(3);
  int accepted = 0, refused = 0, direct_accepted = 0;
  for (const Descriptor* d : ApiMessageTypes()) {
    for (int i = 0; i < 4 * kMessagesPerType; ++i) {
      std::unique_ptr<Message> m = New(d);
      random.Fill(m.get(), 2);  // small messages: damage lands on every kind of field
      std::string base;
      ASSERT_TRUE(MessageToJson(*m, &base).ok());
      if (random.Uniform(2)) base = TheirPrint(*m);
      const std::string json = Damage(base, random);
      std::unique_ptr<Message> theirs = New(d), ours = New(d), direct = New(d);
      const bool their_ok = TheirParse(json, theirs.get());
      const Status our = JsonToMessage(json, ours.get());
      ASSERT_EQ(our.ok(), their_ok) << d->full_name() << ": " << json << "\n" << our.ToString();
      if (their_ok) {
        EXPECT_EQ(Bytes(*ours), Bytes(*theirs)) << json;
        ++accepted;
      } else {
        EXPECT_EQ(our.code(), StatusCode::kInvalidArgument);
        ++refused;
      }
      if (proto_json_internal::ReadDirect(json, direct.get()).ok()) {
        ++direct_accepted;
        ASSERT_TRUE(their_ok) << "the direct reader took what protobuf refuses: " << json;
        EXPECT_EQ(Bytes(*direct), Bytes(*theirs)) << json;
      }
    }
  }
  // Both outcomes occur often enough for the comparison to mean something.
  EXPECT_GT(accepted, 500);
  EXPECT_GT(refused, 500);
  EXPECT_GT(direct_accepted, 300);
}

Status Parse(const std::string& json) {
  v1::SearchRequest request;
  return JsonToMessage(json, &request);
}

void ExpectRefused(const std::string& json, const std::string& message_part) {
  const Status s = Parse(json);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << json;
  EXPECT_NE(s.message().find(message_part), std::string::npos) << json << " -> " << s.message();
}

TEST(ProtoJsonTest, ErrorsNameTheField) {
  ExpectRefused(R"({"queries":[{"vectr":{}}]})", "queries[0].vectr: unknown field");
  ExpectRefused(R"({"k":"many"})", "k: \"many\" is not an integer");
  ExpectRefused(R"({"k":4294967296})", "k: 4294967296 is out of range");
  ExpectRefused(R"({"queries":[{"vector":{"values":[1,2,1e39]}}]})",
                "queries[0].vector.values[2]: 1e39 is out of range for a float");
  ExpectRefused(R"({"queries":[{"vector":{"values":[3.4028236e38]}}]})",
                "queries[0].vector.values[0]: 3.4028236e38 is out of range for a float");
  ExpectRefused(R"({"queries":[{"vector":{"values":[1,NaN]}}]})",
                "queries[0].vector.values[1]: expected a number");
  ExpectRefused(R"({"queries":[{"vector":{"values":[Infinity]}}]})",
                "queries[0].vector.values[0]: expected a number");
  ExpectRefused(R"({"queries":[{"image":"%%%"}]})", "queries[0].image: not base64");
  ExpectRefused(R"({"queries":[{"image":"QQ==","id":"x"}]})",
                "queries[0].id: oneof query already set by image");
  ExpectRefused(R"({"includeMetadata":[true]})", "includeMetadata: expected true or false");
  ExpectRefused(R"({"collection":"c"} trailing)", "unexpected text after the JSON object");
  v1::CreateCollectionRequest create;
  const Status s = JsonToMessage(R"({"metric":"COSINE_PLEASE"})", &create);
  EXPECT_NE(s.message().find("metric: \"COSINE_PLEASE\" is not a value of lookalike.v1.Metric"),
            std::string::npos)
      << s.message();
}

TEST(ProtoJsonTest, AcceptsWhatTheMappingAllows) {
  v1::SearchRequest r;
  ASSERT_TRUE(JsonToMessage(R"( { "collection" : "c\u00e9\ud83d\ude00\n",
      "queries": [ {"vector": {"values": [1, -2.5, 1e-3, "NaN", "Infinity", "-Infinity"]}},
                   {"image": "-_8="}, {"id": ""} ],
      "min_score": 0, "include_vectors": true, "k": "7",
      "filter": [{"key": "category", "values": ["a", "b"]}] } )",
                            &r)
                  .ok());
  EXPECT_EQ(r.collection(), "c\u00e9\U0001F600\n");
  ASSERT_EQ(r.queries_size(), 3);
  ASSERT_EQ(r.queries(0).vector().values_size(), 6);
  EXPECT_EQ(r.queries(0).vector().values(2), 1e-3f);
  EXPECT_TRUE(std::isnan(r.queries(0).vector().values(3)));
  EXPECT_EQ(r.queries(0).vector().values(5), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(r.queries(1).image(), "\xfb\xff");
  EXPECT_EQ(r.queries(2).query_case(), v1::Query::kId);  // a oneof member at its default is set
  EXPECT_TRUE(r.has_min_score());
  EXPECT_EQ(r.k(), 7);
  EXPECT_TRUE(r.include_vectors());
  EXPECT_EQ(r.filter(0).values(1), "b");
}

// Images travel as base64: every length's padding, both alphabets, with and
// without padding, escapes inside the text, and photo-sized payloads read to
// the bytes protobuf reads, directly; what is not base64 in one alphabet is
// left to protobuf.
TEST(ProtoJsonTest, ImagesReadAndWriteAsProtobufsBase64) {
  std::mt19937 rng(11);
  std::vector<size_t> sizes;
  for (size_t n = 0; n < 70; ++n) sizes.push_back(n);
  sizes.push_back(52224);
  sizes.push_back(300001);
  auto image_request = [](std::string image_text) {
    return R"({"queries":[{"image":")" + image_text + R"("}]})";
  };
  for (size_t n : sizes) {
    v1::SearchRequest m;
    std::string image(n, '\0');
    for (char& c : image) c = static_cast<char>(rng() & 0xff);
    m.add_queries()->set_image(image);
    std::string ours;
    ASSERT_TRUE(MessageToJson(m, &ours).ok());
    ASSERT_EQ(ours, TheirPrint(m)) << n << " bytes";
    const std::string text =
        ours.substr(ours.find(":\"") + 2, ours.rfind('"') - ours.find(":\"") - 2);
    std::string url_safe = text;
    for (char& c : url_safe) c = c == '+' ? '-' : c == '/' ? '_' : c;
    std::string unpadded = text;
    while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
    // The first character as a \u escape.
    const std::string escaped = text.empty()
                                    ? text
                                    : "\\u00" + std::string{"0123456789abcdef"[text[0] >> 4]} +
                                          "0123456789abcdef"[text[0] & 15] + text.substr(1);
    for (const std::string& variant : {text, url_safe, unpadded, escaped}) {
      const std::string json = image_request(variant);
      v1::SearchRequest direct, theirs;
      ASSERT_TRUE(proto_json_internal::ReadDirect(json, &direct).ok())
          << n << " bytes: " << json.substr(0, 80);
      ASSERT_TRUE(TheirParse(json, &theirs)) << json.substr(0, 80);
      ASSERT_EQ(direct.queries(0).image(), image) << n << " bytes: " << json.substr(0, 80);
      ASSERT_EQ(theirs.queries(0).image(), image);
    }
  }
  // Not base64 in one alphabet: the direct reader declines or refuses, and
  // the outcome is protobuf's.
  for (const std::string text : {"+-AA", "/_AA", "QR==", "QUJ=", "Q", "QUJDR", "QU JD", "QU\tJD",
                                 "QUJD\u002b", "Q===", "QQ=A", "\\u0000AAA"}) {
    const std::string json = image_request(text);
    v1::SearchRequest direct, ours, theirs;
    EXPECT_FALSE(proto_json_internal::ReadDirect(json, &direct).ok()) << json;
    const bool their_ok = TheirParse(json, &theirs);
    const Status our = JsonToMessage(json, &ours);
    EXPECT_EQ(our.ok(), their_ok) << json << " " << our.ToString();
    if (their_ok) EXPECT_EQ(Bytes(ours), Bytes(theirs)) << json;
  }
}

TEST(ProtoJsonTest, WritesCanonicalJson) {
  v1::SearchResponse response;
  v1::Hit* hit = response.add_results()->add_hits();
  hit->set_id("a\"b");
  hit->set_score(0.1f);
  (*hit->mutable_metadata())["k"] = "v";
  hit->mutable_vector()->add_values(1.0f / 3.0f);
  hit->mutable_vector()->add_values(std::numeric_limits<float>::quiet_NaN());
  std::string json;
  ASSERT_TRUE(MessageToJson(response, &json).ok());
  EXPECT_EQ(json, R"({"results":[{"hits":[{"id":"a\"b","score":0.1,"metadata":{"k":"v"},)"
                  R"("vector":{"values":[0.33333334,"NaN"]}}]}]})");
  v1::UpsertResponse upsert;
  upsert.set_upserted(5);
  upsert.add_statuses()->set_code(3);
  ASSERT_TRUE(MessageToJson(upsert, &json).ok());
  EXPECT_EQ(json, R"({"statuses":[{"code":3}],"upserted":"5"})");
  v1::CreateCollectionRequest create;
  create.set_metric(v1::L2);
  ASSERT_TRUE(MessageToJson(create, &json).ok());
  EXPECT_EQ(json, R"({"metric":"L2"})");
  ASSERT_TRUE(MessageToJson(v1::ListModelsRequest(), &json).ok());
  EXPECT_EQ(json, "{}");
}

TEST(ProtoJsonTest, StringsThatAreNotUtf8GoToProtobufsPrinter) {
  v1::Item item;
  item.set_id("\xff\xfe");
  std::string json;
  EXPECT_FALSE(proto_json_internal::WriteDirect(item, &json));
  const Status s = MessageToJson(item, &json);
  // Whatever protobuf's printer makes of it, the call reports it and never
  // writes invalid JSON silently.
  if (s.ok()) {
    v1::Item back;
    EXPECT_TRUE(TheirParse(json, &back)) << json;
  }
}

}  // namespace
}  // namespace lookalike
