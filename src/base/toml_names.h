#pragma once
// How error messages name what a TOML key held ("expected a string, got an integer"), for
// every reader of TOML files: the server configuration and the built-in object definitions.
// Include only from targets that link tomlplusplus::tomlplusplus (it needs its definitions).

#include <toml++/toml.h>

namespace lwm2md::base {

inline const char* TomlTypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

}  // namespace lwm2md::base
