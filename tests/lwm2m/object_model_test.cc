#include "lwm2m/object_model.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/builtin_objects.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::HasSubstr;

TEST(NameToKeyTest, ReferenceKeys) {
  // The keys of the reference's data event sample, and names of the core objects.
  EXPECT_EQ(NameToKey("Battery Level"), "battery_level");
  EXPECT_EQ(NameToKey("Supported Binding and Modes"), "supported_binding_and_modes");
  EXPECT_EQ(NameToKey("Device"), "device");
  EXPECT_EQ(NameToKey("Firmware Version"), "firmware_version");
  EXPECT_EQ(NameToKey("Error Code"), "error_code");
  EXPECT_EQ(NameToKey("Timezone"), "timezone");
  EXPECT_EQ(NameToKey("UTC Offset"), "utc_offset");
  EXPECT_EQ(NameToKey("Memory Free"), "memory_free");
  EXPECT_EQ(NameToKey("LwM2M Server URI"), "lwm2m_server_uri");
  EXPECT_EQ(NameToKey("Connectivity Monitoring"), "connectivity_monitoring");
  EXPECT_EQ(NameToKey("Min Measured Value"), "min_measured_value");
  EXPECT_EQ(NameToKey("Short Server ID"), "short_server_id");
  EXPECT_EQ(NameToKey("SMS Binding Key Parameters"), "sms_binding_key_parameters");
  EXPECT_EQ(NameToKey("Notification Storing When Disabled or Offline"),
            "notification_storing_when_disabled_or_offline");
}

TEST(NameToKeyTest, PunctuationCollapsesAndTrims) {
  EXPECT_EQ(NameToKey("SMS Binding Secret Key(s)"), "sms_binding_secret_key_s");
  EXPECT_EQ(NameToKey("DTLS/TLS Ciphersuite"), "dtls_tls_ciphersuite");
  EXPECT_EQ(NameToKey("Bootstrap-Server"), "bootstrap_server");
  EXPECT_EQ(NameToKey("TLS 1.3 Features"), "tls_1_3_features");
  EXPECT_EQ(NameToKey("On/Off"), "on_off");
  EXPECT_EQ(NameToKey("Reset Min & Max"), "reset_min_max");
  EXPECT_EQ(NameToKey("LWM2M  Server URI"), "lwm2m_server_uri");  // 0.xml's double space
  EXPECT_EQ(NameToKey("  (Leading) and trailing...  "), "leading_and_trailing");
  EXPECT_EQ(NameToKey(std::string("Temperature \xC2\xB0") + "C"), "temperature_c");  // UTF-8 °
  EXPECT_EQ(NameToKey("ExtDevInfo"), "extdevinfo");
  EXPECT_EQ(NameToKey(""), "");
  EXPECT_EQ(NameToKey("--"), "");
}

ResourceDefinition Resource(uint16_t id, std::string name) {
  ResourceDefinition resource;
  resource.id = id;
  resource.name = std::move(name);
  return resource;
}

TEST(FinishDefinitionTest, SortsAndAssignsKeys) {
  ObjectDefinition object;
  object.id = 3;
  object.name = "Device";
  object.resources = {Resource(9, "Battery Level"), Resource(0, "Manufacturer"),
                      Resource(16, "Supported Binding and Modes")};
  ASSERT_TRUE(FinishDefinition(object).ok());
  EXPECT_EQ(object.key, "device");
  ASSERT_EQ(object.resources.size(), 3u);
  EXPECT_EQ(object.resources[0].id, 0);
  EXPECT_EQ(object.resources[1].key, "battery_level");
  EXPECT_EQ(object.resources[2].id, 16);
}

TEST(FinishDefinitionTest, DisambiguatesCollidingKeysByIdOrder) {
  ObjectDefinition object;
  object.id = 10250;
  object.name = "Meter";
  object.resources = {Resource(7, "Value"),   Resource(5, "value"), Resource(9, "VALUE!"),
                      Resource(1, "Value 7"), Resource(3, "123"),   Resource(4, "??")};
  ASSERT_TRUE(FinishDefinition(object).ok());
  auto key = [&](uint16_t id) { return object.FindResource(id)->key; };
  EXPECT_EQ(key(1), "value_7");
  EXPECT_EQ(key(5), "value");
  EXPECT_EQ(key(7), "value_7_7");  // value (5) and value_7 (1) were taken
  EXPECT_EQ(key(9), "value_9");
  EXPECT_EQ(key(3), "resource_3");  // all digits: it could be read as an id
  EXPECT_EQ(key(4), "resource_4");  // empty
}

TEST(FinishDefinitionTest, RefusesDuplicateIds) {
  ObjectDefinition object;
  object.id = 1;
  object.name = "X";
  object.resources = {Resource(2, "A"), Resource(2, "B")};
  absl::Status status = FinishDefinition(object);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("duplicate resource id 2"));
}

