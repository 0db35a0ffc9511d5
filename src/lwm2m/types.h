#pragma once
// Vocabulary shared by the object model and the content formats: resource data types,
// operations and paths (Core TS 1.1 §6.1, Appendix C). Plain values; usable on any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace lwm2md::lwm2m {

// Core TS 1.1 Appendix C data types. kNone is the type of executable resources.
enum class ResourceType : uint8_t {
  kNone,
  kString,
  kInteger,
  kUnsignedInteger,
  kFloat,
  kBoolean,
  kOpaque,
  kTime,
  kObjlnk,
  kCorelnk,
};
// "string", "integer", "unsigned integer", "float", "boolean", "opaque", "time", "objlnk",
// "corelnk", "none": the spellings of the OMA XML schema, lower-cased.
std::string_view ResourceTypeName(ResourceType type);
// Accepts the OMA XML spellings case-insensitively ("Unsigned Integer", "Objlnk", "" → kNone).
std::optional<ResourceType> ParseResourceType(std::string_view name);

// Operations a resource allows (TS Appendix D: R, W, RW, E, or none).
namespace operation {
inline constexpr uint8_t kRead = 1 << 0;
inline constexpr uint8_t kWrite = 1 << 1;
inline constexpr uint8_t kExecute = 1 << 2;
}  // namespace operation

// An object link value (TS Appendix C: "objlnk", 65535:65535 is the null link).
struct Objlnk {
  uint16_t object_id = 0xFFFF;
  uint16_t instance_id = 0xFFFF;
  bool operator==(const Objlnk&) const = default;
};

// /oid[/iid[/rid[/riid]]] — the LwM2M path levels. Ids are 16-bit; 65535 is reserved
// (Core TS 1.1 §6.1: "MAX_ID 65535 is a reserved value"), so a parsed path never holds it.
struct Path {
  static constexpr uint16_t kReservedId = 0xFFFF;

  uint16_t object_id = 0;
  std::optional<uint16_t> instance_id;
  std::optional<uint16_t> resource_id;
  std::optional<uint16_t> resource_instance_id;

  // "3/0/1", "/3/0/1" and "3/0/1/" all parse; empty segments inside, non-digits, ids above
  // 65534 and more than four levels are refused with a message naming the path.
  static absl::StatusOr<Path> Parse(std::string_view text);
  static Path Object(uint16_t oid) { return Path{oid, {}, {}, {}}; }
  static Path Instance(uint16_t oid, uint16_t iid) { return Path{oid, iid, {}, {}}; }
  static Path Resource(uint16_t oid, uint16_t iid, uint16_t rid) { return Path{oid, iid, rid, {}}; }
  static Path ResourceInstance(uint16_t oid, uint16_t iid, uint16_t rid, uint16_t riid) {
    return Path{oid, iid, rid, riid};
  }

  // 1 for /o, 2 for /o/i, 3 for /o/i/r, 4 for /o/i/r/ri.
  int depth() const {
    return 1 + instance_id.has_value() + resource_id.has_value() +
           resource_instance_id.has_value();
  }
  // "3/0/1" (no leading slash: the form the reference's events and API use).
  std::string ToString() const;
  // True when other is this path or below it.
  bool Contains(const Path& other) const;

  bool operator==(const Path&) const = default;
  auto operator<=>(const Path&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Path& path) {
    return H::combine(std::move(h), path.object_id, path.instance_id, path.resource_id,
                      path.resource_instance_id);
  }
};

}  // namespace lwm2md::lwm2m
