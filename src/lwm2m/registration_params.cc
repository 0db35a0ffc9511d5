#include "lwm2m/registration_params.h"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "lwm2m/link_format.h"

namespace lwm2md::lwm2m {
namespace {

enum class Operation { kRegister, kUpdate };

std::string_view OperationName(Operation operation) {
  return operation == Operation::kRegister ? "register" : "update";
}

absl::Status Error(Operation operation, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: %s", std::string(OperationName(operation)), std::string(what)));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Strict decimal: digits only (no sign, no whitespace), and the whole text.
template <typename T>
bool ParseDecimal(std::string_view text, T* out) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!IsDigit(c)) return false;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// "major.minor", each a decimal of 1-3 digits: the form of lwm2m= (Core TS 1.1 §6.2.1.1) and
// of the ver attribute (§6.2.1.1, Object Version).
bool IsMajorMinor(std::string_view text) {
  const size_t dot = text.find('.');
  if (dot == text.npos) return false;
  const std::string_view major = text.substr(0, dot);
  const std::string_view minor = text.substr(dot + 1);
  uint16_t ignored = 0;
  return major.size() <= 3 && minor.size() <= 3 && ParseDecimal(major, &ignored) &&
         ParseDecimal(minor, &ignored);
}

// The endpoint name becomes part of log lines, REST API paths and metric labels, so it is held
// to RFC 3986 pchar without percent-encoding (unreserved, sub-delims, ':' and '@'): every URN
// form the TS suggests (urn:imei:…, urn:uuid:…, urn:dev:…) fits, while spaces, quotes, '/' and
// control bytes do not.
bool IsSaneEndpointName(std::string_view name) {
  if (name.empty() || name.size() > kMaxEndpointNameLength) return false;
  constexpr std::string_view kAllowed = "-._~!$&'()*+,;=:@";
  for (char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c);
    if (!alnum && kAllowed.find(c) == kAllowed.npos) return false;
  }
  return true;
}

// An MSISDN (ITU-T E.164): up to 15 digits, optionally written with a leading '+'.
bool IsMsisdn(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty() || text.size() > 15) return false;
  for (char c : text) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

// Binding mode letters: TS 1.0.2 §5.3.1.1 lists U, UQ, S, SQ, US, UQS, where 'Q' puts the
// preceding transport in queue mode; Core TS 1.1 §6.2.1.1 has U, T, S, N with queue mode in
// its own Q parameter. Both are accepted; each letter at most once, 'Q' only after a transport.
absl::Status ParseBinding(Operation operation, std::string_view text, uint8_t* transports,
                          bool* queue) {
  *transports = 0;
  *queue = false;
  for (size_t i = 0; i < text.size(); ++i) {
    uint8_t bit = 0;
    switch (text[i]) {
      case 'U':
        bit = binding::kUdp;
        break;
      case 'T':
        bit = binding::kTcp;
        break;
      case 'S':
        bit = binding::kSms;
        break;
      case 'N':
        bit = binding::kNonIp;
        break;
      case 'Q':
        if (i == 0 || *queue) {
          return Error(operation, absl::StrFormat("b=%s is not a binding mode ('Q' must follow a "
                                                  "transport letter, once)",
                                                  std::string(text)));
        }
        *queue = true;
        continue;
      default:
        return Error(operation, absl::StrFormat("b=%s is not a binding mode (unknown letter '%c')",
                                                std::string(text), text[i]));
    }
    if ((*transports & bit) != 0) {
      return Error(operation, absl::StrFormat("b=%s is not a binding mode ('%c' twice)",
                                              std::string(text), text[i]));
    }
    *transports |= bit;
  }
  if (*transports == 0) {
    return Error(operation,
                 absl::StrFormat("b=%s is not a binding mode (no transport)", std::string(text)));
  }
  return absl::OkStatus();
}

// RFC 6690 §3.1: rt is a space-separated list of resource types.
bool HasResourceType(const LinkAttribute& rt, std::string_view type) {
  std::string_view rest = rt.value;
  while (!rest.empty()) {
    const size_t space = rest.find(' ');
    if (rest.substr(0, space) == type) return true;
    if (space == rest.npos) break;
    rest.remove_prefix(space + 1);
  }
  return false;
}

absl::Status LinkError(const Link& link, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "link <%s> at byte %d: %s", std::string(link.uri()), link.offset(), std::string(what)));
}

