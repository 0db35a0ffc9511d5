#pragma once
// The CoAP message layer's probe: its methods are the only places the layer's counters
// change. One per shard, written by that shard's thread (net::ShardCounter: single writer,
// relaxed atomics), read by the metrics scraper; registered with Prometheus by the server
// wiring (metrics/), which enumerates the type x code cells with ForEachMessageCount.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "coap/message.h"
#include "net/shard_counter.h"

namespace lwm2md::coap {

// Why a well-formed message was dropped or rejected (parse failures are counted by
// ParseError instead).
enum class DropReason : uint8_t {
  kEmptyNonConfirmable,    // a NON must carry a request or response (RFC 7252 §4.3)
  kRequestInAck,           // an ACK carries a response or nothing (RFC 7252 §4.2)
  kNonEmptyReset,          // a RST must be empty (RFC 7252 §4.2, §4.3)
  kReservedCodeClass,      // code classes 1, 3, 6, 7 are reserved (RFC 7252 §12.1)
  kUnmatchedAckOrReset,    // ACK/RST matching no CON or NON we sent (RFC 7252 §4.2)
  kUnmatchedResponse,      // response for no request of ours: answered RST (RFC 7252 §4.2)
  kUnknownCriticalOption,  // in a NON request or a response: rejected (RFC 7252 §5.4.1)
  kBadBlockOption,         // Block1/Block2 of a request rejected 4.00/4.02 (RFC 7959 §2.2)
  kCount,
};
std::string_view DropReasonName(DropReason reason);

namespace internal {
// "c.dd" for every code, built at compile time so that labelling a cell never allocates.
constexpr std::array<std::array<char, 4>, 256> MakeCodeLabels() {
  std::array<std::array<char, 4>, 256> labels{};
  for (size_t c = 0; c < 256; ++c) {
    const size_t detail = c & 0x1f;
    labels[c] = {static_cast<char>('0' + (c >> 5)), '.', static_cast<char>('0' + detail / 10),
                 static_cast<char>('0' + detail % 10)};
  }
  return labels;
}
inline constexpr std::array<std::array<char, 4>, 256> kCodeLabels = MakeCodeLabels();
}  // namespace internal

inline constexpr size_t kParseErrorCount =
    static_cast<size_t>(ParseError::kEmptyMessageNotEmpty) + 1;

class CoapMetrics {
 public:
  enum class Direction : uint8_t { kReceived, kSent };

  CoapMetrics() = default;
  CoapMetrics(const CoapMetrics&) = delete;
  CoapMetrics& operator=(const CoapMetrics&) = delete;

  // --- increments (message layer only) ---
  void MessageReceived(Type type, uint8_t code) { Cell(Direction::kReceived, type, code).Add(); }
  void MessageSent(Type type, uint8_t code) { Cell(Direction::kSent, type, code).Add(); }
  void Retransmission() { retransmissions_.Add(); }
  void Duplicate() { duplicates_.Add(); }
  void ParseFailed(ParseError error) {
    const size_t i = static_cast<size_t>(error);
    if (i < kParseErrorCount) parse_errors_[i].Add();
  }
  void Dropped(DropReason reason) { dropped_[static_cast<size_t>(reason)].Add(); }
  void BadOptionAnswered() { bad_options_.Add(); }
  void RequestTimedOut() { requests_timed_out_.Add(); }
  void SeparateResponseUnacknowledged() { separate_responses_unacked_.Add(); }
  void ResetReceived() { resets_received_.Add(); }
  void PingAnswered() { pings_.Add(); }
  void Block1Completed() { block1_completed_.Add(); }
  void Block1Rejected() { block1_rejected_.Add(); }
  void Block2Response() { block2_responses_.Add(); }
  void SendFailed() { send_failures_.Add(); }
  void DeferredExpired() { deferred_expired_.Add(); }
  void HandlerError() { handler_errors_.Add(); }
  void DedupEvicted(uint64_t n = 1) { dedup_evictions_.Add(n); }
  void SetDedupEntries(uint64_t n) { dedup_entries_.Set(n); }
  void SetOutstandingRequests(uint64_t n) { outstanding_requests_.Set(n); }
  void SetBlock2CacheBytes(uint64_t n) { block2_cache_bytes_.Set(n); }

