#pragma once
// The CA certificates of DTLS CA mode (dtls::CaStore) as the REST API sees them
// (api::CaCertificates): the API layer does not use dtls/, the server joins the two.

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "api/certificate_routes.h"
#include "dtls/certificates.h"

namespace lwm2md::server {

class ApiCaCertificates final : public api::CaCertificates {
 public:
  explicit ApiCaCertificates(dtls::CaStore& store) : store_(store) {}

  absl::StatusOr<std::vector<Added>> Add(std::string_view text) override;
  std::vector<api::CaCertificateInfo> List() const override;
  std::optional<api::CaCertificateInfo> Find(std::string_view thumbprint) const override;
  absl::Status Remove(std::string_view thumbprint) override { return store_.Remove(thumbprint); }

 private:
  dtls::CaStore& store_;
};

}  // namespace lwm2md::server
