// Device management end to end: a real server on loopback (2 shards, a store in a scratch
// directory), calls submitted to its ManagementHub and answered by CoAP client sockets.

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "coap/message.h"
#include "coap_test_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lwm2m/action.h"
#include "lwm2m/data_tree.h"
#include "lwm2m/device_management.h"
#include "lwm2m/event_bus.h"
#include "server/config.h"
#include "server/server.h"
#include "server_test_util.h"

namespace lwm2md::server {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class DeviceManagementTest : public InProcessServerTest {
 protected:
  void SetUp() override {
    InProcessServerTest::SetUp();
    StartServer({"lwm2m.queue_awake_window_s=1"});
  }

  std::shared_ptr<CallResult> Submit(lwm2m::ActionKind kind, const std::string& endpoint,
                                     const std::string& body) {
    return SubmitAction(*server_, kind, endpoint, body);
  }
};

// A queue-mode device that wakes up from a new source port (a NAT rebinding) may land on the
// other shard: its registration moves there, and the calls that waited for it go along and
// are sent, rather than failing as "not registered".
TEST_F(DeviceManagementTest, QueuedCallsFollowTheDeviceToAnotherShard) {
  auto first = std::make_unique<Client>(port());
  std::optional<Reply> registered = first->Register({"ep=sleepy", "b=UQ", "lt=600", "lwm2m=1.1"});
  ASSERT_TRUE(registered.has_value());
  ASSERT_EQ(registered->code, coap::code::kCreated);
  const std::string location = "rd/" + registered->location.at(1);
  int moves = 0;
  std::vector<std::unique_ptr<Client>> clients;
  // Each new port hashes to either shard: 16 tries see several moves with near certainty.
  for (int i = 0; i < 16 && moves < 4; ++i) {
    absl::SleepFor(absl::Milliseconds(1200));  // past the 1 s awake window: asleep
    const std::string maker = "maker " + std::to_string(i);
    std::shared_ptr<CallResult> call =
        Submit(lwm2m::ActionKind::kRead, "sleepy", R"({"paths":["3/0/0"],"options":{"async":false}})");
    std::optional<lwm2m::Submission> accepted = call->WaitAccepted(absl::Seconds(5));
    ASSERT_TRUE(accepted.has_value());
    ASSERT_TRUE(accepted->status.ok()) << accepted->status;
    EXPECT_TRUE(accepted->queued);

    clients.push_back(std::make_unique<Client>(port()));
    Client& client = *clients.back();
    const int shard_before = server_->directory().Lookup("sleepy")->shard;
    std::optional<Reply> updated = client.Request(coap::code::kPost, location, {});
    ASSERT_TRUE(updated.has_value());
    ASSERT_EQ(updated->code, coap::code::kChanged);
    if (server_->directory().Lookup("sleepy")->shard != shard_before) ++moves;

    std::optional<ServerRequest> read = client.NextServerRequest(5s);
    ASSERT_TRUE(read.has_value()) << "the queued read was not sent after the Update " << i;
    EXPECT_EQ(read->method, coap::code::kGet);
    EXPECT_EQ(read->path, "3/0/0");
    client.Answer(*read, coap::code::kContent, coap::content_format::kTextPlain, maker);
    std::optional<lwm2m::ActionOutcome> outcome = call->Wait(absl::Seconds(5));
    ASSERT_TRUE(outcome.has_value());
    EXPECT_EQ(outcome->failure, lwm2m::ActionOutcome::Failure::kNone) << outcome->error;
    EXPECT_THAT(outcome->body_json, HasSubstr(maker));
  }
  EXPECT_GE(moves, 1) << "no Update landed on the other shard";
}

// A read's data event goes out once its values are in lastKnown: a consumer that reads
// lastKnown on seeing the event finds them.
TEST_F(DeviceManagementTest, ReadDataEventComesAfterItsValuesAreStored) {
  Client client(port());
  std::optional<Reply> registered = client.Register({"ep=reader", "lt=600"});
  ASSERT_TRUE(registered.has_value());
  ASSERT_EQ(registered->code, coap::code::kCreated);
  for (int i = 0; i < 20; ++i) {
    const std::string maker = "value " + std::to_string(i);
    std::shared_ptr<CallResult> call =
        Submit(lwm2m::ActionKind::kRead, "reader", R"({"paths":["3/0/0"]})");
    std::optional<ServerRequest> read = client.NextServerRequest(5s);
    ASSERT_TRUE(read.has_value());
    client.Answer(*read, coap::code::kContent, coap::content_format::kTextPlain, maker);
    std::optional<lwm2m::Event> data = NextEvent(lwm2m::event_type::kData);
    ASSERT_TRUE(data.has_value());
    EXPECT_THAT(data->payload_json, HasSubstr(maker));
    absl::StatusOr<std::string> last_known =
        lwm2m::ReadLastKnown(server_->store(), "reader", *server_->objects().snapshot(), {});
    ASSERT_TRUE(last_known.ok()) << last_known.status();
    EXPECT_THAT(*last_known, HasSubstr(maker)) << "lastKnown behind the data event " << i;
  }
}

}  // namespace
}  // namespace lwm2md::server
