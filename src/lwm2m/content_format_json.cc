#include "lwm2m/content_format_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace {

constexpr int kMaxJsonDepth = 32;

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  if (i < n && text[i] == '-') ++i;
  if (i >= n || !IsDigit(text[i])) return false;
  if (text[i] == '0') {
    ++i;
  } else {
    while (i < n && IsDigit(text[i])) ++i;
  }
  if (i < n && text[i] == '.') {
    ++i;
    if (i >= n || !IsDigit(text[i])) return false;
    while (i < n && IsDigit(text[i])) ++i;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (i >= n || !IsDigit(text[i])) return false;
    while (i < n && IsDigit(text[i])) ++i;
  }
  return i == n;
}

struct ThreadJson {
  json::parser parser;
  std::string padded;
};

ThreadJson& ThisThreadJson() {
  // Per thread so that a shard decodes without locks and, once warm, without allocating.
  thread_local ThreadJson state;
  return state;
}

}  // namespace

simdjson::error_code JsonInput::Start(std::span<const uint8_t> payload, json::document* doc) {
  ThreadJson& state = ThisThreadJson();
  payload_ = payload;
  state.padded.resize(payload.size() + simdjson::SIMDJSON_PADDING);
  if (!payload.empty()) std::memcpy(state.padded.data(), payload.data(), payload.size());
  // Spaces rather than zeros: the on-demand root checks peek at the first padding byte.
  std::memset(state.padded.data() + payload.size(), ' ', simdjson::SIMDJSON_PADDING);
  padded_ = state.padded.data();
  return state.parser.iterate(state.padded.data(), payload.size(), state.padded.size()).get(*doc);
}

simdjson::error_code JsonInput::GetString(json::value& value, std::string_view* out,
                                          bool* in_payload) const {
  const std::string_view raw = value.raw_json_token();
  std::string_view text;
  if (simdjson::error_code error = value.get_string().get(text)) return error;
  // raw starts at the opening quote. With no backslash before the closing quote the wire bytes
  // are the string itself.
  const char* start = raw.data() + 1;
  const size_t offset = static_cast<size_t>(start - padded_);
  if (raw.size() >= text.size() + 2 && offset + text.size() <= payload_.size() &&
      start[text.size()] == '"' && std::memchr(start, '\\', text.size()) == nullptr) {
    *out = std::string_view(reinterpret_cast<const char*>(payload_.data()) + offset, text.size());
    *in_payload = true;
  } else {
    *out = text;
    *in_payload = false;
  }
  return simdjson::SUCCESS;
}

simdjson::error_code JsonInput::GetNumber(json::value& value, Number* out) const {
  std::string_view raw = value.raw_json_token();
  while (!raw.empty() && IsJsonSpace(raw.back())) raw.remove_suffix(1);
  json::number number;
  const simdjson::error_code error = value.get_number().get(number);
  if (error == simdjson::SUCCESS) {
    if (number.get_number_type() == json::number_type::signed_integer) {
      *out = Number::Int(number.get_int64());
      return simdjson::SUCCESS;
    }
    if (number.get_number_type() == json::number_type::unsigned_integer) {
      *out = Number::Uint(number.get_uint64());
      return simdjson::SUCCESS;
    }
  } else if (error != simdjson::NUMBER_ERROR) {
    return error;
  }
  // simdjson 3.0.1 returns 0 for a float with more than 19 integer digits
  // ("18446744073709551616.0") and refuses integers beyond 64 bits, which JSON allows: floats
  // and such integers are read from the token with std::from_chars (correctly rounded).
  if (!IsJsonNumber(raw)) return simdjson::NUMBER_ERROR;
  double d;
  const auto [end, parse_error] = std::from_chars(raw.data(), raw.data() + raw.size(), d);
  if (parse_error != std::errc() || end != raw.data() + raw.size() || !std::isfinite(d))
    return simdjson::NUMBER_ERROR;
  *out = Number::Double(d);
  return simdjson::SUCCESS;
}

size_t JsonInput::ErrorOffset(json::document& doc) const {
  const char* location = nullptr;
  if (doc.current_location().get(location) != simdjson::SUCCESS || location == nullptr)
    return payload_.size();
  return std::min(static_cast<size_t>(location - padded_), payload_.size());
}

absl::Status JsonInput::Malformed(std::string_view format, json::document& doc,
                                  simdjson::error_code error) const {
  return Invalid(format, absl::StrFormat("malformed JSON near byte %u (%s)", ErrorOffset(doc),
                                         simdjson::error_message(error)));
}

absl::Status JsonInput::NotStarted(std::string_view format, simdjson::error_code error) const {
  return Invalid(format, absl::StrFormat("malformed JSON (%s)", simdjson::error_message(error)));
}

