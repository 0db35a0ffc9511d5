// dtls_load: a loopback load client for lwm2md's DTLS 1.2 (RFC 6347, with RFC 9146
// connection ids) on mbedTLS 3.6, and for the same CoAP requests without DTLS, so that
// bench/dtls_ratio compares the two with one client. One thread; every buffer and table is
// allocated before the measured window opens.
//
//   dtls_load --target 127.0.0.1:PORT --mode handshake|coaps|coap [--window 64]
//             [--sessions 64] [--duration 10] [--warmup 1] [--timeout-ms 200]
//             [--handshake-timeout-ms 3000] [--max-handshakes 0] [--close notify|keep]
//             [--identity ID] [--key-hex HEX] [--client-cid-bytes 0]
//             [--path .well-known/core] [--cpu N]
//             [--server-pid PID] [--metrics 127.0.0.1:PORT --token-file FILE]
//
// handshake: keeps --window full PSK handshakes in flight (TLS-PSK-WITH-AES-128-CCM-8, the
//   HelloVerifyRequest cookie round, the connection id extension), each from a new socket
//   with a source address of its own; a finished session is closed with close_notify, the
//   server's close_notify awaited, and the slot starts over. --close keep instead sends one
//   CON GET over the new session, waits for its answer and closes only the socket, so that
//   the server holds a used session, as a device leaves one after its Register (for memory
//   measurements; with --max-handshakes N it stops after N).
// coaps: establishes --sessions sessions, then keeps --window CON GET requests in flight
//   over them (request slot s on session s mod sessions), a piggybacked 2.xx ACK each.
// coap: the same sockets, source addresses, request bytes and window, without DTLS.
//
// Every socket is bound to its own loopback address (127.a.b.c, a in 1..254, the port the
// kernel's): a closed socket's port may come round again at once, and a server that still
// held a session for it would take the next ClientHello for a reconnect; distinct addresses
// make each session a new peer, as distinct devices are.
//
// Prints "phase measure" when the measured window opens; then "detail: …", with
// --server-pid/--metrics a "server: …" line (the server's CPU time and, from /metrics, its
// own handshake count over the same window), and last
//   rps=… p50_us=… p99_us=… sent=… received=… lost=…
// (handshake mode: rps is handshakes completed per second, sent the handshakes begun in the
// window, received those completed, latencies from the first ClientHello to the Finished).

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coap/message.h"
#include "http_client.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/error.h"
#include "mbedtls/ssl.h"
#include "mbedtls/ssl_ciphersuites.h"
#include "udp_common.h"

namespace lwm2md::bench {
namespace {

enum class Mode { kHandshake, kCoaps, kCoap };
enum class CloseMode { kNotify, kKeep };

struct Options {
  SocketAddress target;
  Mode mode = Mode::kHandshake;
  int window = 64;
  int sessions = 64;
  double duration_s = 10;
  double warmup_s = 1;
  int timeout_ms = 200;
  int handshake_timeout_ms = 3000;
  int64_t max_handshakes = 0;  // 0: bounded by duration only
  CloseMode close = CloseMode::kNotify;
  std::string identity = "bench-psk-id";
  std::string key;  // raw bytes
  int client_cid_bytes = 0;
  std::string path = ".well-known/core";
  int cpu = -1;
  int server_pid = 0;
  std::optional<SocketAddress> metrics;
  std::string token_file;
};

// Datagrams per recvmmsg/sendmmsg call on one session's socket. A session has at most its
// share of the window in flight, so this is rarely the limit.
constexpr int kBatch = 16;
// mbedTLS writes records of up to MBEDTLS_SSL_OUT_CONTENT_LEN (2048) plus header and
// expansion; handshake flights are far smaller.
constexpr size_t kDatagramBytes = 2304;
// Handshakes in flight while coaps mode establishes its sessions.
constexpr int kSetupInFlight = 64;
// Bounds on the set-up and drain phases, so that a server that stops answering ends the run.
constexpr int64_t kSetupDeadlineNs = 30'000'000'000;

// Latencies in bins of bin_us up to max_us (anything slower is clamped), so that recording
// is one increment and percentiles are exact to a bin.
class LatencyHistogram {
 public:
  LatencyHistogram(int64_t max_us, int64_t bin_us)
      : bin_us_(bin_us), counts_(static_cast<size_t>(max_us / bin_us + 1), 0) {}
  void Record(int64_t ns) {
    const int64_t bin = ns / 1000 / bin_us_;
    counts_[static_cast<size_t>(std::clamp<int64_t>(bin, 0, counts_.size() - 1))]++;
    ++total_;
  }
  int64_t Percentile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t bin = 0; bin < counts_.size(); ++bin) {
      seen += counts_[bin];
      if (seen >= rank) return static_cast<int64_t>(bin) * bin_us_;
    }
    return static_cast<int64_t>(counts_.size() - 1) * bin_us_;
  }

 private:
  int64_t bin_us_;
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

// ---- The server's side of the window: CPU time and its own counters ----------------------

// The id of pid's thread called name (lwm2md names its shard threads "shard-N"), or 0.
int FindThread(int pid, std::string_view name) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return 0;
  int found = 0;
  // A process has a bounded number of threads; the count bounds the loop all the same.
  for (int i = 0; i < 4096 && found == 0; ++i) {
    const dirent* entry = readdir(tasks);
    if (entry == nullptr) break;
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::ifstream comm(dir + "/" + entry->d_name + "/comm");
    std::string text;
    if (std::getline(comm, text) && text == name) found = std::atoi(entry->d_name);
  }
  closedir(tasks);
  return found;
}

// Sums every sample of a family in Prometheus text format ("name{labels} value" lines).
std::optional<double> SumFamily(std::string_view text, std::string_view name) {
  std::optional<double> sum;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() <= name.size() || line.substr(0, name.size()) != name) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    const std::string_view number = line.substr(line.rfind(' ') + 1);
    double value = 0;
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec == std::errc()) sum = sum.value_or(0) + value;
  }
  return sum;
}

struct ServerSample {
  int64_t at_ns = 0;
  std::optional<double> process_cpu;
  std::optional<double> shard_cpu;
  std::optional<double> completed;  // lwm2md_dtls_handshakes_completed_total
  std::optional<double> failures;   // lwm2md_dtls_handshake_failures_total
  std::optional<double> cookies;    // lwm2md_dtls_hello_verify_requests_total
  std::optional<double> sessions;   // lwm2md_dtls_sessions
  double self_cpu = 0;
};

