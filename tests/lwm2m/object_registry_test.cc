#include "lwm2m/object_registry.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/builtin_objects.h"
#include "store/store.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::HasSubstr;

std::vector<ObjectDefinition> BuiltIns() {
  absl::StatusOr<std::vector<ObjectDefinition>> objects =
      LoadBuiltInObjects(LWM2MD_SOURCE_DIR "/config/objects");
  EXPECT_TRUE(objects.ok()) << objects.status();
  return objects.ok() ? *std::move(objects) : std::vector<ObjectDefinition>{};
}

// A custom object: id, version and name are parameters, one resource per type used below.
std::string CustomXml(int id, const std::string& version, const std::string& name) {
  return absl::StrCat(R"(<?xml version="1.0" encoding="UTF-8"?>
<LWM2M>
  <Object ObjectType="MODefinition">
    <Name>)",
                      name, R"(</Name>
    <Description1></Description1>
    <ObjectID>)",
                      id, R"(</ObjectID>
    <ObjectURN>urn:oma:lwm2m:x:)",
                      id, R"(</ObjectURN>
    <ObjectVersion>)",
                      version, R"(</ObjectVersion>
    <MultipleInstances>Multiple</MultipleInstances>
    <Mandatory>Optional</Mandatory>
    <Resources>
      <Item ID="0">
        <Name>Counter</Name>
        <Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Mandatory</Mandatory>
        <Type>Integer</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description></Description>
      </Item>
      <Item ID="9">
        <Name>Battery Level</Name>
        <Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>Float</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description></Description>
      </Item>
    </Resources>
  </Object>
</LWM2M>
)");
}

std::unique_ptr<ObjectRegistry> MakeRegistry(store::Store* store = nullptr) {
  absl::StatusOr<std::unique_ptr<ObjectRegistry>> registry =
      ObjectRegistry::Create(BuiltIns(), store);
  EXPECT_TRUE(registry.ok()) << registry.status();
  return registry.ok() ? *std::move(registry) : nullptr;
}

TEST(ObjectRegistryTest, BuiltInsOnly) {
  std::unique_ptr<ObjectRegistry> registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  std::shared_ptr<const ObjectCatalog> catalog = registry->snapshot();
  const ObjectDefinition* device = catalog->Find(3);
  ASSERT_NE(device, nullptr);
  EXPECT_EQ(device->name, "Device");
  EXPECT_FALSE(catalog->IsCustom(3));
  EXPECT_EQ(catalog->Find(3, "1.0"), device);  // unknown version: the one in use
  EXPECT_EQ(catalog->Find(3, ""), device);
  EXPECT_EQ(catalog->Find(3, "1.2"), device);
  EXPECT_EQ(catalog->Find(8), nullptr);
  EXPECT_EQ(catalog->FindObjectByKey("device"), device);
  EXPECT_EQ(catalog->FindObjectByKey("3"), device);
  EXPECT_EQ(catalog->FindObjectByKey("temperature")->id, 3303);
  EXPECT_EQ(catalog->FindObjectByKey("nothing"), nullptr);
  EXPECT_EQ(catalog->FindObjectByKey("65535"), nullptr);
  EXPECT_EQ(catalog->TypeOf(Path::Resource(3, 0, 9)), ResourceType::kInteger);
  EXPECT_EQ(catalog->TypeOf(Path::ResourceInstance(3, 0, 11, 2)), ResourceType::kInteger);
  EXPECT_EQ(catalog->TypeOf(Path::Resource(3303, 1, 5700)), ResourceType::kFloat);
  EXPECT_EQ(catalog->TypeOf(Path::Resource(3, 0, 4)), ResourceType::kNone);
  EXPECT_EQ(catalog->TypeOf(Path::Resource(3, 0, 99)), std::nullopt);
  EXPECT_EQ(catalog->TypeOf(Path::Instance(3, 0)), std::nullopt);
  EXPECT_EQ(catalog->TypeOf(Path::Resource(8, 0, 0)), std::nullopt);
  size_t count = 0;
  for (const ObjectCatalog::Entry& entry : *catalog) {
    EXPECT_FALSE(entry.custom);
    EXPECT_TRUE(entry.active);
    EXPECT_EQ(entry.xml, nullptr);
    ++count;
  }
  EXPECT_EQ(count, catalog->size());
  EXPECT_GE(count, 13u);
}

