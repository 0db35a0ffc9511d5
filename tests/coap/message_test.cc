#include "coap/message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lwm2md::coap {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using ::testing::Pair;

using Bytes = std::vector<uint8_t>;

Bytes Concat(std::initializer_list<std::initializer_list<int>> parts) {
  Bytes out;
  for (const auto& part : parts)
    for (int b : part) out.push_back(static_cast<uint8_t>(b));
  return out;
}

void Append(Bytes& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }

Bytes ToBytes(std::span<const uint8_t> s) { return Bytes(s.begin(), s.end()); }

std::string ToString(std::span<const uint8_t> s) { return std::string(s.begin(), s.end()); }

std::vector<std::pair<uint16_t, std::string>> OptionsOf(const MessageView& m) {
  std::vector<std::pair<uint16_t, std::string>> out;
  for (const OptionView& o : m.options()) out.emplace_back(o.number, std::string(o.AsString()));
  return out;
}

ParseError ParseBytes(const Bytes& bytes, MessageView* m) {
  return MessageView::Parse(std::span<const uint8_t>(bytes), m);
}

// The view points into its bytes, so parsing a temporary would leave it dangling.
MessageView MustParse(std::span<const uint8_t> bytes) {
  MessageView m;
  EXPECT_EQ(MessageView::Parse(bytes, &m), ParseError::kOk);
  return m;
}
MessageView MustParse(const Bytes& bytes) { return MustParse(std::span<const uint8_t>(bytes)); }
MessageView MustParse(Bytes&& bytes) = delete;

// ---------------------------------------------------------------------------------------
// RFC 7252 Appendix A: the bytes of the example exchanges, decoded and re-encoded.

TEST(AppendixA, BasicGetWithoutToken) {
  // Figure 16: CON GET, MID 0x7d34, Uri-Path "temperature"; ACK 2.05 "22.3 C".
  Bytes request = Concat({{0x40, 0x01, 0x7d, 0x34, 0xbb}});
  Append(request, "temperature");
  Bytes response = Concat({{0x60, 0x45, 0x7d, 0x34, 0xff}});
  Append(response, "22.3 C");

  const MessageView req = MustParse(request);
  EXPECT_EQ(req.type(), Type::kConfirmable);
  EXPECT_EQ(req.code(), code::kGet);
  EXPECT_EQ(req.message_id(), 0x7d34);
  EXPECT_THAT(req.token(), IsEmpty());
  EXPECT_THAT(OptionsOf(req), ElementsAre(Pair(option::kUriPath, "temperature")));
  EXPECT_THAT(req.payload(), IsEmpty());
  EXPECT_TRUE(req.IsRequest());

  const MessageView resp = MustParse(response);
  EXPECT_EQ(resp.type(), Type::kAcknowledgement);
  EXPECT_EQ(resp.code(), code::kContent);
  EXPECT_EQ(resp.message_id(), 0x7d34);
  EXPECT_THAT(OptionsOf(resp), IsEmpty());
  EXPECT_EQ(ToString(resp.payload()), "22.3 C");
  EXPECT_TRUE(resp.IsResponse());

  std::array<uint8_t, 64> buf;
  EXPECT_EQ(ToBytes(MessageBuilder(buf)
                        .Header(Type::kConfirmable, code::kGet, 0x7d34)
                        .UriPath("temperature")
                        .Finish()),
            request);
  EXPECT_EQ(ToBytes(MessageBuilder(buf)
                        .Header(Type::kAcknowledgement, code::kContent, 0x7d34)
                        .Payload("22.3 C")
                        .Finish()),
            response);
}

TEST(AppendixA, PiggybackedResponseWithToken) {
  // Figure 17: token 0x20, MID 0x7d35.
  Bytes request = Concat({{0x41, 0x01, 0x7d, 0x35, 0x20, 0xbb}});
  Append(request, "temperature");
  Bytes response = Concat({{0x61, 0x45, 0x7d, 0x35, 0x20, 0xff}});
  Append(response, "22.3 C");

  const MessageView req = MustParse(request);
  EXPECT_THAT(req.token(), ElementsAre(0x20));
  EXPECT_EQ(req.message_id(), 0x7d35);
  const MessageView resp = MustParse(response);
  EXPECT_THAT(resp.token(), ElementsAre(0x20));
  EXPECT_EQ(ToString(resp.payload()), "22.3 C");

  const uint8_t token[] = {0x20};
  std::array<uint8_t, 64> buf;
  EXPECT_EQ(ToBytes(MessageBuilder(buf)
                        .Header(Type::kConfirmable, code::kGet, 0x7d35, token)
                        .UriPath("/temperature")
                        .Finish()),
            request);
  EXPECT_EQ(ToBytes(MessageBuilder(buf)
                        .Header(Type::kAcknowledgement, code::kContent, 0x7d35, token)
                        .Payload("22.3 C")
                        .Finish()),
            response);
}

