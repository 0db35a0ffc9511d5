// Checks our SHA-256 compression function (third_party/mbedtls/sha256_process.c, which
// replaces mbedTLS's through MBEDTLS_SHA256_PROCESS_ALT) through mbedTLS's own API: the
// FIPS 180-2 vectors and RFC 4231's HMAC-SHA-256 cases on both the SHA-extensions path and
// the portable one, and both paths agreeing on every message length up to 1000 bytes.
// The PSK handshakes that rest on it are in mbedtls_config_test.cc.

#include "mbedtls/sha256.h"

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "../../third_party/mbedtls/sha256_process.h"
#include "gtest/gtest.h"
#include "mbedtls/md.h"

namespace lwm2md::dtls::testing {
namespace {

std::string Hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kDigits[bytes[i] >> 4];
    s += kDigits[bytes[i] & 0xf];
  }
  return s;
}

std::string Sha256Hex(const std::string& message) {
  unsigned char digest[32];
  int ret = mbedtls_sha256(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                           digest, /*is224=*/0);
  if (ret != 0) return "error " + std::to_string(ret);
  return Hex(digest, sizeof(digest));
}

std::string HmacSha256Hex(const std::string& key, const std::string& message) {
  unsigned char mac[32];
  int ret =
      mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                      reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                      reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac);
  if (ret != 0) return "error " + std::to_string(ret);
  return Hex(mac, sizeof(mac));
}

// Streams the message in two pieces split at `split`, as the TLS PRF and record layers do:
// the first piece leaves a partial block buffered, the second goes through mbedTLS's
// multi-block path.
std::string Sha256InTwoPiecesHex(const std::string& message, size_t split) {
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  unsigned char digest[32];
  const auto* bytes = reinterpret_cast<const unsigned char*>(message.data());
  int ret = mbedtls_sha256_starts(&ctx, 0);
  if (ret == 0) ret = mbedtls_sha256_update(&ctx, bytes, split);
  if (ret == 0) ret = mbedtls_sha256_update(&ctx, bytes + split, message.size() - split);
  if (ret == 0) ret = mbedtls_sha256_finish(&ctx, digest);
  mbedtls_sha256_free(&ctx);
  if (ret != 0) return "error " + std::to_string(ret);
  return Hex(digest, sizeof(digest));
}

enum class Path { kShaExtensions, kPortable };

std::string PathName(const ::testing::TestParamInfo<Path>& info) {
  return info.param == Path::kShaExtensions ? "ShaExtensions" : "Portable";
}

// Runs each test on one compression path; the hardware one only where the CPU has it.
class Sha256OnPathTest : public ::testing::TestWithParam<Path> {
 protected:
  void SetUp() override {
    if (GetParam() == Path::kShaExtensions && !lwm2md_sha256_has_sha_ni()) {
      GTEST_SKIP() << "this CPU has no SHA extensions";
    }
    lwm2md_sha256_force_portable_for_test(GetParam() == Path::kPortable);
  }
  void TearDown() override { lwm2md_sha256_force_portable_for_test(0); }
};

// FIPS 180-2 Appendix B (one block, two blocks, many blocks) and the empty message.
TEST_P(Sha256OnPathTest, NistVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// RFC 4231 §4.2 and §4.3: HMAC-SHA-256, what the TLS 1.2 PRF and the DTLS cookie run on.
TEST_P(Sha256OnPathTest, HmacRfc4231) {
  EXPECT_EQ(HmacSha256Hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

INSTANTIATE_TEST_SUITE_P(Paths, Sha256OnPathTest,
                         ::testing::Values(Path::kShaExtensions, Path::kPortable), PathName);

class Sha256PathsTest : public ::testing::Test {
 protected:
  void TearDown() override { lwm2md_sha256_force_portable_for_test(0); }
};

// Every length from 0 to 1000 bytes (every padding case, up to 16 blocks), random bytes,
// hashed whole and in two pieces: the SHA-extensions path gives the portable path's digests.
TEST_F(Sha256PathsTest, HardwareAndPortableAgree) {
  if (!lwm2md_sha256_has_sha_ni()) GTEST_SKIP() << "this CPU has no SHA extensions";
  std::mt19937 random(20240615);
  std::uniform_int_distribution<int> byte(0, 255);
  for (size_t length = 0; length <= 1000; ++length) {
    std::string message(length, '\0');
    for (char& c : message) c = static_cast<char>(byte(random));
    size_t split = std::uniform_int_distribution<size_t>(0, length)(random);

    lwm2md_sha256_force_portable_for_test(1);
    std::string portable = Sha256Hex(message);
    lwm2md_sha256_force_portable_for_test(0);
    ASSERT_EQ(Sha256Hex(message), portable) << "length " << length;
    ASSERT_EQ(Sha256InTwoPiecesHex(message, split), portable)
        << "length " << length << " split at " << split;
  }
}

// What the kernel reports about the CPU is what the choice of path sees.
TEST_F(Sha256PathsTest, DetectionMatchesCpuinfo) {
#if !defined(__x86_64__)
  EXPECT_FALSE(lwm2md_sha256_has_sha_ni());
#else
  std::ifstream cpuinfo("/proc/cpuinfo");
  if (!cpuinfo) GTEST_SKIP() << "no /proc/cpuinfo";
  std::string line;
  while (std::getline(cpuinfo, line) && line.rfind("flags", 0) != 0) {
  }
  if (line.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
  std::istringstream flags(line.substr(line.find(':') + 1));
  bool sha_ni = false, sse4_1 = false, ssse3 = false;
  for (std::string flag; flags >> flag;) {
    sha_ni |= flag == "sha_ni";
    sse4_1 |= flag == "sse4_1";
    ssse3 |= flag == "ssse3";
  }
  EXPECT_EQ(lwm2md_sha256_has_sha_ni() != 0, sha_ni && sse4_1 && ssse3);
#endif
}

}  // namespace
}  // namespace lwm2md::dtls::testing
