#pragma once
// The CoAP message layer of one shard (RFC 7252 §4 and §5.2-5.3, RFC 7959 Block1/Block2 on
// the server side, RFC 7641 notifications on the client side). Sans-IO: it sees datagrams
// through net::DatagramHandler and sends and schedules through net::ShardIo, so tests drive
// it with a fake.
//
// Server role: requests from devices are deduplicated (RFC 7252 §4.5), reassembled when they
// come in Block1 blocks, and handed to one RequestHandler, which answers at once
// (piggybacked in the ACK) or defers (separate response). Large responses go out in Block2
// blocks. Client role: SendRequest sends a request to a device, retransmits a CON until it is
// acknowledged and delivers the response (and, when asked, Observe notifications) to a
// callback.
//
// Threading: one MessageLayer per shard, created, used and destroyed on that shard's thread
// only (checked in debug builds); no locks.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/random/random.h"
#include "coap/coap_metrics.h"
#include "coap/config.h"
#include "coap/message.h"
#include "coap/message_layer_internal.h"
#include "net/peer_address.h"
#include "net/shard.h"
#include "net/timer_wheel.h"

namespace lwm2md::coap {

class MessageLayer;

// A response as a handler states it: code, options in any order (the layer sorts them and
// adds its own: Block1/Block2/Size2/ETag for block-wise transfers), payload of any size up
// to Config::max_body_size (the layer splits it into Block2 blocks). It holds views: the
// spans must stay valid until Respond returns; nothing is kept after that.
class Response {
 public:
  static constexpr size_t kMaxOptions = 16;

  explicit Response(uint8_t code = code::kContent) : code_(code) {}

  Response& Option(uint16_t number, std::span<const uint8_t> value);
  Response& Option(uint16_t number, std::string_view value) {
    return Option(number, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(value.data()),
                                                   value.size()));
  }
  // Shortest big-endian form (RFC 7252 §3.2), stored in the Response itself.
  Response& UintOption(uint16_t number, uint32_t value);
  Response& ContentFormat(uint16_t format) { return UintOption(option::kContentFormat, format); }
  Response& Block(uint16_t number, const BlockOption& block) {
    return UintOption(number, (block.num << 4) | (block.more ? 8u : 0u) | (block.szx & 7u));
  }
  Response& Payload(std::span<const uint8_t> payload) {
    payload_ = payload;
    return *this;
  }
  Response& Payload(std::string_view payload) {
    return Payload(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
  }

  uint8_t code() const { return code_; }
  std::span<const uint8_t> payload() const { return payload_; }
  size_t option_count() const { return count_; }
  uint16_t option_number(size_t i) const { return options_[i].number; }
  std::span<const uint8_t> option_value(size_t i) const {
    const Entry& e = options_[i];
    return e.is_inline ? std::span<const uint8_t>(e.inline_value.data(), e.inline_size) : e.value;
  }
  bool Has(uint16_t number) const;
  // False when more than kMaxOptions options were added; the layer then answers 5.00.
  bool ok() const { return ok_; }

 private:
  struct Entry {
    uint16_t number = 0;
    uint8_t inline_size = 0;
    bool is_inline = false;
    std::array<uint8_t, 4> inline_value{};
    std::span<const uint8_t> value;
  };
  std::array<Entry, kMaxOptions> options_;
  size_t count_ = 0;
  std::span<const uint8_t> payload_;
  uint8_t code_;
  bool ok_ = true;
};

// A handle to answer a request later (RFC 7252 §5.2.2 separate response). Copyable and
// cheap; use it on the shard thread that created it, while the MessageLayer lives. An
// exchange not answered within EXCHANGE_LIFETIME is forgotten (counted), and Respond then
// returns false.
class DeferredResponse {
 public:
  DeferredResponse() = default;
  bool valid() const { return layer_ != nullptr; }
  // Sends the response: piggybacked if the empty ACK has not gone out yet, else as a CON
  // with its own message id, retransmitted until acknowledged (NON for a NON request).
  // False when the exchange expired, was answered already, or the handle is empty.
  bool Respond(const Response& response);