TEST(AppendixA, SeparateResponse) {
  // Figure 20: empty ACK for MID 0x7d38, then CON 2.05 MID 0xad7b token 0x53, acked empty.
  const Bytes empty_ack = Concat({{0x60, 0x00, 0x7d, 0x38}});
  Bytes separate = Concat({{0x41, 0x45, 0xad, 0x7b, 0x53, 0xff}});
  Append(separate, "22.3 C");
  const Bytes final_ack = Concat({{0x60, 0x00, 0xad, 0x7b}});

  const MessageView ack = MustParse(empty_ack);
  EXPECT_TRUE(ack.IsEmpty());
  EXPECT_FALSE(ack.IsRequest());
  EXPECT_FALSE(ack.IsResponse());
  EXPECT_EQ(ack.type(), Type::kAcknowledgement);
  EXPECT_EQ(ack.message_id(), 0x7d38);

  const MessageView resp = MustParse(separate);
  EXPECT_EQ(resp.type(), Type::kConfirmable);
  EXPECT_EQ(resp.code(), code::kContent);
  EXPECT_EQ(resp.message_id(), 0xad7b);
  EXPECT_THAT(resp.token(), ElementsAre(0x53));

  std::array<uint8_t, 4> small;
  EXPECT_EQ(ToBytes(BuildEmpty(Type::kAcknowledgement, 0x7d38, small)), empty_ack);
  EXPECT_EQ(ToBytes(BuildEmpty(Type::kAcknowledgement, 0xad7b, small)), final_ack);
  std::array<uint8_t, 64> buf;
  const uint8_t token[] = {0x53};
  EXPECT_EQ(ToBytes(MessageBuilder(buf)
                        .Header(Type::kConfirmable, code::kContent, 0xad7b, token)
                        .Payload("22.3 C")
                        .Finish()),
            separate);
}

TEST(AppendixB, EmptyAndRepeatedUriOptions) {
  // RFC 7252 Appendix B: coap://198.51.100.1:61616//%2F//?%2F%2F&?%26 carries Uri-Port
  // 61616, Uri-Path "", "/", "", "" and Uri-Query "//", "?&".
  const Bytes bytes = Concat({{0x40, 0x01, 0x00, 0x01},
                              {0x72, 0xf0, 0xb0},
                              {0x40},
                              {0x01, '/'},
                              {0x00},
                              {0x00},
                              {0x42, '/', '/'},
                              {0x02, '?', '&'}});
  const MessageView m = MustParse(bytes);
  EXPECT_EQ(m.FindUint(option::kUriPort), 61616u);
  std::vector<std::string> path, query;
  m.ForEachUriPath([&](std::string_view s) { path.emplace_back(s); });
  m.ForEachUriQuery([&](std::string_view s) { query.emplace_back(s); });
  EXPECT_THAT(path, ElementsAre("", "/", "", ""));
  EXPECT_THAT(query, ElementsAre("//", "?&"));

  std::array<uint8_t, 64> buf;
  MessageBuilder b(buf);
  b.Header(Type::kConfirmable, code::kGet, 1)
      .UintOption(option::kUriPort, 61616)
      .Option(option::kUriPath, std::string_view())
      .Option(option::kUriPath, "/")
      .Option(option::kUriPath, std::string_view())
      .Option(option::kUriPath, std::string_view())
      .Option(option::kUriQuery, "//")
      .Option(option::kUriQuery, "?&");
  EXPECT_EQ(ToBytes(b.Finish()), bytes);
}

// ---------------------------------------------------------------------------------------
// Option header encoding (RFC 7252 §3.1): every nibble form for delta and length.

struct EncodingCase {
  uint16_t number;
  size_t length;
  std::vector<int> header;  // the option's header bytes, before its value
};

class OptionEncodingTest : public ::testing::TestWithParam<EncodingCase> {};

