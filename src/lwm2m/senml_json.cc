// SenML JSON (110; RFC 8428 §5, TS 1.1 §7.4.5): an array of records, names resolved against
// the base name, "vlo" for LwM2M object links, "vd" base64url for opaque values.
//
// Accepted beyond the minimum: unknown fields (validated, then ignored, RFC 8428 §4.4), "vd"
// in either base64 alphabet with or without padding, an integral float for an integer resource.
// Refused: duplicate fields, must-understand fields (ending in '_'), more than one value field,
// bver above 10, a record without a value, trailing content.

#include "absl/strings/str_format.h"
#include "base/json_writer.h"
#include "lwm2m/content_format_internal.h"
#include "lwm2m/content_format_json.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace {

constexpr std::string_view kSenmlJson = "senml-json";

// RFC 8428 §4.3: opaque values in "vd", URL-safe alphabet, no padding.
constexpr JsonRecordKeys kSenmlJsonKeys = {
    .string = "vs", .opaque = "vd", .opaque_url_safe = true, .boolean = "vb", .objlnk = "vlo"};

absl::Status ReadField(const DecodeContext& context, const JsonInput& input, size_t index,
                       std::string_view key, json::value& value, SenmlFields* fields) {
  const SenmlLabel label = SenmlLabelFromText(key);
  if (label == SenmlLabel::kMustUnderstand) {
    return Invalid(kSenmlJson, absl::StrFormat("record %u: must-understand field \"%s\" is not "
                                               "supported",
                                               index, key));
  }
  if (label == SenmlLabel::kUnknown) {
    if (simdjson::error_code error = ConsumeValue(value)) {
      return Invalid(kSenmlJson, absl::StrFormat("record %u: field \"%s\": %s", index, key,
                                                 simdjson::error_message(error)));
    }
    return absl::OkStatus();
  }
  if (!fields->Mark(label)) {
    return Invalid(kSenmlJson,
                   absl::StrFormat("record %u: duplicate '%s'", index, SenmlLabelName(label)));
  }
  auto wrong = [&](std::string_view what) {
    return Invalid(kSenmlJson, absl::StrFormat("record %u: '%s' is not %s", index,
                                               SenmlLabelName(label), what));
  };
  json::json_type type;
  if (value.type().get(type) != simdjson::SUCCESS) return wrong("valid JSON");
  switch (label) {
    case SenmlLabel::kBn:
    case SenmlLabel::kN:
    case SenmlLabel::kBu:
    case SenmlLabel::kU:
    case SenmlLabel::kVs:
    case SenmlLabel::kVlo:
    case SenmlLabel::kVd: {
      if (type != json::json_type::string) return wrong("a string");
      std::string_view text;
      bool in_payload;
      if (input.GetString(value, &text, &in_payload) != simdjson::SUCCESS)
        return wrong("a valid string");
      // Names and vlo need only live through this decode (vlo is parsed before it ends); a
      // string value is kept, so one unescaped into the parser's memory is copied.
      if (label == SenmlLabel::kVs && !in_payload) {
        text = context.out->Own(text);
      } else if (label == SenmlLabel::kVd) {
        std::string_view bytes;
        if (!Base64Decode(text, context.out, &bytes)) return wrong("base64");
        text = bytes;
      }
      fields->SetText(label, text);
      return absl::OkStatus();
    }
    case SenmlLabel::kVb: {
      if (type != json::json_type::boolean) return wrong("a boolean");
      bool boolean = false;
      if (value.get_bool().get(boolean) != simdjson::SUCCESS) return wrong("a boolean");
      fields->SetBoolean(boolean);
      return absl::OkStatus();
    }
    default: {
      // bver, bt, bv, bs, v, s, t, ut: numbers.
      if (type != json::json_type::number) return wrong("a number");
      Number number;
      if (input.GetNumber(value, &number) != simdjson::SUCCESS) return wrong("a valid number");
      fields->SetNumber(label, number);
      return absl::OkStatus();
    }
  }
}

}  // namespace

absl::Status DecodeSenmlJson(const DecodeContext& context) {
  context.out->ReserveStorage(context.payload.size());
  JsonInput input;
  json::document doc;
  if (simdjson::error_code error = input.Start(context.payload, &doc))
    return input.NotStarted(kSenmlJson, error);
  json::array array;
  if (simdjson::error_code error = doc.get_array().get(array)) {
    if (error == simdjson::INCORRECT_TYPE)
      return Invalid(kSenmlJson, "the payload is not a JSON array of records");
    return input.Malformed(kSenmlJson, doc, error);
  }
  SenmlBase base;
  SenmlFields fields;
  SenmlRecord record;
  size_t index = 0;
  for (auto element : array) {
    json::object object;
    if (simdjson::error_code error = element.get_object().get(object)) {
      if (error == simdjson::INCORRECT_TYPE)
        return Invalid(kSenmlJson, absl::StrFormat("record %u is not an object", index));
      return input.Malformed(kSenmlJson, doc, error);
    }
    fields.Reset();
    for (auto member : object) {
      json::field field;
      if (simdjson::error_code error = std::move(member).get(field))
        return input.Malformed(kSenmlJson, doc, error);
      std::string_view key;
      if (simdjson::error_code error = field.unescaped_key().get(key))
        return input.Malformed(kSenmlJson, doc, error);
      if (absl::Status status = ReadField(context, input, index, key, field.value(), &fields);
          !status.ok()) {
        return status;
      }
    }
    if (absl::Status status = ResolveSenmlFields(kSenmlJson, index, fields, &base, &record);
        !status.ok()) {
      return status;
    }
    if (absl::Status status = AppendSenmlRecord(context, index, record, false); !status.ok())
      return status;
    ++index;
  }
  return input.CheckEnd(kSenmlJson, doc);
}

absl::Status EncodeSenmlJson(const Path& request, std::span<const Record> records,
                             EncodeOptions options, std::string* out) {
  SenmlNaming naming;
  if (absl::Status status = PlanSenmlNaming(kSenmlJson, request, records, options, true, &naming);
      !status.ok()) {
    return status;
  }
  base::JsonWriter writer;
  writer.BeginArray();
  std::string scratch;
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& record = records[i];
    writer.BeginObject();
    if (i == 0 && !naming.base_name.empty()) writer.Key("bn").String(naming.base_name);
    if (absl::Status status =
            WriteJsonRecordMembers(kSenmlJson, kSenmlJsonKeys, naming, record, &writer, &scratch);
        !status.ok()) {
      return status;
    }
    writer.EndObject();
  }
  writer.EndArray();
  *out = writer.Take();
  return absl::OkStatus();
}

}  // namespace lwm2md::lwm2m::content_format_internal
