#include "lwm2m/registration_params.h"

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ObjectLink Obj(uint16_t object, std::optional<uint16_t> instance = std::nullopt,
               std::string version = "") {
  return ObjectLink{object, instance, std::move(version)};
}

absl::StatusOr<RegistrationRequest> Register(std::initializer_list<std::string_view> queries,
                                             std::string_view payload) {
  const std::vector<std::string_view> q(queries);
  return ParseRegister(q, payload);
}

absl::StatusOr<RegistrationRequest> Update(std::initializer_list<std::string_view> queries,
                                           std::string_view payload) {
  const std::vector<std::string_view> q(queries);
  return ParseUpdate(q, payload);
}

std::string RegisterError(std::initializer_list<std::string_view> queries,
                          std::string_view payload = "</1/0>") {
  absl::StatusOr<RegistrationRequest> request = Register(queries, payload);
  EXPECT_FALSE(request.ok());
  return request.ok() ? std::string() : std::string(request.status().message());
}

std::string UpdateError(std::initializer_list<std::string_view> queries,
                        std::string_view payload = "") {
  absl::StatusOr<RegistrationRequest> request = Update(queries, payload);
  EXPECT_FALSE(request.ok());
  return request.ok() ? std::string() : std::string(request.status().message());
}

// LwM2M TS 1.0.2 §5.3.1 / Core TS 1.1 §6.2.1 example.
TEST(RegisterTest, TsExampleWithDefaults) {
  absl::StatusOr<RegistrationRequest> request = Register(
      {"ep=epname"}, "</1/0>,</1/1>,</2/0>,</2/1>,</2/2>,</2/3>,</2/4>,</3/0>,</4/0>,</5/0>");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->endpoint, "epname");
  EXPECT_EQ(request->lifetime_seconds, 86400u);
  EXPECT_EQ(request->lwm2m_version, "1.0");
  EXPECT_EQ(request->binding, binding::kUdp);
  EXPECT_EQ(request->queue_mode, false);
  EXPECT_FALSE(request->sms_number.has_value());
  ASSERT_TRUE(request->objects.has_value());
  EXPECT_EQ(request->objects->alternate_path, "/");
  EXPECT_TRUE(request->objects->content_formats.empty());
  EXPECT_THAT(request->objects->links,
              ElementsAre(Obj(1, 0), Obj(1, 1), Obj(2, 0), Obj(2, 1), Obj(2, 2), Obj(2, 3),
                          Obj(2, 4), Obj(3, 0), Obj(4, 0), Obj(5, 0)));
}

TEST(RegisterTest, AllParameters) {
  absl::StatusOr<RegistrationRequest> request =
      Register({"ep=urn:imei:490154203237518", "lt=300", "lwm2m=1.1", "b=US", "sms=+4915112345",
                "Q", "future=1"},
               "</1/0>");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->endpoint, "urn:imei:490154203237518");
  EXPECT_EQ(request->lifetime_seconds, 300u);
  EXPECT_EQ(request->lwm2m_version, "1.1");
  EXPECT_EQ(request->binding, binding::kUdp | binding::kSms);
  EXPECT_EQ(request->queue_mode, true);
  EXPECT_EQ(request->sms_number, "+4915112345");
}

TEST(RegisterTest, AlternatePath) {
  absl::StatusOr<RegistrationRequest> request =
      Register({"ep=a"}, R"(</lwm2m>;rt="oma.lwm2m",</lwm2m/1/101>,</lwm2m/1/102>,</lwm2m/3/0>)");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->objects->alternate_path, "/lwm2m");
  EXPECT_THAT(request->objects->links, ElementsAre(Obj(1, 101), Obj(1, 102), Obj(3, 0)));
}

TEST(RegisterTest, RootLinkWithContentFormats) {
  absl::StatusOr<ObjectLinks> single =
      ParseObjectLinks(R"(</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>)");
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->alternate_path, "/");
  EXPECT_THAT(single->content_formats, ElementsAre(11543));
  EXPECT_THAT(single->links, ElementsAre(Obj(1, 0), Obj(3, 0)));

  absl::StatusOr<ObjectLinks> list =
      ParseObjectLinks(R"(</>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</1/0>)");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->content_formats, ElementsAre(60, 110, 112, 11542, 11543));

  // The root link need not come first, and a trailing '/' on the alternate path is dropped.
  absl::StatusOr<ObjectLinks> late = ParseObjectLinks(R"(</x/3/0>,</x/>;rt="oma.lwm2m")");
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->alternate_path, "/x");
  EXPECT_THAT(late->links, ElementsAre(Obj(3, 0)));
}

