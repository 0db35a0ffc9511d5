#include "lwm2m/link_format.h"

#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Uris(const LinkFormat& links) {
  std::vector<std::string> uris;
  for (const Link& link : links) uris.emplace_back(link.uri());
  return uris;
}

std::string ErrorOf(std::string_view payload) {
  absl::StatusOr<LinkFormat> parsed = LinkFormat::Parse(payload);
  EXPECT_FALSE(parsed.ok()) << payload;
  return parsed.ok() ? std::string() : std::string(parsed.status().message());
}

TEST(LinkFormatTest, EmptyPayloadHasNoLinks) {
  for (std::string_view payload : {"", "  ", "\r\n"}) {
    absl::StatusOr<LinkFormat> parsed = LinkFormat::Parse(payload);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(parsed->empty());
    EXPECT_EQ(parsed->begin(), parsed->end());
  }
}

TEST(LinkFormatTest, PlainLinks) {
  absl::StatusOr<LinkFormat> parsed =
      LinkFormat::Parse("</1/0>,</1/1>,</2/0>,</2/1>,</2/2>,</2/3>,</2/4>,</3/0>,</4/0>,</5/0>");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->size(), 10u);
  EXPECT_THAT(Uris(*parsed), ElementsAre("/1/0", "/1/1", "/2/0", "/2/1", "/2/2", "/2/3", "/2/4",
                                         "/3/0", "/4/0", "/5/0"));
  for (const Link& link : *parsed) EXPECT_EQ(link.begin(), link.end());
}

TEST(LinkFormatTest, AttributesAndOffsets) {
  constexpr std::string_view kPayload =
      R"(</>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</3>;ver=1.1;obs,</3/0>)";
  absl::StatusOr<LinkFormat> parsed = LinkFormat::Parse(kPayload);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::vector<Link> links(parsed->begin(), parsed->end());
  ASSERT_EQ(links.size(), 3u);
  EXPECT_EQ(links[0].uri(), "/");
  EXPECT_EQ(links[0].offset(), 0u);
  std::vector<LinkAttribute> attributes(links[0].begin(), links[0].end());
  ASSERT_EQ(attributes.size(), 2u);
  EXPECT_EQ(attributes[0].name, "rt");
  EXPECT_EQ(attributes[0].value, "oma.lwm2m");
  EXPECT_TRUE(attributes[0].quoted);
  EXPECT_EQ(attributes[1].value, "60 110 112 11542 11543");

  EXPECT_EQ(links[1].uri(), "/3");
  EXPECT_EQ(links[1].offset(), kPayload.find("</3>"));
  std::optional<LinkAttribute> ver = links[1].Find("VER");
  ASSERT_TRUE(ver.has_value());
  EXPECT_EQ(ver->value, "1.1");
  EXPECT_FALSE(ver->quoted);
  std::optional<LinkAttribute> obs = links[1].Find("obs");
  ASSERT_TRUE(obs.has_value());
  EXPECT_FALSE(obs->has_value);
  EXPECT_FALSE(links[1].Find("ct").has_value());
  EXPECT_EQ(links[2].uri(), "/3/0");
}

TEST(LinkFormatTest, QuotedValuesKeepSeparatorsAndEscapes) {
  absl::StatusOr<LinkFormat> parsed =
      LinkFormat::Parse(R"(</a>;title="x, y; z";t2="say \"hi\"\\",</b>)");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::vector<Link> links(parsed->begin(), parsed->end());
  ASSERT_EQ(links.size(), 2u);
  EXPECT_EQ(links[0].Find("title")->value, "x, y; z");
  const LinkAttribute t2 = *links[0].Find("t2");
  EXPECT_EQ(t2.value, R"(say \"hi\"\\)");
  EXPECT_EQ(t2.UnescapedValue(), R"(say "hi"\)");
  EXPECT_EQ(links[1].uri(), "/b");
}

TEST(LinkFormatTest, ToleratesWhitespaceClientsSend) {
  absl::StatusOr<LinkFormat> parsed =
      LinkFormat::Parse(" </1/0> , </3>; ver = \"1.1\" ;obs,\r\n</5/0>\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(Uris(*parsed), ElementsAre("/1/0", "/3", "/5/0"));
  std::vector<Link> links(parsed->begin(), parsed->end());
  EXPECT_EQ(links[1].Find("ver")->value, "1.1");
  EXPECT_TRUE(links[1].Find("obs").has_value());
}

TEST(LinkFormatTest, Errors) {
  EXPECT_THAT(ErrorOf("</1/0"), HasSubstr("unterminated '<' at byte 0"));
  EXPECT_THAT(ErrorOf("</1/0>,</2,</3>"), HasSubstr("unterminated '<' at byte 7"));
  EXPECT_THAT(ErrorOf(R"(</1>;rt="abc)"), HasSubstr("unterminated quoted string at byte 8"));
  EXPECT_THAT(ErrorOf(R"(</1>;rt="abc\)"), HasSubstr("unterminated quoted string at byte 8"));
  EXPECT_THAT(ErrorOf("</1>,,</2>"), HasSubstr("empty link at byte 5"));
  EXPECT_THAT(ErrorOf(",</2>"), HasSubstr("empty link at byte 0"));
  EXPECT_THAT(ErrorOf("</1>, "), HasSubstr("empty link at byte 6"));
  EXPECT_THAT(ErrorOf("/1/0"), HasSubstr("want '<' to start a link at byte 0"));
  EXPECT_THAT(ErrorOf("</1 0>"), HasSubstr("bad character 0x20 in URI at byte 3"));
  EXPECT_THAT(ErrorOf("</1>x"), HasSubstr("unexpected 'x' after link"));
  EXPECT_THAT(ErrorOf("</1>;"), HasSubstr("missing parameter name at byte 5"));
  EXPECT_THAT(ErrorOf("</1>;=3"), HasSubstr("where a parameter name belongs at byte 5"));
  EXPECT_THAT(ErrorOf("</1>;ct="), HasSubstr("missing parameter value at byte 8"));
  EXPECT_THAT(ErrorOf("</1>;ct=,</2>"), HasSubstr("where a parameter value belongs at byte 8"));
  EXPECT_THAT(ErrorOf(std::string_view("</1>;t=\"a\x01\"", 11)),
              HasSubstr("bad character 0x01 in quoted string at byte 9"));
}

TEST(LinkFormatTest, SerializeIsCanonicalAndReparses) {
  absl::StatusOr<LinkFormat> parsed =
      LinkFormat::Parse(R"( </>; rt="oma.lwm2m" ;ct=11543 , </3>;ver=1.1;obs,</3/0>;t="a\"b")");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::string text = Serialize(*parsed);
  EXPECT_EQ(text, R"(</>;rt="oma.lwm2m";ct=11543,</3>;ver=1.1;obs,</3/0>;t="a\"b")");
  absl::StatusOr<LinkFormat> again = LinkFormat::Parse(text);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Serialize(*again), text);
}

}  // namespace
}  // namespace lwm2md::lwm2m