absl::Status ParseContentFormats(const Link& root, const LinkAttribute& ct,
                                 std::vector<uint16_t>* out) {
  std::string_view rest = ct.value;
  while (!rest.empty()) {
    const size_t space = rest.find(' ');
    const std::string_view item = rest.substr(0, space);
    rest = space == rest.npos ? std::string_view() : rest.substr(space + 1);
    if (item.empty()) continue;  // Tolerates doubled spaces.
    uint16_t format = 0;
    if (!ParseDecimal(item, &format)) {
      return LinkError(root, absl::StrFormat("ct=\"%s\" is not a list of content formats",
                                             std::string(ct.value)));
    }
    out->push_back(format);
  }
  if (out->empty()) return LinkError(root, "ct is empty");
  return absl::OkStatus();
}

// Reads "/oid" or "/oid/iid" relative to the alternate path.
absl::Status ParseObjectPath(const Link& link, std::string_view alternate_path, ObjectLink* out) {
  std::string_view path = link.uri();
  if (alternate_path != "/") {
    if (path.substr(0, alternate_path.size()) != alternate_path) {
      return LinkError(
          link, absl::StrFormat("not under the alternate path %s", std::string(alternate_path)));
    }
    path.remove_prefix(alternate_path.size());
  }
  if (path.empty() || path.front() != '/') {
    return LinkError(link, "not an Object or Object Instance path");
  }
  path.remove_prefix(1);
  const size_t slash = path.find('/');
  const std::string_view object = path.substr(0, slash);
  if (!ParseDecimal(object, &out->object_id)) {
    return LinkError(link, "the Object ID is not a number in 0..65535");
  }
  if (slash == path.npos) return absl::OkStatus();
  const std::string_view instance = path.substr(slash + 1);
  // A trailing '/' after the Object ID is tolerated as the object itself.
  if (instance.empty()) return absl::OkStatus();
  if (instance.find('/') != instance.npos) {
    return LinkError(link, "not an Object or Object Instance path (too deep)");
  }
  uint16_t instance_id = 0;
  if (!ParseDecimal(instance, &instance_id)) {
    return LinkError(link, "the Object Instance ID is not a number in 0..65535");
  }
  out->instance_id = instance_id;
  return absl::OkStatus();
}

