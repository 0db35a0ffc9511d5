#pragma once
// /api/v1/certificates/ca: the CA certificates that client certificates of CA mode
// ("x509-ca" endpoints, and devices with no configuration) must chain to. Internal to api/.
//
//   POST   /api/v1/certificates/ca               PEM (one or more certificates) or one DER
//   GET    /api/v1/certificates/ca               the list
//   GET    /api/v1/certificates/ca/{thumbprint}  one, with its PEM
//   DELETE /api/v1/certificates/ca/{thumbprint}
//
// Changes reach every shard's next handshake (dtls::CaStore versions), no restart needed.

namespace httplib {
class Server;
}  // namespace httplib

namespace lwm2md::dtls {
class CaStore;
}  // namespace lwm2md::dtls

namespace lwm2md::api {

void AddCertificateRoutes(httplib::Server& server, dtls::CaStore& cas);

}  // namespace lwm2md::api
