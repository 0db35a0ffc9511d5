#pragma once
// The registration interface, server side (Core TS 1.1 §6.2, TS 1.0.2 §5.3): Register
// (POST /rd), Update (POST /rd/{id}) and De-register (DELETE /rd/{id}), lifetimes, the missing
// timeout, persistence of registrations and their restore at start.
//
// One RegistrationService per shard owns the registrations of the clients whose packets land on
// that shard (CONVENTIONS.md §2). RegistrationHub holds what the shards share: the store, the
// endpoint directory, the event bus, the admission policy, and each shard's service pointer so
// that a registration can move to the shard its client's packets now reach (a new NAT port).
// Cross-shard work always goes through net::Shard::Post.
//
// Durability: a registration is committed to the store before the client hears 2.01/2.04, so
// an acknowledged registration survives kill -9 (with store durability "sync", power loss too).

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/strings.h"
#include "coap/resource_tree.h"
#include "lwm2m/endpoint_directory.h"
#include "lwm2m/event_bus.h"
#include "lwm2m/location_id_index.h"
#include "lwm2m/object_links_pool.h"
#include "lwm2m/registration.h"
#include "net/shard.h"
#include "net/shard_counter.h"
#include "store/store.h"

namespace lwm2md::lwm2m {

// Whether an endpoint may register over the transport it used, and with what policy.
struct Admission {
  bool allowed = false;
  std::string reason;  // why not, for the log and the diagnostic payload
  CredentialsKind credentials = CredentialsKind::kNone;
  // 0: never declared missing.
  absl::Duration missing_timeout = absl::ZeroDuration();
};
// Who the peer of a request proved to be over DTLS.
struct PeerSecurity {
  std::string psk_identity;
  std::string endpoint;  // the endpoint its credential belongs to
  // What it showed, for logs and refusals: `PSK identity "dev-1"`, `certificate <SHA-256>`.
  std::string credential{};
  // Its certificate was signed by an uploaded CA, which vouches for the endpoint name it
  // carries (CA mode); false for a PSK or a certificate known by its thumbprint.
  bool vouched_by_ca = false;
};
// endpoint, and what the request's DTLS session proved (null: plain CoAP).
using AdmissionPolicy =
    std::function<Admission(std::string_view endpoint, const PeerSecurity* security)>;
// The DTLS identity behind a request's listener and address; nullopt for plain CoAP.
using PeerSecurityLookup =
    std::function<std::optional<PeerSecurity>(int listener, const net::PeerAddress& peer)>;

// Per-shard probe (single writer: the shard; read by the metrics scrape).
struct RegistrationMetrics {
  enum class Rejection : uint8_t {
    kBadRequest,       // malformed parameters or links
    kVersion,          // unsupported LwM2M version (4.12)
    kForbidden,        // admission refused
    kNotFound,         // Update/De-register of an unknown location
    kStoreError,       // the store refused the write (5.00/5.03)
  };
  static constexpr int kRejectionCount = 5;
  static std::string_view RejectionName(Rejection rejection);

  net::ShardCounter registers;
  net::ShardCounter updates;
  net::ShardCounter deregisters;
  net::ShardCounter expirations;
  net::ShardCounter replaced;
  net::ShardCounter moved_in;  // registrations that moved to this shard
  net::ShardCounter missing;   // transitions to missing
  net::ShardCounter back;      // transitions back from missing
  std::array<net::ShardCounter, kRejectionCount> rejections;
  net::ShardCounter active;    // gauge: registrations owned by this shard
  net::ShardCounter restored;  // registrations restored at start
};

class RegistrationService;

// Why a registration left a shard.
enum class RemoveReason : uint8_t { kDeregistered, kExpired, kReplaced, kMoved };

// Told what happens to the registrations of one shard (the device management service of the
// same shard: queue mode wakes on these, and a device's queued requests follow it). Called on
// the shard thread.
class RegistrationListener {
 public:
  virtual ~RegistrationListener() = default;
  // A Register (registered = true) or Update was stored and answered: the device is awake.
  virtual void OnActive(const Registration& registration, bool registered) = 0;
  // The registration is gone from this shard; to_shard is its new shard when moved, else -1.
  virtual void OnRemoved(const std::string& endpoint, RemoveReason reason, int to_shard) = 0;
  // A registration moved here from another shard is installed (before the request that moved
  // it goes on). What its old shard sent along on OnRemoved(kMoved) has arrived by then: the
  // old shard posts it before it posts the registration, and a shard runs posts in order.
  virtual void OnMovedIn(const Registration& registration) = 0;
};

class RegistrationHub {
 public:
  struct Options {
    int shards = 1;
    store::Store* store = nullptr;  // required
    EndpointDirectory* directory = nullptr;  // required
    EventBus* events = nullptr;  // required
    // Default: every endpoint admitted without security, never missing.
    AdmissionPolicy admission;
    // The shard a device's packets reach when not its address decides it (a DTLS connection
    // id names its shard); nullopt, or unset: the address does (net::SteeringShard).
    std::function<std::optional<int>(const net::PeerAddress&)> shard_hint;
  };
  explicit RegistrationHub(Options options);
  RegistrationHub(const RegistrationHub&) = delete;
  RegistrationHub& operator=(const RegistrationHub&) = delete;

