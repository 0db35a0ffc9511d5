// DTLS sessions end to end: a real server on loopback (2 shards, a store in a scratch
// directory) and mbedTLS clients over UDP. Sessions survive a restart and idle eviction
// without a new handshake, and a client with a connection id goes on from a new source port.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "coap/message.h"
#include "dtls/saved_session.h"
#include "dtls_test_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/endpoint_config.h"
#include "lwm2m/event_bus.h"
#include "server/config.h"
#include "server/server.h"
#include "server_test_util.h"
#include "store/store.h"

namespace lwm2md::server {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const std::string kKeyA = "0123456789abcdef";
const std::string kKeyB = "fedcba9876543210";

class DtlsSessionTest : public InProcessServerTest {
 protected:
  // Only configured endpoints: over DTLS, those with credentials.
  void StartServer(std::vector<std::string> overrides = {}) {
    overrides.insert(overrides.begin(), "lwm2m.allow_unknown_endpoints=false");
    InProcessServerTest::StartServer(overrides);
  }

  void AddPskEndpoint(const std::string& name, const std::string& identity,
                      const std::string& key) {
    lwm2m::EndpointConfig endpoint;
    endpoint.name = name;
    endpoint.security_mode = lwm2m::SecurityMode::kPsk;
    endpoint.psk_identity = identity;
    endpoint.psk_key = key;
    ASSERT_TRUE(server_->endpoints().Create(endpoint).ok());
  }

  // Registers and returns the location path ("rd/<id>").
  std::string Register(Client& client, const std::string& endpoint) {
    std::optional<Reply> reply = client.Register({"ep=" + endpoint, "lt=300", "lwm2m=1.1"});
    EXPECT_TRUE(reply.has_value());
    if (!reply.has_value()) return "";
    EXPECT_EQ(reply->code, coap::code::kCreated);
    EXPECT_EQ(reply->location.size(), 2u);
    return reply->location.size() == 2 ? "rd/" + reply->location[1] : "";
  }
  uint8_t Update(Client& client, const std::string& location) {
    std::optional<Reply> reply = client.Request(coap::code::kPost, location, {});
    return reply.has_value() ? reply->code : 0;
  }

