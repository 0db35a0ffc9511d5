#include "lwm2m/tlv.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lwm2md::lwm2m::tlv {
namespace {

using Bytes = std::vector<uint8_t>;

std::span<const uint8_t> Span(const Bytes& b) { return std::span<const uint8_t>(b); }

std::string AsString(std::span<const uint8_t> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

// TS §7.4.3.2, Read on Device Object Instance /3/0 (121 bytes).
const Bytes kDeviceInstance = {
    0xc8, 0x00, 0x14, 0x4f, 0x70, 0x65, 0x6e, 0x20, 0x4d, 0x6f, 0x62, 0x69, 0x6c, 0x65, 0x20, 0x41,
    0x6c, 0x6c, 0x69, 0x61, 0x6e, 0x63, 0x65, 0xc8, 0x01, 0x16, 0x4c, 0x69, 0x67, 0x68, 0x74, 0x77,
    0x65, 0x69, 0x67, 0x68, 0x74, 0x20, 0x4d, 0x32, 0x4d, 0x20, 0x43, 0x6c, 0x69, 0x65, 0x6e, 0x74,
    0xc8, 0x02, 0x09, 0x33, 0x34, 0x35, 0x30, 0x30, 0x30, 0x31, 0x32, 0x33, 0xc3, 0x03, 0x31, 0x2e,
    0x30, 0x86, 0x06, 0x41, 0x00, 0x01, 0x41, 0x01, 0x05, 0x88, 0x07, 0x08, 0x42, 0x00, 0x0e, 0xd8,
    0x42, 0x01, 0x13, 0x88, 0x87, 0x08, 0x41, 0x00, 0x7d, 0x42, 0x01, 0x03, 0x84, 0xc1, 0x09, 0x64,
    0xc1, 0x0a, 0x0f, 0x83, 0x0b, 0x41, 0x00, 0x00, 0xc4, 0x0d, 0x51, 0x82, 0x42, 0x8f, 0xc6, 0x0e,
    0x2b, 0x30, 0x32, 0x3a, 0x30, 0x30, 0xc1, 0x10, 0x55};

// TS §7.4.3.2, Read on a multiple resource /3/0/7 (Power Source Voltage).
const Bytes kMultipleResource = {0x88, 0x07, 0x08, 0x42, 0x00, 0x0e, 0xd8, 0x42, 0x01, 0x13, 0x88};

// TS §7.4.3.2, Read on the Access Control Object /2: two object instances, the second with a
// resource instance whose identifier needs 16 bits (310). The TS prints the ACL header of the
// second instance as 0x86 (length 6), but its instances take 7 bytes and the enclosing length
// 0x12 counts 7, so the consistent byte is 0x87.
const Bytes kAccessControl = {0x08, 0x00, 0x0e, 0xc1, 0x00, 0x01, 0xc1, 0x01, 0x00, 0x83,
                              0x02, 0x41, 0x7f, 0x07, 0xc1, 0x03, 0x7f, 0x08, 0x02, 0x12,
                              0xc1, 0x00, 0x03, 0xc1, 0x01, 0x00, 0x87, 0x02, 0x41, 0x7f,
                              0x07, 0x61, 0x01, 0x36, 0x01, 0xc1, 0x03, 0x7f};

// TS §7.4.3.2, Read on the Server Object /1 with one instance. The TS prints the instance
// length as 0x0D; its four resources take 15 bytes (0x0F).
const Bytes kServer = {0x08, 0x00, 0x0f, 0xc1, 0x00, 0x01, 0xc4, 0x01, 0x00,
                       0x01, 0x51, 0x80, 0xc1, 0x06, 0x01, 0xc1, 0x07, 0x55};

// TS §7.4.3.2, object instances holding Objlnk resources (object 66), the second a null link.
// The TS prints each instance length as 0x23; the resources inside take 38 bytes (0x26).
const Bytes kObjectLinks = {0x08, 0x00, 0x26, 0xc8, 0x00, 0x0b, 0x6d, 0x79, 0x53, 0x65, 0x72, 0x76,
                            0x69, 0x63, 0x65, 0x20, 0x31, 0xc8, 0x01, 0x0f, 0x49, 0x6e, 0x74, 0x65,
                            0x72, 0x6e, 0x65, 0x74, 0x2e, 0x31, 0x35, 0x2e, 0x32, 0x33, 0x34, 0xc4,
                            0x02, 0x00, 0x43, 0x00, 0x00, 0x08, 0x01, 0x26, 0xc8, 0x00, 0x0b, 0x6d,
                            0x79, 0x53, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x20, 0x32, 0xc8, 0x01,
                            0x0f, 0x49, 0x6e, 0x74, 0x65, 0x72, 0x6e, 0x65, 0x74, 0x2e, 0x31, 0x35,
                            0x2e, 0x32, 0x33, 0x35, 0xc4, 0x02, 0xff, 0xff, 0xff, 0xff};

// TS §7.4.3.2, Read on /65/0: a multiple Objlnk resource, a string and an integer.
const Bytes kObjectLinkResource = {0x88, 0x00, 0x0c, 0x44, 0x00, 0x00, 0x42, 0x00, 0x00, 0x44,
                                   0x01, 0x00, 0x42, 0x00, 0x01, 0xc8, 0x01, 0x0d, 0x38, 0x36,
                                   0x31, 0x33, 0x38, 0x30, 0x30, 0x37, 0x35, 0x35, 0x35, 0x30,
                                   0x30, 0xc4, 0x02, 0x12, 0x34, 0x56, 0x78};

Payload MustParse(const Bytes& bytes) {
  Payload payload;
  ParseFailure failure = Payload::Parse(Span(bytes), &payload);
  EXPECT_TRUE(failure.ok()) << failure.Message();
  return payload;
}

int64_t Int(std::span<const uint8_t> v) {
  int64_t out = 0;
  EXPECT_EQ(DecodeInteger(v, &out), ValueError::kOk);
  return out;
}

TEST(TlvTest, DecodesDeviceInstanceExample) {
  Payload payload = MustParse(kDeviceInstance);
  std::vector<uint16_t> ids;
  for (const Entry& e : payload.entries()) ids.push_back(e.id);
  EXPECT_THAT(ids, testing::ElementsAre(0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 13, 14, 16));

  auto it = payload.entries().begin();
  EXPECT_EQ(it->type, Type::kResource);
  std::string_view s;
  ASSERT_EQ(DecodeString(it->value, &s), ValueError::kOk);
  EXPECT_EQ(s, "Open Mobile Alliance");
  ++it;
  EXPECT_EQ(AsString(it->value), "Lightweight M2M Client");
  ++it;
  EXPECT_EQ(AsString(it->value), "345000123");
  ++it;
  EXPECT_EQ(AsString(it->value), "1.0");
  ++it;
  EXPECT_EQ(it->type, Type::kMultipleResource);
  std::vector<std::pair<uint16_t, int64_t>> sources;
  for (const Entry& c : it->children()) {
    EXPECT_EQ(c.type, Type::kResourceInstance);
    sources.emplace_back(c.id, Int(c.value));
  }
  EXPECT_THAT(sources, testing::ElementsAre(testing::Pair(0, 1), testing::Pair(1, 5)));
  ++it;
  std::vector<int64_t> volts;
  for (const Entry& c : it->children()) volts.push_back(Int(c.value));
  EXPECT_THAT(volts, testing::ElementsAre(3800, 5000));
  ++it;
  std::vector<int64_t> amps;
  for (const Entry& c : it->children()) amps.push_back(Int(c.value));
  EXPECT_THAT(amps, testing::ElementsAre(125, 900));
  ++it;
  EXPECT_EQ(Int(it->value), 100);
  ++it;
  EXPECT_EQ(Int(it->value), 15);
  ++it;
  std::vector<int64_t> errors;
  for (const Entry& c : it->children()) errors.push_back(Int(c.value));
  EXPECT_THAT(errors, testing::ElementsAre(0));
  ++it;
  int64_t time = 0;
  ASSERT_EQ(DecodeTime(it->value, &time), ValueError::kOk);
  EXPECT_EQ(time, 1367491215);
  ++it;
  EXPECT_EQ(AsString(it->value), "+02:00");
  ++it;
  EXPECT_EQ(AsString(it->value), "U");
  ++it;
  EXPECT_TRUE(it == payload.entries().end());
}

Bytes WriteDeviceInstance() {
  Bytes out;
  Writer w(&out);
  w.String(0, "Open Mobile Alliance")
      .String(1, "Lightweight M2M Client")
      .String(2, "345000123")
      .String(3, "1.0");
  w.BeginMultipleResource(6).Integer(0, 1).Integer(1, 5).End();
  w.BeginMultipleResource(7).Integer(0, 3800).Integer(1, 5000).End();
  w.BeginMultipleResource(8).Integer(0, 125).Integer(1, 900).End();
  w.Integer(9, 100).Integer(10, 15);
  w.BeginMultipleResource(11).Integer(0, 0).End();
  w.Time(13, 1367491215).String(14, "+02:00").String(16, "U");
  EXPECT_TRUE(w.ok());
  EXPECT_EQ(w.Finish().size(), out.size());
  return out;
}

TEST(TlvTest, EncodesDeviceInstanceExample) { EXPECT_EQ(WriteDeviceInstance(), kDeviceInstance); }

TEST(TlvTest, MultipleResourceExample) {
  Payload payload = MustParse(kMultipleResource);
  auto it = payload.entries().begin();
  EXPECT_EQ(it->type, Type::kMultipleResource);
  EXPECT_EQ(it->id, 7);
  Bytes out;
  Writer w(&out);
  w.BeginMultipleResource(7).Integer(0, 3800).Integer(1, 5000).End();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(out, kMultipleResource);
}

TEST(TlvTest, AccessControlExample) {
  Payload payload = MustParse(kAccessControl);
  std::vector<uint16_t> instances;
  std::vector<uint16_t> acl_ids;
  for (const Entry& inst : payload.entries()) {
    EXPECT_EQ(inst.type, Type::kObjectInstance);
    instances.push_back(inst.id);
    for (const Entry& r : inst.children())
      if (r.id == 2)
        for (const Entry& ri : r.children()) acl_ids.push_back(ri.id);
  }
  EXPECT_THAT(instances, testing::ElementsAre(0, 2));
  EXPECT_THAT(acl_ids, testing::ElementsAre(127, 127, 310));

  Bytes out;
  Writer w(&out);
  w.BeginObjectInstance(0).Integer(0, 1).Integer(1, 0);
  w.BeginMultipleResource(2).Integer(127, 7).End();
  w.Integer(3, 127).End();
  w.BeginObjectInstance(2).Integer(0, 3).Integer(1, 0);
  w.BeginMultipleResource(2).Integer(127, 7).Integer(310, 1).End();
  w.Integer(3, 127).End();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(out, kAccessControl);
}

TEST(TlvTest, ServerExample) {
  Payload payload = MustParse(kServer);
  const Entry inst = *payload.entries().begin();
  std::vector<int64_t> values;
  for (const Entry& r : inst.children())
    if (r.id != 7) values.push_back(Int(r.value));
  EXPECT_THAT(values, testing::ElementsAre(1, 86400, 1));

  Bytes out;
  Writer w(&out);
  w.BeginObjectInstance(0).Integer(0, 1).Integer(1, 86400).Boolean(6, true).String(7, "U").End();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(out, kServer);
}

TEST(TlvTest, ObjectLinkExample) {
  Payload payload = MustParse(kObjectLinks);
  std::vector<ObjectLink> links;
  for (const Entry& inst : payload.entries())
    for (const Entry& r : inst.children())
      if (r.id == 2) {
        ObjectLink link;
        ASSERT_EQ(DecodeObjectLink(r.value, &link), ValueError::kOk);
        links.push_back(link);
      }
  EXPECT_THAT(links, testing::ElementsAre(ObjectLink{0x43, 0}, ObjectLink{0xffff, 0xffff}));

  Bytes out;
  Writer w(&out);
  w.BeginObjectInstance(0).String(0, "myService 1").String(1, "Internet.15.234");
  w.ObjectLinkValue(2, {0x43, 0}).End();
  w.BeginObjectInstance(1).String(0, "myService 2").String(1, "Internet.15.235");
  w.ObjectLinkValue(2, {0xffff, 0xffff}).End();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(out, kObjectLinks);
}

TEST(TlvTest, ObjectLinkResourceExample) {
  Payload payload = MustParse(kObjectLinkResource);
  auto it = payload.entries().begin();
  std::vector<ObjectLink> links;
  for (const Entry& ri : it->children()) {
    ObjectLink link;
    ASSERT_EQ(DecodeObjectLink(ri.value, &link), ValueError::kOk);
    links.push_back(link);
  }
  EXPECT_THAT(links, testing::ElementsAre(ObjectLink{0x42, 0}, ObjectLink{0x42, 1}));
  ++it;
  EXPECT_EQ(AsString(it->value), "8613800755500");
  ++it;
  EXPECT_EQ(Int(it->value), 0x12345678);

  Bytes out;
  Writer w(&out);
  w.BeginMultipleResource(0).ObjectLinkValue(0, {0x42, 0}).ObjectLinkValue(1, {0x42, 1}).End();
  w.String(1, "8613800755500").Integer(2, 0x12345678);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(out, kObjectLinkResource);
}

TEST(TlvTest, RefusesTheLengthsAsPrintedInTheTs) {
  Payload payload;
  Bytes acl = kAccessControl;
  acl[26] = 0x86;
  EXPECT_FALSE(Payload::Parse(Span(acl), &payload).ok());
  Bytes server = kServer;
  server[2] = 0x0d;
  EXPECT_FALSE(Payload::Parse(Span(server), &payload).ok());
  Bytes links = kObjectLinks;
  links[2] = 0x23;
  EXPECT_FALSE(Payload::Parse(Span(links), &payload).ok());
}

// The two Access Control instances of kAccessControl.
void WriteAccessControl(Writer& w) {
  w.BeginObjectInstance(0).Integer(0, 1).Integer(1, 0);
  w.BeginMultipleResource(2).Integer(127, 7).End();
  w.Integer(3, 127).End();
  w.BeginObjectInstance(2).Integer(0, 3).Integer(1, 0);
  w.BeginMultipleResource(2).Integer(127, 7).Integer(310, 1).End();
  w.Integer(3, 127).End();
}

TEST(TlvTest, FixedBufferWriterMatchesAndFailsWhenShort) {
  // A fixed buffer needs the slack an open container reserves for its header.
  std::vector<uint8_t> buf(kAccessControl.size() + Writer::kOpenContainerSlack);
  Writer w{std::span<uint8_t>(buf)};
  WriteAccessControl(w);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(Bytes(w.Finish().begin(), w.Finish().end()), kAccessControl);

  std::vector<uint8_t> small(kAccessControl.size() - 1);
  Writer s{std::span<uint8_t>(small)};
  WriteAccessControl(s);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.Finish().empty());
}

template <typename T, typename Decode>
T RoundTrip(Writer& (Writer::*write)(uint16_t, T), T value, Decode decode, size_t* width) {
  Bytes out;
  Writer w(&out);
  (w.*write)(1, value);
  EXPECT_TRUE(w.ok());
  Payload payload = MustParse(out);
  const Entry e = *payload.entries().begin();
  *width = e.value.size();
  T back{};
  EXPECT_EQ(decode(e.value, &back), ValueError::kOk);
  return back;
}

TEST(TlvTest, IntegerRoundTripsInSmallestWidth) {
  struct Case {
    int64_t value;
    size_t width;
  };
  const Case cases[] = {
      {0, 1},
      {-1, 1},
      {127, 1},
      {-128, 1},
      {128, 2},
      {-129, 2},
      {0x80, 2},
      {INT16_MAX, 2},
      {INT16_MIN, 2},
      {INT16_MAX + 1, 4},
      {INT16_MIN - 1, 4},
      {INT32_MAX, 4},
      {INT32_MIN, 4},
      {int64_t{INT32_MAX} + 1, 8},
      {int64_t{INT32_MIN} - 1, 8},
      {INT64_MAX, 8},
      {INT64_MIN, 8},
  };
  for (const Case& c : cases) {
    size_t width = 0;
    EXPECT_EQ(RoundTrip<int64_t>(&Writer::Integer, c.value, DecodeInteger, &width), c.value);
    EXPECT_EQ(width, c.width) << c.value;
  }
}

TEST(TlvTest, UnsignedRoundTripsInSmallestWidth) {
  const std::pair<uint64_t, size_t> cases[] = {
      {0, 1},       {0xff, 1},       {0x100, 2},       {0xffff, 2},
      {0x10000, 4}, {0xffffffff, 4}, {0x100000000, 8}, {UINT64_MAX, 8},
  };
  for (const auto& [value, expected_width] : cases) {
    size_t width = 0;
    EXPECT_EQ(RoundTrip<uint64_t>(&Writer::Unsigned, value, DecodeUnsigned, &width), value);
    EXPECT_EQ(width, expected_width) << value;
  }
}

TEST(TlvTest, FloatRoundTrips) {
  size_t width = 0;
  EXPECT_EQ(RoundTrip<double>(&Writer::Float, 1.5, DecodeFloat, &width), 1.5);
  EXPECT_EQ(width, 4u);
  EXPECT_EQ(RoundTrip<double>(&Writer::Float, 0.1, DecodeFloat, &width), 0.1);
  EXPECT_EQ(width, 8u);
  EXPECT_TRUE(std::isnan(RoundTrip<double>(&Writer::Float, std::nan(""), DecodeFloat, &width)));
  EXPECT_EQ(width, 4u);
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(RoundTrip<double>(&Writer::Float, inf, DecodeFloat, &width), inf);
  EXPECT_EQ(RoundTrip<double>(&Writer::Float, -inf, DecodeFloat, &width), -inf);
  EXPECT_EQ(width, 4u);
  const double neg_zero = RoundTrip<double>(&Writer::Float, -0.0, DecodeFloat, &width);
  EXPECT_EQ(neg_zero, 0.0);
  EXPECT_TRUE(std::signbit(neg_zero));
  EXPECT_EQ(width, 4u);
  const double float_denormal = std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(RoundTrip<double>(&Writer::Float, float_denormal, DecodeFloat, &width), float_denormal);
  EXPECT_EQ(width, 4u);
  const double double_denormal = std::numeric_limits<double>::denorm_min();
  EXPECT_EQ(RoundTrip<double>(&Writer::Float, double_denormal, DecodeFloat, &width),
            double_denormal);
  EXPECT_EQ(width, 8u);
  const double big = std::numeric_limits<double>::max();
  EXPECT_EQ(RoundTrip<double>(&Writer::Float, big, DecodeFloat, &width), big);
  EXPECT_EQ(width, 8u);
}

TEST(TlvTest, BooleanStringOpaqueObjlnkRoundTrip) {
  size_t width = 0;
  EXPECT_TRUE(RoundTrip<bool>(&Writer::Boolean, true, DecodeBoolean, &width));
  EXPECT_FALSE(RoundTrip<bool>(&Writer::Boolean, false, DecodeBoolean, &width));
  for (std::string_view text : {std::string_view(""), std::string_view("h\xc3\xa9llo")}) {
    Bytes out;
    Writer w(&out);
    w.String(1, text);
    Payload payload = MustParse(out);
    std::string_view back;
    ASSERT_EQ(DecodeString(payload.entries().begin()->value, &back), ValueError::kOk);
    EXPECT_EQ(back, text);
    EXPECT_EQ(out.size(), 2 + text.size());
  }
  EXPECT_EQ(RoundTrip<ObjectLink>(&Writer::ObjectLinkValue, ObjectLink{3, 65535}, DecodeObjectLink,
                                  &width),
            (ObjectLink{3, 65535}));
}

TEST(TlvTest, LengthFieldWidths) {
  for (const auto& [length, header] : std::vector<std::pair<size_t, size_t>>{
           {7, 2}, {8, 3}, {255, 3}, {256, 4}, {65535, 4}, {65536, 5}, {100000, 5}}) {
    const Bytes value(length, 0xab);
    Bytes out;
    Writer w(&out);
    w.Opaque(5, value);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(out.size(), header + length) << length;
    Payload payload = MustParse(out);
    const Entry e = *payload.entries().begin();
    EXPECT_EQ(e.id, 5);
    EXPECT_TRUE(std::equal(e.value.begin(), e.value.end(), value.begin(), value.end()));
  }
  // A container whose children need a 24-bit length.
  Bytes out;
  Writer w(&out);
  w.BeginObjectInstance(1).Opaque(0, Bytes(70000, 1)).End();
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(out[0], 0x18);  // object instance, 8-bit id, 24-bit length
  Payload payload = MustParse(out);
  EXPECT_EQ(payload.entries().begin()->value.size(), 70000u + 5);

  Bytes too_long;
  Writer t(&too_long);
  t.Opaque(0, Bytes(kMaxValueLength + 1, 0));
  EXPECT_FALSE(t.ok());
}

TEST(TlvTest, IdentifierWidths) {
  for (const auto& [id, leaf] :
       std::vector<std::pair<uint16_t, Bytes>>{{255, {0xc1, 0xff, 0x07}},
                                               {256, {0xe1, 0x01, 0x00, 0x07}},
                                               {65535, {0xe1, 0xff, 0xff, 0x07}}}) {
    Bytes out;
    Writer w(&out);
    w.BeginMultipleResource(id).Integer(id, 7).End();
    ASSERT_TRUE(w.ok());
    Payload payload = MustParse(out);
    const Entry outer = *payload.entries().begin();
    EXPECT_EQ(outer.id, id);
    const Entry inner = *outer.children().begin();
    EXPECT_EQ(inner.type, Type::kResourceInstance);
    EXPECT_EQ(inner.id, id);
    EXPECT_EQ(Int(inner.value), 7);
    Bytes single;
    Writer l(&single);
    l.Integer(id, 7);
    EXPECT_EQ(single, leaf);
  }
}

TEST(TlvTest, TopLevelResourceInstance) {
  Bytes out;
  Writer w(&out);
  w.Leaf(Type::kResourceInstance, 1, Bytes{0x05});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(out, (Bytes{0x41, 0x01, 0x05}));
  Payload payload = MustParse(out);
  EXPECT_EQ(payload.entries().begin()->type, Type::kResourceInstance);
}

ParseFailure Fail(const Bytes& bytes) {
  Payload payload;
  return Payload::Parse(Span(bytes), &payload);
}

TEST(TlvTest, RefusesMalformed) {
  EXPECT_EQ(Fail({0xc1}).error, ParseError::kTruncatedHeader);
  EXPECT_EQ(Fail({0xe1, 0x00}).error, ParseError::kTruncatedHeader);
  EXPECT_EQ(Fail({0xd0, 0x00, 0x01}).error, ParseError::kTruncatedHeader);

  const ParseFailure past = Fail({0xc1, 0x00, 0x01, 0xc8, 0x01, 0x0c, 1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(past.error, ParseError::kValuePastEnd);
  EXPECT_EQ(past.offset, 3u);
  EXPECT_EQ(past.Message(),
            "tlv: length of the resource at offset 3 runs past the end (needs 12 bytes, 7 left)");

  // The multiple resource claims 5 bytes; its instance claims 4 of the 3 after its header.
  const ParseFailure parent = Fail({0x85, 0x06, 0x44, 0x00, 1, 2, 3});
  EXPECT_EQ(parent.error, ParseError::kValuePastParent);
  EXPECT_EQ(parent.offset, 2u);
  EXPECT_THAT(parent.Message(), testing::HasSubstr("past the end of its parent multiple resource"));

  const ParseFailure header_in_parent = Fail({0x81, 0x06, 0x61, 0xc1, 0x00, 0x01});
  EXPECT_EQ(header_in_parent.error, ParseError::kTruncatedHeader);
  EXPECT_THAT(header_in_parent.Message(), testing::HasSubstr("its parent"));

  // Resource instance directly in an object instance.
  const ParseFailure ri = Fail({0x03, 0x00, 0x41, 0x00, 0x01});
  EXPECT_EQ(ri.error, ParseError::kMisplacedEntry);
  EXPECT_EQ(ri.Message(),
            "tlv: a resource instance at offset 2 cannot appear inside an object instance");
  // Too deep: object instance in object instance, multiple resource in multiple resource.
  EXPECT_EQ(Fail({0x02, 0x00, 0x00, 0x00}).error, ParseError::kMisplacedEntry);
  EXPECT_EQ(Fail({0x82, 0x00, 0x80, 0x00}).error, ParseError::kMisplacedEntry);
  EXPECT_EQ(Fail({0x05, 0x00, 0x83, 0x00, 0x41, 0x00, 0x00}).error, ParseError::kOk);
  EXPECT_EQ(Fail({0x04, 0x00, 0x82, 0x00, 0x00, 0x00}).error, ParseError::kMisplacedEntry);
  // Object instance next to a resource at the top level.
  const ParseFailure mixed = Fail({0x00, 0x00, 0xc1, 0x01, 0x01});
  EXPECT_EQ(mixed.error, ParseError::kMixedTopLevel);
  EXPECT_EQ(mixed.offset, 2u);
  const ParseFailure mixed_ri = Fail({0x41, 0x00, 0x01, 0x00, 0x00});
  EXPECT_EQ(mixed_ri.error, ParseError::kMixedTopLevel);

  EXPECT_FALSE(Payload::ParseOrStatus(Span(Bytes{0xc1})).ok());
  EXPECT_TRUE(Payload::ParseOrStatus(Span(kDeviceInstance)).ok());
  EXPECT_TRUE(Fail({}).ok());
}

TEST(TlvTest, RefusesBadValues) {
  int64_t i;
  uint64_t u;
  double d;
  bool b;
  std::string_view s;
  ObjectLink l;
  EXPECT_EQ(DecodeInteger(Span(Bytes{1, 2, 3}), &i), ValueError::kBadLength);
  EXPECT_EQ(DecodeInteger(Span(Bytes{}), &i), ValueError::kBadLength);
  EXPECT_EQ(DecodeUnsigned(Span(Bytes(5, 0)), &u), ValueError::kBadLength);
  EXPECT_EQ(DecodeTime(Span(Bytes(3, 0)), &i), ValueError::kBadLength);
  EXPECT_EQ(DecodeFloat(Span(Bytes(2, 0)), &d), ValueError::kBadLength);
  EXPECT_EQ(DecodeBoolean(Span(Bytes{2}), &b), ValueError::kBadBoolean);
  EXPECT_EQ(DecodeBoolean(Span(Bytes{0, 1}), &b), ValueError::kBadLength);
  EXPECT_EQ(DecodeObjectLink(Span(Bytes(3, 0)), &l), ValueError::kBadLength);
  EXPECT_EQ(DecodeString(Span(Bytes{0xc0, 0x80}), &s), ValueError::kBadUtf8);        // overlong
  EXPECT_EQ(DecodeString(Span(Bytes{0xed, 0xa0, 0x80}), &s), ValueError::kBadUtf8);  // surrogate
  EXPECT_EQ(DecodeString(Span(Bytes{0xe2, 0x82}), &s), ValueError::kBadUtf8);        // truncated
  EXPECT_EQ(DecodeString(Span(Bytes{0xf4, 0x90, 0x80, 0x80}), &s), ValueError::kBadUtf8);
  EXPECT_EQ(DecodeString(Span(Bytes{0xf0, 0x9f, 0x98, 0x80}), &s), ValueError::kOk);
  EXPECT_EQ(DecodeInteger(Span(Bytes{0x80}), &i), ValueError::kOk);
  EXPECT_EQ(i, -128);
  EXPECT_EQ(DecodeUnsigned(Span(Bytes{0x80}), &u), ValueError::kOk);
  EXPECT_EQ(u, 128u);
}

TEST(TlvTest, WriterRefusesWhatParseRefuses) {
  Bytes out;
  EXPECT_FALSE(Writer(&out).BeginObjectInstance(0).BeginObjectInstance(1).ok());
  EXPECT_FALSE(Writer(&out).BeginMultipleResource(0).BeginMultipleResource(1).ok());
  EXPECT_FALSE(Writer(&out).BeginObjectInstance(0).Leaf(Type::kResourceInstance, 1, {}).ok());
  EXPECT_FALSE(Writer(&out).BeginMultipleResource(0).Leaf(Type::kResource, 1, {}).ok());
  EXPECT_FALSE(Writer(&out).BeginObjectInstance(0).End().Integer(1, 1).ok());
  EXPECT_FALSE(Writer(&out).End().ok());
  Writer open(&out);
  open.BeginObjectInstance(0);
  EXPECT_TRUE(open.ok());
  EXPECT_TRUE(open.Finish().empty());
}

}  // namespace
}  // namespace lwm2md::lwm2m::tlv