absl::StatusOr<RegistrationRequest> Parse(Operation operation,
                                          std::span<const std::string_view> uri_queries,
                                          std::string_view payload) {
  std::optional<std::string_view> ep, lt, lwm2m, b, sms;
  bool q = false;
  for (const std::string_view query : uri_queries) {
    const size_t equals = query.find('=');
    const std::string_view key = query.substr(0, equals);
    const std::optional<std::string_view> value =
        equals == query.npos ? std::nullopt : std::optional(query.substr(equals + 1));
    if (key.empty()) {
      return Error(operation,
                   absl::StrFormat("query \"%s\" has no parameter name", std::string(query)));
    }
    std::optional<std::string_view>* slot = nullptr;
    if (key == "ep") {
      slot = &ep;
    } else if (key == "lt") {
      slot = &lt;
    } else if (key == "lwm2m") {
      slot = &lwm2m;
    } else if (key == "b") {
      slot = &b;
    } else if (key == "sms") {
      slot = &sms;
    } else if (key == "Q") {
      if (q) return Error(operation, "Q appears twice");
      // Core TS 1.1 §6.2.1.1: Q is a flag with no value.
      if (value.has_value()) {
        return Error(operation, absl::StrFormat("Q takes no value, got Q=%s", std::string(*value)));
      }
      q = true;
      continue;
    } else {
      continue;  // Unknown: see the header.
    }
    if (slot->has_value()) {
      return Error(operation, absl::StrFormat("%s appears twice", std::string(key)));
    }
    if (!value.has_value()) {
      return Error(operation, absl::StrFormat("%s has no value", std::string(key)));
    }
    *slot = *value;
  }

  RegistrationRequest request;
  if (operation == Operation::kRegister) {
    // ep and lwm2m are Register parameters only (Core TS 1.1 §6.2.2 lists neither for
    // Update); in an Update they are ignored like any unknown parameter.
    if (!ep.has_value()) return Error(operation, "ep (endpoint name) is required");
    if (!IsSaneEndpointName(*ep)) {
      return Error(operation,
                   absl::StrFormat("ep=%s is not a valid endpoint name (1-%d characters of "
                                   "letters, digits and -._~!$&'()*+,;=:@)",
                                   std::string(*ep), kMaxEndpointNameLength));
    }
    request.endpoint = std::string(*ep);
    request.lwm2m_version = std::string(lwm2m.value_or(kDefaultLwm2mVersion));
    if (!IsMajorMinor(*request.lwm2m_version)) {
      return Error(operation, absl::StrFormat("lwm2m=%s is not a major.minor version",
                                              *request.lwm2m_version));
    }
    request.lifetime_seconds = kDefaultLifetimeSeconds;
    request.binding = binding::kUdp;
    request.queue_mode = false;
  }
  if (lt.has_value()) {
    uint32_t seconds = 0;
    if (!ParseDecimal(*lt, &seconds) || seconds == 0) {
      return Error(operation,
                   absl::StrFormat("lt=%s is not a lifetime in seconds", std::string(*lt)));
    }
    request.lifetime_seconds = seconds;
  }
  if (b.has_value()) {
    uint8_t transports = 0;
    bool queue = false;
    if (absl::Status status = ParseBinding(operation, *b, &transports, &queue); !status.ok()) {
      return status;
    }
    request.binding = transports;
    if (queue) request.queue_mode = true;
  }
  if (q) request.queue_mode = true;
  if (sms.has_value()) {
    if (!IsMsisdn(*sms)) {
      return Error(operation, absl::StrFormat("sms=%s is not an MSISDN", std::string(*sms)));
    }
    request.sms_number = std::string(*sms);
  }
  if (!payload.empty() || operation == Operation::kRegister) {
    absl::StatusOr<ObjectLinks> objects = ParseObjectLinks(payload);
    if (!objects.ok()) return Error(operation, std::string(objects.status().message()));
    if (operation == Operation::kRegister && objects->links.empty()) {
      // Core TS 1.1 §6.2.1.1: the Objects and Object Instances parameter is mandatory.
      return Error(operation, "the payload lists no Objects");
    }
    request.objects = *std::move(objects);
  }
  return request;
}

}  // namespace

absl::StatusOr<ObjectLinks> ParseObjectLinks(std::string_view payload) {
  absl::StatusOr<LinkFormat> parsed = LinkFormat::Parse(payload);
  if (!parsed.ok()) return parsed.status();
  ObjectLinks result;
  std::optional<Link> root;
  for (const Link& link : *parsed) {
    const std::optional<LinkAttribute> rt = link.Find("rt");
    if (!rt.has_value() || !HasResourceType(*rt, "oma.lwm2m")) continue;
    if (root.has_value()) return LinkError(link, "a second link with rt=\"oma.lwm2m\"");
    root = link;
  }
  if (root.has_value()) {
    std::string_view path = root->uri();
    if (path.empty() || path.front() != '/') {
      return LinkError(*root, "the alternate path must start with '/'");
    }
    while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    result.alternate_path = std::string(path);
    if (const std::optional<LinkAttribute> ct = root->Find("ct"); ct.has_value()) {
      if (absl::Status status = ParseContentFormats(*root, *ct, &result.content_formats);
          !status.ok()) {
        return status;
      }
    }
  }
  for (const Link& link : *parsed) {
    if (root.has_value() && link.offset() == root->offset()) continue;
    ObjectLink object;
    if (absl::Status status = ParseObjectPath(link, result.alternate_path, &object); !status.ok()) {
      return status;
    }
    if (const std::optional<LinkAttribute> ver = link.Find("ver"); ver.has_value()) {
      if (!ver->has_value || !IsMajorMinor(ver->value)) {
        return LinkError(
            link, absl::StrFormat("ver=%s is not a major.minor version", std::string(ver->value)));
      }
      object.version = std::string(ver->value);
    }
    result.links.push_back(std::move(object));
  }
  return result;
}

absl::StatusOr<RegistrationRequest> ParseRegister(std::span<const std::string_view> uri_queries,
                                                  std::string_view payload) {
  return Parse(Operation::kRegister, uri_queries, payload);
}

absl::StatusOr<RegistrationRequest> ParseUpdate(std::span<const std::string_view> uri_queries,
                                                std::string_view payload) {
  return Parse(Operation::kUpdate, uri_queries, payload);
}

}  // namespace lwm2md::lwm2m
