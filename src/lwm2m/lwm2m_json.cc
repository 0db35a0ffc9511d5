// OMA LwM2M JSON (application/vnd.oma.lwm2m+json, 11543; TS 1.0.2 §6.4.4, kept in TS 1.1
// §7.4.4): {"bn": base name, "bt": base time, "e": [entries]}, each entry with "n" (relative
// to bn), one of "v" (numbers and time), "sv" (strings, and opaque values base64-encoded),
// "bv" (boolean), "ov" (objlnk "oid:iid"), and optionally "t" (added to bt).
//
// The root's members may come in any order ("e" before "bn" included), so entries are
// collected first and named once the root is read. Unknown members are validated and ignored;
// duplicates, entries with no or several values, and trailing content are refused.

#include <cmath>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/json_writer.h"
#include "lwm2m/content_format_internal.h"
#include "lwm2m/content_format_json.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace {

constexpr std::string_view kJson = "json";

// TS 1.0.2 §6.4.4: opaque values base64-encoded in "sv", standard alphabet.
constexpr JsonRecordKeys kJsonKeys = {
    .string = "sv", .opaque = "sv", .opaque_url_safe = false, .boolean = "bv", .objlnk = "ov"};

struct Entry {
  SenmlRecord record;
  int value_fields = 0;
};

