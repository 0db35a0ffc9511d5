#pragma once
// Debian's abseil is built with its own absl::string_view (not an alias of std::string_view),
// so the two do not convert implicitly. These make the crossing explicit and free.

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace lwm2md::base {

inline absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

namespace internal {
// Text arguments as absl::string_view, anything else (numbers, absl::string_view) as is.
template <typename T>
decltype(auto) CatArg(const T& value) {
  if constexpr (std::is_convertible_v<const T&, std::string_view> && !std::is_arithmetic_v<T>) {
    return Absl(std::string_view(value));
  } else {
    return (value);
  }
}
}  // namespace internal

// absl::StrCat and absl::StrAppend that also take std::string_view.
template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(internal::CatArg(args)...);
}
template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  absl::StrAppend(out, internal::CatArg(args)...);
}

}  // namespace lwm2md::base
