// The io_uring shard: one multishot recvmsg per socket over a provided-buffer ring, sends as
// sendmsg SQEs from the send queue's slots, the inbox eventfd read through the ring, and
// one io_uring_enter per loop iteration that both submits and waits.

#include <liburing.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/log.h"
#include "net/shard_internal.h"

namespace lwm2md::net::internal {
namespace {

constexpr uint16_t kBufferGroup = 0;

// What a completion belongs to, in the top byte of its user_data; the rest is an index
// (listener or send slot).
enum class Op : uint8_t { kReceive = 1, kSend = 2, kWake = 3, kCancel = 4 };
constexpr int kOpShift = 56;
uint64_t Tag(Op op, uint32_t index) {
  return (uint64_t{static_cast<uint8_t>(op)} << kOpShift) | index;
}
Op OpOf(uint64_t data) { return static_cast<Op>(data >> kOpShift); }
uint32_t IndexOf(uint64_t data) { return static_cast<uint32_t>(data); }

// A multishot recvmsg writes, into each provided buffer, an io_uring_recvmsg_out, then the
// source address (msg_namelen bytes), then the payload.
constexpr uint32_t kBufferHeader = sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_in6);

std::string Errno(int negative) { return std::strerror(-negative); }

size_t PageRound(size_t bytes) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

// Anonymous memory for buffer rings and buffers: page-aligned, as IORING_REGISTER_PBUF_RING
// requires of the ring, and released with munmap.
class Mapping {
 public:
  Mapping() = default;
  ~Mapping() { Reset(); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  bool Map(size_t bytes) {
    Reset();
    size_ = PageRound(bytes);
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      size_ = 0;
      return false;
    }
    data_ = static_cast<uint8_t*>(p);
    return true;
  }
  void Reset() {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
  uint8_t* data() const { return data_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class IoUringShard final : public ShardImpl {
 public:
  using ShardImpl::ShardImpl;

 private:
  struct Receiver {
    msghdr header{};  // the template the kernel lays each buffer out by
    bool armed = false;
    bool held = false;     // backing off after an unexpected error
    bool failing = false;  // that error was logged; quiet until a datagram arrives again
  };

  absl::Status InitBackend() override;
  void Loop() override;
  void ReleaseBackend() override;
  void CancelReceives() override;
  bool ReceivesIdle() const override { return receives_armed_ == 0; }

  io_uring_sqe* GetSqe();
  void ArmReceive(uint32_t listener);
  void ArmWake();
  void Reap();
  void OnReceive(const io_uring_cqe& cqe);
  void OnSendDone(const io_uring_cqe& cqe);
  void FlushSends();
  void Wait();
  int Outstanding() const { return receives_armed_ + (wake_armed_ ? 1 : 0) + sends_in_flight_; }

  // Targets the SQE at a listener's socket, through the registered file table if there is one.
  void SetSocket(io_uring_sqe* sqe, int listener) const {
    if (fixed_files_) {
      sqe->fd = listener;
      sqe->flags |= IOSQE_FIXED_FILE;
    }
  }

  uint8_t* BufferAt(uint32_t id) { return buffers_.data() + size_t{id} * buffer_stride_; }
  void ReturnBuffer(uint32_t id) {
    io_uring_buf_ring_add(buf_ring_, BufferAt(id), buffer_length_, static_cast<uint16_t>(id),
                          buf_ring_mask_, returned_++);
  }

  io_uring ring_{};
  bool ring_ready_ = false;
  bool fixed_files_ = false;
  Mapping buf_ring_memory_;
  io_uring_buf_ring* buf_ring_ = nullptr;
  int buf_ring_mask_ = 0;
  Mapping buffers_;
  uint32_t buffer_length_ = 0;
  uint32_t buffer_stride_ = 0;
  int returned_ = 0;  // buffers given back in this batch, made visible at its end

  std::vector<Receiver> receivers_;
  int receives_armed_ = 0;
  uint64_t wake_value_ = 0;
  bool wake_armed_ = false;
  int sends_in_flight_ = 0;
  bool exiting_ = false;  // everything outstanding was cancelled; leave once it completed
  TimePoint exit_deadline_;
};

// SINGLE_ISSUER: only the shard thread submits, which lets the kernel skip locking.
// COOP_TASKRUN: completions run as task work when the shard next enters the kernel (it does
// every iteration) rather than interrupting it; TASKRUN_FLAG tells liburing when a
// submit-only call must still enter to run that work. Kernels before 6.0 refuse these flags.
int SetupRing(unsigned sq_entries, unsigned cq_entries, io_uring* ring, bool* tuned) {
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
                 IORING_SETUP_TASKRUN_FLAG;
  params.cq_entries = cq_entries;
  int ret = io_uring_queue_init_params(sq_entries, ring, &params);
  *tuned = ret == 0;
  if (ret == -EINVAL) {
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = cq_entries;
    ret = io_uring_queue_init_params(sq_entries, ring, &params);
  }
  return ret;
}

absl::Status IoUringShard::InitBackend() {
  uint32_t listeners = static_cast<uint32_t>(sockets_.size());
  // The SQ only needs to hold one iteration's sends (GetSqe submits early if it fills). The
  // CQ should hold a completion per buffer and per send slot, so that it rarely overflows
  // into the kernel's (slower) overflow list.
  unsigned sq =
      std::bit_ceil(std::clamp(options_.send_queue_depth + 2 * listeners + 8, 64u, 4096u));
  unsigned cq = std::bit_ceil(std::min(
      options_.recv_buffer_count + options_.send_queue_depth + 2 * listeners + 16, 65536u));
  cq = std::max(cq, 2 * sq);
  bool tuned = false;
  if (int ret = SetupRing(sq, cq, &ring_, &tuned); ret < 0) {
    return absl::UnavailableError(absl::StrCat("io_uring_queue_init: ", Errno(ret)));
  }
  ring_ready_ = true;
  if (!tuned) {
    LWM2MD_LOG(kDebug, "net: shard %d: kernel refused SINGLE_ISSUER/COOP_TASKRUN; plain ring", id_);
  }
  // Both optional, both save a file lookup (and reference count round trip): per
  // io_uring_enter for the ring, per SQE for the sockets.
  io_uring_register_ring_fd(&ring_);
  fixed_files_ = listeners > 0 && io_uring_register_files(&ring_, sockets_.data(), listeners) == 0;

  uint32_t count = options_.recv_buffer_count;
  if (!buf_ring_memory_.Map(size_t{count} * sizeof(io_uring_buf))) {
    return absl::ResourceExhaustedError("cannot map the provided-buffer ring");
  }
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<uint64_t>(buf_ring_memory_.data());
  registration.ring_entries = count;
  registration.bgid = kBufferGroup;
  if (int ret = io_uring_register_buf_ring(&ring_, &registration, 0); ret < 0) {
    return absl::UnavailableError(absl::StrCat("io_uring_register_buf_ring: ", Errno(ret)));
  }
  buf_ring_ = reinterpret_cast<io_uring_buf_ring*>(buf_ring_memory_.data());
  io_uring_buf_ring_init(buf_ring_);
  buf_ring_mask_ = io_uring_buf_ring_mask(count);

  // The length given to the kernel is exact, so that a payload one byte over
  // recv_buffer_size comes back with MSG_TRUNC; the stride keeps buffers cache-line aligned.
  buffer_length_ = kBufferHeader + options_.recv_buffer_size;
  buffer_stride_ = (buffer_length_ + 63) / 64 * 64;
  if (!buffers_.Map(size_t{count} * buffer_stride_)) {
    return absl::ResourceExhaustedError("cannot map the receive buffers");
  }
  for (uint32_t id = 0; id < count; ++id) ReturnBuffer(id);
  io_uring_buf_ring_advance(buf_ring_, returned_);
  returned_ = 0;

  receivers_.resize(listeners);
  for (Receiver& r : receivers_) {
    r.header.msg_namelen = sizeof(sockaddr_in6);
    r.header.msg_controllen = 0;
  }
  return absl::OkStatus();
}

void IoUringShard::ReleaseBackend() {
  // Only after every receive has completed (Loop waits for it), so the kernel no longer
  // writes into the buffers unmapped below.
  if (ring_ready_) io_uring_queue_exit(&ring_);
  ring_ready_ = false;
  buf_ring_ = nullptr;
  buffers_.Reset();
  buf_ring_memory_.Reset();
}

io_uring_sqe* IoUringShard::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) [[unlikely]] {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
    LWM2MD_CHECK(sqe != nullptr);
  }
  return sqe;
}

void IoUringShard::ArmReceive(uint32_t listener) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_recvmsg_multishot(sqe, sockets_[listener], &receivers_[listener].header, 0);
  SetSocket(sqe, static_cast<int>(listener));
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, Tag(Op::kReceive, listener));
  receivers_[listener].armed = true;
  ++receives_armed_;
}