TEST(FinishDefinitionTest, ObjectKeyFallback) {
  ObjectDefinition object;
  object.id = 77;
  object.name = "%%";
  ASSERT_TRUE(FinishDefinition(object).ok());
  EXPECT_EQ(object.key, "object_77");
}

TEST(ObjectDefinitionTest, FindResourceAndByKey) {
  ObjectDefinition object;
  object.id = 3;
  object.name = "Device";
  for (uint16_t id : {22, 0, 9, 4, 16, 13}) {
    object.resources.push_back(Resource(id, "R" + std::to_string(id)));
  }
  object.resources[2].name = "Battery Level";
  ASSERT_TRUE(FinishDefinition(object).ok());
  for (uint16_t id : {0, 4, 9, 13, 16, 22}) {
    ASSERT_NE(object.FindResource(id), nullptr) << id;
    EXPECT_EQ(object.FindResource(id)->id, id);
  }
  for (uint16_t id : {1, 5, 21, 23, 65534}) EXPECT_EQ(object.FindResource(id), nullptr) << id;

  ASSERT_NE(object.FindResourceByKey("battery_level"), nullptr);
  EXPECT_EQ(object.FindResourceByKey("battery_level")->id, 9);
  ASSERT_NE(object.FindResourceByKey("13"), nullptr);
  EXPECT_EQ(object.FindResourceByKey("13")->id, 13);
  EXPECT_EQ(object.FindResourceByKey("14"), nullptr);
  EXPECT_EQ(object.FindResourceByKey("65535"), nullptr);
  EXPECT_EQ(object.FindResourceByKey("99999999999999999999"), nullptr);
  EXPECT_EQ(object.FindResourceByKey("Battery Level"), nullptr);
  EXPECT_EQ(object.FindResourceByKey(""), nullptr);
  EXPECT_EQ(object.FindResourceByKey("-1"), nullptr);

  ObjectDefinition empty;
  EXPECT_EQ(empty.FindResource(0), nullptr);
  EXPECT_EQ(empty.FindResourceByKey("x"), nullptr);
}

TEST(OperationsTest, ParseAndFormat) {
  EXPECT_EQ(ParseOperations(""), 0);
  EXPECT_EQ(ParseOperations("R"), operation::kRead);
  EXPECT_EQ(ParseOperations("W"), operation::kWrite);
  EXPECT_EQ(ParseOperations("RW"), operation::kRead | operation::kWrite);
  EXPECT_EQ(ParseOperations("E"), operation::kExecute);
  EXPECT_EQ(ParseOperations("WR"), std::nullopt);
  EXPECT_EQ(ParseOperations("RWE"), std::nullopt);
  EXPECT_EQ(ParseOperations("X"), std::nullopt);
  for (const char* text : {"", "R", "W", "RW", "E"}) {
    EXPECT_EQ(OperationsToString(*ParseOperations(text)), text);
  }
  EXPECT_EQ(OperationsToString(operation::kRead | operation::kExecute), "RE");
}

TEST(IdsAndVersionsTest, Parse) {
  EXPECT_EQ(ParseObjectId("0"), 0);
  EXPECT_EQ(ParseObjectId("65534"), 65534);
  EXPECT_EQ(ParseObjectId("65535"), std::nullopt);
  EXPECT_EQ(ParseObjectId("70000"), std::nullopt);
  EXPECT_EQ(ParseObjectId("+3"), std::nullopt);
  EXPECT_EQ(ParseObjectId(" 3"), std::nullopt);
  EXPECT_EQ(ParseObjectId(""), std::nullopt);

  EXPECT_TRUE(IsValidVersion("1.0"));
  EXPECT_TRUE(IsValidVersion("1.12"));
  EXPECT_FALSE(IsValidVersion("1"));
  EXPECT_FALSE(IsValidVersion("1."));
  EXPECT_FALSE(IsValidVersion(".1"));
  EXPECT_FALSE(IsValidVersion("1.1.1"));
  EXPECT_FALSE(IsValidVersion("v1.0"));
  EXPECT_LT(CompareVersions("1.2", "1.10"), 0);
  EXPECT_GT(CompareVersions("2.0", "1.10"), 0);
  EXPECT_EQ(CompareVersions("1.1", "1.1"), 0);
}

// --- the compact built-in form ---

constexpr char kCompactDevice[] = R"(# test
id = 3
name = "Device"
version = "1.2"
lwm2m_version = "1.1"
urn = "urn:oma:lwm2m:oma:3:1.2"
mandatory = true
resources = [
  { id = 9, name = "Battery Level", ops = "R", type = "integer", range = "0..100", units = "/100" },
  { id = 0, name = "Manufacturer", ops = "R", type = "string" },
  { id = 4, name = "Reboot", ops = "E", mandatory = true },
  { id = 11, name = "Error Code", ops = "R", type = "integer", multiple = true, mandatory = true },
]
)";

