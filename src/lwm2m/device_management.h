#pragma once
// Device management and information reporting, server side (Core TS 1.1 §6.3, §6.4; TS 1.0.2
// §5.4, §5.5): running the actions of action.h against registered devices, observations and
// their notifications, the Send operation (/dp), the lastKnown values, and queue mode
// (Core TS 1.1 §6.5: requests for a sleeping device wait until it next talks to us).
//
// ManagementHub is shared by the shards: any thread submits calls through it; it plans them on
// the caller's thread (action.h) and posts them to the shard that owns the device's
// registration. It also keeps the index of observations by token, persisted so that they
// outlive restarts.
//
// ManagementService: one per shard, on that shard's thread only. It owns the calls of the
// devices registered on its shard (one request in flight per device: RFC 7252 §4.7 NSTART = 1,
// the rest wait in a bounded per-device queue), sends them through the shard's MessageLayer,
// turns answers into events and lastKnown values, and serves /dp.
//
// An observation lives on the shard its token names (MessageLayer::TokenShard): notifications
// reach it wherever they land, and observeCancel goes there.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coap/message_layer.h"
#include "coap/resource_tree.h"
#include "lwm2m/action.h"
#include "lwm2m/data_tree.h"
#include "lwm2m/endpoint_directory.h"
#include "lwm2m/event_bus.h"
#include "lwm2m/object_registry.h"
#include "lwm2m/registration_service.h"
#include "net/shard.h"
#include "net/shard_counter.h"
#include "store/store.h"

namespace lwm2md::base {
class JsonWriter;
}  // namespace lwm2md::base

namespace lwm2md::lwm2m {

struct ManagementLimits {
  // Requests sent to one device and not yet answered (RFC 7252 §4.7 NSTART: 1).
  int max_in_flight_per_endpoint = 1;
  // Calls waiting for one device (asleep in queue mode, or behind the one in flight).
  size_t max_queued_per_endpoint = 64;
  // Calls accepted and not finished, per shard.
  size_t max_pending_per_shard = 100000;
  // Largest request payload (a write), in bytes: one CoAP message, no Block1 from our side.
  size_t max_payload_bytes = 3072;
  // After a queue-mode device's last message, how long it listens (Core TS 1.1 §6.5: the
  // client stays awake at least MAX_TRANSMIT_WAIT, 93 s with the default parameters; the
  // reference's NAT window is 60 to 180 s).
  absl::Duration queue_awake_window = absl::Seconds(93);
};

// What a finished call produced.
struct ActionOutcome {
  enum class Failure : uint8_t {
    kNone,
    kInvalid,        // the call cannot be planned (bad path, value, encoding): 400/422
    kNotRegistered,  // 404
    kLimit,          // a limit refused it: 429
    kUnavailable,    // store failure, stopping, queue full: 503
    kDeviceError,    // the device answered an error code, or a payload we cannot read: 502
    kNoResponse,     // 504
    kInterrupted,    // the device deregistered, or the server restarted, before it ran
  };
  Failure failure = Failure::kNone;
  std::string error;
  std::vector<std::pair<std::string, std::string>> partial_errors;  // path → error
  // The sync result (success) or the partial data of a failed read: a JSON object.
  std::string body_json;
};

// The answer to a submission, before the call runs.
struct Submission {
  absl::Status status;        // not OK: refused, nothing will run
  std::string request_id;
  bool queued = false;        // waits for a sleeping device