TEST(ObjectRegistryTest, DuplicateBuiltInsAreRefused) {
  std::vector<ObjectDefinition> built_in = BuiltIns();
  built_in.push_back(built_in.front());
  absl::StatusOr<std::unique_ptr<ObjectRegistry>> registry =
      ObjectRegistry::Create(std::move(built_in), nullptr);
  ASSERT_FALSE(registry.ok());
  EXPECT_THAT(std::string(registry.status().message()), HasSubstr("is defined twice"));
}

TEST(ObjectRegistryTest, CustomObjectsAddAndOverride) {
  std::unique_ptr<ObjectRegistry> registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  std::shared_ptr<const ObjectCatalog> before = registry->snapshot();

  absl::StatusOr<ObjectDefinition> added = registry->AddCustom(CustomXml(10250, "1.0", "Meter"));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->key, "meter");
  std::shared_ptr<const ObjectCatalog> catalog = registry->snapshot();
  EXPECT_NE(catalog, before);
  EXPECT_EQ(before->Find(10250), nullptr);  // an old snapshot never changes
  ASSERT_NE(catalog->Find(10250), nullptr);
  EXPECT_TRUE(catalog->IsCustom(10250));
  EXPECT_EQ(catalog->FindObjectByKey("meter")->id, 10250);
  EXPECT_EQ(*catalog->FindEntry(10250, "1.0", true)->xml, CustomXml(10250, "1.0", "Meter"));

  // A custom object 3 overrides the built-in one, whatever its version.
  added = registry->AddCustom(CustomXml(3, "1.0", "My Device"));
  ASSERT_TRUE(added.ok()) << added.status();
  catalog = registry->snapshot();
  EXPECT_EQ(catalog->Find(3)->name, "My Device");
  EXPECT_TRUE(catalog->IsCustom(3));
  EXPECT_EQ(catalog->TypeOf(Path::Resource(3, 0, 9)), ResourceType::kFloat);
  // Every version of 3 carries the key of the one in use.
  EXPECT_EQ(catalog->Find(3, "1.2")->name, "Device");
  EXPECT_EQ(catalog->Find(3, "1.2")->key, "my_device");
  EXPECT_EQ(catalog->FindObjectByKey("my_device")->id, 3);
  EXPECT_EQ(catalog->FindObjectByKey("device"), nullptr);
  int active = 0;
  for (const ObjectCatalog::Entry& entry : *catalog) {
    if (entry.definition->id != 3) continue;
    active += entry.active;
    EXPECT_EQ(entry.active, entry.custom);
  }
  EXPECT_EQ(active, 1);

  // Removing it brings the built-in one back.
  EXPECT_TRUE(registry->RemoveCustom(3, "1.0").ok());
  catalog = registry->snapshot();
  EXPECT_EQ(catalog->Find(3)->name, "Device");
  EXPECT_FALSE(catalog->IsCustom(3));
  EXPECT_EQ(catalog->FindObjectByKey("device")->id, 3);

  absl::Status status = registry->RemoveCustom(3, "1.2");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("no custom object 3 version 1.2"));
}

TEST(ObjectRegistryTest, VersionsAndReplacement) {
  std::unique_ptr<ObjectRegistry> registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_TRUE(registry->AddCustom(CustomXml(10250, "1.10", "Meter")).ok());
  ASSERT_TRUE(registry->AddCustom(CustomXml(10250, "1.2", "Meter Old")).ok());
  std::shared_ptr<const ObjectCatalog> catalog = registry->snapshot();
  EXPECT_EQ(catalog->Find(10250)->version, "1.10");  // numeric order: 1.10 > 1.2
  EXPECT_EQ(catalog->Find(10250, "1.2")->name, "Meter Old");
  EXPECT_EQ(catalog->Find(10250, "1.2")->key, "meter");
  EXPECT_EQ(catalog->Find(10250, "2.0")->version, "1.10");

  // Same id and version again: replaced, not added.
  ASSERT_TRUE(registry->AddCustom(CustomXml(10250, "1.10", "Meter New")).ok());
  catalog = registry->snapshot();
  EXPECT_EQ(catalog->Find(10250)->name, "Meter New");
  int entries = 0;
  for (const ObjectCatalog::Entry& entry : *catalog) entries += entry.definition->id == 10250;
  EXPECT_EQ(entries, 2);
}

TEST(ObjectRegistryTest, ObjectKeysStayUnique) {
  std::unique_ptr<ObjectRegistry> registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  absl::StatusOr<ObjectDefinition> added =
      registry->AddCustom(CustomXml(10251, "1.0", "Temperature"));
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(added->key, "temperature_10251");  // 3303 has the lower id
  std::shared_ptr<const ObjectCatalog> catalog = registry->snapshot();
  EXPECT_EQ(catalog->FindObjectByKey("temperature")->id, 3303);
  EXPECT_EQ(catalog->FindObjectByKey("temperature_10251")->id, 10251);
}