// Reads the server's CPU time from /proc and its DTLS counters from /metrics at the edges of
// the measured window, so that what the server did and what it cost come from one window.
class ServerProbe {
 public:
  bool Init(const Options& options) {
    pid_ = options.server_pid;
    if (pid_ > 0) shard_tid_ = FindThread(pid_, "shard-0");
    if (options.metrics.has_value()) {
      std::ifstream file(options.token_file);
      std::string token;
      if (!(file >> token) || token.empty()) {
        std::fprintf(stderr, "cannot read an API token from '%s'\n", options.token_file.c_str());
        return false;
      }
      http_ = std::make_unique<HttpClient>(*options.metrics, "Bearer " + token, 2000);
    }
    return true;
  }

  ServerSample Take() {
    ServerSample sample;
    if (http_ != nullptr) {
      absl::StatusOr<HttpResponse> response = http_->Request("GET", "/metrics");
      if (!response.ok() || response->status != 200) {
        std::fprintf(stderr, "scraping /metrics failed: %s\n",
                     response.ok() ? std::to_string(response->status).c_str()
                                   : response.status().ToString().c_str());
      } else {
        sample.completed = SumFamily(response->body, "lwm2md_dtls_handshakes_completed_total");
        sample.failures = SumFamily(response->body, "lwm2md_dtls_handshake_failures_total");
        sample.cookies = SumFamily(response->body, "lwm2md_dtls_hello_verify_requests_total");
        sample.sessions = SumFamily(response->body, "lwm2md_dtls_sessions");
      }
    }
    // The CPU readings bracket nothing else, so they and the clock describe one instant.
    sample.at_ns = NowNs();
    if (pid_ > 0) {
      sample.process_cpu = StatCpuSeconds("/proc/" + std::to_string(pid_) + "/stat");
      if (shard_tid_ > 0) {
        sample.shard_cpu = StatCpuSeconds("/proc/" + std::to_string(pid_) + "/task/" +
                                          std::to_string(shard_tid_) + "/stat");
      }
    }
    sample.self_cpu = SelfCpuSeconds();
    return sample;
  }

  bool active() const { return pid_ > 0 || http_ != nullptr; }

 private:
  int pid_ = 0;
  int shard_tid_ = 0;
  std::unique_ptr<HttpClient> http_;
};

template <typename T>
std::optional<double> Delta(const std::optional<T>& a, const std::optional<T>& b) {
  if (!a || !b) return std::nullopt;
  return static_cast<double>(*b - *a);
}

// ---- mbedTLS client configuration --------------------------------------------------------

std::string ErrorText(int error) {
  char text[160];
  mbedtls_strerror(error, text, sizeof(text));
  return text;
}

// One random generator and one configuration for every session of the run: the client is
// one thread, and mbedTLS is built without threading.
class ClientTls {
 public:
  ClientTls() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&random_);
    mbedtls_ssl_config_init(&config_);
  }
  ~ClientTls() {
    mbedtls_ssl_config_free(&config_);
    mbedtls_ctr_drbg_free(&random_);
    mbedtls_entropy_free(&entropy_);
  }
  ClientTls(const ClientTls&) = delete;
  ClientTls& operator=(const ClientTls&) = delete;

  bool Init(const Options& options) {
    static constexpr char kPersonalisation[] = "lwm2md dtls_load";
    int error = mbedtls_ctr_drbg_seed(&random_, mbedtls_entropy_func, &entropy_,
                                      reinterpret_cast<const unsigned char*>(kPersonalisation),
                                      sizeof(kPersonalisation) - 1);
    if (error == 0) {
      error =
          mbedtls_ssl_config_defaults(&config_, MBEDTLS_SSL_IS_CLIENT,
                                      MBEDTLS_SSL_TRANSPORT_DATAGRAM, MBEDTLS_SSL_PRESET_DEFAULT);
    }
    if (error != 0) {
      std::fprintf(stderr, "mbedTLS set-up: %s\n", ErrorText(error).c_str());
      return false;
    }
    mbedtls_ssl_conf_rng(&config_, mbedtls_ctr_drbg_random, &random_);
    // LwM2M's mandatory PSK suite (Transport TS §5.2.8), and nothing else: the handshake
    // measured is the one devices make.
    suites_[0] = MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8;
    suites_[1] = 0;
    mbedtls_ssl_conf_ciphersuites(&config_, suites_.data());
    error = mbedtls_ssl_conf_psk(
        &config_, reinterpret_cast<const unsigned char*>(options.key.data()), options.key.size(),
        reinterpret_cast<const unsigned char*>(options.identity.data()), options.identity.size());
    if (error != 0) {
      std::fprintf(stderr, "PSK: %s\n", ErrorText(error).c_str());
      return false;
    }
    // RFC 9146: the client asks for connection ids; with 0 bytes of its own it asks the
    // server for one (the server's records to it stay without), as small devices do.
    error = mbedtls_ssl_conf_cid(&config_, static_cast<size_t>(options.client_cid_bytes),
                                 MBEDTLS_SSL_UNEXPECTED_CID_IGNORE);
    if (error != 0) {
      std::fprintf(stderr, "connection ids: %s\n", ErrorText(error).c_str());
      return false;
    }
    // Loopback loses nothing unless a socket buffer overflows: a short first timeout keeps a
    // lost flight from stalling a slot for long.
    const uint32_t max_ms = static_cast<uint32_t>(options.handshake_timeout_ms);
    mbedtls_ssl_conf_handshake_timeout(&config_, std::min<uint32_t>(500, max_ms), max_ms);
    return true;
  }

  const mbedtls_ssl_config* config() const { return &config_; }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context random_;
  mbedtls_ssl_config config_;
  std::array<int, 2> suites_{};
};

// ---- Source addresses ---------------------------------------------------------------------

// 127.a.b.c with a in 1..254, b in 0..255, c in 1..250: 16 million addresses before the
// sequence comes round, each a peer of its own to the server.
class SourceAddresses {
 public:
  SourceAddresses() {
    // A random start, so that a run right after another does not reuse its addresses.
    std::random_device random;
    next_ = random() % kCycle;
  }
  SocketAddress Next() {
    const uint64_t i = next_++ % kCycle;
    const uint32_t a = 1 + static_cast<uint32_t>(i / (250 * 256));
    const uint32_t b = static_cast<uint32_t>(i / 250 % 256);
    const uint32_t c = 1 + static_cast<uint32_t>(i % 250);
    SocketAddress address;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
    v4->sin_family = AF_INET;
    v4->sin_port = 0;
    v4->sin_addr.s_addr = htonl(0x7F000000u | a << 16 | b << 8 | c);
    address.length = sizeof(sockaddr_in);
    return address;
  }

 private:
  static constexpr uint64_t kCycle = uint64_t{254} * 256 * 250;
  uint64_t next_ = 0;
};

// ---- The load client ----------------------------------------------------------------------

// A CoAP request in flight: the token (4 bytes) carries the slot and its generation, the
// message id is the session's next one, as in udp_load.
struct Slot {
  int64_t sent_ns = 0;
  uint16_t generation = 0;
  uint16_t message_id = 0;
  bool in_flight = false;
  bool measured = false;
};

