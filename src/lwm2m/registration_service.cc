#include "lwm2m/registration_service.h"

#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/check.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "base/strings.h"
#include "coap/message.h"
#include "coap/message_layer.h"
#include "net/steering.h"

namespace lwm2md::lwm2m {
namespace {

constexpr int kMaxQueries = 16;

// Core TS 1.1 §6.2.1.1: the server answers a version it does not support with 4.12
// Precondition Failed, upon which the client retries with an older version it supports.
// "1.0" and "1.1" are ours; any later version gets 4.12; anything that is not "major.minor"
// is a malformed parameter (4.00).
enum class VersionCheck { kSupported, kTooNew, kMalformed };
VersionCheck CheckVersion(std::string_view version) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(base::Absl(version), '.');
  unsigned major = 0;
  unsigned minor = 0;
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty() ||
      !absl::SimpleAtoi(parts[0], &major) || !absl::SimpleAtoi(parts[1], &minor)) {
    return VersionCheck::kMalformed;
  }
  if (major == 1 && minor <= 1) return VersionCheck::kSupported;
  if (major == 0) return VersionCheck::kMalformed;
  return VersionCheck::kTooNew;
}

// The parts of a Register or Update that the parsers read: views into the request, valid
// while its handler runs.
struct RequestParts {
  std::array<std::string_view, kMaxQueries> queries;
  size_t query_count = 0;
  bool too_many_queries = false;
  // Core TS 1.1 §6.2.1: the Objects payload is application/link-format; a request that
  // declares another format is refused (4.15), one that declares none is read as link format.
  bool link_format = true;
  std::string_view payload;

  std::span<const std::string_view> query_span() const {
    return std::span<const std::string_view>(queries.data(), query_count);
  }
};

RequestParts SplitRequest(const coap::Exchange& exchange) {
  RequestParts parts;
  const std::optional<uint16_t> format = exchange.request().content_format();
  parts.link_format = !format || *format == coap::content_format::kLinkFormat;
  exchange.request().ForEachUriQuery([&](std::string_view query) {
    if (parts.query_count < kMaxQueries) {
      parts.queries[parts.query_count++] = query;
    } else {
      parts.too_many_queries = true;
    }
  });
  const std::span<const uint8_t> payload = exchange.payload();
  parts.payload = std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size());
  return parts;
}

std::string Rfc3339(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

void RespondNow(coap::Exchange& exchange, uint8_t code, std::string_view diagnostic) {
  // RFC 7252 §5.5.2: a diagnostic payload is UTF-8 text for humans, without Content-Format.
  exchange.Respond(coap::Response(code).Payload(diagnostic));
}

void RespondLater(coap::DeferredResponse& response, uint8_t code, std::string_view diagnostic) {
  response.Respond(coap::Response(code).Payload(diagnostic));
}

// What a failed store write tells the client: 5.03 when it may retry soon (the write queue
// is full), 5.00 when the store is broken (map or disk full, I/O error) until an operator acts.
uint8_t StoreErrorCode(const absl::Status& status, const store::Store& store) {
  if (!store.health().ok()) return coap::code::kInternalServerError;
  return status.code() == absl::StatusCode::kResourceExhausted ? coap::code::kServiceUnavailable
                                                                : coap::code::kInternalServerError;
}

}  // namespace

