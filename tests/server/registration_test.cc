// The registration interface end to end: a real server on loopback (2 shards, a store in a
// scratch directory) and a CoAP client socket speaking Register/Update/De-register to it.

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coap/message.h"
#include "net/steering.h"
#include "coap_test_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/billing.h"
#include "lwm2m/event_bus.h"
#include "server/config.h"
#include "server/server.h"
#include "server_test_util.h"
#include "store/store.h"

namespace lwm2md::server {
namespace {

using ::testing::HasSubstr;

class RegistrationTest : public InProcessServerTest {
 protected:
  void StartServer(bool allow_unknown_endpoints = true, int map_size_mb = 64,
                   Server::FatalHandler on_fatal = nullptr) {
    InProcessServerTest::StartServer(
        {"store.map_size_mb=" + std::to_string(map_size_mb),
         std::string("lwm2m.allow_unknown_endpoints=") +
             (allow_unknown_endpoints ? "true" : "false")},
        std::move(on_fatal));
  }

  uint64_t StoredRegistrations() {
    absl::StatusOr<uint64_t> count = server_->store().Count(store::Table::kRegistrations);
    EXPECT_TRUE(count.ok());
    return count.ok() ? *count : 0;
  }
};

TEST_F(RegistrationTest, RegisterUpdateDeregisterWithEventsExactlyAsTheReference) {
  StartServer();
  Client client(port());
  std::optional<Reply> created =
      client.Register({"ep=dev-1", "lt=60", "lwm2m=1.1", "b=U"},
                      "</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</2>,</3/0>,</5/0>,</6/0>");
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->code, coap::code::kCreated) << created->payload;
  ASSERT_EQ(created->location.size(), 2u);
  EXPECT_EQ(created->location[0], "rd");

  std::optional<lwm2m::Event> registered = NextEvent(lwm2m::event_type::kRegister);
  ASSERT_TRUE(registered.has_value());
  EXPECT_EQ(registered->endpoint, "dev-1");
  EXPECT_EQ(registered->payload_json,
            "{\"binding\":\"U\",\"credentials\":\"none\",\"remoteAddr\":\"" + client.address() +
                "\",\"version\":\"1.1\",\"discovery\":{\"children\":{"
                "\"1\":{\"children\":{\"0\":{}}},\"2\":{},\"3\":{\"children\":{\"0\":{}}},"
                "\"5\":{\"children\":{\"0\":{}}},\"6\":{\"children\":{\"0\":{}}}}}}");
  std::optional<lwm2m::DirectoryEntry> entry = server_->directory().Lookup("dev-1");
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->presence, lwm2m::Presence::kConnected);
  EXPECT_EQ(entry->location, "/rd/" + created->location[1]);
  EXPECT_EQ(StoredRegistrations(), 1u);

  const std::string location = "rd/" + created->location[1];
  std::optional<Reply> updated = client.Request(coap::code::kPost, location, {"lt=120", "Q"});
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->code, coap::code::kChanged);
  std::optional<lwm2m::Event> update_event = NextEvent(lwm2m::event_type::kUpdate);
  ASSERT_TRUE(update_event.has_value());
  EXPECT_THAT(update_event->payload_json, HasSubstr("\"binding\":\"UQ\""));
  EXPECT_EQ(server_->directory().Lookup("dev-1")->lifetime_seconds, 120u);

  std::optional<Reply> deleted = client.Request(coap::code::kDelete, location, {});
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(deleted->code, coap::code::kDeleted);
  std::optional<lwm2m::Event> gone = NextEvent(lwm2m::event_type::kDeregister);
  ASSERT_TRUE(gone.has_value());
  EXPECT_THAT(gone->payload_json, HasSubstr("\"reason\":\"deregistered\""));
  EXPECT_FALSE(server_->directory().Lookup("dev-1").has_value());
  EXPECT_EQ(StoredRegistrations(), 0u);

  std::optional<Reply> stale = client.Request(coap::code::kPost, location, {});
  ASSERT_TRUE(stale.has_value());
  EXPECT_EQ(stale->code, coap::code::kNotFound);
}