struct Counters {
  // coap/coaps requests, or handshakes in handshake mode.
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t answered_in_window = 0;
  uint64_t timeouts = 0;
  uint64_t error_responses = 0;
  uint64_t handshake_failures = 0;  // measured handshakes that failed
  uint64_t abandoned = 0;           // measured handshakes still going when the run ended
  // Diagnostics, not tied to a measured request.
  uint64_t resets = 0;
  uint64_t unmatched = 0;
  uint64_t malformed = 0;
  uint64_t send_failures = 0;
  uint64_t socket_failures = 0;
  uint64_t sessions_closed_by_server = 0;
  uint64_t record_errors = 0;
  uint64_t handshakes_total = 0;  // completed, measured or not
  // --close keep: the request each new session carries before its socket closes.
  uint64_t first_requests_answered = 0;
  uint64_t first_requests_failed = 0;  // no answer in time, or not a 2.xx ACK
  uint64_t closes_unanswered = 0;      // no close_notify back from the server in time
};

class LoadClient;

// One DTLS session (or, in coap mode, one plain socket) and its socket.
struct Session {
  enum class State { kIdle, kHandshaking, kEstablished, kClosing };

  LoadClient* client = nullptr;
  int index = 0;
  int fd = -1;
  State state = State::kIdle;
  bool tls = false;  // ssl is set up
  mbedtls_ssl_context ssl;
  int64_t started_ns = 0;
  bool measured = false;
  // mbedTLS's retransmission timer (mbedtls_ssl_set_timer_cb's contract).
  bool timer_armed = false;
  int64_t intermediate_at = 0;
  int64_t final_at = 0;
  // The datagram being handled: what the receive callback returns, once.
  std::span<const uint8_t> input;
  bool input_pending = false;
  // CoAP: this session's message ids and its request slots waiting to be sent.
  uint16_t next_message_id = 0;
  std::vector<int> ready;
  bool queued = false;  // in LoadClient::to_send_