TEST(RegisterTest, ObjectVersions) {
  absl::StatusOr<ObjectLinks> links =
      ParseObjectLinks(R"(</1>;ver=1.1,</1/0>,</3>;ver="2.0",</3/0>,</5>)");
  ASSERT_TRUE(links.ok()) << links.status();
  EXPECT_THAT(links->links, ElementsAre(Obj(1, std::nullopt, "1.1"), Obj(1, 0),
                                        Obj(3, std::nullopt, "2.0"), Obj(3, 0), Obj(5)));
}

TEST(RegisterTest, BindingForms) {
  struct Case {
    std::string_view b;
    uint8_t transports;
    bool queue;
  };
  for (const Case& c :
       {Case{"U", binding::kUdp, false}, Case{"UQ", binding::kUdp, true},
        Case{"S", binding::kSms, false}, Case{"SQ", binding::kSms, true},
        Case{"US", binding::kUdp | binding::kSms, false},
        Case{"UQS", binding::kUdp | binding::kSms, true}, Case{"T", binding::kTcp, false},
        Case{"N", binding::kNonIp, false}, Case{"UT", binding::kUdp | binding::kTcp, false}}) {
    const std::string query = "b=" + std::string(c.b);
    absl::StatusOr<RegistrationRequest> request = Register({"ep=e", query}, "</1/0>");
    ASSERT_TRUE(request.ok()) << c.b << ": " << request.status();
    EXPECT_EQ(request->binding, c.transports) << c.b;
    EXPECT_EQ(request->queue_mode, c.queue) << c.b;
  }
  // 1.1 form: queue mode as its own parameter.
  absl::StatusOr<RegistrationRequest> request = Register({"ep=e", "b=U", "Q"}, "</1/0>");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->binding, binding::kUdp);
  EXPECT_EQ(request->queue_mode, true);
}

