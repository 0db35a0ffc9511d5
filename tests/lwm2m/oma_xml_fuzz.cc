// Untrusted OMA object XML, as uploaded through POST /api/v1/objects. Every input must be
// parsed or refused with a "line N: ..." message, never crash; every definition that parses
// must keep the object model's invariants (sorted unique ids, unique usable keys) and be
// usable through a catalog.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "lwm2m/object_registry.h"
#include "lwm2m/oma_xml.h"

namespace {

using lwm2md::lwm2m::ObjectCatalog;
using lwm2md::lwm2m::ObjectDefinition;
using lwm2md::lwm2m::Path;

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "oma_xml_fuzz: %s\n", what);
    std::abort();
  }
}

bool AllDigits(const std::string& text) {
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ObjectDefinition> parsed = lwm2md::lwm2m::ParseOmaObjectXml(xml);
  if (!parsed.ok()) {
    Require(parsed.status().message().substr(0, 5) == "line ", "message without a line");
    return 0;
  }
  const ObjectDefinition& object = *parsed;
  Require(object.id < Path::kReservedId, "reserved object id");
  Require(!object.key.empty() && !AllDigits(object.key), "unusable object key");
  Require(lwm2md::lwm2m::IsValidVersion(object.version), "bad version");
  Require(lwm2md::lwm2m::IsValidVersion(object.lwm2m_version), "bad LwM2M version");
  absl::flat_hash_set<std::string> keys;
  for (size_t i = 0; i < object.resources.size(); ++i) {
    const auto& resource = object.resources[i];
    Require(i == 0 || object.resources[i - 1].id < resource.id, "resources not sorted");
    Require(resource.id < Path::kReservedId, "reserved resource id");
    Require(!resource.key.empty() && !AllDigits(resource.key), "unusable resource key");
    Require(keys.insert(resource.key).second, "duplicate resource key");
    Require(object.FindResource(resource.id) == &resource, "FindResource");
    Require(object.FindResourceByKey(resource.key) == &resource, "FindResourceByKey");
  }

  ObjectCatalog::Entry entry;
  entry.definition = std::make_shared<const ObjectDefinition>(object);
  entry.xml = std::make_shared<const std::string>(xml);
  ObjectCatalog catalog({}, {entry});
  Require(catalog.Find(object.id) != nullptr, "catalog lost the object");
  Require(catalog.IsCustom(object.id), "not custom");
  Require(catalog.FindObjectByKey(object.key) == catalog.Find(object.id), "object key");
  for (const auto& resource : object.resources) {
    Require(catalog.TypeOf(Path::Resource(object.id, 0, resource.id)) == resource.type, "TypeOf");
  }
  return 0;
}
