#pragma once
// The object registry: built-in definitions (builtin_objects.h) plus custom ones uploaded as
// OMA XML (oma_xml.h) and persisted in the store's objects table. The reference's rule
// ("Custom objects"): objects defined by the user override the default objects the system
// provides.
//
// Threads: read-mostly. Readers (shards decoding payloads, API handlers) take an immutable
// ObjectCatalog snapshot with one atomic shared_ptr load and use it without locks for as long
// as they hold it; writers (API uploads and deletes, rare) build a whole new catalog under a
// mutex and publish it with one atomic store. A snapshot never changes under its reader.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lwm2m/object_model.h"
#include "lwm2m/types.h"

namespace lwm2md::store {
class Store;
}  // namespace lwm2md::store

namespace lwm2md::lwm2m {

// One immutable set of definitions. Every definition of every (id, version) known is kept,
// so that a client registering an older version (the ver attribute, Core TS 1.1 §6.2.1.1)
// still gets that version's definition.
class ObjectCatalog {
 public:
  struct Entry {
    std::shared_ptr<const ObjectDefinition> definition;
    // The uploaded OMA XML of a custom definition, as stored; null for built-ins.
    std::shared_ptr<const std::string> xml;
    bool custom = false;
    // Whether Find(id) returns this entry: false for built-ins that a custom definition of
    // the same id hides, and for versions older than the one in use.
    bool active = false;
  };

  // A custom entry and a built-in one may share an (id, version): both are listed, the
  // custom one wins every lookup. Object keys are made unique over the active definitions:
  // in ascending id order, a key already taken gets "_<id>" appended (two uploads named
  // "Meter" with ids 10250 and 10251 become meter and meter_10251). Every version of an id
  // carries the key of its active definition, so that an object's key in events does not
  // depend on the version a client registered.
  ObjectCatalog(std::vector<Entry> built_in, std::vector<Entry> custom);

  // The definition to use for id: the latest version among the custom definitions of id if
  // there is any, else the latest built-in one; null when the id is unknown.
  const ObjectDefinition* Find(uint16_t id) const;
  // That exact version when known (custom before built-in), else Find(id). An empty version
  // means 1.0 (Core TS 1.1 §6.2.1.1: a link without ver is the object's version 1.0).
  const ObjectDefinition* Find(uint16_t id, std::string_view version) const;
  // By key ("device"), or by decimal id ("3").
  const ObjectDefinition* FindObjectByKey(std::string_view key) const;
  // The entry for exactly (id, version), or null.
  const Entry* FindEntry(uint16_t id, std::string_view version, bool custom) const;
  // The type of the resource that path names (/o/i/r or /o/i/r/ri) under Find(object id);
  // nullopt for shorter paths and unknown objects or resources.
  std::optional<ResourceType> TypeOf(const Path& path) const;
  // Whether Find(id) returns a custom definition.
  bool IsCustom(uint16_t id) const;

  // Every entry, ordered by id, then version (oldest first), then built-in before custom.
  const std::vector<Entry>& entries() const { return entries_; }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
  // id → index into entries_ of the active entry.
  absl::flat_hash_map<uint16_t, size_t> active_;
  absl::flat_hash_map<std::string, uint16_t> by_key_;
};

class ObjectRegistry {
 public:
  // Loads the custom definitions from store's objects table (key "<id>:<version>", value
  // the XML as uploaded). A stored XML that no longer parses is logged and skipped rather
  // than stopping start-up: the built-in definition, if any, takes its place. Built-in
  // definitions repeating an (id, version) are refused. store may be null (tests): custom
  // definitions then live in memory only.
  static absl::StatusOr<std::unique_ptr<ObjectRegistry>> Create(
      std::vector<ObjectDefinition> built_in, store::Store* store);

  ObjectRegistry(const ObjectRegistry&) = delete;
  ObjectRegistry& operator=(const ObjectRegistry&) = delete;

  // The current catalog. Cheap (one atomic load); hold it for a whole operation, so that
  // all its lookups see the same definitions.
  std::shared_ptr<const ObjectCatalog> snapshot() const { return catalog_.load(); }

  // Control plane only (AddCustom and RemoveCustom wait for the store's commit, which a
  // shard must never do).
  //
  // Parses xml, persists it (waiting until it is durable), then publishes a catalog where it
  // replaces any custom definition of the same id and version. Returns the definition as
  // parsed (its key is the one the new catalog gives it). InvalidArgument with the parser's
  // line/element message for bad XML; the store's error if the write fails, in which case
  // nothing changes.
  absl::StatusOr<ObjectDefinition> AddCustom(std::string_view xml);
  // Removes the custom definition (id, version) from the store and the catalog; the
  // built-in one, if any, is visible again. NotFound when there is no such custom
  // definition (built-ins cannot be removed).
  absl::Status RemoveCustom(uint16_t id, std::string_view version);

  // The store key of a custom definition: "3:1.2".
  static std::string StoreKey(uint16_t id, std::string_view version);

 private:
  ObjectRegistry(std::vector<ObjectCatalog::Entry> built_in, store::Store* store)
      : built_in_(std::move(built_in)), store_(store) {}

  // Builds and publishes a catalog from built_in_ and custom_.
  void Publish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::vector<ObjectCatalog::Entry> built_in_;
  store::Store* const store_;
  absl::Mutex mutex_;
  // Custom definitions by StoreKey.
  absl::flat_hash_map<std::string, ObjectCatalog::Entry> custom_ ABSL_GUARDED_BY(mutex_);
  std::atomic<std::shared_ptr<const ObjectCatalog>> catalog_;
};

}  // namespace lwm2md::lwm2m
