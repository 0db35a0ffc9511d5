// What a DTLS session costs the server with our mbedTLS build, in memory on one core:
// the PSK handshake LwM2M devices use most (TLS_PSK_WITH_AES_128_CCM_8, with the
// HelloVerifyRequest cookie and RFC 9146 Connection IDs), a small record each way, saving
// and loading a session, and the heap a live session holds. Next to two baselines in the
// same run: SHA-256 of 64 bytes (one compression; the handshake is mostly HMAC-SHA-256)
// and AES-CCM_8 of 40 bytes (what protecting one small record costs).
//
// Client and server run in one thread, so their CPU time splits by timing each side's
// calls: BM_PskHandshake reports the whole exchange and, as counters, each side's share;
// BM_PskHandshakeServer reports the server's share alone as its time (the server's
// context setup, cookie round, handshake and first record; not the client's).
// Heap is counted through mbedtls_platform_set_calloc_free, by owner.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dtls_pair.h"
#include "mbedtls/ccm.h"
#include "mbedtls/platform.h"
#include "mbedtls/sha256.h"
#include "mbedtls/ssl.h"

namespace lwm2md::dtls {
namespace {

using testing::ClientConfig;
using testing::DriveHandshake;
using testing::Endpoint;
using testing::HandshakeResult;
using testing::Link;
using testing::Random;
using testing::ServerConfig;
using testing::UseCid;

// ---- Heap accounting -------------------------------------------------------------------

enum Owner { kConfig, kServer, kClient, kOwners };

struct HeapCounters {
  std::array<int64_t, kOwners> live{};
  std::array<int64_t, kOwners> peak{};
  std::array<int64_t, kOwners> allocations{};
};
HeapCounters heap;
Owner current_owner = kConfig;

// Each block starts with its size and owner, so that free() knows what to give back.
struct alignas(16) BlockHeader {
  size_t size;
  Owner owner;
};

void* CountingCalloc(size_t n, size_t size) {
  if (size != 0 && n > (SIZE_MAX - sizeof(BlockHeader)) / size) return nullptr;
  size_t bytes = n * size;
  auto* h = static_cast<BlockHeader*>(std::calloc(1, sizeof(BlockHeader) + bytes));
  if (h == nullptr) return nullptr;
  h->size = bytes;
  h->owner = current_owner;
  heap.live[current_owner] += static_cast<int64_t>(bytes);
  heap.peak[current_owner] = std::max(heap.peak[current_owner], heap.live[current_owner]);
  ++heap.allocations[current_owner];
  return h + 1;
}

void CountingFree(void* p) {
  if (p == nullptr) return;
  auto* h = static_cast<BlockHeader*>(p) - 1;
  heap.live[h->owner] -= static_cast<int64_t>(h->size);
  std::free(h);
}

// Installed before any benchmark allocates through mbedTLS.
const bool kCountingInstalled = mbedtls_platform_set_calloc_free(CountingCalloc, CountingFree) == 0;

class OwnedBy {
 public:
  explicit OwnedBy(Owner o) : saved_(current_owner) { current_owner = o; }
  ~OwnedBy() { current_owner = saved_; }
  OwnedBy(const OwnedBy&) = delete;
  OwnedBy& operator=(const OwnedBy&) = delete;