TEST_F(RegistrationTest, BadRegistrationsAreRefusedAndStoreNothing) {
  StartServer();
  Client client(port());
  struct Case {
    std::vector<std::string> queries;
    std::string links;
    uint8_t code;
  };
  const Case cases[] = {
      {{"lt=60"}, "</1/0>", coap::code::kBadRequest},                      // no ep
      {{"ep=x", "lt=abc"}, "</1/0>", coap::code::kBadRequest},             // bad lt
      {{"ep=x", "lt=-5"}, "</1/0>", coap::code::kBadRequest},              // negative lt
      {{"ep=x"}, "</1/0>,<bad", coap::code::kBadRequest},                  // malformed links
      {{"ep=x"}, "", coap::code::kBadRequest},                             // no payload
      {{"ep=x", "lwm2m=one"}, "</1/0>", coap::code::kBadRequest},          // bad version
      {{"ep=x", "lwm2m=1.2"}, "</1/0>", coap::code::kPreconditionFailed},  // newer version
      {{"ep=x", "b=Z"}, "</1/0>", coap::code::kBadRequest},                // bad binding
  };
  for (const Case& c : cases) {
    std::optional<Reply> reply = client.Register(c.queries, c.links);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->code, c.code) << c.queries[0] << " " << c.links;
    EXPECT_FALSE(reply->payload.empty()) << "a diagnostic payload says why";
  }
  std::optional<Reply> json = client.Request(coap::code::kPost, "rd", {"ep=x"}, "{}",
                                             coap::content_format::kSenmlJson);
  ASSERT_TRUE(json.has_value());
  EXPECT_EQ(json->code, coap::code::kUnsupportedContentFormat);
  EXPECT_EQ(StoredRegistrations(), 0u);
  EXPECT_FALSE(server_->directory().Lookup("x").has_value());
  EXPECT_FALSE(NextEvent(lwm2m::event_type::kRegister, absl::Milliseconds(200)).has_value());
}

TEST_F(RegistrationTest, NewerVersionFallsBackAndRegisters) {
  StartServer();
  Client client(port());
  std::optional<Reply> refused = client.Register({"ep=fallback", "lwm2m=1.2"});
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, coap::code::kPreconditionFailed);
  std::optional<Reply> accepted = client.Register({"ep=fallback", "lwm2m=1.1"});
  ASSERT_TRUE(accepted.has_value());
  EXPECT_EQ(accepted->code, coap::code::kCreated);
  std::optional<Reply> v10 = client.Register({"ep=old", "lwm2m=1.0", "b=UQ"});
  ASSERT_TRUE(v10.has_value());
  EXPECT_EQ(v10->code, coap::code::kCreated);
  EXPECT_EQ(server_->directory().Lookup("old")->binding, "UQ");
}

