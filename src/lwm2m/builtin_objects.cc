#include "lwm2m/builtin_objects.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/strings.h"
#include "base/toml_names.h"

namespace lwm2md::lwm2m {
namespace {

using base::Absl;

constexpr std::string_view kObjectKeys[] = {"id",       "name",     "version",   "lwm2m_version",
                                            "urn",      "multiple", "mandatory", "description",
                                            "resources"};
constexpr std::string_view kResourceKeys[] = {
    "id", "name", "ops", "type", "multiple", "mandatory", "range", "units", "description"};

// Reads typed values out of one parsed file, collecting every error with its line.
class Reader {
 public:
  explicit Reader(std::string_view source_name) : source_name_(source_name) {}

  std::vector<std::string>& errors() { return errors_; }

  void Error(const toml::source_region& where, std::string_view key, std::string_view message) {
    errors_.push_back(absl::StrCat(Absl(source_name_), ":", where.begin.line, ": ", Absl(key), ": ",
                                   Absl(message)));
  }

  // Refuses keys outside known, so that a misspelt optional key does not silently fall back
  // to its default.
  template <size_t N>
  void CheckKeys(const toml::table& table, std::string_view prefix,
                 const std::string_view (&known)[N]) {
    for (const auto& [key, node] : table) {
      if (std::find(std::begin(known), std::end(known), key.str()) == std::end(known)) {
        Error(key.source(), absl::StrCat(Absl(prefix), Absl(key.str())), "unknown key");
      }
    }
  }

  const toml::node* Get(const toml::table& table, const toml::source_region& table_source,
                        std::string_view prefix, std::string_view key, bool required) {
    const toml::node* node = table.get(key);
    if (node == nullptr && required) {
      Error(table_source, absl::StrCat(Absl(prefix), Absl(key)), "missing");
    }
    return node;
  }

  template <typename T>
  const T* Typed(const toml::node* node, std::string_view key, const char* expected) {
    if (node == nullptr) return nullptr;
    const auto* value = node->as<T>();
    if (value == nullptr) {
      Error(node->source(), key,
            absl::StrCat("expected ", expected, ", got ", base::TomlTypeName(node->type())));
    }
    return value != nullptr ? &value->get() : nullptr;
  }

  // An id 0..65534 (Core TS 1.1 §6.1: 65535 is reserved).
  bool ReadId(const toml::table& table, const toml::source_region& table_source,
              std::string_view prefix, uint16_t* out) {
    const std::string key = absl::StrCat(Absl(prefix), "id");
    const toml::node* node = Get(table, table_source, prefix, "id", /*required=*/true);
    const int64_t* value = Typed<int64_t>(node, key, "an integer");
    if (value == nullptr) return false;
    if (*value < 0 || *value >= Path::kReservedId) {
      Error(node->source(), key, absl::StrCat(*value, " is not an id 0..65534"));
      return false;
    }
    *out = static_cast<uint16_t>(*value);
    return true;
  }

  void ReadString(const toml::table& table, const toml::source_region& table_source,
                  std::string_view prefix, std::string_view name, bool required, std::string* out) {
    const toml::node* node = Get(table, table_source, prefix, name, required);
    if (const std::string* value =
            Typed<std::string>(node, absl::StrCat(Absl(prefix), Absl(name)), "a string")) {
      *out = *value;
    }
  }

  void ReadBool(const toml::table& table, std::string_view prefix, std::string_view name,
                bool* out) {
    const toml::node* node = table.get(name);
    if (const bool* value =
            Typed<bool>(node, absl::StrCat(Absl(prefix), Absl(name)), "a boolean")) {
      *out = *value;
    }
  }

  void ReadVersion(const toml::table& table, const toml::source_region& table_source,
                   std::string_view name, std::string* out) {
    const toml::node* node = table.get(name);
    ReadString(table, table_source, "", name, /*required=*/false, out);
    if (node != nullptr && node->is_string() && !IsValidVersion(*out)) {
      Error(node->source(), name,
            absl::StrCat("\"", *out, "\" is not a version of the form major.minor"));
    }
  }

  void ReadResource(const toml::table& table, std::string_view prefix,
                    ResourceDefinition* resource) {
    const toml::source_region& where = table.source();
    CheckKeys(table, prefix, kResourceKeys);
    ReadId(table, where, prefix, &resource->id);
    ReadString(table, where, prefix, "name", /*required=*/true, &resource->name);

    std::string ops;
    ReadString(table, where, prefix, "ops", /*required=*/false, &ops);
    if (std::optional<uint8_t> bits = ParseOperations(ops)) {
      resource->operations = *bits;
    } else {
      Error(table.get("ops")->source(), absl::StrCat(Absl(prefix), "ops"),
            absl::StrCat("\"", ops, "\" is not one of \"R\", \"W\", \"RW\", \"E\" or \"\""));
    }

    std::string type = "none";
    ReadString(table, where, prefix, "type", /*required=*/false, &type);
    if (std::optional<ResourceType> parsed = ParseResourceType(type)) {
      resource->type = *parsed;
    } else {
      Error(table.get("type")->source(), absl::StrCat(Absl(prefix), "type"),
            absl::StrCat("unknown type \"", type,
                         "\" (string, integer, unsigned integer, float, boolean, opaque, time, "
                         "objlnk, corelnk, none)"));
    }

    ReadBool(table, prefix, "multiple", &resource->multiple);
    ReadBool(table, prefix, "mandatory", &resource->mandatory);
    ReadString(table, where, prefix, "range", false, &resource->range_enumeration);
    ReadString(table, where, prefix, "units", false, &resource->units);
    ReadString(table, where, prefix, "description", false, &resource->description);
  }