absl::Status ReadEntry(const DecodeContext& context, const JsonInput& input, size_t index,
                       json::object& object, Entry* entry) {
  uint32_t seen = 0;
  for (auto member : object) {
    json::field field;
    std::string_view key;
    if (std::move(member).get(field) != simdjson::SUCCESS ||
        field.unescaped_key().get(key) != simdjson::SUCCESS) {
      return Invalid(kJson, absl::StrFormat("record %u: malformed member", index));
    }
    static constexpr std::string_view kKeys[] = {"n", "v", "sv", "bv", "ov", "t"};
    int which = -1;
    for (int k = 0; k < 6; ++k)
      if (key == kKeys[k]) which = k;
    json::value& value = field.value();
    if (which < 0) {
      if (ConsumeValue(value) != simdjson::SUCCESS)
        return Invalid(kJson, absl::StrFormat("record %u: member \"%s\" is malformed", index, key));
      continue;
    }
    if (seen & (1u << which))
      return Invalid(kJson, absl::StrFormat("record %u: duplicate '%s'", index, key));
    seen |= 1u << which;
    auto wrong = [&](std::string_view what) {
      return Invalid(kJson, absl::StrFormat("record %u: '%s' is not %s", index, key, what));
    };
    json::json_type type;
    if (value.type().get(type) != simdjson::SUCCESS) return wrong("valid JSON");
    SenmlRecord& record = entry->record;
    switch (which) {
      case 0:    // n
      case 2:    // sv
      case 4: {  // ov
        if (type != json::json_type::string) return wrong("a string");
        std::string_view text;
        bool in_payload;
        if (input.GetString(value, &text, &in_payload) != simdjson::SUCCESS)
          return wrong("a valid string");
        if (which == 0) {
          record.name = text;  // parsed before the decode ends
        } else {
          ++entry->value_fields;
          record.kind = which == 2 ? SenmlRecord::Kind::kString : SenmlRecord::Kind::kObjlnk;
          record.text = in_payload || which == 4 ? text : context.out->Own(text);
        }
        break;
      }
      case 3:  // bv
        if (type != json::json_type::boolean) return wrong("a boolean");
        if (value.get_bool().get(record.boolean) != simdjson::SUCCESS) return wrong("a boolean");
        ++entry->value_fields;
        record.kind = SenmlRecord::Kind::kBoolean;
        break;
      default: {  // v, t
        if (type != json::json_type::number) return wrong("a number");
        Number number;
        if (input.GetNumber(value, &number) != simdjson::SUCCESS) return wrong("a valid number");
        if (which == 1) {
          ++entry->value_fields;
          record.kind = SenmlRecord::Kind::kNumber;
          record.number = number;
        } else {
          record.time = number.AsDouble();
        }
        break;
      }
    }
  }
  if (entry->value_fields > 1)
    return Invalid(kJson, absl::StrFormat("record %u: more than one value field", index));
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeLwm2mJson(const DecodeContext& context) {
  context.out->ReserveStorage(context.payload.size());
  JsonInput input;
  json::document doc;
  if (simdjson::error_code error = input.Start(context.payload, &doc))
    return input.NotStarted(kJson, error);
  json::object root;
  if (simdjson::error_code error = doc.get_object().get(root)) {
    if (error == simdjson::INCORRECT_TYPE)
      return Invalid(kJson, "the payload is not a JSON object");
    return input.Malformed(kJson, doc, error);
  }
  std::string_view base_name;
  std::optional<double> base_time;
  bool seen_bn = false, seen_bt = false, seen_e = false;
  std::vector<Entry> entries;
  for (auto member : root) {
    json::field field;
    if (simdjson::error_code error = std::move(member).get(field))
      return input.Malformed(kJson, doc, error);
    std::string_view key;
    if (simdjson::error_code error = field.unescaped_key().get(key))
      return input.Malformed(kJson, doc, error);
    json::value& value = field.value();
    json::json_type type = json::json_type::null;
    if (key == "bn" || key == "bt" || key == "e") {
      bool& seen = key == "bn" ? seen_bn : key == "bt" ? seen_bt : seen_e;
      if (seen) return Invalid(kJson, absl::StrFormat("duplicate '%s'", key));
      seen = true;
      if (simdjson::error_code error = value.type().get(type))
        return input.Malformed(kJson, doc, error);
    }
    if (key == "bn") {
      bool in_payload;
      if (type != json::json_type::string ||
          input.GetString(value, &base_name, &in_payload) != simdjson::SUCCESS) {
        return Invalid(kJson, "'bn' is not a string");
      }
    } else if (key == "bt") {
      Number number;
      if (type != json::json_type::number || input.GetNumber(value, &number) != simdjson::SUCCESS) {
        return Invalid(kJson, "'bt' is not a number");
      }
      base_time = number.AsDouble();
    } else if (key == "e") {
      json::array array;
      if (type != json::json_type::array || value.get_array().get(array) != simdjson::SUCCESS)
        return Invalid(kJson, "'e' is not an array");
      for (auto element : array) {
        const size_t index = entries.size();
        json::object object;
        if (simdjson::error_code error = element.get_object().get(object)) {
          if (error == simdjson::INCORRECT_TYPE)
            return Invalid(kJson, absl::StrFormat("record %u is not an object", index));
          return input.Malformed(kJson, doc, error);
        }
        Entry& entry = entries.emplace_back();
        if (absl::Status status = ReadEntry(context, input, index, object, &entry); !status.ok())
          return status;
      }
    } else if (simdjson::error_code error = ConsumeValue(value)) {
      return input.Malformed(kJson, doc, error);
    }
  }
  if (absl::Status status = input.CheckEnd(kJson, doc); !status.ok()) return status;
  if (!seen_e) return Invalid(kJson, "no 'e' array");

  context.out->records.reserve(entries.size());
  for (size_t index = 0; index < entries.size(); ++index) {
    SenmlRecord& record = entries[index].record;
    record.base_name = base_name;
    if (record.time.has_value()) {
      if (base_time.has_value()) *record.time += *base_time;
    } else {
      record.time = base_time;
    }
    if (record.time.has_value() && !std::isfinite(*record.time))
      return Invalid(kJson, absl::StrFormat("record %u: time is not finite", index));
    if (absl::Status status = AppendSenmlRecord(context, index, record, true); !status.ok())
      return status;
  }
  return absl::OkStatus();
}

absl::Status EncodeLwm2mJson(const Path& request, std::span<const Record> records,
                             EncodeOptions options, std::string* out) {
  SenmlNaming naming;
  if (absl::Status status = PlanSenmlNaming(kJson, request, records, options, false, &naming);
      !status.ok()) {
    return status;
  }
  base::JsonWriter writer;
  writer.BeginObject();
  if (!naming.base_name.empty()) writer.Key("bn").String(naming.base_name);
  writer.Key("e").BeginArray();
  std::string scratch;
  for (const Record& record : records) {
    writer.BeginObject();
    if (absl::Status status =
            WriteJsonRecordMembers(kJson, kJsonKeys, naming, record, &writer, &scratch);
        !status.ok()) {
      return status;
    }
    writer.EndObject();
  }
  writer.EndArray().EndObject();
  *out = writer.Take();
  return absl::OkStatus();
}

}  // namespace lwm2md::lwm2m::content_format_internal
