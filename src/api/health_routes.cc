#include <httplib.h>

#include "api/routes.h"

namespace lwm2md::api {

void AddHealthRoutes(httplib::Server& server, const std::atomic<bool>& ready) {
  server.Get("/healthz", [&ready](const httplib::Request&, httplib::Response& response) {
    if (ready.load()) {
      response.set_content("ok\n", "text/plain; charset=utf-8");
    } else {
      response.status = 503;
      response.set_content("not ready\n", "text/plain; charset=utf-8");
    }
  });
}

}  // namespace lwm2md::api