TEST_F(RegistrationTest, RegistrationsSurviveARestart) {
  StartServer();
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::string> locations;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(std::make_unique<Client>(port()));
    std::optional<Reply> reply =
        clients.back()->Register({"ep=persist-" + std::to_string(i), "lt=300"});
    ASSERT_TRUE(reply.has_value());
    ASSERT_EQ(reply->code, coap::code::kCreated);
    locations.push_back("rd/" + reply->location[1]);
  }
  // The clients keep their sockets (their addresses) across the restart, like devices.
  StopServer();
  StartServer();
  for (int i = 0; i < 20; ++i) {
    std::optional<lwm2m::DirectoryEntry> entry =
        server_->directory().Lookup("persist-" + std::to_string(i));
    ASSERT_TRUE(entry.has_value()) << i;
    EXPECT_EQ(entry->address.ToString(), clients[i]->address());
    // Restored on the shard the device's packets reach (net/steering.h).
    EXPECT_EQ(entry->shard, net::SteeringShard(clients[i]->peer_address(), 2)) << i;
  }
  // The server's port changed with the restart (port 0). Half the clients Update from their
  // old addresses, and stay where they were restored; the others from new ones.
  for (int i = 0; i < 20; ++i) {
    std::unique_ptr<Client> fresh;
    Client* client = clients[i].get();
    if (i % 2 == 0) {
      client->set_server_port(port());
    } else {
      fresh = std::make_unique<Client>(port());
      client = fresh.get();
    }
    const int restored_on = server_->directory().Lookup("persist-" + std::to_string(i))->shard;
    std::optional<Reply> reply = client->Request(coap::code::kPost, locations[i], {});
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->code, coap::code::kChanged) << locations[i];
    const int now_on = server_->directory().Lookup("persist-" + std::to_string(i))->shard;
    EXPECT_EQ(now_on, net::SteeringShard(client->peer_address(), 2)) << i;
    if (i % 2 == 0) {
      EXPECT_EQ(now_on, restored_on) << i;
    }
  }
  EXPECT_EQ(StoredRegistrations(), 20u);
}

TEST_F(RegistrationTest, LifetimeExpiryDeregisters) {
  StartServer();
  Client client(port());
  std::optional<Reply> reply = client.Register({"ep=short", "lt=1"});
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->code, coap::code::kCreated);
  std::optional<lwm2m::Event> expired =
      NextEvent(lwm2m::event_type::kDeregister, absl::Seconds(5));
  ASSERT_TRUE(expired.has_value());
  EXPECT_THAT(expired->payload_json, HasSubstr("\"reason\":\"expired\""));
  EXPECT_FALSE(server_->directory().Lookup("short").has_value());
  // The delete is asynchronous; it lands within a commit.
  for (int i = 0; i < 50 && StoredRegistrations() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(StoredRegistrations(), 0u);
}

TEST_F(RegistrationTest, SecondRegisterReplacesTheFirstAndUpdatesFollowTheClient) {
  StartServer();
  // Many clients, so that some land on each of the two shards.
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(std::make_unique<Client>(port()));
  std::optional<Reply> first = clients[0]->Register({"ep=same"});
  ASSERT_TRUE(first.has_value());
  std::string location = "rd/" + first->location[1];
  for (int i = 1; i < 8; ++i) {
    std::optional<Reply> again = clients[i]->Register({"ep=same"});
    ASSERT_TRUE(again.has_value());
    ASSERT_EQ(again->code, coap::code::kCreated);
    // The replaced location is gone; the new one answers.
    std::optional<Reply> old = clients[i]->Request(coap::code::kPost, location, {});
    ASSERT_TRUE(old.has_value());
    EXPECT_EQ(old->code, coap::code::kNotFound);
    location = "rd/" + again->location[1];
    EXPECT_EQ(server_->directory().Lookup("same")->address.ToString(), clients[i]->address());
  }
  EXPECT_EQ(StoredRegistrations(), 1u);
  // An Update from another address (a NAT rebinding) moves the registration to the client's
  // new address, on whichever shard it now lands.
  for (int i = 0; i < 8; ++i) {
    std::optional<Reply> moved = clients[i]->Request(coap::code::kPost, location, {});
    ASSERT_TRUE(moved.has_value());
    EXPECT_EQ(moved->code, coap::code::kChanged);
    EXPECT_EQ(server_->directory().Lookup("same")->address.ToString(), clients[i]->address());
    std::optional<lwm2m::Event> update = NextEvent(lwm2m::event_type::kUpdate);
    ASSERT_TRUE(update.has_value());
    EXPECT_THAT(update->payload_json, HasSubstr(clients[i]->address()));
  }
}

