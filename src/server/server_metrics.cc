#include "server/server_metrics.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

#include "net/net_metrics.h"

namespace lwm2md::server {
namespace {

struct NetFamily {
  const char* name;
  const char* help;
  metrics::Type type;
  net::ShardCounter net::NetMetrics::*counter;
};

// Every net::NetMetrics field, declared once.
constexpr NetFamily kNetFamilies[] = {
    {"lwm2md_net_received_packets_total", "UDP datagrams received.", metrics::Type::kCounter,
     &net::NetMetrics::packets_received},
    {"lwm2md_net_received_bytes_total", "UDP payload bytes received.", metrics::Type::kCounter,
     &net::NetMetrics::bytes_received},
    {"lwm2md_net_sent_packets_total", "UDP datagrams sent.", metrics::Type::kCounter,
     &net::NetMetrics::packets_sent},
    {"lwm2md_net_sent_bytes_total", "UDP payload bytes sent.", metrics::Type::kCounter,
     &net::NetMetrics::bytes_sent},
    {"lwm2md_net_send_errors_total",
     "Datagrams not sent: sendmsg failures and sends refused by a full send queue.",
     metrics::Type::kCounter, &net::NetMetrics::send_errors},
    {"lwm2md_net_receive_truncated_total",
     "Datagrams dropped because they were larger than a receive buffer.", metrics::Type::kCounter,
     &net::NetMetrics::receive_truncated},
    {"lwm2md_net_receive_buffers_exhausted_total",
     "Times io_uring ran out of provided receive buffers.", metrics::Type::kCounter,
     &net::NetMetrics::receive_buffers_exhausted},
    {"lwm2md_shard_inbox_posted_total", "Commands posted to the shard's inbox.",
     metrics::Type::kCounter, &net::NetMetrics::inbox_posted},
    {"lwm2md_shard_inbox_depth", "Commands waiting in the shard's inbox.", metrics::Type::kGauge,
     &net::NetMetrics::inbox_depth},
    {"lwm2md_shard_loop_iterations_total", "Iterations of the shard's event loop.",
     metrics::Type::kCounter, &net::NetMetrics::loop_iterations},
};

}  // namespace

void AddNetMetrics(metrics::Registry& registry, net::ShardGroup& group) {
  // The probes live as long as the group; take their addresses once here rather than
  // asking the shards on every scrape.
  std::vector<const net::NetMetrics*> probes;
  for (int i = 0; i < group.size(); ++i) probes.push_back(&group.shard(i).metrics());
  for (const NetFamily& family : kNetFamilies) {
    registry.AddCallbackFamily(
        metrics::PerShardFamily(family.name, family.help, family.type, group.size(),
                                [probes, counter = family.counter](int shard) {
                                  return static_cast<double>((probes[shard]->*counter).Value());
                                }));
  }
}

void AddStoreMetrics(metrics::Registry& registry, const store::Store& store) {
  const store::StoreMetrics* probe = &store.metrics();
  const store::Store* db = &store;
  struct StoreFamily {
    const char* name;
    const char* help;
    metrics::Type type;
    std::function<double()> value;
  };
  const StoreFamily families[] = {
      {"lwm2md_store_commits_total", "LMDB write transactions committed.",
       metrics::Type::kCounter, [probe] { return double(probe->commits.load()); }},
      {"lwm2md_store_operations_total", "Puts and deletes committed.", metrics::Type::kCounter,
       [probe] { return double(probe->operations.load()); }},
      {"lwm2md_store_batches_total",
       "Write batches committed (several batches share one commit under load).",
       metrics::Type::kCounter, [probe] { return double(probe->batches.load()); }},
      {"lwm2md_store_failed_batches_total", "Write batches refused or failed.",
       metrics::Type::kCounter, [probe] { return double(probe->failed_batches.load()); }},
      {"lwm2md_store_syncs_total", "fsyncs of the environment.", metrics::Type::kCounter,
       [probe] { return double(probe->syncs.load()); }},
      {"lwm2md_store_queued_bytes", "Bytes of writes waiting for the next commit.",
       metrics::Type::kGauge, [probe] { return double(probe->queued_bytes.load()); }},
      {"lwm2md_store_queued_batches", "Write batches waiting for the next commit.",
       metrics::Type::kGauge, [probe] { return double(probe->queued_batches.load()); }},
      {"lwm2md_store_used_bytes", "Bytes of the LMDB map in use.", metrics::Type::kGauge,
       [db] { return double(db->used_bytes()); }},
      {"lwm2md_store_map_size_bytes", "Size of the LMDB map (store.map_size_mb).",
       metrics::Type::kGauge, [db] { return double(db->options().map_size_bytes); }},
      {"lwm2md_store_healthy", "1 while the store accepts writes, 0 after a fatal error.",
       metrics::Type::kGauge, [db] { return db->health().ok() ? 1.0 : 0.0; }},
  };
  for (const StoreFamily& family : families) {
    registry.AddCallbackFamily({family.name, family.help, family.type,
                                [value = family.value](metrics::SampleWriter& out) {
                                  out.Add({}, value());
                                }});
  }
  registry.AddCallbackFamily(
      {"lwm2md_store_commit_seconds", "Commit latency of one write transaction, fsync included.",
       metrics::Type::kHistogram, [probe](metrics::SampleWriter& out) {
         std::vector<metrics::SampleWriter::Bucket> buckets;
         uint64_t cumulative = 0;
         for (int i = 0; i < store::StoreMetrics::kCommitBucketCount; ++i) {
           cumulative += probe->commit_buckets[i].load();
           buckets.push_back({store::StoreMetrics::kCommitBucketsSeconds[i], cumulative});
         }
         cumulative += probe->commit_buckets[store::StoreMetrics::kCommitBucketCount].load();
         out.AddHistogram({}, buckets, cumulative, probe->commit_nanos_total.load() / 1e9);
       }});
}

namespace {

// One per-shard family for each counter of a probe type (a `*Metrics` struct of
// net::ShardCounter members).
template <typename Metrics>
struct ShardFamily {
  const char* name;
  const char* help;
  metrics::Type type;
  net::ShardCounter Metrics::*counter;
};

template <typename Metrics, size_t N>
void AddShardFamilies(metrics::Registry& registry, std::vector<const Metrics*> probes,
                      const ShardFamily<Metrics> (&families)[N]) {
  const int shards = static_cast<int>(probes.size());
  for (const ShardFamily<Metrics>& family : families) {
    registry.AddCallbackFamily(metrics::PerShardFamily(
        family.name, family.help, family.type, shards,
        [probes, counter = family.counter](int shard) {
          return static_cast<double>((probes[shard]->*counter).Value());
        }));
  }
}

}  // namespace

void AddManagementMetrics(metrics::Registry& registry, lwm2m::ManagementHub& hub) {
  using Metrics = lwm2m::ManagementMetrics;
  std::vector<const Metrics*> probes;
  for (int i = 0; i < hub.shards(); ++i) probes.push_back(&hub.metrics(i));
  static constexpr ShardFamily<Metrics> kFamilies[] = {
      {"lwm2md_actions_accepted_total", "Actions (read, write, observe...) accepted.",
       metrics::Type::kCounter, &Metrics::calls},
      {"lwm2md_actions_succeeded_total", "Actions that ended in success.",
       metrics::Type::kCounter, &Metrics::calls_succeeded},
      {"lwm2md_actions_failed_total", "Actions that ended in an error (in part or whole).",
       metrics::Type::kCounter, &Metrics::calls_failed},
      {"lwm2md_actions_refused_total", "Actions refused by a limit (queue full, too many).",
       metrics::Type::kCounter, &Metrics::refused_limit},
      {"lwm2md_actions_expired_total", "Actions that waited for a device past their timeout.",
       metrics::Type::kCounter, &Metrics::expired},
      {"lwm2md_device_requests_sent_total", "CoAP requests sent to devices.",
       metrics::Type::kCounter, &Metrics::requests_sent},
      {"lwm2md_device_request_timeouts_total", "Requests to devices that got no answer.",
       metrics::Type::kCounter, &Metrics::request_timeouts},
      {"lwm2md_device_errors_total",
       "Device answers that were error codes or payloads that could not be read.",
       metrics::Type::kCounter, &Metrics::device_errors},
      {"lwm2md_notifications_total", "Observe notifications accepted.", metrics::Type::kCounter,
       &Metrics::notifications},
      {"lwm2md_notification_errors_total", "Notifications whose payload could not be read.",
       metrics::Type::kCounter, &Metrics::notification_errors},
      {"lwm2md_sends_total", "Send operations (/dp) accepted.", metrics::Type::kCounter,
       &Metrics::sends},
      {"lwm2md_actions_queued", "Actions waiting for a device (queue mode or behind another).",
       metrics::Type::kGauge, &Metrics::queued},
      {"lwm2md_device_requests_in_flight", "Requests sent to devices awaiting an answer.",
       metrics::Type::kGauge, &Metrics::in_flight},
      {"lwm2md_observations_active", "Observations held by the shard.", metrics::Type::kGauge,
       &Metrics::observations},
  };
  AddShardFamilies(registry, std::move(probes), kFamilies);
}

void AddRegistrationMetrics(metrics::Registry& registry, lwm2m::RegistrationHub& hub,
                            const lwm2m::EndpointDirectory& directory) {
  using Metrics = lwm2m::RegistrationMetrics;
  std::vector<const Metrics*> probes;
  for (int i = 0; i < hub.shards(); ++i) probes.push_back(&hub.metrics(i));
  static constexpr ShardFamily<Metrics> kFamilies[] = {
      {"lwm2md_registrations_registered_total", "Successful Register operations.",
       metrics::Type::kCounter, &Metrics::registers},
      {"lwm2md_registrations_updated_total", "Successful Update operations.",
       metrics::Type::kCounter, &Metrics::updates},
      {"lwm2md_registrations_deregistered_total", "Successful De-register operations.",
       metrics::Type::kCounter, &Metrics::deregisters},
      {"lwm2md_registrations_expired_total", "Registrations whose lifetime ended.",
       metrics::Type::kCounter, &Metrics::expirations},
      {"lwm2md_registrations_replaced_total",
       "Registrations replaced by a new Register under the same endpoint name.",
       metrics::Type::kCounter, &Metrics::replaced},
      {"lwm2md_registrations_moved_total",
       "Registrations moved to this shard because the client's packets now arrive here.",
       metrics::Type::kCounter, &Metrics::moved_in},
      {"lwm2md_registrations_missing_total", "Endpoints declared missing.",
       metrics::Type::kCounter, &Metrics::missing},
      {"lwm2md_registrations_back_total", "Missing endpoints heard from again.",
       metrics::Type::kCounter, &Metrics::back},
      {"lwm2md_registrations_restored_total", "Registrations restored from the store at start.",
       metrics::Type::kCounter, &Metrics::restored},
      {"lwm2md_registrations_active", "Registrations owned by the shard.", metrics::Type::kGauge,
       &Metrics::active},
  };
  AddShardFamilies(registry, probes, kFamilies);
  registry.AddCallbackFamily(
      {"lwm2md_registrations_rejected_total",
       "Register, Update and De-register requests refused, by reason.", metrics::Type::kCounter,
       [probes](metrics::SampleWriter& out) {
         for (size_t s = 0; s < probes.size(); ++s) {
           const std::string shard = absl::StrCat(s);
           for (int r = 0; r < Metrics::kRejectionCount; ++r) {
             const std::string_view reason =
                 Metrics::RejectionName(static_cast<Metrics::Rejection>(r));
             out.Add({{"shard", shard}, {"reason", reason}},
                     static_cast<double>(probes[s]->rejections[r].Value()));
           }
         }
       }});
  const lwm2m::EndpointDirectory* dir = &directory;
  registry.AddCallbackFamily(
      {"lwm2md_endpoints", "Endpoints in the directory by presence (connected, missing).",
       metrics::Type::kGauge, [dir](metrics::SampleWriter& out) {
         const std::array<uint64_t, 3> counts = dir->CountByPresence();
         for (lwm2m::Presence presence : {lwm2m::Presence::kConnected, lwm2m::Presence::kMissing}) {
           out.Add({{"presence", lwm2m::PresenceName(presence)}},
                   static_cast<double>(counts[static_cast<int>(presence)]));
         }
       }});
}

void AddBillingMetrics(metrics::Registry& registry, const lwm2m::BillingCounters& billing) {
  const lwm2m::BillingCounters* counters = &billing;
  registry.AddCallbackFamily(
      {"lwm2md_events_total",
       "Events published, by kind; billable=\"true\" for the kinds the service bills.",
       metrics::Type::kCounter, [counters](metrics::SampleWriter& out) {
         const lwm2m::KindCounts counts = counters->CountedSinceStart();
         for (const lwm2m::EventKindInfo& info : lwm2m::kEventKinds) {
           out.Add({{"kind", info.name}, {"billable", info.billable ? "true" : "false"}},
                   static_cast<double>(counts[static_cast<int>(info.kind)]));
         }
       }});
  if (!billing.endpoint_metrics()) return;
  // One series per endpoint and billable kind that has happened since start: the cost grows
  // with the fleet (billing.endpoint_metrics in config/lwm2md.toml).
  registry.AddCallbackFamily(
      {"lwm2md_endpoint_billable_events_total", "Billable events per endpoint, by kind.",
       metrics::Type::kCounter, [counters](metrics::SampleWriter& out) {
         counters->VisitEndpointCounts(
             [&out](std::string_view endpoint, const lwm2m::KindCounts& counts) {
               for (const lwm2m::EventKindInfo& info : lwm2m::kEventKinds) {
                 const uint64_t n = counts[static_cast<int>(info.kind)];
                 if (info.billable && n != 0) {
                   out.Add({{"endpoint", endpoint}, {"kind", info.name}}, static_cast<double>(n));
                 }
               }
             });
       }});
}

void AddDtlsMetrics(metrics::Registry& registry, std::vector<const dtls::DtlsMetrics*> probes) {
  using Metrics = dtls::DtlsMetrics;
  static constexpr ShardFamily<Metrics> kFamilies[] = {
      {"lwm2md_dtls_hello_verify_requests_total",
       "HelloVerifyRequest cookies sent to ClientHellos from unproven addresses.",
       metrics::Type::kCounter, &Metrics::hello_verify_requests},
      {"lwm2md_dtls_handshakes_started_total", "DTLS handshakes begun (a valid cookie).",
       metrics::Type::kCounter, &Metrics::handshakes_started},
      {"lwm2md_dtls_handshakes_completed_total", "DTLS handshakes completed.",
       metrics::Type::kCounter, &Metrics::handshakes_completed},
      {"lwm2md_dtls_records_received_total", "Application records decrypted.",
       metrics::Type::kCounter, &Metrics::records_in},
      {"lwm2md_dtls_records_sent_total", "Application records sent.", metrics::Type::kCounter,
       &Metrics::records_out},
      {"lwm2md_dtls_send_failures_total",
       "Messages not sent: no established session for the address.", metrics::Type::kCounter,
       &Metrics::send_failures},
      {"lwm2md_dtls_rebinds_total",
       "Sessions that moved to a new address on a connection-id record (NAT rebinding).",
       metrics::Type::kCounter, &Metrics::rebinds},
      {"lwm2md_dtls_closed_total", "Sessions the peer closed (close_notify).",
       metrics::Type::kCounter, &Metrics::closed},
      {"lwm2md_dtls_sessions", "DTLS sessions held in memory (handshaking or established).",
       metrics::Type::kGauge, &Metrics::sessions},
      {"lwm2md_dtls_sessions_restored_total",
       "Saved DTLS sessions brought back by a record or a message to the device.",
       metrics::Type::kCounter, &Metrics::sessions_restored},
      {"lwm2md_dtls_sessions_unsaveable_total",
       "Idle sessions dropped because the client had sent nothing since the handshake.",
       metrics::Type::kCounter, &Metrics::sessions_unsaveable},
      {"lwm2md_dtls_sessions_expired_total",
       "Saved DTLS sessions forgotten: older than dtls.saved_session_max_age_s, or unreadable.",
       metrics::Type::kCounter, &Metrics::sessions_expired},
      {"lwm2md_dtls_session_save_failures_total",
       "Idle sessions the store refused to save (kept in memory).", metrics::Type::kCounter,
       &Metrics::session_save_failures},
  };
  AddShardFamilies(registry, probes, kFamilies);
  auto by_reason = [probes](auto counters, int count, auto name) {
    return [probes, counters, count, name](metrics::SampleWriter& out) {
      for (size_t s = 0; s < probes.size(); ++s) {
        const std::string shard = absl::StrCat(s);
        for (int r = 0; r < count; ++r) {
          out.Add({{"shard", shard}, {"reason", name(r)}},
                  static_cast<double>((probes[s]->*counters)[static_cast<size_t>(r)].Value()));
        }
      }
    };
  };
  registry.AddCallbackFamily(
      {"lwm2md_dtls_handshake_failures_total",
       "DTLS handshakes that failed, by reason (unknown_identity, bad_credentials and "
       "bad_certificate are security events).",
       metrics::Type::kCounter,
       by_reason(&Metrics::handshake_failures, Metrics::kFailureCount, [](int r) {
         return Metrics::FailureName(static_cast<Metrics::Failure>(r));
       })});
  registry.AddCallbackFamily(
      {"lwm2md_dtls_sessions_saved_total",
       "DTLS sessions saved to the store and freed, by reason (idle, shutdown).",
       metrics::Type::kCounter, [probes](metrics::SampleWriter& out) {
         for (size_t s = 0; s < probes.size(); ++s) {
           const std::string shard = absl::StrCat(s);
           out.Add({{"shard", shard}, {"reason", "idle"}},
                   static_cast<double>(probes[s]->sessions_saved_idle.Value()));
           out.Add({{"shard", shard}, {"reason", "shutdown"}},
                   static_cast<double>(probes[s]->sessions_saved_shutdown.Value()));
         }
       }});
  registry.AddCallbackFamily(
      {"lwm2md_dtls_dropped_total", "Datagrams dropped before reaching CoAP, by reason.",
       metrics::Type::kCounter, by_reason(&Metrics::dropped, Metrics::kDropCount, [](int r) {
         return Metrics::DropName(static_cast<Metrics::Drop>(r));
       })});
}

}  // namespace lwm2md::server
