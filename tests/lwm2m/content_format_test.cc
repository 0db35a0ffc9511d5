#include "lwm2m/content_format.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

using Bytes = std::vector<uint8_t>;

std::span<const uint8_t> AsBytes(std::string_view s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Hex digits, spaces allowed between bytes for readability.
Bytes FromHex(std::string_view hex) {
  std::string digits;
  for (char c : hex)
    if (c != ' ') digits.push_back(c);
  Bytes out;
  for (size_t i = 0; i + 1 < digits.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

Path P(std::string_view text) { return *Path::Parse(text); }

// The resource types the tests know: the Device object (TS Appendix E.4), Server (1), Access
// Control (2), Firmware Update (5), BinaryAppDataContainer (19), Temperature (3303), the TS
// TLV example's object 66, and object 1000 with one resource of every type.
class FakeTypes : public TypeResolver {
 public:
  std::optional<ResourceType> TypeOf(const Path& p) const override {
    EXPECT_EQ(p.depth(), 3) << p.ToString();
    using T = ResourceType;
    const uint16_t r = *p.resource_id;
    switch (p.object_id) {
      case 1:
        if (r == 0 || r == 1 || r == 2 || r == 3 || r == 5) return T::kInteger;
        if (r == 6) return T::kBoolean;
        if (r == 7) return T::kString;
        if (r == 8) return T::kNone;
        return std::nullopt;
      case 2:
        if (r <= 3) return T::kInteger;
        return std::nullopt;
      case 3:
        if (r <= 3 || r == 14 || r == 15 || r == 16 || r == 17 || r == 18 || r == 19)
          return T::kString;
        if (r == 4 || r == 5 || r == 12) return T::kNone;
        if ((r >= 6 && r <= 11) || r == 20 || r == 21) return T::kInteger;
        if (r == 13) return T::kTime;
        if (r == 22) return T::kObjlnk;
        return std::nullopt;
      case 5:
        if (r == 0) return T::kOpaque;
        if (r == 1) return T::kString;
        if (r == 2) return T::kNone;
        if (r == 3 || r == 5) return T::kInteger;
        return std::nullopt;
      case 19:
        if (r == 0) return T::kOpaque;
        return std::nullopt;
      case 66:
        if (r == 0 || r == 1) return T::kString;
        if (r == 2) return T::kObjlnk;
        return std::nullopt;
      case 3303:
        if (r == 5700 || r == 5601 || r == 5602) return T::kFloat;
        if (r == 5701) return T::kString;
        return std::nullopt;
      case 1000:
        switch (r) {
          case 0:
            return T::kString;
          case 1:
            return T::kInteger;
          case 2:
            return T::kUnsignedInteger;
          case 3:
            return T::kFloat;
          case 4:
            return T::kBoolean;
          case 5:
            return T::kOpaque;
          case 6:
            return T::kTime;
          case 7:
            return T::kObjlnk;
          case 8:
            return T::kCorelnk;
          case 9:
            return T::kNone;
        }
        return std::nullopt;
    }
    return std::nullopt;
  }
};

const FakeTypes kTypes;

absl::StatusOr<Decoded> DecodeText(ContentFormat format, std::string_view path,
                                   std::string_view payload, DecodeOptions options = {}) {
  return Decode(format, P(path), AsBytes(payload), kTypes, options);
}

Record R(std::string_view path, Value value, std::optional<double> t = std::nullopt) {
  return Record{P(path), value, t};
}

// The Device object instance of TS 1.1 §7.4 (the same values in every format's example).
std::vector<Record> DeviceInstance() {
  return {
      R("3/0/0", Value::String("Open Mobile Alliance")),
      R("3/0/1", Value::String("Lightweight M2M Client")),
      R("3/0/2", Value::String("345000123")),
      R("3/0/3", Value::String("1.0")),
      R("3/0/6/0", Value::Integer(1)),
      R("3/0/6/1", Value::Integer(5)),
      R("3/0/7/0", Value::Integer(3800)),
      R("3/0/7/1", Value::Integer(5000)),
      R("3/0/8/0", Value::Integer(125)),
      R("3/0/8/1", Value::Integer(900)),
      R("3/0/9", Value::Integer(100)),
      R("3/0/10", Value::Integer(15)),
      R("3/0/11/0", Value::Integer(0)),
      R("3/0/13", Value::Time(1367491215)),
      R("3/0/14", Value::String("+02:00")),
      R("3/0/16", Value::String("U")),
  };
}

// TS 1.1 §7.4.3.2, Read on Device Object Instance /3/0.
const Bytes kDeviceTlv = {
    0xc8, 0x00, 0x14, 0x4f, 0x70, 0x65, 0x6e, 0x20, 0x4d, 0x6f, 0x62, 0x69, 0x6c, 0x65, 0x20, 0x41,
    0x6c, 0x6c, 0x69, 0x61, 0x6e, 0x63, 0x65, 0xc8, 0x01, 0x16, 0x4c, 0x69, 0x67, 0x68, 0x74, 0x77,
    0x65, 0x69, 0x67, 0x68, 0x74, 0x20, 0x4d, 0x32, 0x4d, 0x20, 0x43, 0x6c, 0x69, 0x65, 0x6e, 0x74,
    0xc8, 0x02, 0x09, 0x33, 0x34, 0x35, 0x30, 0x30, 0x30, 0x31, 0x32, 0x33, 0xc3, 0x03, 0x31, 0x2e,
    0x30, 0x86, 0x06, 0x41, 0x00, 0x01, 0x41, 0x01, 0x05, 0x88, 0x07, 0x08, 0x42, 0x00, 0x0e, 0xd8,
    0x42, 0x01, 0x13, 0x88, 0x87, 0x08, 0x41, 0x00, 0x7d, 0x42, 0x01, 0x03, 0x84, 0xc1, 0x09, 0x64,
    0xc1, 0x0a, 0x0f, 0x83, 0x0b, 0x41, 0x00, 0x00, 0xc4, 0x0d, 0x51, 0x82, 0x42, 0x8f, 0xc6, 0x0e,
    0x2b, 0x30, 0x32, 0x3a, 0x30, 0x30, 0xc1, 0x10, 0x55};

// TS 1.1 §7.4.5 (the Device example in SenML JSON).
constexpr std::string_view kDeviceSenmlJson =
    R"([{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},)"
    R"({"n":"1","vs":"Lightweight M2M Client"},{"n":"2","vs":"345000123"},{"n":"3","vs":"1.0"},)"
    R"({"n":"6/0","v":1},{"n":"6/1","v":5},)"
    R"({"n":"7/0","v":3800},{"n":"7/1","v":5000},{"n":"8/0","v":125},{"n":"8/1","v":900},)"
    R"({"n":"9","v":100},{"n":"10","v":15},{"n":"11/0","v":0},{"n":"13","v":1367491215},)"
    R"({"n":"14","vs":"+02:00"},{"n":"16","vs":"U"}])";

// TS 1.0.2 §6.4.4 (the Device example in LwM2M JSON).
constexpr std::string_view kDeviceLwm2mJson =
    R"({"bn":"/3/0/","e":[{"n":"0","sv":"Open Mobile Alliance"},)"
    R"({"n":"1","sv":"Lightweight M2M Client"},{"n":"2","sv":"345000123"},{"n":"3","sv":"1.0"},)"
    R"({"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"7/0","v":3800},{"n":"7/1","v":5000},)"
    R"({"n":"8/0","v":125},{"n":"8/1","v":900},{"n":"9","v":100},{"n":"10","v":15},)"
    R"({"n":"11/0","v":0},{"n":"13","v":1367491215},{"n":"14","sv":"+02:00"},)"
    R"({"n":"16","sv":"U"}]})";

bool Within(std::string_view view, std::span<const uint8_t> payload) {
  const auto* p = reinterpret_cast<const uint8_t*>(view.data());
  return p >= payload.data() && p + view.size() <= payload.data() + payload.size();
}

void ExpectError(const absl::StatusOr<Decoded>& decoded, std::string_view message) {
  ASSERT_FALSE(decoded.ok()) << "expected: " << message;
  EXPECT_EQ(std::string(decoded.status().message()), message);
}

// ---------------------------------------------------------------------------------------------
// Numbers and names

TEST(ContentFormatTest, NumbersIncludingLegacyOnes) {
  EXPECT_EQ(ContentFormatFromNumber(0), ContentFormat::kText);
  EXPECT_EQ(ContentFormatFromNumber(40), ContentFormat::kCoreLink);
  EXPECT_EQ(ContentFormatFromNumber(42), ContentFormat::kOpaque);
  EXPECT_EQ(ContentFormatFromNumber(60), ContentFormat::kCbor);
  EXPECT_EQ(ContentFormatFromNumber(110), ContentFormat::kSenmlJson);
  EXPECT_EQ(ContentFormatFromNumber(112), ContentFormat::kSenmlCbor);
  EXPECT_EQ(ContentFormatFromNumber(11542), ContentFormat::kTlv);
  EXPECT_EQ(ContentFormatFromNumber(11543), ContentFormat::kLwm2mJson);
  EXPECT_EQ(ContentFormatFromNumber(1542), ContentFormat::kTlv);
  EXPECT_EQ(ContentFormatFromNumber(1543), ContentFormat::kLwm2mJson);
  EXPECT_EQ(ContentFormatFromNumber(41), std::nullopt);
  EXPECT_EQ(ContentFormatFromNumber(11544), std::nullopt);
}

TEST(ContentFormatTest, EncodingNamesRoundTrip) {
  for (std::string_view name :
       {"tlv", "text", "opaque", "json", "senml-json", "senml-cbor", "cbor"}) {
    const auto format = ParseEncodingName(name);
    ASSERT_TRUE(format.has_value()) << name;
    EXPECT_EQ(EncodingName(*format), name);
  }
  EXPECT_EQ(ParseEncodingName("json"), ContentFormat::kLwm2mJson);
  EXPECT_EQ(ParseEncodingName("TLV"), std::nullopt);
  EXPECT_EQ(ParseEncodingName("core-link"), std::nullopt);
  EXPECT_EQ(EncodingName(ContentFormat::kCoreLink), "core-link");
}

TEST(ContentFormatTest, ValueHelpersAndEquality) {
  EXPECT_EQ(Value::Float(std::nan("")), Value::Float(-std::nan("1")));
  EXPECT_FALSE(Value::Float(0.0) == Value::Float(-0.0));
  EXPECT_FALSE(Value::Integer(1) == Value::Time(1));
  EXPECT_EQ(Value::Link(3, 0).link, (Objlnk{3, 0}));
  EXPECT_EQ(Value::Integer(-5).DebugString(), "integer -5");
  EXPECT_EQ(Value::Link(3, 1).DebugString(), "objlnk 3:1");
  EXPECT_EQ(Value::Opaque("abc").DebugString(), "opaque 3 bytes");
  EXPECT_LE(sizeof(Value), 56u);
}

TEST(ContentFormatTest, CoreLinkIsNotAValueFormat) {
  EXPECT_FALSE(DecodeText(ContentFormat::kCoreLink, "3/0", "</3/0>").ok());
  std::string out;
  EXPECT_FALSE(Encode(ContentFormat::kCoreLink, P("3/0/0"), {}, &out).ok());
}

// ---------------------------------------------------------------------------------------------
// TLV

TEST(TlvFormatTest, DeviceInstanceExample) {
  auto decoded = Decode(ContentFormat::kTlv, P("3/0"), kDeviceTlv, kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray(DeviceInstance()));
  // Zero copy: strings are views into the payload.
  EXPECT_TRUE(Within(decoded->records[0].value.bytes, kDeviceTlv));

  std::string encoded;
  const auto records = DeviceInstance();
  ASSERT_TRUE(Encode(ContentFormat::kTlv, P("3/0"), records, &encoded).ok());
  EXPECT_EQ(ToHex(encoded), ToHex(std::string_view(reinterpret_cast<const char*>(kDeviceTlv.data()),
                                                   kDeviceTlv.size())));
}

TEST(TlvFormatTest, RecordOrderDoesNotMatterForEncoding) {
  auto records = DeviceInstance();
  std::reverse(records.begin(), records.end());
  std::string encoded;
  ASSERT_TRUE(Encode(ContentFormat::kTlv, P("3/0"), records, &encoded).ok());
  EXPECT_EQ(Bytes(encoded.begin(), encoded.end()), kDeviceTlv);
}

TEST(TlvFormatTest, ObjectResourceAndResourceInstanceLevels) {
  // A Read on /3 answers with object instances.
  const auto records = DeviceInstance();
  std::string object;
  ASSERT_TRUE(Encode(ContentFormat::kTlv, P("3"), records, &object).ok());
  EXPECT_EQ(static_cast<uint8_t>(object[0]), 0x08);  // object instance, 8-bit length
  auto decoded = Decode(ContentFormat::kTlv, P("3"), AsBytes(object), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray(records));
  // An answer to /3/0 wrapped in its object instance is accepted too.
  decoded = Decode(ContentFormat::kTlv, P("3/0"), AsBytes(object), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray(records));
  ExpectError(Decode(ContentFormat::kTlv, P("3/1"), AsBytes(object), kTypes),
              "tlv: object instance 0 is outside the request path 3/1");

  // TS §7.4.3.2: Read on the multiple resource /3/0/7.
  const Bytes voltage = {0x88, 0x07, 0x08, 0x42, 0x00, 0x0e, 0xd8, 0x42, 0x01, 0x13, 0x88};
  decoded = Decode(ContentFormat::kTlv, P("3/0/7"), voltage, kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray({R("3/0/7/0", Value::Integer(3800)),
                                                  R("3/0/7/1", Value::Integer(5000))}));
  std::string encoded;
  ASSERT_TRUE(Encode(ContentFormat::kTlv, P("3/0/7"), decoded->records, &encoded).ok());
  EXPECT_EQ(Bytes(encoded.begin(), encoded.end()), voltage);
  // The same instances without their multiple resource wrapper.
  decoded = Decode(ContentFormat::kTlv, P("3/0/7"), FromHex("42000ed8420113 88"), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->records.size(), 2u);

  // A single resource, and a resource instance (LwM2M 1.1).
  decoded = Decode(ContentFormat::kTlv, P("3/0/9"), FromHex("c10964"), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray({R("3/0/9", Value::Integer(100))}));
  decoded = Decode(ContentFormat::kTlv, P("3/0/6/1"), FromHex("410105"), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray({R("3/0/6/1", Value::Integer(5))}));
  ASSERT_TRUE(Encode(ContentFormat::kTlv, P("3/0/6/1"), decoded->records, &encoded).ok());
  EXPECT_EQ(ToHex(encoded), "410105");
  decoded = Decode(ContentFormat::kTlv, P("3/0/6/1"), FromHex("8606410001410105"), kTypes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_THAT(std::string(decoded.status().message()),
              HasSubstr("outside the request path 3/0/6/1"));
  decoded = Decode(ContentFormat::kTlv, P("3/0/6/1"), FromHex("8306410105"), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray({R("3/0/6/1", Value::Integer(5))}));
}

TEST(TlvFormatTest, AccessControlAndObjectLinkExamples) {
  // TS §7.4.3.2, Read on /2 (lengths corrected as in tlv_test.cc).
  const Bytes acl = {0x08, 0x00, 0x0e, 0xc1, 0x00, 0x01, 0xc1, 0x01, 0x00, 0x83, 0x02, 0x41, 0x7f,
                     0x07, 0xc1, 0x03, 0x7f, 0x08, 0x02, 0x12, 0xc1, 0x00, 0x03, 0xc1, 0x01, 0x00,
                     0x87, 0x02, 0x41, 0x7f, 0x07, 0x61, 0x01, 0x36, 0x01, 0xc1, 0x03, 0x7f};
  auto decoded = Decode(ContentFormat::kTlv, P("2"), acl, kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const std::vector<Record> expected = {
      R("2/0/0", Value::Integer(1)),     R("2/0/1", Value::Integer(0)),
      R("2/0/2/127", Value::Integer(7)), R("2/0/3", Value::Integer(127)),
      R("2/2/0", Value::Integer(3)),     R("2/2/1", Value::Integer(0)),
      R("2/2/2/127", Value::Integer(7)), R("2/2/2/310", Value::Integer(1)),
      R("2/2/3", Value::Integer(127)),
  };
  EXPECT_THAT(decoded->records, ElementsAreArray(expected));
  std::string encoded;
  ASSERT_TRUE(Encode(ContentFormat::kTlv, P("2"), expected, &encoded).ok());
  EXPECT_EQ(Bytes(encoded.begin(), encoded.end()), acl);

  // Object 66 instances holding object links, the second a null link.
  const Bytes links = FromHex(
      "080026c8000b6d7953657276696365203 1c8010f496e7465726e65742e31352e323334c40200430000"
      "080126c8000b6d79536572766963652032c8010f496e7465726e65742e31352e323335c402ffffffff");
  decoded = Decode(ContentFormat::kTlv, P("66"), links, kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->records.size(), 6u);
  EXPECT_EQ(decoded->records[2], R("66/0/2", Value::Link(0x43, 0)));
  EXPECT_EQ(decoded->records[5], R("66/1/2", Value::Link(0xffff, 0xffff)));
  EXPECT_EQ(decoded->records[4].value, Value::String("Internet.15.235"));
}

TEST(TlvFormatTest, RefusesWrongValueSizes) {
  ExpectError(Decode(ContentFormat::kTlv, P("3/0/9"), FromHex("c309000064"), kTypes),
              "tlv: 3/0/9: expected integer of 1, 2, 4 or 8 bytes, got 3");
  ExpectError(Decode(ContentFormat::kTlv, P("3/0/13"), FromHex("c30d000064"), kTypes),
              "tlv: 3/0/13: expected time of 1, 2, 4 or 8 bytes, got 3");
  ExpectError(Decode(ContentFormat::kTlv, P("3303/0/5700"), FromHex("e1164401"), kTypes),
              "tlv: 3303/0/5700: expected float of 4 or 8 bytes, got 1");
  ExpectError(Decode(ContentFormat::kTlv, P("1/0/6"), FromHex("c10602"), kTypes),
              "tlv: 1/0/6: boolean byte 0x02 is neither 0 nor 1");
  ExpectError(Decode(ContentFormat::kTlv, P("1/0/6"), FromHex("c2060001"), kTypes),
              "tlv: 1/0/6: expected boolean of 1 byte, got 2");
  ExpectError(Decode(ContentFormat::kTlv, P("66/0/2"), FromHex("c302000000"), kTypes),
              "tlv: 66/0/2: expected objlnk of 4 bytes, got 3");
  ExpectError(Decode(ContentFormat::kTlv, P("3/0/0"), FromHex("c200c328"), kTypes),
              "tlv: 3/0/0: string is not valid UTF-8");
  ExpectError(Decode(ContentFormat::kTlv, P("1000/0/2"), FromHex("c30201 0203"), kTypes),
              "tlv: 1000/0/2: expected unsigned integer of 1, 2, 4 or 8 bytes, got 3");
  ExpectError(Decode(ContentFormat::kTlv, P("3/0/4"), FromHex("c10401"), kTypes),
              "tlv: 3/0/4: resource is executable and has no value");
}

TEST(TlvFormatTest, RefusesStructureThatDoesNotFitTheRequest) {
  ExpectError(Decode(ContentFormat::kTlv, P("3/0/9"), FromHex("c10a0f"), kTypes),
              "tlv: resource 10 is outside the request path 3/0/9");
  ExpectError(Decode(ContentFormat::kTlv, P("3"), FromHex("c10964"), kTypes),
              "tlv: a resource (id 9) cannot sit at the top level of a payload for 3");
  ExpectError(Decode(ContentFormat::kTlv, P("3/0"), FromHex("410105"), kTypes),
              "tlv: a resource instance (id 1) cannot sit at the top level of a payload for 3/0");
  ExpectError(Decode(ContentFormat::kTlv, P("3/0"), FromHex("e1ffff01"), kTypes),
              "tlv: resource id 65535 is reserved");
  ExpectError(Decode(ContentFormat::kTlv, P("3/0"), FromHex("8706 61ffff01 410005"), kTypes),
              "tlv: resource instance id 65535 is reserved");
  // Malformed TLV keeps tlv.h's message.
  ExpectError(Decode(ContentFormat::kTlv, P("3/0"), FromHex("c80014"), kTypes),
              "tlv: length of the resource at offset 0 runs past the end (needs 20 bytes, 0 left)");
}

TEST(TlvFormatTest, UnknownResourceIsRefusedUnlessLenient) {
  const Bytes payload = FromHex("c8640300ff01");  // resource 100, 3 bytes
  auto decoded = Decode(ContentFormat::kTlv, P("3/0/100"), payload, kTypes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(decoded.status().message()), "tlv: resource definition not found");
  const auto path =
      decoded.status().GetPayload(absl::string_view(kPathPayload.data(), kPathPayload.size()));
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(std::string(*path), "3/0/100");

  decoded = Decode(ContentFormat::kTlv, P("3/0/100"), payload, kTypes,
                   DecodeOptions{.lenient_unknown_resources = true});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records,
              ElementsAreArray({R("3/0/100", Value::Opaque(std::string_view("\x00\xff\x01", 3)))}));
}

// ---------------------------------------------------------------------------------------------
// Plain text and opaque

TEST(TextFormatTest, DecodesEveryType) {
  struct Case {
    const char* path;
    const char* text;
    Value value;
  };
  const Case cases[] = {
      {"1000/0/0", "+02:00 \xc3\xbc", Value::String("+02:00 \xc3\xbc")},
      {"1000/0/1", "-9223372036854775808", Value::Integer(std::numeric_limits<int64_t>::min())},
      {"1000/0/2", "18446744073709551615", Value::Unsigned(18446744073709551615u)},
      {"1000/0/3", "23.5", Value::Float(23.5)},
      {"1000/0/3", "-1e-3", Value::Float(-0.001)},
      {"1000/0/3", "7", Value::Float(7)},
      {"1000/0/4", "1", Value::Boolean(true)},
      {"1000/0/4", "0", Value::Boolean(false)},
      {"1000/0/5", "AQID/w==", Value::Opaque(std::string_view("\x01\x02\x03\xff", 4))},
      {"1000/0/5", "", Value::Opaque(std::string_view())},
      {"1000/0/6", "1367491215", Value::Time(1367491215)},
      {"1000/0/7", "3:0", Value::Link(3, 0)},
      {"1000/0/7", "65535:65535", Value::Link(65535, 65535)},
      {"1000/0/8", "</3/0>", Value::Corelnk("</3/0>")},
      {"3/0/6/1", "5", Value::Integer(5)},
  };
  for (const Case& c : cases) {
    auto decoded = DecodeText(ContentFormat::kText, c.path, c.text);
    ASSERT_TRUE(decoded.ok()) << c.text << ": " << decoded.status();
    EXPECT_THAT(decoded->records, ElementsAreArray({R(c.path, c.value)})) << c.text;
  }
  // Strings are views into the payload.
  const std::string payload = "Open Mobile Alliance";
  auto decoded = DecodeText(ContentFormat::kText, "3/0/0", payload);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->records[0].value.bytes.data(), payload.data());
}

TEST(TextFormatTest, RefusesMalformedValues) {
  ExpectError(DecodeText(ContentFormat::kText, "3/0/9", "abc"),
              R"(text: 3/0/9: "abc" is not a decimal integer)");
  ExpectError(DecodeText(ContentFormat::kText, "3/0/9", " 5"),
              R"(text: 3/0/9: " 5" is not a decimal integer)");
  ExpectError(DecodeText(ContentFormat::kText, "3/0/9", "+5"),
              R"(text: 3/0/9: "+5" is not a decimal integer)");
  ExpectError(DecodeText(ContentFormat::kText, "3/0/9", "9223372036854775808"),
              R"(text: 3/0/9: "9223372036854775808" is not a decimal integer)");
  ExpectError(DecodeText(ContentFormat::kText, "1000/0/2", "-1"),
              R"(text: 1000/0/2: "-1" is not a decimal unsigned integer)");
  ExpectError(DecodeText(ContentFormat::kText, "3303/0/5700", "inf"),
              R"(text: 3303/0/5700: "inf" is not a finite decimal float)");
  ExpectError(DecodeText(ContentFormat::kText, "3303/0/5700", "1e400"),
              R"(text: 3303/0/5700: "1e400" is not a finite decimal float)");
  ExpectError(DecodeText(ContentFormat::kText, "1/0/6", "true"),
              R"(text: 1/0/6: "true" is not a boolean (0 or 1))");
  ExpectError(DecodeText(ContentFormat::kText, "66/0/2", "65536:0"),
              R"(text: 66/0/2: "65536:0" is not an object link (oid:iid))");
  ExpectError(DecodeText(ContentFormat::kText, "5/0/0", "AQ!D"),
              R"(text: 5/0/0: "AQ!D" is not base64)");
  ExpectError(DecodeText(ContentFormat::kText, "3/0/0", "\xff"),
              R"(text: 3/0/0: "\xff" is not valid UTF-8)");
  ExpectError(DecodeText(ContentFormat::kText, "3/0", "5"),
              "text: 3/0 is not a resource; a single value needs a resource or resource "
              "instance path");
  ExpectError(DecodeText(ContentFormat::kText, "3/0/4", ""),
              "text: 3/0/4: resource is executable and has no value");
  ExpectError(DecodeText(ContentFormat::kText, "3/0/99", "x"),
              "text: resource definition not found");
  auto lenient = DecodeText(ContentFormat::kText, "3/0/99", "x",
                            DecodeOptions{.lenient_unknown_resources = true});
  ASSERT_TRUE(lenient.ok());
  EXPECT_EQ(lenient->records[0].value, Value::String("x"));
}

TEST(TextFormatTest, Encodes) {
  struct Case {
    const char* path;
    Value value;
    const char* text;
  };
  const Case cases[] = {
      {"1000/0/0", Value::String("UTC"), "UTC"},
      {"1000/0/1", Value::Integer(-42), "-42"},
      {"1000/0/2", Value::Unsigned(18446744073709551615u), "18446744073709551615"},
      {"1000/0/3", Value::Float(0.1), "0.1"},
      {"1000/0/3", Value::Float(1e300), "1e+300"},
      {"1000/0/4", Value::Boolean(true), "1"},
      {"1000/0/5", Value::Opaque(std::string_view("\x01\x02\x03\xff", 4)), "AQID/w=="},
      {"1000/0/5", Value::Opaque(std::string_view("ab", 2)), "YWI="},
      {"1000/0/6", Value::Time(-5), "-5"},
      {"1000/0/7", Value::Link(3, 65535), "3:65535"},
  };
  for (const Case& c : cases) {
    std::string out;
    const Record records[] = {R(c.path, c.value)};
    ASSERT_TRUE(Encode(ContentFormat::kText, P(c.path), records, &out).ok()) << c.text;
    EXPECT_EQ(out, c.text);
  }
  std::string out;
  const Record two[] = {R("3/0/0", Value::String("a")), R("3/0/1", Value::String("b"))};
  EXPECT_EQ(std::string(Encode(ContentFormat::kText, P("3/0/0"), two, &out).message()),
            "text: exactly one record is needed, got 2");
  const Record other[] = {R("3/0/1", Value::String("b"))};
  EXPECT_EQ(std::string(Encode(ContentFormat::kText, P("3/0/0"), other, &out).message()),
            "text: record path 3/0/1 differs from the request path 3/0/0");
  const Record nan[] = {R("3303/0/5700", Value::Float(std::nan("")))};
  EXPECT_FALSE(Encode(ContentFormat::kText, P("3303/0/5700"), nan, &out).ok());
}

TEST(OpaqueFormatTest, OnlyForOpaqueResources) {
  const Bytes firmware = {0x00, 0x01, 0xfe, 0xff};
  auto decoded = Decode(ContentFormat::kOpaque, P("5/0/0"), firmware, kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->records.size(), 1u);
  EXPECT_EQ(decoded->records[0].value.opaque().data(), firmware.data());
  EXPECT_EQ(decoded->records[0].value.bytes.size(), 4u);
  ExpectError(Decode(ContentFormat::kOpaque, P("5/0/1"), firmware, kTypes),
              "opaque: 5/0/1: resource is string, not opaque");
  ExpectError(Decode(ContentFormat::kOpaque, P("5/0"), firmware, kTypes),
              "opaque: 5/0 is not a resource; a single value needs a resource or resource "
              "instance path");
  std::string out;
  ASSERT_TRUE(Encode(ContentFormat::kOpaque, P("5/0/0"), decoded->records, &out).ok());
  EXPECT_EQ(Bytes(out.begin(), out.end()), firmware);
  const Record text[] = {R("5/0/1", Value::String("x"))};
  EXPECT_EQ(std::string(Encode(ContentFormat::kOpaque, P("5/0/1"), text, &out).message()),
            "opaque: 5/0/1: value is string, not opaque");
}

// ---------------------------------------------------------------------------------------------
// CBOR single value

TEST(CborValueTest, DecodesAndEncodesEveryType) {
  struct Case {
    const char* path;
    const char* hex;
    Value value;
  };
  const Case cases[] = {
      {"1000/0/0", "6449455446", Value::String("IETF")},
      {"1000/0/1", "3903e7", Value::Integer(-1000)},
      {"1000/0/1", "1b7fffffffffffffff", Value::Integer(std::numeric_limits<int64_t>::max())},
      {"1000/0/2", "1bffffffffffffffff", Value::Unsigned(18446744073709551615u)},
      {"1000/0/3", "f94de0", Value::Float(23.5)},
      {"1000/0/3", "fb3ff199999999999a", Value::Float(1.1)},
      {"1000/0/4", "f5", Value::Boolean(true)},
      {"1000/0/5", "4401020304", Value::Opaque(std::string_view("\x01\x02\x03\x04", 4))},
      {"1000/0/6", "1a514b67b0", Value::Time(1363896240)},
      {"1000/0/7", "63333a30", Value::Link(3, 0)},
      {"1000/0/8", "663c2f332f303e", Value::Corelnk("</3/0>")},
  };
  for (const Case& c : cases) {
    const Bytes bytes = FromHex(c.hex);
    auto decoded = Decode(ContentFormat::kCbor, P(c.path), bytes, kTypes);
    ASSERT_TRUE(decoded.ok()) << c.hex << ": " << decoded.status();
    EXPECT_THAT(decoded->records, ElementsAreArray({R(c.path, c.value)})) << c.hex;
    std::string out;
    ASSERT_TRUE(Encode(ContentFormat::kCbor, P(c.path), decoded->records, &out).ok());
    EXPECT_EQ(ToHex(out), c.hex);
  }
  // Accepted alternatives: tag 1 on time, an integer for a float, an integral float for an
  // integer.
  auto decoded = Decode(ContentFormat::kCbor, P("1000/0/6"), FromHex("c11a514b67b0"), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->records[0].value, Value::Time(1363896240));
  decoded = Decode(ContentFormat::kCbor, P("1000/0/3"), FromHex("1864"), kTypes);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->records[0].value, Value::Float(100));
  decoded = Decode(ContentFormat::kCbor, P("3/0/9"), FromHex("f95640"), kTypes);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->records[0].value, Value::Integer(100));
}

