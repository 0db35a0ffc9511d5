#include "lwm2m/object_registry.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/strings.h"
#include "lwm2m/oma_xml.h"
#include "store/store.h"

namespace lwm2md::lwm2m {
namespace {

using base::Absl;

bool EntryLess(const ObjectCatalog::Entry& a, const ObjectCatalog::Entry& b) {
  if (a.definition->id != b.definition->id) return a.definition->id < b.definition->id;
  if (int order = CompareVersions(a.definition->version, b.definition->version); order != 0) {
    return order < 0;
  }
  return !a.custom && b.custom;
}

// The same definition under another key; shared as is when the key already matches.
std::shared_ptr<const ObjectDefinition> WithKey(std::shared_ptr<const ObjectDefinition> definition,
                                                const std::string& key) {
  if (definition->key == key) return definition;
  auto copy = std::make_shared<ObjectDefinition>(*definition);
  copy->key = key;
  return copy;
}

}  // namespace

ObjectCatalog::ObjectCatalog(std::vector<Entry> built_in, std::vector<Entry> custom) {
  entries_.reserve(built_in.size() + custom.size());
  for (Entry& entry : built_in) {
    entry.custom = false;
    entries_.push_back(std::move(entry));
  }
  for (Entry& entry : custom) {
    entry.custom = true;
    entries_.push_back(std::move(entry));
  }
  std::sort(entries_.begin(), entries_.end(), EntryLess);

  // Entries of one id are adjacent, oldest version first, so the last custom entry of a run
  // (or else its last entry) is the one in use.
  for (size_t begin = 0; begin < entries_.size();) {
    const uint16_t id = entries_[begin].definition->id;
    size_t end = begin;
    std::optional<size_t> latest_custom;
    while (end < entries_.size() && entries_[end].definition->id == id) {
      entries_[end].active = false;
      if (entries_[end].custom) latest_custom = end;
      ++end;
    }
    const size_t active = latest_custom.value_or(end - 1);
    entries_[active].active = true;
    active_[id] = active;
    begin = end;
  }

  // Unique object keys over the active definitions, in ascending id order (entries_ is
  // sorted by id), then the same key on every version of each id.
  absl::flat_hash_map<uint16_t, std::string> key_of;
  for (const Entry& entry : entries_) {
    if (!entry.active) continue;
    std::string key = entry.definition->key;
    while (by_key_.contains(key)) absl::StrAppend(&key, "_", entry.definition->id);
    by_key_.emplace(key, entry.definition->id);
    key_of.emplace(entry.definition->id, std::move(key));
  }
  for (Entry& entry : entries_) {
    const std::string& key = key_of[entry.definition->id];
    entry.definition = WithKey(std::move(entry.definition), key);
  }
}

const ObjectDefinition* ObjectCatalog::Find(uint16_t id) const {
  auto it = active_.find(id);
  return it != active_.end() ? entries_[it->second].definition.get() : nullptr;
}

const ObjectDefinition* ObjectCatalog::Find(uint16_t id, std::string_view version) const {
  if (version.empty()) version = "1.0";
  if (const Entry* entry = FindEntry(id, version, /*custom=*/true)) return entry->definition.get();
  if (const Entry* entry = FindEntry(id, version, /*custom=*/false)) {
    return entry->definition.get();
  }
  return Find(id);
}

const ObjectCatalog::Entry* ObjectCatalog::FindEntry(uint16_t id, std::string_view version,
                                                     bool custom) const {
  auto it = std::lower_bound(
      entries_.begin(), entries_.end(), id,
      [](const Entry& entry, uint16_t wanted) { return entry.definition->id < wanted; });
  for (; it != entries_.end() && it->definition->id == id; ++it) {
    if (it->custom == custom && it->definition->version == version) return &*it;
  }
  return nullptr;
}

const ObjectDefinition* ObjectCatalog::FindObjectByKey(std::string_view key) const {
  if (!key.empty() &&
      std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::optional<uint16_t> id = ParseObjectId(key);
    return id ? Find(*id) : nullptr;
  }
  auto it = by_key_.find(Absl(key));
  return it != by_key_.end() ? Find(it->second) : nullptr;
}

std::optional<ResourceType> ObjectCatalog::TypeOf(const Path& path) const {
  if (!path.resource_id) return std::nullopt;
  const ObjectDefinition* object = Find(path.object_id);
  if (object == nullptr) return std::nullopt;
  const ResourceDefinition* resource = object->FindResource(*path.resource_id);
  if (resource == nullptr) return std::nullopt;
  return resource->type;
}

bool ObjectCatalog::IsCustom(uint16_t id) const {
  auto it = active_.find(id);
  return it != active_.end() && entries_[it->second].custom;
}

std::string ObjectRegistry::StoreKey(uint16_t id, std::string_view version) {
  return absl::StrCat(id, ":", Absl(version));
}

absl::StatusOr<std::unique_ptr<ObjectRegistry>> ObjectRegistry::Create(
    std::vector<ObjectDefinition> built_in, store::Store* store) {
  std::vector<ObjectCatalog::Entry> entries;
  absl::flat_hash_set<std::string> seen;
  for (ObjectDefinition& definition : built_in) {
    if (!seen.insert(StoreKey(definition.id, definition.version)).second) {
      return absl::InvalidArgumentError(absl::StrCat("built-in object ", definition.id, " version ",
                                                     definition.version, " is defined twice"));
    }
    ObjectCatalog::Entry entry;
    entry.definition = std::make_shared<const ObjectDefinition>(std::move(definition));
    entries.push_back(std::move(entry));
  }
  auto registry = absl::WrapUnique(new ObjectRegistry(std::move(entries), store));

  absl::MutexLock lock(&registry->mutex_);
  if (store != nullptr) {
    absl::Status status = store->Scan(
        store::Table::kObjects, "", "", [&registry](std::string_view key, std::string_view value) {
          absl::StatusOr<ObjectDefinition> definition = ParseOmaObjectXml(value);
          if (!definition.ok()) {
            LWM2MD_LOG(kWarning, "custom object %s no longer loads, skipped: %s", Absl(key),
                       definition.status().message());
            return true;
          }
          std::string expected = StoreKey(definition->id, definition->version);
          if (Absl(key) != expected) {
            LWM2MD_LOG(kWarning, "custom object %s holds object %s, skipped", Absl(key), expected);
            return true;
          }
          registry->custom_.emplace(
              std::move(expected),
              ObjectCatalog::Entry{
                  .definition = std::make_shared<const ObjectDefinition>(*std::move(definition)),
                  .xml = std::make_shared<const std::string>(value),
                  .custom = true});
          return true;
        });
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("loading custom objects: ", status.message()));
    }
  }
  registry->Publish();
  return registry;
}

