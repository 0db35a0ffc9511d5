#include "lwm2m/tlv.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace lwm2md::lwm2m::tlv {

namespace {

// TS §7.4.3: an object instance holds resources and multiple resources, a multiple resource
// holds resource instances; anything may start the top level (mixing is checked separately).
bool AllowedIn(bool top_level, Type parent, Type child) {
  if (top_level) return true;
  if (parent == Type::kObjectInstance)
    return child == Type::kResource || child == Type::kMultipleResource;
  if (parent == Type::kMultipleResource) return child == Type::kResourceInstance;
  return false;
}

const char* Article(Type type) { return type == Type::kObjectInstance ? "an" : "a"; }

// Validates one level of entries; base is the offset of bytes.data() in the whole payload, for
// messages. AllowedIn admits at most three levels, which bounds the recursion.
ParseFailure ValidateLevel(std::span<const uint8_t> bytes, uint32_t base, bool top_level,
                           Type parent) {
  ParseFailure failure;
  size_t pos = 0;
  bool saw_object_instance = false;
  bool saw_other = false;
  while (pos < bytes.size()) {
    const size_t left = bytes.size() - pos;
    const uint8_t header = bytes[pos];
    const size_t length_bytes = (header >> 3) & 0x03;
    const size_t header_size = 1 + ((header & 0x20) ? 2 : 1) + length_bytes;
    failure.offset = static_cast<uint32_t>(base + pos);
    failure.type = static_cast<Type>(header >> 6);
    failure.top_level = top_level;
    failure.parent = parent;
    if (header_size > left) {
      failure.error = ParseError::kTruncatedHeader;
      failure.needed = static_cast<uint32_t>(header_size);
      failure.left = static_cast<uint32_t>(left);
      return failure;
    }
    size_t length = header & 0x07;
    if (length_bytes != 0) {
      length = 0;
      for (size_t i = 0; i < length_bytes; ++i)
        length = (length << 8) | bytes[pos + header_size - length_bytes + i];
    }
    if (length > left - header_size) {
      failure.error = top_level ? ParseError::kValuePastEnd : ParseError::kValuePastParent;
      failure.needed = static_cast<uint32_t>(length);
      failure.left = static_cast<uint32_t>(left - header_size);
      return failure;
    }
    if (!AllowedIn(top_level, parent, failure.type)) {
      failure.error = ParseError::kMisplacedEntry;
      return failure;
    }
    if (top_level) {
      (failure.type == Type::kObjectInstance ? saw_object_instance : saw_other) = true;
      if (saw_object_instance && saw_other) {
        failure.error = ParseError::kMixedTopLevel;
        return failure;
      }
    }
    const size_t value_pos = pos + header_size;
    if (IsContainer(failure.type)) {
      ParseFailure nested =
          ValidateLevel(bytes.subspan(value_pos, length), static_cast<uint32_t>(base + value_pos),
                        false, failure.type);
      if (!nested.ok()) return nested;
    }
    pos = value_pos + length;
  }
  return ParseFailure();
}

// Big-endian two's complement of the allowed integer widths (TS Appendix C "Integer").
bool ReadBigEndian(std::span<const uint8_t> value, uint64_t* out) {
  switch (value.size()) {
    case 1:
    case 2:
    case 4:
    case 8:
      break;
    default:
      return false;
  }
  uint64_t v = 0;
  for (uint8_t b : value) v = (v << 8) | b;
  *out = v;
  return true;
}

// The header's size for an identifier and value length (TS §7.4.3: 8-bit identifier up to 255;
// length in the type byte below 8, else in 1-3 bytes).
size_t LengthFieldSize(size_t length) {
  if (length < 8) return 0;
  if (length <= 0xff) return 1;
  if (length <= 0xffff) return 2;
  return 3;
}

size_t EncodeHeader(uint8_t* out, Type type, uint16_t id, size_t length) {
  const size_t length_bytes = LengthFieldSize(length);
  uint8_t header = static_cast<uint8_t>(static_cast<uint8_t>(type) << 6);
  if (id > 0xff) header |= 0x20;
  header |= static_cast<uint8_t>(length_bytes << 3);
  if (length_bytes == 0) header |= static_cast<uint8_t>(length);
  size_t n = 0;
  out[n++] = header;
  if (id > 0xff) out[n++] = static_cast<uint8_t>(id >> 8);
  out[n++] = static_cast<uint8_t>(id);
  for (size_t i = length_bytes; i > 0; --i)
    out[n++] = static_cast<uint8_t>(length >> (8 * (i - 1)));
  return n;
}

void PutBigEndian(uint64_t v, size_t width, uint8_t* out) {
  for (size_t i = 0; i < width; ++i) out[i] = static_cast<uint8_t>(v >> (8 * (width - 1 - i)));
}

}  // namespace

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kObjectInstance:
      return "object instance";
    case Type::kResourceInstance:
      return "resource instance";
    case Type::kMultipleResource:
      return "multiple resource";
    case Type::kResource:
      return "resource";
  }
  return "?";
}

