// notify_load: simulated LwM2M devices that feed Observe notifications to lwm2md as fast as a
// window allows, and the same datagrams against udp_echo for the baseline. One UDP thread
// plays every device; helper threads drive the REST API.
//
//   notify_load --target 127.0.0.1:PORT [--mode coap|echo] [--devices 1024] [--sockets 16]
//               [--window 256] [--con-every 16] [--format text|tlv] [--duration 10]
//               [--warmup 1] [--timeout-ms 200] [--http 127.0.0.1:PORT --token-file FILE]
//               [--http-clients 16] [--read-duration SECONDS] [--quickack 0|1]
//               [--server-pid PID] [--cpu N]
//
// coap mode, in four phases:
//   1. register: every device registers (POST /rd?ep=bench-N&lt=3600&b=U&lwm2m=1.1), device N
//      from source socket N % sockets, so that several devices share one address and port.
//   2. observe: --http-clients threads call the observe action on /3/0/9 of every device
//      (sync); the devices answer the server's GET (Observe=0) with 2.05, Observe and the value.
//   3. notify: the devices send notifications (2.05, the observation's token, Observe rising by
//      one per notification, RFC 7641 §3.4, a changing value) in groups of --con-every: the
//      last of a group is CON, the rest NON. The server's ACK of that CON says it has taken
//      the whole group off the socket (one shard reads one socket in order), which paces the
//      NON notifications without losing any to a full receive buffer: --window notifications
//      in flight at most. --con-every 1 makes every notification a CON round trip. The
//      server's own count (lwm2md_notifications_total on /metrics, scraped at the start and
//      the end of the measured window) is the rate; the ACKed groups are the client's check.
//   4. read: --http-clients threads call the read action on /3/0/9 (sync, keep-alive) of the
//      devices in turn while the devices answer the GETs.
// echo mode: phase 3 only, against udp_echo: the same datagrams in the same groups; the echo of
// the group's last datagram plays the ACK, and every echoed datagram counts.
//
// --server-pid: the CPU the server process used during the measured window is reported
// (server_cpu, in cores; client_cpu likewise for this process): on a machine where other work
// competes for the server's core, a server below one core while the client still has
// notifications to send was not given its CPU, and the rates are not comparable.
//
// Last line, coap mode: notify_rps=… client_rps=… api_read_rps=…
//            echo mode: echo_rps=… sent=… received=…

#include <errno.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "coap/message.h"
#include "http_client.h"
#include "udp_common.h"

namespace lwm2md::bench {
namespace {

enum class Mode { kCoap, kEcho };
enum class Format { kText, kTlv };

struct Options {
  SocketAddress target;
  Mode mode = Mode::kCoap;
  int devices = 1024;
  int sockets = 16;
  int window = 256;
  int con_every = 16;
  Format format = Format::kText;
  double duration_s = 10;
  double warmup_s = 1;
  int timeout_ms = 200;
  std::optional<SocketAddress> http;
  std::string token_file;
  int http_clients = 16;
  bool quick_ack = false;       // HttpClient::set_quick_ack for the read phase
  int server_pid = 0;           // the server's process, whose CPU time is reported; 0: none
  double read_duration_s = -1;  // < 0: the same as duration_s
  int cpu = -1;
};

// Register: a lost request or answer is sent again after this long, at most kRegisterAttempts
// times; the whole phase ends after kRegisterPhaseNs whatever happened.
constexpr int64_t kRegisterTimeoutNs = 2'000'000'000;
constexpr int kRegisterAttempts = 5;
constexpr int64_t kRegisterPhaseNs = 60'000'000'000;
constexpr int kRegistersInFlight = 256;
// Observe: every sync call ends within the server's action timeout; this bounds the phase if
// the server stops answering.
constexpr int64_t kObservePhaseNs = 180'000'000'000;
// One HTTP request's bound (connect, send, receive): longer than a sync call to a device that
// answers at once can take on a loaded server.
constexpr int kHttpTimeoutMs = 30'000;
// The resource every device offers and the server observes: Device, Battery Level (0-100 %).
constexpr std::string_view kResourcePath = "3/0/9";
// RFC 7641 §3.4: the Observe value is 24 bits and wraps.
constexpr uint32_t kObserveMask = 0xFFFFFF;
// Read latencies kept per HTTP thread (a bound on memory); reads beyond it still count.
constexpr size_t kMaxLatencySamples = 1 << 20;

// Latencies at 1 µs resolution up to a bound (slower ones land in the last bucket).
class LatencyHistogram {
 public:
  explicit LatencyHistogram(int64_t max_us) : counts_(max_us + 1, 0) {}
  void Record(int64_t ns) {
    counts_[std::clamp<int64_t>(ns / 1000, 0, counts_.size() - 1)]++;
    ++total_;
  }
  int64_t Percentile(double q) const {
    if (total_ == 0) return 0;
    const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(q * total_));
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

// One device's observation of /3/0/9, as the device keeps it.
struct Observation {
  std::array<uint8_t, 8> token{};
  uint8_t token_length = 0;
  uint32_t observe = 0;  // the last Observe value sent
};

// A group of notifications: con_every datagrams, the last one a CON (the probe).
struct Group {
  int64_t sent_ns = 0;
  uint16_t probe_mid = 0;
  bool in_flight = false;
  bool measured = false;  // sent while measuring
};

struct Registration {
  enum class State : uint8_t { kIdle, kSent, kAcked, kDone, kFailed };
  State state = State::kIdle;
  int attempts = 0;
  uint16_t mid = 0;
  int64_t sent_ns = 0;
};

struct NotifyCounters {
  uint64_t sent = 0;                // measured notifications sent
  uint64_t received = 0;            // measured notifications whose group was answered
  uint64_t answered_in_window = 0;  // notifications answered while measuring: the rate
  uint64_t lost_groups = 0;         // measured groups without an answer in time
  uint64_t resets = 0;
  uint64_t unmatched = 0;
  uint64_t malformed = 0;
  uint64_t send_failures = 0;
  uint64_t requests_answered = 0;  // GETs from the server the devices answered
};

// A value of /metrics scraped at some instant between two clock readings.
struct Scrape {
  bool ok = false;
  int64_t at_ns = 0;  // the midpoint of the request
  double notifications = 0;
  double notification_errors = 0;
  std::string error;
};

// Sums every sample of a family in Prometheus text format ("name{labels} value" lines).
double SumFamily(std::string_view text, std::string_view name) {
  double sum = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() <= name.size() || line.substr(0, name.size()) != name) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    std::string_view number = line.substr(space + 1);
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec == std::errc()) sum += value;
  }
  return sum;
}

