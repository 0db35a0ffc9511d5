#include "server/config.h"

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lwm2md::server {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kShippedConfig[] = LWM2MD_SOURCE_DIR "/config/lwm2md.toml";

std::string ErrorOf(const absl::StatusOr<Config>& config) {
  EXPECT_FALSE(config.ok());
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(ConfigTest, EmptyFileGivesDefaults) {
  absl::StatusOr<Config> config = ParseConfig("", "empty.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, Config{});
  EXPECT_EQ(config->coap.listen, (std::vector<std::string>{"0.0.0.0", "::"}));
  EXPECT_EQ(config->coap.port, 5683);
  EXPECT_EQ(config->http.port, 8080);
  EXPECT_EQ(config->store.path, "./data");
  EXPECT_EQ(config->log_level, LogLevel::kInfo);
  EXPECT_EQ(config->net.backend, net::Backend::kAuto);
}

TEST(ConfigTest, KeysAbsentFromTheFileKeepDefaults) {
  absl::StatusOr<Config> config = ParseConfig("[coap]\nport = 6000\n", "partial.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  Config expected;
  expected.coap.port = 6000;
  EXPECT_EQ(*config, expected);
}

// The shipped file lists every key with its default: loading it must give exactly the
// defaults of the Config struct, or one of the two is out of date.
TEST(ConfigTest, ShippedConfigLoadsAndMatchesDefaults) {
  absl::StatusOr<Config> config = LoadConfig(kShippedConfig, {});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, Config{});
}

TEST(ConfigTest, ShippedConfigMentionsEveryKey) {
  std::ifstream file(kShippedConfig);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  for (const char* key :
       {"shards =", "level =", "backend =", "pin_threads =", "recv_buffer_count =",
        "recv_buffer_size =", "send_queue_depth =", "listen =", "port =", "secure_port =",
        "ack_timeout_ms =", "ack_random_factor =", "max_retransmit =", "block_size =",
        "max_body_size =", "max_block1_transfers =", "diagnostic_resource =", "address =",
        "path =", "public_metrics =", "tls_cert =", "tls_key =", "[[http.tokens]]",
        "token_file =", "access =", "certificate_file =", "private_key_file ="}) {
    EXPECT_THAT(text, HasSubstr(key));
  }
}

struct OverrideCase {
  std::string set;
  std::function<bool(const Config&)> holds;
};

TEST(ConfigTest, EveryKeyCanBeSetOnTheCommandLine) {
  const std::vector<OverrideCase> cases = {
      {"shards=3", [](const Config& c) { return c.shards == 3; }},
      {"log.level=debug", [](const Config& c) { return c.log_level == LogLevel::kDebug; }},
      {"log.level=warning", [](const Config& c) { return c.log_level == LogLevel::kWarning; }},
      {"net.backend=epoll", [](const Config& c) { return c.net.backend == net::Backend::kEpoll; }},
      {"net.backend=io_uring",
       [](const Config& c) { return c.net.backend == net::Backend::kIoUring; }},
      {"net.pin_threads=false", [](const Config& c) { return !c.net.pin_threads; }},
      {"net.recv_buffer_count=256", [](const Config& c) { return c.net.recv_buffer_count == 256; }},
      {"net.recv_buffer_size=1500", [](const Config& c) { return c.net.recv_buffer_size == 1500; }},
      {"net.send_queue_depth=64", [](const Config& c) { return c.net.send_queue_depth == 64; }},
      {"coap.listen=[\"127.0.0.1\"]",
       [](const Config& c) { return c.coap.listen == std::vector<std::string>{"127.0.0.1"}; }},
      {"coap.port=0", [](const Config& c) { return c.coap.port == 0; }},
      {"coap.secure_port=15684", [](const Config& c) { return c.coap.secure_port == 15684; }},
      {"coap.ack_timeout_ms=500", [](const Config& c) { return c.coap.ack_timeout_ms == 500; }},
      {"coap.ack_random_factor=1.25",
       [](const Config& c) { return c.coap.ack_random_factor == 1.25; }},
      {"coap.max_retransmit=2", [](const Config& c) { return c.coap.max_retransmit == 2; }},
      {"coap.block_size=256", [](const Config& c) { return c.coap.block_size == 256; }},
      {"coap.max_body_size=4096", [](const Config& c) { return c.coap.max_body_size == 4096; }},
      {"coap.max_block1_transfers=8",
       [](const Config& c) { return c.coap.max_block1_transfers == 8; }},
      {"coap.diagnostic_resource=true", [](const Config& c) { return c.coap.diagnostic_resource; }},
      {"http.address=::1", [](const Config& c) { return c.http.address == "::1"; }},
      {"http.port=0", [](const Config& c) { return c.http.port == 0; }},
      {"http.public_metrics=true", [](const Config& c) { return c.http.public_metrics; }},
      {"http.tokens=[{name=\"ops\",token=\"0123456789abcdef\",access=\"read-write\"}]",
       [](const Config& c) {
         return c.http.tokens == std::vector<api::ApiToken>{api::MakeApiToken(
                                     "ops", "0123456789abcdef", api::TokenAccess::kReadWrite)};
       }},
      {"store.path=/tmp/lwm2md data",
       [](const Config& c) { return c.store.path == "/tmp/lwm2md data"; }},
  };
  for (const OverrideCase& test : cases) {
    SCOPED_TRACE(test.set);
    absl::StatusOr<Config> config = LoadConfig(kShippedConfig, {test.set});
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_TRUE(test.holds(*config));
  }
}

TEST(ConfigTest, OverridesApplyOnTopOfTheFileInOrder) {
  absl::StatusOr<Config> config =
      ParseConfig("[coap]\nport = 6000\nblock_size = 64\n", "file.toml",
                  {"coap.port=7000", "coap.port=8000", "store.path=./scratch"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->coap.port, 8000);
  EXPECT_EQ(config->coap.block_size, 64u);
  EXPECT_EQ(config->store.path, "./scratch");
}

TEST(ConfigTest, SetTakesAListOfAddresses) {
  absl::StatusOr<Config> config =
      ParseConfig("", "t.toml", {"coap.listen=[\"127.0.0.1\", \"::1\"]"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->coap.listen, (std::vector<std::string>{"127.0.0.1", "::1"}));
}

// What arrives when a shell ate the quotes of --set coap.listen=["127.0.0.1","::1"].
TEST(ConfigTest, SetTakesAListWhoseQuotesTheShellRemoved) {
  absl::StatusOr<Config> config = ParseConfig("", "t.toml", {"coap.listen=[127.0.0.1, ::1]"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->coap.listen, (std::vector<std::string>{"127.0.0.1", "::1"}));
}

TEST(ConfigTest, SetTakesQuotedStringsAndBareWords) {
  absl::StatusOr<Config> config = ParseConfig(
      "", "t.toml", {"store.path=\"./quoted\"", "log.level=error", "http.address=0.0.0.0"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->store.path, "./quoted");
  EXPECT_EQ(config->log_level, LogLevel::kError);
  EXPECT_EQ(config->http.address, "0.0.0.0");
}

TEST(ConfigTest, FloatKeyAcceptsAnInteger) {
  absl::StatusOr<Config> config = ParseConfig("[coap]\nack_random_factor = 2\n", "t.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->coap.ack_random_factor, 2.0);
}

TEST(ConfigTest, OutOfRangeNamesFileLineAndKey) {
  std::string text =
      "shards = 2\n"
      "\n"
      "[coap]\n"
      "port = 5683\n"
      "block_size = 1000\n";
  EXPECT_EQ(ErrorOf(ParseConfig(text, "config/lwm2md.toml")),
            "config/lwm2md.toml:5: coap.block_size: must be a power of two between 16 and "
            "1024, got 1000");
}

TEST(ConfigTest, RangeErrorsForEachBoundedKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"shards = -1", "shards: must be between 0 and 1024, got -1"},
      {"[net]\nrecv_buffer_count = 1000", "net.recv_buffer_count: must be a power of two"},
      {"[net]\nrecv_buffer_size = 10", "net.recv_buffer_size: must be between 64 and 65536"},
      {"[net]\nsend_queue_depth = 0", "net.send_queue_depth: must be between 1 and"},
      {"[coap]\nport = 65536", "coap.port: must be between 0 and 65535, got 65536"},
      {"[coap]\nsecure_port = -5", "coap.secure_port: must be between 0 and 65535"},
      {"[coap]\nack_timeout_ms = 0", "coap.ack_timeout_ms: must be between 10 and 600000"},
      {"[coap]\nack_random_factor = 0.5", "coap.ack_random_factor: must be between 1 and 10"},
      {"[coap]\nack_random_factor = nan", "coap.ack_random_factor: must be between"},
      {"[coap]\nmax_retransmit = 21", "coap.max_retransmit: must be between 0 and 20"},
      {"[coap]\nblock_size = 2048", "coap.block_size: must be a power of two between 16"},
      {"[coap]\nmax_body_size = 0", "coap.max_body_size: must be between 16 and"},
      {"[coap]\nmax_block1_transfers = 0", "coap.max_block1_transfers: must be between 1"},
      {"[coap]\nport = 6000\nsecure_port = 6000", "coap.secure_port: must differ from coap.port"},
      {"[http]\nport = 100000", "http.port: must be between 0 and 65535"},
      {"[http]\naddress = \"localhost\"",
       "http.address: must be an IPv4 or IPv6 address, got \"localhost\""},
      {"[store]\npath = \"\"", "store.path: must not be empty"},
      {"[log]\nlevel = \"verbose\"",
       "log.level: must be one of \"error\", \"warning\", \"info\", \"debug\", got \"verbose\""},
      {"[net]\nbackend = \"uring\"",
       "net.backend: must be one of \"auto\", \"io_uring\", \"epoll\""},
  };
  for (const auto& [text, error] : cases) {
    SCOPED_TRACE(text);
    EXPECT_THAT(ErrorOf(ParseConfig(text, "t.toml")),
                AllOf(HasSubstr("t.toml:"), HasSubstr(error)));
  }
}

TEST(ConfigTest, WrongTypeNamesKeyAndLine) {
  EXPECT_EQ(ErrorOf(ParseConfig("[coap]\n\nport = \"5683\"\n", "t.toml")),
            "t.toml:3: coap.port: expected an integer, got a string");
  EXPECT_EQ(ErrorOf(ParseConfig("[net]\npin_threads = 1\n", "t.toml")),
            "t.toml:2: net.pin_threads: expected a boolean (true or false), got an integer");
  EXPECT_EQ(ErrorOf(ParseConfig("[store]\npath = 5\n", "t.toml")),
            "t.toml:2: store.path: expected a string, got an integer");
  EXPECT_EQ(ErrorOf(ParseConfig("[coap]\nlisten = \"0.0.0.0\"\n", "t.toml")),
            "t.toml:2: coap.listen: expected an array of addresses, got a string");
  EXPECT_THAT(ErrorOf(ParseConfig("coap = 5\n", "t.toml")),
              HasSubstr("t.toml:1: coap: expected a table, got an integer"));
}

TEST(ConfigTest, ListenAddressesAreChecked) {
  EXPECT_EQ(ErrorOf(ParseConfig("[coap]\nlisten = [\n  \"127.0.0.1\",\n  \"example.com\",\n]\n",
                                "t.toml")),
            "t.toml:4: coap.listen: must hold IPv4 or IPv6 addresses, got \"example.com\"");
  EXPECT_THAT(ErrorOf(ParseConfig("[coap]\nlisten = [\"::1\", \"::1\"]\n", "t.toml")),
              HasSubstr("coap.listen: lists \"::1\" twice"));
  EXPECT_THAT(ErrorOf(ParseConfig("[coap]\nlisten = []\n", "t.toml")),
              HasSubstr("t.toml:2: coap.listen: must list at least one address"));
  EXPECT_THAT(ErrorOf(ParseConfig("[coap]\nlisten = [1]\n", "t.toml")),
              HasSubstr("coap.listen: expected addresses as strings, got an integer"));
}

TEST(ConfigTest, UnknownKeyIsAnErrorWithASuggestion) {
  EXPECT_EQ(ErrorOf(ParseConfig("[coap]\nport = 1\nprot = 5683\n", "t.toml")),
            "t.toml:3: coap.prot: unknown key (did you mean coap.port?)");
  EXPECT_EQ(ErrorOf(ParseConfig("[cooap]\nport = 1\n", "t.toml")),
            "t.toml:1: cooap: unknown key (did you mean coap?)");
  EXPECT_EQ(ErrorOf(ParseConfig("flavour = \"vanilla\"\n", "t.toml")),
            "t.toml:1: flavour: unknown key");
}

TEST(ConfigTest, EveryErrorIsReported) {
  std::string error =
      ErrorOf(ParseConfig("shards = -1\n[coap]\nport = 70000\ntypo = 1\n", "t.toml"));
  EXPECT_THAT(error, HasSubstr("t.toml:1: shards:"));
  EXPECT_THAT(error, HasSubstr("t.toml:3: coap.port:"));
  EXPECT_THAT(error, HasSubstr("t.toml:4: coap.typo: unknown key"));
}

TEST(ConfigTest, SyntaxErrorNamesTheLine) {
  EXPECT_THAT(ErrorOf(ParseConfig("shards = 1\n\n[coap\nport = 1\n", "bad.toml")),
              HasSubstr("bad.toml:3: "));
  EXPECT_THAT(ErrorOf(ParseConfig("shards = = 1\n", "bad.toml")), HasSubstr("bad.toml:1: "));
}

TEST(ConfigTest, SetErrorsNameTheSet) {
  EXPECT_EQ(ErrorOf(ParseConfig("", "t.toml", {"coap.port=70000"})),
            "--set coap.port=70000: coap.port: must be between 0 and 65535, got 70000");
  EXPECT_EQ(ErrorOf(ParseConfig("[coap]\nport = 1\n", "t.toml", {"coap.prot=1"})),
            "--set coap.prot=1: coap.prot: unknown key (did you mean coap.port?)");
  EXPECT_EQ(ErrorOf(ParseConfig("", "t.toml", {"coap.listen=127.0.0.1"})),
            "--set coap.listen=127.0.0.1: coap.listen: expected an array of addresses, got a "
            "string");
  EXPECT_EQ(ErrorOf(ParseConfig("", "t.toml", {"net.pin_threads=yes"})),
            "--set net.pin_threads=yes: net.pin_threads: expected a boolean (true or false), got "
            "a string");
  EXPECT_THAT(ErrorOf(ParseConfig("", "t.toml", {"coap.port"})),
              HasSubstr("--set coap.port: expected key=value"));
  EXPECT_THAT(ErrorOf(ParseConfig("", "t.toml", {"=5"})),
              HasSubstr("--set =5: expected key=value"));
  EXPECT_THAT(ErrorOf(ParseConfig("", "t.toml", {"shards.x=5"})),
              HasSubstr("--set shards.x=5: shards is not a table"));
}

TEST(ConfigTest, SetOnlyBlamesTheKeysItSet) {
  // The file's bad value keeps its line even though another key was set.
  std::string error = ErrorOf(ParseConfig("[coap]\nblock_size = 3\n", "t.toml", {"coap.port=1"}));
  EXPECT_EQ(error, "t.toml:2: coap.block_size: must be a power of two between 16 and 1024, got 3");
  EXPECT_THAT(error, Not(HasSubstr("--set")));
}

TEST(ConfigTest, MissingFile) {
  absl::StatusOr<Config> required = LoadConfig("/nonexistent/lwm2md.toml", {});
  ASSERT_FALSE(required.ok());
  EXPECT_EQ(required.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(required.status().message(), HasSubstr("/nonexistent/lwm2md.toml"));

  absl::StatusOr<Config> optional =
      LoadConfig("/nonexistent/lwm2md.toml", {"coap.port=9"}, /*file_required=*/false);
  ASSERT_TRUE(optional.ok()) << optional.status();
  EXPECT_EQ(optional->coap.port, 9);
}

TEST(ConfigTest, FileErrorsUseThePathGiven) {
  std::string path = ::testing::TempDir() + "/config_test_bad.toml";
  std::ofstream(path) << "# comment\n[http]\nport = \"x\"\n";
  EXPECT_EQ(ErrorOf(LoadConfig(path, {})),
            path + ":3: http.port: expected an integer, got a string");
}

TEST(ConfigTest, HttpTokensKeepDigestsOnly) {
  const std::string token_file = ::testing::TempDir() + "/config_test_token";
  std::ofstream(token_file) << "from-a-file-0123456789\n";
  absl::StatusOr<Config> config = ParseConfig(
      "[http]\npublic_metrics = true\n"
      "[[http.tokens]]\nname = \"ops\"\ntoken = \"inline-secret-0123456789\"\n"
      "access = \"read-write\"\n"
      "[[http.tokens]]\nname = \"grafana\"\ntoken_file = \"" +
          token_file + "\"\n",
      "t.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->http.public_metrics);
  EXPECT_EQ(
      config->http.tokens,
      (std::vector<api::ApiToken>{
          api::MakeApiToken("ops", "inline-secret-0123456789", api::TokenAccess::kReadWrite),
          // read-only unless said otherwise; the file's newline is not part of the token
          api::MakeApiToken("grafana", "from-a-file-0123456789", api::TokenAccess::kReadOnly)}));
  std::remove(token_file.c_str());
}

TEST(ConfigTest, HttpTokenErrorsNameTheElementAndNeverTheSecret) {
  const std::string table = "[[http.tokens]]\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {table + "token = \"abcdefghijklmnop\"", "t.toml:1: http.tokens[0].name: required"},
      {table + "name = \"a b\"\ntoken = \"abcdefghijklmnop\"",
       "t.toml:2: http.tokens[0].name: must be 1 to 64 letters, digits"},
      {table + "name = \"ops\"", "t.toml:1: http.tokens[0].token: required (or token_file"},
      {table + "name = \"ops\"\ntoken = \"abcdefghijklmnop\"\ntoken_file = \"x\"",
       "t.toml:4: http.tokens[0].token_file: set either token or token_file, not both"},
      {table + "name = \"ops\"\ntoken = \"too-short\"",
       "t.toml:3: http.tokens[0].token: must be at least 16 characters long, got 9"},
      {table + "name = \"ops\"\ntoken = \"not allowed: spaces\"",
       "t.toml:3: http.tokens[0].token: may hold only letters, digits"},
      {table + "name = \"ops\"\ntoken_file = \"/nonexistent/token\"",
       "t.toml:3: http.tokens[0].token_file: \"/nonexistent/token\": cannot read: No such file"},
      {table + "name = \"ops\"\ntoken = \"abcdefghijklmnop\"\naccess = \"admin\"",
       "t.toml:4: http.tokens[0].access: must be one of \"read-only\", \"read-write\", got "
       "\"admin\""},
      {table + "name = \"ops\"\ntoken = \"abcdefghijklmnop\"\nscope = \"all\"",
       "t.toml:4: http.tokens[0].scope: unknown key (expected name, token, token_file or access)"},
      {table + "name = \"ops\"\ntoken = \"abcdefghijklmnop\"\n" + table +
           "name = \"ops\"\ntoken = \"0123456789abcdef\"",
       "t.toml:5: http.tokens[1].name: \"ops\" is used twice"},
      {table + "name = \"a\"\ntoken = \"abcdefghijklmnop\"\n" + table +
           "name = \"b\"\ntoken = \"abcdefghijklmnop\"",
       "http.tokens[1].token: the same token as http.tokens[0]"},
      {"[http]\ntokens = \"abcdefghijklmnop\"",
       "t.toml:2: http.tokens: expected an array of tables ([[http.tokens]]), got a string"},
      {"[http]\ntokens = [\"abcdefghijklmnop\"]",
       "http.tokens[0]: expected a table of name, token or token_file, and access, got a string"},
  };
  for (const auto& [text, error] : cases) {
    SCOPED_TRACE(text);
    const std::string message = ErrorOf(ParseConfig(text, "t.toml"));
    EXPECT_THAT(message, HasSubstr(error));
    for (const char* secret :
         {"abcdefghijklmnop", "0123456789abcdef", "too-short", "not allowed: spaces"}) {
      EXPECT_THAT(message, Not(HasSubstr(secret)));
    }
  }
  // A --set carrying a token is not echoed either.
  const std::string message =
      ErrorOf(ParseConfig("", "t.toml", {"http.tokens=[{name=\"ops\",token=\"short-secret\"}]"}));
  EXPECT_THAT(message, HasSubstr("--set http.tokens=...: http.tokens[0].token: must be at least"));
  EXPECT_THAT(message, Not(HasSubstr("short-secret")));
}

TEST(ConfigTest, TlsCertificateAndKeyGoTogether) {
  absl::StatusOr<Config> config =
      ParseConfig("[http]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n", "t.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->http.tls_cert, "cert.pem");
  EXPECT_EQ(config->http.tls_key, "key.pem");
  EXPECT_EQ(ErrorOf(ParseConfig("[http]\ntls_cert = \"cert.pem\"\n", "t.toml")),
            "t.toml:2: http.tls_cert: needs http.tls_key too (both or neither)");
  EXPECT_EQ(ErrorOf(ParseConfig("", "t.toml", {"http.tls_key=key.pem"})),
            "--set http.tls_key=key.pem: http.tls_key: needs http.tls_cert too (both or neither)");
}

TEST(ConfigTest, DtlsCertificateAndKeyGoTogether) {
  absl::StatusOr<Config> config = ParseConfig(
      "[dtls]\ncertificate_file = \"chain.pem\"\nprivate_key_file = \"key.pem\"\n", "t.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->dtls.certificate_file, "chain.pem");
  EXPECT_EQ(config->dtls.private_key_file, "key.pem");
  EXPECT_EQ(ErrorOf(ParseConfig("[dtls]\ncertificate_file = \"chain.pem\"\n", "t.toml")),
            "t.toml:2: dtls.certificate_file: needs dtls.private_key_file too (both or neither)");
  EXPECT_EQ(ErrorOf(ParseConfig("", "t.toml", {"dtls.private_key_file=key.pem"})),
            "--set dtls.private_key_file=key.pem: dtls.private_key_file: needs "
            "dtls.certificate_file too (both or neither)");
  absl::StatusOr<Config> overridden = LoadConfig(
      kShippedConfig, {"dtls.certificate_file=/etc/lwm2md/chain.pem",
                       "dtls.private_key_file=/etc/lwm2md/key.pem"});
  ASSERT_TRUE(overridden.ok()) << overridden.status();
  EXPECT_EQ(overridden->dtls.certificate_file, "/etc/lwm2md/chain.pem");
  EXPECT_EQ(overridden->dtls.private_key_file, "/etc/lwm2md/key.pem");
}

TEST(ConfigTest, ShardGroupOptionsListenOnEachAddress) {
  absl::StatusOr<Config> config = ParseConfig(
      "shards = 2\n[net]\nbackend = \"epoll\"\nrecv_buffer_count = 64\n"
      "[coap]\nlisten = [\"127.0.0.1\", \"::1\"]\nport = 15683\n",
      "t.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  net::ShardGroupOptions options = ToShardGroupOptions(*config);
  EXPECT_EQ(options.shards, 2);
  EXPECT_EQ(options.backend, net::Backend::kEpoll);
  EXPECT_EQ(options.recv_buffer_count, 64u);
  // Plain CoAP on each address, then CoAP over DTLS on each address.
  ASSERT_EQ(options.listen.size(), 4u);
  EXPECT_EQ(options.listen[0].host, "127.0.0.1");
  EXPECT_EQ(options.listen[0].port, 15683);
  EXPECT_EQ(options.listen[0].purpose, "coap");
  EXPECT_FALSE(options.listen[0].dtls);
  EXPECT_EQ(options.listen[1].host, "::1");
  EXPECT_EQ(options.listen[1].port, 15683);
  EXPECT_EQ(options.listen[2].host, "127.0.0.1");
  EXPECT_EQ(options.listen[2].port, 5684);
  EXPECT_EQ(options.listen[2].purpose, "coaps");
  EXPECT_TRUE(options.listen[2].dtls);
  EXPECT_EQ(options.listen[3].host, "::1");
  EXPECT_TRUE(options.listen[3].dtls);

  absl::StatusOr<Config> plain = ParseConfig(
      "[coap]\nlisten = [\"127.0.0.1\"]\n[dtls]\nenabled = false\n", "t.toml");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(ToShardGroupOptions(*plain).listen.size(), 1u);
}

}  // namespace
}  // namespace lwm2md::server
