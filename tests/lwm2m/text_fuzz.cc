// The single-value formats (plain text, opaque, CBOR; TS 1.1 §7.4.1, §7.4.2, §7.4.6) and the
// TLV adapter of content_format.h (identifiers mapped to paths at every request depth) on
// arbitrary payloads, for a resource of every type, strict and lenient. Whatever decodes must
// re-encode (TLV: unless it names a path twice) and decode again to the same records.

#include <cstddef>
#include <cstdint>
#include <span>

#include "content_format_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lwm2md::lwm2m;
  const std::span<const uint8_t> payload(data, size);
  const DecodeOptions strict;
  const DecodeOptions lenient{.lenient_unknown_resources = true};
  // Resources 0-9 have the types kNone ... kCorelnk; resource 10 is unknown.
  for (uint16_t r = 0; r <= 10; ++r) {
    const Path resource = Path::Resource(1000, 0, r);
    for (const DecodeOptions& options : {strict, lenient}) {
      fuzz::RoundTrip(ContentFormat::kText, resource, payload, options, true);
      fuzz::RoundTrip(ContentFormat::kOpaque, resource, payload, options, true);
      // A lenient CBOR time (tag 1) re-encodes untagged and comes back as an integer.
      if (r != 10) fuzz::RoundTrip(ContentFormat::kCbor, resource, payload, options, true);
    }
  }
  static const fuzz::IdTypes kTypes;
  (void)Decode(ContentFormat::kCbor, Path::Resource(1000, 0, 10), payload, kTypes, lenient);
  for (const Path& request : {Path::Object(1000), Path::Instance(1000, 0),
                              Path::Resource(1000, 0, 3), Path::ResourceInstance(1000, 0, 4, 1)}) {
    fuzz::RoundTrip(ContentFormat::kTlv, request, payload, DecodeOptions{}, false, true);
    fuzz::RoundTrip(ContentFormat::kTlv, request, payload, lenient, false, true);
  }
  return 0;
}
