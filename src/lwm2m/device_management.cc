#include "lwm2m/device_management.h"

#include <charconv>
#include <simdjson.h>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "base/strings.h"
#include "coap/message.h"

namespace lwm2md::lwm2m {
namespace {

// The sweep that ends calls which waited past their timeout.
constexpr auto kExpirySweep = std::chrono::seconds(1);
// How often a call may be forwarded between shards while its device moves.
constexpr int kMaxHops = 3;

Event MakeEvent(std::string_view type, std::string_view endpoint) {
  Event event;
  event.type = std::string(type);
  event.endpoint = std::string(endpoint);
  return event;
}

std::string TokenHex(uint64_t token) { return absl::StrFormat("%016x", token); }

// The reference's error for a restart that cut a request short.
constexpr std::string_view kInterruptedError = "request interrupted by a server restart";

void WriteContext(base::JsonWriter& json, std::string_view context_json) {
  if (!context_json.empty()) json.Key("context").Raw(context_json);
}

// {"source":…,"data":{…},"context":…}: the lwm2m.data payload, and a sync read's result.
std::string DataPayload(std::string_view source, const DataTree& data,
                        const ObjectCatalog& names, std::string_view context_json,
                        absl::FunctionRef<void(base::JsonWriter&)> extra) {
  base::JsonWriter json;
  json.BeginObject().Key("source").String(source).Key("data");
  data.Write(json, &names);
  WriteContext(json, context_json);
  extra(json);
  json.EndObject();
  return json.Take();
}

absl::StatusOr<Decoded> DecodeAnswer(const coap::MessageView& message,
                                     const std::optional<Path>& path, bool composite,
                                     uint16_t requested_format, const ObjectCatalog& catalog) {
  const uint16_t number = message.content_format().value_or(requested_format);
  std::optional<ContentFormat> format = ContentFormatFromNumber(number);
  if (!format || *format == ContentFormat::kCoreLink) {
    return absl::InvalidArgumentError(base::StrCat("unsupported content format ", number));
  }
  // Named: FunctionTypeResolver keeps a reference to it.
  auto type_of = [&catalog](const Path& p) { return catalog.TypeOf(p); };
  FunctionTypeResolver types(type_of);
  return Decode(*format, path.value_or(Path::Object(0)), message.payload(), types,
                DecodeOptions{.composite = composite});
}

std::string ErrorPath(const absl::Status& status, std::string_view fallback) {
  absl::optional<absl::Cord> path = status.GetPayload(base::Absl(kPathPayload));
  return path ? std::string(*path) : std::string(fallback);
}

void WriteStepMessage(coap::MessageBuilder& builder, const RequestStep& step) {
  // Options in number order (RFC 7252 §3.1): Observe 6, Uri-Path 11, Content-Format 12,
  // Uri-Query 15, Accept 17.
  if (step.observe) builder.UintOption(coap::option::kObserve, *step.observe);
  if (step.path) builder.UriPath(step.path->ToString());
  if (step.content_format) builder.UintOption(coap::option::kContentFormat, *step.content_format);
  for (const std::string& query : step.queries) builder.Option(coap::option::kUriQuery, query);
  if (step.accept) builder.UintOption(coap::option::kAccept, *step.accept);
  if (!step.payload.empty()) builder.Payload(step.payload);
}

std::string PathsText(const std::vector<Path>& paths) {
  std::string out;
  for (const Path& p : paths) base::StrAppend(&out, out.empty() ? "" : ",", p.ToString());
  return out;
}

}  // namespace

// A call on its shard: the plan, how far it got, and what it gathered.
struct ManagementService::Call {
  ActionRequest request;
  Plan plan;
  size_t step = 0;
  DataTree data;
  bool has_data = false;
  std::vector<std::pair<std::string, std::string>> errors;
  ActionOutcome::Failure failure = ActionOutcome::Failure::kNone;
  size_t succeeded = 0;
  std::vector<std::pair<std::string, uint64_t>> tokens;  // observe: path (or "composite")
  std::string links;      // discover
  std::string location;   // create: where the device put the instance
  net::TimePoint deadline{};
  bool persisted = false;
  ManagementHub::AcceptedCallback accepted;  // answered by Start
  ManagementHub::DoneCallback done;