  // Reads every stored registration, drops (and deletes) those whose lifetime ended while the
  // server was down, and groups the rest by the shard that will own them. Call before the
  // shards start; each shard's service picks up its group when it is created.
  absl::Status LoadStored(absl::Time now);
  size_t stored_count() const { return stored_count_; }

  RegistrationMetrics& metrics(int shard) { return *metrics_[shard]; }
  int shards() const { return options_.shards; }
  const Options& options() const { return options_; }

  // The shard that owns the registration with this location id, for Update/De-register
  // arriving on a shard that does not own it.
  std::optional<int> ShardForId(std::string_view id) const;

  // The shard a client's registration is placed on at restore: the one its packets reach
  // (Options::shard_hint, else net::SteeringShard).
  int ShardForAddress(const net::PeerAddress& address) const;

 private:
  friend class RegistrationService;
  void Attach(int shard_id, net::Shard* shard, RegistrationService* service);
  void Detach(int shard_id);
  // Runs fn(service) on shard_id's thread; dropped when that shard's service is gone.
  void RunOn(int shard_id, absl::AnyInvocable<void(RegistrationService&)> fn);
  // The same, called on shard_id's own thread: runs at once if the service still exists.
  void RunOnHere(int shard_id, absl::AnyInvocable<void(RegistrationService&)> fn);
  void IndexId(std::string_view id, int shard_id);
  void UnindexId(std::string_view id);
  std::vector<Registration> TakeRestored(int shard_id);

  const Options options_;
  std::vector<std::unique_ptr<RegistrationMetrics>> metrics_;
  std::vector<std::atomic<net::Shard*>> shard_ptrs_;
  std::vector<std::atomic<RegistrationService*>> services_;

  mutable absl::Mutex ids_mutex_;
  // Id → shard only: the owner, which holds the registration, checks that it is still the
  // endpoint's current one (MoveHereThen), so the index needs no copy of the name.
  LocationIdIndex shard_by_id_ ABSL_GUARDED_BY(ids_mutex_);

  absl::Mutex restored_mutex_;
  std::vector<std::vector<Registration>> restored_ ABSL_GUARDED_BY(restored_mutex_);
  size_t stored_count_ = 0;
};

class RegistrationService {
 public:
  // On shard's thread: registers /rd on tree and adopts the registrations restored for this
  // shard. hub must outlive the service.
  RegistrationService(net::Shard& shard, coap::ResourceTree& tree, RegistrationHub& hub);
  ~RegistrationService();
  RegistrationService(const RegistrationService&) = delete;
  RegistrationService& operator=(const RegistrationService&) = delete;

  size_t size() const { return by_id_.size(); }
  const Registration* FindByEndpoint(std::string_view endpoint) const;
  // The registration of the client at address (for requests that carry no location, such as
  // Send to /dp).
  const Registration* FindByAddress(const net::PeerAddress& address) const;
  void SetListener(RegistrationListener* listener) { listener_ = listener; }
  // Where Register and Update learn the DTLS identity of their peer (the shard's DTLS
  // server). Unset: every request is plain CoAP.
  void SetPeerSecurityLookup(PeerSecurityLookup lookup) { peer_security_ = std::move(lookup); }
  // Adds writes to this loop turn's store batch (other services of the shard share it: one
  // commit per turn); done runs on this shard once they are durable or failed.
  void PersistWrites(const std::function<void(store::WriteBatch&)>& write,
                     absl::AnyInvocable<void(const absl::Status&)> done);

