#pragma once
// A small blocking HTTP/1.1 client for the load tools: one TCP connection kept alive across
// requests, so that a tool driving lwm2md's REST API measures the server rather than
// connection set-up. Loopback only, one thread per client, no TLS.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "udp_common.h"

namespace lwm2md::bench {

struct HttpResponse {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  // target: the server's TCP address (loopback). authorization: the Authorization header's
  // value ("Bearer …"), or empty for none. timeout_ms bounds every connect, send and receive,
  // so that a request that gets no answer ends in an error instead of a hang.
  HttpClient(const SocketAddress& target, std::string authorization, int timeout_ms);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request (a JSON body when body is not empty) and reads the whole response.
  // A kept-alive connection that the server closed while idle is reopened and the request
  // sent once more, as RFC 9112 §9.3.1 allows for a request that got no byte of answer.
  absl::StatusOr<HttpResponse> Request(std::string_view method, std::string_view path,
                                       std::string_view body = {});

  // Asks the kernel to acknowledge every received segment at once (TCP_QUICKACK, renewed
  // before each read) instead of delaying ACKs. Diagnostic: a server that writes a response in
  // several small segments without TCP_NODELAY stalls on the peer's delayed ACK (Nagle), and
  // this shows what its rate would be without that stall.
  void set_quick_ack(bool on) { quick_ack_ = on; }

  // Connections opened so far (the first one included).
  uint64_t connects() const { return connects_; }

 private:
  absl::Status Connect();
  void Close();
  absl::Status SendAll(std::string_view bytes);
  // Reads more bytes into buffer_; false at end of stream or on an error (*error set).
  bool ReadMore(std::string* error);
  // got_bytes tells whether any byte of the response arrived (for the retry decision).
  absl::StatusOr<HttpResponse> ReadResponse(bool* got_bytes);

  const SocketAddress target_;
  const std::string authorization_;
  const int timeout_ms_;
  int fd_ = -1;
  bool keep_alive_ = false;
  bool quick_ack_ = false;
  uint64_t connects_ = 0;
  std::string buffer_;  // received bytes not consumed yet
};

}  // namespace lwm2md::bench
