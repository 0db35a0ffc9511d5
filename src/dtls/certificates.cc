#include "dtls/certificates.h"

#include <fcntl.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/time/clock.h"
#include "base/strings.h"

// What this file needs of third_party/mbedtls/lwm2md_mbedtls_config.h.
#if !defined(MBEDTLS_X509_TRUSTED_CERTIFICATE_CALLBACK) || !defined(MBEDTLS_X509_CRT_WRITE_C) || \
    !defined(MBEDTLS_PK_WRITE_C) || !defined(MBEDTLS_PEM_WRITE_C)
#error "mbedTLS built without certificate writing or the trusted-CA callback: run tools/setup"
#endif

namespace lwm2md::dtls {
namespace {

using base::StrCat;

constexpr std::string_view kCaPrefix = "ca/";
constexpr std::string_view kPemBegin = "-----BEGIN CERTIFICATE-----";
constexpr std::string_view kPemEnd = "-----END CERTIFICATE-----";
constexpr char kGeneratedCertificate[] = "dtls-server.pem";
constexpr char kGeneratedKey[] = "dtls-server.key";

std::string ErrorText(int error) {
  char text[160];
  mbedtls_strerror(error, text, sizeof(text));
  return text;
}

std::string Quoted(std::string_view text) { return StrCat("\"", text, "\""); }

std::string_view View(const mbedtls_x509_buf& buffer) {
  return std::string_view(reinterpret_cast<const char*>(buffer.p), buffer.len);
}

std::string DistinguishedName(const mbedtls_x509_name& name) {
  char text[512];
  const int length = mbedtls_x509_dn_gets(text, sizeof(text), &name);
  return length < 0 ? std::string("(unprintable name)") : std::string(text, length);
}

absl::Time ToTime(const mbedtls_x509_time& time) {
  return absl::FromCivil(
      absl::CivilSecond(time.year, time.mon, time.day, time.hour, time.min, time.sec),
      absl::UTCTimeZone());
}

std::string FormatDay(absl::Time time) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", time, absl::UTCTimeZone());
}

// A random generator for what runs outside the shards (loading, generating): the same
// construction as a shard's, made for the call.
class LocalRandom {
 public:
  LocalRandom() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    static constexpr char kPersonal[] = "lwm2md certificates";
    seeded_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_,
                                    reinterpret_cast<const unsigned char*>(kPersonal),
                                    sizeof(kPersonal) - 1) == 0;
  }
  ~LocalRandom() {
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  LocalRandom(const LocalRandom&) = delete;
  LocalRandom& operator=(const LocalRandom&) = delete;

  absl::Status status() const {
    return seeded_ ? absl::OkStatus() : absl::InternalError("dtls: cannot seed a random generator");
  }
  mbedtls_ctr_drbg_context* context() { return &drbg_; }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  bool seeded_ = false;
};

// mbedTLS structures freed on scope exit.
struct Certificates {
  mbedtls_x509_crt chain;
  Certificates() { mbedtls_x509_crt_init(&chain); }
  ~Certificates() { mbedtls_x509_crt_free(&chain); }
  Certificates(const Certificates&) = delete;
  Certificates& operator=(const Certificates&) = delete;
};
struct Key {
  mbedtls_pk_context pk;
  Key() { mbedtls_pk_init(&pk); }
  ~Key() { mbedtls_pk_free(&pk); }
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
};

// The "-----BEGIN CERTIFICATE-----" blocks of text, each with its end line, in order.
// Anything around them (openssl's "subject=" lines, comments) is ignored. An unterminated
// block is returned as it is, so that parsing it fails with a message.
std::vector<std::string_view> PemBlocks(std::string_view text) {
  std::vector<std::string_view> blocks;
  size_t at = 0;
  while ((at = text.find(kPemBegin, at)) != std::string_view::npos) {
    size_t end = text.find(kPemEnd, at);
    end = end == std::string_view::npos ? text.size() : end + kPemEnd.size();
    blocks.push_back(text.substr(at, end - at));
    at = end;
  }
  return blocks;
}

// Parses one certificate (a PEM block or DER) onto the end of chain.
int ParseOne(mbedtls_x509_crt& chain, std::string_view encoded) {
  if (encoded.substr(0, kPemBegin.size()) == kPemBegin) {
    // PEM input must end in NUL, counted in the length.
    const std::string pem(encoded);
    return mbedtls_x509_crt_parse(&chain, reinterpret_cast<const unsigned char*>(pem.c_str()),
                                  pem.size() + 1);
  }
  return mbedtls_x509_crt_parse_der(&chain, reinterpret_cast<const unsigned char*>(encoded.data()),
                                    encoded.size());
}