  double Metric(std::string_view family, std::string_view labels = "") {
    return MetricSum(*server_, family, labels);
  }
  // Waits (a few seconds at most) until a metric reaches a value.
  bool WaitForMetric(std::string_view family, std::string_view labels, double value) {
    const absl::Time deadline = absl::Now() + absl::Seconds(8);
    while (absl::Now() < deadline) {
      if (Metric(family, labels) == value) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }
  uint64_t StoredSessionEntries() {
    absl::StatusOr<uint64_t> count = server_->store().Count(store::Table::kDtlsSessions);
    EXPECT_TRUE(count.ok());
    return count.ok() ? *count : 0;
  }

  // Reads 3/0/0 from endpoint through the device management service, the client answering
  // it: the server reaches the device over its session.
  void ReadThroughTheSession(DtlsClient& client, const std::string& endpoint) {
    std::shared_ptr<CallResult> call = SubmitAction(
        *server_, lwm2m::ActionKind::kRead, endpoint, R"({"paths":["3/0/0"]})");
    std::optional<ServerRequest> read = client.NextServerRequest(5s);
    ASSERT_TRUE(read.has_value()) << "the read did not reach the device";
    EXPECT_EQ(read->path, "3/0/0");
    client.Answer(*read, coap::code::kContent, coap::content_format::kTextPlain, "maker");
    std::optional<lwm2m::ActionOutcome> outcome = call->Wait(absl::Seconds(5));
    ASSERT_TRUE(outcome.has_value());
    EXPECT_EQ(outcome->failure, lwm2m::ActionOutcome::Failure::kNone) << outcome->error;
    EXPECT_THAT(outcome->body_json, HasSubstr("maker"));
  }

};

// Sessions are saved at shutdown; after the restart both clients (with and without a
// connection id) go on with their sessions: no cookie, no handshake.
TEST_F(DtlsSessionTest, SessionsSurviveARestartWithoutANewHandshake) {
  StartServer();
  AddPskEndpoint("meter-cid", "meter-cid-id", kKeyA);
  AddPskEndpoint("meter-plain", "meter-plain-id", kKeyB);
  DtlsClient with_id(secure_port(), "meter-cid-id", kKeyA, /*connection_id=*/true);
  DtlsClient without_id(secure_port(), "meter-plain-id", kKeyB, /*connection_id=*/false);
  ASSERT_EQ(with_id.Handshake(), 0);
  ASSERT_EQ(without_id.Handshake(), 0);
  EXPECT_TRUE(with_id.connection_id_in_use());
  EXPECT_FALSE(without_id.connection_id_in_use());
  const std::string location_a = Register(with_id, "meter-cid");
  const std::string location_b = Register(without_id, "meter-plain");
  ASSERT_FALSE(location_a.empty());
  ASSERT_FALSE(location_b.empty());
  EXPECT_EQ(Metric("lwm2md_dtls_handshakes_completed_total"), 2);

  server_->Stop();
  EXPECT_EQ(Metric("lwm2md_dtls_sessions_saved_total", "reason=\"shutdown\""), 2);
  EXPECT_EQ(StoredSessionEntries(), 4u) << "a session and an address key per client";
  StopServer();

  StartServer();
  with_id.set_server_port(secure_port());
  without_id.set_server_port(secure_port());
  // The registration waits on the shard the connection id names, where the device's records
  // will arrive: the server's first request restores the session there.
  std::optional<lwm2m::DirectoryEntry> entry = server_->directory().Lookup("meter-cid");
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->shard, with_id.server_connection_id_shard() % 2);
  ReadThroughTheSession(with_id, "meter-cid");
  EXPECT_EQ(Update(with_id, location_a), coap::code::kChanged);
  EXPECT_EQ(Update(without_id, location_b), coap::code::kChanged);
  EXPECT_EQ(Metric("lwm2md_dtls_handshakes_completed_total"), 0);
  EXPECT_EQ(Metric("lwm2md_dtls_hello_verify_requests_total"), 0);
  EXPECT_EQ(Metric("lwm2md_dtls_sessions_restored_total"), 2);
  EXPECT_EQ(Metric("lwm2md_registrations_moved_total"), 0) << "a registration waited elsewhere";
  // Restored sessions leave the store: a copy restored twice would reuse sequence numbers.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (StoredSessionEntries() != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(StoredSessionEntries(), 0u);
}

// An idle session leaves memory for the store; the server's next request to the device and
// the device's next record each bring it back, without a handshake.
TEST_F(DtlsSessionTest, IdleSessionsLeaveMemoryAndComeBack) {
  StartServer({"dtls.session_idle_save_s=1"});
  AddPskEndpoint("sensor", "sensor-id", kKeyA);
  DtlsClient client(secure_port(), "sensor-id", kKeyA, /*connection_id=*/true);
  ASSERT_EQ(client.Handshake(), 0);
  const std::string location = Register(client, "sensor");
  ASSERT_FALSE(location.empty());

  ASSERT_TRUE(WaitForMetric("lwm2md_dtls_sessions_saved_total", "reason=\"idle\"", 1));
  ASSERT_TRUE(WaitForMetric("lwm2md_dtls_sessions", "", 0)) << "the session stayed in memory";
  ReadThroughTheSession(client, "sensor");
  EXPECT_EQ(Metric("lwm2md_dtls_sessions_restored_total"), 1);

  ASSERT_TRUE(WaitForMetric("lwm2md_dtls_sessions_saved_total", "reason=\"idle\"", 2));
  ASSERT_TRUE(WaitForMetric("lwm2md_dtls_sessions", "", 0));
  EXPECT_EQ(Update(client, location), coap::code::kChanged);
  EXPECT_EQ(Metric("lwm2md_dtls_sessions_restored_total"), 2);
  EXPECT_EQ(Metric("lwm2md_dtls_handshakes_completed_total"), 1);
}

// A NAT rebinding: the client's source port changes mid-session. With a connection id its
// next request goes through without a handshake, the update event shows the new address, and
// the server's requests follow it there. Without one, the server cannot know the new port.
TEST_F(DtlsSessionTest, ConnectionIdCarriesTheSessionToANewSourcePort) {
  StartServer();
  AddPskEndpoint("tracker", "tracker-id", kKeyA);
  AddPskEndpoint("legacy", "legacy-id", kKeyB);
  DtlsClient client(secure_port(), "tracker-id", kKeyA, /*connection_id=*/true);
  ASSERT_EQ(client.Handshake(), 0);
  const std::string location = Register(client, "tracker");
  std::optional<lwm2m::Event> registered = NextEvent(lwm2m::event_type::kRegister);
  ASSERT_TRUE(registered.has_value());
  EXPECT_THAT(registered->payload_json, HasSubstr("\"" + client.address() + "\""));

  const std::string before = client.address();
  client.Rebind();
  ASSERT_NE(client.address(), before);
  EXPECT_EQ(Update(client, location), coap::code::kChanged);
  std::optional<lwm2m::Event> updated = NextEvent(lwm2m::event_type::kUpdate);
  ASSERT_TRUE(updated.has_value());
  EXPECT_THAT(updated->payload_json, HasSubstr("\"" + client.address() + "\""));
  EXPECT_EQ(Metric("lwm2md_dtls_rebinds_total"), 1);
  EXPECT_EQ(Metric("lwm2md_dtls_handshakes_completed_total"), 1);
  ReadThroughTheSession(client, "tracker");

  DtlsClient legacy(secure_port(), "legacy-id", kKeyB, /*connection_id=*/false);
  ASSERT_EQ(legacy.Handshake(), 0);
  const std::string legacy_location = Register(legacy, "legacy");
  const double no_session = Metric("lwm2md_dtls_dropped_total", "reason=\"no_session\"");
  legacy.Rebind();
  EXPECT_EQ(Update(legacy, legacy_location), 0) << "answered without a session";
  EXPECT_GT(Metric("lwm2md_dtls_dropped_total", "reason=\"no_session\""), no_session);
}

// A saved session the device never came back for is forgotten after
// dtls.saved_session_max_age_s, its address key with it.
TEST_F(DtlsSessionTest, SavedSessionsAgeOut) {
  StartServer({"dtls.saved_session_max_age_s=60"});
  dtls::SavedSession old;
  old.connection_id = 0x00ab'cdef'0000'0001;
  old.peer = *net::PeerAddress::Parse("127.0.0.1:9");
  old.identity.endpoint = "gone";
  old.saved_at = absl::Now() - absl::Minutes(2);
  old.context = "context bytes";
  dtls::SavedSession fresh = old;
  fresh.connection_id = 0x00ab'cdef'0000'0002;
  fresh.peer = *net::PeerAddress::Parse("127.0.0.1:10");
  fresh.saved_at = absl::Now();
  store::WriteBatch batch;
  dtls::AddSave(batch, old);
  dtls::AddSave(batch, fresh);
  ASSERT_TRUE(server_->store().Write(std::move(batch)).ok());

  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (StoredSessionEntries() != 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  auto stored = [this](const std::string& key) {
    absl::StatusOr<std::optional<std::string>> value =
        server_->store().Get(store::Table::kDtlsSessions, key);
    return value.ok() && value->has_value();
  };
  EXPECT_FALSE(stored(dtls::SessionKey(old.connection_id)));
  EXPECT_FALSE(stored(dtls::AddressKey(old.peer)));
  EXPECT_TRUE(stored(dtls::SessionKey(fresh.connection_id)));
  EXPECT_TRUE(stored(dtls::AddressKey(fresh.peer)));
  EXPECT_EQ(Metric("lwm2md_dtls_sessions_expired_total"), 1);
}

}  // namespace
}  // namespace lwm2md::server
