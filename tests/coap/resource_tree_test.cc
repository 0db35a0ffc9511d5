#include "coap/resource_tree.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coap/coap_metrics.h"
#include "coap/config.h"
#include "coap/diagnostic_resource.h"
#include "coap/message.h"
#include "coap/message_layer.h"
#include "fake_shard_io.h"
#include "gtest/gtest.h"

namespace lwm2md::coap {
namespace {

using testutil::BuildMessage;
using testutil::FakeShardIo;
using testutil::Text;

constexpr uint8_t kToken[] = {0x01, 0x02};

// The tree behind a real message layer, driven through datagrams as a device would.
class ResourceTreeTest : public ::testing::Test {
 protected:
  ResourceTreeTest() { config_.diagnostic_resource = true; }

  ResourceTree& tree() {
    if (!tree_) {
      tree_ = std::make_unique<ResourceTree>(config_);
      if (config_.diagnostic_resource) {
        EXPECT_TRUE(RegisterDiagnosticResource(*tree_, io_, diagnostic_).ok());
      }
    }
    return *tree_;
  }
  MessageLayer& layer() {
    if (!layer_) layer_ = std::make_unique<MessageLayer>(io_, config_, metrics_, tree());
    return *layer_;
  }

  // Sends one request and returns the single response message (its bytes are kept).
  MessageView Exchange1(uint8_t method, std::string_view path, std::string_view query = {},
                        std::string_view payload = {},
                        std::optional<BlockOption> block2 = std::nullopt) {
    const std::vector<uint8_t> request = BuildMessage([&](MessageBuilder& b) {
      b.Header(Type::kConfirmable, method, next_mid_++, kToken).UriPath(path);
      if (!query.empty()) b.UriQuery(query);
      if (block2) b.Block(option::kBlock2, *block2);
      b.Payload(payload);
    });
    layer().OnDatagram(net::ReceivedDatagram{0, peer_, request});
    EXPECT_EQ(io_.sent().size(), 1u);
    last_ = io_.TakeSent();
    if (last_.empty()) return MessageView();
    return last_[0].View();
  }

  std::string Discover(std::string_view query = {}) {
    const MessageView m = Exchange1(code::kGet, ".well-known/core", query);
    EXPECT_EQ(m.code(), code::kContent);
    EXPECT_EQ(m.content_format(), content_format::kLinkFormat);
    return Text(m.payload());
  }

  // GET of a large resource block by block (RFC 7959 §2.4).
  std::string GetAll(std::string_view path, uint8_t szx) {
    std::string body;
    for (uint32_t num = 0;; ++num) {
      const MessageView m = Exchange1(code::kGet, path, {}, {}, BlockOption{num, false, szx});
      EXPECT_EQ(m.code(), code::kContent);
      const std::optional<BlockOption> b2 = m.block2();
      body += Text(m.payload());
      if (!b2 || !b2->more || num > 10000) break;
    }
    return body;
  }

  // PUT with Block1 in 1024-byte blocks; returns the final response code.
  uint8_t PutAll(std::string_view path, std::string_view body) {
    const uint32_t blocks = static_cast<uint32_t>((body.size() + 1023) / 1024);
    uint8_t code = 0;
    for (uint32_t num = 0; num < blocks; ++num) {
      const bool more = num + 1 < blocks;
      const std::vector<uint8_t> request = BuildMessage([&](MessageBuilder& b) {
        b.Header(Type::kConfirmable, code::kPut, next_mid_++, kToken)
            .UriPath(path)
            .UintOption(option::kContentFormat, 0)
            .Block(option::kBlock1, BlockOption{num, more, 6})
            .Payload(body.substr(num * 1024, 1024));
      });
      layer().OnDatagram(net::ReceivedDatagram{0, peer_, request});
      std::vector<FakeShardIo::Sent> sent = io_.TakeSent();
      EXPECT_EQ(sent.size(), 1u);
      if (sent.empty()) return 0;
      code = sent[0].View().code();
      if (more) {
        EXPECT_EQ(code, code::kContinue);
      }
    }
    return code;
  }