std::string_view ParseErrorName(ParseError error) {
  switch (error) {
    case ParseError::kOk:
      return "ok";
    case ParseError::kTruncatedHeader:
      return "truncated header";
    case ParseError::kValuePastEnd:
      return "value past end";
    case ParseError::kValuePastParent:
      return "value past parent";
    case ParseError::kMisplacedEntry:
      return "misplaced entry";
    case ParseError::kMixedTopLevel:
      return "mixed top level";
  }
  return "?";
}

std::string ParseFailure::Message() const {
  const std::string_view what = TypeName(type);
  switch (error) {
    case ParseError::kOk:
      return "tlv: ok";
    case ParseError::kTruncatedHeader:
      return absl::StrFormat(
          "tlv: header at offset %u runs past the end of %s (needs %u bytes, %u left)", offset,
          top_level ? "the payload" : "its parent", needed, left);
    case ParseError::kValuePastEnd:
      return absl::StrFormat(
          "tlv: length of the %s at offset %u runs past the end (needs %u bytes, %u left)", what,
          offset, needed, left);
    case ParseError::kValuePastParent:
      return absl::StrFormat(
          "tlv: length of the %s at offset %u runs past the end of its parent %s (needs %u "
          "bytes, %u left)",
          what, offset, TypeName(parent), needed, left);
    case ParseError::kMisplacedEntry:
      return absl::StrFormat("tlv: %s %s at offset %u cannot appear inside %s %s", Article(type),
                             what, offset, Article(parent), TypeName(parent));
    case ParseError::kMixedTopLevel:
      return absl::StrFormat(
          "tlv: %s %s at offset %u mixes object instances with resources at the top level",
          Article(type), what, offset);
  }
  return "tlv: unknown error";
}

ParseFailure Payload::Parse(std::span<const uint8_t> bytes, Payload* out) {
  ParseFailure failure = ValidateLevel(bytes, 0, true, Type::kObjectInstance);
  if (failure.ok()) out->bytes_ = bytes;
  return failure;
}

absl::StatusOr<Payload> Payload::ParseOrStatus(std::span<const uint8_t> bytes) {
  Payload payload;
  ParseFailure failure = Parse(bytes, &payload);
  if (!failure.ok()) return absl::InvalidArgumentError(failure.Message());
  return payload;
}

std::string_view ValueErrorName(ValueError error) {
  switch (error) {
    case ValueError::kOk:
      return "ok";
    case ValueError::kBadLength:
      return "bad length";
    case ValueError::kBadBoolean:
      return "bad boolean";
    case ValueError::kBadUtf8:
      return "bad utf-8";
  }
  return "?";
}

ValueError DecodeInteger(std::span<const uint8_t> value, int64_t* out) {
  uint64_t raw;
  if (!ReadBigEndian(value, &raw)) return ValueError::kBadLength;
  // Sign-extend from the encoded width.
  const unsigned shift = static_cast<unsigned>(64 - 8 * value.size());
  *out = static_cast<int64_t>(raw << shift) >> shift;
  return ValueError::kOk;
}

ValueError DecodeUnsigned(std::span<const uint8_t> value, uint64_t* out) {
  return ReadBigEndian(value, out) ? ValueError::kOk : ValueError::kBadLength;
}