const mbedtls_x509_crt* Nth(const mbedtls_x509_crt& chain, size_t index) {
  const mbedtls_x509_crt* certificate = &chain;
  for (size_t i = 0; i < index && certificate != nullptr; ++i) certificate = certificate->next;
  return certificate;
}

absl::StatusOr<std::string> ReadFile(std::string_view what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        StrCat(what, ": cannot read ", Quoted(path), ": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        StrCat(what, ": cannot read ", Quoted(path), ": ", std::strerror(errno)));
  }
  return text.str();
}

// Creates path with contents, mode `mode`, never replacing an existing file (EEXIST:
// another process made it first, and the caller reads that one). The contents are written
// and synced under a temporary name first, so a crash never leaves half a file.
absl::Status CreateFile(const std::string& path, std::string_view contents, mode_t mode) {
  std::string temporary = path + ".tmp.XXXXXX";
  const int fd = mkstemp(temporary.data());
  if (fd < 0) {
    return absl::FailedPreconditionError(
        StrCat(Quoted(path), ": cannot create: ", std::strerror(errno)));
  }
  fchmod(fd, mode);
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  const bool ok = written == contents.size() && fsync(fd) == 0;
  const int write_error = errno;
  close(fd);
  if (!ok) {
    unlink(temporary.c_str());
    return absl::FailedPreconditionError(
        StrCat(Quoted(path), ": cannot write: ", std::strerror(write_error)));
  }
  const int linked = link(temporary.c_str(), path.c_str());
  const int link_error = errno;
  unlink(temporary.c_str());
  if (linked != 0) {
    if (link_error == EEXIST) return absl::AlreadyExistsError(path);
    return absl::FailedPreconditionError(
        StrCat(Quoted(path), ": cannot create: ", std::strerror(link_error)));
  }
  const std::string directory = std::filesystem::path(path).parent_path().string();
  const int dir = open(directory.empty() ? "." : directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
  return absl::OkStatus();
}

// A DN attribute value for mbedtls_x509_string_to_names: RFC 4514 §2.4 escapes.
std::string EscapeDnValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (std::strchr(",=+<>#;\\\"", c) != nullptr) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::string> WriteKeyPem(mbedtls_pk_context& key) {
  unsigned char pem[2048];
  if (int error = mbedtls_pk_write_key_pem(&key, pem, sizeof(pem)); error != 0) {
    return absl::InternalError(StrCat("dtls: writing the server key: ", ErrorText(error)));
  }
  return std::string(reinterpret_cast<const char*>(pem));
}

// A self-signed certificate for key: version 3, a random positive 128-bit serial,
// ecdsa-with-SHA256, basicConstraints CA:FALSE and keyUsage digitalSignature (all an
// ECDHE-ECDSA server needs).
absl::StatusOr<std::string> SelfSignedPem(mbedtls_pk_context& key, std::string_view common_name,
                                          LocalRandom& random) {
  mbedtls_x509write_cert writer;
  mbedtls_x509write_crt_init(&writer);
  struct Free {
    mbedtls_x509write_cert* writer;
    ~Free() { mbedtls_x509write_crt_free(writer); }
  } free_writer{&writer};
  unsigned char serial[16];
  if (mbedtls_ctr_drbg_random(random.context(), serial, sizeof(serial)) != 0) {
    return absl::InternalError("dtls: no random bytes for a certificate serial number");
  }
  serial[0] = (serial[0] & 0x7f) | 0x40;  // positive, and 16 bytes long in DER
  const std::string subject = StrCat("CN=", EscapeDnValue(common_name));
  // A day back: a device whose clock runs behind still takes the certificate as valid.
  const std::string not_before =
      absl::FormatTime("%Y%m%d%H%M%S", absl::Now() - absl::Hours(24), absl::UTCTimeZone());
  mbedtls_x509write_crt_set_version(&writer, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&writer, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&writer, &key);
  mbedtls_x509write_crt_set_issuer_key(&writer, &key);
  int error = mbedtls_x509write_crt_set_serial_raw(&writer, serial, sizeof(serial));
  if (error == 0) error = mbedtls_x509write_crt_set_subject_name(&writer, subject.c_str());
  if (error == 0) error = mbedtls_x509write_crt_set_issuer_name(&writer, subject.c_str());
  if (error == 0) {
    error = mbedtls_x509write_crt_set_validity(&writer, not_before.c_str(), "99991231235959");
  }
  if (error == 0) error = mbedtls_x509write_crt_set_basic_constraints(&writer, 0, -1);
  if (error == 0) {
    error = mbedtls_x509write_crt_set_key_usage(&writer, MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
  }
  unsigned char pem[4096];
  if (error == 0) {
    error = mbedtls_x509write_crt_pem(&writer, pem, sizeof(pem), mbedtls_ctr_drbg_random,
                                      random.context());
  }
  if (error != 0) {
    return absl::InternalError(StrCat("dtls: making the server certificate: ", ErrorText(error)));
  }
  return std::string(reinterpret_cast<const char*>(pem));
}

absl::StatusOr<ServerCertificate> GenerateForKey(mbedtls_pk_context& key,
                                                 std::string_view common_name, LocalRandom& random,
                                                 std::string key_pem) {
  absl::StatusOr<std::string> certificate = SelfSignedPem(key, common_name, random);
  if (!certificate.ok()) return certificate.status();
  absl::StatusOr<ServerCertificate> parsed = ParseServerCertificate(
      *std::move(certificate), std::move(key_pem), "generated certificate", "generated key");
  if (parsed.ok()) parsed->generated = true;
  return parsed;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Thumbprints, sizes, names.

std::string Sha256Hex(std::span<const uint8_t> bytes) {
  unsigned char digest[32];
  mbedtls_sha256(bytes.data(), bytes.size(), digest, /*is224=*/0);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(64);
  for (unsigned char byte : digest) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 15]);
  }
  return hex;
}