  const std::string& id() const { return request.id; }
  void AddError(std::string path, std::string error, ActionOutcome::Failure kind) {
    if (failure == ActionOutcome::Failure::kNone) failure = kind;
    errors.emplace_back(std::move(path), std::move(error));
  }
};

// ---------------------------------------------------------------------------------------------
// ManagementHub

ManagementHub::ManagementHub(Options options)
    : options_(std::move(options)),
      shard_ptrs_(static_cast<size_t>(options_.shards)),
      services_(static_cast<size_t>(options_.shards)),
      request_prefix_(absl::Uniform<uint32_t>(absl::BitGen())) {
  LWM2MD_CHECK(options_.shards > 0 && options_.store != nullptr && options_.objects != nullptr &&
               options_.directory != nullptr && options_.events != nullptr);
  for (int i = 0; i < options_.shards; ++i) {
    metrics_.push_back(std::make_unique<ManagementMetrics>());
  }
}

std::string ManagementHub::NewRequestId() {
  // Unique across restarts without coordination: a random prefix per process and a counter.
  return absl::StrFormat("r-%08x-%d", request_prefix_, next_request_.fetch_add(1) + 1);
}

void ManagementHub::Attach(int shard_id, net::Shard* shard, ManagementService* service) {
  shard_ptrs_[static_cast<size_t>(shard_id)].store(shard);
  services_[static_cast<size_t>(shard_id)].store(service);
}

void ManagementHub::Detach(int shard_id) {
  services_[static_cast<size_t>(shard_id)].store(nullptr);
}

bool ManagementHub::RunOn(int shard_id, absl::AnyInvocable<void(ManagementService&)> fn) {
  if (shard_id < 0 || shard_id >= options_.shards) return false;
  net::Shard* shard = shard_ptrs_[static_cast<size_t>(shard_id)].load();
  if (shard == nullptr || services_[static_cast<size_t>(shard_id)].load() == nullptr) return false;
  shard->Post([this, shard_id, fn = std::move(fn)]() mutable {
    ManagementService* service = services_[static_cast<size_t>(shard_id)].load();
    if (service != nullptr) fn(*service);
  });
  return true;
}

size_t ManagementHub::observation_count() const {
  absl::MutexLock lock(&observations_mutex_);
  return observations_.size();
}

std::optional<ManagementHub::Observation> ManagementHub::FindObservation(uint64_t token) const {
  absl::MutexLock lock(&observations_mutex_);
  auto it = observations_.find(token);
  if (it == observations_.end()) return std::nullopt;
  return it->second;
}

void ManagementHub::AddObservation(Observation observation, store::WriteBatch& batch) {
  base::JsonWriter json;
  json.BeginObject().Key("endpoint").String(observation.endpoint).Key("paths").BeginArray();
  for (const Path& path : observation.paths) json.String(path.ToString());
  json.EndArray()
      .Key("composite").Bool(observation.composite)
      .Key("format").Uint(observation.format);
  WriteContext(json, observation.context_json);
  json.EndObject();
  batch.Put(store::Table::kObservations, TokenHex(observation.token), json.str());
  absl::MutexLock lock(&observations_mutex_);
  tokens_by_endpoint_[observation.endpoint].push_back(observation.token);
  observations_[observation.token] = std::move(observation);
}

bool ManagementHub::RemoveObservation(uint64_t token, store::WriteBatch* batch) {
  if (batch != nullptr) batch->Delete(store::Table::kObservations, TokenHex(token));
  absl::MutexLock lock(&observations_mutex_);
  auto it = observations_.find(token);
  if (it == observations_.end()) return false;
  auto by_endpoint = tokens_by_endpoint_.find(it->second.endpoint);
  if (by_endpoint != tokens_by_endpoint_.end()) {
    std::erase(by_endpoint->second, token);
    if (by_endpoint->second.empty()) tokens_by_endpoint_.erase(by_endpoint);
  }
  observations_.erase(it);
  return true;
}

std::vector<uint64_t> ManagementHub::TakeObservations(std::string_view endpoint,
                                                      store::WriteBatch& batch) {
  std::vector<uint64_t> tokens;
  absl::MutexLock lock(&observations_mutex_);
  auto it = tokens_by_endpoint_.find(base::Absl(endpoint));
  if (it == tokens_by_endpoint_.end()) return tokens;
  tokens = std::move(it->second);
  tokens_by_endpoint_.erase(it);
  for (uint64_t token : tokens) {
    observations_.erase(token);
    batch.Delete(store::Table::kObservations, TokenHex(token));
  }
  return tokens;
}

absl::Status ManagementHub::LoadStored() {
  simdjson::dom::parser parser;
  size_t bad = 0;
  absl::Status status = options_.store->Scan(
      store::Table::kObservations, "", "", [&](std::string_view key, std::string_view value) {
        Observation observation;
        simdjson::dom::element root;
        std::string_view endpoint;
        simdjson::dom::array paths;
        if (std::from_chars(key.data(), key.data() + key.size(), observation.token, 16).ec !=
                std::errc() ||
            parser.parse(value.data(), value.size()).get(root) ||
            root["endpoint"].get_string().get(endpoint) || root["paths"].get_array().get(paths)) {
          ++bad;
          return true;
        }
        observation.endpoint = std::string(endpoint);
        for (simdjson::dom::element p : paths) {
          std::string_view text;
          if (p.get_string().get(text)) continue;
          if (absl::StatusOr<Path> path = Path::Parse(text); path.ok()) {
            observation.paths.push_back(*path);
          }
        }
        bool composite = false;
        uint64_t format = 0;
        if (root["composite"].get_bool().get(composite)) composite = false;
        if (root["format"].get_uint64().get(format)) format = 0;
        observation.composite = composite;
        observation.format = static_cast<uint16_t>(format);
        simdjson::dom::element context;
        if (!root["context"].get(context)) observation.context_json = simdjson::minify(context);
        absl::MutexLock lock(&observations_mutex_);
        tokens_by_endpoint_[observation.endpoint].push_back(observation.token);
        observations_[observation.token] = std::move(observation);
        return true;
      });
  if (!status.ok()) return status;
  status = options_.store->Scan(
      store::Table::kRequests, "", "", [&](std::string_view key, std::string_view value) {
        simdjson::dom::element root;
        StoredRequest request;
        request.id = std::string(key);
        std::string_view endpoint, action;
        simdjson::dom::element body;
        if (parser.parse(value.data(), value.size()).get(root) ||
            root["endpoint"].get_string().get(endpoint) ||
            root["action"].get_string().get(action) || root["body"].get(body)) {
          ++bad;
          return true;
        }
        request.endpoint = std::string(endpoint);
        request.action = std::string(action);
        request.body = simdjson::minify(body);
        if (root["queued"].get_bool().get(request.queued)) request.queued = false;
        stored_requests_.push_back(std::move(request));
        return true;
      });
  if (!status.ok()) return status;
  if (bad > 0) LWM2MD_LOG(kWarning, "%d unreadable observation or request records skipped", bad);
  absl::MutexLock lock(&observations_mutex_);
  LWM2MD_LOG(kInfo, "restored %d observations and %d unfinished requests", observations_.size(),
             stored_requests_.size());
  return absl::OkStatus();
}

void ManagementHub::ResumeStored() {
  std::vector<StoredRequest> requests = std::exchange(stored_requests_, {});
  // Applications are still reconnecting to the event stream: the reports of interrupted
  // calls wait for them a while.
  const absl::Time retain_until = absl::Now() + options_.interrupted_report_retention;
  store::WriteBatch forget;
  for (StoredRequest& stored : requests) {
    std::optional<ActionKind> kind = ParseActionName(stored.action);
    absl::StatusOr<ActionRequest> request =
        kind ? ParseActionRequest(*kind, stored.endpoint, stored.body)
             : absl::InvalidArgumentError("unknown action");
    if (!request.ok()) {
      forget.Delete(store::Table::kRequests, stored.id);
      continue;
    }
    request->id = stored.id;
    if (stored.queued) {
      // It never reached the device: it waits again, under its own id (its record stays).
      Submit(*std::move(request), [](Submission) {}, nullptr);
      continue;
    }
    // Sent before the restart: its answer, if any, went to a process that is gone.
    forget.Delete(store::Table::kRequests, stored.id);
    PublishFailure(*request, ActionName(request->kind), PathsText(request->paths),
                   kInterruptedError, retain_until);
  }
  if (!forget.empty()) {
    options_.store->Submit(std::move(forget), [](absl::Status status) {
      if (!status.ok()) LWM2MD_LOG(kWarning, "interrupted requests not forgotten: %s", status.message());
    });
  }
}

void ManagementHub::PublishFailure(const ActionRequest& request, std::string_view source,
                                   std::string_view path_text, std::string_view error,
                                   absl::Time retain_until) {
  EventBus& events = *options_.events;
  // A retained event is formatted for the subscribers still to come.
  const bool formatted = events.HasSubscribers() || retain_until > absl::Now();
  const std::string& context = request.options.context_json;
  if (!context.empty()) {
    Event event = MakeEvent(event_type::kAsyncResult, request.endpoint);
    if (formatted) {
      base::JsonWriter json;
      json.BeginObject().Key("context").Raw(context).Key("error").String(error)
          .Key("path").String(path_text).Key("source").String(source)
          .Key("success").Bool(false).EndObject();
      event.payload_json = json.Take();
    }
    events.PublishRetained(std::move(event), retain_until);
  }
  Event event = MakeEvent(event_type::kError, request.endpoint);
  if (formatted) {
    base::JsonWriter json;
    json.BeginObject().Key("source").String(source).Key("error").String(error);
    WriteContext(json, context);
    json.Key("path").String(path_text).EndObject();
    event.payload_json = json.Take();
  }
  events.PublishRetained(std::move(event), retain_until);
}

void ManagementHub::Submit(ActionRequest request, AcceptedCallback accepted, DoneCallback done) {
  std::optional<DirectoryEntry> entry = options_.directory->Lookup(request.endpoint);
  if (!entry) {
    return accepted(Submission::Refused(absl::NotFoundError(
        base::StrCat("endpoint \"", request.endpoint, "\" is not registered"))));
  }
  std::shared_ptr<const ObjectCatalog> catalog = options_.objects->snapshot();
  absl::StatusOr<Plan> plan = PlanAction(request, *catalog, entry->version);
  if (plan.ok()) {
    for (const RequestStep& step : plan->steps) {
      if (step.payload.size() > options_.limits.max_payload_bytes) {
        plan = absl::OutOfRangeError(absl::StrFormat(
            "request payload of %d bytes exceeds the limit of %d bytes "
            "(lwm2m.max_request_payload_bytes)",
            step.payload.size(), options_.limits.max_payload_bytes));
        break;
      }
    }
  }
  if (request.id.empty()) request.id = NewRequestId();
  if (!plan.ok()) {
    absl::Status status = plan.status();
    // A resource the model lacks is the caller's mistake about the device, like a bad
    // encoding: 422, not 404 (which would say the endpoint is unknown).
    if (absl::IsNotFound(status)) {
      absl::Status unusable = absl::FailedPreconditionError(status.message());
      status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
        unusable.SetPayload(url, payload);
      });
      status = unusable;
    }
    // An async call learns of a problem with the device's model the way it learns of any
    // failure, through events (the reference's "tlv: resource definition not found" example);
    // a malformed call is refused at once.
    if (request.options.async && absl::IsFailedPrecondition(status)) {
      accepted(Submission::Accepted(request.id, false));
      PublishFailure(request, ActionName(request.kind), ErrorPath(status, PathsText(request.paths)),
                     base::Std(status.message()));
      if (done) {
        ActionOutcome outcome;
        outcome.failure = ActionOutcome::Failure::kInvalid;
        outcome.error = std::string(status.message());
        done(std::move(outcome));
      }
      return;
    }
    return accepted(Submission::Refused(status));
  }
  auto call = std::make_unique<ManagementService::Call>();
  call->request = std::move(request);
  call->plan = *std::move(plan);
  call->accepted = std::move(accepted);
  call->done = std::move(done);
  // If the shard is gone (stopping), the call (and its callbacks) die with the posted task;
  // tell the caller instead.
  auto holder = std::make_shared<std::unique_ptr<ManagementService::Call>>(std::move(call));
  const bool posted = RunOn(entry->shard, [holder](ManagementService& service) {
    service.Start(std::move(*holder), 0);
  });
  if (!posted && *holder) {
    (*holder)->accepted(Submission::Refused(absl::UnavailableError("the server is stopping")));
  }
}

