// OMA TLV (11542) behind content_format.h: tlv::Payload validates and walks the bytes,
// tlv::Decode* type the values, tlv::Writer encodes. This file only maps TLV identifiers to
// paths relative to the request (TS 1.1 §7.4.3) and resource types to decoders.

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"
#include "lwm2m/content_format_internal.h"
#include "lwm2m/tlv.h"

namespace lwm2md::lwm2m::content_format_internal {

namespace {

constexpr std::string_view kTlv = "tlv";

absl::Status ValueError(const Path& path, std::string_view what) {
  return Invalid(kTlv, absl::StrFormat("%s: %s", path.ToString(), what));
}

absl::Status DecodeLeafInto(const Path& path, ResourceType type, bool known,
                            std::span<const uint8_t> bytes, Value& value) {
  if (!known) {
    // TLV says nothing about the type: lenient decoding keeps the bytes.
    value = Value::Opaque(bytes);
  } else {
    const size_t n = bytes.size();
    switch (type) {
      case ResourceType::kNone:
        return ValueError(path, "resource is executable and has no value");
      case ResourceType::kString:
      case ResourceType::kCorelnk: {
        std::string_view text;
        if (tlv::DecodeString(bytes, &text) != tlv::ValueError::kOk)
          return ValueError(path, "string is not valid UTF-8");
        value.type = type;
        value.bytes = text;
        break;
      }
      case ResourceType::kOpaque:
        value = Value::Opaque(bytes);
        break;
      case ResourceType::kInteger:
        value.type = type;
        if (tlv::DecodeInteger(bytes, &value.integer) != tlv::ValueError::kOk) {
          return ValueError(path,
                            absl::StrFormat("expected integer of 1, 2, 4 or 8 bytes, got %u", n));
        }
        break;
      case ResourceType::kUnsignedInteger:
        value.type = type;
        if (tlv::DecodeUnsigned(bytes, &value.unsigned_integer) != tlv::ValueError::kOk) {
          return ValueError(
              path, absl::StrFormat("expected unsigned integer of 1, 2, 4 or 8 bytes, got %u", n));
        }
        break;
      case ResourceType::kFloat:
        value.type = type;
        if (tlv::DecodeFloat(bytes, &value.floating) != tlv::ValueError::kOk)
          return ValueError(path, absl::StrFormat("expected float of 4 or 8 bytes, got %u", n));
        break;
      case ResourceType::kBoolean:
        value.type = type;
        switch (tlv::DecodeBoolean(bytes, &value.boolean)) {
          case tlv::ValueError::kOk:
            break;
          case tlv::ValueError::kBadBoolean:
            return ValueError(path,
                              absl::StrFormat("boolean byte 0x%02x is neither 0 nor 1", bytes[0]));
          default:
            return ValueError(path, absl::StrFormat("expected boolean of 1 byte, got %u", n));
        }
        break;
      case ResourceType::kTime:
        value.type = type;
        if (tlv::DecodeTime(bytes, &value.time) != tlv::ValueError::kOk) {
          return ValueError(path,
                            absl::StrFormat("expected time of 1, 2, 4 or 8 bytes, got %u", n));
        }
        break;
      case ResourceType::kObjlnk: {
        tlv::ObjectLink link;
        if (tlv::DecodeObjectLink(bytes, &link) != tlv::ValueError::kOk)
          return ValueError(path, absl::StrFormat("expected objlnk of 4 bytes, got %u", n));
        value = Value::Link(link.object_id, link.instance_id);
        break;
      }
    }
  }
  return absl::OkStatus();
}

// Sets a path field by field. Building a Path in a temporary and copying it makes GCC store its
// 16-bit ids and optional flags piecewise and reload them as 64-bit words, a store-forwarding
// stall that cost more than the rest of a record's decoding.
void SetPath(Path* path, uint16_t object_id, std::optional<uint16_t> instance_id,
             std::optional<uint16_t> resource_id, std::optional<uint16_t> resource_instance_id) {
  path->object_id = object_id;
  path->instance_id = instance_id;
  path->resource_id = resource_id;
  path->resource_instance_id = resource_instance_id;
}

// Appends the record for `resource` (or its instance) and decodes the value into it in place.
absl::Status DecodeLeaf(const DecodeContext& context, const Path& resource,
                        std::optional<uint16_t> resource_instance_id, ResourceType type, bool known,
                        std::span<const uint8_t> bytes) {
  std::vector<Record>& records = context.out->records;
  Record& record = records.emplace_back();
  SetPath(&record.path, resource.object_id, resource.instance_id, resource.resource_id,
          resource_instance_id);
  absl::Status status = DecodeLeafInto(record.path, type, known, bytes, record.value);
  if (!status.ok()) records.pop_back();
  return status;
}

absl::Status CheckId(const tlv::Entry& entry) {
  // TS 1.1 §6.1: 65535 is MAX_ID, reserved; no path may hold it.
  if (entry.id == Path::kReservedId) {
    return Invalid(kTlv, absl::StrFormat("%s id 65535 is reserved", tlv::TypeName(entry.type)));
  }
  return absl::OkStatus();
}

// A resource or multiple resource entry inside object instance `instance` (/o/i).
absl::Status DecodeResourceEntry(const DecodeContext& context, const Path& instance,
                                 const tlv::Entry& entry) {
  if (absl::Status status = CheckId(entry); !status.ok()) return status;
  Path resource;
  SetPath(&resource, instance.object_id, instance.instance_id, entry.id, std::nullopt);
  ResourceType type;
  bool known;
  if (absl::Status status = ResolveType(context, resource, &type, &known); !status.ok())
    return status;
  if (entry.type == tlv::Type::kResource)
    return DecodeLeaf(context, resource, std::nullopt, type, known, entry.value);
  for (const tlv::Entry& child : entry.children()) {
    if (absl::Status status = CheckId(child); !status.ok()) return status;
    if (absl::Status status = DecodeLeaf(context, resource, child.id, type, known, child.value);
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeInstance(const DecodeContext& context, const Path& instance,
                            tlv::EntryRange entries) {
  for (const tlv::Entry& entry : entries) {
    if (absl::Status status = DecodeResourceEntry(context, instance, entry); !status.ok())
      return status;
  }
  return absl::OkStatus();
}

absl::Status Misplaced(const Path& request, const tlv::Entry& entry) {
  return Invalid(kTlv, absl::StrFormat("a %s (id %u) cannot sit at the top level of a payload "
                                       "for %s",
                                       tlv::TypeName(entry.type), entry.id, request.ToString()));
}

absl::Status Outside(const Path& request, const tlv::Entry& entry) {
  return Invalid(kTlv, absl::StrFormat("%s %u is outside the request path %s",
                                       tlv::TypeName(entry.type), entry.id, request.ToString()));
}

size_t CountLeaves(tlv::EntryRange entries) {
  size_t n = 0;
  for (const tlv::Entry& entry : entries)
    n += tlv::IsContainer(entry.type) ? CountLeaves(entry.children()) : 1;
  return n;
}

// Writes one value with the writer's typed methods, which pick the minimal encoding.
void WriteValue(tlv::Writer& writer, uint16_t id, const Value& value) {
  switch (value.type) {
    case ResourceType::kString:
    case ResourceType::kCorelnk:
      writer.String(id, value.bytes);
      break;
    case ResourceType::kOpaque:
      writer.Opaque(id, value.opaque());
      break;
    case ResourceType::kInteger:
      writer.Integer(id, value.integer);
      break;
    case ResourceType::kUnsignedInteger:
      writer.Unsigned(id, value.unsigned_integer);
      break;
    case ResourceType::kFloat:
      writer.Float(id, value.floating);
      break;
    case ResourceType::kBoolean:
      writer.Boolean(id, value.boolean);
      break;
    case ResourceType::kTime:
      writer.Time(id, value.time);
      break;
    case ResourceType::kObjlnk:
      writer.ObjectLinkValue(id, tlv::ObjectLink{value.link.object_id, value.link.instance_id});
      break;
    case ResourceType::kNone:
      break;
  }
}

bool SameResource(const Path& a, const Path& b) {
  return a.object_id == b.object_id && a.instance_id == b.instance_id &&
         a.resource_id == b.resource_id;
}

}  // namespace

absl::Status DecodeTlv(const DecodeContext& context) {
  tlv::Payload payload;
  const tlv::ParseFailure failure = tlv::Payload::Parse(context.payload, &payload);
  if (!failure.ok()) return absl::InvalidArgumentError(failure.Message());
  context.out->records.reserve(CountLeaves(payload.entries()));

  const Path& request = context.request;
  for (const tlv::Entry& entry : payload.entries()) {
    if (absl::Status status = CheckId(entry); !status.ok()) return status;
    absl::Status status;
    switch (request.depth()) {
      case 1:
        // A Read on an Object answers with its instances (TS §7.4.3.2).
        if (entry.type != tlv::Type::kObjectInstance) return Misplaced(request, entry);
        status =
            DecodeInstance(context, Path::Instance(request.object_id, entry.id), entry.children());
        break;
      case 2:
        // Resources at the top level; a wrapping object instance (some 1.0 clients answer
        // that way, and TS 1.0 writes may carry one) must carry the requested id.
        if (entry.type == tlv::Type::kObjectInstance) {
          if (entry.id != *request.instance_id) return Outside(request, entry);
          status = DecodeInstance(context, request, entry.children());
        } else if (entry.type == tlv::Type::kResourceInstance) {
          return Misplaced(request, entry);
        } else {
          status = DecodeResourceEntry(context, request, entry);
        }
        break;
      case 3: {
        const Path instance = Path::Instance(request.object_id, *request.instance_id);
        if (entry.type == tlv::Type::kObjectInstance) return Misplaced(request, entry);
        if (entry.type == tlv::Type::kResourceInstance) {
          // Bare resource instances answering a multiple resource: unambiguous, so accepted.
          ResourceType type;
          bool known;
          status = ResolveType(context, request, &type, &known);
          if (status.ok()) {
            status = DecodeLeaf(context, request, entry.id, type, known, entry.value);
          }
        } else if (entry.id != *request.resource_id) {
          return Outside(request, entry);
        } else {
          status = DecodeResourceEntry(context, instance, entry);
        }
        break;
      }
      default: {
        // A resource instance (TS 1.1 Read on /o/i/r/ri), bare or inside its multiple resource.
        ResourceType type;
        bool known;
        if (entry.type == tlv::Type::kResourceInstance) {
          if (entry.id != *request.resource_instance_id) return Outside(request, entry);
          status = ResolveType(context, request, &type, &known);
          if (status.ok()) {
            status = DecodeLeaf(context, request, request.resource_instance_id, type, known,
                                entry.value);
          }
        } else if (entry.type == tlv::Type::kMultipleResource) {
          if (entry.id != *request.resource_id) return Outside(request, entry);
          status = ResolveType(context, request, &type, &known);
          for (const tlv::Entry& child : entry.children()) {
            if (!status.ok()) break;
            if (child.id != *request.resource_instance_id) return Outside(request, child);
            status = DecodeLeaf(context, request, request.resource_instance_id, type, known,
                                child.value);
          }
        } else {
          return Misplaced(request, entry);
        }
        break;
      }
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status EncodeTlv(const Path& request, std::span<const Record> records, std::string* out) {
  size_t bound = tlv::Writer::kOpenContainerSlack;
  for (const Record& record : records) {
    const Path& path = record.path;
    if (path.depth() < 3)
      return Invalid(kTlv, absl::StrFormat("%s names no resource", path.ToString()));
    if (!request.Contains(path)) {
      return Invalid(kTlv, absl::StrFormat("%s is outside the request path %s", path.ToString(),
                                           request.ToString()));
    }
    const Value& value = record.value;
    if (value.type == ResourceType::kNone)
      return Invalid(kTlv, absl::StrFormat("%s: a record needs a value", path.ToString()));
    if ((value.type == ResourceType::kString || value.type == ResourceType::kCorelnk) &&
        !IsUtf8(value.bytes)) {
      return Invalid(kTlv, absl::StrFormat("%s: string is not valid UTF-8", path.ToString()));
    }
    if (value.bytes.size() > tlv::kMaxValueLength) {
      return Invalid(kTlv, absl::StrFormat("%s: value of %u bytes exceeds the 24-bit length",
                                           path.ToString(), value.bytes.size()));
    }
    // A leaf's header and value, plus room for the two containers it may open.
    bound += 6 + std::max<size_t>(8, value.bytes.size()) + 12;
  }

  // Group by instance and resource whatever order the caller used.
  std::vector<uint32_t> order(records.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return records[a].path < records[b].path; });
  for (size_t k = 1; k < order.size(); ++k) {
    const Path& previous = records[order[k - 1]].path;
    const Path& path = records[order[k]].path;
    if (previous == path)
      return Invalid(kTlv, absl::StrFormat("%s appears twice", path.ToString()));
    if (SameResource(previous, path) &&
        (!previous.resource_instance_id.has_value() || !path.resource_instance_id.has_value())) {
      return Invalid(
          kTlv,
          absl::StrFormat(
              "%s has both a single value and instances",
              Path::Resource(path.object_id, *path.instance_id, *path.resource_id).ToString()));
    }
  }

  out->resize(bound);
  tlv::Writer writer(std::span<uint8_t>(reinterpret_cast<uint8_t*>(out->data()), out->size()));
  if (request.depth() == 4) {
    // The top level holds one resource instance, which the typed writer methods only emit
    // inside a multiple resource: encode the value alone, then place it as a raw leaf.
    if (!records.empty()) {
      std::vector<uint8_t> scratch;
      tlv::Writer single(&scratch);
      WriteValue(single, 0, records[0].value);
      tlv::Payload parsed;
      if (!single.ok() || !tlv::Payload::Parse(single.Finish(), &parsed).ok())
        return Invalid(kTlv, "could not encode the value");
      writer.Leaf(tlv::Type::kResourceInstance, *request.resource_instance_id,
                  parsed.entries().begin()->value);
    }
  } else {
    size_t k = 0;
    while (k < order.size()) {
      const Path& first = records[order[k]].path;
      const bool wrap_instance = request.depth() == 1;
      if (wrap_instance) writer.BeginObjectInstance(*first.instance_id);
      // Every resource of this instance.
      while (k < order.size() && records[order[k]].path.instance_id == first.instance_id) {
        const Path& resource = records[order[k]].path;
        if (resource.resource_instance_id.has_value()) {
          writer.BeginMultipleResource(*resource.resource_id);
          while (k < order.size() && SameResource(records[order[k]].path, resource)) {
            WriteValue(writer, *records[order[k]].path.resource_instance_id,
                       records[order[k]].value);
            ++k;
          }
          writer.End();
        } else {
          WriteValue(writer, *resource.resource_id, records[order[k]].value);
          ++k;
        }
      }
      if (wrap_instance) writer.End();
    }
  }
  if (!writer.ok() || writer.Finish().data() == nullptr) {
    out->clear();
    return Invalid(kTlv, "encoding failed");
  }
  out->resize(writer.size());
  return absl::OkStatus();
}

}  // namespace lwm2md::lwm2m::content_format_internal