  static Submission Refused(absl::Status status) {
    Submission s;
    s.status = std::move(status);
    return s;
  }
  static Submission Accepted(std::string request_id, bool queued) {
    Submission s;
    s.request_id = std::move(request_id);
    s.queued = queued;
    return s;
  }
};

// Per-shard probe (single writer: the shard).
struct ManagementMetrics {
  net::ShardCounter calls;               // calls accepted
  net::ShardCounter calls_succeeded;
  net::ShardCounter calls_failed;
  net::ShardCounter requests_sent;       // CoAP requests sent to devices
  net::ShardCounter request_timeouts;
  net::ShardCounter device_errors;       // error codes and unreadable payloads
  net::ShardCounter notifications;       // notifications accepted
  net::ShardCounter notification_errors; // notifications we could not decode
  net::ShardCounter sends;               // /dp Send requests accepted
  net::ShardCounter refused_limit;       // calls refused by a limit
  net::ShardCounter expired;             // calls that waited past their timeout
  net::ShardCounter queued;              // gauge: calls waiting
  net::ShardCounter in_flight;           // gauge: requests awaiting an answer
  net::ShardCounter observations;        // gauge: observations held by this shard's layer
};

class ManagementService;

class ManagementHub {
 public:
  struct Options {
    int shards = 1;
    store::Store* store = nullptr;                  // required
    ObjectRegistry* objects = nullptr;              // required
    EndpointDirectory* directory = nullptr;         // required
    EventBus* events = nullptr;                     // required
    ManagementLimits limits;
    // How long the events reporting calls interrupted by the last restart are kept for
    // event-stream subscribers that connect after they were published.
    absl::Duration interrupted_report_retention = absl::Minutes(10);
  };
  explicit ManagementHub(Options options);
  ManagementHub(const ManagementHub&) = delete;
  ManagementHub& operator=(const ManagementHub&) = delete;

  // Before the shards start: loads the persisted observations and the requests left
  // unfinished by the last run.
  absl::Status LoadStored();
  // Once the shards run: requests that were waiting for a sleeping device are submitted
  // again; requests that had been sent end in lwm2m.error (and lwm2m.asyncResult with their
  // context), never in silence.
  void ResumeStored();

  using AcceptedCallback = absl::AnyInvocable<void(Submission)>;
  using DoneCallback = absl::AnyInvocable<void(ActionOutcome)>;
  // Any thread. accepted runs exactly once (refused, or accepted with an id); for an accepted
  // call done (when set) then runs exactly once with the outcome. Both may run on a shard
  // thread or on the caller's. observeCancel and lastKnown are not submitted here
  // (CancelObservation, ReadLastKnown).
  void Submit(ActionRequest request, AcceptedCallback accepted, DoneCallback done);
  // observeCancel: ends the observation on the device (GET with Observe=1 and its token,
  // RFC 7641 §3.6) and forgets it. NotFound for a token this endpoint does not hold.
  void CancelObservation(ActionRequest request, AcceptedCallback accepted);

  ManagementMetrics& metrics(int shard) { return *metrics_[shard]; }
  int shards() const { return options_.shards; }
  const Options& options() const { return options_; }
  size_t observation_count() const;

  // An observation as persisted (store::Table::kObservations, key: the token in hex).
  struct Observation {
    uint64_t token = 0;
    std::string endpoint;
    std::vector<Path> paths;
    bool composite = false;
    uint16_t format = 0;        // the Accept of the request
    std::string context_json;   // the observe call's context, carried by its data events
  };
  std::optional<Observation> FindObservation(uint64_t token) const;

 private:
  friend class ManagementService;
  void Attach(int shard_id, net::Shard* shard, ManagementService* service);
  void Detach(int shard_id);
  // Runs fn on shard_id's thread; false (fn dropped) when that shard's service is gone.
  bool RunOn(int shard_id, absl::AnyInvocable<void(ManagementService&)> fn);
  std::string NewRequestId();

  void AddObservation(Observation observation, store::WriteBatch& batch);
  // Removes and returns the tokens of every observation of endpoint.
  std::vector<uint64_t> TakeObservations(std::string_view endpoint, store::WriteBatch& batch);
  bool RemoveObservation(uint64_t token, store::WriteBatch* batch);

  // Publishes the events of a call that failed before reaching a device.
  // Retained by the bus until retain_until for subscribers yet to come (EventBus::
  // PublishRetained).
  void PublishFailure(const ActionRequest& request, std::string_view source,
                      std::string_view path_text, std::string_view error,
                      absl::Time retain_until = absl::InfinitePast());

  const Options options_;
  std::vector<std::unique_ptr<ManagementMetrics>> metrics_;
  std::vector<std::atomic<net::Shard*>> shard_ptrs_;
  std::vector<std::atomic<ManagementService*>> services_;
  std::atomic<uint64_t> next_request_ = 0;
  const uint32_t request_prefix_;