TEST(RegisterTest, Errors) {
  EXPECT_THAT(RegisterError({"lt=60"}), HasSubstr("register: ep (endpoint name) is required"));
  EXPECT_THAT(RegisterError({"ep="}), HasSubstr("ep= is not a valid endpoint name"));
  EXPECT_THAT(RegisterError({"ep=my device"}), HasSubstr("is not a valid endpoint name"));
  EXPECT_THAT(RegisterError({"ep=a/b"}), HasSubstr("is not a valid endpoint name"));
  EXPECT_THAT(RegisterError({"ep=" + std::string(256, 'x')}), HasSubstr("not a valid endpoint"));
  EXPECT_THAT(RegisterError({"ep"}), HasSubstr("ep has no value"));
  EXPECT_THAT(RegisterError({"ep=a", "ep=b"}), HasSubstr("ep appears twice"));
  EXPECT_THAT(RegisterError({"ep=a", "lt=1", "lt=2"}), HasSubstr("lt appears twice"));
  EXPECT_THAT(RegisterError({"ep=a", "Q", "Q"}), HasSubstr("Q appears twice"));
  EXPECT_THAT(RegisterError({"ep=a", "Q=1"}), HasSubstr("Q takes no value"));
  EXPECT_THAT(RegisterError({"ep=a", "=x"}), HasSubstr("has no parameter name"));
  EXPECT_THAT(RegisterError({"ep=a", "lt=abc"}),
              HasSubstr("register: lt=abc is not a lifetime in seconds"));
  for (std::string_view lt : {"lt=0", "lt=-5", "lt=+5", "lt= 5", "lt=4294967296", "lt="}) {
    EXPECT_THAT(RegisterError({"ep=a", lt}), HasSubstr("is not a lifetime in seconds")) << lt;
  }
  for (std::string_view v : {"lwm2m=1", "lwm2m=1.", "lwm2m=v1.0", "lwm2m=1.0.2", "lwm2m=1.1b"}) {
    EXPECT_THAT(RegisterError({"ep=a", v}), HasSubstr("is not a major.minor version")) << v;
  }
  EXPECT_THAT(RegisterError({"ep=a", "b=X"}), HasSubstr("b=X is not a binding mode"));
  EXPECT_THAT(RegisterError({"ep=a", "b=u"}), HasSubstr("unknown letter 'u'"));
  EXPECT_THAT(RegisterError({"ep=a", "b=UU"}), HasSubstr("'U' twice"));
  EXPECT_THAT(RegisterError({"ep=a", "b=QU"}), HasSubstr("'Q' must follow"));
  EXPECT_THAT(RegisterError({"ep=a", "b=UQQ"}), HasSubstr("'Q' must follow"));
  EXPECT_THAT(RegisterError({"ep=a", "b="}), HasSubstr("no transport"));
  EXPECT_THAT(RegisterError({"ep=a", "sms=12ab"}), HasSubstr("sms=12ab is not an MSISDN"));
  EXPECT_THAT(RegisterError({"ep=a", "sms=1234567890123456"}), HasSubstr("not an MSISDN"));

  EXPECT_THAT(RegisterError({"ep=a"}, ""), HasSubstr("the payload lists no Objects"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</1/0"), HasSubstr("register: link format: unterminated"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</65536/0>"), HasSubstr("Object ID is not a number"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</1/65536>"), HasSubstr("Instance ID is not a number"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</-1/0>"), HasSubstr("Object ID is not a number"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</1/0>,</x/0>"),
              HasSubstr("link </x/0> at byte 7: the Object ID is not a number"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</3/0/1>"), HasSubstr("too deep"));
  EXPECT_THAT(RegisterError({"ep=a"}, "<3/0>"), HasSubstr("not an Object or Object Instance"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</>"), HasSubstr("Object ID is not a number"));
  EXPECT_THAT(RegisterError({"ep=a"}, R"(</lwm2m>;rt="oma.lwm2m",</1/0>)"),
              HasSubstr("not under the alternate path /lwm2m"));
  EXPECT_THAT(RegisterError({"ep=a"}, R"(</lwm2m>;rt="oma.lwm2m",</lwm2mx/1/0>)"),
              HasSubstr("not an Object or Object Instance"));
  EXPECT_THAT(RegisterError({"ep=a"}, R"(</a>;rt="oma.lwm2m",</b>;rt="oma.lwm2m")"),
              HasSubstr("a second link with rt=\"oma.lwm2m\""));
  EXPECT_THAT(RegisterError({"ep=a"}, R"(<a>;rt="oma.lwm2m",</1/0>)"),
              HasSubstr("alternate path must start with '/'"));
  EXPECT_THAT(RegisterError({"ep=a"}, R"(</>;rt="oma.lwm2m";ct="60 x",</1/0>)"),
              HasSubstr("is not a list of content formats"));
  EXPECT_THAT(RegisterError({"ep=a"}, R"(</>;rt="oma.lwm2m";ct=70000,</1/0>)"),
              HasSubstr("is not a list of content formats"));
  EXPECT_THAT(RegisterError({"ep=a"}, R"(</>;rt="oma.lwm2m";ct="",</1/0>)"),
              HasSubstr("ct is empty"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</3>;ver=1,</3/0>"),
              HasSubstr("ver=1 is not a major.minor version"));
  EXPECT_THAT(RegisterError({"ep=a"}, "</3>;ver,</3/0>"), HasSubstr("is not a major.minor"));
}

TEST(UpdateTest, EmptyUpdateChangesNothing) {
  absl::StatusOr<RegistrationRequest> request = Update({}, "");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->endpoint.empty());
  EXPECT_FALSE(request->lifetime_seconds.has_value());
  EXPECT_FALSE(request->lwm2m_version.has_value());
  EXPECT_FALSE(request->binding.has_value());
  EXPECT_FALSE(request->queue_mode.has_value());
  EXPECT_FALSE(request->sms_number.has_value());
  EXPECT_FALSE(request->objects.has_value());
}

TEST(UpdateTest, OnlyLifetime) {
  absl::StatusOr<RegistrationRequest> request = Update({"lt=600"}, "");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->lifetime_seconds, 600u);
  EXPECT_FALSE(request->binding.has_value());
  EXPECT_FALSE(request->objects.has_value());
}

TEST(UpdateTest, BindingAndObjects) {
  absl::StatusOr<RegistrationRequest> request =
      Update({"b=UQ", "sms=123", "ep=ignored", "lwm2m=ignored"}, "</1/0>,</3/0>,</6/0>");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_TRUE(request->endpoint.empty());
  EXPECT_FALSE(request->lwm2m_version.has_value());
  EXPECT_EQ(request->binding, binding::kUdp);
  EXPECT_EQ(request->queue_mode, true);
  EXPECT_EQ(request->sms_number, "123");
  ASSERT_TRUE(request->objects.has_value());
  EXPECT_THAT(request->objects->links, ElementsAre(Obj(1, 0), Obj(3, 0), Obj(6, 0)));
}

TEST(UpdateTest, Errors) {
  EXPECT_THAT(UpdateError({"lt=abc"}), HasSubstr("update: lt=abc is not a lifetime in seconds"));
  EXPECT_THAT(UpdateError({"lt=1", "lt=1"}), HasSubstr("update: lt appears twice"));
  EXPECT_THAT(UpdateError({"b=Z"}), HasSubstr("update: b=Z is not a binding mode"));
  EXPECT_THAT(UpdateError({}, "</1/0>,"), HasSubstr("update: link format: empty link"));
}

}  // namespace
}  // namespace lwm2md::lwm2m
