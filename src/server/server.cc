#include "server/server.h"

#include <filesystem>
#include <system_error>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "metrics/process_metrics.h"
#include "server/coap_wiring.h"
#include "server/server_metrics.h"

namespace lwm2md::server {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config) {
  std::error_code error;
  std::filesystem::create_directories(config.store.path, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat("store.path: cannot create directory \"",
                                                      config.store.path, "\": ", error.message()));
  }

  auto server = absl::WrapUnique(new Server(config));
  metrics::AddProcessMetrics(server->registry_, LWM2MD_VERSION);

  absl::StatusOr<std::unique_ptr<api::HttpServer>> http = api::HttpServer::Start(
      {.address = config.http.address, .port = config.http.port}, {.metrics = &server->registry_});
  if (!http.ok()) return http.status();
  server->http_ = *std::move(http);

  CoapWiring* coap = server->coap_.get();
  absl::StatusOr<std::unique_ptr<net::ShardGroup>> group =
      net::ShardGroup::Start(ToShardGroupOptions(config),
                             [coap](net::Shard& shard) { return coap->MakeHandler(shard); });
  if (!group.ok()) return group.status();
  server->group_ = *std::move(group);

  AddNetMetrics(server->registry_, *server->group_);
  server->coap_->AddMetrics(server->registry_, *server->group_);

  for (const net::BoundListener& listener : server->group_->listeners()) {
    LWM2MD_LOG(kInfo, "listening %s %s", listener.spec.purpose, listener.local.ToString());
  }
  LWM2MD_LOG(kInfo, "listening http %s", server->http_->ListenAddress());
  LWM2MD_LOG(kInfo, "lwm2md ready: %d shards, backend %s", server->group_->size(),
             net::BackendName(server->group_->backend()));
  server->http_->SetReady(true);
  return server;
}

Server::~Server() { Stop(); }

void Server::Stop() {
  if (http_ != nullptr) http_->SetReady(false);
  if (group_ != nullptr) group_->Stop();
  if (http_ != nullptr) http_->Stop();
}

}  // namespace lwm2md::server
