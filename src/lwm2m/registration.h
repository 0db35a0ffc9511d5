#pragma once
// A client's registration with this server (Core TS 1.1 §6.2.1): what Register established and
// Update changed, where the client is, and when it was last heard from. Plain data with its
// persisted form (the kRegistrations table: endpoint name → Serialize()) and its event payload.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lwm2m/object_links_pool.h"
#include "lwm2m/registration_params.h"
#include "net/peer_address.h"

namespace lwm2md::lwm2m {

// The reference's register event field `credentials`: the endpoint's defined credentials,
// credentials issued to it by bootstrap, or no security.
enum class CredentialsKind : uint8_t { kNone, kPrimary, kAlternate };
std::string_view CredentialsName(CredentialsKind kind);  // "none", "primary", "alternate"

struct Registration {
  std::string endpoint;
  // The registration's location is /rd/<id> (Core TS 1.1 §6.2.1: the server assigns it).
  std::string id;
  uint32_t lifetime_seconds = 86400;
  std::string version = "1.0";  // the negotiated LwM2M version, "1.0" or "1.1"
  uint8_t binding = binding::kUdp;
  bool queue_mode = false;
  std::string sms_number;
  // Immutable and shared: registrations with equal lists hold one copy (ObjectLinksPool).
  // Never null; replaced as a whole when an Update carries a new list.
  std::shared_ptr<const ObjectLinks> objects = EmptyObjectLinks();
  net::PeerAddress address;
  int listener = 0;
  CredentialsKind credentials = CredentialsKind::kNone;
  absl::Time registered_at;
  absl::Time updated_at;  // last Register or Update
  absl::Time last_seen;   // last message of any kind from the client

  std::string location() const { return "/rd/" + id; }
  // When the registration lapses without an Update (Core TS 1.1 §6.2.2).
  absl::Time expires_at() const {
    return updated_at + absl::Seconds(static_cast<int64_t>(lifetime_seconds));
  }

  // Applies the fields an Update carried (unset fields are unchanged, §6.2.2).
  void Apply(const RegistrationRequest& update);

  // The persisted form: compact JSON, versioned by its field names.
  std::string Serialize() const;
  static absl::StatusOr<Registration> Parse(std::string_view serialized);

  // The lwm2m.register / lwm2m.update event payload exactly as the reference shows it:
  // {"binding","credentials","remoteAddr","version","discovery":{"children":{...}}}.
  std::string EventPayload() const;
};

// The reference's binding strings: "U", "UQ", and the other letters in TS order (U, T, S, N)
// with Q after the transport it applies to in 1.0 style ("UQS").
std::string BindingString(uint8_t binding, bool queue_mode);

}  // namespace lwm2md::lwm2m
