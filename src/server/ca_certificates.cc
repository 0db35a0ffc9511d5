#include "server/ca_certificates.h"

#include <string>

namespace lwm2md::server {
namespace {

api::CaCertificateInfo ToInfo(const dtls::CaCertificate& ca) {
  return api::CaCertificateInfo{.thumbprint = ca.thumbprint,
                                .subject = ca.subject,
                                .issuer = ca.issuer,
                                .not_before = ca.not_before,
                                .not_after = ca.not_after,
                                .der = ca.der};
}

}  // namespace

absl::StatusOr<std::vector<api::CaCertificates::Added>> ApiCaCertificates::Add(
    std::string_view text) {
  absl::StatusOr<std::vector<dtls::CaStore::Added>> added = store_.Add(text);
  if (!added.ok()) return added.status();
  std::vector<Added> out;
  out.reserve(added->size());
  for (const dtls::CaStore::Added& entry : *added) {
    out.push_back(Added{ToInfo(entry.certificate), entry.added});
  }
  return out;
}

std::vector<api::CaCertificateInfo> ApiCaCertificates::List() const {
  std::vector<api::CaCertificateInfo> out;
  for (const dtls::CaCertificate& ca : store_.Current()->certificates()) out.push_back(ToInfo(ca));
  return out;
}

std::optional<api::CaCertificateInfo> ApiCaCertificates::Find(std::string_view thumbprint) const {
  const dtls::CaCertificate* ca = store_.Current()->Find(std::string(thumbprint));
  if (ca == nullptr) return std::nullopt;
  return ToInfo(*ca);
}

}  // namespace lwm2md::server
