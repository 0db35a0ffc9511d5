#include "lwm2m/endpoint_config.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store.h"

namespace lwm2md::lwm2m {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string Message(const absl::Status& status) {
  return std::string(status.message().data(), status.message().size());
}

EndpointConfig PskEndpoint(std::string name, std::string identity) {
  EndpointConfig config;
  config.name = std::move(name);
  config.security_mode = SecurityMode::kPsk;
  config.psk_identity = std::move(identity);
  config.psk_key =
      std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
  return config;
}

// A thumbprint of 64 hex digits, distinct per digit.
std::string Thumbprint(char digit) { return std::string(64, digit); }

EndpointConfig CertificateEndpoint(std::string name, std::string thumbprint) {
  EndpointConfig config;
  config.name = std::move(name);
  config.security_mode = SecurityMode::kCertificate;
  config.certificate_thumbprint = std::move(thumbprint);
  return config;
}

EndpointConfig PlainEndpoint(std::string name) {
  EndpointConfig config;
  config.name = std::move(name);
  return config;
}

// ---------------------------------------------------------------------------------------------
// Validation.

TEST(EndpointConfigValidationTest, Names) {
  EXPECT_TRUE(ValidateEndpointName("dev1").ok());
  EXPECT_TRUE(ValidateEndpointName("urn:imei:490154203237518").ok());
  EXPECT_TRUE(ValidateEndpointName(std::string(255, 'a')).ok());
  EXPECT_THAT(Message(ValidateEndpointName("")), StartsWith("name: required"));
  EXPECT_THAT(Message(ValidateEndpointName(std::string(256, 'a'))),
              StartsWith("name: longer than 255 bytes"));
  const std::string bad_names[] = {"a/b",  "a?b",         "a#b",  "a b", std::string("a\0b", 3),
                                   "a\nb", "caf\xc3\xa9", "a\x7f"};
  for (const std::string& bad : bad_names) {
    absl::Status status = ValidateEndpointName(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(Message(status), StartsWith("name: byte 0x")) << bad;
  }
}

TEST(EndpointConfigValidationTest, SecurityModes) {
  EXPECT_TRUE(ValidateEndpointConfig(PlainEndpoint("a")).ok());
  EXPECT_TRUE(ValidateEndpointConfig(PskEndpoint("a", "id")).ok());

  EndpointConfig psk = PskEndpoint("a", "");
  EXPECT_EQ(Message(ValidateEndpointConfig(psk)), "pskIdentity: required with securityMode psk");
  psk = PskEndpoint("a", std::string(129, 'i'));
  EXPECT_EQ(Message(ValidateEndpointConfig(psk)), "pskIdentity: longer than 128 bytes");
  psk = PskEndpoint("a", std::string(128, 'i'));
  EXPECT_TRUE(ValidateEndpointConfig(psk).ok());
  psk = PskEndpoint("a", "id\x01");
  EXPECT_EQ(Message(ValidateEndpointConfig(psk)),
            "pskIdentity: control characters are not allowed");
  psk = PskEndpoint("a", "id");
  psk.psk_key.clear();
  EXPECT_EQ(Message(ValidateEndpointConfig(psk)), "pskKey: required with securityMode psk");
  psk.psk_key = std::string(65, 'k');
  EXPECT_EQ(Message(ValidateEndpointConfig(psk)), "pskKey: longer than 64 bytes");
  psk.psk_key = std::string(64, 'k');
  EXPECT_TRUE(ValidateEndpointConfig(psk).ok());

  EndpointConfig plain = PlainEndpoint("a");
  plain.psk_identity = "id";
  EXPECT_EQ(Message(ValidateEndpointConfig(plain)),
            "pskIdentity: only allowed with securityMode psk");

  EndpointConfig x509 = PlainEndpoint("a");
  x509.security_mode = SecurityMode::kCertificate;
  EXPECT_EQ(Message(ValidateEndpointConfig(x509)),
            "certificateThumbprint: required with securityMode x509");
  x509.certificate_thumbprint = std::string(63, 'a');
  EXPECT_THAT(Message(ValidateEndpointConfig(x509)),
              StartsWith("certificateThumbprint: expected 64"));
  x509.certificate_thumbprint = std::string(64, 'A');  // stored form is lowercase
  EXPECT_FALSE(ValidateEndpointConfig(x509).ok());
  x509.certificate_thumbprint = std::string(64, 'a');
  EXPECT_TRUE(ValidateEndpointConfig(x509).ok());

  EndpointConfig ca = PlainEndpoint("a");
  ca.security_mode = SecurityMode::kCertificateCa;
  EXPECT_TRUE(ValidateEndpointConfig(ca).ok());
  ca.certificate_thumbprint = std::string(64, 'a');
  EXPECT_EQ(Message(ValidateEndpointConfig(ca)),
            "certificateThumbprint: only allowed with securityMode x509");
}

TEST(EndpointConfigValidationTest, TimeoutAndTags) {
  EndpointConfig config = PlainEndpoint("a");
  config.missing_timeout_seconds = 31536000;
  EXPECT_TRUE(ValidateEndpointConfig(config).ok());
  config.missing_timeout_seconds = 31536001;
  EXPECT_EQ(Message(ValidateEndpointConfig(config)),
            "missingTimeoutSeconds: must be between 0 and 31536000");
  config.missing_timeout_seconds = 0;
  config.tags.assign(32, "");
  for (int i = 0; i < 32; ++i) config.tags[i] = absl::StrCat("t", i);
  EXPECT_TRUE(ValidateEndpointConfig(config).ok());
  config.tags.push_back("t32");
  EXPECT_EQ(Message(ValidateEndpointConfig(config)), "tags: at most 32");
  config.tags = {"ok", std::string(65, 'x')};
  EXPECT_EQ(Message(ValidateEndpointConfig(config)), "tags[1]: longer than 64 bytes");
  config.tags = {"ok", ""};
  EXPECT_EQ(Message(ValidateEndpointConfig(config)), "tags[1]: empty");
  config.tags = {"ok", "ok"};
  EXPECT_EQ(Message(ValidateEndpointConfig(config)), "tags[1]: duplicate \"ok\"");
}

TEST(EndpointConfigValidationTest, Settings) {
  ServiceSettings settings;
  EXPECT_TRUE(ValidateSettings(settings).ok());
  settings.coap_ack_timeout_ms = 99;
  EXPECT_THAT(Message(ValidateSettings(settings)), StartsWith("coapAckTimeoutMs:"));
  settings = {};
  settings.coap_ack_random_factor = 4.5;
  EXPECT_THAT(Message(ValidateSettings(settings)), StartsWith("coapAckRandomFactor:"));
  settings.coap_ack_random_factor = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(Message(ValidateSettings(settings)), StartsWith("coapAckRandomFactor:"));
  settings = {};
  settings.coap_max_retransmit = 21;
  EXPECT_THAT(Message(ValidateSettings(settings)), StartsWith("coapMaxRetransmit:"));
  settings = {};
  settings.default_missing_timeout_seconds = 31536001;
  EXPECT_THAT(Message(ValidateSettings(settings)), StartsWith("defaultMissingTimeoutSeconds:"));
}

TEST(EndpointConfigValidationTest, EffectiveMissingTimeout) {
  ServiceSettings settings;
  settings.default_missing_timeout_seconds = 600;
  EndpointConfig config = PlainEndpoint("a");
  EXPECT_EQ(EffectiveMissingTimeoutSeconds(nullptr, settings), 600u);
  EXPECT_EQ(EffectiveMissingTimeoutSeconds(&config, settings), 600u);
  config.missing_timeout_seconds = 0;
  EXPECT_EQ(EffectiveMissingTimeoutSeconds(&config, settings), 0u);
  config.missing_timeout_seconds = 30;
  EXPECT_EQ(EffectiveMissingTimeoutSeconds(&config, settings), 30u);
}

// ---------------------------------------------------------------------------------------------
// JSON.

TEST(EndpointConfigJsonTest, ParsesAFullBody) {
  absl::StatusOr<EndpointConfig> config = ParseEndpointJson(R"({
      "name": "dev1", "securityMode": "psk", "pskIdentity": "dev1-id",
      "pskKey": "000102030405060708090A0B0C0D0E0F", "missingTimeoutSeconds": 300,
      "tags": ["fleet-a", "eu"]})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "dev1");
  EXPECT_EQ(config->security_mode, SecurityMode::kPsk);
  EXPECT_EQ(config->psk_identity, "dev1-id");
  EXPECT_EQ(config->psk_key,
            std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16));
  EXPECT_EQ(config->missing_timeout_seconds, 300u);
  EXPECT_THAT(config->tags, ElementsAre("fleet-a", "eu"));
}

