#pragma once
// Per-shard DTLS counters (single writer: the shard; read by the metrics scrape).

#include <array>
#include <cstdint>
#include <string_view>

#include "net/shard_counter.h"

namespace lwm2md::dtls {

struct DtlsMetrics {
  // Why a handshake did not complete.
  enum class Failure : uint8_t {
    kUnknownIdentity,  // a PSK identity no endpoint has
    kBadCredentials,   // the peer's Finished did not verify: wrong key
    kTimeout,          // the peer stopped answering (handshake timeout)
    kProtocol,         // anything else the handshake refused
    kBadCertificate,   // a client certificate refused: unknown thumbprint, not signed by an
                       // uploaded CA, expired or not yet valid, none sent, or its name is an
                       // endpoint with a credential of its own
  };
  static constexpr int kFailureCount = 5;
  static std::string_view FailureName(Failure failure);

  // Why a datagram was dropped before reaching CoAP.
  enum class Drop : uint8_t {
    kMalformed,   // too short or not a DTLS record
    kNoSession,   // not a ClientHello and no session for its address or connection id
    kOverloaded,  // the shard holds lwm2m.max sessions already
  };
  static constexpr int kDropCount = 3;
  static std::string_view DropName(Drop drop);

  net::ShardCounter hello_verify_requests;  // cookies sent (stateless)
  net::ShardCounter handshakes_started;     // ClientHellos with a valid cookie
  net::ShardCounter handshakes_completed;
  std::array<net::ShardCounter, kFailureCount> handshake_failures;
  std::array<net::ShardCounter, kDropCount> dropped;
  net::ShardCounter records_in;     // application records decrypted
  net::ShardCounter records_out;    // application records sent
  net::ShardCounter send_failures;  // no established session for the address, or write failed
  net::ShardCounter rebinds;        // a connection id arrived from a new address
  net::ShardCounter closed;         // close_notify from the peer
  net::ShardCounter sessions;       // gauge: sessions held (handshaking or established)
  // Sessions and the store.
  net::ShardCounter sessions_saved_idle;      // idle sessions saved and freed
  net::ShardCounter sessions_saved_shutdown;  // sessions saved at shutdown
  net::ShardCounter sessions_restored;        // saved sessions brought back by a record or a send
  net::ShardCounter sessions_unsaveable;  // dropped: nothing from the client since its Finished
  net::ShardCounter sessions_expired;     // saved sessions forgotten: too old or unreadable
  net::ShardCounter session_save_failures;  // the store refused a save (the session stayed)
};

}  // namespace lwm2md::dtls