void ManagementHub::CancelObservation(ActionRequest request, AcceptedCallback accepted) {
  std::optional<Observation> observation = FindObservation(request.token);
  // The same answer for a token of another endpoint: tokens do not reveal other devices.
  if (!observation || observation->endpoint != request.endpoint) {
    return accepted(Submission::Refused(absl::NotFoundError(
        base::StrCat("no observation with token ", TokenHex(request.token), " on endpoint \"",
                     request.endpoint, "\""))));
  }
  if (request.id.empty()) request.id = NewRequestId();
  auto holder = std::make_shared<std::pair<ActionRequest, AcceptedCallback>>(
      std::move(request), std::move(accepted));
  const int shard = coap::MessageLayer::TokenShard(holder->first.token, options_.shards);
  const bool posted = RunOn(shard, [holder](ManagementService& service) {
    service.CancelObservation(std::move(holder->first), std::move(holder->second));
  });
  if (!posted && holder->second) {
    holder->second(Submission::Refused(absl::UnavailableError("the server is stopping")));
  }
}

// ---------------------------------------------------------------------------------------------
// ManagementService

ManagementService::ManagementService(net::Shard& shard, coap::ResourceTree& tree,
                                     coap::MessageLayer& layer,
                                     RegistrationService& registrations, ManagementHub& hub)
    : shard_(shard),
      layer_(layer),
      tree_(tree),
      registrations_(registrations),
      hub_(hub),
      metrics_(hub.metrics(shard.shard_id())),
      shard_id_(shard.shard_id()) {
  coap::ResourceOptions dp;
  dp.methods = coap::MethodBit(coap::code::kPost);
  dp.discoverable = false;
  LWM2MD_CHECK(tree_.Register("/dp", std::move(dp),
                              [this](coap::Exchange& exchange) { OnSend(exchange); })
                   .ok());
  layer_.SetUnmatchedResponseHandler(
      [this](uint64_t token, const coap::MessageView& message, int listener,
             const net::PeerAddress& peer) {
        return OnUnmatchedResponse(token, message, listener, peer);
      });
  registrations_.SetListener(this);
  hub_.Attach(shard_id_, &shard_, this);
}