TEST(EndpointConfigJsonTest, ThumbprintIsNormalised) {
  std::string colons;
  for (int i = 0; i < 32; ++i) absl::StrAppend(&colons, i == 0 ? "" : ":", "AB");
  absl::StatusOr<EndpointConfig> config = ParseEndpointJson(absl::StrCat(
      R"({"name":"c","securityMode":"x509","certificateThumbprint":")", colons, "\"}"));
  ASSERT_TRUE(config.ok()) << config.status();
  std::string expected;
  for (int i = 0; i < 32; ++i) expected += "ab";
  EXPECT_EQ(config->certificate_thumbprint, expected);
}

TEST(EndpointConfigJsonTest, ErrorsNameTheField) {
  struct Case {
    std::string body;
    std::string error;
  };
  const Case cases[] = {
      {"", "body: invalid JSON"},
      {"[1]", "body: expected a JSON object"},
      {R"({"name":"a","colour":"red"})", "colour: unknown field"},
      {R"({"name":"a","pskKeySet":true})", "pskKeySet: read-only field"},
      {R"({"name":"a","name":"b"})", "name: duplicate field"},
      {R"({"name":5})", "name: expected a string"},
      {R"({"name":"a","securityMode":"dtls"})", "securityMode: unknown mode \"dtls\""},
      {R"({"name":"a","securityMode":"psk","pskIdentity":"i","pskKey":"0g"})",
       "pskKey: expected an even number of hex digits"},
      {R"({"name":"a","securityMode":"psk","pskIdentity":"i","pskKey":"abc"})",
       "pskKey: expected an even number of hex digits"},
      {R"({"name":"a","missingTimeoutSeconds":-1})",
       "missingTimeoutSeconds: expected a non-negative integer"},
      {R"({"name":"a","missingTimeoutSeconds":1.5})",
       "missingTimeoutSeconds: expected a non-negative integer"},
      {R"({"name":"a","missingTimeoutSeconds":99999999999})",
       "missingTimeoutSeconds: must be between 0 and 31536000"},
      {R"({"name":"a","tags":"x"})", "tags: expected an array of strings"},
      {R"({"name":"a","tags":[1]})", "tags: expected an array of strings"},
      {R"({"name":"a b"})", "name: byte 0x20 at offset 1"},
      {R"({"securityMode":"none"})", "name: required"},
      {"{\"name\":\"a\xff\"}", "body: invalid JSON"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<EndpointConfig> config = ParseEndpointJson(c.body);
    ASSERT_FALSE(config.ok()) << c.body;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(Message(config.status()), StartsWith(c.error)) << c.body;
  }
}

TEST(EndpointConfigJsonTest, NameFromPath) {
  absl::StatusOr<EndpointConfig> config = ParseEndpointJson(R"({"tags":["x"]})", "dev9");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name, "dev9");
  config = ParseEndpointJson(R"({"name":"other"})", "dev9");
  EXPECT_EQ(Message(config.status()), "name: differs from the name in the path");
}

