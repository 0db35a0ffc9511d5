#include "lwm2m/endpoint_config.h"

#include <simdjson.h>

#include <algorithm>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/strings.h"

namespace lwm2md::lwm2m {
namespace {

// absl::StrCat over std::string_view arguments (this abseil's string_view is its own type).
template <typename T>
decltype(auto) AsAlphaNum(const T& value) {
  if constexpr (std::is_convertible_v<const T&, std::string_view> &&
                !std::is_convertible_v<const T&, absl::string_view>) {
    return base::Absl(value);
  } else {
    return (value);
  }
}
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(AsAlphaNum(args)...);
}

constexpr std::string_view kEndpointPrefix = "ep/";
constexpr std::string_view kPskPrefix = "psk/";
constexpr std::string_view kThumbprintPrefix = "x509/";
constexpr std::string_view kSettingsKey = "service";
// Bumped when the stored form changes incompatibly; readers accept what they know.
constexpr int kStoredVersion = 1;

std::string EndpointKey(std::string_view name) { return Cat(kEndpointPrefix, name); }
std::string PskKey(std::string_view identity) { return Cat(kPskPrefix, identity); }
std::string ThumbprintKey(std::string_view thumbprint) {
  return Cat(kThumbprintPrefix, thumbprint);
}

// The two unique indexes of the endpoints table: a credential's key → the endpoint holding
// it. Only the security mode a credential belongs to fills it (validation forbids the
// field otherwise), so an empty value means no index entry.
struct CredentialIndex {
  std::string_view field;  // as the API names it
  std::string (*key)(std::string_view value);
  const std::string EndpointConfig::*value;
};
constexpr CredentialIndex kCredentialIndexes[] = {
    {"pskIdentity", &PskKey, &EndpointConfig::psk_identity},
    {"certificateThumbprint", &ThumbprintKey, &EndpointConfig::certificate_thumbprint},
};

absl::Status FieldError(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(Cat(field, ": ", what));
}

// ---------------------------------------------------------------------------------------------
// Hex.

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> HexToBytes(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string bytes;
  bytes.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = HexDigit(hex[i]);
    const int low = HexDigit(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(high << 4 | low));
  }
  return bytes;
}

std::string BytesToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0xF]);
  }
  return hex;
}