// CPU seconds (user + system) process pid has used, all threads; nullopt when unreadable.
std::optional<double> ProcessCpuSeconds(int pid) {
  return StatCpuSeconds("/proc/" + std::to_string(pid) + "/stat");
}

// The CPU two processes (the server's, ours) used over a window, in cores.
class CpuMeter {
 public:
  explicit CpuMeter(int server_pid) : server_pid_(server_pid) {}
  void Start() {
    start_ns_ = NowNs();
    server_start_ = server_pid_ > 0 ? ProcessCpuSeconds(server_pid_) : std::nullopt;
    self_start_ = SelfCpuSeconds();
  }
  void Stop() {
    const double wall = static_cast<double>(NowNs() - start_ns_) / 1e9;
    if (wall <= 0) return;
    self_cores_ = (SelfCpuSeconds() - self_start_) / wall;
    std::optional<double> server_end =
        server_pid_ > 0 ? ProcessCpuSeconds(server_pid_) : std::nullopt;
    if (server_start_ && server_end) server_cores_ = (*server_end - *server_start_) / wall;
  }
  // " server_cpu=0.99 client_cpu=0.80", the first only with a server pid.
  std::string Text() const {
    char text[64];
    if (server_cores_) {
      std::snprintf(text, sizeof(text), " server_cpu=%.2f client_cpu=%.2f", *server_cores_,
                    self_cores_);
    } else {
      std::snprintf(text, sizeof(text), " client_cpu=%.2f", self_cores_);
    }
    return text;
  }

 private:
  const int server_pid_;
  int64_t start_ns_ = 0;
  std::optional<double> server_start_;
  double self_start_ = 0;
  std::optional<double> server_cores_;
  double self_cores_ = 0;
};

class NotifyClient {
 public:
  explicit NotifyClient(const Options& options)
      : options_(options),
        groups_(std::max(1, options.window / options.con_every)),
        latency_(options.timeout_ms * 1000),
        notify_cpu_(options.server_pid) {}

