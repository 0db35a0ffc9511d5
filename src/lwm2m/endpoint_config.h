#pragma once
// Endpoint configuration (the reference's "LWM2M endpoint": name, identity, pre-shared key,
// time before declared missing) and the service-wide settings (the reference's "LWM2M
// service": CoAP timeouts, bootstrap), their validation, their JSON forms and their
// persistence in the store.
//
// Threads: EndpointConfigStore is shared by every thread. Reads (Get, FindNameByPskIdentity,
// FindNameByThumbprint, List, Count, settings) never block: one LMDB read transaction or a
// reader lock on a cached copy; shards call Get on every Register. Writes (Create, Update,
// Replace, Delete, UpdateSettings) wait for the commit (store::Store::Write), so they run on
// API threads only, never on a shard, and a success means the change is durable.
//
// Store layout (store/README.md defers to the table's owner):
//   Table::kEndpoints  "ep/<name>"       → the configuration, compact JSON (PSK key in hex)
//   Table::kEndpoints  "psk/<identity>"  → <name>: unique index, one identity one endpoint
//   Table::kEndpoints  "x509/<thumbprint>" → <name>: unique index of the "x509" endpoints'
//                                           certificate thumbprints (64 lowercase hex digits)
//   Table::kSettings   "service"         → the settings, compact JSON
// The PSK key is stored in clear: DTLS needs it verbatim. The data directory's permissions
// protect it (as they protect the DTLS session keys in the same file).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/json_writer.h"
#include "store/store.h"

namespace lwm2md::lwm2m {

// How an endpoint authenticates. The API names are in parentheses.
enum class SecurityMode : uint8_t {
  kNone,           // ("none") plain CoAP, no DTLS
  kPsk,            // ("psk") DTLS with this endpoint's PSK identity and key
  kCertificate,    // ("x509") DTLS with a client certificate whose SHA-256 thumbprint is
                   // configured per endpoint
  kCertificateCa,  // ("x509-ca") DTLS with any client certificate signed by the service's CA
};
std::string_view SecurityModeName(SecurityMode mode);
std::optional<SecurityMode> ParseSecurityMode(std::string_view name);

// Limits, exposed for tests and documentation.
inline constexpr size_t kMaxEndpointNameBytes = 255;
// The wire allows identities up to 2^16-1 bytes, but RFC 4279 §5.3 only requires TLS stacks
// to accept 128 (and keys up to 64): larger values would not interoperate, and a bound keeps
// the index keys small. Keys are typically 16 or 32 bytes. The DTLS backend's
// MBEDTLS_PSK_MAX_LEN must be at least kMaxPskKeyBytes.
inline constexpr size_t kMaxPskIdentityBytes = 128;
inline constexpr size_t kMaxPskKeyBytes = 64;
inline constexpr uint32_t kMaxMissingTimeoutSeconds = 31536000;  // one year
inline constexpr size_t kMaxTags = 32;
inline constexpr size_t kMaxTagBytes = 64;

struct EndpointConfig {
  std::string name;
  SecurityMode security_mode = SecurityMode::kNone;
  // kPsk only.
  std::string psk_identity;
  // kPsk only; raw bytes. The API takes it in hex and never returns it.
  std::string psk_key;
  // kCertificate only; lowercase hex SHA-256 of the DER certificate, 64 digits.
  std::string certificate_thumbprint;
  // Time before declared missing; nullopt: the service default; 0: never.
  std::optional<uint32_t> missing_timeout_seconds;
  std::vector<std::string> tags;
  absl::Time created_at;
  absl::Time updated_at;

  bool operator==(const EndpointConfig&) const = default;
};

// A partial update (PATCH, RFC 7396 merge semantics): absent fields keep their value.
struct EndpointUpdate {
  std::optional<SecurityMode> security_mode;
  std::optional<std::string> psk_identity;
  std::optional<std::string> psk_key;  // raw bytes
  std::optional<std::string> certificate_thumbprint;
  // Outer: whether given; inner nullopt (JSON null): back to the service default.
  std::optional<std::optional<uint32_t>> missing_timeout_seconds;
  std::optional<std::vector<std::string>> tags;
};

struct ServiceSettings {
  // RFC 7252 §4.8 transmission parameters, pushed to the shards' message layers.
  uint32_t coap_ack_timeout_ms = 2000;
  double coap_ack_random_factor = 1.5;
  uint32_t coap_max_retransmit = 4;
  bool bootstrap_enabled = true;
  // For endpoints without their own missing timeout; 0: never declared missing.
  uint32_t default_missing_timeout_seconds = 0;
  // Whether an endpoint with no configuration may register (without security). Off: only
  // configured endpoints are admitted.
  bool allow_unknown_endpoints = false;

