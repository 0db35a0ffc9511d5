#pragma once
// Pieces of the message layer that its header needs to name but its users do not:
// the deduplication cache, the Block2 representation cache and small helpers. Everything
// here lives on one shard thread, like the MessageLayer that owns it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "coap/message.h"
#include "net/peer_address.h"
#include "net/timer_wheel.h"

namespace lwm2md::coap::internal {

// A token of at most 8 bytes (RFC 7252 §5.3.1) held by value, so that state which outlives
// the datagram (a deferred response, an ETag) can keep it without allocating.
struct SmallBytes {
  std::array<uint8_t, 8> bytes{};
  uint8_t size = 0;

  std::span<const uint8_t> span() const { return {bytes.data(), size}; }
  static SmallBytes From(std::span<const uint8_t> value) {
    SmallBytes b;
    b.size = static_cast<uint8_t>(value.size() < 8 ? value.size() : 8);
    if (b.size != 0) std::memcpy(b.bytes.data(), value.data(), b.size);
    return b;
  }
  bool operator==(std::span<const uint8_t> other) const {
    return other.size() == size &&
           (size == 0 || std::memcmp(bytes.data(), other.data(), size) == 0);
  }
};

// Our client tokens are 8 bytes on the wire, a uint64 in memory (big-endian).
inline SmallBytes EncodeToken(uint64_t token) {
  SmallBytes b;
  b.size = 8;
  for (int i = 7; i >= 0; --i) {
    b.bytes[i] = static_cast<uint8_t>(token);
    token >>= 8;
  }
  return b;
}
inline std::optional<uint64_t> DecodeToken(std::span<const uint8_t> bytes) {
  if (bytes.size() != 8) return std::nullopt;
  uint64_t token = 0;
  for (uint8_t b : bytes) token = (token << 8) | b;
  return token;
}

// What the layer needs to answer one request, taken from it while its datagram is still
// valid. Fixed size (no allocation); copied when the handler defers its response.
struct ReplyContext {
  int listener = 0;
  net::PeerAddress peer;
  Type request_type = Type::kConfirmable;
  uint16_t request_mid = 0;
  SmallBytes token;
  std::optional<BlockOption> block2;       // the request's Block2 (RFC 7959 §2.4)
  std::optional<BlockOption> block1_echo;  // final Block1 to echo (RFC 7959 §2.3)
};

// What stays the same across the requests of one block-wise transfer (RFC 7959 §2.4,
// §2.5): method, Uri-Host, Uri-Port, Uri-Path, Uri-Query and Accept; not the token, the
// message id or the block options. Length-prefixed, so that no two requests collide.
std::string RequestIdentity(const MessageView& request);

// A message id as a peer sees it: RFC 7252 §4.4 scopes message ids to the endpoint pair.
struct PeerMessageId {
  net::PeerAddress peer;
  uint16_t mid = 0;
  bool operator==(const PeerMessageId& other) const {
    return mid == other.mid && peer == other.peer;
  }
  template <typename H>
  friend H AbslHashValue(H h, const PeerMessageId& k) {
    return H::combine(std::move(h), k.peer, k.mid);
  }
};

// An open-addressing table of (32-bit hash, 32-bit value) pairs, the index of DedupCache.
// Hand-written rather than an absl::flat_hash_map because the cache removes its oldest
// record on nearly every insert under load, and a record knows its key's stored hash and
// its own value: removal then probes by (hash, value) alone, without rehashing or comparing
// the key, and can prefetch the slot before it is needed. Linear probing with backward-shift
// deletion needs no tombstones; the caller keeps the load at most 1/2, so probes stay short.
// Keys live with the owner: Probe asks it whether a candidate value is the one sought, and
// only for values whose stored hash matches, which spares most key comparisons.
class SlotIndex {
 public:
  struct ProbeResult {
    uint32_t slot;  // the match, or the empty slot where the key would go
    bool found;
  };

  // Empties the table and sizes it to `capacity` slots, a power of two.
  void Reset(size_t capacity);
  size_t capacity() const { return slots_.size(); }
  size_t size() const { return size_; }

  // Slots store a nonzero hash so that zero can mark an empty slot.
  static uint32_t StoredHash(uint64_t hash) {
    const uint32_t h = static_cast<uint32_t>(hash);
    return h == 0 ? 1 : h;
  }