  ~NotifyClient() {
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  bool Init() {
    if (options_.mode == Mode::kCoap) {
      std::ifstream file(options_.token_file);
      std::string token;
      if (!(file >> token) || token.empty()) {
        std::fprintf(stderr, "cannot read an API token from '%s'\n", options_.token_file.c_str());
        return false;
      }
      authorization_ = "Bearer " + token;
    }
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
      if (absl::Status status = (*socket)->Connect(options_.target); !status.ok()) {
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
      SocketState state;
      state.socket = std::move(*socket);
      // Random first message ids (RFC 7252 §4.4): a rerun from a reused port must not look
      // like duplicates to the server's deduplication.
      state.next_message_id = static_cast<uint16_t>(random());
      state.group_by_mid.assign(1 << 16, -1);
      sockets_.push_back(std::move(state));
    }
    events_.resize(options_.sockets);
    BuildEchoTemplate();
    return true;
  }

  size_t notification_size() const { return echo_size_; }

  // Phase 1. Returns the number of devices registered.
  int Register() {
    phase_ = Phase::kRegister;
    registrations_.assign(options_.devices, Registration{});
    const int64_t start = NowNs();
    int next = 0;  // the next device never sent
    int in_flight = 0;
    int finished = 0;
    int64_t now = start;
    while (finished < options_.devices && now - start < kRegisterPhaseNs) {
      // New registrations up to the window, then retransmissions of the overdue ones.
      while (next < options_.devices && in_flight < kRegistersInFlight) {
        SendRegister(next++);
        ++in_flight;
      }
      for (int d = 0; d < next; ++d) {
        Registration& r = registrations_[d];
        if ((r.state != Registration::State::kSent && r.state != Registration::State::kAcked) ||
            now - r.sent_ns < kRegisterTimeoutNs) {
          continue;
        }
        if (r.attempts >= kRegisterAttempts) {
          r.state = Registration::State::kFailed;
          --in_flight;
          ++finished;
          continue;
        }
        SendRegister(d);
      }
      FlushAll();
      Poll(10);
      now = NowNs();
      finished = 0;
      in_flight = 0;
      for (int d = 0; d < next; ++d) {
        const Registration::State state = registrations_[d].state;
        if (state == Registration::State::kDone || state == Registration::State::kFailed) {
          ++finished;
        } else {
          ++in_flight;
        }
      }
    }
    int registered = 0;
    for (const Registration& r : registrations_)
      registered += r.state == Registration::State::kDone;
    std::printf("register: registered=%d failed=%d seconds=%.2f\n", registered,
                options_.devices - registered, static_cast<double>(NowNs() - start) / 1e9);
    std::fflush(stdout);
    return registered;
  }

  // Phase 2. Returns the number of observations the devices hold.
  size_t Observe() {
    phase_ = Phase::kObserve;
    const int64_t start = NowNs();
    std::vector<int> devices = RegisteredDevices();
    std::atomic<int> done_threads = 0;
    std::atomic<int> ok = 0;
    std::atomic<int> failed = 0;
    std::atomic<bool> stop = false;
    std::vector<std::thread> threads;
    const int clients = std::min<int>(options_.http_clients, std::max<size_t>(devices.size(), 1));
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        HttpClient http(*options_.http, authorization_, kHttpTimeoutMs);
        // Set-up, not measured: no reason to wait for delayed ACKs.
        http.set_quick_ack(true);
        for (size_t i = t; i < devices.size() && !stop.load(); i += clients) {
          absl::StatusOr<HttpResponse> response =
              http.Request("POST", ActionPath(devices[i], "observe"), kActionBody);
          if (response.ok() && response->status == 200 &&
              response->body.find("\"tokens\"") != std::string::npos) {
            ok.fetch_add(1);
          } else if (failed.fetch_add(1) == 0) {
            std::fprintf(stderr, "observe bench-%d: %s\n", devices[i],
                         response.ok()
                             ? (std::to_string(response->status) + " " + response->body).c_str()
                             : response.status().ToString().c_str());
          }
        }
        done_threads.fetch_add(1);
      });
    }
    // The devices answer the server's GETs until every call has returned.
    while (done_threads.load() < clients) {
      if (NowNs() - start > kObservePhaseNs) stop.store(true);
      Poll(5);
    }
    for (std::thread& thread : threads) thread.join();
    std::printf("observe: observed=%d failed=%d device_observations=%zu seconds=%.2f\n", ok.load(),
                failed.load(), observations_.size(), static_cast<double>(NowNs() - start) / 1e9);
    std::fflush(stdout);
    return observations_.size();
  }

  // Phase 3 (both modes).
  void Notify() {
    phase_ = Phase::kNotify;
    for (SocketState& state : sockets_) {
      // The register phase left device numbers here.
      std::fill(state.group_by_mid.begin(), state.group_by_mid.end(), -1);
    }
    for (size_t s = 0; s < sockets_.size(); ++s) {
      if (options_.mode == Mode::kEcho || !sockets_[s].observations.empty()) {
        active_sockets_.push_back(static_cast<int>(s));
      }
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      sockets_[GroupSocket(g)].ready.push_back(static_cast<int>(g));
    }
    // A marker for tools that watch the output (the driver starts a profiler here).
    std::printf("phase notify\n");
    std::fflush(stdout);

    const int64_t start = NowNs();
    const int64_t measure_start = start + static_cast<int64_t>(options_.warmup_s * 1e9);
    const int64_t measure_end = measure_start + static_cast<int64_t>(options_.duration_s * 1e9);
    const int64_t timeout_ns = static_cast<int64_t>(options_.timeout_ms) * 1'000'000;
    const int64_t sweep_interval = std::max<int64_t>(timeout_ns / 4, 1'000'000);
    int64_t next_sweep = start + sweep_interval;
    const bool scrape = options_.mode == Mode::kCoap;
    std::thread scrape_start, scrape_end;
    bool cpu_started = false, cpu_stopped = false;

    int64_t now = start;
    for (;;) {
      measuring_ = now >= measure_start && now < measure_end;
      if (now >= measure_start && !cpu_started) {
        cpu_started = true;
        notify_cpu_.Start();
        if (scrape) scrape_start = std::thread([this] { start_scrape_ = ScrapeMetrics(); });
      }
      const bool sending = now < measure_end;
      if (!sending && !cpu_stopped) {
        cpu_stopped = true;
        notify_cpu_.Stop();
      }
      if (!sending) {
        if (scrape && !scrape_end.joinable()) {
          scrape_end = std::thread([this] { end_scrape_ = ScrapeMetrics(); });
        }
        if (measured_in_flight_ == 0 || now >= measure_end + timeout_ns) break;
      }
      if (sending) SendGroups();
      const int64_t wake = sending ? std::min(next_sweep, measuring_ ? measure_end : measure_start)
                                   : std::min(next_sweep, measure_end + timeout_ns);
      Poll(static_cast<int>(std::clamp<int64_t>((wake - now + 999'999) / 1'000'000, 0, 1000)));
      now = NowNs();
      if (now >= next_sweep) {
        Sweep(now, timeout_ns);
        next_sweep = now + sweep_interval;
      }
    }
    measuring_ = false;
    for (const Group& group : groups_) {
      if (group.in_flight && group.measured) ++counters_.lost_groups;
    }
    if (scrape_start.joinable()) scrape_start.join();
    if (scrape_end.joinable()) scrape_end.join();
    measured_seconds_ = static_cast<double>(measure_end - measure_start) / 1e9;
  }

  // Phase 4. Returns the rate of successful reads.
  double Read(double duration_s) {
    phase_ = Phase::kRead;
    std::vector<int> devices = RegisteredDevices();
    const int clients = std::min<int>(options_.http_clients, std::max<size_t>(devices.size(), 1));
    const int64_t start = NowNs();
    const int64_t measure_start = start + static_cast<int64_t>(options_.warmup_s * 1e9);
    const int64_t measure_end = measure_start + static_cast<int64_t>(duration_s * 1e9);
    struct PerThread {
      uint64_t ok_in_window = 0;
      uint64_t failed = 0;
      uint64_t connects = 0;
      std::vector<uint32_t> latencies_us;
    };
    std::vector<PerThread> results(clients);
    std::atomic<int> done_threads = 0;
    std::atomic<bool> stop = false;
    std::atomic<bool> reported = false;
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        PerThread& mine = results[t];
        mine.latencies_us.reserve(4096);
        HttpClient http(*options_.http, authorization_, kHttpTimeoutMs);
        http.set_quick_ack(options_.quick_ack);
        // Each thread reads its own devices in turn, so no two calls wait on one device.
        for (size_t i = t; !stop.load(); i += clients) {
          if (i >= devices.size()) i = t;
          const int64_t sent = NowNs();
          absl::StatusOr<HttpResponse> response =
              http.Request("POST", ActionPath(devices[i], "read"), kActionBody);
          const int64_t done = NowNs();
          const bool good = response.ok() && response->status == 200 &&
                            response->body.find("\"source\":\"read\"") != std::string::npos;
          if (!good) {
            ++mine.failed;
            if (!reported.exchange(true)) {
              std::fprintf(stderr, "read bench-%d: %s\n", devices[i],
                           response.ok()
                               ? (std::to_string(response->status) + " " + response->body).c_str()
                               : response.status().ToString().c_str());
            }
            continue;
          }
          if (sent >= measure_start && done < measure_end) {
            ++mine.ok_in_window;
            if (mine.latencies_us.size() < kMaxLatencySamples) {
              mine.latencies_us.push_back(static_cast<uint32_t>((done - sent) / 1000));
            }
          }
        }
        mine.connects = http.connects();
        done_threads.fetch_add(1);
      });
    }
    // The devices answer until every thread has finished its last call; after the window a
    // call still waiting on the server ends within kHttpTimeoutMs.
    const int64_t give_up = measure_end + static_cast<int64_t>(kHttpTimeoutMs) * 1'000'000 * 2;
    CpuMeter cpu(options_.server_pid);
    bool cpu_started = false;
    while (done_threads.load() < clients && NowNs() < give_up) {
      const int64_t now = NowNs();
      if (now >= measure_start && !cpu_started) {
        cpu_started = true;
        cpu.Start();
      }
      if (now >= measure_end && !stop.load()) {
        stop.store(true);
        cpu.Stop();
      }
      Poll(5);
    }
    stop.store(true);
    for (std::thread& thread : threads) thread.join();

    uint64_t ok = 0, failed = 0, connects = 0;
    std::vector<uint32_t> latencies;
    for (const PerThread& r : results) {
      ok += r.ok_in_window;
      failed += r.failed;
      connects += r.connects;
      latencies.insert(latencies.end(), r.latencies_us.begin(), r.latencies_us.end());
    }
    std::sort(latencies.begin(), latencies.end());
    auto percentile = [&](double q) -> uint32_t {
      if (latencies.empty()) return 0;
      return latencies[std::min(latencies.size() - 1, static_cast<size_t>(q * latencies.size()))];
    };
    // Sync reads complete only within the window; a read straddling its edge is not counted,
    // which biases the rate down by at most clients / duration.
    const double rps = duration_s > 0 ? static_cast<double>(ok) / duration_s : 0;
    std::printf("read: rps=%.0f p50_us=%u p99_us=%u ok=%" PRIu64 " failed=%" PRIu64
                " clients=%d connects=%" PRIu64 " device_gets=%" PRIu64 "%s\n",
                rps, percentile(0.50), percentile(0.99), ok, failed, clients, connects,
                counters_.requests_answered, cpu.Text().c_str());
    std::fflush(stdout);
    return rps;
  }

  // Reports phase 3; returns the rate: the server's count in coap mode, echoes in echo mode.
  double ReportNotify() const {
    const NotifyCounters& c = counters_;
    const double client_rps =
        measured_seconds_ > 0 ? static_cast<double>(c.answered_in_window) / measured_seconds_ : 0;
    std::printf("detail: lost_groups=%" PRIu64 " resets=%" PRIu64 " unmatched=%" PRIu64
                " malformed=%" PRIu64 " send_failures=%" PRIu64 "\n",
                c.lost_groups, c.resets, c.unmatched, c.malformed, c.send_failures);
    if (options_.mode == Mode::kEcho) {
      std::printf("echo: rps=%.0f p50_us=%" PRId64 " p99_us=%" PRId64 " sent=%" PRIu64
                  " received=%" PRIu64 "%s\n",
                  client_rps, latency_.Percentile(0.5), latency_.Percentile(0.99), c.sent,
                  c.received, notify_cpu_.Text().c_str());
      std::fflush(stdout);
      return client_rps;
    }
    double server_rps = 0;
    if (start_scrape_.ok && end_scrape_.ok && end_scrape_.at_ns > start_scrape_.at_ns) {
      server_rps = (end_scrape_.notifications - start_scrape_.notifications) /
                   (static_cast<double>(end_scrape_.at_ns - start_scrape_.at_ns) / 1e9);
    } else {
      std::fprintf(stderr, "scraping /metrics failed: %s%s\n", start_scrape_.error.c_str(),
                   end_scrape_.error.c_str());
    }
    std::printf("notify: server_rps=%.0f client_rps=%.0f p50_us=%" PRId64 " p99_us=%" PRId64
                " sent=%" PRIu64 " received=%" PRIu64 " server_errors=%.0f%s\n",
                server_rps, client_rps, latency_.Percentile(0.5), latency_.Percentile(0.99), c.sent,
                c.received, end_scrape_.notification_errors - start_scrape_.notification_errors,
                notify_cpu_.Text().c_str());
    std::fflush(stdout);
    return server_rps;
  }

  double ClientRps() const {
    return measured_seconds_ > 0
               ? static_cast<double>(counters_.answered_in_window) / measured_seconds_
               : 0;
  }
  const NotifyCounters& counters() const { return counters_; }

 private:
  enum class Phase { kRegister, kObserve, kNotify, kRead };

  struct SocketState {
    std::unique_ptr<BatchSocket> socket;
    uint16_t next_message_id = 0;
    std::vector<uint32_t> observations;  // indices into observations_, in the order made
    size_t next_observation = 0;         // round robin over observations
    // token → index into observations_, for the server's GETs (a retransmitted Observe GET
    // must find the observation it made).
    std::unordered_map<uint64_t, uint32_t> by_token;
    // mid → the group whose probe carries it (notify) or the device (register), else -1.
    std::vector<int32_t> group_by_mid;
    std::vector<int> ready;  // groups waiting to be sent
  };

  static constexpr std::string_view kActionBody =
      R"({"paths":["3/0/9"],"options":{"async":false}})";

  static std::string ActionPath(int device, std::string_view action) {
    return "/api/v1/endpoints/bench-" + std::to_string(device) + "/actions/" + std::string(action);
  }

  std::vector<int> RegisteredDevices() const {
    std::vector<int> devices;
    for (int d = 0; d < static_cast<int>(registrations_.size()); ++d) {
      if (registrations_[d].state == Registration::State::kDone) devices.push_back(d);
    }
    return devices;
  }

  int GroupSocket(size_t group) const { return active_sockets_[group % active_sockets_.size()]; }

  static uint64_t TokenKey(std::span<const uint8_t> token) {
    uint64_t key = token.size();
    for (uint8_t byte : token) key = key << 8 | byte;
    return key;
  }

  // The value a device reports: a battery level that changes with every notification.
  size_t WriteValue(uint32_t observe, uint8_t* out) const {
    const uint8_t level = static_cast<uint8_t>(observe % 101);
    if (options_.format == Format::kTlv) {
      // OMA TS Core §7.4.3: type byte 11 0 00 001 (resource with value, 8-bit id, 1-byte
      // length), id 9, the integer in one byte (two's complement; 0-100 fits).
      out[0] = 0xC1;
      out[1] = 9;
      out[2] = level;
      return 3;
    }
    auto [end, ec] = std::to_chars(reinterpret_cast<char*>(out), reinterpret_cast<char*>(out) + 3,
                                   static_cast<unsigned>(level));
    (void)ec;  // three digits always fit
    return static_cast<size_t>(end - reinterpret_cast<char*>(out));
  }

  uint16_t ContentFormat() const {
    return options_.format == Format::kTlv ? coap::content_format::kLwm2mTlv
                                           : coap::content_format::kTextPlain;
  }

  // Writes a notification (or, with a request's type and mid, the answer to a GET) into out.
  size_t WriteContent(std::span<uint8_t> out, coap::Type type, uint16_t mid,
                      std::span<const uint8_t> token, std::optional<uint32_t> observe) const {
    uint8_t value[4];
    const size_t value_size = WriteValue(observe.value_or(next_value_), value);
    coap::MessageBuilder builder(out);
    builder.Header(type, coap::code::kContent, mid, token);
    if (observe) builder.UintOption(coap::option::kObserve, *observe);
    builder.UintOption(coap::option::kContentFormat, ContentFormat())
        .Payload(std::span<const uint8_t>(value, value_size));
    return builder.Finish().size();
  }

  // The echo datagram: a notification of the usual size (8-byte token, 3-byte Observe), whose
  // first byte tells the probe (CON) from the rest.
  void BuildEchoTemplate() {
    const uint8_t token[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    echo_size_ = WriteContent(echo_template_, coap::Type::kNonConfirmable, 0, token, 0x10000);
  }

  std::span<uint8_t> SendBuffer(int s) {
    std::span<uint8_t> out = sockets_[s].socket->NextSendBuffer();
    if (out.empty()) {
      FlushSends(s);
      out = sockets_[s].socket->NextSendBuffer();
    }
    return out;
  }

  void FlushSends(int s) {
    BatchSocket& socket = *sockets_[s].socket;
    const int staged = socket.staged();
    if (staged == 0) return;
    // What the kernel refused is not retried: a lost notification shows as a group without
    // answer, a lost answer to a GET is retransmitted by the server.
    if (socket.Flush() < staged) ++counters_.send_failures;
  }

  void FlushAll() {
    for (size_t s = 0; s < sockets_.size(); ++s) FlushSends(static_cast<int>(s));
  }

  void SendRegister(int device) {
    static constexpr std::string_view kLinks = "</1/0>,</3/0>";
    Registration& r = registrations_[device];
    const int s = device % options_.sockets;
    SocketState& state = sockets_[s];
    const uint8_t token[4] = {static_cast<uint8_t>(device >> 24),
                              static_cast<uint8_t>(device >> 16), static_cast<uint8_t>(device >> 8),
                              static_cast<uint8_t>(device)};
    const std::string ep = "ep=bench-" + std::to_string(device);
    r.mid = state.next_message_id++;
    std::span<uint8_t> out = SendBuffer(s);
    coap::MessageBuilder builder(out);
    builder.Header(coap::Type::kConfirmable, coap::code::kPost, r.mid, token)
        .UriPath("rd")
        .UintOption(coap::option::kContentFormat, coap::content_format::kLinkFormat)
        .Option(coap::option::kUriQuery, std::string_view(ep))
        .Option(coap::option::kUriQuery, std::string_view("lt=3600"))
        .Option(coap::option::kUriQuery, std::string_view("b=U"))
        .Option(coap::option::kUriQuery, std::string_view("lwm2m=1.1"))
        .Payload(kLinks);
    state.socket->CommitSend(builder.Finish().size(), nullptr);
    state.group_by_mid[r.mid] = device;
    r.state = Registration::State::kSent;
    r.sent_ns = NowNs();
    ++r.attempts;
  }

  void SendGroups() {
    for (int s : active_sockets_) {
      SocketState& state = sockets_[s];
      while (!state.ready.empty()) {
        const int g = state.ready.back();
        state.ready.pop_back();
        Group& group = groups_[g];
        for (int k = 0; k < options_.con_every; ++k) {
          const bool probe = k == options_.con_every - 1;
          const uint16_t mid = state.next_message_id++;
          std::span<uint8_t> out = SendBuffer(s);
          size_t size;
          if (options_.mode == Mode::kEcho) {
            std::memcpy(out.data(), echo_template_.data(), echo_size_);
            // Type bits (RFC 7252 §3): CON for the probe, NON otherwise; then the mid.
            out[0] = static_cast<uint8_t>((out[0] & 0xCF) | (probe ? 0x00 : 0x10));
            out[2] = static_cast<uint8_t>(mid >> 8);
            out[3] = static_cast<uint8_t>(mid);
            size = echo_size_;
          } else {
            Observation& o = observations_[state.observations[state.next_observation++ %
                                                              state.observations.size()]];
            o.observe = (o.observe + 1) & kObserveMask;
            size = WriteContent(out, probe ? coap::Type::kConfirmable : coap::Type::kNonConfirmable,
                                mid, std::span<const uint8_t>(o.token.data(), o.token_length),
                                o.observe);
          }
          state.socket->CommitSend(size, nullptr);
          if (probe) {
            group.probe_mid = mid;
            state.group_by_mid[mid] = g;
          }
        }
        group.in_flight = true;
        group.sent_ns = NowNs();
        group.measured = measuring_;
        if (measuring_) {
          counters_.sent += options_.con_every;
          ++measured_in_flight_;
        }
      }
      FlushSends(s);
    }
  }

  void Sweep(int64_t now, int64_t timeout_ns) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& group = groups_[g];
      if (!group.in_flight || now - group.sent_ns < timeout_ns) continue;
      if (group.measured) ++counters_.lost_groups;
      RetireGroup(static_cast<int>(g));
    }
  }

  void RetireGroup(int g) {
    Group& group = groups_[g];
    group.in_flight = false;
    if (group.measured) --measured_in_flight_;
    sockets_[GroupSocket(g)].ready.push_back(g);
  }

  // count_group: the group's notifications count towards the rate now (coap mode: the ACK
  // stands for them all); echo mode counts each echo as it arrives instead.
  void OnProbeAnswer(int s, uint16_t mid, int64_t now, bool good, bool count_group) {
    const int32_t g = sockets_[s].group_by_mid[mid];
    if (g < 0 || static_cast<size_t>(g) >= groups_.size() || !groups_[g].in_flight ||
        groups_[g].probe_mid != mid) {
      ++counters_.unmatched;
      return;
    }
    Group& group = groups_[g];
    RetireGroup(g);
    if (!good) return;
    if (measuring_ && count_group) counters_.answered_in_window += options_.con_every;
    if (group.measured) {
      counters_.received += options_.con_every;
      latency_.Record(now - group.sent_ns);
    }
  }

  void Poll(int wait_ms) {
    const int ready =
        epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), wait_ms);
    if (ready < 0) {
      if (errno != EINTR) std::perror("epoll_wait");
      return;
    }
    for (int e = 0; e < ready; ++e) ReceiveAll(static_cast<int>(events_[e].data.u32));
  }

  void ReceiveAll(int s) {
    BatchSocket& socket = *sockets_[s].socket;
    // Bounded so that one busy socket cannot starve the others or the phase's clock.
    for (int round = 0; round < 16; ++round) {
      const int n = socket.Receive();
      if (n <= 0) break;
      const int64_t now = NowNs();
      for (int i = 0; i < n; ++i) OnDatagram(s, socket.received(i), now);
      if (n < kBatch) break;
    }
    FlushSends(s);
  }

  void OnDatagram(int s, std::span<const uint8_t> bytes, int64_t now) {
    if (options_.mode == Mode::kEcho) {
      if (bytes.size() != echo_size_) {
        ++counters_.malformed;
        return;
      }
      // Every echo counts towards the rate; the echo of the probe also frees its group.
      if (measuring_) ++counters_.answered_in_window;
      if (((bytes[0] >> 4) & 3) == static_cast<int>(coap::Type::kConfirmable)) {
        const uint16_t mid = static_cast<uint16_t>(bytes[2] << 8 | bytes[3]);
        OnProbeAnswer(s, mid, now, /*good=*/true, /*count_group=*/false);
      }
      return;
    }
    coap::MessageView message;
    if (coap::MessageView::Parse(bytes, &message) != coap::ParseError::kOk) {
      ++counters_.malformed;
      return;
    }
    if (message.IsRequest()) {
      AnswerRequest(s, message);
      return;
    }
    switch (message.type()) {
      case coap::Type::kReset:
        ++counters_.resets;
        if (phase_ == Phase::kNotify) OnProbeAnswer(s, message.message_id(), now, false, false);
        return;
      case coap::Type::kAcknowledgement:
        if (phase_ == Phase::kNotify) {
          if (message.IsEmpty()) OnProbeAnswer(s, message.message_id(), now, true, true);
          return;
        }
        if (phase_ == Phase::kRegister) OnRegisterAnswer(s, message);
        return;
      case coap::Type::kConfirmable:
      case coap::Type::kNonConfirmable:
        // A separate response (RFC 7252 §5.2.2) to a Register: a CON one is acknowledged.
        if (message.type() == coap::Type::kConfirmable) {
          std::span<uint8_t> out = SendBuffer(s);
          std::span<const uint8_t> ack =
              coap::BuildEmpty(coap::Type::kAcknowledgement, message.message_id(), out);
          sockets_[s].socket->CommitSend(ack.size(), nullptr);
        }
        if (phase_ == Phase::kRegister) OnRegisterAnswer(s, message);
        return;
    }
  }

  void OnRegisterAnswer(int s, const coap::MessageView& message) {
    int device = -1;
    if (message.IsEmpty()) {
      // An empty ACK: the answer comes later as a separate response.
      device = sockets_[s].group_by_mid[message.message_id()];
      if (device >= 0 && registrations_[device].mid == message.message_id() &&
          registrations_[device].state == Registration::State::kSent) {
        registrations_[device].state = Registration::State::kAcked;
      }
      return;
    }
    std::span<const uint8_t> token = message.token();
    if (token.size() != 4) return;
    device = static_cast<int>(static_cast<uint32_t>(token[0]) << 24 | token[1] << 16 |
                              token[2] << 8 | token[3]);
    if (device < 0 || device >= options_.devices || device % options_.sockets != s) return;
    Registration& r = registrations_[device];
    if (r.state != Registration::State::kSent && r.state != Registration::State::kAcked) return;
    if (message.code() == coap::code::kCreated) {
      r.state = Registration::State::kDone;
    } else {
      if (r.state != Registration::State::kFailed) {
        std::fprintf(stderr, "register bench-%d: answered %d.%02d\n", device,
                     coap::CodeClass(message.code()), coap::CodeDetail(message.code()));
      }
      r.state = Registration::State::kFailed;
    }
  }

  // The devices' side of the server's requests: GET /3/0/9, with Observe=0 to observe.
  void AnswerRequest(int s, const coap::MessageView& request) {
    SocketState& state = sockets_[s];
    char path[16];
    size_t path_size = 0;
    bool too_long = false;
    request.ForEachUriPath([&](std::string_view segment) {
      const size_t need = segment.size() + (path_size > 0 ? 1 : 0);
      if (path_size + need > sizeof(path)) {
        too_long = true;
        return;
      }
      if (path_size > 0) path[path_size++] = '/';
      std::memcpy(path + path_size, segment.data(), segment.size());
      path_size += segment.size();
    });
    const bool con = request.type() == coap::Type::kConfirmable;
    const coap::Type type = con ? coap::Type::kAcknowledgement : coap::Type::kNonConfirmable;
    const uint16_t mid = con ? request.message_id() : state.next_message_id++;
    std::span<uint8_t> out = SendBuffer(s);
    ++counters_.requests_answered;
    if (request.code() != coap::code::kGet || too_long ||
        std::string_view(path, path_size) != kResourcePath) {
      coap::MessageBuilder builder(out);
      builder.Header(type,
                     request.code() == coap::code::kGet ? coap::code::kNotFound
                                                        : coap::code::kMethodNotAllowed,
                     mid, request.token());
      state.socket->CommitSend(builder.Finish().size(), nullptr);
      return;
    }
    std::optional<uint32_t> observe;
    if (request.observe() == 0u && request.token().size() <= 8) {
      // RFC 7641 §3.1: Observe=0 registers the server; the answer carries Observe too.
      const uint64_t key = TokenKey(request.token());
      auto [it, inserted] = state.by_token.try_emplace(key, observations_.size());
      if (inserted) {
        Observation o;
        std::memcpy(o.token.data(), request.token().data(), request.token().size());
        o.token_length = static_cast<uint8_t>(request.token().size());
        o.observe = 1;
        observations_.push_back(o);
        state.observations.push_back(it->second);
      }
      observe = observations_[it->second].observe;
    }
    ++next_value_;
    state.socket->CommitSend(WriteContent(out, type, mid, request.token(), observe), nullptr);
  }

  Scrape ScrapeMetrics() {
    Scrape scrape;
    HttpClient http(*options_.http, authorization_, kHttpTimeoutMs);
    http.set_quick_ack(true);
    const int64_t before = NowNs();
    absl::StatusOr<HttpResponse> response = http.Request("GET", "/metrics");
    const int64_t after = NowNs();
    if (!response.ok() || response->status != 200) {
      scrape.error = response.ok() ? "/metrics answered " + std::to_string(response->status)
                                   : response.status().ToString();
      return scrape;
    }
    scrape.ok = true;
    scrape.at_ns = before + (after - before) / 2;
    scrape.notifications = SumFamily(response->body, "lwm2md_notifications_total");
    scrape.notification_errors = SumFamily(response->body, "lwm2md_notification_errors_total");
    return scrape;
  }

  const Options options_;
  std::string authorization_;
  Phase phase_ = Phase::kRegister;
  std::vector<SocketState> sockets_;
  std::vector<int> active_sockets_;
  std::vector<epoll_event> events_;
  int epoll_fd_ = -1;
  std::vector<Registration> registrations_;
  std::vector<Observation> observations_;
  std::vector<Group> groups_;
  uint32_t next_value_ = 0;
  std::array<uint8_t, kMaxDatagram> echo_template_{};
  size_t echo_size_ = 0;
  bool measuring_ = false;
  int64_t measured_in_flight_ = 0;
  double measured_seconds_ = 0;
  NotifyCounters counters_;
  LatencyHistogram latency_;
  Scrape start_scrape_;
  Scrape end_scrape_;
  CpuMeter notify_cpu_;
};

