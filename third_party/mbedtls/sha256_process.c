// The SHA-256 compression function of our mbedTLS build (MBEDTLS_SHA256_PROCESS_ALT in
// lwm2md_mbedtls_config.h; tools/setup compiles this file and adds it to libmbedcrypto.a).
//
// Why it is hand-written: SHA-256 is most of a DTLS 1.2 PSK handshake's CPU (the PRF is
// HMAC-SHA-256: master secret, a 256-byte key block, two Finished messages; and the
// cookie's HMAC), and mbedTLS 3.6 uses SHA instructions only on Arm, so on x86-64 it runs
// its portable C code even on CPUs with the SHA extensions, which compress a block
// several times faster. With the hook, mbedTLS's multi-block path calls this function
// once per block, so every SHA-256 in the library comes here.
//
// Two implementations of FIPS 180-4 §6.2.2 (one 64-byte block into the eight-word state):
// the SHA extensions (SHA256RNDS2, SHA256MSG1, SHA256MSG2) when CPUID reports them,
// chosen at first use, and portable C for other CPUs and other architectures.

// The context's fields are private to mbedTLS's own sources, which this file joins.
#define MBEDTLS_ALLOW_PRIVATE_ACCESS

#include "sha256_process.h"

#include <stdatomic.h>
#include <stdint.h>

#include "mbedtls/build_info.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/sha256.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#if !defined(MBEDTLS_SHA256_PROCESS_ALT)
#error "built for a configuration with MBEDTLS_SHA256_PROCESS_ALT only"
#endif

// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the
// first 64 primes.
static const uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// ---- Portable C ------------------------------------------------------------------------

static inline uint32_t RotateRight(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

// FIPS 180-4 §4.1.2, (4.4) to (4.7).
static inline uint32_t BigSigma0(uint32_t x) {
  return RotateRight(x, 2) ^ RotateRight(x, 13) ^ RotateRight(x, 22);
}
static inline uint32_t BigSigma1(uint32_t x) {
  return RotateRight(x, 6) ^ RotateRight(x, 11) ^ RotateRight(x, 25);
}
static inline uint32_t SmallSigma0(uint32_t x) {
  return RotateRight(x, 7) ^ RotateRight(x, 18) ^ (x >> 3);
}
static inline uint32_t SmallSigma1(uint32_t x) {
  return RotateRight(x, 17) ^ RotateRight(x, 19) ^ (x >> 10);
}

static void CompressPortable(uint32_t state[8], const unsigned char block[64]) {
  // §6.2.2 step 1: the message schedule, the block read as sixteen big-endian words.
  uint32_t w[64];
  for (int t = 0; t < 16; ++t) {
    const unsigned char* p = block + 4 * t;
    w[t] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  }
  for (int t = 16; t < 64; ++t) {
    w[t] = SmallSigma1(w[t - 2]) + w[t - 7] + SmallSigma0(w[t - 15]) + w[t - 16];
  }
  // Steps 2 to 4: 64 rounds over the working variables a..h, then the new state.
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int t = 0; t < 64; ++t) {
    uint32_t choose = (e & f) ^ (~e & g);
    uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t1 = h + BigSigma1(e) + choose + kRoundConstants[t] + w[t];
    uint32_t t2 = BigSigma0(a) + majority;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
  // The schedule is derived from the block, which may be key material (HMAC, the PRF);
  // mbedTLS's own code wipes it too.
  mbedtls_platform_zeroize(w, sizeof(w));
}

// ---- x86-64 SHA extensions -------------------------------------------------------------

#if defined(__x86_64__)

#define LWM2MD_SHA_TARGET __attribute__((target("sha,sse4.1")))

// SHA256RNDS2 keeps the state as two registers, lanes from high to low: {A, B, E, F} and
// {C, D, G, H}. Each call does two rounds with the two message-plus-constant words in the
// low half of its third operand and returns the new {A, B, E, F}; the old one is then
// the new {C, D, G, H}. So four rounds alternate the two variables' roles and end with
// them in their original ones.
LWM2MD_SHA_TARGET static inline void FourRounds(__m128i* abef, __m128i* cdgh, __m128i words,
                                                const uint32_t* constants) {
  __m128i wk = _mm_add_epi32(words, _mm_loadu_si128((const __m128i*)constants));
  *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
  *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0e));
}