 private:
  struct Entry {
    Registration registration;
    absl::Duration missing_timeout;
    bool missing = false;
    net::TimerWheel::Id expiry_timer = net::TimerWheel::kNoTimer;
    net::TimerWheel::Id missing_timer = net::TimerWheel::kNoTimer;
  };

  void OnRequest(coap::Exchange& exchange);
  void OnRegister(coap::Exchange& exchange);
  void OnUpdate(coap::Exchange& exchange, std::string_view id);
  void OnDeregister(coap::Exchange& exchange, std::string_view id);

  // Update and De-register of a location this shard does not hold: fetch the registration
  // from its owner (it moves here: the client's packets now land on this shard), then go on.
  static bool MayChange(const Registration& registration,
                        const std::optional<PeerSecurity>& security);
  void MoveHereThen(std::string_view id, absl::AnyInvocable<void(Entry*)> then);
  std::optional<Registration> GiveAway(std::string_view id);

  // Adds writes to this loop turn's store batch; done runs on this shard once the batch is
  // durable (or failed).
  void Persist(const std::function<void(store::WriteBatch&)>& write,
               absl::AnyInvocable<void(RegistrationService&, const absl::Status&)> done);
  void FlushPersist();
  void CommitRegister(Registration registration, Admission admission,
                      coap::DeferredResponse response);
  void CommitUpdate(Registration updated, coap::DeferredResponse response);

  Entry* Install(Registration registration, absl::Duration missing_timeout);
  void Remove(Entry* entry, RemoveReason reason, int to_shard = -1);
  void ScheduleTimers(Entry* entry);
  void OnExpired(Entry* entry);
  void OnMissing(Entry* entry);
  void Publish(std::string_view type, const Registration& registration, std::string payload);
  void PublishDeregister(const Registration& registration, std::string_view reason);
  std::string NewId();
  absl::Time WallNow() const;
  net::TimePoint Deadline(absl::Time at) const;

  net::Shard& shard_;
  RegistrationHub& hub_;
  RegistrationMetrics& metrics_;
  const int shard_id_;
  // Keyed by views of the entry's own id and endpoint name: a registration's strings are
  // stored once, in the entry. Neither key changes while the entry is in the set.
  template <std::string Registration::*kKey>
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return absl::HashOf(base::Absl(key)); }
    size_t operator()(const Entry* entry) const { return (*this)(entry->registration.*kKey); }
    size_t operator()(const std::unique_ptr<Entry>& entry) const { return (*this)(entry.get()); }
  };
  template <std::string Registration::*kKey>
  struct KeyEq {
    using is_transparent = void;
    static std::string_view View(std::string_view key) { return key; }
    static std::string_view View(const Entry* entry) { return entry->registration.*kKey; }
    static std::string_view View(const std::unique_ptr<Entry>& entry) {
      return entry->registration.*kKey;
    }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return View(a) == View(b);
    }
  };
  using IdHash = KeyHash<&Registration::id>;
  using IdEq = KeyEq<&Registration::id>;
  using EndpointHash = KeyHash<&Registration::endpoint>;
  using EndpointEq = KeyEq<&Registration::endpoint>;
  absl::flat_hash_set<std::unique_ptr<Entry>, IdHash, IdEq> by_id_;  // owns the entries
  absl::flat_hash_set<Entry*, EndpointHash, EndpointEq> by_endpoint_;
  absl::flat_hash_map<net::PeerAddress, Entry*> by_address_;
  ObjectLinksPool object_links_;
  PeerSecurityLookup peer_security_;
  RegistrationListener* listener_ = nullptr;
  absl::BitGen random_;
  store::WriteBatch pending_writes_;
  std::vector<absl::AnyInvocable<void(RegistrationService&, const absl::Status&)>> pending_done_;
};

}  // namespace lwm2md::lwm2m
