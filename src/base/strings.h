#pragma once
// Debian's abseil is built with its own absl::string_view (not an alias of std::string_view),
// so the two do not convert implicitly. These make the crossing explicit and free.

#include <string_view>

#include "absl/strings/string_view.h"

namespace lwm2md::base {

inline absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace lwm2md::base