  // `hash` from StoredHash; is_match(value) decides between entries with equal hashes.
  // Requires an empty slot (size() < capacity()).
  template <typename IsMatch>
  ProbeResult Probe(uint32_t hash, IsMatch is_match) const {
    for (uint32_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.hash == 0) return {i, false};
      if (s.hash == hash && is_match(s.value)) return {i, true};
    }
  }
  // The entry holding `value`, which was inserted under `hash`.
  ProbeResult ProbeValue(uint32_t hash, uint32_t value) const {
    return Probe(hash, [value](uint32_t v) { return v == value; });
  }
  // Fills the empty slot that Probe returned for this hash.
  void Place(uint32_t slot, uint32_t hash, uint32_t value) {
    slots_[slot] = Slot{hash, value};
    ++size_;
  }
  void Insert(uint32_t hash, uint32_t value) {
    Place(Probe(hash, [](uint32_t) { return false; }).slot, hash, value);
  }
  uint32_t hash(uint32_t slot) const { return slots_[slot].hash; }
  uint32_t value(uint32_t slot) const { return slots_[slot].value; }
  void set_value(uint32_t slot, uint32_t value) { slots_[slot].value = value; }
  // Starts loading the first slot a probe for `hash` reads.
  void Prefetch(uint32_t hash) const { __builtin_prefetch(&slots_[hash & mask_], /*rw=*/1); }

  // Empties `slot` and shifts back the entries of its probe run that may move closer to
  // their home slot, so that no probe ever has to step over a hole.
  void Erase(uint32_t slot) {
    uint32_t hole = slot;
    for (uint32_t i = (slot + 1) & mask_;; i = (i + 1) & mask_) {
      const Slot s = slots_[i];
      if (s.hash == 0) break;
      // An entry may fill the hole unless its home lies cyclically in (hole, i].
      if (((i - (s.hash & mask_)) & mask_) >= ((i - hole) & mask_)) {
        slots_[hole] = s;
        hole = i;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }

 private:
  struct Slot {
    uint32_t hash = 0;  // StoredHash of the key; 0 when empty
    uint32_t value = 0;
  };
  std::vector<Slot> slots_;
  uint32_t mask_ = 0;
  size_t size_ = 0;
};

// RFC 7252 §4.5 deduplication: which (peer, message id) pairs were seen recently, and what
// was answered so that a duplicate CON gets the same bytes again. Records expire in
// insertion order; memory is bounded by a record ring (max_entries) and a byte ring for the
// cached responses (arena_bytes). When either is full the oldest record goes early (counted
// as an eviction): a duplicate arriving after that is processed as new, which is the
// failure mode RFC 7252 §4.5 accepts for state a node cannot keep.
class DedupCache {
 public:
  enum class Kind : uint8_t {
    kPending,         // handler deferred, nothing sent yet: a duplicate is ignored
    kEmptyAck,        // an empty ACK went out: a duplicate gets it again
    kResponse,        // a piggybacked response went out: a duplicate gets the same bytes
    kNonConfirmable,  // a NON was processed: a duplicate is ignored (RFC 7252 §4.5)
  };
  struct Hit {
    Kind kind;
    std::span<const uint8_t> response;  // kResponse only; valid until the next Insert
  };

  DedupCache(size_t max_entries, size_t arena_bytes);

  std::optional<Hit> Find(const net::PeerAddress& peer, uint16_t mid, net::TimePoint now) const;
  // Records (peer, mid) until expiry, superseding an earlier record of the same pair. A
  // kResponse copies its bytes into the arena: the cached answer outlives the datagram.
  void Insert(const net::PeerAddress& peer, uint16_t mid, net::TimePoint now, net::TimePoint expiry,
              Kind kind, std::span<const uint8_t> response = {});
  // Drops expired records from the front of the ring.
  void Expire(net::TimePoint now);

  size_t size() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }
  size_t arena_used() const { return static_cast<size_t>(write_pos_ - reclaim_pos_); }
  // Heap bytes held by the ring, its index and the arena (what the shard's RSS pays).
  size_t allocated_bytes() const {
    return ring_.capacity() * sizeof(Record) + index_.capacity() * 8 + arena_.capacity();
  }

 private:
  using Key = PeerMessageId;
  // One cache line, so that popping or prefetching a record loads one line.
  struct alignas(64) Record {
    Key key;
    Kind kind = Kind::kPending;
    uint32_t hash = 0;    // SlotIndex::StoredHash of key, kept so that popping never rehashes
    uint32_t length = 0;  // bytes in the arena (kResponse)
    uint64_t start = 0;   // logical arena position (see write_pos_)
    net::TimePoint expiry;
  };
  static_assert(sizeof(Record) == 64);

  // The record with sequence number seq lives at ring_[seq & ring_mask_]: the ring's size
  // is a power of two, so no division, and the index can name a record by the low 32 bits
  // of its sequence number (fewer than 2^32 records are ever live).
  Record& At(uint64_t seq) { return ring_[seq & ring_mask_]; }
  const Record& At(uint64_t seq) const { return ring_[seq & ring_mask_]; }
  static uint32_t KeyHash(const Key& key);
  SlotIndex::ProbeResult Probe(uint32_t hash, const Key& key) const;
  void PopOldest(bool evicting);
  void Grow();
  // Moves the live records into a ring of `size` records (a power of two >= count_).
  void Resize(size_t size);
  // Rings smaller than this are not worth shrinking.
  static constexpr size_t kShrinkMinRing = 1024;
  uint64_t Allocate(size_t n);

  size_t max_entries_;
  size_t max_ring_size_;      // max_entries_ rounded up to a power of two
  std::vector<Record> ring_;  // grows by doubling up to max_ring_size_
  uint64_t ring_mask_ = 0;
  size_t count_ = 0;
  uint64_t head_seq_ = 0;  // sequence number of the oldest record
  // The arena is a byte ring addressed by monotonically increasing logical positions;
  // physical = logical % capacity. Responses are stored in record order, so the bytes
  // before the end of the newest popped record are free.
  size_t arena_capacity_;
  std::vector<uint8_t> arena_;  // allocated on first use
  uint64_t write_pos_ = 0;
  uint64_t reclaim_pos_ = 0;
  // Live key -> low 32 bits of its record's sequence number. Four times the ring's size, so
  // at most a quarter full: KeyHash places a peer's consecutive ids side by side, and the
  // runs this forms would make the probes of a fuller table long.
  SlotIndex index_;
  uint64_t evictions_ = 0;
};

// Representations served block by block (RFC 7959 §2.4), keyed by peer and request
// identity, kept for EXCHANGE_LIFETIME or until the byte budget pushes them out (oldest
// first). A representation evicted early is regenerated by the handler on the next block
// request; its ETag (derived from its content) lets the client notice if it changed.
class Block2Cache {
 public:
  using Key = std::pair<net::PeerAddress, std::string>;
  struct Entry {
    uint8_t code = 0;
    std::vector<uint8_t> options;  // the handler's options as (number:2, length:2, value)
    std::vector<uint8_t> body;
    SmallBytes etag;
    net::TimePoint expiry;
    uint64_t generation = 0;
    size_t bytes() const { return sizeof(Entry) + options.size() + body.size(); }
  };