size_t CertificateMessageBytes(std::span<const size_t> der_lengths) {
  size_t bytes = 12 + 3;
  for (size_t length : der_lengths) bytes += 3 + length;
  return bytes;
}

size_t MaxCertificateMessageBytes() { return MBEDTLS_SSL_OUT_CONTENT_LEN; }

std::string CertificateEndpointName(const mbedtls_x509_crt& certificate) {
  std::string common_name;
  for (const mbedtls_x509_name* name = &certificate.subject; name != nullptr; name = name->next) {
    if (name->oid.p != nullptr && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &name->oid) == 0) {
      common_name.assign(View(name->val));
    }
  }
  if (!common_name.empty()) return common_name;
  for (const mbedtls_x509_sequence* entry = &certificate.subject_alt_names; entry != nullptr;
       entry = entry->next) {
    if (entry->buf.p == nullptr) continue;
    mbedtls_x509_subject_alternative_name san;
    // Types mbedTLS does not parse (otherName forms it does not know, IP addresses as
    // names of no endpoint) are skipped.
    if (mbedtls_x509_parse_subject_alt_name(&entry->buf, &san) != 0) continue;
    std::string value;
    if (san.type == MBEDTLS_X509_SAN_DNS_NAME ||
        san.type == MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER) {
      value.assign(View(san.san.unstructured_name));
    }
    mbedtls_x509_free_subject_alt_name(&san);
    if (!value.empty()) return value;
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// The server's credential.

absl::StatusOr<ServerCertificate> ParseServerCertificate(std::string chain_pem, std::string key_pem,
                                                         std::string_view what_certificate,
                                                         std::string_view what_key) {
  LocalRandom random;
  if (absl::Status status = random.status(); !status.ok()) return status;
  const std::vector<std::string_view> blocks = PemBlocks(chain_pem);
  if (blocks.empty()) {
    return absl::InvalidArgumentError(
        StrCat(what_certificate, ": no PEM certificate (\"", kPemBegin, "\")"));
  }
  Certificates chain;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (int error = ParseOne(chain.chain, blocks[i]); error != 0) {
      return absl::InvalidArgumentError(
          StrCat(what_certificate, ": certificate ", i + 1, " does not parse: ", ErrorText(error)));
    }
  }
  std::vector<size_t> lengths;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const mbedtls_x509_crt* certificate = Nth(chain.chain, i);
    lengths.push_back(certificate->raw.len);
    if (i == 0) continue;
    const mbedtls_x509_crt* child = Nth(chain.chain, i - 1);
    // mbedTLS sends the chain as configured, and a device checks it in that order
    // (RFC 5246 §7.4.2: each certificate certifies the one before).
    if (View(certificate->subject_raw) != View(child->issuer_raw)) {
      return absl::InvalidArgumentError(StrCat(what_certificate, ": certificate ", i + 1, " (",
                                               DistinguishedName(certificate->subject),
                                               ") is not the issuer of certificate ", i,
                                               " (issued by ", DistinguishedName(child->issuer),
                                               "); the chain goes leaf first, each certificate "
                                               "followed by its issuer"));
    }
  }
  const size_t message_bytes = CertificateMessageBytes(lengths);
  if (message_bytes > MaxCertificateMessageBytes()) {
    return absl::InvalidArgumentError(StrCat(
        what_certificate, ": the chain (", blocks.size(), " certificates) makes a ", message_bytes,
        "-byte Certificate message, and mbedTLS sends at most ", MaxCertificateMessageBytes(),
        " bytes in one (MBEDTLS_SSL_OUT_CONTENT_LEN): leave out the root, which devices "
        "have already, or use ECDSA certificates, which are smaller"));
  }

  Key key;
  if (int error = mbedtls_pk_parse_key(
          &key.pk, reinterpret_cast<const unsigned char*>(key_pem.c_str()), key_pem.size() + 1,
          nullptr, 0, mbedtls_ctr_drbg_random, random.context());
      error != 0) {
    if (error == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
      return absl::InvalidArgumentError(
          StrCat(what_key, ": the key is encrypted; lwm2md needs it unencrypted"));
    }
    return absl::InvalidArgumentError(
        StrCat(what_key, ": no usable PEM private key: ", ErrorText(error)));
  }
  if (mbedtls_pk_check_pair(&chain.chain.pk, &key.pk, mbedtls_ctr_drbg_random, random.context()) !=
      0) {
    return absl::InvalidArgumentError(
        StrCat(what_key, ": does not match the certificate in ", what_certificate));
  }

  ServerCertificate result;
  result.thumbprint = Sha256Hex({chain.chain.raw.p, chain.chain.raw.len});
  result.subject = DistinguishedName(chain.chain.subject);
  result.not_after = ToTime(chain.chain.valid_to);
  result.certificates = blocks.size();
  result.message_bytes = message_bytes;
  result.chain_pem = std::move(chain_pem);
  result.key_pem = std::move(key_pem);
  return result;
}

