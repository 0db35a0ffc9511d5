#pragma once
// What users of CoAP see: a zero-copy view over a received datagram and a builder that
// writes a message into a caller-provided buffer. Neither allocates. RFC 7252 §3 (format),
// RFC 7641 (Observe), RFC 7959 (Block1/Block2/Size1/Size2).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace lwm2md::coap {

enum class Type : uint8_t {
  kConfirmable = 0,
  kNonConfirmable = 1,
  kAcknowledgement = 2,
  kReset = 3,
};

// A code is class (3 bits) and detail (5 bits), written c.dd in the RFC.
constexpr uint8_t MakeCode(uint8_t code_class, uint8_t detail) {
  return static_cast<uint8_t>((code_class << 5) | detail);
}
constexpr uint8_t CodeClass(uint8_t code) { return code >> 5; }
constexpr uint8_t CodeDetail(uint8_t code) { return code & 0x1f; }

namespace code {
constexpr uint8_t kEmpty = MakeCode(0, 0);
// Methods (RFC 7252 §12.1.1, RFC 8132 FETCH/PATCH/iPATCH).
constexpr uint8_t kGet = MakeCode(0, 1);
constexpr uint8_t kPost = MakeCode(0, 2);
constexpr uint8_t kPut = MakeCode(0, 3);
constexpr uint8_t kDelete = MakeCode(0, 4);
constexpr uint8_t kFetch = MakeCode(0, 5);
constexpr uint8_t kPatch = MakeCode(0, 6);
constexpr uint8_t kIPatch = MakeCode(0, 7);
// Responses (RFC 7252 §12.1.2, RFC 7959 §2.9).
constexpr uint8_t kCreated = MakeCode(2, 1);
constexpr uint8_t kDeleted = MakeCode(2, 2);
constexpr uint8_t kValid = MakeCode(2, 3);
constexpr uint8_t kChanged = MakeCode(2, 4);
constexpr uint8_t kContent = MakeCode(2, 5);
constexpr uint8_t kContinue = MakeCode(2, 31);
constexpr uint8_t kBadRequest = MakeCode(4, 0);
constexpr uint8_t kUnauthorized = MakeCode(4, 1);
constexpr uint8_t kBadOption = MakeCode(4, 2);
constexpr uint8_t kForbidden = MakeCode(4, 3);
constexpr uint8_t kNotFound = MakeCode(4, 4);
constexpr uint8_t kMethodNotAllowed = MakeCode(4, 5);
constexpr uint8_t kNotAcceptable = MakeCode(4, 6);
constexpr uint8_t kRequestEntityIncomplete = MakeCode(4, 8);
constexpr uint8_t kPreconditionFailed = MakeCode(4, 12);
constexpr uint8_t kRequestEntityTooLarge = MakeCode(4, 13);
constexpr uint8_t kUnsupportedContentFormat = MakeCode(4, 15);
constexpr uint8_t kInternalServerError = MakeCode(5, 0);
constexpr uint8_t kNotImplemented = MakeCode(5, 1);
constexpr uint8_t kServiceUnavailable = MakeCode(5, 3);
}  // namespace code

// Option numbers (RFC 7252 §12.2, RFC 7641, RFC 7959, RFC 8613, RFC 7967).
namespace option {
constexpr uint16_t kIfMatch = 1;
constexpr uint16_t kUriHost = 3;
constexpr uint16_t kETag = 4;
constexpr uint16_t kIfNoneMatch = 5;
constexpr uint16_t kObserve = 6;
constexpr uint16_t kUriPort = 7;
constexpr uint16_t kLocationPath = 8;
constexpr uint16_t kOscore = 9;
constexpr uint16_t kUriPath = 11;
constexpr uint16_t kContentFormat = 12;
constexpr uint16_t kMaxAge = 14;
constexpr uint16_t kUriQuery = 15;
constexpr uint16_t kAccept = 17;
constexpr uint16_t kLocationQuery = 20;
constexpr uint16_t kBlock2 = 23;
constexpr uint16_t kBlock1 = 27;
constexpr uint16_t kSize2 = 28;
constexpr uint16_t kProxyUri = 35;
constexpr uint16_t kProxyScheme = 39;
constexpr uint16_t kSize1 = 60;
constexpr uint16_t kNoResponse = 258;

// RFC 7252 §5.4.6: odd numbers are critical, and bit 1 marks unsafe-to-forward.
constexpr bool IsCritical(uint16_t number) { return (number & 1) != 0; }
// Options this implementation understands; an unrecognised critical option in a request
// is answered 4.02 Bad Option (RFC 7252 §5.4.1).
bool IsKnown(uint16_t number);
}  // namespace option

