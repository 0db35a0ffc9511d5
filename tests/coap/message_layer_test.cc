#include "coap/message_layer.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "coap/coap_metrics.h"
#include "coap/config.h"
#include "coap/message.h"
#include "coap/resource_tree.h"
#include "fake_shard_io.h"
#include "gtest/gtest.h"

// Counts operator new calls while enabled, to check that the common packet path does not
// allocate.
namespace {
std::atomic<bool> g_count_allocations{false};
std::atomic<size_t> g_allocations{0};

void* CountedAllocate(size_t n) {
  if (g_count_allocations.load(std::memory_order_relaxed))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) std::abort();
  return p;
}
}  // namespace

void* operator new(size_t n) { return CountedAllocate(n); }
void* operator new[](size_t n) { return CountedAllocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace lwm2md::coap {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testutil::BuildMessage;
using testutil::FakeShardIo;
using testutil::Text;

constexpr uint8_t kToken[] = {0xa1, 0xb2, 0xc3, 0xd4};

class FunctionHandler : public RequestHandler {
 public:
  void OnRequest(Exchange& exchange) override {
    ++calls;
    if (fn) fn(exchange);
  }
  std::function<void(Exchange&)> fn;
  int calls = 0;
};

std::string Pattern(size_t size) {
  std::string s;
  s.reserve(size);
  for (size_t i = 0; i < size; ++i) s.push_back(static_cast<char>('A' + (i * 7 + i / 97) % 26));
  return s;
}

class MessageLayerTest : public ::testing::Test {
 protected:
  MessageLayer& layer() {
    if (!layer_) layer_ = std::make_unique<MessageLayer>(io_, config_, metrics_, handler_);
    return *layer_;
  }
  void Deliver(const std::vector<uint8_t>& bytes, const net::PeerAddress& from) {
    layer().OnDatagram(net::ReceivedDatagram{0, from, bytes});
  }
  void Deliver(const std::vector<uint8_t>& bytes) { Deliver(bytes, peer_); }

  std::vector<uint8_t> Request(Type type, uint8_t method, uint16_t mid, std::string_view path) {
    return BuildMessage(
        [&](MessageBuilder& b) { b.Header(type, method, mid, kToken).UriPath(path); });
  }
  std::vector<uint8_t> Empty(Type type, uint16_t mid) {
    return BuildMessage([&](MessageBuilder& b) { b.Header(type, code::kEmpty, mid); });
  }
  // A client request from the server to peer_; returns its token.
  MessageLayer::Token SendGet(std::vector<ClientResult>* results, bool observe = false,
                              Type type = Type::kConfirmable) {
    RequestParams params;
    params.type = type;
    params.observe = observe;
    return layer().SendRequest(
        0, peer_, params,
        [&](MessageBuilder& b) {
          if (observe) b.UintOption(option::kObserve, 0);
          b.UriPath("3/0/0");
          return true;
        },
        [results](const ClientResult& r) {
          ClientResult copy = r;
          copy.response = nullptr;  // the view dies with the callback
          results->push_back(copy);
        });
  }

  Config config_;
  FakeShardIo io_;
  CoapMetrics metrics_;
  FunctionHandler handler_;
  std::unique_ptr<MessageLayer> layer_;
  const net::PeerAddress peer_ = *net::PeerAddress::Parse("192.0.2.1:5683");
  const net::PeerAddress other_ = *net::PeerAddress::Parse("192.0.2.2:5683");
};

// ---------------------------------------------------------------------------------------
// Server role

TEST_F(MessageLayerTest, PiggybackedResponse) {
  handler_.fn = [](Exchange& e) {
    EXPECT_EQ(e.method(), code::kGet);
    EXPECT_TRUE(e.confirmable());
    e.Respond(Response(code::kContent).ContentFormat(content_format::kTextPlain).Payload("hi"));
  };
  Deliver(Request(Type::kConfirmable, code::kGet, 0x1234, "a"));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].peer, peer_);
  const MessageView m = io_.sent()[0].View();
  EXPECT_EQ(m.type(), Type::kAcknowledgement);
  EXPECT_EQ(m.message_id(), 0x1234);
  EXPECT_EQ(m.code(), code::kContent);
  EXPECT_EQ(testutil::Bytes(m.token()), testutil::Bytes(kToken));
  EXPECT_EQ(m.content_format(), content_format::kTextPlain);
  EXPECT_EQ(Text(m.payload()), "hi");
  EXPECT_EQ(metrics_.messages(CoapMetrics::Direction::kReceived, Type::kConfirmable, code::kGet),
            1u);
  EXPECT_EQ(
      metrics_.messages(CoapMetrics::Direction::kSent, Type::kAcknowledgement, code::kContent), 1u);
}

TEST_F(MessageLayerTest, DeferredWithinDelayIsPiggybacked) {
  DeferredResponse deferred;
  handler_.fn = [&](Exchange& e) { deferred = e.Defer(); };
  Deliver(Request(Type::kConfirmable, code::kPost, 0x2000, "rd"));
  EXPECT_TRUE(io_.sent().empty());
  io_.Advance(milliseconds(50));
  ASSERT_TRUE(deferred.Respond(Response(code::kCreated)));
  ASSERT_EQ(io_.sent().size(), 1u);
  const MessageView m = io_.sent()[0].View();
  EXPECT_EQ(m.type(), Type::kAcknowledgement);
  EXPECT_EQ(m.message_id(), 0x2000);
  EXPECT_EQ(m.code(), code::kCreated);
  io_.Advance(seconds(5));
  EXPECT_EQ(io_.sent().size(), 1u);  // no empty ACK after the piggybacked one
  EXPECT_FALSE(deferred.Respond(Response(code::kCreated)));
}

TEST_F(MessageLayerTest, SeparateResponseRetransmittedUntilAcked) {
  DeferredResponse deferred;
  handler_.fn = [&](Exchange& e) { deferred = e.Defer(); };
  Deliver(Request(Type::kConfirmable, code::kGet, 0x3000, "slow"));
  EXPECT_TRUE(io_.sent().empty());
  io_.Advance(config_.SeparateAckDelay());
  ASSERT_EQ(io_.sent().size(), 1u);
  MessageView ack = io_.sent()[0].View();
  EXPECT_EQ(ack.type(), Type::kAcknowledgement);
  EXPECT_TRUE(ack.IsEmpty());
  EXPECT_EQ(ack.message_id(), 0x3000);

  // A duplicate of the request gets the empty ACK again; the handler does not run again.
  Deliver(Request(Type::kConfirmable, code::kGet, 0x3000, "slow"));
  ASSERT_EQ(io_.sent().size(), 2u);
  EXPECT_EQ(io_.sent()[1].bytes, io_.sent()[0].bytes);
  EXPECT_EQ(handler_.calls, 1);
  io_.TakeSent();

  ASSERT_TRUE(deferred.Respond(Response(code::kContent).Payload("done")));
  ASSERT_EQ(io_.sent().size(), 1u);
  const std::vector<uint8_t> response = io_.sent()[0].bytes;
  const MessageView m = io_.sent()[0].View();
  EXPECT_EQ(m.type(), Type::kConfirmable);
  EXPECT_NE(m.message_id(), 0x3000);
  EXPECT_EQ(m.code(), code::kContent);
  EXPECT_EQ(testutil::Bytes(m.token()), testutil::Bytes(kToken));
  EXPECT_EQ(Text(m.payload()), "done");
  const uint16_t response_mid = m.message_id();

  io_.Advance(config_.AckTimeout() * 3 / 2 + milliseconds(5));
  ASSERT_EQ(io_.sent().size(), 2u);
  EXPECT_EQ(io_.sent()[1].bytes, response);
  EXPECT_EQ(metrics_.retransmissions(), 1u);

  Deliver(Empty(Type::kAcknowledgement, response_mid));
  io_.Advance(seconds(120));
  EXPECT_EQ(io_.sent().size(), 2u);
  EXPECT_EQ(metrics_.separate_responses_unacked(), 0u);
}