absl::StatusOr<ServerCertificate> LoadServerCertificate(const std::string& certificate_file,
                                                        const std::string& key_file) {
  const std::string what_certificate = StrCat("dtls.certificate_file ", Quoted(certificate_file));
  const std::string what_key = StrCat("dtls.private_key_file ", Quoted(key_file));
  absl::StatusOr<std::string> chain = ReadFile("dtls.certificate_file", certificate_file);
  if (!chain.ok()) return chain.status();
  absl::StatusOr<std::string> key = ReadFile("dtls.private_key_file", key_file);
  if (!key.ok()) return key.status();
  absl::StatusOr<ServerCertificate> parsed =
      ParseServerCertificate(*std::move(chain), *std::move(key), what_certificate, what_key);
  if (!parsed.ok()) return parsed.status();
  parsed->certificate_path = certificate_file;
  parsed->key_path = key_file;
  return parsed;
}

absl::StatusOr<ServerCertificate> GenerateServerCertificate(std::string_view common_name) {
  LocalRandom random;
  if (absl::Status status = random.status(); !status.ok()) return status;
  Key key;
  int error = mbedtls_pk_setup(&key.pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (error == 0) {
    error = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key.pk),
                                mbedtls_ctr_drbg_random, random.context());
  }
  if (error != 0) {
    return absl::InternalError(StrCat("dtls: making a P-256 key: ", ErrorText(error)));
  }
  absl::StatusOr<std::string> key_pem = WriteKeyPem(key.pk);
  if (!key_pem.ok()) return key_pem.status();
  return GenerateForKey(key.pk, common_name, random, *std::move(key_pem));
}