  bool operator==(const ServiceSettings&) const = default;
};

// Validation. Messages name the field as the API spells it ("pskIdentity: ...").
// Endpoint names: 1..255 bytes of printable ASCII (0x21..0x7E) except '/', '?' and '#'.
// The name is a path segment of the REST API and of store keys, so no '/', '?', '#' (URL
// delimiters, RFC 3986 §3.3), no space and no control bytes ('\0' separates the name from
// the path in other tables' keys). LwM2M allows any UTF-8 name; devices with such names can
// only register as unknown endpoints.
absl::Status ValidateEndpointName(std::string_view name);
// Everything but the timestamps: field syntax and the fields each security mode requires or
// forbids.
absl::Status ValidateEndpointConfig(const EndpointConfig& config);
absl::Status ValidateSettings(const ServiceSettings& settings);

// The missing timeout in effect for an endpoint (config may be null: unknown endpoint).
uint32_t EffectiveMissingTimeoutSeconds(const EndpointConfig* config,
                                        const ServiceSettings& settings);

// --- JSON forms (camelCase keys, as in the REST API). ---

// A POST/PUT body into a configuration. Strict: unknown or duplicate fields, wrong types and
// invalid values are InvalidArgument naming the field. `name` may be absent when
// name_from_path is given (PUT /endpoints/{name}); if both are present they must agree.
absl::StatusOr<EndpointConfig> ParseEndpointJson(std::string_view json,
                                                 std::string_view name_from_path = {});
// A PATCH body. `name` is accepted only when it equals the endpoint's name (it cannot change).
absl::StatusOr<EndpointUpdate> ParseEndpointUpdateJson(std::string_view json,
                                                       std::string_view name);
// The API representation: everything but the PSK key, which shows as "pskKeySet". Written as
// members of an object the caller opened, so that the API can append presence fields.
void WriteEndpointMembers(const EndpointConfig& config, base::JsonWriter& out);
std::string EndpointToJson(const EndpointConfig& config);  // a complete object

// Settings: a PUT body is the complete settings (every field required); a PATCH body any
// subset, applied to base. Strict like ParseEndpointJson.
absl::StatusOr<ServiceSettings> ParseSettingsJson(std::string_view json,
                                                  const ServiceSettings& base, bool partial);
std::string SettingsToJson(const ServiceSettings& settings);

// A page of List.
struct EndpointPage {
  std::vector<EndpointConfig> endpoints;
  // The name to pass as start_after for the next page; empty on the last page.
  std::string next;
};

class EndpointConfigStore {
 public:
  // Loads the settings (defaults when none were saved) and counts the endpoints. store must
  // outlive the result.
  static absl::StatusOr<std::unique_ptr<EndpointConfigStore>> Open(store::Store& store);

  EndpointConfigStore(const EndpointConfigStore&) = delete;
  EndpointConfigStore& operator=(const EndpointConfigStore&) = delete;

  // --- reads: any thread, shards included ---
  absl::StatusOr<std::optional<EndpointConfig>> Get(std::string_view name) const;
  absl::StatusOr<std::optional<std::string>> FindNameByPskIdentity(std::string_view identity) const;
  // The endpoint whose certificateThumbprint is `thumbprint` (64 lowercase hex digits, as
  // stored); nullopt for none or for anything else.
  absl::StatusOr<std::optional<std::string>> FindNameByThumbprint(
      std::string_view thumbprint) const;
  // Endpoints in name (byte) order after start_after (empty: from the first); limit ≥ 1.
  absl::StatusOr<EndpointPage> List(std::string_view start_after, size_t limit) const;
  uint64_t Count() const;
  ServiceSettings settings() const;

  // --- writes: API threads only (they wait for the commit) ---
  // Validates, stamps created_at/updated_at. AlreadyExists when the name exists or the PSK
  // identity or certificate thumbprint belongs to another endpoint (the message names which).
  absl::StatusOr<EndpointConfig> Create(EndpointConfig config);
  // Replaces everything but the name and created_at. NotFound when absent.
  absl::StatusOr<EndpointConfig> Replace(EndpointConfig config);
  // Applies a partial update. Leaving kPsk drops the identity and key, leaving kCertificate
  // drops the thumbprint, unless the update sets them (which then fails validation).
  absl::StatusOr<EndpointConfig> Update(std::string_view name, const EndpointUpdate& update);
  // NotFound when absent. A current registration of the endpoint is not touched here; the
  // registration layer applies the missing configuration at the client's next request.
  absl::Status Delete(std::string_view name);

  absl::Status UpdateSettings(const ServiceSettings& settings);
  // Read-modify-write under the writer lock, so that two partial updates of different fields
  // cannot lose one another. modify's error is returned as is; the result is validated.
  absl::StatusOr<ServiceSettings> ModifySettings(
      absl::FunctionRef<absl::StatusOr<ServiceSettings>(const ServiceSettings& current)> modify);
  // Called after each successful UpdateSettings or ModifySettings with the new settings, on
  // the updating thread and in commit order, with the writer lock held: it must not write to
  // this store. Register before serving.
  void OnSettingsChanged(std::function<void(const ServiceSettings&)> observer);

 private:
  explicit EndpointConfigStore(store::Store& store) : store_(store) {}
  // Writes config (new or changed; previous is the stored version, if any) with the PSK
  // identity and thumbprint indexes kept in step. write_mutex_ held.
  absl::StatusOr<EndpointConfig> WriteLocked(EndpointConfig config,
                                             const std::optional<EndpointConfig>& previous)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mutex_);

  store::Store& store_;

  // Serialises writers, so that a check (name free, identity free) and the write that relies
  // on it cannot interleave with another writer's. Readers never take it.
  absl::Mutex write_mutex_;
  // Changed only with write_mutex_ held; read lock-free by Count.
  std::atomic<uint64_t> count_{0};

  mutable absl::Mutex settings_mutex_ ABSL_ACQUIRED_AFTER(write_mutex_);
  ServiceSettings settings_ ABSL_GUARDED_BY(settings_mutex_);
  std::vector<std::function<void(const ServiceSettings&)>> observers_ ABSL_GUARDED_BY(write_mutex_);
};

}  // namespace lwm2md::lwm2m
