#pragma once
// The RequestHandler of a shard: routes requests by Uri-Path to registered resources, serves
// resource discovery at /.well-known/core (RFC 6690 link format with §4.1 query filtering),
// answers 4.04 for unknown paths and 4.05 for methods a resource does not take. Resources
// (/diag, later the LwM2M /rd, /bs, /dp) register their handlers here.
//
// Threading: one tree per shard, used on that shard's thread only, like its MessageLayer.
// Each shard registers the same resources.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "coap/config.h"
#include "coap/message.h"
#include "coap/message_layer.h"

namespace lwm2md::coap {

// Target attributes listed for a resource in /.well-known/core (RFC 6690 §3, RFC 7641 §6).
struct LinkAttributes {
  std::string rt;              // resource type(s), space-separated
  std::string interface;       // "if": interface description(s), space-separated
  std::optional<uint16_t> ct;  // content format
  std::optional<uint32_t> sz;  // size estimate in bytes
  std::string title;
  bool obs = false;  // observable
};

// The bit of a method code (code::kGet .. code::kIPatch) in ResourceOptions::methods.
constexpr uint32_t MethodBit(uint8_t method) { return 1u << (method & 31); }

struct ResourceOptions {
  uint32_t methods = MethodBit(code::kGet);  // others are answered 4.05
  // Also handle every path below this one ("/rd" takes "/rd/5a3f"): for resources whose
  // children come and go, such as registration locations.
  bool subtree = false;
  bool discoverable = true;  // listed in /.well-known/core
  LinkAttributes link;
};

// Called on the shard thread with the request routed to the resource. It answers through
// exchange.Respond or later through exchange.Defer() (message_layer.h).
using ResourceHandler = absl::AnyInvocable<void(Exchange&)>;

class ResourceTree final : public RequestHandler {
 public:
  static constexpr std::string_view kWellKnownCore = "/.well-known/core";
  static constexpr size_t kMaxPathLength = 512;
  explicit ResourceTree(const Config& config);
  ResourceTree(const ResourceTree&) = delete;
  ResourceTree& operator=(const ResourceTree&) = delete;

  // path: "/a/b" (leading slash, no empty segments, no trailing slash). Fails when the path
  // is malformed, taken, or /.well-known/core. On the shard thread; may be called from a
  // handler.
  absl::Status Register(std::string_view path, ResourceOptions options, ResourceHandler handler);
  // False when nothing is registered at path. May be called from a handler, even the
  // resource's own.
  bool Unregister(std::string_view path);

  void OnRequest(Exchange& exchange) override;

  // The link-format document /.well-known/core serves. Each filter is one query
  // parameter "name=value" (RFC 6690 §4.1: href or a link attribute; a value ending in '*'
  // matches by prefix); a link must match all of them.
  std::string LinkFormat(std::span<const std::string_view> filters = {}) const;

 private:
  struct Resource {
    std::string path;
    ResourceOptions options;
    ResourceHandler handler;
  };

  Resource* Route(std::string_view path);
  void ServeWellKnownCore(Exchange& exchange);

  const Config config_;
  const std::thread::id owner_thread_;
  absl::flat_hash_map<std::string, std::unique_ptr<Resource>> resources_;
  // Resources unregistered while a handler runs are destroyed after it returns (the running
  // handler may be one of them).
  std::vector<std::unique_ptr<Resource>> retired_;
  int dispatch_depth_ = 0;
};

}  // namespace lwm2md::coap
