#include "dtls/saved_session.h"

#include <optional>

#include "absl/strings/str_cat.h"

namespace lwm2md::dtls {
namespace {

constexpr uint8_t kVersion = 1;

enum Tag : uint8_t {
  kConnectionId = 1,  // 8 bytes, big endian
  kFlags = 2,         // bit 0: connection id used
  kPeer = 3,          // PeerAddress::ToString
  kPskIdentity = 4,
  kEndpoint = 5,
  kCiphersuite = 6,
  kSavedAt = 7,  // 8 bytes: microseconds since the Unix epoch, big endian
  kContext = 8,  // mbedtls_ssl_context_save
  kAuthentication = 9,  // 1 byte: Authentication (absent: kPsk)
  kCertificateThumbprint = 10,
  kCertificateName = 11,
};

void PutUint64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

uint64_t GetUint64(std::string_view bytes) {
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<uint8_t>(c);
  return value;
}

void PutField(std::string& out, Tag tag, std::string_view value) {
  // Two length bytes: a saved context is a few hundred bytes (no peer certificate is kept).
  out.push_back(static_cast<char>(tag));
  out.push_back(static_cast<char>(value.size() >> 8));
  out.push_back(static_cast<char>(value.size()));
  out.append(value);
}

}  // namespace

std::string SessionKey(uint64_t connection_id) {
  std::string key = "s";
  PutUint64(key, connection_id);
  return key;
}

std::string AddressKey(const net::PeerAddress& peer) { return absl::StrCat("a", peer.ToString()); }

std::optional<uint64_t> ConnectionIdOfAddressValue(std::string_view value) {
  if (value.size() != 8) return std::nullopt;
  return GetUint64(value);
}

std::string EncodeSavedSession(const SavedSession& session) {
  std::string out;
  out.reserve(64 + session.context.size() + session.identity.endpoint.size() +
              session.identity.psk_identity.size());
  out.push_back(static_cast<char>(kVersion));
  std::string id;
  PutUint64(id, session.connection_id);
  PutField(out, kConnectionId, id);
  const char flags = session.connection_id_used ? 1 : 0;
  PutField(out, kFlags, std::string_view(&flags, 1));
  PutField(out, kPeer, session.peer.ToString());
  PutField(out, kPskIdentity, session.identity.psk_identity);
  PutField(out, kEndpoint, session.identity.endpoint);
  PutField(out, kCiphersuite, session.identity.ciphersuite);
  std::string saved_at;
  PutUint64(saved_at, static_cast<uint64_t>(absl::ToUnixMicros(session.saved_at)));
  PutField(out, kSavedAt, saved_at);
  PutField(out, kContext, session.context);
  if (session.identity.authentication != Authentication::kPsk) {
    const char authentication = static_cast<char>(session.identity.authentication);
    PutField(out, kAuthentication, std::string_view(&authentication, 1));
    PutField(out, kCertificateThumbprint, session.identity.certificate_thumbprint);
    PutField(out, kCertificateName, session.identity.certificate_name);
  }
  return out;
}

absl::StatusOr<SavedSession> DecodeSavedSession(std::string_view bytes) {
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) != kVersion) {
    return absl::DataLossError("saved DTLS session: unknown format version");
  }
  SavedSession session;
  bool have_id = false, have_peer = false, have_context = false;
  size_t at = 1;
  while (at < bytes.size()) {
    if (bytes.size() - at < 3) return absl::DataLossError("saved DTLS session: truncated field");
    const uint8_t tag = static_cast<uint8_t>(bytes[at]);
    const size_t length = (size_t{static_cast<uint8_t>(bytes[at + 1])} << 8) |
                          static_cast<uint8_t>(bytes[at + 2]);
    at += 3;
    if (bytes.size() - at < length) {
      return absl::DataLossError("saved DTLS session: truncated field");
    }
    const std::string_view value = bytes.substr(at, length);
    at += length;
    switch (tag) {
      case kConnectionId:
        if (value.size() != 8) return absl::DataLossError("saved DTLS session: bad id");
        session.connection_id = GetUint64(value);
        have_id = true;
        break;
      case kFlags:
        session.connection_id_used = !value.empty() && (value[0] & 1) != 0;
        break;
      case kPeer: {
        std::optional<net::PeerAddress> peer = net::PeerAddress::Parse(value);
        if (!peer) return absl::DataLossError("saved DTLS session: bad peer address");
        session.peer = *peer;
        have_peer = true;
        break;
      }
      case kPskIdentity: session.identity.psk_identity = std::string(value); break;
      case kEndpoint: session.identity.endpoint = std::string(value); break;
      case kCiphersuite: session.identity.ciphersuite = std::string(value); break;
      case kAuthentication:
        if (value.size() != 1 || static_cast<uint8_t>(value[0]) >
                                     static_cast<uint8_t>(Authentication::kCertificateCa)) {
          return absl::DataLossError("saved DTLS session: bad authentication");
        }
        session.identity.authentication = static_cast<Authentication>(value[0]);
        break;
      case kCertificateThumbprint:
        session.identity.certificate_thumbprint = std::string(value);
        break;
      case kCertificateName: session.identity.certificate_name = std::string(value); break;
      case kSavedAt:
        if (value.size() != 8) return absl::DataLossError("saved DTLS session: bad time");
        session.saved_at = absl::FromUnixMicros(static_cast<int64_t>(GetUint64(value)));
        break;
      case kContext:
        session.context = std::string(value);
        have_context = true;
        break;
      default: break;  // a field a later build added
    }
  }
  if (!have_id || !have_peer || !have_context) {
    return absl::DataLossError("saved DTLS session: a required field is missing");
  }
  return session;
}

void AddSave(store::WriteBatch& batch, const SavedSession& session) {
  batch.Put(store::Table::kDtlsSessions, SessionKey(session.connection_id),
            EncodeSavedSession(session));
  std::string id;
  PutUint64(id, session.connection_id);
  batch.Put(store::Table::kDtlsSessions, AddressKey(session.peer), id);
}

void AddForget(store::WriteBatch& batch, uint64_t connection_id,
               const net::PeerAddress& address) {
  batch.Delete(store::Table::kDtlsSessions, SessionKey(connection_id));
  if (!address.empty()) batch.Delete(store::Table::kDtlsSessions, AddressKey(address));
}

}  // namespace lwm2md::dtls