absl::StatusOr<ObjectDefinition> ObjectRegistry::AddCustom(std::string_view xml) {
  absl::StatusOr<ObjectDefinition> parsed = ParseOmaObjectXml(xml);
  if (!parsed.ok()) return parsed.status();
  const uint16_t id = parsed->id;
  const std::string version = parsed->version;
  const std::string key = StoreKey(id, version);

  // Held across the write so that the store and the catalog change in the same order when
  // two uploads race; readers are not blocked by it.
  absl::MutexLock lock(&mutex_);
  if (store_ != nullptr) {
    store::WriteBatch batch;
    batch.Put(store::Table::kObjects, key, xml);
    if (absl::Status status = store_->Write(std::move(batch)); !status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("storing custom object ", key, ": ", status.message()));
    }
  }
  custom_.insert_or_assign(
      key, ObjectCatalog::Entry{
               .definition = std::make_shared<const ObjectDefinition>(*std::move(parsed)),
               .xml = std::make_shared<const std::string>(xml),
               .custom = true});
  Publish();
  return *catalog_.load()->FindEntry(id, version, /*custom=*/true)->definition;
}

absl::Status ObjectRegistry::RemoveCustom(uint16_t id, std::string_view version) {
  const std::string key = StoreKey(id, version);
  absl::MutexLock lock(&mutex_);
  if (!custom_.contains(key)) {
    return absl::NotFoundError(absl::StrCat("no custom object ", id, " version ", Absl(version)));
  }
  if (store_ != nullptr) {
    store::WriteBatch batch;
    batch.Delete(store::Table::kObjects, key);
    if (absl::Status status = store_->Write(std::move(batch)); !status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("removing custom object ", key, ": ", status.message()));
    }
  }
  custom_.erase(key);
  Publish();
  return absl::OkStatus();
}

void ObjectRegistry::Publish() {
  std::vector<ObjectCatalog::Entry> custom;
  custom.reserve(custom_.size());
  for (const auto& [key, entry] : custom_) custom.push_back(entry);
  catalog_.store(std::make_shared<const ObjectCatalog>(built_in_, std::move(custom)));
}

}  // namespace lwm2md::lwm2m
