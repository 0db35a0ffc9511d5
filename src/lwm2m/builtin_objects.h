#pragma once
// The built-in object definitions: the core LwM2M objects and a few common ones, kept in the
// project's own compact TOML form, one file per object (config/objects/, described in
// config/objects/README.md). They are read once at start-up; users override them with
// custom OMA XML uploads (object_registry.h).

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lwm2m/object_model.h"

namespace lwm2md::lwm2m {

// Parses one compact definition. source_name (usually the file's path) starts every error
// message: "config/objects/3-device.toml:14: resources[3].type: unknown type \"strin\"".
// Unknown keys, values of the wrong type, ids outside 0..65534, duplicate resource ids, bad
// ops or type spellings and malformed versions are refused.
absl::StatusOr<ObjectDefinition> ParseBuiltInObject(std::string_view toml_text,
                                                    std::string_view source_name);

// Reads every *.toml file of directory, in file name order. Every error of every file is
// reported (one per line) rather than only the first; two files defining the same object id
// and version are an error naming both. A missing directory or one without any *.toml file
// is an error too: a server without the core objects cannot decode a registration.
absl::StatusOr<std::vector<ObjectDefinition>> LoadBuiltInObjects(const std::string& directory);

}  // namespace lwm2md::lwm2m
