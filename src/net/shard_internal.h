#pragma once
// Internal to net/: what the io_uring and epoll shards share (inbox, send queue, the shard
// lifecycle), and the two backend factories. Nothing outside src/net includes this.

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "net/shard.h"

namespace lwm2md::net::internal {

// Functions posted to one shard from any thread: Vyukov's intrusive MPSC queue. Push is one
// atomic exchange (plus the node allocation: posting is control plane); the consumer pops
// without any lock or read-modify-write per item.
class MpscInbox {
 public:
  MpscInbox();
  ~MpscInbox();  // destroys, without running, whatever is still queued
  MpscInbox(const MpscInbox&) = delete;
  MpscInbox& operator=(const MpscInbox&) = delete;

  // Any thread.
  void Push(absl::AnyInvocable<void()> fn);
  // Functions pushed and not yet run or discarded. Read by the consumer to decide whether
  // it may sleep (pairs with the fence in ShardImpl::Post).
  int64_t pending() const { return pending_.load(std::memory_order_seq_cst); }

  // Consumer thread only. Runs at most `limit` functions in push order (a bound, so that a
  // function that posts to its own shard cannot keep the drain going forever). Returns the
  // number run.
  size_t Drain(size_t limit);
  // Consumer thread only: destroys what is queued without running it.
  void DiscardAll();

 private:
  struct Node {
    std::atomic<Node*> next{nullptr};
    absl::AnyInvocable<void()> fn;
  };
  void PushNode(Node* node);
  // Null when empty, or when a producer is between its exchange and its link (the caller
  // retries on a later loop iteration: pending() stays above zero meanwhile).
  Node* Pop();

  alignas(64) std::atomic<Node*> head_;  // last pushed; written by producers
  std::atomic<int64_t> pending_{0};
  alignas(64) Node* tail_;  // next to pop; consumer only
  Node stub_;
};

// Datagrams queued by Send until the loop hands them to the kernel. Fixed slots allocated
// once per shard, each holding a copy of the datagram and a ready-made msghdr, so that both
// the sendmsg SQEs and sendmmsg use them without further copies or allocation.
class SendQueue {
 public:
  struct Slot {
    msghdr header;
    iovec iov;
    sockaddr_in6 address;  // large enough for either family
    int listener;
  };

  void Init(uint32_t depth, uint32_t max_datagram);
  uint32_t max_datagram() const { return max_datagram_; }

  // Copies the datagram into a free slot and queues it; false when none is free.
  bool Push(int listener, const PeerAddress& to, std::span<const uint8_t> bytes);

  // Queued slots, oldest first, not yet handed to the kernel.
  uint32_t queued() const { return queued_; }
  uint32_t PeekQueued(uint32_t i) const { return fifo_[(fifo_head_ + i) & fifo_mask_]; }
  void PopQueued(uint32_t n) {
    fifo_head_ = (fifo_head_ + n) & fifo_mask_;
    queued_ -= n;
  }
  Slot& slot(uint32_t index) { return slots_[index]; }
  // Returns a slot whose send completed (or was abandoned) to the free list.
  void Release(uint32_t index) { free_.push_back(index); }

 private:
  uint32_t max_datagram_ = 0;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<uint8_t[]> data_;
  std::vector<uint32_t> free_;  // a stack: the most recently used slot is cache-warm
  std::vector<uint32_t> fifo_;  // ring of queued slot indices, capacity a power of two
  uint32_t fifo_mask_ = 0;
  uint32_t fifo_head_ = 0;
  uint32_t queued_ = 0;
};

// How a shard's start-up went, handed from the shard thread to Start. (std primitives
// rather than absl ones so that ThreadSanitizer, which cannot see into the distribution's
// uninstrumented abseil, follows the hand-over.)
class StartupReport {
 public:
  void Publish(absl::Status status) {
    std::lock_guard lock(mutex_);
    status_ = std::move(status);
    done_ = true;
    ready_.notify_one();
  }
  absl::Status Wait() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return done_; });
    return status_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  bool done_ = false;
  absl::Status status_;
};

// The lifecycle and the parts of a shard that do not depend on the backend. Lives on its
// shard thread: everything except Post and metrics() is called there (debug-checked).
class ShardImpl : public Shard {
 public:
  // Takes ownership of sockets (one per listener, already bound) and of wake_fd (an
  // eventfd that Post writes when the shard may be sleeping).
  ShardImpl(int id, const ShardGroupOptions& options, std::vector<int> sockets, int wake_fd);
  ~ShardImpl() override;