TEST(CborValueTest, RefusesMalformedAndMistypedValues) {
  ExpectError(Decode(ContentFormat::kCbor, P("3/0/9"), FromHex("1a0001"), kTypes),
              "cbor: truncated at byte 3");
  ExpectError(Decode(ContentFormat::kCbor, P("3/0/9"), FromHex("186401"), kTypes),
              "cbor: trailing bytes at byte 2");
  ExpectError(Decode(ContentFormat::kCbor, P("3/0/9"), FromHex("6161"), kTypes),
              "cbor: 3/0/9: integer resource needs a number, got a text string");
  ExpectError(Decode(ContentFormat::kCbor, P("3/0/9"), FromHex("f93e00"), kTypes),
              "cbor: 3/0/9: 1.5 is not an integer in the signed 64-bit range");
  ExpectError(Decode(ContentFormat::kCbor, P("3/0/9"), FromHex("3bffffffffffffffff"), kTypes),
              "cbor: 3/0/9: -1.8446744073709552e+19 is not an integer in the signed 64-bit "
              "range");
  ExpectError(Decode(ContentFormat::kCbor, P("1000/0/2"), FromHex("20"), kTypes),
              "cbor: 1000/0/2: -1 is not an unsigned integer in the 64-bit range");
  ExpectError(Decode(ContentFormat::kCbor, P("3/0/0"), FromHex("c06161"), kTypes),
              "cbor: 3/0/0: tag 0 at byte 0 is not allowed here");
  ExpectError(Decode(ContentFormat::kCbor, P("3/0/0"), FromHex("7f6161ff"), kTypes),
              "cbor: indefinite-length string not supported at byte 0");
  ExpectError(Decode(ContentFormat::kCbor, P("1000/0/5"), FromHex("6161"), kTypes),
              "cbor: 1000/0/5: opaque resource needs a byte string, got a text string");
  ExpectError(Decode(ContentFormat::kCbor, P("1000/0/7"), FromHex("6133"), kTypes),
              "cbor: 1000/0/7: \"3\" is not an object link");
  ExpectError(Decode(ContentFormat::kCbor, P("3/0"), FromHex("01"), kTypes),
              "cbor: 3/0 is not a resource; a single value needs a resource or resource "
              "instance path");
  auto lenient = Decode(ContentFormat::kCbor, P("3/0/99"), FromHex("8101"), kTypes,
                        DecodeOptions{.lenient_unknown_resources = true});
  ASSERT_FALSE(lenient.ok());
  EXPECT_EQ(std::string(lenient.status().message()),
            "cbor: 3/0/99: an array cannot be a resource value");
  ExpectError(Decode(ContentFormat::kCbor, P("3/0/9"), FromHex("a0"), kTypes),
              "cbor: 3/0/9: a map cannot be a resource value");
  lenient = Decode(ContentFormat::kCbor, P("3/0/99"), FromHex("20"), kTypes,
                   DecodeOptions{.lenient_unknown_resources = true});
  ASSERT_TRUE(lenient.ok());
  EXPECT_EQ(lenient->records[0].value, Value::Integer(-1));
}