void IoUringShard::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(sqe, Tag(Op::kWake, 0));
  wake_armed_ = true;
}

void IoUringShard::CancelReceives() {
  for (uint32_t l = 0; l < receivers_.size(); ++l) {
    if (!receivers_[l].armed) continue;
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_cancel64(sqe, Tag(Op::kReceive, l), 0);
    io_uring_sqe_set_data64(sqe, Tag(Op::kCancel, 0));
  }
}

void IoUringShard::Reap() {
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    switch (OpOf(io_uring_cqe_get_data64(cqe))) {
      case Op::kReceive:
        OnReceive(*cqe);
        break;
      case Op::kSend:
        OnSendDone(*cqe);
        break;
      case Op::kWake:
        wake_armed_ = false;
        break;
      case Op::kCancel:
        break;
    }
  }
  if (seen > 0) io_uring_cq_advance(&ring_, seen);
  if (returned_ > 0) {
    io_uring_buf_ring_advance(buf_ring_, returned_);
    returned_ = 0;
  }
}

void IoUringShard::OnReceive(const io_uring_cqe& cqe) {
  uint32_t listener = IndexOf(cqe.user_data);
  Receiver& r = receivers_[listener];
  if (!(cqe.flags & IORING_CQE_F_MORE)) {
    // The kernel ended this multishot (out of buffers, an error, a cancel, or CQ
    // overflow); Loop re-arms it.
    r.armed = false;
    --receives_armed_;
  }
  if (cqe.flags & IORING_CQE_F_BUFFER) {
    r.failing = false;
    uint32_t id = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
    uint8_t* buffer = BufferAt(id);
    io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buffer, cqe.res, &r.header);
    if (out != nullptr) [[likely]] {
      if (out->flags & MSG_TRUNC) {
        metrics_.receive_truncated.Add();
      } else {
        auto* payload = static_cast<const uint8_t*>(io_uring_recvmsg_payload(out, &r.header));
        uint32_t length = io_uring_recvmsg_payload_length(out, cqe.res, &r.header);
        PeerAddress peer =
            PeerAddress::FromSockaddr(static_cast<const sockaddr*>(io_uring_recvmsg_name(out)),
                                      std::min<socklen_t>(out->namelen, r.header.msg_namelen));
        Deliver(static_cast<int>(listener), peer, {payload, length});
      }
    }
    ReturnBuffer(id);
    return;
  }
  if (cqe.res == -ENOBUFS) {
    metrics_.receive_buffers_exhausted.Add();
  } else if (cqe.res < 0 && cqe.res != -ECANCELED) {
    if (!r.failing) {
      LWM2MD_LOG(kWarning, "net: shard %d: recvmsg on listener %u failed: %s; retrying", id_,
                 listener, Errno(cqe.res));
    }
    r.failing = true;
    // Re-arming at once could spin on a persistent error.
    r.held = true;
    timers_->Schedule(now_ + std::chrono::milliseconds(10),
                      [this, listener] { receivers_[listener].held = false; });
  }
}

