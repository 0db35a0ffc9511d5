// The fallback shard for kernels (or sandboxes) without a usable io_uring: level-triggered
// epoll over the same sockets, recvmmsg into a batch of buffers, sendmmsg from the send
// queue's slots, the inbox eventfd in the epoll set.

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "net/shard_internal.h"

namespace lwm2md::net::internal {
namespace {

class EpollShard final : public ShardImpl {
 public:
  using ShardImpl::ShardImpl;

 private:
  // Datagrams per recvmmsg/sendmmsg call, and recvmmsg calls per socket per iteration: a
  // bound, so that one busy socket cannot starve the others, the timers and the inbox
  // (level-triggered epoll reports it again on the next iteration).
  static constexpr int kBatch = 64;
  static constexpr int kReceiveRounds = 4;
  static constexpr uint64_t kWakeKey = std::numeric_limits<uint64_t>::max();

  absl::Status InitBackend() override;
  void Loop() override;
  void ReleaseBackend() override;
  void CancelReceives() override;
  bool ReceivesIdle() const override { return true; }

  void UpdateInterest(uint32_t listener);
  void Receive(uint32_t listener);
  void FlushSends();

  int epoll_fd_ = -1;
  int batch_ = kBatch;
  std::unique_ptr<uint8_t[]> recv_data_;
  mmsghdr recv_headers_[kBatch] = {};
  iovec recv_iovs_[kBatch] = {};
  sockaddr_in6 recv_names_[kBatch] = {};
  mmsghdr send_headers_[kBatch] = {};
  std::vector<uint32_t> interest_;  // epoll events registered per listener (0 = none)
  std::vector<bool> blocked_;       // a send met a full socket buffer; waiting for EPOLLOUT
  int blocked_count_ = 0;
  epoll_event events_[kBatch] = {};
  int event_count_ = 0;
};

absl::Status EpollShard::InitBackend() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return absl::ErrnoToStatus(errno, "epoll_create1");
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.u64 = kWakeKey;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl(eventfd)");
  }
  batch_ = static_cast<int>(std::min<uint32_t>(kBatch, options_.recv_buffer_count));
  // Exactly recv_buffer_size per buffer: a longer datagram comes back with MSG_TRUNC.
  recv_data_.reset(new uint8_t[size_t{options_.recv_buffer_size} * batch_]);
  for (int i = 0; i < batch_; ++i) {
    recv_iovs_[i].iov_base = recv_data_.get() + size_t{options_.recv_buffer_size} * i;
    recv_iovs_[i].iov_len = options_.recv_buffer_size;
    recv_headers_[i].msg_hdr.msg_iov = &recv_iovs_[i];
    recv_headers_[i].msg_hdr.msg_iovlen = 1;
    recv_headers_[i].msg_hdr.msg_name = &recv_names_[i];
  }
  interest_.assign(sockets_.size(), 0);
  blocked_.assign(sockets_.size(), false);
  for (uint32_t l = 0; l < sockets_.size(); ++l) {
    UpdateInterest(l);
    if (interest_[l] == 0) return absl::ErrnoToStatus(errno, "epoll_ctl(socket)");
  }
  return absl::OkStatus();
}

void EpollShard::ReleaseBackend() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  epoll_fd_ = -1;
}

void EpollShard::UpdateInterest(uint32_t listener) {
  uint32_t wanted =
      (input_stopped() ? 0u : uint32_t{EPOLLIN}) | (blocked_[listener] ? uint32_t{EPOLLOUT} : 0u);
  if (wanted == interest_[listener]) return;
  epoll_event event{};
  event.events = wanted;
  event.data.u64 = listener;
  int op = interest_[listener] == 0 ? EPOLL_CTL_ADD : wanted == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (::epoll_ctl(epoll_fd_, op, sockets_[listener], &event) != 0) {
    LWM2MD_LOG(kError, "net: shard %d: epoll_ctl on listener %u: %s", id_, listener,
               std::strerror(errno));
    return;
  }
  interest_[listener] = wanted;
}

void EpollShard::CancelReceives() {
  for (uint32_t l = 0; l < sockets_.size(); ++l) UpdateInterest(l);
}

