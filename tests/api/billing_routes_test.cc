// GET /api/v1/billing over a real socket, with billing counters over a real store in a
// temporary directory and a clock the tests set.

#include <httplib.h>
#include <simdjson.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "api/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/billing.h"
#include "lwm2m/event_bus.h"
#include "store/store.h"

namespace lwm2md::api {
namespace {

using ::testing::HasSubstr;

constexpr char kToken[] = "billing-routes-test-token-0123456789";

absl::Time Noon(absl::CivilDay day) {
  return absl::FromCivil(absl::CivilSecond(day) + 12 * 3600, absl::UTCTimeZone());
}

class BillingRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "billing_routes_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    store::Options options;
    options.path = dir_;
    options.map_size_bytes = uint64_t{64} << 20;
    options.durability = store::Durability::kAsync;
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    billing_ = std::make_unique<lwm2m::BillingCounters>(
        lwm2m::BillingOptions{.store = store_.get(),
                              .flush_interval = absl::Seconds(5),
                              .endpoint_metrics = true,
                              .clock = [this] {
                                absl::MutexLock lock(&clock_mutex_);
                                return now_;
                              }});
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
        {.address = "127.0.0.1", .port = 0, .tokens = {MakeApiToken("test", kToken)}},
        {.billing = billing_.get()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override {
    server_.reset();
    billing_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void SetToday(absl::CivilDay day) {
    absl::MutexLock lock(&clock_mutex_);
    now_ = Noon(day);
  }

  void Count(std::string_view type, std::string_view endpoint, absl::CivilDay day, int times = 1) {
    lwm2m::Event event;
    event.type = std::string(type);
    event.endpoint = std::string(endpoint);
    event.time = Noon(day);
    for (int i = 0; i < times; ++i) billing_->Count(event);
  }

  httplib::Result Get(const std::string& query) {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_bearer_token_auth(kToken);
    client.set_read_timeout(10);
    return client.Get(("/api/v1/billing" + query).c_str());
  }

  // A 200 answer's body, parsed.
  simdjson::dom::element GetOk(const std::string& query) {
    httplib::Result result = Get(query);
    EXPECT_TRUE(result);
    if (!result) return {};
    EXPECT_EQ(result->status, 200) << query << ": " << result->body;
    EXPECT_EQ(result->get_header_value("Content-Type"), "application/json");
    body_ = result->body;
    simdjson::dom::element doc;
    EXPECT_EQ(parser_.parse(body_).get(doc), simdjson::SUCCESS) << body_;
    return doc;
  }

  // A 400 answer's error message.
  std::string GetError(const std::string& query) {
    httplib::Result result = Get(query);
    EXPECT_TRUE(result);
    if (!result) return "";
    EXPECT_EQ(result->status, 400) << query << ": " << result->body;
    simdjson::dom::element doc;
    std::string_view error;
    if (parser_.parse(result->body).get(doc) != simdjson::SUCCESS ||
        doc["error"].get(error) != simdjson::SUCCESS) {
      ADD_FAILURE() << result->body;
      return "";
    }
    return std::string(error);
  }

  std::string dir_;
  absl::Mutex clock_mutex_;
  absl::Time now_ ABSL_GUARDED_BY(clock_mutex_) = Noon(absl::CivilDay(2026, 11, 24));
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<lwm2m::BillingCounters> billing_;
  std::unique_ptr<HttpServer> server_;
  simdjson::dom::parser parser_;
  std::string body_;
};

TEST_F(BillingRoutesTest, TodaysTotalsByDefault) {
  const absl::CivilDay today(2026, 11, 24);
  Count(lwm2m::event_type::kRegister, "dev1", today, 2);
  Count(lwm2m::event_type::kUpdate, "dev2", today, 3);
  Count(lwm2m::event_type::kDeregister, "dev2", today);
  Count(lwm2m::event_type::kRegister, "dev1", today - 1);  // yesterday: not asked for

  GetOk("");
  EXPECT_EQ(body_,
            R"({"days":[{"date":"2026-11-24","counts":{"register":2,"update":3,"bootstrap":0,)"
            R"("data":0,"fotaComplete":0,"asyncResult":0,"error":0,"deregister":1,"missing":0,)"
            R"("back":0},"billable":5}],"billableTotal":5})");
  // No parameter at all means today: moving the clock moves the answer.
  SetToday(today - 1);
  simdjson::dom::array days = GetOk("")["days"];
  ASSERT_EQ(days.size(), 1u);
  EXPECT_EQ(std::string_view(days.at(0)["date"]), "2026-11-23");
  EXPECT_EQ(uint64_t(days.at(0)["counts"]["register"]), 1u);
}

TEST_F(BillingRoutesTest, RangesIncludeStoredAndUnflushedCounts) {
  const absl::CivilDay first(2026, 11, 20);
  Count(lwm2m::event_type::kData, "dev1", first, 4);
  Count(lwm2m::event_type::kData, "dev1", first + 2, 1);
  ASSERT_TRUE(billing_->Flush().ok());
  // After the flush: more on a stored day, and a day only in memory.
  Count(lwm2m::event_type::kData, "dev1", first + 2, 2);
  Count(lwm2m::event_type::kFotaComplete, "dev1", first + 3, 1);
  Count(lwm2m::event_type::kError, "dev1", first + 3, 5);

  simdjson::dom::element doc = GetOk("?from=2026-11-19&to=2026-11-24");
  simdjson::dom::array days = doc["days"];
  ASSERT_EQ(days.size(), 3u) << body_;  // days without events are left out
  EXPECT_EQ(std::string_view(days.at(0)["date"]), "2026-11-20");
  EXPECT_EQ(uint64_t(days.at(0)["counts"]["data"]), 4u);
  EXPECT_EQ(std::string_view(days.at(1)["date"]), "2026-11-22");
  EXPECT_EQ(uint64_t(days.at(1)["counts"]["data"]), 3u);
  EXPECT_EQ(std::string_view(days.at(2)["date"]), "2026-11-23");
  EXPECT_EQ(uint64_t(days.at(2)["counts"]["fotaComplete"]), 1u);
  EXPECT_EQ(uint64_t(days.at(2)["counts"]["error"]), 5u);
  EXPECT_EQ(uint64_t(days.at(2)["billable"]), 1u);  // errors are not billed
  EXPECT_EQ(uint64_t(doc["billableTotal"]), 8u);

  // A one-day range, and from alone (up to today).
  EXPECT_EQ(GetOk("?from=2026-11-22&to=2026-11-22")["days"].get_array().value().size(), 1u);
  EXPECT_EQ(uint64_t(GetOk("?from=2026-11-22")["billableTotal"]), 4u);
  // Nothing counted in the range: no days, zero total.
  simdjson::dom::element empty = GetOk("?from=2025-01-01&to=2025-01-31");
  EXPECT_EQ(empty["days"].get_array().value().size(), 0u);
  EXPECT_EQ(uint64_t(empty["billableTotal"]), 0u);
}

TEST_F(BillingRoutesTest, EndpointFilter) {
  const absl::CivilDay today(2026, 11, 24);
  Count(lwm2m::event_type::kRegister, "dev1", today);
  Count(lwm2m::event_type::kUpdate, "dev1", today, 2);
  Count(lwm2m::event_type::kRegister, "urn:imei:490154203237518", today);

  simdjson::dom::element doc = GetOk("?endpoint=dev1");
  simdjson::dom::array days = doc["days"];
  ASSERT_EQ(days.size(), 1u);
  EXPECT_EQ(std::string_view(days.at(0)["endpoint"]), "dev1");
  EXPECT_EQ(uint64_t(days.at(0)["counts"]["register"]), 1u);
  EXPECT_EQ(uint64_t(days.at(0)["counts"]["update"]), 2u);
  EXPECT_EQ(uint64_t(doc["billableTotal"]), 3u);

  // Names are percent-decoded query values.
  doc = GetOk("?endpoint=urn%3Aimei%3A490154203237518&from=2026-11-24&to=2026-11-24");
  EXPECT_EQ(uint64_t(doc["billableTotal"]), 1u);
  EXPECT_EQ(std::string_view(doc["days"].at(0)["endpoint"]), "urn:imei:490154203237518");
  // The totals cover both endpoints.
  EXPECT_EQ(uint64_t(GetOk("")["billableTotal"]), 4u);
  // An endpoint without events (or unknown): no days.
  EXPECT_EQ(GetOk("?endpoint=dev9")["days"].get_array().value().size(), 0u);
}

TEST_F(BillingRoutesTest, BadParametersAre400) {
  EXPECT_THAT(GetError("?from=2026-13-01"), HasSubstr("from: \"2026-13-01\" is not a date"));
  EXPECT_THAT(GetError("?to=2026-02-30"), HasSubstr("to: \"2026-02-30\" is not a date"));
  EXPECT_THAT(GetError("?from=2026-2-3"), HasSubstr("from:"));
  EXPECT_THAT(GetError("?from=yesterday"), HasSubstr("from:"));
  EXPECT_THAT(GetError("?from=2026-11-24T00:00:00Z"), HasSubstr("from:"));
  EXPECT_THAT(GetError("?to="), HasSubstr("to:"));
  EXPECT_THAT(GetError("?from=2026-11-25&to=2026-11-24"),
              HasSubstr("from: 2026-11-25 is after to (2026-11-24)"));
  // from alone, after today (to's default).
  EXPECT_THAT(GetError("?from=2026-12-01"), HasSubstr("is after to"));
  EXPECT_THAT(GetError("?from=2025-01-01&to=2026-01-02"),
              HasSubstr("367 days asked for, at most 366"));
  EXPECT_THAT(GetError("?endpoint="), HasSubstr("endpoint:"));
  EXPECT_THAT(GetError("?endpoint=a%2Fb"), HasSubstr("endpoint:"));
  // The longest range is fine: a leap year.
  EXPECT_EQ(GetOk("?from=2024-01-01&to=2024-12-31")["days"].get_array().value().size(), 0u);
}

}  // namespace
}  // namespace lwm2md::api