ManagementService::~ManagementService() {
  hub_.Detach(shard_id_);
  registrations_.SetListener(nullptr);
  layer_.SetUnmatchedResponseHandler(nullptr);
  tree_.Unregister("/dp");
  shard_.timers().Cancel(expiry_timer_);
}

void ManagementService::Publish(std::string_view type, const std::string& endpoint,
                                absl::FunctionRef<std::string()> payload) {
  EventBus& events = *hub_.options().events;
  Event event = MakeEvent(type, endpoint);
  if (events.HasSubscribers()) event.payload_json = payload();
  events.Publish(std::move(event));
}

void ManagementService::UpdateGauges() {
  metrics_.queued.Set(waiting_);
  metrics_.in_flight.Set(active_.size());
}

void ManagementService::StoreRequestRecord(const Call& call, bool queued) {
  base::JsonWriter json;
  json.BeginObject()
      .Key("endpoint").String(call.request.endpoint)
      .Key("action").String(ActionName(call.request.kind))
      .Key("body").Raw(call.request.body_json.empty() ? "{}" : call.request.body_json)
      .Key("queued").Bool(queued)
      .EndObject();
  const std::string key = call.id();
  const std::string value = json.Take();
  registrations_.PersistWrites(
      [&](store::WriteBatch& batch) { batch.Put(store::Table::kRequests, key, value); },
      nullptr);
}

void ManagementService::Start(std::unique_ptr<Call> call, int hops) {
  const std::string& endpoint = call->request.endpoint;
  const Registration* registration = registrations_.FindByEndpoint(endpoint);
  if (registration == nullptr) {
    // Moved to another shard since the caller looked (a new NAT port, a new Register).
    std::optional<DirectoryEntry> entry = hub_.options().directory->Lookup(endpoint);
    if (entry && entry->shard != shard_id_ && hops < kMaxHops) {
      auto holder = std::make_shared<std::unique_ptr<Call>>(std::move(call));
      if (hub_.RunOn(entry->shard, [holder, hops](ManagementService& service) {
            service.Start(std::move(*holder), hops + 1);
          })) {
        return;
      }
      call = std::move(*holder);
    }
    if (call->accepted) {
      call->accepted(Submission::Refused(absl::NotFoundError(
          base::StrCat("endpoint \"", endpoint, "\" is not registered"))));
    } else {
      Fail(std::move(call), ActionOutcome::Failure::kInterrupted, "device is not registered");
    }
    return;
  }
  Device& device = devices_[endpoint];
  const ManagementLimits& limits = hub_.options().limits;
  absl::Status refused;
  if (device.waiting.size() >= limits.max_queued_per_endpoint) {
    refused = absl::ResourceExhaustedError(absl::StrFormat(
        "queue full: %d requests already wait for endpoint \"%s\" "
        "(lwm2m.max_queued_requests_per_endpoint)",
        device.waiting.size(), endpoint));
  } else if (pending_ >= limits.max_pending_per_shard) {
    refused = absl::ResourceExhaustedError(
        "too many requests in progress (lwm2m.max_pending_requests_per_shard)");
  }
  if (!refused.ok()) {
    metrics_.refused_limit.Add();
    if (call->accepted) return call->accepted(Submission::Refused(refused));
    return Fail(std::move(call), ActionOutcome::Failure::kLimit, std::string(refused.message()));
  }
  const net::TimePoint now = shard_.Now();
  const bool asleep = registration->queue_mode && now >= device.awake_until;
  if (call->accepted) {
    metrics_.calls.Add();
    std::exchange(call->accepted, nullptr)(Submission::Accepted(call->id(), asleep));
  }
  call->deadline = now + std::chrono::duration_cast<net::Duration>(
                             absl::ToChronoMilliseconds(call->request.options.timeout));
  if (call->request.options.async) {
    StoreRequestRecord(*call, asleep);
    call->persisted = true;
    // The reference: an intermediate result when the request is put on the queue.
    if (asleep && !call->request.options.context_json.empty()) {
      Publish(event_type::kAsyncResult, endpoint, [&] {
        base::JsonWriter json;
        json.BeginObject().Key("context").Raw(call->request.options.context_json)
            .Key("intermediate").Bool(true)
            .Key("path").String(call->plan.path_text)
            .Key("source").String(call->plan.source)
            .Key("success").Bool(true).EndObject();
        return json.Take();
      });
    }
  }
  ++pending_;
  ++waiting_;
  device.waiting.push_back(std::move(call));
  UpdateGauges();
  if (asleep) ScheduleExpirySweep();
  Pump(endpoint);
}

void ManagementService::Adopt(std::deque<std::unique_ptr<Call>> calls) {
  for (std::unique_ptr<Call>& call : calls) Start(std::move(call), 0);
}

void ManagementService::ReceiveMoved(const std::string& endpoint,
                                     std::deque<std::unique_ptr<Call>> calls) {
  if (registrations_.FindByEndpoint(endpoint) != nullptr) return Adopt(std::move(calls));
  // The registration itself is still on its way (posted right after these calls): hold them
  // until OnMovedIn, so that Start finds the device here instead of failing it.
  std::deque<std::unique_ptr<Call>>& held = arriving_[endpoint];
  for (std::unique_ptr<Call>& call : calls) held.push_back(std::move(call));
}

void ManagementService::OnMovedIn(const Registration& registration) {
  auto it = arriving_.find(registration.endpoint);
  if (it == arriving_.end()) return;
  std::deque<std::unique_ptr<Call>> calls = std::move(it->second);
  arriving_.erase(it);
  Adopt(std::move(calls));
}

