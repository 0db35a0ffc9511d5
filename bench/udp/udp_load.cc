// udp_load: a loopback load client that keeps a window of requests in flight against a CoAP
// server (CON GET, piggybacked 2.xx ACK expected) or against udp_echo, and reports round
// trips per second with latency percentiles. One thread; all buffers and tables are
// allocated before the first request.
//
//   udp_load --target 127.0.0.1:5683 [--mode coap|echo] [--window 64] [--sockets 4]
//            [--duration 10] [--warmup 1] [--timeout-ms 200] [--max-requests 0]
//            [--path .well-known/core] [--request get|register] [--cpu N]
//
// --request register sends LwM2M Register operations (POST /rd?ep=…&lt=86400 with an object
// list), each under a new endpoint name, and counts 2.01 as the good answer. In echo mode the
// datagram has the same size, so the baseline moves the same bytes.
//
// Last line: rps=… p50_us=… p99_us=… sent=… received=… lost=…

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "coap/message.h"
#include "udp_common.h"

namespace lwm2md::bench {
namespace {

enum class Mode { kCoap, kEcho };
enum class RequestKind { kGet, kRegister };

struct Options {
  SocketAddress target;
  Mode mode = Mode::kCoap;
  int window = 64;
  int sockets = 4;
  double duration_s = 10;
  double warmup_s = 1;
  int timeout_ms = 200;
  int64_t max_requests = 0;  // 0: bounded by duration only
  std::string path = ".well-known/core";
  RequestKind request = RequestKind::kGet;
  int cpu = -1;
};

// Latencies at 1 µs resolution up to the loss timeout (anything slower is a loss), so that
// percentiles are exact and recording is one increment.
class LatencyHistogram {
 public:
  explicit LatencyHistogram(int64_t max_us) : counts_(max_us + 1, 0) {}
  void Record(int64_t ns) {
    int64_t us = ns / 1000;
    counts_[std::clamp<int64_t>(us, 0, counts_.size() - 1)]++;
    ++total_;
  }
  // The smallest latency (µs) at or below which a fraction q of the samples lie; 0 if empty.
  int64_t Percentile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t us = 0; us < counts_.size(); ++us) {
      seen += counts_[us];
      if (seen >= rank) return static_cast<int64_t>(us);
    }
    return static_cast<int64_t>(counts_.size() - 1);
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

// A request identifier that fits both encodings: the CoAP token (4 bytes) carries the slot
// and its generation, the message id is the socket's next one. The generation makes every
// token fresh, so that a late answer to a retired request never matches its slot's next one.
struct Slot {
  int64_t sent_ns = 0;
  uint16_t generation = 0;
  uint16_t message_id = 0;
  bool in_flight = false;
  bool measured = false;  // sent while measuring: counted in sent/received/lost and latency
};

struct Counters {
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t timeouts = 0;
  uint64_t error_responses = 0;     // a matching answer that was not a 2.xx piggybacked ACK
  uint64_t answered_in_window = 0;  // any good answer arriving while measuring: the rate
  // Not tied to a measured request: diagnostics only.
  uint64_t resets = 0;
  uint64_t unmatched = 0;  // late answers to retired requests, or datagrams we never asked for
  uint64_t malformed = 0;
  uint64_t send_failures = 0;
};

class LoadClient {
 public:
  explicit LoadClient(const Options& options)
      : options_(options), slots_(options.window), latency_(options.timeout_ms * 1000) {}

