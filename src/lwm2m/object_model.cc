#include "lwm2m/object_model.h"

#include <algorithm>
#include <charconv>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace lwm2md::lwm2m {
namespace {

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool AllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A key for id that is usable as such: not empty and not mistakable for an id.
std::string BaseKey(std::string_view name, const char* kind, uint16_t id) {
  std::string key = NameToKey(name);
  if (key.empty() || AllDigits(key)) key = absl::StrCat(kind, "_", id);
  return key;
}

bool ParseUnsigned(std::string_view text, unsigned* value) {
  if (!AllDigits(text)) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

const ResourceDefinition* ObjectDefinition::FindResource(uint16_t id) const {
  auto it = std::lower_bound(
      resources.begin(), resources.end(), id,
      [](const ResourceDefinition& resource, uint16_t wanted) { return resource.id < wanted; });
  return it != resources.end() && it->id == id ? &*it : nullptr;
}

const ResourceDefinition* ObjectDefinition::FindResourceByKey(std::string_view key) const {
  if (AllDigits(key)) {
    std::optional<uint16_t> id = ParseObjectId(key);
    return id ? FindResource(*id) : nullptr;
  }
  // A linear scan: objects have a few dozen resources at most, and key lookups come from
  // API requests (names → ids), not from decoding device payloads, which go by id.
  for (const ResourceDefinition& resource : resources) {
    if (resource.key == key) return &resource;
  }
  return nullptr;
}

std::string NameToKey(std::string_view name) {
  std::string key;
  key.reserve(name.size());
  bool pending_separator = false;
  for (char c : name) {
    if (IsAsciiAlnum(c)) {
      if (pending_separator && !key.empty()) key.push_back('_');
      pending_separator = false;
      key.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    } else {
      pending_separator = true;
    }
  }
  return key;
}

absl::Status FinishDefinition(ObjectDefinition& definition) {
  std::stable_sort(
      definition.resources.begin(), definition.resources.end(),
      [](const ResourceDefinition& a, const ResourceDefinition& b) { return a.id < b.id; });
  for (size_t i = 1; i < definition.resources.size(); ++i) {
    if (definition.resources[i].id == definition.resources[i - 1].id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "object ", definition.id, ": duplicate resource id ", definition.resources[i].id));
    }
  }
  definition.key = BaseKey(definition.name, "object", definition.id);
  absl::flat_hash_set<std::string> taken;
  for (ResourceDefinition& resource : definition.resources) {
    std::string key = BaseKey(resource.name, "resource", resource.id);
    while (taken.contains(key)) absl::StrAppend(&key, "_", resource.id);
    taken.insert(key);
    resource.key = std::move(key);
  }
  return absl::OkStatus();
}

std::optional<uint8_t> ParseOperations(std::string_view text) {
  if (text.empty()) return uint8_t{0};
  if (text == "R") return operation::kRead;
  if (text == "W") return operation::kWrite;
  if (text == "RW") return static_cast<uint8_t>(operation::kRead | operation::kWrite);
  if (text == "E") return operation::kExecute;
  return std::nullopt;
}

std::string OperationsToString(uint8_t operations) {
  std::string text;
  if (operations & operation::kRead) text.push_back('R');
  if (operations & operation::kWrite) text.push_back('W');
  if (operations & operation::kExecute) text.push_back('E');
  return text;
}

std::optional<uint16_t> ParseObjectId(std::string_view text) {
  unsigned value = 0;
  if (!ParseUnsigned(text, &value) || value >= Path::kReservedId) return std::nullopt;
  return static_cast<uint16_t>(value);
}

bool IsValidVersion(std::string_view version) {
  size_t dot = version.find('.');
  if (dot == std::string_view::npos) return false;
  unsigned major = 0;
  unsigned minor = 0;
  return ParseUnsigned(version.substr(0, dot), &major) &&
         ParseUnsigned(version.substr(dot + 1), &minor);
}

int CompareVersions(std::string_view a, std::string_view b) {
  auto parts = [](std::string_view version) {
    unsigned major = 0;
    unsigned minor = 0;
    size_t dot = version.find('.');
    if (dot != std::string_view::npos) {
      ParseUnsigned(version.substr(0, dot), &major);
      ParseUnsigned(version.substr(dot + 1), &minor);
    }
    return std::pair(major, minor);
  };
  auto pa = parts(a);
  auto pb = parts(b);
  if (pa != pb) return pa < pb ? -1 : 1;
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

}  // namespace lwm2md::lwm2m
