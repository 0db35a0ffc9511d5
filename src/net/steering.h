#pragma once
// Which shard's socket receives a datagram. Left to itself, SO_REUSEPORT picks a socket of
// the group by a hash of the 4-tuple under a random per-boot key, so the server cannot know
// where a device's packets will land: a registration restored after a restart, or a
// device's new NAT port, would sit on one shard while its packets reach another. A classic
// BPF program attached to each group (SO_ATTACH_REUSEPORT_CBPF, socket(7)) replaces that
// choice with one the server computes as well:
//
//   - a DTLS record that carries a connection id (content type tls12_cid, RFC 9146) goes to
//     the shard named by the id's first byte, whatever address it comes from: a session
//     survives NAT rebinding on the shard that holds it;
//   - any other datagram goes to SteeringShard(source address), a hash of the source address
//     and port.
//
// The program reads the source address from the IP header and the port right after it,
// assuming a header without options (IPv4) or extension headers (IPv6). A datagram that
// breaks that assumption still lands on some shard, and the layers above forward what is
// not theirs (coap::MessageLayer's shard routing, the DTLS session directory).

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "net/peer_address.h"

namespace lwm2md::net {

// The hash the steering program computes for a source address and port.
uint32_t SteeringHash(const PeerAddress& peer);
// The shard (0 ≤ shard < shards) whose socket receives datagrams from peer (other than DTLS
// records with a connection id).
int SteeringShard(const PeerAddress& peer, int shards);

// DTLS 1.2 record header with a connection id: type(1) version(2) epoch(2) sequence(6), then
// the id. The steering program takes the shard from its first byte.
inline constexpr uint8_t kDtlsContentTypeCid = 25;
inline constexpr size_t kDtlsCidOffset = 11;

// Attaches the steering program to the SO_REUSEPORT group of fd (an AF_INET or AF_INET6
// UDP socket whose group has one socket per shard, joined in shard order). dtls: also steer
// connection-id records by their id.
absl::Status AttachSteering(int fd, int family, int shards, bool dtls);

}  // namespace lwm2md::net