TEST_F(RegistrationTest, OnlyConfiguredEndpointsWithoutSecurityMayRegisterOverPlainCoap) {
  StartServer(/*allow_unknown_endpoints=*/false);
  Client client(port());
  std::optional<Reply> unknown = client.Register({"ep=stranger"});
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->code, coap::code::kForbidden);

  lwm2m::EndpointConfig plain;
  plain.name = "known";
  plain.security_mode = lwm2m::SecurityMode::kNone;
  ASSERT_TRUE(server_->endpoints().Create(plain).ok());
  lwm2m::EndpointConfig secure;
  secure.name = "needs-dtls";
  secure.security_mode = lwm2m::SecurityMode::kPsk;
  secure.psk_identity = "needs-dtls-id";
  secure.psk_key = std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
  ASSERT_TRUE(server_->endpoints().Create(secure).ok());

  std::optional<Reply> known = client.Register({"ep=known"});
  ASSERT_TRUE(known.has_value());
  EXPECT_EQ(known->code, coap::code::kCreated);
  std::optional<Reply> spoof = client.Register({"ep=needs-dtls"});
  ASSERT_TRUE(spoof.has_value());
  EXPECT_EQ(spoof->code, coap::code::kForbidden);
  EXPECT_FALSE(server_->directory().Lookup("needs-dtls").has_value());

  // The service setting opens the door to unknown endpoints at run time.
  lwm2m::ServiceSettings settings = server_->endpoints().settings();
  settings.allow_unknown_endpoints = true;
  ASSERT_TRUE(server_->endpoints().UpdateSettings(settings).ok());
  std::optional<Reply> now_allowed = client.Register({"ep=stranger"});
  ASSERT_TRUE(now_allowed.has_value());
  EXPECT_EQ(now_allowed->code, coap::code::kCreated);
}

TEST_F(RegistrationTest, SilentEndpointIsDeclaredMissingAndComesBack) {
  StartServer();
  lwm2m::ServiceSettings settings = server_->endpoints().settings();
  settings.default_missing_timeout_seconds = 1;
  ASSERT_TRUE(server_->endpoints().UpdateSettings(settings).ok());
  Client client(port());
  std::optional<Reply> created = client.Register({"ep=sleepy", "lt=600"});
  ASSERT_TRUE(created.has_value());
  ASSERT_EQ(created->code, coap::code::kCreated);
  std::optional<lwm2m::Event> missing = NextEvent(lwm2m::event_type::kMissing);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->endpoint, "sleepy");
  EXPECT_THAT(missing->payload_json, HasSubstr("\"missingTimeoutSeconds\":1"));
  EXPECT_EQ(server_->directory().Lookup("sleepy")->presence, lwm2m::Presence::kMissing);

  std::optional<Reply> updated =
      client.Request(coap::code::kPost, "rd/" + created->location[1], {});
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->code, coap::code::kChanged);
  std::optional<lwm2m::Event> back = NextEvent(lwm2m::event_type::kBack);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(server_->directory().Lookup("sleepy")->presence, lwm2m::Presence::kConnected);
}

TEST_F(RegistrationTest, FullStoreRefusesRegistrationsAndReportsFatal) {
  std::atomic<int> fatal_calls{0};
  StartServer(true, /*map_size_mb=*/1, [&fatal_calls](absl::Status status) {
    EXPECT_THAT(std::string(status.message()), HasSubstr("map_size_mb"));
    ++fatal_calls;
  });
  Client client(port());
  // Each registration stores a few hundred bytes: a 1 MiB map fills within a few thousand.
  int acknowledged = 0;
  std::optional<Reply> refused;
  for (int i = 0; i < 20000 && !refused; ++i) {
    std::optional<Reply> reply = client.Register(
        {"ep=filler-" + std::to_string(i) + "-" + std::string(120, 'x'), "lt=3600"},
        "</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</3303/0>,</3303/1>,</3303/2>");
    ASSERT_TRUE(reply.has_value());
    if (reply->code == coap::code::kCreated) {
      ++acknowledged;
    } else {
      refused = reply;
    }
  }
  ASSERT_TRUE(refused.has_value()) << "the map never filled";
  EXPECT_EQ(refused->code, coap::code::kInternalServerError);
  EXPECT_THAT(refused->payload, HasSubstr("full"));
  EXPECT_GT(acknowledged, 100);
  // The handler runs on the writer thread right after the failed group's callbacks.
  for (int i = 0; i < 100 && fatal_calls.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(fatal_calls.load(), 1);
  EXPECT_FALSE(server_->store().health().ok());
  // Nothing acknowledged was lost: every 2.01 is in the store.
  absl::StatusOr<uint64_t> stored = server_->store().Count(store::Table::kRegistrations);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, static_cast<uint64_t>(acknowledged));
  // Later writes fail at once with the same clear error.
  std::optional<Reply> later = client.Register({"ep=after-full"});
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->code, coap::code::kInternalServerError);
}

