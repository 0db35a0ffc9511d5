#pragma once
// The LwM2M content formats (Core TS 1.1 §7.4, TS 1.0.2 §6.4): decoding a payload into typed
// records and encoding records into a payload, for plain text, opaque, CBOR single values,
// OMA TLV, OMA LwM2M JSON, SenML JSON and SenML CBOR. Values are typed by the resource
// definitions (TS Appendix C), which the caller supplies through a TypeResolver.
//
// Zero copy: strings, opaque values and core links in decoded records are views into the
// payload whenever the wire carries them verbatim (TLV, opaque, plain text strings, CBOR, JSON
// strings without escapes). Only values that need a transformation (JSON escapes, base64) are
// written to storage owned by the Decoded. The payload must therefore outlive the Decoded.
//
// Usable on any thread; nothing here is shared between calls except a per-thread JSON parser.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lwm2m/types.h"

namespace lwm2md::lwm2m {

// CoAP Content-Format numbers LwM2M uses (CoAP Content-Formats registry; TS 1.1 §7.4).
enum class ContentFormat : uint16_t {
  kText = 0,
  kCoreLink = 40,
  kOpaque = 42,
  kCbor = 60,
  kSenmlJson = 110,
  kSenmlCbor = 112,
  kTlv = 11542,
  kLwm2mJson = 11543,
};

// Maps a Content-Format option value to a format. Besides the registered numbers it accepts
// 1542 (TLV) and 1543 (LwM2M JSON), the numbers LwM2M 1.0 clients used before the formats were
// registered with IANA.
std::optional<ContentFormat> ContentFormatFromNumber(uint16_t number);

// The reference's `encoding` option: "tlv", "text", "opaque", "json" (LwM2M JSON, 11543),
// "senml-json", "senml-cbor", "cbor". Case-sensitive, as the reference spells them.
// CoRE Link Format has no encoding name: it is the Discover answer, not a value format.
std::optional<ContentFormat> ParseEncodingName(std::string_view name);
// The name above; "core-link" for kCoreLink. Also the prefix of every error message.
std::string_view EncodingName(ContentFormat format);

// A typed resource value (TS Appendix C). Only the field `type` selects is meaningful.
// Trivially copyable; `bytes` is a view (see the file comment for what it points into).
struct Value {
  ResourceType type = ResourceType::kNone;
  bool boolean = false;           // kBoolean
  Objlnk link;                    // kObjlnk
  int64_t integer = 0;            // kInteger
  uint64_t unsigned_integer = 0;  // kUnsignedInteger
  double floating = 0;            // kFloat
  int64_t time = 0;               // kTime: seconds since the Unix epoch
  std::string_view bytes;         // kString, kOpaque, kCorelnk

  static Value String(std::string_view value) {
    Value v;
    v.type = ResourceType::kString;
    v.bytes = value;
    return v;
  }
  static Value Integer(int64_t value) {
    Value v;
    v.type = ResourceType::kInteger;
    v.integer = value;
    return v;
  }
  static Value Unsigned(uint64_t value) {
    Value v;
    v.type = ResourceType::kUnsignedInteger;
    v.unsigned_integer = value;
    return v;
  }
  static Value Float(double value) {
    Value v;
    v.type = ResourceType::kFloat;
    v.floating = value;
    return v;
  }
  static Value Boolean(bool value) {
    Value v;
    v.type = ResourceType::kBoolean;
    v.boolean = value;
    return v;
  }
  static Value Opaque(std::string_view value) {
    Value v;
    v.type = ResourceType::kOpaque;
    v.bytes = value;
    return v;
  }
  static Value Opaque(std::span<const uint8_t> value) {
    return Opaque(std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
  }
  static Value Time(int64_t seconds) {
    Value v;
    v.type = ResourceType::kTime;
    v.time = seconds;
    return v;
  }
  static Value Link(Objlnk link) {
    Value v;
    v.type = ResourceType::kObjlnk;
    v.link = link;
    return v;
  }
  static Value Link(uint16_t object_id, uint16_t instance_id) {
    return Link(Objlnk{object_id, instance_id});
  }
  static Value Corelnk(std::string_view value) {
    Value v;
    v.type = ResourceType::kCorelnk;
    v.bytes = value;
    return v;
  }
  // No value: a SenML record that only names a resource (the payload of a Read-Composite or
  // Observe-Composite request, TS 1.1 §6.3.1.1). Only the SenML encoders accept it.
  static Value None() { return Value(); }

  std::span<const uint8_t> opaque() const {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }

  // Compares the type and the field it selects; floats compare bit for bit, except that any
  // NaN equals any NaN (CBOR and TLV do not keep NaN payloads).
  bool operator==(const Value& other) const;
  // E.g. `integer 5`, `string "abc"`, `opaque 3 bytes`, `objlnk 3:0`.
  std::string DebugString() const;
};

struct Record {
  Path path;  // always names a resource or a resource instance
  Value value;
  // SenML / LwM2M JSON time: bt + t as received (RFC 8428 §4.5.3: below 2^28 it is relative to
  // now, otherwise seconds since the epoch); nullopt when the record carried neither.
  std::optional<double> timestamp;

