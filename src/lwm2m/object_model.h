#pragma once
// The LwM2M object model: definitions of objects and their resources as the OMA object
// definition format describes them (Core TS 1.1 §6.1 and Appendix D: id, name, operations,
// instances, mandatory, type, range, units), plus the translation between OMA names and the
// lower snake-case keys that the reference's events and actions use ("Battery Level" →
// battery_level, "Device" → device).
//
// Definitions are plain values, built once by a loader (builtin_objects.h, oma_xml.h) and
// then only read, from any thread; object_registry.h shares them between threads.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "lwm2m/types.h"

namespace lwm2md::lwm2m {

struct ResourceDefinition {
  uint16_t id = 0;
  std::string name;
  // NameToKey(name), made unique within the object (see FinishDefinition).
  std::string key;
  uint8_t operations = 0;  // bits of namespace operation
  bool multiple = false;   // "Multiple" instances: the value is a map of resource instances
  bool mandatory = false;
  ResourceType type = ResourceType::kNone;
  std::string range_enumeration;  // free text in the OMA files ("0..100", "1 bytes", "6")
  std::string units;
  std::string description;
};

struct ObjectDefinition {
  uint16_t id = 0;
  std::string name;
  // NameToKey(name); an ObjectCatalog may make it unique among its objects.
  std::string key;
  // "major.minor" (Core TS 1.1 §7.2.2: an object without a version is version 1.0).
  std::string version = "1.0";
  std::string lwm2m_version = "1.0";
  std::string urn;
  bool multiple = false;
  bool mandatory = false;
  std::string description;
  // Sorted by id, ids and keys unique: FinishDefinition establishes this, every loader
  // calls it, and the lookups below rely on it.
  std::vector<ResourceDefinition> resources;

  // Binary search: this runs for every resource of every decoded payload.
  const ResourceDefinition* FindResource(uint16_t id) const;
  // The resource whose key is key, or, when key is a decimal id ("9"), that resource.
  const ResourceDefinition* FindResourceByKey(std::string_view key) const;
};

// "Battery Level" → "battery_level": ASCII letters and digits lower-cased, every run of
// anything else (spaces, '/', '-', '(', ')', '.', '&', non-ASCII bytes) collapsed to one
// '_', leading and trailing '_' trimmed. Camel case is not split ("ExtDevInfo" →
// "extdevinfo"), so that a key never depends on guessing word boundaries.
std::string NameToKey(std::string_view name);

// Sorts the resources by id, refuses duplicate ids, and assigns the keys:
//  - object key: NameToKey(name);
//  - resource keys: NameToKey(name), in ascending id order; a key that is already taken by
//    a resource with a lower id gets "_<id>" appended (repeatedly, until it is free), so
//    that e.g. two resources named "Value" with ids 5 and 7 become value and value_7.
//  - a key that would be empty or all digits (it could not be told from an id) becomes
//    "object_<id>" / "resource_<id>" before that rule.
// The rule depends only on the definition itself, so the same XML always yields the same
// keys.
absl::Status FinishDefinition(ObjectDefinition& definition);

// TS Appendix D operations: "R", "W", "RW", "E" or "" (none), exactly the enumeration of
// the OMA schemas; anything else is nullopt.
std::optional<uint8_t> ParseOperations(std::string_view text);
// The inverse: "R", "W", "RW", "E", "" (other combinations list R, W, E in that order).
std::string OperationsToString(uint8_t operations);

// A decimal id 0..65534 (Core TS 1.1 §6.1: 65535 is reserved), no sign, no spaces.
std::optional<uint16_t> ParseObjectId(std::string_view text);

// "major.minor", both decimal (Core TS 1.1 §7.2.2 object versions, §6.2.1.1 lwm2m=).
bool IsValidVersion(std::string_view version);
// Numeric comparison of two valid versions ("1.10" > "1.2"): <0, 0, >0.
int CompareVersions(std::string_view a, std::string_view b);

}  // namespace lwm2md::lwm2m
