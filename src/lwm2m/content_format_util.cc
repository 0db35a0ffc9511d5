// Helpers shared by the content-format codecs: type lookup, path and objlnk text, base64,
// numbers, and the SenML record model both SenML formats and LwM2M JSON decode into.

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "lwm2m/content_format_internal.h"
#include "lwm2m/tlv.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace {

constexpr double kTwoTo63 = 9223372036854775808.0;
constexpr double kTwoTo64 = 18446744073709551616.0;

// Base64 digit values; 0xff for bytes outside both RFC 4648 alphabets.
struct Base64Table {
  uint8_t digit[256];
  constexpr Base64Table() : digit() {
    for (int i = 0; i < 256; ++i) digit[i] = 0xff;
    for (int i = 0; i < 26; ++i) {
      digit['A' + i] = static_cast<uint8_t>(i);
      digit['a' + i] = static_cast<uint8_t>(26 + i);
    }
    for (int i = 0; i < 10; ++i) digit['0' + i] = static_cast<uint8_t>(52 + i);
    digit[static_cast<uint8_t>('+')] = digit[static_cast<uint8_t>('-')] = 62;
    digit[static_cast<uint8_t>('/')] = digit[static_cast<uint8_t>('_')] = 63;
  }
};
constexpr Base64Table kBase64;

// Field names per value kind, for messages: SenML (RFC 8428) and LwM2M JSON (TS 1.0.2 §6.4.4).
std::string_view KindField(SenmlRecord::Kind kind, bool lwm2m_json) {
  switch (kind) {
    case SenmlRecord::Kind::kNone:
      return "no value";
    case SenmlRecord::Kind::kNumber:
      return "'v'";
    case SenmlRecord::Kind::kString:
      return lwm2m_json ? "'sv'" : "'vs'";
    case SenmlRecord::Kind::kBoolean:
      return lwm2m_json ? "'bv'" : "'vb'";
    case SenmlRecord::Kind::kData:
      return "'vd'";
    case SenmlRecord::Kind::kObjlnk:
      return lwm2m_json ? "'ov'" : "'vlo'";
  }
  return "?";
}

}  // namespace

absl::Status Invalid(std::string_view format, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: %s", format, message));
}

absl::Status ResolveType(const DecodeContext& context, const Path& path, ResourceType* type,
                         bool* known) {
  std::optional<ResourceType> found;
  if (!path.resource_instance_id.has_value()) {
    found = context.types.TypeOf(path);
  } else {
    Path resource = path;
    resource.resource_instance_id.reset();
    found = context.types.TypeOf(resource);
  }
  if (found.has_value()) {
    *type = *found;
    *known = true;
    return absl::OkStatus();
  }
  if (context.options.lenient_unknown_resources) {
    *type = ResourceType::kNone;
    *known = false;
    return absl::OkStatus();
  }
  // The reference reports exactly this text; the path travels beside it.
  absl::Status status =
      absl::NotFoundError(absl::StrFormat("%s: resource definition not found", context.format));
  const std::string text = path.ToString();
  status.SetPayload(absl::string_view(kPathPayload.data(), kPathPayload.size()),
                    absl::Cord(absl::string_view(text.data(), text.size())));
  return status;
}

absl::Status CheckRecordPath(const DecodeContext& context, size_t index, const Path& path) {
  if (path.depth() < 3) {
    return Invalid(context.format,
                   absl::StrFormat("record %u: %s names no resource", index, path.ToString()));
  }
  if (!context.options.composite && !context.request.Contains(path)) {
    return Invalid(context.format,
                   absl::StrFormat("record %u: %s is outside the request path %s", index,
                                   path.ToString(), context.request.ToString()));
  }
  return absl::OkStatus();
}

