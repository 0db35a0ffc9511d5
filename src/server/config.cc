#include "server/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/toml_names.h"

namespace lwm2md::server {
namespace {

// Debian's abseil has a string_view of its own, distinct from std::string_view: this file
// works in absl::string_view and converts where toml++ or the public API want the other.
absl::string_view Absl(std::string_view text) { return {text.data(), text.size()}; }
std::string_view Std(absl::string_view text) { return {text.data(), text.size()}; }

// Every key the file may hold. The unknown-key check and its suggestions use this list;
// Reader::Read* calls below must use the same spellings.
constexpr absl::string_view kKnownKeys[] = {
    "shards",
    "log.level",
    "net.backend",
    "net.pin_threads",
    "net.recv_buffer_count",
    "net.recv_buffer_size",
    "net.send_queue_depth",
    "net.socket_buffer_bytes",
    "coap.listen",
    "coap.port",
    "coap.secure_port",
    "coap.ack_timeout_ms",
    "coap.ack_random_factor",
    "coap.max_retransmit",
    "coap.block_size",
    "coap.max_body_size",
    "coap.max_block1_transfers",
    "coap.diagnostic_resource",
    "http.address",
    "http.port",
    "http.worker_threads",
    "http.tokens",
    "http.public_metrics",
    "http.tls_cert",
    "http.tls_key",
    "store.path",
    "store.map_size_mb",
    "store.durability",
    "store.async_flush_ms",
    "store.max_batch_operations",
    "lwm2m.objects_dir",
    "lwm2m.allow_unknown_endpoints",
    "lwm2m.max_in_flight_per_endpoint",
    "lwm2m.max_queued_requests_per_endpoint",
    "lwm2m.max_pending_requests_per_shard",
    "lwm2m.max_request_payload_bytes",
    "lwm2m.queue_awake_window_s",
    "lwm2m.interrupted_report_retention_s",
    "dtls.enabled",
    "dtls.ciphersuites",
    "dtls.handshake_timeout_min_ms",
    "dtls.handshake_timeout_max_ms",
    "dtls.max_sessions_per_shard",
    "dtls.session_idle_save_s",
    "dtls.saved_session_max_age_s",
    "dtls.certificate_file",
    "dtls.private_key_file",
    "billing.flush_interval_ms",
    "billing.endpoint_metrics",
};

bool IsKnownKey(absl::string_view key) {
  return std::find(std::begin(kKnownKeys), std::end(kKnownKeys), key) != std::end(kKnownKeys);
}

bool IsKnownTable(absl::string_view key) {
  for (absl::string_view known : kKnownKeys) {
    if (known.size() > key.size() && known.substr(0, key.size()) == key &&
        known[key.size()] == '.') {
      return true;
    }
  }
  return false;
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known key or table closest to a misspelt one, if any is close enough to be a typo.
std::string Suggestion(absl::string_view key) {
  std::vector<std::string> candidates(std::begin(kKnownKeys), std::end(kKnownKeys));
  for (absl::string_view known : kKnownKeys) {
    size_t dot = known.find('.');
    if (dot != absl::string_view::npos) candidates.emplace_back(known.substr(0, dot));
  }
  std::string best;
  size_t best_distance = 3;  // more than two edits is a different word, not a typo
  for (const std::string& candidate : candidates) {
    size_t distance = EditDistance(key, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::string Quoted(absl::string_view text) { return absl::StrCat("\"", text, "\""); }

bool IsIpLiteral(const std::string& text) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

bool IsPowerOfTwo(int64_t value) { return value > 0 && (value & (value - 1)) == 0; }

// Where each value came from: the file and line, or the --set that replaced it (or one of
// its parent tables).
class Origins {
 public:
  explicit Origins(absl::string_view file_name) : file_name_(file_name) {}

  void SetOverride(const std::string& key, absl::string_view text) {
    // Errors quote the origin, and an inline token is a secret: never echo it.
    overrides_[key] = absl::StartsWith(key, "http.tokens") ? absl::StrCat("--set ", key, "=...")
                                                           : absl::StrCat("--set ", text);
  }

  std::string Of(absl::string_view key, const toml::node& node) const {
    for (absl::string_view prefix = key;;) {
      auto it = overrides_.find(prefix);
      if (it != overrides_.end()) return it->second;
      size_t dot = prefix.rfind('.');
      if (dot == absl::string_view::npos) break;
      prefix = prefix.substr(0, dot);
    }
    // A table that only exists because a --set made it for a key inside.
    for (const auto& [override_key, origin] : overrides_) {
      if (absl::StartsWith(override_key, key) && override_key.size() > key.size() &&
          override_key[key.size()] == '.') {
        return origin;
      }
    }
    return absl::StrCat(file_name_, ":", node.source().begin.line);
  }

 private:
  std::string file_name_;
  absl::flat_hash_map<std::string, std::string> overrides_;
};

// Reads typed, range-checked values out of the merged table, collecting every error.
class Reader {
 public:
  Reader(const toml::table& root, const Origins& origins) : root_(root), origins_(origins) {}

  const std::vector<std::string>& errors() const { return errors_; }

  void Error(absl::string_view key, const toml::node& node, absl::string_view message) {
    errors_.push_back(absl::StrCat(origins_.Of(key, node), ": ", key, ": ", message));
  }

  // For a value inside the array at array_key, whose shown key (http.tokens[1].name) Origins
  // does not know.
  void ErrorIn(absl::string_view array_key, absl::string_view key, const toml::node& node,
               absl::string_view message) {
    errors_.push_back(absl::StrCat(origins_.Of(array_key, node), ": ", key, ": ", message));
  }

  // The value at a dotted key, or nullptr when absent (the default stays). Parent tables
  // of the wrong type are reported by CheckUnknownKeys, so they just read as absent here.
  const toml::node* Find(absl::string_view key) const {
    const toml::node* node = &root_;
    for (absl::string_view part : absl::StrSplit(key, '.')) {
      const toml::table* table = node->as_table();
      if (table == nullptr) return nullptr;
      node = table->get(Std(part));
      if (node == nullptr) return nullptr;
    }
    return node;
  }

  // Reads an integer in [min, max]; when power_of_two, also a power of two.
  template <typename T>
  void ReadInteger(absl::string_view key, int64_t min, int64_t max, T* out,
                   bool power_of_two = false) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    if (!node->is_integer()) {
      Error(key, *node,
            absl::StrCat("expected an integer, got ", base::TomlTypeName(node->type())));
      return;
    }
    int64_t value = node->as_integer()->get();
    if (value < min || value > max || (power_of_two && !IsPowerOfTwo(value))) {
      Error(key, *node,
            absl::StrCat("must be ", power_of_two ? "a power of two " : "", "between ", min,
                         " and ", max, ", got ", value));
      return;
    }
    *out = static_cast<T>(value);
  }

  // Integers are accepted where a float is expected: "2" is as clear as "2.0".
  void ReadFloat(absl::string_view key, double min, double max, double* out) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    double value;
    if (node->is_floating_point()) {
      value = node->as_floating_point()->get();
    } else if (node->is_integer()) {
      value = static_cast<double>(node->as_integer()->get());
    } else {
      Error(key, *node, absl::StrCat("expected a number, got ", base::TomlTypeName(node->type())));
      return;
    }
    if (!(value >= min && value <= max)) {  // also rejects nan
      Error(key, *node, absl::StrCat("must be between ", min, " and ", max, ", got ", value));
      return;
    }
    *out = value;
  }

  void ReadBool(absl::string_view key, bool* out) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    if (!node->is_boolean()) {
      Error(key, *node,
            absl::StrCat("expected a boolean (true or false), got ",
                         base::TomlTypeName(node->type())));
      return;
    }
    *out = node->as_boolean()->get();
  }

  // check returns an error message for an unacceptable value, or "" when it is fine.
  void ReadString(absl::string_view key, std::string* out,
                  const std::function<std::string(const std::string&)>& check) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    if (!node->is_string()) {
      Error(key, *node, absl::StrCat("expected a string, got ", base::TomlTypeName(node->type())));
      return;
    }
    const std::string& value = node->as_string()->get();
    if (std::string message = check(value); !message.empty()) {
      Error(key, *node, message);
      return;
    }
    *out = value;
  }

  template <typename T>
  void ReadEnum(absl::string_view key, absl::Span<const std::pair<absl::string_view, T>> choices,
                T* out) {
    std::string text;
    ReadString(key, &text, [&](const std::string& value) -> std::string {
      std::vector<std::string> names;
      for (const auto& [name, unused] : choices) {
        if (name == value) return "";
        names.push_back(Quoted(name));
      }
      return absl::StrCat("must be one of ", absl::StrJoin(names, ", "), ", got ", Quoted(value));
    });
    for (const auto& [name, value] : choices) {
      if (name == text) *out = value;
    }
  }

  void ReadAddressList(absl::string_view key, std::vector<std::string>* out) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      Error(key, *node,
            absl::StrCat("expected an array of addresses, got ", base::TomlTypeName(node->type())));
      return;
    }
    if (array->empty()) {
      Error(key, *node, "must list at least one address");
      return;
    }
    std::vector<std::string> addresses;
    bool ok = true;
    for (const toml::node& element : *array) {
      if (!element.is_string()) {
        Error(key, element,
              absl::StrCat("expected addresses as strings, got ",
                           base::TomlTypeName(element.type())));
        ok = false;
        continue;
      }
      const std::string& address = element.as_string()->get();
      if (!IsIpLiteral(address)) {
        Error(key, element,
              absl::StrCat("must hold IPv4 or IPv6 addresses, got ", Quoted(address)));
        ok = false;
      } else if (std::find(addresses.begin(), addresses.end(), address) != addresses.end()) {
        Error(key, element, absl::StrCat("lists ", Quoted(address), " twice"));
        ok = false;
      }
      addresses.push_back(address);
    }
    if (ok) *out = std::move(addresses);
  }