  Session() { mbedtls_ssl_init(&ssl); }
  ~Session() { mbedtls_ssl_free(&ssl); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

class LoadClient {
 public:
  LoadClient(const Options& options, ClientTls* tls)
      : options_(options),
        tls_(tls),
        slots_(options.mode == Mode::kHandshake ? 0 : options.window),
        latency_(options.mode == Mode::kHandshake ? options.handshake_timeout_ms * 1000
                                                  : options.timeout_ms * 1000,
                 options.mode == Mode::kHandshake ? 10 : 1) {}

  ~LoadClient() {
    for (auto& session : sessions_) CloseSocket(*session);
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  bool Init() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      std::perror("epoll_create1");
      return false;
    }
    if (!BuildRequest()) return false;
    const int count = options_.mode == Mode::kHandshake ? options_.window : options_.sessions;
    std::random_device random;
    for (int i = 0; i < count; ++i) {
      auto session = std::make_unique<Session>();
      session->client = this;
      session->index = i;
      // Random starting message ids (RFC 7252 §4.4), so that a rerun does not look like a
      // duplicate to the server's deduplication.
      session->next_message_id = static_cast<uint16_t>(random());
      session->ready.reserve(static_cast<size_t>(options_.window / count + 1));
      sessions_.push_back(std::move(session));
    }
    events_.resize(static_cast<size_t>(std::min(count, 1024)));
    for (int i = 0; i < kBatch; ++i) {
      recv_iovecs_[i] = {recv_buffers_[i].data(), kDatagramBytes};
      recv_headers_[i] = {};
      recv_headers_[i].msg_hdr.msg_iov = &recv_iovecs_[i];
      recv_headers_[i].msg_hdr.msg_iovlen = 1;
      send_headers_[i] = {};
      send_headers_[i].msg_hdr.msg_iov = &send_iovecs_[i];
      send_headers_[i].msg_hdr.msg_iovlen = 1;
    }
    return probe_.Init(options_);
  }

  // Establishes the sessions of coaps mode (coap mode opens its sockets). False when not all
  // of them could be established within the set-up deadline.
  bool SetUp() {
    if (options_.mode == Mode::kHandshake) return true;
    const int64_t deadline = NowNs() + kSetupDeadlineNs;
    int established = 0;
    int next = 0;
    int in_flight = 0;
    // Each loop turn either starts handshakes, or waits at most 10 ms: bounded by the
    // deadline.
    for (;;) {
      const int64_t now = NowNs();
      if (now >= deadline) break;
      while (next < options_.sessions && in_flight < kSetupInFlight) {
        Session& session = *sessions_[next++];
        if (!OpenSocket(session)) return false;
        if (options_.mode == Mode::kCoap) {
          session.state = Session::State::kEstablished;
          ++established;
          continue;
        }
        ++in_flight;
        StartHandshake(session, now);
      }
      if (established == options_.sessions) break;
      Poll(10);
      SweepHandshakes(NowNs());
      // Completed handshakes moved their sessions to kEstablished; failed ones to kIdle,
      // and those start over.
      in_flight = 0;
      established = 0;
      for (int i = 0; i < next; ++i) {
        Session& session = *sessions_[i];
        if (session.state == Session::State::kEstablished) {
          ++established;
        } else if (session.state == Session::State::kHandshaking) {
          ++in_flight;
        } else if (in_flight < kSetupInFlight && OpenSocket(session)) {
          ++in_flight;
          StartHandshake(session, NowNs());
        }
      }
    }
    if (established < options_.sessions) {
      std::fprintf(stderr, "established %d of %d sessions within %" PRId64 " s\n", established,
                   options_.sessions, kSetupDeadlineNs / 1'000'000'000);
      return false;
    }
    return true;
  }

  void Run() {
    const int64_t start = NowNs();
    const int64_t measure_start = start + static_cast<int64_t>(options_.warmup_s * 1e9);
    int64_t measure_end = measure_start + static_cast<int64_t>(options_.duration_s * 1e9);
    const int64_t drain_ns = options_.mode == Mode::kHandshake
                                 ? static_cast<int64_t>(options_.handshake_timeout_ms) * 1'000'000
                                 : static_cast<int64_t>(options_.timeout_ms) * 1'000'000;
    // Request expiry is checked at a quarter of the timeout (a loss is noticed at most 25%
    // late); handshakes every 10 ms, for mbedTLS's retransmission timers.
    const int64_t sweep_interval =
        options_.mode == Mode::kHandshake
            ? 10'000'000
            : std::max<int64_t>(static_cast<int64_t>(options_.timeout_ms) * 250'000, 1'000'000);
    int64_t next_sweep = start + sweep_interval;
    if (options_.mode != Mode::kHandshake) {
      for (int s = 0; s < options_.window; ++s) QueueSlot(s);
    }

    int64_t now = start;
    bool sending = true;
    bool window_open = false;
    // Every turn waits in epoll_wait for at most a second; the run ends at measure_end plus
    // one drain period, so the loop is bounded in time.
    for (;;) {
      if (!window_open && now >= measure_start && sending) {
        window_open = true;
        std::printf("phase measure\n");
        std::fflush(stdout);
        start_sample_ = probe_.Take();
        now = NowNs();
      }
      measuring_ = window_open && now < measure_end && sending;
      if (sending && now >= measure_end) {
        sending = false;
        end_sample_ = probe_.Take();
        measure_end = now;
      }
      if (sending && options_.mode == Mode::kHandshake && options_.max_handshakes > 0 &&
          handshakes_begun_ >= static_cast<uint64_t>(options_.max_handshakes)) {
        // --max-handshakes: the last ones are begun; the window closes when they end.
        if (SessionsBusy() == 0) {
          sending = false;
          measuring_ = false;
          end_sample_ = probe_.Take();
          measure_end = now;
        }
      }
      if (!sending) {
        if (InFlight() == 0 || now >= measure_end + drain_ns) break;
      }
      if (sending) {
        if (options_.mode == Mode::kHandshake) {
          RefillHandshakes(now);
        } else {
          SendQueued();
        }
      }
      const int64_t wake = sending ? std::min(next_sweep, window_open ? measure_end : measure_start)
                                   : std::min(next_sweep, measure_end + drain_ns);
      Poll(static_cast<int>(std::clamp<int64_t>((wake - now + 999'999) / 1'000'000, 0, 1000)));
      now = NowNs();
      if (now >= next_sweep) {
        if (options_.mode == Mode::kHandshake) {
          SweepHandshakes(now);
        } else {
          SweepRequests(now);
        }
        next_sweep = now + sweep_interval;
      }
    }
    if (!window_open) start_sample_ = end_sample_ = probe_.Take();
    // Whatever is still in flight after the drain had its full timeout.
    if (options_.mode == Mode::kHandshake) {
      for (auto& session : sessions_) {
        if (session->state == Session::State::kHandshaking && session->measured) {
          ++counters_.abandoned;
        }
      }
    } else {
      for (const Slot& slot : slots_) {
        if (slot.in_flight && slot.measured) ++counters_.timeouts;
      }
    }
    measured_seconds_ = static_cast<double>(measure_end - measure_start) / 1e9;
    // Established sessions end politely, so that the server frees them (coaps mode), and
    // in handshake mode with --close notify no session is left behind.
    for (auto& session : sessions_) {
      if (session->state == Session::State::kEstablished && session->tls &&
          options_.close == CloseMode::kNotify) {
        mbedtls_ssl_close_notify(&session->ssl);
        Flush(*session);
      }
      CloseSocket(*session);
    }
  }

  void Report() const {
    const Counters& c = counters_;
    if (options_.mode == Mode::kHandshake) {
      std::printf("detail: failed=%" PRIu64 " abandoned=%" PRIu64 " completed_total=%" PRIu64
                  " socket_failures=%" PRIu64 " send_failures=%" PRIu64,
                  c.handshake_failures, c.abandoned, c.handshakes_total, c.socket_failures,
                  c.send_failures);
      if (options_.close == CloseMode::kNotify) {
        std::printf(" closes_unanswered=%" PRIu64, c.closes_unanswered);
      }
      if (options_.close == CloseMode::kKeep) {
        std::printf(" first_requests_answered=%" PRIu64 " first_requests_failed=%" PRIu64,
                    c.first_requests_answered, c.first_requests_failed);
      }
      for (const auto& [error, count] : errors_) {
        std::printf(" error_%04x=%" PRIu64, static_cast<unsigned>(-error), count);
      }
      std::printf("\n");
      for (const auto& [error, count] : errors_) {
        std::printf("error -0x%04x (%s): %" PRIu64 "\n", static_cast<unsigned>(-error),
                    ErrorText(error).c_str(), count);
      }
    } else {
      std::printf("detail: timeouts=%" PRIu64 " error_responses=%" PRIu64 " resets=%" PRIu64
                  " unmatched=%" PRIu64 " malformed=%" PRIu64 " send_failures=%" PRIu64
                  " closed_by_server=%" PRIu64 " record_errors=%" PRIu64 "\n",
                  c.timeouts, c.error_responses, c.resets, c.unmatched, c.malformed,
                  c.send_failures, c.sessions_closed_by_server, c.record_errors);
    }
    ReportServer();
    const double rps =
        measured_seconds_ > 0 ? static_cast<double>(c.answered_in_window) / measured_seconds_ : 0;
    std::printf("rps=%.0f p50_us=%" PRId64 " p99_us=%" PRId64 " sent=%" PRIu64 " received=%" PRIu64
                " lost=%" PRIu64 "\n",
                rps, latency_.Percentile(0.50), latency_.Percentile(0.99), c.sent, c.received,
                c.sent - c.received);
    std::fflush(stdout);
  }

  size_t request_size() const { return request_size_; }

  // ---- mbedTLS callbacks ----

  static int BioSend(void* context, const unsigned char* bytes, size_t length) {
    auto* session = static_cast<Session*>(context);
    session->client->Stage(*session, std::span<const uint8_t>(bytes, length));
    // UDP: a datagram the kernel refuses later is lost like any other; DTLS retransmits
    // handshake flights and the request times out.
    return static_cast<int>(length);
  }

  static int BioReceive(void* context, unsigned char* bytes, size_t length) {
    auto* session = static_cast<Session*>(context);
    if (!session->input_pending) return MBEDTLS_ERR_SSL_WANT_READ;
    session->input_pending = false;
    const size_t n = std::min(length, session->input.size());  // truncated like recv()
    std::memcpy(bytes, session->input.data(), n);
    return static_cast<int>(n);
  }

  static void SetTimer(void* context, uint32_t intermediate_ms, uint32_t final_ms) {
    auto* session = static_cast<Session*>(context);
    session->timer_armed = final_ms != 0;
    if (!session->timer_armed) return;
    const int64_t now = NowNs();
    session->intermediate_at = now + int64_t{intermediate_ms} * 1'000'000;
    session->final_at = now + int64_t{final_ms} * 1'000'000;
  }

  static int GetTimer(void* context) {
    auto* session = static_cast<Session*>(context);
    if (!session->timer_armed) return -1;
    const int64_t now = NowNs();
    if (now >= session->final_at) return 2;
    if (now >= session->intermediate_at) return 1;
    return 0;
  }

 private:
  // CoAP (RFC 7252 §3): the message id is bytes 2-3 and the token starts at byte 4.
  static constexpr size_t kMessageIdOffset = 2;
  static constexpr size_t kTokenOffset = 4;
  static constexpr size_t kTokenLength = 4;

  bool BuildRequest() {
    const uint8_t token[kTokenLength] = {};
    coap::MessageBuilder builder(request_);
    builder.Header(coap::Type::kConfirmable, coap::code::kGet, 0, token).UriPath(options_.path);
    const std::span<const uint8_t> encoded = builder.Finish();
    if (encoded.empty()) {
      std::fprintf(stderr, "--path '%s' does not fit in a request\n", options_.path.c_str());
      return false;
    }
    request_size_ = encoded.size();
    return true;
  }

  // ---- sockets ----

  bool OpenSocket(Session& session) {
    CloseSocket(session);
    const SocketAddress source = sources_.Next();
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      std::perror("socket");
      ++counters_.socket_failures;
      return false;
    }
    // Connected: no destination per datagram, and only the server's datagrams arrive.
    if (bind(fd, source.sockaddr_ptr(), source.length) != 0 ||
        connect(fd, options_.target.sockaddr_ptr(), options_.target.length) != 0) {
      std::fprintf(stderr, "bind/connect %s: %s\n", source.ToString().c_str(),
                   std::strerror(errno));
      close(fd);
      ++counters_.socket_failures;
      return false;
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = static_cast<uint32_t>(session.index);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
      std::perror("epoll_ctl");
      close(fd);
      ++counters_.socket_failures;
      return false;
    }
    session.fd = fd;
    return true;
  }

  void CloseSocket(Session& session) {
    // close() also takes the socket out of the epoll set: it is its only reference.
    if (session.fd >= 0) close(session.fd);
    session.fd = -1;
    session.state = Session::State::kIdle;
    session.timer_armed = false;
    session.input_pending = false;
  }

  // ---- sending: one sendmmsg per session per turn ----

  void Stage(Session& session, std::span<const uint8_t> bytes) {
    if (staged_ == kBatch) Flush(session);
    if (bytes.size() > kDatagramBytes) {
      ++counters_.send_failures;
      return;
    }
    std::memcpy(send_buffers_[staged_].data(), bytes.data(), bytes.size());
    send_iovecs_[staged_] = {send_buffers_[staged_].data(), bytes.size()};
    ++staged_;
  }

  // Hands the staged datagrams to the kernel; returns how many it took.
  int Flush(Session& session) {
    if (staged_ == 0) return 0;
    int sent = 0;
    if (session.fd >= 0) {
      if (staged_ == 1) {
        sent = send(session.fd, send_iovecs_[0].iov_base, send_iovecs_[0].iov_len, 0) >= 0 ? 1 : 0;
      } else {
        sent = std::max(
            sendmmsg(session.fd, send_headers_.data(), static_cast<unsigned>(staged_), 0), 0);
      }
    }
    if (sent < staged_) ++counters_.send_failures;
    staged_ = 0;
    return sent;
  }

  // ---- receiving ----

  // Waits at most timeout_ms for readable sockets and handles what they hold.
  void Poll(int timeout_ms) {
    const int ready =
        epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
    if (ready < 0) {
      if (errno != EINTR) std::perror("epoll_wait");
      return;
    }
    for (int e = 0; e < ready; ++e) OnReadable(*sessions_[events_[e].data.u32]);
  }

  void OnReadable(Session& session) {
    const int fd = session.fd;
    if (fd < 0) return;
    // Level-triggered: what is left after one batch is reported again next turn.
    const int n = recvmmsg(fd, recv_headers_.data(), kBatch, MSG_DONTWAIT, nullptr);
    // ECONNREFUSED (an ICMP port unreachable) and EAGAIN: nothing to handle.
    if (n <= 0) return;
    const int64_t now = NowNs();
    for (int i = 0; i < n && session.fd == fd; ++i) {
      const std::span<const uint8_t> bytes(recv_buffers_[i].data(), recv_headers_[i].msg_len);
      if (options_.mode == Mode::kCoap) {
        OnResponse(session, bytes, now);
        continue;
      }
      session.input = bytes;
      session.input_pending = true;
      if (session.state == Session::State::kHandshaking) {
        StepHandshake(session, now);
      } else if (session.state == Session::State::kClosing) {
        // The server's close_notify (nothing else is due on a closed session).
        CloseSocket(session);
      } else if (session.state == Session::State::kEstablished) {
        ReadRecords(session, now);
      }
      session.input_pending = false;
    }
  }

  void ReadRecords(Session& session, int64_t now) {
    std::array<uint8_t, kDatagramBytes> plaintext;
    // A datagram may hold several records; mbedTLS keeps the rest between calls. Bounded by
    // the datagram's size: every record takes at least its header.
    for (int i = 0; i < 256; ++i) {
      const int result = mbedtls_ssl_read(&session.ssl, plaintext.data(), plaintext.size());
      if (result > 0 && options_.mode == Mode::kHandshake) {
        OnFirstAnswer(session,
                      std::span<const uint8_t>(plaintext.data(), static_cast<size_t>(result)));
        return;
      }
      if (result > 0) {
        OnResponse(session, std::span<const uint8_t>(plaintext.data(), static_cast<size_t>(result)),
                   now);
        continue;
      }
      if (result == MBEDTLS_ERR_SSL_WANT_READ || result == MBEDTLS_ERR_SSL_WANT_WRITE) return;
      if (result == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        ++counters_.sessions_closed_by_server;
      } else {
        ++counters_.record_errors;
      }
      // The session is gone; its requests time out.
      CloseSocket(session);
      return;
    }
  }

  // ---- handshakes ----

  void StartHandshake(Session& session, int64_t now) {
    if (!session.tls) {
      if (int error = mbedtls_ssl_setup(&session.ssl, tls_->config()); error != 0) {
        std::fprintf(stderr, "mbedtls_ssl_setup: %s\n", ErrorText(error).c_str());
        ++counters_.socket_failures;
        CloseSocket(session);
        return;
      }
      mbedtls_ssl_set_bio(&session.ssl, &session, &LoadClient::BioSend, &LoadClient::BioReceive,
                          nullptr);
      mbedtls_ssl_set_timer_cb(&session.ssl, &session, &LoadClient::SetTimer,
                               &LoadClient::GetTimer);
      session.tls = true;
    } else {
      // Reuses the context's buffers: the client's own allocations stay off the measure.
      mbedtls_ssl_session_reset(&session.ssl);
    }
    // An own id of --client-cid-bytes (random bytes are as good as any: one session per
    // socket, so the client never looks them up).
    std::array<uint8_t, MBEDTLS_SSL_CID_IN_LEN_MAX> own_cid{};
    for (int i = 0; i < options_.client_cid_bytes; ++i) {
      own_cid[static_cast<size_t>(i)] = static_cast<uint8_t>(session.index >> (8 * (i % 4)));
    }
    mbedtls_ssl_set_cid(&session.ssl, MBEDTLS_SSL_CID_ENABLED, own_cid.data(),
                        static_cast<size_t>(options_.client_cid_bytes));
    session.state = Session::State::kHandshaking;
    session.started_ns = now;
    session.measured = measuring_;
    session.timer_armed = false;
    ++handshakes_begun_;
    if (measuring_) ++counters_.sent;
    StepHandshake(session, now);
  }

  void StepHandshake(Session& session, int64_t now) {
    const int result = mbedtls_ssl_handshake(&session.ssl);
    Flush(session);
    if (result == MBEDTLS_ERR_SSL_WANT_READ || result == MBEDTLS_ERR_SSL_WANT_WRITE) return;
    if (result != 0) {
      FailHandshake(session, result);
      return;
    }
    ++counters_.handshakes_total;
    if (measuring_) ++counters_.answered_in_window;
    if (session.measured) {
      ++counters_.received;
      latency_.Record(now - session.started_ns);
    }
    session.state = Session::State::kEstablished;
    if (options_.mode != Mode::kHandshake) return;
    if (options_.close == CloseMode::kKeep) {
      SendFirstRequest(session, now);
      return;
    }
    mbedtls_ssl_close_notify(&session.ssl);
    Flush(session);
    // The server answers with a close_notify of its own (RFC 5246 §7.2.1). Closing the socket
    // before it arrives would have the kernel answer it with an ICMP port unreachable, built
    // on the server's core and so counted as handshake cost; a device that stays to hear it
    // costs the server only the handshake and the alerts.
    session.state = Session::State::kClosing;
    session.started_ns = now;
  }

  // --close keep: mbedTLS keeps a server's last flight until the client's first record of
  // the new epoch, and a session in that state is not one a device leaves behind (nor one
  // lwm2md can save), so every kept session first carries a request and its answer.
  void SendFirstRequest(Session& session, int64_t now) {
    std::array<uint8_t, kDatagramBytes> request;
    std::memcpy(request.data(), request_.data(), request_size_);
    const Slot slot{.generation = 0, .message_id = session.next_message_id++};
    WriteIds(request.data(), 0, slot);
    session.started_ns = now;  // the answer's deadline runs from here
    if (mbedtls_ssl_write(&session.ssl, request.data(), request_size_) !=
        static_cast<int>(request_size_)) {
      ++counters_.first_requests_failed;
      CloseSocket(session);
      return;
    }
    Flush(session);
  }

  void OnFirstAnswer(Session& session, std::span<const uint8_t> bytes) {
    coap::MessageView message;
    const bool good = coap::MessageView::Parse(bytes, &message) == coap::ParseError::kOk &&
                      message.type() == coap::Type::kAcknowledgement &&
                      coap::CodeClass(message.code()) == 2;
    ++(good ? counters_.first_requests_answered : counters_.first_requests_failed);
    // Without close_notify: the server keeps the session.
    CloseSocket(session);
  }

  void FailHandshake(Session& session, int error) {
    if (session.measured) ++counters_.handshake_failures;
    ++errors_[error];
    CloseSocket(session);
  }

  // Restarts every idle slot with a new socket (handshake mode).
  void RefillHandshakes(int64_t now) {
    for (auto& session : sessions_) {
      if (session->state != Session::State::kIdle) continue;
      if (options_.max_handshakes > 0 &&
          handshakes_begun_ >= static_cast<uint64_t>(options_.max_handshakes)) {
        return;
      }
      if (!OpenSocket(*session)) return;  // counted; the next turn tries again
      StartHandshake(*session, now);
    }
  }

  // Drives mbedTLS's retransmission timers and ends handshakes (and, in handshake mode, first
  // requests) older than the timeout.
  void SweepHandshakes(int64_t now) {
    const int64_t timeout_ns = static_cast<int64_t>(options_.handshake_timeout_ms) * 1'000'000;
    for (auto& session : sessions_) {
      if (options_.mode == Mode::kHandshake && session->state == Session::State::kEstablished &&
          now - session->started_ns >= timeout_ns) {
        ++counters_.first_requests_failed;
        CloseSocket(*session);
        continue;
      }
      if (session->state == Session::State::kClosing && now - session->started_ns >= timeout_ns) {
        ++counters_.closes_unanswered;
        CloseSocket(*session);
        continue;
      }
      if (session->state != Session::State::kHandshaking) continue;
      if (now - session->started_ns >= timeout_ns) {
        FailHandshake(*session, MBEDTLS_ERR_SSL_TIMEOUT);
      } else if (session->timer_armed && now >= session->final_at) {
        StepHandshake(*session, now);  // mbedTLS retransmits its last flight
      }
    }
  }

  // Handshake mode: sessions handshaking, waiting for their first answer or for the server's
  // close_notify.
  int SessionsBusy() const {
    int n = 0;
    for (const auto& session : sessions_) n += session->state != Session::State::kIdle;
    return n;
  }

  int64_t InFlight() const {
    return options_.mode == Mode::kHandshake ? SessionsBusy() : measured_in_flight_;
  }

  // ---- CoAP requests over the sessions ----

  Session& SessionOf(int slot) { return *sessions_[static_cast<size_t>(slot % options_.sessions)]; }

  void QueueSlot(int slot) {
    Session& session = SessionOf(slot);
    session.ready.push_back(slot);
    if (!session.queued) {
      session.queued = true;
      to_send_.push_back(session.index);
    }
  }

  void SendQueued() {
    for (int index : to_send_) {
      Session& session = *sessions_[static_cast<size_t>(index)];
      session.queued = false;
      if (session.state != Session::State::kEstablished) {
        // A session the server closed: its slots wait here and are reported as lost.
        session.ready.clear();
        continue;
      }
      // Bounded by the session's share of the window.
      while (!session.ready.empty()) {
        const size_t take = std::min<size_t>(session.ready.size(), kBatch);
        const size_t first = session.ready.size() - take;
        for (size_t k = first; k < session.ready.size(); ++k) {
          const int slot_index = session.ready[k];
          Slot& slot = slots_[static_cast<size_t>(slot_index)];
          slot.generation++;
          slot.message_id = session.next_message_id++;
          std::array<uint8_t, kDatagramBytes> request;
          std::memcpy(request.data(), request_.data(), request_size_);
          WriteIds(request.data(), slot_index, slot);
          const std::span<const uint8_t> bytes(request.data(), request_size_);
          if (options_.mode == Mode::kCoap) {
            Stage(session, bytes);
          } else if (mbedtls_ssl_write(&session.ssl, bytes.data(), bytes.size()) !=
                     static_cast<int>(bytes.size())) {
            ++counters_.record_errors;
          }
        }
        const int64_t sent_at = NowNs();
        const int sent = Flush(session);
        for (size_t k = first; k < first + static_cast<size_t>(sent); ++k) {
          Slot& slot = slots_[static_cast<size_t>(session.ready[k])];
          slot.in_flight = true;
          slot.sent_ns = sent_at;
          slot.measured = measuring_;
          if (measuring_) {
            ++counters_.sent;
            ++measured_in_flight_;
          }
        }
        if (static_cast<size_t>(sent) < take) {
          // The unsent ones stay ready for the next turn.
          std::copy(session.ready.begin() + static_cast<std::ptrdiff_t>(first) + sent,
                    session.ready.end(),
                    session.ready.begin() + static_cast<std::ptrdiff_t>(first));
          session.ready.resize(session.ready.size() - static_cast<size_t>(sent));
          session.queued = true;
          retry_.push_back(session.index);
          break;
        }
        session.ready.resize(first);
      }
    }
    to_send_.swap(retry_);
    retry_.clear();
  }

  void WriteIds(uint8_t* out, int slot_index, const Slot& slot) const {
    out[kMessageIdOffset] = static_cast<uint8_t>(slot.message_id >> 8);
    out[kMessageIdOffset + 1] = static_cast<uint8_t>(slot.message_id);
    out[kTokenOffset] = static_cast<uint8_t>(slot_index >> 8);
    out[kTokenOffset + 1] = static_cast<uint8_t>(slot_index);
    out[kTokenOffset + 2] = static_cast<uint8_t>(slot.generation >> 8);
    out[kTokenOffset + 3] = static_cast<uint8_t>(slot.generation);
  }

  void OnResponse(Session& session, std::span<const uint8_t> bytes, int64_t now) {
    coap::MessageView message;
    if (coap::MessageView::Parse(bytes, &message) != coap::ParseError::kOk) {
      ++counters_.malformed;
      return;
    }
    if (message.type() == coap::Type::kReset) {
      ++counters_.resets;
      return;
    }
    const std::span<const uint8_t> token = message.token();
    if (token.size() != kTokenLength) {
      ++counters_.unmatched;
      return;
    }
    const int slot_index = token[0] << 8 | token[1];
    const uint16_t generation = static_cast<uint16_t>(token[2] << 8 | token[3]);
    if (slot_index >= options_.window || &SessionOf(slot_index) != &session) {
      ++counters_.unmatched;
      return;
    }
    Slot& slot = slots_[static_cast<size_t>(slot_index)];
    if (!slot.in_flight || slot.generation != generation ||
        slot.message_id != message.message_id()) {
      ++counters_.unmatched;
      return;
    }
    Retire(slot_index, slot);
    if (message.type() != coap::Type::kAcknowledgement || coap::CodeClass(message.code()) != 2) {
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
    QueueSlot(slot_index);
  }

  void SweepRequests(int64_t now) {
    const int64_t timeout_ns = static_cast<int64_t>(options_.timeout_ms) * 1'000'000;
    for (int s = 0; s < options_.window; ++s) {
      Slot& slot = slots_[static_cast<size_t>(s)];
      if (!slot.in_flight || now - slot.sent_ns < timeout_ns) continue;
      if (slot.measured) ++counters_.timeouts;
      Retire(s, slot);
    }
  }

  // ---- the server's line ----

  void ReportServer() const {
    if (!probe_.active()) return;
    const ServerSample& a = start_sample_;
    const ServerSample& b = end_sample_;
    const double wall = static_cast<double>(b.at_ns - a.at_ns) / 1e9;
    if (wall <= 0) return;
    std::string line = "server:";
    auto add = [&line](const char* name, std::optional<double> value, const char* format) {
      if (!value) return;
      char text[64];
      std::snprintf(text, sizeof(text), format, *value);
      line += " ";
      line += name;
      line += "=";
      line += text;
    };
    const std::optional<double> cpu = Delta(a.process_cpu, b.process_cpu);
    const std::optional<double> shard_cpu = Delta(a.shard_cpu, b.shard_cpu);
    const std::optional<double> completed = Delta(a.completed, b.completed);
    add("wall_s", wall, "%.3f");
    add("cpu_s", cpu, "%.2f");
    add("shard_cpu_s", shard_cpu, "%.2f");
    add("server_cpu", cpu ? std::optional<double>(*cpu / wall) : std::nullopt, "%.2f");
    add("client_cpu", (b.self_cpu - a.self_cpu) / wall, "%.2f");
    if (options_.mode == Mode::kHandshake || completed.value_or(0) > 0) {
      add("completed", completed, "%.0f");
      add("failures", Delta(a.failures, b.failures), "%.0f");
      add("cookies", Delta(a.cookies, b.cookies), "%.0f");
      add("rate", completed ? std::optional<double>(*completed / wall) : std::nullopt, "%.0f");
      if (completed && cpu && *cpu > 0) add("per_cpu_s", *completed / *cpu, "%.0f");
      if (completed && shard_cpu && *shard_cpu > 0) {
        add("per_shard_cpu_s", *completed / *shard_cpu, "%.0f");
      }
    }
    add("sessions", b.sessions, "%.0f");
    std::printf("%s\n", line.c_str());
  }

  const Options options_;
  ClientTls* const tls_;
  std::vector<std::unique_ptr<Session>> sessions_;
  std::vector<Slot> slots_;
  std::vector<int> to_send_;
  std::vector<int> retry_;
  std::vector<epoll_event> events_;
  SourceAddresses sources_;
  ServerProbe probe_;
  ServerSample start_sample_;
  ServerSample end_sample_;
  std::array<uint8_t, kDatagramBytes> request_{};
  size_t request_size_ = 0;
  int epoll_fd_ = -1;
  bool measuring_ = false;
  int64_t measured_in_flight_ = 0;
  uint64_t handshakes_begun_ = 0;
  double measured_seconds_ = 0;
  Counters counters_;
  std::map<int, uint64_t> errors_;  // failed handshakes by mbedTLS error
  LatencyHistogram latency_;

  // One batch of receive buffers for whichever socket is being read, one of send buffers
  // for whichever session is being written: sessions take turns, so they need no more.
  std::array<std::array<uint8_t, kDatagramBytes>, kBatch> recv_buffers_;
  std::array<std::array<uint8_t, kDatagramBytes>, kBatch> send_buffers_;
  std::array<iovec, kBatch> recv_iovecs_{};
  std::array<iovec, kBatch> send_iovecs_{};
  std::array<mmsghdr, kBatch> recv_headers_{};
  std::array<mmsghdr, kBatch> send_headers_{};
  int staged_ = 0;
};

// ---- command line ---------------------------------------------------------------------------

void Usage() {
  std::fprintf(stderr,
               "usage: dtls_load --target 127.0.0.1:PORT --mode handshake|coaps|coap\n"
               "                 [--window 64] [--sessions 64] [--duration 10] [--warmup 1]\n"
               "                 [--timeout-ms 200] [--handshake-timeout-ms 3000]\n"
               "                 [--max-handshakes 0] [--close notify|keep] [--identity ID]\n"
               "                 [--key-hex HEX] [--client-cid-bytes 0] [--path .well-known/core]\n"
               "                 [--cpu N] [--server-pid PID]\n"
               "                 [--metrics 127.0.0.1:PORT --token-file FILE]\n");
}

bool ParseHex(std::string_view hex, std::string* out) {
  if (hex.empty() || hex.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    uint8_t byte = 0;
    auto [ptr, ec] = std::from_chars(hex.data() + i, hex.data() + i + 2, byte, 16);
    if (ec != std::errc() || ptr != hex.data() + i + 2) return false;
    out->push_back(static_cast<char>(byte));
  }
  return true;
}

std::optional<SocketAddress> ParseLoopback(const char* flag, const std::string& text) {
  std::optional<SocketAddress> address = SocketAddress::Parse(text);
  if (!address.has_value() || address->port() == 0 || address->family() != AF_INET) {
    std::fprintf(stderr, "--%s: want 127.0.0.1:PORT, got '%s'\n", flag, text.c_str());
    return std::nullopt;
  }
  // A load generator aimed elsewhere is a flood: only this host is a target.
  if (!address->IsLoopback()) {
    std::fprintf(stderr, "--%s %s is not a loopback address (127.0.0.0/8)\n", flag, text.c_str());
    return std::nullopt;
  }
  return address;
}

bool ParseOptions(int argc, char** argv, Options* options) {
  Flags flags;
  if (!flags.Parse(argc, argv)) return false;
  std::string target, mode, close = "notify", key_hex = "000102030405060708090a0b0c0d0e0f";
  std::string metrics;
  int64_t window = options->window, sessions = options->sessions;
  int64_t timeout_ms = options->timeout_ms, handshake_timeout_ms = options->handshake_timeout_ms;
  int64_t cid_bytes = options->client_cid_bytes, cpu = options->cpu, server_pid = 0;
  // The bounds keep one run finite (at most an hour), the window within what the token's
  // 16-bit slot index can name, and the latency histograms small.
  if (!flags.GetString("target", &target) || !flags.GetString("mode", &mode) ||
      !flags.GetInt("window", 1, 4096, &window) || !flags.GetInt("sessions", 1, 16384, &sessions) ||
      !flags.GetDouble("duration", 0.1, 3600, &options->duration_s) ||
      !flags.GetDouble("warmup", 0, 600, &options->warmup_s) ||
      !flags.GetInt("timeout-ms", 1, 2000, &timeout_ms) ||
      !flags.GetInt("handshake-timeout-ms", 100, 10000, &handshake_timeout_ms) ||
      !flags.GetInt("max-handshakes", 0, int64_t{1} << 32, &options->max_handshakes) ||
      !flags.GetString("close", &close) || !flags.GetString("identity", &options->identity) ||
      !flags.GetString("key-hex", &key_hex) ||
      !flags.GetInt("client-cid-bytes", 0, MBEDTLS_SSL_CID_IN_LEN_MAX, &cid_bytes) ||
      !flags.GetString("path", &options->path) || !flags.GetInt("cpu", -1, 4095, &cpu) ||
      !flags.GetInt("server-pid", 0, 1 << 22, &server_pid) ||
      !flags.GetString("metrics", &metrics) ||
      !flags.GetString("token-file", &options->token_file) || !flags.CheckAllUsed()) {
    return false;
  }
  if (target.empty()) {
    std::fprintf(stderr, "--target is required\n");
    return false;
  }
  std::optional<SocketAddress> address = ParseLoopback("target", target);
  if (!address) return false;
  options->target = *address;
  if (!metrics.empty()) {
    options->metrics = ParseLoopback("metrics", metrics);
    if (!options->metrics) return false;
    if (options->token_file.empty()) {
      std::fprintf(stderr, "--metrics needs --token-file\n");
      return false;
    }
  }
  if (mode == "handshake") {
    options->mode = Mode::kHandshake;
  } else if (mode == "coaps") {
    options->mode = Mode::kCoaps;
  } else if (mode == "coap") {
    options->mode = Mode::kCoap;
  } else {
    std::fprintf(stderr, "--mode: want handshake, coaps or coap, got '%s'\n", mode.c_str());
    return false;
  }
  if (close == "notify") {
    options->close = CloseMode::kNotify;
  } else if (close == "keep") {
    options->close = CloseMode::kKeep;
  } else {
    std::fprintf(stderr, "--close: want notify or keep, got '%s'\n", close.c_str());
    return false;
  }
  if (!ParseHex(key_hex, &options->key) || options->key.size() > 64) {
    std::fprintf(stderr, "--key-hex: want 1 to 64 bytes in hex\n");
    return false;
  }
  options->window = static_cast<int>(window);
  options->sessions = static_cast<int>(std::min(sessions, window));
  options->timeout_ms = static_cast<int>(timeout_ms);
  options->handshake_timeout_ms = static_cast<int>(handshake_timeout_ms);
  options->client_cid_bytes = static_cast<int>(cid_bytes);
  options->cpu = static_cast<int>(cpu);
  options->server_pid = static_cast<int>(server_pid);
  return true;
}

// Every session holds a socket: ask for as many descriptors as the hard limit allows.
void RaiseDescriptorLimit(int wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t want = static_cast<rlim_t>(wanted) + 64;
  if (limit.rlim_cur >= want) return;
  limit.rlim_cur = std::min(want, limit.rlim_max);
  setrlimit(RLIMIT_NOFILE, &limit);
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
  RaiseDescriptorLimit(options.mode == Mode::kHandshake ? options.window : options.sessions);
  ClientTls tls;
  if (options.mode != Mode::kCoap && !tls.Init(options)) return 1;
  LoadClient client(options, &tls);
  if (!client.Init()) return 1;
  std::printf(
      "dtls_load: mode=%s target=%s window=%d sessions=%d request_bytes=%zu warmup=%gs "
      "duration=%gs\n",
      options.mode == Mode::kHandshake ? "handshake"
      : options.mode == Mode::kCoaps   ? "coaps"
                                       : "coap",
      options.target.ToString().c_str(), options.window,
      options.mode == Mode::kHandshake ? options.window : options.sessions, client.request_size(),
      options.warmup_s, options.duration_s);
  std::fflush(stdout);
  if (!client.SetUp()) return 1;
  client.Run();
  client.Report();
  return 0;
}

}  // namespace
}  // namespace lwm2md::bench

int main(int argc, char** argv) { return lwm2md::bench::Main(argc, argv); }