void ManagementService::Pump(const std::string& endpoint) {
  auto it = devices_.find(endpoint);
  if (it == devices_.end()) return;
  Device& device = it->second;
  const Registration* registration = registrations_.FindByEndpoint(endpoint);
  const net::TimePoint now = shard_.Now();
  const int max_active = hub_.options().limits.max_in_flight_per_endpoint;
  while (!device.waiting.empty() && device.active < max_active) {
    if (registration == nullptr) break;
    if (registration->queue_mode && now >= device.awake_until) break;
    std::unique_ptr<Call> call = std::move(device.waiting.front());
    device.waiting.pop_front();
    --waiting_;
    if (now >= call->deadline) {
      metrics_.expired.Add();
      Fail(std::move(call), ActionOutcome::Failure::kNoResponse, std::string(kNoResponseError));
      continue;
    }
    if (call->persisted && registration->queue_mode) StoreRequestRecord(*call, false);
    ++device.active;
    Call* raw = call.get();
    active_[call->id()] = std::move(call);
    SendStep(raw);
  }
  UpdateGauges();
  if (device.waiting.empty() && device.active == 0 &&
      (registration == nullptr || !registration->queue_mode)) {
    devices_.erase(it);
  }
}

void ManagementService::SendStep(Call* call) {
  const Registration* registration = registrations_.FindByEndpoint(call->request.endpoint);
  const RequestStep& step = call->plan.steps[call->step];
  if (registration == nullptr) {
    call->AddError(PathsText(step.covers), "device is no longer registered",
                   ActionOutcome::Failure::kInterrupted);
    // Ends the call through the common path without sending anything.
    auto it = active_.find(call->id());
    std::unique_ptr<Call> owned = std::move(it->second);
    active_.erase(it);
    auto device = devices_.find(owned->request.endpoint);
    if (device != devices_.end()) --device->second.active;
    --pending_;
    Finish(std::move(owned));
    return;
  }
  coap::RequestParams params;
  params.method = step.method;
  params.observe = step.observe.has_value() && *step.observe == 0;
  std::shared_ptr<uint64_t> token_slot;
  if (params.observe) token_slot = std::make_shared<uint64_t>(0);
  const uint64_t token = layer_.SendRequest(
      registration->listener, registration->address, params,
      [&step](coap::MessageBuilder& builder) {
        WriteStepMessage(builder, step);
        return builder.ok();
      },
      [this, id = call->id(), first = true, token_slot](const coap::ClientResult& result) mutable {
        if (first) {
          first = false;
          OnStepResult(id, result, token_slot ? *token_slot : 0);
          return;
        }
        // Later calls: notifications of the observation this step started.
        OnObservationResult(*token_slot, result);
      });
  if (token == coap::MessageLayer::kNoToken) {
    call->AddError(PathsText(step.covers), "request does not fit in one CoAP message",
                   ActionOutcome::Failure::kInvalid);
    // Goes on as if answered: the error is recorded, the next step (if any) follows.
    OnStepResult(call->id(), coap::ClientResult{}, 0);
    return;
  }
  if (token_slot) *token_slot = token;
  metrics_.requests_sent.Add();
}

void ManagementService::OnStepResult(const std::string& call_id,
                                     const coap::ClientResult& result, uint64_t token) {
  auto it = active_.find(call_id);
  if (it == active_.end()) return;
  Call* call = it->second.get();
  const RequestStep& step = call->plan.steps[call->step];
  const std::string covers = PathsText(step.covers);
  using Status = coap::ClientResult::Status;
  if (result.status == Status::kTimeout) {
    metrics_.request_timeouts.Add();
    call->AddError(covers, std::string(kNoResponseError), ActionOutcome::Failure::kNoResponse);
  } else if (result.status == Status::kReset) {
    call->AddError(covers, "device rejected the request (reset)",
                   ActionOutcome::Failure::kDeviceError);
  } else if (result.response == nullptr) {
    // Not sent (see SendStep): the error is recorded already.
  } else {
    const coap::MessageView& response = *result.response;
    MarkAwake(call->request.endpoint);
    if (coap::CodeClass(response.code()) != 2) {
      metrics_.device_errors.Add();
      call->AddError(covers, CoapErrorText(response.code()), ActionOutcome::Failure::kDeviceError);
    } else if (step.expects_values) {
      std::shared_ptr<const ObjectCatalog> catalog = hub_.options().objects->snapshot();
      absl::StatusOr<Decoded> decoded = DecodeAnswer(
          response, step.path, step.composite, step.accept.value_or(0), *catalog);
      if (!decoded.ok()) {
        metrics_.device_errors.Add();
        call->AddError(ErrorPath(decoded.status(), covers), std::string(decoded.status().message()),
                       ActionOutcome::Failure::kDeviceError);
      } else {
        ++call->succeeded;
        for (const Record& record : decoded->records) call->data.Add(record);
        call->has_data = call->has_data || !decoded->records.empty();
        const std::string& endpoint = call->request.endpoint;
        const absl::Time now = absl::Now();
        std::optional<ManagementHub::Observation> observation;
        if (step.observe && *step.observe == 0) {
          if (result.observing && token != 0) {
            observation = ManagementHub::Observation{
                .token = token, .endpoint = endpoint, .paths = step.covers,
                .composite = step.composite, .format = step.accept.value_or(0),
                .context_json = call->request.options.context_json};
            call->tokens.emplace_back(step.composite ? "composite" : covers, token);
            metrics_.observations.Add();
          } else {
            call->AddError(covers, "device answered without Observe: not observing",
                           ActionOutcome::Failure::kDeviceError);
          }
        }
        registrations_.PersistWrites(
            [&](store::WriteBatch& batch) {
              WriteLastKnown(batch, endpoint,
                             step.composite ? std::nullopt : step.path, decoded->records, now);
              if (observation) hub_.AddObservation(*std::move(observation), batch);
            },
            nullptr);
      }
    } else {
      ++call->succeeded;
      if (step.accept == static_cast<uint16_t>(ContentFormat::kCoreLink)) {
        call->links.assign(reinterpret_cast<const char*>(response.payload().data()),
                           response.payload().size());
      }
      if (call->plan.kind == ActionKind::kCreate) {
        std::string location;
        for (const coap::OptionView& option : response.options()) {
          if (option.number != coap::option::kLocationPath) continue;
          base::StrAppend(&location, location.empty() ? "" : "/", base::Absl(option.AsString()));
        }
        call->location = std::move(location);
      }
    }
  }
  if (++call->step < call->plan.steps.size()) return SendStep(call);
  std::unique_ptr<Call> owned = std::move(it->second);
  active_.erase(it);
  auto device = devices_.find(owned->request.endpoint);
  if (device != devices_.end()) --device->second.active;
  --pending_;
  const std::string endpoint = owned->request.endpoint;
  Finish(std::move(owned));
  Pump(endpoint);
}