  // Reports keys that are not in kKnownKeys (typos, most often) and known tables that hold
  // something other than a table.
  void CheckUnknownKeys(const toml::table& table, const std::string& prefix) {
    for (const auto& [name, node] : table) {
      std::string key =
          prefix.empty() ? std::string(name.str()) : absl::StrCat(prefix, ".", Absl(name.str()));
      if (IsKnownKey(key)) continue;
      if (IsKnownTable(key)) {
        if (const toml::table* child = node.as_table()) {
          CheckUnknownKeys(*child, key);
        } else {
          Error(key, node, absl::StrCat("expected a table, got ", base::TomlTypeName(node.type())));
        }
        continue;
      }
      std::string suggestion = Suggestion(key);
      Error(key, node,
            suggestion.empty() ? "unknown key"
                               : absl::StrCat("unknown key (did you mean ", suggestion, "?)"));
    }
  }

 private:
  const toml::table& root_;
  const Origins& origins_;
  std::vector<std::string> errors_;
};

std::string RequireIp(const std::string& value) {
  return IsIpLiteral(value) ? ""
                            : absl::StrCat("must be an IPv4 or IPv6 address, got ", Quoted(value));
}

std::string RequireNonEmpty(const std::string& value) {
  return value.empty() ? "must not be empty" : "";
}