// FIPS 180-4 (6.2.2 step 1) for t = 4i..4i+3 from the sixteen words before:
// W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]. SHA256MSG1 adds the σ0 terms to
// W[t-16]; W[t-7] is four words straddling two registers; SHA256MSG2 adds the σ1 terms,
// including those of the words it is computing.
LWM2MD_SHA_TARGET static inline __m128i NextWords(__m128i w16, __m128i w12, __m128i w8,
                                                  __m128i w4) {
  __m128i partial = _mm_sha256msg1_epu32(w16, w12);
  partial = _mm_add_epi32(partial, _mm_alignr_epi8(w4, w8, 4));
  return _mm_sha256msg2_epu32(partial, w4);
}

LWM2MD_SHA_TARGET static void CompressShaNi(uint32_t state[8], const unsigned char block[64]) {
  // The state in memory is A..H, lowest lane first; reversed, each half has its first
  // word in the high lane, and the two halves' upper and lower 64 bits make the pairs.
  __m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i*)state), 0x1b);
  __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i*)(state + 4)), 0x1b);
  __m128i abef = _mm_unpackhi_epi64(hgfe, dcba);
  __m128i cdgh = _mm_unpacklo_epi64(hgfe, dcba);
  const __m128i abef_in = abef;
  const __m128i cdgh_in = cdgh;

  // Message words are big-endian; each lane holds one, W[t] in the lowest.
  const __m128i byte_swap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)block), byte_swap);
  __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(block + 16)), byte_swap);
  __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(block + 32)), byte_swap);
  __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(block + 48)), byte_swap);
  FourRounds(&abef, &cdgh, w0, kRoundConstants);
  FourRounds(&abef, &cdgh, w1, kRoundConstants + 4);
  FourRounds(&abef, &cdgh, w2, kRoundConstants + 8);
  FourRounds(&abef, &cdgh, w3, kRoundConstants + 12);
  // Rounds 16..63: w0..w3 always hold the last sixteen schedule words, oldest in w0 at
  // the start of each pass.
  for (int t = 16; t < 64; t += 16) {
    w0 = NextWords(w0, w1, w2, w3);
    FourRounds(&abef, &cdgh, w0, kRoundConstants + t);
    w1 = NextWords(w1, w2, w3, w0);
    FourRounds(&abef, &cdgh, w1, kRoundConstants + t + 4);
    w2 = NextWords(w2, w3, w0, w1);
    FourRounds(&abef, &cdgh, w2, kRoundConstants + t + 8);
    w3 = NextWords(w3, w0, w1, w2);
    FourRounds(&abef, &cdgh, w3, kRoundConstants + t + 12);
  }
  abef = _mm_add_epi32(abef, abef_in);
  cdgh = _mm_add_epi32(cdgh, cdgh_in);

  dcba = _mm_unpackhi_epi64(cdgh, abef);
  hgfe = _mm_unpacklo_epi64(cdgh, abef);
  _mm_storeu_si128((__m128i*)state, _mm_shuffle_epi32(dcba, 0x1b));
  _mm_storeu_si128((__m128i*)(state + 4), _mm_shuffle_epi32(hgfe, 0x1b));
}

#endif  // __x86_64__

// ---- Selection ---------------------------------------------------------------------------

int lwm2md_sha256_has_sha_ni(void) {
#if defined(__x86_64__)
  unsigned int eax, ebx, ecx, edx;
  // Leaf 1: ECX bit 9 SSSE3 (PSHUFB, PALIGNR), bit 19 SSE4.1.
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
  if (!(ecx & (1u << 9)) || !(ecx & (1u << 19))) return 0;
  // Leaf 7, subleaf 0: EBX bit 29, the SHA extensions.
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
  return (ebx >> 29) & 1;
#else
  return 0;
#endif
}

enum { kUndecided = 0, kPortable = 1, kShaNi = 2 };
// Decided at the first compression (CPUID costs more than a block). Threads that race to
// decide store the same value, so relaxed ordering is enough.
static atomic_int path = kUndecided;

void lwm2md_sha256_force_portable_for_test(int force) {
  atomic_store_explicit(&path, force ? kPortable : kUndecided, memory_order_relaxed);
}

int mbedtls_internal_sha256_process(mbedtls_sha256_context* ctx, const unsigned char data[64]) {
  int chosen = atomic_load_explicit(&path, memory_order_relaxed);
  if (chosen == kUndecided) {
    chosen = lwm2md_sha256_has_sha_ni() ? kShaNi : kPortable;
    atomic_store_explicit(&path, chosen, memory_order_relaxed);
  }
#if defined(__x86_64__)
  if (chosen == kShaNi) {
    CompressShaNi(ctx->state, data);
    return 0;
  }
#endif
  CompressPortable(ctx->state, data);
  return 0;
}