TEST_P(OptionEncodingTest, EncodesAndDecodes) {
  const EncodingCase& c = GetParam();
  Bytes value(c.length);
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<uint8_t>('a' + i % 26);

  Bytes expected = Concat({{0x40, 0x01, 0x12, 0x34}});
  for (int b : c.header) expected.push_back(static_cast<uint8_t>(b));
  expected.insert(expected.end(), value.begin(), value.end());

  std::vector<uint8_t> buf(expected.size());
  MessageBuilder builder(buf);
  builder.Header(Type::kConfirmable, code::kGet, 0x1234).Option(c.number, value);
  ASSERT_TRUE(builder.ok());
  EXPECT_EQ(ToBytes(builder.Finish()), expected);

  const MessageView m = MustParse(expected);
  std::vector<OptionView> options;
  for (const OptionView& o : m.options()) options.push_back(o);
  ASSERT_EQ(options.size(), 1u);
  EXPECT_EQ(options[0].number, c.number);
  EXPECT_EQ(ToBytes(options[0].value), value);
  EXPECT_THAT(m.payload(), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    AllForms, OptionEncodingTest,
    ::testing::Values(
        // Nibbles 0-12 carry the value directly.
        EncodingCase{0, 0, {0x00}}, EncodingCase{1, 1, {0x11}}, EncodingCase{7, 5, {0x75}},
        EncodingCase{12, 12, {0xcc}},
        // 13: one extension byte holding value - 13.
        EncodingCase{13, 0, {0xd0, 0x00}}, EncodingCase{0, 13, {0x0d, 0x00}},
        EncodingCase{14, 14, {0xdd, 0x01, 0x01}}, EncodingCase{60, 2, {0xd2, 0x2f}},
        EncodingCase{268, 268, {0xdd, 0xff, 0xff}},
        // 14: two extension bytes holding value - 269, delta's before length's.
        EncodingCase{269, 0, {0xe0, 0x00, 0x00}}, EncodingCase{0, 269, {0x0e, 0x00, 0x00}},
        EncodingCase{270, 300, {0xee, 0x00, 0x01, 0x00, 0x1f}},
        EncodingCase{1000, 13, {0xed, 0x02, 0xdb, 0x00}}, EncodingCase{258, 1, {0xd1, 0xf5}},
        EncodingCase{65535, 1, {0xe1, 0xfe, 0xf2}},
        EncodingCase{65535, 1034, {0xee, 0xfe, 0xf2, 0x02, 0xfd}}));

TEST(OptionEncoding, DeltasAreRelativeToThePreviousOption) {
  std::array<uint8_t, 64> buf;
  MessageBuilder b(buf);
  b.Header(Type::kConfirmable, code::kGet, 1)
      .Option(option::kUriPath, "a")
      .Option(option::kUriPath, "b")      // delta 0
      .UintOption(option::kSize1, 1024)   // delta 49: nibble 13 + 36
      .Option(option::kNoResponse, "x")   // delta 198: nibble 13 + 185
      .Option(2000, "y")                  // delta 1742: nibble 14 + 1473
      .Option(2000, std::string_view());  // repeated, zero length
  const Bytes expected = Concat({{0x40, 0x01, 0x00, 0x01},
                                 {0xb1, 'a'},
                                 {0x01, 'b'},
                                 {0xd2, 36, 0x04, 0x00},
                                 {0xd1, 185, 'x'},
                                 {0xe1, 0x05, 0xc1, 'y'},
                                 {0x00}});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(ToBytes(b.Finish()), expected);
  EXPECT_THAT(OptionsOf(MustParse(expected)),
              ElementsAre(Pair(11, "a"), Pair(11, "b"), Pair(60, std::string("\x04\x00", 2)),
                          Pair(258, "x"), Pair(2000, "y"), Pair(2000, "")));
}

TEST(OptionEncoding, SweepOfNumbersAndLengthsRoundTrips) {
  const uint16_t numbers[] = {0, 1, 12, 13, 14, 268, 269, 270, 524, 525, 1000, 65535};
  const size_t lengths[] = {0, 1, 12, 13, 14, 268, 269, 270, 1200};
  std::vector<uint8_t> buf(4096);
  for (uint16_t first : numbers) {
    for (uint16_t second : numbers) {
      if (second < first) continue;
      for (size_t length : lengths) {
        const std::string value(length, 'v');
        MessageBuilder b(buf);
        b.Header(Type::kNonConfirmable, code::kPost, 7)
            .Option(first, value)
            .Option(second, std::string_view())
            .Payload("p");
        ASSERT_TRUE(b.ok());
        MessageView m;
        ASSERT_EQ(MessageView::Parse(b.Finish(), &m), ParseError::kOk)
            << first << " " << second << " " << length;
        EXPECT_THAT(OptionsOf(m), ElementsAre(Pair(first, value), Pair(second, "")));
        EXPECT_EQ(ToString(m.payload()), "p");
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Malformed input (RFC 7252 §3, §4.1).

ParseError ParseOf(const Bytes& bytes) {
  MessageView m;
  return ParseBytes(bytes, &m);
}

TEST(ParseErrors, TruncatedHeader) {
  EXPECT_EQ(ParseOf({}), ParseError::kTruncatedHeader);
  EXPECT_EQ(ParseOf({0x40}), ParseError::kTruncatedHeader);
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00}), ParseError::kTruncatedHeader);
}

TEST(ParseErrors, VersionOtherThanOne) {
  EXPECT_EQ(ParseOf({0x00, 0x01, 0x00, 0x01}), ParseError::kBadVersion);
  EXPECT_EQ(ParseOf({0x80, 0x01, 0x00, 0x01}), ParseError::kBadVersion);
  EXPECT_EQ(ParseOf({0xc0, 0x01, 0x00, 0x01}), ParseError::kBadVersion);
  EXPECT_EQ(ParseOf({0xe0, 0x00, 0x00, 0x01}), ParseError::kBadVersion);
}

TEST(ParseErrors, TokenLengthNineToFifteen) {
  for (int tkl = 9; tkl <= 15; ++tkl) {
    Bytes bytes = Concat({{0x40 | tkl, 0x01, 0x00, 0x01}});
    bytes.resize(bytes.size() + tkl, 0xaa);
    EXPECT_EQ(ParseOf(bytes), ParseError::kBadTokenLength) << tkl;
  }
  Bytes eight = Concat({{0x48, 0x01, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}});
  EXPECT_THAT(MustParse(eight).token(), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
}

TEST(ParseErrors, TruncatedToken) {
  EXPECT_EQ(ParseOf({0x48, 0x01, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7}), ParseError::kTruncatedToken);
  EXPECT_EQ(ParseOf({0x41, 0x45, 0x00, 0x01}), ParseError::kTruncatedToken);
}

TEST(ParseErrors, OptionHeaderOrValueRunsPastTheEnd) {
  const Bytes cases[] = {
      {0x40, 0x01, 0x00, 0x01, 0xd0},             // delta 13 without its extension byte
      {0x40, 0x01, 0x00, 0x01, 0xe0, 0x00},       // delta 14 with one of two bytes
      {0x40, 0x01, 0x00, 0x01, 0x0d},             // length 13 without its extension byte
      {0x40, 0x01, 0x00, 0x01, 0xdd, 0x00},       // delta extension present, length's not
      {0x40, 0x01, 0x00, 0x01, 0x0e, 0x00},       // length 14 with one of two bytes
      {0x40, 0x01, 0x00, 0x01, 0xb3, 'a', 'b'},   // value one byte short
      {0x40, 0x01, 0x00, 0x01, 0x0d, 0x00, 'a'},  // 13-byte value, one present
      {0x40, 0x01, 0x00, 0x01, 0xb1, 'a', 0xb2},  // second option's value missing
      {0x40, 0x01, 0x00, 0x01, 0xb1, 0xff},       // 0xff as a value, not a marker: ok
  };
  for (size_t i = 0; i + 1 < std::size(cases); ++i)
    EXPECT_EQ(ParseOf(cases[i]), ParseError::kOptionPastEnd) << i;
  // A value may contain 0xff; only an option header byte of 0xff is the marker.
  const MessageView m = MustParse(cases[std::size(cases) - 1]);
  EXPECT_THAT(OptionsOf(m), ElementsAre(Pair(11, "\xff")));
  EXPECT_THAT(m.payload(), IsEmpty());
}

TEST(ParseErrors, ReservedNibbleFifteen) {
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00, 0x01, 0xf0}), ParseError::kReservedOptionNibble);
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00, 0x01, 0xf1, 'a'}), ParseError::kReservedOptionNibble);
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00, 0x01, 0x0f, 'a'}), ParseError::kReservedOptionNibble);
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00, 0x01, 0xbf, 'a'}), ParseError::kReservedOptionNibble);
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00, 0x01, 0xb1, 'a', 0x1f, 'b'}),
            ParseError::kReservedOptionNibble);
}

