#include "lwm2m/oma_xml.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <pugixml.hpp>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace lwm2md::lwm2m {
namespace {

using base::Absl;

constexpr char kTypeList[] =
    "String, Integer, Unsigned Integer, Float, Boolean, Opaque, Time, Objlnk, Corelnk or empty";

class Parser {
 public:
  explicit Parser(std::string_view xml) : xml_(xml) {}

  absl::StatusOr<ObjectDefinition> Parse();

 private:
  // 1-based line of a byte offset into the input.
  int LineAt(ptrdiff_t offset) const {
    if (offset < 0) return 0;
    size_t end = std::min(static_cast<size_t>(offset), xml_.size());
    return 1 + static_cast<int>(std::count(xml_.begin(), xml_.begin() + end, '\n'));
  }
  int LineOf(const pugi::xml_node& node) const { return LineAt(node.offset_debug()); }

  // "line 42: <Type> of resource 5: message". context names the resource (or is empty).
  absl::Status Error(const pugi::xml_node& node, std::string_view context,
                     std::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", LineOf(node), ": <", node.name(), ">",
                                                   Absl(context), ": ", Absl(message)));
  }

  // Fills out[i] with the child element named names[i]; refuses repeats and, for the first
  // required_count names, absence. Other children are ignored (later schema versions).
  absl::Status Collect(const pugi::xml_node& parent, std::string_view context,
                       std::initializer_list<const char*> names, size_t required_count,
                       pugi::xml_node* out) const;

  // The character data of a simple-typed element (text and CDATA), trimmed. The schemas
  // give these elements no element content.
  absl::StatusOr<std::string> Text(const pugi::xml_node& element, std::string_view context) const;

  absl::StatusOr<bool> Multiple(const pugi::xml_node& element, std::string_view context) const;
  absl::StatusOr<bool> Mandatory(const pugi::xml_node& element, std::string_view context) const;
  absl::StatusOr<std::string> Version(const pugi::xml_node& element) const;
  absl::StatusOr<ResourceDefinition> Item(const pugi::xml_node& item) const;

  std::string_view xml_;
};

