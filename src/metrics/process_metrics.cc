#include "metrics/process_metrics.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "prometheus/gauge.h"

namespace lwm2md::metrics {
namespace {

// Resident set size in bytes, or -1 when /proc is unavailable.
double ResidentMemoryBytes() {
  std::FILE* file = std::fopen("/proc/self/statm", "r");
  if (file == nullptr) return -1;
  unsigned long size_pages = 0, resident_pages = 0;
  int fields = std::fscanf(file, "%lu %lu", &size_pages, &resident_pages);
  std::fclose(file);
  if (fields != 2) return -1;
  return static_cast<double>(resident_pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

// Seconds since the epoch at which the process started: boot time (btime in /proc/stat)
// plus the process's start in clock ticks after boot (field 22 of /proc/self/stat). Falls
// back to now, which is close, since this runs during start-up.
double ProcessStartTimeSeconds() {
  double fallback = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  long long boot_time = -1;
  if (std::FILE* file = std::fopen("/proc/stat", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), file) != nullptr) {
      if (std::sscanf(line, "btime %lld", &boot_time) == 1) break;
    }
    std::fclose(file);
  }
  if (boot_time < 0) return fallback;

  std::string stat;
  if (std::FILE* file = std::fopen("/proc/self/stat", "r")) {
    char buffer[1024];
    size_t n = std::fread(buffer, 1, sizeof(buffer), file);
    stat.assign(buffer, n);
    std::fclose(file);
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields from
  // the last ')', which is followed by field 3.
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return fallback;
  unsigned long long start_ticks = 0;
  int field = 2;
  for (size_t i = paren + 1; i < stat.size(); ++i) {
    if (stat[i] == ' ' && i + 1 < stat.size() && stat[i + 1] != ' ') {
      ++field;
      if (field == 22) {
        if (std::sscanf(stat.c_str() + i + 1, "%llu", &start_ticks) != 1) return fallback;
        return static_cast<double>(boot_time) +
               static_cast<double>(start_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
      }
    }
  }
  return fallback;
}

}  // namespace

void AddProcessMetrics(Registry& registry, std::string_view version) {
  registry.AddCallbackFamily({
      .name = "lwm2md_process_resident_memory_bytes",
      .help = "Resident memory size in bytes.",
      .type = Type::kGauge,
      .collect = [](SampleWriter& out) { out.Add({}, ResidentMemoryBytes()); },
  });
  prometheus::BuildGauge()
      .Name("lwm2md_process_start_time_seconds")
      .Help("Start time of the process since the Unix epoch in seconds.")
      .Register(registry.core())
      .Add({})
      .Set(ProcessStartTimeSeconds());
  prometheus::BuildGauge()
      .Name("lwm2md_build_info")
      .Help("Always 1; the version label says which lwm2md build is running.")
      .Register(registry.core())
      .Add({{"version", std::string(version)}})
      .Set(1);
}

}  // namespace lwm2md::metrics