TEST(ParseErrors, OptionNumberAboveMax) {
  // 269 + 0xffff = 65804 in one delta.
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00, 0x01, 0xe0, 0xff, 0xff}), ParseError::kOptionNumberOverflow);
  // 65535 then a delta of 1.
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf2, 0x10}),
            ParseError::kOptionNumberOverflow);
  // 65535 itself is fine.
  const Bytes max = {0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf2};
  EXPECT_THAT(OptionsOf(MustParse(max)), ElementsAre(Pair(65535, "")));
}

TEST(ParseErrors, PayloadMarkerWithoutPayload) {
  EXPECT_EQ(ParseOf({0x40, 0x01, 0x00, 0x01, 0xff}), ParseError::kPayloadMarkerWithoutPayload);
  EXPECT_EQ(ParseOf({0x41, 0x45, 0x00, 0x01, 0x07, 0xc0, 0xff}),
            ParseError::kPayloadMarkerWithoutPayload);
  const Bytes payload_ff = {0x40, 0x45, 0x00, 0x01, 0xff, 0xff};
  const MessageView m = MustParse(payload_ff);
  EXPECT_THAT(m.payload(), ElementsAre(0xff));
}

TEST(ParseErrors, EmptyMessageWithTokenOptionsOrPayload) {
  EXPECT_EQ(ParseOf({0x41, 0x00, 0x00, 0x01, 0x11}), ParseError::kEmptyMessageNotEmpty);
  EXPECT_EQ(ParseOf({0x41, 0x00, 0x00, 0x01}), ParseError::kEmptyMessageNotEmpty);
  EXPECT_EQ(ParseOf({0x60, 0x00, 0x00, 0x01, 0xb1, 'a'}), ParseError::kEmptyMessageNotEmpty);
  EXPECT_EQ(ParseOf({0x70, 0x00, 0x00, 0x01, 0xff, 'x'}), ParseError::kEmptyMessageNotEmpty);
  EXPECT_EQ(ParseOf({0x40, 0x00, 0x00, 0x01, 0x00}), ParseError::kEmptyMessageNotEmpty);
}

TEST(ParseErrors, ValidEmptyMessages) {
  // CON ping (RFC 7252 §4.3), empty ACK and RST.
  for (int first : {0x40, 0x60, 0x70}) {
    const Bytes bytes = Concat({{first, 0x00, 0xbe, 0xef}});
    const MessageView m = MustParse(bytes);
    EXPECT_TRUE(m.IsEmpty());
    EXPECT_EQ(m.message_id(), 0xbeef);
    EXPECT_THAT(m.token(), IsEmpty());
    EXPECT_THAT(OptionsOf(m), IsEmpty());
    EXPECT_THAT(m.payload(), IsEmpty());
  }
}

TEST(ParseErrors, NamesAreDistinct) {
  std::vector<std::string_view> names;
  for (int e = 0; e <= static_cast<int>(ParseError::kEmptyMessageNotEmpty); ++e) {
    const std::string_view name = ParseErrorName(static_cast<ParseError>(e));
    EXPECT_FALSE(name.empty());
    EXPECT_THAT(names, ::testing::Not(::testing::Contains(name)));
    names.push_back(name);
  }
  EXPECT_EQ(ParseErrorName(ParseError::kOk), "ok");
}

// ---------------------------------------------------------------------------------------
// Accessors.

TEST(Accessors, HeaderTypesAndCodes) {
  for (int t = 0; t < 4; ++t) {
    const Bytes bytes = Concat({{0x40 | (t << 4), 0x01, 0x00, 0x00}});
    const MessageView m = MustParse(bytes);
    EXPECT_EQ(m.type(), static_cast<Type>(t));
  }
  const Bytes ipatch = {0x40, 0x07, 0, 0};
  const Bytes reserved = {0x40, 0x20, 0, 0};     // 1.00
  const Bytes unavailable = {0x60, 0xa3, 0, 0};  // 5.03
  EXPECT_TRUE(MustParse(ipatch).IsRequest());
  EXPECT_FALSE(MustParse(reserved).IsRequest());
  EXPECT_FALSE(MustParse(reserved).IsResponse());
  EXPECT_TRUE(MustParse(unavailable).IsResponse());
  EXPECT_EQ(CodeClass(code::kServiceUnavailable), 5);
  EXPECT_EQ(CodeDetail(code::kServiceUnavailable), 3);
}