std::string AnyString(const std::string&) { return ""; }

bool IsTokenNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

// [[http.tokens]]: tables of name, token or token_file, access. Errors name the element
// (http.tokens[1].access) and never quote a secret. A token_file is read here, relative to
// the working directory, so that only its digest is kept.
void ReadTokens(Reader& reader, std::vector<api::ApiToken>* out) {
  constexpr absl::string_view kKey = "http.tokens";
  const toml::node* node = reader.Find(kKey);
  if (node == nullptr) return;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    reader.Error(kKey, *node,
                 absl::StrCat("expected an array of tables ([[http.tokens]]), got ",
                              base::TomlTypeName(node->type())));
    return;
  }
  std::vector<api::ApiToken> tokens;
  bool ok = true;
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string prefix = absl::StrCat(kKey, "[", i, "]");
    auto error = [&](absl::string_view field, const toml::node& at, absl::string_view message) {
      reader.ErrorIn(kKey, field.empty() ? prefix : absl::StrCat(prefix, ".", field), at, message);
      ok = false;
    };
    const toml::table* table = element.as_table();
    if (table == nullptr) {
      error("", element,
            absl::StrCat("expected a table of name, token or token_file, and access, got ",
                         base::TomlTypeName(element.type())));
      continue;
    }
    for (const auto& [key, value] : *table) {
      const absl::string_view field = Absl(key.str());
      if (field != "name" && field != "token" && field != "token_file" && field != "access") {
        error(field, value, "unknown key (expected name, token, token_file or access)");
      }
    }
    auto string_at = [&](absl::string_view field) -> const std::string* {
      const toml::node* value = table->get(Std(field));
      if (value == nullptr) return nullptr;
      if (!value->is_string()) {
        error(field, *value,
              absl::StrCat("expected a string, got ", base::TomlTypeName(value->type())));
        return nullptr;
      }
      return &value->as_string()->get();
    };

    api::ApiToken token;
    if (const std::string* name = string_at("name")) {
      if (name->empty() || name->size() > 64 ||
          !std::all_of(name->begin(), name->end(), IsTokenNameChar)) {
        error("name", *table->get("name"),
              "must be 1 to 64 letters, digits, '.', '_' or '-' (it is shown in logs)");
      } else if (std::any_of(tokens.begin(), tokens.end(),
                             [&](const api::ApiToken& t) { return t.name == *name; })) {
        error("name", *table->get("name"), absl::StrCat(Quoted(*name), " is used twice"));
      }
      token.name = *name;
    } else if (table->get("name") == nullptr) {
      error("name", element, "required");
    }

    bool have_digest = false;
    const toml::node* inline_secret = table->get("token");
    const toml::node* secret_file = table->get("token_file");
    if (inline_secret != nullptr && secret_file != nullptr) {
      error("token_file", *secret_file, "set either token or token_file, not both");
    } else if (inline_secret == nullptr && secret_file == nullptr) {
      error("token", element, "required (or token_file, a file holding it)");
    } else if (inline_secret != nullptr) {
      if (const std::string* secret = string_at("token")) {
        if (absl::Status valid = api::ValidateTokenSecret(*secret); !valid.ok()) {
          error("token", *inline_secret, valid.message());
        } else {
          token.digest = api::DigestToken(*secret);
          have_digest = true;
        }
      }
    } else if (const std::string* path = string_at("token_file")) {
      absl::StatusOr<std::string> secret = api::ReadTokenFile(*path);
      if (!secret.ok()) {
        error("token_file", *secret_file, secret.status().message());
      } else {
        token.digest = api::DigestToken(*secret);
        have_digest = true;
      }
    }
    if (have_digest) {
      for (size_t j = 0; j < tokens.size(); ++j) {
        if (tokens[j].digest == token.digest) {
          error(inline_secret != nullptr ? "token" : "token_file", *table,
                absl::StrCat("the same token as ", kKey, "[", j, "]"));
        }
      }
    }

    if (const std::string* access = string_at("access")) {
      if (*access == "read-only") {
        token.access = api::TokenAccess::kReadOnly;
      } else if (*access == "read-write") {
        token.access = api::TokenAccess::kReadWrite;
      } else {
        error("access", *table->get("access"),
              absl::StrCat("must be one of \"read-only\", \"read-write\", got ", Quoted(*access)));
      }
    }
    tokens.push_back(std::move(token));
  }
  if (ok) *out = std::move(tokens);
}

