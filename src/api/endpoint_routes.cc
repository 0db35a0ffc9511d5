// /api/v1/endpoints and /api/v1/settings: the endpoint configurations and the service
// settings (the reference's "LWM2M endpoint" and "LWM2M service"), over EndpointConfigStore.
// Handlers run on HTTP worker threads; writes wait for the store's commit, so a 2xx means
// the change is durable.

#include <httplib.h>

#include <cctype>
#include <charconv>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "api/route_util.h"
#include "api/routes.h"
#include "base/json_writer.h"
#include "base/strings.h"
#include "lwm2m/endpoint_config.h"
#include "lwm2m/endpoint_directory.h"

namespace lwm2md::api {
namespace {

// Endpoint and settings bodies are a few hundred bytes; the bound keeps a client from making
// a worker buffer an arbitrary amount.
constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr size_t kDefaultPageSize = 100;
constexpr size_t kMaxPageSize = 1000;
// Endpoint names never contain '/', so one path segment is the whole name. httplib matches
// against the percent-decoded path, so "urn%3Aimei%3A1" arrives as "urn:imei:1".
constexpr char kEndpointPath[] = R"(/api/v1/endpoints/([^/]+))";

// Endpoint and settings bodies are JSON; merge_patch (PATCH) also admits RFC 7396's media
// type.
bool ReadJsonBody(const httplib::Request& request, httplib::Response& response,
                  const httplib::ContentReader& reader, bool merge_patch, std::string* body) {
  return merge_patch
             ? ReadBody(request, response, reader, {kJsonMediaType, "application/merge-patch+json"},
                        kMaxBodyBytes, body)
             : ReadBody(request, response, reader, {kJsonMediaType}, kMaxBodyBytes, body);
}

std::string FormatRfc3339(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

// Minimal percent-encoding of a path segment (RFC 3986 §3.3 pchar), for Location headers.
std::string EncodePathSegment(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : segment) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) ||
        std::string_view("-._~!$&'()*+,;=:@").find(c) != std::string_view::npos) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    }
  }
  return out;
}

// The endpoint as the API shows it: its configuration, then its presence when a directory is
// at hand ("offline" when the directory does not know it).
// configured: false for an endpoint that registered without being created through the API
// (allowed by allowUnknownEndpoints): it has a status but no configuration.
void WriteEndpoint(const lwm2m::EndpointConfig& config, const lwm2m::EndpointDirectory* directory,
                   base::JsonWriter& out, bool configured = true) {
  out.BeginObject();
  if (configured) {
    lwm2m::WriteEndpointMembers(config, out);
  } else {
    out.Key("name").String(config.name).Key("configured").Bool(false);
  }
  if (directory != nullptr) {
    std::optional<lwm2m::DirectoryEntry> entry = directory->Lookup(config.name);
    const lwm2m::Presence presence = entry ? entry->presence : lwm2m::Presence::kOffline;
    out.Key("status").String(lwm2m::PresenceName(presence));
    if (entry && entry->last_seen != absl::Time()) {
      out.Key("lastSeen").String(FormatRfc3339(entry->last_seen));
    }
    if (entry && !entry->address.empty()) out.Key("address").String(entry->address.ToString());
    if (entry && presence != lwm2m::Presence::kOffline) {
      out.Key("registration").BeginObject();
      out.Key("lifetime").Uint(entry->lifetime_seconds);
      out.Key("version").String(entry->version);
      out.Key("binding").String(entry->binding);
      out.Key("registeredAt").String(FormatRfc3339(entry->registered_at));
      out.EndObject();
    }
  }
  out.EndObject();
}

std::string EndpointJson(const lwm2m::EndpointConfig& config,
                         const lwm2m::EndpointDirectory* directory) {
  base::JsonWriter out;
  WriteEndpoint(config, directory, out);
  return out.Take();
}

void SendCreated(httplib::Response& response, const lwm2m::EndpointConfig& config,
                 const lwm2m::EndpointDirectory* directory) {
  response.set_header("Location",
                      absl::StrCat("/api/v1/endpoints/", EncodePathSegment(config.name)));
  SendJson(response, 201, EndpointJson(config, directory));
}