std::string_view RegistrationMetrics::RejectionName(Rejection rejection) {
  switch (rejection) {
    case Rejection::kBadRequest: return "bad_request";
    case Rejection::kVersion: return "unsupported_version";
    case Rejection::kForbidden: return "forbidden";
    case Rejection::kNotFound: return "not_found";
    case Rejection::kStoreError: return "store_error";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// RegistrationHub

RegistrationHub::RegistrationHub(Options options)
    : options_(std::move(options)),
      shard_ptrs_(static_cast<size_t>(options_.shards)),
      services_(static_cast<size_t>(options_.shards)) {
  LWM2MD_CHECK(options_.shards > 0);
  LWM2MD_CHECK(options_.store != nullptr && options_.directory != nullptr &&
               options_.events != nullptr);
  for (int i = 0; i < options_.shards; ++i) {
    metrics_.push_back(std::make_unique<RegistrationMetrics>());
  }
  restored_.resize(static_cast<size_t>(options_.shards));
}

absl::Status RegistrationHub::LoadStored(absl::Time now) {
  std::vector<std::vector<Registration>> by_shard(static_cast<size_t>(options_.shards));
  store::WriteBatch expired;
  size_t corrupt = 0;
  absl::Status scan = options_.store->Scan(
      store::Table::kRegistrations, "", "", [&](std::string_view key, std::string_view value) {
        absl::StatusOr<Registration> registration = Registration::Parse(value);
        if (!registration.ok() || registration->endpoint != key) {
          // Kept in the store for inspection; the client registers again.
          LWM2MD_LOG(kError, "registration of \"%s\" not restored: %s", key,
                     registration.ok() ? "key and endpoint differ"
                                       : std::string(registration.status().message()));
          ++corrupt;
          return true;
        }
        if (registration->lifetime_seconds != 0 && registration->expires_at() <= now) {
          expired.Delete(store::Table::kRegistrations, key);
          return true;
        }
        const int shard = ShardForAddress(registration->address);
        by_shard[static_cast<size_t>(shard)].push_back(*std::move(registration));
        return true;
      });
  if (!scan.ok()) return scan;
  if (!expired.empty()) {
    LWM2MD_LOG(kInfo, "registrations: %d expired while the server was down",
               static_cast<int>(expired.operation_count()));
    if (absl::Status status = options_.store->Write(std::move(expired)); !status.ok()) {
      return status;
    }
  }
  stored_count_ = 0;
  for (const auto& group : by_shard) stored_count_ += group.size();
  absl::MutexLock lock(&restored_mutex_);
  restored_ = std::move(by_shard);
  return absl::OkStatus();
}

std::vector<Registration> RegistrationHub::TakeRestored(int shard_id) {
  absl::MutexLock lock(&restored_mutex_);
  return std::exchange(restored_[static_cast<size_t>(shard_id)], {});
}

int RegistrationHub::ShardForAddress(const net::PeerAddress& address) const {
  if (options_.shard_hint) {
    if (std::optional<int> hint = options_.shard_hint(address); hint && *hint >= 0) {
      return *hint % options_.shards;
    }
  }
  return net::SteeringShard(address, options_.shards);
}

std::optional<int> RegistrationHub::ShardForId(std::string_view id) const {
  absl::MutexLock lock(&ids_mutex_);
  return shard_by_id_.Find(id);
}

void RegistrationHub::IndexId(std::string_view id, int shard_id) {
  absl::MutexLock lock(&ids_mutex_);
  shard_by_id_.Put(id, shard_id);
}

void RegistrationHub::UnindexId(std::string_view id) {
  absl::MutexLock lock(&ids_mutex_);
  shard_by_id_.Erase(id);
}

void RegistrationHub::Attach(int shard_id, net::Shard* shard, RegistrationService* service) {
  shard_ptrs_[static_cast<size_t>(shard_id)].store(shard);
  services_[static_cast<size_t>(shard_id)].store(service);
}

void RegistrationHub::Detach(int shard_id) {
  services_[static_cast<size_t>(shard_id)].store(nullptr);
}

void RegistrationHub::RunOnHere(int shard_id,
                                absl::AnyInvocable<void(RegistrationService&)> fn) {
  RegistrationService* service = services_[static_cast<size_t>(shard_id)].load();
  if (service != nullptr) fn(*service);
}

void RegistrationHub::RunOn(int shard_id, absl::AnyInvocable<void(RegistrationService&)> fn) {
  if (shard_id < 0 || shard_id >= options_.shards) return;
  net::Shard* shard = shard_ptrs_[static_cast<size_t>(shard_id)].load();
  if (shard == nullptr) return;
  shard->Post([this, shard_id, fn = std::move(fn)]() mutable {
    // Resolved on the target thread: a service destroyed at shutdown is simply absent.
    RegistrationService* service = services_[static_cast<size_t>(shard_id)].load();
    if (service != nullptr) fn(*service);
  });
}

// ---------------------------------------------------------------------------------------------
// RegistrationService

RegistrationService::RegistrationService(net::Shard& shard, coap::ResourceTree& tree,
                                         RegistrationHub& hub)
    : shard_(shard),
      hub_(hub),
      metrics_(hub.metrics(shard.shard_id())),
      shard_id_(shard.shard_id()) {
  coap::ResourceOptions options;
  options.methods = coap::MethodBit(coap::code::kPost) | coap::MethodBit(coap::code::kDelete);
  options.subtree = true;
  options.link.rt = "core.rd";
  LWM2MD_CHECK(
      tree.Register("/rd", std::move(options), [this](coap::Exchange& e) { OnRequest(e); }).ok());
  hub_.Attach(shard_id_, &shard_, this);
  for (Registration& registration : hub_.TakeRestored(shard_id_)) {
    Admission admission;
    if (hub_.options().admission) {
      // Only its missing timeout is wanted here: the credentials were proven at Register.
      const PeerSecurity proven{.psk_identity = {}, .endpoint = registration.endpoint};
      admission = hub_.options().admission(
          registration.endpoint,
          registration.credentials != CredentialsKind::kNone ? &proven : nullptr);
    }
    Install(std::move(registration), admission.missing_timeout);
    metrics_.restored.Add();
  }
}

RegistrationService::~RegistrationService() {
  hub_.Detach(shard_id_);
  for (const std::unique_ptr<Entry>& entry : by_id_) {
    shard_.timers().Cancel(entry->expiry_timer);
    shard_.timers().Cancel(entry->missing_timer);
  }
}

const Registration* RegistrationService::FindByEndpoint(std::string_view endpoint) const {
  auto it = by_endpoint_.find(endpoint);
  return it == by_endpoint_.end() ? nullptr : &(*it)->registration;
}

absl::Time RegistrationService::WallNow() const { return absl::Now(); }

net::TimePoint RegistrationService::Deadline(absl::Time at) const {
  absl::Duration in = at - WallNow();
  if (in < absl::ZeroDuration()) in = absl::ZeroDuration();
  return shard_.Now() + absl::ToChronoNanoseconds(in);
}

std::string RegistrationService::NewId() {
  // Short, because constrained clients store it and send it in every Update; 36^8 values,
  // checked for collisions against every live registration.
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (;;) {
    std::string id(8, ' ');
    for (char& c : id) c = kAlphabet[absl::Uniform<size_t>(random_, 0, sizeof(kAlphabet) - 1)];
    if (!by_id_.contains(std::string_view(id)) && !hub_.ShardForId(id)) return id;
  }
}

void RegistrationService::OnRequest(coap::Exchange& exchange) {
  std::string_view segments[3];
  int count = 0;
  exchange.request().ForEachUriPath([&](std::string_view segment) {
    if (count < 3) segments[count] = segment;
    ++count;
  });
  if (count == 1) {
    if (exchange.method() == coap::code::kPost) return OnRegister(exchange);
    return RespondNow(exchange, coap::code::kMethodNotAllowed, "register with POST /rd");
  }
  if (count == 2) {
    if (exchange.method() == coap::code::kPost) return OnUpdate(exchange, segments[1]);
    return OnDeregister(exchange, segments[1]);
  }
  metrics_.rejections[static_cast<int>(RegistrationMetrics::Rejection::kNotFound)].Add();
  RespondNow(exchange, coap::code::kNotFound, "no such registration");
}

void RegistrationService::OnRegister(coap::Exchange& exchange) {
  using Rejection = RegistrationMetrics::Rejection;
  auto reject = [&](Rejection why, uint8_t code, std::string_view message) {
    metrics_.rejections[static_cast<int>(why)].Add();
    LWM2MD_LOG(kDebug, "register from %s refused: %s", exchange.peer().ToString(), message);
    RespondNow(exchange, code, message);
  };
  const RequestParts parts = SplitRequest(exchange);
  if (!parts.link_format) {
    return reject(Rejection::kBadRequest, coap::code::kUnsupportedContentFormat,
                  "the Register payload is application/link-format (40)");
  }
  if (parts.too_many_queries) {
    return reject(Rejection::kBadRequest, coap::code::kBadRequest, "too many query parameters");
  }
  absl::StatusOr<RegistrationRequest> request = ParseRegister(parts.query_span(), parts.payload);
  if (!request.ok()) {
    return reject(Rejection::kBadRequest, coap::code::kBadRequest, base::Std(request.status().message()));
  }
  switch (CheckVersion(*request->lwm2m_version)) {
    case VersionCheck::kSupported: break;
    case VersionCheck::kTooNew:
      return reject(Rejection::kVersion, coap::code::kPreconditionFailed,
                    "LwM2M versions 1.0 and 1.1 are supported");
    case VersionCheck::kMalformed:
      return reject(Rejection::kBadRequest, coap::code::kBadRequest,
                    "lwm2m must be a version such as 1.1");
  }
  Admission admission;
  admission.allowed = true;
  const std::optional<PeerSecurity> security =
      peer_security_ ? peer_security_(exchange.listener(), exchange.peer()) : std::nullopt;
  if (hub_.options().admission) {
    admission = hub_.options().admission(request->endpoint, security ? &*security : nullptr);
  }
  if (!admission.allowed) {
    return reject(Rejection::kForbidden, coap::code::kForbidden, admission.reason);
  }

  const absl::Time now = WallNow();
  Registration registration;
  registration.endpoint = std::move(request->endpoint);
  registration.id = NewId();
  registration.lifetime_seconds = *request->lifetime_seconds;
  registration.version = VersionText(*request->lwm2m_version);
  registration.binding = *request->binding;
  registration.queue_mode = *request->queue_mode;
  if (request->sms_number) registration.sms_number = *request->sms_number;
  registration.objects = object_links_.Intern(std::move(*request->objects));
  registration.address = exchange.peer();
  registration.listener = static_cast<uint16_t>(exchange.listener());
  registration.credentials = admission.credentials;
  registration.registered_at = now;
  registration.updated_at = now;
  registration.last_seen = now;
  CommitRegister(std::move(registration), std::move(admission), exchange.Defer());
}

void RegistrationService::Persist(
    const std::function<void(store::WriteBatch&)>& write,
    absl::AnyInvocable<void(RegistrationService&, const absl::Status&)> done) {
  write(pending_writes_);
  pending_done_.push_back(std::move(done));
  if (pending_done_.size() > 1) return;
  // Flushed once this loop turn's datagrams are handled: one store submission and one
  // completion post per turn instead of one per request (the writer and the shard share
  // cores, and every wake-up between them is a context switch).
  shard_.Post([hub = &hub_, shard_id = shard_id_] {
    hub->RunOnHere(shard_id, [](RegistrationService& service) { service.FlushPersist(); });
  });
}

void RegistrationService::PersistWrites(const std::function<void(store::WriteBatch&)>& write,
                                        absl::AnyInvocable<void(const absl::Status&)> done) {
  Persist(write, [done = std::move(done)](RegistrationService&, const absl::Status& status) mutable {
    if (done) done(status);
  });
}

const Registration* RegistrationService::FindByAddress(const net::PeerAddress& address) const {
  auto it = by_address_.find(address);
  return it == by_address_.end() ? nullptr : &it->second->registration;
}

void RegistrationService::FlushPersist() {
  if (pending_done_.empty()) return;
  RegistrationHub* hub = &hub_;
  hub_.options().store->Submit(
      std::exchange(pending_writes_, {}),
      [hub, shard_id = shard_id_,
       done = std::exchange(pending_done_, {})](absl::Status status) mutable {
        hub->RunOn(shard_id, [status = std::move(status),
                              done = std::move(done)](RegistrationService& service) mutable {
          for (auto& callback : done) callback(service, status);
        });
      });
}

void RegistrationService::CommitRegister(Registration registration, Admission admission,
                                         coap::DeferredResponse response) {
  // Both taken before the completion below moves the registration away.
  const std::string key = registration.endpoint;
  const std::string serialized = registration.Serialize();
  Persist(
      [&](store::WriteBatch& batch) {
        batch.Put(store::Table::kRegistrations, key, serialized);
      },
      [registration = std::move(registration), admission = std::move(admission),
       response](RegistrationService& service, const absl::Status& status) mutable {
        if (!status.ok()) {
          service.metrics_
              .rejections[static_cast<int>(RegistrationMetrics::Rejection::kStoreError)]
              .Add();
          LWM2MD_LOG(kError, "register of \"%s\" not stored: %s", registration.endpoint,
                     std::string(status.message()));
          return RespondLater(response, StoreErrorCode(status, *service.hub_.options().store), base::Std(status.message()));
        }
        // A registration under the same name, here or on another shard, is replaced
        // (Core TS 1.1 §6.2.1: the new registration supersedes the old one).
        auto existing = service.by_endpoint_.find(std::string_view(registration.endpoint));
        if (existing != service.by_endpoint_.end()) {
          service.Remove(*existing, RemoveReason::kReplaced);
        } else if (std::optional<DirectoryEntry> old =
                       service.hub_.options().directory->Lookup(registration.endpoint);
                   old && old->shard != service.shard_id_) {
          const std::string old_id = old->location.substr(4);  // strip "/rd/"
          service.hub_.RunOn(old->shard, [old_id](RegistrationService& owner) {
            auto it = owner.by_id_.find(std::string_view(old_id));
            if (it != owner.by_id_.end()) owner.Remove(it->get(), RemoveReason::kReplaced);
          });
        }
        Entry* entry = service.Install(std::move(registration), admission.missing_timeout);
        service.metrics_.registers.Add();
        if (service.listener_ != nullptr) service.listener_->OnActive(entry->registration, true);
        const std::string& id = entry->registration.id;
        response.Respond(coap::Response(coap::code::kCreated)
                             .Option(coap::option::kLocationPath, std::string_view("rd"))
                             .Option(coap::option::kLocationPath, id));
        // Always published (the billing tap counts every event); the payload is formatted
        // only for a subscriber.
        service.Publish(event_type::kRegister, entry->registration,
                        service.hub_.options().events->HasSubscribers()
                            ? entry->registration.EventPayload()
                            : std::string());
      });
}

void RegistrationService::OnUpdate(coap::Exchange& exchange, std::string_view id) {
  using Rejection = RegistrationMetrics::Rejection;
  const RequestParts parts = SplitRequest(exchange);
  if (!parts.link_format) {
    metrics_.rejections[static_cast<int>(Rejection::kBadRequest)].Add();
    return RespondNow(exchange, coap::code::kUnsupportedContentFormat,
                      "the Update payload is application/link-format (40)");
  }
  absl::StatusOr<RegistrationRequest> request =
      parts.too_many_queries ? absl::InvalidArgumentError("too many query parameters")
                             : ParseUpdate(parts.query_span(), parts.payload);
  if (!request.ok()) {
    metrics_.rejections[static_cast<int>(Rejection::kBadRequest)].Add();
    return RespondNow(exchange, coap::code::kBadRequest, base::Std(request.status().message()));
  }
  const net::PeerAddress peer = exchange.peer();
  const int listener = exchange.listener();
  std::optional<PeerSecurity> security =
      peer_security_ ? peer_security_(listener, peer) : std::nullopt;
  coap::DeferredResponse response = exchange.Defer();
  MoveHereThen(id, [this, request = *std::move(request), peer, listener,
                    security = std::move(security), response](Entry* entry) mutable {
    if (entry == nullptr) {
      metrics_.rejections[static_cast<int>(Rejection::kNotFound)].Add();
      return RespondLater(response, coap::code::kNotFound, "no such registration");
    }
    if (!MayChange(entry->registration, security)) {
      metrics_.rejections[static_cast<int>(Rejection::kForbidden)].Add();
      return RespondLater(response, coap::code::kForbidden,
                          "the registration belongs to another identity");
    }
    Registration updated = entry->registration;
    updated.Apply(request);
    updated.address = peer;
    updated.listener = static_cast<uint16_t>(listener);
    updated.updated_at = WallNow();
    updated.last_seen = updated.updated_at;
    CommitUpdate(std::move(updated), response);
  });
}

void RegistrationService::CommitUpdate(Registration updated, coap::DeferredResponse response) {
  const std::string key = updated.endpoint;
  const std::string serialized = updated.Serialize();
  Persist(
      [&](store::WriteBatch& batch) {
        batch.Put(store::Table::kRegistrations, key, serialized);
      },
      [updated = std::move(updated), response](RegistrationService& service,
                                               const absl::Status& status) mutable {
        if (!status.ok()) {
          service.metrics_
              .rejections[static_cast<int>(RegistrationMetrics::Rejection::kStoreError)]
              .Add();
          return RespondLater(response, StoreErrorCode(status, *service.hub_.options().store), base::Std(status.message()));
        }
        auto it = service.by_id_.find(std::string_view(updated.id));
        if (it == service.by_id_.end()) {
          // De-registered, expired or replaced while the write was in flight.
          return RespondLater(response, coap::code::kNotFound, "no such registration");
        }
        Entry* current = it->get();
        const bool was_missing = current->missing;
        if (auto a = service.by_address_.find(current->registration.address);
            a != service.by_address_.end() && a->second == current) {
          service.by_address_.erase(a);
        }
        service.by_address_[updated.address] = current;
        current->registration = std::move(updated);
        current->registration.objects =
            service.object_links_.Intern(std::move(current->registration.objects));
        current->missing = false;
        service.ScheduleTimers(current);
        const Registration& r = current->registration;
        service.hub_.options().directory->Modify(r.endpoint, [&](DirectoryEntry& d) {
          d.address = r.address;
          d.listener = r.listener;
          d.presence = Presence::kConnected;
          d.last_seen = r.last_seen;
          d.lifetime_seconds = r.lifetime_seconds;
          d.binding = BindingString(r.binding, r.queue_mode);
        });
        service.metrics_.updates.Add();
        if (service.listener_ != nullptr) service.listener_->OnActive(r, /*registered=*/false);
        response.Respond(coap::Response(coap::code::kChanged));
        if (was_missing) {
          service.metrics_.back.Add();
          base::JsonWriter json;
          json.BeginObject().Key("lastSeen").String(Rfc3339(r.last_seen)).EndObject();
          service.Publish(event_type::kBack, r, json.Take());
        }
        // Always published, formatted only for a subscriber (as for Register).
        service.Publish(event_type::kUpdate, r,
                        service.hub_.options().events->HasSubscribers() ? r.EventPayload()
                                                                         : std::string());
      });
}

bool RegistrationService::MayChange(const Registration& registration,
                                    const std::optional<PeerSecurity>& security) {
  // A registration made with credentials is changed only by a peer holding them: no device
  // updates, deregisters or takes over another's registration.
  return registration.credentials == CredentialsKind::kNone ||
         (security && security->endpoint == registration.endpoint);
}

void RegistrationService::OnDeregister(coap::Exchange& exchange, std::string_view id) {
  std::optional<PeerSecurity> security =
      peer_security_ ? peer_security_(exchange.listener(), exchange.peer()) : std::nullopt;
  coap::DeferredResponse response = exchange.Defer();
  MoveHereThen(id, [this, security = std::move(security), response](Entry* entry) mutable {
    if (entry == nullptr) {
      metrics_.rejections[static_cast<int>(RegistrationMetrics::Rejection::kNotFound)].Add();
      return RespondLater(response, coap::code::kNotFound, "no such registration");
    }
    if (!MayChange(entry->registration, security)) {
      metrics_.rejections[static_cast<int>(RegistrationMetrics::Rejection::kForbidden)].Add();
      return RespondLater(response, coap::code::kForbidden,
                          "the registration belongs to another identity");
    }
    Persist(
        [&](store::WriteBatch& batch) {
          batch.Delete(store::Table::kRegistrations, entry->registration.endpoint);
        },
        [id = entry->registration.id, response](RegistrationService& service,
                                                const absl::Status& status) mutable {
          if (!status.ok()) {
            service.metrics_
                .rejections[static_cast<int>(RegistrationMetrics::Rejection::kStoreError)]
                .Add();
            return RespondLater(response, StoreErrorCode(status, *service.hub_.options().store), base::Std(status.message()));
          }
          auto it = service.by_id_.find(std::string_view(id));
          if (it != service.by_id_.end()) {
            service.Remove(it->get(), RemoveReason::kDeregistered);
          }
          service.metrics_.deregisters.Add();
          response.Respond(coap::Response(coap::code::kDeleted));
        });
  });
}

void RegistrationService::MoveHereThen(std::string_view id,
                                       absl::AnyInvocable<void(Entry*)> then) {
  if (auto it = by_id_.find(id); it != by_id_.end()) return then(it->get());
  const std::optional<int> owner = hub_.ShardForId(id);
  if (!owner || *owner == shard_id_) return then(nullptr);
  // The client's packets now reach this shard (its NAT port changed): the registration moves
  // here in one round trip, and the request goes on once it has arrived.
  const int here = shard_id_;
  RegistrationHub* hub = &hub_;
  hub_.RunOn(*owner, [hub, here, id = std::string(id),
                      then = std::move(then)](RegistrationService& owner_service) mutable {
    auto it = owner_service.by_id_.find(std::string_view(id));
    std::optional<Registration> moved;
    absl::Duration missing_timeout;
    // Only the endpoint's current registration moves: one already replaced by a newer
    // Register (whose removal may still be on its way here) is as good as gone.
    if (it != owner_service.by_id_.end()) {
      const Registration& r = (*it)->registration;
      std::optional<DirectoryEntry> current = hub->options().directory->Lookup(r.endpoint);
      if (current && current->location == r.location()) {
        missing_timeout = (*it)->missing_timeout;
        moved = r;
        owner_service.Remove(it->get(), RemoveReason::kMoved, here);
      }
    }
    hub->RunOn(here, [moved = std::move(moved), missing_timeout,
                      then = std::move(then)](RegistrationService& service) mutable {
      if (!moved) return then(nullptr);
      Entry* entry = service.Install(*std::move(moved), missing_timeout);
      service.metrics_.moved_in.Add();
      if (service.listener_ != nullptr) service.listener_->OnMovedIn(entry->registration);
      then(entry);
    });
  });
}

RegistrationService::Entry* RegistrationService::Install(Registration registration,
                                                         absl::Duration missing_timeout) {
  auto entry = std::make_unique<Entry>();
  entry->registration = std::move(registration);
  entry->registration.objects = object_links_.Intern(std::move(entry->registration.objects));
  entry->missing_timeout = missing_timeout;
  Entry* raw = entry.get();
  const Registration& r = raw->registration;
  // Replaces an entry of the same name, as assignment to a map would.
  if (auto [it, inserted] = by_endpoint_.insert(raw); !inserted) {
    by_endpoint_.erase(it);
    by_endpoint_.insert(raw);
  }
  by_address_[r.address] = raw;
  hub_.IndexId(r.id, shard_id_);
  DirectoryEntry directory_entry;
  directory_entry.shard = shard_id_;
  directory_entry.address = r.address;
  directory_entry.listener = r.listener;
  directory_entry.location = r.location();
  directory_entry.presence = Presence::kConnected;
  directory_entry.registered_at = r.registered_at;
  directory_entry.last_seen = r.last_seen;
  directory_entry.lifetime_seconds = r.lifetime_seconds;
  directory_entry.version = r.version;
  directory_entry.binding = BindingString(r.binding, r.queue_mode);
  hub_.options().directory->Put(r.endpoint, std::move(directory_entry));
  // Location ids are unique across the hub (NewId); like a map assignment, a clash replaces.
  by_id_.erase(std::string_view(r.id));
  by_id_.insert(std::move(entry));
  metrics_.active.Set(by_id_.size());
  ScheduleTimers(raw);
  return raw;
}

void RegistrationService::Remove(Entry* entry, RemoveReason reason, int to_shard) {
  shard_.timers().Cancel(entry->expiry_timer);
  shard_.timers().Cancel(entry->missing_timer);
  if (listener_ != nullptr) {
    listener_->OnRemoved(entry->registration.endpoint, reason, to_shard);
  }
  if (auto a = by_address_.find(entry->registration.address);
      a != by_address_.end() && a->second == entry) {
    by_address_.erase(a);
  }
  // Out of the sets before the registration is moved away: they hash its id and name.
  by_endpoint_.erase(std::string_view(entry->registration.endpoint));
  auto owned = by_id_.extract(std::string_view(entry->registration.id));
  // Moved out: the entry is destroyed at the end of this scope.
  const Registration registration = std::move(owned.value()->registration);
  metrics_.active.Set(by_id_.size());
  switch (reason) {
    case RemoveReason::kMoved:
      // The directory entry and the id index are rewritten by the new owner's Install.
      return;
    case RemoveReason::kReplaced:
      metrics_.replaced.Add();
      hub_.UnindexId(registration.id);
      return;
    case RemoveReason::kDeregistered:
    case RemoveReason::kExpired:
      hub_.UnindexId(registration.id);
      hub_.options().directory->Remove(registration.endpoint, registration.location());
      PublishDeregister(registration,
                        reason == RemoveReason::kExpired ? "expired" : "deregistered");
      return;
  }
}

void RegistrationService::ScheduleTimers(Entry* entry) {
  net::TimerWheel& timers = shard_.timers();
  timers.Cancel(entry->expiry_timer);
  timers.Cancel(entry->missing_timer);
  const Registration& r = entry->registration;
  // Lifetime 0 never expires (Server object resource 1: "If the value is set to 0, the
  // lifetime is infinite").
  if (r.lifetime_seconds != 0) {
    entry->expiry_timer =
        timers.Schedule(Deadline(r.expires_at()), [this, entry] { OnExpired(entry); });
  }
  if (entry->missing_timeout > absl::ZeroDuration() && !entry->missing) {
    entry->missing_timer = timers.Schedule(Deadline(r.last_seen + entry->missing_timeout),
                                           [this, entry] { OnMissing(entry); });
  }
}

// The timers capture the entry itself (no copy of its id): Remove cancels them before the
// entry goes, so an entry that a timer names is alive.
void RegistrationService::OnExpired(Entry* entry) {
  entry->expiry_timer = net::TimerWheel::kNoTimer;
  const Registration& r = entry->registration;
  // Deleted from the store only while the stored record is still this registration's: a
  // newer registration under the same name (on another shard) must survive.
  std::optional<DirectoryEntry> current = hub_.options().directory->Lookup(r.endpoint);
  if (current && current->location == r.location()) {
    store::WriteBatch batch;
    batch.Delete(store::Table::kRegistrations, r.endpoint);
    hub_.options().store->Submit(std::move(batch), [endpoint = r.endpoint](absl::Status status) {
      if (!status.ok()) {
        LWM2MD_LOG(kError, "expired registration of \"%s\" not deleted: %s", endpoint,
                   std::string(status.message()));
      }
    });
  }
  metrics_.expirations.Add();
  Remove(entry, RemoveReason::kExpired);
}

void RegistrationService::OnMissing(Entry* entry) {
  entry->missing_timer = net::TimerWheel::kNoTimer;
  entry->missing = true;
  metrics_.missing.Add();
  const Registration& r = entry->registration;
  hub_.options().directory->Modify(r.endpoint,
                                   [](DirectoryEntry& d) { d.presence = Presence::kMissing; });
  base::JsonWriter json;
  json.BeginObject()
      .Key("lastSeen").String(Rfc3339(r.last_seen))
      .Key("missingTimeoutSeconds").Int(absl::ToInt64Seconds(entry->missing_timeout))
      .EndObject();
  Publish(event_type::kMissing, r, json.Take());
}

void RegistrationService::Publish(std::string_view type, const Registration& registration,
                                  std::string payload) {
  Event event;
  event.type = std::string(type);
  event.endpoint = registration.endpoint;
  event.payload_json = std::move(payload);
  hub_.options().events->Publish(std::move(event));
}

void RegistrationService::PublishDeregister(const Registration& registration,
                                            std::string_view reason) {
  base::JsonWriter json;
  json.BeginObject()
      .Key("reason").String(reason)
      .Key("remoteAddr").String(registration.address.ToString())
      .EndObject();
  Publish(event_type::kDeregister, registration, json.Take());
}

}  // namespace lwm2md::lwm2m