// Billing counts every Register and Update although nobody subscribes to the events (the
// registration service then publishes them without formatting a payload).
TEST_F(RegistrationTest, BillingCountsRegistersWithoutSubscribers) {
  StartServer();
  events_.reset();
  ASSERT_FALSE(server_->events().HasSubscribers());
  constexpr int kRegisters = 5;
  std::string location;
  for (int i = 0; i < kRegisters; ++i) {
    Client client(port());
    std::optional<Reply> created = client.Register({"ep=bill-" + std::to_string(i), "lt=300"});
    ASSERT_TRUE(created.has_value());
    ASSERT_EQ(created->code, coap::code::kCreated) << created->payload;
    if (i == 0) {
      std::optional<Reply> updated =
          client.Request(coap::code::kPost, "rd/" + created->location[1], {"lt=600"});
      ASSERT_TRUE(updated.has_value());
      EXPECT_EQ(updated->code, coap::code::kChanged);
    }
  }

  httplib::Client http("127.0.0.1", server_->http_port());
  // The API token the server generated into its data directory, when it keeps one.
  if (std::ifstream token_file(dir_ / "data" / "api-token"); token_file) {
    std::string token;
    std::getline(token_file, token);
    http.set_bearer_token_auth(token);
  }
  httplib::Result result = http.Get("/api/v1/billing");
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  EXPECT_THAT(result->body, HasSubstr("\"counts\":{\"register\":" +
                                      std::to_string(kRegisters) + ",\"update\":1,"));
  EXPECT_THAT(result->body, HasSubstr("\"billableTotal\":" + std::to_string(kRegisters + 1)));
  result = http.Get("/api/v1/billing?endpoint=bill-0");
  ASSERT_TRUE(result);
  EXPECT_THAT(result->body, HasSubstr("\"counts\":{\"register\":1,\"update\":1,"));

  const std::string metrics = server_->metrics().CollectText();
  EXPECT_THAT(metrics, HasSubstr("lwm2md_events_total{kind=\"register\",billable=\"true\"} " +
                                 std::to_string(kRegisters)));
  EXPECT_THAT(metrics, HasSubstr("lwm2md_events_total{kind=\"deregister\",billable=\"false\"} 0"));
  EXPECT_THAT(metrics, HasSubstr("lwm2md_endpoint_billable_events_total{endpoint=\"bill-0\","
                                 "kind=\"update\"} 1"));

  // Stopping writes the day's counts; a restart reads them back.
  StopServer();
  StartServer();
  // (Yesterday too, should the test run across midnight UTC.)
  const absl::CivilDay today = server_->billing().Today();
  absl::StatusOr<std::vector<lwm2m::DayCounts>> days =
      server_->billing().Read("", today - 1, today);
  ASSERT_TRUE(days.ok()) << days.status();
  uint64_t registers = 0;
  for (const lwm2m::DayCounts& day : *days) {
    registers += day.counts[static_cast<int>(lwm2m::EventKind::kRegister)];
  }
  EXPECT_EQ(registers, static_cast<uint64_t>(kRegisters));
}

}  // namespace
}  // namespace lwm2md::server