 private:
  friend class MessageLayer;
  DeferredResponse(MessageLayer* layer, uint64_t id) : layer_(layer), id_(id) {}
  MessageLayer* layer_ = nullptr;
  uint64_t id_ = 0;
};

// One request as the handler sees it, valid only during RequestHandler::OnRequest (the
// request view points into the received datagram or the reassembled body; copy what a
// deferred response needs). A Block1 request arrives here once, complete: request() is then a
// message whose payload is the whole body, exactly as if it had come in one datagram.
class Exchange {
 public:
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  const MessageView& request() const { return request_; }
  uint8_t method() const { return request_.code(); }
  std::span<const uint8_t> payload() const { return request_.payload(); }
  const net::PeerAddress& peer() const { return context_.peer; }
  int listener() const { return context_.listener; }
  bool confirmable() const { return context_.request_type == Type::kConfirmable; }

  // Answers now: piggybacked in the ACK of a CON (RFC 7252 §5.2.1), as a NON to a NON
  // (§5.2.3). False if the exchange was answered or deferred already.
  bool Respond(const Response& response);
  // Answers later through the returned handle. False-y handle if already answered.
  DeferredResponse Defer();
  bool answered() const { return state_ != State::kOpen; }

 private:
  friend class MessageLayer;
  enum class State : uint8_t { kOpen, kResponded, kDeferred };
  Exchange(MessageLayer& layer, const MessageView& request, const internal::ReplyContext& context)
      : layer_(layer), request_(request), context_(context) {}

  MessageLayer& layer_;
  const MessageView& request_;
  const internal::ReplyContext& context_;
  State state_ = State::kOpen;
};

// Receives the requests of one shard. Implemented by ResourceTree (resource_tree.h).
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Called once per request, after deduplication and Block1 reassembly, on the shard
  // thread. Must call exchange.Respond or exchange.Defer before returning; if it does
  // neither the layer answers 5.00 (and counts a handler error).
  virtual void OnRequest(Exchange& exchange) = 0;
};

// The outcome of a request this server sent.
struct ClientResult {
  enum class Status : uint8_t {
    kResponse,  // response (or Observe notification) in `response`
    kTimeout,   // no ACK after MAX_RETRANSMIT retransmissions, or no response in time
    kReset,     // the peer answered RST (RFC 7252 §4.2, §4.3)
  };
  Status status = Status::kResponse;
  // kResponse only: the response, valid during the callback (copy what must outlive it).
  const MessageView* response = nullptr;
  // kResponse only: true while the token stays registered for further notifications
  // (RFC 7641 §3.2): the callback will be called again until Cancel or a final response.
  bool observing = false;
};
using ResponseCallback = absl::AnyInvocable<void(const ClientResult&)>;

struct RequestParams {
  uint8_t method = code::kGet;
  Type type = Type::kConfirmable;  // kConfirmable or kNonConfirmable
  // Keep the token registered when the response carries Observe (RFC 7641 §3.1): the
  // writer must add the Observe option itself (options go in number order).
  bool observe = false;
  // 0: a fresh token. Otherwise this token, which must not be in use: RFC 7641 §3.6 cancels
  // an observation with a GET carrying Observe=1 and the observation's own token.
  uint64_t token = 0;
};

class MessageLayer final : public net::DatagramHandler {
 public:
  using Token = uint64_t;  // 8 bytes on the wire
  static constexpr Token kNoToken = 0;

  // io, metrics and handler must outlive the layer. config must pass Config::Validate.
  MessageLayer(net::ShardIo& io, const Config& config, CoapMetrics& metrics,
               RequestHandler& handler);
  ~MessageLayer() override;
  MessageLayer(const MessageLayer&) = delete;
  MessageLayer& operator=(const MessageLayer&) = delete;

  void OnDatagram(const net::ReceivedDatagram& datagram) override;