ValueError DecodeFloat(std::span<const uint8_t> value, double* out) {
  uint64_t raw = 0;
  for (uint8_t b : value) raw = (raw << 8) | b;
  if (value.size() == 4) {
    *out = std::bit_cast<float>(static_cast<uint32_t>(raw));
  } else if (value.size() == 8) {
    *out = std::bit_cast<double>(raw);
  } else {
    return ValueError::kBadLength;
  }
  return ValueError::kOk;
}

ValueError DecodeBoolean(std::span<const uint8_t> value, bool* out) {
  if (value.size() != 1) return ValueError::kBadLength;
  if (value[0] > 1) return ValueError::kBadBoolean;
  *out = value[0] == 1;
  return ValueError::kOk;
}

ValueError DecodeString(std::span<const uint8_t> value, std::string_view* out) {
  // RFC 3629 §4: no overlong forms, no surrogates, nothing above U+10FFFF.
  size_t i = 0;
  const size_t n = value.size();
  while (i < n) {
    const uint8_t b = value[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t extra;
    uint8_t lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      extra = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      extra = 2;
      if (b == 0xe0) lo = 0xa0;
      if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      extra = 3;
      if (b == 0xf0) lo = 0x90;
      if (b == 0xf4) hi = 0x8f;
    } else {
      return ValueError::kBadUtf8;
    }
    if (extra > n - i - 1) return ValueError::kBadUtf8;
    if (value[i + 1] < lo || value[i + 1] > hi) return ValueError::kBadUtf8;
    for (size_t k = 2; k <= extra; ++k)
      if ((value[i + k] & 0xc0) != 0x80) return ValueError::kBadUtf8;
    i += extra + 1;
  }
  *out = std::string_view(reinterpret_cast<const char*>(value.data()), value.size());
  return ValueError::kOk;
}

ValueError DecodeTime(std::span<const uint8_t> value, int64_t* out) {
  return DecodeInteger(value, out);
}

ValueError DecodeObjectLink(std::span<const uint8_t> value, ObjectLink* out) {
  if (value.size() != 4) return ValueError::kBadLength;
  out->object_id = static_cast<uint16_t>((value[0] << 8) | value[1]);
  out->instance_id = static_cast<uint16_t>((value[2] << 8) | value[3]);
  return ValueError::kOk;
}

Writer::Writer(std::vector<uint8_t>* out) : growable_(out) { out->clear(); }

bool Writer::Reserve(size_t bytes) {
  if (!ok_) return false;
  if (buffer_.size() - size_ >= bytes) return true;
  if (growable_ == nullptr) {
    ok_ = false;
    return false;
  }
  growable_->resize(size_ + bytes);
  buffer_ = std::span<uint8_t>(*growable_);
  return true;
}

void Writer::Commit() {
  if (growable_ == nullptr) return;
  growable_->resize(size_);
  buffer_ = std::span<uint8_t>(*growable_);
}

Type Writer::LeafType() const {
  return depth_ > 0 && frames_[depth_ - 1].type == Type::kMultipleResource ? Type::kResourceInstance
                                                                           : Type::kResource;
}

bool Writer::Admit(Type type) {
  if (!ok_) return false;
  const bool top = depth_ == 0;
  if (!AllowedIn(top, top ? Type::kObjectInstance : frames_[depth_ - 1].type, type)) {
    ok_ = false;
    return false;
  }
  if (top) {
    (type == Type::kObjectInstance ? top_has_object_instance_ : top_has_other_) = true;
    if (top_has_object_instance_ && top_has_other_) {
      ok_ = false;
      return false;
    }
  }
  return true;
}

Writer& Writer::Begin(Type type, uint16_t id) {
  if (!Admit(type) || !Reserve(kMaxHeader)) return *this;
  frames_[depth_++] = Frame{type, id, size_, size_ + kMaxHeader};
  size_ += kMaxHeader;
  return *this;
}

Writer& Writer::BeginObjectInstance(uint16_t id) { return Begin(Type::kObjectInstance, id); }

Writer& Writer::BeginMultipleResource(uint16_t id) { return Begin(Type::kMultipleResource, id); }

