#pragma once
// Shared by the content-format fuzzers: a resolver that types every resource from its id, and
// the round-trip property (what decoded re-encodes, and decoding that again gives the same
// records).

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lwm2m/content_format.h"

namespace lwm2md::lwm2m::fuzz {

// Resource r has type r % 11 (kNone ... kCorelnk), and none when r % 11 == 10, so that strict
// decoding meets every type and "resource definition not found", and lenient decoding meets
// unknown resources.
class IdTypes : public TypeResolver {
 public:
  std::optional<ResourceType> TypeOf(const Path& path) const override {
    if (path.depth() != 3) std::abort();
    const int type = *path.resource_id % 11;
    if (type == 10) return std::nullopt;
    return static_cast<ResourceType>(type);
  }
};

inline void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "content format fuzz: %s\n", what);
    std::abort();
  }
}

inline std::span<const uint8_t> AsBytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

inline void SortByPath(std::vector<Record>* records) {
  std::stable_sort(records->begin(), records->end(),
                   [](const Record& a, const Record& b) { return a.path < b.path; });
}

// Decodes payload; when it decodes, re-encodes and decodes again, aborting if the records
// differ. must_encode: every decodable payload must re-encode (false for TLV, whose encoder
// refuses duplicate paths that a payload may hold). sort: compare in path order (TLV groups
// by path when encoding).
inline void RoundTrip(ContentFormat format, const Path& request, std::span<const uint8_t> payload,
                      DecodeOptions options, bool must_encode, bool sort = false) {
  static const IdTypes kTypes;
  auto decoded = Decode(format, request, payload, kTypes, options);
  if (!decoded.ok()) return;
  for (const Record& record : decoded->records) {
    Require(record.path.depth() >= 3, "a record above resource level");
    Require(options.composite || request.Contains(record.path), "a record outside the request");
  }
  std::string encoded;
  const absl::Status status = Encode(format, request, decoded->records, &encoded,
                                     EncodeOptions{.composite = options.composite});
  if (!status.ok()) {
    Require(!must_encode, "decoded records do not re-encode");
    return;
  }
  auto again = Decode(format, request, AsBytes(encoded), kTypes, options);
  Require(again.ok(), "re-encoded payload does not decode");
  std::vector<Record> first = std::move(decoded->records);
  std::vector<Record> second = std::move(again->records);
  if (sort) {
    SortByPath(&first);
    SortByPath(&second);
  }
  Require(first.size() == second.size(), "round trip changed the record count");
  for (size_t i = 0; i < first.size(); ++i) {
    Require(first[i].path == second[i].path, "round trip changed a path");
    if (!(first[i].value == second[i].value)) {
      std::fprintf(stderr, "%s: %s became %s in %.*s\n", first[i].path.ToString().c_str(),
                   first[i].value.DebugString().c_str(), second[i].value.DebugString().c_str(),
                   static_cast<int>(encoded.size()), encoded.data());
      Require(false, "round trip changed a value");
    }
    Require(first[i].timestamp.has_value() == second[i].timestamp.has_value() &&
                (!first[i].timestamp || *first[i].timestamp == *second[i].timestamp),
            "round trip changed a timestamp");
  }
}

}  // namespace lwm2md::lwm2m::fuzz