void Usage() {
  std::fprintf(stderr,
               "usage: notify_load --target 127.0.0.1:PORT [--mode coap|echo] [--devices 1024]\n"
               "                   [--sockets 16] [--window 256] [--con-every 16]\n"
               "                   [--format text|tlv] [--duration 10] [--warmup 1]\n"
               "                   [--timeout-ms 200] [--http 127.0.0.1:PORT --token-file FILE]\n"
               "                   [--http-clients 16] [--read-duration SECONDS]\n"
               "                   [--quickack 0|1] [--server-pid PID] [--cpu N]\n");
}

std::optional<SocketAddress> LoopbackAddress(std::string_view flag, const std::string& text) {
  std::optional<SocketAddress> address = SocketAddress::Parse(text);
  if (!address.has_value() || address->port() == 0) {
    std::fprintf(stderr, "--%.*s: want 127.0.0.1:PORT or [::1]:PORT, got '%s'\n",
                 static_cast<int>(flag.size()), flag.data(), text.c_str());
    return std::nullopt;
  }
  // A load generator aimed elsewhere is a flood: only this host is a target.
  if (!address->IsLoopback()) {
    std::fprintf(stderr, "--%.*s %s is not a loopback address (127.0.0.0/8 or ::1)\n",
                 static_cast<int>(flag.size()), flag.data(), text.c_str());
    return std::nullopt;
  }
  return address;
}