  bool Init() {
    if (!BuildRequestTemplate()) return false;
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      std::perror("epoll_create1");
      return false;
    }
    std::random_device random;
    for (int i = 0; i < options_.sockets; ++i) {
      auto socket = BatchSocket::Open(options_.target.family(), /*nonblocking=*/true);
      if (!socket.ok()) {
        std::fprintf(stderr, "%s\n", socket.status().ToString().c_str());
        return false;
      }
      absl::Status status = (*socket)->Connect(options_.target);
      if (!status.ok()) {
        std::fprintf(stderr, "%s\n", status.ToString().c_str());
        return false;
      }
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u32 = static_cast<uint32_t>(i);
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, (*socket)->fd(), &event) != 0) {
        std::perror("epoll_ctl");
        return false;
      }
      // Random starting message ids, as RFC 7252 §4.4 asks, so that a rerun from a reused
      // source port does not look like a duplicate to the server's deduplication.
      sockets_.push_back({std::move(*socket), static_cast<uint16_t>(random()), {}});
      sockets_.back().ready.reserve(options_.window);
    }
    // Slot s always uses socket s % sockets, so each source port has its own share of the
    // window and its own message id sequence.
    for (int s = 0; s < options_.window; ++s) sockets_[s % options_.sockets].ready.push_back(s);
    events_.resize(options_.sockets);
    return true;
  }

  ~LoadClient() {
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  void Run() {
    const int64_t start = NowNs();
    const int64_t measure_start = start + static_cast<int64_t>(options_.warmup_s * 1e9);
    int64_t measure_end = measure_start + static_cast<int64_t>(options_.duration_s * 1e9);
    const int64_t timeout_ns = static_cast<int64_t>(options_.timeout_ms) * 1'000'000;
    // Expiry is checked at a quarter of the timeout: a loss is noticed at most 25% late.
    const int64_t sweep_interval = std::max<int64_t>(timeout_ns / 4, 1'000'000);
    int64_t next_sweep = start + sweep_interval;

    int64_t now = start;
    bool sending = true;
    for (;;) {
      measuring_ = now >= measure_start && now < measure_end;
      if (sending && now >= measure_end) {
        sending = false;
        measuring_ = false;
      }
      if (sending && options_.max_requests > 0 &&
          counters_.sent >= static_cast<uint64_t>(options_.max_requests)) {
        sending = false;
        measure_end = now;
        measuring_ = false;
      }
      if (!sending) {
        // Drained: every measured request was answered or retired.
        if (measured_in_flight_ == 0 || now >= measure_end + timeout_ns) break;
      }
      if (sending) SendReady();

      int64_t wake = sending ? std::min(next_sweep, measuring_ ? measure_end : measure_start)
                             : std::min(next_sweep, measure_end + timeout_ns);
      int wait_ms =
          static_cast<int>(std::clamp<int64_t>((wake - now + 999'999) / 1'000'000, 0, 1000));
      int ready = epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), wait_ms);
      if (ready < 0 && errno != EINTR) {
        std::perror("epoll_wait");
        break;
      }
      for (int e = 0; e < ready; ++e) ReceiveAll(events_[e].data.u32);
      now = NowNs();
      if (now >= next_sweep) {
        Sweep(now, timeout_ns);
        next_sweep = now + sweep_interval;
      }
    }
    // Whatever is still in flight after the drain had its full timeout.
    for (Slot& slot : slots_) {
      if (slot.in_flight && slot.measured) ++counters_.timeouts;
    }
    measured_seconds_ = static_cast<double>(measure_end - measure_start) / 1e9;
  }

  void Report() const {
    const Counters& c = counters_;
    std::printf("detail: timeouts=%" PRIu64 " error_responses=%" PRIu64 " resets=%" PRIu64
                " unmatched=%" PRIu64 " malformed=%" PRIu64 " send_failures=%" PRIu64 "\n",
                c.timeouts, c.error_responses, c.resets, c.unmatched, c.malformed, c.send_failures);
    double rps =
        measured_seconds_ > 0 ? static_cast<double>(c.answered_in_window) / measured_seconds_ : 0;
    // lost: every measured request that did not get a good answer, so sent = received + lost.
    std::printf("rps=%.0f p50_us=%" PRId64 " p99_us=%" PRId64 " sent=%" PRIu64 " received=%" PRIu64
                " lost=%" PRIu64 "\n",
                rps, latency_.Percentile(0.50), latency_.Percentile(0.99), c.sent, c.received,
                c.sent - c.received);
    std::fflush(stdout);
  }

  size_t request_size() const { return request_size_; }

 private:
  struct SocketState {
    std::unique_ptr<BatchSocket> socket;
    uint16_t next_message_id = 0;
    std::vector<int> ready;  // slots of this socket waiting to send; capacity = window
  };

  // Byte offsets of the identifiers in a request. CoAP (RFC 7252 §3): the message id is
  // bytes 2-3 and the token starts at byte 4. The echo datagram uses the same positions.
  static constexpr size_t kMessageIdOffset = 2;
  static constexpr size_t kTokenOffset = 4;
  static constexpr size_t kTokenLength = 4;

  // The endpoint name's placeholder in a Register request: hex digits rewritten per request.
  static constexpr std::string_view kEndpointPlaceholder = "ep=bench-0000000000";
  static constexpr size_t kEndpointDigits = 10;

  bool BuildRequestTemplate() {
    const uint8_t token[kTokenLength] = {};
    coap::MessageBuilder builder(request_template_);
    if (options_.request == RequestKind::kRegister) {
      // A typical small device: Server, Device, Connectivity Monitoring, Firmware Update.
      builder.Header(coap::Type::kConfirmable, coap::code::kPost, 0, token)
          .UriPath("rd")
          .UintOption(coap::option::kContentFormat, coap::content_format::kLinkFormat)
          .Option(coap::option::kUriQuery, kEndpointPlaceholder)
          .Option(coap::option::kUriQuery, std::string_view("lt=86400"))
          .Option(coap::option::kUriQuery, std::string_view("lwm2m=1.1"))
          .Option(coap::option::kUriQuery, std::string_view("b=U"))
          .Payload(std::string_view("</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</3/0>,</4/0>,</5/0>"));
    } else {
      builder.Header(coap::Type::kConfirmable, coap::code::kGet, 0, token).UriPath(options_.path);
    }
    std::span<const uint8_t> encoded = builder.Finish();
    if (encoded.empty()) {
      std::fprintf(stderr, "--path '%s' does not fit in a request\n", options_.path.c_str());
      return false;
    }
    request_size_ = encoded.size();
    if (options_.request == RequestKind::kRegister) {
      std::string_view bytes(reinterpret_cast<const char*>(request_template_.data()),
                             request_size_);
      endpoint_offset_ = bytes.find(kEndpointPlaceholder) + kEndpointPlaceholder.size() -
                         kEndpointDigits;
    }
    if (options_.mode == Mode::kEcho) {
      // Same size as the CoAP request, but no CoAP: zeros around the identifiers.
      std::fill(request_template_.begin(), request_template_.end(), 0);
    }
    return true;
  }

  void SendReady() {
    for (int i = 0; i < options_.sockets; ++i) {
      SocketState& state = sockets_[i];
      while (!state.ready.empty()) {
        // The batch is filled from the back of the ready list; what the kernel did not take
        // stays there for the next round.
        size_t take = std::min<size_t>(state.ready.size(), kBatch);
        if (measuring_ && options_.max_requests > 0) {
          take = std::min<uint64_t>(take, options_.max_requests - counters_.sent);
          if (take == 0) return;
        }
        size_t first = state.ready.size() - take;
        for (size_t k = first; k < state.ready.size(); ++k) {
          Slot& slot = slots_[state.ready[k]];
          slot.generation++;
          slot.message_id = state.next_message_id++;
          std::span<uint8_t> out = state.socket->NextSendBuffer();
          std::memcpy(out.data(), request_template_.data(), request_size_);
          WriteIds(out.data(), state.ready[k], slot);
          if (options_.request == RequestKind::kRegister && options_.mode == Mode::kCoap) {
            WriteEndpoint(out.data() + endpoint_offset_, next_endpoint_++);
          }
          state.socket->CommitSend(request_size_, nullptr);
        }
        const int64_t sent_at = NowNs();
        int sent = state.socket->Flush();
        if (sent < 0) sent = 0;
        for (size_t k = first; k < first + sent; ++k) {
          Slot& slot = slots_[state.ready[k]];
          slot.in_flight = true;
          slot.sent_ns = sent_at;
          slot.measured = measuring_;
          if (measuring_) {
            ++counters_.sent;
            ++measured_in_flight_;
          }
        }
        if (static_cast<size_t>(sent) < take) {
          ++counters_.send_failures;
          // Keep the unsent slots, drop the sent ones from the list.
          std::copy(state.ready.begin() + first + sent, state.ready.end(),
                    state.ready.begin() + first);
          state.ready.resize(state.ready.size() - sent);
          break;
        }
        state.ready.resize(first);
      }
    }
  }

  void WriteIds(uint8_t* out, int slot_index, const Slot& slot) const {
    out[kMessageIdOffset] = static_cast<uint8_t>(slot.message_id >> 8);
    out[kMessageIdOffset + 1] = static_cast<uint8_t>(slot.message_id);
    out[kTokenOffset] = static_cast<uint8_t>(slot_index >> 8);
    out[kTokenOffset + 1] = static_cast<uint8_t>(slot_index);
    out[kTokenOffset + 2] = static_cast<uint8_t>(slot.generation >> 8);
    out[kTokenOffset + 3] = static_cast<uint8_t>(slot.generation);
  }

  static void WriteEndpoint(uint8_t* digits, uint64_t n) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (size_t i = kEndpointDigits; i-- > 0; n >>= 4) digits[i] = kHex[n & 0xF];
  }

  void ReceiveAll(uint32_t socket_index) {
    BatchSocket& socket = *sockets_[socket_index].socket;
    for (;;) {
      int n = socket.Receive();
      if (n <= 0) {
        // ECONNREFUSED: an ICMP port unreachable from a server that is not (yet) there; the
        // requests it concerned time out and are counted as lost.
        return;
      }
      int64_t now = NowNs();
      for (int i = 0; i < n; ++i) OnDatagram(socket_index, socket.received(i), now);
      if (n < kBatch) return;
    }
  }

  void OnDatagram(uint32_t socket_index, std::span<const uint8_t> bytes, int64_t now) {
    uint16_t message_id;
    std::span<const uint8_t> token;
    bool good = true;
    if (options_.mode == Mode::kCoap) {
      coap::MessageView message;
      if (coap::MessageView::Parse(bytes, &message) != coap::ParseError::kOk) {
        ++counters_.malformed;
        return;
      }
      if (message.type() == coap::Type::kReset) {
        // A RST carries only the message id; the token is empty (RFC 7252 §4.2).
        ++counters_.resets;
        return;
      }
      message_id = message.message_id();
      token = message.token();
      good = message.type() == coap::Type::kAcknowledgement && coap::CodeClass(message.code()) == 2;
    } else {
      if (bytes.size() < kTokenOffset + kTokenLength) {
        ++counters_.malformed;
        return;
      }
      message_id =
          static_cast<uint16_t>(bytes[kMessageIdOffset] << 8 | bytes[kMessageIdOffset + 1]);
      token = bytes.subspan(kTokenOffset, kTokenLength);
    }
    if (token.size() != kTokenLength) {
      ++counters_.unmatched;
      return;
    }
    int slot_index = token[0] << 8 | token[1];
    uint16_t generation = static_cast<uint16_t>(token[2] << 8 | token[3]);
    if (slot_index >= options_.window ||
        slot_index % options_.sockets != static_cast<int>(socket_index)) {
      ++counters_.unmatched;
      return;
    }
    Slot& slot = slots_[slot_index];
    if (!slot.in_flight || slot.generation != generation || slot.message_id != message_id) {
      ++counters_.unmatched;
      return;
    }
    Retire(slot_index, slot);
    if (!good) {
      if (slot.measured) ++counters_.error_responses;
      return;
    }
    if (measuring_) ++counters_.answered_in_window;
    if (slot.measured) {
      ++counters_.received;
      latency_.Record(now - slot.sent_ns);
    }
  }

  void Retire(int slot_index, Slot& slot) {
    slot.in_flight = false;
    if (slot.measured) --measured_in_flight_;
    sockets_[slot_index % options_.sockets].ready.push_back(slot_index);
  }

  void Sweep(int64_t now, int64_t timeout_ns) {
    for (int s = 0; s < options_.window; ++s) {
      Slot& slot = slots_[s];
      if (!slot.in_flight || now - slot.sent_ns < timeout_ns) continue;
      if (slot.measured) ++counters_.timeouts;
      Retire(s, slot);
    }
  }

  const Options options_;
  std::vector<Slot> slots_;
  std::vector<SocketState> sockets_;
  std::vector<epoll_event> events_;
  std::array<uint8_t, kMaxDatagram> request_template_{};
  size_t request_size_ = 0;
  size_t endpoint_offset_ = 0;
  uint64_t next_endpoint_ = 0;
  int epoll_fd_ = -1;
  bool measuring_ = false;
  int64_t measured_in_flight_ = 0;
  double measured_seconds_ = 0;
  Counters counters_;
  LatencyHistogram latency_;
};