  // --- reads (any thread) ---
  uint64_t messages(Direction d, Type type, uint8_t code) const {
    return cells_[static_cast<size_t>(d)][static_cast<size_t>(type)][code].Value();
  }
  uint64_t retransmissions() const { return retransmissions_.Value(); }
  uint64_t duplicates() const { return duplicates_.Value(); }
  uint64_t parse_errors(ParseError error) const {
    const size_t i = static_cast<size_t>(error);
    return i < kParseErrorCount ? parse_errors_[i].Value() : 0;
  }
  uint64_t dropped(DropReason reason) const {
    return dropped_[static_cast<size_t>(reason)].Value();
  }
  uint64_t bad_options() const { return bad_options_.Value(); }
  uint64_t requests_timed_out() const { return requests_timed_out_.Value(); }
  uint64_t separate_responses_unacked() const { return separate_responses_unacked_.Value(); }
  uint64_t resets_received() const { return resets_received_.Value(); }
  uint64_t pings() const { return pings_.Value(); }
  uint64_t block1_completed() const { return block1_completed_.Value(); }
  uint64_t block1_rejected() const { return block1_rejected_.Value(); }
  uint64_t block2_responses() const { return block2_responses_.Value(); }
  uint64_t send_failures() const { return send_failures_.Value(); }
  uint64_t deferred_expired() const { return deferred_expired_.Value(); }
  uint64_t handler_errors() const { return handler_errors_.Value(); }
  uint64_t dedup_evictions() const { return dedup_evictions_.Value(); }
  uint64_t dedup_entries() const { return dedup_entries_.Value(); }
  uint64_t outstanding_requests() const { return outstanding_requests_.Value(); }
  uint64_t block2_cache_bytes() const { return block2_cache_bytes_.Value(); }

  // Calls fn(std::string_view type, std::string_view code, uint64_t value) for each non-zero
  // type x code cell of one direction, e.g. ("CON", "0.01", 17). The labels are static
  // strings: no allocation, so a scraper can run it as often as it likes.
  template <typename Fn>
  void ForEachMessageCount(Direction d, Fn&& fn) const {
    for (size_t t = 0; t < 4; ++t) {
      for (size_t c = 0; c < 256; ++c) {
        const uint64_t v = cells_[static_cast<size_t>(d)][t][c].Value();
        if (v != 0) fn(TypeLabel(static_cast<Type>(t)), CodeLabel(static_cast<uint8_t>(c)), v);
      }
    }
  }
  template <typename Fn>
  void ForEachParseError(Fn&& fn) const {
    for (size_t i = 1; i < kParseErrorCount; ++i)
      fn(ParseErrorName(static_cast<ParseError>(i)), parse_errors_[i].Value());
  }
  template <typename Fn>
  void ForEachDropReason(Fn&& fn) const {
    for (size_t i = 0; i < static_cast<size_t>(DropReason::kCount); ++i)
      fn(DropReasonName(static_cast<DropReason>(i)), dropped_[i].Value());
  }

  // "CON", "NON", "ACK", "RST".
  static std::string_view TypeLabel(Type type) {
    static constexpr std::string_view kNames[4] = {"CON", "NON", "ACK", "RST"};
    return kNames[static_cast<size_t>(type) & 3];
  }
  // "c.dd" as RFC 7252 §5.9 writes codes: "0.01", "2.05", "4.04".
  static std::string_view CodeLabel(uint8_t code) {
    return std::string_view(internal::kCodeLabels[code].data(), 4);
  }

 private:
  net::ShardCounter& Cell(Direction d, Type type, uint8_t code) {
    return cells_[static_cast<size_t>(d)][static_cast<size_t>(type) & 3][code];
  }

  // [direction][type][code]: 16 KiB per shard, fixed, so counting never allocates.
  std::array<std::array<std::array<net::ShardCounter, 256>, 4>, 2> cells_;
  std::array<net::ShardCounter, kParseErrorCount> parse_errors_;
  std::array<net::ShardCounter, static_cast<size_t>(DropReason::kCount)> dropped_;
  net::ShardCounter retransmissions_;
  net::ShardCounter duplicates_;
  net::ShardCounter bad_options_;
  net::ShardCounter requests_timed_out_;
  net::ShardCounter separate_responses_unacked_;
  net::ShardCounter resets_received_;
  net::ShardCounter pings_;
  net::ShardCounter block1_completed_;
  net::ShardCounter block1_rejected_;
  net::ShardCounter block2_responses_;
  net::ShardCounter send_failures_;
  net::ShardCounter deferred_expired_;
  net::ShardCounter handler_errors_;
  net::ShardCounter dedup_evictions_;
  net::ShardCounter dedup_entries_;         // gauge
  net::ShardCounter outstanding_requests_;  // gauge
  net::ShardCounter block2_cache_bytes_;    // gauge
};

inline std::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kEmptyNonConfirmable:
      return "empty_non_confirmable";
    case DropReason::kRequestInAck:
      return "request_in_ack";
    case DropReason::kNonEmptyReset:
      return "non_empty_reset";
    case DropReason::kReservedCodeClass:
      return "reserved_code_class";
    case DropReason::kUnmatchedAckOrReset:
      return "unmatched_ack_or_reset";
    case DropReason::kUnmatchedResponse:
      return "unmatched_response";
    case DropReason::kUnknownCriticalOption:
      return "unknown_critical_option";
    case DropReason::kBadBlockOption:
      return "bad_block_option";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace lwm2md::coap