absl::StatusOr<ServerCertificate> LoadOrCreateServerCertificate(const std::string& directory) {
  const std::string certificate_path = (std::filesystem::path(directory) / kGeneratedCertificate);
  const std::string key_path = (std::filesystem::path(directory) / kGeneratedKey);
  const auto exists = [](const std::string& path) { return access(path.c_str(), F_OK) == 0; };
  const auto load = [&]() -> absl::StatusOr<ServerCertificate> {
    absl::StatusOr<std::string> chain = ReadFile("generated DTLS certificate", certificate_path);
    if (!chain.ok()) return chain.status();
    absl::StatusOr<std::string> key = ReadFile("generated DTLS key", key_path);
    if (!key.ok()) return key.status();
    absl::StatusOr<ServerCertificate> parsed = ParseServerCertificate(
        *std::move(chain), *std::move(key), Quoted(certificate_path), Quoted(key_path));
    if (!parsed.ok()) {
      return absl::FailedPreconditionError(
          StrCat(parsed.status().message(), " (delete ", Quoted(certificate_path), " and ",
                 Quoted(key_path),
                 " for a new pair, or set dtls.certificate_file and "
                 "dtls.private_key_file)"));
    }
    parsed->certificate_path = certificate_path;
    parsed->key_path = key_path;
    return parsed;
  };
  if (exists(certificate_path)) {
    if (!exists(key_path)) {
      return absl::FailedPreconditionError(StrCat(Quoted(certificate_path),
                                                  " has no key beside it (", Quoted(key_path),
                                                  "): delete the certificate for a new pair"));
    }
    return load();
  }

  // The key goes to disk first: a crash before the certificate follows leaves a key, for
  // which the next start makes a certificate.
  absl::StatusOr<ServerCertificate> made;
  if (exists(key_path)) {
    absl::StatusOr<std::string> key_pem = ReadFile("generated DTLS key", key_path);
    if (!key_pem.ok()) return key_pem.status();
    LocalRandom random;
    if (absl::Status status = random.status(); !status.ok()) return status;
    Key key;
    if (int error = mbedtls_pk_parse_key(
            &key.pk, reinterpret_cast<const unsigned char*>(key_pem->c_str()), key_pem->size() + 1,
            nullptr, 0, mbedtls_ctr_drbg_random, random.context());
        error != 0) {
      return absl::FailedPreconditionError(StrCat(Quoted(key_path), ": no usable PEM private key (",
                                                  ErrorText(error), "): delete it for a new pair"));
    }
    made = GenerateForKey(key.pk, "lwm2md", random, *std::move(key_pem));
  } else {
    made = GenerateServerCertificate("lwm2md");
    if (!made.ok()) return made.status();
    if (absl::Status status = CreateFile(key_path, made->key_pem, S_IRUSR | S_IWUSR);
        absl::IsAlreadyExists(status)) {
      return load();  // another process made the pair meanwhile
    } else if (!status.ok()) {
      return status;
    }
  }
  if (!made.ok()) return made.status();
  // The certificate is public: readable by others, like any certificate file.
  if (absl::Status status =
          CreateFile(certificate_path, made->chain_pem, S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
      absl::IsAlreadyExists(status)) {
    return load();
  } else if (!status.ok()) {
    return status;
  }
  made->certificate_path = certificate_path;
  made->key_path = key_path;
  return made;
}

// ---------------------------------------------------------------------------------------------
// CA certificates.

absl::StatusOr<std::vector<CaCertificate>> ParseCaCertificates(std::string_view text,
                                                               absl::Time now) {
  std::vector<std::string_view> blocks = PemBlocks(text);
  if (blocks.empty()) {
    // One DER certificate: a SEQUENCE.
    if (text.empty() || static_cast<uint8_t>(text[0]) != 0x30) {
      return absl::InvalidArgumentError(StrCat("no certificate: expected PEM (\"", kPemBegin,
                                               "\" blocks) or one DER certificate"));
    }
    blocks.push_back(text);
  }
  std::vector<CaCertificate> result;
  for (size_t i = 0; i < blocks.size(); ++i) {
    Certificates parsed;
    if (int error = ParseOne(parsed.chain, blocks[i]); error != 0) {
      return absl::InvalidArgumentError(
          StrCat("certificate ", i + 1, " does not parse: ", ErrorText(error)));
    }
    const mbedtls_x509_crt& crt = parsed.chain;
    CaCertificate ca;
    ca.der.assign(View(crt.raw));
    ca.thumbprint = Sha256Hex({crt.raw.p, crt.raw.len});
    ca.subject = DistinguishedName(crt.subject);
    ca.issuer = DistinguishedName(crt.issuer);
    ca.not_before = ToTime(crt.valid_from);
    ca.not_after = ToTime(crt.valid_to);
    ca.subject_der.assign(View(crt.subject_raw));
    const std::string which = StrCat("certificate ", i + 1, " (", ca.subject, ")");
    // RFC 5280 §4.2.1.9: only a certificate with cA TRUE may sign certificates, and mbedTLS
    // never takes another as an issuer.
    if (mbedtls_x509_crt_get_ca_istrue(&crt) != 1) {
      return absl::InvalidArgumentError(
          StrCat(which, ": not a CA certificate (no basicConstraints CA:TRUE)"));
    }
    if (mbedtls_x509_crt_check_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN) != 0) {
      return absl::InvalidArgumentError(
          StrCat(which, ": its keyUsage does not allow signing certificates (keyCertSign)"));
    }
    if (ca.not_after < now) {
      return absl::InvalidArgumentError(StrCat(which, ": expired on ", FormatDay(ca.not_after)));
    }
    const bool duplicate = std::any_of(result.begin(), result.end(), [&](const CaCertificate& c) {
      return c.thumbprint == ca.thumbprint;
    });
    if (!duplicate) result.push_back(std::move(ca));
  }
  return result;
}