  ObjectDefinition ReadObject(const toml::table& root) {
    ObjectDefinition definition;
    const toml::source_region& where = root.source();
    CheckKeys(root, "", kObjectKeys);
    ReadId(root, where, "", &definition.id);
    ReadString(root, where, "", "name", /*required=*/true, &definition.name);
    ReadVersion(root, where, "version", &definition.version);
    ReadVersion(root, where, "lwm2m_version", &definition.lwm2m_version);
    ReadString(root, where, "", "urn", false, &definition.urn);
    ReadBool(root, "", "multiple", &definition.multiple);
    ReadBool(root, "", "mandatory", &definition.mandatory);
    ReadString(root, where, "", "description", false, &definition.description);

    const toml::node* resources = Get(root, where, "", "resources", /*required=*/true);
    const toml::array* array = resources != nullptr ? resources->as_array() : nullptr;
    if (resources != nullptr && array == nullptr) {
      Error(resources->source(), "resources",
            absl::StrCat("expected an array of tables, got ",
                         base::TomlTypeName(resources->type())));
    }
    if (array == nullptr) return definition;
    // Line of each resource id, so that a duplicate names both.
    absl::flat_hash_map<uint16_t, uint32_t> lines;
    for (size_t i = 0; i < array->size(); ++i) {
      const std::string prefix = absl::StrCat("resources[", i, "].");
      const toml::node& element = *array->get(i);
      const toml::table* table = element.as_table();
      if (table == nullptr) {
        Error(element.source(), absl::StrCat("resources[", i, "]"),
              absl::StrCat("expected a table, got ", base::TomlTypeName(element.type())));
        continue;
      }
      ResourceDefinition resource;
      const size_t errors_before = errors_.size();
      ReadResource(*table, prefix, &resource);
      if (errors_.size() != errors_before) continue;
      auto [it, inserted] = lines.emplace(resource.id, table->source().begin.line);
      if (!inserted) {
        Error(table->source(), absl::StrCat(prefix, "id"),
              absl::StrCat("duplicate resource id ", resource.id, " (first on line ", it->second,
                           ")"));
        continue;
      }
      definition.resources.push_back(std::move(resource));
    }
    return definition;
  }

 private:
  std::string_view source_name_;
  std::vector<std::string> errors_;
};

absl::StatusOr<ObjectDefinition> ParseInto(std::string_view toml_text, std::string_view source_name,
                                           std::vector<std::string>* errors) {
  toml::table root;
  // toml++ reports syntax errors by throwing (the project builds it with exceptions, as
  // server/config.cc does); this is the boundary where they become errors.
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& error) {
    errors->push_back(absl::StrCat(Absl(source_name), ":", error.source().begin.line, ": ",
                                   Absl(error.description())));
    return absl::InvalidArgumentError(errors->back());
  }
  Reader reader(source_name);
  ObjectDefinition definition = reader.ReadObject(root);
  if (!reader.errors().empty()) {
    absl::Status status = absl::InvalidArgumentError(absl::StrJoin(reader.errors(), "\n"));
    errors->insert(errors->end(), reader.errors().begin(), reader.errors().end());
    return status;
  }
  if (absl::Status status = FinishDefinition(definition); !status.ok()) {
    errors->push_back(absl::StrCat(Absl(source_name), ": ", status.message()));
    return absl::InvalidArgumentError(errors->back());
  }
  return definition;
}

}  // namespace

absl::StatusOr<ObjectDefinition> ParseBuiltInObject(std::string_view toml_text,
                                                    std::string_view source_name) {
  std::vector<std::string> errors;
  return ParseInto(toml_text, source_name, &errors);
}

absl::StatusOr<std::vector<ObjectDefinition>> LoadBuiltInObjects(const std::string& directory) {
  std::error_code error;
  std::vector<std::filesystem::path> files;
  for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end;
       it.increment(error)) {
    if (it->path().extension() == ".toml" && it->is_regular_file(error)) {
      files.push_back(it->path());
    }
  }
  if (error) {
    return absl::NotFoundError(
        absl::StrCat(directory, ": cannot read the object definitions: ", error.message()));
  }
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(directory, ": no object definitions (*.toml)"));
  }
  std::sort(files.begin(), files.end());

  std::vector<ObjectDefinition> definitions;
  std::vector<std::string> errors;
  // (id, version) → file, so that a duplicate names both files.
  std::map<std::pair<uint16_t, std::string>, std::string> seen;
  for (const std::filesystem::path& path : files) {
    const std::string name = path.string();
    std::ifstream file(path, std::ios::binary);
    std::string text;
    if (file) text.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    if (!file.is_open() || file.bad()) {
      errors.push_back(absl::StrCat(name, ": cannot read: ", std::strerror(errno)));
      continue;
    }
    absl::StatusOr<ObjectDefinition> definition = ParseInto(text, name, &errors);
    if (!definition.ok()) continue;
    auto [it, inserted] = seen.emplace(std::pair(definition->id, definition->version), name);
    if (!inserted) {
      errors.push_back(absl::StrCat(name, ": object ", definition->id, " version ",
                                    definition->version, " is already defined in ", it->second));
      continue;
    }
    definitions.push_back(*std::move(definition));
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  std::sort(definitions.begin(), definitions.end(),
            [](const ObjectDefinition& a, const ObjectDefinition& b) {
              return a.id != b.id ? a.id < b.id : CompareVersions(a.version, b.version) < 0;
            });
  return definitions;
}

}  // namespace lwm2md::lwm2m
