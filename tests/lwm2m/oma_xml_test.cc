#include "lwm2m/oma_xml.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/builtin_objects.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The OMA registry's files, beside the repository (../shared/objects); absent on machines
// without that folder, where the tests that need them skip.
const std::filesystem::path kSharedObjects = LWM2MD_SOURCE_DIR "/../shared/objects";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

std::vector<std::filesystem::path> SharedXmlFiles() {
  std::vector<std::filesystem::path> files;
  std::error_code error;
  for (std::filesystem::directory_iterator it(kSharedObjects, error), end; !error && it != end;
       it.increment(error)) {
    if (it->path().extension() == ".xml") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

#define SKIP_WITHOUT_SHARED_OBJECTS()                                     \
  if (SharedXmlFiles().empty()) {                                         \
    GTEST_SKIP() << "no OMA object files in " << kSharedObjects.string(); \
  }

ObjectDefinition LoadShared(const char* name) {
  absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(ReadFile(kSharedObjects / name));
  EXPECT_TRUE(object.ok()) << name << ": " << object.status();
  return object.ok() ? *std::move(object) : ObjectDefinition{};
}

TEST(OmaXmlSharedTest, EveryRegistryFileLoads) {
  SKIP_WITHOUT_SHARED_OBJECTS();
  int loaded = 0;
  for (const std::filesystem::path& path : SharedXmlFiles()) {
    absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(ReadFile(path));
    ASSERT_TRUE(object.ok()) << path << ": " << object.status();
    EXPECT_FALSE(object->resources.empty()) << path;
    EXPECT_TRUE(std::is_sorted(
        object->resources.begin(), object->resources.end(),
        [](const ResourceDefinition& a, const ResourceDefinition& b) { return a.id < b.id; }))
        << path;
    ++loaded;
  }
  EXPECT_GE(loaded, 17);
}

TEST(OmaXmlSharedTest, Device) {
  SKIP_WITHOUT_SHARED_OBJECTS();
  ObjectDefinition device = LoadShared("3.xml");
  EXPECT_EQ(device.id, 3);
  EXPECT_EQ(device.name, "Device");
  EXPECT_EQ(device.key, "device");
  EXPECT_EQ(device.version, "1.2");
  EXPECT_EQ(device.lwm2m_version, "1.1");
  EXPECT_EQ(device.urn, "urn:oma:lwm2m:oma:3:1.2");
  EXPECT_FALSE(device.multiple);
  EXPECT_TRUE(device.mandatory);
  EXPECT_THAT(device.description, StartsWith("This LwM2M Object provides"));
  const ResourceDefinition* battery = device.FindResource(9);
  ASSERT_NE(battery, nullptr);
  EXPECT_EQ(battery->name, "Battery Level");
  EXPECT_EQ(battery->key, "battery_level");
  EXPECT_EQ(battery->type, ResourceType::kInteger);
  EXPECT_EQ(battery->operations, operation::kRead);
  EXPECT_EQ(battery->range_enumeration, "0..100");
  EXPECT_EQ(battery->units, "/100");  // 1.2 writes percentages as "/100"
  EXPECT_FALSE(battery->multiple);
  EXPECT_FALSE(battery->mandatory);
  EXPECT_EQ(device.FindResourceByKey("supported_binding_and_modes")->id, 16);
  const ResourceDefinition* reboot = device.FindResource(4);
  EXPECT_EQ(reboot->operations, operation::kExecute);
  EXPECT_EQ(reboot->type, ResourceType::kNone);
  EXPECT_TRUE(reboot->mandatory);
  EXPECT_TRUE(device.FindResource(11)->multiple);
  EXPECT_EQ(device.FindResource(22)->type, ResourceType::kObjlnk);
}

TEST(OmaXmlSharedTest, DeviceVersion10) {
  SKIP_WITHOUT_SHARED_OBJECTS();
  ObjectDefinition device = LoadShared("3-1_0.xml");
  EXPECT_EQ(device.version, "1.0");  // no <ObjectVersion>
  EXPECT_EQ(device.lwm2m_version, "1.0");
  const ResourceDefinition* battery = device.FindResourceByKey("battery_level");
  ASSERT_NE(battery, nullptr);
  EXPECT_EQ(battery->range_enumeration, "0-100");
  EXPECT_EQ(battery->units, "%");
}

TEST(OmaXmlSharedTest, SecurityTypes) {
  SKIP_WITHOUT_SHARED_OBJECTS();
  ObjectDefinition security = LoadShared("0.xml");
  EXPECT_EQ(security.key, "lwm2m_security");
  EXPECT_TRUE(security.multiple);
  EXPECT_EQ(security.FindResource(0)->key, "lwm2m_server_uri");  // "LWM2M  Server URI"
  EXPECT_EQ(security.FindResource(0)->type, ResourceType::kString);
  EXPECT_EQ(security.FindResource(1)->type, ResourceType::kBoolean);
  EXPECT_EQ(security.FindResource(2)->type, ResourceType::kInteger);
  EXPECT_EQ(security.FindResource(3)->type, ResourceType::kOpaque);
  EXPECT_EQ(security.FindResource(5)->type, ResourceType::kOpaque);
  EXPECT_EQ(security.FindResource(13)->type, ResourceType::kUnsignedInteger);
  EXPECT_EQ(security.FindResource(17)->type, ResourceType::kObjlnk);
  EXPECT_EQ(security.FindResource(8)->key, "sms_binding_secret_key_s");
  EXPECT_EQ(security.FindResource(16)->key, "dtls_tls_ciphersuite");
  // The Security object is not accessible to LwM2M servers: no operations at all.
  for (const ResourceDefinition& resource : security.resources) {
    EXPECT_EQ(resource.operations, 0) << resource.id;
  }
}

TEST(OmaXmlSharedTest, TemperatureContainerAndTestObject) {
  SKIP_WITHOUT_SHARED_OBJECTS();
  ObjectDefinition temperature = LoadShared("3303.xml");
  EXPECT_EQ(temperature.FindResource(5700)->type, ResourceType::kFloat);
  EXPECT_EQ(temperature.FindResource(5700)->key, "sensor_value");
  EXPECT_TRUE(temperature.FindResource(5700)->mandatory);
  EXPECT_EQ(temperature.FindResourceByKey("min_measured_value")->id, 5601);

  ObjectDefinition container = LoadShared("19.xml");
  EXPECT_EQ(container.name, "BinaryAppDataContainer");
  EXPECT_TRUE(container.multiple);
  EXPECT_TRUE(container.FindResource(0)->multiple);
  EXPECT_EQ(container.FindResource(0)->type, ResourceType::kOpaque);

  ObjectDefinition test = LoadShared("3441.xml");
  EXPECT_EQ(test.key, "lwm2m_v1_0_test_object");
  EXPECT_EQ(test.FindResource(110)->name, "String Value");
  EXPECT_EQ(test.FindResource(170)->name, "ObjLink Value");
  EXPECT_EQ(test.FindResource(170)->type, ResourceType::kObjlnk);
  EXPECT_EQ(test.FindResource(1130)->key, "multiple_float_value");
  EXPECT_TRUE(test.FindResource(1130)->multiple);
  EXPECT_EQ(test.FindResource(3)->name, "Exec With Arguments");
  EXPECT_EQ(test.resources.size(), 19u);
}

std::string CollapseSpaces(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

// What keeps config/objects honest: every built-in definition that the registry's XML also
// defines (same id and version) must agree with it on everything the server acts on.
TEST(OmaXmlSharedTest, BuiltInDefinitionsMatchTheRegistry) {
  SKIP_WITHOUT_SHARED_OBJECTS();
  absl::StatusOr<std::vector<ObjectDefinition>> built_in =
      LoadBuiltInObjects(LWM2MD_SOURCE_DIR "/config/objects");
  ASSERT_TRUE(built_in.ok()) << built_in.status();
  std::map<std::pair<uint16_t, std::string>, ObjectDefinition> registry;
  for (const std::filesystem::path& path : SharedXmlFiles()) {
    absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(ReadFile(path));
    ASSERT_TRUE(object.ok()) << path;
    registry[{object->id, object->version}] = *std::move(object);
  }
  int compared = 0;
  for (const ObjectDefinition& ours : *built_in) {
    auto it = registry.find({ours.id, ours.version});
    if (it == registry.end()) {
      ADD_FAILURE() << "object " << ours.id << " version " << ours.version
                    << " has no registry file to check it against";
      continue;
    }
    const ObjectDefinition& theirs = it->second;
    SCOPED_TRACE("object " + std::to_string(ours.id));
    EXPECT_EQ(ours.name, CollapseSpaces(theirs.name));
    EXPECT_EQ(ours.key, theirs.key);
    EXPECT_EQ(ours.lwm2m_version, theirs.lwm2m_version);
    EXPECT_EQ(ours.urn, theirs.urn);
    EXPECT_EQ(ours.multiple, theirs.multiple);
    EXPECT_EQ(ours.mandatory, theirs.mandatory);
    ASSERT_EQ(ours.resources.size(), theirs.resources.size());
    for (size_t i = 0; i < ours.resources.size(); ++i) {
      const ResourceDefinition& a = ours.resources[i];
      const ResourceDefinition& b = theirs.resources[i];
      SCOPED_TRACE("resource " + std::to_string(b.id));
      EXPECT_EQ(a.id, b.id);
      EXPECT_EQ(a.name, CollapseSpaces(b.name));
      EXPECT_EQ(a.key, b.key);
      EXPECT_EQ(a.operations, b.operations);
      EXPECT_EQ(a.type, b.type);
      EXPECT_EQ(a.multiple, b.multiple);
      EXPECT_EQ(a.mandatory, b.mandatory);
      EXPECT_EQ(a.units, b.units);
    }
    ++compared;
  }
  EXPECT_GE(compared, 13);
}

// --- documents written here ---

// A small valid custom object; tests below break one thing each.
constexpr char kValid[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<LWM2M xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://openmobilealliance.org/tech/profiles/LWM2M-v1_1.xsd">
  <Object ObjectType="MODefinition">
    <Name>Water Meter</Name>
    <Description1>Counts litres.</Description1>
    <ObjectID>10250</ObjectID>
    <ObjectURN>urn:oma:lwm2m:x:10250:1.1</ObjectURN>
    <LWM2MVersion>1.1</LWM2MVersion>
    <ObjectVersion>1.1</ObjectVersion>
    <MultipleInstances>Multiple</MultipleInstances>
    <Mandatory>Optional</Mandatory>
    <Resources>
      <Item ID="1">
        <Name>Volume</Name>
        <Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Mandatory</Mandatory>
        <Type>Unsigned Integer</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units>l</Units>
        <Description><![CDATA[Litres since <install>.]]></Description>
      </Item>
      <Item ID="0">
        <Name>Reset</Name>
        <Operations>E</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type></Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description></Description>
      </Item>
      <Item ID="2">
        <Name>Alarm Links</Name>
        <Operations>RW</Operations>
        <MultipleInstances>Multiple</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>Corelnk</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description></Description>
      </Item>
    </Resources>
    <Description2></Description2>
  </Object>
</LWM2M>
)";

TEST(OmaXmlTest, ParsesAValidObject) {
  absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(kValid);
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(object->id, 10250);
  EXPECT_EQ(object->name, "Water Meter");
  EXPECT_EQ(object->key, "water_meter");
  EXPECT_EQ(object->version, "1.1");
  EXPECT_EQ(object->lwm2m_version, "1.1");
  EXPECT_EQ(object->urn, "urn:oma:lwm2m:x:10250:1.1");
  EXPECT_EQ(object->description, "Counts litres.");
  EXPECT_TRUE(object->multiple);
  EXPECT_FALSE(object->mandatory);
  ASSERT_EQ(object->resources.size(), 3u);
  EXPECT_EQ(object->resources[0].id, 0);
  EXPECT_EQ(object->resources[0].type, ResourceType::kNone);
  EXPECT_EQ(object->resources[0].operations, operation::kExecute);
  const ResourceDefinition& volume = object->resources[1];
  EXPECT_EQ(volume.key, "volume");
  EXPECT_EQ(volume.type, ResourceType::kUnsignedInteger);
  EXPECT_TRUE(volume.mandatory);
  EXPECT_EQ(volume.units, "l");
  EXPECT_EQ(volume.description, "Litres since <install>.");
  EXPECT_EQ(object->resources[2].type, ResourceType::kCorelnk);
  EXPECT_EQ(object->resources[2].operations, operation::kRead | operation::kWrite);
  EXPECT_TRUE(object->resources[2].multiple);
}

std::string Replace(std::string_view from, std::string_view to) {
  std::string xml(kValid);
  size_t at = xml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) xml.replace(at, from.size(), to);
  return xml;
}

// 1-based line of the first occurrence of marker in xml.
int LineOf(const std::string& xml, std::string_view marker) {
  size_t at = xml.find(marker);
  EXPECT_NE(at, std::string::npos) << marker;
  return 1 +
         static_cast<int>(std::count(xml.begin(), xml.begin() + std::min(at, xml.size()), '\n'));
}

// Parses xml, expects a refusal that starts with the line of marker and contains text.
void ExpectError(const std::string& xml, std::string_view marker, std::string_view text) {
  absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(xml);
  ASSERT_FALSE(object.ok()) << "accepted; expected: " << text;
  EXPECT_EQ(object.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(object.status().message()),
              StartsWith("line " + std::to_string(LineOf(xml, marker)) + ": "));
  EXPECT_THAT(std::string(object.status().message()), HasSubstr(std::string(text)));
}

TEST(OmaXmlTest, LenientWhereTheSchemaOnlyDocuments) {
  // No Description1/2, URN, versions, RangeEnumeration, Units or Description; unknown
  // elements; enumerations in another case and with spaces; a BOM.
  std::string xml =
      "\xEF\xBB\xBF<LWM2M><Object><Name> Minimal </Name><ObjectID> 32769 </ObjectID>"
      "<Extra>ignored</Extra><MultipleInstances>single</MultipleInstances>"
      "<Mandatory> OPTIONAL </Mandatory><Resources><Item ID=\"5\"><Name>Value</Name>"
      "<Operations>rw</Operations><MultipleInstances>Single</MultipleInstances>"
      "<Mandatory>Optional</Mandatory><Type>float</Type><Future/></Item></Resources>"
      "</Object></LWM2M>";
  absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(xml);
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(object->id, 32769);
  EXPECT_EQ(object->name, "Minimal");
  EXPECT_EQ(object->version, "1.0");
  EXPECT_EQ(object->lwm2m_version, "1.0");
  EXPECT_FALSE(object->multiple);
  EXPECT_EQ(object->FindResource(5)->type, ResourceType::kFloat);
  EXPECT_EQ(object->FindResource(5)->operations, operation::kRead | operation::kWrite);
}

TEST(OmaXmlTest, ExecutableMayCarryAType) {
  // Neither schema ties Type to Operations.
  std::string xml = Replace("<Type></Type>", "<Type>String</Type>");
  absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(xml);
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(object->FindResource(0)->type, ResourceType::kString);
}

TEST(OmaXmlTest, EmptyVersionElementsMeanOneZero) {
  std::string xml = Replace("<ObjectVersion>1.1</ObjectVersion>", "<ObjectVersion/>");
  absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(xml);
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(object->version, "1.0");
}

TEST(OmaXmlTest, CollidingResourceNamesGetDistinctKeys) {
  std::string xml = Replace("<Name>Alarm Links</Name>", "<Name>volume</Name>");
  absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(xml);
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(object->FindResource(1)->key, "volume");
  EXPECT_EQ(object->FindResource(2)->key, "volume_2");
}

TEST(OmaXmlTest, RefusesMalformedXml) {
  ExpectError(Replace("<Units>l</Units>", "<Units>l</Unit>"), "<Units>l</Unit>",
              "not well-formed XML");
  ExpectError(Replace("<Item ID=\"2\">", "<Item ID=\"2>"), "<Item ID=\"2>", "not well-formed XML");
  absl::StatusOr<ObjectDefinition> empty = ParseOmaObjectXml("");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(std::string(empty.status().message()), StartsWith("line 1: "));
  // pugixml reports a missing root at the end of the text.
  absl::StatusOr<ObjectDefinition> no_root =
      ParseOmaObjectXml("<?xml version=\"1.0\"?>\n<!-- nothing -->\n");
  ASSERT_FALSE(no_root.ok());
  EXPECT_EQ(no_root.status().message(), "line 3: not well-formed XML: No document element found");
}

TEST(OmaXmlTest, RefusesTheWrongShape) {
  ExpectError("<?xml version=\"1.0\"?>\n<Objects><Object/></Objects>\n", "<Objects>",
              "<Objects>: the root element must be <LWM2M>");
  ExpectError("<LWM2M>\n</LWM2M>\n", "<LWM2M>", "<LWM2M>: missing <Object>");
  std::string object = std::string(kValid).substr(std::string(kValid).find("  <Object "));
  object = object.substr(0, object.find("</LWM2M>"));
  object = absl::StrReplaceAll(object, {{"MODefinition", "Second"}});
  ExpectError(Replace("</Object>\n", "</Object>\n" + object), "<Object ObjectType=\"Second\">",
              "<Object>: a second object (the first is on line 3)");
}

TEST(OmaXmlTest, RefusesMissingRequiredElements) {
  std::string xml = Replace("    <ObjectID>10250</ObjectID>\n", "");
  ExpectError(xml, "<Object ", "<Object>: missing <ObjectID>");
  xml = Replace("        <Type>Unsigned Integer</Type>\n", "");
  ExpectError(xml, "<Item ID=\"1\">", "<Item> of resource 1: missing <Type>");
  xml = Replace("    <Resources>", "    <Resource>");
  xml = absl::StrReplaceAll(xml, {{"</Resources>", "</Resource>"}});
  ExpectError(xml, "<Object ", "<Object>: missing <Resources>");
  ExpectError(Replace("<Item ID=\"1\">", "<Item>"), "<Item>", "<Item>: missing the ID attribute");
}

TEST(OmaXmlTest, RefusesBadIds) {
  ExpectError(Replace("<ObjectID>10250</ObjectID>", "<ObjectID>abc</ObjectID>"), "<ObjectID>",
              "<ObjectID>: \"abc\" is not an object id 0..65534");
  ExpectError(Replace("<ObjectID>10250</ObjectID>", "<ObjectID>65535</ObjectID>"), "<ObjectID>",
              "\"65535\" is not an object id");
  ExpectError(Replace("<ObjectID>10250</ObjectID>", "<ObjectID>-3</ObjectID>"), "<ObjectID>",
              "\"-3\" is not an object id");
  ExpectError(Replace("<ObjectID>10250</ObjectID>", "<ObjectID></ObjectID>"), "<ObjectID>",
              "\"\" is not an object id");
  ExpectError(Replace("<Item ID=\"2\">", "<Item ID=\"70000\">"), "<Item ID=\"70000\">",
              "<Item>: ID \"70000\" is not a resource id 0..65534");
  ExpectError(Replace("<Item ID=\"2\">", "<Item ID=\"1\">"), "<Item ID=\"1\">\n        <Name>Alarm",
              "<Item>: duplicate resource ID 1 (first on line " +
                  std::to_string(LineOf(kValid, "<Item ID=\"1\">")) + ")");
}

TEST(OmaXmlTest, RefusesBadEnumerations) {
  ExpectError(Replace("<Type>Unsigned Integer</Type>", "<Type>Strng</Type>"), "<Type>Strng",
              "<Type> of resource 1: unknown type \"Strng\"");
  ExpectError(Replace("<Operations>RW</Operations>", "<Operations>RWX</Operations>"),
              "<Operations>RWX", "<Operations> of resource 2: \"RWX\" is not one of R, W, RW, E");
  ExpectError(Replace("<MultipleInstances>Multiple</MultipleInstances>",
                      "<MultipleInstances>Many</MultipleInstances>"),
              "<MultipleInstances>Many",
              "<MultipleInstances>: \"Many\" is neither \"Multiple\" nor \"Single\"");
  ExpectError(Replace("<Mandatory>Mandatory</Mandatory>", "<Mandatory>Yes</Mandatory>"),
              "<Mandatory>Yes",
              "<Mandatory> of resource 1: \"Yes\" is neither \"Mandatory\" nor \"Optional\"");
  ExpectError(Replace("<ObjectVersion>1.1</ObjectVersion>", "<ObjectVersion>v2</ObjectVersion>"),
              "<ObjectVersion>", "<ObjectVersion>: \"v2\" is not a version");
  ExpectError(Replace("<LWM2MVersion>1.1</LWM2MVersion>", "<LWM2MVersion>1.1.1</LWM2MVersion>"),
              "<LWM2MVersion>", "<LWM2MVersion>: \"1.1.1\" is not a version");
}

TEST(OmaXmlTest, RefusesRepeatsAndNestedElements) {
  ExpectError(Replace("<Name>Water Meter</Name>", "<Name>Water Meter</Name>\n<Name>Again</Name>"),
              "<Name>Again", "<Name>: appears twice (first on line 4)");
  ExpectError(Replace("<Units>l</Units>", "<Units>l</Units><Units>m</Units>"), "<Units>l",
              "<Units> of resource 1: appears twice");
  ExpectError(Replace("<Name>Volume</Name>", "<Name><b>Volume</b></Name>"), "<b>",
              "<b> of resource 1: unexpected element inside <Name>");
}

TEST(OmaXmlTest, LinesCountFromTheStartOfTheText) {
  // The error is on line 7 whatever comes before it on earlier lines.
  std::string xml = "\n\n\n\n\n<LWM2M><Object>\n<ObjectID>x</ObjectID></Object></LWM2M>";
  absl::StatusOr<ObjectDefinition> object = ParseOmaObjectXml(xml);
  ASSERT_FALSE(object.ok());
  // <Name> is checked before the id's value: the missing Name is reported on <Object>.
  EXPECT_THAT(std::string(object.status().message()),
              StartsWith("line 6: <Object>: missing <Name>"));
}

}  // namespace
}  // namespace lwm2md::lwm2m