  Config config_;
  FakeShardIo io_;
  CoapMetrics metrics_;
  std::shared_ptr<DiagnosticBody> diagnostic_ = std::make_shared<DiagnosticBody>();
  std::unique_ptr<ResourceTree> tree_;
  std::unique_ptr<MessageLayer> layer_;
  std::vector<FakeShardIo::Sent> last_;
  uint16_t next_mid_ = 1;
  const net::PeerAddress peer_ = *net::PeerAddress::Parse("[2001:db8::1]:56830");
};

void RespondContent(Exchange& e) { e.Respond(Response(code::kContent).Payload("ok")); }

TEST_F(ResourceTreeTest, WellKnownCoreListsResources) {
  ResourceOptions a;
  a.link.rt = "oma.lwm2m temperature";
  a.link.ct = 0;
  ASSERT_TRUE(tree().Register("/a", a, RespondContent).ok());
  ResourceOptions b;
  b.link.interface = "sensor";
  b.link.sz = 1234;
  b.link.obs = true;
  ASSERT_TRUE(tree().Register("/b/c", b, RespondContent).ok());
  ResourceOptions hidden;
  hidden.discoverable = false;
  ASSERT_TRUE(tree().Register("/hidden", hidden, RespondContent).ok());

  EXPECT_EQ(Discover(),
            "</a>;rt=\"oma.lwm2m temperature\";ct=0,"
            "</b/c>;if=\"sensor\";sz=1234;obs,"
            "</diag>;ct=0;title=\"lwm2md diagnostic resource\"");
}

TEST_F(ResourceTreeTest, WellKnownCoreFiltering) {
  ResourceOptions a;
  a.link.rt = "oma.lwm2m temperature";
  a.link.ct = 0;
  ASSERT_TRUE(tree().Register("/a", a, RespondContent).ok());
  ResourceOptions b;
  b.link.interface = "sensor";
  b.link.ct = 40;
  ASSERT_TRUE(tree().Register("/b/c", b, RespondContent).ok());

  // RFC 6690 §4.1: attribute filters, any word of a space-separated list, '*' prefix.
  EXPECT_EQ(Discover("rt=temperature"), "</a>;rt=\"oma.lwm2m temperature\";ct=0");
  EXPECT_EQ(Discover("rt=oma.lwm2m"), "</a>;rt=\"oma.lwm2m temperature\";ct=0");
  EXPECT_EQ(Discover("rt=oma*"), "</a>;rt=\"oma.lwm2m temperature\";ct=0");
  EXPECT_EQ(Discover("rt=temp"), "");
  EXPECT_EQ(Discover("if=sen*"), "</b/c>;if=\"sensor\";ct=40");
  EXPECT_EQ(Discover("ct=40"), "</b/c>;if=\"sensor\";ct=40");
  EXPECT_EQ(Discover("ct=0"),
            "</a>;rt=\"oma.lwm2m temperature\";ct=0,"
            "</diag>;ct=0;title=\"lwm2md diagnostic resource\"");
  // href matches the link target.
  EXPECT_EQ(Discover("href=/b/c"), "</b/c>;if=\"sensor\";ct=40");
  EXPECT_EQ(Discover("href=/d*"), "</diag>;ct=0;title=\"lwm2md diagnostic resource\"");
  EXPECT_EQ(Discover("href=/b"), "");
  EXPECT_EQ(Discover("title=lwm2md*"), "</diag>;ct=0;title=\"lwm2md diagnostic resource\"");
  EXPECT_EQ(Discover("unknown=1"), "");
}

TEST_F(ResourceTreeTest, NotFoundAndMethodNotAllowed) {
  EXPECT_EQ(Exchange1(code::kGet, "nothing").code(), code::kNotFound);
  EXPECT_EQ(Exchange1(code::kGet, "diag/deeper").code(), code::kNotFound);
  EXPECT_EQ(Exchange1(code::kGet, "").code(), code::kNotFound);
  EXPECT_EQ(Exchange1(code::kPost, "diag").code(), code::kMethodNotAllowed);
  EXPECT_EQ(Exchange1(code::kDelete, "diag").code(), code::kMethodNotAllowed);
  EXPECT_EQ(Exchange1(code::kPut, ".well-known/core").code(), code::kMethodNotAllowed);
}

TEST_F(ResourceTreeTest, SubtreeRouting) {
  std::vector<std::string> seen;
  ResourceOptions rd;
  rd.methods = MethodBit(code::kPost) | MethodBit(code::kDelete);
  rd.subtree = true;
  ASSERT_TRUE(tree()
                  .Register("/rd", rd,
                            [&](Exchange& e) {
                              std::string path;
                              e.request().ForEachUriPath(
                                  [&](std::string_view s) { path += "/" + std::string(s); });
                              seen.push_back(path);
                              e.Respond(Response(code::kDeleted));
                            })
                  .ok());
  EXPECT_EQ(Exchange1(code::kPost, "rd").code(), code::kDeleted);
  EXPECT_EQ(Exchange1(code::kDelete, "rd/5a3f").code(), code::kDeleted);
  EXPECT_EQ(Exchange1(code::kGet, "rd/5a3f").code(), code::kMethodNotAllowed);
  EXPECT_EQ(Exchange1(code::kPost, "rdx").code(), code::kNotFound);
  EXPECT_EQ(seen, (std::vector<std::string>{"/rd", "/rd/5a3f"}));
}

TEST_F(ResourceTreeTest, RegistrationErrors) {
  EXPECT_FALSE(tree().Register("a", {}, RespondContent).ok());
  EXPECT_FALSE(tree().Register("/", {}, RespondContent).ok());
  EXPECT_FALSE(tree().Register("/a/", {}, RespondContent).ok());
  EXPECT_FALSE(tree().Register("/a//b", {}, RespondContent).ok());
  EXPECT_FALSE(tree().Register("/a,b", {}, RespondContent).ok());
  EXPECT_FALSE(tree().Register("/.well-known/core", {}, RespondContent).ok());
  EXPECT_EQ(tree().Register("/diag", {}, RespondContent).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(tree().Register("/x", {}, RespondContent).ok());
  EXPECT_TRUE(tree().Unregister("/x"));
  EXPECT_FALSE(tree().Unregister("/x"));
  EXPECT_EQ(Exchange1(code::kGet, "x").code(), code::kNotFound);
}

TEST_F(ResourceTreeTest, HandlerMayUnregisterItselfAndDefer) {
  DeferredResponse deferred;
  ASSERT_TRUE(tree()
                  .Register("/once", {},
                            [&](Exchange& e) {
                              deferred = e.Defer();
                              EXPECT_TRUE(tree().Unregister("/once"));
                              EXPECT_TRUE(tree().Register("/later", {}, RespondContent).ok());
                            })
                  .ok());
  const std::vector<uint8_t> request = BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kGet, 77, kToken).UriPath("once");
  });
  layer().OnDatagram(net::ReceivedDatagram{0, peer_, request});
  EXPECT_TRUE(io_.sent().empty());
  ASSERT_TRUE(deferred.Respond(Response(code::kContent).Payload("later")));
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(Text(io_.sent()[0].View().payload()), "later");
  io_.TakeSent();
  EXPECT_EQ(Exchange1(code::kGet, "once").code(), code::kNotFound);
  EXPECT_EQ(Exchange1(code::kGet, "later").code(), code::kContent);
}