// ---------------------------------------------------------------------------------------------
// SenML JSON

TEST(SenmlJsonTest, DeviceInstanceExample) {
  auto decoded = DecodeText(ContentFormat::kSenmlJson, "3/0", kDeviceSenmlJson);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray(DeviceInstance()));
  EXPECT_TRUE(Within(decoded->records[0].value.bytes, AsBytes(kDeviceSenmlJson)));

  std::string encoded;
  const auto records = DeviceInstance();
  ASSERT_TRUE(Encode(ContentFormat::kSenmlJson, P("3/0"), records, &encoded).ok());
  EXPECT_EQ(encoded, kDeviceSenmlJson);
}

TEST(SenmlJsonTest, BaseFieldsAndTimes) {
  // RFC 8428 §5.1.2-style: base name and base time carry to later records; "t" adds to "bt".
  constexpr std::string_view payload =
      R"([{"bn":"/3303/0/","bt":1.276020076e+09,"bu":"Cel","n":"5700","v":23.5,"t":0},)"
      R"({"n":"5700","v":23.6,"t":15},{"bn":"/3303/1/","n":"5700","v":-4,"bver":10}])";
  auto decoded = DecodeText(ContentFormat::kSenmlJson, "3303", payload);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records,
              ElementsAreArray({R("3303/0/5700", Value::Float(23.5), 1276020076.0),
                                R("3303/0/5700", Value::Float(23.6), 1276020091.0),
                                R("3303/1/5700", Value::Float(-4), 1276020076.0)}));
  // Base value (RFC 8428 §4.5.2) is added to "v".
  decoded = DecodeText(ContentFormat::kSenmlJson, "3/0",
                       R"([{"bn":"/3/0/","bv":100,"n":"9","v":-1},{"n":"10","v":5}])");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records,
              ElementsAreArray({R("3/0/9", Value::Integer(99)), R("3/0/10", Value::Integer(105))}));
  // Relative time only, and names spread over base name and name.
  decoded = DecodeText(ContentFormat::kSenmlJson, "3/0/13",
                       R"([{"bn":"/3/0/1","n":"3","v":1367491215,"t":-5}])");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray({R("3/0/13", Value::Time(1367491215), -5)}));
}

