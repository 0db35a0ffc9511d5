// POST /api/v1/endpoints/{name}/actions/{action} and GET /api/v1/endpoints/{name}/lastKnown:
// the actions of lwm2m/action.h over HTTP. The body mirrors the call ({"paths", "path", "data",
// "args", "attributes", "token", "options"}).
//
// A sync call ("async": false) holds its HTTP worker until the device answers (or the call's
// timeout passes); an async call answers 202 as soon as the shard has accepted it, and its
// results arrive as events.

#include <httplib.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "api/route_util.h"
#include "api/routes.h"
#include "base/json_writer.h"
#include "base/strings.h"
#include "lwm2m/action.h"
#include "lwm2m/data_tree.h"
#include "lwm2m/device_management.h"
#include "lwm2m/object_registry.h"
#include "store/store.h"

namespace lwm2md::api {
namespace {

constexpr char kActionPath[] = R"(/api/v1/endpoints/([^/]+)/actions/([^/]+))";
constexpr char kLastKnownPath[] = R"(/api/v1/endpoints/([^/]+)/lastKnown)";
// Bodies carry paths and values for one device: a write of one CoAP message's worth of data
// in JSON is far below this.
constexpr size_t kMaxBodyBytes = 64 * 1024;
// A shard accepts or refuses a call within microseconds; this only bounds a caller's wait
// while the server stops.
constexpr absl::Duration kAcceptWait = absl::Seconds(10);
// Beyond the call's own timeout, the time a device's last retransmission may take to fail.
constexpr absl::Duration kSyncSlack = absl::Seconds(100);

using lwm2m::ActionOutcome;

// The HTTP status of a refused submission.
int SubmissionStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kFailedPrecondition: return 422;
    case absl::StatusCode::kOutOfRange: return 413;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

int OutcomeStatus(ActionOutcome::Failure failure) {
  switch (failure) {
    case ActionOutcome::Failure::kNone: return 200;
    case ActionOutcome::Failure::kInvalid: return 422;
    case ActionOutcome::Failure::kNotRegistered: return 404;
    case ActionOutcome::Failure::kLimit: return 429;
    case ActionOutcome::Failure::kUnavailable: return 503;
    case ActionOutcome::Failure::kDeviceError: return 502;
    case ActionOutcome::Failure::kNoResponse: return 504;
    case ActionOutcome::Failure::kInterrupted: return 503;
  }
  return 500;
}

// What a waiting HTTP worker learns from the shard.
struct Waiter {
  absl::Mutex mutex;
  std::optional<lwm2m::Submission> submission ABSL_GUARDED_BY(mutex);
  std::optional<ActionOutcome> outcome ABSL_GUARDED_BY(mutex);
};

std::string ErrorBody(const ActionOutcome& outcome) {
  base::JsonWriter json;
  json.BeginObject().Key("error").String(outcome.error);
  if (!outcome.partial_errors.empty()) {
    json.Key("partialErrors").BeginObject();
    for (const auto& [path, error] : outcome.partial_errors) json.Key(path).String(error);
    json.EndObject();
  }
  // A read that failed in part still returns what it got.
  if (!outcome.body_json.empty()) json.Key("result").Raw(outcome.body_json);
  json.EndObject();
  return json.Take();
}

void RunAction(const httplib::Request& request, httplib::Response& response,
               lwm2m::ManagementHub& management, lwm2m::ActionKind kind,
               const std::string& endpoint, const std::string& body) {
  absl::StatusOr<lwm2m::ActionRequest> call = lwm2m::ParseActionRequest(kind, endpoint, body);
  if (!call.ok()) return SendError(response, 400, base::Std(call.status().message()));
  if (kind == lwm2m::ActionKind::kLastKnown) {
    return SendError(response, 400, "lastKnown is GET /api/v1/endpoints/{name}/lastKnown");
  }
  const bool sync = !call->options.async && kind != lwm2m::ActionKind::kObserveCancel;
  const absl::Duration timeout = call->options.timeout;
  auto waiter = std::make_shared<Waiter>();
  auto accepted = [waiter](lwm2m::Submission submission) {
    absl::MutexLock lock(&waiter->mutex);
    waiter->submission = std::move(submission);
  };
  if (kind == lwm2m::ActionKind::kObserveCancel) {
    management.CancelObservation(*std::move(call), accepted);
  } else {
    lwm2m::ManagementHub::DoneCallback done;
    if (sync) {
      done = [waiter](ActionOutcome outcome) {
        absl::MutexLock lock(&waiter->mutex);
        waiter->outcome = std::move(outcome);
      };
    }
    management.Submit(*std::move(call), accepted, std::move(done));
  }
  absl::MutexLock lock(&waiter->mutex);
  auto has_submission = [waiter]() ABSL_SHARED_LOCKS_REQUIRED(waiter->mutex) {
    return waiter->submission.has_value();
  };
  if (!waiter->mutex.AwaitWithTimeout(absl::Condition(&has_submission), kAcceptWait)) {
    return SendError(response, 503, "the server is stopping");
  }
  const lwm2m::Submission& submission = *waiter->submission;
  if (!submission.status.ok()) {
    return SendError(response, SubmissionStatus(submission.status),
                     base::Std(submission.status.message()));
  }
  if (!sync) {
    base::JsonWriter json;
    json.BeginObject()
        .Key("requestId").String(submission.request_id)
        .Key("queued").Bool(submission.queued)
        .EndObject();
    return SendJson(response, 202, json.Take());
  }
  auto has_outcome = [waiter]() ABSL_SHARED_LOCKS_REQUIRED(waiter->mutex) {
    return waiter->outcome.has_value();
  };
  if (!waiter->mutex.AwaitWithTimeout(absl::Condition(&has_outcome), timeout + kSyncSlack)) {
    return SendError(response, 504, lwm2m::kNoResponseError);
  }
  const ActionOutcome& outcome = *waiter->outcome;
  if (outcome.failure == ActionOutcome::Failure::kNone) {
    return SendJson(response, 200, outcome.body_json);
  }
  (void)request;
  SendJson(response, OutcomeStatus(outcome.failure), ErrorBody(outcome));
}

bool BoolParam(const httplib::Request& request, const char* name, bool fallback, bool* ok) {
  if (!request.has_param(name)) return fallback;
  const std::string value = request.get_param_value(name);
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  *ok = false;
  return fallback;
}

}  // namespace

void AddActionRoutes(httplib::Server& server, lwm2m::ManagementHub& management,
                     lwm2m::ObjectRegistry& objects, const store::Store& store) {
  server.Post(kActionPath, [&management](const httplib::Request& request,
                                         httplib::Response& response,
                                         const httplib::ContentReader& reader) {
    const std::string endpoint = request.matches[1];
    const std::string action = request.matches[2];
    std::optional<lwm2m::ActionKind> kind = lwm2m::ParseActionName(action);
    if (!kind) {
      return SendError(response, 404,
                       base::StrCat("unknown action \"", action,
                                    "\" (read, write, writeMulti, create, delete, exec, "
                                    "execWithArgs, discover, writeAttributes, observe, "
                                    "observeCancel)"));
    }
    std::string body;
    if (!ReadBody(request, response, reader, {kJsonMediaType}, kMaxBodyBytes, &body)) return;
    RunAction(request, response, management, *kind, endpoint, body);
  });

  server.Get(kLastKnownPath, [&objects, &store](const httplib::Request& request,
                                                httplib::Response& response) {
    const std::string endpoint = request.matches[1];
    bool ok = true;
    lwm2m::LastKnownOptions options;
    options.include_update_times = BoolParam(request, "includeUpdateTimes", true, &ok);
    if (request.has_param("translateIds")) {
      const std::string value = request.get_param_value("translateIds");
      if (value != "strings" && value != "ids") ok = false;
      options.translate_ids = value == "strings";
    }
    if (!ok) {
      return SendError(response, 400,
                       "includeUpdateTimes takes true or false; translateIds, strings or ids");
    }
    absl::StatusOr<std::string> known =
        lwm2m::ReadLastKnown(store, endpoint, *objects.snapshot(), options);
    if (!known.ok()) return SendStatus(request, response, known.status());
    SendJson(response, 200, *known);
  });
}

}  // namespace lwm2md::api
