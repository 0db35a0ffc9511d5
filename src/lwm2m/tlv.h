#pragma once
// The OMA TLV content format (application/vnd.oma.lwm2m+tlv, 11542), OMA LwM2M TS 1.1
// Core §7.4.3: a zero-copy reader that validates a payload once and then iterates its entries
// in place, typed value decoding (TS Appendix C), and a writer producing the minimal encoding.
// Neither the reader nor the writer into a caller buffer allocates.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace lwm2md::lwm2m::tlv {

// Bits 7-6 of the type byte (TS §7.4.3, Table 7.4.3-1).
enum class Type : uint8_t {
  kObjectInstance = 0,    // value is TLV: resources and multiple resources
  kResourceInstance = 1,  // value is a resource instance's value
  kMultipleResource = 2,  // value is TLV: resource instances
  kResource = 3,          // value is a single resource's value
};
std::string_view TypeName(Type type);

constexpr bool IsContainer(Type type) {
  return type == Type::kObjectInstance || type == Type::kMultipleResource;
}

// The largest value the 24-bit length field can describe (TS §7.4.3, bits 4-3 = 11).
constexpr size_t kMaxValueLength = 0xffffff;

class EntryRange;

// One entry of a payload that Payload::Parse validated; its value points into that payload.
struct Entry {
  Type type = Type::kResource;
  uint16_t id = 0;
  std::span<const uint8_t> value;

  // The nested entries of an object instance or multiple resource; empty for leaves.
  EntryRange children() const;
};

// Iterates entries that Parse already validated, in wire order.
class EntryIterator {
 public:
  EntryIterator() = default;
  EntryIterator(const uint8_t* pos, const uint8_t* end) : pos_(pos), end_(end) { Advance(); }
  const Entry& operator*() const { return current_; }
  const Entry* operator->() const { return &current_; }
  EntryIterator& operator++() {
    Advance();
    return *this;
  }
  bool operator==(const EntryIterator& other) const { return done_ == other.done_; }

 private:
  void Advance();
  const uint8_t* pos_ = nullptr;
  const uint8_t* end_ = nullptr;
  Entry current_;
  bool done_ = true;
};

// Inline because every resource read runs it; the bytes were validated, so it reads without
// bounds checks.
inline void EntryIterator::Advance() {
  if (pos_ == end_) {
    done_ = true;
    return;
  }
  const uint8_t* p = pos_;
  const uint8_t header = *p++;
  uint32_t id = *p++;
  if (header & 0x20) id = (id << 8) | *p++;
  size_t length = header & 0x07;
  const unsigned length_bytes = (header >> 3) & 0x03;
  if (length_bytes != 0) {
    length = 0;
    for (unsigned i = 0; i < length_bytes; ++i) length = (length << 8) | *p++;
  }
  current_.type = static_cast<Type>(header >> 6);
  current_.id = static_cast<uint16_t>(id);
  current_.value = std::span<const uint8_t>(p, length);
  pos_ = p + length;
  done_ = false;
}

class EntryRange {
 public:
  EntryRange() = default;
  explicit EntryRange(std::span<const uint8_t> bytes)
      : begin_pos_(bytes.data()), end_pos_(bytes.data() + bytes.size()) {}
  EntryIterator begin() const { return EntryIterator(begin_pos_, end_pos_); }
  EntryIterator end() const { return EntryIterator(); }
  bool empty() const { return begin_pos_ == end_pos_; }

 private:
  const uint8_t* begin_pos_ = nullptr;
  const uint8_t* end_pos_ = nullptr;
};

inline EntryRange Entry::children() const {
  return IsContainer(type) ? EntryRange(value) : EntryRange();
}

enum class ParseError : uint8_t {
  kOk = 0,
  kTruncatedHeader,  // type byte, identifier or length field runs past its container
  kValuePastEnd,     // a top-level value runs past the end of the payload
  kValuePastParent,  // a nested value runs past the end of its parent's value
  kMisplacedEntry,   // a type the TS does not allow at that level (e.g. nesting too deep)
  kMixedTopLevel,    // object instances next to resources at the top level
};
std::string_view ParseErrorName(ParseError error);

// Where and why Parse refused a payload; cheap to return on the packet path, turned into
// text only when a message is wanted.
struct ParseFailure {
  ParseError error = ParseError::kOk;
  uint32_t offset = 0;  // of the offending entry's type byte, from the payload's start
  uint32_t needed = 0;  // bytes the header or value needs (truncation errors)
  uint32_t left = 0;    // bytes left in the container (truncation errors)
  Type type = Type::kResource;
  bool top_level = true;                // where a misplaced entry sits...
  Type parent = Type::kObjectInstance;  // ...and, nested, inside what

  bool ok() const { return error == ParseError::kOk; }
  // E.g. "tlv: entry at offset 5: value runs past the end (needs 12 bytes, 7 left)".
  std::string Message() const;
};

// A validated TLV payload. It holds pointers into the bytes, which must outlive it.
//
// Structure (TS §7.4.3 and the shapes of §7.4.3.2's examples): the top level holds either
// object instances only (a Read on an Object) or resources, multiple resources and resource
// instances (a Read on an Object Instance, Resource or, in 1.1, Resource Instance). An object
// instance holds resources and multiple resources; a multiple resource holds resource
// instances. Nesting therefore never exceeds three levels.
class Payload {
 public:
  static ParseFailure Parse(std::span<const uint8_t> bytes, Payload* out);
  // Control-plane form: InvalidArgument carrying ParseFailure::Message().
  static absl::StatusOr<Payload> ParseOrStatus(std::span<const uint8_t> bytes);