Writer& Writer::End() {
  if (!ok_) return *this;
  if (depth_ == 0) {
    ok_ = false;
    return *this;
  }
  const Frame& frame = frames_[--depth_];
  const size_t length = size_ - frame.content_pos;
  if (length > kMaxValueLength) {
    ok_ = false;
    return *this;
  }
  // The header's size depends on the length, so the children were written after room for
  // the largest header and are moved down next to the real one.
  uint8_t header[kMaxHeader];
  const size_t header_size = EncodeHeader(header, frame.type, frame.id, length);
  uint8_t* data = buffer_.data();
  std::memmove(data + frame.header_pos + header_size, data + frame.content_pos, length);
  std::memcpy(data + frame.header_pos, header, header_size);
  size_ = frame.header_pos + header_size + length;
  Commit();
  return *this;
}

Writer& Writer::Leaf(Type type, uint16_t id, std::span<const uint8_t> value) {
  if (IsContainer(type) || value.size() > kMaxValueLength || !Admit(type)) {
    ok_ = false;
    return *this;
  }
  uint8_t header[kMaxHeader];
  const size_t header_size = EncodeHeader(header, type, id, value.size());
  if (!Reserve(header_size + value.size())) return *this;
  std::memcpy(buffer_.data() + size_, header, header_size);
  size_ += header_size;
  if (!value.empty()) std::memcpy(buffer_.data() + size_, value.data(), value.size());
  size_ += value.size();
  Commit();
  return *this;
}

Writer& Writer::Opaque(uint16_t id, std::span<const uint8_t> value) {
  return Leaf(LeafType(), id, value);
}

Writer& Writer::String(uint16_t id, std::string_view value) {
  return Leaf(
      LeafType(), id,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(value.data()), value.size()));
}

Writer& Writer::Integer(uint16_t id, int64_t value) {
  size_t width = 8;
  if (value >= std::numeric_limits<int8_t>::min() && value <= std::numeric_limits<int8_t>::max())
    width = 1;
  else if (value >= std::numeric_limits<int16_t>::min() &&
           value <= std::numeric_limits<int16_t>::max())
    width = 2;
  else if (value >= std::numeric_limits<int32_t>::min() &&
           value <= std::numeric_limits<int32_t>::max())
    width = 4;
  uint8_t bytes[8];
  PutBigEndian(static_cast<uint64_t>(value), width, bytes);
  return Leaf(LeafType(), id, std::span<const uint8_t>(bytes, width));
}

Writer& Writer::Unsigned(uint16_t id, uint64_t value) {
  const size_t width = value <= 0xff ? 1 : value <= 0xffff ? 2 : value <= 0xffffffff ? 4 : 8;
  uint8_t bytes[8];
  PutBigEndian(value, width, bytes);
  return Leaf(LeafType(), id, std::span<const uint8_t>(bytes, width));
}

Writer& Writer::Float(uint16_t id, double value) {
  uint8_t bytes[8];
  // Four bytes suffice when the value survives the round trip through binary32; NaN has no
  // payload worth keeping. The range test keeps the narrowing conversion defined.
  const bool fits = std::isnan(value) || std::isinf(value) ||
                    (std::fabs(value) <= std::numeric_limits<float>::max() &&
                     static_cast<double>(static_cast<float>(value)) == value);
  if (fits) {
    PutBigEndian(std::bit_cast<uint32_t>(static_cast<float>(value)), 4, bytes);
    return Leaf(LeafType(), id, std::span<const uint8_t>(bytes, 4));
  }
  PutBigEndian(std::bit_cast<uint64_t>(value), 8, bytes);
  return Leaf(LeafType(), id, std::span<const uint8_t>(bytes, 8));
}

Writer& Writer::Boolean(uint16_t id, bool value) {
  const uint8_t byte = value ? 1 : 0;
  return Leaf(LeafType(), id, std::span<const uint8_t>(&byte, 1));
}

Writer& Writer::ObjectLinkValue(uint16_t id, ObjectLink link) {
  uint8_t bytes[4];
  PutBigEndian(link.object_id, 2, bytes);
  PutBigEndian(link.instance_id, 2, bytes + 2);
  return Leaf(LeafType(), id, std::span<const uint8_t>(bytes, 4));
}

std::span<const uint8_t> Writer::Finish() const {
  if (!ok_ || depth_ != 0) return {};
  return std::span<const uint8_t>(buffer_.data(), size_);
}

}  // namespace lwm2md::lwm2m::tlv