void ManagementService::Fail(std::unique_ptr<Call> call, ActionOutcome::Failure failure,
                             std::string error) {
  call->AddError(call->plan.path_text, std::move(error), failure);
  Finish(std::move(call));
}

void ManagementService::WriteTokens(base::JsonWriter& json, const Call& call) {
  if (call.plan.kind != ActionKind::kObserve) return;
  json.Key("tokens").BeginObject();
  for (const auto& [path, token] : call.tokens) json.Key(path).String(TokenHex(token));
  json.EndObject();
}

void ManagementService::Finish(std::unique_ptr<Call> call) {
  const std::string& context = call->request.options.context_json;
  const std::string& source = call->plan.source;
  const bool ok = call->errors.empty();
  (ok ? metrics_.calls_succeeded : metrics_.calls_failed).Add();
  std::shared_ptr<const ObjectCatalog> catalog = hub_.options().objects->snapshot();
  const bool reads = call->plan.kind == ActionKind::kRead || call->plan.kind == ActionKind::kObserve;

  ActionOutcome outcome;
  outcome.failure = call->failure;
  if (!ok) {
    if (call->succeeded == 0 && call->errors.size() == 1) {
      outcome.error = call->errors[0].second;
    } else {
      outcome.error = call->succeeded > 0 ? "partial success" : call->errors[0].second;
      outcome.partial_errors = call->errors;
    }
  }
  auto write_tokens = [&call](base::JsonWriter& json) { WriteTokens(json, *call); };
  if (reads) {
    outcome.body_json = DataPayload(source, call->data, *catalog, context, write_tokens);
  } else {
    base::JsonWriter json;
    json.BeginObject().Key("source").String(source).Key("path").String(call->plan.path_text);
    if (call->plan.kind == ActionKind::kDiscover) json.Key("links").String(call->links);
    if (!call->location.empty()) json.Key("location").String(call->location);
    json.Key("success").Bool(ok);
    WriteContext(json, context);
    json.EndObject();
    outcome.body_json = json.Take();
  }

  if (!call->has_data && !call->persisted) return Deliver(std::move(call), std::move(outcome));
  // The call's values (lastKnown) and the removal of its request record are in this turn's
  // commit. Its events and its answer go out once that commit is durable: whoever reads
  // lastKnown on seeing them finds the values, and a crash in between cannot report a call
  // twice (once done, once "interrupted by a server restart").
  const std::string key = call->persisted ? call->id() : std::string();
  registrations_.PersistWrites(
      [&](store::WriteBatch& batch) {
        if (!key.empty()) batch.Delete(store::Table::kRequests, key);
      },
      [this, call = std::move(call), outcome = std::move(outcome)](const absl::Status&) mutable {
        Deliver(std::move(call), std::move(outcome));
      });
  UpdateGauges();
}

void ManagementService::Deliver(std::unique_ptr<Call> call, ActionOutcome outcome) {
  std::shared_ptr<const ObjectCatalog> catalog = hub_.options().objects->snapshot();
  const ActionRequest& request = call->request;
  const std::string& context = request.options.context_json;
  const std::string& source = call->plan.source;
  const bool ok = call->errors.empty();
  auto write_tokens = [&call](base::JsonWriter& json) { WriteTokens(json, *call); };
  if (request.options.async) {
    const std::string& endpoint = request.endpoint;
    if (call->has_data) {
      Publish(event_type::kData, endpoint, [&] {
        return DataPayload(source, call->data, *catalog, context, [](base::JsonWriter&) {});
      });
    }
    if (!context.empty()) {
      Publish(event_type::kAsyncResult, endpoint, [&] {
        base::JsonWriter json;
        json.BeginObject().Key("context").Raw(context);
        if (!ok) json.Key("error").String(outcome.error);
        if (!outcome.partial_errors.empty()) {
          json.Key("partialErrors").BeginObject();
          for (const auto& [path, error] : outcome.partial_errors) json.Key(path).String(error);
          json.EndObject();
        }
        json.Key("path").String(call->plan.path_text).Key("source").String(source);
        if (call->plan.kind == ActionKind::kObserve && !call->tokens.empty()) write_tokens(json);
        json.Key("success").Bool(ok).EndObject();
        return json.Take();
      });
    }
    if (!ok) {
      Publish(event_type::kError, endpoint, [&] {
        base::JsonWriter json;
        json.BeginObject().Key("source").String(source).Key("error").String(outcome.error);
        WriteContext(json, context);
        json.Key("path").String(call->plan.path_text);
        if (!outcome.partial_errors.empty()) {
          json.Key("partialErrors").BeginObject();
          for (const auto& [path, error] : outcome.partial_errors) json.Key(path).String(error);
          json.EndObject();
        }
        json.EndObject();
        return json.Take();
      });
    }
  }
  if (call->done) call->done(std::move(outcome));
  UpdateGauges();
}

void ManagementService::ScheduleExpirySweep() {
  if (expiry_timer_ != net::TimerWheel::kNoTimer) return;
  expiry_timer_ = shard_.timers().Schedule(shard_.Now() + kExpirySweep, [this] {
    expiry_timer_ = net::TimerWheel::kNoTimer;
    ExpireWaiting();
  });
}

void ManagementService::ExpireWaiting() {
  const net::TimePoint now = shard_.Now();
  std::vector<std::unique_ptr<Call>> expired;
  for (auto& [endpoint, device] : devices_) {
    for (auto it = device.waiting.begin(); it != device.waiting.end();) {
      if (now < (*it)->deadline) {
        ++it;
        continue;
      }
      expired.push_back(std::move(*it));
      it = device.waiting.erase(it);
      --waiting_;
      --pending_;
    }
  }
  for (std::unique_ptr<Call>& call : expired) {
    metrics_.expired.Add();
    // The reference's text: the device did not answer in time (it never woke up).
    Fail(std::move(call), ActionOutcome::Failure::kNoResponse, std::string(kNoResponseError));
  }
  UpdateGauges();
  if (waiting_ > 0) ScheduleExpirySweep();
}