TEST(Accessors, AsUint) {
  const uint8_t v4[] = {0x01, 0x02, 0x03, 0x04};
  const uint8_t v5[] = {0x01, 0x02, 0x03, 0x04, 0x05};
  const uint8_t leading_zero[] = {0x00, 0x00, 0x2a};
  EXPECT_EQ((OptionView{1, {}}).AsUint(), 0u);
  EXPECT_EQ((OptionView{1, std::span<const uint8_t>(v4, 1)}).AsUint(), 1u);
  EXPECT_EQ((OptionView{1, v4}).AsUint(), 0x01020304u);
  EXPECT_EQ((OptionView{1, leading_zero}).AsUint(), 42u);
  EXPECT_EQ((OptionView{1, v5}).AsUint(), UINT32_MAX);
}

TEST(Accessors, UintOptionUsesTheShortestForm) {
  const std::pair<uint32_t, Bytes> cases[] = {
      {0, {}},
      {1, {0x01}},
      {255, {0xff}},
      {256, {0x01, 0x00}},
      {65535, {0xff, 0xff}},
      {65536, {0x01, 0x00, 0x00}},
      {0xffffff, {0xff, 0xff, 0xff}},
      {0x1000000, {0x01, 0x00, 0x00, 0x00}},
      {UINT32_MAX, {0xff, 0xff, 0xff, 0xff}},
  };
  for (const auto& [value, encoded] : cases) {
    std::array<uint8_t, 16> buf;
    MessageBuilder b(buf);
    b.Header(Type::kConfirmable, code::kGet, 0).UintOption(option::kMaxAge, value);
    // Max-Age (14) takes delta nibble 13 with extension byte 1.
    Bytes expected = Concat({{0x40, 0x01, 0x00, 0x00}});
    expected.push_back(static_cast<uint8_t>(0xd0 | encoded.size()));
    expected.push_back(0x01);
    expected.insert(expected.end(), encoded.begin(), encoded.end());
    EXPECT_EQ(ToBytes(b.Finish()), expected) << value;
    EXPECT_EQ(MustParse(expected).FindUint(option::kMaxAge), value);
  }
}

TEST(Accessors, FindReturnsTheFirstOccurrence) {
  std::array<uint8_t, 64> buf;
  MessageBuilder b(buf);
  b.Header(Type::kConfirmable, code::kPost, 9)
      .UriPath("rd/abc")
      .UintOption(option::kContentFormat, content_format::kLinkFormat)
      .UriQuery("ep=a&lt=60");
  const MessageView m = MustParse(b.Finish());
  ASSERT_TRUE(m.Find(option::kUriPath).has_value());
  EXPECT_EQ(m.Find(option::kUriPath)->AsString(), "rd");
  EXPECT_EQ(m.Find(option::kUriQuery)->AsString(), "ep=a");
  EXPECT_FALSE(m.Find(option::kObserve).has_value());     // before the first option
  EXPECT_FALSE(m.Find(option::kMaxAge).has_value());      // between options
  EXPECT_FALSE(m.Find(option::kNoResponse).has_value());  // after the last
  EXPECT_EQ(m.content_format(), content_format::kLinkFormat);
  EXPECT_FALSE(m.accept().has_value());
  EXPECT_FALSE(m.observe().has_value());
  EXPECT_FALSE(m.block1().has_value());
  EXPECT_FALSE(m.block2().has_value());
}

TEST(Accessors, TypedOptions) {
  std::array<uint8_t, 64> buf;
  MessageBuilder b(buf);
  b.Header(Type::kNonConfirmable, code::kContent, 3)
      .UintOption(option::kObserve, 0x123456)
      .UintOption(option::kContentFormat, content_format::kSenmlCbor)
      .UintOption(option::kAccept, content_format::kLwm2mTlv)
      .Block(option::kBlock2, {.num = 5, .more = true, .szx = 2})
      .Block(option::kBlock1, {.num = 0x12345, .more = false, .szx = 6});
  const MessageView m = MustParse(b.Finish());
  EXPECT_EQ(m.observe(), 0x123456u);
  EXPECT_EQ(m.content_format(), content_format::kSenmlCbor);
  EXPECT_EQ(m.accept(), content_format::kLwm2mTlv);
  ASSERT_TRUE(m.block2().has_value());
  EXPECT_EQ(m.block2()->num, 5u);
  EXPECT_TRUE(m.block2()->more);
  EXPECT_EQ(m.block2()->szx, 2);
  ASSERT_TRUE(m.block1().has_value());
  EXPECT_EQ(m.block1()->num, 0x12345u);
  EXPECT_FALSE(m.block1()->more);
  EXPECT_EQ(m.block1()->szx, 6);
}

TEST(Accessors, OutOfRangeValuesAreLeftToTheCaller) {
  // Parse does not length-check known options; the typed accessors decline values
  // outside the option's range, and Find still shows them.
  const Bytes bytes = Concat({{0x40, 0x01, 0x00, 0x01},
                              {0x64, 1, 2, 3, 4},     // Observe, 4 bytes
                              {0x63, 0, 0, 40},       // Content-Format, 3 bytes
                              {0x53, 0, 0x2d, 0x16},  // Accept, 3 bytes
                              {0x64, 0, 0, 0, 0x16},  // Block2, 4 bytes
                              {0x41, 0x07}});         // Block1, SZX 7
  const MessageView m = MustParse(bytes);
  EXPECT_FALSE(m.observe().has_value());
  EXPECT_FALSE(m.content_format().has_value());
  EXPECT_FALSE(m.accept().has_value());
  EXPECT_FALSE(m.block2().has_value());
  EXPECT_FALSE(m.block1().has_value());
  EXPECT_EQ(m.FindUint(option::kObserve), 0x01020304u);
  EXPECT_EQ(m.FindUint(option::kContentFormat), 40u);
  EXPECT_EQ(m.Find(option::kBlock2)->value.size(), 4u);
}

