// GET /api/v1/billing: daily counts of events per kind, billable and not (lwm2m/billing.h),
// for one endpoint or for all of them, from the store plus what is not written yet.

#include <httplib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "api/route_util.h"
#include "api/routes.h"
#include "base/json_writer.h"
#include "lwm2m/billing.h"
#include "lwm2m/endpoint_config.h"

namespace lwm2md::api {
namespace {

// One request covers at most a (leap) year of days, each one store read.
constexpr int64_t kMaxDays = 366;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Exactly YYYY-MM-DD (RFC 3339 full-date) naming a day that exists: 2026-02-30 is refused
// rather than read as 2026-03-02.
std::optional<absl::CivilDay> ParseDate(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!IsDigit(text[i])) return std::nullopt;
  }
  auto number = [&](size_t at, size_t length) {
    int value = 0;
    for (size_t i = at; i < at + length; ++i) value = value * 10 + (text[i] - '0');
    return value;
  };
  const int year = number(0, 4);
  const int month = number(5, 2);
  const int day = number(8, 2);
  const absl::CivilDay civil(year, month, day);
  if (civil.year() != year || civil.month() != month || civil.day() != day) return std::nullopt;
  return civil;
}

// Reads the date parameter `name` into *day when present; false with a 400 when malformed.
bool DateParam(const httplib::Request& request, httplib::Response& response, const char* name,
               absl::CivilDay* day) {
  if (!request.has_param(name)) return true;
  const std::string text = request.get_param_value(name);
  std::optional<absl::CivilDay> parsed = ParseDate(text);
  if (!parsed.has_value()) {
    SendError(response, 400,
              absl::StrCat(name, ": \"", text, "\" is not a date of the form YYYY-MM-DD"));
    return false;
  }
  *day = *parsed;
  return true;
}

void WriteCounts(base::JsonWriter& out, const lwm2m::KindCounts& counts) {
  out.BeginObject();
  for (const lwm2m::EventKindInfo& info : lwm2m::kEventKinds) {
    out.Key(info.name).Uint(counts[static_cast<int>(info.kind)]);
  }
  out.EndObject();
}

void GetBilling(const httplib::Request& request, httplib::Response& response,
                const lwm2m::BillingCounters& billing) {
  // to defaults to today (UTC), from to `to`: no parameter at all is today alone.
  absl::CivilDay to = billing.Today();
  if (!DateParam(request, response, "to", &to)) return;
  absl::CivilDay from = to;
  if (!DateParam(request, response, "from", &from)) return;
  if (from > to) {
    SendError(response, 400,
              absl::StrCat("from: ", absl::FormatCivilTime(from), " is after to (",
                           absl::FormatCivilTime(to), ")"));
    return;
  }
  if (const int64_t days = to - from + 1; days > kMaxDays) {
    SendError(
        response, 400,
        absl::StrCat("from, to: ", days, " days asked for, at most ", kMaxDays, " per request"));
    return;
  }
  std::string endpoint;
  if (request.has_param("endpoint")) {
    endpoint = request.get_param_value("endpoint");
    if (absl::Status status = lwm2m::ValidateEndpointName(endpoint); !status.ok()) {
      SendError(response, 400,
                absl::StrCat("endpoint: not an endpoint name (", status.message(), ")"));
      return;
    }
  }
  absl::StatusOr<std::vector<lwm2m::DayCounts>> days = billing.Read(endpoint, from, to);
  if (!days.ok()) {
    SendStatus(request, response, days.status());
    return;
  }
  uint64_t billable_total = 0;
  base::JsonWriter out;
  out.BeginObject().Key("days").BeginArray();
  for (const lwm2m::DayCounts& day : *days) {
    const uint64_t billable = lwm2m::BillableSum(day.counts);
    billable_total += billable;
    out.BeginObject().Key("date").String(absl::FormatCivilTime(day.day));
    if (!endpoint.empty()) out.Key("endpoint").String(endpoint);
    out.Key("counts");
    WriteCounts(out, day.counts);
    out.Key("billable").Uint(billable).EndObject();
  }
  out.EndArray().Key("billableTotal").Uint(billable_total).EndObject();
  SendJson(response, 200, out.str());
}

}  // namespace

void AddBillingRoutes(httplib::Server& server, const lwm2m::BillingCounters& billing) {
  server.Get("/api/v1/billing",
             [&billing](const httplib::Request& request, httplib::Response& response) {
               GetBilling(request, response, billing);
             });
}

}  // namespace lwm2md::api