TEST(BuiltInFormatTest, ParsesWithDefaults) {
  absl::StatusOr<ObjectDefinition> object = ParseBuiltInObject(kCompactDevice, "3-device.toml");
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(object->id, 3);
  EXPECT_EQ(object->name, "Device");
  EXPECT_EQ(object->key, "device");
  EXPECT_EQ(object->version, "1.2");
  EXPECT_EQ(object->lwm2m_version, "1.1");
  EXPECT_EQ(object->urn, "urn:oma:lwm2m:oma:3:1.2");
  EXPECT_FALSE(object->multiple);
  EXPECT_TRUE(object->mandatory);
  ASSERT_EQ(object->resources.size(), 4u);
  EXPECT_EQ(object->resources[0].id, 0);  // sorted
  const ResourceDefinition* battery = object->FindResourceByKey("battery_level");
  ASSERT_NE(battery, nullptr);
  EXPECT_EQ(battery->operations, operation::kRead);
  EXPECT_EQ(battery->type, ResourceType::kInteger);
  EXPECT_EQ(battery->range_enumeration, "0..100");
  EXPECT_EQ(battery->units, "/100");
  EXPECT_FALSE(battery->multiple);
  EXPECT_FALSE(battery->mandatory);
  const ResourceDefinition* reboot = object->FindResource(4);
  EXPECT_EQ(reboot->type, ResourceType::kNone);
  EXPECT_EQ(reboot->operations, operation::kExecute);
  EXPECT_TRUE(reboot->mandatory);
  EXPECT_TRUE(object->FindResource(11)->multiple);
}

TEST(BuiltInFormatTest, MinimalObjectDefaults) {
  absl::StatusOr<ObjectDefinition> object =
      ParseBuiltInObject("id = 19\nname = \"X\"\nresources = []\n", "x.toml");
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(object->version, "1.0");
  EXPECT_EQ(object->lwm2m_version, "1.0");
  EXPECT_FALSE(object->multiple);
  EXPECT_FALSE(object->mandatory);
}

std::string BuiltInError(std::string_view text) {
  absl::StatusOr<ObjectDefinition> object = ParseBuiltInObject(text, "objects/x.toml");
  EXPECT_FALSE(object.ok());
  return object.ok() ? "" : std::string(object.status().message());
}

TEST(BuiltInFormatTest, ErrorsNameFileLineAndKey) {
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nresources = [\n"
                           "  { id = 0, name = \"M\", ops = \"R\", type = \"strin\" },\n]\n"),
              HasSubstr("objects/x.toml:4: resources[0].type: unknown type \"strin\""));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nresources = [\n"
                           "  { id = 0, name = \"M\", ops = \"RX\" },\n]\n"),
              HasSubstr("objects/x.toml:4: resources[0].ops: \"RX\" is not one of"));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nmandatroy = true\nresources = []\n"),
              HasSubstr("objects/x.toml:3: mandatroy: unknown key"));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nresources = [\n"
                           "  { id = 0, name = \"M\", unit = \"s\" },\n]\n"),
              HasSubstr("objects/x.toml:4: resources[0].unit: unknown key"));
  EXPECT_THAT(BuiltInError("id = 65535\nname = \"D\"\nresources = []\n"),
              HasSubstr("objects/x.toml:1: id: 65535 is not an id 0..65534"));
  EXPECT_THAT(BuiltInError("id = \"3\"\nname = \"D\"\nresources = []\n"),
              HasSubstr("objects/x.toml:1: id: expected an integer, got a string"));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nversion = 1.1\nresources = []\n"),
              HasSubstr("objects/x.toml:3: version: expected a string, got a float"));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nversion = \"1\"\nresources = []\n"),
              HasSubstr("objects/x.toml:3: version: \"1\" is not a version"));
  EXPECT_THAT(BuiltInError("id = 3\nresources = []\n"),
              HasSubstr("objects/x.toml:1: name: missing"));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\n"), HasSubstr("resources: missing"));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nresources = [\n"
                           "  { id = 1, name = \"A\" },\n"
                           "  { id = 1, name = \"B\" },\n]\n"),
              HasSubstr("objects/x.toml:5: resources[1].id: duplicate resource id 1 (first on "
                        "line 4)"));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nresources = [ 1 ]\n"),
              HasSubstr("objects/x.toml:3: resources[0]: expected a table, got an integer"));
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\"\nresources = [ { id = 1, name = \"A\", "
                           "multiple = \"yes\" } ]\n"),
              HasSubstr("resources[0].multiple: expected a boolean, got a string"));
  // Syntax errors come from toml++ with their line.
  EXPECT_THAT(BuiltInError("id = 3\nname = \"D\nresources = []\n"),
              HasSubstr("objects/x.toml:2: "));
}

