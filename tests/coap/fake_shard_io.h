#pragma once
// A net::ShardIo for message-layer tests: captures sent datagrams, runs a real TimerWheel
// on a clock the test advances by hand.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "coap/message.h"
#include "gtest/gtest.h"
#include "net/shard.h"
#include "net/timer_wheel.h"

namespace lwm2md::coap::testutil {

class FakeShardIo : public net::ShardIo {
 public:
  struct Sent {
    int listener = 0;
    net::PeerAddress peer;
    std::vector<uint8_t> bytes;
    net::TimePoint at;

    MessageView View() const {
      MessageView m;
      EXPECT_EQ(MessageView::Parse(bytes, &m), ParseError::kOk);
      return m;
    }
  };

  FakeShardIo() : now_(net::TimePoint() + std::chrono::hours(24)), start_(now_), timers_(now_) {}

  int shard_id() const override { return 0; }
  net::TimePoint Now() const override { return now_; }
  bool Send(int listener, const net::PeerAddress& to, std::span<const uint8_t> bytes) override {
    ++send_count_;
    if (capture_)
      sent_.push_back(Sent{listener, to, std::vector<uint8_t>(bytes.begin(), bytes.end()), now_});
    return true;
  }
  // Off: sends are only counted (for tests that must not see the fake allocate).
  void set_capture(bool capture) { capture_ = capture; }
  size_t send_count() const { return send_count_; }
  net::TimerWheel& timers() override { return timers_; }

  // Moves the clock forward in 1 ms steps, firing timers as the shard loop would.
  void Advance(net::Duration d) {
    const net::TimePoint target = now_ + d;
    while (now_ < target) {
      now_ += std::min<net::Duration>(std::chrono::milliseconds(1), target - now_);
      timers_.Advance(now_);
    }
  }
  net::Duration Elapsed() const { return now_ - start_; }

  std::vector<Sent>& sent() { return sent_; }
  std::vector<Sent> TakeSent() {
    std::vector<Sent> out;
    out.swap(sent_);
    return out;
  }

 private:
  net::TimePoint now_;
  net::TimePoint start_;
  net::TimerWheel timers_;
  std::vector<Sent> sent_;
  bool capture_ = true;
  size_t send_count_ = 0;
};

// Builds a message with the codec's builder into an owned buffer.
template <typename Fn>
std::vector<uint8_t> BuildMessage(Fn&& fn) {
  std::vector<uint8_t> buffer(8192);
  MessageBuilder builder(buffer);
  fn(builder);
  const std::span<const uint8_t> out = builder.Finish();
  EXPECT_FALSE(out.empty());
  return std::vector<uint8_t>(out.begin(), out.end());
}

inline std::vector<uint8_t> Bytes(std::span<const uint8_t> s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}
inline std::string Text(std::span<const uint8_t> s) {
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

}  // namespace lwm2md::coap::testutil
