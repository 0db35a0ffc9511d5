#include "coap/message.h"

#include <bit>
#include <cstring>

#include "base/check.h"

namespace lwm2md::coap {
namespace {

// RFC 7252 §3: the byte that ends the options and starts the payload.
constexpr uint8_t kPayloadMarker = 0xff;
constexpr size_t kHeaderSize = 4;
constexpr size_t kMaxTokenLength = 8;
// RFC 7252 §3.1: nibble 13 adds one extension byte (value - 13), nibble 14 two bytes
// (value - 269), so the largest encodable delta or length is 0xffff + 269.
constexpr uint32_t kOneByteBase = 13;
constexpr uint32_t kTwoByteBase = 269;
constexpr uint32_t kMaxExtended = 0xffff + kTwoByteBase;

// Decodes the extension of a delta or length nibble of 13 or 14 from bytes that Parse
// already bounds-checked.
inline uint32_t ReadExtended(uint32_t nibble, const uint8_t*& p) {
  if (nibble == 13) return kOneByteBase + *p++;
  const uint32_t value = kTwoByteBase + ((uint32_t{p[0]} << 8) | p[1]);
  p += 2;
  return value;
}

// Bounds-checked form of ReadExtended for Parse; false when the extension runs past end.
// The caller has already rejected nibble 15.
inline bool ReadExtendedChecked(uint32_t* value, const uint8_t*& p, const uint8_t* end) {
  if (*value < 13) return true;
  const size_t needed = *value == 13 ? 1 : 2;
  if (static_cast<size_t>(end - p) < needed) return false;
  *value = ReadExtended(*value, p);
  return true;
}

inline uint8_t NibbleFor(uint32_t value) {
  return static_cast<uint8_t>(value < kOneByteBase ? value : value < kTwoByteBase ? 13 : 14);
}
inline size_t ExtensionSize(uint32_t value) {
  return value < kOneByteBase ? 0 : value < kTwoByteBase ? 1 : 2;
}
inline uint8_t* WriteExtension(uint8_t* p, uint32_t value) {
  if (value < kOneByteBase) return p;
  if (value < kTwoByteBase) {
    *p++ = static_cast<uint8_t>(value - kOneByteBase);
    return p;
  }
  const uint32_t v = value - kTwoByteBase;
  *p++ = static_cast<uint8_t>(v >> 8);
  *p++ = static_cast<uint8_t>(v);
  return p;
}

// Writes value as the shortest big-endian uint (RFC 7252 §3.2) into out[0..4); returns the
// number of bytes, 0 for value 0.
inline size_t EncodeUint(uint32_t value, uint8_t out[4]) {
  const size_t n = (std::bit_width(value) + 7) / 8;
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(value >> (8 * (n - 1 - i)));
  return n;
}

std::optional<uint32_t> UintAtMost(const MessageView& message, uint16_t number, size_t max_length) {
  const std::optional<OptionView> o = message.Find(number);
  if (!o || o->value.size() > max_length) return std::nullopt;
  return o->AsUint();
}

}  // namespace

namespace option {
bool IsKnown(uint16_t number) {
  // The option numbers below 64 that message.h declares, as a bit set.
  constexpr uint64_t kKnownBelow64 =
      (uint64_t{1} << kIfMatch) | (uint64_t{1} << kUriHost) | (uint64_t{1} << kETag) |
      (uint64_t{1} << kIfNoneMatch) | (uint64_t{1} << kObserve) | (uint64_t{1} << kUriPort) |
      (uint64_t{1} << kLocationPath) | (uint64_t{1} << kOscore) | (uint64_t{1} << kUriPath) |
      (uint64_t{1} << kContentFormat) | (uint64_t{1} << kMaxAge) | (uint64_t{1} << kUriQuery) |
      (uint64_t{1} << kAccept) | (uint64_t{1} << kLocationQuery) | (uint64_t{1} << kBlock2) |
      (uint64_t{1} << kBlock1) | (uint64_t{1} << kSize2) | (uint64_t{1} << kProxyUri) |
      (uint64_t{1} << kProxyScheme) | (uint64_t{1} << kSize1);
  if (number < 64) return (kKnownBelow64 >> number) & 1;
  return number == kNoResponse;
}
}  // namespace option

namespace content_format {
std::string_view Name(uint16_t format) {
  switch (format) {
    case kTextPlain:
      return "text/plain;charset=utf-8";
    case kLinkFormat:
      return "application/link-format";
    case kOctetStream:
      return "application/octet-stream";
    case kCbor:
      return "application/cbor";
    case kSenmlJson:
      return "application/senml+json";
    case kSenmlCbor:
      return "application/senml+cbor";
    case kLwm2mTlv:
      return "application/vnd.oma.lwm2m+tlv";
    case kLwm2mJson:
      return "application/vnd.oma.lwm2m+json";
    default:
      return {};
  }
}
}  // namespace content_format

std::optional<BlockOption> BlockOption::Decode(std::span<const uint8_t> value) {
  if (value.size() > 3) return std::nullopt;
  uint32_t v = 0;
  for (uint8_t b : value) v = (v << 8) | b;
  // RFC 7959 §2.2: SZX 7 is reserved and a request carrying it is answered 4.00.
  if ((v & 7) == 7) return std::nullopt;
  BlockOption block;
  block.num = v >> 4;
  block.more = (v & 8) != 0;
  block.szx = static_cast<uint8_t>(v & 7);
  return block;
}

size_t BlockOption::Encode(std::span<uint8_t> out) const {
  // RFC 7959 §2.2: NUM has at most 20 bits, so the value fits in 3 bytes.
  LWM2MD_DCHECK(out.size() >= 3);
  LWM2MD_DCHECK(num < (1u << 20) && szx < 7);
  const uint32_t v = ((num & 0xfffff) << 4) | (more ? 8u : 0u) | (szx & 7u);
  uint8_t bytes[4];
  const size_t n = EncodeUint(v, bytes);
  std::memcpy(out.data(), bytes, n);
  return n;
}

uint8_t BlockOption::SzxForSize(uint32_t bytes) {
  if (bytes < 16) return 0;
  const int log2 = std::bit_width(bytes) - 1;
  return static_cast<uint8_t>(log2 - 4 > 6 ? 6 : log2 - 4);
}

uint32_t OptionView::AsUint() const {
  if (value.size() > 4) return UINT32_MAX;
  uint32_t v = 0;
  for (uint8_t b : value) v = (v << 8) | b;
  return v;
}

uint32_t OptionIterator::ReadExtension(uint32_t nibble, const uint8_t*& p) {
  return ReadExtended(nibble, p);
}

std::string_view ParseErrorName(ParseError error) {
  switch (error) {
    case ParseError::kOk:
      return "ok";
    case ParseError::kTruncatedHeader:
      return "truncated_header";
    case ParseError::kBadVersion:
      return "bad_version";
    case ParseError::kBadTokenLength:
      return "bad_token_length";
    case ParseError::kTruncatedToken:
      return "truncated_token";
    case ParseError::kReservedOptionNibble:
      return "reserved_option_nibble";
    case ParseError::kOptionPastEnd:
      return "option_past_end";
    case ParseError::kOptionNumberOverflow:
      return "option_number_overflow";
    case ParseError::kPayloadMarkerWithoutPayload:
      return "payload_marker_without_payload";
    case ParseError::kEmptyMessageNotEmpty:
      return "empty_message_not_empty";
  }
  return "unknown";
}

ParseError MessageView::Parse(std::span<const uint8_t> datagram, MessageView* out) {
  const size_t size = datagram.size();
  if (size < kHeaderSize) [[unlikely]]
    return ParseError::kTruncatedHeader;
  const uint8_t* const begin = datagram.data();
  const uint8_t* const end = begin + size;
  const uint8_t first = begin[0];
  // RFC 7252 §3: messages with an unknown version number MUST be silently ignored.
  if ((first >> 6) != 1) [[unlikely]]
    return ParseError::kBadVersion;
  const size_t token_length = first & 0x0f;
  if (token_length > kMaxTokenLength) [[unlikely]]
    return ParseError::kBadTokenLength;
  const uint8_t code = begin[1];
  // RFC 7252 §4.1: an Empty message is the 4-byte header alone; anything more is a
  // message format error.
  if (code == code::kEmpty && (token_length != 0 || size != kHeaderSize)) [[unlikely]]
    return ParseError::kEmptyMessageNotEmpty;
  if (size < kHeaderSize + token_length) [[unlikely]]
    return ParseError::kTruncatedToken;

  const uint8_t* const options_begin = begin + kHeaderSize + token_length;
  const uint8_t* p = options_begin;
  const uint8_t* options_end = end;
  const uint8_t* payload = end;
  uint32_t number = 0;
  while (p != end) {
    const uint8_t b = *p;
    if (b == kPayloadMarker) {
      options_end = p++;
      // RFC 7252 §3: a marker followed by a zero-length payload is a format error.
      if (p == end) [[unlikely]]
        return ParseError::kPayloadMarkerWithoutPayload;
      payload = p;
      break;
    }
    ++p;
    uint32_t delta = b >> 4;
    uint32_t length = b & 0x0f;
    // Nibbles 13-15 are rare in LwM2M traffic (long Uri-Query values, Block/Size options),
    // so the common single-byte header takes one predictable branch.
    if (b >= 0xd0 || length >= 13) [[unlikely]] {
      // RFC 7252 §3.1: nibble 15 is reserved (other than in the payload marker).
      if (delta == 15 || length == 15) return ParseError::kReservedOptionNibble;
      if (!ReadExtendedChecked(&delta, p, end) || !ReadExtendedChecked(&length, p, end))
        return ParseError::kOptionPastEnd;
    }
    if (static_cast<size_t>(end - p) < length) [[unlikely]]
      return ParseError::kOptionPastEnd;
    p += length;
    number += delta;
    if (number > 0xffff) [[unlikely]]
      return ParseError::kOptionNumberOverflow;
  }

  out->bytes_ = datagram;
  out->token_ = std::span<const uint8_t>(begin + kHeaderSize, token_length);
  out->payload_ = std::span<const uint8_t>(payload, static_cast<size_t>(end - payload));
  out->options_ = OptionRange{options_begin, options_end};
  out->message_id_ = static_cast<uint16_t>((begin[2] << 8) | begin[3]);
  out->code_ = code;
  out->type_ = static_cast<Type>((first >> 4) & 3);
  return ParseError::kOk;
}

std::optional<OptionView> MessageView::Find(uint16_t number) const {
  for (const OptionView& o : options_) {
    if (o.number == number) return o;
    // Options are in non-decreasing order on the wire (RFC 7252 §3.1).
    if (o.number > number) break;
  }
  return std::nullopt;
}

std::optional<uint32_t> MessageView::FindUint(uint16_t number) const {
  const std::optional<OptionView> o = Find(number);
  if (!o) return std::nullopt;
  return o->AsUint();
}

std::optional<uint16_t> MessageView::content_format() const {
  const std::optional<uint32_t> v = UintAtMost(*this, option::kContentFormat, 2);
  if (!v) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

std::optional<uint16_t> MessageView::accept() const {
  const std::optional<uint32_t> v = UintAtMost(*this, option::kAccept, 2);
  if (!v) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

std::optional<uint32_t> MessageView::observe() const {
  // RFC 7641 §2: Observe is a 0-3 byte uint.
  return UintAtMost(*this, option::kObserve, 3);
}

std::optional<BlockOption> MessageView::block1() const {
  const std::optional<OptionView> o = Find(option::kBlock1);
  if (!o) return std::nullopt;
  return BlockOption::Decode(o->value);
}

std::optional<BlockOption> MessageView::block2() const {
  const std::optional<OptionView> o = Find(option::kBlock2);
  if (!o) return std::nullopt;
  return BlockOption::Decode(o->value);
}

uint16_t MessageView::FirstUnknownCriticalOption() const {
  for (const OptionView& o : options_) {
    if (option::IsCritical(o.number) && !option::IsKnown(o.number)) return o.number;
  }
  return 0;
}

MessageBuilder& MessageBuilder::Header(Type type, uint8_t code, uint16_t message_id,
                                       std::span<const uint8_t> token) {
  if (!ok_ || size_ != 0 || token.size() > kMaxTokenLength ||
      buffer_.size() < kHeaderSize + token.size()) {
    ok_ = false;
    return *this;
  }
  uint8_t* p = buffer_.data();
  p[0] = static_cast<uint8_t>(0x40 | (static_cast<uint8_t>(type) << 4) | token.size());
  p[1] = code;
  p[2] = static_cast<uint8_t>(message_id >> 8);
  p[3] = static_cast<uint8_t>(message_id);
  if (!token.empty()) std::memcpy(p + kHeaderSize, token.data(), token.size());
  size_ = kHeaderSize + token.size();
  return *this;
}

MessageBuilder& MessageBuilder::Option(uint16_t number, std::span<const uint8_t> value) {
  // The wire carries deltas (RFC 7252 §3.1), so options must come in order, after the
  // header and before the payload.
  if (!ok_ || size_ == 0 || payload_written_ || number < last_option_ ||
      value.size() > kMaxExtended) {
    ok_ = false;
    return *this;
  }
  const uint32_t delta = number - last_option_;
  const uint32_t length = static_cast<uint32_t>(value.size());
  const size_t needed = 1 + ExtensionSize(delta) + ExtensionSize(length) + length;
  if (buffer_.size() - size_ < needed) {
    ok_ = false;
    return *this;
  }
  uint8_t* p = buffer_.data() + size_;
  *p++ = static_cast<uint8_t>((NibbleFor(delta) << 4) | NibbleFor(length));
  p = WriteExtension(p, delta);
  p = WriteExtension(p, length);
  if (length != 0) std::memcpy(p, value.data(), length);
  size_ += needed;
  last_option_ = number;
  return *this;
}

MessageBuilder& MessageBuilder::Option(uint16_t number, std::string_view value) {
  return Option(number, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(value.data()),
                                                 value.size()));
}

MessageBuilder& MessageBuilder::UintOption(uint16_t number, uint32_t value) {
  uint8_t bytes[4];
  const size_t n = EncodeUint(value, bytes);
  return Option(number, std::span<const uint8_t>(bytes, n));
}

MessageBuilder& MessageBuilder::Block(uint16_t number, const BlockOption& block) {
  // Values the option cannot carry (RFC 7959 §2.2) fail the builder instead of being
  // truncated on the wire.
  if (block.num >= (1u << 20) || block.szx >= 7) {
    ok_ = false;
    return *this;
  }
  uint8_t bytes[3];
  const size_t n = block.Encode(bytes);
  return Option(number, std::span<const uint8_t>(bytes, n));
}

namespace {
// Segments are a few bytes long, where a plain scan beats a memchr call.
template <typename Fn>
void ForEachSegment(std::string_view s, char separator, Fn&& fn) {
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == separator) {
      if (i > start) fn(s.substr(start, i - start));
      start = i + 1;
    }
  }
}
}  // namespace

