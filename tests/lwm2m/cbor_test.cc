#include "lwm2m/cbor.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace lwm2md::lwm2m::cbor {
namespace {

std::vector<uint8_t> FromHex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
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

Item ReadOne(const std::vector<uint8_t>& bytes) {
  Reader reader(bytes);
  Item item;
  EXPECT_TRUE(reader.Read(&item)) << reader.ErrorMessage();
  return item;
}

// RFC 8949 Appendix A, Table 6: integers.
TEST(CborTest, AppendixAIntegers) {
  struct Case {
    const char* hex;
    bool negative;
    uint64_t argument;
  };
  const Case cases[] = {
      {"00", false, 0},
      {"01", false, 1},
      {"0a", false, 10},
      {"17", false, 23},
      {"1818", false, 24},
      {"1819", false, 25},
      {"1864", false, 100},
      {"1903e8", false, 1000},
      {"1a000f4240", false, 1000000},
      {"1b000000e8d4a51000", false, 1000000000000},
      {"1bffffffffffffffff", false, 18446744073709551615u},
      {"3bffffffffffffffff", true, 18446744073709551615u},  // -18446744073709551616
      {"20", true, 0},                                      // -1
      {"29", true, 9},                                      // -10
      {"3863", true, 99},                                   // -100
      {"3903e7", true, 999},                                // -1000
  };
  for (const Case& c : cases) {
    const auto bytes = FromHex(c.hex);
    Reader reader(bytes);
    Item item;
    ASSERT_TRUE(reader.Read(&item)) << c.hex;
    EXPECT_EQ(item.kind, c.negative ? Kind::kNegative : Kind::kUnsigned) << c.hex;
    EXPECT_EQ(item.argument, c.argument) << c.hex;
    EXPECT_TRUE(reader.at_end());

    std::string encoded;
    Writer writer(&encoded);
    if (c.negative) {
      writer.NegativeArgument(c.argument);
    } else {
      writer.Unsigned(c.argument);
    }
    EXPECT_EQ(ToHex(encoded), c.hex);
  }
  std::string encoded;
  Writer(&encoded).Int(-1000).Int(std::numeric_limits<int64_t>::min()).Int(23);
  EXPECT_EQ(ToHex(encoded), "3903e73b7fffffffffffffff17");
}

// RFC 8949 Appendix A: floats. Decoding accepts every width; encoding picks the shortest exact
// one (preferred serialisation), which is what the "preferred" column holds.
TEST(CborTest, AppendixAFloats) {
  struct Case {
    const char* hex;
    double value;
  };
  const double inf = std::numeric_limits<double>::infinity();
  const Case cases[] = {
      {"f90000", 0.0},
      {"f98000", -0.0},
      {"f93c00", 1.0},
      {"fb3ff199999999999a", 1.1},
      {"f93e00", 1.5},
      {"f97bff", 65504.0},
      {"fa47c35000", 100000.0},
      {"fa7f7fffff", 3.4028234663852886e+38},
      {"fb7e37e43c8800759c", 1.0e+300},
      {"f90001", 5.960464477539063e-8},
      {"f90400", 0.00006103515625},
      {"f9c400", -4.0},
      {"fbc010666666666666", -4.1},
      {"f97c00", inf},
      {"f9fc00", -inf},
  };
  for (const Case& c : cases) {
    const Item item = ReadOne(FromHex(c.hex));
    ASSERT_EQ(item.kind, Kind::kFloat) << c.hex;
    EXPECT_EQ(item.floating, c.value) << c.hex;
    EXPECT_EQ(std::signbit(item.floating), std::signbit(c.value)) << c.hex;
    std::string encoded;
    Writer(&encoded).Float(c.value);
    EXPECT_EQ(ToHex(encoded), c.hex);
  }
  // Non-preferred widths of the same values decode too.
  for (const char* hex : {"fa7f800000", "fb7ff0000000000000"})
    EXPECT_EQ(ReadOne(FromHex(hex)).floating, inf) << hex;
  EXPECT_EQ(ReadOne(FromHex("faff800000")).floating, -inf);
  for (const char* hex : {"f97e00", "fa7fc00000", "fb7ff8000000000000"})
    EXPECT_TRUE(std::isnan(ReadOne(FromHex(hex)).floating)) << hex;
  std::string nan;
  Writer(&nan).Float(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(ToHex(nan), "f97e00");
  // Half subnormals and the limits of each width.
  std::string more;
  Writer(&more)
      .Float(std::ldexp(1.0, -24))
      .Float(std::ldexp(3.0, -20))
      .Float(65505.0)
      .Float(std::ldexp(1.0, -149));
  EXPECT_EQ(ToHex(more), "f90001f90030fa477fe100fa00000001");
}

TEST(CborTest, AppendixASimpleValues) {
  EXPECT_TRUE(ReadOne(FromHex("f4")).is_false());
  EXPECT_TRUE(ReadOne(FromHex("f5")).is_true());
  EXPECT_TRUE(ReadOne(FromHex("f6")).is_null());
  EXPECT_EQ(ReadOne(FromHex("f7")).argument, kSimpleUndefined);
  EXPECT_EQ(ReadOne(FromHex("f0")).argument, 16u);
  EXPECT_EQ(ReadOne(FromHex("f8ff")).argument, 255u);
  std::string encoded;
  Writer(&encoded).Bool(false).Bool(true).Null().Simple(16).Simple(255);
  EXPECT_EQ(ToHex(encoded), "f4f5f6f0f8ff");
}

TEST(CborTest, AppendixATags) {
  // 1(1363896240)
  {
    const auto bytes = FromHex("c11a514b67b0");
    Reader reader(bytes);
    Item tag, value;
    ASSERT_TRUE(reader.Read(&tag));
    ASSERT_TRUE(reader.Read(&value));
    EXPECT_EQ(tag.kind, Kind::kTag);
    EXPECT_EQ(tag.argument, 1u);
    EXPECT_EQ(value.argument, 1363896240u);
  }
  // 23(h'01020304'), 24(h'6449455446'), 32("http://www.example.com"), 1(1363896240.5),
  // 0("2013-03-21T20:04:00Z"), 2(h'010000000000000000') and 3(...) bignums.
  for (const char* hex :
       {"d74401020304", "d818456449455446", "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
        "c1fb41d452d9ec200000", "c074323031332d30332d32315432303a30343a30305a",
        "c249010000000000000000", "c349010000000000000000"}) {
    size_t offset;
    EXPECT_EQ(CheckWellFormed(FromHex(hex), &offset), Error::kOk) << hex;
  }
  std::string encoded;
  Writer(&encoded).Tag(1).Unsigned(1363896240);
  EXPECT_EQ(ToHex(encoded), "c11a514b67b0");
}

TEST(CborTest, AppendixAStrings) {
  struct Case {
    const char* hex;
    Kind kind;
    std::string content;
  };
  const Case cases[] = {
      {"40", Kind::kBytes, ""},
      {"4401020304", Kind::kBytes, "\x01\x02\x03\x04"},
      {"60", Kind::kText, ""},
      {"6161", Kind::kText, "a"},
      {"6449455446", Kind::kText, "IETF"},
      {"62225c", Kind::kText, "\"\\"},
      {"62c3bc", Kind::kText, "\xc3\xbc"},
      {"63e6b0b4", Kind::kText, "\xe6\xb0\xb4"},
      {"64f0908591", Kind::kText, "\xf0\x90\x85\x91"},
  };
  for (const Case& c : cases) {
    const auto bytes = FromHex(c.hex);
    const Item item = ReadOne(bytes);
    EXPECT_EQ(item.kind, c.kind) << c.hex;
    EXPECT_EQ(std::string(item.text()), c.content) << c.hex;
    // Zero copy: the content is a view into the input.
    if (!c.content.empty()) {
      EXPECT_EQ(item.bytes.data(), bytes.data() + 1) << c.hex;
    }
    std::string encoded;
    Writer writer(&encoded);
    if (c.kind == Kind::kBytes) {
      writer.Bytes(c.content);
    } else {
      writer.Text(c.content);
    }
    EXPECT_EQ(ToHex(encoded), c.hex);
  }
}

TEST(CborTest, AppendixAContainersAreWellFormed) {
  for (const char* hex :
       {"80", "83010203", "8301820203820405",
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819", "a0", "a201020304",
        "a26161016162820203", "826161a161626163", "a56161614161626142616361436164614461656145",
        // Indefinite-length arrays and maps.
        "9fff", "9f018202039f0405ffff", "9f01820203820405ff", "83018202039f0405ff",
        "83019f0203ff820405", "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
        "bf61610161629f0203ffff", "826161bf61626163ff", "bf6346756ef563416d7421ff"}) {
    size_t offset;
    EXPECT_EQ(CheckWellFormed(FromHex(hex), &offset), Error::kOk) << hex;
  }
  std::string encoded;
  Writer(&encoded).Map(2).Text("a").Unsigned(1).Text("b").Array(2).Unsigned(2).Unsigned(3);
  EXPECT_EQ(ToHex(encoded), "a26161016162820203");
  encoded.clear();
  Writer(&encoded).IndefiniteMap().Text("Fun").Bool(true).Text("Amt").Int(-2).Break();
  EXPECT_EQ(ToHex(encoded), "bf6346756ef563416d7421ff");
}

TEST(CborTest, RefusesWhatIsNotWellFormedOrNotSupported) {
  struct Case {
    const char* hex;
    Error error;
    size_t offset;
  };
  const Case cases[] = {
      {"", Error::kTruncated, 0},
      {"18", Error::kTruncated, 1},
      {"1a0001", Error::kTruncated, 3},
      {"4501020304", Error::kTruncated, 5},
      {"830102", Error::kTruncated, 3},
      {"1c", Error::kReservedInfo, 0},
      {"fe", Error::kReservedInfo, 0},
      {"5f42010243030405ff", Error::kIndefiniteString, 0},  // (_ h'0102', h'030405')
      {"7f657374726561646d696e67ff", Error::kIndefiniteString, 0},
      {"1f", Error::kBadIndefinite, 0},
      {"df", Error::kBadIndefinite, 0},
      {"f800", Error::kBadSimple, 0},
      {"f81f", Error::kBadSimple, 0},
      {"62c328", Error::kBadUtf8, 0},
      {"63eda080", Error::kBadUtf8, 0},  // a surrogate
      {"ff", Error::kUnexpectedBreak, 0},
      {"8201ff", Error::kUnexpectedBreak, 2},
      {"bf01ff", Error::kOddMap, 2},
      {"9f01", Error::kTruncated, 2},
      {"0101", Error::kTrailingBytes, 1},
  };
  for (const Case& c : cases) {
    size_t offset = 99;
    EXPECT_EQ(CheckWellFormed(FromHex(c.hex), &offset), c.error) << c.hex;
    EXPECT_EQ(offset, c.offset) << c.hex;
  }
  // 33 nested arrays exceed kMaxDepth.
  std::vector<uint8_t> deep(kMaxDepth + 1, 0x81);
  deep.push_back(0x00);
  size_t offset;
  EXPECT_EQ(CheckWellFormed(deep, &offset), Error::kTooDeep);
  deep.erase(deep.begin());
  EXPECT_EQ(CheckWellFormed(deep, &offset), Error::kOk);
}

TEST(CborTest, ErrorMessagesNameTheByte) {
  const auto bytes = FromHex("83010203040506071a0001");
  Reader reader(std::span<const uint8_t>(bytes).subspan(8));
  Item item;
  EXPECT_FALSE(reader.Read(&item));
  EXPECT_EQ(reader.ErrorMessage(), "truncated at byte 3");
  // A failed reader stays failed.
  EXPECT_FALSE(reader.Read(&item));
  EXPECT_FALSE(reader.Skip());

  const auto bad = FromHex("a2616100f800");
  Reader r2(bad);
  EXPECT_FALSE(r2.Skip());
  EXPECT_EQ(r2.ErrorMessage(), "simple value below 32 in two-byte form at byte 4");
}

TEST(CborTest, HugeCountsDoNotLoop) {
  // An array claiming 2^64-1 elements in a 9-byte input fails at once.
  size_t offset;
  EXPECT_EQ(CheckWellFormed(FromHex("9bffffffffffffffff"), &offset), Error::kTruncated);
  EXPECT_EQ(CheckWellFormed(FromHex("5bffffffffffffffff"), &offset), Error::kTruncated);
}

}  // namespace
}  // namespace lwm2md::lwm2m::cbor