TEST_F(MessageLayerTest, SeparateResponseGivesUpAfterMaxRetransmit) {
  config_.separate_ack_delay_ms = 0;
  DeferredResponse deferred;
  handler_.fn = [&](Exchange& e) { deferred = e.Defer(); };
  Deliver(Request(Type::kConfirmable, code::kGet, 0x3100, "slow"));
  ASSERT_EQ(io_.sent().size(), 1u);  // empty ACK at once
  EXPECT_TRUE(io_.sent()[0].View().IsEmpty());
  ASSERT_TRUE(deferred.Respond(Response(code::kContent)));
  io_.Advance(config_.MaxTransmitWait() + seconds(1));
  EXPECT_EQ(io_.sent().size(), 2u + config_.max_retransmit);
  EXPECT_EQ(metrics_.separate_responses_unacked(), 1u);
}

TEST_F(MessageLayerTest, NewTransmissionParametersApplyToLaterTransmissions) {
  config_.separate_ack_delay_ms = 0;
  config_.ack_random_factor = 1.0;
  DeferredResponse deferred;
  handler_.fn = [&](Exchange& e) { deferred = e.Defer(); };
  Deliver(Request(Type::kConfirmable, code::kGet, 0x3200, "slow"));
  // Bad values change nothing.
  EXPECT_FALSE(layer().SetTransmissionParameters(0, 1.0, 1).ok());
  ASSERT_TRUE(layer().SetTransmissionParameters(5000, 1.0, 1).ok());
  ASSERT_TRUE(deferred.Respond(Response(code::kContent)));
  ASSERT_EQ(io_.sent().size(), 2u);  // empty ACK, then the CON response
  io_.Advance(seconds(4));
  EXPECT_EQ(io_.sent().size(), 2u) << "not retransmitted before the new ACK timeout";
  io_.Advance(seconds(2));
  EXPECT_EQ(io_.sent().size(), 3u);
  io_.Advance(seconds(60));
  EXPECT_EQ(io_.sent().size(), 3u) << "max_retransmit 1: one retransmission only";
}

TEST_F(MessageLayerTest, DuplicateConReplaysIdenticalResponse) {
  int n = 0;
  handler_.fn = [&](Exchange& e) {
    ++n;
    e.Respond(Response(code::kContent).Payload(n == 1 ? "first" : "second"));
  };
  const std::vector<uint8_t> request = Request(Type::kConfirmable, code::kGet, 0x4000, "x");
  Deliver(request);
  io_.Advance(seconds(10));
  Deliver(request);
  ASSERT_EQ(io_.sent().size(), 2u);
  EXPECT_EQ(io_.sent()[0].bytes, io_.sent()[1].bytes);
  EXPECT_EQ(handler_.calls, 1);
  EXPECT_EQ(metrics_.duplicates(), 1u);
  EXPECT_EQ(metrics_.dedup_entries(), 1u);
}

TEST_F(MessageLayerTest, DuplicateAfterExchangeLifetimeIsNew) {
  handler_.fn = [&](Exchange& e) { e.Respond(Response(code::kContent)); };
  const std::vector<uint8_t> request = Request(Type::kConfirmable, code::kGet, 0x4100, "x");
  Deliver(request);
  io_.Advance(config_.ExchangeLifetime() - seconds(1));
  Deliver(request);
  EXPECT_EQ(handler_.calls, 1);
  io_.Advance(seconds(2));
  Deliver(request);
  EXPECT_EQ(handler_.calls, 2);
  EXPECT_EQ(metrics_.duplicates(), 1u);
}

TEST_F(MessageLayerTest, NonRequestGetsNonResponse) {
  handler_.fn = [&](Exchange& e) {
    EXPECT_FALSE(e.confirmable());
    e.Respond(Response(code::kContent).Payload("non"));
  };
  const std::vector<uint8_t> request = Request(Type::kNonConfirmable, code::kGet, 0x5000, "n");
  Deliver(request);
  ASSERT_EQ(io_.sent().size(), 1u);
  const MessageView m = io_.sent()[0].View();
  EXPECT_EQ(m.type(), Type::kNonConfirmable);
  EXPECT_EQ(m.code(), code::kContent);
  EXPECT_EQ(testutil::Bytes(m.token()), testutil::Bytes(kToken));
  // RFC 7252 §4.5: a duplicate NON is ignored.
  Deliver(request);
  EXPECT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(handler_.calls, 1);
  EXPECT_EQ(metrics_.duplicates(), 1u);
  // NON_LIFETIME later it is new.
  io_.Advance(config_.NonLifetime() + seconds(1));
  Deliver(request);
  EXPECT_EQ(handler_.calls, 2);
}

TEST_F(MessageLayerTest, NonResponsesUseDistinctMessageIds) {
  handler_.fn = [&](Exchange& e) { e.Respond(Response(code::kContent)); };
  Deliver(Request(Type::kNonConfirmable, code::kGet, 1, "n"));
  Deliver(Request(Type::kNonConfirmable, code::kGet, 2, "n"));
  ASSERT_EQ(io_.sent().size(), 2u);
  EXPECT_NE(io_.sent()[0].View().message_id(), io_.sent()[1].View().message_id());
}

TEST_F(MessageLayerTest, ConPingGetsReset) {
  Deliver(Empty(Type::kConfirmable, 0x6000));
  ASSERT_EQ(io_.sent().size(), 1u);
  const MessageView m = io_.sent()[0].View();
  EXPECT_EQ(m.type(), Type::kReset);
  EXPECT_TRUE(m.IsEmpty());
  EXPECT_EQ(m.message_id(), 0x6000);
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(metrics_.pings(), 1u);
}

TEST_F(MessageLayerTest, EmptyNonIsDropped) {
  Deliver(Empty(Type::kNonConfirmable, 0x6100));
  EXPECT_TRUE(io_.sent().empty());
  EXPECT_EQ(metrics_.dropped(DropReason::kEmptyNonConfirmable), 1u);
}

TEST_F(MessageLayerTest, UnknownCriticalOptionGetsBadOption) {
  const std::vector<uint8_t> request = BuildMessage([](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kGet, 0x7000, kToken).UriPath("a").Option(2049, "x");
  });
  Deliver(request);
  ASSERT_EQ(io_.sent().size(), 1u);
  const MessageView m = io_.sent()[0].View();
  EXPECT_EQ(m.type(), Type::kAcknowledgement);
  EXPECT_EQ(m.message_id(), 0x7000);
  EXPECT_EQ(m.code(), code::kBadOption);
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(metrics_.bad_options(), 1u);
  // An unknown elective option is ignored (RFC 7252 §5.4.1).
  handler_.fn = [](Exchange& e) { e.Respond(Response(code::kContent)); };
  Deliver(BuildMessage([](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kGet, 0x7001, kToken).UriPath("a").Option(2048, "x");
  }));
  EXPECT_EQ(handler_.calls, 1);
}

