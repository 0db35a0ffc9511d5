#include "lwm2m/types.h"

#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"

namespace lwm2md::lwm2m {

std::string_view ResourceTypeName(ResourceType type) {
  switch (type) {
    case ResourceType::kNone: return "none";
    case ResourceType::kString: return "string";
    case ResourceType::kInteger: return "integer";
    case ResourceType::kUnsignedInteger: return "unsigned integer";
    case ResourceType::kFloat: return "float";
    case ResourceType::kBoolean: return "boolean";
    case ResourceType::kOpaque: return "opaque";
    case ResourceType::kTime: return "time";
    case ResourceType::kObjlnk: return "objlnk";
    case ResourceType::kCorelnk: return "corelnk";
  }
  return "none";
}

std::optional<ResourceType> ParseResourceType(std::string_view name) {
  std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(
      base::Absl(name)));
  if (lower.empty() || lower == "none") return ResourceType::kNone;
  for (ResourceType type :
       {ResourceType::kString, ResourceType::kInteger, ResourceType::kUnsignedInteger,
        ResourceType::kFloat, ResourceType::kBoolean, ResourceType::kOpaque, ResourceType::kTime,
        ResourceType::kObjlnk, ResourceType::kCorelnk}) {
    if (lower == ResourceTypeName(type)) return type;
  }
  return std::nullopt;
}

absl::StatusOr<Path> Path::Parse(std::string_view text) {
  std::string_view body = text;
  if (!body.empty() && body.front() == '/') body.remove_prefix(1);
  if (!body.empty() && body.back() == '/') body.remove_suffix(1);
  if (body.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("path \"", base::Absl(text), "\": empty"));
  }
  uint16_t ids[4] = {};
  int count = 0;
  for (absl::string_view segment : absl::StrSplit(base::Absl(body), '/')) {
    if (count == 4) {
      return absl::InvalidArgumentError(absl::StrCat("path \"", base::Absl(text), "\": more than 4 levels"));
    }
    unsigned value = 0;
    auto [end, error] = std::from_chars(segment.data(), segment.data() + segment.size(), value);
    if (segment.empty() || error != std::errc() || end != segment.data() + segment.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", base::Absl(text), "\": \"", segment, "\" is not a number"));
    }
    if (value >= kReservedId) {
      return absl::InvalidArgumentError(
          absl::StrCat("path \"", base::Absl(text), "\": id ", value, " is above 65534"));
    }
    ids[count++] = static_cast<uint16_t>(value);
  }
  Path path;
  path.object_id = ids[0];
  if (count > 1) path.instance_id = ids[1];
  if (count > 2) path.resource_id = ids[2];
  if (count > 3) path.resource_instance_id = ids[3];
  return path;
}

std::string Path::ToString() const {
  std::string out = absl::StrCat(object_id);
  if (instance_id) absl::StrAppend(&out, "/", *instance_id);
  if (resource_id) absl::StrAppend(&out, "/", *resource_id);
  if (resource_instance_id) absl::StrAppend(&out, "/", *resource_instance_id);
  return out;
}

bool Path::Contains(const Path& other) const {
  if (object_id != other.object_id) return false;
  if (!instance_id) return true;
  if (instance_id != other.instance_id) return false;
  if (!resource_id) return true;
  if (resource_id != other.resource_id) return false;
  if (!resource_instance_id) return true;
  return resource_instance_id == other.resource_instance_id;
}

}  // namespace lwm2md::lwm2m
