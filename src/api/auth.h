#pragma once
// Bearer-token authentication of the HTTP listener (RFC 6750 §2.1: "Authorization: Bearer
// <token>"). Every request except GET /healthz (and /metrics when it is public) carries a
// token; read-only tokens may only read (GET, HEAD). The decision is taken before routing,
// from the method, the path and the header alone, so that a refused request learns nothing
// about which routes or resources exist.
//
// Only SHA-256 digests of the secrets are kept in memory: a core dump, a heap inspection or
// an over-read reveals no token that could be replayed, and comparing fixed-size digests
// makes the constant-time comparison independent of the secret's length.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lwm2md::api {

enum class TokenAccess {
  kReadOnly,   // GET and HEAD only (the REST reads, the event stream, /metrics)
  kReadWrite,  // every method
};

// "read-only", "read-write".
std::string_view TokenAccessName(TokenAccess access);

using TokenDigest = std::array<uint8_t, 32>;  // SHA-256

TokenDigest DigestToken(std::string_view secret);

// One API token as the server keeps it: the name (for logs; never the secret) and the digest.
struct ApiToken {
  std::string name;
  TokenDigest digest{};
  TokenAccess access = TokenAccess::kReadOnly;
  bool operator==(const ApiToken&) const = default;
};

ApiToken MakeApiToken(std::string name, std::string_view secret,
                      TokenAccess access = TokenAccess::kReadWrite);

// Shortest secret accepted: 16 characters of the b64token alphabet carry at least 96 bits
// when random; shorter ones are guessable online.
inline constexpr size_t kMinTokenLength = 16;

// OK when secret can be sent as a bearer token (RFC 6750 §2.1 b64token: letters, digits and
// "-._~+/", then "=" padding) and is at least kMinTokenLength long. The message never quotes
// the secret.
absl::Status ValidateTokenSecret(std::string_view secret);

// The token held in a file: its content without surrounding whitespace (a trailing newline
// is usual), validated by ValidateTokenSecret.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// The token in path, creating it first when there is none: 32 random bytes in hex, written to
// a temporary file of mode 0600 in the same directory, synced, then linked into place, so that
// the file appears complete or not at all and a concurrent creator's file is never replaced
// (whoever links first wins; the other reads that one).
absl::StatusOr<std::string> LoadOrCreateTokenFile(const std::string& path);

// The decision for one request. Holds the digests only.
class Authenticator {
 public:
  enum class Decision {
    kAllow,
    kUnauthorized,  // 401: no token, a malformed header, or an unknown token
    kForbidden,     // 403: a read-only token on a method that writes
  };

  struct Result {
    Decision decision = Decision::kUnauthorized;
    const ApiToken* token = nullptr;  // the matching token, when there is one
  };

  // public_metrics: GET /metrics needs no token.
  Authenticator(std::vector<ApiToken> tokens, bool public_metrics);

  // authorization: every Authorization header of the request (more than one is malformed).
  Result Check(std::string_view method, std::string_view path,
               const std::vector<std::string>& authorization) const;

  // The token a header value names, or null; compares against every token in constant time.
  const ApiToken* Find(std::string_view authorization) const;

  size_t size() const { return tokens_.size(); }

 private:
  std::vector<ApiToken> tokens_;
  bool public_metrics_;
};

}  // namespace lwm2md::api