void EpollShard::Receive(uint32_t listener) {
  for (int round = 0; round < kReceiveRounds; ++round) {
    for (int i = 0; i < batch_; ++i) {
      recv_headers_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in6);
      recv_headers_[i].msg_hdr.msg_flags = 0;
    }
    int count = ::recvmmsg(sockets_[listener], recv_headers_, batch_, MSG_DONTWAIT, nullptr);
    if (count < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        LWM2MD_LOG(kDebug, "net: shard %d: recvmmsg: %s", id_, std::strerror(errno));
      }
      return;
    }
    for (int i = 0; i < count; ++i) {
      const msghdr& header = recv_headers_[i].msg_hdr;
      if (header.msg_flags & MSG_TRUNC) {
        metrics_.receive_truncated.Add();
        continue;
      }
      Deliver(static_cast<int>(listener),
              PeerAddress::FromSockaddr(static_cast<const sockaddr*>(header.msg_name),
                                        header.msg_namelen),
              {static_cast<const uint8_t*>(recv_iovs_[i].iov_base), recv_headers_[i].msg_len});
    }
    if (count < batch_) return;
  }
}

void EpollShard::FlushSends() {
  // In queue order; a full socket buffer holds back everything behind it until EPOLLOUT.
  while (sends_.queued() > 0 && blocked_count_ == 0) {
    int listener = sends_.slot(sends_.PeekQueued(0)).listener;
    uint32_t count = 0;
    while (count < kBatch && count < sends_.queued()) {
      SendQueue::Slot& slot = sends_.slot(sends_.PeekQueued(count));
      if (slot.listener != listener) break;
      send_headers_[count].msg_hdr = slot.header;
      send_headers_[count].msg_len = 0;
      ++count;
    }
    int sent = ::sendmmsg(sockets_[listener], send_headers_, count, MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
        blocked_[listener] = true;
        ++blocked_count_;
        UpdateInterest(listener);
        return;
      }
      // sendmmsg(2) fails only when the first datagram failed; drop it and go on.
      metrics_.send_errors.Add();
      LWM2MD_LOG(kDebug, "net: shard %d: sendmmsg: %s", id_, std::strerror(errno));
      sends_.Release(sends_.PeekQueued(0));
      sends_.PopQueued(1);
      continue;
    }
    for (int i = 0; i < sent; ++i) {
      CountSent(send_headers_[i].msg_len);
      sends_.Release(sends_.PeekQueued(i));
    }
    sends_.PopQueued(static_cast<uint32_t>(sent));
  }
}

void EpollShard::Loop() {
  while (true) {
    BeginIteration();
    for (int i = 0; i < event_count_; ++i) {
      const epoll_event& event = events_[i];
      if (event.data.u64 == kWakeKey) {
        uint64_t value;
        ssize_t ignored = ::read(wake_fd_, &value, sizeof(value));
        (void)ignored;
        continue;
      }
      uint32_t listener = static_cast<uint32_t>(event.data.u64);
      if ((event.events & EPOLLOUT) && blocked_[listener]) {
        blocked_[listener] = false;
        --blocked_count_;
        UpdateInterest(listener);
      }
      if ((event.events & (EPOLLIN | EPOLLERR)) && !input_stopped()) Receive(listener);
    }
    event_count_ = 0;
    RunTimers();
    DrainInbox();
    CheckInputStopped();
    FlushSends();
    if (finishing() && ((sends_.queued() == 0 && inbox_empty()) || now_ >= finish_deadline())) {
      if (sends_.queued() > 0) {
        LWM2MD_LOG(kWarning, "net: shard %d: stopping with %u sends unfinished", id_,
                   sends_.queued());
      }
      break;
    }
    int timeout = PrepareToSleep() ? TimeoutMilliseconds(WaitTimeout()) : 0;
    event_count_ = ::epoll_wait(epoll_fd_, events_, kBatch, timeout);
    Woke();
    if (event_count_ < 0) {
      if (errno != EINTR)
        LWM2MD_LOG(kWarning, "net: shard %d: epoll_wait: %s", id_, std::strerror(errno));
      event_count_ = 0;
    }
  }
}

}  // namespace

std::unique_ptr<ShardImpl> MakeEpollShard(int id, const ShardGroupOptions& options,
                                          std::vector<int> sockets, int wake_fd) {
  return std::make_unique<EpollShard>(id, options, std::move(sockets), wake_fd);
}

}  // namespace lwm2md::net::internal