TEST(SenmlJsonTest, EveryValueField) {
  constexpr std::string_view payload =
      R"([{"bn":"/1000/0/","n":"0","vs":"a\"b\u00fc"},{"n":"1","v":-9223372036854775808},)"
      R"({"n":"2","v":18446744073709551615},{"n":"3","v":1e-3},{"n":"4","vb":false},)"
      R"({"n":"5","vd":"AQID_w"},{"n":"6","v":1.0e3},{"n":"7","vlo":"3:0"},)"
      R"({"n":"8","vs":"</3/0>"},{"n":"0","vs":""}])";
  auto decoded = DecodeText(ContentFormat::kSenmlJson, "1000/0", payload);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records,
              ElementsAreArray({
                  R("1000/0/0", Value::String("a\"b\xc3\xbc")),
                  R("1000/0/1", Value::Integer(std::numeric_limits<int64_t>::min())),
                  R("1000/0/2", Value::Unsigned(18446744073709551615u)),
                  R("1000/0/3", Value::Float(0.001)),
                  R("1000/0/4", Value::Boolean(false)),
                  R("1000/0/5", Value::Opaque(std::string_view("\x01\x02\x03\xff", 4))),
                  R("1000/0/6", Value::Time(1000)),
                  R("1000/0/7", Value::Link(3, 0)),
                  R("1000/0/8", Value::Corelnk("</3/0>")),
                  R("1000/0/0", Value::String("")),
              }));
  // The escaped string was copied; the core link was not.
  EXPECT_FALSE(Within(decoded->records[0].value.bytes, AsBytes(payload)));
  EXPECT_TRUE(Within(decoded->records[8].value.bytes, AsBytes(payload)));
  // Numbers simdjson alone gets wrong or refuses.
  auto big = DecodeText(ContentFormat::kSenmlJson, "3303/0",
                        R"([{"bn":"/3303/0/","n":"5700","v":18446744073709551616.0},)"
                        R"({"n":"5601","v":123456789012345678901234567890},)"
                        R"({"n":"5602","v":-1.5E+2,"x":[99999999999999999999999,1e999]}])");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_THAT(big->records,
              ElementsAreArray({R("3303/0/5700", Value::Float(18446744073709551616.0)),
                                R("3303/0/5601", Value::Float(1.2345678901234568e29)),
                                R("3303/0/5602", Value::Float(-150))}));
  ExpectError(
      DecodeText(ContentFormat::kSenmlJson, "3303/0", R"([{"n":"/3303/0/5700","v":1e400}])"),
      "senml-json: record 0: 'v' is not a valid number");
  // Moving the Decoded keeps the copies where they are.
  const char* copy = decoded->records[0].value.bytes.data();
  Decoded moved = std::move(*decoded);
  EXPECT_EQ(moved.records[0].value.bytes.data(), copy);
  EXPECT_EQ(moved.records[0].value.bytes, "a\"b\xc3\xbc");
}

