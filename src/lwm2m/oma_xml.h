#pragma once
// The OMA object definition XML (the LwM2M registry's format, schemas LWM2M.xsd for 1.0 and
// LWM2M-v1_1.xsd for 1.1): the form in which users upload custom objects (the reference's
// "Custom objects": "objects must be valid XML definitions as specified by OMA") and in which
// the registry persists them.
//
// The input is untrusted (it arrives through the REST API), so every departure from the
// schema that matters to the server is refused with a message naming the line and the
// element; nothing in the input can make the parser crash or run away (pugixml expands no
// external or custom entities). Control-plane code: allocates freely, any thread.

#include <string_view>

#include "absl/status/statusor.h"
#include "lwm2m/object_model.h"

namespace lwm2md::lwm2m {

// Parses a document holding exactly one LWM2M/Object. What is checked:
//  - well-formed UTF-8 XML, root element <LWM2M>, exactly one <Object> in it (the schemas
//    allow several, but the registry keys each upload by one object id and version);
//  - <Object>: <Name>, <ObjectID> (0..65534), <MultipleInstances> (Multiple|Single),
//    <Mandatory> (Mandatory|Optional) and <Resources> present and not repeated;
//    <ObjectVersion> and <LWM2MVersion>, when present and not empty, "major.minor" (absent:
//    "1.0", Core TS 1.1 §7.2.2);
//  - each <Resources>/<Item>: ID attribute (0..65534, unique in the object), <Name>,
//    <Operations> (R|W|RW|E or empty), <MultipleInstances>, <Mandatory>, <Type> (the types of
//    either schema: String, Integer, Unsigned Integer, Float, Boolean, Opaque, Time, Objlnk,
//    Corelnk, or empty for none).
// Enumerated values are compared after trimming whitespace and ignoring case. Elements that
// carry only documentation (Description1/2, ObjectURN, RangeEnumeration, Units, Description)
// are optional, and unknown elements are ignored, so that files written for later schema
// versions still load. The schemas do not tie Type to Operations: an "E" resource may carry a
// type, and keeps it.
// Errors read "line 42: <Type>: unknown type \"Strng\" (...)"; the line is 1-based.
absl::StatusOr<ObjectDefinition> ParseOmaObjectXml(std::string_view xml);

}  // namespace lwm2md::lwm2m