TEST(EndpointConfigJsonTest, UpdateBody) {
  absl::StatusOr<EndpointUpdate> update = ParseEndpointUpdateJson(
      R"({"name":"a","missingTimeoutSeconds":null,"tags":["x"],"pskKey":"ff"})", "a");
  ASSERT_TRUE(update.ok()) << update.status();
  ASSERT_TRUE(update->missing_timeout_seconds.has_value());
  EXPECT_FALSE(update->missing_timeout_seconds->has_value());
  EXPECT_EQ(update->psk_key, std::string("\xff"));
  EXPECT_FALSE(update->security_mode.has_value());
  EXPECT_FALSE(update->psk_identity.has_value());

  EXPECT_EQ(Message(ParseEndpointUpdateJson(R"({"name":"b"})", "a").status()),
            "name: cannot be changed");
  EXPECT_EQ(Message(ParseEndpointUpdateJson(R"({"nmae":"a"})", "a").status()),
            "nmae: unknown field");
}

TEST(EndpointConfigJsonTest, ApiFormNeverShowsTheKey) {
  EndpointConfig config = PskEndpoint("dev1", "id1");
  config.created_at = absl::FromUnixMillis(1700000000123);
  config.updated_at = config.created_at;
  const std::string json = EndpointToJson(config);
  EXPECT_EQ(json,
            R"({"name":"dev1","securityMode":"psk","pskIdentity":"id1","pskKeySet":true,)"
            R"("missingTimeoutSeconds":null,"tags":[],"createdAt":"2023-11-14T22:13:20.123Z",)"
            R"("updatedAt":"2023-11-14T22:13:20.123Z"})");
  EXPECT_THAT(json, Not(HasSubstr("0102030405")));
}