bool ParseOptions(int argc, char** argv, Options* options) {
  Flags flags;
  if (!flags.Parse(argc, argv)) return false;
  std::string target, http, mode = "coap", format = "text";
  int64_t devices = options->devices, sockets = options->sockets, window = options->window;
  int64_t con_every = options->con_every, timeout_ms = options->timeout_ms;
  int64_t http_clients = options->http_clients, cpu = options->cpu, quick_ack = 0;
  int64_t server_pid = 0;
  // Bounds: a run stays finite (an hour at most), devices fit the 32-bit Register token,
  // the groups fit the mid table, the HTTP clients fit lwm2md's worker pool (32 by default).
  if (!flags.GetString("target", &target) || !flags.GetString("mode", &mode) ||
      !flags.GetInt("devices", 1, 1'000'000, &devices) ||
      !flags.GetInt("sockets", 1, 256, &sockets) || !flags.GetInt("window", 1, 65536, &window) ||
      !flags.GetInt("con-every", 1, 1024, &con_every) || !flags.GetString("format", &format) ||
      !flags.GetDouble("duration", 0.1, 3600, &options->duration_s) ||
      !flags.GetDouble("warmup", 0, 600, &options->warmup_s) ||
      !flags.GetInt("timeout-ms", 1, 2000, &timeout_ms) || !flags.GetString("http", &http) ||
      !flags.GetString("token-file", &options->token_file) ||
      !flags.GetInt("http-clients", 1, 256, &http_clients) ||
      !flags.GetInt("quickack", 0, 1, &quick_ack) ||
      !flags.GetInt("server-pid", 0, 1 << 22, &server_pid) ||
      !flags.GetDouble("read-duration", 0, 3600, &options->read_duration_s) ||
      !flags.GetInt("cpu", -1, 4095, &cpu) || !flags.CheckAllUsed()) {
    return false;
  }
  if (target.empty()) {
    std::fprintf(stderr, "--target is required\n");
    return false;
  }
  std::optional<SocketAddress> address = LoopbackAddress("target", target);
  if (!address) return false;
  options->target = *address;
  if (mode == "coap") {
    options->mode = Mode::kCoap;
  } else if (mode == "echo") {
    options->mode = Mode::kEcho;
  } else {
    std::fprintf(stderr, "--mode: want coap or echo, got '%s'\n", mode.c_str());
    return false;
  }
  if (format == "text") {
    options->format = Format::kText;
  } else if (format == "tlv") {
    options->format = Format::kTlv;
  } else {
    std::fprintf(stderr, "--format: want text or tlv, got '%s'\n", format.c_str());
    return false;
  }
  if (options->mode == Mode::kCoap) {
    if (http.empty() || options->token_file.empty()) {
      std::fprintf(stderr, "coap mode needs --http and --token-file (the REST API)\n");
      return false;
    }
    options->http = LoopbackAddress("http", http);
    if (!options->http) return false;
  }
  if (window < con_every) {
    std::fprintf(stderr, "--window %lld is smaller than --con-every %lld\n",
                 static_cast<long long>(window), static_cast<long long>(con_every));
    return false;
  }
  options->devices = static_cast<int>(devices);
  options->sockets = static_cast<int>(std::min(sockets, devices));
  options->window = static_cast<int>(window);
  options->con_every = static_cast<int>(con_every);
  options->timeout_ms = static_cast<int>(timeout_ms);
  options->http_clients = static_cast<int>(http_clients);
  options->quick_ack = quick_ack != 0;
  options->server_pid = static_cast<int>(server_pid);
  options->cpu = static_cast<int>(cpu);
  if (options->read_duration_s < 0) options->read_duration_s = options->duration_s;
  return true;
}

