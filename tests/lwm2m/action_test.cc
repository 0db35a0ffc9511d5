#include "lwm2m/action.h"

#include <memory>
#include <string>
#include <vector>

#include "coap/message.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/builtin_objects.h"
#include "lwm2m/object_registry.h"
#include "base/strings.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::HasSubstr;

class ActionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::vector<ObjectDefinition>> objects =
        LoadBuiltInObjects(LWM2MD_SOURCE_DIR "/config/objects");
    ASSERT_TRUE(objects.ok()) << objects.status();
    absl::StatusOr<std::unique_ptr<ObjectRegistry>> registry =
        ObjectRegistry::Create(*std::move(objects), nullptr);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = registry->release();
  }
  static void TearDownTestSuite() { delete registry_; }

  absl::StatusOr<Plan> PlanFor(ActionKind kind, std::string_view body,
                               std::string_view version = "1.1") {
    absl::StatusOr<ActionRequest> request = ParseActionRequest(kind, "dev", body);
    if (!request.ok()) return request.status();
    return PlanAction(*request, *registry_->snapshot(), version);
  }

  static ObjectRegistry* registry_;
};
ObjectRegistry* ActionTest::registry_ = nullptr;

TEST_F(ActionTest, ParsesTheReferenceCalls) {
  absl::StatusOr<ActionRequest> read = ParseActionRequest(
      ActionKind::kRead, "dev",
      R"({"paths":["3/0","6/0/0"],"options":{"async":false,"encoding":"text",)"
      R"("context":{"op":"read","msgId":"1234"},"composite":true,"timeoutMs":5000}})");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->paths.size(), 2u);
  EXPECT_FALSE(read->options.async);
  EXPECT_EQ(read->options.encoding, ContentFormat::kText);
  EXPECT_TRUE(read->options.composite);
  EXPECT_EQ(read->options.context_json, R"({"op":"read","msgId":"1234"})");
  EXPECT_EQ(read->options.timeout, absl::Seconds(5));

  // The reference's defaults: async, no composite, tlv.
  absl::StatusOr<ActionRequest> defaults = ParseActionRequest(ActionKind::kRead, "dev", R"({"paths":"3/0"})");
  ASSERT_TRUE(defaults.ok());
  EXPECT_TRUE(defaults->options.async);
  EXPECT_FALSE(defaults->options.composite);
  EXPECT_FALSE(defaults->options.encoding.has_value());

  absl::StatusOr<ActionRequest> exec = ParseActionRequest(
      ActionKind::kExecWithArgs, "dev", R"({"path":"3/0/4","args":{"0":"abc123","1":null}})");
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->arguments, "0='abc123',1");

  absl::StatusOr<ActionRequest> attributes = ParseActionRequest(
      ActionKind::kWriteAttributes, "dev",
      R"({"path":"3/0/9","attributes":{"pmin":10,"pmax":60,"gt":5.5,"st":null}})");
  ASSERT_TRUE(attributes.ok()) << attributes.status();
  EXPECT_THAT(attributes->attribute_queries,
              ::testing::ElementsAre("pmin=10", "pmax=60", "gt=5.5", "st"));

  absl::StatusOr<ActionRequest> cancel =
      ParseActionRequest(ActionKind::kObserveCancel, "dev", R"({"token":"00ab000000000001"})");
  ASSERT_TRUE(cancel.ok()) << cancel.status();
  EXPECT_EQ(cancel->token, 0x00ab000000000001u);
}

