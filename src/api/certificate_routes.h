#pragma once
// /api/v1/certificates/ca: the CA certificates that client certificates of CA mode
// ("x509-ca" endpoints, and devices with no configuration) must chain to.
//
//   POST   /api/v1/certificates/ca               PEM (one or more certificates) or one DER
//   GET    /api/v1/certificates/ca               the list
//   GET    /api/v1/certificates/ca/{thumbprint}  one, with its PEM
//   DELETE /api/v1/certificates/ca/{thumbprint}
//
// The certificates themselves belong to the DTLS layer, which the API does not use: the
// server hands the routes a CaCertificates over dtls::CaStore (server/ca_certificates.h).
// Changes reach every shard's next handshake, no restart needed.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace lwm2md::api {

// One CA certificate as the API shows it.
struct CaCertificateInfo {
  std::string thumbprint;  // SHA-256 of the DER, lowercase hex
  std::string subject;
  std::string issuer;
  absl::Time not_before;
  absl::Time not_after;
  std::string der;
};

// The CA certificates of CA mode. Called on HTTP worker threads; writes return once durable.
class CaCertificates {
 public:
  virtual ~CaCertificates() = default;
  struct Added {
    CaCertificateInfo certificate;
    bool added = false;  // false: it was there already
  };
  // Every certificate of text (PEM, one or more, or one DER), each added unless present.
  // InvalidArgument (nothing stored) when one is not a valid CA certificate.
  virtual absl::StatusOr<std::vector<Added>> Add(std::string_view text) = 0;
  virtual std::vector<CaCertificateInfo> List() const = 0;
  // thumbprint: 64 hex digits, lowercase, no colons.
  virtual std::optional<CaCertificateInfo> Find(std::string_view thumbprint) const = 0;
  // NotFound when there is none; colons and upper case accepted.
  virtual absl::Status Remove(std::string_view thumbprint) = 0;
};

void AddCertificateRoutes(httplib::Server& server, CaCertificates& cas);

}  // namespace lwm2md::api