const CaCertificate* CaSet::Find(std::string_view thumbprint) const {
  auto it = std::lower_bound(
      certificates_.begin(), certificates_.end(), thumbprint,
      [](const CaCertificate& ca, std::string_view key) { return ca.thumbprint < key; });
  return it != certificates_.end() && it->thumbprint == thumbprint ? &*it : nullptr;
}

absl::StatusOr<std::unique_ptr<CaStore>> CaStore::Open(store::Store& store) {
  std::unique_ptr<CaStore> cas(new CaStore(store));
  std::vector<CaCertificate> certificates;
  absl::Status corrupt;
  absl::Status scanned = store.Scan(
      store::Table::kSettings, kCaPrefix, {}, [&](std::string_view key, std::string_view value) {
        // A stored CA that expired since stays listed (and refused by verification) until
        // someone deletes it.
        absl::StatusOr<std::vector<CaCertificate>> parsed =
            ParseCaCertificates(value, absl::InfinitePast());
        if (!parsed.ok() || parsed->size() != 1 ||
            (*parsed)[0].thumbprint != key.substr(kCaPrefix.size())) {
          corrupt = absl::DataLossError(
              StrCat("stored CA certificate ", Quoted(key), " is corrupt",
                     parsed.ok() ? std::string() : StrCat(": ", parsed.status().message())));
          return false;
        }
        certificates.push_back(std::move((*parsed)[0]));
        return true;
      });
  if (!scanned.ok()) return scanned;
  if (!corrupt.ok()) return corrupt;
  absl::MutexLock lock(&cas->write_mutex_);
  cas->Publish(std::move(certificates));
  return cas;
}

std::shared_ptr<const CaSet> CaStore::Current() const {
  absl::MutexLock lock(&current_mutex_);
  return current_;
}

void CaStore::Publish(std::vector<CaCertificate> certificates) {
  std::sort(
      certificates.begin(), certificates.end(),
      [](const CaCertificate& a, const CaCertificate& b) { return a.thumbprint < b.thumbprint; });
  const uint64_t version = version_.load(std::memory_order_relaxed) + 1;
  auto set = std::make_shared<const CaSet>(version, std::move(certificates));
  {
    absl::MutexLock lock(&current_mutex_);
    current_ = std::move(set);
  }
  // After the set: a shard that sees the new version finds (at least) the new set.
  version_.store(version, std::memory_order_release);
}

absl::StatusOr<std::vector<CaStore::Added>> CaStore::Add(std::string_view text) {
  absl::StatusOr<std::vector<CaCertificate>> parsed = ParseCaCertificates(text, absl::Now());
  if (!parsed.ok()) return parsed.status();
  absl::MutexLock lock(&write_mutex_);
  const std::shared_ptr<const CaSet> current = Current();
  std::vector<CaCertificate> next = current->certificates();
  std::vector<Added> result;
  store::WriteBatch batch;
  for (CaCertificate& ca : *parsed) {
    const bool present = current->Find(ca.thumbprint) != nullptr;
    if (!present) {
      batch.Put(store::Table::kSettings, StrCat(kCaPrefix, ca.thumbprint), ca.der);
      next.push_back(ca);
    }
    result.push_back(Added{std::move(ca), !present});
  }
  if (next.size() > kMaxCertificates) {
    return absl::FailedPreconditionError(
        StrCat("at most ", kMaxCertificates, " CA certificates (", current->certificates().size(),
               " stored, ", next.size() - current->certificates().size(), " new)"));
  }
  if (batch.empty()) return result;
  if (absl::Status status = store_.Write(std::move(batch)); !status.ok()) return status;
  Publish(std::move(next));
  return result;
}