  bool operator==(const Record& other) const = default;
};

// Resource types from the object model. TypeOf is always asked about a resource path
// (/o/i/r), never about a resource instance: every instance of a multiple resource shares its
// resource's type. nullopt means the resource is not defined; kNone, that it is executable.
class TypeResolver {
 public:
  virtual ~TypeResolver() = default;
  virtual std::optional<ResourceType> TypeOf(const Path& resource) const = 0;
};

// Adapts a callable (a lambda, a model lookup) to TypeResolver; the callable must outlive it.
class FunctionTypeResolver final : public TypeResolver {
 public:
  explicit FunctionTypeResolver(
      absl::FunctionRef<std::optional<ResourceType>(const Path&)> function)
      : function_(function) {}
  std::optional<ResourceType> TypeOf(const Path& resource) const override {
    return function_(resource);
  }

 private:
  absl::FunctionRef<std::optional<ResourceType>(const Path&)> function_;
};

struct DecodeOptions {
  // A resource the resolver does not know is refused with "<format>: resource definition not
  // found" unless this is set; then it decodes as what the wire says: opaque in TLV, the SenML
  // or LwM2M JSON value field received (an integral number as integer, else float), the CBOR
  // major type, a string in plain text, opaque in the opaque format.
  bool lenient_unknown_resources = false;
  // The payload answers a Read-Composite or Observe-Composite (TS 1.1 §6.3.1.1, §6.4.1.1):
  // record names are absolute and may lie anywhere, so request_path is not checked.
  bool composite = false;
};

struct EncodeOptions {
  // Write-Composite / Read-Composite request bodies (SenML only): no base name, absolute names,
  // request_path ignored.
  bool composite = false;
};

// The records of one payload, with storage for values that could not stay in the payload.
// Move-only: the records may point into that storage, whose address a move keeps.
class Decoded {
 public:
  Decoded() = default;
  Decoded(Decoded&&) = default;
  Decoded& operator=(Decoded&&) = default;
  Decoded(const Decoded&) = delete;
  Decoded& operator=(const Decoded&) = delete;

  std::vector<Record> records;

  // Room for n bytes that stays where it is for the Decoded's lifetime. The decoders size the
  // first block from the payload so that one allocation covers a whole decode.
  char* Allocate(size_t n);
  std::string_view Own(std::string_view bytes);
  void ReserveStorage(size_t hint) { block_hint_ = hint; }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t block_size_ = 0;
  size_t block_used_ = 0;
  size_t block_hint_ = 0;
};

// Decodes payload, the answer to (or body of) a request on request_path.
//
// request_path fixes what the payload may hold: plain text, opaque and CBOR carry a single
// value and need a resource or resource instance path; TLV identifiers are relative to it (the
// top level of an answer to /o holds object instances, to /o/i resources, to /o/i/r the resource
// or its instances, to /o/i/r/ri that instance); SenML and LwM2M JSON names must lie within it
// unless options.composite. Errors are InvalidArgument naming the format and the offending
// byte, record or path ("senml-json: record 3: 'v' is not a number", "cbor: truncated at
// byte 17", "tlv: 3/0/9: expected integer of 1, 2, 4 or 8 bytes, got 3"), except an undefined
// resource, which is NotFound "<format>: resource definition not found" with the path attached
// as the status payload kPathPayload.
absl::StatusOr<Decoded> Decode(ContentFormat format, const Path& request_path,
                               std::span<const uint8_t> payload, const TypeResolver& types,
                               DecodeOptions options = {});

// The type URL of the status payload that carries the offending path ("3/0/100").
inline constexpr std::string_view kPathPayload = "type.lwm2md/lwm2m.path";

// Encodes records (each value typed by its own `type`) for a request on request_path,
// replacing *out. Plain text, opaque and CBOR take exactly one record, on request_path itself;
// TLV nests records under request_path (records with a resource instance id form a multiple
// resource; under an object path, records are grouped into object instances); SenML and LwM2M
// JSON use request_path with a trailing '/' as base name and names relative to it (a single
// record on request_path itself gets it as base name and no name).
absl::Status Encode(ContentFormat format, const Path& request_path, std::span<const Record> records,
                    std::string* out, EncodeOptions options = {});

}  // namespace lwm2md::lwm2m