TEST(ObjectRegistryTest, BadXmlChangesNothing) {
  std::unique_ptr<ObjectRegistry> registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  std::shared_ptr<const ObjectCatalog> before = registry->snapshot();
  std::string xml = absl::StrReplaceAll(CustomXml(10250, "1.0", "Meter"),
                                        {{"<Type>Float</Type>", "<Type>Double</Type>"}});
  absl::StatusOr<ObjectDefinition> added = registry->AddCustom(xml);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(added.status().message()), HasSubstr("line 27: <Type> of resource 9"));
  EXPECT_EQ(registry->snapshot(), before);
}

TEST(ObjectRegistryTest, ReadersRaceWriters) {
  std::unique_ptr<ObjectRegistry> registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        std::shared_ptr<const ObjectCatalog> catalog = registry->snapshot();
        const ObjectDefinition* device = catalog->Find(3);
        ASSERT_NE(device, nullptr);
        ASSERT_NE(device->FindResource(9), nullptr);
        (void)catalog->TypeOf(Path::Resource(10250, 0, 9));
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(registry->AddCustom(CustomXml(3, "1.0", "Mine")).ok());
    ASSERT_TRUE(registry->AddCustom(CustomXml(10250, "1.0", "Meter")).ok());
    ASSERT_TRUE(registry->RemoveCustom(3, "1.0").ok());
  }
  stop.store(true);
  for (std::thread& reader : readers) reader.join();
}

class StoreDir {
 public:
  StoreDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "registry-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~StoreDir() { std::filesystem::remove_all(path_); }
  std::unique_ptr<store::Store> Open() const {
    store::Options options;
    options.path = path_;
    options.map_size_bytes = uint64_t{64} << 20;
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

 private:
  std::string path_;
};

TEST(ObjectRegistryStoreTest, CustomObjectsPersist) {
  StoreDir dir;
  {
    std::unique_ptr<store::Store> store = dir.Open();
    ASSERT_NE(store, nullptr);
    std::unique_ptr<ObjectRegistry> registry = MakeRegistry(store.get());
    ASSERT_NE(registry, nullptr);
    ASSERT_TRUE(registry->AddCustom(CustomXml(10250, "1.0", "Meter")).ok());
    ASSERT_TRUE(registry->AddCustom(CustomXml(3, "1.0", "My Device")).ok());
    ASSERT_TRUE(registry->AddCustom(CustomXml(10252, "1.0", "Gone")).ok());
    ASSERT_TRUE(registry->RemoveCustom(10252, "1.0").ok());
    absl::StatusOr<std::optional<std::string>> stored =
        store->Get(store::Table::kObjects, "10250:1.0");
    ASSERT_TRUE(stored.ok());
    ASSERT_TRUE(stored->has_value());
    EXPECT_EQ(**stored, CustomXml(10250, "1.0", "Meter"));
    // A value that no longer parses (written by hand here) is skipped at the next start.
    store::WriteBatch batch;
    batch.Put(store::Table::kObjects, "10253:1.0", "<LWM2M><Object>");
    batch.Put(store::Table::kObjects, "10254:1.0", CustomXml(10255, "1.0", "Misfiled"));
    ASSERT_TRUE(store->Write(std::move(batch)).ok());
  }
  std::unique_ptr<store::Store> store = dir.Open();
  ASSERT_NE(store, nullptr);
  std::unique_ptr<ObjectRegistry> registry = MakeRegistry(store.get());
  ASSERT_NE(registry, nullptr);
  std::shared_ptr<const ObjectCatalog> catalog = registry->snapshot();
  ASSERT_NE(catalog->Find(10250), nullptr);
  EXPECT_EQ(catalog->Find(10250)->name, "Meter");
  EXPECT_EQ(catalog->Find(3)->name, "My Device");
  EXPECT_EQ(catalog->Find(10252), nullptr);
  EXPECT_EQ(catalog->Find(10253), nullptr);
  EXPECT_EQ(catalog->Find(10255), nullptr);

  ASSERT_TRUE(registry->RemoveCustom(3, "1.0").ok());
  absl::StatusOr<std::optional<std::string>> stored = store->Get(store::Table::kObjects, "3:1.0");
  ASSERT_TRUE(stored.ok());
  EXPECT_FALSE(stored->has_value());
}

}  // namespace
}  // namespace lwm2md::lwm2m