int Main(int argc, char** argv) {
  Options options;
  if (!ParseOptions(argc, argv, &options)) {
    Usage();
    return 2;
  }
  // Before any thread starts: the HTTP threads inherit the CPU.
  if (absl::Status status = PinToCpu(options.cpu); !status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  NotifyClient client(options);
  if (!client.Init()) return 1;
  std::printf(
      "notify_load: mode=%s target=%s devices=%d sockets=%d window=%d con_every=%d "
      "format=%s notification_bytes=%zu warmup=%gs duration=%gs\n",
      options.mode == Mode::kCoap ? "coap" : "echo", options.target.ToString().c_str(),
      options.devices, options.sockets, options.window, options.con_every,
      options.format == Format::kTlv ? "tlv" : "text", client.notification_size(), options.warmup_s,
      options.duration_s);
  std::fflush(stdout);

  if (options.mode == Mode::kEcho) {
    client.Notify();
    const double rps = client.ReportNotify();
    std::printf("echo_rps=%.0f sent=%" PRIu64 " received=%" PRIu64 "\n", rps,
                client.counters().sent, client.counters().received);
    return 0;
  }
  if (client.Register() == 0) {
    std::fprintf(stderr, "no device registered\n");
    return 1;
  }
  if (client.Observe() == 0) {
    std::fprintf(stderr, "no observation was established\n");
    return 1;
  }
  client.Notify();
  const double notify_rps = client.ReportNotify();
  const double read_rps = options.read_duration_s > 0 ? client.Read(options.read_duration_s) : 0;
  std::printf("notify_rps=%.0f client_rps=%.0f api_read_rps=%.0f\n", notify_rps, client.ClientRps(),
              read_rps);
  return 0;
}

}  // namespace
}  // namespace lwm2md::bench

int main(int argc, char** argv) { return lwm2md::bench::Main(argc, argv); }
