// /api/v1/certificates/ca (certificate_routes.h). Handlers run on HTTP worker threads;
// uploads and deletes return once the change is durable (CaCertificates), so a 2xx means the
// shards see it at their next handshake.

#include "api/certificate_routes.h"

#include <httplib.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "api/route_util.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "base/strings.h"

namespace lwm2md::api {
namespace {

// A bundle of a hundred CA certificates is about 100 KiB of PEM.
constexpr size_t kMaxBodyBytes = 256 * 1024;
constexpr char kCaPath[] = "/api/v1/certificates/ca";
constexpr char kOneCaPath[] = R"(/api/v1/certificates/ca/([^/]+))";

std::string Rfc3339(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

// RFC 7468 §2: base64 in lines of 64 characters.
std::string Pem(std::string_view der) {
  const std::string base64 = absl::Base64Escape(base::Absl(der));
  std::string pem = "-----BEGIN CERTIFICATE-----\n";
  for (size_t at = 0; at < base64.size(); at += 64) {
    pem.append(base64, at, 64).push_back('\n');
  }
  pem += "-----END CERTIFICATE-----\n";
  return pem;
}

void WriteMembers(const CaCertificateInfo& ca, base::JsonWriter& out) {
  out.Key("thumbprint").String(ca.thumbprint);
  out.Key("subject").String(ca.subject);
  out.Key("issuer").String(ca.issuer);
  out.Key("notBefore").String(Rfc3339(ca.not_before));
  out.Key("notAfter").String(Rfc3339(ca.not_after));
}

std::string ListJson(const std::vector<CaCertificateInfo>& certificates) {
  base::JsonWriter out;
  out.BeginObject().Key("certificates").BeginArray();
  for (const CaCertificateInfo& ca : certificates) {
    out.BeginObject();
    WriteMembers(ca, out);
    out.EndObject();
  }
  out.EndArray().EndObject();
  return out.Take();
}

// The thumbprint a path names: 64 hex digits, openssl's colon form and upper case accepted.
std::string NormalizeThumbprint(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ':') continue;
    out.push_back(c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

void Upload(const httplib::Request& request, httplib::Response& response,
            const httplib::ContentReader& reader, CaCertificates& cas) {
  std::string body;
  // RFC 8555 §9.1's type for a PEM chain, the common x-pem-file, plain text, and RFC 2585's
  // DER type.
  if (!ReadBody(request, response, reader,
                {"application/pem-certificate-chain", "application/x-pem-file", "text/plain",
                 "application/pkix-cert"},
                kMaxBodyBytes, &body)) {
    return;
  }
  absl::StatusOr<std::vector<CaCertificates::Added>> added = cas.Add(body);
  if (!added.ok()) {
    SendStatus(request, response, added.status());
    return;
  }
  bool any = false;
  base::JsonWriter out;
  out.BeginObject().Key("certificates").BeginArray();
  for (const CaCertificates::Added& entry : *added) {
    out.BeginObject();
    WriteMembers(entry.certificate, out);
    out.Key("added").Bool(entry.added);
    out.EndObject();
    if (entry.added) {
      any = true;
      LWM2MD_LOG(kInfo, "CA certificate %s (%s) uploaded", entry.certificate.thumbprint,
                 entry.certificate.subject);
    }
  }
  out.EndArray().EndObject();
  if (added->size() == 1) {
    response.set_header("Location", absl::StrCat(kCaPath, "/", (*added)[0].certificate.thumbprint));
  }
  // 201 when something was stored; 200 when every certificate was there already.
  SendJson(response, any ? 201 : 200, out.Take());
}

void GetOne(const httplib::Request& request, httplib::Response& response,
            const CaCertificates& cas) {
  const std::string thumbprint = NormalizeThumbprint(request.matches[1].str());
  const std::optional<CaCertificateInfo> ca = cas.Find(thumbprint);
  if (!ca) {
    SendError(response, 404,
              absl::StrCat("CA certificate \"", request.matches[1].str(), "\" not found"));
    return;
  }
  base::JsonWriter out;
  out.BeginObject();
  WriteMembers(*ca, out);
  out.Key("pem").String(Pem(ca->der));
  out.EndObject();
  SendJson(response, 200, out.Take());
}

void Delete(const httplib::Request& request, httplib::Response& response, CaCertificates& cas) {
  const std::string thumbprint = request.matches[1].str();
  if (absl::Status status = cas.Remove(thumbprint); !status.ok()) {
    SendStatus(request, response, status);
    return;
  }
  LWM2MD_LOG(kInfo, "CA certificate %s deleted", NormalizeThumbprint(thumbprint));
  response.status = 204;
}

}  // namespace

void AddCertificateRoutes(httplib::Server& server, CaCertificates& cas) {
  server.Post(kCaPath, [&cas](const httplib::Request& request, httplib::Response& response,
                              const httplib::ContentReader& reader) {
    Upload(request, response, reader, cas);
  });
  server.Get(kCaPath, [&cas](const httplib::Request&, httplib::Response& response) {
    SendJson(response, 200, ListJson(cas.List()));
  });
  server.Get(kOneCaPath, [&cas](const httplib::Request& request, httplib::Response& response) {
    GetOne(request, response, cas);
  });
  server.Delete(kOneCaPath, [&cas](const httplib::Request& request, httplib::Response& response) {
    Delete(request, response, cas);
  });
}

}  // namespace lwm2md::api
