// /api/v1/objects over a real socket, with a registry over a real store in a temporary
// directory.

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "api/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/builtin_objects.h"
#include "lwm2m/object_registry.h"
#include "store/store.h"

namespace lwm2md::api {
namespace {

using ::testing::HasSubstr;

constexpr char kXml[] = "application/xml";
constexpr char kToken[] = "object-routes-test-token-0123456789";

// A custom object written for these tests.
std::string MeterXml(const std::string& name = "Water Meter", int id = 10250,
                     const std::string& version = "1.0") {
  return absl::StrCat(R"(<?xml version="1.0" encoding="UTF-8"?>
<LWM2M xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://openmobilealliance.org/tech/profiles/LWM2M.xsd">
  <Object ObjectType="MODefinition">
    <Name>)",
                      name, R"(</Name>
    <Description1>Counts litres.</Description1>
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
        <Name>Volume</Name>
        <Operations>RW</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Mandatory</Mandatory>
        <Type>Integer</Type>
        <RangeEnumeration>0..1000000</RangeEnumeration>
        <Units>l</Units>
        <Description>Litres so far.</Description>
      </Item>
      <Item ID="1">
        <Name>Reset</Name>
        <Operations>E</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type></Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description></Description>
      </Item>
    </Resources>
    <Description2></Description2>
  </Object>
</LWM2M>
)");
}

class ObjectRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "object-routes-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    OpenStore();
    StartServer();
  }

  void TearDown() override {
    server_.reset();
    registry_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void OpenStore() {
    store::Options options;
    options.path = dir_;
    options.map_size_bytes = uint64_t{64} << 20;
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  void StartServer() {
    absl::StatusOr<std::vector<lwm2m::ObjectDefinition>> built_in =
        lwm2m::LoadBuiltInObjects(LWM2MD_SOURCE_DIR "/config/objects");
    ASSERT_TRUE(built_in.ok()) << built_in.status();
    absl::StatusOr<std::unique_ptr<lwm2m::ObjectRegistry>> registry =
        lwm2m::ObjectRegistry::Create(*std::move(built_in), store_.get());
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
        {.address = "127.0.0.1", .port = 0, .tokens = {MakeApiToken("test", kToken)}},
        {.objects = registry_.get()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Stops everything and starts again over the same store directory.
  void Restart() {
    server_.reset();
    registry_.reset();
    store_.reset();
    OpenStore();
    StartServer();
  }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_bearer_token_auth(kToken);
    return client;
  }

  // Sends request on a fresh connection and returns what comes back until the server closes.
  std::string RawRequest(const std::string& request) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(server_->port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string reply;
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
        send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) reply.append(buffer, n);
    }
    close(fd);
    return reply;
  }

  httplib::Result Upload(const std::string& xml, const char* type = kXml) {
    return Client().Post("/api/v1/objects", xml, type);
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<lwm2m::ObjectRegistry> registry_;
  std::unique_ptr<HttpServer> server_;
  simdjson::dom::parser parser_;
};

TEST_F(ObjectRoutesTest, ListsTheBuiltIns) {
  httplib::Result result = Client().Get("/api/v1/objects");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "application/json");
  simdjson::dom::element doc;
  ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS) << result->body;
  simdjson::dom::array objects;
  ASSERT_EQ(doc["objects"].get(objects), simdjson::SUCCESS);
  bool found_device = false;
  for (simdjson::dom::element object : objects) {
    if (uint64_t(object["id"]) != 3) continue;
    found_device = true;
    EXPECT_EQ(std::string_view(object["name"]), "Device");
    EXPECT_EQ(std::string_view(object["key"]), "device");
    EXPECT_EQ(std::string_view(object["version"]), "1.2");
    EXPECT_FALSE(bool(object["custom"]));
    EXPECT_TRUE(bool(object["active"]));
    EXPECT_EQ(uint64_t(object["resourceCount"]), 23u);
  }
  EXPECT_TRUE(found_device);
  EXPECT_GE(objects.size(), 13u);
}

