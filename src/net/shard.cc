#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/log.h"
#include "net/shard_internal.h"

namespace lwm2md::net {
namespace {
thread_local Shard* current_shard = nullptr;
}  // namespace

std::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kAuto:
      return "auto";
    case Backend::kIoUring:
      return "io_uring";
    case Backend::kEpoll:
      return "epoll";
  }
  return "unknown";
}

Shard* CurrentShard() { return current_shard; }

namespace internal {

// ---- MpscInbox

MpscInbox::MpscInbox() : head_(&stub_), tail_(&stub_) {}

MpscInbox::~MpscInbox() { DiscardAll(); }

void MpscInbox::PushNode(Node* node) {
  node->next.store(nullptr, std::memory_order_relaxed);
  Node* previous = head_.exchange(node, std::memory_order_acq_rel);
  previous->next.store(node, std::memory_order_release);
}

void MpscInbox::Push(absl::AnyInvocable<void()> fn) {
  // Counted before the node is reachable, so the consumer never sees an item it cannot
  // account for; it may briefly see a count it cannot pop yet (and then does not sleep).
  pending_.fetch_add(1, std::memory_order_seq_cst);
  Node* node = new Node;
  node->fn = std::move(fn);
  PushNode(node);
}

MpscInbox::Node* MpscInbox::Pop() {
  Node* tail = tail_;
  Node* next = tail->next.load(std::memory_order_acquire);
  if (tail == &stub_) {
    if (next == nullptr) return nullptr;
    tail_ = next;
    tail = next;
    next = next->next.load(std::memory_order_acquire);
  }
  if (next != nullptr) {
    tail_ = next;
    return tail;
  }
  if (tail != head_.load(std::memory_order_acquire)) return nullptr;  // a push in progress
  // tail is the last node: put the stub behind it so tail can be handed out.
  PushNode(&stub_);
  next = tail->next.load(std::memory_order_acquire);
  if (next != nullptr) {
    tail_ = next;
    return tail;
  }
  return nullptr;
}

size_t MpscInbox::Drain(size_t limit) {
  size_t ran = 0;
  while (ran < limit) {
    Node* node = Pop();
    if (node == nullptr) break;
    node->fn();
    delete node;
    ++ran;
  }
  if (ran > 0) pending_.fetch_sub(static_cast<int64_t>(ran), std::memory_order_seq_cst);
  return ran;
}

void MpscInbox::DiscardAll() {
  int64_t discarded = 0;
  while (Node* node = Pop()) {
    delete node;
    ++discarded;
  }
  if (discarded > 0) pending_.fetch_sub(discarded, std::memory_order_seq_cst);
}

// ---- SendQueue

void SendQueue::Init(uint32_t depth, uint32_t max_datagram) {
  max_datagram_ = max_datagram;
  // Left uninitialised (Push fills a slot before use): a deep queue then costs address
  // space, and the kernel commits a page only when a slot on it is first written. The free
  // list is a stack, so that is only as many slots as were ever queued at once.
  slots_.reset(new Slot[depth]);
  data_.reset(new uint8_t[size_t{depth} * max_datagram]);
  free_.reserve(depth);
  for (uint32_t i = depth; i-- > 0;) free_.push_back(i);
  fifo_.assign(std::bit_ceil(depth), 0);
  fifo_mask_ = static_cast<uint32_t>(fifo_.size() - 1);
}

bool SendQueue::Push(int listener, const PeerAddress& to, std::span<const uint8_t> bytes) {
  if (free_.empty() || bytes.size() > max_datagram_) return false;
  uint32_t index = free_.back();
  free_.pop_back();
  Slot& s = slots_[index];
  std::memcpy(&s.address, to.sockaddr_ptr(), to.length());
  s.iov.iov_base = data_.get() + size_t{index} * max_datagram_;
  s.iov.iov_len = bytes.size();
  if (!bytes.empty()) std::memcpy(s.iov.iov_base, bytes.data(), bytes.size());
  s.header = msghdr{};
  s.header.msg_name = &s.address;
  s.header.msg_namelen = to.length();
  s.header.msg_iov = &s.iov;
  s.header.msg_iovlen = 1;
  s.listener = listener;
  fifo_[(fifo_head_ + queued_) & fifo_mask_] = index;
  ++queued_;
  return true;
}

// ---- ShardImpl

ShardImpl::ShardImpl(int id, const ShardGroupOptions& options, std::vector<int> sockets,
                     int wake_fd)
    : id_(id), options_(options), sockets_(std::move(sockets)), wake_fd_(wake_fd) {}

ShardImpl::~ShardImpl() {
  // The handler died on the shard thread (Run); nothing can touch the timers any more.
  LWM2MD_CHECK(handler_ == nullptr);
  timers_.reset();
  for (int fd : sockets_) ::close(fd);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ShardImpl::DcheckOnShard() const { LWM2MD_DCHECK(current_shard == this); }

TimePoint ShardImpl::Now() const {
  DcheckOnShard();
  return now_;
}

TimerWheel& ShardImpl::timers() {
  DcheckOnShard();
  return *timers_;
}

DatagramHandler* ShardImpl::handler() {
  DcheckOnShard();
  return handler_.get();
}

bool ShardImpl::Send(int listener, const PeerAddress& to, std::span<const uint8_t> bytes) {
  DcheckOnShard();
  LWM2MD_DCHECK(listener >= 0 && listener < static_cast<int>(sockets_.size()));
  if (listener < 0 || listener >= static_cast<int>(sockets_.size()) || to.empty() ||
      !sends_.Push(listener, to, bytes)) [[unlikely]] {
    metrics_.send_errors.Add();
    return false;
  }
  return true;
}

void ShardImpl::Post(absl::AnyInvocable<void()> fn) {
  inbox_.Push(std::move(fn));
  // Pairs with the fence in PrepareToSleep (a Dekker handshake): either the shard sees the
  // pending count and does not block, or this sees it sleeping and wakes it. Only the
  // poster that flips the flag writes, so a burst of posts costs one eventfd write.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed) &&
      sleeping_.exchange(false, std::memory_order_relaxed)) {
    uint64_t one = 1;
    // Cannot block: an eventfd write only blocks when its counter would overflow 2^64-2.
    ssize_t written = ::write(wake_fd_, &one, sizeof(one));
    (void)written;
  }
}

bool ShardImpl::PrepareToSleep() {
  sleeping_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (inbox_.pending() > 0) {
    sleeping_.store(false, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void ShardImpl::DrainInbox() {
  int64_t waiting = inbox_.pending();
  if (waiting <= 0) return;
  size_t ran = inbox_.Drain(static_cast<size_t>(waiting));
  metrics_.inbox_posted.Add(ran);
  metrics_.inbox_depth.Set(static_cast<uint64_t>(std::max<int64_t>(inbox_.pending(), 0)));
}

std::optional<Duration> ShardImpl::WaitTimeout() const {
  std::optional<TimePoint> deadline = timers_->NextDeadline();
  if (finishing_) deadline = deadline ? std::min(*deadline, finish_deadline_) : finish_deadline_;
  if (!deadline) return std::nullopt;
  return std::max(*deadline - Clock::now(), Duration::zero());
}

int TimeoutMilliseconds(std::optional<Duration> timeout) {
  if (!timeout) return -1;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(*timeout).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

void ShardImpl::StopInput(absl::AnyInvocable<void()> done) {
  DcheckOnShard();
  input_stopped_ = true;
  input_stopped_done_ = std::move(done);
  CancelReceives();
  CheckInputStopped();
}

void ShardImpl::CheckInputStopped() {
  if (input_stopped_done_ && ReceivesIdle()) {
    absl::AnyInvocable<void()> done = std::move(input_stopped_done_);
    input_stopped_done_ = nullptr;
    done();
  }
}

void ShardImpl::Finish() {
  DcheckOnShard();
  finishing_ = true;
  finish_deadline_ = Clock::now() + kFinishTimeout;
  handler_->OnStop();
}

void ShardImpl::Run(const HandlerFactory& factory, int cpu, StartupReport* report) {
  current_shard = this;
  char name[16];
  std::snprintf(name, sizeof(name), "shard-%d", id_);
  pthread_setname_np(pthread_self(), name);
  if (cpu >= 0) {
    // Pinned before anything is allocated, so that the rings and buffers are first touched
    // (and placed, on NUMA machines) on the shard's own node.
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (int error = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); error != 0) {
      LWM2MD_LOG(kWarning, "net: shard %d cannot be pinned to cpu %d: %s", id_, cpu,
                 std::strerror(error));
    }
  }
  now_ = Clock::now();
  timers_.emplace(now_);
  sends_.Init(options_.send_queue_depth, options_.recv_buffer_size);
  absl::Status status = InitBackend();
  if (status.ok()) {
    handler_ = factory(*this);
    if (handler_ == nullptr) {
      status = absl::InternalError(absl::StrFormat("shard %d: handler factory returned null", id_));
    }
  }
  bool ok = status.ok();
  report->Publish(std::move(status));
  if (ok) Loop();
  // Functions posted too late are dropped here, on the shard, and the handler is destroyed
  // on the thread that made it, before the timers its destructor may cancel.
  inbox_.DiscardAll();
  handler_.reset();
  ReleaseBackend();
  current_shard = nullptr;
}

}  // namespace internal
}  // namespace lwm2md::net