TEST(EndpointConfigJsonTest, Settings) {
  ServiceSettings base;
  absl::StatusOr<ServiceSettings> settings =
      ParseSettingsJson(R"({"coapAckTimeoutMs":3000,"allowUnknownEndpoints":true})", base,
                        /*partial=*/true);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->coap_ack_timeout_ms, 3000u);
  EXPECT_TRUE(settings->allow_unknown_endpoints);
  EXPECT_EQ(settings->coap_max_retransmit, 4u);

  EXPECT_THAT(Message(ParseSettingsJson(R"({"coapAckTimeoutMs":3000})", base, false).status()),
              StartsWith("coapAckRandomFactor: required"));
  EXPECT_EQ(Message(ParseSettingsJson(R"({"coapAckTimeout":3000})", base, true).status()),
            "coapAckTimeout: unknown field");
  EXPECT_EQ(Message(ParseSettingsJson(R"({"coapAckTimeoutMs":60001})", base, true).status()),
            "coapAckTimeoutMs: must be between 100 and 60000");
  EXPECT_EQ(Message(ParseSettingsJson(R"({"bootstrapEnabled":1})", base, true).status()),
            "bootstrapEnabled: expected true or false");

  // What SettingsToJson writes, a PUT takes back.
  ServiceSettings custom;
  custom.coap_ack_random_factor = 2.25;
  custom.default_missing_timeout_seconds = 90;
  absl::StatusOr<ServiceSettings> round_trip =
      ParseSettingsJson(SettingsToJson(custom), base, /*partial=*/false);
  ASSERT_TRUE(round_trip.ok()) << round_trip.status();
  EXPECT_EQ(*round_trip, custom);
}

// ---------------------------------------------------------------------------------------------
// The store.

class EndpointConfigStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "endpoint_config_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    OpenAll();
  }
  void TearDown() override {
    configs_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void OpenAll() {
    store::Options options;
    options.path = dir_;
    options.map_size_bytes = uint64_t{64} << 20;
    options.durability = store::Durability::kAsync;  // the tests reopen, never power-fail
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<EndpointConfigStore>> configs =
        EndpointConfigStore::Open(*store_);
    ASSERT_TRUE(configs.ok()) << configs.status();
    configs_ = *std::move(configs);
  }

  void Reopen() {
    configs_.reset();
    store_.reset();
    OpenAll();
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<EndpointConfigStore> configs_;
};

TEST_F(EndpointConfigStoreTest, CreateGetDelete) {
  absl::StatusOr<EndpointConfig> created = configs_->Create(PskEndpoint("dev1", "id1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_NE(created->created_at, absl::Time());
  EXPECT_EQ(created->created_at, created->updated_at);
  EXPECT_EQ(configs_->Count(), 1u);

  absl::StatusOr<std::optional<EndpointConfig>> got = configs_->Get("dev1");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, *created);

  absl::StatusOr<std::optional<std::string>> owner = configs_->FindNameByPskIdentity("id1");
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(*owner, "dev1");

  EXPECT_EQ(configs_->Create(PlainEndpoint("dev1")).status().code(),
            absl::StatusCode::kAlreadyExists);

  ASSERT_TRUE(configs_->Delete("dev1").ok());
  EXPECT_EQ(configs_->Count(), 0u);
  got = configs_->Get("dev1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  owner = configs_->FindNameByPskIdentity("id1");
  ASSERT_TRUE(owner.ok());
  EXPECT_FALSE(owner->has_value());
  EXPECT_EQ(configs_->Delete("dev1").code(), absl::StatusCode::kNotFound);
}

TEST_F(EndpointConfigStoreTest, InvalidConfigIsRefused) {
  EXPECT_EQ(configs_->Create(PskEndpoint("dev1", "")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(configs_->Count(), 0u);
  absl::StatusOr<std::optional<EndpointConfig>> got = configs_->Get("bad name");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_F(EndpointConfigStoreTest, PskIdentityIsUnique) {
  ASSERT_TRUE(configs_->Create(PskEndpoint("dev1", "shared")).ok());
  absl::StatusOr<EndpointConfig> second = configs_->Create(PskEndpoint("dev2", "shared"));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Message(second.status()),
            "pskIdentity: \"shared\" is already used by endpoint \"dev1\"");
  EXPECT_EQ(configs_->Count(), 1u);

  // Moving dev1 to another identity frees the old one.
  EndpointUpdate update;
  update.psk_identity = "moved";
  ASSERT_TRUE(configs_->Update("dev1", update).ok());
  EXPECT_FALSE(configs_->FindNameByPskIdentity("shared")->has_value());
  EXPECT_EQ(*configs_->FindNameByPskIdentity("moved"), "dev1");
  ASSERT_TRUE(configs_->Create(PskEndpoint("dev2", "shared")).ok());

  // An update onto a taken identity fails and changes nothing.
  update.psk_identity = "shared";
  EXPECT_EQ(configs_->Update("dev1", update).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*configs_->Get("dev1"))->psk_identity, "moved");

  // Leaving psk mode drops the identity and its index entry.
  EndpointUpdate to_none;
  to_none.security_mode = SecurityMode::kNone;
  absl::StatusOr<EndpointConfig> plain = configs_->Update("dev1", to_none);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(plain->psk_identity.empty());
  EXPECT_TRUE(plain->psk_key.empty());
  EXPECT_FALSE(configs_->FindNameByPskIdentity("moved")->has_value());
}

TEST_F(EndpointConfigStoreTest, ThumbprintIsUnique) {
  ASSERT_TRUE(configs_->Create(CertificateEndpoint("dev1", Thumbprint('a'))).ok());
  EXPECT_EQ(*configs_->FindNameByThumbprint(Thumbprint('a')), "dev1");
  EXPECT_FALSE(configs_->FindNameByThumbprint(Thumbprint('b'))->has_value());
  EXPECT_FALSE(configs_->FindNameByThumbprint("short")->has_value());

  absl::StatusOr<EndpointConfig> second =
      configs_->Create(CertificateEndpoint("dev2", Thumbprint('a')));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Message(second.status()), "certificateThumbprint: \"" + Thumbprint('a') +
                                          "\" is already used by endpoint \"dev1\"");
  EXPECT_FALSE(configs_->Get("dev2")->has_value());

  // A new certificate for dev1 frees the old thumbprint.
  EndpointUpdate update;
  update.certificate_thumbprint = Thumbprint('b');
  ASSERT_TRUE(configs_->Update("dev1", update).ok());
  EXPECT_FALSE(configs_->FindNameByThumbprint(Thumbprint('a'))->has_value());
  EXPECT_EQ(*configs_->FindNameByThumbprint(Thumbprint('b')), "dev1");
  ASSERT_TRUE(configs_->Create(CertificateEndpoint("dev2", Thumbprint('a'))).ok());

  // Taking a used thumbprint by update or replacement fails and changes nothing.
  update.certificate_thumbprint = Thumbprint('a');
  EXPECT_EQ(configs_->Update("dev1", update).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(configs_->Replace(CertificateEndpoint("dev1", Thumbprint('a'))).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*configs_->Get("dev1"))->certificate_thumbprint, Thumbprint('b'));
  EXPECT_EQ(*configs_->FindNameByThumbprint(Thumbprint('a')), "dev2");

  // Leaving x509 mode drops the thumbprint and its index entry; so does deleting.
  EndpointUpdate to_ca;
  to_ca.security_mode = SecurityMode::kCertificateCa;
  absl::StatusOr<EndpointConfig> ca = configs_->Update("dev1", to_ca);
  ASSERT_TRUE(ca.ok()) << ca.status();
  EXPECT_TRUE(ca->certificate_thumbprint.empty());
  EXPECT_FALSE(configs_->FindNameByThumbprint(Thumbprint('b'))->has_value());
  ASSERT_TRUE(configs_->Delete("dev2").ok());
  EXPECT_FALSE(configs_->FindNameByThumbprint(Thumbprint('a'))->has_value());
  EXPECT_EQ(configs_->Count(), 1u);

  // A PSK identity that looks like a thumbprint is another index.
  ASSERT_TRUE(configs_->Create(PskEndpoint("dev3", Thumbprint('c'))).ok());
  EXPECT_FALSE(configs_->FindNameByThumbprint(Thumbprint('c'))->has_value());
}

// Configurations stored before the thumbprint index existed get their entries on open.
TEST_F(EndpointConfigStoreTest, ThumbprintIndexIsFilledInOnOpen) {
  ASSERT_TRUE(configs_->Create(CertificateEndpoint("dev1", Thumbprint('d'))).ok());
  ASSERT_TRUE(configs_->Create(PskEndpoint("dev2", "id2")).ok());
  store::WriteBatch drop;
  drop.Delete(store::Table::kEndpoints, "x509/" + Thumbprint('d'));
  ASSERT_TRUE(store_->Write(std::move(drop)).ok());
  EXPECT_FALSE(configs_->FindNameByThumbprint(Thumbprint('d'))->has_value());

  Reopen();
  EXPECT_EQ(*configs_->FindNameByThumbprint(Thumbprint('d')), "dev1");
  EXPECT_EQ(configs_->Count(), 2u);
}

TEST_F(EndpointConfigStoreTest, UpdateAndReplace) {
  EndpointConfig config = PskEndpoint("dev1", "id1");
  config.tags = {"a"};
  config.missing_timeout_seconds = 60;
  absl::StatusOr<EndpointConfig> created = configs_->Create(config);
  ASSERT_TRUE(created.ok());

  EndpointUpdate update;
  update.tags = std::vector<std::string>{"b", "c"};
  update.missing_timeout_seconds.emplace(std::nullopt);
  absl::StatusOr<EndpointConfig> updated = configs_->Update("dev1", update);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_THAT(updated->tags, ElementsAre("b", "c"));
  EXPECT_FALSE(updated->missing_timeout_seconds.has_value());
  EXPECT_EQ(updated->psk_key, config.psk_key);  // untouched
  EXPECT_EQ(updated->created_at, created->created_at);
  EXPECT_GE(updated->updated_at, created->updated_at);

  // Switching to psk without credentials fails validation.
  configs_->Delete("dev1").IgnoreError();
  ASSERT_TRUE(configs_->Create(PlainEndpoint("dev2")).ok());
  EndpointUpdate to_psk;
  to_psk.security_mode = SecurityMode::kPsk;
  EXPECT_EQ(Message(configs_->Update("dev2", to_psk).status()),
            "pskIdentity: required with securityMode psk");
  EXPECT_EQ(configs_->Update("nope", to_psk).status().code(), absl::StatusCode::kNotFound);

  EndpointConfig replacement = PskEndpoint("dev2", "id2");
  absl::StatusOr<EndpointConfig> replaced = configs_->Replace(replacement);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(replaced->security_mode, SecurityMode::kPsk);
  EXPECT_EQ(*configs_->FindNameByPskIdentity("id2"), "dev2");
  EXPECT_EQ(configs_->Replace(PlainEndpoint("nope")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(EndpointConfigStoreTest, ListPages) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(configs_->Create(PlainEndpoint(absl::StrCat("dev", 100 + i))).ok());
  }
  ASSERT_TRUE(configs_->Create(PskEndpoint("zzz", "id")).ok());  // its index entry is not listed
  std::vector<std::string> names;
  std::string cursor;
  int pages = 0;
  do {
    absl::StatusOr<EndpointPage> page = configs_->List(cursor, 10);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const EndpointConfig& config : page->endpoints) names.push_back(config.name);
    cursor = page->next;
    ++pages;
  } while (!cursor.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(names.size(), 26u);
  EXPECT_EQ(names.front(), "dev100");
  EXPECT_EQ(names.back(), "zzz");
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(configs_->Count(), 26u);

  // A page that ends exactly at the last endpoint has no cursor.
  absl::StatusOr<EndpointPage> page = configs_->List("dev123", 2);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->endpoints.size(), 2u);
  EXPECT_EQ(page->next, "");
}

TEST_F(EndpointConfigStoreTest, PersistsAcrossReopen) {
  EndpointConfig config = PskEndpoint("dev1", "id1");
  config.tags = {"x"};
  config.missing_timeout_seconds = 0;
  absl::StatusOr<EndpointConfig> created = configs_->Create(config);
  ASSERT_TRUE(created.ok());
  ASSERT_TRUE(configs_->Create(PlainEndpoint("dev2")).ok());
  ServiceSettings settings;
  settings.coap_ack_timeout_ms = 5000;
  settings.allow_unknown_endpoints = true;
  ASSERT_TRUE(configs_->UpdateSettings(settings).ok());

  Reopen();
  EXPECT_EQ(configs_->Count(), 2u);
  absl::StatusOr<std::optional<EndpointConfig>> got = configs_->Get("dev1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, *created);
  EXPECT_EQ(*configs_->FindNameByPskIdentity("id1"), "dev1");
  EXPECT_EQ(configs_->settings(), settings);
}

TEST_F(EndpointConfigStoreTest, SettingsDefaultsUpdateAndObservers) {
  EXPECT_EQ(configs_->settings(), ServiceSettings());
  std::vector<uint32_t> seen;
  configs_->OnSettingsChanged(
      [&seen](const ServiceSettings& settings) { seen.push_back(settings.coap_ack_timeout_ms); });

  ServiceSettings bad;
  bad.coap_max_retransmit = 99;
  EXPECT_EQ(configs_->UpdateSettings(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(seen.empty());

  ServiceSettings good;
  good.coap_ack_timeout_ms = 1000;
  ASSERT_TRUE(configs_->UpdateSettings(good).ok());
  absl::StatusOr<ServiceSettings> modified = configs_->ModifySettings(
      [](const ServiceSettings& current) -> absl::StatusOr<ServiceSettings> {
        ServiceSettings next = current;
        next.coap_ack_timeout_ms += 500;
        return next;
      });
  ASSERT_TRUE(modified.ok());
  EXPECT_EQ(modified->coap_ack_timeout_ms, 1500u);
  EXPECT_THAT(seen, ElementsAre(1000u, 1500u));
  EXPECT_EQ(configs_->settings().coap_ack_timeout_ms, 1500u);
}

TEST_F(EndpointConfigStoreTest, CorruptRecordIsDataLoss) {
  store::WriteBatch batch;
  batch.Put(store::Table::kEndpoints, "ep/broken", "{not json");
  ASSERT_TRUE(store_->Write(std::move(batch)).ok());
  absl::StatusOr<std::optional<EndpointConfig>> got = configs_->Get("broken");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(got.status()), HasSubstr("\"broken\""));
}

TEST_F(EndpointConfigStoreTest, ConcurrentCreatesOfOneNameOneWins) {
  for (int round = 0; round < 5; ++round) {
    const std::string name = absl::StrCat("race", round);
    std::atomic<int> successes{0};
    std::atomic<int> conflicts{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) std::this_thread::yield();
        // Different identities, so only the name can conflict.
        absl::StatusOr<EndpointConfig> created =
            configs_->Create(PskEndpoint(name, absl::StrCat(name, "-id", t)));
        if (created.ok()) {
          successes.fetch_add(1);
        } else if (absl::IsAlreadyExists(created.status())) {
          conflicts.fetch_add(1);
        }
      });
    }
    go.store(true);
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(successes.load(), 1);
    EXPECT_EQ(conflicts.load(), 7);
  }
  EXPECT_EQ(configs_->Count(), 5u);
}

TEST_F(EndpointConfigStoreTest, ConcurrentCreatesOfOneIdentityOneWins) {
  std::atomic<int> successes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      if (configs_->Create(PskEndpoint(absl::StrCat("dev", t), "same-id")).ok()) {
        successes.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(successes.load(), 1);
  EXPECT_EQ(configs_->Count(), 1u);
}

}  // namespace
}  // namespace lwm2md::lwm2m