TEST_F(ResourceTreeTest, DiagnosticGetInBlocks) {
  const std::string initial = DiagnosticBody::Initial();
  ASSERT_EQ(initial.size(), 8192u);
  EXPECT_EQ(initial, DiagnosticBody::Initial());  // deterministic
  EXPECT_EQ(GetAll("diag", 6), initial);
  EXPECT_EQ(GetAll("diag", 2), initial);
  // Without a Block2 option the first response already says it is block 0 of 8 KiB.
  const MessageView first = Exchange1(code::kGet, "diag");
  ASSERT_TRUE(first.block2());
  EXPECT_TRUE(first.block2()->more);
  EXPECT_EQ(first.FindUint(option::kSize2), 8192u);
  EXPECT_EQ(first.content_format(), content_format::kTextPlain);
}

TEST_F(ResourceTreeTest, DiagnosticPutThenGet) {
  std::string body;
  for (int i = 0; body.size() < 5 * 1024 + 300; ++i) body += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(PutAll("diag", body), code::kChanged);
  EXPECT_EQ(diagnostic_->Get(), body);
  EXPECT_EQ(GetAll("diag", 6), body);
  // A small PUT in one datagram.
  EXPECT_EQ(Exchange1(code::kPut, "diag", {}, "short").code(), code::kChanged);
  const MessageView m = Exchange1(code::kGet, "diag");
  EXPECT_FALSE(m.block2());
  EXPECT_EQ(Text(m.payload()), "short");
}