MessageBuilder& MessageBuilder::UriPath(std::string_view path) {
  ForEachSegment(path, '/', [this](std::string_view s) { Option(option::kUriPath, s); });
  return *this;
}

MessageBuilder& MessageBuilder::UriQuery(std::string_view query) {
  ForEachSegment(query, '&', [this](std::string_view s) { Option(option::kUriQuery, s); });
  return *this;
}

MessageBuilder& MessageBuilder::Payload(std::span<const uint8_t> payload) {
  // RFC 7252 §3: a zero-length payload is sent without the marker.
  if (payload.empty()) return *this;
  if (!ok_ || size_ == 0 || payload_written_ || buffer_.size() - size_ < 1 + payload.size()) {
    ok_ = false;
    return *this;
  }
  uint8_t* p = buffer_.data() + size_;
  *p++ = kPayloadMarker;
  std::memcpy(p, payload.data(), payload.size());
  size_ += 1 + payload.size();
  payload_written_ = true;
  return *this;
}

MessageBuilder& MessageBuilder::Payload(std::string_view payload) {
  return Payload(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
}

std::span<const uint8_t> BuildEmpty(Type type, uint16_t message_id, std::span<uint8_t> out) {
  LWM2MD_DCHECK(out.size() >= kHeaderSize);
  if (out.size() < kHeaderSize) return {};
  out[0] = static_cast<uint8_t>(0x40 | (static_cast<uint8_t>(type) << 4));
  out[1] = code::kEmpty;
  out[2] = static_cast<uint8_t>(message_id >> 8);
  out[3] = static_cast<uint8_t>(message_id);
  return out.first(kHeaderSize);
}

}  // namespace lwm2md::coap