TEST_F(ActionTest, MalformedBodiesNameTheField) {
  struct Case {
    ActionKind kind;
    const char* body;
    const char* message;
  };
  const Case cases[] = {
      {ActionKind::kRead, "{", "not valid JSON"},
      {ActionKind::kRead, "{}", "read needs \"paths\""},
      {ActionKind::kRead, R"({"paths":["3/x"]})", "\"paths\""},
      {ActionKind::kWrite, R"({"path":"3/0/15"})", "write needs \"data\""},
      {ActionKind::kRead, R"({"paths":["3/0"],"options":{"encoding":"xml"}})", "options.encoding"},
      {ActionKind::kRead, R"({"paths":["3/0"],"options":{"bogus":1}})", "unknown option"},
      {ActionKind::kRead, R"({"paths":["3/0"],"extra":1})", "unknown field"},
      {ActionKind::kExecWithArgs, R"({"path":"3/0/4","args":{"10":"x"}})", "one digit"},
      {ActionKind::kExecWithArgs, R"({"path":"3/0/4","args":{"0":"it's"}})", "cannot contain"},
      {ActionKind::kWriteAttributes, R"({"path":"3/0/9","attributes":{"pmin":-1}})", "pmin"},
      {ActionKind::kWriteAttributes, R"({"path":"3/0/9","attributes":{"foo":1}})", "unknown attribute"},
      {ActionKind::kObserveCancel, R"({"token":"xyz"})", "\"token\""},
      {ActionKind::kWriteMulti, R"({"path":"3/0","data":{}})", "takes no path"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ActionRequest> request = ParseActionRequest(c.kind, "dev", c.body);
    ASSERT_FALSE(request.ok()) << c.body;
    EXPECT_TRUE(absl::IsInvalidArgument(request.status())) << c.body;
    EXPECT_THAT(std::string(request.status().message()), HasSubstr(c.message)) << c.body;
  }
}

TEST_F(ActionTest, ReadOnOneZeroDeviceIsOneGetPerPath) {
  absl::StatusOr<Plan> plan =
      PlanFor(ActionKind::kRead, R"({"paths":["3/0","6/0/0"],"options":{"composite":true}})", "1.0");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->source, "read");
  EXPECT_EQ(plan->path_text, "3/0,6/0/0");
  ASSERT_EQ(plan->steps.size(), 2u);
  for (const RequestStep& step : plan->steps) {
    EXPECT_EQ(step.method, coap::code::kGet);
    EXPECT_EQ(step.accept, static_cast<uint16_t>(ContentFormat::kTlv));
    EXPECT_TRUE(step.expects_values);
  }
}

TEST_F(ActionTest, CompositeReadOnOneOneDeviceIsOneFetch) {
  absl::StatusOr<Plan> plan =
      PlanFor(ActionKind::kRead, R"({"paths":["3/0/11","6/0"],"options":{"composite":true}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->source, "read-composite");
  ASSERT_EQ(plan->steps.size(), 1u);
  const RequestStep& step = plan->steps[0];
  EXPECT_EQ(step.method, coap::code::kFetch);
  EXPECT_FALSE(step.path.has_value());
  EXPECT_EQ(step.content_format, static_cast<uint16_t>(ContentFormat::kSenmlCbor));
  EXPECT_EQ(step.accept, static_cast<uint16_t>(ContentFormat::kSenmlCbor));
  EXPECT_TRUE(step.composite);
  // The body is SenML CBOR naming both paths (RFC 8428: an array of maps with "n", key 0).
  ASSERT_FALSE(step.payload.empty());
  EXPECT_EQ(static_cast<uint8_t>(step.payload[0]), 0x82) << "a CBOR array of two records";
  EXPECT_NE(step.payload.find("/3/0/11"), std::string::npos);
  EXPECT_NE(step.payload.find("/6/0"), std::string::npos);
}

TEST_F(ActionTest, EncodingsAreCheckedAgainstTheResourceAndVersion) {
  // Plain text carries one value, not an instance.
  absl::StatusOr<Plan> plan =
      PlanFor(ActionKind::kRead, R"({"paths":["3/0"],"options":{"encoding":"text"}})");
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(plan.status()));
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("single resource value"));
  // Opaque only for opaque resources (3/0/9 is an integer).
  plan = PlanFor(ActionKind::kRead, R"({"paths":["3/0/9"],"options":{"encoding":"opaque"}})");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("is integer, not opaque"));
  // A multiple resource needs a multi-value format.
  plan = PlanFor(ActionKind::kRead, R"({"paths":["3/0/11"],"options":{"encoding":"cbor"}})");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("multiple resource"));
  // SenML needs 1.1.
  plan = PlanFor(ActionKind::kRead, R"({"paths":["3/0"],"options":{"encoding":"senml-json"}})",
                 "1.0");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("needs LwM2M 1.1"));
  // Composite takes SenML only.
  plan = PlanFor(ActionKind::kRead,
                 R"({"paths":["3/0"],"options":{"encoding":"tlv","composite":true}})");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("composite operations take"));
  // Text on a single resource is fine.
  plan = PlanFor(ActionKind::kRead, R"({"paths":["3/0/9"],"options":{"encoding":"text"}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].accept, 0);
}

TEST_F(ActionTest, WriteResourceIsPutWithTypedTlv) {
  absl::StatusOr<Plan> plan = PlanFor(ActionKind::kWrite, R"({"path":"3/0/15","data":"UTC"})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->steps.size(), 1u);
  const RequestStep& step = plan->steps[0];
  EXPECT_EQ(step.method, coap::code::kPut);
  EXPECT_EQ(step.content_format, static_cast<uint16_t>(ContentFormat::kTlv));
  auto type_of = [&](const Path& p) { return registry_->snapshot()->TypeOf(p); };
  absl::StatusOr<Decoded> decoded = Decode(
      ContentFormat::kTlv, *step.path,
      std::span(reinterpret_cast<const uint8_t*>(step.payload.data()), step.payload.size()),
      FunctionTypeResolver(type_of));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->records.size(), 1u);
  EXPECT_EQ(decoded->records[0].value, Value::String("UTC"));
}

