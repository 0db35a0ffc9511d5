#pragma once
// Process-wide logging to stderr, one line per call, written with a single write(2) so that
// lines from different shards never interleave. The level is set once at start.

#include <string_view>

#include "absl/strings/str_format.h"

namespace lwm2md {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// "error", "warning", "info", "debug"; false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);
void LogLine(LogLevel level, std::string_view message);

}  // namespace lwm2md

#define LWM2MD_LOG(level, ...)                                                     \
  do {                                                                             \
    if (::lwm2md::LogEnabled(::lwm2md::LogLevel::level))                           \
      ::lwm2md::LogLine(::lwm2md::LogLevel::level, ::absl::StrFormat(__VA_ARGS__)); \
  } while (0)
