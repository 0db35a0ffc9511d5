// Decodes arbitrary payloads as LwM2M JSON (TS 1.0.2 §6.4.4): against an instance (/1000/0, strict
// types) and as a composite answer (any path, unknown resources lenient). Whatever decodes must
// re-encode, and decoding the re-encoding must give the same records.

#include <cstddef>
#include <cstdint>
#include <span>

#include "content_format_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lwm2md::lwm2m;
  const std::span<const uint8_t> payload(data, size);
  fuzz::RoundTrip(ContentFormat::kLwm2mJson, Path::Instance(1000, 0), payload, DecodeOptions{},
                  true);
  fuzz::RoundTrip(ContentFormat::kLwm2mJson, Path::Object(3), payload,
                  DecodeOptions{.lenient_unknown_resources = true, .composite = true}, true);
  return 0;
}