TEST_F(MessageLayerTest, MalformedConGetsResetMalformedNonNothing) {
  // TKL 9 is a message format error (RFC 7252 §3).
  Deliver(std::vector<uint8_t>{0x49, 0x01, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  ASSERT_EQ(io_.sent().size(), 1u);
  const MessageView m = io_.sent()[0].View();
  EXPECT_EQ(m.type(), Type::kReset);
  EXPECT_EQ(m.message_id(), 0x1234);
  io_.TakeSent();
  Deliver(std::vector<uint8_t>{0x59, 0x01, 0x12, 0x35, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  Deliver(std::vector<uint8_t>{0x69, 0x45, 0x12, 0x36});  // ACK
  Deliver(std::vector<uint8_t>{0x79, 0x00, 0x12, 0x37});  // RST
  Deliver(std::vector<uint8_t>{0x40, 0x01});              // truncated
  Deliver(std::vector<uint8_t>{0x80, 0x01, 0x00, 0x01});  // version 2
  // A payload marker with nothing after it.
  Deliver(std::vector<uint8_t>{0x50, 0x01, 0x00, 0x02, 0xff});
  EXPECT_TRUE(io_.sent().empty());
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(metrics_.parse_errors(ParseError::kBadTokenLength), 4u);
  EXPECT_EQ(metrics_.parse_errors(ParseError::kTruncatedHeader), 1u);
  EXPECT_EQ(metrics_.parse_errors(ParseError::kBadVersion), 1u);
  EXPECT_EQ(metrics_.parse_errors(ParseError::kPayloadMarkerWithoutPayload), 1u);
}

TEST_F(MessageLayerTest, ReservedCodeClassAndRequestInAck) {
  Deliver(BuildMessage(
      [](MessageBuilder& b) { b.Header(Type::kConfirmable, MakeCode(7, 1), 0x7100, kToken); }));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().type(), Type::kReset);
  Deliver(Request(Type::kAcknowledgement, code::kGet, 0x7101, "a"));
  EXPECT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(metrics_.dropped(DropReason::kReservedCodeClass), 1u);
  EXPECT_EQ(metrics_.dropped(DropReason::kRequestInAck), 1u);
}

TEST_F(MessageLayerTest, UnansweredRequestGetsInternalServerError) {
  Deliver(Request(Type::kConfirmable, code::kGet, 0x7200, "a"));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kInternalServerError);
  EXPECT_EQ(metrics_.handler_errors(), 1u);
}

TEST_F(MessageLayerTest, ResponseLargerThanMaxBodyIsInternalServerError) {
  config_.max_body_size = 4096;
  const std::string body = Pattern(5000);
  handler_.fn = [&](Exchange& e) { e.Respond(Response(code::kContent).Payload(body)); };
  Deliver(Request(Type::kConfirmable, code::kGet, 0x7300, "a"));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kInternalServerError);
}

TEST_F(MessageLayerTest, DeferredExchangeExpires) {
  DeferredResponse deferred;
  handler_.fn = [&](Exchange& e) { deferred = e.Defer(); };
  Deliver(Request(Type::kConfirmable, code::kGet, 0x7400, "a"));
  io_.Advance(config_.ExchangeLifetime() + seconds(1));
  EXPECT_FALSE(deferred.Respond(Response(code::kContent)));
  EXPECT_EQ(metrics_.deferred_expired(), 1u);
}

TEST_F(MessageLayerTest, DedupCacheIsBounded) {
  config_.dedup_max_entries = 8;
  handler_.fn = [&](Exchange& e) { e.Respond(Response(code::kContent).Payload("abc")); };
  for (uint16_t mid = 0; mid < 100; ++mid)
    Deliver(Request(Type::kConfirmable, code::kGet, mid, "x"));
  EXPECT_LE(layer().dedup_entries(), 8u);
  EXPECT_LE(metrics_.dedup_entries(), 8u);
  EXPECT_EQ(metrics_.dedup_evictions(), 92u);
  // The newest ones still replay.
  Deliver(Request(Type::kConfirmable, code::kGet, 99, "x"));
  EXPECT_EQ(handler_.calls, 100);
}

TEST_F(MessageLayerTest, SmallPiggybackedExchangeDoesNotAllocate) {
  // Routed through a ResourceTree, as in the server.
  config_.dedup_max_entries = 64;
  ResourceTree tree(config_);
  ASSERT_TRUE(tree.Register("/3/0/0", {},
                            [](Exchange& e) {
                              e.Respond(Response(code::kContent)
                                            .ContentFormat(content_format::kTextPlain)
                                            .Payload("21.5"));
                            })
                  .ok());
  MessageLayer layer(io_, config_, metrics_, tree);
  std::vector<std::vector<uint8_t>> requests;
  for (uint16_t mid = 0; mid < 1000; ++mid) {
    requests.push_back(BuildMessage([&](MessageBuilder& b) {
      b.Header(mid % 2 ? Type::kConfirmable : Type::kNonConfirmable, code::kGet, mid, kToken)
          .UriPath("3/0/0");
    }));
  }
  // Warm up: tables and rings reach their steady size.
  for (size_t i = 0; i < 300; ++i) layer.OnDatagram(net::ReceivedDatagram{0, peer_, requests[i]});
  io_.set_capture(false);
  const size_t sends = io_.send_count();
  g_allocations = 0;
  g_count_allocations = true;
  ::operator delete(::operator new(16));  // the counter works
  EXPECT_EQ(g_allocations.exchange(0), 1u);
  for (size_t i = 300; i < 1000; ++i)
    layer.OnDatagram(net::ReceivedDatagram{0, peer_, requests[i]});
  // Duplicates are replayed from the dedup ring.
  for (size_t i = 990; i < 1000; ++i)
    layer.OnDatagram(net::ReceivedDatagram{0, peer_, requests[i]});
  g_count_allocations = false;
  EXPECT_EQ(g_allocations.load(), 0u);
  EXPECT_EQ(io_.send_count() - sends, 700u + 5u);  // 5 of the 10 duplicates are CON
}

TEST(DedupCacheTest, ArenaWrapsAndEvictsOldest) {
  internal::DedupCache cache(1000, 4096);
  const net::PeerAddress peer = *net::PeerAddress::Parse("10.0.0.1:1");
  const net::TimePoint now{};
  const net::TimePoint expiry = now + seconds(100);
  std::vector<uint8_t> response(1000);
  for (uint16_t mid = 0; mid < 20; ++mid) {
    std::fill(response.begin(), response.end(), static_cast<uint8_t>(mid));
    cache.Insert(peer, mid, now, expiry, internal::DedupCache::Kind::kResponse, response);
    EXPECT_LE(cache.arena_used(), 4096u);
    const auto hit = cache.Find(peer, mid, now);
    ASSERT_TRUE(hit);
    ASSERT_EQ(hit->response.size(), 1000u);
    EXPECT_EQ(hit->response[0], mid);
    EXPECT_EQ(hit->response[999], mid);
  }
  EXPECT_FALSE(cache.Find(peer, 0, now));
  EXPECT_TRUE(cache.Find(peer, 19, now));
  EXPECT_GT(cache.evictions(), 0u);
  // Supersede: the newest record of a key wins.
  cache.Insert(peer, 19, now, expiry, internal::DedupCache::Kind::kEmptyAck);
  EXPECT_EQ(cache.Find(peer, 19, now)->kind, internal::DedupCache::Kind::kEmptyAck);
  cache.Expire(expiry);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.arena_used(), 0u);
}

