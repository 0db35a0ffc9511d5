#include "server/coap_wiring.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/log.h"
#include "coap/coap_metrics.h"
#include "coap/message_layer.h"
#include "coap/resource_tree.h"
#include "server/server_metrics.h"

namespace lwm2md::server {
namespace {

// What the registration layer needs of a DTLS identity.
lwm2m::PeerSecurity PeerSecurityOf(const dtls::PeerIdentity& identity) {
  lwm2m::PeerSecurity security{.psk_identity = identity.psk_identity,
                               .endpoint = identity.endpoint};
  switch (identity.authentication) {
    case dtls::Authentication::kPsk:
      security.credential = absl::StrCat("PSK identity \"", identity.psk_identity, "\"");
      break;
    case dtls::Authentication::kCertificateThumbprint:
      security.credential = absl::StrCat("certificate ", identity.certificate_thumbprint);
      break;
    case dtls::Authentication::kCertificateCa:
      security.credential = absl::StrCat("CA-signed certificate \"", identity.certificate_name,
                                         "\" (", identity.certificate_thumbprint, ")");
      security.vouched_by_ca = true;
      break;
  }
  return security;
}

// A shard's CoAP stack. Members are declared in dependency order so that the layer goes
// first on destruction, before the tree it points to.
// What the message layer sends through: plain datagrams to the shard, datagrams for a DTLS
// listener through the shard's DTLS server, which encrypts them.
class SecureIo final : public net::ShardIo {
 public:
  SecureIo(net::Shard& shard, const std::vector<bool>& dtls_listeners)
      : shard_(shard), dtls_listeners_(dtls_listeners) {}
  void set_dtls(dtls::DtlsServer* server) { dtls_ = server; }
  bool IsDtls(int listener) const {
    return listener >= 0 && static_cast<size_t>(listener) < dtls_listeners_.size() &&
           dtls_listeners_[static_cast<size_t>(listener)];
  }

  int shard_id() const override { return shard_.shard_id(); }
  net::TimePoint Now() const override { return shard_.Now(); }
  bool Send(int listener, const net::PeerAddress& to, std::span<const uint8_t> bytes) override {
    if (!IsDtls(listener)) return shard_.Send(listener, to, bytes);
    return dtls_ != nullptr && dtls_->Send(listener, to, bytes);
  }
  net::TimerWheel& timers() override { return shard_.timers(); }

 private:
  net::Shard& shard_;
  const std::vector<bool>& dtls_listeners_;
  dtls::DtlsServer* dtls_ = nullptr;
};

class ShardCoap final : public net::DatagramHandler {
 public:
  ShardCoap(const coap::Config& config, net::Shard& shard, coap::CoapMetrics& metrics,
            const std::shared_ptr<coap::DiagnosticBody>& diagnostic,
            lwm2m::RegistrationHub* registrations, lwm2m::ManagementHub* management,
            const dtls::DtlsOptions* dtls_options, const std::vector<bool>& dtls_listeners,
            dtls::DtlsMetrics* dtls_metrics)
      : tree_(config), io_(shard, dtls_listeners), layer_(io_, config, metrics, tree_) {
    if (config.diagnostic_resource) {
      LWM2MD_CHECK(coap::RegisterDiagnosticResource(tree_, shard, diagnostic).ok());
    }
    if (dtls_options != nullptr) {
      // Decrypted messages go to the message layer as if they had arrived in the clear, on
      // the DTLS listener (whose answers SecureIo encrypts).
      absl::StatusOr<std::unique_ptr<dtls::DtlsServer>> server = dtls::DtlsServer::Create(
          shard, *dtls_options, *dtls_metrics,
          [this](const net::ReceivedDatagram& plaintext) { layer_.OnDatagram(plaintext); });
      if (server.ok()) {
        dtls_ = *std::move(server);
        io_.set_dtls(dtls_.get());
      } else {
        LWM2MD_LOG(kError, "shard %d: DTLS not served: %s", shard.shard_id(),
                   server.status().message());
      }
    }
    if (registrations != nullptr) {
      registrations_ = std::make_unique<lwm2m::RegistrationService>(shard, tree_, *registrations);
      if (dtls_ != nullptr) {
        registrations_->SetPeerSecurityLookup(
            [this](int listener, const net::PeerAddress& peer) -> std::optional<lwm2m::PeerSecurity> {
              if (!io_.IsDtls(listener)) return std::nullopt;
              const dtls::PeerIdentity* identity = dtls_->FindIdentity(peer);
              if (identity == nullptr) return std::nullopt;
              return PeerSecurityOf(*identity);
            });
      }
      if (management != nullptr) {
        management_ = std::make_unique<lwm2m::ManagementService>(shard, tree_, layer_,
                                                                 *registrations_, *management);
      }
    }
  }