  explicit Block2Cache(size_t max_bytes) : max_bytes_(max_bytes) {}
  const Entry* Find(const Key& key, net::TimePoint now) const;
  // Takes the entry; false (and nothing cached) when it alone exceeds the budget.
  bool Put(Key key, Entry entry);
  void Expire(net::TimePoint now);
  size_t bytes() const { return bytes_; }
  size_t size() const { return entries_.size(); }

 private:
  void Erase(absl::flat_hash_map<Key, std::unique_ptr<Entry>>::iterator it);

  size_t max_bytes_;
  size_t bytes_ = 0;
  uint64_t next_generation_ = 1;
  absl::flat_hash_map<Key, std::unique_ptr<Entry>> entries_;
  std::deque<std::pair<Key, uint64_t>> order_;  // (key, generation) in insertion order
};

// A free list of heap objects reused across requests, so that steady traffic does not
// allocate; at most max_free objects are kept idle.
template <typename T>
class Pool {
 public:
  explicit Pool(size_t max_free) : max_free_(max_free) {}
  std::unique_ptr<T> Acquire() {
    if (free_.empty()) return std::make_unique<T>();
    std::unique_ptr<T> t = std::move(free_.back());
    free_.pop_back();
    return t;
  }
  void Release(std::unique_ptr<T> t) {
    if (free_.size() < max_free_) free_.push_back(std::move(t));
  }

 private:
  size_t max_free_;
  std::vector<std::unique_ptr<T>> free_;
};

}  // namespace lwm2md::coap::internal
