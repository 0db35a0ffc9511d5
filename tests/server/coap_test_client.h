// A CoAP client for the server tests: one UDP socket on loopback (its own source port, hence
// possibly its own shard) that sends requests to the server and answers the server's requests.

#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "coap/message.h"
#include "net/peer_address.h"

namespace lwm2md::server {

struct Reply {
  uint8_t code = 0;
  std::vector<std::string> location;
  std::string payload;
};

// A request the server sent to the client.
struct ServerRequest {
  uint8_t method = 0;
  coap::Type type = coap::Type::kConfirmable;
  uint16_t message_id = 0;
  std::vector<uint8_t> token;
  std::string path;  // "3/0/0"
  std::optional<uint32_t> observe;
  std::optional<uint16_t> accept;
};

class Client {
 public:
  explicit Client(uint16_t server_port) : port_(server_port) { Open(); }
  virtual ~Client() { close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(local_port_); }
  net::PeerAddress peer_address() const { return *net::PeerAddress::Parse(address()); }
  // Sends to another server port from now on (the server restarted on a new port).
  void set_server_port(uint16_t port) { port_ = port; }

  // Sends a CON request and waits for its response (piggybacked or separate). Requests from
  // the server that arrive meanwhile are kept for NextServerRequest.
  std::optional<Reply> Request(uint8_t method, const std::string& path,
                               const std::vector<std::string>& queries,
                               const std::string& payload = "",
                               std::optional<uint16_t> format = std::nullopt) {
    const uint16_t mid = ++mid_;
    const uint8_t token[2] = {static_cast<uint8_t>(mid >> 8), static_cast<uint8_t>(mid)};
    uint8_t buffer[2048];
    coap::MessageBuilder builder(buffer);
    builder.Header(coap::Type::kConfirmable, method, mid, token).UriPath(path);
    if (format) builder.UintOption(coap::option::kContentFormat, *format);
    for (const std::string& query : queries) builder.Option(coap::option::kUriQuery, query);
    if (!payload.empty()) builder.Payload(payload);
    std::span<const uint8_t> bytes = builder.Finish();
    if (bytes.empty()) return std::nullopt;
    Send(bytes);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      uint8_t in[2048];
      coap::MessageView m;
      if (!Receive(in, &m)) continue;
      if (m.IsEmpty()) continue;  // the empty ACK before a separate response
      if (m.IsRequest()) {
        server_requests_.push_back(ToServerRequest(m));
        continue;
      }
      if (m.type() == coap::Type::kConfirmable) Acknowledge(m.message_id());
      if (m.token().size() != 2 || m.token()[0] != token[0] || m.token()[1] != token[1]) continue;
      Reply reply;
      reply.code = m.code();
      for (const coap::OptionView& o : m.options()) {
        if (o.number == coap::option::kLocationPath) reply.location.emplace_back(o.AsString());
      }
      reply.payload.assign(reinterpret_cast<const char*>(m.payload().data()), m.payload().size());
      return reply;
    }
    return std::nullopt;
  }

  std::optional<Reply> Register(const std::vector<std::string>& queries,
                                const std::string& links = "</1/0>,</3/0>") {
    return Request(coap::code::kPost, "rd", queries, links, coap::content_format::kLinkFormat);
  }

  // The next request the server sent, within wait.
  std::optional<ServerRequest> NextServerRequest(std::chrono::milliseconds wait) {
    if (!server_requests_.empty()) {
      ServerRequest request = std::move(server_requests_.front());
      server_requests_.erase(server_requests_.begin());
      return request;
    }
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      uint8_t in[2048];
      coap::MessageView m;
      if (!Receive(in, &m)) continue;
      if (!m.IsEmpty() && m.IsRequest()) return ToServerRequest(m);
    }
    return std::nullopt;
  }

  // Answers a server request with a piggybacked response.
  void Answer(const ServerRequest& request, uint8_t code, std::optional<uint16_t> format,
              const std::string& payload) {
    uint8_t buffer[2048];
    coap::MessageBuilder builder(buffer);
    builder.Header(coap::Type::kAcknowledgement, code, request.message_id, request.token);
    if (format) builder.UintOption(coap::option::kContentFormat, *format);
    if (!payload.empty()) builder.Payload(payload);
    std::span<const uint8_t> bytes = builder.Finish();
    if (!bytes.empty()) Send(bytes);
  }

 protected:
  // One CoAP message out, and one datagram in within 100 ms (its size; 0 for none): what a
  // client over DTLS replaces (dtls_test_client.h).
  virtual void Send(std::span<const uint8_t> bytes) { SendDatagram(bytes); }
  virtual size_t ReceiveDatagram(uint8_t (&in)[2048]) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) return 0;
    ssize_t n = recv(fd_, in, sizeof(in), 0);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  void SendDatagram(std::span<const uint8_t> bytes) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port_);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  }
  void Acknowledge(uint16_t message_id) {
    uint8_t ack[4];
    Send(coap::BuildEmpty(coap::Type::kAcknowledgement, message_id, ack));
  }
  // Moves to a new socket, hence a new source port (a NAT rebinding as the server sees it).
  void Reopen() {
    close(fd_);
    Open();
  }

  int fd_ = -1;
  uint16_t port_;
  uint16_t local_port_ = 0;

 private:
  void Open() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local));
    socklen_t length = sizeof(local);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length);
    local_port_ = ntohs(local.sin_port);
  }
  // One datagram within 100 ms, parsed into *m (which views in).
  bool Receive(uint8_t (&in)[2048], coap::MessageView* m) {
    const size_t n = ReceiveDatagram(in);
    if (n == 0) return false;
    return coap::MessageView::Parse(std::span<const uint8_t>(in, n), m) == coap::ParseError::kOk;
  }
  static ServerRequest ToServerRequest(const coap::MessageView& m) {
    ServerRequest request;
    request.method = m.code();
    request.type = m.type();
    request.message_id = m.message_id();
    request.token.assign(m.token().begin(), m.token().end());
    for (const coap::OptionView& o : m.options()) {
      if (o.number == coap::option::kUriPath) {
        if (!request.path.empty()) request.path += '/';
        request.path += o.AsString();
      } else if (o.number == coap::option::kObserve) {
        request.observe = static_cast<uint32_t>(o.AsUint());
      } else if (o.number == coap::option::kAccept) {
        request.accept = static_cast<uint16_t>(o.AsUint());
      }
    }
    return request;
  }

  uint16_t mid_ = 0x1000;
  std::vector<ServerRequest> server_requests_;
};

}  // namespace lwm2md::server
