#include "api/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/routes.h"
#include "base/log.h"

namespace lwm2md::api {
namespace {

// SO_REUSEADDR only: cpp-httplib's default, SO_REUSEPORT, would let a second lwm2md bind
// the same port and silently share the scrapes.
void SetSocketOptions(int socket) {
  int yes = 1;
  setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

HttpServer::HttpServer(const HttpServerOptions& options)
    : options_(options), server_(std::make_unique<httplib::Server>()) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              const HttpServices& services) {
  auto http = absl::WrapUnique(new HttpServer(options));
  httplib::Server& server = *http->server_;
  const int workers = options.worker_threads > 0 ? options.worker_threads : 1;
  server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server.set_socket_options(SetSocketOptions);
  // Stop() waits for idle keep-alive connections to time out; keep that wait short.
  server.set_keep_alive_timeout(1);
  server.set_logger([](const httplib::Request& request, const httplib::Response& response) {
    LWM2MD_LOG(kDebug, "http %s %s %d", request.method, request.path, response.status);
  });
  // Handlers do not throw by design; should one (bad_alloc), the client gets a 500 and the
  // process goes on.
  server.set_exception_handler(
      [](const httplib::Request& request, httplib::Response& response, std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LWM2MD_LOG(kError, "http %s %s failed: %s", request.method, request.path, what);
        response.status = 500;
        response.set_content("internal error\n", "text/plain; charset=utf-8");
      });

  if (services.metrics != nullptr) AddMetricsRoutes(server, *services.metrics);
  AddHealthRoutes(server, http->ready_);
  if (services.objects != nullptr) AddObjectRoutes(server, *services.objects);
  if (services.endpoints != nullptr) {
    AddEndpointRoutes(server, *services.endpoints, services.directory);
    AddSettingsRoutes(server, *services.endpoints);
  }
  if (services.events != nullptr) {
    AddEventRoutes(server, *services.events, http->stopping_, http->open_event_streams_,
                   {.max_streams = std::max(1, workers - 4)});
  }

  int port = options.port;
  if (port == 0) {
    port = server.bind_to_any_port(options.address);
  } else if (!server.bind_to_port(options.address, port)) {
    port = -1;
  }
  if (port <= 0) {
    int error = errno;
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", options.address,
                                               " port ", options.port, ": ", std::strerror(error)));
  }
  http->port_ = static_cast<uint16_t>(port);
  http->thread_ = std::thread([&server, &returned = http->listen_returned_] {
    server.listen_after_bind();
    returned.store(true);
  });

  // httplib's stop() does nothing until the accept loop runs: wait for it, so that a
  // Stop() right after Start() cannot be lost.
  while (!server.is_running()) {
    if (http->listen_returned_.load()) {
      return absl::InternalError(
          absl::StrCat("HTTP listener on ", http->ListenAddress(), " stopped at once"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return http;
}

std::string HttpServer::ListenAddress() const {
  if (options_.address.find(':') != std::string::npos) {
    return absl::StrCat("[", options_.address, "]:", port_);
  }
  return absl::StrCat(options_.address, ":", port_);
}

void HttpServer::Stop() {
  ready_.store(false);
  if (!thread_.joinable()) return;
  // Event streams never end by themselves. httplib's stop would cut them off mid-stream, so
  // first let them send their last chunk (a clean end for the client; within one poll
  // interval), bounded in case one is stuck writing to a client that does not read.
  stopping_.store(true);
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  while (open_event_streams_.load() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  server_->stop();
  thread_.join();
}

}  // namespace lwm2md::api