// Linear probing with backward-shift deletion against a map model. Hashes are drawn from
// few values so that runs collide, and homes near the end of the table make runs wrap.
TEST(SlotIndexTest, MatchesModelUnderCollisionsAndWraparound) {
  internal::SlotIndex index;
  constexpr uint32_t kCapacity = 64;
  index.Reset(kCapacity);
  std::map<uint32_t, uint32_t> model;  // value -> hash; values are unique, as in DedupCache
  std::mt19937 rng(7);
  const uint32_t homes[] = {0, 1, 2, 61, 62, 63};
  auto random_hash = [&] {
    // Homes in {0, 1, 2, 61, 62, 63}; higher bits tell entries of one home apart.
    return internal::SlotIndex::StoredHash(homes[rng() % 6] | ((rng() % 4) * kCapacity));
  };
  uint32_t next_value = 1;
  for (int step = 0; step < 20000; ++step) {
    const bool insert = model.empty() || (model.size() < kCapacity / 2 && rng() % 2 == 0);
    if (insert) {
      const uint32_t hash = random_hash();
      const uint32_t value = next_value++;
      const internal::SlotIndex::ProbeResult p = index.ProbeValue(hash, value);
      ASSERT_FALSE(p.found);
      index.Place(p.slot, hash, value);
      model[value] = hash;
    } else {
      auto it = std::next(model.begin(), static_cast<long>(rng() % model.size()));
      const internal::SlotIndex::ProbeResult p = index.ProbeValue(it->second, it->first);
      ASSERT_TRUE(p.found);
      index.Erase(p.slot);
      model.erase(it);
    }
    ASSERT_EQ(index.size(), model.size());
    // Every live entry is reachable from its home, and nothing else is stored.
    size_t occupied = 0;
    for (uint32_t slot = 0; slot < kCapacity; ++slot) {
      if (index.hash(slot) == 0) continue;
      ++occupied;
      auto it = model.find(index.value(slot));
      ASSERT_NE(it, model.end());
      EXPECT_EQ(it->second, index.hash(slot));
    }
    ASSERT_EQ(occupied, model.size());
    for (const auto& [value, hash] : model) {
      const internal::SlotIndex::ProbeResult p = index.ProbeValue(hash, value);
      ASSERT_TRUE(p.found);
      EXPECT_EQ(index.value(p.slot), value);
    }
    EXPECT_FALSE(index.ProbeValue(random_hash(), 0).found);
  }
}

// DedupCache against a model of live records, across ring growth, wraparound, supersede,
// eviction at the entry bound, and expiry; many peers and message ids so that index runs
// collide and wrap.
// After a burst (a registration storm) the cache's memory goes back once its records
// expire: a sparse cache shrinks, an empty one holds nothing, and it still works afterwards.
TEST(DedupCacheTest, GivesMemoryBackAfterABurst) {
  internal::DedupCache cache(65536, 1 << 20);
  const net::PeerAddress peer = *net::PeerAddress::Parse("10.0.0.1:1");
  const net::TimePoint now{};
  const std::vector<uint8_t> response(40, 7);
  const size_t idle = cache.allocated_bytes();
  for (uint16_t mid = 0; mid < 20000; ++mid) {
    cache.Insert(peer, mid, now, now + seconds(100), internal::DedupCache::Kind::kResponse,
                 response);
  }
  // A few late records outlive the burst.
  for (uint16_t mid = 20000; mid < 20010; ++mid) {
    cache.Insert(peer, mid, now, now + seconds(200), internal::DedupCache::Kind::kResponse,
                 response);
  }
  const size_t burst = cache.allocated_bytes();
  EXPECT_GT(burst, 20000u * 64);
  cache.Expire(now + seconds(100));
  EXPECT_EQ(cache.size(), 10u);
  EXPECT_LT(cache.allocated_bytes(), burst / 2);
  for (uint16_t mid = 20000; mid < 20010; ++mid) {
    const auto hit = cache.Find(peer, mid, now + seconds(150));
    ASSERT_TRUE(hit) << mid;
    EXPECT_EQ(hit->response.size(), response.size());
  }
  cache.Expire(now + seconds(200));
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.allocated_bytes(), idle);
  EXPECT_FALSE(cache.Find(peer, 20005, now + seconds(200)));
  cache.Insert(peer, 1, now + seconds(200), now + seconds(300),
               internal::DedupCache::Kind::kEmptyAck);
  EXPECT_EQ(cache.Find(peer, 1, now + seconds(250))->kind, internal::DedupCache::Kind::kEmptyAck);
}

TEST(DedupCacheTest, MatchesModel) {
  constexpr size_t kMaxEntries = 100;  // not a power of two: the ring is larger than the bound
  internal::DedupCache cache(kMaxEntries, 1 << 20);
  struct Live {
    internal::DedupCache::Kind kind;
    net::TimePoint expiry;
    uint64_t order;
  };
  std::map<std::pair<int, uint16_t>, Live> model;
  std::vector<net::PeerAddress> peers;
  for (int i = 0; i < 5; ++i)
    peers.push_back(*net::PeerAddress::Parse("10.0.0." + std::to_string(i + 1) + ":5683"));
  std::mt19937 rng(11);
  net::TimePoint now{};
  uint64_t order = 0;
  uint64_t expected_evictions = 0;
  for (int step = 0; step < 20000; ++step) {
    now += milliseconds(rng() % 3);
    const int peer = static_cast<int>(rng() % peers.size());
    // Mostly increasing ids per peer, as clients send them, with repeats and wraparound.
    const uint16_t mid = static_cast<uint16_t>(65500 + step / 3 + rng() % 8);
    const auto kind = static_cast<internal::DedupCache::Kind>(rng() % 4);
    const std::vector<uint8_t> response(1 + rng() % 20, static_cast<uint8_t>(mid));
    // One lifetime, so that records expire in insertion order, as they do in the layer.
    cache.Insert(peers[peer], mid, now, now + milliseconds(100), kind, response);
    std::erase_if(model, [&](const auto& e) { return e.second.expiry <= now; });
    model[{peer, mid}] = Live{kind, now + milliseconds(100), order++};
    ASSERT_LE(cache.size(), kMaxEntries);
    // Whatever the cache still has must agree with the model; a key it lost must have been
    // evicted, and evictions take the oldest live record first.
    uint64_t newest_lost = 0;
    bool lost = false;
    uint64_t oldest_kept = UINT64_MAX;
    for (auto it = model.begin(); it != model.end();) {
      const auto hit = cache.Find(peers[it->first.first], it->first.second, now);
      if (!hit) {
        ++expected_evictions;
        lost = true;
        newest_lost = std::max(newest_lost, it->second.order);
        it = model.erase(it);
        continue;
      }
      EXPECT_EQ(hit->kind, it->second.kind);
      if (hit->kind == internal::DedupCache::Kind::kResponse) {
        ASSERT_FALSE(hit->response.empty());
        EXPECT_EQ(hit->response[0], static_cast<uint8_t>(it->first.second));
      }
      oldest_kept = std::min(oldest_kept, it->second.order);
      ++it;
    }
    if (lost) {
      EXPECT_LT(newest_lost, oldest_kept);
    }
    ASSERT_EQ(cache.size(), model.size());
    ASSERT_EQ(cache.evictions(), expected_evictions);
  }
  EXPECT_GT(cache.evictions(), 0u);
  EXPECT_EQ(cache.evictions(), expected_evictions);
  cache.Expire(now + seconds(1));
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.arena_used(), 0u);
}

// ---------------------------------------------------------------------------------------
// Client role