absl::Status CaStore::Remove(std::string_view thumbprint) {
  std::string normalized;
  for (char c : thumbprint) {
    if (c == ':') continue;
    normalized.push_back(c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  absl::MutexLock lock(&write_mutex_);
  const std::shared_ptr<const CaSet> current = Current();
  if (current->Find(normalized) == nullptr) {
    return absl::NotFoundError(StrCat("CA certificate ", Quoted(thumbprint), " not found"));
  }
  store::WriteBatch batch;
  batch.Delete(store::Table::kSettings, StrCat(kCaPrefix, normalized));
  if (absl::Status status = store_.Write(std::move(batch)); !status.ok()) return status;
  std::vector<CaCertificate> next;
  for (const CaCertificate& ca : current->certificates()) {
    if (ca.thumbprint != normalized) next.push_back(ca);
  }
  Publish(std::move(next));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// One shard's certificates.

struct ShardCertificates::Parsed {
  mbedtls_x509_crt chain;
  mbedtls_pk_context key;
  bool has_server = false;
  Parsed() {
    mbedtls_x509_crt_init(&chain);
    mbedtls_pk_init(&key);
  }
  ~Parsed() {
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&chain);
  }
};

ShardCertificates::ShardCertificates(CertificateOptions options)
    : options_(std::move(options)), parsed_(std::make_unique<Parsed>()) {}

ShardCertificates::~ShardCertificates() = default;

absl::StatusOr<std::unique_ptr<ShardCertificates>> ShardCertificates::Create(
    CertificateOptions options, Random random, void* random_context) {
  std::unique_ptr<ShardCertificates> shard(new ShardCertificates(std::move(options)));
  if (const ServerCertificate* server = shard->options_.server.get(); server != nullptr) {
    Parsed& parsed = *shard->parsed_;
    for (std::string_view block : PemBlocks(server->chain_pem)) {
      if (int error = ParseOne(parsed.chain, block); error != 0) {
        return absl::InternalError(StrCat("dtls: server certificate: ", ErrorText(error)));
      }
    }
    if (int error = mbedtls_pk_parse_key(
            &parsed.key, reinterpret_cast<const unsigned char*>(server->key_pem.c_str()),
            server->key_pem.size() + 1, nullptr, 0, random, random_context);
        error != 0) {
      return absl::InternalError(StrCat("dtls: server key: ", ErrorText(error)));
    }
    parsed.has_server = true;
  }
  return shard;
}

bool ShardCertificates::has_server_certificate() const { return parsed_->has_server; }

absl::Status ShardCertificates::Configure(mbedtls_ssl_config& config) {
  if (parsed_->has_server) {
    if (int error = mbedtls_ssl_conf_own_cert(&config, &parsed_->chain, &parsed_->key);
        error != 0) {
      return absl::InternalError(StrCat("dtls: server certificate: ", ErrorText(error)));
    }
  }
  // Only certificate suites send a CertificateRequest: PSK handshakes are unaffected. A
  // client in a certificate suite must prove who it is; the verify callback decides whether
  // the certificate is good enough, untrusted chains included.
  mbedtls_ssl_conf_authmode(&config, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_cb(&config, &ShardCertificates::TrustedCas, this);
  return absl::OkStatus();
}

void ShardCertificates::Attach(mbedtls_ssl_context& ssl, Verification& verification) {
  verification.owner_ = this;
  mbedtls_ssl_set_verify(&ssl, &ShardCertificates::Verify, &verification);
}

void ShardCertificates::Verification::Reset() {
  chain_untrusted_ = false;
  chain_flags_ = 0;
  identity_.reset();
  refusal_.clear();
}

int ShardCertificates::TrustedCas(void* self, const mbedtls_x509_crt* child,
                                  mbedtls_x509_crt** candidates) {
  auto* shard = static_cast<ShardCertificates*>(self);
  *candidates = nullptr;
  const CaStore* store = shard->options_.ca_store;
  if (store == nullptr) return 0;
  if (shard->cas_ == nullptr || store->version() != shard->cas_version_) {
    shard->cas_ = store->Current();
    shard->cas_version_ = shard->cas_->version();
    ++shard->ca_reloads_;
  }
  const std::string_view issuer = View(child->issuer_raw);
  mbedtls_x509_crt* list = nullptr;
  for (const CaCertificate& ca : shard->cas_->certificates()) {
    if (ca.subject_der != issuer) continue;
    if (list == nullptr) {
      // mbedTLS frees the list with mbedtls_free once the verification step is done.
      list = static_cast<mbedtls_x509_crt*>(mbedtls_calloc(1, sizeof(mbedtls_x509_crt)));
      if (list == nullptr) return MBEDTLS_ERR_X509_ALLOC_FAILED;
      mbedtls_x509_crt_init(list);
    }
    // Checked when it was uploaded: it parses.
    mbedtls_x509_crt_parse_der(list, reinterpret_cast<const unsigned char*>(ca.der.data()),
                               ca.der.size());
  }
  if (list != nullptr && list->raw.p == nullptr) {
    mbedtls_x509_crt_free(list);
    mbedtls_free(list);
    list = nullptr;
  }
  *candidates = list;
  return 0;
}

int ShardCertificates::Verify(void* context, mbedtls_x509_crt* certificate, int depth,
                              uint32_t* flags) {
  auto& verification = *static_cast<Verification*>(context);
  if (depth > 0) {
    // An issuer (sent by the device or an uploaded CA). Whether the chain's lack of a
    // trusted root matters is decided at the leaf, which is called last.
    if ((*flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) != 0) {
      verification.chain_untrusted_ = true;
      *flags &= ~static_cast<uint32_t>(MBEDTLS_X509_BADCERT_NOT_TRUSTED);
    }
    verification.chain_flags_ |= *flags;
    return 0;
  }
  verification.owner_->Decide(verification, *certificate, flags);
  return 0;
}

void ShardCertificates::Decide(Verification& verification, const mbedtls_x509_crt& leaf,
                               uint32_t* flags) {
  constexpr uint32_t kNotTrusted = MBEDTLS_X509_BADCERT_NOT_TRUSTED;
  const bool untrusted = verification.chain_untrusted_ || (*flags & kNotTrusted) != 0;
  *flags &= ~kNotTrusted;
  CertificateIdentity identity;
  identity.thumbprint = Sha256Hex({leaf.raw.p, leaf.raw.len});
  identity.name = CertificateEndpointName(leaf);
  std::optional<std::string> endpoint;
  if (options_.thumbprint_lookup) endpoint = options_.thumbprint_lookup(identity.thumbprint);
  std::string refusal;
  if (endpoint.has_value()) {
    // Thumbprint mode: the endpoint's configuration vouches for this very certificate, so
    // no CA needs to.
    identity.endpoint = *std::move(endpoint);
  } else if (!untrusted && options_.ca_store != nullptr) {
    // CA mode: an uploaded CA vouches for the name the certificate carries.
    std::optional<std::string> refused;
    if (identity.name.empty()) {
      refused = "it carries no endpoint name (no CN, dNSName or URI)";
    } else if (options_.ca_refusal) {
      refused = options_.ca_refusal(identity.name);
    }
    if (refused.has_value()) {
      *flags |= MBEDTLS_X509_BADCERT_OTHER;  // answered with an access_denied alert
      refusal = StrCat("signed by an uploaded CA, but ", *refused);
    } else {
      identity.endpoint = identity.name;
      identity.via_ca = true;
    }
  } else {
    *flags |= kNotTrusted;  // answered with an unknown_ca alert
    refusal = "unknown thumbprint, and not signed by an uploaded CA";
  }
  // Validity is checked in both modes, the leaf's and its issuers'.
  const uint32_t all = *flags | verification.chain_flags_;
  if ((all & MBEDTLS_X509_BADCERT_EXPIRED) != 0) {
    refusal = (*flags & MBEDTLS_X509_BADCERT_EXPIRED) != 0
                  ? StrCat("expired on ", FormatDay(ToTime(leaf.valid_to)))
                  : std::string("a certificate of its chain has expired");
  } else if ((all & MBEDTLS_X509_BADCERT_FUTURE) != 0) {
    refusal = (*flags & MBEDTLS_X509_BADCERT_FUTURE) != 0
                  ? StrCat("not valid before ", FormatDay(ToTime(leaf.valid_from)))
                  : std::string("a certificate of its chain is not valid yet");
  } else if (all != 0 && refusal.empty()) {
    char info[256];
    const int length = mbedtls_x509_crt_verify_info(info, sizeof(info), "", all);
    refusal = length > 0 ? std::string(info, static_cast<size_t>(length)) : "refused";
    while (!refusal.empty() && refusal.back() == '\n') refusal.pop_back();
  }
  verification.identity_.reset();
  verification.refusal_.clear();
  if (all == 0) {
    verification.identity_ = std::move(identity);
  } else {
    verification.refusal_ =
        StrCat("certificate ", identity.thumbprint, " (",
               identity.name.empty() ? "no name" : identity.name, "): ", refusal);
  }
}

}  // namespace lwm2md::dtls