void ListEndpoints(const httplib::Request& request, httplib::Response& response,
                   const lwm2m::EndpointConfigStore& endpoints,
                   const lwm2m::EndpointDirectory* directory) {
  size_t limit = kDefaultPageSize;
  if (request.has_param("limit")) {
    const std::string text = request.get_param_value("limit");
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), limit);
    if (error != std::errc() || end != text.data() + text.size() || limit < 1 ||
        limit > kMaxPageSize) {
      SendError(response, 400, absl::StrCat("limit: must be an integer from 1 to ", kMaxPageSize));
      return;
    }
  }
  const std::string after = request.get_param_value("after");
  if (!after.empty()) {
    if (absl::Status status = lwm2m::ValidateEndpointName(after); !status.ok()) {
      SendError(response, 400,
                absl::StrCat("after: not an endpoint name (", status.message(), ")"));
      return;
    }
  }
  absl::StatusOr<lwm2m::EndpointPage> page = endpoints.List(after, limit);
  if (!page.ok()) {
    SendStatus(request, response, page.status());
    return;
  }
  base::JsonWriter out;
  out.BeginObject().Key("endpoints").BeginArray();
  for (const lwm2m::EndpointConfig& config : page->endpoints) WriteEndpoint(config, directory, out);
  out.EndArray();
  if (!page->next.empty()) out.Key("next").String(page->next);
  out.Key("total").Uint(endpoints.Count());
  out.EndObject();
  SendJson(response, 200, out.str());
}

void GetEndpoint(const httplib::Request& request, httplib::Response& response,
                 const lwm2m::EndpointConfigStore& endpoints,
                 const lwm2m::EndpointDirectory* directory) {
  const std::string name = request.matches[1];
  absl::StatusOr<std::optional<lwm2m::EndpointConfig>> config = endpoints.Get(name);
  if (!config.ok()) {
    SendStatus(request, response, config.status());
  } else if (!config->has_value()) {
    if (directory != nullptr && directory->Lookup(name).has_value()) {
      lwm2m::EndpointConfig unconfigured;
      unconfigured.name = name;
      base::JsonWriter out;
      WriteEndpoint(unconfigured, directory, out, /*configured=*/false);
      return SendJson(response, 200, out.Take());
    }
    SendError(response, 404, absl::StrCat("endpoint \"", name, "\" not found"));
  } else {
    SendJson(response, 200, EndpointJson(**config, directory));
  }
}

// PUT creates the endpoint when absent (201) and replaces it otherwise (200), so that
// provisioning scripts can be re-run.
void PutEndpoint(const httplib::Request& request, httplib::Response& response,
                 const httplib::ContentReader& reader, lwm2m::EndpointConfigStore& endpoints,
                 const lwm2m::EndpointDirectory* directory) {
  const std::string name = request.matches[1];
  std::string body;
  if (!ReadJsonBody(request, response, reader, /*merge_patch=*/false, &body)) return;
  absl::StatusOr<lwm2m::EndpointConfig> config = lwm2m::ParseEndpointJson(body, name);
  if (!config.ok()) {
    SendStatus(request, response, config.status());
    return;
  }
  // A concurrent create or delete can slip between the two attempts; the second round
  // settles it.
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<lwm2m::EndpointConfig> replaced = endpoints.Replace(*config);
    if (replaced.ok()) {
      SendJson(response, 200, EndpointJson(*replaced, directory));
      return;
    }
    if (!absl::IsNotFound(replaced.status())) {
      SendStatus(request, response, replaced.status());
      return;
    }
    absl::StatusOr<lwm2m::EndpointConfig> created = endpoints.Create(*config);
    if (created.ok()) {
      SendCreated(response, *created, directory);
      return;
    }
    // AlreadyExists naming the name means another PUT created it first: replace it then.
    // AlreadyExists naming the PSK identity is final.
    if (!absl::IsAlreadyExists(created.status()) ||
        !base::Std(created.status().message()).starts_with("name:")) {
      SendStatus(request, response, created.status());
      return;
    }
  }
  SendError(response, 409, absl::StrCat("endpoint \"", name, "\" is being changed concurrently"));
}

}  // namespace

