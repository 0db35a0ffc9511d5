#include <httplib.h>

#include <string>

#include "api/routes.h"

namespace lwm2md::api {

void AddMetricsRoutes(httplib::Server& server, const metrics::Registry& registry) {
  server.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry.CollectText(), std::string(metrics::kTextContentType));
  });
}

}  // namespace lwm2md::api