TEST(SenmlJsonTest, RefusesMalformedInput) {
  const std::string kObj = R"({"n":"/3/0/0","vs":"x"})";
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0",
                         "[" + kObj + "," + kObj + "," + kObj + R"(,{"n":"/3/0/9","v":"x"}])"),
              "senml-json: record 3: 'v' is not a number");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/9","v":1.5}])"),
              "senml-json: record 0 (3/0/9): 'v' 1.5 is not an integer in the signed 64-bit "
              "range");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/9","vs":"1"}])"),
              "senml-json: record 0 (3/0/9): integer resource needs 'v', got 'vs'");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/0","v":1}])"),
              "senml-json: record 0 (3/0/0): string resource needs 'vs', got 'v'");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/1/0","vs":"x"}])"),
              "senml-json: record 0: 3/1/0 is outside the request path 3/0");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0","vs":"x"}])"),
              "senml-json: record 0: 3/0 names no resource");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/x","vs":"x"}])"),
              "senml-json: record 0: name \"/3/0/x\" is not an LwM2M path");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/65535","vs":"x"}])"),
              "senml-json: record 0: name \"/3/0/65535\" is not an LwM2M path");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/0"}])"),
              "senml-json: record 0 (3/0/0): no value");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/0","vs":"a","v":1}])"),
              "senml-json: record 0: more than one value field");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/0","n":"/3/0/1"}])"),
              "senml-json: record 0: duplicate 'n'");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/0","x_":1}])"),
              "senml-json: record 0: must-understand field \"x_\" is not supported");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"bver":11,"n":"/3/0/0"}])"),
              "senml-json: record 0: version 11 is not supported (10 is)");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"({"n":"/3/0/0"})"),
              "senml-json: the payload is not a JSON array of records");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([1])"),
              "senml-json: record 0 is not an object");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/5","vd":"A"}])"),
              "senml-json: record 0: 'vd' is not base64");
  ExpectError(DecodeText(ContentFormat::kSenmlJson, "3/0", R"([] [])"),
              "senml-json: trailing content at byte 3");
  for (std::string_view bad : {"", "[", "[{", R"([{"n":])", R"([{"n":"/3/0/0","vs":"x"},])",
                               R"([{"n":"/3/0/0","vs":"x"}]])", "[tru]", "\xff"}) {
    auto decoded = DecodeText(ContentFormat::kSenmlJson, "3/0", bad);
    EXPECT_FALSE(decoded.ok()) << bad;
  }
  auto decoded = DecodeText(ContentFormat::kSenmlJson, "3/0", R"([{"n":"/3/0/0","vs":"x",)");
  ASSERT_FALSE(decoded.ok());
  EXPECT_THAT(std::string(decoded.status().message()),
              HasSubstr("senml-json: malformed JSON near byte"));
  // Unknown fields are ignored but must be valid JSON.
  decoded = DecodeText(ContentFormat::kSenmlJson, "3/0",
                       R"([{"foo":[1,{"a":null,"b":[true,"x"]}],"n":"/3/0/0","vs":"x"}])");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  decoded = DecodeText(ContentFormat::kSenmlJson, "3/0",
                       R"([{"foo":[1,{"a":nul}],"n":"/3/0/0","vs":"x"}])");
  EXPECT_FALSE(decoded.ok());
}

