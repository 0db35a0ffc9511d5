#pragma once
// Device values as the reference's JSON shows them: the `data` object of lwm2m.data events and
// sync read results ({"device":{"0":{"manufacturer":"…","error_code":{"0":0}}}}), and the
// lastKnown object ({"3":{"0":{"0":"…"}},"~3":{"0":{"0":"<update time>"}}}), with the lastKnown
// table's persisted form (store::Table::kLastKnown).
//
// Plain data and functions; usable on any thread.

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/json_writer.h"
#include "lwm2m/content_format.h"
#include "lwm2m/types.h"

namespace lwm2md::store {
class Store;
class WriteBatch;
}  // namespace lwm2md::store

namespace lwm2md::lwm2m {

class ObjectCatalog;

// A value as JSON: numbers and booleans as such; strings and core links as strings; opaque as
// base64 (RFC 4648 §4); time as an RFC 3339 UTC string (the reference's "current_time"); an
// object link as "3:0".
void AppendValueJson(const Value& value, std::string* out);

// "2026-11-24T10:00:00.123Z".
std::string Rfc3339Millis(absl::Time time);

// Values by object, instance, resource and resource instance, each as JSON text.
class DataTree {
 public:
  void Add(const Record& record);
  void AddJson(const Path& path, std::string value_json);
  bool empty() const { return objects_.empty(); }

  // Writes the tree as one JSON object. With a catalog, objects and resources are keyed by
  // their names ("device", "battery_level"; decimal ids where the model has no definition),
  // otherwise by id. prefix goes before every object key ("~" for lastKnown times).
  void Write(base::JsonWriter& json, const ObjectCatalog* names, std::string_view prefix = "",
             bool open_object = true) const;

 private:
  struct Resource {
    std::optional<std::string> value;
    std::map<uint16_t, std::string> instances;
  };
  std::map<uint16_t, std::map<uint16_t, std::map<uint16_t, Resource>>> objects_;
};

// --- lastKnown persistence ---------------------------------------------------------------
// Key: endpoint, NUL, then each path segment followed by '/' ("3/0/11/0/"), so that the
// prefix of a path never matches a sibling ("3/0/1/" vs "3/0/11/"). Value: the update time
// in Unix milliseconds, a space, the value's JSON.
std::string LastKnownKey(std::string_view endpoint, const Path& path);
std::string LastKnownPrefix(std::string_view endpoint);

// Adds the records to batch as the endpoint's latest values. replaced: a read or notification
// answered for this whole path, so values stored below it that the answer no longer holds
// (a resource instance removed) go first. A record's SenML time, when present, is its update
// time (RFC 8428 §4.5.3: below 2^28 relative to now).
void WriteLastKnown(store::WriteBatch& batch, std::string_view endpoint,
                    const std::optional<Path>& replaced, std::span<const Record> records,
                    absl::Time now);
// Forgets an endpoint's values (its registration is gone for good).
void DeleteLastKnown(store::WriteBatch& batch, std::string_view endpoint);

struct LastKnownOptions {
  bool include_update_times = true;
  bool translate_ids = false;
};
// The reference's lastKnown object. NotFound when nothing is stored for endpoint.
absl::StatusOr<std::string> ReadLastKnown(const store::Store& store, std::string_view endpoint,
                                          const ObjectCatalog& catalog,
                                          const LastKnownOptions& options);

}  // namespace lwm2md::lwm2m