// Content formats LwM2M uses (CoAP Content-Formats registry, OMA LwM2M TS §7).
namespace content_format {
constexpr uint16_t kTextPlain = 0;
constexpr uint16_t kLinkFormat = 40;
constexpr uint16_t kOctetStream = 42;
constexpr uint16_t kCbor = 60;
constexpr uint16_t kSenmlJson = 110;
constexpr uint16_t kSenmlCbor = 112;
constexpr uint16_t kLwm2mTlv = 11542;
constexpr uint16_t kLwm2mJson = 11543;
// The IANA media type, or empty for a number we do not name.
std::string_view Name(uint16_t format);
}  // namespace content_format

// Block1/Block2 option value (RFC 7959 §2.2): NUM, M, SZX; block size is 2^(SZX+4).
struct BlockOption {
  uint32_t num = 0;
  bool more = false;
  uint8_t szx = 6;  // 1024 bytes

  uint32_t size() const { return 1u << (szx + 4); }
  uint32_t offset() const { return num * size(); }
  // Decodes a 0-3 byte option value; nullopt when longer than 3 bytes or SZX is 7 (reserved).
  static std::optional<BlockOption> Decode(std::span<const uint8_t> value);
  // Encodes as the shortest uint (0-3 bytes) into out (at least 3 bytes); returns length.
  size_t Encode(std::span<uint8_t> out) const;
  // The largest SZX whose block size is <= bytes (bytes >= 16), at most 6.
  static uint8_t SzxForSize(uint32_t bytes);
};

struct OptionView {
  uint16_t number = 0;
  std::span<const uint8_t> value;

  // RFC 7252 §3.2 uint: big-endian, leading zeros may be omitted; values longer than
  // 4 bytes saturate to UINT32_MAX.
  uint32_t AsUint() const;
  std::string_view AsString() const {
    return {reinterpret_cast<const char*>(value.data()), value.size()};
  }
};

// Iterates the options of a message that Parse already validated, in wire order.
class OptionIterator {
 public:
  OptionIterator() = default;
  OptionIterator(const uint8_t* pos, const uint8_t* end) : pos_(pos), end_(end) { Advance(); }
  const OptionView& operator*() const { return current_; }
  const OptionView* operator->() const { return &current_; }
  OptionIterator& operator++() {
    Advance();
    return *this;
  }
  bool operator==(const OptionIterator& other) const { return done_ == other.done_; }

 private:
  void Advance();
  // Decodes the extension bytes after a delta or length nibble of 13 or 14 (RFC 7252 §3.1);
  // out of line because LwM2M traffic rarely needs it.
  static uint32_t ReadExtension(uint32_t nibble, const uint8_t*& p);
  const uint8_t* pos_ = nullptr;
  const uint8_t* end_ = nullptr;
  OptionView current_;
  bool done_ = true;
};

// Inline because every option lookup runs it; the bytes were validated by Parse, so it
// reads without bounds checks.
inline void OptionIterator::Advance() {
  if (pos_ == end_) {
    done_ = true;
    return;
  }
  const uint8_t* p = pos_;
  const uint8_t header = *p++;
  uint32_t delta = header >> 4;
  uint32_t length = header & 0x0f;
  if (delta >= 13) [[unlikely]]
    delta = ReadExtension(delta, p);
  if (length >= 13) [[unlikely]]
    length = ReadExtension(length, p);
  current_.number = static_cast<uint16_t>(current_.number + delta);
  current_.value = std::span<const uint8_t>(p, length);
  pos_ = p + length;
  done_ = false;
}

struct OptionRange {
  const uint8_t* begin_pos = nullptr;
  const uint8_t* end_pos = nullptr;
  OptionIterator begin() const { return OptionIterator(begin_pos, end_pos); }
  OptionIterator end() const { return OptionIterator(); }
};

enum class ParseError : uint8_t {
  kOk = 0,
  kTruncatedHeader,             // fewer than 4 bytes
  kBadVersion,                  // version != 1: silently ignored (RFC 7252 §3)
  kBadTokenLength,              // TKL 9-15: message format error (RFC 7252 §3)
  kTruncatedToken,              // token runs past the end
  kReservedOptionNibble,        // delta or length nibble 15 outside the payload marker
  kOptionPastEnd,               // option header or value runs past the end
  kOptionNumberOverflow,        // option number > 65535
  kPayloadMarkerWithoutPayload, // 0xFF followed by nothing (RFC 7252 §3)
  kEmptyMessageNotEmpty,        // code 0.00 with token, options or payload (RFC 7252 §4.1)
};
std::string_view ParseErrorName(ParseError error);

