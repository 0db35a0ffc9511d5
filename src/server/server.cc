#include "server/server.h"

#include <filesystem>
#include <system_error>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "metrics/process_metrics.h"
#include "server/coap_wiring.h"
#include "server/server_metrics.h"

namespace lwm2md::server {

store::Options ToStoreOptions(const Config& config) {
  store::Options options;
  options.path = config.store.path;
  options.map_size_bytes = uint64_t{config.store.map_size_mb} << 20;
  options.durability = config.store.durability;
  options.async_flush_interval = absl::Milliseconds(config.store.async_flush_ms);
  options.max_batch_operations = config.store.max_batch_operations;
  return options;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& config,
                                                      FatalHandler on_fatal) {
  std::error_code error;
  std::filesystem::create_directories(config.store.path, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat("store.path: cannot create directory \"",
                                                      config.store.path, "\": ", error.message()));
  }

  auto server = absl::WrapUnique(new Server(config));
  metrics::AddProcessMetrics(server->registry_, LWM2MD_VERSION);

  absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(ToStoreOptions(config));
  if (!store.ok()) return store.status();
  server->store_ = *std::move(store);
  server->store_->SetFatalHandler([on_fatal = std::move(on_fatal)](absl::Status status) mutable {
    LWM2MD_LOG(kError, "store failed, stopping: %s", status.message());
    if (on_fatal) on_fatal(std::move(status));
  });

  lwm2m::RegistrationHub::Options hub_options;
  hub_options.shards = net::ResolveShardCount(config.shards);
  hub_options.store = server->store_.get();
  hub_options.directory = &server->directory_;
  hub_options.events = &server->events_;
  server->registrations_ = std::make_unique<lwm2m::RegistrationHub>(std::move(hub_options));
  if (absl::Status status = server->registrations_->LoadStored(absl::Now()); !status.ok()) {
    return status;
  }
  LWM2MD_LOG(kInfo, "registrations: %d restored from %s",
             static_cast<int>(server->registrations_->stored_count()), config.store.path);
  server->coap_ = std::make_unique<CoapWiring>(config, server->registrations_.get());

  api::HttpServices services;
  services.metrics = &server->registry_;
  services.directory = &server->directory_;
  services.events = &server->events_;
  absl::StatusOr<std::unique_ptr<api::HttpServer>> http = api::HttpServer::Start(
      {.address = config.http.address,
       .port = config.http.port,
       .worker_threads = static_cast<int>(config.http.worker_threads)},
      services);
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
  AddStoreMetrics(server->registry_, *server->store_);
  AddRegistrationMetrics(server->registry_, *server->registrations_, server->directory_);

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
  // Ends the event streams, so that the HTTP workers serving them return.
  events_.Close();
  if (http_ != nullptr) http_->Stop();
  if (store_ != nullptr) {
    if (absl::Status status = store_->Flush(); !status.ok()) {
      LWM2MD_LOG(kError, "store flush at stop: %s", status.message());
    }
  }
}

}  // namespace lwm2md::server
