#include "lwm2m/cbor.h"

#include <bit>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "lwm2m/tlv.h"

namespace lwm2md::lwm2m::cbor {

namespace {

// Returns the binary16 encoding of value when it holds value exactly.
bool ToHalf(double value, uint16_t* out) {
  if (std::isnan(value)) {
    *out = 0x7e00;
    return true;
  }
  const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  if (std::isinf(value)) {
    *out = sign | 0x7c00;
    return true;
  }
  if (value == 0) {
    *out = sign;
    return true;
  }
  // Every binary16 is a binary32, so a value that is not a float is not a half either; the range
  // test keeps the narrowing conversion defined.
  if (std::fabs(value) > 65504.0) return false;
  const float f = static_cast<float>(value);
  if (static_cast<double>(f) != value) return false;
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const int exponent = static_cast<int>((bits >> 23) & 0xff) - 127;
  const uint32_t mantissa = bits & 0x7fffff;
  uint16_t half;
  if (exponent >= -14) {
    if (exponent > 15 || (mantissa & 0x1fff) != 0) return false;
    half = static_cast<uint16_t>(sign | ((exponent + 15) << 10) | (mantissa >> 13));
  } else {
    // Subnormal half: value = m * 2^-24 with m below 1024.
    const int shift = 13 + (-14 - exponent);
    if (shift > 24) return false;
    const uint32_t full = 0x800000 | mantissa;
    if ((full & ((1u << shift) - 1)) != 0) return false;
    half = static_cast<uint16_t>(sign | (full >> shift));
  }
  *out = half;
  return HalfToDouble(half) == value;
}

}  // namespace

std::string_view ErrorName(Error error) {
  switch (error) {
    case Error::kOk:
      return "ok";
    case Error::kTruncated:
      return "truncated";
    case Error::kReservedInfo:
      return "reserved additional information";
    case Error::kIndefiniteString:
      return "indefinite-length string not supported";
    case Error::kBadIndefinite:
      return "indefinite length on an integer or tag";
    case Error::kBadSimple:
      return "simple value below 32 in two-byte form";
    case Error::kBadUtf8:
      return "text string is not valid UTF-8";
    case Error::kUnexpectedBreak:
      return "unexpected break";
    case Error::kTooDeep:
      return "nesting too deep";
    case Error::kTrailingBytes:
      return "trailing bytes";
    case Error::kOddMap:
      return "map key without a value";
  }
  return "?";
}

double HalfToDouble(uint16_t half) {
  const int exponent = (half >> 10) & 0x1f;
  const int mantissa = half & 0x3ff;
  double value;
  if (exponent == 0) {
    value = std::ldexp(mantissa, -24);
  } else if (exponent != 31) {
    value = std::ldexp(mantissa + 1024, exponent - 25);
  } else {
    value = mantissa == 0 ? std::numeric_limits<double>::infinity()
                          : std::numeric_limits<double>::quiet_NaN();
  }
  return (half & 0x8000) ? -value : value;
}

bool Reader::Fail(Error error, size_t offset) {
  if (error_ == Error::kOk) {
    error_ = error;
    error_offset_ = offset;
  }
  pos_ = data_.size();
  return false;
}

std::string Reader::ErrorMessage() const {
  switch (error_) {
    case Error::kOk:
      return "ok";
    case Error::kTruncated:
      return absl::StrFormat("truncated at byte %u", error_offset_);
    default:
      return absl::StrFormat("%s at byte %u", ErrorName(error_), error_offset_);
  }
}

bool Reader::Read(Item* item) {
  if (error_ != Error::kOk) return false;
  const size_t start = pos_;
  if (pos_ >= data_.size()) return Fail(Error::kTruncated, pos_);
  const uint8_t initial = data_[pos_++];
  const uint8_t major = initial >> 5;
  const uint8_t info = initial & 0x1f;
  *item = Item();
  item->offset = start;

  if (initial == 0xff) {
    item->kind = Kind::kBreak;
    return true;
  }
  uint64_t argument = 0;
  size_t width = 0;
  if (info < 24) {
    argument = info;
  } else if (info <= 27) {
    width = size_t{1} << (info - 24);
    if (data_.size() - pos_ < width) return Fail(Error::kTruncated, data_.size());
    for (size_t i = 0; i < width; ++i) argument = (argument << 8) | data_[pos_ + i];
    pos_ += width;
  } else if (info <= 30) {
    return Fail(Error::kReservedInfo, start);
  }
  const bool indefinite = info == 31;
  item->argument = argument;

  switch (major) {
    case 0:
    case 1:
    case 6:
      if (indefinite) return Fail(Error::kBadIndefinite, start);
      item->kind = major == 0 ? Kind::kUnsigned : major == 1 ? Kind::kNegative : Kind::kTag;
      return true;
    case 2:
    case 3: {
      if (indefinite) return Fail(Error::kIndefiniteString, start);
      if (argument > data_.size() - pos_) return Fail(Error::kTruncated, data_.size());
      item->kind = major == 2 ? Kind::kBytes : Kind::kText;
      item->bytes = data_.subspan(pos_, static_cast<size_t>(argument));
      pos_ += static_cast<size_t>(argument);
      if (major == 3) {
        std::string_view ignored;
        if (tlv::DecodeString(item->bytes, &ignored) != tlv::ValueError::kOk)
          return Fail(Error::kBadUtf8, start);
      }
      return true;
    }
    case 4:
    case 5:
      item->kind = major == 4 ? Kind::kArray : Kind::kMap;
      item->indefinite = indefinite;
      return true;
    default:  // 7
      if (info < 24) {
        item->kind = Kind::kSimple;
        return true;
      }
      if (info == 24) {
        if (argument < 32) return Fail(Error::kBadSimple, start);
        item->kind = Kind::kSimple;
        return true;
      }
      item->kind = Kind::kFloat;
      item->float_width = static_cast<uint8_t>(width);
      if (width == 2) {
        item->floating = HalfToDouble(static_cast<uint16_t>(argument));
      } else if (width == 4) {
        item->floating = std::bit_cast<float>(static_cast<uint32_t>(argument));
      } else {
        item->floating = std::bit_cast<double>(argument);
      }
      return true;
  }
}

bool Reader::ConsumeBreak() {
  if (error_ != Error::kOk || pos_ >= data_.size() || data_[pos_] != 0xff) return false;
  ++pos_;
  return true;
}

bool Reader::Skip() { return SkipNested(0); }

bool Reader::SkipNested(int depth) {
  Item item;
  if (!Read(&item)) return false;
  switch (item.kind) {
    case Kind::kBreak:
      return Fail(Error::kUnexpectedBreak, item.offset);
    case Kind::kTag:
      if (depth >= kMaxDepth) return Fail(Error::kTooDeep, item.offset);
      return SkipNested(depth + 1);
    case Kind::kArray:
    case Kind::kMap: {
      if (depth >= kMaxDepth) return Fail(Error::kTooDeep, item.offset);
      const uint64_t per_entry = item.kind == Kind::kMap ? 2 : 1;
      if (item.indefinite) {
        for (;;) {
          if (ConsumeBreak()) return true;
          if (!SkipNested(depth + 1)) return false;
          if (per_entry == 2) {
            if (pos_ < data_.size() && data_[pos_] == 0xff) return Fail(Error::kOddMap, pos_);
            if (!SkipNested(depth + 1)) return false;
          }
        }
      }
      // Every entry takes at least one byte, which bounds a hostile count by the input left.
      if (item.argument > data_.size() - pos_) return Fail(Error::kTruncated, data_.size());
      for (uint64_t i = 0; i < item.argument * per_entry; ++i)
        if (!SkipNested(depth + 1)) return false;
      return true;
    }
    default:
      return true;
  }
}

Error CheckWellFormed(std::span<const uint8_t> bytes, size_t* error_offset) {
  Reader reader(bytes);
  if (!reader.Skip()) {
    *error_offset = reader.error_offset();
    return reader.error();
  }
  if (!reader.at_end()) {
    *error_offset = reader.offset();
    return Error::kTrailingBytes;
  }
  *error_offset = 0;
  return Error::kOk;
}

void Writer::Head(uint8_t major, uint64_t argument) {
  const uint8_t type = static_cast<uint8_t>(major << 5);
  if (argument < 24) {
    out_->push_back(static_cast<char>(type | argument));
    return;
  }
  size_t width;
  uint8_t info;
  if (argument <= 0xff) {
    width = 1;
    info = 24;
  } else if (argument <= 0xffff) {
    width = 2;
    info = 25;
  } else if (argument <= 0xffffffff) {
    width = 4;
    info = 26;
  } else {
    width = 8;
    info = 27;
  }
  out_->push_back(static_cast<char>(type | info));
  for (size_t i = width; i > 0; --i)
    out_->push_back(static_cast<char>(static_cast<uint8_t>(argument >> (8 * (i - 1)))));
}

Writer& Writer::Unsigned(uint64_t value) {
  Head(0, value);
  return *this;
}

Writer& Writer::Int(int64_t value) {
  if (value >= 0) {
    Head(0, static_cast<uint64_t>(value));
  } else {
    // -1 - value without overflow for INT64_MIN.
    Head(1, ~static_cast<uint64_t>(value));
  }
  return *this;
}

Writer& Writer::NegativeArgument(uint64_t argument) {
  Head(1, argument);
  return *this;
}

Writer& Writer::Bytes(std::span<const uint8_t> value) {
  Head(2, value.size());
  out_->append(reinterpret_cast<const char*>(value.data()), value.size());
  return *this;
}

Writer& Writer::Bytes(std::string_view value) {
  Head(2, value.size());
  out_->append(value);
  return *this;
}

Writer& Writer::Text(std::string_view value) {
  Head(3, value.size());
  out_->append(value);
  return *this;
}

Writer& Writer::Array(uint64_t count) {
  Head(4, count);
  return *this;
}

Writer& Writer::Map(uint64_t count) {
  Head(5, count);
  return *this;
}

Writer& Writer::IndefiniteArray() {
  out_->push_back(static_cast<char>(0x9f));
  return *this;
}

Writer& Writer::IndefiniteMap() {
  out_->push_back(static_cast<char>(0xbf));
  return *this;
}

Writer& Writer::Break() {
  out_->push_back(static_cast<char>(0xff));
  return *this;
}

Writer& Writer::Tag(uint64_t tag) {
  Head(6, tag);
  return *this;
}

Writer& Writer::Bool(bool value) {
  out_->push_back(static_cast<char>(value ? 0xf5 : 0xf4));
  return *this;
}

Writer& Writer::Null() {
  out_->push_back(static_cast<char>(0xf6));
  return *this;
}

Writer& Writer::Simple(uint8_t value) {
  // Values 24-31 are reserved and cannot be written (RFC 8949 §3.3).
  if (value < 24) {
    out_->push_back(static_cast<char>(0xe0 | value));
  } else {
    out_->push_back(static_cast<char>(0xf8));
    out_->push_back(static_cast<char>(value < 32 ? 32 : value));
  }
  return *this;
}

Writer& Writer::Float(double value) {
  uint16_t half;
  if (ToHalf(value, &half)) {
    out_->push_back(static_cast<char>(0xf9));
    out_->push_back(static_cast<char>(half >> 8));
    out_->push_back(static_cast<char>(half & 0xff));
    return *this;
  }
  if (std::fabs(value) <= std::numeric_limits<float>::max() &&
      static_cast<double>(static_cast<float>(value)) == value) {
    const uint32_t bits = std::bit_cast<uint32_t>(static_cast<float>(value));
    out_->push_back(static_cast<char>(0xfa));
    for (int i = 3; i >= 0; --i) out_->push_back(static_cast<char>(bits >> (8 * i)));
    return *this;
  }
  const uint64_t bits = std::bit_cast<uint64_t>(value);
  out_->push_back(static_cast<char>(0xfb));
  for (int i = 7; i >= 0; --i) out_->push_back(static_cast<char>(bits >> (8 * i)));
  return *this;
}

}  // namespace lwm2md::lwm2m::cbor