bool ParsePathText(std::string_view first, std::string_view second, Path* out) {
  // "/65534/65534/65534/65534" is 24 bytes; anything much longer is not a path.
  char buffer[48];
  if (first.size() + second.size() > sizeof(buffer)) return false;
  if (!first.empty()) std::memcpy(buffer, first.data(), first.size());
  if (!second.empty()) std::memcpy(buffer + first.size(), second.data(), second.size());
  const char* p = buffer;
  const char* end = buffer + first.size() + second.size();
  if (p != end && *p == '/') ++p;
  uint16_t ids[4];
  int count = 0;
  while (true) {
    if (count == 4 || p == end) return false;
    uint32_t id = 0;
    const char* start = p;
    while (p != end && *p >= '0' && *p <= '9') {
      id = id * 10 + static_cast<uint32_t>(*p - '0');
      if (id >= Path::kReservedId) return false;
      ++p;
    }
    if (p == start) return false;
    ids[count++] = static_cast<uint16_t>(id);
    if (p == end) break;
    if (*p != '/') return false;
    ++p;
  }
  *out = Path{ids[0], {}, {}, {}};
  if (count > 1) out->instance_id = ids[1];
  if (count > 2) out->resource_id = ids[2];
  if (count > 3) out->resource_instance_id = ids[3];
  return true;
}

void AppendPath(std::string* out, const Path& path, bool with_trailing_slash) {
  absl::StrAppendFormat(out, "/%u", path.object_id);
  if (path.instance_id) absl::StrAppendFormat(out, "/%u", *path.instance_id);
  if (path.resource_id) absl::StrAppendFormat(out, "/%u", *path.resource_id);
  if (path.resource_instance_id) absl::StrAppendFormat(out, "/%u", *path.resource_instance_id);
  if (with_trailing_slash) out->push_back('/');
}

void AppendRelativePath(std::string* out, const Path& base, const Path& path) {
  const std::optional<uint16_t> levels[3] = {path.instance_id, path.resource_id,
                                             path.resource_instance_id};
  bool first = true;
  for (int level = base.depth(); level < path.depth(); ++level) {
    if (!first) out->push_back('/');
    absl::StrAppendFormat(out, "%u", *levels[level - 1]);
    first = false;
  }
}

bool ParseObjlnk(std::string_view text, Objlnk* out) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  uint16_t ids[2];
  const std::string_view parts[2] = {text.substr(0, colon), text.substr(colon + 1)};
  for (int i = 0; i < 2; ++i) {
    const std::string_view part = parts[i];
    if (part.empty() || part[0] < '0' || part[0] > '9') return false;
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), ids[i]);
    if (error != std::errc() || end != part.data() + part.size()) return false;
  }
  *out = Objlnk{ids[0], ids[1]};
  return true;
}

void AppendObjlnk(std::string* out, Objlnk link) {
  absl::StrAppendFormat(out, "%u:%u", link.object_id, link.instance_id);
}

bool Base64Decode(std::string_view text, Decoded* out, std::string_view* bytes) {
  size_t n = text.size();
  if (n >= 1 && text[n - 1] == '=') {
    // Padding only completes a group of four.
    if (n % 4 != 0) return false;
    n -= (n >= 2 && text[n - 2] == '=') ? 2 : 1;
  }
  if (n % 4 == 1) return false;
  const size_t size = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
  char* dst = out->Allocate(size);
  size_t written = 0;
  uint32_t accumulator = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t digit = kBase64.digit[static_cast<uint8_t>(text[i])];
    if (digit == 0xff) return false;
    accumulator = (accumulator << 6) | digit;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      dst[written++] = static_cast<char>(accumulator >> bits);
    }
  }
  *bytes = std::string_view(dst, size);
  return true;
}

