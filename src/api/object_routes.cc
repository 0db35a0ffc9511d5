// /api/v1/objects: the object definitions the server knows, and the custom ones users upload
// as OMA XML (the reference's "Custom objects": uploaded objects override the system's
// defaults, and can be deleted again). Handlers run on HTTP worker threads: reads take one
// catalog snapshot each; uploads and deletes wait for the store's commit, so a 2xx means the
// change is durable.

#include <httplib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/route_util.h"
#include "api/routes.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "lwm2m/object_model.h"
#include "lwm2m/object_registry.h"
#include "lwm2m/types.h"

namespace lwm2md::api {
namespace {

// The OMA registry's largest definitions are a few hundred kilobytes; the bound keeps a
// client from making a worker buffer an arbitrary amount of XML.
constexpr size_t kMaxXmlBytes = 1024 * 1024;
// One path segment: a decimal object id ("3") or an object key ("device").
constexpr char kObjectPath[] = R"(/api/v1/objects/([^/]+))";
constexpr char kObjectXmlPath[] = R"(/api/v1/objects/([^/]+)/xml)";

using lwm2m::ObjectCatalog;
using lwm2m::ObjectDefinition;

// The members every listing shows.
void WriteSummaryMembers(const ObjectCatalog::Entry& entry, base::JsonWriter& out) {
  const ObjectDefinition& object = *entry.definition;
  out.Key("id").Uint(object.id);
  out.Key("name").String(object.name);
  out.Key("key").String(object.key);
  out.Key("version").String(object.version);
  out.Key("lwm2mVersion").String(object.lwm2m_version);
  out.Key("urn").String(object.urn);
  out.Key("multiple").Bool(object.multiple);
  out.Key("mandatory").Bool(object.mandatory);
  out.Key("custom").Bool(entry.custom);
  // Whether this is the definition in use for the id (a custom one hides the built-in one).
  out.Key("active").Bool(entry.active);
}

std::string DefinitionJson(const ObjectCatalog::Entry& entry) {
  base::JsonWriter out;
  out.BeginObject();
  WriteSummaryMembers(entry, out);
  out.Key("description").String(entry.definition->description);
  out.Key("resources").BeginArray();
  for (const lwm2m::ResourceDefinition& resource : entry.definition->resources) {
    out.BeginObject();
    out.Key("id").Uint(resource.id);
    out.Key("name").String(resource.name);
    out.Key("key").String(resource.key);
    out.Key("operations").String(lwm2m::OperationsToString(resource.operations));
    out.Key("multiple").Bool(resource.multiple);
    out.Key("mandatory").Bool(resource.mandatory);
    out.Key("type").String(lwm2m::ResourceTypeName(resource.type));
    out.Key("range").String(resource.range_enumeration);
    out.Key("units").String(resource.units);
    out.Key("description").String(resource.description);
    out.EndObject();
  }
  out.EndArray();
  out.EndObject();
  return out.Take();
}

std::string ListJson(const ObjectCatalog& catalog) {
  base::JsonWriter out;
  out.BeginObject().Key("objects").BeginArray();
  for (const ObjectCatalog::Entry& entry : catalog) {
    out.BeginObject();
    WriteSummaryMembers(entry, out);
    out.Key("resourceCount").Uint(entry.definition->resources.size());
    out.EndObject();
  }
  out.EndArray().EndObject();
  return out.Take();
}

// The object id a path segment names: a decimal id, or the key of an object in use.
std::optional<uint16_t> ObjectIdOf(const ObjectCatalog& catalog, const std::string& segment) {
  if (std::optional<uint16_t> id = lwm2m::ParseObjectId(segment)) return id;
  const ObjectDefinition* object = catalog.FindObjectByKey(segment);
  if (object == nullptr) return std::nullopt;
  return object->id;
}

// The entry a GET addresses: with ?version=, that exact version (custom before built-in);
// without, the one in use. Sets a 404 and returns null when there is none.
const ObjectCatalog::Entry* FindForRequest(const ObjectCatalog& catalog,
                                           const httplib::Request& request,
                                           httplib::Response& response) {
  const std::string segment = request.matches[1];
  std::optional<uint16_t> id = ObjectIdOf(catalog, segment);
  if (!id || catalog.Find(*id) == nullptr) {
    SendError(response, 404, absl::StrCat("object ", segment, ": unknown"));
    return nullptr;
  }
  if (request.has_param("version")) {
    const std::string version = request.get_param_value("version");
    const ObjectCatalog::Entry* entry = catalog.FindEntry(*id, version, /*custom=*/true);
    if (entry == nullptr) entry = catalog.FindEntry(*id, version, /*custom=*/false);
    if (entry == nullptr) {
      SendError(response, 404, absl::StrCat("object ", *id, ": no version ", version));
    }
    return entry;
  }
  const ObjectDefinition* active = catalog.Find(*id);
  const ObjectCatalog::Entry* entry =
      catalog.FindEntry(*id, active->version, catalog.IsCustom(*id));
  return entry;
}

void Upload(const httplib::Request& request, httplib::Response& response,
            const httplib::ContentReader& reader, lwm2m::ObjectRegistry& registry) {
  std::string xml;
  if (!ReadBody(request, response, reader, {"application/xml", "text/xml"}, kMaxXmlBytes, &xml)) {
    return;
  }
  absl::StatusOr<ObjectDefinition> added = registry.AddCustom(xml);
  if (!added.ok()) {
    SendStatus(request, response, added.status());
    return;
  }
  std::shared_ptr<const ObjectCatalog> catalog = registry.snapshot();
  const ObjectCatalog::Entry* entry = catalog->FindEntry(added->id, added->version, true);
  if (entry == nullptr) {
    // Removed again by a concurrent DELETE between the two calls.
    SendError(response, 409, absl::StrCat("object ", added->id, ": removed meanwhile"));
    return;
  }
  LWM2MD_LOG(kInfo, "custom object %d version %s (%s) uploaded", added->id, added->version,
             added->name);
  response.set_header("Location",
                      absl::StrCat("/api/v1/objects/", added->id, "?version=", added->version));
  SendJson(response, 201, DefinitionJson(*entry));
}

void Delete(const httplib::Request& request, httplib::Response& response,
            lwm2m::ObjectRegistry& registry) {
  std::shared_ptr<const ObjectCatalog> catalog = registry.snapshot();
  const std::string segment = request.matches[1];
  std::optional<uint16_t> id = ObjectIdOf(*catalog, segment);
  if (!id || catalog->Find(*id) == nullptr) {
    SendError(response, 404, absl::StrCat("object ", segment, ": unknown"));
    return;
  }
  std::vector<std::string> custom_versions;
  bool built_in = false;
  for (const ObjectCatalog::Entry& entry : *catalog) {
    if (entry.definition->id != *id) continue;
    if (entry.custom) {
      custom_versions.push_back(entry.definition->version);
    } else {
      built_in = true;
    }
  }
  std::string version;
  if (request.has_param("version")) {
    version = request.get_param_value("version");
  } else if (custom_versions.size() == 1) {
    version = custom_versions.front();
  } else if (custom_versions.size() > 1) {
    SendError(response, 400,
              absl::StrCat("object ", *id, " has ", custom_versions.size(),
                           " custom versions: name one with ?version="));
    return;
  }
  if (std::find(custom_versions.begin(), custom_versions.end(), version) == custom_versions.end()) {
    if (built_in && (version.empty() || catalog->FindEntry(*id, version, false) != nullptr)) {
      SendError(response, 409,
                absl::StrCat("object ", *id,
                             " is built in and cannot be deleted; only uploaded objects can"));
    } else {
      SendError(response, 404, absl::StrCat("object ", *id, ": no custom version ", version));
    }
    return;
  }
  if (absl::Status status = registry.RemoveCustom(*id, version); !status.ok()) {
    SendStatus(request, response, status);
    return;
  }
  LWM2MD_LOG(kInfo, "custom object %d version %s deleted", *id, version);
  response.status = 204;
}

}  // namespace

void AddObjectRoutes(httplib::Server& server, lwm2m::ObjectRegistry& registry) {
  server.Post("/api/v1/objects",
              [&registry](const httplib::Request& request, httplib::Response& response,
                          const httplib::ContentReader& reader) {
                Upload(request, response, reader, registry);
              });
  server.Get("/api/v1/objects", [&registry](const httplib::Request&, httplib::Response& response) {
    SendJson(response, 200, ListJson(*registry.snapshot()));
  });
  server.Get(
      kObjectPath, [&registry](const httplib::Request& request, httplib::Response& response) {
        std::shared_ptr<const ObjectCatalog> catalog = registry.snapshot();
        if (const ObjectCatalog::Entry* entry = FindForRequest(*catalog, request, response)) {
          SendJson(response, 200, DefinitionJson(*entry));
        }
      });
  server.Get(kObjectXmlPath, [&registry](const httplib::Request& request,
                                         httplib::Response& response) {
    std::shared_ptr<const ObjectCatalog> catalog = registry.snapshot();
    const ObjectCatalog::Entry* entry = FindForRequest(*catalog, request, response);
    if (entry == nullptr) return;
    if (entry->xml == nullptr) {
      SendError(response, 404,
                absl::StrCat("object ", entry->definition->id, " version ",
                             entry->definition->version, " is built in: there is no uploaded XML"));
      return;
    }
    response.set_content(*entry->xml, "application/xml; charset=utf-8");
  });
  server.Delete(kObjectPath,
                [&registry](const httplib::Request& request, httplib::Response& response) {
                  Delete(request, response, registry);
                });
}

}  // namespace lwm2md::api