// Thumbprints are often copied from `openssl x509 -fingerprint -sha256`, which prints
// "AB:CD:...": accept that form and either case, keep lowercase digits only.
std::string NormalizeThumbprint(std::string_view text) {
  std::string out;
  out.reserve(64);
  for (char c : text) {
    if (c == ':') continue;
    out.push_back(c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

bool HasControlCharacter(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7F;
  });
}

// ---------------------------------------------------------------------------------------------
// Time: stored as Unix milliseconds, shown as RFC 3339 UTC with milliseconds. Stamps are taken
// at millisecond precision so that what a write returns equals what a later read returns.

absl::Time NowMillis() { return absl::FromUnixMillis(absl::ToUnixMillis(absl::Now())); }

std::string FormatRfc3339(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

// ---------------------------------------------------------------------------------------------
// JSON reading (simdjson DOM). API bodies are untrusted: every accessor checks the type and
// names the field in its error.

using simdjson::dom::element;
using simdjson::dom::element_type;

absl::StatusOr<simdjson::dom::object> ParseObject(simdjson::dom::parser& parser,
                                                  std::string_view json) {
  element root;
  if (auto error = parser.parse(json.data(), json.size()).get(root); error) {
    return absl::InvalidArgumentError(
        Cat("body: invalid JSON (", simdjson::error_message(error), ")"));
  }
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("body: expected a JSON object");
  }
  return object;
}

absl::StatusOr<std::string> ReadString(element value, std::string_view field) {
  std::string_view text;
  if (value.get_string().get(text) != simdjson::SUCCESS)
    return FieldError(field, "expected a string");
  return std::string(text);
}

// Integers only: 30.0 or 3e1 are refused rather than silently truncated.
absl::StatusOr<uint64_t> ReadUint(element value, std::string_view field) {
  const element_type type = value.type();
  if (type != element_type::INT64 && type != element_type::UINT64) {
    return FieldError(field, "expected a non-negative integer");
  }
  uint64_t number = 0;
  if (value.get_uint64().get(number) != simdjson::SUCCESS) {
    return FieldError(field, "expected a non-negative integer");
  }
  return number;
}

absl::StatusOr<uint32_t> ReadUintInRange(element value, std::string_view field, uint32_t min,
                                         uint32_t max) {
  absl::StatusOr<uint64_t> number = ReadUint(value, field);
  if (!number.ok()) return number.status();
  if (*number < min || *number > max) {
    return FieldError(field, Cat("must be between ", min, " and ", max));
  }
  return static_cast<uint32_t>(*number);
}

absl::StatusOr<double> ReadDouble(element value, std::string_view field) {
  double number = 0;
  if (value.get_double().get(number) != simdjson::SUCCESS) {
    return FieldError(field, "expected a number");
  }
  return number;
}

absl::StatusOr<bool> ReadBool(element value, std::string_view field) {
  bool flag = false;
  if (value.get_bool().get(flag) != simdjson::SUCCESS) {
    return FieldError(field, "expected true or false");
  }
  return flag;
}

absl::StatusOr<std::vector<std::string>> ReadStringArray(element value, std::string_view field) {
  simdjson::dom::array array;
  if (value.get_array().get(array) != simdjson::SUCCESS) {
    return FieldError(field, "expected an array of strings");
  }
  std::vector<std::string> out;
  for (element item : array) {
    std::string_view text;
    if (item.get_string().get(text) != simdjson::SUCCESS) {
      return FieldError(field, "expected an array of strings");
    }
    // Bounded here already so that a huge array is refused before it is copied whole.
    if (out.size() == kMaxTags) return FieldError(field, Cat("at most ", kMaxTags));
    out.emplace_back(text);
  }
  return out;
}

bool IsNull(element value) { return value.type() == element_type::NULL_VALUE; }

// Fields the API shows but does not take.
bool IsReadOnlyField(std::string_view key) {
  static constexpr std::string_view kReadOnly[] = {
      "pskKeySet", "createdAt", "updatedAt", "status", "lastSeen", "address", "registration"};
  return std::find(std::begin(kReadOnly), std::end(kReadOnly), key) != std::end(kReadOnly);
}

absl::Status UnknownField(std::string_view key) {
  if (IsReadOnlyField(key)) return FieldError(key, "read-only field");
  return FieldError(key, "unknown field");
}

// RFC 8259 §4 leaves duplicate names' meaning open; refusing them keeps one reading.
class DuplicateCheck {
 public:
  absl::Status Add(std::string_view key) {
    if (!seen_.insert(key).second) return FieldError(key, "duplicate field");
    return absl::OkStatus();
  }

 private:
  absl::flat_hash_set<std::string_view> seen_;
};

absl::StatusOr<SecurityMode> ReadSecurityMode(element value) {
  absl::StatusOr<std::string> text = ReadString(value, "securityMode");
  if (!text.ok()) return text.status();
  std::optional<SecurityMode> mode = ParseSecurityMode(*text);
  if (!mode.has_value()) {
    return FieldError("securityMode",
                      Cat("unknown mode \"", *text, "\" (none, psk, x509, x509-ca)"));
  }
  return *mode;
}

absl::StatusOr<std::string> ReadPskKey(element value) {
  absl::StatusOr<std::string> hex = ReadString(value, "pskKey");
  if (!hex.ok()) return hex.status();
  std::optional<std::string> bytes = HexToBytes(*hex);
  if (!bytes.has_value()) return FieldError("pskKey", "expected an even number of hex digits");
  return *std::move(bytes);
}

absl::StatusOr<std::string> ReadThumbprint(element value) {
  absl::StatusOr<std::string> text = ReadString(value, "certificateThumbprint");
  if (!text.ok()) return text.status();
  return NormalizeThumbprint(*text);
}

// What an endpoint object may hold: the API body, or the stored record (which adds the
// timestamps and a version, and tolerates fields a later version added).
enum class EndpointSource { kApi, kStored };

absl::StatusOr<EndpointConfig> ReadEndpointObject(simdjson::dom::object object,
                                                  EndpointSource source) {
  EndpointConfig config;
  DuplicateCheck duplicates;
  for (auto [key, value] : object) {
    if (absl::Status status = duplicates.Add(key); !status.ok()) return status;
    if (key == "name") {
      absl::StatusOr<std::string> name = ReadString(value, key);
      if (!name.ok()) return name.status();
      config.name = *std::move(name);
    } else if (key == "securityMode") {
      absl::StatusOr<SecurityMode> mode = ReadSecurityMode(value);
      if (!mode.ok()) return mode.status();
      config.security_mode = *mode;
    } else if (key == "pskIdentity") {
      absl::StatusOr<std::string> identity = ReadString(value, key);
      if (!identity.ok()) return identity.status();
      config.psk_identity = *std::move(identity);
    } else if (key == "pskKey") {
      absl::StatusOr<std::string> psk = ReadPskKey(value);
      if (!psk.ok()) return psk.status();
      config.psk_key = *std::move(psk);
    } else if (key == "certificateThumbprint") {
      absl::StatusOr<std::string> thumbprint = ReadThumbprint(value);
      if (!thumbprint.ok()) return thumbprint.status();
      config.certificate_thumbprint = *std::move(thumbprint);
    } else if (key == "missingTimeoutSeconds") {
      if (IsNull(value)) continue;
      absl::StatusOr<uint32_t> seconds = ReadUintInRange(value, key, 0, kMaxMissingTimeoutSeconds);
      if (!seconds.ok()) return seconds.status();
      config.missing_timeout_seconds = *seconds;
    } else if (key == "tags") {
      absl::StatusOr<std::vector<std::string>> tags = ReadStringArray(value, key);
      if (!tags.ok()) return tags.status();
      config.tags = *std::move(tags);
    } else if (source == EndpointSource::kStored && (key == "createdAt" || key == "updatedAt")) {
      int64_t millis = 0;
      if (value.get_int64().get(millis) != simdjson::SUCCESS) {
        return FieldError(key, "expected Unix milliseconds");
      }
      (key == "createdAt" ? config.created_at : config.updated_at) = absl::FromUnixMillis(millis);
    } else if (source == EndpointSource::kStored) {
      // "v" and fields of later versions.
    } else {
      return UnknownField(key);
    }
  }
  return config;
}

// Stored form: the API's input form (PSK key in hex) plus version and timestamps.
std::string StoredEndpointJson(const EndpointConfig& config) {
  base::JsonWriter out;
  out.BeginObject().Key("v").Int(kStoredVersion);
  out.Key("name").String(config.name);
  out.Key("securityMode").String(SecurityModeName(config.security_mode));
  if (!config.psk_identity.empty()) out.Key("pskIdentity").String(config.psk_identity);
  if (!config.psk_key.empty()) out.Key("pskKey").String(BytesToHex(config.psk_key));
  if (!config.certificate_thumbprint.empty()) {
    out.Key("certificateThumbprint").String(config.certificate_thumbprint);
  }
  if (config.missing_timeout_seconds.has_value()) {
    out.Key("missingTimeoutSeconds").Uint(*config.missing_timeout_seconds);
  }
  if (!config.tags.empty()) {
    out.Key("tags").BeginArray();
    for (const std::string& tag : config.tags) out.String(tag);
    out.EndArray();
  }
  out.Key("createdAt").Int(absl::ToUnixMillis(config.created_at));
  out.Key("updatedAt").Int(absl::ToUnixMillis(config.updated_at));
  out.EndObject();
  return out.Take();
}

absl::StatusOr<EndpointConfig> ParseStoredEndpoint(std::string_view name, std::string_view json) {
  // Shards parse a configuration on every Register: reuse the parser's buffers per thread.
  // Everything is copied out before the next parse on this thread can reuse them.
  thread_local simdjson::dom::parser parser;
  absl::StatusOr<simdjson::dom::object> object = ParseObject(parser, json);
  absl::StatusOr<EndpointConfig> config = object.ok()
                                              ? ReadEndpointObject(*object, EndpointSource::kStored)
                                              : absl::StatusOr<EndpointConfig>(object.status());
  if (!config.ok() || config->name != name) {
    return absl::DataLossError(Cat("stored configuration of endpoint \"", name, "\" is corrupt: ",
                                   config.ok() ? "name mismatch" : config.status().message()));
  }
  return config;
}

// Settings fields, in the order they are written.
constexpr std::string_view kSettingsFields[] = {
    "coapAckTimeoutMs", "coapAckRandomFactor",          "coapMaxRetransmit",
    "bootstrapEnabled", "defaultMissingTimeoutSeconds", "allowUnknownEndpoints"};

absl::Status ReadSettingsField(std::string_view key, element value, ServiceSettings& settings) {
  if (key == "coapAckTimeoutMs") {
    absl::StatusOr<uint32_t> ms = ReadUintInRange(value, key, 100, 60000);
    if (!ms.ok()) return ms.status();
    settings.coap_ack_timeout_ms = *ms;
  } else if (key == "coapAckRandomFactor") {
    absl::StatusOr<double> factor = ReadDouble(value, key);
    if (!factor.ok()) return factor.status();
    settings.coap_ack_random_factor = *factor;
  } else if (key == "coapMaxRetransmit") {
    absl::StatusOr<uint32_t> count = ReadUintInRange(value, key, 0, 20);
    if (!count.ok()) return count.status();
    settings.coap_max_retransmit = *count;
  } else if (key == "bootstrapEnabled") {
    absl::StatusOr<bool> flag = ReadBool(value, key);
    if (!flag.ok()) return flag.status();
    settings.bootstrap_enabled = *flag;
  } else if (key == "defaultMissingTimeoutSeconds") {
    absl::StatusOr<uint32_t> seconds = ReadUintInRange(value, key, 0, kMaxMissingTimeoutSeconds);
    if (!seconds.ok()) return seconds.status();
    settings.default_missing_timeout_seconds = *seconds;
  } else if (key == "allowUnknownEndpoints") {
    absl::StatusOr<bool> flag = ReadBool(value, key);
    if (!flag.ok()) return flag.status();
    settings.allow_unknown_endpoints = *flag;
  } else {
    return absl::NotFoundError(base::Absl(key));  // the caller decides whether unknown is an error
  }
  return absl::OkStatus();
}

absl::StatusOr<ServiceSettings> ReadSettings(std::string_view json, const ServiceSettings& base,
                                             bool partial, bool strict) {
  simdjson::dom::parser parser;
  absl::StatusOr<simdjson::dom::object> object = ParseObject(parser, json);
  if (!object.ok()) return object.status();
  ServiceSettings settings = base;
  DuplicateCheck duplicates;
  size_t known = 0;
  for (auto [key, value] : *object) {
    if (absl::Status status = duplicates.Add(key); !status.ok()) return status;
    absl::Status status = ReadSettingsField(key, value, settings);
    if (absl::IsNotFound(status)) {
      if (strict) return FieldError(key, "unknown field");
      continue;
    }
    if (!status.ok()) return status;
    ++known;
  }
  if (!partial && known != std::size(kSettingsFields)) {
    for (std::string_view field : kSettingsFields) {
      if (object->at_key(field).error() != simdjson::SUCCESS) {
        return FieldError(field, "required (PUT replaces every setting; PATCH updates some)");
      }
    }
  }
  if (absl::Status status = ValidateSettings(settings); !status.ok()) return status;
  return settings;
}

}  // namespace