TEST(Accessors, FirstUnknownCriticalOption) {
  auto first_unknown = [](std::initializer_list<uint16_t> numbers) {
    std::array<uint8_t, 64> buf;
    MessageBuilder b(buf);
    b.Header(Type::kConfirmable, code::kGet, 1);
    for (uint16_t n : numbers) b.Option(n, std::string_view());
    EXPECT_TRUE(b.ok());
    return MustParse(b.Finish()).FirstUnknownCriticalOption();
  };
  EXPECT_EQ(first_unknown({}), 0);
  EXPECT_EQ(first_unknown({option::kUriHost, option::kObserve, option::kUriPath, option::kAccept,
                           option::kBlock1, option::kProxyScheme}),
            0);
  // Unknown elective (even) options are ignored (RFC 7252 §5.4.1).
  EXPECT_EQ(first_unknown({2, 10, 2048, 65534}), 0);
  // An unknown critical one is reported, whatever surrounds it.
  EXPECT_EQ(first_unknown({2, option::kUriPath, 13, 19}), 13);
  EXPECT_EQ(first_unknown({option::kUriPath, 2049}), 2049);
  EXPECT_EQ(first_unknown({65535}), 65535);
}

TEST(Options, IsKnownCoversEveryDeclaredNumber) {
  for (uint16_t n :
       {option::kIfMatch,   option::kUriHost,       option::kETag,         option::kIfNoneMatch,
        option::kObserve,   option::kUriPort,       option::kLocationPath, option::kOscore,
        option::kUriPath,   option::kContentFormat, option::kMaxAge,       option::kUriQuery,
        option::kAccept,    option::kLocationQuery, option::kBlock2,       option::kBlock1,
        option::kSize2,     option::kProxyUri,      option::kProxyScheme,  option::kSize1,
        option::kNoResponse}) {
    EXPECT_TRUE(option::IsKnown(n)) << n;
  }
  for (uint16_t n : {0, 2, 10, 13, 16, 63, 64, 128, 257, 259, 2048, 65535})
    EXPECT_FALSE(option::IsKnown(n)) << n;
  EXPECT_TRUE(option::IsCritical(option::kUriPath));
  EXPECT_FALSE(option::IsCritical(option::kContentFormat));
}

TEST(ContentFormat, Names) {
  EXPECT_EQ(content_format::Name(content_format::kTextPlain), "text/plain;charset=utf-8");
  EXPECT_EQ(content_format::Name(content_format::kLinkFormat), "application/link-format");
  EXPECT_EQ(content_format::Name(content_format::kOctetStream), "application/octet-stream");
  EXPECT_EQ(content_format::Name(content_format::kCbor), "application/cbor");
  EXPECT_EQ(content_format::Name(content_format::kSenmlJson), "application/senml+json");
  EXPECT_EQ(content_format::Name(content_format::kSenmlCbor), "application/senml+cbor");
  EXPECT_EQ(content_format::Name(content_format::kLwm2mTlv), "application/vnd.oma.lwm2m+tlv");
  EXPECT_EQ(content_format::Name(content_format::kLwm2mJson), "application/vnd.oma.lwm2m+json");
  EXPECT_EQ(content_format::Name(41), "");
  EXPECT_EQ(content_format::Name(65535), "");
}

// ---------------------------------------------------------------------------------------
// Block options (RFC 7959 §2.2).

Bytes EncodeBlock(uint32_t num, bool more, uint8_t szx) {
  std::array<uint8_t, 3> out{};
  const size_t n = BlockOption{num, more, szx}.Encode(out);
  return Bytes(out.begin(), out.begin() + n);
}

TEST(Block, Rfc7959Examples) {
  // Figure 2, simple block-wise GET: 0/1/128, 1/0/128 (request), 1/1/128, 2/0/128.
  EXPECT_EQ(EncodeBlock(0, true, 3), Bytes({0x0b}));
  EXPECT_EQ(EncodeBlock(1, false, 3), Bytes({0x13}));
  EXPECT_EQ(EncodeBlock(1, true, 3), Bytes({0x1b}));
  EXPECT_EQ(EncodeBlock(2, false, 3), Bytes({0x23}));
  // Figure 3, early negotiation: the client asks 0/0/64.
  EXPECT_EQ(EncodeBlock(0, false, 2), Bytes({0x02}));
  // Figure 4, late negotiation: after 0/1/128 the client asks 2/0/64 (same offset 128).
  EXPECT_EQ(EncodeBlock(2, false, 2), Bytes({0x22}));
  EXPECT_EQ((BlockOption{2, false, 2}).offset(), (BlockOption{1, true, 3}).offset());
  // §2.2: the value 0 (num 0, more 0, SZX 0) is sent as a zero-length option.
  EXPECT_EQ(EncodeBlock(0, false, 0), Bytes());

  const std::optional<BlockOption> b = BlockOption::Decode(Bytes({0x1b}));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->num, 1u);
  EXPECT_TRUE(b->more);
  EXPECT_EQ(b->szx, 3);
  EXPECT_EQ(b->size(), 128u);
  EXPECT_EQ(b->offset(), 128u);

  const std::optional<BlockOption> zero = BlockOption::Decode({});
  ASSERT_TRUE(zero.has_value());
  EXPECT_EQ(zero->num, 0u);
  EXPECT_FALSE(zero->more);
  EXPECT_EQ(zero->szx, 0);
  EXPECT_EQ(zero->size(), 16u);
}

