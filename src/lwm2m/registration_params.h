#pragma once
// The wire forms of Register (POST /rd) and Update (POST /rd/{location}): the Uri-Query
// parameters and the "Objects and Object Instances" link-format payload, LwM2M Core TS 1.1
// §6.2.1 and §6.2.2 (and TS 1.0.2 §5.3.1, §5.3.2 for the 1.0 forms).
//
// Parsing reads views into the request; the RegistrationRequest it returns holds copies,
// because a registration outlives the datagram that carried it. Registration happens once per
// client per lifetime, so these allocations are off the per-packet hot path.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace lwm2md::lwm2m {

// Core TS 1.1 §6.2.1.1 Table 6.2.1.1-1 defaults.
inline constexpr uint32_t kDefaultLifetimeSeconds = 86400;
inline constexpr std::string_view kDefaultLwm2mVersion = "1.0";
inline constexpr size_t kMaxEndpointNameLength = 255;

// Transports of the binding mode, as a bit set. The 1.0 form carries queue mode as a 'Q' inside
// b ("UQ", "UQS"); 1.1 moved it to the separate Q parameter. Both normalise to these bits plus
// RegistrationRequest::queue_mode.
namespace binding {
inline constexpr uint8_t kUdp = 1 << 0;    // U
inline constexpr uint8_t kTcp = 1 << 1;    // T (1.1)
inline constexpr uint8_t kSms = 1 << 2;    // S
inline constexpr uint8_t kNonIp = 1 << 3;  // N (1.1)
}  // namespace binding

struct ObjectLink {
  uint16_t object_id = 0;
  std::optional<uint16_t> instance_id;
  // "major.minor" from the ver attribute (Core TS 1.1 §6.2.1.1); empty when absent, which means
  // the object's 1.0 version.
  std::string version;

  bool operator==(const ObjectLink&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const ObjectLink& link) {
    return H::combine(std::move(h), link.object_id, link.instance_id, link.version);
  }
};

struct ObjectLinks {
  // From the link with rt="oma.lwm2m" (Core TS 1.1 §6.2.1.1, TS 1.0.2 §5.3.1); "/" when the
  // client sends none. Never ends in '/' unless it is "/".
  std::string alternate_path = "/";
  // The ct attribute of that root link: the content formats the client supports (1.1).
  std::vector<uint16_t> content_formats;
  std::vector<ObjectLink> links;

  bool operator==(const ObjectLinks&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const ObjectLinks& links) {
    return H::combine(std::move(h), links.alternate_path, links.content_formats, links.links);
  }
};

struct RegistrationRequest {
  // ep: always set by ParseRegister; empty after ParseUpdate, where it is not a parameter.
  std::string endpoint;
  // For Register every optional below is set, with the TS default when the client sent none.
  // For Update a field is set only when the client sent it (Core TS 1.1 §6.2.2: only changed
  // parameters are sent), so nullopt means "unchanged".
  std::optional<uint32_t> lifetime_seconds;
  std::optional<std::string> lwm2m_version;
  std::optional<uint8_t> binding;  // Bits of namespace binding.
  // Set when b carried a 'Q' (1.0) or the Q parameter was present (1.1); for Register false
  // otherwise. For Update nullopt when neither was sent.
  std::optional<bool> queue_mode;
  std::optional<std::string> sms_number;
  // Register: always set (the payload is mandatory). Update: set when a payload was sent.
  std::optional<ObjectLinks> objects;
};

// Parses the Objects and Object Instances payload.
absl::StatusOr<ObjectLinks> ParseObjectLinks(std::string_view payload);

// uri_queries are the Uri-Query option values as received ("ep=foo", "Q"). Unknown parameter
// names are ignored so that clients of later TS versions, which add parameters, can still
// register; duplicate names are an error.
absl::StatusOr<RegistrationRequest> ParseRegister(std::span<const std::string_view> uri_queries,
                                                  std::string_view payload);
absl::StatusOr<RegistrationRequest> ParseUpdate(std::span<const std::string_view> uri_queries,
                                                std::string_view payload);

}  // namespace lwm2md::lwm2m