void IoUringShard::OnSendDone(const io_uring_cqe& cqe) {
  uint32_t slot = IndexOf(cqe.user_data);
  --sends_in_flight_;
  if (cqe.res >= 0) [[likely]] {
    CountSent(static_cast<size_t>(cqe.res));
  } else {
    metrics_.send_errors.Add();
    LWM2MD_LOG(kDebug, "net: shard %d: sendmsg failed: %s", id_, Errno(cqe.res));
  }
  sends_.Release(slot);
}

void IoUringShard::FlushSends() {
  uint32_t count = sends_.queued();
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t index = sends_.PeekQueued(i);
    SendQueue::Slot& slot = sends_.slot(index);
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_sendmsg(sqe, sockets_[slot.listener], &slot.header, 0);
    SetSocket(sqe, slot.listener);
    io_uring_sqe_set_data64(sqe, Tag(Op::kSend, index));
  }
  sends_.PopQueued(count);
  sends_in_flight_ += static_cast<int>(count);
}

void IoUringShard::Wait() {
  if (!PrepareToSleep()) {
    io_uring_submit(&ring_);
    return;
  }
  std::optional<Duration> timeout = WaitTimeout();
  if (exiting_) {
    timeout = std::min(timeout.value_or(Duration::max()), Duration(std::chrono::milliseconds(10)));
  }
  __kernel_timespec ts{};
  if (timeout) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout).count();
    ts.tv_sec = ns / 1'000'000'000;
    ts.tv_nsec = ns % 1'000'000'000;
  }
  io_uring_cqe* cqe = nullptr;
  // Submits this iteration's SQEs and waits in the same io_uring_enter.
  int ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout ? &ts : nullptr, nullptr);
  Woke();
  if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
    LWM2MD_LOG(kWarning, "net: shard %d: io_uring_enter: %s", id_, Errno(ret));
  }
}