 private:
  Owner saved_;
};

// ---- A PSK session ---------------------------------------------------------------------

using Clock = std::chrono::steady_clock;

constexpr char kIdentity[] = "urn:imei:351234567890123";
constexpr char kKey[] = "0123456789abcdef";  // 16 bytes, as LwM2M devices typically have.
constexpr int kSuites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
constexpr uint8_t kServerCid[8] = {0xc1, 0xd2, 0xe3, 0xf4, 0x05, 0x16, 0x27, 0x38};
constexpr uint8_t kClientCid[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
// A registration Update as a device sends it: 40 bytes of CoAP.
const std::string kRecord40(40, 'u');

// The per-shard part, made once: random generator, cookie key, configurations.
struct Shard {
  Random random;
  ServerConfig server_config{&random};
  ClientConfig client_config{&random, kSuites};
  std::unique_ptr<Link> link = std::make_unique<Link>();

  explicit Shard(unsigned char max_fragment_length = MBEDTLS_SSL_MAX_FRAG_LEN_NONE) {
    server_config.SetPsk(kIdentity, std::string_view(kKey, 16));
    client_config.SetPsk(kIdentity, std::string_view(kKey, 16));
    mbedtls_ssl_conf_max_frag_len(client_config.conf(), max_fragment_length);
  }
  bool ok() const {
    return kCountingInstalled && random.ok() && server_config.result() == 0 &&
           client_config.result() == 0;
  }
};

struct Timings {
  Clock::duration server{};
  Clock::duration client{};
};

// One new session: both contexts set up, the handshake with its cookie round, and the
// client's first record read by the server (which lets the server drop its handshake
// state). Returns false on any failure.
bool Establish(Shard& shard, std::optional<Endpoint>& client, std::optional<Endpoint>& server,
               Timings* t) {
  Link& link = *shard.link;
  link.to_server.Clear();
  link.to_client.Clear();
  auto as_server = [&](auto&& step) {
    OwnedBy owner(kServer);
    Clock::time_point start = Clock::now();
    step();
    t->server += Clock::now() - start;
  };
  auto as_client = [&](auto&& step) {
    OwnedBy owner(kClient);
    Clock::time_point start = Clock::now();
    step();
    t->client += Clock::now() - start;
  };
  bool ok = true;
  as_server([&] {
    server.emplace(shard.server_config.conf(), &link.to_server, &link.to_client, &link.clock);
    ok = server->setup_result() == 0 && UseCid(*server, kServerCid) == 0;
  });
  as_client([&] {
    client.emplace(shard.client_config.conf(), &link.to_client, &link.to_server, &link.clock);
    ok = ok && client->setup_result() == 0 && UseCid(*client, kClientCid) == 0;
  });
  if (!ok) return false;
  HandshakeResult r;
  {
    // The driver makes the client's calls itself; the server's go through as_server.
    OwnedBy owner(kClient);
    Clock::time_point start = Clock::now();
    Clock::duration server_before = t->server;
    r = DriveHandshake(*client, *server, link, as_server);
    t->client += (Clock::now() - start) - (t->server - server_before);
  }
  if (!r.ok() || r.hello_verify_requests != 1 || r.timeouts != 0) return false;
  as_client([&] { ok = client->Write(kRecord40) == 40; });
  std::string got;
  as_server([&] { ok = ok && server->Read(&got) == 40; });
  return ok;
}

// ---- Baselines -------------------------------------------------------------------------

void BM_Baseline_Sha256_64(benchmark::State& state) {
  std::array<unsigned char, 64> in{};
  std::array<unsigned char, 32> out;
  for (auto _ : state) {
    mbedtls_sha256(in.data(), in.size(), out.data(), 0);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * 64);
}
BENCHMARK(BM_Baseline_Sha256_64);

void BM_Baseline_AesCcm8_40(benchmark::State& state) {
  mbedtls_ccm_context ccm;
  mbedtls_ccm_init(&ccm);
  const unsigned char key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  if (mbedtls_ccm_setkey(&ccm, MBEDTLS_CIPHER_ID_AES, key, 128) != 0) {
    state.SkipWithError("ccm setkey");
    return;
  }
  // A DTLS 1.2 AEAD record: 12-byte nonce, 13 bytes of additional data.
  unsigned char nonce[12] = {}, ad[13] = {}, tag[8];
  std::array<unsigned char, 40> in{}, out;
  for (auto _ : state) {
    mbedtls_ccm_encrypt_and_tag(&ccm, in.size(), nonce, sizeof(nonce), ad, sizeof(ad), in.data(),
                                out.data(), tag, sizeof(tag));
    benchmark::DoNotOptimize(out);
    benchmark::DoNotOptimize(tag);
  }
  mbedtls_ccm_free(&ccm);
  state.SetBytesProcessed(state.iterations() * 40);
}
BENCHMARK(BM_Baseline_AesCcm8_40);

// ---- Handshakes ------------------------------------------------------------------------

void BM_PskHandshake(benchmark::State& state) {
  Shard shard;
  if (!shard.ok()) return state.SkipWithError("setup");
  Timings t;
  int64_t server_peak = 0;
  for (auto _ : state) {
    std::optional<Endpoint> client, server;
    heap.peak[kServer] = heap.live[kServer];
    if (!Establish(shard, client, server, &t)) return state.SkipWithError("handshake failed");
    server_peak = std::max(server_peak, heap.peak[kServer]);
  }
  auto us = [&](Clock::duration d) {
    return benchmark::Counter(std::chrono::duration<double, std::micro>(d).count(),
                              benchmark::Counter::kAvgIterations);
  };
  state.counters["server_us"] = us(t.server);
  state.counters["client_us"] = us(t.client);
  state.counters["server_heap_peak_B"] = static_cast<double>(server_peak);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PskHandshake)->Unit(benchmark::kMicrosecond);

void BM_PskHandshakeServer(benchmark::State& state) {
  Shard shard;
  if (!shard.ok()) return state.SkipWithError("setup");
  for (auto _ : state) {
    std::optional<Endpoint> client, server;
    Timings t;
    if (!Establish(shard, client, server, &t)) return state.SkipWithError("handshake failed");
    state.SetIterationTime(std::chrono::duration<double>(t.server).count());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PskHandshakeServer)->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- An established session ------------------------------------------------------------

// 40 bytes from the client to the server and 40 back, both sides' work.
void BM_RecordRoundTrip40(benchmark::State& state) {
  Shard shard;
  std::optional<Endpoint> client, server;
  Timings t;
  if (!shard.ok() || !Establish(shard, client, server, &t)) {
    return state.SkipWithError("handshake failed");
  }
  std::string got;
  got.reserve(64);
  for (auto _ : state) {
    if (client->Write(kRecord40) != 40 || server->Read(&got) != 40 ||
        server->Write(kRecord40) != 40 || client->Read(&got) != 40) {
      return state.SkipWithError("record lost");
    }
  }
  state.SetBytesProcessed(state.iterations() * 80);
}
BENCHMARK(BM_RecordRoundTrip40);

// mbedtls_ssl_context_save of the server's session (which also resets the context; each
// iteration loads it back, untimed).
void BM_ContextSave(benchmark::State& state) {
  Shard shard;
  std::optional<Endpoint> client, server;
  Timings t;
  if (!shard.ok() || !Establish(shard, client, server, &t)) {
    return state.SkipWithError("handshake failed");
  }
  std::vector<unsigned char> saved(1024);
  size_t length = 0;
  for (auto _ : state) {
    Clock::time_point start = Clock::now();
    int ret = mbedtls_ssl_context_save(server->ssl(), saved.data(), saved.size(), &length);
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - start).count());
    if (ret != 0 || mbedtls_ssl_context_load(server->ssl(), saved.data(), length) != 0) {
      return state.SkipWithError("save/load failed");
    }
  }
  state.counters["saved_B"] = static_cast<double>(length);
}
// Each iteration also loads (about 40 times the save), so the timed share is kept short.
BENCHMARK(BM_ContextSave)->UseManualTime()->MinTime(0.02)->Unit(benchmark::kMicrosecond);

// Restoring a saved session: a fresh context (mbedtls_ssl_setup) and
// mbedtls_ssl_context_load, which derives the traffic keys again. The counter gives the
// load alone, into a context reset by the previous save.
void BM_ContextLoad(benchmark::State& state) {
  Shard shard;
  std::optional<Endpoint> client, server;
  Timings t;
  if (!shard.ok() || !Establish(shard, client, server, &t)) {
    return state.SkipWithError("handshake failed");
  }
  Link& link = *shard.link;
  std::vector<unsigned char> saved(1024);
  size_t length = 0;
  if (mbedtls_ssl_context_save(server->ssl(), saved.data(), saved.size(), &length) != 0) {
    return state.SkipWithError("save failed");
  }
  Clock::duration load_only{};
  for (auto _ : state) {
    server.reset();
    Clock::time_point start = Clock::now();
    server.emplace(shard.server_config.conf(), &link.to_server, &link.to_client, &link.clock);
    int ret = mbedtls_ssl_context_load(server->ssl(), saved.data(), length);
    state.SetIterationTime(std::chrono::duration<double>(Clock::now() - start).count());
    if (ret != 0) return state.SkipWithError("load failed");
    // The same load again, into the context the save resets.
    if (mbedtls_ssl_context_save(server->ssl(), saved.data(), saved.size(), &length) != 0) {
      return state.SkipWithError("save failed");
    }
    start = Clock::now();
    ret = mbedtls_ssl_context_load(server->ssl(), saved.data(), length);
    load_only += Clock::now() - start;
    if (ret != 0) return state.SkipWithError("load failed");
  }
  state.counters["load_only_us"] =
      benchmark::Counter(std::chrono::duration<double, std::micro>(load_only).count(),
                         benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_ContextLoad)->UseManualTime()->Unit(benchmark::kMicrosecond);

// The heap a live server session holds once its handshake state is gone, with the
// client asking for no maximum fragment length (argument 0) or for 512 or 1024 bytes
// (RFC 6066), which variable buffer lengths turn into smaller buffers. Also after the
// session went through save and load. Counters only; the time means nothing.
void BM_ServerSessionHeap(benchmark::State& state) {
  unsigned char mfl = MBEDTLS_SSL_MAX_FRAG_LEN_NONE;
  if (state.range(0) == 512) mfl = MBEDTLS_SSL_MAX_FRAG_LEN_512;
  if (state.range(0) == 1024) mfl = MBEDTLS_SSL_MAX_FRAG_LEN_1024;
  Shard shard(mfl);
  if (!shard.ok()) return state.SkipWithError("setup");
  int64_t live = 0, loaded = 0, peak = 0, allocations = 0;
  for (auto _ : state) {
    std::optional<Endpoint> client, server;
    Timings t;
    int64_t base = heap.live[kServer];
    heap.peak[kServer] = base;
    int64_t allocations_before = heap.allocations[kServer];
    if (!Establish(shard, client, server, &t)) return state.SkipWithError("handshake failed");
    live = heap.live[kServer] - base;
    peak = heap.peak[kServer] - base;
    allocations = heap.allocations[kServer] - allocations_before;

    std::vector<unsigned char> saved(1024);
    size_t length = 0;
    OwnedBy owner(kServer);
    if (mbedtls_ssl_context_save(server->ssl(), saved.data(), saved.size(), &length) != 0) {
      return state.SkipWithError("save failed");
    }
    Link& link = *shard.link;
    server.reset();
    server.emplace(shard.server_config.conf(), &link.to_server, &link.to_client, &link.clock);
    if (mbedtls_ssl_context_load(server->ssl(), saved.data(), length) != 0) {
      return state.SkipWithError("load failed");
    }
    loaded = heap.live[kServer] - base;
  }
  const double context = sizeof(mbedtls_ssl_context);
  state.counters["live_heap_B"] = static_cast<double>(live);
  state.counters["live_total_B"] = static_cast<double>(live) + context;
  state.counters["after_load_total_B"] = static_cast<double>(loaded) + context;
  state.counters["handshake_peak_B"] = static_cast<double>(peak);
  state.counters["allocations"] = static_cast<double>(allocations);
  state.counters["ssl_context_B"] = context;
}
BENCHMARK(BM_ServerSessionHeap)->Arg(0)->Arg(1024)->Arg(512)->Iterations(1);

}  // namespace
}  // namespace lwm2md::dtls