Config ReadConfig(Reader& reader) {
  Config config;
  reader.ReadInteger("shards", 0, 1024, &config.shards);

  static constexpr std::pair<absl::string_view, LogLevel> kLevels[] = {
      {"error", LogLevel::kError},
      {"warning", LogLevel::kWarning},
      {"info", LogLevel::kInfo},
      {"debug", LogLevel::kDebug},
  };
  reader.ReadEnum<LogLevel>("log.level", kLevels, &config.log_level);

  static constexpr std::pair<absl::string_view, net::Backend> kBackends[] = {
      {"auto", net::Backend::kAuto},
      {"io_uring", net::Backend::kIoUring},
      {"epoll", net::Backend::kEpoll},
  };
  Config::Net& net = config.net;
  reader.ReadEnum<net::Backend>("net.backend", kBackends, &net.backend);
  reader.ReadBool("net.pin_threads", &net.pin_threads);
  // io_uring caps a provided-buffer ring at 32768 entries.
  reader.ReadInteger("net.recv_buffer_count", 1, 32768, &net.recv_buffer_count, true);
  reader.ReadInteger("net.recv_buffer_size", 64, 65536, &net.recv_buffer_size);
  reader.ReadInteger("net.send_queue_depth", 1, 1048576, &net.send_queue_depth);
  reader.ReadInteger("net.socket_buffer_bytes", 0, 1 << 30, &net.socket_buffer_bytes);

  Config::Coap& coap = config.coap;
  reader.ReadAddressList("coap.listen", &coap.listen);
  reader.ReadInteger("coap.port", 0, 65535, &coap.port);
  reader.ReadInteger("coap.secure_port", 0, 65535, &coap.secure_port);
  reader.ReadInteger("coap.ack_timeout_ms", 10, 600000, &coap.ack_timeout_ms);
  // RFC 7252 §4.8: ACK_RANDOM_FACTOR must not be below 1.0.
  reader.ReadFloat("coap.ack_random_factor", 1.0, 10.0, &coap.ack_random_factor);
  reader.ReadInteger("coap.max_retransmit", 0, 20, &coap.max_retransmit);
  // RFC 7959 §2.2: SZX encodes 16 to 1024 bytes.
  reader.ReadInteger("coap.block_size", 16, 1024, &coap.block_size, true);
  reader.ReadInteger("coap.max_body_size", 16, 64 << 20, &coap.max_body_size);
  reader.ReadInteger("coap.max_block1_transfers", 1, 1048576, &coap.max_block1_transfers);
  reader.ReadBool("coap.diagnostic_resource", &coap.diagnostic_resource);
  if (coap.secure_port != 0 && coap.secure_port == coap.port) {
    if (const toml::node* node = reader.Find("coap.secure_port")) {
      reader.Error("coap.secure_port", *node,
                   absl::StrCat("must differ from coap.port, both are ", coap.port));
    }
  }

  reader.ReadString("http.address", &config.http.address, RequireIp);
  reader.ReadInteger("http.port", 0, 65535, &config.http.port);
  reader.ReadInteger("http.worker_threads", 1, 1024, &config.http.worker_threads);
  ReadTokens(reader, &config.http.tokens);
  reader.ReadBool("http.public_metrics", &config.http.public_metrics);
  reader.ReadString("http.tls_cert", &config.http.tls_cert, AnyString);
  reader.ReadString("http.tls_key", &config.http.tls_key, AnyString);
  if (config.http.tls_cert.empty() != config.http.tls_key.empty()) {
    const absl::string_view set = config.http.tls_cert.empty() ? "http.tls_key" : "http.tls_cert";
    const absl::string_view unset = config.http.tls_cert.empty() ? "http.tls_cert" : "http.tls_key";
    if (const toml::node* node = reader.Find(set)) {
      reader.Error(set, *node, absl::StrCat("needs ", unset, " too (both or neither)"));
    }
  }
  reader.ReadString("store.path", &config.store.path, RequireNonEmpty);
  // LMDB reserves the map's address space up front; 1 TiB is far beyond one node's needs.
  reader.ReadInteger("store.map_size_mb", 1, 1 << 20, &config.store.map_size_mb);
  static constexpr std::pair<absl::string_view, store::Durability> kDurabilities[] = {
      {"sync", store::Durability::kSync},
      {"async", store::Durability::kAsync},
  };
  reader.ReadEnum<store::Durability>("store.durability", kDurabilities, &config.store.durability);
  reader.ReadInteger("store.async_flush_ms", 1, 60000, &config.store.async_flush_ms);
  reader.ReadInteger("store.max_batch_operations", 1, 1 << 20,
                     &config.store.max_batch_operations);
  reader.ReadString("lwm2m.objects_dir", &config.lwm2m.objects_dir, RequireNonEmpty);
  reader.ReadBool("lwm2m.allow_unknown_endpoints", &config.lwm2m.allow_unknown_endpoints);
  reader.ReadInteger("lwm2m.max_in_flight_per_endpoint", 1, 64,
                     &config.lwm2m.max_in_flight_per_endpoint);
  reader.ReadInteger("lwm2m.max_queued_requests_per_endpoint", 0, 100000,
                     &config.lwm2m.max_queued_requests_per_endpoint);
  reader.ReadInteger("lwm2m.max_pending_requests_per_shard", 1, 100000000,
                     &config.lwm2m.max_pending_requests_per_shard);
  reader.ReadInteger("lwm2m.max_request_payload_bytes", 16, 3072,
                     &config.lwm2m.max_request_payload_bytes);
  reader.ReadInteger("lwm2m.queue_awake_window_s", 1, 86400, &config.lwm2m.queue_awake_window_s);
  reader.ReadInteger("lwm2m.interrupted_report_retention_s", 0, 86400,
                     &config.lwm2m.interrupted_report_retention_s);
  reader.ReadBool("dtls.enabled", &config.dtls.enabled);
  reader.ReadString("dtls.ciphersuites", &config.dtls.ciphersuites, AnyString);
  reader.ReadInteger("dtls.handshake_timeout_min_ms", 100, 600000,
                     &config.dtls.handshake_timeout_min_ms);
  reader.ReadInteger("dtls.handshake_timeout_max_ms", 100, 3600000,
                     &config.dtls.handshake_timeout_max_ms);
  reader.ReadInteger("dtls.max_sessions_per_shard", 1, 1 << 26,
                     &config.dtls.max_sessions_per_shard);
  reader.ReadInteger("dtls.session_idle_save_s", 0, 31536000, &config.dtls.session_idle_save_s);
  reader.ReadInteger("dtls.saved_session_max_age_s", 60, 315360000,
                     &config.dtls.saved_session_max_age_s);
  reader.ReadString("dtls.certificate_file", &config.dtls.certificate_file, AnyString);
  reader.ReadString("dtls.private_key_file", &config.dtls.private_key_file, AnyString);
  if (config.dtls.certificate_file.empty() != config.dtls.private_key_file.empty()) {
    const absl::string_view set =
        config.dtls.certificate_file.empty() ? "dtls.private_key_file" : "dtls.certificate_file";
    const absl::string_view unset =
        config.dtls.certificate_file.empty() ? "dtls.certificate_file" : "dtls.private_key_file";
    if (const toml::node* node = reader.Find(set)) {
      reader.Error(set, *node, absl::StrCat("needs ", unset, " too (both or neither)"));
    }
  }
  reader.ReadInteger("billing.flush_interval_ms", 100, 3600000, &config.billing.flush_interval_ms);
  reader.ReadBool("billing.endpoint_metrics", &config.billing.endpoint_metrics);
  return config;
}