TEST(SenmlJsonTest, CompositeAndLenient) {
  constexpr std::string_view payload =
      R"([{"bn":"/3/0/","n":"0","vs":"x"},{"bn":"/3303/0/","n":"5700","v":1.5},)"
      R"({"bn":"","n":"/9/9/9","v":7},{"n":"/3/0/99","vb":true}])";
  auto decoded = DecodeText(ContentFormat::kSenmlJson, "3/0", payload);
  EXPECT_FALSE(decoded.ok());
  decoded = DecodeText(ContentFormat::kSenmlJson, "3/0", payload,
                       DecodeOptions{.lenient_unknown_resources = true, .composite = true});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->records.size(), 4u);
  EXPECT_EQ(decoded->records[1], R("3303/0/5700", Value::Float(1.5)));
  EXPECT_EQ(decoded->records[2], R("9/9/9", Value::Integer(7)));
  EXPECT_EQ(decoded->records[3], R("3/0/99", Value::Boolean(true)));
}

// ---------------------------------------------------------------------------------------------
// SenML CBOR

TEST(SenmlCborTest, DeviceInstanceRoundTrip) {
  const auto records = DeviceInstance();
  std::string encoded;
  ASSERT_TRUE(Encode(ContentFormat::kSenmlCbor, P("3/0"), records, &encoded).ok());
  // [{-2: "/3/0/", 0: "0", 3: "Open Mobile Alliance"}, {0: "1", ...
  EXPECT_EQ(ToHex(encoded.substr(0, 38)),
            "90a321652f332f302f00613003744f70656e204d6f62696c6520416c6c69616e6365a2006131");
  auto decoded = Decode(ContentFormat::kSenmlCbor, P("3/0"), AsBytes(encoded), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray(records));
  // Strings are views into the payload.
  EXPECT_TRUE(Within(decoded->records[0].value.bytes, AsBytes(encoded)));
}

TEST(SenmlCborTest, HandWrittenPayloads) {
  // [{-2: "/3303/0/", -3: 1276020076, 0: "5700", 2: 23.5}, {0: "5700", 6: 15, 2: 23.6}]
  const Bytes temperatures = FromHex(
      "82a421682f333330332f302f221a4c0e856c0064353730300"
      "2f94de0"
      "a30064353730300 60f02fb403799999999999a");
  auto decoded = Decode(ContentFormat::kSenmlCbor, P("3303/0"), temperatures, kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records,
              ElementsAreArray({R("3303/0/5700", Value::Float(23.5), 1276020076.0),
                                R("3303/0/5700", Value::Float(23.6), 1276020091.0)}));

  // Indefinite-length array and map, text labels, "vlo", "vd" and "vb".
  // [_ {_ "n": "/1000/0/7", "vlo": "3:0"}, {0: "/1000/0/5", 8: h'0102'},
  //    {"bn": "/1000/0/", 0: "4", 4: true}]
  const Bytes mixed = FromHex(
      "9f bf 616e 692f313030302f302f37 63766c6f 63333a30 ff"
      "a2 00 692f313030302f302f35 08 420102"
      "a3 62626e 682f313030302f302f 00 6134 04 f5 ff");
  decoded = Decode(ContentFormat::kSenmlCbor, P("1000/0"), mixed, kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records,
              ElementsAreArray({R("1000/0/7", Value::Link(3, 0)),
                                R("1000/0/5", Value::Opaque(std::string_view("\x01\x02", 2))),
                                R("1000/0/4", Value::Boolean(true))}));
}

