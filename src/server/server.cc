#include "server/server.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "dtls/certificates.h"
#include "dtls/dtls_server.h"
#include "dtls/saved_session.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "lwm2m/builtin_objects.h"
#include "metrics/process_metrics.h"
#include "server/ca_certificates.h"
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

// Whether an endpoint may register. Over DTLS: only under the name its credential belongs
// to (no device registers as another); an endpoint with no configuration when an uploaded
// CA signed the certificate that names it (the operator who uploads a CA means its devices
// to get in); never a "psk" or "x509" endpoint by a CA-signed certificate (the handshake
// refuses that already). Over plain CoAP: a configured endpoint only when its security mode
// is "none"; an unknown one when the service setting or the configuration
// (lwm2m.allow_unknown_endpoints) allows it. A store error refuses: no admission on
// guesswork.
lwm2m::AdmissionPolicy MakeAdmissionPolicy(const lwm2m::EndpointConfigStore* endpoints,
                                          bool config_allows_unknown) {
  return [endpoints, config_allows_unknown](std::string_view name,
                                            const lwm2m::PeerSecurity* security) {
    lwm2m::Admission admission;
    const bool secure = security != nullptr;
    if (secure && security->endpoint != name) {
      admission.reason =
          security->psk_identity.empty()
              ? absl::StrCat("the DTLS credential (", security->credential,
                             ") belongs to another endpoint")
              : absl::StrCat("the DTLS identity \"", security->psk_identity,
                             "\" belongs to another endpoint");
      LWM2MD_LOG(kWarning, "security: %s tried to register as \"%s\"",
                 security->credential.empty() ? absl::StrCat("\"", security->psk_identity, "\"")
                                              : security->credential,
                 name);
      return admission;
    }
    const lwm2m::ServiceSettings settings = endpoints->settings();
    absl::StatusOr<std::optional<lwm2m::EndpointConfig>> config = endpoints->Get(name);
    if (!config.ok()) {
      admission.reason = "endpoint configuration unavailable";
      LWM2MD_LOG(kError, "admission of \"%s\": %s", name, config.status().message());
      return admission;
    }
    const lwm2m::EndpointConfig* endpoint = config->has_value() ? &**config : nullptr;
    admission.missing_timeout = absl::Seconds(
        lwm2m::EffectiveMissingTimeoutSeconds(endpoint, settings));
    if (endpoint == nullptr) {
      const bool vouched = secure && security->vouched_by_ca;
      admission.allowed = vouched || config_allows_unknown || settings.allow_unknown_endpoints;
      if (!admission.allowed) admission.reason = "unknown endpoint";
      admission.credentials =
          vouched ? lwm2m::CredentialsKind::kPrimary : lwm2m::CredentialsKind::kNone;
      return admission;
    }
    if (secure && security->vouched_by_ca &&
        (endpoint->security_mode == lwm2m::SecurityMode::kPsk ||
         endpoint->security_mode == lwm2m::SecurityMode::kCertificate)) {
      admission.reason = absl::StrCat("endpoint requires its own credential (securityMode ",
                                      std::string(lwm2m::SecurityModeName(endpoint->security_mode)),
                                      ")");
      return admission;
    }
    if (!secure && endpoint->security_mode != lwm2m::SecurityMode::kNone) {
      admission.reason = "endpoint requires DTLS";
      return admission;
    }
    admission.allowed = true;
    admission.credentials =
        secure ? lwm2m::CredentialsKind::kPrimary : lwm2m::CredentialsKind::kNone;
    return admission;
  };
}