TEST_F(ActionTest, WriteInstanceIsPartialUpdateUnlessReplace) {
  absl::StatusOr<Plan> plan =
      PlanFor(ActionKind::kWrite, R"({"path":"3/0","data":{"14":"+4:00","15":"EDT"}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].method, coap::code::kPost);
  plan = PlanFor(ActionKind::kWrite,
                 R"({"path":"3/0","data":{"14":"+4:00"},"options":{"replace":true}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].method, coap::code::kPut);
}

TEST_F(ActionTest, WriteRefusesUnknownReadOnlyAndMistypedValues) {
  absl::StatusOr<Plan> plan = PlanFor(ActionKind::kWrite, R"({"path":"3/0/100","data":1})");
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().message(), "tlv: resource definition not found");
  EXPECT_EQ(std::string(*plan.status().GetPayload(base::Absl(kPathPayload))), "3/0/100");
  plan = PlanFor(ActionKind::kWrite, R"({"path":"3/0/0","data":"x"})");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("not writable"));
  plan = PlanFor(ActionKind::kWrite, R"({"path":"3441/0/120","data":"five"})");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("expected an integer"));
  plan = PlanFor(ActionKind::kWrite, R"({"path":"3441/0/170","data":"3-0"})");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("object link"));
}

TEST_F(ActionTest, WriteMultiFollowsTheReference) {
  const char* body = R"({"data":{"3":{"0":{"15":"UTC"}},"1":{"0":{"1":86400,"7":"U"}}}})";
  // TLV carries several resources: one instance write (POST) each.
  absl::StatusOr<Plan> plan = PlanFor(ActionKind::kWriteMulti, body, "1.0");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->steps.size(), 2u);
  EXPECT_EQ(plan->steps[0].method, coap::code::kPost);
  EXPECT_EQ(plan->steps[0].path->ToString(), "3/0");
  EXPECT_EQ(plan->steps[1].path->ToString(), "1/0");
  // Text carries one value: one write per resource.
  plan = PlanFor(ActionKind::kWriteMulti,
                 R"({"data":{"1":{"0":{"1":86400,"7":"U"}}},"options":{"encoding":"text"}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->steps.size(), 2u);
  EXPECT_EQ(plan->steps[0].method, coap::code::kPut);
  EXPECT_EQ(plan->steps[0].path->ToString(), "1/0/1");
  // Composite on 1.1: one iPATCH.
  plan = PlanFor(ActionKind::kWriteMulti,
                 R"({"data":{"3":{"0":{"15":"UTC"}},"1":{"0":{"1":86400}}},"options":{"composite":true}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->steps.size(), 1u);
  EXPECT_EQ(plan->source, "write-composite");
  EXPECT_EQ(plan->steps[0].method, coap::code::kIPatch);
}

TEST_F(ActionTest, CreateExecDiscoverAttributesDelete) {
  absl::StatusOr<Plan> plan =
      PlanFor(ActionKind::kCreate, R"({"path":"19/0","data":{"0":{"0":"AQI="}}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].method, coap::code::kPost);
  EXPECT_EQ(plan->steps[0].path->ToString(), "19");
  // The payload is an object instance TLV (type bits 00) with id 0.
  ASSERT_FALSE(plan->steps[0].payload.empty());
  EXPECT_EQ(static_cast<uint8_t>(plan->steps[0].payload[0]) >> 6, 0);

  plan = PlanFor(ActionKind::kExecWithArgs, R"({"path":"3/0/4","args":{"0":"abc123"}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].payload, "0='abc123'");
  plan = PlanFor(ActionKind::kExec, R"({"path":"3/0/9"})");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("not executable"));

  plan = PlanFor(ActionKind::kDiscover, R"({"path":"3/0"})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].accept, static_cast<uint16_t>(ContentFormat::kCoreLink));

  plan = PlanFor(ActionKind::kWriteAttributes, R"({"path":"3/0/15","attributes":{"gt":1}})");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("numeric resources only"));
  plan = PlanFor(ActionKind::kWriteAttributes, R"({"path":"3/0/9","attributes":{"pmin":5}})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].method, coap::code::kPut);
  EXPECT_THAT(plan->steps[0].queries, ::testing::ElementsAre("pmin=5"));

  plan = PlanFor(ActionKind::kDelete, R"({"path":"3441/1"})");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->steps[0].method, coap::code::kDelete);
  plan = PlanFor(ActionKind::kDelete, R"({"path":"3441"})");
  EXPECT_FALSE(plan.ok());
}

TEST_F(ActionTest, CoapErrorTexts) {
  EXPECT_EQ(CoapErrorText(coap::code::kNotFound), "coap: not found");
  EXPECT_EQ(CoapErrorText(coap::code::kMethodNotAllowed), "coap: method not allowed");
  EXPECT_EQ(CoapErrorText(coap::MakeCode(4, 29)), "coap: 4.29");
}

}  // namespace
}  // namespace lwm2md::lwm2m