TEST(SenmlCborTest, RefusesMalformedInput) {
  // [{0: "/3/0/9", 2: "x"}]
  ExpectError(
      Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("81a200662f332f302f39026178"), kTypes),
      "senml-cbor: record 0: 'v' at byte 11 is not a number");
  ExpectError(
      Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("81a200662f332f302f3902"), kTypes),
      "senml-cbor: truncated at byte 11");
  ExpectError(
      Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("81a200662f332f302f39021864ff"), kTypes),
      "senml-cbor: trailing bytes at byte 13");
  ExpectError(Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("a0"), kTypes),
              "senml-cbor: the payload is not a CBOR array of records");
  ExpectError(Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("8101"), kTypes),
              "senml-cbor: record 0 at byte 1 is not a map");
  ExpectError(Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("81a2f400021864"), kTypes),
              "senml-cbor: record 0: label at byte 2 is neither an integer nor a text string");
  ExpectError(
      Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("81a300662f332f302f3902c11864"), kTypes),
      "senml-cbor: record 0: 'v' at byte 11 is not a number");
  ExpectError(
      Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("81a200662f332f302f39006130"), kTypes),
      "senml-cbor: record 0: duplicate 'n'");
  ExpectError(
      Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("81a200662f332f302f39627a5f01"), kTypes),
      "senml-cbor: record 0: must-understand label \"z_\" is not supported");
  ExpectError(Decode(ContentFormat::kSenmlCbor, P("3/0"), FromHex("9fff00"), kTypes),
              "senml-cbor: trailing bytes at byte 2");
  // Unknown labels are skipped whatever they hold.
  auto decoded = Decode(ContentFormat::kSenmlCbor, P("3/0"),
                        FromHex("81a300662f332f302f390218641863a1018203f6"), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->records[0], R("3/0/9", Value::Integer(100)));
}

// ---------------------------------------------------------------------------------------------
// LwM2M JSON

TEST(Lwm2mJsonTest, DeviceInstanceExample) {
  auto decoded = DecodeText(ContentFormat::kLwm2mJson, "3/0", kDeviceLwm2mJson);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray(DeviceInstance()));
  std::string encoded;
  const auto records = DeviceInstance();
  ASSERT_TRUE(Encode(ContentFormat::kLwm2mJson, P("3/0"), records, &encoded).ok());
  EXPECT_EQ(encoded, kDeviceLwm2mJson);
}

TEST(Lwm2mJsonTest, MembersInAnyOrderTimesAndTypes) {
  constexpr std::string_view payload =
      R"({"e":[{"sv":"AQI=","n":"5"},{"n":"7","ov":"66:1"},{"n":"4","bv":true,"t":5},)"
      R"({"n":"3","v":-2.5}],"bt":100,"x":{"y":[]},"bn":"/1000/0/"})";
  auto decoded = DecodeText(ContentFormat::kLwm2mJson, "1000/0", payload);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records,
              ElementsAreArray({R("1000/0/5", Value::Opaque(std::string_view("\x01\x02", 2)), 100),
                                R("1000/0/7", Value::Link(66, 1), 100),
                                R("1000/0/4", Value::Boolean(true), 105),
                                R("1000/0/3", Value::Float(-2.5), 100)}));
  // A single resource: the base name is the path, the entry has no name.
  decoded =
      DecodeText(ContentFormat::kLwm2mJson, "3/0/14", R"({"bn":"/3/0/14","e":[{"sv":"+01:00"}]})");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray({R("3/0/14", Value::String("+01:00"))}));
  std::string encoded;
  ASSERT_TRUE(Encode(ContentFormat::kLwm2mJson, P("3/0/14"), decoded->records, &encoded).ok());
  EXPECT_EQ(encoded, R"({"bn":"/3/0/14","e":[{"sv":"+01:00"}]})");
}

TEST(Lwm2mJsonTest, RefusesMalformedInput) {
  ExpectError(DecodeText(ContentFormat::kLwm2mJson, "3/0", R"([])"),
              "json: the payload is not a JSON object");
  ExpectError(DecodeText(ContentFormat::kLwm2mJson, "3/0", R"({"bn":"/3/0/"})"),
              "json: no 'e' array");
  ExpectError(DecodeText(ContentFormat::kLwm2mJson, "3/0", R"({"bn":"/3/0/","bn":"/3/0/","e":[]})"),
              "json: duplicate 'bn'");
  ExpectError(DecodeText(ContentFormat::kLwm2mJson, "3/0",
                         R"({"bn":"/3/0/","e":[{"n":"9","v":1},{"n":"9","sv":"x","v":1}]})"),
              "json: record 1: more than one value field");
  ExpectError(
      DecodeText(ContentFormat::kLwm2mJson, "3/0", R"({"bn":"/3/0/","e":[{"n":"9","v":"1"}]})"),
      "json: record 0: 'v' is not a number");
  ExpectError(
      DecodeText(ContentFormat::kLwm2mJson, "3/0", R"({"bn":"/3/0/","e":[{"n":"9","sv":"1"}]})"),
      "json: record 0 (3/0/9): integer resource needs 'v', got 'sv'");
  ExpectError(
      DecodeText(ContentFormat::kLwm2mJson, "3/0", R"({"bn":"/3/0/","e":[{"n":"99","v":1}]})"),
      "json: resource definition not found");
  ExpectError(DecodeText(ContentFormat::kLwm2mJson, "3/0", R"({"e":[]} {})"),
              "json: trailing content at byte 9");
}

// ---------------------------------------------------------------------------------------------
// Round trips: every type in every format that can carry it.

struct TypeCase {
  const char* name;
  Value value;
};

std::vector<TypeCase> EveryType() {
  static const std::string all_bytes = [] {
    std::string s;
    for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
    return s;
  }();
  return {
      {"string", Value::String("Open Mobile Alliance")},
      {"string_escapes", Value::String("q\"b\\s/\n\t\x01 \xc3\xbc \xe6\xb0\xb4 \xf0\x90\x85\x91")},
      {"string_empty", Value::String("")},
      {"integer", Value::Integer(-42)},
      {"integer_min", Value::Integer(std::numeric_limits<int64_t>::min())},
      {"integer_max", Value::Integer(std::numeric_limits<int64_t>::max())},
      {"unsigned", Value::Unsigned(7)},
      {"unsigned_max", Value::Unsigned(std::numeric_limits<uint64_t>::max())},
      {"float", Value::Float(23.5)},
      {"float_tenth", Value::Float(0.1)},
      {"float_negative_zero", Value::Float(-0.0)},
      {"float_integral", Value::Float(5.0)},
      {"float_big", Value::Float(1e300)},
      {"float_tiny", Value::Float(5e-324)},
      {"float_single_max", Value::Float(3.4028234663852886e+38)},
      {"boolean_true", Value::Boolean(true)},
      {"boolean_false", Value::Boolean(false)},
      {"opaque", Value::Opaque(all_bytes)},
      {"opaque_empty", Value::Opaque(std::string_view())},
      {"opaque_two", Value::Opaque(std::string_view("\xfb\xff", 2))},
      {"time", Value::Time(1367491215)},
      {"time_negative", Value::Time(-1)},
      {"objlnk", Value::Link(3, 0)},
      {"objlnk_null", Value::Link(65535, 65535)},
      {"corelnk", Value::Corelnk("</3/0>;ver=1.1,</5/0>")},
  };
}

