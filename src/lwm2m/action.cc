#include "lwm2m/action.h"

#include <charconv>
#include <cstdio>
#include <deque>
#include <map>
#include <simdjson.h>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/strings.h"
#include "coap/message.h"
#include "lwm2m/object_registry.h"

namespace lwm2md::lwm2m {
namespace {

namespace dom = simdjson::dom;

struct NamedKind {
  std::string_view name;
  ActionKind kind;
};
constexpr NamedKind kKinds[] = {
    {"read", ActionKind::kRead},
    {"write", ActionKind::kWrite},
    {"writeMulti", ActionKind::kWriteMulti},
    {"create", ActionKind::kCreate},
    {"delete", ActionKind::kDelete},
    {"exec", ActionKind::kExec},
    {"execWithArgs", ActionKind::kExecWithArgs},
    {"discover", ActionKind::kDiscover},
    {"writeAttributes", ActionKind::kWriteAttributes},
    {"observe", ActionKind::kObserve},
    {"observeCancel", ActionKind::kObserveCancel},
    {"lastKnown", ActionKind::kLastKnown},
};

// One parser per thread: API workers parse bodies concurrently, and a dom::parser reuses its
// buffers between documents.
dom::parser& ThreadParser() {
  thread_local dom::parser parser;
  return parser;
}

absl::Status Invalid(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(base::StrCat("\"", field, "\": ", what));
}

absl::StatusOr<Path> ParsePathElement(dom::element e, std::string_view field) {
  std::string_view text;
  if (e.get_string().get(text)) return Invalid(field, "expected a path string such as \"3/0/1\"");
  absl::StatusOr<Path> path = Path::Parse(text);
  if (!path.ok()) return Invalid(field, base::Std(path.status().message()));
  return *path;
}

// Shortest text that reads back as the same double (attribute values go on the wire as text).
std::string NumberText(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, ec == std::errc() ? end : buffer);
}

absl::Status ParseOptions(dom::element e, ActionOptions& options) {
  dom::object object;
  if (e.get_object().get(object)) return Invalid("options", "expected an object");
  for (dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    if (key == "async") {
      if (field.value.get_bool().get(options.async)) return Invalid("options.async", "expected true or false");
    } else if (key == "context") {
      options.context_json = simdjson::minify(field.value);
    } else if (key == "encoding") {
      std::string_view name;
      std::optional<ContentFormat> format;
      if (!field.value.get_string().get(name)) format = ParseEncodingName(name);
      if (!format) {
        return Invalid("options.encoding",
                       "expected one of tlv, text, opaque, json, senml-json, senml-cbor, cbor");
      }
      options.encoding = format;
    } else if (key == "composite") {
      if (field.value.get_bool().get(options.composite)) return Invalid("options.composite", "expected true or false");
    } else if (key == "replace") {
      if (field.value.get_bool().get(options.replace)) return Invalid("options.replace", "expected true or false");
    } else if (key == "timeoutMs") {
      int64_t ms = 0;
      if (field.value.get_int64().get(ms) || ms < 1 || ms > 7 * 24 * 3600 * 1000LL) {
        return Invalid("options.timeoutMs", "expected milliseconds from 1 to 604800000");
      }
      options.timeout = absl::Milliseconds(ms);
    } else if (key == "includeUpdateTimes") {
      if (field.value.get_bool().get(options.include_update_times)) {
        return Invalid("options.includeUpdateTimes", "expected true or false");
      }
    } else if (key == "translateIds") {
      std::string_view value;
      if (field.value.get_string().get(value) || (value != "strings" && value != "ids")) {
        return Invalid("options.translateIds", "expected \"strings\" or \"ids\"");
      }
      options.translate_ids = value == "strings";
    } else {
      return Invalid(base::StrCat("options.", key), "unknown option");
    }
  }
  return absl::OkStatus();
}

// TS 1.1 §5.4.5 (Execute arguments): arg = DIGIT ["=" "'" *CHAR "'"], comma-separated; a
// value may not hold the quote that ends it.
absl::StatusOr<std::string> RenderArguments(dom::element e) {
  dom::object object;
  if (e.get_object().get(object)) return Invalid("args", "expected an object such as {\"0\": \"abc\"}");
  std::string out;
  for (dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    if (key.size() != 1 || key[0] < '0' || key[0] > '9') {
      return Invalid("args", base::StrCat("argument \"", key, "\": names are one digit, 0 to 9"));
    }
    if (!out.empty()) out += ',';
    out += key;
    std::string value;
    std::string_view text;
    if (field.value.is_null()) continue;
    if (!field.value.get_string().get(text)) {
      value = std::string(text);
    } else if (field.value.is_number() || field.value.is_bool()) {
      value = simdjson::minify(field.value);
    } else {
      return Invalid("args", base::StrCat("argument ", key, ": expected a string, number or null"));
    }
    if (value.find('\'') != std::string::npos) {
      return Invalid("args", base::StrCat("argument ", key, ": values cannot contain '"));
    }
    base::StrAppend(&out, "='", value, "'");
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> RenderAttributes(dom::element e) {
  dom::object object;
  if (e.get_object().get(object)) return Invalid("attributes", "expected an object such as {\"pmin\": 10}");
  std::vector<std::string> queries;
  for (dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    const bool integral = key == "pmin" || key == "pmax" || key == "epmin" || key == "epmax";
    const bool numeric = key == "gt" || key == "lt" || key == "st";
    if (!integral && !numeric) {
      return Invalid("attributes", base::StrCat("unknown attribute \"", key,
                                                "\" (pmin, pmax, gt, lt, st, epmin, epmax)"));
    }
    // Core TS 1.1 §5.1.1: an attribute without a value is removed.
    if (field.value.is_null()) {
      queries.emplace_back(key);
      continue;
    }
    if (integral) {
      int64_t value = 0;
      if (field.value.get_int64().get(value) || value < 0) {
        return Invalid("attributes", base::StrCat(key, ": expected whole seconds, 0 or more"));
      }
      queries.push_back(base::StrCat(key, "=", value));
    } else {
      double value = 0;
      if (field.value.get_double().get(value)) {
        return Invalid("attributes", base::StrCat(key, ": expected a number"));
      }
      if (key == "st" && value < 0) return Invalid("attributes", "st: must not be negative");
      queries.push_back(base::StrCat(key, "=", NumberText(value)));
    }
  }
  return queries;
}

}  // namespace

std::optional<ActionKind> ParseActionName(std::string_view name) {
  for (const NamedKind& k : kKinds) {
    if (k.name == name) return k.kind;
  }
  return std::nullopt;
}

std::string_view ActionName(ActionKind kind) {
  for (const NamedKind& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "unknown";
}

absl::StatusOr<ActionRequest> ParseActionRequest(ActionKind kind, std::string_view endpoint,
                                                 std::string_view body_json) {
  ActionRequest request;
  request.kind = kind;
  request.endpoint = std::string(endpoint);
  request.body_json = std::string(body_json);
  if (body_json.find_first_not_of(" \t\r\n") == std::string_view::npos) body_json = "{}";
  dom::element root;
  if (auto error = ThreadParser().parse(body_json.data(), body_json.size()).get(root)) {
    return absl::InvalidArgumentError(
        base::StrCat("body is not valid JSON: ", simdjson::error_message(error)));
  }
  dom::object object;
  if (root.get_object().get(object)) return absl::InvalidArgumentError("body: expected a JSON object");

  bool has_path = false, has_paths = false, has_data = false, has_args = false,
       has_attributes = false, has_token = false;
  for (dom::key_value_pair field : object) {
    const std::string_view key = field.key;
    if (key == "path") {
      absl::StatusOr<Path> path = ParsePathElement(field.value, "path");
      if (!path.ok()) return path.status();
      request.paths.push_back(*path);
      has_path = true;
    } else if (key == "paths") {
      has_paths = true;
      dom::array array;
      if (!field.value.get_array().get(array)) {
        for (dom::element item : array) {
          absl::StatusOr<Path> path = ParsePathElement(item, "paths");
          if (!path.ok()) return path.status();
          request.paths.push_back(*path);
        }
      } else {
        absl::StatusOr<Path> path = ParsePathElement(field.value, "paths");
        if (!path.ok()) return path.status();
        request.paths.push_back(*path);
      }
    } else if (key == "data") {
      request.data_json = simdjson::minify(field.value);
      has_data = true;
    } else if (key == "args") {
      absl::StatusOr<std::string> args = RenderArguments(field.value);
      if (!args.ok()) return args.status();
      request.arguments = *std::move(args);
      has_args = true;
    } else if (key == "attributes") {
      absl::StatusOr<std::vector<std::string>> queries = RenderAttributes(field.value);
      if (!queries.ok()) return queries.status();
      request.attribute_queries = *std::move(queries);
      has_attributes = true;
    } else if (key == "token") {
      std::string_view text;
      uint64_t token = 0;
      const bool parsed = !field.value.get_string().get(text) && !text.empty() &&
                          text.size() <= 16 &&
                          std::from_chars(text.data(), text.data() + text.size(), token, 16).ptr ==
                              text.data() + text.size();
      if (!parsed || token == 0) {
        return Invalid("token", "expected the hexadecimal token observe returned");
      }
      request.token = token;
      has_token = true;
    } else if (key == "options") {
      if (absl::Status status = ParseOptions(field.value, request.options); !status.ok()) {
        return status;
      }
    } else {
      return Invalid(key, "unknown field");
    }
  }

  // What each action takes (the reference's signatures).
  const bool many_paths = kind == ActionKind::kRead || kind == ActionKind::kObserve;
  const bool one_path = !many_paths && kind != ActionKind::kWriteMulti &&
                        kind != ActionKind::kObserveCancel && kind != ActionKind::kLastKnown;
  const std::string_view name = ActionName(kind);
  if (many_paths && request.paths.empty()) {
    return absl::InvalidArgumentError(base::StrCat(name, " needs \"paths\""));
  }
  if (one_path && (request.paths.size() != 1 || has_paths)) {
    return absl::InvalidArgumentError(base::StrCat(name, " needs exactly one \"path\""));
  }
  if (!many_paths && !one_path && (has_path || has_paths)) {
    return absl::InvalidArgumentError(base::StrCat(name, " takes no path"));
  }
  if (many_paths && has_path && has_paths) {
    return absl::InvalidArgumentError("give \"paths\" or \"path\", not both");
  }
  const bool takes_data = kind == ActionKind::kWrite || kind == ActionKind::kWriteMulti ||
                          kind == ActionKind::kCreate;
  if (takes_data != has_data) {
    return absl::InvalidArgumentError(takes_data ? base::StrCat(name, " needs \"data\"")
                                                 : base::StrCat(name, " takes no \"data\""));
  }
  if ((kind == ActionKind::kExecWithArgs) != has_args) {
    return absl::InvalidArgumentError(has_args ? base::StrCat(name, " takes no \"args\"")
                                               : "execWithArgs needs \"args\"");
  }
  if ((kind == ActionKind::kWriteAttributes) != has_attributes) {
    return absl::InvalidArgumentError(has_attributes
                                          ? base::StrCat(name, " takes no \"attributes\"")
                                          : "writeAttributes needs \"attributes\"");
  }
  if ((kind == ActionKind::kObserveCancel) != has_token) {
    return absl::InvalidArgumentError(has_token ? base::StrCat(name, " takes no \"token\"")
                                                : "observeCancel needs \"token\"");
  }
  return request;
}

// ---------------------------------------------------------------------------------------------
// Planning

namespace {

bool SingleValueFormat(ContentFormat f) {
  return f == ContentFormat::kText || f == ContentFormat::kOpaque || f == ContentFormat::kCbor;
}
bool SenmlFormat(ContentFormat f) {
  return f == ContentFormat::kSenmlJson || f == ContentFormat::kSenmlCbor;
}

class Planner {
 public:
  Planner(const ActionRequest& request, const ObjectCatalog& catalog, std::string_view version)
      : request_(request), catalog_(catalog), v11_(version != "1.0") {}

  absl::StatusOr<Plan> Run();

 private:
  ContentFormat Format() const {
    if (request_.options.encoding) return *request_.options.encoding;
    return composite() ? ContentFormat::kSenmlCbor : ContentFormat::kTlv;
  }
  // Composite operations only when asked for and the device speaks 1.1 (the reference falls
  // back to one request per path for 1.0 devices).
  bool composite() const { return request_.options.composite && v11_; }

  absl::Status CheckFormatForDevice(ContentFormat format) const;
  absl::Status CheckFormatForPath(ContentFormat format, const Path& path) const;
  const ResourceDefinition* FindResource(const Path& path) const;
  absl::Status UndefinedResource(ContentFormat format, const Path& path) const;

  absl::Status PlanRead(bool observe);
  absl::Status PlanComposite(uint8_t method, bool observe, std::vector<Record> records,
                             std::string_view source);
  absl::Status PlanWrite();
  absl::Status PlanWriteMulti();
  absl::Status PlanCreate();
  absl::Status PlanSimple();

  // JSON data → records, each typed by the object model.
  absl::Status AddValue(dom::element e, const Path& path, bool check_writable,
                        std::vector<Record>& out);
  absl::Status AddResource(dom::element e, const Path& resource, bool check_writable,
                           std::vector<Record>& out);
  absl::Status AddInstance(dom::element e, const Path& instance, bool check_writable,
                           std::vector<Record>& out);
  absl::StatusOr<dom::element> ParseData();
  absl::Status EncodeStep(RequestStep& step, ContentFormat format, const Path& path,
                          std::span<const Record> records, bool composite_body = false);

  const ActionRequest& request_;
  const ObjectCatalog& catalog_;
  const bool v11_;
  Plan plan_;
  dom::parser parser_;
  // Owns the text of string values: Value holds views.
  std::deque<std::string> storage_;
};

absl::Status Planner::CheckFormatForDevice(ContentFormat format) const {
  if (!v11_ && (SenmlFormat(format) || format == ContentFormat::kCbor)) {
    return absl::FailedPreconditionError(
        base::StrCat(EncodingName(format), ": needs LwM2M 1.1; the device registered with 1.0"));
  }
  return absl::OkStatus();
}

const ResourceDefinition* Planner::FindResource(const Path& path) const {
  if (!path.resource_id) return nullptr;
  const ObjectDefinition* object = catalog_.Find(path.object_id);
  return object == nullptr ? nullptr : object->FindResource(*path.resource_id);
}

absl::Status Planner::UndefinedResource(ContentFormat format, const Path& path) const {
  absl::Status status = absl::NotFoundError(
      base::StrCat(EncodingName(format), ": resource definition not found"));
  status.SetPayload(base::Absl(kPathPayload), absl::Cord(path.ToString()));
  return status;
}

// Plain text, opaque and CBOR carry one value (Core TS 1.1 §7.4.1-§7.4.3), and opaque only an
// opaque one.
absl::Status Planner::CheckFormatForPath(ContentFormat format, const Path& path) const {
  if (absl::Status status = CheckFormatForDevice(format); !status.ok()) return status;
  if (!SingleValueFormat(format)) return absl::OkStatus();
  const std::string_view name = EncodingName(format);
  if (path.depth() < 3) {
    return absl::FailedPreconditionError(base::StrCat(
        name, ": carries a single resource value, not ", path.ToString(),
        "; use tlv, json, senml-json or senml-cbor"));
  }
  const ResourceDefinition* resource = FindResource(path);
  if (resource == nullptr) return absl::OkStatus();  // the device decides about unknown ones
  if (resource->multiple && path.depth() == 3) {
    return absl::FailedPreconditionError(base::StrCat(
        name, ": ", path.ToString(), " is a multiple resource; use tlv, json, senml-json or "
        "senml-cbor, or name one resource instance"));
  }
  if (format == ContentFormat::kOpaque && resource->type != ResourceType::kOpaque) {
    return absl::FailedPreconditionError(base::StrCat(
        "opaque: ", path.ToString(), " is ", ResourceTypeName(resource->type), ", not opaque"));
  }
  if (format == ContentFormat::kText && resource->type == ResourceType::kOpaque) {
    return absl::FailedPreconditionError(
        base::StrCat("text: ", path.ToString(), " is opaque; use opaque or tlv"));
  }
  return absl::OkStatus();
}

absl::StatusOr<dom::element> Planner::ParseData() {
  dom::element root;
  if (auto error = parser_.parse(request_.data_json).get(root)) {
    return Invalid("data", simdjson::error_message(error));
  }
  return root;
}

absl::Status Planner::AddValue(dom::element e, const Path& path, bool check_writable,
                               std::vector<Record>& out) {
  const Path resource_path = Path::Resource(path.object_id, *path.instance_id, *path.resource_id);
  const ResourceDefinition* resource = FindResource(resource_path);
  if (resource == nullptr) return UndefinedResource(Format(), path);
  if (check_writable && !(resource->operations & operation::kWrite)) {
    return absl::FailedPreconditionError(
        base::StrCat(resource_path.ToString(), " (", resource->name, ") is not writable"));
  }
  const std::string where = base::StrCat("data ", path.ToString());
  Value value;
  std::string_view text;
  const bool is_string = !e.get_string().get(text);
  switch (resource->type) {
    case ResourceType::kNone:
      return absl::FailedPreconditionError(
          base::StrCat(resource_path.ToString(), " is executable and takes no value"));
    case ResourceType::kString:
    case ResourceType::kCorelnk:
      if (is_string) {
        storage_.emplace_back(text);
      } else if (e.is_number() || e.is_bool()) {
        storage_.push_back(simdjson::minify(e));
      } else {
        return Invalid(where, "expected a string");
      }
      value = resource->type == ResourceType::kString ? Value::String(storage_.back())
                                                      : Value::Corelnk(storage_.back());
      break;
    case ResourceType::kInteger: {
      int64_t v = 0;
      if (e.get_int64().get(v)) return Invalid(where, "expected an integer");
      value = Value::Integer(v);
      break;
    }
    case ResourceType::kUnsignedInteger: {
      uint64_t v = 0;
      if (e.get_uint64().get(v)) return Invalid(where, "expected an unsigned integer");
      value = Value::Unsigned(v);
      break;
    }
    case ResourceType::kFloat: {
      double v = 0;
      if (e.get_double().get(v)) return Invalid(where, "expected a number");
      value = Value::Float(v);
      break;
    }
    case ResourceType::kBoolean: {
      bool v = false;
      if (e.get_bool().get(v)) return Invalid(where, "expected true or false");
      value = Value::Boolean(v);
      break;
    }
    case ResourceType::kOpaque: {
      // JSON has no bytes: opaque values are given in base64 (RFC 4648 §4), as the data
      // events show them.
      std::string bytes;
      if (!is_string || !absl::Base64Unescape(base::Absl(text), &bytes)) {
        return Invalid(where, "expected base64 text for an opaque value");
      }
      storage_.push_back(std::move(bytes));
      value = Value::Opaque(std::string_view(storage_.back()));
      break;
    }
    case ResourceType::kTime: {
      int64_t seconds = 0;
      if (!e.get_int64().get(seconds)) {
        value = Value::Time(seconds);
      } else {
        absl::Time time;
        std::string error;
        if (!is_string || !absl::ParseTime(absl::RFC3339_full, base::Absl(text), &time, &error)) {
          return Invalid(where, "expected seconds since 1970 or an RFC 3339 time");
        }
        value = Value::Time(absl::ToUnixSeconds(time));
      }
      break;
    }
    case ResourceType::kObjlnk: {
      unsigned object_id = 0, instance_id = 0;
      char tail = 0;
      if (!is_string || std::sscanf(std::string(text).c_str(), "%u:%u%c", &object_id,
                                    &instance_id, &tail) != 2 ||
          object_id > 0xFFFF || instance_id > 0xFFFF) {
        return Invalid(where, "expected an object link \"object:instance\" such as \"3:0\"");
      }
      value = Value::Link(static_cast<uint16_t>(object_id), static_cast<uint16_t>(instance_id));
      break;
    }
  }
  out.push_back(Record{path, value, std::nullopt});
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> ParseId(std::string_view key, std::string_view what) {
  uint32_t id = 0;
  auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
  if (ec != std::errc() || end != key.data() + key.size() || key.empty() || id >= 0xFFFF) {
    return absl::InvalidArgumentError(
        base::StrCat("data: \"", key, "\" is not a ", what, " id (0 to 65534)"));
  }
  return static_cast<uint16_t>(id);
}

absl::Status Planner::AddResource(dom::element e, const Path& resource, bool check_writable,
                                  std::vector<Record>& out) {
  const ResourceDefinition* definition = FindResource(resource);
  dom::object instances;
  if (definition != nullptr && definition->multiple && !e.get_object().get(instances)) {
    for (dom::key_value_pair field : instances) {
      absl::StatusOr<uint16_t> id = ParseId(field.key, "resource instance");
      if (!id.ok()) return id.status();
      absl::Status status = AddValue(
          field.value,
          Path::ResourceInstance(resource.object_id, *resource.instance_id, *resource.resource_id,
                                 *id),
          check_writable, out);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  return AddValue(e, resource, check_writable, out);
}

absl::Status Planner::AddInstance(dom::element e, const Path& instance, bool check_writable,
                                  std::vector<Record>& out) {
  dom::object resources;
  if (e.get_object().get(resources)) {
    return Invalid("data", base::StrCat("expected an object of resources for ", instance.ToString()));
  }
  for (dom::key_value_pair field : resources) {
    absl::StatusOr<uint16_t> id = ParseId(field.key, "resource");
    if (!id.ok()) return id.status();
    absl::Status status = AddResource(
        field.value, Path::Resource(instance.object_id, *instance.instance_id, *id),
        check_writable, out);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status Planner::EncodeStep(RequestStep& step, ContentFormat format, const Path& path,
                                 std::span<const Record> records, bool composite_body) {
  absl::Status status =
      Encode(format, path, records, &step.payload, EncodeOptions{.composite = composite_body});
  if (!status.ok()) return absl::InvalidArgumentError(status.message());
  step.content_format = static_cast<uint16_t>(format);
  return absl::OkStatus();
}

absl::Status Planner::PlanRead(bool observe) {
  const ContentFormat format = Format();
  if (composite()) {
    std::vector<Record> names;
    for (const Path& path : request_.paths) names.push_back(Record{path, Value::None(), {}});
    return PlanComposite(coap::code::kFetch, observe, std::move(names),
                         observe ? "observe-composite" : "read-composite");
  }
  plan_.source = observe ? "observe" : "read";
  for (const Path& path : request_.paths) {
    if (absl::Status status = CheckFormatForPath(format, path); !status.ok()) return status;
    RequestStep step;
    step.method = coap::code::kGet;
    step.path = path;
    step.accept = static_cast<uint16_t>(format);
    if (observe) step.observe = 0;
    step.covers = {path};
    step.expects_values = true;
    plan_.steps.push_back(std::move(step));
  }
  return absl::OkStatus();
}

// Read-Composite, Observe-Composite (FETCH) and Write-Composite (iPATCH) on the root path
// (Transport TS 1.1 §6.4.1: SenML bodies, names absolute).
absl::Status Planner::PlanComposite(uint8_t method, bool observe, std::vector<Record> records,
                                    std::string_view source) {
  const ContentFormat format = Format();
  if (!SenmlFormat(format)) {
    return absl::FailedPreconditionError(base::StrCat(
        EncodingName(format), ": composite operations take senml-json or senml-cbor"));
  }
  plan_.source = std::string(source);
  RequestStep step;
  step.method = method;
  if (absl::Status status = EncodeStep(step, format, Path::Object(0), records, true);
      !status.ok()) {
    return status;
  }
  if (method == coap::code::kFetch) step.accept = static_cast<uint16_t>(format);
  if (observe) step.observe = 0;
  for (const Record& record : records) step.covers.push_back(record.path);
  step.expects_values = method == coap::code::kFetch;
  step.composite = true;
  plan_.steps.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status Planner::PlanWrite() {
  const Path& path = request_.paths[0];
  const ContentFormat format = Format();
  plan_.source = "write";
  if (path.depth() < 2) {
    return absl::InvalidArgumentError("write takes an instance or a resource path; "
                                      "use writeMulti for several instances");
  }
  if (absl::Status status = CheckFormatForPath(format, path); !status.ok()) return status;
  absl::StatusOr<dom::element> data = ParseData();
  if (!data.ok()) return data.status();
  std::vector<Record> records;
  absl::Status status =
      path.depth() == 2   ? AddInstance(*data, path, /*check_writable=*/true, records)
      : path.depth() == 3 ? AddResource(*data, path, true, records)
                          : AddValue(*data, path, true, records);
  if (!status.ok()) return status;
  if (records.empty()) return Invalid("data", "no value to write");
  RequestStep step;
  // Core TS 1.1 §6.3.3: a resource is always replaced (PUT); an instance is updated in part
  // (POST) unless the caller asks for replace.
  step.method = path.depth() == 2 && !request_.options.replace ? coap::code::kPost
                                                                : coap::code::kPut;
  step.path = path;
  step.covers = {path};
  if (status = EncodeStep(step, format, path, records); !status.ok()) return status;
  plan_.steps.push_back(std::move(step));
  return absl::OkStatus();
}

absl::Status Planner::PlanWriteMulti() {
  const ContentFormat format = Format();
  absl::StatusOr<dom::element> data = ParseData();
  if (!data.ok()) return data.status();
  dom::object objects;
  if (data->get_object().get(objects)) {
    return Invalid("data", "expected {\"object\": {\"instance\": {\"resource\": value}}}");
  }
  // Records grouped by instance, in the order given.
  std::vector<std::pair<Path, std::vector<Record>>> instances;
  for (dom::key_value_pair object : objects) {
    absl::StatusOr<uint16_t> object_id = ParseId(object.key, "object");
    if (!object_id.ok()) return object_id.status();
    dom::object by_instance;
    if (object.value.get_object().get(by_instance)) {
      return Invalid("data", base::StrCat("object ", *object_id, ": expected an object of instances"));
    }
    for (dom::key_value_pair instance : by_instance) {
      absl::StatusOr<uint16_t> instance_id = ParseId(instance.key, "instance");
      if (!instance_id.ok()) return instance_id.status();
      const Path path = Path::Instance(*object_id, *instance_id);
      std::vector<Record> records;
      if (absl::Status status = AddInstance(instance.value, path, true, records); !status.ok()) {
        return status;
      }
      instances.emplace_back(path, std::move(records));
    }
  }
  if (instances.empty()) return Invalid("data", "no value to write");
  if (composite()) {
    std::vector<Record> all;
    for (auto& [path, records] : instances) {
      all.insert(all.end(), records.begin(), records.end());
    }
    return PlanComposite(coap::code::kIPatch, false, std::move(all), "write-composite");
  }
  plan_.source = "write";
  if (absl::Status status = CheckFormatForDevice(format); !status.ok()) return status;
  for (auto& [path, records] : instances) {
    // The reference: one instance write (partial update, POST) when the encoding carries
    // several resources; otherwise one write per resource.
    if (!SingleValueFormat(format)) {
      RequestStep step;
      step.method = coap::code::kPost;
      step.path = path;
      step.covers = {path};
      if (absl::Status status = EncodeStep(step, format, path, records); !status.ok()) {
        return status;
      }
      plan_.steps.push_back(std::move(step));
      continue;
    }
    for (const Record& record : records) {
      const Path target = record.path;
      if (absl::Status status = CheckFormatForPath(format, target); !status.ok()) return status;
      RequestStep step;
      step.method = coap::code::kPut;
      step.path = target;
      step.covers = {target};
      if (absl::Status status = EncodeStep(step, format, target, std::span(&record, 1));
          !status.ok()) {
        return status;
      }
      plan_.steps.push_back(std::move(step));
    }
  }
  return absl::OkStatus();
}

// Core TS 1.1 §6.3.6 Create: POST /o with the new instance's resources; with an instance id
// the payload names the instance (TLV object instance, SenML names "i/r").
absl::Status Planner::PlanCreate() {
  const Path& path = request_.paths[0];
  const ContentFormat format = Format();
  plan_.source = "create";
  if (path.depth() > 2) return absl::InvalidArgumentError("create takes an object or instance path");
  if (SingleValueFormat(format)) {
    return absl::FailedPreconditionError(
        base::StrCat(EncodingName(format), ": cannot carry a new instance; use tlv or senml"));
  }
  if (absl::Status status = CheckFormatForDevice(format); !status.ok()) return status;
  absl::StatusOr<dom::element> data = ParseData();
  if (!data.ok()) return data.status();
  std::vector<Record> records;
  // Without an instance id the client picks one; the resources are encoded as if for instance
  // 0 and sent without the instance level (TLV only: other formats name the instance).
  const bool client_picks = path.depth() == 1;
  if (client_picks && format != ContentFormat::kTlv) {
    return absl::FailedPreconditionError(base::StrCat(
        EncodingName(format), ": create without an instance id needs tlv"));
  }
  const Path instance = Path::Instance(path.object_id, client_picks ? 0 : *path.instance_id);
  if (absl::Status status = AddInstance(*data, instance, false, records); !status.ok()) {
    return status;
  }
  RequestStep step;
  step.method = coap::code::kPost;
  step.path = Path::Object(path.object_id);
  step.covers = {path};
  if (absl::Status status =
          EncodeStep(step, format, client_picks ? instance : Path::Object(path.object_id), records);
      !status.ok()) {
    return status;
  }
  plan_.steps.push_back(std::move(step));
  return absl::OkStatus();
}

// Delete, Execute, Discover, Write-Attributes: one request on one path, no value payload.
absl::Status Planner::PlanSimple() {
  const Path& path = request_.paths[0];
  RequestStep step;
  step.path = path;
  step.covers = {path};
  const ResourceDefinition* resource = FindResource(path);
  switch (request_.kind) {
    case ActionKind::kDelete:
      plan_.source = "delete";
      // Core TS 1.1 §6.3.7: an object instance (1.1 also a resource instance).
      if (path.depth() != 2 && !(v11_ && path.depth() == 4)) {
        return absl::InvalidArgumentError("delete takes an object instance path");
      }
      step.method = coap::code::kDelete;
      break;
    case ActionKind::kExec:
    case ActionKind::kExecWithArgs:
      plan_.source = "exec";
      if (path.depth() != 3) return absl::InvalidArgumentError("exec takes a resource path");
      if (resource != nullptr && !(resource->operations & operation::kExecute)) {
        return absl::FailedPreconditionError(
            base::StrCat(path.ToString(), " (", resource->name, ") is not executable"));
      }
      step.method = coap::code::kPost;
      if (!request_.arguments.empty()) {
        step.payload = request_.arguments;
        step.content_format = static_cast<uint16_t>(ContentFormat::kText);
      }
      break;
    case ActionKind::kDiscover:
      plan_.source = "discover";
      if (path.depth() > 3) return absl::InvalidArgumentError("discover takes an object, instance or resource path");
      step.method = coap::code::kGet;
      step.accept = static_cast<uint16_t>(ContentFormat::kCoreLink);
      break;
    case ActionKind::kWriteAttributes:
      plan_.source = "write-attributes";
      for (const std::string& query : request_.attribute_queries) {
        const bool value_condition = query.starts_with("gt") || query.starts_with("lt") ||
                                     query.starts_with("st");
        // Core TS 1.1 §5.1.2: gt, lt and st apply to numeric resources only.
        if (value_condition && (path.depth() < 3 ||
                                (resource != nullptr && resource->type != ResourceType::kInteger &&
                                 resource->type != ResourceType::kUnsignedInteger &&
                                 resource->type != ResourceType::kFloat))) {
          return absl::FailedPreconditionError(base::StrCat(
              query.substr(0, 2), " applies to numeric resources only, not ", path.ToString()));
        }
      }
      step.method = coap::code::kPut;
      step.queries = request_.attribute_queries;
      break;
    default:
      return absl::InternalError("not a simple action");
  }
  plan_.steps.push_back(std::move(step));
  return absl::OkStatus();
}

absl::StatusOr<Plan> Planner::Run() {
  plan_.kind = request_.kind;
  std::vector<std::string> texts;
  for (const Path& path : request_.paths) texts.push_back(path.ToString());
  plan_.path_text = absl::StrJoin(texts, ",");
  absl::Status status;
  switch (request_.kind) {
    case ActionKind::kRead: status = PlanRead(false); break;
    case ActionKind::kObserve: status = PlanRead(true); break;
    case ActionKind::kWrite: status = PlanWrite(); break;
    case ActionKind::kWriteMulti: status = PlanWriteMulti(); break;
    case ActionKind::kCreate: status = PlanCreate(); break;
    case ActionKind::kDelete:
    case ActionKind::kExec:
    case ActionKind::kExecWithArgs:
    case ActionKind::kDiscover:
    case ActionKind::kWriteAttributes: status = PlanSimple(); break;
    case ActionKind::kObserveCancel:
    case ActionKind::kLastKnown:
      return absl::InvalidArgumentError(
          base::StrCat(ActionName(request_.kind), " sends no planned request"));
  }
  if (!status.ok()) return status;
  return std::move(plan_);
}

}  // namespace

absl::StatusOr<Plan> PlanAction(const ActionRequest& request, const ObjectCatalog& catalog,
                                std::string_view version) {
  return Planner(request, catalog, version).Run();
}

std::string CoapErrorText(uint8_t code) {
  namespace c = coap::code;
  switch (code) {
    case c::kBadRequest: return "coap: bad request";
    case c::kUnauthorized: return "coap: unauthorized";
    case c::kBadOption: return "coap: bad option";
    case c::kForbidden: return "coap: forbidden";
    case c::kNotFound: return "coap: not found";
    case c::kMethodNotAllowed: return "coap: method not allowed";
    case c::kNotAcceptable: return "coap: not acceptable";
    case c::kRequestEntityIncomplete: return "coap: request entity incomplete";
    case c::kPreconditionFailed: return "coap: precondition failed";
    case c::kRequestEntityTooLarge: return "coap: request entity too large";
    case c::kUnsupportedContentFormat: return "coap: unsupported content format";
    case c::kInternalServerError: return "coap: internal server error";
    case c::kNotImplemented: return "coap: not implemented";
    case c::kServiceUnavailable: return "coap: service unavailable";
    default: return absl::StrFormat("coap: %d.%02d", code >> 5, code & 31);
  }
}

}  // namespace lwm2md::lwm2m
