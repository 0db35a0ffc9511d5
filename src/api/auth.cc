#include "api/auth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/log.h"
#include "base/strings.h"

namespace lwm2md::api {
namespace {

using base::Absl;
using base::Std;

// A token file holds one line; anything much longer is not one.
constexpr size_t kMaxTokenFileBytes = 4096;
constexpr size_t kGeneratedTokenBytes = 32;

std::string ErrnoText(int error) { return std::strerror(error); }

std::string Quoted(std::string_view text) { return absl::StrCat("\"", Absl(text), "\""); }

bool IsB64TokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~' || c == '+' || c == '/';
}

// Writes all of data to fd, retrying short writes and EINTR.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Makes a new directory entry durable: fsync of the file alone does not cover its name.
void SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

}  // namespace

std::string_view TokenAccessName(TokenAccess access) {
  return access == TokenAccess::kReadOnly ? "read-only" : "read-write";
}

TokenDigest DigestToken(std::string_view secret) {
  TokenDigest digest{};
  unsigned int size = 0;
  // EVP_Digest with SHA-256 cannot fail short of memory exhaustion in OpenSSL itself.
  LWM2MD_CHECK(
      EVP_Digest(secret.data(), secret.size(), digest.data(), &size, EVP_sha256(), nullptr) == 1 &&
      size == digest.size());
  return digest;
}

ApiToken MakeApiToken(std::string name, std::string_view secret, TokenAccess access) {
  return ApiToken{.name = std::move(name), .digest = DigestToken(secret), .access = access};
}

absl::Status ValidateTokenSecret(std::string_view secret) {
  // RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  size_t end = secret.size();
  while (end > 0 && secret[end - 1] == '=') --end;
  if (end == 0) return absl::InvalidArgumentError("must not be empty");
  for (size_t i = 0; i < end; ++i) {
    if (!IsB64TokenChar(secret[i])) {
      return absl::InvalidArgumentError(
          "may hold only letters, digits and - . _ ~ + / (then = padding), as a bearer token "
          "does (RFC 6750)");
    }
  }
  if (secret.size() < kMinTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat("must be at least ", kMinTokenLength,
                                                   " characters long, got ", secret.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  // O_NONBLOCK: a FIFO put in place of the file must not hang start-up (no effect on files).
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(Quoted(path), ": cannot read: ", ErrnoText(errno)));
  }
  struct stat info {};
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(Quoted(path), ": not a regular file"));
  }
  std::string content(kMaxTokenFileBytes + 1, '\0');
  size_t size = 0;
  while (size < content.size()) {
    ssize_t n = read(fd, content.data() + size, content.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(fd);
      return absl::InternalError(absl::StrCat(Quoted(path), ": cannot read: ", ErrnoText(error)));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  close(fd);
  if (size > kMaxTokenFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quoted(path), ": larger than ", kMaxTokenFileBytes, " bytes"));
  }
  content.resize(size);
  std::string token(absl::StripAsciiWhitespace(content));
  if (absl::Status valid = ValidateTokenSecret(token); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(Quoted(path), ": the token ", valid.message()));
  }
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    LWM2MD_LOG(kWarning, "%s is accessible to others (mode %04o); chmod 600 it", path,
               info.st_mode & 07777);
  }
  return token;
}

absl::StatusOr<std::string> LoadOrCreateTokenFile(const std::string& path) {
  if (access(path.c_str(), F_OK) == 0) return ReadTokenFile(path);
  if (errno != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat(Quoted(path), ": cannot read: ", ErrnoText(errno)));
  }

  unsigned char random[kGeneratedTokenBytes];
  if (RAND_bytes(random, sizeof(random)) != 1) {
    return absl::InternalError("cannot generate an API token: no random bytes from OpenSSL");
  }
  const std::string token = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(random), sizeof(random)));
  OPENSSL_cleanse(random, sizeof(random));

  // mkstemp creates the file with mode 0600 (less with a strict umask): the secret is never
  // readable by others, not even for a moment.
  std::string temporary = path + ".tmp.XXXXXX";
  int fd = mkstemp(temporary.data());
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(Quoted(path), ": cannot create: ", ErrnoText(errno)));
  }
  fchmod(fd, S_IRUSR | S_IWUSR);
  const bool written = WriteAll(fd, absl::StrCat(token, "\n")) && fsync(fd) == 0;
  const int write_error = errno;
  close(fd);
  if (!written) {
    unlink(temporary.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat(Quoted(path), ": cannot write: ", ErrnoText(write_error)));
  }
  // link() fails with EEXIST instead of replacing (rename() would replace): when another
  // process created the file meanwhile, its token stands.
  const int linked = link(temporary.c_str(), path.c_str());
  const int link_error = errno;
  unlink(temporary.c_str());
  if (linked != 0) {
    if (link_error == EEXIST) return ReadTokenFile(path);
    return absl::FailedPreconditionError(
        absl::StrCat(Quoted(path), ": cannot create: ", ErrnoText(link_error)));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  SyncDirectory(dir.empty() ? "." : dir);
  return token;
}

Authenticator::Authenticator(std::vector<ApiToken> tokens, bool public_metrics)
    : tokens_(std::move(tokens)), public_metrics_(public_metrics) {}

const ApiToken* Authenticator::Find(std::string_view authorization) const {
  // RFC 7235 §2.1: the scheme is case-insensitive; RFC 6750 §2.1: "Bearer" 1*SP b64token.
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(Absl(authorization.substr(0, kScheme.size())), Absl(kScheme)) ||
      authorization[kScheme.size()] != ' ') {
    return nullptr;
  }
  std::string_view secret =
      Std(absl::StripAsciiWhitespace(Absl(authorization.substr(kScheme.size()))));
  if (secret.empty()) return nullptr;
  const TokenDigest digest = DigestToken(secret);
  // Every token is compared, each in constant time (CRYPTO_memcmp), so that the time taken
  // tells nothing about how close a guess came, nor which token matched.
  const ApiToken* found = nullptr;
  for (const ApiToken& token : tokens_) {
    if (CRYPTO_memcmp(token.digest.data(), digest.data(), digest.size()) == 0) found = &token;
  }
  return found;
}

Authenticator::Result Authenticator::Check(std::string_view method, std::string_view path,
                                           const std::vector<std::string>& authorization) const {
  // /healthz is for load balancers, which hold no credentials; it reveals readiness only.
  if (path == "/healthz" || (public_metrics_ && path == "/metrics")) {
    return {.decision = Decision::kAllow};
  }
  if (authorization.size() != 1) return {.decision = Decision::kUnauthorized};
  const ApiToken* token = Find(authorization.front());
  if (token == nullptr) return {.decision = Decision::kUnauthorized};
  if (token->access == TokenAccess::kReadOnly && method != "GET" && method != "HEAD") {
    return {.decision = Decision::kForbidden, .token = token};
  }
  return {.decision = Decision::kAllow, .token = token};
}

}  // namespace lwm2md::api