bool IsBareKey(absl::string_view part) {
  return !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// A --set value as a one-key table {value = ...}. The text is parsed as TOML so that
// numbers, booleans and arrays keep their types; anything that does not parse (an
// unquoted word or path, the usual case on a command line) is taken as a string. A
// bracketed list whose quotes the shell removed ([127.0.0.1, ::1]) becomes a list of such
// words.
toml::table ParseOverrideValue(absl::string_view text) {
  try {
    toml::table parsed = toml::parse(absl::StrCat("value = ", text));
    if (parsed.size() == 1 && parsed.contains("value")) return parsed;
  } catch (const toml::parse_error&) {
  }
  toml::table result;
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  if (trimmed.size() >= 2 && trimmed.front() == '[' && trimmed.back() == ']') {
    toml::array array;
    absl::string_view inside = absl::StripAsciiWhitespace(trimmed.substr(1, trimmed.size() - 2));
    if (!inside.empty()) {
      for (absl::string_view element : absl::StrSplit(inside, ',')) {
        ParseOverrideValue(absl::StripAsciiWhitespace(element))
            .get("value")
            ->visit([&](auto&& value) { array.push_back(std::move(value)); });
      }
    }
    result.insert("value", std::move(array));
  } else {
    result.insert("value", std::string(text));
  }
  return result;
}

// Applies one "key=value" on top of root.
absl::Status ApplyOverride(const std::string& text, toml::table& root, Origins& origins) {
  size_t equals = text.find('=');
  absl::string_view key =
      absl::StripAsciiWhitespace(absl::string_view(text).substr(0, std::min(equals, text.size())));
  std::vector<absl::string_view> parts = absl::StrSplit(key, '.');
  if (equals == std::string::npos ||
      !std::all_of(parts.begin(), parts.end(), [](absl::string_view p) { return IsBareKey(p); })) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", text, ": expected key=value, e.g. --set coap.port=5683"));
  }
  toml::table parsed = ParseOverrideValue(absl::string_view(text).substr(equals + 1));

  toml::table* table = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    std::string parent = absl::StrJoin(parts.begin(), parts.begin() + i + 1, ".");
    toml::node* child = table->get(Std(parts[i]));
    if (child == nullptr && !IsKnownKey(parent)) {
      child = &table->insert(Std(parts[i]), toml::table{}).first->second;
    }
    table = child != nullptr ? child->as_table() : nullptr;
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", text, ": ", parent, " is not a table"));
    }
  }
  parsed.get("value")->visit(
      [&](auto&& value) { table->insert_or_assign(Std(parts.back()), std::move(value)); });
  origins.SetOverride(std::string(key), text);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ParseConfig(std::string_view toml_text, std::string_view source_name,
                                   absl::Span<const std::string> overrides) {
  toml::table root;
  // toml++ reports syntax errors by throwing; this is the boundary where they become a
  // status.
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(absl::StrCat(
        Absl(source_name), ":", error.source().begin.line, ": ", Absl(error.description())));
  }
  Origins origins(Absl(source_name));
  for (const std::string& text : overrides) {
    if (absl::Status status = ApplyOverride(text, root, origins); !status.ok()) return status;
  }
  Reader reader(root, origins);
  Config config = ReadConfig(reader);
  reader.CheckUnknownKeys(root, "");
  if (!reader.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(reader.errors(), "\n"));
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(std::string_view path, absl::Span<const std::string> overrides,
                                  bool file_required) {
  std::error_code error;
  std::filesystem::file_status status = std::filesystem::status(path, error);
  if (status.type() == std::filesystem::file_type::not_found) {
    if (!file_required) return ParseConfig("", path, overrides);
    return absl::NotFoundError(absl::StrCat(Absl(path), ": no such file"));
  }
  if (status.type() == std::filesystem::file_type::directory) {
    return absl::InvalidArgumentError(absl::StrCat(Absl(path), ": is a directory"));
  }
  std::ifstream file{std::string(path), std::ios::binary};
  std::string text;
  if (file) text.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  if (!file.is_open() || file.bad()) {
    return absl::NotFoundError(absl::StrCat(Absl(path), ": cannot read: ", std::strerror(errno)));
  }
  return ParseConfig(text, path, overrides);
}

net::ShardGroupOptions ToShardGroupOptions(const Config& config) {
  net::ShardGroupOptions options;
  options.shards = config.shards;
  options.backend = config.net.backend;
  options.pin_threads = config.net.pin_threads;
  options.recv_buffer_count = config.net.recv_buffer_count;
  options.recv_buffer_size = config.net.recv_buffer_size;
  options.send_queue_depth = config.net.send_queue_depth;
  options.socket_buffer_bytes = config.net.socket_buffer_bytes;
  for (const std::string& host : config.coap.listen) {
    options.listen.push_back(
        net::ListenSpec{.host = host, .port = config.coap.port, .purpose = "coap"});
  }
  if (config.dtls.enabled) {
    for (const std::string& host : config.coap.listen) {
      options.listen.push_back(net::ListenSpec{
          .host = host, .port = config.coap.secure_port, .purpose = "coaps", .dtls = true});
    }
  }
  return options;
}

}  // namespace lwm2md::server
