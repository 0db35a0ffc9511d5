#pragma once
// Shared by the content-format codecs behind content_format.h; not for other users.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "lwm2m/cbor.h"
#include "lwm2m/content_format.h"

namespace lwm2md::lwm2m::content_format_internal {

// What one Decode call works with.
struct DecodeContext {
  std::string_view format;  // EncodingName(format): every message's prefix
  const Path& request;
  std::span<const uint8_t> payload;
  const TypeResolver& types;
  DecodeOptions options;
  Decoded* out;
};

// InvalidArgument "<format>: <message>".
absl::Status Invalid(std::string_view format, std::string_view message);

// The type of the resource `path` lies in (path's resource instance id is ignored). An unknown
// resource is NotFound "<format>: resource definition not found" with kPathPayload set, unless
// the options are lenient: then *known is false and the caller picks the type the wire says.
absl::Status ResolveType(const DecodeContext& context, const Path& path, ResourceType* type,
                         bool* known);

// Refuses a record path the request does not cover, or one above resource level.
absl::Status CheckRecordPath(const DecodeContext& context, size_t index, const Path& path);

// Parses the concatenation first + second as an LwM2M path ("/3/0/1", leading '/' optional,
// no empty segment, ids below 65535, 1-4 levels) without allocating.
bool ParsePathText(std::string_view first, std::string_view second, Path* out);
// "/3/0/1"; with_trailing_slash adds the '/' a SenML base name ends with.
void AppendPath(std::string* out, const Path& path, bool with_trailing_slash);
// The part of path below base, "6/0" for /3/0/6/0 under /3/0; empty when equal.
void AppendRelativePath(std::string* out, const Path& base, const Path& path);

// "3:0" (TS Appendix C objlnk in text, SenML vlo and LwM2M JSON ov): two decimal ids up to
// 65535, nothing else.
bool ParseObjlnk(std::string_view text, Objlnk* out);
void AppendObjlnk(std::string* out, Objlnk link);

// RFC 4648 base64. The decoder accepts the standard (§4) and URL-safe (§5) alphabets, with or
// without padding (RFC 8428 §4.3 sends "vd" URL-safe and unpadded, LwM2M plain text and JSON use
// the standard alphabet); it refuses anything else, including whitespace and a length that no
// encoding produces. The result is written to out's storage.
bool Base64Decode(std::string_view text, Decoded* out, std::string_view* bytes);
void AppendBase64(std::string* out, std::string_view bytes, bool url_safe);

// RFC 3629 well-formed UTF-8 (what TLV strings, CBOR text and JSON strings must be).
bool IsUtf8(std::string_view text);

// A number as received, kept exactly until the resource type says what it must be.
struct Number {
  enum class Kind : uint8_t { kInt, kUint, kDouble };
  Kind kind = Kind::kInt;
  union {
    int64_t i = 0;  // kInt
    uint64_t u;     // kUint: only values above INT64_MAX
    double d;       // kDouble
  };

  static Number Int(int64_t v) {
    Number n;
    n.i = v;
    return n;
  }
  static Number Uint(uint64_t v) {
    if (v <= static_cast<uint64_t>(INT64_MAX)) return Int(static_cast<int64_t>(v));
    Number n;
    n.kind = Kind::kUint;
    n.u = v;
    return n;
  }
  static Number Double(double v) {
    Number n;
    n.kind = Kind::kDouble;
    n.d = v;
    return n;
  }

  double AsDouble() const;
  // Exact conversions: an integral double converts, 1.5 or 2^64 do not.
  bool ToInt64(int64_t* out) const;
  bool ToUint64(uint64_t* out) const;
  // RFC 8428 §4.5.2 base value: this + base, exact while both are integers and it fits.
  Number Plus(const Number& base) const;
};

// The number an integer or float CBOR item holds (the CBOR single-value format and SenML CBOR
// read numbers alike); false for any other kind of item.
bool CborItemNumber(const cbor::Item& item, Number* out);

// The value a number makes for a resource of `type` (integer, unsigned integer, float, time);
// false with *why set when it does not fit.
bool NumberToValue(const Number& number, ResourceType type, Value* out, std::string_view* why);
// The value a lenient decode gives an unknown resource: integer when integral, else float.
Value NumberAsReceived(const Number& number);

// Shortest decimal that reads back as value (std::to_chars); json_float appends ".0" to an
// integral result so that a float stays a float to a reader that does not know the type.
void AppendDouble(std::string* out, double value, bool json_float);

// A SenML or LwM2M JSON record before its name and value are typed (RFC 8428 §4.6 resolved
// form, with the name kept as its two pieces).
struct SenmlRecord {
  enum class Kind : uint8_t { kNone, kNumber, kString, kBoolean, kData, kObjlnk };
  std::string_view base_name;
  std::string_view name;
  Kind kind = Kind::kNone;
  Number number;               // kNumber, base value applied
  std::string_view text;       // kString, kObjlnk ("3:0"); kData once decoded
  bool boolean = false;        // kBoolean
  std::optional<double> time;  // bt + t
};

// SenML labels (RFC 8428 §4.1-4.3, Table 4 for the CBOR integers) plus LwM2M's "vlo" (TS 1.1
// §7.4.5 objlnk value, a text label in CBOR too).
enum class SenmlLabel : uint8_t {
  kBver,
  kBn,
  kBt,
  kBu,
  kBv,
  kBs,
  kN,
  kU,
  kV,
  kVs,
  kVb,
  kS,
  kT,
  kUt,
  kVd,
  kVlo,
  kUnknown,         // ignored (RFC 8428 §4.4: unknown fields are skipped)...
  kMustUnderstand,  // ...unless the label ends in '_' (RFC 8428 §4.4, §12.2)
};
inline constexpr int kSenmlLabelCount = static_cast<int>(SenmlLabel::kVlo) + 1;
SenmlLabel SenmlLabelFromText(std::string_view label);
SenmlLabel SenmlLabelFromInt(int64_t label);
std::string_view SenmlLabelName(SenmlLabel label);

// The fields of one SenML record as received, before base fields apply.
struct SenmlFields {
  uint32_t seen = 0;  // bit per SenmlLabel, for refusing duplicates
  std::optional<std::string_view> bn, n;
  std::optional<Number> bver, bt, bv, t;
  int value_fields = 0;  // v, vs, vb, vd, vlo present
  SenmlRecord::Kind kind = SenmlRecord::Kind::kNone;
  Number number;
  std::string_view text;
  bool boolean = false;