// The object 1000 resource of a value's type.
Path PathFor(const Value& value) {
  static constexpr uint16_t kResource[] = {
      /*kNone*/ 9,    /*kString*/ 0, /*kInteger*/ 1, /*kUnsignedInteger*/ 2,
      /*kFloat*/ 3,
      /*kBoolean*/ 4, /*kOpaque*/ 5, /*kTime*/ 6,    /*kObjlnk*/ 7,
      /*kCorelnk*/ 8};
  return Path::Resource(1000, 0, kResource[static_cast<int>(value.type)]);
}

class RoundTripTest : public ::testing::TestWithParam<ContentFormat> {};

TEST_P(RoundTripTest, EveryTypeAlone) {
  const ContentFormat format = GetParam();
  for (const TypeCase& c : EveryType()) {
    if (format == ContentFormat::kOpaque && c.value.type != ResourceType::kOpaque) continue;
    const Path path = PathFor(c.value);
    const Record records[] = {Record{path, c.value, std::nullopt}};
    std::string encoded;
    const absl::Status status = Encode(format, path, records, &encoded);
    ASSERT_TRUE(status.ok()) << c.name << ": " << status;
    auto decoded = Decode(format, path, AsBytes(encoded), kTypes);
    ASSERT_TRUE(decoded.ok()) << c.name << ": " << decoded.status() << " in " << encoded;
    EXPECT_THAT(decoded->records, ElementsAreArray(records)) << c.name << ": " << encoded;
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, RoundTripTest,
                         ::testing::Values(ContentFormat::kText, ContentFormat::kOpaque,
                                           ContentFormat::kCbor, ContentFormat::kTlv,
                                           ContentFormat::kSenmlJson, ContentFormat::kSenmlCbor,
                                           ContentFormat::kLwm2mJson),
                         [](const auto& info) {
                           std::string name(EncodingName(info.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

class MultiRecordRoundTripTest : public ::testing::TestWithParam<ContentFormat> {};

TEST_P(MultiRecordRoundTripTest, AllTypesInOneInstanceAndAcrossInstances) {
  const ContentFormat format = GetParam();
  std::vector<Record> records;
  uint16_t instance_of_multiple = 0;
  for (const TypeCase& c : EveryType()) {
    // TLV and the JSON encoders need distinct paths: use resource instances.
    Path path = PathFor(c.value);
    path.resource_instance_id = instance_of_multiple++;
    const bool timed = format == ContentFormat::kSenmlJson || format == ContentFormat::kSenmlCbor ||
                       format == ContentFormat::kLwm2mJson;
    records.push_back(
        Record{path, c.value,
               timed ? std::optional<double>(1.7e9 + instance_of_multiple / 4.0) : std::nullopt});
  }
  if (format == ContentFormat::kTlv) {
    // TLV groups resources by id; order the expectation the way the encoder does.
    std::stable_sort(records.begin(), records.end(),
                     [](const Record& a, const Record& b) { return a.path < b.path; });
  }
  for (const char* request : {"1000/0", "1000"}) {
    std::string encoded;
    const absl::Status status = Encode(format, P(request), records, &encoded);
    ASSERT_TRUE(status.ok()) << status;
    auto decoded = Decode(format, P(request), AsBytes(encoded), kTypes);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_THAT(decoded->records, ElementsAreArray(records)) << request;
  }
  // A second instance next to the first.
  std::vector<Record> two = {R("3/0/0", Value::String("a")), R("3/0/9", Value::Integer(1)),
                             R("3/1/0", Value::String("b")), R("3/1/7/3", Value::Integer(-1))};
  std::string encoded;
  ASSERT_TRUE(Encode(format, P("3"), two, &encoded).ok());
  auto decoded = Decode(format, P("3"), AsBytes(encoded), kTypes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray(two));
}

INSTANTIATE_TEST_SUITE_P(StructuredFormats, MultiRecordRoundTripTest,
                         ::testing::Values(ContentFormat::kTlv, ContentFormat::kSenmlJson,
                                           ContentFormat::kSenmlCbor, ContentFormat::kLwm2mJson),
                         [](const auto& info) {
                           std::string name(EncodingName(info.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(EncodeTest, RefusesRecordsThatDoNotFit) {
  std::string out;
  const Record outside[] = {R("3/1/0", Value::String("x"))};
  for (ContentFormat format : {ContentFormat::kTlv, ContentFormat::kSenmlJson,
                               ContentFormat::kSenmlCbor, ContentFormat::kLwm2mJson}) {
    const absl::Status status = Encode(format, P("3/0"), outside, &out);
    EXPECT_THAT(std::string(status.message()), HasSubstr("3/1/0 is outside the request path 3/0"))
        << EncodingName(format);
  }
  const Record twice[] = {R("3/0/0", Value::String("x")), R("3/0/0", Value::String("y"))};
  EXPECT_EQ(std::string(Encode(ContentFormat::kTlv, P("3/0"), twice, &out).message()),
            "tlv: 3/0/0 appears twice");
  const Record mixed[] = {R("3/0/6", Value::Integer(1)), R("3/0/6/0", Value::Integer(1))};
  EXPECT_EQ(std::string(Encode(ContentFormat::kTlv, P("3/0"), mixed, &out).message()),
            "tlv: 3/0/6 has both a single value and instances");
  const Record bad_utf8[] = {R("3/0/0", Value::String("\xff"))};
  EXPECT_EQ(std::string(Encode(ContentFormat::kSenmlJson, P("3/0"), bad_utf8, &out).message()),
            "senml-json: 3/0/0: string is not valid UTF-8");
  const Record nan[] = {R("3303/0/5700", Value::Float(std::nan("")))};
  EXPECT_FALSE(Encode(ContentFormat::kSenmlJson, P("3303/0"), nan, &out).ok());
  EXPECT_TRUE(Encode(ContentFormat::kSenmlCbor, P("3303/0"), nan, &out).ok());
  const Record none[] = {R("3/0/0", Value::None())};
  EXPECT_FALSE(Encode(ContentFormat::kTlv, P("3/0"), none, &out).ok());
  EXPECT_FALSE(Encode(ContentFormat::kLwm2mJson, P("3/0"), none, &out).ok());
}

TEST(EncodeTest, CompositeRequestBodies) {
  // Read-Composite request (TS 1.1 §6.3.1.1): names only, absolute.
  const Record names[] = {R("3/0/14", Value::None()), R("3303/0/5700", Value::None())};
  std::string out;
  ASSERT_TRUE(
      Encode(ContentFormat::kSenmlJson, P("3"), names, &out, EncodeOptions{.composite = true})
          .ok());
  EXPECT_EQ(out, R"([{"n":"/3/0/14"},{"n":"/3303/0/5700"}])");
  ASSERT_TRUE(
      Encode(ContentFormat::kSenmlCbor, P("3"), names, &out, EncodeOptions{.composite = true})
          .ok());
  EXPECT_EQ(ToHex(out), "82a100672f332f302f3134a1006c2f333330332f302f35373030");
  // Write-Composite with values, decoded as a composite answer.
  const Record values[] = {R("3/0/14", Value::String("+01:00")),
                           R("3303/0/5700", Value::Float(-3.25))};
  ASSERT_TRUE(
      Encode(ContentFormat::kSenmlCbor, P("3"), values, &out, EncodeOptions{.composite = true})
          .ok());
  auto decoded = Decode(ContentFormat::kSenmlCbor, P("3"), AsBytes(out), kTypes,
                        DecodeOptions{.composite = true});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->records, ElementsAreArray(values));
}

}  // namespace
}  // namespace lwm2md::lwm2m
