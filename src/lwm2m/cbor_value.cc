// The CBOR single-value format (application/cbor, 60; TS 1.1 §7.4.6): one data item holding
// one resource value, typed by the resource: integers as major type 0/1, floats as any float
// width (or an integer, converted), booleans as simple values, strings, core links and object
// links ("oid:iid") as text, opaque as a byte string, time as an integer, optionally under
// tag 1 (RFC 8949 §3.4.2 epoch time). Other tags, arrays, maps and trailing bytes are refused.

#include <cmath>

#include "absl/strings/str_format.h"
#include "lwm2m/cbor.h"
#include "lwm2m/content_format_internal.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace {

constexpr std::string_view kCbor = "cbor";

std::string_view KindName(const cbor::Item& item) {
  switch (item.kind) {
    case cbor::Kind::kUnsigned:
    case cbor::Kind::kNegative:
      return "an integer";
    case cbor::Kind::kBytes:
      return "a byte string";
    case cbor::Kind::kText:
      return "a text string";
    case cbor::Kind::kArray:
      return "an array";
    case cbor::Kind::kMap:
      return "a map";
    case cbor::Kind::kTag:
      return "a tag";
    case cbor::Kind::kSimple:
      return item.is_true() || item.is_false() ? "a boolean" : "a simple value";
    case cbor::Kind::kFloat:
      return "a float";
    case cbor::Kind::kBreak:
      return "a break";
  }
  return "?";
}

}  // namespace

absl::Status DecodeCborValue(const DecodeContext& context) {
  const Path& path = context.request;
  if (path.depth() < 3) {
    return Invalid(kCbor, absl::StrFormat("%s is not a resource; a single value needs a resource "
                                          "or resource instance path",
                                          path.ToString()));
  }
  ResourceType type;
  bool known;
  if (absl::Status status = ResolveType(context, path, &type, &known); !status.ok()) return status;

  cbor::Reader reader(context.payload);
  cbor::Item item;
  if (!reader.Read(&item)) return Invalid(kCbor, reader.ErrorMessage());
  bool epoch_tag = false;
  if (item.kind == cbor::Kind::kTag) {
    if (item.argument != 1 || (known && type != ResourceType::kTime)) {
      return Invalid(kCbor, absl::StrFormat("%s: tag %u at byte %u is not allowed here",
                                            path.ToString(), item.argument, item.offset));
    }
    epoch_tag = true;
    if (!reader.Read(&item)) return Invalid(kCbor, reader.ErrorMessage());
  }
  if (item.kind == cbor::Kind::kArray || item.kind == cbor::Kind::kMap ||
      item.kind == cbor::Kind::kBreak) {
    return Invalid(kCbor, absl::StrFormat("%s: %s cannot be a resource value", path.ToString(),
                                          KindName(item)));
  }
  if (!reader.at_end())
    return Invalid(kCbor, absl::StrFormat("trailing bytes at byte %u", reader.offset()));

  auto mismatch = [&](std::string_view wanted) {
    return Invalid(kCbor, absl::StrFormat("%s: %s resource needs %s, got %s", path.ToString(),
                                          ResourceTypeName(type), wanted, KindName(item)));
  };
  Value value;
  Number number;
  if (!known) {
    // Lenient: the major type decides.
    if (CborItemNumber(item, &number)) {
      if (epoch_tag) {
        int64_t seconds;
        if (!number.ToInt64(&seconds)) return mismatch("whole seconds");
        value = Value::Time(seconds);
      } else {
        value = NumberAsReceived(number);
      }
    } else if (epoch_tag) {
      return mismatch("a number");
    } else if (item.kind == cbor::Kind::kText) {
      value = Value::String(item.text());
    } else if (item.kind == cbor::Kind::kBytes) {
      value = Value::Opaque(item.bytes);
    } else if (item.is_true() || item.is_false()) {
      value = Value::Boolean(item.is_true());
    } else {
      return Invalid(kCbor, absl::StrFormat("%s: %s cannot be a resource value", path.ToString(),
                                            KindName(item)));
    }
  } else {
    switch (type) {
      case ResourceType::kNone:
        return Invalid(
            kCbor, absl::StrFormat("%s: resource is executable and has no value", path.ToString()));
      case ResourceType::kString:
      case ResourceType::kCorelnk:
        if (item.kind != cbor::Kind::kText) return mismatch("a text string");
        value.type = type;
        value.bytes = item.text();
        break;
      case ResourceType::kOpaque:
        if (item.kind != cbor::Kind::kBytes) return mismatch("a byte string");
        value = Value::Opaque(item.bytes);
        break;
      case ResourceType::kBoolean:
        if (!item.is_true() && !item.is_false()) return mismatch("a boolean");
        value = Value::Boolean(item.is_true());
        break;
      case ResourceType::kObjlnk:
        if (item.kind != cbor::Kind::kText) return mismatch("a text string");
        if (!ParseObjlnk(item.text(), &value.link)) {
          return Invalid(kCbor, absl::StrFormat("%s: \"%s\" is not an object link", path.ToString(),
                                                item.text()));
        }
        value.type = type;
        break;
      case ResourceType::kInteger:
      case ResourceType::kUnsignedInteger:
      case ResourceType::kFloat:
      case ResourceType::kTime: {
        if (!CborItemNumber(item, &number)) return mismatch("a number");
        std::string_view why;
        if (!NumberToValue(number, type, &value, &why)) {
          return Invalid(kCbor,
                         absl::StrFormat("%s: %.17g %s", path.ToString(), number.AsDouble(), why));
        }
        break;
      }
    }
  }
  context.out->records.push_back(Record{path, value, std::nullopt});
  return absl::OkStatus();
}

absl::Status EncodeCborValue(const Path& request, std::span<const Record> records,
                             std::string* out) {
  if (absl::Status status = CheckSingleRecord(kCbor, request, records); !status.ok()) return status;
  const Value& value = records[0].value;
  cbor::Writer writer(out);
  switch (value.type) {
    case ResourceType::kNone:
      return Invalid(kCbor, absl::StrFormat("%s: a record needs a value", request.ToString()));
    case ResourceType::kString:
    case ResourceType::kCorelnk:
      if (!IsUtf8(value.bytes))
        return Invalid(kCbor, absl::StrFormat("%s: string is not valid UTF-8", request.ToString()));
      writer.Text(value.bytes);
      break;
    case ResourceType::kOpaque:
      writer.Bytes(value.bytes);
      break;
    case ResourceType::kInteger:
      writer.Int(value.integer);
      break;
    case ResourceType::kUnsignedInteger:
      writer.Unsigned(value.unsigned_integer);
      break;
    case ResourceType::kFloat:
      writer.Float(value.floating);
      break;
    case ResourceType::kBoolean:
      writer.Bool(value.boolean);
      break;
    case ResourceType::kTime:
      writer.Int(value.time);
      break;
    case ResourceType::kObjlnk: {
      std::string text;
      AppendObjlnk(&text, value.link);
      writer.Text(text);
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace lwm2md::lwm2m::content_format_internal