TEST(Block, WidthGrowsWithNum) {
  EXPECT_EQ(EncodeBlock(15, true, 6), Bytes({0xfe}));
  EXPECT_EQ(EncodeBlock(16, false, 6), Bytes({0x01, 0x06}));
  EXPECT_EQ(EncodeBlock(4095, true, 6), Bytes({0xff, 0xfe}));
  EXPECT_EQ(EncodeBlock(4096, false, 0), Bytes({0x01, 0x00, 0x00}));
  EXPECT_EQ(EncodeBlock(0xfffff, true, 6), Bytes({0xff, 0xff, 0xfe}));
}

TEST(Block, RoundTrips) {
  for (uint32_t num : {0u, 1u, 15u, 16u, 255u, 4095u, 4096u, 65535u, 0xfffffu}) {
    for (bool more : {false, true}) {
      for (uint8_t szx = 0; szx <= 6; ++szx) {
        const Bytes encoded = EncodeBlock(num, more, szx);
        const std::optional<BlockOption> d = BlockOption::Decode(encoded);
        ASSERT_TRUE(d.has_value());
        EXPECT_EQ(d->num, num);
        EXPECT_EQ(d->more, more);
        EXPECT_EQ(d->szx, szx);
        EXPECT_EQ(d->size(), 16u << szx);
        EXPECT_EQ(d->offset(), num * (16u << szx));
      }
    }
  }
}

TEST(Block, DecodeRejectsLongValuesAndSzxSeven) {
  EXPECT_FALSE(BlockOption::Decode(Bytes({0x00, 0x00, 0x00, 0x06})).has_value());
  EXPECT_FALSE(BlockOption::Decode(Bytes({0x07})).has_value());
  EXPECT_FALSE(BlockOption::Decode(Bytes({0x0f})).has_value());
  EXPECT_FALSE(BlockOption::Decode(Bytes({0x12, 0x34, 0x5f})).has_value());
}

TEST(Block, SzxForSize) {
  EXPECT_EQ(BlockOption::SzxForSize(16), 0);
  EXPECT_EQ(BlockOption::SzxForSize(31), 0);
  EXPECT_EQ(BlockOption::SzxForSize(32), 1);
  EXPECT_EQ(BlockOption::SzxForSize(64), 2);
  EXPECT_EQ(BlockOption::SzxForSize(100), 2);
  EXPECT_EQ(BlockOption::SzxForSize(512), 5);
  EXPECT_EQ(BlockOption::SzxForSize(1023), 5);
  EXPECT_EQ(BlockOption::SzxForSize(1024), 6);
  EXPECT_EQ(BlockOption::SzxForSize(1152), 6);
  EXPECT_EQ(BlockOption::SzxForSize(65536), 6);
  EXPECT_EQ(BlockOption::SzxForSize(UINT32_MAX), 6);
}

TEST(Block, BuilderRejectsUnencodableBlocks) {
  std::array<uint8_t, 32> buf;
  MessageBuilder too_big(buf);
  too_big.Header(Type::kConfirmable, code::kPut, 1)
      .Block(option::kBlock1, {.num = 1u << 20, .more = true, .szx = 6});
  EXPECT_FALSE(too_big.ok());
  MessageBuilder reserved(buf);
  reserved.Header(Type::kConfirmable, code::kPut, 1).Block(option::kBlock1, {0, false, 7});
  EXPECT_FALSE(reserved.ok());
}

// ---------------------------------------------------------------------------------------
// Builder.

TEST(Builder, RoundTripOfARegisterRequest) {
  const uint8_t token[] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04};
  const std::string_view links = "</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</3/0>,</5/0>,</3303/0>";
  std::array<uint8_t, 256> buf;
  MessageBuilder b(buf);
  b.Header(Type::kConfirmable, code::kPost, 0xfffe, token)
      .UriPath("/rd")
      .UintOption(option::kContentFormat, content_format::kLinkFormat)
      .UriQuery("ep=urn:imei:351234567890123&lt=86400&lwm2m=1.1&b=U")
      .Payload(links);
  ASSERT_TRUE(b.ok());
  const std::span<const uint8_t> wire = b.Finish();
  EXPECT_EQ(wire.size(), b.size());

  MessageView m;
  ASSERT_EQ(MessageView::Parse(wire, &m), ParseError::kOk);
  EXPECT_EQ(m.type(), Type::kConfirmable);
  EXPECT_EQ(m.code(), code::kPost);
  EXPECT_EQ(m.message_id(), 0xfffe);
  EXPECT_THAT(m.token(), ElementsAreArray(token));
  EXPECT_EQ(m.bytes().data(), wire.data());
  EXPECT_EQ(m.bytes().size(), wire.size());
  EXPECT_THAT(OptionsOf(m),
              ElementsAre(Pair(option::kUriPath, "rd"),
                          Pair(option::kContentFormat, std::string(1, '\x28')),
                          Pair(option::kUriQuery, "ep=urn:imei:351234567890123"),
                          Pair(option::kUriQuery, "lt=86400"), Pair(option::kUriQuery, "lwm2m=1.1"),
                          Pair(option::kUriQuery, "b=U")));
  EXPECT_EQ(ToString(m.payload()), links);
  EXPECT_EQ(m.content_format(), content_format::kLinkFormat);
}