TEST_F(ObjectRoutesTest, GetsADefinitionByIdOrKey) {
  for (const char* path :
       {"/api/v1/objects/3", "/api/v1/objects/device", "/api/v1/objects/3?version=1.2"}) {
    httplib::Result result = Client().Get(path);
    ASSERT_TRUE(result);
    ASSERT_EQ(result->status, 200) << path << ": " << result->body;
    simdjson::dom::element doc;
    ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS);
    EXPECT_EQ(uint64_t(doc["id"]), 3u);
    EXPECT_TRUE(bool(doc["mandatory"]));
    simdjson::dom::array resources = doc["resources"];
    bool found = false;
    for (simdjson::dom::element resource : resources) {
      if (uint64_t(resource["id"]) != 9) continue;
      found = true;
      EXPECT_EQ(std::string_view(resource["name"]), "Battery Level");
      EXPECT_EQ(std::string_view(resource["key"]), "battery_level");
      EXPECT_EQ(std::string_view(resource["operations"]), "R");
      EXPECT_EQ(std::string_view(resource["type"]), "integer");
      EXPECT_EQ(std::string_view(resource["range"]), "0..100");
      EXPECT_EQ(std::string_view(resource["units"]), "/100");
      EXPECT_FALSE(bool(resource["multiple"]));
      EXPECT_FALSE(bool(resource["mandatory"]));
    }
    EXPECT_TRUE(found);
  }
  httplib::Result result = Client().Get("/api/v1/objects/3?version=1.7");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  EXPECT_THAT(result->body, HasSubstr("no version 1.7"));
  result = Client().Get("/api/v1/objects/8");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  result = Client().Get("/api/v1/objects/nothing");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  // Built-ins have no uploaded XML.
  result = Client().Get("/api/v1/objects/3/xml");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  EXPECT_THAT(result->body, HasSubstr("built in"));
}

TEST_F(ObjectRoutesTest, UploadGetListDelete) {
  httplib::Result result = Upload(MeterXml());
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 201) << result->body;
  EXPECT_EQ(result->get_header_value("Location"), "/api/v1/objects/10250?version=1.0");
  simdjson::dom::element doc;
  ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS);
  EXPECT_EQ(uint64_t(doc["id"]), 10250u);
  EXPECT_EQ(std::string_view(doc["key"]), "water_meter");
  EXPECT_TRUE(bool(doc["custom"]));
  EXPECT_TRUE(bool(doc["active"]));
  EXPECT_TRUE(bool(doc["multiple"]));
  EXPECT_EQ(std::string_view(doc["description"]), "Counts litres.");
  simdjson::dom::array resources = doc["resources"];
  ASSERT_EQ(resources.size(), 2u);
  EXPECT_EQ(std::string_view(resources.at(0)["operations"]), "RW");
  EXPECT_EQ(std::string_view(resources.at(0)["units"]), "l");
  EXPECT_EQ(std::string_view(resources.at(0)["range"]), "0..1000000");
  EXPECT_EQ(std::string_view(resources.at(1)["operations"]), "E");
  EXPECT_EQ(std::string_view(resources.at(1)["type"]), "none");

  EXPECT_EQ(registry_->snapshot()->Find(10250)->name, "Water Meter");

  result = Client().Get("/api/v1/objects/water_meter");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_THAT(result->body, HasSubstr("\"custom\":true"));

  result = Client().Get("/api/v1/objects/10250/xml");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, MeterXml());
  EXPECT_THAT(result->get_header_value("Content-Type"), HasSubstr("application/xml"));

  result = Client().Get("/api/v1/objects");
  ASSERT_TRUE(result);
  EXPECT_THAT(result->body, HasSubstr("\"id\":10250,\"name\":\"Water Meter\""));

  result = Client().Delete("/api/v1/objects/10250?version=1.0");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 204);
  EXPECT_EQ(registry_->snapshot()->Find(10250), nullptr);
  result = Client().Delete("/api/v1/objects/10250");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  result = Client().Get("/api/v1/objects/10250");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
}

TEST_F(ObjectRoutesTest, OverrideOfABuiltInAndBack) {
  std::string xml = MeterXml("Custom Device", 3, "1.2");
  httplib::Result result = Upload(xml, "text/xml; charset=utf-8");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 201) << result->body;
  std::shared_ptr<const lwm2m::ObjectCatalog> catalog = registry_->snapshot();
  EXPECT_EQ(catalog->Find(3)->name, "Custom Device");
  EXPECT_TRUE(catalog->IsCustom(3));

  result = Client().Get("/api/v1/objects/3");
  ASSERT_TRUE(result);
  EXPECT_THAT(result->body, HasSubstr("\"name\":\"Custom Device\""));
  result = Client().Get("/api/v1/objects/3/xml");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->body, xml);

  // Without ?version= the only custom version is meant.
  result = Client().Delete("/api/v1/objects/3");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 204);
  catalog = registry_->snapshot();
  EXPECT_EQ(catalog->Find(3)->name, "Device");
  EXPECT_FALSE(catalog->IsCustom(3));

  // The built-in one stays.
  result = Client().Delete("/api/v1/objects/3");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 409);
  EXPECT_THAT(result->body, HasSubstr("built in and cannot be deleted"));
  result = Client().Delete("/api/v1/objects/3?version=1.2");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 409);
  result = Client().Delete("/api/v1/objects/3?version=1.1");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
  result = Client().Delete("/api/v1/objects/999");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 404);
}