  // Sends a request to peer. The layer writes the header and a fresh token, then calls
  // write to add options (in number order) and payload; write returns false to abandon.
  // Returns the token, or kNoToken (callback dropped, nothing sent) when write refused or
  // the message did not fit. callback runs on this shard, once with a final result, or
  // once per notification while observing.
  Token SendRequest(int listener, const net::PeerAddress& peer, const RequestParams& params,
                    absl::FunctionRef<bool(MessageBuilder&)> write, ResponseCallback callback);
  // Forgets a request or observation without calling its callback; a later response or
  // notification with its token is answered RST (RFC 7641 §3.6), which ends an observation
  // on the device. False when the token is unknown.
  bool Cancel(Token token);

  // Offered a separate response or notification that matches no request of this layer: the
  // observation was started before a restart, or on another shard before the device's
  // address changed. Returning true accepts it (a CON is acknowledged and the message
  // deduplicated); false rejects it with RST, as without a handler.
  using UnmatchedResponseHandler =
      absl::AnyInvocable<bool(Token token, const MessageView& response, int listener,
                              const net::PeerAddress& peer)>;
  void SetUnmatchedResponseHandler(UnmatchedResponseHandler handler) {
    unmatched_handler_ = std::move(handler);
  }
  // Registers an observation this layer did not start (see above), so that later
  // notifications with token from peer reach callback. Replaces an observation with the same
  // token. False if token is empty or a request in flight uses it.
  bool AdoptObservation(Token token, int listener, const net::PeerAddress& peer,
                        ResponseCallback callback);
  bool HasRequest(Token token) const { return requests_.contains(token); }

  // Several shards share each port (SO_REUSEPORT), and the kernel picks the shard a datagram
  // lands on from its addresses, not from the shard that sent the request it answers: after
  // a restart a registration is restored on one shard while its device's packets hash to
  // another. With routing set, the tokens and message ids this layer creates carry its shard
  // id, and a response, ACK or RST that names another shard is handed to forward instead of
  // being dropped (the idea of Envoy's UdpListenerWorkerRouter). Call before traffic starts.
  using ForwardHandler =
      absl::AnyInvocable<void(int owner_shard, const net::ReceivedDatagram& datagram)>;
  void SetShardRouting(int shard_id, int shard_count, ForwardHandler forward);
  // The shard whose layer created token (0 without routing).
  static int TokenShard(Token token, int shard_count);

  const Config& config() const { return config_; }
  // Replaces the RFC 7252 §4.8 transmission parameters (the service's CoAP timeouts, changed
  // through the API) for transmissions started from now on; the separate-response ACK delay
  // follows, kept below half the ACK timeout. Fails, changing nothing, when the result would
  // not pass Config::Validate.
  absl::Status SetTransmissionParameters(uint32_t ack_timeout_ms, double ack_random_factor,
                                         uint32_t max_retransmit);
  size_t outstanding_requests() const { return requests_.size(); }
  size_t dedup_entries() const { return dedup_.size(); }
  size_t block1_transfers() const { return block1_.size(); }

  // Largest message the layer builds (requests, and one block of a response).
  static constexpr size_t kMaxMessageSize = 4096;

 private:
  friend class Exchange;
  friend class DeferredResponse;
  using ReplyContext = internal::ReplyContext;
  using DedupCache = internal::DedupCache;

  enum class ReplyMode : uint8_t {
    kPiggybacked,     // ACK carrying the response, the request's message id
    kNonConfirmable,  // NON with a new message id (answer to a NON)
    kSeparate,        // CON with a new message id, retransmitted until ACKed
  };

