#pragma once
// Metrics about the process itself, named like the Prometheus client libraries' process
// collectors but with the lwm2md_ prefix, so that one dashboard selector covers them.

#include <string_view>

#include "metrics/registry.h"

namespace lwm2md::metrics {

// Adds lwm2md_process_resident_memory_bytes (read from /proc/self/statm at scrape time),
// lwm2md_process_start_time_seconds and lwm2md_build_info{version} (always 1). Once per
// registry.
void AddProcessMetrics(Registry& registry, std::string_view version);

}  // namespace lwm2md::metrics