TEST_F(ObjectRoutesTest, SeveralCustomVersionsNeedAVersionToDelete) {
  ASSERT_EQ(Upload(MeterXml("Meter", 10250, "1.0"))->status, 201);
  ASSERT_EQ(Upload(MeterXml("Meter", 10250, "1.1"))->status, 201);
  httplib::Result result = Client().Delete("/api/v1/objects/10250");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_THAT(result->body, HasSubstr("?version="));
  result = Client().Get("/api/v1/objects/10250");
  EXPECT_THAT(result->body, HasSubstr("\"version\":\"1.1\""));
  result = Client().Get("/api/v1/objects/10250/xml?version=1.0");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->body, MeterXml("Meter", 10250, "1.0"));
  EXPECT_EQ(Client().Delete("/api/v1/objects/10250?version=1.1")->status, 204);
  result = Client().Get("/api/v1/objects/10250");
  EXPECT_THAT(result->body, HasSubstr("\"version\":\"1.0\""));
}

TEST_F(ObjectRoutesTest, BadUploadsAreRefused) {
  std::string xml = absl::StrReplaceAll(MeterXml(), {{"<Type>Integer</Type>", "<Type>Int</Type>"}});
  httplib::Result result = Upload(xml);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  simdjson::dom::element doc;
  ASSERT_EQ(parser_.parse(result->body).get(doc), simdjson::SUCCESS) << result->body;
  EXPECT_THAT(std::string(std::string_view(doc["error"])),
              HasSubstr("line 17: <Type> of resource 0: unknown type \"Int\""));

  result = Upload("<LWM2M><Object>\n<Name>x</Nam></Object></LWM2M>");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400);
  EXPECT_THAT(result->body, HasSubstr("line 2: not well-formed XML"));

  result = Upload(MeterXml(), "application/json");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 415);

  // Refused from the declared length, before any of the body is read. A raw socket, because
  // a client still sending the body may see the connection reset instead of the answer.
  EXPECT_THAT(
      RawRequest(std::string("POST /api/v1/objects HTTP/1.1\r\nHost: localhost\r\n"
                             "Authorization: Bearer ") +
                 kToken + "\r\nContent-Type: application/xml\r\nContent-Length: 2000000\r\n\r\n"),
      ::testing::StartsWith("HTTP/1.1 413 "));

  EXPECT_EQ(registry_->snapshot()->Find(10250), nullptr);
}

TEST_F(ObjectRoutesTest, UploadsSurviveARestart) {
  ASSERT_EQ(Upload(MeterXml())->status, 201);
  ASSERT_EQ(Upload(MeterXml("Custom Device", 3, "1.0"))->status, 201);
  Restart();
  std::shared_ptr<const lwm2m::ObjectCatalog> catalog = registry_->snapshot();
  ASSERT_NE(catalog->Find(10250), nullptr);
  EXPECT_EQ(catalog->Find(10250)->name, "Water Meter");
  EXPECT_EQ(catalog->Find(3)->name, "Custom Device");
  httplib::Result result = Client().Get("/api/v1/objects/10250/xml");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->body, MeterXml());
}

TEST_F(ObjectRoutesTest, TheRegistryTestObjectUploads) {
  const std::filesystem::path path = LWM2MD_SOURCE_DIR "/../shared/objects/3441.xml";
  std::ifstream file(path, std::ios::binary);
  if (!file) GTEST_SKIP() << "no " << path.string();
  std::string xml((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  httplib::Result result = Upload(xml);
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 201) << result->body;
  EXPECT_THAT(result->body, HasSubstr("\"key\":\"lwm2m_v1_0_test_object\""));
  EXPECT_TRUE(registry_->snapshot()->IsCustom(3441));
}

}  // namespace
}  // namespace lwm2md::api