// The server's certificate (dtls.certificate_file and dtls.private_key_file, else the one
// generated in store.path) and the client certificate rules over the endpoint
// configurations: a thumbprint names an endpoint whose security mode is "x509"
// (EndpointConfigStore keeps the thumbprint index unique); a certificate signed by an
// uploaded CA names any endpoint but a "psk" or "x509" one, which has a credential of its
// own. A configured "none" endpoint may be entered that way: a CA-signed certificate proves
// more than plain CoAP asks for.
absl::StatusOr<dtls::CertificateOptions> ToCertificateOptions(
    const Config& config, const lwm2m::EndpointConfigStore* endpoints,
    const dtls::CaStore* cas) {
  absl::StatusOr<dtls::ServerCertificate> server =
      config.dtls.certificate_file.empty()
          ? dtls::LoadOrCreateServerCertificate(config.store.path)
          : dtls::LoadServerCertificate(config.dtls.certificate_file,
                                        config.dtls.private_key_file);
  if (!server.ok()) return server.status();
  LWM2MD_LOG(kInfo, "DTLS certificate %s%s: %s, %d certificate(s) in a %d-byte message, SHA-256 %s",
             server->certificate_path, server->generated ? " (generated, self-signed)" : "",
             server->subject, static_cast<int>(server->certificates),
             static_cast<int>(server->message_bytes), server->thumbprint);
  if (server->not_after < absl::Now()) {
    LWM2MD_LOG(kWarning, "DTLS certificate %s expired on %s: devices that check it will refuse it",
               server->certificate_path, absl::FormatTime(server->not_after));
  }
  dtls::CertificateOptions options;
  options.server = std::make_shared<const dtls::ServerCertificate>(*std::move(server));
  options.ca_store = cas;
  options.thumbprint_lookup =
      [endpoints](std::string_view thumbprint) -> std::optional<std::string> {
    absl::StatusOr<std::optional<std::string>> name = endpoints->FindNameByThumbprint(thumbprint);
    if (!name.ok() || !name->has_value()) return std::nullopt;
    absl::StatusOr<std::optional<lwm2m::EndpointConfig>> endpoint = endpoints->Get(**name);
    if (!endpoint.ok() || !endpoint->has_value() ||
        (*endpoint)->security_mode != lwm2m::SecurityMode::kCertificate ||
        (*endpoint)->certificate_thumbprint != thumbprint) {
      return std::nullopt;
    }
    return **name;
  };
  options.ca_refusal = [endpoints](std::string_view name) -> std::optional<std::string> {
    absl::StatusOr<std::optional<lwm2m::EndpointConfig>> endpoint = endpoints->Get(name);
    if (!endpoint.ok()) return std::string("the configuration of its endpoint cannot be read");
    if (!endpoint->has_value()) return std::nullopt;
    const lwm2m::SecurityMode mode = (*endpoint)->security_mode;
    if (mode != lwm2m::SecurityMode::kPsk && mode != lwm2m::SecurityMode::kCertificate) {
      return std::nullopt;
    }
    return absl::StrCat("endpoint \"", std::string(name), "\" has securityMode ",
                        std::string(lwm2m::SecurityModeName(mode)));
  };
  return options;
}

// The [dtls] section, and PSK credentials from the endpoint configurations: an identity
// names an endpoint whose security mode is "psk" (EndpointConfigStore keeps the identity
// index unique).
// Sessions are saved in the store when idle and at shutdown.
absl::StatusOr<dtls::DtlsOptions> ToDtlsOptions(const Config& config,
                                                const lwm2m::EndpointConfigStore* endpoints,
                                                store::Store* store, const dtls::CaStore* cas) {
  dtls::DtlsOptions options;
  for (absl::string_view name : absl::StrSplit(config.dtls.ciphersuites, ',', absl::SkipWhitespace())) {
    options.ciphersuites.emplace_back(absl::StripAsciiWhitespace(name));
  }
  options.handshake_timeout_min = absl::Milliseconds(config.dtls.handshake_timeout_min_ms);
  options.handshake_timeout_max = absl::Milliseconds(config.dtls.handshake_timeout_max_ms);
  options.max_sessions = config.dtls.max_sessions_per_shard;
  options.session_store = store;
  options.shard_count = net::ResolveShardCount(config.shards);
  options.idle_save_after = absl::Seconds(config.dtls.session_idle_save_s);
  options.saved_max_age = absl::Seconds(config.dtls.saved_session_max_age_s);
  options.psk_lookup = [endpoints](std::string_view identity) -> std::optional<dtls::PskCredential> {
    absl::StatusOr<std::optional<std::string>> name = endpoints->FindNameByPskIdentity(identity);
    if (!name.ok() || !name->has_value()) return std::nullopt;
    absl::StatusOr<std::optional<lwm2m::EndpointConfig>> endpoint = endpoints->Get(**name);
    if (!endpoint.ok() || !endpoint->has_value() ||
        (*endpoint)->security_mode != lwm2m::SecurityMode::kPsk) {
      return std::nullopt;
    }
    return dtls::PskCredential{(*endpoint)->psk_key, **name};
  };
  absl::StatusOr<dtls::CertificateOptions> certificates =
      ToCertificateOptions(config, endpoints, cas);
  if (!certificates.ok()) return certificates.status();
  options.certificates = *std::move(certificates);
  if (absl::Status valid = dtls::ValidateOptions(options); !valid.ok()) return valid;
  return options;
}

