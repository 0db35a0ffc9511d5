#include "lwm2m/content_format.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "lwm2m/content_format_internal.h"

namespace lwm2md::lwm2m {

namespace ci = content_format_internal;

std::optional<ContentFormat> ContentFormatFromNumber(uint16_t number) {
  switch (number) {
    case 0:
      return ContentFormat::kText;
    case 40:
      return ContentFormat::kCoreLink;
    case 42:
      return ContentFormat::kOpaque;
    case 60:
      return ContentFormat::kCbor;
    case 110:
      return ContentFormat::kSenmlJson;
    case 112:
      return ContentFormat::kSenmlCbor;
    case 11542:
    case 1542:  // application/vnd.oma.lwm2m+tlv before IANA registration (LwM2M 1.0 clients)
      return ContentFormat::kTlv;
    case 11543:
    case 1543:  // application/vnd.oma.lwm2m+json before IANA registration
      return ContentFormat::kLwm2mJson;
    default:
      return std::nullopt;
  }
}

std::optional<ContentFormat> ParseEncodingName(std::string_view name) {
  if (name == "tlv") return ContentFormat::kTlv;
  if (name == "text") return ContentFormat::kText;
  if (name == "opaque") return ContentFormat::kOpaque;
  if (name == "json") return ContentFormat::kLwm2mJson;
  if (name == "senml-json") return ContentFormat::kSenmlJson;
  if (name == "senml-cbor") return ContentFormat::kSenmlCbor;
  if (name == "cbor") return ContentFormat::kCbor;
  return std::nullopt;
}

std::string_view EncodingName(ContentFormat format) {
  switch (format) {
    case ContentFormat::kText:
      return "text";
    case ContentFormat::kCoreLink:
      return "core-link";
    case ContentFormat::kOpaque:
      return "opaque";
    case ContentFormat::kCbor:
      return "cbor";
    case ContentFormat::kSenmlJson:
      return "senml-json";
    case ContentFormat::kSenmlCbor:
      return "senml-cbor";
    case ContentFormat::kTlv:
      return "tlv";
    case ContentFormat::kLwm2mJson:
      return "json";
  }
  return "unknown";
}

bool Value::operator==(const Value& other) const {
  if (type != other.type) return false;
  switch (type) {
    case ResourceType::kNone:
      return true;
    case ResourceType::kString:
    case ResourceType::kOpaque:
    case ResourceType::kCorelnk:
      return bytes == other.bytes;
    case ResourceType::kInteger:
      return integer == other.integer;
    case ResourceType::kUnsignedInteger:
      return unsigned_integer == other.unsigned_integer;
    case ResourceType::kFloat:
      return std::bit_cast<uint64_t>(floating) == std::bit_cast<uint64_t>(other.floating) ||
             (std::isnan(floating) && std::isnan(other.floating));
    case ResourceType::kBoolean:
      return boolean == other.boolean;
    case ResourceType::kTime:
      return time == other.time;
    case ResourceType::kObjlnk:
      return link == other.link;
  }
  return false;
}

std::string Value::DebugString() const {
  switch (type) {
    case ResourceType::kNone:
      return "none";
    case ResourceType::kString:
      return absl::StrFormat("string \"%s\"", bytes);
    case ResourceType::kCorelnk:
      return absl::StrFormat("corelnk \"%s\"", bytes);
    case ResourceType::kOpaque:
      return absl::StrFormat("opaque %u bytes", bytes.size());
    case ResourceType::kInteger:
      return absl::StrFormat("integer %d", integer);
    case ResourceType::kUnsignedInteger:
      return absl::StrFormat("unsigned integer %u", unsigned_integer);
    case ResourceType::kFloat:
      return absl::StrFormat("float %.17g", floating);
    case ResourceType::kBoolean:
      return boolean ? "boolean true" : "boolean false";
    case ResourceType::kTime:
      return absl::StrFormat("time %d", time);
    case ResourceType::kObjlnk:
      return absl::StrFormat("objlnk %u:%u", link.object_id, link.instance_id);
  }
  return "?";
}

char* Decoded::Allocate(size_t n) {
  if (n == 0) return nullptr;
  if (blocks_.empty() || block_size_ - block_used_ < n) {
    // The first block is sized from the payload: a transformation never makes a value longer
    // than its encoded form, so one block normally serves the whole decode.
    const size_t size = std::max({n, block_hint_, size_t{64}});
    blocks_.push_back(std::make_unique_for_overwrite<char[]>(size));
    block_size_ = size;
    block_used_ = 0;
    block_hint_ = 0;
  }
  char* p = blocks_.back().get() + block_used_;
  block_used_ += n;
  return p;
}

std::string_view Decoded::Own(std::string_view bytes) {
  if (bytes.empty()) return {};
  char* p = Allocate(bytes.size());
  std::copy(bytes.begin(), bytes.end(), p);
  return std::string_view(p, bytes.size());
}

absl::StatusOr<Decoded> Decode(ContentFormat format, const Path& request_path,
                               std::span<const uint8_t> payload, const TypeResolver& types,
                               DecodeOptions options) {
  Decoded decoded;
  const ci::DecodeContext context{
      EncodingName(format), request_path, payload, types, options, &decoded};
  absl::Status status;
  switch (format) {
    case ContentFormat::kText:
      status = ci::DecodeText(context);
      break;
    case ContentFormat::kOpaque:
      status = ci::DecodeOpaque(context);
      break;
    case ContentFormat::kCbor:
      status = ci::DecodeCborValue(context);
      break;
    case ContentFormat::kTlv:
      status = ci::DecodeTlv(context);
      break;
    case ContentFormat::kSenmlJson:
      status = ci::DecodeSenmlJson(context);
      break;
    case ContentFormat::kSenmlCbor:
      status = ci::DecodeSenmlCbor(context);
      break;
    case ContentFormat::kLwm2mJson:
      status = ci::DecodeLwm2mJson(context);
      break;
    case ContentFormat::kCoreLink:
      return absl::InvalidArgumentError(
          "core-link: a link-format payload holds links, not resource values");
  }
  if (!status.ok()) return status;
  return decoded;
}

absl::Status Encode(ContentFormat format, const Path& request_path, std::span<const Record> records,
                    std::string* out, EncodeOptions options) {
  out->clear();
  switch (format) {
    case ContentFormat::kText:
      return ci::EncodeText(request_path, records, out);
    case ContentFormat::kOpaque:
      return ci::EncodeOpaque(request_path, records, out);
    case ContentFormat::kCbor:
      return ci::EncodeCborValue(request_path, records, out);
    case ContentFormat::kTlv:
      return ci::EncodeTlv(request_path, records, out);
    case ContentFormat::kSenmlJson:
      return ci::EncodeSenmlJson(request_path, records, options, out);
    case ContentFormat::kSenmlCbor:
      return ci::EncodeSenmlCbor(request_path, records, options, out);
    case ContentFormat::kLwm2mJson:
      return ci::EncodeLwm2mJson(request_path, records, options, out);
    case ContentFormat::kCoreLink:
      return absl::InvalidArgumentError(
          "core-link: a link-format payload holds links, not resource values");
  }
  return absl::InvalidArgumentError("unknown content format");
}

}  // namespace lwm2md::lwm2m
