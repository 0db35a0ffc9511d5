// SenML CBOR (112; RFC 8428 §6, TS 1.1 §7.4.6): an array of maps keyed by the integer labels of
// RFC 8428 Table 4, plus the text label "vlo" for LwM2M object links (TS 1.1 §7.4.5). Strings
// and "vd" byte strings stay views into the payload, so a decode allocates only the records.
//
// Accepted beyond the minimum: indefinite-length arrays and maps, text labels for the
// registered fields ("bn", "v", ... as in JSON), unknown labels (skipped, RFC 8428 §4.4), an
// integer where a float is expected and vice versa when the value is exact. Refused: tags,
// indefinite-length strings, duplicate labels, must-understand labels (text ending in '_'),
// more than one value field, trailing bytes.

#include <cmath>

#include "absl/strings/str_format.h"
#include "lwm2m/cbor.h"
#include "lwm2m/content_format_internal.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace {

constexpr std::string_view kSenmlCbor = "senml-cbor";

absl::Status ReaderError(const cbor::Reader& reader) {
  return Invalid(kSenmlCbor, reader.ErrorMessage());
}

// Reads one label and its value into fields.
absl::Status ReadField(cbor::Reader& reader, size_t index, SenmlFields* fields) {
  cbor::Item key;
  if (!reader.Read(&key)) return ReaderError(reader);
  SenmlLabel label;
  switch (key.kind) {
    case cbor::Kind::kUnsigned:
      label = key.argument <= 8 ? SenmlLabelFromInt(static_cast<int64_t>(key.argument))
                                : SenmlLabel::kUnknown;
      break;
    case cbor::Kind::kNegative:
      label = key.argument <= 5 ? SenmlLabelFromInt(-1 - static_cast<int64_t>(key.argument))
                                : SenmlLabel::kUnknown;
      break;
    case cbor::Kind::kText:
      label = SenmlLabelFromText(key.text());
      break;
    default:
      return Invalid(kSenmlCbor,
                     absl::StrFormat("record %u: label at byte %u is neither an integer nor a "
                                     "text string",
                                     index, key.offset));
  }
  if (label == SenmlLabel::kMustUnderstand) {
    return Invalid(kSenmlCbor, absl::StrFormat("record %u: must-understand label \"%s\" is not "
                                               "supported",
                                               index, key.text()));
  }
  if (label == SenmlLabel::kUnknown) {
    if (!reader.Skip()) return ReaderError(reader);
    return absl::OkStatus();
  }
  if (!fields->Mark(label)) {
    return Invalid(kSenmlCbor,
                   absl::StrFormat("record %u: duplicate '%s'", index, SenmlLabelName(label)));
  }
  cbor::Item value;
  if (!reader.Read(&value)) return ReaderError(reader);
  auto wrong = [&](std::string_view what) {
    return Invalid(kSenmlCbor, absl::StrFormat("record %u: '%s' at byte %u is not %s", index,
                                               SenmlLabelName(label), value.offset, what));
  };
  switch (label) {
    case SenmlLabel::kBn:
    case SenmlLabel::kN:
    case SenmlLabel::kBu:
    case SenmlLabel::kU:
    case SenmlLabel::kVs:
    case SenmlLabel::kVlo:
      if (value.kind != cbor::Kind::kText) return wrong("a text string");
      fields->SetText(label, value.text());
      return absl::OkStatus();
    case SenmlLabel::kVd:
      if (value.kind != cbor::Kind::kBytes) return wrong("a byte string");
      fields->SetText(label, value.text());
      return absl::OkStatus();
    case SenmlLabel::kVb:
      if (!value.is_true() && !value.is_false()) return wrong("a boolean");
      fields->SetBoolean(value.is_true());
      return absl::OkStatus();
    default: {
      // bver, bt, bv, bs, v, s, t, ut: numbers.
      Number number;
      if (!CborItemNumber(value, &number)) return wrong("a number");
      fields->SetNumber(label, number);
      return absl::OkStatus();
    }
  }
}

}  // namespace