void ManagementService::MarkAwake(const std::string& endpoint) {
  auto it = devices_.find(endpoint);
  if (it == devices_.end()) {
    const Registration* registration = registrations_.FindByEndpoint(endpoint);
    if (registration == nullptr || !registration->queue_mode) return;
    it = devices_.try_emplace(endpoint).first;
  }
  it->second.awake_until =
      shard_.Now() + std::chrono::duration_cast<net::Duration>(absl::ToChronoMilliseconds(
                         hub_.options().limits.queue_awake_window));
}

void ManagementService::OnActive(const Registration& registration, bool registered) {
  const std::string endpoint = registration.endpoint;
  if (registered) {
    // A Register means the client starts afresh (Core TS 1.1 §6.2.1): its observations are
    // gone on its side, so they go on ours too.
    std::vector<uint64_t> tokens;
    registrations_.PersistWrites(
        [&](store::WriteBatch& b) { tokens = hub_.TakeObservations(endpoint, b); }, nullptr);
    for (uint64_t token : tokens) {
      hub_.RunOn(coap::MessageLayer::TokenShard(token, hub_.shards()),
                 [token](ManagementService& service) {
                   if (service.layer_.Cancel(token)) {
                     if (service.metrics_.observations.Value() > 0) {
                       service.metrics_.observations.Set(service.metrics_.observations.Value() - 1);
                     }
                   }
                 });
    }
  }
  MarkAwake(endpoint);
  // After the 2.01/2.04 this turn sends: a device hears its answer before our requests.
  shard_.Post([this, endpoint] { Pump(endpoint); });
}

void ManagementService::OnRemoved(const std::string& endpoint, RemoveReason reason,
                                  int to_shard) {
  auto it = devices_.find(endpoint);
  if (it == devices_.end()) return;
  std::deque<std::unique_ptr<Call>> waiting = std::move(it->second.waiting);
  waiting_ -= waiting.size();
  pending_ -= waiting.size();
  if (it->second.active == 0) devices_.erase(it);
  UpdateGauges();
  if (waiting.empty()) return;
  switch (reason) {
    case RemoveReason::kMoved: {
      auto holder = std::make_shared<std::deque<std::unique_ptr<Call>>>(std::move(waiting));
      if (hub_.RunOn(to_shard, [holder, endpoint](ManagementService& service) {
            service.ReceiveMoved(endpoint, std::move(*holder));
          })) {
        return;
      }
      waiting = std::move(*holder);
      break;
    }
    case RemoveReason::kReplaced: {
      // A new Register of the same device (maybe on another shard, installed right after
      // this): the waiting calls go to wherever it now lives.
      auto holder = std::make_shared<std::deque<std::unique_ptr<Call>>>(std::move(waiting));
      shard_.Post([this, holder] { Adopt(std::move(*holder)); });
      return;
    }
    case RemoveReason::kDeregistered:
    case RemoveReason::kExpired:
      break;
  }
  for (std::unique_ptr<Call>& call : waiting) {
    Fail(std::move(call), ActionOutcome::Failure::kInterrupted,
         reason == RemoveReason::kExpired ? "registration expired before the device woke up"
                                          : "device deregistered");
  }
}

// ---------------------------------------------------------------------------------------------
// Observations

void ManagementService::OnNotification(const ManagementHub::Observation& observation,
                                       const coap::MessageView& message) {
  MarkAwake(observation.endpoint);
  std::shared_ptr<const ObjectCatalog> catalog = hub_.options().objects->snapshot();
  std::optional<Path> path;
  if (!observation.composite && !observation.paths.empty()) path = observation.paths[0];
  absl::StatusOr<Decoded> decoded =
      DecodeAnswer(message, path, observation.composite, observation.format, *catalog);
  const std::string path_text = PathsText(observation.paths);
  if (!decoded.ok()) {
    metrics_.notification_errors.Add();
    Publish(event_type::kError, observation.endpoint, [&] {
      base::JsonWriter json;
      json.BeginObject().Key("source").String("notify")
          .Key("error").String(base::Std(decoded.status().message()));
      WriteContext(json, observation.context_json);
      json.Key("path").String(ErrorPath(decoded.status(), path_text)).EndObject();
      return json.Take();
    });
    return;
  }
  metrics_.notifications.Add();
  const absl::Time now = absl::Now();
  // The event goes out once the values are stored, so that a consumer who reads lastKnown
  // on seeing it finds them. Formatted now (the records view this datagram) when someone
  // listens; the counters see the event either way.
  std::string payload;
  if (hub_.options().events->HasSubscribers()) {
    DataTree data;
    for (const Record& record : decoded->records) data.Add(record);
    payload = DataPayload("notify", data, *catalog, observation.context_json,
                          [](base::JsonWriter&) {});
  }
  registrations_.PersistWrites(
      [&](store::WriteBatch& batch) {
        WriteLastKnown(batch, observation.endpoint, path, decoded->records, now);
      },
      [this, endpoint = observation.endpoint,
       payload = std::move(payload)](const absl::Status&) mutable {
        Event event = MakeEvent(event_type::kData, endpoint);
        event.payload_json = std::move(payload);
        hub_.options().events->Publish(std::move(event));
      });
}

void ManagementService::OnObservationResult(uint64_t token, const coap::ClientResult& result) {
  std::optional<ManagementHub::Observation> observation = hub_.FindObservation(token);
  if (!observation) {
    layer_.Cancel(token);  // cancelled meanwhile: the next notification gets RST
    return;
  }
  if (result.observing && result.response != nullptr) {
    OnNotification(*observation, *result.response);
    return;
  }
  // RFC 7641 §3.2: a final response ends the observation.
  registrations_.PersistWrites(
      [&](store::WriteBatch& batch) { hub_.RemoveObservation(token, &batch); }, nullptr);
  if (metrics_.observations.Value() > 0) metrics_.observations.Set(metrics_.observations.Value() - 1);
}

coap::ResponseCallback ManagementService::NotificationCallback(uint64_t token) {
  return [this, token](const coap::ClientResult& result) { OnObservationResult(token, result); };
}

