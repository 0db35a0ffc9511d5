#pragma once
// The server's configuration: config/lwm2md.toml, which documents every key and its
// default, plus command-line overrides (--set key=value). Loaded once on the main thread
// before anything starts; afterwards it is read-only and may be shared by every thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "api/auth.h"
#include "base/log.h"
#include "net/shard.h"
#include "store/store.h"

namespace lwm2md::server {

// Defaults here must match config/lwm2md.toml; config_test checks that they do.
struct Config {
  int shards = 0;  // 0 = one per online core
  LogLevel log_level = LogLevel::kInfo;

  struct Net {
    net::Backend backend = net::Backend::kAuto;
    bool pin_threads = true;
    uint32_t recv_buffer_count = 1024;
    uint32_t recv_buffer_size = 2048;
    uint32_t send_queue_depth = 1024;
    uint32_t socket_buffer_bytes = 4194304;
    bool operator==(const Net&) const = default;
  } net;

  struct Coap {
    std::vector<std::string> listen = {"0.0.0.0", "::"};
    uint16_t port = 5683;
    uint16_t secure_port = 5684;  // CoAP over DTLS, when dtls.enabled (0 = any free port)
    uint32_t ack_timeout_ms = 2000;
    double ack_random_factor = 1.5;
    uint32_t max_retransmit = 4;
    uint32_t block_size = 1024;
    uint32_t max_body_size = 1048576;
    uint32_t max_block1_transfers = 1024;
    bool diagnostic_resource = false;
    bool operator==(const Coap&) const = default;
  } coap;

  struct Http {
    std::string address = "127.0.0.1";
    uint16_t port = 8080;
    // Each open event stream holds one worker for as long as it is open.
    uint32_t worker_threads = 32;
    // [[http.tokens]], as digests: the secrets (inline or read from token_file) are not kept.
    // Empty: one read-write token generated into <store.path>/api-token.
    std::vector<api::ApiToken> tokens;
    bool public_metrics = false;  // GET /metrics without a token
    // PEM files; both set: HTTPS. Checked when the listener starts.
    std::string tls_cert;
    std::string tls_key;
    bool operator==(const Http&) const = default;
  } http;

  struct Store {
    std::string path = "./data";
    uint32_t map_size_mb = 4096;
    store::Durability durability = store::Durability::kSync;
    uint32_t async_flush_ms = 100;
    uint32_t max_batch_operations = 8192;
    bool operator==(const Store&) const = default;
  } store;

  struct Lwm2m {
    std::string objects_dir = "config/objects";
    // Lets endpoints that have no configuration register without security, whatever the
    // service setting says (the two are or-ed): for labs and load tests.
    bool allow_unknown_endpoints = false;
    // Device management limits (lwm2m::ManagementLimits).
    uint32_t max_in_flight_per_endpoint = 1;
    uint32_t max_queued_requests_per_endpoint = 64;
    uint32_t max_pending_requests_per_shard = 100000;
    uint32_t max_request_payload_bytes = 3072;
    uint32_t queue_awake_window_s = 93;
    uint32_t interrupted_report_retention_s = 600;
    bool operator==(const Lwm2m&) const = default;
  } lwm2m;

  struct Dtls {
    bool enabled = true;
    // Comma-separated IANA suite names as mbedTLS spells them; empty: the LwM2M set
    // (dtls::kDefaultCiphersuites).
    std::string ciphersuites;
    uint32_t handshake_timeout_min_ms = 1000;
    uint32_t handshake_timeout_max_ms = 60000;
    uint32_t max_sessions_per_shard = 1048576;
    // An established session idle this long is saved to the store and its memory freed; the
    // peer's next record restores it (0: sessions stay in memory until shutdown).
    uint32_t session_idle_save_s = 60;
    // A saved session not resumed within this long is forgotten (the device handshakes again).
    uint32_t saved_session_max_age_s = 1209600;
    // The server's certificate chain (PEM, leaf first) and its private key (PEM), both or
    // neither; neither: a self-signed P-256 certificate made on the first start and kept in
    // store.path (dtls-server.pem, dtls-server.key).
    std::string certificate_file;
    std::string private_key_file;
    bool operator==(const Dtls&) const = default;
  } dtls;

  struct Billing {
    // How often the billable-event counters are written to the store; a crash loses at most
    // this much counting.
    uint32_t flush_interval_ms = 5000;
    // lwm2md_endpoint_billable_events_total: one series per endpoint and billable kind.
    bool endpoint_metrics = true;
    bool operator==(const Billing&) const = default;
  } billing;

  bool operator==(const Config&) const = default;
};

// Reads the TOML file at path, applies overrides ("key=value", value parsed as a TOML
// value or else taken as a bare string) on top, and validates every key. Keys absent from
// both take the defaults above. A missing file is an error when file_required, else the
// file is skipped. Errors name the key and where its value came from ("path:line" or
// "--set key=value"); all problems found are reported, one per line.
absl::StatusOr<Config> LoadConfig(std::string_view path, absl::Span<const std::string> overrides,
                                  bool file_required = true);

// Same, from TOML text; source_name stands in for the path in errors.
absl::StatusOr<Config> ParseConfig(std::string_view toml_text, std::string_view source_name,
                                   absl::Span<const std::string> overrides = {});

// One CoAP listener per coap.listen address on coap.port, then (dtls.enabled) one CoAP over
// DTLS listener per address on coap.secure_port.
net::ShardGroupOptions ToShardGroupOptions(const Config& config);

}  // namespace lwm2md::server