TEST_F(MessageLayerTest, ClientRetransmissionTimingAndTimeout) {
  std::vector<ClientResult> results;
  const net::Duration start = io_.Elapsed();
  const MessageLayer::Token token = SendGet(&results);
  ASSERT_NE(token, MessageLayer::kNoToken);
  ASSERT_EQ(io_.sent().size(), 1u);
  const MessageView first = io_.sent()[0].View();
  EXPECT_EQ(first.type(), Type::kConfirmable);
  EXPECT_EQ(first.token().size(), 8u);
  EXPECT_EQ(metrics_.outstanding_requests(), 1u);

  net::Duration timed_out_at{};
  while (results.empty() && io_.Elapsed() - start < seconds(200)) {
    io_.Advance(milliseconds(1));
    if (!results.empty()) timed_out_at = io_.Elapsed() - start;
  }
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, ClientResult::Status::kTimeout);
  ASSERT_EQ(io_.sent().size(), 1u + config_.max_retransmit);
  for (const auto& s : io_.sent()) EXPECT_EQ(s.bytes, io_.sent()[0].bytes);

  // RFC 7252 §4.2: first timeout in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR], then
  // doubling each time.
  const auto& sent = io_.sent();
  const net::Duration tick = milliseconds(2);
  net::Duration interval = sent[1].at - sent[0].at;
  EXPECT_GE(interval, config_.AckTimeout());
  EXPECT_LE(interval, config_.AckTimeout() * 3 / 2 + tick);
  for (size_t i = 2; i < sent.size(); ++i) {
    const net::Duration next = sent[i].at - sent[i - 1].at;
    EXPECT_GE(next, interval * 2 - tick) << i;
    EXPECT_LE(next, interval * 2 + tick) << i;
    interval = next;
  }
  // The give-up comes one more doubled timeout after the last retransmission.
  const net::Duration last_send = sent.back().at - sent[0].at;
  EXPECT_GE(timed_out_at - last_send, interval * 2 - tick);
  EXPECT_LE(timed_out_at - last_send, interval * 2 + tick);
  EXPECT_LE(timed_out_at, config_.MaxTransmitWait() + tick);
  EXPECT_EQ(metrics_.retransmissions(), config_.max_retransmit);
  EXPECT_EQ(metrics_.requests_timed_out(), 1u);
  EXPECT_EQ(layer().outstanding_requests(), 0u);
  EXPECT_EQ(metrics_.outstanding_requests(), 0u);
}

TEST_F(MessageLayerTest, ClientPiggybackedResponse) {
  std::vector<ClientResult> results;
  std::string payload;
  RequestParams params;
  const MessageLayer::Token token = layer().SendRequest(
      0, peer_, params,
      [](MessageBuilder& b) {
        b.UriPath("3/0/0");
        return true;
      },
      [&](const ClientResult& r) {
        results.push_back(r);
        ASSERT_NE(r.response, nullptr);
        payload = Text(r.response->payload());
      });
  ASSERT_NE(token, MessageLayer::kNoToken);
  const MessageView request = io_.sent()[0].View();
  EXPECT_EQ(request.code(), code::kGet);
  const std::vector<uint8_t> token_bytes = testutil::Bytes(request.token());

  // An ACK with the right id but another token is not our response (RFC 7252 §5.3.2).
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kAcknowledgement, code::kContent, request.message_id(), kToken).Payload("no");
  }));
  EXPECT_TRUE(results.empty());

  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kAcknowledgement, code::kContent, request.message_id(), token_bytes)
        .Payload("value");
  }));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, ClientResult::Status::kResponse);
  EXPECT_FALSE(results[0].observing);
  EXPECT_EQ(payload, "value");
  io_.Advance(seconds(100));
  EXPECT_EQ(io_.sent().size(), 1u);  // nothing retransmitted
  EXPECT_EQ(layer().outstanding_requests(), 0u);
}

TEST_F(MessageLayerTest, ClientSeparateResponse) {
  std::vector<ClientResult> results;
  SendGet(&results);
  const MessageView request = io_.sent()[0].View();
  const std::vector<uint8_t> token_bytes = testutil::Bytes(request.token());
  // The empty ACK stops retransmission.
  Deliver(Empty(Type::kAcknowledgement, request.message_id()));
  io_.Advance(seconds(60));
  EXPECT_EQ(io_.sent().size(), 1u);
  EXPECT_TRUE(results.empty());
  io_.TakeSent();

  const std::vector<uint8_t> response = BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kContent, 0x9000, token_bytes).Payload("late");
  });
  Deliver(response);
  ASSERT_EQ(io_.sent().size(), 1u);  // our ACK
  MessageView ack = io_.sent()[0].View();
  EXPECT_EQ(ack.type(), Type::kAcknowledgement);
  EXPECT_TRUE(ack.IsEmpty());
  EXPECT_EQ(ack.message_id(), 0x9000);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, ClientResult::Status::kResponse);
  // A retransmitted response is acknowledged again but not delivered twice.
  Deliver(response);
  EXPECT_EQ(io_.sent().size(), 2u);
  EXPECT_EQ(io_.sent()[1].bytes, io_.sent()[0].bytes);
  EXPECT_EQ(results.size(), 1u);
}

TEST_F(MessageLayerTest, ClientSeparateResponseWithLostAck) {
  std::vector<ClientResult> results;
  SendGet(&results);
  const MessageView request = io_.sent()[0].View();
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kNonConfirmable, code::kContent, 0x9100, request.token());
  }));
  ASSERT_EQ(results.size(), 1u);
  io_.Advance(seconds(100));
  EXPECT_EQ(io_.sent().size(), 1u);  // the response stopped the retransmissions
}

TEST_F(MessageLayerTest, ResetCancelsRequest) {
  std::vector<ClientResult> results;
  SendGet(&results);
  const MessageView request = io_.sent()[0].View();
  Deliver(Empty(Type::kReset, request.message_id()));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, ClientResult::Status::kReset);
  EXPECT_EQ(metrics_.resets_received(), 1u);
  io_.Advance(seconds(100));
  EXPECT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(layer().outstanding_requests(), 0u);
}

TEST_F(MessageLayerTest, ResponseFromOtherPeerIsNotMatched) {
  std::vector<ClientResult> results;
  SendGet(&results);
  const MessageView request = io_.sent()[0].View();
  const std::vector<uint8_t> token_bytes = testutil::Bytes(request.token());
  // Same token and even the same message id, from another address.
  Deliver(BuildMessage([&](MessageBuilder& b) {
            b.Header(Type::kAcknowledgement, code::kContent, request.message_id(), token_bytes);
          }),
          other_);
  Deliver(BuildMessage([&](MessageBuilder& b) {
            b.Header(Type::kConfirmable, code::kContent, 0x9200, token_bytes);
          }),
          other_);
  EXPECT_TRUE(results.empty());
  ASSERT_EQ(io_.sent().size(), 2u);
  EXPECT_EQ(io_.sent()[1].peer, other_);
  EXPECT_EQ(io_.sent()[1].View().type(), Type::kReset);
  EXPECT_EQ(metrics_.dropped(DropReason::kUnmatchedAckOrReset), 1u);
  EXPECT_EQ(metrics_.dropped(DropReason::kUnmatchedResponse), 1u);
  // The right peer still gets through.
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kAcknowledgement, code::kContent, request.message_id(), token_bytes);
  }));
  ASSERT_EQ(results.size(), 1u);
}

TEST_F(MessageLayerTest, ObserveNotificationsUntilCancel) {
  std::vector<ClientResult> results;
  const MessageLayer::Token token = SendGet(&results, /*observe=*/true);
  const MessageView request = io_.sent()[0].View();
  EXPECT_EQ(request.observe(), 0u);
  const std::vector<uint8_t> token_bytes = testutil::Bytes(request.token());
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kAcknowledgement, code::kContent, request.message_id(), token_bytes)
        .UintOption(option::kObserve, 1)
        .Payload("1");
  }));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].observing);
  io_.TakeSent();

  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kNonConfirmable, code::kContent, 0xa000, token_bytes)
        .UintOption(option::kObserve, 2)
        .Payload("2");
  }));
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kContent, 0xa001, token_bytes)
        .UintOption(option::kObserve, 3)
        .Payload("3");
  }));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[2].observing);
  ASSERT_EQ(io_.sent().size(), 1u);  // ACK of the CON notification
  EXPECT_EQ(io_.sent()[0].View().type(), Type::kAcknowledgement);
  io_.TakeSent();
  EXPECT_EQ(layer().outstanding_requests(), 1u);

  EXPECT_TRUE(layer().Cancel(token));
  EXPECT_FALSE(layer().Cancel(token));
  // RFC 7641 §3.6: a notification nobody wants is answered RST.
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kNonConfirmable, code::kContent, 0xa002, token_bytes)
        .UintOption(option::kObserve, 4);
  }));
  EXPECT_EQ(results.size(), 3u);
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().type(), Type::kReset);
  EXPECT_EQ(io_.sent()[0].View().message_id(), 0xa002);
}

