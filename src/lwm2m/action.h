#pragma once
// The actions applications drive devices with (the reference's lwm2m.read, write, writeMulti,
// create, exec, execWithArgs, observe, observeCancel, lastKnown, plus the TS operations the
// reference leaves out: delete, discover, writeAttributes), as one internal interface that the
// REST API, and later triggers and the web browser, all call (DESIGN.md "actions are one
// internal API").
//
// Two steps, both on the caller's thread (an API worker), so that a shard only sends bytes:
//   ParseActionRequest: the JSON body of a call → ActionRequest (shape checks only);
//   PlanAction: ActionRequest + object model + the device's LwM2M version → the CoAP requests
//   to send (Core TS 1.1 §6.3 Device Management, §6.4 Information Reporting; Transport TS 1.1
//   §6.4 for the CoAP mapping), values typed and encoded.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lwm2m/content_format.h"
#include "lwm2m/types.h"

namespace lwm2md::lwm2m {

class ObjectCatalog;

enum class ActionKind : uint8_t {
  kRead,
  kWrite,
  kWriteMulti,
  kCreate,
  kDelete,
  kExec,
  kExecWithArgs,
  kDiscover,
  kWriteAttributes,
  kObserve,
  kObserveCancel,
  kLastKnown,
};
// The reference's names: "read", "writeMulti", "execWithArgs", "observeCancel", "lastKnown"…
std::optional<ActionKind> ParseActionName(std::string_view name);
std::string_view ActionName(ActionKind kind);

struct ActionOptions {
  bool async = true;            // the reference's default
  std::string context_json;     // "context" as compact JSON; empty when not given
  std::optional<ContentFormat> encoding;  // "encoding"; unset: tlv (senml-cbor for composite)
  bool composite = false;       // composite only on request (the reference's 1.1 caveat)
  bool replace = false;         // write on an instance: PUT (replace) instead of POST (update)
  // How long a call may take before it fails with "device did not respond to the request":
  // the wait of a sync caller, and the lifetime of a request queued for a sleeping device.
  absl::Duration timeout = absl::Seconds(120);
  // lastKnown
  bool include_update_times = true;
  bool translate_ids = false;   // translateIds: "strings"
};

struct ActionRequest {
  ActionKind kind = ActionKind::kRead;
  std::string endpoint;
  // The body as received: what a request waiting for a sleeping device is persisted as, and
  // parsed again after a restart.
  std::string body_json;
  // Set by the service when the call is accepted (or kept from before a restart).
  std::string id;
  std::vector<Path> paths;     // read and observe: one or more; the others: exactly one
  std::string data_json;       // write, writeMulti, create: "data" as compact JSON
  std::string arguments;       // execWithArgs: the TS argument list, e.g. 0='abc123',1
  std::vector<std::string> attribute_queries;  // writeAttributes: "pmin=10", "gt" (clear)
  uint64_t token = 0;          // observeCancel
  ActionOptions options;
};

// Parses a call's JSON body ({"paths": …, "path": …, "data": …, "args": …, "attributes": …,
// "token": …, "options": {…}}). InvalidArgument naming the field for a malformed body.
absl::StatusOr<ActionRequest> ParseActionRequest(ActionKind kind, std::string_view endpoint,
                                                 std::string_view body_json);

// One CoAP request of a plan.
struct RequestStep {
  uint8_t method = 0;                  // coap::code::kGet…
  std::optional<Path> path;            // Uri-Path; unset for the root (composite operations)
  std::vector<std::string> queries;    // Uri-Query
  std::optional<uint16_t> content_format;
  std::optional<uint16_t> accept;
  std::optional<uint32_t> observe;     // 0 registers, 1 deregisters (RFC 7641 §2)
  std::string payload;
  // The paths this step covers, for results and errors ("3/0/14").
  std::vector<Path> covers;
  // The answer is a value payload to decode (read, observe), as composite SenML when set.
  bool expects_values = false;
  bool composite = false;
};

struct Plan {
  ActionKind kind = ActionKind::kRead;
  // The reference's `source`: "read", "read-composite", "observe", "observe-composite",
  // "write", "write-composite", "create", "delete", "exec", "discover", "write-attributes".
  std::string source;
  std::string path_text;  // every path of the call, comma-separated: "3/0/14,3441/0/110"
  std::vector<RequestStep> steps;
};

// The error texts of the reference.
inline constexpr std::string_view kNoResponseError = "device did not respond to the request";

// Plans a call for a device speaking LwM2M `version` ("1.0" or "1.1"). Errors:
// InvalidArgument (bad path or value for the call), FailedPrecondition (an encoding or
// composite operation the device's version or the resource's type cannot take), NotFound
// "<encoding>: resource definition not found" (a resource the object model does not define).
absl::StatusOr<Plan> PlanAction(const ActionRequest& request, const ObjectCatalog& catalog,
                                std::string_view version);

// "coap: not found" for 4.04 etc.: the reference's error text for a CoAP response code.
std::string CoapErrorText(uint8_t code);

}  // namespace lwm2md::lwm2m