TEST(Builder, UriPathAndQuerySkipEmptySegments) {
  std::array<uint8_t, 64> buf;
  MessageBuilder b(buf);
  b.Header(Type::kConfirmable, code::kGet, 1).UriPath("/3/0/").UriQuery("&a=1&&b&");
  const MessageView m = MustParse(b.Finish());
  EXPECT_THAT(OptionsOf(m),
              ElementsAre(Pair(option::kUriPath, "3"), Pair(option::kUriPath, "0"),
                          Pair(option::kUriQuery, "a=1"), Pair(option::kUriQuery, "b")));
  MessageBuilder doubled(buf);
  doubled.Header(Type::kConfirmable, code::kGet, 1).UriPath("3303//0///5700").UriPath("");
  EXPECT_THAT(OptionsOf(MustParse(doubled.Finish())),
              ElementsAre(Pair(11, "3303"), Pair(11, "0"), Pair(11, "5700")));
}

TEST(Builder, EmptyPayloadWritesNothing) {
  std::array<uint8_t, 8> buf;
  MessageBuilder b(buf);
  b.Header(Type::kAcknowledgement, code::kChanged, 5).Payload(std::string_view());
  EXPECT_EQ(ToBytes(b.Finish()), Bytes({0x60, 0x44, 0x00, 0x05}));
}

TEST(Builder, FailsOnOutOfOrderOptions) {
  std::array<uint8_t, 64> buf;
  MessageBuilder b(buf);
  b.Header(Type::kConfirmable, code::kGet, 1).UriPath("3/0").UintOption(option::kObserve, 0);
  EXPECT_FALSE(b.ok());
  EXPECT_THAT(b.Finish(), IsEmpty());
  // Once failed it stays failed.
  b.UintOption(option::kAccept, 0);
  EXPECT_FALSE(b.ok());
  EXPECT_THAT(b.Finish(), IsEmpty());
}

TEST(Builder, FailsOnMisuse) {
  std::array<uint8_t, 64> buf;
  const uint8_t long_token[9] = {};
  EXPECT_FALSE(MessageBuilder(buf).Header(Type::kConfirmable, code::kGet, 1, long_token).ok());
  EXPECT_FALSE(MessageBuilder(buf).UriPath("a").ok());  // option before header
  EXPECT_FALSE(MessageBuilder(buf).Payload("x").ok());  // payload before header
  EXPECT_FALSE(MessageBuilder(buf)
                   .Header(Type::kConfirmable, code::kGet, 1)
                   .Header(Type::kConfirmable, code::kGet, 2)
                   .ok());
  EXPECT_FALSE(MessageBuilder(buf)
                   .Header(Type::kConfirmable, code::kPost, 1)
                   .Payload("x")
                   .UriPath("a")
                   .ok());
  EXPECT_FALSE(MessageBuilder(buf)
                   .Header(Type::kConfirmable, code::kPost, 1)
                   .Payload("x")
                   .Payload("y")
                   .ok());
}

TEST(Builder, FailsOnBufferOverflow) {
  // Header and token.
  std::array<uint8_t, 3> tiny;
  EXPECT_FALSE(MessageBuilder(tiny).Header(Type::kConfirmable, code::kGet, 1).ok());
  std::array<uint8_t, 7> seven;
  const uint8_t token[4] = {1, 2, 3, 4};
  EXPECT_FALSE(MessageBuilder(seven).Header(Type::kConfirmable, code::kGet, 1, token).ok());

  // An option whose header, extension or value does not fit; an exact fit succeeds.
  const std::string value(20, 'x');  // 1 + 1 + 20 bytes after the 4-byte header
  for (size_t size = 4; size <= 26; ++size) {
    std::vector<uint8_t> buf(size);
    MessageBuilder b(buf);
    b.Header(Type::kConfirmable, code::kGet, 1).Option(option::kUriPath, value);
    EXPECT_EQ(b.ok(), size == 26) << size;
    EXPECT_EQ(b.Finish().size(), size == 26 ? 26u : 0u);
  }
  // The payload and its marker.
  for (size_t size = 4; size <= 8; ++size) {
    std::vector<uint8_t> buf(size);
    MessageBuilder b(buf);
    b.Header(Type::kAcknowledgement, code::kContent, 1).Payload("abc");
    EXPECT_EQ(b.ok(), size == 8) << size;
  }
}

TEST(Builder, BuildEmpty) {
  std::array<uint8_t, 8> buf;
  EXPECT_EQ(ToBytes(BuildEmpty(Type::kAcknowledgement, 0x1234, buf)),
            Bytes({0x60, 0x00, 0x12, 0x34}));
  EXPECT_EQ(ToBytes(BuildEmpty(Type::kReset, 0xabcd, buf)), Bytes({0x70, 0x00, 0xab, 0xcd}));
  const MessageView m = MustParse(BuildEmpty(Type::kConfirmable, 7, buf));
  EXPECT_TRUE(m.IsEmpty());
  EXPECT_EQ(m.type(), Type::kConfirmable);
}

TEST(Builder, IteratorOverADefaultViewIsEmpty) {
  const MessageView m;
  EXPECT_THAT(OptionsOf(m), IsEmpty());
  EXPECT_FALSE(m.Find(option::kUriPath).has_value());
  EXPECT_EQ(m.FirstUnknownCriticalOption(), 0);
}

}  // namespace
}  // namespace lwm2md::coap