  EntryRange entries() const { return EntryRange(bytes_); }
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  std::span<const uint8_t> bytes_;
};

// Typed values (TS Appendix C). Each decoder refuses lengths the data type does not allow.
enum class ValueError : uint8_t {
  kOk = 0,
  kBadLength,   // e.g. an integer of 3 bytes, a float of 2, an objlnk not of 4
  kBadBoolean,  // a byte other than 0 or 1
  kBadUtf8,     // a string that is not well-formed UTF-8
};
std::string_view ValueErrorName(ValueError error);

struct ObjectLink {
  uint16_t object_id = 0;
  uint16_t instance_id = 0;
  bool operator==(const ObjectLink&) const = default;
};

// Signed big-endian two's complement of 1, 2, 4 or 8 bytes.
ValueError DecodeInteger(std::span<const uint8_t> value, int64_t* out);
// Unsigned big-endian of 1, 2, 4 or 8 bytes (LwM2M 1.1).
ValueError DecodeUnsigned(std::span<const uint8_t> value, uint64_t* out);
// IEEE 754 binary32 or binary64, big-endian.
ValueError DecodeFloat(std::span<const uint8_t> value, double* out);
ValueError DecodeBoolean(std::span<const uint8_t> value, bool* out);
// A view into the payload, checked to be well-formed UTF-8 (RFC 3629).
ValueError DecodeString(std::span<const uint8_t> value, std::string_view* out);
// Opaque values are the raw bytes; this exists so schema-driven callers treat every type alike.
inline ValueError DecodeOpaque(std::span<const uint8_t> value, std::span<const uint8_t>* out) {
  *out = value;
  return ValueError::kOk;
}
// Seconds since the Unix epoch, encoded like an integer.
ValueError DecodeTime(std::span<const uint8_t> value, int64_t* out);
// 2 bytes object id then 2 bytes instance id; 65535:65535 is the null link.
ValueError DecodeObjectLink(std::span<const uint8_t> value, ObjectLink* out);

// Writes a payload in its minimal form: shortest identifier and length fields, integers in the
// fewest of 1/2/4/8 bytes, floats in 4 bytes when that loses nothing. Containers are opened
// with Begin* and closed with End; a leaf written inside a multiple resource is a resource
// instance, elsewhere a resource. The writer refuses (marks itself failed, Finish returns an
// empty span) what Payload::Parse would refuse: misplaced or mixed entries, values longer than
// kMaxValueLength, unclosed containers, and overflowing a fixed buffer.
class Writer {
 public:
  // An open container holds room for the largest header (6 bytes) until End knows its length,
  // so a fixed buffer needs this much beyond the finished payload when containers are used.
  static constexpr size_t kOpenContainerSlack = 2 * 4;

  // Writes into a fixed buffer; no allocation.
  explicit Writer(std::span<uint8_t> buffer) : buffer_(buffer) {}
  // Control-plane form: replaces *out's contents and grows it as needed.
  explicit Writer(std::vector<uint8_t>* out);

  Writer& BeginObjectInstance(uint16_t id);
  Writer& BeginMultipleResource(uint16_t id);
  Writer& End();

  // A leaf with an explicit type (kResource or kResourceInstance) and raw value, e.g. a
  // top-level resource instance answering a 1.1 Read on /o/i/r/ri.
  Writer& Leaf(Type type, uint16_t id, std::span<const uint8_t> value);
  Writer& Opaque(uint16_t id, std::span<const uint8_t> value);
  Writer& String(uint16_t id, std::string_view value);
  Writer& Integer(uint16_t id, int64_t value);
  Writer& Unsigned(uint16_t id, uint64_t value);
  Writer& Float(uint16_t id, double value);
  Writer& Boolean(uint16_t id, bool value);
  Writer& Time(uint16_t id, int64_t seconds) { return Integer(id, seconds); }
  Writer& ObjectLinkValue(uint16_t id, ObjectLink link);

  bool ok() const { return ok_; }
  size_t size() const { return size_; }
  // The encoded payload, or an empty span when the writer failed or a container is open.
  std::span<const uint8_t> Finish() const;

 private:
  struct Frame {
    Type type;
    uint16_t id;
    size_t header_pos;   // where the entry's header goes once its length is known
    size_t content_pos;  // where its children start, kMaxHeader bytes later
  };
  static constexpr size_t kMaxHeader = 6;  // type, 16-bit id, 24-bit length

  bool Admit(Type type);
  Writer& Begin(Type type, uint16_t id);
  bool Reserve(size_t bytes);
  // Trims a growable vector to what was written.
  void Commit();
  Type LeafType() const;

  std::span<uint8_t> buffer_;
  std::vector<uint8_t>* growable_ = nullptr;
  size_t size_ = 0;
  // Object instance > multiple resource is the deepest the TS allows.
  Frame frames_[2] = {};
  int depth_ = 0;
  bool top_has_object_instance_ = false;
  bool top_has_other_ = false;
  bool ok_ = true;
};

}  // namespace lwm2md::lwm2m::tlv
