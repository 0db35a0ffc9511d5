#pragma once
// simdjson on-demand support shared by the SenML JSON and LwM2M JSON codecs.
//
// Why on-demand rather than DOM: the on-demand API hands out the position of each token in the
// input, so a string without escapes can be returned as a view into the caller's payload, as
// every other codec does; DOM copies every string into its own tape. simdjson reads up to
// SIMDJSON_PADDING bytes past the end of its input, which a datagram buffer does not promise,
// so the payload is first copied into a padded buffer reused per thread; string views are then
// mapped back from that copy to the payload. On-demand validates what it is asked for and
// skips the rest, so the codecs walk every value of the document, unknown fields included,
// to refuse malformed JSON anywhere in it.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "base/json_writer.h"
#include "lwm2m/content_format_internal.h"
#include "simdjson.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace json = simdjson::ondemand;

class JsonInput {
 public:
  // Copies payload into this thread's padded buffer and starts a document over it. The
  // document and every string from it stay valid until the next Start on this thread.
  simdjson::error_code Start(std::span<const uint8_t> payload, json::document* doc);

  // Reads a string value. *out is a view into the payload when the string has no escapes,
  // else into the parser's memory (*in_payload false; copy it to keep it).
  simdjson::error_code GetString(json::value& value, std::string_view* out, bool* in_payload) const;
  simdjson::error_code GetNumber(json::value& value, Number* out) const;

  // Where a failed document stopped, as an offset into the payload.
  size_t ErrorOffset(json::document& doc) const;
  // "<format>: malformed JSON near byte N (<simdjson's message>)".
  absl::Status Malformed(std::string_view format, json::document& doc,
                         simdjson::error_code error) const;
  // The same when Start failed, before there is a document to ask.
  absl::Status NotStarted(std::string_view format, simdjson::error_code error) const;
  // Refuses bytes after the root value.
  absl::Status CheckEnd(std::string_view format, json::document& doc) const;

 private:
  std::span<const uint8_t> payload_;
  const char* padded_ = nullptr;
};

// Walks a value to its end so that all of it is validated (RFC 8428 §4.4 says to ignore
// unknown fields, not to accept malformed ones). Nesting deeper than 32 levels is refused.
simdjson::error_code ConsumeValue(json::value& value, int depth = 0);

// The member names in which SenML JSON (RFC 8428 §5) and LwM2M JSON (TS 1.0.2 §6.4.4) differ;
// "n", "v" and "t" are the same in both.
struct JsonRecordKeys {
  std::string_view string;  // also core links
  std::string_view opaque;
  bool opaque_url_safe;  // base64 alphabet for opaque values
  std::string_view boolean;
  std::string_view objlnk;
};

// Writes record's "n" (relative to naming, left out when empty), value and "t" members into the
// object the caller has opened. scratch is reused from record to record so that formatting
// numbers and names does not allocate each time. A non-finite float has no JSON form and is
// refused with "<format>: <path>: <value> has no JSON form".
absl::Status WriteJsonRecordMembers(std::string_view format, const JsonRecordKeys& keys,
                                    const SenmlNaming& naming, const Record& record,
                                    base::JsonWriter* writer, std::string* scratch);

}  // namespace lwm2md::lwm2m::content_format_internal