TEST_F(MessageLayerTest, ObserveEndsWithResponseWithoutObserve) {
  std::vector<ClientResult> results;
  SendGet(&results, /*observe=*/true);
  const MessageView request = io_.sent()[0].View();
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kAcknowledgement, code::kNotFound, request.message_id(), request.token());
  }));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].observing);
  EXPECT_EQ(layer().outstanding_requests(), 0u);
}

TEST_F(MessageLayerTest, CallbackMaySendAndCancel) {
  std::vector<ClientResult> inner;
  MessageLayer::Token token = MessageLayer::kNoToken;
  RequestParams params;
  params.observe = true;
  token = layer().SendRequest(
      0, peer_, params,
      [](MessageBuilder& b) {
        b.UintOption(option::kObserve, 0).UriPath("3/0/0");
        return true;
      },
      [&](const ClientResult&) {
        // Reentrancy: new requests and cancelling the running one from the callback.
        for (int i = 0; i < 50; ++i) SendGet(&inner);
        layer().Cancel(token);
      });
  const MessageView request = io_.sent()[0].View();
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kAcknowledgement, code::kContent, request.message_id(), request.token())
        .UintOption(option::kObserve, 1);
  }));
  EXPECT_EQ(layer().outstanding_requests(), 50u);
}

TEST_F(MessageLayerTest, NonRequestTimesOut) {
  std::vector<ClientResult> results;
  SendGet(&results, false, Type::kNonConfirmable);
  EXPECT_EQ(io_.sent()[0].View().type(), Type::kNonConfirmable);
  io_.Advance(config_.MaxTransmitWait() + seconds(1));
  EXPECT_EQ(io_.sent().size(), 1u);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, ClientResult::Status::kTimeout);
}

TEST_F(MessageLayerTest, WriterMayRefuse) {
  bool called = false;
  const MessageLayer::Token token = layer().SendRequest(
      0, peer_, RequestParams(), [](MessageBuilder&) { return false; },
      [&](const ClientResult&) { called = true; });
  EXPECT_EQ(token, MessageLayer::kNoToken);
  EXPECT_TRUE(io_.sent().empty());
  EXPECT_EQ(layer().outstanding_requests(), 0u);
}

// ---------------------------------------------------------------------------------------
// Block-wise transfers

class BlockTest : public MessageLayerTest {
 protected:
  // GETs "big" block by block as a client would (RFC 7959 §2.4) and returns the body.
  void FetchBlocks(std::optional<uint8_t> ask_szx, uint32_t expect_size, std::string* body,
                   int* blocks) {
    uint32_t num = 0;
    std::vector<uint8_t> etag;
    for (;;) {
      const std::vector<uint8_t> request = BuildMessage([&](MessageBuilder& b) {
        b.Header(Type::kConfirmable, code::kGet, next_mid_++, kToken).UriPath("big");
        if (num > 0 || ask_szx)
          b.Block(option::kBlock2, BlockOption{num, false, ask_szx.value_or(6)});
      });
      Deliver(request);
      std::vector<FakeShardIo::Sent> sent = io_.TakeSent();
      ASSERT_EQ(sent.size(), 1u);
      const MessageView m = sent[0].View();
      ASSERT_EQ(m.code(), code::kContent);
      const std::optional<BlockOption> b2 = m.block2();
      ASSERT_TRUE(b2);
      EXPECT_EQ(b2->num, num);
      EXPECT_EQ(b2->size(), expect_size);
      EXPECT_EQ(m.FindUint(option::kSize2), 8192u);
      EXPECT_EQ(m.content_format(), content_format::kTextPlain);
      const std::optional<OptionView> tag = m.Find(option::kETag);
      ASSERT_TRUE(tag);
      if (num == 0) etag = testutil::Bytes(tag->value);
      EXPECT_EQ(testutil::Bytes(tag->value), etag);
      if (b2->more) {
        EXPECT_EQ(m.payload().size(), expect_size);
      }
      *body += Text(m.payload());
      ++*blocks;
      if (!b2->more) break;
      ++num;
    }
  }

  uint16_t next_mid_ = 0x100;
};

TEST_F(BlockTest, Block2GetIn1024ByteBlocks) {
  const std::string body = Pattern(8192);
  handler_.fn = [&](Exchange& e) {
    e.Respond(Response(code::kContent).ContentFormat(content_format::kTextPlain).Payload(body));
  };
  std::string got;
  int blocks = 0;
  FetchBlocks(std::nullopt, 1024, &got, &blocks);
  EXPECT_EQ(got, body);
  EXPECT_EQ(blocks, 8);
  EXPECT_EQ(handler_.calls, 1);  // later blocks come from the kept representation
  EXPECT_EQ(metrics_.block2_responses(), 8u);
}

TEST_F(BlockTest, Block2GetIn64ByteBlocks) {
  const std::string body = Pattern(8192);
  handler_.fn = [&](Exchange& e) {
    e.Respond(Response(code::kContent).ContentFormat(content_format::kTextPlain).Payload(body));
  };
  std::string got;
  int blocks = 0;
  FetchBlocks(uint8_t{2}, 64, &got, &blocks);
  EXPECT_EQ(got, body);
  EXPECT_EQ(blocks, 128);
  EXPECT_EQ(handler_.calls, 1);
}

TEST_F(BlockTest, Block2RegeneratedWhenNotCached) {
  config_.block2_cache_bytes = 1024;  // too small to keep an 8 KiB representation
  const std::string body = Pattern(8192);
  handler_.fn = [&](Exchange& e) {
    e.Respond(Response(code::kContent).ContentFormat(content_format::kTextPlain).Payload(body));
  };
  std::string got;
  int blocks = 0;
  FetchBlocks(std::nullopt, 1024, &got, &blocks);
  EXPECT_EQ(got, body);
  EXPECT_EQ(handler_.calls, 8);
}

TEST_F(BlockTest, Block2BeyondEndIsBadOption) {
  const std::string body = Pattern(2000);
  handler_.fn = [&](Exchange& e) { e.Respond(Response(code::kContent).Payload(body)); };
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kGet, 1, kToken)
        .UriPath("big")
        .Block(option::kBlock2, BlockOption{5, false, 6});
  }));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kBadOption);
}

TEST_F(BlockTest, Block2OfDeferredResponse) {
  const std::string body = Pattern(3000);
  DeferredResponse deferred;
  handler_.fn = [&](Exchange& e) { deferred = e.Defer(); };
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kGet, 1, kToken).UriPath("big");
  }));
  ASSERT_TRUE(deferred.Respond(Response(code::kContent).Payload(body)));
  ASSERT_EQ(io_.sent().size(), 1u);
  MessageView first = io_.sent()[0].View();
  ASSERT_TRUE(first.block2());
  EXPECT_TRUE(first.block2()->more);
  std::string got = Text(first.payload());
  for (uint32_t num = 1; num < 3; ++num) {
    Deliver(BuildMessage([&](MessageBuilder& b) {
      b.Header(Type::kConfirmable, code::kGet, static_cast<uint16_t>(1 + num), kToken)
          .UriPath("big")
          .Block(option::kBlock2, BlockOption{num, false, 6});
    }));
    got += Text(io_.sent().back().View().payload());
  }
  EXPECT_EQ(got, body);
  EXPECT_EQ(handler_.calls, 1);
}