bool ManagementService::OnUnmatchedResponse(uint64_t token, const coap::MessageView& message,
                                            int listener, const net::PeerAddress& peer) {
  std::optional<ManagementHub::Observation> observation = hub_.FindObservation(token);
  if (!observation) return false;
  // Only from where the device is registered: plain CoAP has no better proof of identity (a
  // DTLS session will bind it), and this keeps a stranger who guessed a token out.
  std::optional<DirectoryEntry> entry = hub_.options().directory->Lookup(observation->endpoint);
  if (!entry || !(entry->address == peer)) return false;
  if (coap::CodeClass(message.code()) != 2 || !message.observe()) {
    // A final answer (RFC 7641 §3.2): the observation is over.
    registrations_.PersistWrites(
        [&](store::WriteBatch& batch) { hub_.RemoveObservation(token, &batch); }, nullptr);
    return true;
  }
  // An observation from before a restart, or from before the device's address changed:
  // this layer takes it over, and later notifications reach it directly.
  const bool known = layer_.HasRequest(token);
  if (layer_.AdoptObservation(token, listener, peer, NotificationCallback(token)) && !known) {
    metrics_.observations.Add();
  }
  OnNotification(*observation, message);
  return true;
}

void ManagementService::CancelObservation(ActionRequest request,
                                          ManagementHub::AcceptedCallback accepted) {
  std::optional<ManagementHub::Observation> observation = hub_.FindObservation(request.token);
  if (!observation || observation->endpoint != request.endpoint) {
    return accepted(Submission::Refused(absl::NotFoundError(
        base::StrCat("no observation with token ", TokenHex(request.token), " on endpoint \"",
                     request.endpoint, "\""))));
  }
  metrics_.calls.Add();
  accepted(Submission::Accepted(request.id, false));
  if (layer_.Cancel(request.token)) {
    if (metrics_.observations.Value() > 0) metrics_.observations.Set(metrics_.observations.Value() - 1);
  }
  registrations_.PersistWrites(
      [&](store::WriteBatch& batch) { hub_.RemoveObservation(request.token, &batch); }, nullptr);
  // RFC 7641 §3.6: a GET with Observe=1 and the observation's token ends it at once; a device
  // that misses it is told by RST on its next notification, which the layer now answers.
  std::optional<DirectoryEntry> entry = hub_.options().directory->Lookup(request.endpoint);
  if (entry) {
    RequestStep step;
    step.observe = 1;
    if (observation->composite) {
      std::vector<Record> names;
      for (const Path& p : observation->paths) names.push_back(Record{p, Value::None(), {}});
      const ContentFormat format =
          ContentFormatFromNumber(observation->format).value_or(ContentFormat::kSenmlCbor);
      step.method = coap::code::kFetch;
      if (Encode(format, Path::Object(0), names, &step.payload, EncodeOptions{.composite = true})
              .ok()) {
        step.content_format = static_cast<uint16_t>(format);
        step.accept = static_cast<uint16_t>(format);
      }
    } else {
      step.method = coap::code::kGet;
      if (!observation->paths.empty()) step.path = observation->paths[0];
      if (observation->format != 0) step.accept = observation->format;
    }
    coap::RequestParams params;
    params.method = step.method;
    params.token = request.token;
    layer_.SendRequest(entry->listener, entry->address, params,
                       [&step](coap::MessageBuilder& builder) {
                         WriteStepMessage(builder, step);
                         return builder.ok();
                       },
                       [](const coap::ClientResult&) {});
    metrics_.requests_sent.Add();
  }
  if (!request.options.context_json.empty()) {
    Publish(event_type::kAsyncResult, request.endpoint, [&] {
      base::JsonWriter json;
      json.BeginObject().Key("context").Raw(request.options.context_json)
          .Key("path").String(PathsText(observation->paths))
          .Key("source").String("observe-cancel")
          .Key("success").Bool(true).EndObject();
      return json.Take();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Send (Core TS 1.1 §6.4.5: the client POSTs SenML records to /dp)

void ManagementService::OnSend(coap::Exchange& exchange) {
  const Registration* registration = registrations_.FindByAddress(exchange.peer());
  if (registration == nullptr) {
    exchange.Respond(coap::Response(coap::code::kForbidden).Payload("not registered"));
    return;
  }
  const std::string endpoint = registration->endpoint;
  MarkAwake(endpoint);
  const std::optional<uint16_t> number = exchange.request().content_format();
  const std::optional<ContentFormat> format =
      number ? ContentFormatFromNumber(*number) : std::nullopt;
  if (!format || (*format != ContentFormat::kSenmlJson && *format != ContentFormat::kSenmlCbor &&
                  *format != ContentFormat::kLwm2mJson)) {
    exchange.Respond(coap::Response(coap::code::kUnsupportedContentFormat)
                         .Payload("Send takes senml-json or senml-cbor"));
    return;
  }
  std::shared_ptr<const ObjectCatalog> catalog = hub_.options().objects->snapshot();
  auto type_of = [&catalog](const Path& p) { return catalog->TypeOf(p); };
  FunctionTypeResolver types(type_of);
  absl::StatusOr<Decoded> decoded = Decode(*format, Path::Object(0), exchange.payload(), types,
                                           DecodeOptions{.composite = true});
  if (!decoded.ok()) {
    exchange.Respond(coap::Response(coap::code::kBadRequest).Payload(base::Std(decoded.status().message())));
    return;
  }
  metrics_.sends.Add();
  DataTree data;
  for (const Record& record : decoded->records) data.Add(record);
  std::string payload = DataPayload("send", data, *catalog, "", [](base::JsonWriter&) {});
  // Acknowledged once the values are durable: nothing a device was told is stored is lost.
  coap::DeferredResponse response = exchange.Defer();
  registrations_.PersistWrites(
      [&](store::WriteBatch& batch) {
        WriteLastKnown(batch, endpoint, std::nullopt, decoded->records, absl::Now());
      },
      [this, response, endpoint, payload = std::move(payload)](const absl::Status& status) mutable {
        if (!status.ok()) {
          response.Respond(coap::Response(coap::code::kInternalServerError)
                               .Payload(base::Std(status.message())));
          return;
        }
        response.Respond(coap::Response(coap::code::kChanged));
        Publish(event_type::kData, endpoint, [&] { return std::move(payload); });
      });
}

}  // namespace lwm2md::lwm2m