void Usage() {
  std::fprintf(stderr,
               "usage: udp_load --target 127.0.0.1:PORT [--mode coap|echo] [--window 64]\n"
               "                [--sockets 4] [--duration 10] [--warmup 1] [--timeout-ms 200]\n"
               "                [--max-requests 0] [--path .well-known/core]\n"
               "                [--request get|register] [--cpu N]\n");
}

bool ParseOptions(int argc, char** argv, Options* options) {
  Flags flags;
  if (!flags.Parse(argc, argv)) return false;
  std::string target, mode = "coap", request = "get";
  int64_t window = options->window, sockets = options->sockets, timeout_ms = options->timeout_ms;
  int64_t cpu = options->cpu;
  // The bounds keep one run finite (at most an hour), the window within what the token's
  // 16-bit slot index can name, and the latency histogram (one bucket per µs of the timeout)
  // small.
  if (!flags.GetString("target", &target) || !flags.GetString("mode", &mode) ||
      !flags.GetInt("window", 1, 4096, &window) || !flags.GetInt("sockets", 1, 256, &sockets) ||
      !flags.GetDouble("duration", 0.1, 3600, &options->duration_s) ||
      !flags.GetDouble("warmup", 0, 600, &options->warmup_s) ||
      !flags.GetInt("timeout-ms", 1, 2000, &timeout_ms) ||
      !flags.GetInt("max-requests", 0, int64_t{1} << 40, &options->max_requests) ||
      !flags.GetString("path", &options->path) || !flags.GetString("request", &request) ||
      !flags.GetInt("cpu", -1, 4095, &cpu) ||
      !flags.CheckAllUsed()) {
    return false;
  }
  if (target.empty()) {
    std::fprintf(stderr, "--target is required\n");
    return false;
  }
  std::optional<SocketAddress> address = SocketAddress::Parse(target);
  if (!address.has_value() || address->port() == 0) {
    std::fprintf(stderr, "--target: want 127.0.0.1:PORT or [::1]:PORT, got '%s'\n", target.c_str());
    return false;
  }
  // A load generator aimed elsewhere is a flood: only this host is a target.
  if (!address->IsLoopback()) {
    std::fprintf(stderr, "--target %s is not a loopback address (127.0.0.0/8 or ::1)\n",
                 target.c_str());
    return false;
  }
  options->target = *address;
  if (mode == "coap") {
    options->mode = Mode::kCoap;
  } else if (mode == "echo") {
    options->mode = Mode::kEcho;
  } else {
    std::fprintf(stderr, "--mode: want coap or echo, got '%s'\n", mode.c_str());
    return false;
  }
  if (request == "get") {
    options->request = RequestKind::kGet;
  } else if (request == "register") {
    options->request = RequestKind::kRegister;
  } else {
    std::fprintf(stderr, "--request: want get or register, got '%s'\n", request.c_str());
    return false;
  }
  options->window = static_cast<int>(window);
  options->sockets = static_cast<int>(std::min(sockets, window));
  options->timeout_ms = static_cast<int>(timeout_ms);
  options->cpu = static_cast<int>(cpu);
  return true;
}

int Main(int argc, char** argv) {
  Options options;
  if (!ParseOptions(argc, argv, &options)) {
    Usage();
    return 2;
  }
  if (absl::Status status = PinToCpu(options.cpu); !status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  LoadClient client(options);
  if (!client.Init()) return 1;
  std::printf(
      "udp_load: mode=%s target=%s window=%d sockets=%d request_bytes=%zu warmup=%gs "
      "duration=%gs\n",
      options.mode == Mode::kCoap ? "coap" : "echo", options.target.ToString().c_str(),
      options.window, options.sockets, client.request_size(), options.warmup_s, options.duration_s);
  std::fflush(stdout);
  client.Run();
  client.Report();
  return 0;
}

}  // namespace
}  // namespace lwm2md::bench

int main(int argc, char** argv) { return lwm2md::bench::Main(argc, argv); }