absl::Status Parser::Collect(const pugi::xml_node& parent, std::string_view context,
                             std::initializer_list<const char*> names, size_t required_count,
                             pugi::xml_node* out) const {
  for (pugi::xml_node child = parent.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    size_t index = 0;
    for (const char* name : names) {
      if (std::strcmp(child.name(), name) == 0) break;
      ++index;
    }
    if (index == names.size()) continue;
    if (out[index]) {
      return Error(child, context,
                   absl::StrCat("appears twice (first on line ", LineOf(out[index]), ")"));
    }
    out[index] = child;
  }
  size_t index = 0;
  for (const char* name : names) {
    if (index >= required_count) break;
    if (!out[index]) return Error(parent, context, absl::StrCat("missing <", name, ">"));
    ++index;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Parser::Text(const pugi::xml_node& element,
                                         std::string_view context) const {
  std::string text;
  for (pugi::xml_node child = element.first_child(); child; child = child.next_sibling()) {
    if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
      text += child.value();
    } else if (child.type() == pugi::node_element) {
      return Error(
          child, context,
          absl::StrCat("unexpected element inside <", element.name(), ">, which holds text only"));
    }
  }
  absl::StripAsciiWhitespace(&text);
  return text;
}

absl::StatusOr<bool> Parser::Multiple(const pugi::xml_node& element,
                                      std::string_view context) const {
  absl::StatusOr<std::string> text = Text(element, context);
  if (!text.ok()) return text.status();
  if (absl::EqualsIgnoreCase(*text, "Multiple")) return true;
  if (absl::EqualsIgnoreCase(*text, "Single")) return false;
  return Error(element, context,
               absl::StrCat("\"", *text, "\" is neither \"Multiple\" nor \"Single\""));
}

absl::StatusOr<bool> Parser::Mandatory(const pugi::xml_node& element,
                                       std::string_view context) const {
  absl::StatusOr<std::string> text = Text(element, context);
  if (!text.ok()) return text.status();
  if (absl::EqualsIgnoreCase(*text, "Mandatory")) return true;
  if (absl::EqualsIgnoreCase(*text, "Optional")) return false;
  return Error(element, context,
               absl::StrCat("\"", *text, "\" is neither \"Mandatory\" nor \"Optional\""));
}

// An absent or empty version element means 1.0 (Core TS 1.1 §7.2.2).
absl::StatusOr<std::string> Parser::Version(const pugi::xml_node& element) const {
  if (!element) return std::string("1.0");
  absl::StatusOr<std::string> text = Text(element, "");
  if (!text.ok()) return text.status();
  if (text->empty()) return std::string("1.0");
  if (!IsValidVersion(*text)) {
    return Error(element, "",
                 absl::StrCat("\"", *text, "\" is not a version of the form major.minor"));
  }
  return text;
}

absl::StatusOr<ResourceDefinition> Parser::Item(const pugi::xml_node& item) const {
  ResourceDefinition resource;
  pugi::xml_attribute id_attribute = item.attribute("ID");
  if (!id_attribute) return Error(item, "", "missing the ID attribute");
  absl::string_view id_text = absl::StripAsciiWhitespace(id_attribute.value());
  std::optional<uint16_t> id = ParseObjectId(std::string_view(id_text.data(), id_text.size()));
  if (!id) {
    return Error(item, "",
                 absl::StrCat("ID \"", id_attribute.value(), "\" is not a resource id 0..65534"));
  }
  resource.id = *id;
  const std::string context = absl::StrCat(" of resource ", resource.id);

  enum { kName, kOperations, kMultiple, kMandatory, kType, kRange, kUnits, kDescription };
  pugi::xml_node children[8];
  if (absl::Status status = Collect(item, context,
                                    {"Name", "Operations", "MultipleInstances", "Mandatory", "Type",
                                     "RangeEnumeration", "Units", "Description"},
                                    5, children);
      !status.ok()) {
    return status;
  }

  absl::StatusOr<std::string> name = Text(children[kName], context);
  if (!name.ok()) return name.status();
  resource.name = *std::move(name);

  absl::StatusOr<std::string> operations = Text(children[kOperations], context);
  if (!operations.ok()) return operations.status();
  std::optional<uint8_t> bits = ParseOperations(absl::AsciiStrToUpper(*operations));
  if (!bits) {
    return Error(children[kOperations], context,
                 absl::StrCat("\"", *operations, "\" is not one of R, W, RW, E or empty"));
  }
  resource.operations = *bits;

  absl::StatusOr<bool> multiple = Multiple(children[kMultiple], context);
  if (!multiple.ok()) return multiple.status();
  resource.multiple = *multiple;
  absl::StatusOr<bool> mandatory = Mandatory(children[kMandatory], context);
  if (!mandatory.ok()) return mandatory.status();
  resource.mandatory = *mandatory;

  absl::StatusOr<std::string> type_text = Text(children[kType], context);
  if (!type_text.ok()) return type_text.status();
  std::optional<ResourceType> type = ParseResourceType(*type_text);
  if (!type) {
    return Error(children[kType], context,
                 absl::StrCat("unknown type \"", *type_text, "\" (", kTypeList, ")"));
  }
  resource.type = *type;

  for (auto [index, field] :
       {std::pair{kRange, &resource.range_enumeration}, std::pair{kUnits, &resource.units},
        std::pair{kDescription, &resource.description}}) {
    if (!children[index]) continue;
    absl::StatusOr<std::string> text = Text(children[index], context);
    if (!text.ok()) return text.status();
    *field = *std::move(text);
  }
  return resource;
}

absl::StatusOr<ObjectDefinition> Parser::Parse() {
  pugi::xml_document document;
  // Forced UTF-8 (the OMA files are), so that byte offsets, and with them the line numbers
  // in messages, refer to the text as given.
  pugi::xml_parse_result result =
      document.load_buffer(xml_.data(), xml_.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!result) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", LineAt(result.offset), ": not well-formed XML: ", result.description()));
  }

  pugi::xml_node root;
  for (pugi::xml_node child = document.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    if (root) return Error(child, "", "a second root element (the root is <LWM2M>)");
    root = child;
  }
  if (!root) return absl::InvalidArgumentError("line 1: no root element (expected <LWM2M>)");
  if (std::strcmp(root.name(), "LWM2M") != 0) {
    return Error(root, "", "the root element must be <LWM2M>");
  }

  pugi::xml_node object;
  for (pugi::xml_node child = root.child("Object"); child; child = child.next_sibling("Object")) {
    if (object) {
      return Error(child, "",
                   absl::StrCat("a second object (the first is on line ", LineOf(object),
                                "): upload one object per document"));
    }
    object = child;
  }
  if (!object) return Error(root, "", "missing <Object>");

  enum {
    kName,
    kObjectId,
    kMultiple,
    kMandatory,
    kResources,
    kDescription,
    kUrn,
    kLwm2mVersion,
    kObjectVersion
  };
  pugi::xml_node children[9];
  if (absl::Status status =
          Collect(object, "",
                  {"Name", "ObjectID", "MultipleInstances", "Mandatory", "Resources",
                   "Description1", "ObjectURN", "LWM2MVersion", "ObjectVersion"},
                  5, children);
      !status.ok()) {
    return status;
  }

  ObjectDefinition definition;
  absl::StatusOr<std::string> id_text = Text(children[kObjectId], "");
  if (!id_text.ok()) return id_text.status();
  std::optional<uint16_t> id = ParseObjectId(*id_text);
  if (!id) {
    return Error(children[kObjectId], "",
                 absl::StrCat("\"", *id_text, "\" is not an object id 0..65534"));
  }
  definition.id = *id;

  absl::StatusOr<std::string> name = Text(children[kName], "");
  if (!name.ok()) return name.status();
  definition.name = *std::move(name);

  absl::StatusOr<bool> multiple = Multiple(children[kMultiple], "");
  if (!multiple.ok()) return multiple.status();
  definition.multiple = *multiple;
  absl::StatusOr<bool> mandatory = Mandatory(children[kMandatory], "");
  if (!mandatory.ok()) return mandatory.status();
  definition.mandatory = *mandatory;

  absl::StatusOr<std::string> version = Version(children[kObjectVersion]);
  if (!version.ok()) return version.status();
  definition.version = *std::move(version);
  absl::StatusOr<std::string> lwm2m_version = Version(children[kLwm2mVersion]);
  if (!lwm2m_version.ok()) return lwm2m_version.status();
  definition.lwm2m_version = *std::move(lwm2m_version);

  for (auto [index, field] :
       {std::pair{kDescription, &definition.description}, std::pair{kUrn, &definition.urn}}) {
    if (!children[index]) continue;
    absl::StatusOr<std::string> text = Text(children[index], "");
    if (!text.ok()) return text.status();
    *field = *std::move(text);
  }

  // Lines of the items by id, so that a duplicate names both.
  absl::flat_hash_map<uint16_t, pugi::xml_node> items;
  for (pugi::xml_node item = children[kResources].child("Item"); item;
       item = item.next_sibling("Item")) {
    absl::StatusOr<ResourceDefinition> resource = Item(item);
    if (!resource.ok()) return resource.status();
    auto [it, inserted] = items.emplace(resource->id, item);
    if (!inserted) {
      return Error(item, "",
                   absl::StrCat("duplicate resource ID ", resource->id, " (first on line ",
                                LineOf(it->second), ")"));
    }
    definition.resources.push_back(*std::move(resource));
  }
  if (absl::Status status = FinishDefinition(definition); !status.ok()) return status;
  return definition;
}

}  // namespace

absl::StatusOr<ObjectDefinition> ParseOmaObjectXml(std::string_view xml) {
  return Parser(xml).Parse();
}

}  // namespace lwm2md::lwm2m