absl::Status JsonInput::CheckEnd(std::string_view format, json::document& doc) const {
  const char* location = nullptr;
  const simdjson::error_code error = doc.current_location().get(location);
  if (error == simdjson::OUT_OF_BOUNDS) return absl::OkStatus();
  if (error != simdjson::SUCCESS) return Malformed(format, doc, error);
  return Invalid(format, absl::StrFormat("trailing content at byte %u",
                                         static_cast<size_t>(location - padded_)));
}

simdjson::error_code ConsumeValue(json::value& value, int depth) {
  json::json_type type;
  if (simdjson::error_code error = value.type().get(type)) return error;
  switch (type) {
    case json::json_type::array: {
      if (depth >= kMaxJsonDepth) return simdjson::DEPTH_ERROR;
      json::array array;
      if (simdjson::error_code error = value.get_array().get(array)) return error;
      for (auto element : array) {
        json::value child;
        if (simdjson::error_code error = std::move(element).get(child)) return error;
        if (simdjson::error_code error = ConsumeValue(child, depth + 1)) return error;
      }
      return simdjson::SUCCESS;
    }
    case json::json_type::object: {
      if (depth >= kMaxJsonDepth) return simdjson::DEPTH_ERROR;
      json::object object;
      if (simdjson::error_code error = value.get_object().get(object)) return error;
      for (auto member : object) {
        json::field field;
        if (simdjson::error_code error = std::move(member).get(field)) return error;
        std::string_view key;
        if (simdjson::error_code error = field.unescaped_key().get(key)) return error;
        if (simdjson::error_code error = ConsumeValue(field.value(), depth + 1)) return error;
      }
      return simdjson::SUCCESS;
    }
    case json::json_type::number: {
      std::string_view raw = value.raw_json_token();
      while (!raw.empty() && IsJsonSpace(raw.back())) raw.remove_suffix(1);
      json::number number;
      const simdjson::error_code error = value.get_number().get(number);
      // Integers beyond 64 bits and huge exponents are valid JSON that simdjson refuses.
      return error == simdjson::NUMBER_ERROR && IsJsonNumber(raw) ? simdjson::SUCCESS : error;
    }
    case json::json_type::string: {
      std::string_view text;
      return value.get_string().get(text);
    }
    case json::json_type::boolean: {
      bool b;
      return value.get_bool().get(b);
    }
    case json::json_type::null: {
      bool is_null;
      if (simdjson::error_code error = value.is_null().get(is_null)) return error;
      return is_null ? simdjson::SUCCESS : simdjson::INCORRECT_TYPE;
    }
  }
  return simdjson::INCORRECT_TYPE;
}

absl::Status WriteJsonRecordMembers(std::string_view format, const JsonRecordKeys& keys,
                                    const SenmlNaming& naming, const Record& record,
                                    base::JsonWriter* writer, std::string* scratch) {
  const Value& value = record.value;
  scratch->clear();
  naming.AppendName(scratch, record.path);
  if (!scratch->empty()) writer->Key("n").String(*scratch);
  switch (value.type) {
    case ResourceType::kNone:
      break;
    case ResourceType::kString:
    case ResourceType::kCorelnk:
      writer->Key(keys.string).String(value.bytes);
      break;
    case ResourceType::kOpaque:
      scratch->clear();
      AppendBase64(scratch, value.bytes, keys.opaque_url_safe);
      writer->Key(keys.opaque).String(*scratch);
      break;
    case ResourceType::kInteger:
      writer->Key("v").Int(value.integer);
      break;
    case ResourceType::kUnsignedInteger:
      writer->Key("v").Uint(value.unsigned_integer);
      break;
    case ResourceType::kTime:
      writer->Key("v").Int(value.time);
      break;
    case ResourceType::kFloat:
      if (!std::isfinite(value.floating)) {
        return Invalid(format, absl::StrFormat("%s: %g has no JSON form", record.path.ToString(),
                                               value.floating));
      }
      scratch->clear();
      AppendDouble(scratch, value.floating, true);
      writer->Key("v").Raw(*scratch);
      break;
    case ResourceType::kBoolean:
      writer->Key(keys.boolean).Bool(value.boolean);
      break;
    case ResourceType::kObjlnk:
      scratch->clear();
      AppendObjlnk(scratch, value.link);
      writer->Key(keys.objlnk).String(*scratch);
      break;
  }
  if (record.timestamp.has_value()) {
    scratch->clear();
    AppendDouble(scratch, *record.timestamp, false);
    writer->Key("t").Raw(*scratch);
  }
  return absl::OkStatus();
}

}  // namespace lwm2md::lwm2m::content_format_internal