  // A CON we sent that awaits its ACK (retransmitted, RFC 7252 §4.2), or a NON request kept
  // so that a RST can be matched to it (§4.3).
  struct Transmission {
    enum class Kind : uint8_t { kRequest, kSeparateResponse };
    Kind kind = Kind::kRequest;
    bool confirmable = true;
    int listener = 0;
    net::PeerAddress peer;
    uint16_t mid = 0;
    Token token = kNoToken;      // kRequest
    std::vector<uint8_t> bytes;  // copy: retransmissions outlive the caller's buffer
    uint32_t retransmits = 0;
    net::Duration timeout{};
    net::TimerWheel::Id timer = net::TimerWheel::kNoTimer;
  };
  using MidKey = internal::PeerMessageId;
  struct ClientRequest {
    enum class State : uint8_t { kAwaitingAck, kAwaitingResponse, kObserving };
    State state = State::kAwaitingAck;
    bool observe = false;
    int listener = 0;
    net::PeerAddress peer;
    uint16_t mid = 0;
    ResponseCallback callback;
    net::TimerWheel::Id deadline = net::TimerWheel::kNoTimer;
  };
  struct Deferred {
    ReplyContext reply;
    std::string identity;  // copy: the request view is gone when the response comes
    net::TimePoint dedup_expiry;
    bool ack_sent = false;
    net::TimerWheel::Id ack_timer = net::TimerWheel::kNoTimer;
    net::TimerWheel::Id expiry_timer = net::TimerWheel::kNoTimer;
  };
  using TransferKey = std::pair<net::PeerAddress, std::string>;
  struct Block1Transfer {
    TransferKey key;            // copy, to find the transfer from its expiry timer
    std::vector<uint8_t> body;  // reassembled so far
    uint32_t last_offset = 0;
    uint32_t last_size = 0;
    net::TimerWheel::Id timer = net::TimerWheel::kNoTimer;
  };
  struct PeerState {
    uint16_t next_mid = 0;
    net::TimePoint last_used;
  };
  // Where the layer can find the request identity for Block2 caching: the request itself
  // (synchronous answer) or a copy made when the handler deferred.
  struct IdentitySource {
    const MessageView* request = nullptr;
    const std::string* copy = nullptr;
  };

  // --- receive paths ---
  void Receive(const net::ReceivedDatagram& d);
  void OnFormatError(const net::ReceivedDatagram& d, ParseError error);
  void OnEmpty(const net::ReceivedDatagram& d, const MessageView& m);
  void OnRequestMessage(const net::ReceivedDatagram& d, const MessageView& m);
  void OnResponseMessage(const net::ReceivedDatagram& d, const MessageView& m);
  void OnAckOrReset(const net::ReceivedDatagram& d, const MessageView& m, bool reset);
  // Acknowledges a CON response (or remembers a NON one) and records it for deduplication.
  void AcceptResponse(const net::ReceivedDatagram& d, const MessageView& m, net::TimePoint now);
  void OnBlock1(const net::ReceivedDatagram& d, const MessageView& m, ReplyContext& ctx,
                const BlockOption& block1);
  bool ServeBlock2FromCache(const MessageView& m, const ReplyContext& ctx);
  void Dispatch(const MessageView& request, const ReplyContext& ctx);

  // --- server replies ---
  bool RespondNow(Exchange& exchange, const Response& response);
  DeferredResponse DeferExchange(Exchange& exchange);
  bool RespondDeferred(uint64_t id, const Response& response);
  void OnDeferredAckTimer(uint64_t id);
  void OnDeferredExpired(uint64_t id);
  // Answers immediately (piggybacked or NON) with dedup bookkeeping; used for replies the
  // layer makes itself (errors, 2.31 Continue) and for synchronous handler answers.
  void ReplyNow(const ReplyContext& ctx, const Response& response, IdentitySource identity);
  void SendReply(const ReplyContext& ctx, ReplyMode mode, net::TimePoint dedup_expiry,
                 const Response& response, IdentitySource identity);
  // Encodes one message of a reply; block2 set when the payload is one block of it.
  std::span<const uint8_t> EncodeReply(const ReplyContext& ctx, Type type, uint16_t mid,
                                       const Response& response, std::span<const uint8_t> payload,
                                       const std::optional<BlockOption>& block2, uint32_t size2,
                                       std::span<const uint8_t> etag);
  // Encodes the block of response.payload() that ctx.block2 asks for (block 0 without it).
  std::span<const uint8_t> EncodeBlock(const ReplyContext& ctx, Type type, uint16_t mid,
                                       const Response& response, uint8_t szx,
                                       std::span<const uint8_t> etag);
  void FinishReply(const ReplyContext& ctx, ReplyMode mode, uint16_t mid,
                   net::TimePoint dedup_expiry, std::span<const uint8_t> bytes);
  uint8_t ResponseSzx(const ReplyContext& ctx) const;