// -------------------------------------------------------------------------------------------
// Names and validation.

std::string_view SecurityModeName(SecurityMode mode) {
  switch (mode) {
    case SecurityMode::kNone:
      return "none";
    case SecurityMode::kPsk:
      return "psk";
    case SecurityMode::kCertificate:
      return "x509";
    case SecurityMode::kCertificateCa:
      return "x509-ca";
  }
  return "none";
}

std::optional<SecurityMode> ParseSecurityMode(std::string_view name) {
  for (SecurityMode mode : {SecurityMode::kNone, SecurityMode::kPsk, SecurityMode::kCertificate,
                            SecurityMode::kCertificateCa}) {
    if (name == SecurityModeName(mode)) return mode;
  }
  return std::nullopt;
}

absl::Status ValidateEndpointName(std::string_view name) {
  if (name.empty()) return FieldError("name", "required");
  if (name.size() > kMaxEndpointNameBytes) {
    return FieldError("name", Cat("longer than ", kMaxEndpointNameBytes, " bytes"));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const auto byte = static_cast<unsigned char>(name[i]);
    if (byte < 0x21 || byte > 0x7E || byte == '/' || byte == '?' || byte == '#') {
      return FieldError("name", absl::StrFormat("byte 0x%02x at offset %d is not allowed "
                                                "(printable ASCII except space, '/', '?', '#')",
                                                byte, i));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateEndpointConfig(const EndpointConfig& config) {
  if (absl::Status status = ValidateEndpointName(config.name); !status.ok()) return status;
  const bool psk = config.security_mode == SecurityMode::kPsk;
  const bool x509 = config.security_mode == SecurityMode::kCertificate;
  if (psk) {
    if (config.psk_identity.empty())
      return FieldError("pskIdentity", "required with securityMode psk");
    if (config.psk_identity.size() > kMaxPskIdentityBytes) {
      return FieldError("pskIdentity", Cat("longer than ", kMaxPskIdentityBytes, " bytes"));
    }
    if (HasControlCharacter(config.psk_identity)) {
      return FieldError("pskIdentity", "control characters are not allowed");
    }
    if (config.psk_key.empty()) return FieldError("pskKey", "required with securityMode psk");
    if (config.psk_key.size() > kMaxPskKeyBytes) {
      return FieldError("pskKey", Cat("longer than ", kMaxPskKeyBytes, " bytes"));
    }
  } else {
    if (!config.psk_identity.empty()) {
      return FieldError("pskIdentity", "only allowed with securityMode psk");
    }
    if (!config.psk_key.empty()) return FieldError("pskKey", "only allowed with securityMode psk");
  }
  if (x509) {
    const std::string& thumbprint = config.certificate_thumbprint;
    if (thumbprint.empty()) {
      return FieldError("certificateThumbprint", "required with securityMode x509");
    }
    const bool well_formed =
        thumbprint.size() == 64 && std::all_of(thumbprint.begin(), thumbprint.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        });
    if (!well_formed) {
      return FieldError("certificateThumbprint", "expected 64 hex digits (a SHA-256 digest)");
    }
  } else if (!config.certificate_thumbprint.empty()) {
    return FieldError("certificateThumbprint", "only allowed with securityMode x509");
  }
  if (config.missing_timeout_seconds.has_value() &&
      *config.missing_timeout_seconds > kMaxMissingTimeoutSeconds) {
    return FieldError("missingTimeoutSeconds",
                      Cat("must be between 0 and ", kMaxMissingTimeoutSeconds));
  }
  if (config.tags.size() > kMaxTags) return FieldError("tags", Cat("at most ", kMaxTags));
  absl::flat_hash_set<std::string_view> seen;
  for (size_t i = 0; i < config.tags.size(); ++i) {
    const std::string& tag = config.tags[i];
    const std::string field = Cat("tags[", i, "]");
    if (tag.empty()) return FieldError(field, "empty");
    if (tag.size() > kMaxTagBytes) {
      return FieldError(field, Cat("longer than ", kMaxTagBytes, " bytes"));
    }
    if (HasControlCharacter(tag)) return FieldError(field, "control characters are not allowed");
    if (!seen.insert(tag).second) return FieldError(field, Cat("duplicate \"", tag, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateSettings(const ServiceSettings& settings) {
  if (settings.coap_ack_timeout_ms < 100 || settings.coap_ack_timeout_ms > 60000) {
    return FieldError("coapAckTimeoutMs", "must be between 100 and 60000");
  }
  // Written as a negated range so that NaN fails too.
  if (!(settings.coap_ack_random_factor >= 1.0 && settings.coap_ack_random_factor <= 4.0)) {
    return FieldError("coapAckRandomFactor", "must be between 1.0 and 4.0");
  }
  if (settings.coap_max_retransmit > 20) {
    return FieldError("coapMaxRetransmit", "must be between 0 and 20");
  }
  if (settings.default_missing_timeout_seconds > kMaxMissingTimeoutSeconds) {
    return FieldError("defaultMissingTimeoutSeconds",
                      Cat("must be between 0 and ", kMaxMissingTimeoutSeconds));
  }
  return absl::OkStatus();
}

uint32_t EffectiveMissingTimeoutSeconds(const EndpointConfig* config,
                                        const ServiceSettings& settings) {
  if (config != nullptr && config->missing_timeout_seconds.has_value()) {
    return *config->missing_timeout_seconds;
  }
  return settings.default_missing_timeout_seconds;
}

// -------------------------------------------------------------------------------------------
// JSON forms.

absl::StatusOr<EndpointConfig> ParseEndpointJson(std::string_view json,
                                                 std::string_view name_from_path) {
  simdjson::dom::parser parser;
  absl::StatusOr<simdjson::dom::object> object = ParseObject(parser, json);
  if (!object.ok()) return object.status();
  absl::StatusOr<EndpointConfig> config = ReadEndpointObject(*object, EndpointSource::kApi);
  if (!config.ok()) return config.status();
  if (!name_from_path.empty()) {
    if (config->name.empty()) {
      config->name = std::string(name_from_path);
    } else if (config->name != name_from_path) {
      return FieldError("name", "differs from the name in the path");
    }
  }
  if (absl::Status status = ValidateEndpointConfig(*config); !status.ok()) return status;
  return config;
}

absl::StatusOr<EndpointUpdate> ParseEndpointUpdateJson(std::string_view json,
                                                       std::string_view name) {
  simdjson::dom::parser parser;
  absl::StatusOr<simdjson::dom::object> object = ParseObject(parser, json);
  if (!object.ok()) return object.status();
  EndpointUpdate update;
  DuplicateCheck duplicates;
  // RFC 7396: null removes a member; for the string fields that means empty.
  auto read_clearable = [](element value, std::string_view key,
                           auto read) -> absl::StatusOr<std::string> {
    if (IsNull(value)) return std::string();
    return read(value, key);
  };
  for (auto [key, value] : *object) {
    if (absl::Status status = duplicates.Add(key); !status.ok()) return status;
    if (key == "name") {
      absl::StatusOr<std::string> given = ReadString(value, key);
      if (!given.ok()) return given.status();
      if (*given != name) return FieldError(key, "cannot be changed");
    } else if (key == "securityMode") {
      absl::StatusOr<SecurityMode> mode = ReadSecurityMode(value);
      if (!mode.ok()) return mode.status();
      update.security_mode = *mode;
    } else if (key == "pskIdentity") {
      absl::StatusOr<std::string> identity = read_clearable(value, key, ReadString);
      if (!identity.ok()) return identity.status();
      update.psk_identity = *std::move(identity);
    } else if (key == "pskKey") {
      absl::StatusOr<std::string> psk =
          read_clearable(value, key, [](element v, std::string_view) { return ReadPskKey(v); });
      if (!psk.ok()) return psk.status();
      update.psk_key = *std::move(psk);
    } else if (key == "certificateThumbprint") {
      absl::StatusOr<std::string> thumbprint =
          read_clearable(value, key, [](element v, std::string_view) { return ReadThumbprint(v); });
      if (!thumbprint.ok()) return thumbprint.status();
      update.certificate_thumbprint = *std::move(thumbprint);
    } else if (key == "missingTimeoutSeconds") {
      if (IsNull(value)) {
        update.missing_timeout_seconds.emplace(std::nullopt);
        continue;
      }
      absl::StatusOr<uint32_t> seconds = ReadUintInRange(value, key, 0, kMaxMissingTimeoutSeconds);
      if (!seconds.ok()) return seconds.status();
      update.missing_timeout_seconds.emplace(*seconds);
    } else if (key == "tags") {
      if (IsNull(value)) {
        update.tags.emplace();
        continue;
      }
      absl::StatusOr<std::vector<std::string>> tags = ReadStringArray(value, key);
      if (!tags.ok()) return tags.status();
      update.tags = *std::move(tags);
    } else {
      return UnknownField(key);
    }
  }
  return update;
}

void WriteEndpointMembers(const EndpointConfig& config, base::JsonWriter& out) {
  out.Key("name").String(config.name);
  out.Key("securityMode").String(SecurityModeName(config.security_mode));
  if (config.security_mode == SecurityMode::kPsk) {
    out.Key("pskIdentity").String(config.psk_identity);
  }
  // Never the key itself: whoever reads the API need not be able to impersonate the device.
  out.Key("pskKeySet").Bool(!config.psk_key.empty());
  if (config.security_mode == SecurityMode::kCertificate) {
    out.Key("certificateThumbprint").String(config.certificate_thumbprint);
  }
  if (config.missing_timeout_seconds.has_value()) {
    out.Key("missingTimeoutSeconds").Uint(*config.missing_timeout_seconds);
  } else {
    out.Key("missingTimeoutSeconds").Null();
  }
  out.Key("tags").BeginArray();
  for (const std::string& tag : config.tags) out.String(tag);
  out.EndArray();
  out.Key("createdAt").String(FormatRfc3339(config.created_at));
  out.Key("updatedAt").String(FormatRfc3339(config.updated_at));
}

std::string EndpointToJson(const EndpointConfig& config) {
  base::JsonWriter out;
  out.BeginObject();
  WriteEndpointMembers(config, out);
  out.EndObject();
  return out.Take();
}

absl::StatusOr<ServiceSettings> ParseSettingsJson(std::string_view json,
                                                  const ServiceSettings& base, bool partial) {
  return ReadSettings(json, base, partial, /*strict=*/true);
}

std::string SettingsToJson(const ServiceSettings& settings) {
  base::JsonWriter out;
  out.BeginObject();
  out.Key("coapAckTimeoutMs").Uint(settings.coap_ack_timeout_ms);
  out.Key("coapAckRandomFactor").Double(settings.coap_ack_random_factor);
  out.Key("coapMaxRetransmit").Uint(settings.coap_max_retransmit);
  out.Key("bootstrapEnabled").Bool(settings.bootstrap_enabled);
  out.Key("defaultMissingTimeoutSeconds").Uint(settings.default_missing_timeout_seconds);
  out.Key("allowUnknownEndpoints").Bool(settings.allow_unknown_endpoints);
  out.EndObject();
  return out.Take();
}

// -------------------------------------------------------------------------------------------
// EndpointConfigStore.

absl::StatusOr<std::unique_ptr<EndpointConfigStore>> EndpointConfigStore::Open(
    store::Store& store) {
  std::unique_ptr<EndpointConfigStore> configs(new EndpointConfigStore(store));

  absl::StatusOr<std::optional<std::string>> stored =
      store.Get(store::Table::kSettings, kSettingsKey);
  if (!stored.ok()) return stored.status();
  ServiceSettings settings;
  if (stored->has_value()) {
    // Not strict: a setting that a later version added (and this one does not know) must not
    // stop a downgraded server from starting.
    absl::StatusOr<ServiceSettings> parsed =
        ReadSettings(**stored, ServiceSettings(), /*partial=*/true, /*strict=*/false);
    if (!parsed.ok()) {
      return absl::DataLossError(
          Cat("stored service settings are invalid: ", parsed.status().message()));
    }
    settings = *parsed;
  }
  {
    absl::MutexLock lock(&configs->settings_mutex_);
    configs->settings_ = settings;
  }

  // The table also holds the credential indexes, so the table's entry count is not the
  // endpoint count; counting once here (a key scan, fast even for millions) keeps Count()
  // free afterwards. The same scan notes the "x509" endpoints: data written before the
  // thumbprint index existed gets its entries now, so that their devices are found.
  uint64_t count = 0;
  std::vector<std::pair<std::string, std::string>> thumbprints;  // thumbprint, name
  absl::Status scanned = store.Scan(
      store::Table::kEndpoints, kEndpointPrefix, {},
      [&](std::string_view key, std::string_view value) {
        ++count;
        if (value.find("\"certificateThumbprint\"") == std::string_view::npos) return true;
        absl::StatusOr<EndpointConfig> config =
            ParseStoredEndpoint(key.substr(kEndpointPrefix.size()), value);
        // A corrupt record does not stop the start: Get reports it when it is needed.
        if (config.ok() && config->security_mode == SecurityMode::kCertificate) {
          thumbprints.emplace_back(config->certificate_thumbprint, config->name);
        }
        return true;
      });
  if (!scanned.ok()) return scanned;
  configs->count_.store(count);
  store::WriteBatch missing;
  absl::flat_hash_set<std::string> indexed;
  for (const auto& [thumbprint, name] : thumbprints) {
    // A thumbprint two endpoints claim (possible only in data written by hand) stays with
    // the first in name order.
    if (!indexed.insert(thumbprint).second) continue;
    absl::StatusOr<std::optional<std::string>> owner = configs->FindNameByThumbprint(thumbprint);
    if (!owner.ok()) return owner.status();
    if (!owner->has_value()) {
      missing.Put(store::Table::kEndpoints, ThumbprintKey(thumbprint), name);
    }
  }
  if (!missing.empty()) {
    if (absl::Status status = store.Write(std::move(missing)); !status.ok()) return status;
  }
  return configs;
}

absl::StatusOr<std::optional<EndpointConfig>> EndpointConfigStore::Get(
    std::string_view name) const {
  // A name that cannot be valid cannot be stored; refusing it here also keeps odd bytes out
  // of the key lookup.
  if (!ValidateEndpointName(name).ok()) return std::optional<EndpointConfig>();
  absl::StatusOr<std::optional<std::string>> stored =
      store_.Get(store::Table::kEndpoints, EndpointKey(name));
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return std::optional<EndpointConfig>();
  absl::StatusOr<EndpointConfig> config = ParseStoredEndpoint(name, **stored);
  if (!config.ok()) return config.status();
  return std::optional<EndpointConfig>(*std::move(config));
}

absl::StatusOr<std::optional<std::string>> EndpointConfigStore::FindNameByPskIdentity(
    std::string_view identity) const {
  if (identity.empty() || identity.size() > kMaxPskIdentityBytes) {
    return std::optional<std::string>();
  }
  return store_.Get(store::Table::kEndpoints, PskKey(identity));
}

absl::StatusOr<std::optional<std::string>> EndpointConfigStore::FindNameByThumbprint(
    std::string_view thumbprint) const {
  if (thumbprint.size() != 64) return std::optional<std::string>();
  return store_.Get(store::Table::kEndpoints, ThumbprintKey(thumbprint));
}

absl::StatusOr<EndpointPage> EndpointConfigStore::List(std::string_view start_after,
                                                       size_t limit) const {
  EndpointPage page;
  limit = std::max<size_t>(limit, 1);
  absl::Status parse_error;
  bool more = false;
  const std::string start = start_after.empty() ? std::string() : EndpointKey(start_after);
  absl::Status scanned = store_.Scan(store::Table::kEndpoints, kEndpointPrefix, start,
                                     [&](std::string_view key, std::string_view value) {
                                       if (page.endpoints.size() == limit) {
                                         more = true;
                                         return false;
                                       }
                                       absl::StatusOr<EndpointConfig> config = ParseStoredEndpoint(
                                           key.substr(kEndpointPrefix.size()), value);
                                       if (!config.ok()) {
                                         parse_error = config.status();
                                         return false;
                                       }
                                       page.endpoints.push_back(*std::move(config));
                                       return true;
                                     });
  if (!scanned.ok()) return scanned;
  if (!parse_error.ok()) return parse_error;
  if (more) page.next = page.endpoints.back().name;
  return page;
}

uint64_t EndpointConfigStore::Count() const { return count_.load(std::memory_order_relaxed); }

ServiceSettings EndpointConfigStore::settings() const {
  absl::ReaderMutexLock lock(&settings_mutex_);
  return settings_;
}

absl::StatusOr<EndpointConfig> EndpointConfigStore::WriteLocked(
    EndpointConfig config, const std::optional<EndpointConfig>& previous) {
  store::WriteBatch batch;
  for (const CredentialIndex& index : kCredentialIndexes) {
    const std::string& value = config.*index.value;
    const bool changed = !previous.has_value() || (*previous).*index.value != value;
    if (!value.empty() && changed) {
      absl::StatusOr<std::optional<std::string>> owner =
          store_.Get(store::Table::kEndpoints, index.key(value));
      if (!owner.ok()) return owner.status();
      if (owner->has_value() && **owner != config.name) {
        // The index is written in the same batch as the configurations, so it cannot go
        // stale; the check on the owner's configuration is a belt for data written by hand.
        absl::StatusOr<std::optional<EndpointConfig>> holder = Get(**owner);
        if (!holder.ok()) return holder.status();
        if (holder->has_value() && (**holder).*index.value == value) {
          return absl::AlreadyExistsError(Cat(index.field, ": \"", value,
                                              "\" is already used by endpoint \"", **owner, "\""));
        }
      }
    }
    if (previous.has_value() && !((*previous).*index.value).empty() && changed) {
      batch.Delete(store::Table::kEndpoints, index.key((*previous).*index.value));
    }
    if (!value.empty()) batch.Put(store::Table::kEndpoints, index.key(value), config.name);
  }
  batch.Put(store::Table::kEndpoints, EndpointKey(config.name), StoredEndpointJson(config));
  if (absl::Status status = store_.Write(std::move(batch)); !status.ok()) return status;
  if (!previous.has_value()) count_.fetch_add(1, std::memory_order_relaxed);
  return config;
}

absl::StatusOr<EndpointConfig> EndpointConfigStore::Create(EndpointConfig config) {
  if (absl::Status status = ValidateEndpointConfig(config); !status.ok()) return status;
  absl::MutexLock lock(&write_mutex_);
  absl::StatusOr<std::optional<EndpointConfig>> existing = Get(config.name);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return absl::AlreadyExistsError(Cat("name: endpoint \"", config.name, "\" already exists"));
  }
  config.created_at = NowMillis();
  config.updated_at = config.created_at;
  return WriteLocked(std::move(config), std::nullopt);
}

absl::StatusOr<EndpointConfig> EndpointConfigStore::Replace(EndpointConfig config) {
  if (absl::Status status = ValidateEndpointConfig(config); !status.ok()) return status;
  absl::MutexLock lock(&write_mutex_);
  absl::StatusOr<std::optional<EndpointConfig>> existing = Get(config.name);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    return absl::NotFoundError(Cat("endpoint \"", config.name, "\" not found"));
  }
  config.created_at = (*existing)->created_at;
  config.updated_at = std::max(NowMillis(), config.created_at);
  return WriteLocked(std::move(config), *existing);
}

absl::StatusOr<EndpointConfig> EndpointConfigStore::Update(std::string_view name,
                                                           const EndpointUpdate& update) {
  absl::MutexLock lock(&write_mutex_);
  absl::StatusOr<std::optional<EndpointConfig>> existing = Get(name);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    return absl::NotFoundError(Cat("endpoint \"", name, "\" not found"));
  }
  EndpointConfig config = **existing;
  if (update.security_mode.has_value() && *update.security_mode != config.security_mode) {
    // Credentials of the mode left behind would only fail validation (they are not allowed in
    // the new mode); the caller switching modes means to drop them.
    if (config.security_mode == SecurityMode::kPsk) {
      config.psk_identity.clear();
      config.psk_key.clear();
    }
    if (config.security_mode == SecurityMode::kCertificate) config.certificate_thumbprint.clear();
    config.security_mode = *update.security_mode;
  }
  if (update.psk_identity.has_value()) config.psk_identity = *update.psk_identity;
  if (update.psk_key.has_value()) config.psk_key = *update.psk_key;
  if (update.certificate_thumbprint.has_value()) {
    config.certificate_thumbprint = *update.certificate_thumbprint;
  }
  if (update.missing_timeout_seconds.has_value()) {
    config.missing_timeout_seconds = *update.missing_timeout_seconds;
  }
  if (update.tags.has_value()) config.tags = *update.tags;
  if (absl::Status status = ValidateEndpointConfig(config); !status.ok()) return status;
  config.updated_at = std::max(NowMillis(), config.created_at);
  return WriteLocked(std::move(config), *existing);
}

absl::Status EndpointConfigStore::Delete(std::string_view name) {
  absl::MutexLock lock(&write_mutex_);
  absl::StatusOr<std::optional<EndpointConfig>> existing = Get(name);
  if (!existing.ok()) return existing.status();
  if (!existing->has_value()) {
    return absl::NotFoundError(Cat("endpoint \"", name, "\" not found"));
  }
  store::WriteBatch batch;
  batch.Delete(store::Table::kEndpoints, EndpointKey(name));
  for (const CredentialIndex& index : kCredentialIndexes) {
    const std::string& value = (**existing).*index.value;
    if (!value.empty()) batch.Delete(store::Table::kEndpoints, index.key(value));
  }
  if (absl::Status status = store_.Write(std::move(batch)); !status.ok()) return status;
  count_.fetch_sub(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status EndpointConfigStore::UpdateSettings(const ServiceSettings& settings) {
  return ModifySettings([&settings](const ServiceSettings&) -> absl::StatusOr<ServiceSettings> {
           return settings;
         })
      .status();
}

absl::StatusOr<ServiceSettings> EndpointConfigStore::ModifySettings(
    absl::FunctionRef<absl::StatusOr<ServiceSettings>(const ServiceSettings& current)> modify) {
  absl::MutexLock lock(&write_mutex_);
  absl::StatusOr<ServiceSettings> settings = modify(this->settings());
  if (!settings.ok()) return settings.status();
  if (absl::Status status = ValidateSettings(*settings); !status.ok()) return status;
  store::WriteBatch batch;
  batch.Put(store::Table::kSettings, kSettingsKey, SettingsToJson(*settings));
  if (absl::Status status = store_.Write(std::move(batch)); !status.ok()) return status;
  {
    absl::MutexLock settings_lock(&settings_mutex_);
    settings_ = *settings;
  }
  // Under write_mutex_, so observers see successive settings in the order they were stored.
  for (const auto& observer : observers_) observer(*settings);
  return settings;
}

void EndpointConfigStore::OnSettingsChanged(std::function<void(const ServiceSettings&)> observer) {
  absl::MutexLock lock(&write_mutex_);
  observers_.push_back(std::move(observer));
}

}  // namespace lwm2md::lwm2m
