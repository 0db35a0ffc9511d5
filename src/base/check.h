#pragma once
// Broken invariants after start-up are fatal (CONVENTIONS.md §4): bad bytes from the
// network never reach these, only states the code itself must not produce.

#include <cstdlib>

namespace lwm2md::internal {
[[noreturn]] void CheckFailed(const char* condition, const char* file, int line);
}  // namespace lwm2md::internal

#define LWM2MD_CHECK(condition)                                                   \
  do {                                                                            \
    if (!(condition)) [[unlikely]]                                                \
      ::lwm2md::internal::CheckFailed(#condition, __FILE__, __LINE__);            \
  } while (0)

#ifdef NDEBUG
#define LWM2MD_DCHECK(condition) \
  do {                           \
  } while (0)
#else
#define LWM2MD_DCHECK(condition) LWM2MD_CHECK(condition)
#endif