class Block1Test : public MessageLayerTest {
 protected:
  std::vector<uint8_t> Put(uint16_t mid, const BlockOption& block, std::string_view payload,
                           std::optional<uint32_t> size1 = std::nullopt) {
    return BuildMessage([&](MessageBuilder& b) {
      b.Header(Type::kConfirmable, code::kPut, mid, kToken)
          .UriPath("up")
          .UintOption(option::kContentFormat, 0)
          .Block(option::kBlock1, block);
      if (size1) b.UintOption(option::kSize1, *size1);
      b.Payload(payload);
    });
  }
};

TEST_F(Block1Test, PutOf5KiBReachesHandlerOnce) {
  const std::string body = Pattern(5 * 1024);
  std::string received;
  handler_.fn = [&](Exchange& e) {
    EXPECT_EQ(e.method(), code::kPut);
    EXPECT_FALSE(e.request().block1());  // it looks like one request
    EXPECT_EQ(e.request().content_format(), 0);
    EXPECT_EQ(e.payload().data(), e.request().payload().data());
    received = Text(e.payload());
    e.Respond(Response(code::kChanged));
  };
  for (uint32_t num = 0; num < 5; ++num) {
    const bool more = num < 4;
    Deliver(Put(static_cast<uint16_t>(10 + num), BlockOption{num, more, 6},
                std::string_view(body).substr(num * 1024, 1024)));
    ASSERT_EQ(io_.sent().size(), 1u);
    const MessageView m = io_.sent()[0].View();
    EXPECT_EQ(m.type(), Type::kAcknowledgement);
    EXPECT_EQ(m.message_id(), 10 + num);
    const std::optional<BlockOption> echo = m.block1();
    ASSERT_TRUE(echo);
    EXPECT_EQ(echo->num, num);
    EXPECT_EQ(echo->more, more);
    EXPECT_EQ(echo->szx, 6);
    EXPECT_EQ(m.code(), more ? code::kContinue : code::kChanged);
    io_.TakeSent();
  }
  EXPECT_EQ(handler_.calls, 1);
  EXPECT_EQ(received, body);
  EXPECT_EQ(metrics_.block1_completed(), 1u);
  EXPECT_EQ(layer().block1_transfers(), 0u);
}

TEST_F(Block1Test, ServerAsksForSmallerBlocks) {
  config_.block_size = 256;
  const std::string body = Pattern(2048);
  std::string received;
  handler_.fn = [&](Exchange& e) {
    received = Text(e.payload());
    e.Respond(Response(code::kChanged));
  };
  // RFC 7959 §2.5: the first block arrives at 1024; the server answers with SZX 4 (256) and
  // the client continues at block 4 of 256.
  Deliver(Put(1, BlockOption{0, true, 6}, std::string_view(body).substr(0, 1024)));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().block1()->szx, 4);
  uint16_t mid = 2;
  for (uint32_t num = 4; num < 8; ++num) {
    Deliver(
        Put(mid++, BlockOption{num, num < 7, 4}, std::string_view(body).substr(num * 256, 256)));
  }
  EXPECT_EQ(io_.sent().back().View().code(), code::kChanged);
  EXPECT_EQ(received, body);
}

TEST_F(Block1Test, OverMaxBodySizeIsRequestEntityTooLarge) {
  config_.max_body_size = 2048;
  const std::string body = Pattern(3 * 1024);
  Deliver(Put(1, BlockOption{0, true, 6}, std::string_view(body).substr(0, 1024)));
  Deliver(Put(2, BlockOption{1, true, 6}, std::string_view(body).substr(1024, 1024)));
  io_.TakeSent();
  Deliver(Put(3, BlockOption{2, false, 6}, std::string_view(body).substr(2048, 1024)));
  ASSERT_EQ(io_.sent().size(), 1u);
  const MessageView m = io_.sent()[0].View();
  EXPECT_EQ(m.code(), code::kRequestEntityTooLarge);
  EXPECT_EQ(m.FindUint(option::kSize1), 2048u);
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_EQ(layer().block1_transfers(), 0u);
  io_.TakeSent();
  // Size1 announcing too much is refused on the first block (RFC 7959 §4).
  Deliver(Put(4, BlockOption{0, true, 6}, std::string_view(body).substr(0, 1024), 3 * 1024));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kRequestEntityTooLarge);
  EXPECT_EQ(io_.sent()[0].View().FindUint(option::kSize1), 2048u);
  EXPECT_EQ(metrics_.block1_rejected(), 2u);
}

TEST_F(Block1Test, MissingBlockIsRequestEntityIncomplete) {
  const std::string body = Pattern(4 * 1024);
  Deliver(Put(1, BlockOption{0, true, 6}, std::string_view(body).substr(0, 1024)));
  io_.TakeSent();
  Deliver(Put(2, BlockOption{2, true, 6}, std::string_view(body).substr(2048, 1024)));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kRequestEntityIncomplete);
  EXPECT_EQ(layer().block1_transfers(), 0u);
  io_.TakeSent();
  // A later block without a start.
  Deliver(Put(3, BlockOption{1, true, 6}, std::string_view(body).substr(1024, 1024)));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kRequestEntityIncomplete);
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(Block1Test, RepeatedBlockUnderNewMessageIdIsAnsweredAgain) {
  const std::string body = Pattern(3 * 1024);
  std::string received;
  handler_.fn = [&](Exchange& e) {
    received = Text(e.payload());
    e.Respond(Response(code::kChanged));
  };
  Deliver(Put(1, BlockOption{0, true, 6}, std::string_view(body).substr(0, 1024)));
  Deliver(Put(2, BlockOption{1, true, 6}, std::string_view(body).substr(1024, 1024)));
  Deliver(Put(3, BlockOption{1, true, 6}, std::string_view(body).substr(1024, 1024)));
  EXPECT_EQ(io_.sent().back().View().code(), code::kContinue);
  Deliver(Put(4, BlockOption{2, false, 6}, std::string_view(body).substr(2048, 1024)));
  EXPECT_EQ(received, body);
}

TEST_F(Block1Test, TooManyTransfersIsServiceUnavailable) {
  config_.max_block1_transfers = 2;
  const std::string block = Pattern(1024);
  for (int i = 0; i < 3; ++i) {
    Deliver(BuildMessage([&](MessageBuilder& b) {
      b.Header(Type::kConfirmable, code::kPut, static_cast<uint16_t>(i), kToken)
          .UriPath("up" + std::to_string(i))
          .Block(option::kBlock1, BlockOption{0, true, 6})
          .Payload(block);
    }));
  }
  ASSERT_EQ(io_.sent().size(), 3u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kContinue);
  EXPECT_EQ(io_.sent()[1].View().code(), code::kContinue);
  EXPECT_EQ(io_.sent()[2].View().code(), code::kServiceUnavailable);
  // Stale transfers go after EXCHANGE_LIFETIME and free their slots.
  io_.Advance(config_.ExchangeLifetime() + seconds(1));
  EXPECT_EQ(layer().block1_transfers(), 0u);
}

TEST_F(Block1Test, WrongBlockSizeAndReservedSzxAreBadRequests) {
  Deliver(Put(1, BlockOption{0, true, 6}, "short"));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kBadRequest);
  io_.TakeSent();
  // SZX 7 is reserved (RFC 7959 §2.2): value 0x0f.
  Deliver(BuildMessage([](MessageBuilder& b) {
    const uint8_t v[] = {0x0f};
    b.Header(Type::kConfirmable, code::kPut, 2, kToken).UriPath("up").Option(option::kBlock1, v);
  }));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kBadRequest);
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(Block1Test, SingleDatagramOverMaxBodySize) {
  config_.max_body_size = 100;
  Deliver(BuildMessage([](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kPut, 1, kToken)
        .UriPath("up")
        .Payload(std::string(200, 'x'));
  }));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kRequestEntityTooLarge);
  EXPECT_EQ(io_.sent()[0].View().FindUint(option::kSize1), 100u);
}