void IoUringShard::Loop() {
  for (uint32_t l = 0; l < receivers_.size(); ++l) ArmReceive(l);
  ArmWake();
  while (true) {
    BeginIteration();
    Reap();
    RunTimers();
    DrainInbox();
    CheckInputStopped();
    if (!input_stopped()) {
      for (uint32_t l = 0; l < receivers_.size(); ++l) {
        if (!receivers_[l].armed && !receivers_[l].held) ArmReceive(l);
      }
    }
    if (!wake_armed_ && !exiting_) ArmWake();
    FlushSends();
    if (finishing()) {
      if (!exiting_) {
        bool idle =
            sends_.queued() == 0 && sends_in_flight_ == 0 && receives_armed_ == 0 && inbox_empty();
        if (idle || now_ >= finish_deadline()) {
          if (!idle) {
            LWM2MD_LOG(kWarning, "net: shard %d: stopping with %d sends unfinished", id_,
                       sends_in_flight_ + static_cast<int>(sends_.queued()));
          }
          exiting_ = true;
          exit_deadline_ = now_ + std::chrono::seconds(1);
          io_uring_sqe* sqe = GetSqe();
          io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
          io_uring_sqe_set_data64(sqe, Tag(Op::kCancel, 0));
        }
      } else if (Outstanding() == 0 || now_ >= exit_deadline_) {
        break;
      }
    }
    Wait();
  }
}

}  // namespace

std::unique_ptr<ShardImpl> MakeIoUringShard(int id, const ShardGroupOptions& options,
                                            std::vector<int> sockets, int wake_fd) {
  return std::make_unique<IoUringShard>(id, options, std::move(sockets), wake_fd);
}