TEST_F(ResourceTreeTest, DiagnosticBodyIsSharedBetweenTrees) {
  // Another shard's tree over the same body sees this shard's PUT.
  FakeShardIo other_io;
  ResourceTree other(config_);
  ASSERT_TRUE(RegisterDiagnosticResource(other, other_io, diagnostic_).ok());
  EXPECT_EQ(Exchange1(code::kPut, "diag", {}, "from shard zero").code(), code::kChanged);
  EXPECT_EQ(diagnostic_->Get(), "from shard zero");
}

TEST_F(ResourceTreeTest, DiagnosticDelayAnswersWithSeparateResponse) {
  EXPECT_EQ(Exchange1(code::kPut, "diag", {}, "later").code(), code::kChanged);
  const std::vector<uint8_t> request = BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kGet, 4321, kToken).UriPath("diag").UriQuery("delay=2");
  });
  layer().OnDatagram(net::ReceivedDatagram{0, peer_, request});
  io_.Advance(std::chrono::milliseconds(500));
  // RFC 7252 §5.2.2: the request is acknowledged at once with an empty ACK...
  std::vector<FakeShardIo::Sent> sent = io_.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].View().type(), Type::kAcknowledgement);
  EXPECT_EQ(sent[0].View().code(), code::kEmpty);
  EXPECT_EQ(sent[0].View().message_id(), 4321);
  // ...and the response follows as a CON of its own, with the request's token.
  io_.Advance(std::chrono::milliseconds(1600));
  sent = io_.TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  const MessageView response = sent[0].View();
  EXPECT_EQ(response.type(), Type::kConfirmable);
  EXPECT_EQ(response.code(), code::kContent);
  EXPECT_EQ(Text(response.payload()), "later");
  EXPECT_EQ(Text(response.token()), Text(kToken));
}

TEST_F(ResourceTreeTest, DiagnosticDelayOutOfRangeIsBadRequest) {
  EXPECT_EQ(Exchange1(code::kGet, "diag", "delay=0").code(), code::kBadRequest);
  EXPECT_EQ(Exchange1(code::kGet, "diag", "delay=61").code(), code::kBadRequest);
  EXPECT_EQ(Exchange1(code::kGet, "diag", "delay=x").code(), code::kBadRequest);
}

TEST_F(ResourceTreeTest, DiagnosticOnlyWhenConfigured) {
  config_.diagnostic_resource = false;
  EXPECT_EQ(Exchange1(code::kGet, "diag").code(), code::kNotFound);
  EXPECT_EQ(Discover(), "");
}

TEST_F(ResourceTreeTest, DiagnosticRefusesOtherAccept) {
  const std::vector<uint8_t> request = BuildMessage([&](MessageBuilder& b) {
    b.Header(Type::kConfirmable, code::kGet, 99, kToken)
        .UriPath("diag")
        .UintOption(option::kAccept, content_format::kCbor);
  });
  layer().OnDatagram(net::ReceivedDatagram{0, peer_, request});
  ASSERT_EQ(io_.sent().size(), 1u);
  EXPECT_EQ(io_.sent()[0].View().code(), code::kNotAcceptable);
}

TEST_F(ResourceTreeTest, LinkFormatQuotesTitle) {
  ResourceOptions q;
  q.link.title = "say \"hi\"";
  q.discoverable = true;
  ASSERT_TRUE(tree().Register("/q", q, RespondContent).ok());
  const std::string_view filters[] = {"href=/q"};
  EXPECT_EQ(tree().LinkFormat(filters), "</q>;title=\"say \\\"hi\\\"\"");
}

}  // namespace
}  // namespace lwm2md::coap