// ---------------------------------------------------------------------------------------
// Metrics

TEST_F(MessageLayerTest, MetricsEnumerateNonZeroCells) {
  handler_.fn = [](Exchange& e) { e.Respond(Response(code::kContent)); };
  Deliver(Request(Type::kConfirmable, code::kGet, 1, "a"));
  Deliver(Request(Type::kConfirmable, code::kGet, 2, "a"));
  std::vector<std::string> received;
  metrics_.ForEachMessageCount(
      CoapMetrics::Direction::kReceived,
      [&](std::string_view type, std::string_view code, uint64_t v) {
        received.push_back(std::string(type) + " " + std::string(code) + " " + std::to_string(v));
      });
  EXPECT_EQ(received, std::vector<std::string>{"CON 0.01 2"});
  std::vector<std::string> sent;
  metrics_.ForEachMessageCount(
      CoapMetrics::Direction::kSent, [&](std::string_view type, std::string_view code, uint64_t v) {
        sent.push_back(std::string(type) + " " + std::string(code) + " " + std::to_string(v));
      });
  EXPECT_EQ(sent, std::vector<std::string>{"ACK 2.05 2"});
  EXPECT_EQ(CoapMetrics::CodeLabel(code::kRequestEntityTooLarge), "4.13");
  EXPECT_EQ(CoapMetrics::CodeLabel(code::kContinue), "2.31");
  EXPECT_EQ(CoapMetrics::TypeLabel(Type::kReset), "RST");
}

TEST(ConfigTest, DerivedTimesFollowRfc7252) {
  const Config config;
  EXPECT_TRUE(config.Validate().ok());
  EXPECT_EQ(config.MaxTransmitSpan(), seconds(45));
  EXPECT_EQ(config.MaxTransmitWait(), seconds(93));
  EXPECT_EQ(config.ExchangeLifetime(), seconds(247));
  EXPECT_EQ(config.NonLifetime(), seconds(145));
  Config bad;
  bad.block_size = 100;
  EXPECT_FALSE(bad.Validate().ok());
}

}  // namespace
}  // namespace lwm2md::coap

// ---------------------------------------------------------------------------------------
// Shard routing, adopted observations, explicit tokens

namespace lwm2md::coap {
namespace {

class MessageLayerRoutingTest : public MessageLayerTest {
 protected:
  // This layer is shard 1 of 4; forwarded datagrams are recorded.
  void Route() {
    layer().SetShardRouting(1, 4, [this](int owner, const net::ReceivedDatagram& d) {
      forwarded_.push_back({owner, std::vector<uint8_t>(d.bytes.begin(), d.bytes.end())});
    });
  }
  std::vector<std::pair<int, std::vector<uint8_t>>> forwarded_;
};

TEST_F(MessageLayerRoutingTest, TokensAndMessageIdsCarryTheShard) {
  Route();
  std::vector<ClientResult> results;
  for (int i = 0; i < 20; ++i) {
    const MessageLayer::Token token = SendGet(&results);
    EXPECT_EQ(MessageLayer::TokenShard(token, 4), 1);
    const MessageView sent = io_.sent().back().View();
    EXPECT_EQ(sent.message_id() >> 14, 1) << "the top 2 bits of the id name shard 1 of 4";
  }
}

TEST_F(MessageLayerRoutingTest, ResponseForAnotherShardIsForwardedNotReset) {
  Route();
  // A token that shard 3 made: top 10 bits = 3.
  const uint64_t foreign = (uint64_t{3} << 54) | 0x1234;
  std::vector<uint8_t> token_bytes(8);
  for (int i = 0; i < 8; ++i) token_bytes[i] = static_cast<uint8_t>(foreign >> (56 - 8 * i));
  const std::vector<uint8_t> notification = BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kNonConfirmable, code::kContent, 0x2222, token_bytes)
        .UintOption(option::kObserve, 7)
        .Payload("1");
  });
  Deliver(notification);
  ASSERT_EQ(forwarded_.size(), 1u);
  EXPECT_EQ(forwarded_[0].first, 3);
  EXPECT_EQ(forwarded_[0].second, notification);
  EXPECT_TRUE(io_.sent().empty()) << "no RST for a message another shard owns";

  // An empty ACK names its shard by message id (top 2 bits 10 → shard 2).
  Deliver(Empty(Type::kAcknowledgement, 0x8001));
  ASSERT_EQ(forwarded_.size(), 2u);
  EXPECT_EQ(forwarded_[1].first, 2);
}

TEST_F(MessageLayerRoutingTest, OwnTokenUnknownIsResetWithoutHandler) {
  Route();
  const uint64_t own = (uint64_t{1} << 54) | 0x99;
  std::vector<uint8_t> token_bytes(8);
  for (int i = 0; i < 8; ++i) token_bytes[i] = static_cast<uint8_t>(own >> (56 - 8 * i));
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kContent, 0x3333, token_bytes).Payload("x");
  }));
  EXPECT_TRUE(forwarded_.empty());
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().type(), Type::kReset);
}

TEST_F(MessageLayerTest, UnmatchedNotificationAdoptedByHandler) {
  const uint64_t token = 0x0102030405060708;
  const std::vector<uint8_t> token_bytes = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<ClientResult> later;
  int offered = 0;
  layer().SetUnmatchedResponseHandler(
      [&](uint64_t t, const MessageView& m, int listener, const net::PeerAddress& from) {
        ++offered;
        EXPECT_EQ(t, token);
        EXPECT_EQ(m.observe(), 5u);
        return layer().AdoptObservation(t, listener, from, [&](const ClientResult& r) {
          ClientResult copy = r;
          copy.response = nullptr;
          later.push_back(copy);
        });
      });
  auto notification = [&](uint16_t mid, uint32_t seq) {
    return BuildMessage([&](MessageBuilder& b) {
      b.Header(Type::kConfirmable, code::kContent, mid, token_bytes)
          .UintOption(option::kObserve, seq)
          .Payload("v");
    });
  };
  Deliver(notification(0x4000, 5));
  EXPECT_EQ(offered, 1);
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().type(), Type::kAcknowledgement) << "accepted: ACK, not RST";
  // The next notification goes straight to the adopted callback.
  Deliver(notification(0x4001, 6));
  EXPECT_EQ(offered, 1);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_TRUE(later[0].observing);
  // A stranger's token is still refused.
  layer().SetUnmatchedResponseHandler(
      [](uint64_t, const MessageView&, int, const net::PeerAddress&) { return false; });
  io_.TakeSent();
  Deliver(BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kContent, 0x4100, kToken).Payload("x");
  }));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().type(), Type::kReset);
}

TEST_F(MessageLayerTest, ExplicitTokenCancelsObservationProactively) {
  std::vector<ClientResult> results;
  const MessageLayer::Token token = SendGet(&results, /*observe=*/true);
  // In use: a second request with the same token is refused.
  RequestParams params;
  params.token = token;
  auto write = [](MessageBuilder& b) {
    b.UintOption(option::kObserve, 1).UriPath("3/0/0");
    return true;
  };
  EXPECT_EQ(layer().SendRequest(0, peer_, params, write, [](const ClientResult&) {}),
            MessageLayer::kNoToken);
  // RFC 7641 §3.6: after forgetting the observation, GET Observe=1 reuses its token.
  ASSERT_TRUE(layer().Cancel(token));
  EXPECT_EQ(layer().SendRequest(0, peer_, params, write, [](const ClientResult&) {}), token);
  const MessageView cancel = io_.sent().back().View();
  EXPECT_EQ(cancel.observe(), 1u);
  EXPECT_EQ(testutil::Bytes(cancel.token()), testutil::Bytes(io_.sent()[0].View().token()));
}

}  // namespace
}  // namespace lwm2md::coap