  // Ready for the next record; cheaper than constructing a new one per record.
  void Reset() {
    seen = 0;
    bn.reset();
    n.reset();
    bver.reset();
    bt.reset();
    bv.reset();
    t.reset();
    value_fields = 0;
    kind = SenmlRecord::Kind::kNone;
  }

  // False when label was already seen in this record.
  bool Mark(SenmlLabel label) {
    const uint32_t bit = 1u << static_cast<int>(label);
    if (seen & bit) return false;
    seen |= bit;
    return true;
  }

  // Keep a field once the codec has read it as the type its label wants: the wire types differ
  // between SenML JSON and CBOR, where each field goes does not. Text (bn, n, vs, vlo, and vd
  // once decoded) must live through the decode. bu, u, bs, s and ut are read and checked only:
  // LwM2M has no use for them.
  void SetText(SenmlLabel label, std::string_view value);  // bn, n, bu, u, vs, vlo, vd
  void SetNumber(SenmlLabel label, const Number& value);   // bver, bt, bv, bs, v, s, t, ut
  void SetBoolean(bool value);                             // vb
};

// What base fields carry from one record to the following ones (RFC 8428 §4.5.1).
struct SenmlBase {
  std::string_view name;
  std::optional<double> time;
  std::optional<Number> value;
};

// Applies and updates base fields (RFC 8428 §4.5-4.6) and checks the record has at most one
// value field and a supported version.
absl::Status ResolveSenmlFields(std::string_view format, size_t index, const SenmlFields& fields,
                                SenmlBase* base, SenmlRecord* out);

// Turns a SenML / LwM2M JSON record into a typed Record and appends it. index names the record
// in messages. opaque_in_string: LwM2M JSON carries opaque values base64-encoded in "sv"
// (TS 1.0.2 §6.4.4) where SenML has "vd".
absl::Status AppendSenmlRecord(const DecodeContext& context, size_t index,
                               const SenmlRecord& record, bool opaque_in_string);

// Base name and relative names for encoding records in SenML or LwM2M JSON.
struct SenmlNaming {
  std::string base_name;  // empty: no "bn"
  // Appends record's name relative to base_name (possibly empty: no "n").
  void AppendName(std::string* out, const Path& path) const;
  Path base;
  bool has_base = false;
};
absl::Status PlanSenmlNaming(std::string_view format, const Path& request,
                             std::span<const Record> records, EncodeOptions options,
                             bool allow_none, SenmlNaming* naming);

// One decoder and one encoder per format.
absl::Status DecodeText(const DecodeContext& context);
absl::Status DecodeOpaque(const DecodeContext& context);
absl::Status DecodeCborValue(const DecodeContext& context);
absl::Status DecodeTlv(const DecodeContext& context);
absl::Status DecodeSenmlJson(const DecodeContext& context);
absl::Status DecodeSenmlCbor(const DecodeContext& context);
absl::Status DecodeLwm2mJson(const DecodeContext& context);

absl::Status EncodeText(const Path& request, std::span<const Record> records, std::string* out);
absl::Status EncodeOpaque(const Path& request, std::span<const Record> records, std::string* out);
absl::Status EncodeCborValue(const Path& request, std::span<const Record> records,
                             std::string* out);
absl::Status EncodeTlv(const Path& request, std::span<const Record> records, std::string* out);
absl::Status EncodeSenmlJson(const Path& request, std::span<const Record> records,
                             EncodeOptions options, std::string* out);
absl::Status EncodeSenmlCbor(const Path& request, std::span<const Record> records,
                             EncodeOptions options, std::string* out);
absl::Status EncodeLwm2mJson(const Path& request, std::span<const Record> records,
                             EncodeOptions options, std::string* out);

// Shared by the single-value encoders: exactly one record, on request itself.
absl::Status CheckSingleRecord(std::string_view format, const Path& request,
                               std::span<const Record> records);

}  // namespace lwm2md::lwm2m::content_format_internal