  // ShardIo.
  int shard_id() const override { return id_; }
  TimePoint Now() const override;
  bool Send(int listener, const PeerAddress& to, std::span<const uint8_t> bytes) override;
  TimerWheel& timers() override;
  // Shard.
  void Post(absl::AnyInvocable<void()> fn) override;
  NetMetrics& metrics() override { return metrics_; }
  DatagramHandler* handler() override;

  // The shard thread's body: pins it, sets the backend up, builds the handler, reports the
  // outcome through report (not touched after it is published), then runs the loop until
  // Finish has drained it.
  void Run(const HandlerFactory& factory, int cpu, StartupReport* report);

  // Phase one of a group stop, on the shard thread: no more receives. done runs on the
  // shard thread once no receive is outstanding.
  void StopInput(absl::AnyInvocable<void()> done);
  // Phase two, on the shard thread: the handler's OnStop, then the loop flushes queued
  // sends and returns.
  void Finish();

 protected:
  // How long Finish may spend flushing sends before the loop gives up on them.
  static constexpr Duration kFinishTimeout = std::chrono::seconds(2);

  virtual absl::Status InitBackend() = 0;
  virtual void Loop() = 0;
  virtual void ReleaseBackend() = 0;
  virtual void CancelReceives() = 0;
  virtual bool ReceivesIdle() const = 0;

  void BeginIteration() {
    now_ = Clock::now();
    metrics_.loop_iterations.Add();
  }
  void RunTimers() { timers_->Advance(now_); }
  void DrainInbox();
  // Called after each batch of receive completions: runs StopInput's done once no receive
  // is outstanding.
  void CheckInputStopped();
  // Announces that the loop is about to block. False when something was posted meanwhile
  // (the loop must not block then). Every true must be followed by Woke() after the wait.
  bool PrepareToSleep();
  void Woke() { sleeping_.store(false, std::memory_order_relaxed); }
  // How long the loop may block: until the next timer, and while finishing no longer than
  // the finish deadline. Measured from the real clock, not from the iteration's start.
  std::optional<Duration> WaitTimeout() const;

  bool inbox_empty() const { return inbox_.pending() == 0; }
  bool input_stopped() const { return input_stopped_; }
  bool finishing() const { return finishing_; }
  TimePoint finish_deadline() const { return finish_deadline_; }
  // The datagram handed to the handler, counted at the only place a receive is counted.
  void Deliver(int listener, const PeerAddress& peer, std::span<const uint8_t> bytes) {
    metrics_.packets_received.Add();
    metrics_.bytes_received.Add(bytes.size());
    handler_->OnDatagram(ReceivedDatagram{listener, peer, bytes});
  }
  void CountSent(size_t bytes) {
    metrics_.packets_sent.Add();
    metrics_.bytes_sent.Add(bytes);
  }

  const int id_;
  const ShardGroupOptions& options_;  // owned by the group, outlives the shard
  const std::vector<int> sockets_;
  const int wake_fd_;
  TimePoint now_;
  std::optional<TimerWheel> timers_;  // made and destroyed on the shard thread
  NetMetrics metrics_;
  std::unique_ptr<DatagramHandler> handler_;
  SendQueue sends_;

 private:
  void DcheckOnShard() const;

  MpscInbox inbox_;
  std::atomic<bool> sleeping_{false};
  bool input_stopped_ = false;
  absl::AnyInvocable<void()> input_stopped_done_;
  bool finishing_ = false;
  TimePoint finish_deadline_;
};

// Checks, on a scratch ring, everything the io_uring shard needs: the opcodes, extended
// wait arguments, provided buffer rings and multishot recvmsg. The error says what is
// missing.
absl::Status ProbeIoUring();

std::unique_ptr<ShardImpl> MakeIoUringShard(int id, const ShardGroupOptions& options,
                                            std::vector<int> sockets, int wake_fd);
std::unique_ptr<ShardImpl> MakeEpollShard(int id, const ShardGroupOptions& options,
                                          std::vector<int> sockets, int wake_fd);

// An epoll_wait timeout: -1 for none, else milliseconds rounded up, so that the wait never
// ends before the timer it waits for.
int TimeoutMilliseconds(std::optional<Duration> timeout);

}  // namespace lwm2md::net::internal
