#pragma once
// DTLS sessions kept in the store while their devices are idle or the server is down.
//
// Key layout of store::Table::kDtlsSessions (store/README.md):
//   "s" <8-byte connection id, big endian>  → EncodeSavedSession(...)
//   "a" <peer address, as PeerAddress::ToString>  → <8-byte connection id>
// Every session has one of our connection ids, whether or not its client took it, so the
// id names the session; the address key finds it for records without a connection id and
// for messages the server starts (a read to a device whose session sleeps in the store).
//
// A session is either in a shard's memory or in the store, never both in use: restoring
// deletes the stored copy, because a copy restored twice would send records with sequence
// numbers already used under the same keys (nonce reuse in AES-CCM/GCM).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "net/peer_address.h"
#include "store/store.h"

namespace lwm2md::dtls {

// How the peer of a session proved who it is.
enum class Authentication : uint8_t {
  kPsk,                    // a PSK identity and its key
  kCertificateThumbprint,  // a certificate whose thumbprint an "x509" endpoint has
  kCertificateCa,          // a certificate signed by an uploaded CA, naming its endpoint
};

// Who the peer of an established session proved to be.
struct PeerIdentity {
  Authentication authentication = Authentication::kPsk;
  std::string psk_identity;
  // Certificate suites: the client certificate's SHA-256 thumbprint and the endpoint name
  // it carries (dtls::CertificateEndpointName; may be empty in thumbprint mode).
  std::string certificate_thumbprint;
  std::string certificate_name;
  std::string endpoint;  // the endpoint its credential belongs to
  std::string ciphersuite;
};

struct SavedSession {
  uint64_t connection_id = 0;
  bool connection_id_used = false;  // the client sends records with our id
  net::PeerAddress peer;            // where the client was last
  PeerIdentity identity;
  absl::Time saved_at;
  std::string context;  // mbedtls_ssl_context_save
};

// The shard a connection id names (its first byte; see DtlsServer).
inline int ShardOfConnectionId(uint64_t connection_id) {
  return static_cast<int>(connection_id >> 56);
}
std::string SessionKey(uint64_t connection_id);
std::string AddressKey(const net::PeerAddress& peer);
// The 8 bytes an address key maps to; nullopt when value is not one.
std::optional<uint64_t> ConnectionIdOfAddressValue(std::string_view value);

// A versioned tag-length-value layout: fields added later are skipped by older readers of
// the same version, and an unknown version is refused rather than misread.
std::string EncodeSavedSession(const SavedSession& session);
absl::StatusOr<SavedSession> DecodeSavedSession(std::string_view bytes);

// The puts that save a session, and the deletes that forget it (after a restore, or when it
// aged out). address: the address key to delete with it, if it still names this session
// (empty: none; a newer session from the same address may own the key by now).
void AddSave(store::WriteBatch& batch, const SavedSession& session);
void AddForget(store::WriteBatch& batch, uint64_t connection_id, const net::PeerAddress& address);

}  // namespace lwm2md::dtls
