// Plain text (0, TS 1.1 §7.4.1) and opaque (42, TS 1.1 §7.4.2): one resource value, no path
// and no type on the wire, so both take the request path and the resource's type.
//
// Plain text per TS Appendix C: integers, unsigned integers and time in decimal (time as
// seconds since the epoch), floats in decimal with an optional exponent, booleans "0"/"1",
// objlnk "oid:iid", strings and core links as UTF-8, opaque base64-encoded (TS 1.1 §7.4.1).
// Refused: whitespace, a leading '+', hexadecimal, inf and nan, and values out of range.

#include <charconv>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "lwm2m/content_format_internal.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace {

// The start of an offending payload for a message, escaped so that binary stays readable.
std::string Quote(std::string_view text) {
  constexpr size_t kMax = 32;
  const std::string_view head = text.substr(0, kMax);
  return absl::StrFormat("\"%s%s\"", absl::CHexEscape(absl::string_view(head.data(), head.size())),
                         text.size() > kMax ? "..." : "");
}

absl::Status NeedResourcePath(std::string_view format, const Path& request) {
  if (request.depth() >= 3) return absl::OkStatus();
  return Invalid(format, absl::StrFormat("%s is not a resource; a single value needs a resource "
                                         "or resource instance path",
                                         request.ToString()));
}

template <typename T>
bool ParseDecimal(std::string_view text, T* out) {
  if (text.empty() || text[0] == '+') return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size();
}

bool ParseFloat(std::string_view text, double* out) {
  if (text.empty() || text[0] == '+') return false;
  const auto [end, error] =
      std::from_chars(text.data(), text.data() + text.size(), *out, std::chars_format::general);
  return error == std::errc() && end == text.data() + text.size() && std::isfinite(*out);
}

}  // namespace

absl::Status DecodeText(const DecodeContext& context) {
  constexpr std::string_view kText = "text";
  const Path& path = context.request;
  if (absl::Status status = NeedResourcePath(kText, path); !status.ok()) return status;
  ResourceType type;
  bool known;
  if (absl::Status status = ResolveType(context, path, &type, &known); !status.ok()) return status;
  const std::string_view text(reinterpret_cast<const char*>(context.payload.data()),
                              context.payload.size());
  auto refuse = [&](std::string_view what) {
    return Invalid(kText, absl::StrFormat("%s: %s is not %s", path.ToString(), Quote(text), what));
  };
  if (!known) type = ResourceType::kString;

  Value value;
  value.type = type;
  switch (type) {
    case ResourceType::kNone:
      return Invalid(
          kText, absl::StrFormat("%s: resource is executable and has no value", path.ToString()));
    case ResourceType::kString:
    case ResourceType::kCorelnk:
      if (!IsUtf8(text)) return refuse("valid UTF-8");
      value.bytes = text;
      break;
    case ResourceType::kInteger:
      if (!ParseDecimal(text, &value.integer)) return refuse("a decimal integer");
      break;
    case ResourceType::kUnsignedInteger:
      if (!ParseDecimal(text, &value.unsigned_integer)) return refuse("a decimal unsigned integer");
      break;
    case ResourceType::kTime:
      if (!ParseDecimal(text, &value.time)) return refuse("a time in decimal seconds");
      break;
    case ResourceType::kFloat:
      if (!ParseFloat(text, &value.floating)) return refuse("a finite decimal float");
      break;
    case ResourceType::kBoolean:
      if (text != "0" && text != "1") return refuse("a boolean (0 or 1)");
      value.boolean = text == "1";
      break;
    case ResourceType::kObjlnk:
      if (!ParseObjlnk(text, &value.link)) return refuse("an object link (oid:iid)");
      break;
    case ResourceType::kOpaque:
      context.out->ReserveStorage(text.size());
      if (!Base64Decode(text, context.out, &value.bytes)) return refuse("base64");
      break;
  }
  context.out->records.push_back(Record{path, value, std::nullopt});
  return absl::OkStatus();
}

absl::Status EncodeText(const Path& request, std::span<const Record> records, std::string* out) {
  constexpr std::string_view kText = "text";
  if (absl::Status status = CheckSingleRecord(kText, request, records); !status.ok()) return status;
  const Value& value = records[0].value;
  switch (value.type) {
    case ResourceType::kNone:
      return Invalid(kText, absl::StrFormat("%s: a record needs a value", request.ToString()));
    case ResourceType::kString:
    case ResourceType::kCorelnk:
      if (!IsUtf8(value.bytes))
        return Invalid(kText, absl::StrFormat("%s: string is not valid UTF-8", request.ToString()));
      out->assign(value.bytes);
      break;
    case ResourceType::kInteger:
      absl::StrAppendFormat(out, "%d", value.integer);
      break;
    case ResourceType::kUnsignedInteger:
      absl::StrAppendFormat(out, "%u", value.unsigned_integer);
      break;
    case ResourceType::kTime:
      absl::StrAppendFormat(out, "%d", value.time);
      break;
    case ResourceType::kFloat:
      if (!std::isfinite(value.floating)) {
        return Invalid(kText, absl::StrFormat("%s: %g has no plain-text form", request.ToString(),
                                              value.floating));
      }
      AppendDouble(out, value.floating, false);
      break;
    case ResourceType::kBoolean:
      out->push_back(value.boolean ? '1' : '0');
      break;
    case ResourceType::kObjlnk:
      AppendObjlnk(out, value.link);
      break;
    case ResourceType::kOpaque:
      AppendBase64(out, value.bytes, false);
      break;
  }
  return absl::OkStatus();
}

absl::Status DecodeOpaque(const DecodeContext& context) {
  constexpr std::string_view kOpaque = "opaque";
  const Path& path = context.request;
  if (absl::Status status = NeedResourcePath(kOpaque, path); !status.ok()) return status;
  ResourceType type;
  bool known;
  if (absl::Status status = ResolveType(context, path, &type, &known); !status.ok()) return status;
  // TS 1.1 §7.4.2: the opaque format is only for opaque resources.
  if (known && type != ResourceType::kOpaque) {
    return Invalid(kOpaque, absl::StrFormat("%s: resource is %s, not opaque", path.ToString(),
                                            ResourceTypeName(type)));
  }
  context.out->records.push_back(Record{path, Value::Opaque(context.payload), std::nullopt});
  return absl::OkStatus();
}

absl::Status EncodeOpaque(const Path& request, std::span<const Record> records, std::string* out) {
  constexpr std::string_view kOpaque = "opaque";
  if (absl::Status status = CheckSingleRecord(kOpaque, request, records); !status.ok())
    return status;
  const Value& value = records[0].value;
  if (value.type != ResourceType::kOpaque) {
    return Invalid(kOpaque, absl::StrFormat("%s: value is %s, not opaque", request.ToString(),
                                            ResourceTypeName(value.type)));
  }
  out->assign(value.bytes);
  return absl::OkStatus();
}

}  // namespace lwm2md::lwm2m::content_format_internal