absl::Status ProbeIoUring() {
  // Declared before the ring so that it is unmapped only after the ring is gone.
  Mapping memory;  // page 0: a one-entry buffer ring; page 1: its buffer
  io_uring ring;
  if (int ret = io_uring_queue_init(8, &ring, 0); ret < 0) {
    return absl::UnavailableError(absl::StrCat(
        "io_uring_setup: ", Errno(ret),
        ret == -EPERM ? " (kernel.io_uring_disabled or a seccomp policy forbids it)" : ""));
  }
  struct RingCloser {
    io_uring* ring;
    ~RingCloser() { io_uring_queue_exit(ring); }
  } closer{&ring};

  if (!(ring.features & IORING_FEAT_EXT_ARG)) {
    return absl::UnavailableError("kernel lacks IORING_FEAT_EXT_ARG (timed waits, Linux 5.11)");
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe == nullptr) return absl::UnavailableError("kernel cannot list io_uring opcodes");
  struct Needed {
    int op;
    const char* name;
  };
  static constexpr Needed kNeeded[] = {{IORING_OP_RECVMSG, "IORING_OP_RECVMSG"},
                                       {IORING_OP_SENDMSG, "IORING_OP_SENDMSG"},
                                       {IORING_OP_READ, "IORING_OP_READ"},
                                       {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"}};
  for (const Needed& needed : kNeeded) {
    if (!io_uring_opcode_supported(probe, needed.op)) {
      io_uring_free_probe(probe);
      return absl::UnavailableError(absl::StrCat("kernel lacks io_uring opcode ", needed.name));
    }
  }
  io_uring_free_probe(probe);

  // Provided-buffer rings and multishot recvmsg are flags and registrations, not opcodes:
  // the only reliable check is to use them once, on a loopback datagram to ourselves.
  size_t page = PageRound(1);
  if (!memory.Map(2 * page)) return absl::ResourceExhaustedError("mmap");
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<uint64_t>(memory.data());
  registration.ring_entries = 1;
  registration.bgid = kBufferGroup;
  if (int ret = io_uring_register_buf_ring(&ring, &registration, 0); ret < 0) {
    return absl::UnavailableError(absl::StrCat(
        "provided-buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19) unavailable: ", Errno(ret)));
  }
  auto* buf_ring = reinterpret_cast<io_uring_buf_ring*>(memory.data());
  io_uring_buf_ring_init(buf_ring);
  io_uring_buf_ring_add(buf_ring, memory.data() + page, static_cast<unsigned>(page), 0,
                        io_uring_buf_ring_mask(1), 0);
  io_uring_buf_ring_advance(buf_ring, 1);

  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "cannot check multishot recvmsg: socket");
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } fd_closer{fd};
  sockaddr_in self{};
  self.sin_family = AF_INET;
  self.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(self);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof(self)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &length) != 0 ||
      ::sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&self), sizeof(self)) != 1) {
    return absl::ErrnoToStatus(errno, "cannot check multishot recvmsg on 127.0.0.1");
  }

  msghdr header{};
  header.msg_namelen = sizeof(sockaddr_in6);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_recvmsg_multishot(sqe, fd, &header, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, 1);
  __kernel_timespec one_second{.tv_sec = 1, .tv_nsec = 0};
  io_uring_cqe* cqe = nullptr;
  int ret = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &one_second, nullptr);
  if (ret < 0 || cqe == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("multishot recvmsg check: no completion: ", Errno(ret < 0 ? ret : -ETIME)));
  }
  int res = cqe->res;
  unsigned flags = cqe->flags;
  io_uring_cqe_seen(&ring, cqe);
  if (res < 0) {
    return absl::UnavailableError(
        absl::StrCat("multishot recvmsg (Linux 6.0) unavailable: ", Errno(res)));
  }
  if (!(flags & IORING_CQE_F_MORE) || !(flags & IORING_CQE_F_BUFFER)) {
    return absl::UnavailableError("multishot recvmsg (Linux 6.0) unavailable: single shot");
  }
  // Wait for the receive to end before the buffer it may still select is unmapped.
  sqe = io_uring_get_sqe(&ring);
  io_uring_prep_cancel64(sqe, 1, 0);
  io_uring_sqe_set_data64(sqe, 2);
  io_uring_submit(&ring);
  for (int i = 0; i < 4; ++i) {
    if (io_uring_wait_cqe_timeout(&ring, &cqe, &one_second) != 0) break;
    bool ended = cqe->user_data == 1 && !(cqe->flags & IORING_CQE_F_MORE);
    io_uring_cqe_seen(&ring, cqe);
    if (ended) break;
  }
  return absl::OkStatus();
}

}  // namespace lwm2md::net::internal