// A parsed CoAP message. It holds pointers into the datagram, which must outlive it.
class MessageView {
 public:
  // Validates the whole message once so that later accessors cannot fail.
  static ParseError Parse(std::span<const uint8_t> datagram, MessageView* out);

  Type type() const { return type_; }
  uint8_t code() const { return code_; }
  uint16_t message_id() const { return message_id_; }
  std::span<const uint8_t> token() const { return token_; }
  std::span<const uint8_t> payload() const { return payload_; }
  std::span<const uint8_t> bytes() const { return bytes_; }
  OptionRange options() const { return options_; }

  bool IsRequest() const { return CodeClass(code_) == 0 && code_ != code::kEmpty; }
  bool IsResponse() const { return CodeClass(code_) >= 2; }
  bool IsEmpty() const { return code_ == code::kEmpty; }

  // First occurrence of an option, or nullopt.
  std::optional<OptionView> Find(uint16_t number) const;
  std::optional<uint32_t> FindUint(uint16_t number) const;
  // First occurrence decoded; nullopt when absent or longer than the option's range
  // (Content-Format and Accept 0-2 bytes, Observe 0-3 bytes; RFC 7252 §5.4.3 treats such a
  // value like an unrecognised option) or, for Block, when BlockOption::Decode rejects it.
  std::optional<uint16_t> content_format() const;
  std::optional<uint16_t> accept() const;
  std::optional<uint32_t> observe() const;
  std::optional<BlockOption> block1() const;
  std::optional<BlockOption> block2() const;
  // The number of the first critical option that option::IsKnown rejects, or 0.
  uint16_t FirstUnknownCriticalOption() const;

  // Calls fn(std::string_view) for each Uri-Path (resp. Uri-Query) segment, in order.
  template <typename Fn>
  void ForEachUriPath(Fn&& fn) const {
    for (const OptionView& o : options_)
      if (o.number == option::kUriPath) fn(o.AsString());
  }
  template <typename Fn>
  void ForEachUriQuery(Fn&& fn) const {
    for (const OptionView& o : options_)
      if (o.number == option::kUriQuery) fn(o.AsString());
  }

 private:
  std::span<const uint8_t> bytes_;
  std::span<const uint8_t> token_;
  std::span<const uint8_t> payload_;
  OptionRange options_;
  uint16_t message_id_ = 0;
  uint8_t code_ = 0;
  Type type_ = Type::kConfirmable;
};

// Writes a message into a fixed buffer. Options must be added in non-decreasing number
// order (the wire encodes deltas); adding one out of order, or overflowing the buffer,
// marks the builder failed and Finish returns an empty span. No allocation.
class MessageBuilder {
 public:
  explicit MessageBuilder(std::span<uint8_t> buffer) : buffer_(buffer) {}

  // Writes the 4-byte header and the token (at most 8 bytes).
  MessageBuilder& Header(Type type, uint8_t code, uint16_t message_id,
                         std::span<const uint8_t> token = {});
  MessageBuilder& Option(uint16_t number, std::span<const uint8_t> value);
  MessageBuilder& Option(uint16_t number, std::string_view value);
  // Shortest big-endian form (0 is the empty value).
  MessageBuilder& UintOption(uint16_t number, uint32_t value);
  MessageBuilder& Block(uint16_t number, const BlockOption& block);
  // Splits "a/b/c" into Uri-Path options (resp. "a=1&b" into Uri-Query options);
  // empty segments from leading or doubled slashes are skipped.
  MessageBuilder& UriPath(std::string_view path);
  MessageBuilder& UriQuery(std::string_view query);
  // Writes the payload marker and the payload; an empty payload writes nothing.
  MessageBuilder& Payload(std::span<const uint8_t> payload);
  MessageBuilder& Payload(std::string_view payload);

  bool ok() const { return ok_; }
  size_t size() const { return size_; }
  // The encoded message, or an empty span when the builder failed.
  std::span<const uint8_t> Finish() const {
    return ok_ ? std::span<const uint8_t>(buffer_.data(), size_) : std::span<const uint8_t>();
  }

 private:
  std::span<uint8_t> buffer_;
  size_t size_ = 0;
  uint16_t last_option_ = 0;
  bool ok_ = true;
  bool payload_written_ = false;
};

// Convenience: an empty ACK or RST for a message id (RFC 7252 §4.2, §4.3); returns the
// 4-byte encoding written into out (at least 4 bytes).
std::span<const uint8_t> BuildEmpty(Type type, uint16_t message_id, std::span<uint8_t> out);

}  // namespace lwm2md::coap
