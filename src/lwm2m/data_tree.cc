#include "lwm2m/data_tree.h"

#include <charconv>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "lwm2m/object_registry.h"
#include "store/store.h"

namespace lwm2md::lwm2m {

std::string Rfc3339Millis(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

void AppendValueJson(const Value& value, std::string* out) {
  switch (value.type) {
    case ResourceType::kNone:
      out->append("null");
      return;
    case ResourceType::kString:
    case ResourceType::kCorelnk:
      base::JsonWriter::AppendQuoted(out, value.bytes);
      return;
    case ResourceType::kInteger:
      base::StrAppend(out, value.integer);
      return;
    case ResourceType::kUnsignedInteger:
      base::StrAppend(out, value.unsigned_integer);
      return;
    case ResourceType::kFloat: {
      base::JsonWriter json;
      json.Double(value.floating);
      out->append(json.str());
      return;
    }
    case ResourceType::kBoolean:
      out->append(value.boolean ? "true" : "false");
      return;
    case ResourceType::kOpaque:
      base::JsonWriter::AppendQuoted(out, absl::Base64Escape(base::Absl(value.bytes)));
      return;
    case ResourceType::kTime:
      base::JsonWriter::AppendQuoted(
          out, absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(value.time),
                                absl::UTCTimeZone()));
      return;
    case ResourceType::kObjlnk:
      base::JsonWriter::AppendQuoted(
          out, base::StrCat(value.link.object_id, ":", value.link.instance_id));
      return;
  }
}

void DataTree::Add(const Record& record) {
  std::string json;
  AppendValueJson(record.value, &json);
  AddJson(record.path, std::move(json));
}

void DataTree::AddJson(const Path& path, std::string value_json) {
  if (!path.instance_id || !path.resource_id) return;  // records always name resources
  Resource& resource = objects_[path.object_id][*path.instance_id][*path.resource_id];
  if (path.resource_instance_id) {
    resource.instances[*path.resource_instance_id] = std::move(value_json);
  } else {
    resource.value = std::move(value_json);
  }
}

void DataTree::Write(base::JsonWriter& json, const ObjectCatalog* names, std::string_view prefix,
                     bool open_object) const {
  if (open_object) json.BeginObject();
  for (const auto& [object_id, instances] : objects_) {
    const ObjectDefinition* object = names != nullptr ? names->Find(object_id) : nullptr;
    json.Key(object != nullptr ? base::StrCat(prefix, object->key)
                               : base::StrCat(prefix, object_id));
    json.BeginObject();
    for (const auto& [instance_id, resources] : instances) {
      json.Key(base::StrCat(instance_id)).BeginObject();
      for (const auto& [resource_id, resource] : resources) {
        const ResourceDefinition* definition =
            object != nullptr ? object->FindResource(resource_id) : nullptr;
        json.Key(definition != nullptr ? definition->key : base::StrCat(resource_id));
        if (!resource.instances.empty()) {
          json.BeginObject();
          for (const auto& [ri, value] : resource.instances) json.Key(base::StrCat(ri)).Raw(value);
          json.EndObject();
        } else {
          json.Raw(resource.value.value_or("null"));
        }
      }
      json.EndObject();
    }
    json.EndObject();
  }
  if (open_object) json.EndObject();
}

// ---------------------------------------------------------------------------------------------
// lastKnown

namespace {

void AppendPathSegments(std::string* out, const Path& path) {
  base::StrAppend(out, path.object_id, "/");
  if (path.instance_id) base::StrAppend(out, *path.instance_id, "/");
  if (path.resource_id) base::StrAppend(out, *path.resource_id, "/");
  if (path.resource_instance_id) base::StrAppend(out, *path.resource_instance_id, "/");
}

absl::Time RecordTime(const Record& record, absl::Time now) {
  if (!record.timestamp) return now;
  // RFC 8428 §4.5.3: times below 2^28 are relative to now.
  const double t = *record.timestamp;
  if (t < 268435456.0) return now + absl::Seconds(t);
  return absl::FromUnixMillis(static_cast<int64_t>(t * 1000));
}

}  // namespace

std::string LastKnownPrefix(std::string_view endpoint) {
  std::string key(endpoint);
  key.push_back('\0');
  return key;
}

std::string LastKnownKey(std::string_view endpoint, const Path& path) {
  std::string key = LastKnownPrefix(endpoint);
  AppendPathSegments(&key, path);
  return key;
}

void WriteLastKnown(store::WriteBatch& batch, std::string_view endpoint,
                    const std::optional<Path>& replaced, std::span<const Record> records,
                    absl::Time now) {
  // A read or notification answers with the whole state of its path: values stored below it
  // and absent from the answer (a deleted instance, a removed resource instance) are gone.
  if (replaced) {
    batch.DeletePrefix(store::Table::kLastKnown, LastKnownKey(endpoint, *replaced));
  }
  std::string value;
  for (const Record& record : records) {
    if (record.value.type == ResourceType::kNone) continue;
    value.clear();
    base::StrAppend(&value, absl::ToUnixMillis(RecordTime(record, now)), " ");
    AppendValueJson(record.value, &value);
    batch.Put(store::Table::kLastKnown, LastKnownKey(endpoint, record.path), value);
  }
}

void DeleteLastKnown(store::WriteBatch& batch, std::string_view endpoint) {
  batch.DeletePrefix(store::Table::kLastKnown, LastKnownPrefix(endpoint));
}

absl::StatusOr<std::string> ReadLastKnown(const store::Store& store, std::string_view endpoint,
                                          const ObjectCatalog& catalog,
                                          const LastKnownOptions& options) {
  DataTree values;
  DataTree times;
  size_t count = 0;
  const std::string prefix = LastKnownPrefix(endpoint);
  std::string bad_copy;
  absl::Status status = store.Scan(
      store::Table::kLastKnown, prefix, "", [&](std::string_view key, std::string_view value) {
        std::string_view rest = key.substr(prefix.size());
        if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
        absl::StatusOr<Path> path = Path::Parse(rest);
        const size_t space = value.find(' ');
        int64_t millis = 0;
        if (!path.ok() || space == std::string_view::npos ||
            std::from_chars(value.data(), value.data() + space, millis).ec != std::errc()) {
          bad_copy = std::string(rest);
          return false;
        }
        values.AddJson(*path, std::string(value.substr(space + 1)));
        if (options.include_update_times) {
          std::string time;
          base::JsonWriter::AppendQuoted(&time, Rfc3339Millis(absl::FromUnixMillis(millis)));
          times.AddJson(*path, std::move(time));
        }
        ++count;
        return true;
      });
  if (!status.ok()) return status;
  if (!bad_copy.empty()) {
    return absl::DataLossError(base::StrCat("lastKnown: unreadable entry for ", bad_copy));
  }
  if (count == 0) {
    return absl::NotFoundError(base::StrCat("no values known for endpoint \"", endpoint, "\""));
  }
  const ObjectCatalog* names = options.translate_ids ? &catalog : nullptr;
  base::JsonWriter json;
  json.BeginObject();
  values.Write(json, names, "", /*open_object=*/false);
  if (options.include_update_times) times.Write(json, names, "~", false);
  json.EndObject();
  return json.Take();
}

}  // namespace lwm2md::lwm2m
