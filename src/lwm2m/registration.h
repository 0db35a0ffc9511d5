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

// The LwM2M version as the client wrote it, held inside the object: lwm2m= is "major.minor"
// with 1 to 3 digits each (registration_params.h), so at most 7 bytes, where a std::string
// would take 32. The text is kept as sent ("1.01" stays "1.01": it is stored and published).
class VersionText {
 public:
  static constexpr size_t kCapacity = 7;
  VersionText() : VersionText("1.0") {}
  // text must fit (Fits): a longer one is a broken invariant.
  explicit VersionText(std::string_view text);
  static bool Fits(std::string_view text) { return text.size() <= kCapacity; }
  std::string_view view() const { return std::string_view(text_, size_); }
  operator std::string_view() const { return view(); }
  bool operator==(std::string_view other) const { return view() == other; }

 private:
  char text_[kCapacity] = {};
  uint8_t size_ = 0;
};

// A string that costs one pointer, and no allocation while empty: the SMS number, which
// almost no registration carries, would otherwise take 32 bytes in each.
class RareString {
 public:
  RareString() = default;
  RareString(const RareString& other) { *this = other.view(); }
  RareString(RareString&&) noexcept = default;
  RareString& operator=(const RareString& other) {
    if (this != &other) *this = other.view();
    return *this;
  }
  RareString& operator=(RareString&&) noexcept = default;
  RareString& operator=(std::string_view text) {
    text_ = text.empty() ? nullptr : std::make_unique<std::string>(text);
    return *this;
  }
  std::string_view view() const { return text_ ? std::string_view(*text_) : std::string_view(); }
  operator std::string_view() const { return view(); }
  bool empty() const { return text_ == nullptr; }

 private:
  std::unique_ptr<std::string> text_;  // null when empty
};

// A point in time in 8 bytes instead of absl::Time's 16: Unix nanoseconds, which hold every
// time a registration has (absl::Now readings, stored milliseconds) exactly, 1677 to 2262.
class CompactTime {
 public:
  CompactTime() = default;
  CompactTime(absl::Time time) : unix_nanos_(absl::ToUnixNanos(time)) {}  // NOLINT: implicit
  operator absl::Time() const { return absl::FromUnixNanos(unix_nanos_); }  // NOLINT: implicit
  absl::Time time() const { return *this; }

 private:
  int64_t unix_nanos_ = 0;
};

// Fields ordered by size, so that the struct carries no padding between them: a shard holds
// one per registered device.
struct Registration {
  std::string endpoint;
  // The registration's location is /rd/<id> (Core TS 1.1 §6.2.1: the server assigns it).
  std::string id;
  // Immutable and shared: registrations with equal lists hold one copy (ObjectLinksPool).
  // Never null; replaced as a whole when an Update carries a new list.
  std::shared_ptr<const ObjectLinks> objects = EmptyObjectLinks();
  RareString sms_number;
  CompactTime registered_at;
  CompactTime updated_at;  // last Register or Update
  CompactTime last_seen;   // last message of any kind from the client
  net::PeerAddress address;
  uint32_t lifetime_seconds = 86400;
  VersionText version;  // the negotiated LwM2M version, "1.0" or "1.1" as the client wrote it
  uint16_t listener = 0;  // the net listen address index (a handful are configured)
  uint8_t binding = binding::kUdp;
  bool queue_mode = false;
  CredentialsKind credentials = CredentialsKind::kNone;

  std::string location() const { return "/rd/" + id; }
  // When the registration lapses without an Update (Core TS 1.1 §6.2.2).
  absl::Time expires_at() const {
    return updated_at.time() + absl::Seconds(static_cast<int64_t>(lifetime_seconds));
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