  void OnDatagram(const net::ReceivedDatagram& datagram) override {
    if (!io_.IsDtls(datagram.listener)) return layer_.OnDatagram(datagram);
    if (dtls_ != nullptr) dtls_->OnDatagram(datagram);
  }
  // Phase two of shutdown: every DTLS session goes to the store, for the next start to go on
  // with.
  void OnStop() override {
    if (dtls_ != nullptr) dtls_->SaveAll();
  }
  // A CoAP message another shard received for one of this shard's exchanges: already in the
  // clear.
  void OnForwarded(const net::ReceivedDatagram& datagram) { layer_.OnDatagram(datagram); }
  coap::MessageLayer& layer() { return layer_; }

 private:
  coap::ResourceTree tree_;
  SecureIo io_;
  // Destroyed after the layer (whose deferred responses it holds), before the tree.
  std::unique_ptr<lwm2m::RegistrationService> registrations_;
  // Destroyed after the layer, which may still send through it while it goes.
  std::unique_ptr<dtls::DtlsServer> dtls_;
  coap::MessageLayer layer_;
  // Destroyed first: it uses the layer and the registrations.
  std::unique_ptr<lwm2m::ManagementService> management_;
};

}  // namespace

coap::Config ToCoapConfig(const Config& config) {
  coap::Config c;
  c.ack_timeout_ms = config.coap.ack_timeout_ms;
  c.ack_random_factor = config.coap.ack_random_factor;
  c.max_retransmit = config.coap.max_retransmit;
  c.block_size = config.coap.block_size;
  c.max_body_size = config.coap.max_body_size;
  c.max_block1_transfers = config.coap.max_block1_transfers;
  c.diagnostic_resource = config.coap.diagnostic_resource;
  c.separate_ack_delay_ms = std::min(c.separate_ack_delay_ms, c.ack_timeout_ms / 2);
  return c;
}

lwm2m::ManagementLimits ToManagementLimits(const Config& config) {
  lwm2m::ManagementLimits limits;
  limits.max_in_flight_per_endpoint = static_cast<int>(config.lwm2m.max_in_flight_per_endpoint);
  limits.max_queued_per_endpoint = config.lwm2m.max_queued_requests_per_endpoint;
  limits.max_pending_per_shard = config.lwm2m.max_pending_requests_per_shard;
  limits.max_payload_bytes = config.lwm2m.max_request_payload_bytes;
  limits.queue_awake_window = absl::Seconds(config.lwm2m.queue_awake_window_s);
  return limits;
}

CoapWiring::CoapWiring(const coap::Config& coap, lwm2m::RegistrationHub* registrations,
                       lwm2m::ManagementHub* management)
    : coap_config_(coap),
      diagnostic_(std::make_shared<coap::DiagnosticBody>()),
      registrations_(registrations),
      management_(management),
      shards_(registrations != nullptr ? static_cast<size_t>(registrations->shards()) : 0) {}

void CoapWiring::EnableDtls(dtls::DtlsOptions options, std::vector<bool> dtls_listeners) {
  dtls_options_ = std::move(options);
  dtls_listeners_ = std::move(dtls_listeners);
}

std::unique_ptr<net::DatagramHandler> CoapWiring::MakeHandler(net::Shard& shard) {
  coap::CoapMetrics* probe;
  {
    absl::MutexLock lock(&probes_mutex_);
    const size_t id = static_cast<size_t>(shard.shard_id());
    if (probes_.size() <= id) probes_.resize(id + 1);
    probes_[id] = std::make_unique<coap::CoapMetrics>();
    probe = probes_[id].get();
  }
  dtls::DtlsMetrics* dtls_probe = nullptr;
  if (dtls_options_) {
    absl::MutexLock lock(&probes_mutex_);
    const size_t id = static_cast<size_t>(shard.shard_id());
    if (dtls_probes_.size() <= id) dtls_probes_.resize(id + 1);
    dtls_probes_[id] = std::make_unique<dtls::DtlsMetrics>();
    dtls_probe = dtls_probes_[id].get();
  }
  auto handler = std::make_unique<ShardCoap>(
      coap_config_, shard, *probe, diagnostic_, registrations_, management_,
      dtls_options_ ? &*dtls_options_ : nullptr, dtls_listeners_, dtls_probe);
  const int count = static_cast<int>(shards_.size());
  if (count > 1 && shard.shard_id() < count) {
    shards_[static_cast<size_t>(shard.shard_id())].store(&shard);
    handler->layer().SetShardRouting(
        shard.shard_id(), count, [this](int owner, const net::ReceivedDatagram& datagram) {
          net::Shard* target = shards_[static_cast<size_t>(owner)].load();
          if (target == nullptr) return;
          // Copied: the datagram's buffer goes back to the ring when this returns.
          target->Post([target, listener = datagram.listener, peer = datagram.peer,
                        bytes = std::vector<uint8_t>(datagram.bytes.begin(),
                                                     datagram.bytes.end())] {
            // Every handler of the group is a ShardCoap (MakeHandler); absent once stopping.
            auto* handler = static_cast<ShardCoap*>(target->handler());
            if (handler == nullptr) return;
            handler->OnForwarded(net::ReceivedDatagram{listener, peer, bytes});
          });
        });
  }
  return handler;
}

void CoapWiring::ApplyTransmissionParameters(net::ShardGroup& group, uint32_t ack_timeout_ms,
                                             double ack_random_factor,
                                             uint32_t max_retransmit) {
  for (int i = 0; i < group.size(); ++i) {
    net::Shard* shard = &group.shard(i);
    shard->Post([shard, ack_timeout_ms, ack_random_factor, max_retransmit] {
      // Every handler of the group is a ShardCoap (MakeHandler); absent once stopping.
      auto* coap = static_cast<ShardCoap*>(shard->handler());
      if (coap == nullptr) return;
      absl::Status status = coap->layer().SetTransmissionParameters(
          ack_timeout_ms, ack_random_factor, max_retransmit);
      if (!status.ok()) {
        LWM2MD_LOG(kError, "shard %d: CoAP timeouts not applied: %s", shard->shard_id(),
                   status.message());
      }
    });
  }
}

void CoapWiring::AddMetrics(metrics::Registry& registry, net::ShardGroup& group) {
  // Read from the scraping thread: the probes are relaxed atomics (net::ShardCounter).
  std::vector<const coap::CoapMetrics*> probes;
  {
    absl::MutexLock lock(&probes_mutex_);
    for (const std::unique_ptr<coap::CoapMetrics>& probe : probes_) probes.push_back(probe.get());
  }
  const int shards = group.size();
  LWM2MD_CHECK(static_cast<int>(probes.size()) == shards);
  for (const coap::CoapMetrics* probe : probes) LWM2MD_CHECK(probe != nullptr);
  using Direction = coap::CoapMetrics::Direction;
  auto messages = [probes](Direction direction) {
    return [probes, direction](metrics::SampleWriter& out) {
      for (size_t s = 0; s < probes.size(); ++s) {
        const std::string shard = std::to_string(s);
        probes[s]->ForEachMessageCount(direction, [&](std::string_view type,
                                                      std::string_view code, uint64_t value) {
          out.Add({{"shard", shard}, {"type", type}, {"code", code}}, static_cast<double>(value));
        });
      }
    };
  };
  registry.AddCallbackFamily({"lwm2md_coap_messages_received_total",
                              "CoAP messages received, by type and code.",
                              metrics::Type::kCounter, messages(Direction::kReceived)});
  registry.AddCallbackFamily({"lwm2md_coap_messages_sent_total",
                              "CoAP messages sent, by type and code.", metrics::Type::kCounter,
                              messages(Direction::kSent)});
  // Families labelled by shard and reason, from a probe's ForEach<Reason> enumerator.
  auto by_reason = [probes](auto for_each) {
    return [probes, for_each](metrics::SampleWriter& out) {
      for (size_t s = 0; s < probes.size(); ++s) {
        const std::string shard = std::to_string(s);
        for_each(*probes[s], [&](std::string_view reason, uint64_t value) {
          out.Add({{"shard", shard}, {"reason", reason}}, static_cast<double>(value));
        });
      }
    };
  };
  registry.AddCallbackFamily(
      {"lwm2md_coap_parse_errors_total", "Datagrams that are not valid CoAP, by reason.",
       metrics::Type::kCounter, by_reason([](const coap::CoapMetrics& m, auto&& fn) {
         m.ForEachParseError(fn);
       })});
  registry.AddCallbackFamily(
      {"lwm2md_coap_dropped_total", "Messages dropped without an answer, by reason.",
       metrics::Type::kCounter, by_reason([](const coap::CoapMetrics& m, auto&& fn) {
         m.ForEachDropReason(fn);
       })});
  struct Simple {
    const char* name;
    const char* help;
    metrics::Type type;
    uint64_t (coap::CoapMetrics::*value)() const;
  };
  static constexpr Simple kSimple[] = {
      {"lwm2md_coap_retransmissions_total", "CON messages retransmitted.",
       metrics::Type::kCounter, &coap::CoapMetrics::retransmissions},
      {"lwm2md_coap_duplicates_total", "Duplicate messages answered from the cache.",
       metrics::Type::kCounter, &coap::CoapMetrics::duplicates},
      {"lwm2md_coap_request_timeouts_total", "Requests sent that got no answer.",
       metrics::Type::kCounter, &coap::CoapMetrics::requests_timed_out},
      {"lwm2md_coap_resets_received_total", "RST messages received.", metrics::Type::kCounter,
       &coap::CoapMetrics::resets_received},
      {"lwm2md_coap_pings_total", "Empty CON messages (pings) answered with RST.",
       metrics::Type::kCounter, &coap::CoapMetrics::pings},
      {"lwm2md_coap_bad_options_total", "Requests answered 4.02 Bad Option.",
       metrics::Type::kCounter, &coap::CoapMetrics::bad_options},
      {"lwm2md_coap_separate_responses_unacknowledged_total",
       "Separate responses never acknowledged.", metrics::Type::kCounter,
       &coap::CoapMetrics::separate_responses_unacked},
      {"lwm2md_coap_block1_completed_total", "Block1 transfers reassembled.",
       metrics::Type::kCounter, &coap::CoapMetrics::block1_completed},
      {"lwm2md_coap_block1_rejected_total", "Block1 transfers refused (size, count, order).",
       metrics::Type::kCounter, &coap::CoapMetrics::block1_rejected},
      {"lwm2md_coap_block2_responses_total", "Responses sent block-wise (Block2).",
       metrics::Type::kCounter, &coap::CoapMetrics::block2_responses},
      {"lwm2md_coap_dedup_evictions_total",
       "Deduplication records dropped before their lifetime to stay within bounds.",
       metrics::Type::kCounter, &coap::CoapMetrics::dedup_evictions},
      {"lwm2md_coap_dedup_entries", "Messages remembered for deduplication.",
       metrics::Type::kGauge, &coap::CoapMetrics::dedup_entries},
      {"lwm2md_coap_outstanding_requests", "Requests sent and awaiting an answer.",
       metrics::Type::kGauge, &coap::CoapMetrics::outstanding_requests},
      {"lwm2md_coap_block2_cache_bytes", "Bytes of Block2 representations kept.",
       metrics::Type::kGauge, &coap::CoapMetrics::block2_cache_bytes},
  };
  for (const Simple& family : kSimple) {
    const auto value = family.value;
    registry.AddCallbackFamily(metrics::PerShardFamily(
        family.name, family.help, family.type, shards,
        [probes, value](int s) { return static_cast<double>((probes[s]->*value)()); }));
  }
  if (dtls_options_) {
    std::vector<const dtls::DtlsMetrics*> dtls_probes;
    {
      absl::MutexLock lock(&probes_mutex_);
      for (const auto& probe : dtls_probes_) dtls_probes.push_back(probe.get());
    }
    LWM2MD_CHECK(static_cast<int>(dtls_probes.size()) == shards);
    AddDtlsMetrics(registry, std::move(dtls_probes));
  }
}

}  // namespace lwm2md::server
