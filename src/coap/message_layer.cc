#include "coap/message_layer.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <utility>

#include "absl/hash/hash.h"
#include "base/check.h"
#include "base/log.h"

namespace lwm2md::coap {

// The layer lives on one shard thread (message_layer.h); debug builds verify every entry
// point runs there.
#define LWM2MD_DCHECK_ON_SHARD() LWM2MD_DCHECK(std::this_thread::get_id() == owner_thread_)

namespace {

constexpr net::Duration kHousekeepingPeriod = std::chrono::seconds(1);
constexpr size_t kMaxIdleTransmissions = 256;
constexpr std::string_view kBadOptionDiagnostic = "unrecognized critical option";
constexpr std::string_view kBlockOutOfRange = "block out of range";

Type TypeOfBytes(std::span<const uint8_t> bytes) { return static_cast<Type>((bytes[0] >> 4) & 3); }
uint16_t MessageIdOfBytes(std::span<const uint8_t> bytes) {
  return static_cast<uint16_t>((bytes[2] << 8) | bytes[3]);
}

net::Duration Scale(net::Duration d, double factor) {
  return std::chrono::duration_cast<net::Duration>(
      std::chrono::duration<double, net::Duration::period>(static_cast<double>(d.count()) *
                                                           factor));
}

// RFC 7252 §3.2 uint: big-endian without leading zero bytes; 0 is empty.
uint8_t EncodeUint(uint32_t value, uint8_t* out) {
  uint8_t n = 0;
  for (uint32_t v = value; v != 0; v >>= 8) ++n;
  for (uint8_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(value >> (8 * (n - 1 - i)));
  return n;
}

// FNV-1a, 64 bit: a content-derived ETag (RFC 7252 §5.10.6), so that a representation
// regenerated after cache eviction carries the same tag when it did not change.
uint64_t Fnv1a(uint64_t hash, std::span<const uint8_t> bytes) {
  for (uint8_t b : bytes) {
    hash ^= b;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

internal::SmallBytes ComputeETag(const Response& r) {
  uint64_t h = 0xcbf29ce484222325ull;
  const uint8_t code = r.code();
  h = Fnv1a(h, {&code, 1});
  for (size_t i = 0; i < r.option_count(); ++i) {
    const uint16_t n = r.option_number(i);
    const uint8_t nb[2] = {static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
    h = Fnv1a(h, nb);
    h = Fnv1a(h, r.option_value(i));
  }
  h = Fnv1a(h, r.payload());
  return internal::EncodeToken(h);
}

struct OptionRef {
  uint16_t number = 0;
  std::span<const uint8_t> value;
};

// Stable insertion sort: repeated options keep their relative order (RFC 7252 §5.4.5);
// at most a couple of dozen entries, and no temporary buffer (std::stable_sort may
// allocate one).
void SortOptions(OptionRef* begin, size_t n) {
  for (size_t i = 1; i < n; ++i) {
    OptionRef x = begin[i];
    size_t j = i;
    while (j > 0 && begin[j - 1].number > x.number) {
      begin[j] = begin[j - 1];
      --j;
    }
    begin[j] = x;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Response, Exchange, DeferredResponse

Response& Response::Option(uint16_t number, std::span<const uint8_t> value) {
  if (count_ == kMaxOptions) {
    ok_ = false;
    return *this;
  }
  Entry& e = options_[count_++];
  e.number = number;
  e.is_inline = false;
  e.value = value;
  return *this;
}

Response& Response::UintOption(uint16_t number, uint32_t value) {
  if (count_ == kMaxOptions) {
    ok_ = false;
    return *this;
  }
  Entry& e = options_[count_++];
  e.number = number;
  e.is_inline = true;
  e.inline_size = EncodeUint(value, e.inline_value.data());
  return *this;
}

bool Response::Has(uint16_t number) const {
  for (size_t i = 0; i < count_; ++i)
    if (options_[i].number == number) return true;
  return false;
}

bool Exchange::Respond(const Response& response) {
  if (state_ != State::kOpen) return false;
  state_ = State::kResponded;
  return layer_.RespondNow(*this, response);
}

DeferredResponse Exchange::Defer() {
  if (state_ != State::kOpen) return DeferredResponse();
  state_ = State::kDeferred;
  return layer_.DeferExchange(*this);
}

bool DeferredResponse::Respond(const Response& response) {
  if (layer_ == nullptr) return false;
  return layer_->RespondDeferred(id_, response);
}

// ---------------------------------------------------------------------------------------
// internal helpers

namespace internal {

std::string RequestIdentity(const MessageView& request) {
  std::string id;
  id.push_back(static_cast<char>(request.code()));
  for (const OptionView& o : request.options()) {
    switch (o.number) {
      case option::kUriHost:
      case option::kUriPort:
      case option::kUriPath:
      case option::kUriQuery:
      case option::kAccept:
        id.push_back(static_cast<char>(o.number));
        id.push_back(static_cast<char>(o.value.size() >> 8));
        id.push_back(static_cast<char>(o.value.size() & 0xff));
        id.append(o.AsString());
        break;
      default:
        break;
    }
  }
  return id;
}

void SlotIndex::Reset(size_t capacity) {
  // Slots are named by uint32_t. DedupCache reaches 2^32 slots only with a ring of 2^30
  // records (64 GiB), far beyond any sensible dedup_max_entries.
  LWM2MD_CHECK(std::has_single_bit(capacity) && capacity <= (size_t{1} << 32));
  slots_.assign(capacity, Slot{});
  mask_ = static_cast<uint32_t>(capacity - 1);
  size_ = 0;
}

DedupCache::DedupCache(size_t max_entries, size_t arena_bytes)
    : max_entries_(max_entries == 0 ? 1 : max_entries),
      max_ring_size_(std::bit_ceil(max_entries_)),
      arena_capacity_(arena_bytes == 0 ? 1 : arena_bytes) {}

uint32_t DedupCache::KeyHash(const Key& key) {
  // RFC 7252 §4.4 has a client count its message ids up by one, so eight consecutive ids of
  // a peer get adjacent home slots (one cache line): the probe for a new id then mostly
  // reads a line its predecessors already brought in, instead of a random cold one. The
  // groups themselves are spread by the (seeded) hash, so a peer still cannot aim at
  // another's slots.
  const uint64_t group = absl::HashOf(key.peer, static_cast<uint16_t>(key.mid >> 3));
  return SlotIndex::StoredHash((group & ~uint64_t{7}) | (key.mid & 7));
}

SlotIndex::ProbeResult DedupCache::Probe(uint32_t hash, const Key& key) const {
  return index_.Probe(hash, [&](uint32_t seq) { return At(seq).key == key; });
}

std::optional<DedupCache::Hit> DedupCache::Find(const net::PeerAddress& peer, uint16_t mid,
                                                net::TimePoint now) const {
  if (index_.size() == 0) return std::nullopt;  // also: no slots before the first Insert
  const Key key{peer, mid};
  const SlotIndex::ProbeResult p = Probe(KeyHash(key), key);
  if (!p.found) return std::nullopt;
  const Record& r = At(index_.value(p.slot));
  if (r.expiry <= now) return std::nullopt;
  Hit hit{r.kind, {}};
  if (r.kind == Kind::kResponse)
    hit.response = std::span<const uint8_t>(arena_.data() + r.start % arena_capacity_, r.length);
  return hit;
}

void DedupCache::Insert(const net::PeerAddress& peer, uint16_t mid, net::TimePoint now,
                        net::TimePoint expiry, Kind kind, std::span<const uint8_t> response) {
  Expire(now);
  if (count_ == max_entries_) {
    PopOldest(/*evicting=*/true);
  } else if (count_ == ring_.size()) {
    Grow();
  }
  Record r;
  r.key = Key{peer, mid};
  r.kind = kind;
  r.expiry = expiry;
  if (kind == Kind::kResponse) {
    if (response.empty() || response.size() > arena_capacity_) {
      // Cannot be replayed; a duplicate is then ignored, as while the answer is pending.
      r.kind = Kind::kPending;
    } else {
      r.start = Allocate(response.size());
      r.length = static_cast<uint32_t>(response.size());
      std::memcpy(arena_.data() + r.start % arena_capacity_, response.data(), response.size());
    }
  }
  // Probed only now: the pops above may have removed this key's older record.
  const uint64_t seq = head_seq_ + count_;
  r.hash = KeyHash(r.key);
  const SlotIndex::ProbeResult p = Probe(r.hash, r.key);
  if (p.found) {
    index_.set_value(p.slot, static_cast<uint32_t>(seq));  // supersedes the older record
  } else {
    index_.Place(p.slot, r.hash, static_cast<uint32_t>(seq));
  }
  At(seq) = r;
  ++count_;
  // Halfway through a group of eight ids (see KeyHash), load the line of the next group,
  // which the peer's next ids will probe.
  if ((mid & 7) == 4) index_.Prefetch(KeyHash(Key{peer, static_cast<uint16_t>(mid + 4)}));
}

void DedupCache::Expire(net::TimePoint now) {
  if (count_ == 0 || At(head_seq_).expiry > now) return;
  while (count_ > 0 && At(head_seq_).expiry <= now) PopOldest(/*evicting=*/false);
  // A burst (a registration storm) grows the ring, its index and the arena to their
  // bounds; once its records expire that memory would otherwise stay with the shard for
  // good. An idle cache gives everything back, a sparse one shrinks its ring and index
  // (to half full, so that steady traffic does not resize back and forth); the arena, sized
  // by configuration, stays while any record lives.
  if (count_ == 0) {
    ring_ = std::vector<Record>();
    ring_mask_ = 0;
    index_ = SlotIndex();
    arena_ = std::vector<uint8_t>();
  } else if (ring_.size() >= kShrinkMinRing && count_ < ring_.size() / 8) {
    Resize(std::bit_ceil(std::max<size_t>(16, 2 * count_)));
  }
}

void DedupCache::PopOldest(bool evicting) {
  const Record& r = At(head_seq_);
  // Absent when a newer record of the same key superseded this one.
  if (const SlotIndex::ProbeResult p = index_.ProbeValue(r.hash, static_cast<uint32_t>(head_seq_));
      p.found) {
    index_.Erase(p.slot);
    if (evicting) ++evictions_;
  }
  if (r.length != 0) reclaim_pos_ = r.start + r.length;
  ++head_seq_;
  --count_;
  if (count_ == 0) {
    reclaim_pos_ = write_pos_;
  } else {
    // Under load the cache is full and every insert pops the oldest record, which, like its
    // index slot, was last touched a full ring ago and is no longer cached: start loading
    // the records a few pops ahead, and the slot of the next one (its record was prefetched
    // earlier), so that neither load stalls the pop that needs it.
    constexpr uint64_t kRecordsAhead = 4;
    if (count_ > kRecordsAhead) __builtin_prefetch(&At(head_seq_ + kRecordsAhead));
    index_.Prefetch(At(head_seq_).hash);
  }
}

void DedupCache::Grow() {
  Resize(std::min(std::max<size_t>(16, ring_.size() * 2), max_ring_size_));
}

void DedupCache::Resize(size_t size) {
  std::vector<Record> ring(size);
  const uint64_t mask = size - 1;
  for (uint64_t seq = head_seq_; seq != head_seq_ + count_; ++seq) ring[seq & mask] = At(seq);
  ring_ = std::move(ring);
  ring_mask_ = mask;
  // Rebuilt from the stored hashes, so no key is hashed again.
  SlotIndex index;
  index.Reset(4 * size);
  for (uint32_t i = 0; i < index_.capacity(); ++i)
    if (index_.hash(i) != 0) index.Insert(index_.hash(i), index_.value(i));
  index_ = std::move(index);
}

uint64_t DedupCache::Allocate(size_t n) {
  if (arena_.empty()) arena_.resize(arena_capacity_);
  uint64_t pos = write_pos_;
  const uint64_t physical = pos % arena_capacity_;
  // A response is stored contiguously: skip the tail of the ring if it does not fit there.
  if (physical + n > arena_capacity_) pos += arena_capacity_ - physical;
  while (pos + n - reclaim_pos_ > arena_capacity_) {
    if (count_ == 0) {
      reclaim_pos_ = pos;
      break;
    }
    PopOldest(/*evicting=*/true);
  }
  write_pos_ = pos + n;
  return pos;
}

const Block2Cache::Entry* Block2Cache::Find(const Key& key, net::TimePoint now) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second->expiry <= now) return nullptr;
  return it->second.get();
}

bool Block2Cache::Put(Key key, Entry entry) {
  if (auto existing = entries_.find(key); existing != entries_.end()) Erase(existing);
  const size_t size = entry.bytes();
  if (size > max_bytes_) return false;
  while (bytes_ + size > max_bytes_ && !order_.empty()) {
    auto it = entries_.find(order_.front().first);
    if (it != entries_.end() && it->second->generation == order_.front().second) Erase(it);
    order_.pop_front();
  }
  entry.generation = next_generation_++;
  auto stored = std::make_unique<Entry>(std::move(entry));
  bytes_ += size;
  order_.emplace_back(key, stored->generation);
  entries_.insert_or_assign(std::move(key), std::move(stored));
  return true;
}

void Block2Cache::Expire(net::TimePoint now) {
  while (!order_.empty()) {
    auto it = entries_.find(order_.front().first);
    if (it != entries_.end() && it->second->generation == order_.front().second) {
      if (it->second->expiry > now) break;
      Erase(it);
    }
    order_.pop_front();
  }
}

void Block2Cache::Erase(absl::flat_hash_map<Key, std::unique_ptr<Entry>>::iterator it) {
  bytes_ -= it->second->bytes();
  entries_.erase(it);
}

}  // namespace internal

// ---------------------------------------------------------------------------------------
// MessageLayer: construction and plumbing

MessageLayer::MessageLayer(net::ShardIo& io, const Config& config, CoapMetrics& metrics,
                           RequestHandler& handler)
    : io_(io),
      config_(config),
      metrics_(metrics),
      handler_(handler),
      owner_thread_(std::this_thread::get_id()),
      dedup_(config.dedup_max_entries, config.dedup_cache_bytes),
      block2_(config.block2_cache_bytes),
      transmission_pool_(kMaxIdleTransmissions),
      next_peer_sweep_(io.Now()) {
  LWM2MD_CHECK(config_.Validate().ok());
}

absl::Status MessageLayer::SetTransmissionParameters(uint32_t ack_timeout_ms,
                                                     double ack_random_factor,
                                                     uint32_t max_retransmit) {
  Config next = config_;
  next.ack_timeout_ms = ack_timeout_ms;
  next.ack_random_factor = ack_random_factor;
  next.max_retransmit = max_retransmit;
  next.separate_ack_delay_ms = std::min(Config().separate_ack_delay_ms, ack_timeout_ms / 2);
  if (absl::Status status = next.Validate(); !status.ok()) return status;
  config_ = next;
  return absl::OkStatus();
}

MessageLayer::~MessageLayer() {
  LWM2MD_DCHECK_ON_SHARD();
  // Timer callbacks point at this object: none may outlive it.
  for (auto& [key, tx] : transmissions_) CancelTimer(tx->timer);
  for (auto& [token, request] : requests_) CancelTimer(request.deadline);
  for (auto& [id, d] : deferred_) {
    CancelTimer(d.ack_timer);
    CancelTimer(d.expiry_timer);
  }
  for (auto& [key, transfer] : block1_) CancelTimer(transfer->timer);
  CancelTimer(housekeeping_timer_);
}

net::TimerWheel::Id MessageLayer::Schedule(net::Duration delay, absl::AnyInvocable<void()> fn) {
  return io_.timers().Schedule(io_.Now() + delay, std::move(fn));
}

void MessageLayer::CancelTimer(net::TimerWheel::Id& id) {
  if (id != net::TimerWheel::kNoTimer) io_.timers().Cancel(id);
  id = net::TimerWheel::kNoTimer;
}

void MessageLayer::SendBytes(int listener, const net::PeerAddress& peer,
                             std::span<const uint8_t> bytes) {
  metrics_.MessageSent(TypeOfBytes(bytes), bytes[1]);
  if (!io_.Send(listener, peer, bytes)) metrics_.SendFailed();
}

void MessageLayer::SendEmpty(int listener, const net::PeerAddress& peer, Type type, uint16_t mid) {
  std::array<uint8_t, 4> buffer;
  SendBytes(listener, peer, BuildEmpty(type, mid, buffer));
}

uint16_t MessageLayer::NextMessageId(const net::PeerAddress& peer) {
  auto [it, inserted] = peers_.try_emplace(peer);
  // RFC 7252 §4.4: the first id towards a peer is randomised.
  if (inserted) it->second.next_mid = absl::Uniform<uint16_t>(bitgen_);
  it->second.last_used = io_.Now();
  const uint16_t raw = it->second.next_mid++;
  if (mid_shard_bits_ == 0) return raw;
  const int low_bits = 16 - mid_shard_bits_;
  return static_cast<uint16_t>((routing_shard_ << low_bits) | (raw & ((1u << low_bits) - 1)));
}

void MessageLayer::SetShardRouting(int shard_id, int shard_count, ForwardHandler forward) {
  LWM2MD_CHECK(shard_id >= 0 && shard_id < shard_count && shard_count <= (1 << kTokenShardBits));
  routing_shard_ = shard_id;
  routing_count_ = shard_count;
  mid_shard_bits_ = 0;
  while ((1 << mid_shard_bits_) < shard_count) ++mid_shard_bits_;
  forward_ = std::move(forward);
}

int MessageLayer::TokenShard(Token token, int shard_count) {
  if (shard_count <= 1) return 0;
  return static_cast<int>((token >> (64 - kTokenShardBits)) % static_cast<uint64_t>(shard_count));
}

int MessageLayer::OwnerShard(const MessageView& m) const {
  if (routing_count_ <= 1 || !forward_) return -1;
  int owner;
  if (std::optional<uint64_t> token = internal::DecodeToken(m.token()); token && *token != 0) {
    owner = TokenShard(*token, routing_count_);
  } else if (!m.token().empty()) {
    return -1;  // not a token of ours
  } else {
    owner = m.message_id() >> (16 - mid_shard_bits_);
    if (owner >= routing_count_) return -1;
  }
  return owner == routing_shard_ ? -1 : owner;
}

MessageLayer::Token MessageLayer::NextToken() {
  for (;;) {
    // RFC 7252 §5.3.1: tokens should not be guessable by an off-path attacker. 32 random
    // bits per token; the counter in the low half keeps live tokens distinct.
    Token token = (uint64_t{absl::Uniform<uint32_t>(bitgen_)} << 32) | ++token_counter_;
    if (routing_count_ > 1) {
      // The shard id replaces the top random bits (22 random bits remain).
      constexpr int kShift = 64 - kTokenShardBits;
      token = (token & ((uint64_t{1} << kShift) - 1)) | (uint64_t(routing_shard_) << kShift);
    }
    if (token != kNoToken && !requests_.contains(token)) return token;
  }
}

void MessageLayer::ScheduleHousekeeping() {
  if (housekeeping_timer_ != net::TimerWheel::kNoTimer) return;
  if (dedup_.size() == 0 && block2_.size() == 0 && peers_.empty()) return;
  housekeeping_timer_ = Schedule(kHousekeepingPeriod, [this] { Housekeeping(); });
}

void MessageLayer::Housekeeping() {
  housekeeping_timer_ = net::TimerWheel::kNoTimer;
  const net::TimePoint now = io_.Now();
  dedup_.Expire(now);
  block2_.Expire(now);
  if (now >= next_peer_sweep_) {
    next_peer_sweep_ = now + std::chrono::seconds(30);
    // RFC 7252 §4.4: once EXCHANGE_LIFETIME has passed without traffic to a peer, any
    // message id is safe again, so its counter can go.
    const net::Duration lifetime = config_.ExchangeLifetime();
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (it->second.last_used + lifetime <= now) {
        peers_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  UpdateGauges();
  ScheduleHousekeeping();
}

void MessageLayer::UpdateGauges() {
  metrics_.SetDedupEntries(dedup_.size());
  metrics_.SetOutstandingRequests(requests_.size());
  metrics_.SetBlock2CacheBytes(block2_.bytes());
  const uint64_t evictions = dedup_.evictions();
  if (evictions > reported_evictions_) {
    metrics_.DedupEvicted(evictions - reported_evictions_);
    reported_evictions_ = evictions;
  }
}

// ---------------------------------------------------------------------------------------
// Receiving

void MessageLayer::OnDatagram(const net::ReceivedDatagram& d) {
  LWM2MD_DCHECK_ON_SHARD();
  Receive(d);
  ScheduleHousekeeping();
  UpdateGauges();
}

void MessageLayer::Receive(const net::ReceivedDatagram& d) {
  MessageView m;
  const ParseError error = MessageView::Parse(d.bytes, &m);
  if (error != ParseError::kOk) {
    OnFormatError(d, error);
    return;
  }
  metrics_.MessageReceived(m.type(), m.code());
  if (m.IsEmpty()) {
    OnEmpty(d, m);
    return;
  }
  switch (CodeClass(m.code())) {
    case 0:
      OnRequestMessage(d, m);
      return;
    case 2:
    case 4:
    case 5:
      OnResponseMessage(d, m);
      return;
    default:
      // Classes 1, 3, 6 and 7 carry nothing CoAP over UDP defines (RFC 7252 §12.1): treat
      // as a format error, rejecting a CON with RST and ignoring the rest (§4.2, §4.3).
      metrics_.Dropped(DropReason::kReservedCodeClass);
      if (m.type() == Type::kConfirmable)
        SendEmpty(d.listener, d.peer, Type::kReset, m.message_id());
      return;
  }
}

void MessageLayer::OnFormatError(const net::ReceivedDatagram& d, ParseError error) {
  metrics_.ParseFailed(error);
  // RFC 7252 §3: a message with an unknown version is silently ignored; fewer than four
  // bytes carry no message id to answer.
  if (error == ParseError::kBadVersion || error == ParseError::kTruncatedHeader ||
      d.bytes.size() < 4)
    return;
  // RFC 7252 §4.2: a CON with a message format error is rejected with a matching RST;
  // §4.3: a NON is silently ignored, as are ACK and RST (nothing may answer them).
  if (TypeOfBytes(d.bytes) == Type::kConfirmable)
    SendEmpty(d.listener, d.peer, Type::kReset, MessageIdOfBytes(d.bytes));
}

void MessageLayer::OnEmpty(const net::ReceivedDatagram& d, const MessageView& m) {
  switch (m.type()) {
    case Type::kConfirmable:
      // RFC 7252 §4.3: an empty CON ("CoAP ping") is answered with RST.
      metrics_.PingAnswered();
      SendEmpty(d.listener, d.peer, Type::kReset, m.message_id());
      return;
    case Type::kNonConfirmable:
      // RFC 7252 §4.3: a NON always carries a request or response.
      metrics_.Dropped(DropReason::kEmptyNonConfirmable);
      return;
    case Type::kAcknowledgement:
      OnAckOrReset(d, m, /*reset=*/false);
      return;
    case Type::kReset:
      metrics_.ResetReceived();
      OnAckOrReset(d, m, /*reset=*/true);
      return;
  }
}

void MessageLayer::OnAckOrReset(const net::ReceivedDatagram& d, const MessageView& m, bool reset) {
  // RFC 7252 §4.2: ACK and RST match the CON (or NON, §4.3) by message id and endpoint.
  const MidKey key{d.peer, m.message_id()};
  auto it = transmissions_.find(key);
  if (it == transmissions_.end()) {
    if (const int owner = OwnerShard(m); owner >= 0) return forward_(owner, d);
    metrics_.Dropped(DropReason::kUnmatchedAckOrReset);
    return;
  }
  Transmission& tx = *it->second;
  if (tx.kind == Transmission::Kind::kSeparateResponse) {
    // Acknowledged, or rejected with RST (§4.2): either way our separate response is done.
    ReleaseTransmission(key);
    return;
  }
  const Token token = tx.token;
  if (reset) {
    ReleaseTransmission(key);
    CompleteRequest(token, ClientResult::Status::kReset, nullptr);
    return;
  }
  if (!tx.confirmable) {
    // Nothing acknowledges a NON (RFC 7252 §4.3).
    metrics_.Dropped(DropReason::kUnmatchedAckOrReset);
    return;
  }
  if (m.IsEmpty()) {
    // RFC 7252 §5.2.2: the response follows in its own message; stop retransmitting and
    // wait for it.
    ReleaseTransmission(key);
    auto r = requests_.find(token);
    if (r != requests_.end() && r->second.state == ClientRequest::State::kAwaitingAck) {
      r->second.state = ClientRequest::State::kAwaitingResponse;
      r->second.deadline =
          Schedule(config_.ExchangeLifetime(), [this, token] { OnRequestDeadline(token); });
    }
    return;
  }
  // RFC 7252 §5.3.2: a piggybacked response matches the message id and the token.
  if (!(internal::EncodeToken(token) == m.token())) {
    metrics_.Dropped(DropReason::kUnmatchedAckOrReset);
    return;
  }
  ReleaseTransmission(key);
  OnResponseForRequest(token, m);
}

void MessageLayer::OnResponseMessage(const net::ReceivedDatagram& d, const MessageView& m) {
  if (m.type() == Type::kReset) {
    metrics_.Dropped(DropReason::kNonEmptyReset);
    return;
  }
  // RFC 7252 §5.4.1: an unrecognised critical option in a response rejects it: RST for a
  // CON, silence for an ACK or NON.
  if (m.FirstUnknownCriticalOption() != 0) {
    metrics_.Dropped(DropReason::kUnknownCriticalOption);
    if (m.type() == Type::kConfirmable) SendEmpty(d.listener, d.peer, Type::kReset, m.message_id());
    return;
  }
  if (m.type() == Type::kAcknowledgement) {
    OnAckOrReset(d, m, /*reset=*/false);
    return;
  }
  // A separate response or a notification, CON or NON.
  const bool con = m.type() == Type::kConfirmable;
  const net::TimePoint now = io_.Now();
  if (auto hit = dedup_.Find(d.peer, m.message_id(), now)) {
    // RFC 7252 §4.5: processed once; a duplicate CON gets its ACK again.
    metrics_.Duplicate();
    if (con && hit->kind == DedupCache::Kind::kEmptyAck)
      SendEmpty(d.listener, d.peer, Type::kAcknowledgement, m.message_id());
    return;
  }
  const std::optional<uint64_t> token = internal::DecodeToken(m.token());
  auto it = token ? requests_.find(*token) : requests_.end();
  // RFC 7252 §5.3.2: a response matches by token and endpoint.
  if (it == requests_.end()) {
    if (const int owner = OwnerShard(m); owner >= 0) return forward_(owner, d);
  }
  if (it == requests_.end() || !(it->second.peer == d.peer)) {
    // An observation whose device changed address is offered too (the handler knows where
    // the device now is); a plain request answered from elsewhere is not.
    const bool offer =
        it == requests_.end() || it->second.state == ClientRequest::State::kObserving;
    const bool accepted = token && offer && unmatched_handler_ &&
                          unmatched_handler_(*token, m, d.listener, d.peer);
    if (!accepted) {
      // RFC 7252 §4.2 (CON), §4.3 (NON), RFC 7641 §3.6 (notifications): a response nobody
      // waits for is rejected with RST, which also ends an observation on the device.
      metrics_.Dropped(DropReason::kUnmatchedResponse);
      SendEmpty(d.listener, d.peer, Type::kReset, m.message_id());
      return;
    }
    AcceptResponse(d, m, now);
    ScheduleHousekeeping();
    return;
  }
  AcceptResponse(d, m, now);
  OnResponseForRequest(*token, m);
}

void MessageLayer::AcceptResponse(const net::ReceivedDatagram& d, const MessageView& m,
                                  net::TimePoint now) {
  if (m.type() == Type::kConfirmable) {
    // RFC 7252 §5.2.2: the client acknowledges a CON response.
    SendEmpty(d.listener, d.peer, Type::kAcknowledgement, m.message_id());
    dedup_.Insert(d.peer, m.message_id(), now, now + config_.ExchangeLifetime(),
                  DedupCache::Kind::kEmptyAck);
  } else {
    dedup_.Insert(d.peer, m.message_id(), now, now + config_.NonLifetime(),
                  DedupCache::Kind::kNonConfirmable);
  }
}

// ---------------------------------------------------------------------------------------
// Client side

MessageLayer::Token MessageLayer::SendRequest(int listener, const net::PeerAddress& peer,
                                              const RequestParams& params,
                                              absl::FunctionRef<bool(MessageBuilder&)> write,
                                              ResponseCallback callback) {
  LWM2MD_DCHECK_ON_SHARD();
  LWM2MD_DCHECK(params.type == Type::kConfirmable || params.type == Type::kNonConfirmable);
  LWM2MD_DCHECK(CodeClass(params.method) == 0 && params.method != code::kEmpty);
  const bool con = params.type != Type::kNonConfirmable;
  if (params.token != kNoToken && requests_.contains(params.token)) return kNoToken;
  const Token token = params.token != kNoToken ? params.token : NextToken();
  const uint16_t mid = NextMessageId(peer);
  MessageBuilder builder(scratch_);
  builder.Header(con ? Type::kConfirmable : Type::kNonConfirmable, params.method, mid,
                 internal::EncodeToken(token).span());
  if (!write(builder)) return kNoToken;
  const std::span<const uint8_t> bytes = builder.Finish();
  if (bytes.empty()) return kNoToken;

  StartTransmission(Transmission::Kind::kRequest, con, listener, peer, mid, token,
                    con ? bytes : std::span<const uint8_t>());
  ClientRequest& r = requests_[token];
  r.state = con ? ClientRequest::State::kAwaitingAck : ClientRequest::State::kAwaitingResponse;
  r.observe = params.observe;
  r.listener = listener;
  r.peer = peer;
  r.mid = mid;
  r.callback = std::move(callback);
  if (!con) {
    // Nothing retransmits a NON (RFC 7252 §4.3); give the response as long as a CON would
    // have had for its ACK (MAX_TRANSMIT_WAIT, §4.8.2).
    r.deadline = Schedule(config_.MaxTransmitWait(), [this, token] { OnRequestDeadline(token); });
  }
  SendBytes(listener, peer, bytes);
  ScheduleHousekeeping();
  UpdateGauges();
  return token;
}

bool MessageLayer::AdoptObservation(Token token, int listener, const net::PeerAddress& peer,
                                    ResponseCallback callback) {
  LWM2MD_DCHECK_ON_SHARD();
  if (token == kNoToken) return false;
  auto it = requests_.find(token);
  if (it != requests_.end() && it->second.state != ClientRequest::State::kObserving) return false;
  ClientRequest& r = requests_[token];
  CancelTimer(r.deadline);
  r.state = ClientRequest::State::kObserving;
  r.observe = true;
  r.listener = listener;
  r.peer = peer;
  r.mid = 0;
  r.callback = std::move(callback);
  UpdateGauges();
  return true;
}

bool MessageLayer::Cancel(Token token) {
  LWM2MD_DCHECK_ON_SHARD();
  auto it = requests_.find(token);
  if (it == requests_.end()) return false;
  const MidKey key{it->second.peer, it->second.mid};
  CancelTimer(it->second.deadline);
  requests_.erase(it);
  if (auto tx = transmissions_.find(key); tx != transmissions_.end() && tx->second->token == token)
    ReleaseTransmission(key);
  UpdateGauges();
  return true;
}

void MessageLayer::OnResponseForRequest(Token token, const MessageView& m) {
  auto it = requests_.find(token);
  if (it == requests_.end()) return;
  ClientRequest& r = it->second;
  // A response also acknowledges a request whose empty ACK was lost (RFC 7252 §5.2.2); a
  // NON request no longer needs to be matchable by RST.
  const MidKey key{r.peer, r.mid};
  if (auto tx = transmissions_.find(key); tx != transmissions_.end() && tx->second->token == token)
    ReleaseTransmission(key);
  CancelTimer(r.deadline);
  // RFC 7641 §3.1, §3.2: a 2.xx response carrying Observe means the device registered us;
  // anything else (no Observe, an error) ends the request, notifications included.
  const bool observing = r.observe && CodeClass(m.code()) == 2 && m.observe().has_value();
  if (!observing) {
    CompleteRequest(token, ClientResult::Status::kResponse, &m);
    return;
  }
  r.state = ClientRequest::State::kObserving;
  // Moved out for the call: the callback may send requests (rehashing requests_) or
  // cancel this one.
  ResponseCallback callback = std::move(r.callback);
  ClientResult result;
  result.status = ClientResult::Status::kResponse;
  result.response = &m;
  result.observing = true;
  callback(result);
  if (auto again = requests_.find(token); again != requests_.end())
    again->second.callback = std::move(callback);
}

void MessageLayer::CompleteRequest(Token token, ClientResult::Status status,
                                   const MessageView* response) {
  auto it = requests_.find(token);
  if (it == requests_.end()) return;
  ClientRequest r = std::move(it->second);
  requests_.erase(it);
  const MidKey key{r.peer, r.mid};
  if (auto tx = transmissions_.find(key); tx != transmissions_.end() && tx->second->token == token)
    ReleaseTransmission(key);
  CancelTimer(r.deadline);
  if (status == ClientResult::Status::kTimeout) metrics_.RequestTimedOut();
  UpdateGauges();
  ClientResult result;
  result.status = status;
  result.response = response;
  if (r.callback) r.callback(result);
}

void MessageLayer::OnRequestDeadline(Token token) {
  auto it = requests_.find(token);
  if (it == requests_.end()) return;
  it->second.deadline = net::TimerWheel::kNoTimer;  // fired
  CompleteRequest(token, ClientResult::Status::kTimeout, nullptr);
}

// ---------------------------------------------------------------------------------------
// Transmissions (our CONs awaiting ACK)

MessageLayer::Transmission* MessageLayer::StartTransmission(Transmission::Kind kind,
                                                            bool confirmable, int listener,
                                                            const net::PeerAddress& peer,
                                                            uint16_t mid, Token token,
                                                            std::span<const uint8_t> bytes) {
  const MidKey key{peer, mid};
  // Only after 65536 messages to one peer could an id come round while still tracked.
  ReleaseTransmission(key);
  std::unique_ptr<Transmission> tx = transmission_pool_.Acquire();
  tx->kind = kind;
  tx->confirmable = confirmable;
  tx->listener = listener;
  tx->peer = peer;
  tx->mid = mid;
  tx->token = token;
  tx->bytes.assign(bytes.begin(), bytes.end());
  tx->retransmits = 0;
  tx->timer = net::TimerWheel::kNoTimer;
  Transmission* raw = tx.get();
  if (confirmable) {
    // RFC 7252 §4.2: the first timeout is random in [ACK_TIMEOUT,
    // ACK_TIMEOUT * ACK_RANDOM_FACTOR], so that many clients do not retransmit in step.
    double factor = 1.0;
    if (config_.ack_random_factor > 1.0)
      factor = absl::Uniform(absl::IntervalClosedClosed, bitgen_, 1.0, config_.ack_random_factor);
    tx->timeout = Scale(config_.AckTimeout(), factor);
    tx->timer = Schedule(tx->timeout, [this, raw] { OnRetransmitTimer(raw); });
  }
  transmissions_.emplace(key, std::move(tx));
  return raw;
}

void MessageLayer::ReleaseTransmission(const MidKey& key) {
  auto it = transmissions_.find(key);
  if (it == transmissions_.end()) return;
  std::unique_ptr<Transmission> tx = std::move(it->second);
  transmissions_.erase(it);
  CancelTimer(tx->timer);
  tx->bytes.clear();  // keeps its capacity for the next message
  transmission_pool_.Release(std::move(tx));
}

void MessageLayer::OnRetransmitTimer(Transmission* tx) {
  LWM2MD_DCHECK_ON_SHARD();
  tx->timer = net::TimerWheel::kNoTimer;  // fired
  if (tx->retransmits >= config_.max_retransmit) {
    // RFC 7252 §4.2: after MAX_RETRANSMIT retransmissions the sender gives up.
    const MidKey key{tx->peer, tx->mid};
    if (tx->kind == Transmission::Kind::kRequest) {
      const Token token = tx->token;
      ReleaseTransmission(key);
      CompleteRequest(token, ClientResult::Status::kTimeout, nullptr);
    } else {
      metrics_.SeparateResponseUnacknowledged();
      ReleaseTransmission(key);
    }
    ScheduleHousekeeping();
    UpdateGauges();
    return;
  }
  // RFC 7252 §4.2: retransmit and double the timeout.
  ++tx->retransmits;
  tx->timeout *= 2;
  metrics_.Retransmission();
  SendBytes(tx->listener, tx->peer, tx->bytes);
  tx->timer = Schedule(tx->timeout, [this, tx] { OnRetransmitTimer(tx); });
}

// ---------------------------------------------------------------------------------------
// Server side: requests

void MessageLayer::OnRequestMessage(const net::ReceivedDatagram& d, const MessageView& m) {
  if (m.type() == Type::kAcknowledgement) {
    // RFC 7252 §4.2: an ACK carries a response or nothing; ignored.
    metrics_.Dropped(DropReason::kRequestInAck);
    return;
  }
  if (m.type() == Type::kReset) {
    metrics_.Dropped(DropReason::kNonEmptyReset);
    return;
  }
  const bool con = m.type() == Type::kConfirmable;
  if (auto hit = dedup_.Find(d.peer, m.message_id(), io_.Now())) {
    // RFC 7252 §4.5: the handler runs once; a duplicate CON gets the same answer again.
    metrics_.Duplicate();
    if (con) {
      if (hit->kind == DedupCache::Kind::kResponse) {
        SendBytes(d.listener, d.peer, hit->response);
      } else if (hit->kind == DedupCache::Kind::kEmptyAck) {
        SendEmpty(d.listener, d.peer, Type::kAcknowledgement, m.message_id());
      }
    }
    return;
  }

  ReplyContext ctx;
  ctx.listener = d.listener;
  ctx.peer = d.peer;
  ctx.request_type = m.type();
  ctx.request_mid = m.message_id();
  ctx.token = internal::SmallBytes::From(m.token());

  if (m.FirstUnknownCriticalOption() != 0) {
    // RFC 7252 §5.4.1: a CON request gets 4.02 Bad Option; a NON is rejected (§4.3:
    // silently, since a RST is optional).
    if (!con) {
      metrics_.Dropped(DropReason::kUnknownCriticalOption);
      return;
    }
    metrics_.BadOptionAnswered();
    ReplyNow(ctx, Response(code::kBadOption).Payload(kBadOptionDiagnostic), {});
    return;
  }

  std::optional<BlockOption> block1;
  std::optional<BlockOption> block2;
  for (const uint16_t number : {option::kBlock1, option::kBlock2}) {
    const std::optional<OptionView> o = m.Find(number);
    if (!o) continue;
    const std::optional<BlockOption> b = BlockOption::Decode(o->value);
    if (!b) {
      // A value longer than 3 bytes is out of the option's range and treated like an
      // unrecognised critical option (RFC 7252 §5.4.3: 4.02); SZX 7 is reserved (RFC 7959
      // §2.2: 4.00 Bad Request).
      metrics_.Dropped(DropReason::kBadBlockOption);
      ReplyNow(ctx, Response(o->value.size() > 3 ? code::kBadOption : code::kBadRequest), {});
      return;
    }
    (number == option::kBlock1 ? block1 : block2) = b;
  }
  ctx.block2 = block2;

  if (block1) {
    OnBlock1(d, m, ctx, *block1);
    return;
  }
  if (m.payload().size() > config_.max_body_size) {
    // RFC 7959 §2.9.3: 4.13, with Size1 telling the largest body we accept.
    ReplyNow(
        ctx,
        Response(code::kRequestEntityTooLarge).UintOption(option::kSize1, config_.max_body_size),
        {});
    return;
  }
  if (block2 && block2->num > 0 && ServeBlock2FromCache(m, ctx)) return;
  Dispatch(m, ctx);
}

void MessageLayer::Dispatch(const MessageView& request, const ReplyContext& ctx) {
  Exchange exchange(*this, request, ctx);
  handler_.OnRequest(exchange);
  if (exchange.state_ == Exchange::State::kOpen) {
    // The handler neither answered nor deferred: a bug there, but the client still gets an
    // answer rather than retransmitting into silence.
    metrics_.HandlerError();
    LWM2MD_LOG(kDebug, "coap: handler left a request from %s unanswered", ctx.peer.ToString());
    ReplyNow(ctx, Response(code::kInternalServerError), IdentitySource{&request, nullptr});
  }
}

void MessageLayer::OnBlock1(const net::ReceivedDatagram& d, const MessageView& m, ReplyContext& ctx,
                            const BlockOption& b1) {
  const std::span<const uint8_t> payload = m.payload();
  const uint8_t our_szx = BlockOption::SzxForSize(config_.block_size);
  const Response too_large =
      Response(code::kRequestEntityTooLarge).UintOption(option::kSize1, config_.max_body_size);
  // Copy of the identity: the transfer's state outlives this datagram.
  TransferKey key{d.peer, internal::RequestIdentity(m)};
  auto it = block1_.find(key);
  auto reject = [&](const Response& response) {
    if (it != block1_.end()) EraseBlock1(it);
    metrics_.Block1Rejected();
    ReplyNow(ctx, response, {});
  };

  // RFC 7959 §2.2: every block but the last carries exactly the block size.
  if (b1.more && payload.size() != b1.size()) {
    reject(Response(code::kBadRequest));
    return;
  }
  if (b1.num == 0) {
    // RFC 7959 §2.5: block 0 starts a transfer, replacing an unfinished one.
    if (it != block1_.end()) {
      EraseBlock1(it);
      it = block1_.end();
    }
    // RFC 7959 §4: Size1 announces the body size; refuse at once what we would not take.
    const std::optional<uint32_t> size1 = m.FindUint(option::kSize1);
    if ((size1 && *size1 > config_.max_body_size) || payload.size() > config_.max_body_size) {
      reject(too_large);
      return;
    }
    if (!b1.more) {
      // The whole body in one block: nothing to reassemble.
      metrics_.Block1Completed();
      ctx.block1_echo = b1;
      Dispatch(m, ctx);
      return;
    }
    if (block1_.size() >= config_.max_block1_transfers) {
      // Every reassembly slot of this shard is taken: 5.03, try again later (RFC 7252
      // §5.9.3.4).
      reject(Response(code::kServiceUnavailable));
      return;
    }
    auto transfer = std::make_unique<Block1Transfer>();
    transfer->key = key;
    transfer->body.assign(payload.begin(), payload.end());
    transfer->last_offset = 0;
    transfer->last_size = static_cast<uint32_t>(payload.size());
    Block1Transfer* raw = transfer.get();
    transfer->timer = Schedule(config_.ExchangeLifetime(), [this, raw] { ExpireBlock1(raw); });
    block1_.emplace(std::move(key), std::move(transfer));
  } else {
    if (it == block1_.end()) {
      // RFC 7959 §2.9.2: 4.08, the start of the body is missing.
      reject(Response(code::kRequestEntityIncomplete));
      return;
    }
    Block1Transfer& t = *it->second;
    const uint64_t offset = b1.offset();
    if (b1.more && offset == t.last_offset && payload.size() == t.last_size &&
        offset + payload.size() == t.body.size()) {
      // The previous block again under a new message id (our 2.31 was lost and the client
      // gave up on that exchange): answer it again without appending.
    } else if (offset != t.body.size()) {
      // RFC 7959 §2.9.2: 4.08, a block is missing or out of order.
      reject(Response(code::kRequestEntityIncomplete));
      return;
    } else if (t.body.size() + payload.size() > config_.max_body_size) {
      reject(too_large);
      return;
    } else {
      t.last_offset = static_cast<uint32_t>(offset);
      t.last_size = static_cast<uint32_t>(payload.size());
      t.body.insert(t.body.end(), payload.begin(), payload.end());
      CancelTimer(t.timer);
      Block1Transfer* raw = &t;
      t.timer = Schedule(config_.ExchangeLifetime(), [this, raw] { ExpireBlock1(raw); });
    }
  }

  if (b1.more) {
    // RFC 7959 §2.3: 2.31 Continue echoes the block; M=1 says the body is acted upon as a
    // whole once complete (atomically). A smaller SZX asks the client to continue with our
    // block size (§2.5).
    const BlockOption echo{b1.num, true, std::min(b1.szx, our_szx)};
    ReplyNow(ctx, Response(code::kContinue).Block(option::kBlock1, echo), {});
    return;
  }

  // The last block. Copy: the handler gets one message whose payload is the whole body,
  // with the header, token and options of this last request (the one RFC 7959 §2.3 answers)
  // minus Block1 and Size1, which described the transfer.
  std::vector<uint8_t> body = std::move(it->second->body);
  EraseBlock1(it);
  std::vector<uint8_t> whole(m.bytes().size() + body.size() + 16);
  MessageBuilder builder(whole);
  builder.Header(m.type(), m.code(), m.message_id(), m.token());
  for (const OptionView& o : m.options()) {
    if (o.number != option::kBlock1 && o.number != option::kSize1)
      builder.Option(o.number, o.value);
  }
  builder.Payload(body);
  MessageView reassembled;
  if (builder.Finish().empty() ||
      MessageView::Parse(builder.Finish(), &reassembled) != ParseError::kOk) {
    metrics_.HandlerError();
    ReplyNow(ctx, Response(code::kInternalServerError), {});
    return;
  }
  metrics_.Block1Completed();
  ctx.block1_echo = BlockOption{b1.num, false, b1.szx};
  Dispatch(reassembled, ctx);
}

void MessageLayer::ExpireBlock1(Block1Transfer* transfer) {
  LWM2MD_DCHECK_ON_SHARD();
  transfer->timer = net::TimerWheel::kNoTimer;  // fired
  auto it = block1_.find(transfer->key);
  if (it == block1_.end() || it->second.get() != transfer) return;
  // RFC 7959 §2.5: a transfer the client abandoned is forgotten after EXCHANGE_LIFETIME.
  block1_.erase(it);
  metrics_.Block1Rejected();
}

void MessageLayer::EraseBlock1(
    absl::flat_hash_map<TransferKey, std::unique_ptr<Block1Transfer>>::iterator it) {
  CancelTimer(it->second->timer);
  block1_.erase(it);
}

bool MessageLayer::ServeBlock2FromCache(const MessageView& m, const ReplyContext& ctx) {
  const internal::Block2Cache::Key key{ctx.peer, internal::RequestIdentity(m)};
  const internal::Block2Cache::Entry* e = block2_.Find(key, io_.Now());
  if (e == nullptr) return false;  // the handler regenerates the representation
  Response r(e->code);
  for (size_t i = 0; i + 4 <= e->options.size();) {
    const uint16_t number = static_cast<uint16_t>((e->options[i] << 8) | e->options[i + 1]);
    const size_t length = static_cast<size_t>((e->options[i + 2] << 8) | e->options[i + 3]);
    r.Option(number, std::span<const uint8_t>(e->options.data() + i + 4, length));
    i += 4 + length;
  }
  r.Payload(e->body);
  const bool con = ctx.request_type == Type::kConfirmable;
  const ReplyMode mode = con ? ReplyMode::kPiggybacked : ReplyMode::kNonConfirmable;
  const uint16_t mid = con ? ctx.request_mid : NextMessageId(ctx.peer);
  const std::span<const uint8_t> bytes =
      EncodeBlock(ctx, con ? Type::kAcknowledgement : Type::kNonConfirmable, mid, r,
                  ResponseSzx(ctx), e->etag.span());
  const net::TimePoint now = io_.Now();
  FinishReply(ctx, mode, mid, now + (con ? config_.ExchangeLifetime() : config_.NonLifetime()),
              bytes);
  return true;
}

// ---------------------------------------------------------------------------------------
// Server side: answers

bool MessageLayer::RespondNow(Exchange& exchange, const Response& response) {
  LWM2MD_DCHECK_ON_SHARD();
  ReplyNow(exchange.context_, response, IdentitySource{&exchange.request_, nullptr});
  return true;
}

void MessageLayer::ReplyNow(const ReplyContext& ctx, const Response& response,
                            IdentitySource identity) {
  const bool con = ctx.request_type == Type::kConfirmable;
  const net::TimePoint now = io_.Now();
  SendReply(ctx, con ? ReplyMode::kPiggybacked : ReplyMode::kNonConfirmable,
            now + (con ? config_.ExchangeLifetime() : config_.NonLifetime()), response, identity);
}

DeferredResponse MessageLayer::DeferExchange(Exchange& exchange) {
  LWM2MD_DCHECK_ON_SHARD();
  const ReplyContext& ctx = exchange.context_;
  const bool con = ctx.request_type == Type::kConfirmable;
  const net::TimePoint now = io_.Now();
  const uint64_t id = ++next_deferred_id_;
  Deferred& d = deferred_[id];
  d.reply = ctx;
  // Copy: a large deferred response is cached for Block2 under the request's identity,
  // after the request's datagram is gone.
  d.identity = internal::RequestIdentity(exchange.request_);
  d.dedup_expiry = now + (con ? config_.ExchangeLifetime() : config_.NonLifetime());
  if (!con) {
    dedup_.Insert(ctx.peer, ctx.request_mid, now, d.dedup_expiry,
                  DedupCache::Kind::kNonConfirmable);
  } else if (config_.separate_ack_delay_ms == 0) {
    // RFC 7252 §5.2.2: acknowledge now; the response follows as a separate CON.
    SendEmpty(ctx.listener, ctx.peer, Type::kAcknowledgement, ctx.request_mid);
    d.ack_sent = true;
    dedup_.Insert(ctx.peer, ctx.request_mid, now, d.dedup_expiry, DedupCache::Kind::kEmptyAck);
  } else {
    // Give the handler a moment to answer in the ACK (RFC 7252 §5.2.1) before falling back
    // to an empty ACK and a separate response.
    dedup_.Insert(ctx.peer, ctx.request_mid, now, d.dedup_expiry, DedupCache::Kind::kPending);
    d.ack_timer = Schedule(config_.SeparateAckDelay(), [this, id] { OnDeferredAckTimer(id); });
  }
  d.expiry_timer = Schedule(config_.ExchangeLifetime(), [this, id] { OnDeferredExpired(id); });
  return DeferredResponse(this, id);
}

bool MessageLayer::RespondDeferred(uint64_t id, const Response& response) {
  LWM2MD_DCHECK_ON_SHARD();
  auto it = deferred_.find(id);
  if (it == deferred_.end()) return false;
  Deferred d = std::move(it->second);
  deferred_.erase(it);
  CancelTimer(d.ack_timer);
  CancelTimer(d.expiry_timer);
  ReplyMode mode = ReplyMode::kNonConfirmable;
  if (d.reply.request_type == Type::kConfirmable)
    mode = d.ack_sent ? ReplyMode::kSeparate : ReplyMode::kPiggybacked;
  SendReply(d.reply, mode, d.dedup_expiry, response, IdentitySource{nullptr, &d.identity});
  ScheduleHousekeeping();
  UpdateGauges();
  return true;
}

void MessageLayer::OnDeferredAckTimer(uint64_t id) {
  LWM2MD_DCHECK_ON_SHARD();
  auto it = deferred_.find(id);
  if (it == deferred_.end()) return;
  Deferred& d = it->second;
  d.ack_timer = net::TimerWheel::kNoTimer;  // fired
  // RFC 7252 §5.2.2: the answer takes longer; acknowledge so that the client stops
  // retransmitting, and send the response as a separate CON when it comes.
  SendEmpty(d.reply.listener, d.reply.peer, Type::kAcknowledgement, d.reply.request_mid);
  d.ack_sent = true;
  dedup_.Insert(d.reply.peer, d.reply.request_mid, io_.Now(), d.dedup_expiry,
                DedupCache::Kind::kEmptyAck);
  UpdateGauges();
}

void MessageLayer::OnDeferredExpired(uint64_t id) {
  LWM2MD_DCHECK_ON_SHARD();
  auto it = deferred_.find(id);
  if (it == deferred_.end()) return;
  it->second.expiry_timer = net::TimerWheel::kNoTimer;  // fired
  CancelTimer(it->second.ack_timer);
  deferred_.erase(it);
  metrics_.DeferredExpired();
}

uint8_t MessageLayer::ResponseSzx(const ReplyContext& ctx) const {
  const uint8_t ours = BlockOption::SzxForSize(config_.block_size);
  // RFC 7959 §2.4: the server uses the block size the client asks for, or a smaller one.
  return ctx.block2 && ctx.block2->szx < ours ? ctx.block2->szx : ours;
}

void MessageLayer::SendReply(const ReplyContext& ctx, ReplyMode mode, net::TimePoint dedup_expiry,
                             const Response& response, IdentitySource identity) {
  static const Response internal_error(code::kInternalServerError);
  const Response* r = &response;
  if (!response.ok()) {
    metrics_.HandlerError();
    r = &internal_error;
  }
  const bool handler_blocks = r->Has(option::kBlock2);
  if (!handler_blocks && r->payload().size() > config_.max_body_size) {
    // A representation larger than this server serves (coap.max_body_size). 5.00 rather
    // than 4.13: 4.13 says the request was too large (RFC 7959 §2.9.3), which the client
    // could not fix.
    metrics_.HandlerError();
    r = &internal_error;
  }
  const Type type = mode == ReplyMode::kPiggybacked ? Type::kAcknowledgement
                    : mode == ReplyMode::kSeparate  ? Type::kConfirmable
                                                    : Type::kNonConfirmable;
  const uint16_t mid = mode == ReplyMode::kPiggybacked ? ctx.request_mid : NextMessageId(ctx.peer);
  const uint8_t szx = ResponseSzx(ctx);
  const bool later_block = ctx.block2 && ctx.block2->num > 0;

  std::span<const uint8_t> bytes;
  if (handler_blocks || (r->payload().size() <= (1u << (szx + 4)) && !later_block)) {
    // One message (or a handler doing its own block-wise transfer).
    bytes = EncodeReply(ctx, type, mid, *r, r->payload(), std::nullopt, 0, {});
  } else {
    // RFC 7959 §2.4: one block now; the representation is kept for the following block
    // requests. An ETag (RFC 7252 §5.10.6) lets the client check that the blocks belong to
    // one representation; only success responses carry one.
    internal::SmallBytes etag;
    if (CodeClass(r->code()) == 2 && !r->Has(option::kETag)) etag = ComputeETag(*r);
    if (identity.request != nullptr || identity.copy != nullptr) {
      // Copy: the representation must outlive this exchange for the follow-up requests.
      internal::Block2Cache::Entry entry;
      entry.code = r->code();
      for (size_t i = 0; i < r->option_count(); ++i) {
        const uint16_t number = r->option_number(i);
        const std::span<const uint8_t> value = r->option_value(i);
        entry.options.push_back(static_cast<uint8_t>(number >> 8));
        entry.options.push_back(static_cast<uint8_t>(number));
        entry.options.push_back(static_cast<uint8_t>(value.size() >> 8));
        entry.options.push_back(static_cast<uint8_t>(value.size()));
        entry.options.insert(entry.options.end(), value.begin(), value.end());
      }
      entry.body.assign(r->payload().begin(), r->payload().end());
      entry.etag = etag;
      entry.expiry = io_.Now() + config_.ExchangeLifetime();
      std::string key = identity.request != nullptr ? internal::RequestIdentity(*identity.request)
                                                    : *identity.copy;
      block2_.Put({ctx.peer, std::move(key)}, std::move(entry));
    }
    bytes = EncodeBlock(ctx, type, mid, *r, szx, etag.span());
  }
  if (bytes.empty()) {
    // The handler's options did not fit a message.
    metrics_.HandlerError();
    bytes = EncodeReply(ctx, type, mid, internal_error, {}, std::nullopt, 0, {});
  }
  FinishReply(ctx, mode, mid, dedup_expiry, bytes);
}

std::span<const uint8_t> MessageLayer::EncodeBlock(const ReplyContext& ctx, Type type, uint16_t mid,
                                                   const Response& r, uint8_t szx,
                                                   std::span<const uint8_t> etag) {
  const uint32_t size = 1u << (szx + 4);
  const size_t total = r.payload().size();
  // A later block asked with a larger size than we use is served at our size from the same
  // offset (RFC 7959 §2.4: the server may use a smaller size than asked for).
  const uint32_t num = ctx.block2 ? ctx.block2->offset() / size : 0;
  const size_t offset = static_cast<size_t>(num) * size;
  if (num > 0 && offset >= total) {
    // Past the end of the representation: the Block2 value cannot be served (a malformed
    // option for this resource, RFC 7252 §5.9.2.3).
    const Response out_of_range = Response(code::kBadOption).Payload(kBlockOutOfRange);
    return EncodeReply(ctx, type, mid, out_of_range, out_of_range.payload(), std::nullopt, 0, {});
  }
  const size_t end = std::min(total, offset + size);
  const BlockOption block{num, end < total, szx};
  metrics_.Block2Response();
  return EncodeReply(ctx, type, mid, r, r.payload().subspan(offset, end - offset), block,
                     static_cast<uint32_t>(total), etag);
}

std::span<const uint8_t> MessageLayer::EncodeReply(const ReplyContext& ctx, Type type, uint16_t mid,
                                                   const Response& r,
                                                   std::span<const uint8_t> payload,
                                                   const std::optional<BlockOption>& block2,
                                                   uint32_t size2, std::span<const uint8_t> etag) {
  std::array<OptionRef, Response::kMaxOptions + 5> options;
  size_t n = 0;
  for (size_t i = 0; i < r.option_count(); ++i)
    options[n++] = OptionRef{r.option_number(i), r.option_value(i)};
  if (!etag.empty() && !r.Has(option::kETag)) options[n++] = OptionRef{option::kETag, etag};
  std::array<uint8_t, 3> block2_value;
  std::array<uint8_t, 3> block1_value;
  std::array<uint8_t, 4> size2_value;
  if (block2) {
    const size_t length = block2->Encode(block2_value);
    options[n++] = OptionRef{option::kBlock2, {block2_value.data(), length}};
    if (!r.Has(option::kSize2)) {
      // RFC 7959 §4: Size2 tells the client the size of the whole representation.
      const uint8_t length2 = EncodeUint(size2, size2_value.data());
      options[n++] = OptionRef{option::kSize2, {size2_value.data(), length2}};
    }
  }
  if (ctx.block1_echo && !r.Has(option::kBlock1)) {
    // RFC 7959 §2.3: the response to the last block of a Block1 transfer echoes it.
    const size_t length = ctx.block1_echo->Encode(block1_value);
    options[n++] = OptionRef{option::kBlock1, {block1_value.data(), length}};
  }
  SortOptions(options.data(), n);
  MessageBuilder builder(scratch_);
  builder.Header(type, r.code(), mid, ctx.token.span());
  for (size_t i = 0; i < n; ++i) builder.Option(options[i].number, options[i].value);
  builder.Payload(payload);
  return builder.Finish();
}

void MessageLayer::FinishReply(const ReplyContext& ctx, ReplyMode mode, uint16_t mid,
                               net::TimePoint dedup_expiry, std::span<const uint8_t> bytes) {
  const net::TimePoint now = io_.Now();
  switch (mode) {
    case ReplyMode::kPiggybacked:
      SendBytes(ctx.listener, ctx.peer, bytes);
      // RFC 7252 §4.5: a duplicate of the request gets these same bytes.
      dedup_.Insert(ctx.peer, ctx.request_mid, now, dedup_expiry, DedupCache::Kind::kResponse,
                    bytes);
      break;
    case ReplyMode::kNonConfirmable:
      SendBytes(ctx.listener, ctx.peer, bytes);
      dedup_.Insert(ctx.peer, ctx.request_mid, now, dedup_expiry,
                    DedupCache::Kind::kNonConfirmable);
      break;
    case ReplyMode::kSeparate:
      // RFC 7252 §5.2.2: a CON of its own, retransmitted until the client ACKs it.
      StartTransmission(Transmission::Kind::kSeparateResponse, /*confirmable=*/true, ctx.listener,
                        ctx.peer, mid, kNoToken, bytes);
      SendBytes(ctx.listener, ctx.peer, bytes);
      break;
  }
}

}  // namespace lwm2md::coap