  // --- client side ---
  void OnResponseForRequest(Token token, const MessageView& m);
  void CompleteRequest(Token token, ClientResult::Status status, const MessageView* response);
  void OnRequestDeadline(Token token);
  Token NextToken();

  // --- transmissions ---
  Transmission* StartTransmission(Transmission::Kind kind, bool confirmable, int listener,
                                  const net::PeerAddress& peer, uint16_t mid, Token token,
                                  std::span<const uint8_t> bytes);
  void ReleaseTransmission(const MidKey& key);
  void OnRetransmitTimer(Transmission* tx);

  // --- plumbing ---
  uint16_t NextMessageId(const net::PeerAddress& peer);
  void SendBytes(int listener, const net::PeerAddress& peer, std::span<const uint8_t> bytes);
  void SendEmpty(int listener, const net::PeerAddress& peer, Type type, uint16_t mid);
  void ScheduleHousekeeping();
  void Housekeeping();
  void UpdateGauges();
  net::TimerWheel::Id Schedule(net::Duration delay, absl::AnyInvocable<void()> fn);
  void CancelTimer(net::TimerWheel::Id& id);
  void ExpireBlock1(Block1Transfer* transfer);
  void EraseBlock1(absl::flat_hash_map<TransferKey, std::unique_ptr<Block1Transfer>>::iterator it);

  net::ShardIo& io_;
  Config config_;  // const but for the transmission parameters
  CoapMetrics& metrics_;
  RequestHandler& handler_;
  const std::thread::id owner_thread_;
  absl::BitGen bitgen_;

  internal::DedupCache dedup_;
  internal::Block2Cache block2_;
  absl::flat_hash_map<MidKey, std::unique_ptr<Transmission>> transmissions_;
  internal::Pool<Transmission> transmission_pool_;
  absl::flat_hash_map<Token, ClientRequest> requests_;
  absl::flat_hash_map<uint64_t, Deferred> deferred_;
  absl::flat_hash_map<TransferKey, std::unique_ptr<Block1Transfer>> block1_;
  // RFC 7252 §4.4: a message id is not reused towards the same peer within
  // EXCHANGE_LIFETIME, so ids are counted per peer (a per-shard counter would wrap towards
  // a busy peer's earlier ids at a few hundred messages a second).
  absl::flat_hash_map<net::PeerAddress, PeerState> peers_;
  uint64_t next_deferred_id_ = 0;
  uint32_t token_counter_ = 0;
  uint64_t reported_evictions_ = 0;
  net::TimerWheel::Id housekeeping_timer_ = net::TimerWheel::kNoTimer;
  net::TimePoint next_peer_sweep_;
  UnmatchedResponseHandler unmatched_handler_;
  // Shard routing (SetShardRouting): tokens carry the shard in their top kTokenShardBits,
  // message ids in their top mid_shard_bits_.
  static constexpr int kTokenShardBits = 10;
  int routing_shard_ = 0;
  int routing_count_ = 1;
  int mid_shard_bits_ = 0;
  ForwardHandler forward_;
  // The shard a response or empty ACK/RST belongs to, or -1 when it is this one's.
  int OwnerShard(const MessageView& m) const;
  // Encoding buffer for one outgoing message; its bytes are copied by ShardIo::Send and,
  // where they must outlive the call, into the dedup cache or a Transmission.
  std::array<uint8_t, kMaxMessageSize> scratch_;
};

}  // namespace lwm2md::coap
