// The stored form of a DTLS session: what goes into the store comes back the same, and bytes
// that are not a saved session (another version, truncated, a required field missing) are
// refused rather than misread.

#include "dtls/saved_session.h"

#include <string>

#include "gtest/gtest.h"

namespace lwm2md::dtls {
namespace {

SavedSession Example() {
  SavedSession session;
  session.connection_id = 0x0100'0000'0000'002a;
  session.connection_id_used = true;
  session.peer = *net::PeerAddress::Parse("[2001:db8::7]:61000");
  session.identity.psk_identity = "meter-17";
  session.identity.endpoint = "urn:imei:490154203237518";
  session.identity.ciphersuite = "TLS-PSK-WITH-AES-128-CCM-8";
  session.saved_at = absl::FromUnixMicros(1'764'000'000'123'456);
  session.context = std::string("\x00\x01\xff context", 11);
  return session;
}

TEST(SavedSessionTest, WhatIsSavedComesBack) {
  const SavedSession saved = Example();
  absl::StatusOr<SavedSession> loaded = DecodeSavedSession(EncodeSavedSession(saved));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->connection_id, saved.connection_id);
  EXPECT_TRUE(loaded->connection_id_used);
  EXPECT_EQ(loaded->peer, saved.peer);
  EXPECT_EQ(loaded->identity.psk_identity, "meter-17");
  EXPECT_EQ(loaded->identity.endpoint, saved.identity.endpoint);
  EXPECT_EQ(loaded->identity.ciphersuite, saved.identity.ciphersuite);
  EXPECT_EQ(loaded->saved_at, saved.saved_at);
  EXPECT_EQ(loaded->context, saved.context);
}

TEST(SavedSessionTest, KeysNameTheSessionAndItsAddress) {
  const SavedSession saved = Example();
  EXPECT_EQ(SessionKey(saved.connection_id),
            std::string("s\x01\x00\x00\x00\x00\x00\x00\x2a", 9));
  EXPECT_EQ(AddressKey(saved.peer), "a[2001:db8::7]:61000");
  store::WriteBatch batch;
  AddSave(batch, saved);
  ASSERT_EQ(batch.operations().size(), 2u);
  EXPECT_EQ(batch.operations()[1].key, AddressKey(saved.peer));
  EXPECT_EQ(ConnectionIdOfAddressValue(batch.operations()[1].value), saved.connection_id);
  EXPECT_FALSE(ConnectionIdOfAddressValue("short").has_value());
}

TEST(SavedSessionTest, ForgettingLeavesAnAddressKeyThatIsNotOurs) {
  store::WriteBatch batch;
  AddForget(batch, 7, net::PeerAddress());
  ASSERT_EQ(batch.operations().size(), 1u);
  EXPECT_EQ(batch.operations()[0].key, SessionKey(7));
  AddForget(batch, 7, *net::PeerAddress::Parse("127.0.0.1:5"));
  EXPECT_EQ(batch.operations().size(), 3u);
}

TEST(SavedSessionTest, BytesThatAreNotASavedSessionAreRefused) {
  const std::string good = EncodeSavedSession(Example());
  EXPECT_FALSE(DecodeSavedSession("").ok());
  std::string other_version = good;
  other_version[0] = 2;
  EXPECT_EQ(DecodeSavedSession(other_version).status().code(), absl::StatusCode::kDataLoss);
  for (size_t cut = 1; cut < good.size(); ++cut) {
    EXPECT_FALSE(DecodeSavedSession(good.substr(0, cut)).ok()) << "cut at " << cut;
  }
  // A field a later build added is skipped.
  std::string extended = good;
  extended += std::string("\x63\x00\x02hi", 5);
  EXPECT_TRUE(DecodeSavedSession(extended).ok());
}

}  // namespace
}  // namespace lwm2md::dtls