TEST(BuiltInFormatTest, ReportsEveryError) {
  std::string message =
      BuiltInError("id = -1\nname = 5\nresources = [ { id = 0, name = \"A\", type = \"x\" } ]\n");
  EXPECT_THAT(message, HasSubstr(":1: id:"));
  EXPECT_THAT(message, HasSubstr(":2: name:"));
  EXPECT_THAT(message, HasSubstr(":3: resources[0].type:"));
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "objects-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ + "/" + name) << text;
  }

 private:
  std::string path_;
};

TEST(LoadBuiltInObjectsTest, ReadsEveryTomlFileInIdOrder) {
  TempDir dir;
  dir.Write("b.toml", "id = 5\nname = \"B\"\nresources = []\n");
  dir.Write("a.toml", "id = 7\nname = \"A\"\nresources = []\n");
  dir.Write("a2.toml", "id = 5\nname = \"B\"\nversion = \"1.1\"\nresources = []\n");
  dir.Write("README.md", "not an object");
  absl::StatusOr<std::vector<ObjectDefinition>> objects = LoadBuiltInObjects(dir.path());
  ASSERT_TRUE(objects.ok()) << objects.status();
  ASSERT_EQ(objects->size(), 3u);
  EXPECT_EQ((*objects)[0].id, 5);
  EXPECT_EQ((*objects)[0].version, "1.0");
  EXPECT_EQ((*objects)[1].version, "1.1");
  EXPECT_EQ((*objects)[2].id, 7);
}

TEST(LoadBuiltInObjectsTest, ErrorsNameTheFiles) {
  TempDir dir;
  dir.Write("1-a.toml", "id = 5\nname = \"A\"\nresources = []\n");
  dir.Write("2-b.toml", "id = 5\nname = \"B\"\nresources = []\n");
  dir.Write("3-c.toml",
            "id = 6\nname = \"C\"\nresources = [ { id = 0, name = \"x\", ops = 1 } ]\n");
  absl::StatusOr<std::vector<ObjectDefinition>> objects = LoadBuiltInObjects(dir.path());
  ASSERT_FALSE(objects.ok());
  EXPECT_THAT(std::string(objects.status().message()),
              HasSubstr("2-b.toml: object 5 version 1.0 is already defined in " + dir.path() +
                        "/1-a.toml"));
  EXPECT_THAT(std::string(objects.status().message()),
              HasSubstr("3-c.toml:3: resources[0].ops: expected a string, got an integer"));
}

TEST(LoadBuiltInObjectsTest, MissingOrEmptyDirectory) {
  absl::StatusOr<std::vector<ObjectDefinition>> objects =
      LoadBuiltInObjects("/nonexistent/objects");
  ASSERT_FALSE(objects.ok());
  EXPECT_THAT(std::string(objects.status().message()),
              HasSubstr("/nonexistent/objects: cannot read"));
  TempDir dir;
  objects = LoadBuiltInObjects(dir.path());
  ASSERT_FALSE(objects.ok());
  EXPECT_THAT(std::string(objects.status().message()), HasSubstr("no object definitions"));
}

// The definitions shipped in config/objects.
TEST(ShippedObjectsTest, LoadAndHoldTheReferenceKeys) {
  absl::StatusOr<std::vector<ObjectDefinition>> objects =
      LoadBuiltInObjects(LWM2MD_SOURCE_DIR "/config/objects");
  ASSERT_TRUE(objects.ok()) << objects.status();
  std::vector<uint16_t> ids;
  for (const ObjectDefinition& object : *objects) ids.push_back(object.id);
  for (uint16_t id : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 19, 3303, 3441}) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << "missing object " << id;
  }
  const ObjectDefinition* device = nullptr;
  for (const ObjectDefinition& object : *objects) {
    if (object.id == 3) device = &object;
  }
  ASSERT_NE(device, nullptr);
  EXPECT_EQ(device->key, "device");
  // Every key of the reference's data event sample for object 3.
  for (const char* key :
       {"battery_level", "battery_status", "current_time", "device_type", "error_code",
        "firmware_version", "hardware_version", "manufacturer", "memory_free", "memory_total",
        "model_number", "serial_number", "software_version", "supported_binding_and_modes",
        "timezone", "utc_offset"}) {
    EXPECT_NE(device->FindResourceByKey(key), nullptr) << key;
  }
  EXPECT_EQ(device->FindResourceByKey("battery_level")->id, 9);
  EXPECT_EQ(device->FindResourceByKey("supported_binding_and_modes")->id, 16);
  EXPECT_TRUE(device->FindResourceByKey("error_code")->multiple);
}

}  // namespace
}  // namespace lwm2md::lwm2m