// The service settings own the CoAP timeouts once stored; the [coap] keys seed them on the
// first start of a data directory.
absl::Status SeedOrReportSettings(const Config& config, bool first_start,
                                  lwm2m::EndpointConfigStore& endpoints) {
  lwm2m::ServiceSettings settings = endpoints.settings();
  if (first_start) {
    settings.coap_ack_timeout_ms = config.coap.ack_timeout_ms;
    settings.coap_ack_random_factor = config.coap.ack_random_factor;
    settings.coap_max_retransmit = config.coap.max_retransmit;
    if (absl::Status valid = lwm2m::ValidateSettings(settings); !valid.ok()) {
      LWM2MD_LOG(kWarning, "[coap] timeouts not taken as service settings (%s); defaults apply",
                 valid.message());
      return absl::OkStatus();
    }
    return endpoints.UpdateSettings(settings);
  }
  if (settings.coap_ack_timeout_ms != config.coap.ack_timeout_ms ||
      settings.coap_ack_random_factor != config.coap.ack_random_factor ||
      settings.coap_max_retransmit != config.coap.max_retransmit) {
    LWM2MD_LOG(kInfo,
               "CoAP timeouts from the service settings: ack_timeout_ms=%u ack_random_factor=%g "
               "max_retransmit=%u ([coap] keys seed them on a new data directory only; change "
               "them with PUT /api/v1/settings)",
               settings.coap_ack_timeout_ms, settings.coap_ack_random_factor,
               settings.coap_max_retransmit);
  }
  return absl::OkStatus();
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
  // Billable-event counting sees every event from the first one on.
  server->billing_ = std::make_unique<lwm2m::BillingCounters>(lwm2m::BillingOptions{
      .store = server->store_.get(),
      .flush_interval = absl::Milliseconds(config.billing.flush_interval_ms),
      .endpoint_metrics = config.billing.endpoint_metrics});
  server->events_.SetTap(server->billing_->Tap());
  server->billing_->Start();

  absl::StatusOr<std::vector<lwm2m::ObjectDefinition>> built_in =
      lwm2m::LoadBuiltInObjects(config.lwm2m.objects_dir);
  if (!built_in.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("lwm2m.objects_dir: ", built_in.status().message()));
  }
  const size_t built_in_count = built_in->size();
  absl::StatusOr<std::unique_ptr<lwm2m::ObjectRegistry>> objects =
      lwm2m::ObjectRegistry::Create(*std::move(built_in), server->store_.get());
  if (!objects.ok()) return objects.status();
  server->objects_ = *std::move(objects);
  LWM2MD_LOG(kInfo, "objects: %d built-in from %s", static_cast<int>(built_in_count),
             config.lwm2m.objects_dir);

  absl::StatusOr<std::optional<std::string>> stored_settings =
      server->store_->Get(store::Table::kSettings, "service");
  if (!stored_settings.ok()) return stored_settings.status();
  absl::StatusOr<std::unique_ptr<lwm2m::EndpointConfigStore>> endpoints =
      lwm2m::EndpointConfigStore::Open(*server->store_);
  if (!endpoints.ok()) return endpoints.status();
  server->endpoints_ = *std::move(endpoints);
  absl::StatusOr<std::unique_ptr<dtls::CaStore>> cas = dtls::CaStore::Open(*server->store_);
  if (!cas.ok()) return cas.status();
  server->ca_certificates_ = *std::move(cas);
  if (absl::Status status =
          SeedOrReportSettings(config, !stored_settings->has_value(), *server->endpoints_);
      !status.ok()) {
    return status;
  }

  lwm2m::RegistrationHub::Options hub_options;
  hub_options.shards = net::ResolveShardCount(config.shards);
  hub_options.store = server->store_.get();
  hub_options.directory = &server->directory_;
  hub_options.events = &server->events_;
  hub_options.admission =
      MakeAdmissionPolicy(server->endpoints_.get(), config.lwm2m.allow_unknown_endpoints);
  // A device whose DTLS session uses a connection id sends to the shard the id names
  // (net/steering.h), wherever it is now: its registration waits there.
  hub_options.shard_hint = [store = server->store_.get()](
                               const net::PeerAddress& address) -> std::optional<int> {
    absl::StatusOr<std::optional<std::string>> id =
        store->Get(store::Table::kDtlsSessions, dtls::AddressKey(address));
    if (!id.ok() || !id->has_value()) return std::nullopt;
    std::optional<uint64_t> connection_id = dtls::ConnectionIdOfAddressValue(**id);
    if (!connection_id) return std::nullopt;
    absl::StatusOr<std::optional<std::string>> stored =
        store->Get(store::Table::kDtlsSessions, dtls::SessionKey(*connection_id));
    if (!stored.ok() || !stored->has_value()) return std::nullopt;
    absl::StatusOr<dtls::SavedSession> session = dtls::DecodeSavedSession(**stored);
    if (!session.ok() || !session->connection_id_used) return std::nullopt;
    return dtls::ShardOfConnectionId(session->connection_id);
  };
  server->registrations_ = std::make_unique<lwm2m::RegistrationHub>(std::move(hub_options));
  if (absl::Status status = server->registrations_->LoadStored(absl::Now()); !status.ok()) {
    return status;
  }
  LWM2MD_LOG(kInfo, "registrations: %d restored from %s",
             static_cast<int>(server->registrations_->stored_count()), config.store.path);
  lwm2m::ManagementHub::Options management_options;
  management_options.shards = server->registrations_->shards();
  management_options.store = server->store_.get();
  management_options.objects = server->objects_.get();
  management_options.directory = &server->directory_;
  management_options.events = &server->events_;
  management_options.limits = ToManagementLimits(config);
  management_options.interrupted_report_retention =
      absl::Seconds(config.lwm2m.interrupted_report_retention_s);
  server->management_ = std::make_unique<lwm2m::ManagementHub>(std::move(management_options));
  if (absl::Status status = server->management_->LoadStored(); !status.ok()) return status;
  coap::Config coap_config = ToCoapConfig(config);
  {
    const lwm2m::ServiceSettings settings = server->endpoints_->settings();
    coap_config.ack_timeout_ms = settings.coap_ack_timeout_ms;
    coap_config.ack_random_factor = settings.coap_ack_random_factor;
    coap_config.max_retransmit = settings.coap_max_retransmit;
    coap_config.separate_ack_delay_ms =
        std::min(coap_config.separate_ack_delay_ms, coap_config.ack_timeout_ms / 2);
    if (absl::Status valid = coap_config.Validate(); !valid.ok()) return valid;
  }
  server->coap_ = std::make_unique<CoapWiring>(coap_config, server->registrations_.get(),
                                               server->management_.get());
  if (config.dtls.enabled) {
    absl::StatusOr<dtls::DtlsOptions> dtls =
        ToDtlsOptions(config, server->endpoints_.get(), server->store_.get(),
                      server->ca_certificates_.get());
    if (!dtls.ok()) return dtls.status();
    const net::ShardGroupOptions group_options = ToShardGroupOptions(config);
    std::vector<bool> dtls_listeners;
    for (const net::ListenSpec& spec : group_options.listen) dtls_listeners.push_back(spec.dtls);
    server->coap_->EnableDtls(*std::move(dtls), std::move(dtls_listeners));
  }

  api::HttpServices services;
  services.metrics = &server->registry_;
  services.directory = &server->directory_;
  services.endpoints = server->endpoints_.get();
  services.objects = server->objects_.get();
  services.events = &server->events_;
  services.management = server->management_.get();
  services.store = server->store_.get();
  services.billing = server->billing_.get();
  server->api_ca_certificates_ = std::make_unique<ApiCaCertificates>(*server->ca_certificates_);
  services.ca_certificates = server->api_ca_certificates_.get();
  // Without configured tokens, one generated on the first start and kept with the data.
  std::vector<api::ApiToken> tokens = config.http.tokens;
  if (tokens.empty()) {
    const std::string path = (std::filesystem::path(config.store.path) / "api-token").string();
    absl::StatusOr<std::string> secret = api::LoadOrCreateTokenFile(path);
    if (!secret.ok()) return absl::FailedPreconditionError(secret.status().message());
    tokens.push_back(api::MakeApiToken("api-token", *secret, api::TokenAccess::kReadWrite));
    LWM2MD_LOG(kInfo, "API token in %s", path);
  }
  absl::StatusOr<std::unique_ptr<api::HttpServer>> http = api::HttpServer::Start(
      {.address = config.http.address,
       .port = config.http.port,
       .worker_threads = static_cast<int>(config.http.worker_threads),
       .tokens = std::move(tokens),
       .public_metrics = config.http.public_metrics,
       .tls_cert = config.http.tls_cert,
       .tls_key = config.http.tls_key},
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
  AddManagementMetrics(server->registry_, *server->management_);
  // The shards run: requests left waiting by the last run wait again, the ones it had sent
  // end in error events.
  server->management_->ResumeStored();
  AddBillingMetrics(server->registry_, *server->billing_);
  net::ShardGroup* group_ptr = server->group_.get();
  server->endpoints_->OnSettingsChanged([group_ptr](const lwm2m::ServiceSettings& settings) {
    CoapWiring::ApplyTransmissionParameters(*group_ptr, settings.coap_ack_timeout_ms,
                                            settings.coap_ack_random_factor,
                                            settings.coap_max_retransmit);
  });

  for (const net::BoundListener& listener : server->group_->listeners()) {
    LWM2MD_LOG(kInfo, "listening %s %s", listener.spec.purpose, listener.local.ToString());
  }
  LWM2MD_LOG(kInfo, "listening %s %s", server->http_->tls() ? "https" : "http",
             server->http_->ListenAddress());
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
  // The shards are stopped: the last counts go in before the store's final flush.
  if (billing_ != nullptr) billing_->Stop();
  if (store_ != nullptr) {
    if (absl::Status status = store_->Flush(); !status.ok()) {
      LWM2MD_LOG(kError, "store flush at stop: %s", status.message());
    }
  }
}

}  // namespace lwm2md::server