absl::Status DecodeSenmlCbor(const DecodeContext& context) {
  cbor::Reader reader(context.payload);
  cbor::Item top;
  if (!reader.Read(&top)) return ReaderError(reader);
  if (top.kind != cbor::Kind::kArray)
    return Invalid(kSenmlCbor, "the payload is not a CBOR array of records");
  if (!top.indefinite) {
    // Each record takes at least three bytes; a hostile count must not size the vector.
    context.out->records.reserve(
        static_cast<size_t>(std::min<uint64_t>(top.argument, context.payload.size() / 3)));
  }
  SenmlBase base;
  SenmlFields fields;
  SenmlRecord record;
  for (size_t index = 0;; ++index) {
    if (top.indefinite ? reader.ConsumeBreak() : index == top.argument) break;
    cbor::Item map;
    if (!reader.Read(&map)) return ReaderError(reader);
    if (map.kind != cbor::Kind::kMap) {
      if (map.kind == cbor::Kind::kBreak) {
        return Invalid(kSenmlCbor, absl::StrFormat("unexpected break at byte %u", map.offset));
      }
      return Invalid(kSenmlCbor,
                     absl::StrFormat("record %u at byte %u is not a map", index, map.offset));
    }
    fields.Reset();
    for (uint64_t pair = 0;; ++pair) {
      if (map.indefinite ? reader.ConsumeBreak() : pair == map.argument) break;
      if (absl::Status status = ReadField(reader, index, &fields); !status.ok()) return status;
    }
    if (absl::Status status = ResolveSenmlFields(kSenmlCbor, index, fields, &base, &record);
        !status.ok()) {
      return status;
    }
    if (absl::Status status = AppendSenmlRecord(context, index, record, false); !status.ok())
      return status;
  }
  if (!reader.at_end())
    return Invalid(kSenmlCbor, absl::StrFormat("trailing bytes at byte %u", reader.offset()));
  return absl::OkStatus();
}

absl::Status EncodeSenmlCbor(const Path& request, std::span<const Record> records,
                             EncodeOptions options, std::string* out) {
  SenmlNaming naming;
  if (absl::Status status = PlanSenmlNaming(kSenmlCbor, request, records, options, true, &naming);
      !status.ok()) {
    return status;
  }
  cbor::Writer writer(out);
  writer.Array(records.size());
  std::string name;
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& record = records[i];
    const bool with_base = i == 0 && !naming.base_name.empty();
    name.clear();
    naming.AppendName(&name, record.path);
    const bool with_value = record.value.type != ResourceType::kNone;
    writer.Map(with_base + !name.empty() + with_value + record.timestamp.has_value());
    if (with_base) writer.Int(-2).Text(naming.base_name);
    if (!name.empty()) writer.Int(0).Text(name);
    const Value& value = record.value;
    switch (value.type) {
      case ResourceType::kNone:
        break;
      case ResourceType::kString:
      case ResourceType::kCorelnk:
        writer.Int(3).Text(value.bytes);
        break;
      case ResourceType::kOpaque:
        writer.Int(8).Bytes(value.bytes);
        break;
      case ResourceType::kInteger:
        writer.Int(2).Int(value.integer);
        break;
      case ResourceType::kUnsignedInteger:
        writer.Int(2).Unsigned(value.unsigned_integer);
        break;
      case ResourceType::kFloat:
        writer.Int(2).Float(value.floating);
        break;
      case ResourceType::kTime:
        writer.Int(2).Int(value.time);
        break;
      case ResourceType::kBoolean:
        writer.Int(4).Bool(value.boolean);
        break;
      case ResourceType::kObjlnk: {
        std::string link;
        AppendObjlnk(&link, value.link);
        writer.Text("vlo").Text(link);
        break;
      }
    }
    if (record.timestamp.has_value()) {
      const double t = *record.timestamp;
      writer.Int(6);
      if (std::trunc(t) == t && std::fabs(t) < 9007199254740992.0) {
        writer.Int(static_cast<int64_t>(t));
      } else {
        writer.Float(t);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace lwm2md::lwm2m::content_format_internal
