#pragma once
// A small, strict CBOR (RFC 8949) reader and writer for the subset SenML CBOR (RFC 8428 §6)
// and the LwM2M CBOR single-value format (Core TS 1.1 §7.4.6) need: integers, byte and text
// strings, arrays, maps, tags, simple values and half/single/double floats.
//
// Hand-written rather than taken from a library because the decoder sits on the packet path
// and must hand out views into the received datagram (no copy, no allocation), and no
// Debian-packaged C++ CBOR library offers a zero-copy pull reader with strict
// well-formedness checks (libcbor allocates a tree per item; tinycbor is not packaged).
//
// Strictness (RFC 8949 §3, §5.3.1):
// - reserved additional information (28-30) and a simple value below 32 in the two-byte form
//   (0xf8 0x00-0x1f) are not well-formed and refused;
// - text strings must be valid UTF-8 (§3.1 major type 3);
// - indefinite-length arrays and maps are read; indefinite-length byte and text strings are
//   refused (kIndefiniteString): concatenating their chunks would need a copy, and neither
//   RFC 8428 nor the LwM2M TS needs them;
// - a break (0xff) is handed to the caller as Kind::kBreak; Skip() checks that breaks only
//   close indefinite containers;
// - nesting deeper than kMaxDepth is refused so that skipping cannot exhaust the stack.
// Non-preferred serialisations (an integer in a longer head than needed, a double that would fit
// in a half) are valid CBOR and accepted. The writer always emits the preferred serialisation
// (RFC 8949 §4.2.1-§4.2.2: shortest heads, shortest exact float).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace lwm2md::lwm2m::cbor {

enum class Kind : uint8_t {
  kUnsigned,  // major type 0; value() holds it
  kNegative,  // major type 1; the integer is -1 - argument
  kBytes,     // major type 2; bytes holds the content
  kText,      // major type 3; bytes holds the UTF-8 content
  kArray,     // major type 4; argument is the element count unless indefinite
  kMap,       // major type 5; argument is the pair count unless indefinite
  kTag,       // major type 6; argument is the tag number, the tagged item follows
  kSimple,    // major type 7 simple values: false (20), true (21), null (22), undefined (23), ...
  kFloat,     // major type 7 half, single or double; floating holds it
  kBreak,     // 0xff, ends an indefinite-length array or map
};

inline constexpr uint64_t kSimpleFalse = 20;
inline constexpr uint64_t kSimpleTrue = 21;
inline constexpr uint64_t kSimpleNull = 22;
inline constexpr uint64_t kSimpleUndefined = 23;

struct Item {
  Kind kind = Kind::kUnsigned;
  bool indefinite = false;  // an array or map opened with 0x9f / 0xbf
  uint8_t float_width = 0;  // 2, 4 or 8 for kFloat
  uint64_t argument = 0;    // the head's argument: value, length, count, tag or simple value
  double floating = 0;
  std::span<const uint8_t> bytes;  // kBytes and kText content, a view into the input
  size_t offset = 0;               // of the head, from the start of the input

  bool is_false() const { return kind == Kind::kSimple && argument == kSimpleFalse; }
  bool is_true() const { return kind == Kind::kSimple && argument == kSimpleTrue; }
  bool is_null() const { return kind == Kind::kSimple && argument == kSimpleNull; }
  std::string_view text() const {
    return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
};

enum class Error : uint8_t {
  kOk = 0,
  kTruncated,         // a head, argument or string content runs past the end
  kReservedInfo,      // additional information 28-30 (RFC 8949 §3)
  kIndefiniteString,  // indefinite-length byte or text string: not supported
  kBadIndefinite,     // additional information 31 on major type 0, 1 or 6
  kBadSimple,         // a simple value below 32 in the two-byte form (RFC 8949 §3.3)
  kBadUtf8,           // a text string that is not valid UTF-8
  kUnexpectedBreak,   // a break outside an indefinite-length array or map
  kTooDeep,           // nesting beyond kMaxDepth
  kTrailingBytes,     // bytes after the single data item expected
  kOddMap,            // an indefinite-length map closed after a key without its value
};
std::string_view ErrorName(Error error);

// Arrays, maps and tags nested deeper than this are refused; SenML needs two levels.
inline constexpr int kMaxDepth = 32;

// Pulls data items one head at a time from a buffer it does not own. A failed read leaves
// error() and error_offset() set and every later read failing.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}

  // Reads the next head (and a string's content) into *item. Containers are not entered: the
  // caller reads their elements next, or calls Skip() for each.
  bool Read(Item* item);
  // Skips one whole data item, with everything nested in it and any tags in front of it.
  bool Skip();
  // Reads the next item only if it is a break (for loops over indefinite containers).
  bool ConsumeBreak();

  bool at_end() const { return pos_ == data_.size(); }
  size_t offset() const { return pos_; }
  Error error() const { return error_; }
  size_t error_offset() const { return error_offset_; }
  // E.g. "truncated at byte 17" (no prefix: callers add their format's name).
  std::string ErrorMessage() const;

  // Marks the reader failed with an error found by the caller at an offset.
  bool Fail(Error error, size_t offset);

 private:
  bool SkipNested(int depth);

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  Error error_ = Error::kOk;
  size_t error_offset_ = 0;
};

// Checks that bytes hold exactly one well-formed data item. *error_offset gets the offset of the
// failure.
Error CheckWellFormed(std::span<const uint8_t> bytes, size_t* error_offset);

// Half-precision (IEEE 754 binary16) to double, RFC 8949 Appendix D.
double HalfToDouble(uint16_t half);

// Appends the preferred serialisation of each item to a string it does not own.
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  Writer& Unsigned(uint64_t value);
  // Major type 0 or 1 as the sign requires.
  Writer& Int(int64_t value);
  // Major type 1 with an explicit argument: the integer -1 - argument (reaches -2^64).
  Writer& NegativeArgument(uint64_t argument);
  Writer& Bytes(std::span<const uint8_t> value);
  Writer& Bytes(std::string_view value);
  // The caller is responsible for value being valid UTF-8.
  Writer& Text(std::string_view value);
  Writer& Array(uint64_t count);
  Writer& Map(uint64_t count);
  Writer& IndefiniteArray();
  Writer& IndefiniteMap();
  Writer& Break();
  Writer& Tag(uint64_t tag);
  Writer& Bool(bool value);
  Writer& Null();
  Writer& Simple(uint8_t value);
  // The shortest of half, single and double that holds the value exactly; NaN as 0xf97e00
  // (RFC 8949 §4.2.2).
  Writer& Float(double value);

 private:
  void Head(uint8_t major, uint64_t argument);
  std::string* out_;
};

}  // namespace lwm2md::lwm2m::cbor