  mutable absl::Mutex observations_mutex_;
  absl::flat_hash_map<uint64_t, Observation> observations_ ABSL_GUARDED_BY(observations_mutex_);
  absl::flat_hash_map<std::string, std::vector<uint64_t>> tokens_by_endpoint_
      ABSL_GUARDED_BY(observations_mutex_);

  // Requests read from the store at start (LoadStored), handled by ResumeStored.
  struct StoredRequest {
    std::string id;
    std::string endpoint;
    std::string action;
    std::string body;
    bool queued = false;
  };
  std::vector<StoredRequest> stored_requests_;
};

class ManagementService final : public RegistrationListener {
 public:
  // On shard's thread: serves /dp on tree, sends through layer, and follows registrations
  // (whose per-turn store batch it shares). Everything must outlive the service.
  ManagementService(net::Shard& shard, coap::ResourceTree& tree, coap::MessageLayer& layer,
                    RegistrationService& registrations, ManagementHub& hub);
  ~ManagementService() override;
  ManagementService(const ManagementService&) = delete;
  ManagementService& operator=(const ManagementService&) = delete;

  // RegistrationListener
  void OnActive(const Registration& registration, bool registered) override;
  void OnRemoved(const std::string& endpoint, RemoveReason reason, int to_shard) override;
  void OnMovedIn(const Registration& registration) override;

 private:
  friend class ManagementHub;
  struct Call;
  struct Device {
    std::deque<std::unique_ptr<Call>> waiting;
    int active = 0;
    net::TimePoint awake_until{};
  };

  void Start(std::unique_ptr<Call> call, int hops);
  void Adopt(std::deque<std::unique_ptr<Call>> calls);
  // The waiting calls of a device whose registration is moving to this shard.
  void ReceiveMoved(const std::string& endpoint, std::deque<std::unique_ptr<Call>> calls);
  void Pump(const std::string& endpoint);
  void SendStep(Call* call);
  void OnStepResult(const std::string& call_id, const coap::ClientResult& result,
                    uint64_t token);
  // Ends a call: its outcome, then (Deliver) its events and its answer.
  void Finish(std::unique_ptr<Call> call);
  void Deliver(std::unique_ptr<Call> call, ActionOutcome outcome);
  // An observe call's "tokens" member: path → token in hex.
  static void WriteTokens(base::JsonWriter& json, const Call& call);
  void Fail(std::unique_ptr<Call> call, ActionOutcome::Failure failure, std::string error);
  void ExpireWaiting();
  void ScheduleExpirySweep();

  void CancelObservation(ActionRequest request, ManagementHub::AcceptedCallback accepted);
  // A notification or a first observe answer for observation.
  void OnNotification(const ManagementHub::Observation& observation,
                      const coap::MessageView& message);
  coap::ResponseCallback NotificationCallback(uint64_t token);
  void OnObservationResult(uint64_t token, const coap::ClientResult& result);
  bool OnUnmatchedResponse(uint64_t token, const coap::MessageView& message, int listener,
                           const net::PeerAddress& peer);
  void OnSend(coap::Exchange& exchange);
  void MarkAwake(const std::string& endpoint);

  // Publishes type with payload, formatting it only when someone listens (counters still see
  // every event).
  void Publish(std::string_view type, const std::string& endpoint,
               absl::FunctionRef<std::string()> payload);
  void StoreRequestRecord(const Call& call, bool queued);
  void UpdateGauges();

  net::Shard& shard_;
  coap::MessageLayer& layer_;
  coap::ResourceTree& tree_;
  RegistrationService& registrations_;
  ManagementHub& hub_;
  ManagementMetrics& metrics_;
  const int shard_id_;
  absl::flat_hash_map<std::string, Device> devices_;
  absl::flat_hash_map<std::string, std::unique_ptr<Call>> active_;
  // Calls that arrived ahead of their device's registration (see ReceiveMoved).
  absl::flat_hash_map<std::string, std::deque<std::unique_ptr<Call>>> arriving_;
  size_t pending_ = 0;  // calls waiting or active on this shard
  size_t waiting_ = 0;
  net::TimerWheel::Id expiry_timer_ = net::TimerWheel::kNoTimer;
};

}  // namespace lwm2md::lwm2m