void AddEndpointRoutes(httplib::Server& server, lwm2m::EndpointConfigStore& endpoints,
                       const lwm2m::EndpointDirectory* directory) {
  server.Post("/api/v1/endpoints",
              [&endpoints, directory](const httplib::Request& request, httplib::Response& response,
                                      const httplib::ContentReader& reader) {
                std::string body;
                if (!ReadJsonBody(request, response, reader, /*merge_patch=*/false, &body)) {
                  return;
                }
                absl::StatusOr<lwm2m::EndpointConfig> config = lwm2m::ParseEndpointJson(body);
                if (config.ok()) config = endpoints.Create(*std::move(config));
                if (!config.ok()) {
                  SendStatus(request, response, config.status());
                  return;
                }
                SendCreated(response, *config, directory);
              });

  server.Get("/api/v1/endpoints",
             [&endpoints, directory](const httplib::Request& request, httplib::Response& response) {
               ListEndpoints(request, response, endpoints, directory);
             });

  server.Get(kEndpointPath,
             [&endpoints, directory](const httplib::Request& request, httplib::Response& response) {
               GetEndpoint(request, response, endpoints, directory);
             });

  server.Put(kEndpointPath,
             [&endpoints, directory](const httplib::Request& request, httplib::Response& response,
                                     const httplib::ContentReader& reader) {
               PutEndpoint(request, response, reader, endpoints, directory);
             });

  server.Patch(kEndpointPath, [&endpoints, directory](const httplib::Request& request,
                                                      httplib::Response& response,
                                                      const httplib::ContentReader& reader) {
    const std::string name = request.matches[1];
    std::string body;
    if (!ReadJsonBody(request, response, reader, /*merge_patch=*/true, &body)) return;
    absl::StatusOr<lwm2m::EndpointUpdate> update = lwm2m::ParseEndpointUpdateJson(body, name);
    if (!update.ok()) {
      SendStatus(request, response, update.status());
      return;
    }
    absl::StatusOr<lwm2m::EndpointConfig> config = endpoints.Update(name, *update);
    if (!config.ok()) {
      SendStatus(request, response, config.status());
      return;
    }
    SendJson(response, 200, EndpointJson(*config, directory));
  });

  server.Delete(kEndpointPath,
                [&endpoints](const httplib::Request& request, httplib::Response& response) {
                  const std::string name = request.matches[1];
                  if (absl::Status status = endpoints.Delete(name); !status.ok()) {
                    SendStatus(request, response, status);
                    return;
                  }
                  response.status = 204;
                });
}

void AddSettingsRoutes(httplib::Server& server, lwm2m::EndpointConfigStore& endpoints) {
  server.Get("/api/v1/settings",
             [&endpoints](const httplib::Request&, httplib::Response& response) {
               SendJson(response, 200, lwm2m::SettingsToJson(endpoints.settings()));
             });

  // PUT takes every setting, PATCH some; both are validated whole before anything is stored.
  auto update = [&endpoints](bool partial) {
    return [&endpoints, partial](const httplib::Request& request, httplib::Response& response,
                                 const httplib::ContentReader& reader) {
      std::string body;
      if (!ReadJsonBody(request, response, reader, /*merge_patch=*/partial, &body)) return;
      absl::StatusOr<lwm2m::ServiceSettings> settings =
          endpoints.ModifySettings([&](const lwm2m::ServiceSettings& current) {
            return lwm2m::ParseSettingsJson(body, current, partial);
          });
      if (!settings.ok()) {
        SendStatus(request, response, settings.status());
        return;
      }
      SendJson(response, 200, lwm2m::SettingsToJson(*settings));
    };
  };
  server.Put("/api/v1/settings", update(/*partial=*/false));
  server.Patch("/api/v1/settings", update(/*partial=*/true));
}

}  // namespace lwm2md::api