void AppendBase64(std::string* out, std::string_view bytes, bool url_safe) {
  static constexpr char kStandard[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const char* alphabet = url_safe ? kUrl : kStandard;
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t group = (static_cast<uint8_t>(bytes[i]) << 16) |
                           (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                           static_cast<uint8_t>(bytes[i + 2]);
    out->push_back(alphabet[(group >> 18) & 63]);
    out->push_back(alphabet[(group >> 12) & 63]);
    out->push_back(alphabet[(group >> 6) & 63]);
    out->push_back(alphabet[group & 63]);
  }
  const size_t left = bytes.size() - i;
  if (left == 0) return;
  uint32_t group = static_cast<uint8_t>(bytes[i]) << 16;
  if (left == 2) group |= static_cast<uint8_t>(bytes[i + 1]) << 8;
  out->push_back(alphabet[(group >> 18) & 63]);
  out->push_back(alphabet[(group >> 12) & 63]);
  if (left == 2) out->push_back(alphabet[(group >> 6) & 63]);
  // RFC 8428 §4.3 omits the padding in SenML "vd"; RFC 4648 §4 keeps it elsewhere.
  if (!url_safe) out->append(left == 1 ? "==" : "=");
}

bool IsUtf8(std::string_view text) {
  std::string_view ignored;
  return tlv::DecodeString(
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
             &ignored) == tlv::ValueError::kOk;
}

bool CborItemNumber(const cbor::Item& item, Number* out) {
  switch (item.kind) {
    case cbor::Kind::kUnsigned:
      *out = Number::Uint(item.argument);
      return true;
    case cbor::Kind::kNegative:
      // -1 - argument; below INT64_MIN only a double comes close.
      *out = item.argument <= static_cast<uint64_t>(INT64_MAX)
                 ? Number::Int(-1 - static_cast<int64_t>(item.argument))
                 : Number::Double(-1.0 - static_cast<double>(item.argument));
      return true;
    case cbor::Kind::kFloat:
      *out = Number::Double(item.floating);
      return true;
    default:
      return false;
  }
}

double Number::AsDouble() const {
  switch (kind) {
    case Kind::kInt:
      return static_cast<double>(i);
    case Kind::kUint:
      return static_cast<double>(u);
    case Kind::kDouble:
      return d;
  }
  return 0;
}

bool Number::ToInt64(int64_t* out) const {
  switch (kind) {
    case Kind::kInt:
      *out = i;
      return true;
    case Kind::kUint:
      return false;
    case Kind::kDouble:
      if (!(d >= -kTwoTo63 && d < kTwoTo63) || std::trunc(d) != d) return false;
      *out = static_cast<int64_t>(d);
      return true;
  }
  return false;
}

bool Number::ToUint64(uint64_t* out) const {
  switch (kind) {
    case Kind::kInt:
      if (i < 0) return false;
      *out = static_cast<uint64_t>(i);
      return true;
    case Kind::kUint:
      *out = u;
      return true;
    case Kind::kDouble:
      if (!(d >= 0 && d < kTwoTo64) || std::trunc(d) != d) return false;
      *out = static_cast<uint64_t>(d);
      return true;
  }
  return false;
}

Number Number::Plus(const Number& base) const {
  if (kind != Kind::kDouble && base.kind != Kind::kDouble) {
    const __int128 a = kind == Kind::kInt ? __int128{i} : __int128{u};
    const __int128 b = base.kind == Kind::kInt ? __int128{base.i} : __int128{base.u};
    const __int128 sum = a + b;
    if (sum >= std::numeric_limits<int64_t>::min() && sum <= std::numeric_limits<int64_t>::max())
      return Int(static_cast<int64_t>(sum));
    if (sum >= 0 && sum <= std::numeric_limits<uint64_t>::max())
      return Uint(static_cast<uint64_t>(sum));
  }
  return Double(AsDouble() + base.AsDouble());
}

bool NumberToValue(const Number& number, ResourceType type, Value* out, std::string_view* why) {
  switch (type) {
    case ResourceType::kInteger: {
      int64_t v;
      if (!number.ToInt64(&v)) {
        *why = "is not an integer in the signed 64-bit range";
        return false;
      }
      *out = Value::Integer(v);
      return true;
    }
    case ResourceType::kUnsignedInteger: {
      uint64_t v;
      if (!number.ToUint64(&v)) {
        *why = "is not an unsigned integer in the 64-bit range";
        return false;
      }
      *out = Value::Unsigned(v);
      return true;
    }
    case ResourceType::kTime: {
      int64_t v;
      if (!number.ToInt64(&v)) {
        *why = "is not a whole number of seconds";
        return false;
      }
      *out = Value::Time(v);
      return true;
    }
    case ResourceType::kFloat:
      *out = Value::Float(number.AsDouble());
      return true;
    default:
      *why = "is a number";
      return false;
  }
}

Value NumberAsReceived(const Number& number) {
  switch (number.kind) {
    case Number::Kind::kInt:
      return Value::Integer(number.i);
    case Number::Kind::kUint:
      return Value::Unsigned(number.u);
    case Number::Kind::kDouble:
      return Value::Float(number.d);
  }
  return Value();
}

void AppendDouble(std::string* out, double value, bool json_float) {
  char buffer[40];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  const std::string_view text(buffer, error == std::errc() ? end - buffer : 0);
  out->append(text);
  if (json_float && std::isfinite(value) && text.find_first_of(".e") == std::string_view::npos)
    out->append(".0");
}

SenmlLabel SenmlLabelFromText(std::string_view label) {
  static constexpr std::pair<std::string_view, SenmlLabel> kLabels[] = {
      {"bver", SenmlLabel::kBver}, {"bn", SenmlLabel::kBn}, {"bt", SenmlLabel::kBt},
      {"bu", SenmlLabel::kBu},     {"bv", SenmlLabel::kBv}, {"bs", SenmlLabel::kBs},
      {"n", SenmlLabel::kN},       {"u", SenmlLabel::kU},   {"v", SenmlLabel::kV},
      {"vs", SenmlLabel::kVs},     {"vb", SenmlLabel::kVb}, {"s", SenmlLabel::kS},
      {"t", SenmlLabel::kT},       {"ut", SenmlLabel::kUt}, {"vd", SenmlLabel::kVd},
      {"vlo", SenmlLabel::kVlo},
  };
  for (const auto& [name, value] : kLabels)
    if (name == label) return value;
  if (!label.empty() && label.back() == '_') return SenmlLabel::kMustUnderstand;
  return SenmlLabel::kUnknown;
}

SenmlLabel SenmlLabelFromInt(int64_t label) {
  // RFC 8428 Table 4.
  switch (label) {
    case -1:
      return SenmlLabel::kBver;
    case -2:
      return SenmlLabel::kBn;
    case -3:
      return SenmlLabel::kBt;
    case -4:
      return SenmlLabel::kBu;
    case -5:
      return SenmlLabel::kBv;
    case -6:
      return SenmlLabel::kBs;
    case 0:
      return SenmlLabel::kN;
    case 1:
      return SenmlLabel::kU;
    case 2:
      return SenmlLabel::kV;
    case 3:
      return SenmlLabel::kVs;
    case 4:
      return SenmlLabel::kVb;
    case 5:
      return SenmlLabel::kS;
    case 6:
      return SenmlLabel::kT;
    case 7:
      return SenmlLabel::kUt;
    case 8:
      return SenmlLabel::kVd;
    default:
      return SenmlLabel::kUnknown;
  }
}

std::string_view SenmlLabelName(SenmlLabel label) {
  static constexpr std::string_view kNames[] = {"bver", "bn", "bt", "bu", "bv", "bs", "n",  "u",
                                                "v",    "vs", "vb", "s",  "t",  "ut", "vd", "vlo"};
  const int index = static_cast<int>(label);
  return index < kSenmlLabelCount ? kNames[index] : "?";
}

void SenmlFields::SetText(SenmlLabel label, std::string_view value) {
  switch (label) {
    case SenmlLabel::kBn:
      bn = value;
      break;
    case SenmlLabel::kN:
      n = value;
      break;
    case SenmlLabel::kVs:
      ++value_fields;
      kind = SenmlRecord::Kind::kString;
      text = value;
      break;
    case SenmlLabel::kVlo:
      ++value_fields;
      kind = SenmlRecord::Kind::kObjlnk;
      text = value;
      break;
    case SenmlLabel::kVd:
      ++value_fields;
      kind = SenmlRecord::Kind::kData;
      text = value;
      break;
    default:  // bu, u
      break;
  }
}

void SenmlFields::SetNumber(SenmlLabel label, const Number& value) {
  switch (label) {
    case SenmlLabel::kBver:
      bver = value;
      break;
    case SenmlLabel::kBt:
      bt = value;
      break;
    case SenmlLabel::kBv:
      bv = value;
      break;
    case SenmlLabel::kT:
      t = value;
      break;
    case SenmlLabel::kV:
      ++value_fields;
      kind = SenmlRecord::Kind::kNumber;
      number = value;
      break;
    default:  // bs, s, ut
      break;
  }
}

void SenmlFields::SetBoolean(bool value) {
  ++value_fields;
  kind = SenmlRecord::Kind::kBoolean;
  boolean = value;
}

absl::Status ResolveSenmlFields(std::string_view format, size_t index, const SenmlFields& fields,
                                SenmlBase* base, SenmlRecord* out) {
  if (fields.bver.has_value()) {
    // RFC 8428 §4.4: a version above the one implemented (10) must be refused.
    int64_t version;
    if (!fields.bver->ToInt64(&version) || version < 1 || version > 10) {
      return Invalid(format, absl::StrFormat("record %u: version %g is not supported (10 is)",
                                             index, fields.bver->AsDouble()));
    }
  }
  if (fields.value_fields > 1)
    return Invalid(format, absl::StrFormat("record %u: more than one value field", index));
  if (fields.bn.has_value()) base->name = *fields.bn;
  if (fields.bt.has_value()) base->time = fields.bt->AsDouble();
  if (fields.bv.has_value()) base->value = *fields.bv;

  out->base_name = base->name;
  out->name = fields.n.value_or(std::string_view());
  out->kind = fields.kind;
  out->text = fields.text;
  out->boolean = fields.boolean;
  out->number = fields.number;
  if (fields.kind == SenmlRecord::Kind::kNumber && base->value.has_value())
    out->number = fields.number.Plus(*base->value);
  if (fields.t.has_value()) {
    out->time = base->time.has_value() ? *base->time + fields.t->AsDouble() : fields.t->AsDouble();
  } else {
    out->time = base->time;
  }
  if (out->time.has_value() && !std::isfinite(*out->time))
    return Invalid(format, absl::StrFormat("record %u: time is not finite", index));
  return absl::OkStatus();
}

namespace {

absl::Status FillSenmlRecord(const DecodeContext& context, size_t index, const SenmlRecord& record,
                             bool opaque_in_string, Record* out) {
  using Kind = SenmlRecord::Kind;
  Path& path = out->path;
  if (!ParsePathText(record.base_name, record.name, &path)) {
    return Invalid(context.format, absl::StrFormat("record %u: name \"%s%s\" is not an LwM2M path",
                                                   index, record.base_name, record.name));
  }
  if (absl::Status status = CheckRecordPath(context, index, path); !status.ok()) return status;
  if (record.kind == Kind::kNone) {
    return Invalid(context.format,
                   absl::StrFormat("record %u (%s): no value", index, path.ToString()));
  }
  ResourceType type;
  bool known;
  if (absl::Status status = ResolveType(context, path, &type, &known); !status.ok()) {
    return status;
  }

  Value& value = out->value;
  auto mismatch = [&](std::string_view wanted) {
    return Invalid(
        context.format,
        absl::StrFormat("record %u (%s): %s resource needs %s, got %s", index, path.ToString(),
                        ResourceTypeName(type), wanted, KindField(record.kind, opaque_in_string)));
  };
  auto bad_objlnk = [&]() {
    return Invalid(
        context.format,
        absl::StrFormat("record %u (%s): %s \"%s\" is not an object link", index, path.ToString(),
                        KindField(record.kind, opaque_in_string), record.text));
  };
  if (!known) {
    switch (record.kind) {
      case Kind::kNumber:
        value = NumberAsReceived(record.number);
        break;
      case Kind::kString:
        value = Value::String(record.text);
        break;
      case Kind::kBoolean:
        value = Value::Boolean(record.boolean);
        break;
      case Kind::kData:
        value = Value::Opaque(record.text);
        break;
      case Kind::kObjlnk: {
        Objlnk link;
        if (!ParseObjlnk(record.text, &link)) return bad_objlnk();
        value = Value::Link(link);
        break;
      }
      case Kind::kNone:
        break;
    }
  } else {
    switch (type) {
      case ResourceType::kNone:
        return Invalid(context.format,
                       absl::StrFormat("record %u (%s): resource is executable and has no value",
                                       index, path.ToString()));
      case ResourceType::kString:
      case ResourceType::kCorelnk:
        if (record.kind != Kind::kString)
          return mismatch(KindField(Kind::kString, opaque_in_string));
        value.type = type;
        value.bytes = record.text;
        break;
      case ResourceType::kOpaque:
        if (opaque_in_string) {
          // TS 1.0.2 §6.4.4: opaque values travel base64-encoded in "sv".
          if (record.kind != Kind::kString) return mismatch("'sv'");
          std::string_view bytes;
          if (!Base64Decode(record.text, context.out, &bytes)) {
            return Invalid(context.format, absl::StrFormat("record %u (%s): 'sv' is not base64",
                                                           index, path.ToString()));
          }
          value = Value::Opaque(bytes);
        } else {
          if (record.kind != Kind::kData) return mismatch("'vd'");
          value = Value::Opaque(record.text);
        }
        break;
      case ResourceType::kInteger:
      case ResourceType::kUnsignedInteger:
      case ResourceType::kFloat:
      case ResourceType::kTime: {
        if (record.kind != Kind::kNumber) return mismatch("'v'");
        std::string_view why;
        if (!NumberToValue(record.number, type, &value, &why)) {
          return Invalid(context.format,
                         absl::StrFormat("record %u (%s): 'v' %.17g %s", index, path.ToString(),
                                         record.number.AsDouble(), why));
        }
        break;
      }
      case ResourceType::kBoolean:
        if (record.kind != Kind::kBoolean)
          return mismatch(KindField(Kind::kBoolean, opaque_in_string));
        value = Value::Boolean(record.boolean);
        break;
      case ResourceType::kObjlnk: {
        if (record.kind != Kind::kObjlnk)
          return mismatch(KindField(Kind::kObjlnk, opaque_in_string));
        Objlnk link;
        if (!ParseObjlnk(record.text, &link)) return bad_objlnk();
        value = Value::Link(link);
        break;
      }
    }
  }
  out->timestamp = record.time;
  return absl::OkStatus();
}

}  // namespace

absl::Status AppendSenmlRecord(const DecodeContext& context, size_t index,
                               const SenmlRecord& record, bool opaque_in_string) {
  // Built in place: a Path copied through the stack costs more than the rest of a record.
  std::vector<Record>& records = context.out->records;
  Record& out = records.emplace_back();
  absl::Status status = FillSenmlRecord(context, index, record, opaque_in_string, &out);
  if (!status.ok()) records.pop_back();
  return status;
}

void SenmlNaming::AppendName(std::string* out, const Path& path) const {
  if (!has_base) {
    AppendPath(out, path, false);
  } else {
    AppendRelativePath(out, base, path);
  }
}

absl::Status PlanSenmlNaming(std::string_view format, const Path& request,
                             std::span<const Record> records, EncodeOptions options,
                             bool allow_none, SenmlNaming* naming) {
  for (const Record& record : records) {
    // Core TS 1.1 §6.3.1.1: a Read-Composite or Observe-Composite body may name whole objects
    // and instances; records with values always name resources.
    const bool names_only = options.composite && record.value.type == ResourceType::kNone;
    if (record.path.depth() < 3 && !names_only) {
      return Invalid(format, absl::StrFormat("%s names no resource", record.path.ToString()));
    }
    if (!options.composite && !request.Contains(record.path)) {
      return Invalid(format, absl::StrFormat("%s is outside the request path %s",
                                             record.path.ToString(), request.ToString()));
    }
    if (record.value.type == ResourceType::kNone && !allow_none) {
      return Invalid(format, absl::StrFormat("%s: a record needs a value", record.path.ToString()));
    }
    if ((record.value.type == ResourceType::kString ||
         record.value.type == ResourceType::kCorelnk) &&
        !IsUtf8(record.value.bytes)) {
      return Invalid(format,
                     absl::StrFormat("%s: string is not valid UTF-8", record.path.ToString()));
    }
    if (record.timestamp.has_value() && !std::isfinite(*record.timestamp)) {
      return Invalid(format,
                     absl::StrFormat("%s: timestamp is not finite", record.path.ToString()));
    }
  }
  naming->base_name.clear();
  naming->has_base = false;
  if (options.composite) return absl::OkStatus();
  naming->has_base = true;
  naming->base = request;
  const bool single_on_request = records.size() == 1 && records[0].path == request;
  AppendPath(&naming->base_name, request, !single_on_request);
  return absl::OkStatus();
}

absl::Status CheckSingleRecord(std::string_view format, const Path& request,
                               std::span<const Record> records) {
  if (request.depth() < 3) {
    return Invalid(format, absl::StrFormat("%s is not a resource; a single value needs a "
                                           "resource or resource instance path",
                                           request.ToString()));
  }
  if (records.size() != 1) {
    return Invalid(format, absl::StrFormat("exactly one record is needed, got %u", records.size()));
  }
  if (records[0].path != request) {
    return Invalid(format, absl::StrFormat("record path %s differs from the request path %s",
                                           records[0].path.ToString(), request.ToString()));
  }
  return absl::OkStatus();
}

}  // namespace lwm2md::lwm2m::content_format_internal
