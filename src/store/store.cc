#include "store/store.h"

#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/check.h"
#include "base/log.h"

namespace lwm2md::store {
namespace {

constexpr std::string_view kSchemaKey = "schema";
constexpr std::string_view kSchemaVersion = "1";
// With MDB_NOTLS every live read transaction holds one reader slot, so this bounds concurrent
// Get/Scan/Count calls (shards plus API threads), not the number of threads. 64 bytes each in
// lock.mdb.
constexpr unsigned kMaxReaders = 1024;
// LMDB must not be opened twice in one process (closing one handle drops the other's POSIX
// locks), and two servers on one directory would interleave their data. An flock on this file
// refuses both; flock locks belong to the open file description, so a second Open in the same
// process conflicts too.
constexpr char kLockFileName[] = "lwm2md.lock";
// EIO from a commit is LMDB's report of a short write, which on a full file system is the
// usual cause; below this much free space we call it a full disk.
constexpr uint64_t kNearlyFullBytes = uint64_t{1} << 20;

MDB_val ToVal(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view FromVal(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

// Bytes from a file, for an error message: printable ASCII as is, the rest as \xNN, at most
// limit bytes.
std::string Printable(std::string_view bytes, size_t limit = 64) {
  std::string out;
  for (unsigned char c : bytes.substr(0, limit)) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("\\x%02x", c);
    }
  }
  if (bytes.size() > limit) out += "...";
  return out;
}

uint64_t Nanos(std::chrono::steady_clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

bool NearlyFull(const std::string& dir) {
  struct statvfs st;
  if (statvfs(dir.c_str(), &st) != 0) return false;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize < kNearlyFullBytes;
}

// What an error from an operation inside the writer's transaction means for the group.
enum class Fault {
  kBatch,    // this batch is bad (e.g. key too long); the others are fine
  kTxnFull,  // the transaction holds too many dirty pages; commit what came before
  kFatal,    // the environment cannot take more writes
};

Fault Classify(int rc) {
  switch (rc) {
    case MDB_BAD_VALSIZE:
      return Fault::kBatch;
    case MDB_TXN_FULL:
      return Fault::kTxnFull;
    default:
      return Fault::kFatal;
  }
}

absl::Status OpenError(int rc, const Options& options) {
  const std::string file = options.path + "/data.mdb";
  switch (rc) {
    case MDB_MAP_FULL:
      return absl::ResourceExhaustedError(
          absl::StrFormat("store: LMDB map is full (map_size_mb=%d); raise store.map_size_mb",
                          options.map_size_bytes >> 20));
    case MDB_INVALID:
      return absl::FailedPreconditionError(absl::StrFormat(
          "store: %s is not an LMDB data file (%s); move it away or point store.path at "
          "another directory to start empty, or restore the directory from a backup",
          file, mdb_strerror(rc)));
    case MDB_VERSION_MISMATCH:
      return absl::FailedPreconditionError(absl::StrFormat(
          "store: %s (or lock.mdb beside it) was written by an incompatible LMDB version "
          "(this build uses %s); convert it with mdb_dump/mdb_load, or move it away",
          file, MDB_VERSION_STRING));
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
      return absl::DataLossError(absl::StrFormat(
          "store: %s is corrupted (%s); restore the directory from a backup or move it away "
          "to start empty",
          file, mdb_strerror(rc)));
    case MDB_INCOMPATIBLE:
      return absl::FailedPreconditionError(absl::StrFormat(
          "store: %s is an LMDB environment of another application (%s); point store.path "
          "at lwm2md's own data directory",
          file, mdb_strerror(rc)));
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(
          absl::StrFormat("store: cannot open %s: %s; check the permissions of store.path", file,
                          mdb_strerror(rc)));
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(absl::StrFormat("store: disk full opening %s", file));
    default:
      return absl::InternalError(
          absl::StrFormat("store: cannot open %s: %s (%d)", file, mdb_strerror(rc), rc));
  }
}

absl::Status ReadError(int rc, std::string_view what, Table table) {
  if (rc == MDB_READERS_FULL) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("store: more than %d concurrent readers; %s on %s refused", kMaxReaders,
                        what, TableName(table)));
  }
  return absl::InternalError(absl::StrFormat("store: %s on %s failed: %s (%d)", what,
                                             TableName(table), mdb_strerror(rc), rc));
}

// A read-only transaction for one call. MDB_NOTLS lets any thread begin one, including a
// thread that is in the middle of another store call.
class ReadTxn {
 public:
  ReadTxn() = default;
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  ~ReadTxn() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  int Begin(MDB_env* env) { return mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_); }
  MDB_txn* get() const { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
};

class Cursor {
 public:
  Cursor() = default;
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor() {
    if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  }
  int Open(MDB_txn* txn, MDB_dbi dbi) { return mdb_cursor_open(txn, dbi, &cursor_); }
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

// Keys with the prefix sort together from the first key >= prefix, so after each delete the
// next one is found again by the same seek (a fresh seek avoids relying on cursor state after
// mdb_cursor_del).
int DeletePrefix(MDB_txn* txn, MDB_dbi dbi, std::string_view prefix) {
  Cursor cursor;
  int rc = cursor.Open(txn, dbi);
  while (rc == 0) {
    MDB_val key = ToVal(prefix);
    MDB_val value;
    rc = mdb_cursor_get(cursor.get(), &key, &value, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc != 0) break;
    if (!FromVal(key).starts_with(prefix)) return 0;
    rc = mdb_cursor_del(cursor.get(), 0);
  }
  return rc;
}

struct Pending {
  WriteBatch batch;
  WriteCallback done;
  bool flush = false;  // a Flush() marker: no operations, completes once the group is synced
};

}  // namespace

class Store::Impl {
 public:
  explicit Impl(const Options& options) : options_(options) {
    data_file_ = options_.path + "/data.mdb";
  }
  ~Impl();

  absl::Status Open();
  void Shutdown();

  void Submit(WriteBatch batch, WriteCallback done);
  absl::Status Flush();
  absl::StatusOr<std::optional<std::string>> Get(Table table, std::string_view key) const;
  absl::Status Scan(Table table, std::string_view prefix, std::string_view start_after,
                    absl::FunctionRef<bool(std::string_view, std::string_view)> visit) const;
  absl::StatusOr<uint64_t> Count(Table table) const;
  absl::Status health() const {
    absl::MutexLock lock(&mu_);
    return health_;
  }
  void SetFatalHandler(absl::AnyInvocable<void(absl::Status)> handler) {
    absl::MutexLock lock(&mu_);
    fatal_handler_ = std::move(handler);
  }
  void Pause(bool paused) {
    absl::MutexLock lock(&mu_);
    paused_ = paused;
    cv_.Signal();
  }
  bool OnWriterThread() const { return std::this_thread::get_id() == writer_id_; }
  uint64_t used_bytes() const;
  uint64_t map_size_bytes() const;

  const Options& options() const { return options_; }
  const StoreMetrics& metrics() const { return metrics_; }

 private:
  absl::Status OpenEnvironment();
  absl::Status OpenTables();
  absl::Status CheckOnlyOurTables(MDB_txn* txn, MDB_dbi main_dbi) const;

  MDB_dbi dbi(Table table) const {
    LWM2MD_DCHECK(static_cast<size_t>(table) < kTableCount);
    return dbis_[static_cast<size_t>(table)];
  }

  // --- writer thread ---
  void WriterLoop();
  bool WorkReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() && (!paused_ || stopping_);
  }
  void TakeGroupLocked(std::vector<Pending>& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ProcessGroup(std::vector<Pending>& group);
  // Applies every operation of batch; on error returns the LMDB code and the failing
  // operation's index.
  int ApplyBatch(MDB_txn* txn, const WriteBatch& batch, size_t* failed_op) const;
  absl::Status BatchError(int rc, const WriteBatch& batch, size_t failed_op) const;
  absl::Status WriterError(int rc, std::string_view what) const;
  absl::Status SyncNow();
  void MaybePeriodicSync();
  // Entering the failed state is two steps so that health() already reports the error when
  // the failed callbacks run: BeginFatal (Submit refuses from here on; takes the queue and the
  // handler), then the caller fails its own callbacks, then FinishFatal.
  struct FatalState {
    absl::Status status;
    std::deque<Pending> queued;
    absl::AnyInvocable<void(absl::Status)> handler;
    bool first = false;  // this call moved the store into the failed state
  };
  FatalState BeginFatal(const absl::Status& status);
  void FinishFatal(FatalState state);
  void UpdateQueuedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    metrics_.SetQueued(queued_bytes_, queued_batches_);
  }

  const Options options_;
  std::string data_file_;
  int lock_fd_ = -1;
  MDB_env* env_ = nullptr;
  MDB_dbi dbis_[kTableCount] = {};
  StoreMetrics metrics_;

  mutable absl::Mutex mu_;
  // Only the writer waits on it: Submit and Pause signal.
  absl::CondVar cv_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t queued_batches_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  absl::AnyInvocable<void(absl::Status)> fatal_handler_ ABSL_GUARDED_BY(mu_);

  std::thread writer_;
  std::thread::id writer_id_;
  // Writer-thread state (kAsync): commits not yet synced and when the next sync is due.
  bool unsynced_ = false;
  absl::Time next_sync_ = absl::InfiniteFuture();
};

// ---------------------------------------------------------------------------------------
// Open / close

absl::Status Store::Impl::Open() {
  if (options_.path.empty()) {
    return absl::InvalidArgumentError("store: store.path is empty");
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.path, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "store: cannot create directory %s: %s; check store.path", options_.path, ec.message()));
  }
  if (!std::filesystem::is_directory(options_.path, ec)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "store: %s is not a directory; store.path names the data directory", options_.path));
  }
  const std::string lock_path = options_.path + "/" + kLockFileName;
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) {
    return absl::PermissionDeniedError(
        absl::StrFormat("store: cannot create %s: %s; check the permissions of store.path",
                        lock_path, std::strerror(errno)));
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "store: %s is in use by another lwm2md (or another store in this process); "
          "give each server its own store.path",
          options_.path));
    }
    return absl::InternalError(
        absl::StrFormat("store: cannot lock %s: %s", lock_path, std::strerror(err)));
  }
  if (absl::Status status = OpenEnvironment(); !status.ok()) return status;
  if (absl::Status status = OpenTables(); !status.ok()) return status;

  writer_ = std::thread([this] { WriterLoop(); });
  writer_id_ = writer_.get_id();
  LWM2MD_LOG(kInfo, "store: opened %s (map %d MiB, %s, %d tables, %d bytes used)", options_.path,
             map_size_bytes() >> 20, options_.durability == Durability::kSync ? "sync" : "async",
             kTableCount, used_bytes());
  return absl::OkStatus();
}

absl::Status Store::Impl::OpenEnvironment() {
  int rc = mdb_env_create(&env_);
  if (rc != 0) {
    env_ = nullptr;
    return absl::InternalError(absl::StrFormat("store: mdb_env_create: %s", mdb_strerror(rc)));
  }
  if ((rc = mdb_env_set_mapsize(env_, options_.map_size_bytes)) != 0 ||
      (rc = mdb_env_set_maxdbs(env_, kTableCount)) != 0 ||
      (rc = mdb_env_set_maxreaders(env_, kMaxReaders)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("store: cannot configure the LMDB environment (map_size_bytes=%d): %s",
                        options_.map_size_bytes, mdb_strerror(rc)));
  }
  // MDB_NOTLS: read transactions are not tied to a thread, so any thread (shard, API, writer)
  // may read, and one thread may hold more than one.
  unsigned flags = MDB_NOTLS;
  if (options_.durability == Durability::kAsync) flags |= MDB_NOSYNC | MDB_NOMETASYNC;
  // 0600: the store holds device credentials.
  rc = mdb_env_open(env_, options_.path.c_str(), flags, 0600);
  if (rc != 0) return OpenError(rc, options_);
  return absl::OkStatus();
}

// The cursor is closed before the caller ends the transaction (a write transaction's cursors
// must not outlive it).
absl::Status Store::Impl::CheckOnlyOurTables(MDB_txn* txn, MDB_dbi main_dbi) const {
  Cursor cursor;
  int rc = cursor.Open(txn, main_dbi);
  if (rc != 0) return OpenError(rc, options_);
  MDB_val key, value;
  for (rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
    bool ours = false;
    for (int t = 0; t < kTableCount; ++t) ours |= FromVal(key) == TableName(Table(t));
    if (!ours) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "store: %s holds data that is not lwm2md's (key \"%s\" in the main database); "
          "point store.path at lwm2md's own data directory",
          data_file_, Printable(FromVal(key))));
    }
  }
  if (rc != MDB_NOTFOUND) return OpenError(rc, options_);
  return absl::OkStatus();
}

// Opens every table in one write transaction (the handles then serve every later
// transaction) and checks or writes the schema marker.
absl::Status Store::Impl::OpenTables() {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return OpenError(rc, options_);
  auto fail = [&](absl::Status status) {
    mdb_txn_abort(txn);
    return status;
  };

  // The unnamed database lists the named ones. Before lwm2md has written its schema marker
  // it may hold nothing but our table names; anything else is some other program's data.
  MDB_dbi main_dbi;
  if ((rc = mdb_dbi_open(txn, nullptr, 0, &main_dbi)) != 0) {
    return fail(OpenError(rc, options_));
  }
  bool marked = false;
  {
    MDB_dbi meta;
    if (mdb_dbi_open(txn, std::string(TableName(Table::kMeta)).c_str(), 0, &meta) == 0) {
      MDB_val key = ToVal(kSchemaKey);
      MDB_val value;
      marked = mdb_get(txn, meta, &key, &value) == 0;
    }
  }
  if (!marked) {
    if (absl::Status status = CheckOnlyOurTables(txn, main_dbi); !status.ok()) {
      return fail(std::move(status));
    }
  }

  for (int t = 0; t < kTableCount; ++t) {
    const std::string name(TableName(Table(t)));
    rc = mdb_dbi_open(txn, name.c_str(), MDB_CREATE, &dbis_[t]);
    if (rc != 0) return fail(OpenError(rc, options_));
  }

  MDB_val key = ToVal(kSchemaKey);
  MDB_val value;
  rc = mdb_get(txn, dbi(Table::kMeta), &key, &value);
  if (rc == MDB_NOTFOUND) {
    MDB_val version = ToVal(kSchemaVersion);
    rc = mdb_put(txn, dbi(Table::kMeta), &key, &version, 0);
    if (rc != 0) return fail(OpenError(rc, options_));
  } else if (rc != 0) {
    return fail(OpenError(rc, options_));
  } else if (FromVal(value) != kSchemaVersion) {
    return fail(absl::FailedPreconditionError(absl::StrFormat(
        "store: %s has schema version \"%s\" but this lwm2md understands version %s; run the "
        "lwm2md release that wrote it, or move the directory away to start empty",
        data_file_, Printable(FromVal(value), 32), kSchemaVersion)));
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return OpenError(rc, options_);
  return absl::OkStatus();
}

void Store::Impl::Shutdown() {
  // The writer cannot join itself: a callback or fatal handler must post the store's
  // destruction to another thread.
  LWM2MD_CHECK(!OnWriterThread());
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.Signal();
  }
  if (writer_.joinable()) writer_.join();
}

Store::Impl::~Impl() {
  Shutdown();
  if (env_ != nullptr) mdb_env_close(env_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

// ---------------------------------------------------------------------------------------
// Submitting

void Store::Impl::Submit(WriteBatch batch, WriteCallback done) {
  const size_t bytes = batch.byte_size();
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::CancelledError("store: stopping");
    } else if (!health_.ok()) {
      refused = health_;
    } else if (queued_bytes_ + bytes > options_.max_queued_bytes) {
      refused = absl::ResourceExhaustedError(absl::StrFormat(
          "store: write queue full (%d bytes queued, batch of %d bytes, max_queued_bytes=%d); "
          "the disk is not keeping up",
          queued_bytes_, bytes, options_.max_queued_bytes));
    } else {
      queue_.push_back(Pending{std::move(batch), std::move(done)});
      queued_bytes_ += bytes;
      ++queued_batches_;
      UpdateQueuedLocked();
      cv_.Signal();
      return;
    }
  }
  metrics_.RecordRefused();
  std::move(done)(std::move(refused));
}

absl::Status Store::Impl::Flush() {
  LWM2MD_CHECK(!OnWriterThread());  // the writer would wait for itself
  absl::Notification notified;
  absl::Status result;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("store: stopping");
    if (!health_.ok()) return health_;
    Pending marker;
    marker.flush = true;
    marker.done = [&](absl::Status status) {
      result = std::move(status);
      notified.Notify();
    };
    queue_.push_back(std::move(marker));
    cv_.Signal();
  }
  notified.WaitForNotification();
  return result;
}

// ---------------------------------------------------------------------------------------
// The writer

void Store::Impl::WriterLoop() {
  pthread_setname_np(pthread_self(), "lwm2md-store");
  std::vector<Pending> group;
  for (;;) {
    MaybePeriodicSync();
    bool stop = false;
    group.clear();
    {
      absl::MutexLock lock(&mu_);
      while (!WorkReadyLocked() && !(stopping_ && queue_.empty())) {
        if (unsynced_) {
          if (cv_.WaitWithDeadline(&mu_, next_sync_)) break;  // sync due
        } else {
          cv_.Wait(&mu_);
        }
      }
      if (WorkReadyLocked()) {
        TakeGroupLocked(group);
      } else {
        stop = stopping_ && queue_.empty();
      }
    }
    if (!group.empty()) {
      ProcessGroup(group);
    } else if (stop) {
      break;
    }
  }
  // Shutdown: whatever was committed reaches the disk before the environment closes.
  if (options_.durability == Durability::kAsync || unsynced_) {
    if (absl::Status status = SyncNow(); !status.ok()) {
      LWM2MD_LOG(kError, "store: final sync failed: %s", status.message());
    }
  }
}

// Takes queued batches in order while they fit the batch limits (always at least one). With
// max_batch_delay it then keeps collecting until the deadline, the limits, or a Flush.
void Store::Impl::TakeGroupLocked(std::vector<Pending>& group) {
  size_t operations = 0;
  size_t bytes = 0;
  bool full = false;
  bool flush = false;
  const absl::Time deadline = absl::Now() + options_.max_batch_delay;
  for (;;) {
    while (!queue_.empty()) {
      Pending& next = queue_.front();
      const size_t next_operations = next.batch.operation_count();
      const size_t next_bytes = next.batch.byte_size();
      if (!group.empty() && (operations + next_operations > options_.max_batch_operations ||
                             bytes + next_bytes > options_.max_batch_bytes)) {
        full = true;
        break;
      }
      operations += next_operations;
      bytes += next_bytes;
      flush |= next.flush;
      if (!next.flush) {
        queued_bytes_ -= next_bytes;
        --queued_batches_;
      }
      group.push_back(std::move(next));
      queue_.pop_front();
    }
    if (full || flush || stopping_ || options_.max_batch_delay <= absl::ZeroDuration() ||
        absl::Now() >= deadline) {
      break;
    }
    cv_.WaitWithDeadline(&mu_, deadline);
  }
  UpdateQueuedLocked();
}

int Store::Impl::ApplyBatch(MDB_txn* txn, const WriteBatch& batch, size_t* failed_op) const {
  const std::vector<WriteBatch::Operation>& ops = batch.operations();
  for (size_t i = 0; i < ops.size(); ++i) {
    const WriteBatch::Operation& op = ops[i];
    MDB_val key = ToVal(op.key);
    int rc = 0;
    switch (op.kind) {
      case WriteBatch::Kind::kPut: {
        MDB_val value = ToVal(op.value);
        rc = mdb_put(txn, dbi(op.table), &key, &value, 0);
        break;
      }
      case WriteBatch::Kind::kDelete:
        rc = mdb_del(txn, dbi(op.table), &key, nullptr);
        if (rc == MDB_NOTFOUND) rc = 0;
        break;
      case WriteBatch::Kind::kDeletePrefix:
        rc = DeletePrefix(txn, dbi(op.table), op.key);
        break;
    }
    if (rc != 0) {
      *failed_op = i;
      return rc;
    }
  }
  return 0;
}

absl::Status Store::Impl::BatchError(int rc, const WriteBatch& batch, size_t failed_op) const {
  const WriteBatch::Operation& op = batch.operations()[failed_op];
  if (rc == MDB_BAD_VALSIZE) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "store: key of %d bytes for table %s is empty or longer than LMDB's %d-byte limit",
        op.key.size(), TableName(op.table), mdb_env_get_maxkeysize(env_)));
  }
  if (rc == MDB_TXN_FULL) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "store: batch of %d operations (%d bytes) does not fit in one LMDB transaction; "
        "split it",
        batch.operation_count(), batch.byte_size()));
  }
  return absl::InternalError(absl::StrFormat("store: operation on table %s failed: %s",
                                             TableName(op.table), mdb_strerror(rc)));
}

absl::Status Store::Impl::WriterError(int rc, std::string_view what) const {
  switch (rc) {
    case MDB_MAP_FULL:
      return absl::ResourceExhaustedError(
          absl::StrFormat("store: LMDB map is full (map_size_mb=%d); raise store.map_size_mb",
                          map_size_bytes() >> 20));
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(
          absl::StrFormat("store: disk full writing %s", data_file_));
    case EIO:
      if (NearlyFull(options_.path)) {
        return absl::ResourceExhaustedError(
            absl::StrFormat("store: disk full writing %s (short write)", data_file_));
      }
      return absl::UnavailableError(absl::StrFormat(
          "store: I/O error writing %s during %s; check the disk (kernel log)", data_file_, what));
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
      return absl::DataLossError(absl::StrFormat(
          "store: %s is corrupted (%s during %s); stop lwm2md and restore the directory from "
          "a backup",
          data_file_, mdb_strerror(rc), what));
    case MDB_PANIC:
      return absl::InternalError(
          absl::StrFormat("store: LMDB gave up on %s (%s during %s); restart lwm2md", data_file_,
                          mdb_strerror(rc), what));
    default:
      return absl::InternalError(absl::StrFormat("store: %s failed on %s: %s (%d)", what,
                                                 data_file_, mdb_strerror(rc), rc));
  }
}

// Applies the group's batches in one transaction. A batch whose operation LMDB refuses on its
// own account is dropped (its callback gets why) and the transaction is redone without it, so
// one bad batch never takes its neighbours with it; a transaction grown too large commits what
// came before and continues with a new one. Callbacks run in submission order at the end.
void Store::Impl::ProcessGroup(std::vector<Pending>& group) {
  std::vector<std::optional<absl::Status>> results(group.size());
  std::vector<size_t> todo;  // indices of batches not yet committed or failed
  todo.reserve(group.size());
  bool has_flush = false;
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].flush) {
      has_flush = true;
    } else {
      todo.push_back(i);
    }
  }

  absl::Status fatal;
  size_t failed = 0;
  size_t start = 0;
  while (start < todo.size() && fatal.ok()) {
    size_t end = todo.size();
    const auto began = std::chrono::steady_clock::now();
    while (start < end) {
      MDB_txn* txn = nullptr;
      int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
      if (rc != 0) {
        fatal = WriterError(rc, "mdb_txn_begin");
        break;
      }
      size_t failed_at = end;
      size_t failed_op = 0;
      uint64_t operations = 0;
      for (size_t k = start; k < end; ++k) {
        const WriteBatch& batch = group[todo[k]].batch;
        rc = ApplyBatch(txn, batch, &failed_op);
        if (rc != 0) {
          failed_at = k;
          break;
        }
        operations += batch.operation_count();
      }
      if (failed_at == end) {
        rc = mdb_txn_commit(txn);  // frees txn, also on failure
        if (rc != 0) {
          fatal = WriterError(rc, "commit");
          break;
        }
        metrics_.RecordCommit(end - start, operations,
                              Nanos(std::chrono::steady_clock::now() - began));
        for (size_t k = start; k < end; ++k) results[todo[k]] = absl::OkStatus();
        if (options_.durability == Durability::kAsync && !unsynced_) {
          unsynced_ = true;
          next_sync_ = absl::Now() + options_.async_flush_interval;
        }
        start = end;
        break;
      }
      mdb_txn_abort(txn);
      const Fault fault = Classify(rc);
      if (fault == Fault::kFatal) {
        fatal = WriterError(rc, "write");
        break;
      }
      if (fault == Fault::kTxnFull && failed_at > start) {
        end = failed_at;  // commit the batches before it; it starts the next transaction
        continue;
      }
      const Pending& bad = group[todo[failed_at]];
      absl::Status status = BatchError(rc, bad.batch, failed_op);
      LWM2MD_LOG(kWarning, "%s", status.message());
      results[todo[failed_at]] = std::move(status);
      ++failed;
      todo.erase(todo.begin() + static_cast<ptrdiff_t>(failed_at));
      --end;
    }
  }

  if (fatal.ok() && has_flush) fatal = SyncNow();

  FatalState fatal_state;
  if (!fatal.ok()) {
    fatal_state = BeginFatal(fatal);
    for (size_t i = 0; i < group.size(); ++i) {
      if (!results[i].has_value()) {
        results[i] = fatal;
        if (!group[i].flush) ++failed;
      }
    }
  } else {
    for (size_t i = 0; i < group.size(); ++i) {
      if (!results[i].has_value()) results[i] = absl::OkStatus();  // flush markers
    }
  }
  if (failed > 0) metrics_.RecordFailedBatches(failed);
  for (size_t i = 0; i < group.size(); ++i) std::move(group[i].done)(std::move(*results[i]));
  if (!fatal.ok()) FinishFatal(std::move(fatal_state));
}

absl::Status Store::Impl::SyncNow() {
  const int rc = mdb_env_sync(env_, 1);
  if (rc != 0) return WriterError(rc, "sync");
  metrics_.RecordSync();
  unsynced_ = false;
  next_sync_ = absl::InfiniteFuture();
  return absl::OkStatus();
}

// kAsync bounds the power-failure loss window: committed data is synced at the latest
// async_flush_interval after the first unsynced commit.
void Store::Impl::MaybePeriodicSync() {
  if (!unsynced_ || absl::Now() < next_sync_) return;
  if (absl::Status status = SyncNow(); !status.ok()) FinishFatal(BeginFatal(status));
}

// Called on the writer thread, at most once with effect: the first fatal status sticks.
Store::Impl::FatalState Store::Impl::BeginFatal(const absl::Status& status) {
  FatalState state;
  state.status = status;
  absl::MutexLock lock(&mu_);
  if (!health_.ok()) return state;
  state.first = true;
  health_ = status;
  state.queued.swap(queue_);
  queued_bytes_ = 0;
  queued_batches_ = 0;
  UpdateQueuedLocked();
  state.handler = std::move(fatal_handler_);
  fatal_handler_ = nullptr;
  return state;
}

void Store::Impl::FinishFatal(FatalState state) {
  // What was committed but not yet synced may still reach the disk (a full map does not stop
  // a sync); if this fails too, nothing more can be done about it.
  if (!state.first) return;
  if (unsynced_) SyncNow().IgnoreError();
  LWM2MD_LOG(kError, "%s; refusing further writes", state.status.message());
  // Counted before the callbacks run, so that a callback already sees them in the metrics.
  uint64_t failed = 0;
  for (const Pending& pending : state.queued) failed += pending.flush ? 0 : 1;
  if (failed > 0) metrics_.RecordFailedBatches(failed);
  for (Pending& pending : state.queued) std::move(pending.done)(state.status);
  if (state.handler) state.handler(state.status);
}

// ---------------------------------------------------------------------------------------
// Reading

absl::StatusOr<std::optional<std::string>> Store::Impl::Get(Table table,
                                                            std::string_view key) const {
  ReadTxn txn;
  if (int rc = txn.Begin(env_); rc != 0) return ReadError(rc, "get", table);
  MDB_val k = ToVal(key);
  MDB_val value;
  const int rc = mdb_get(txn.get(), dbi(table), &k, &value);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  if (rc == MDB_BAD_VALSIZE) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "store: key of %d bytes for table %s is empty or too long", key.size(), TableName(table)));
  }
  if (rc != 0) return ReadError(rc, "get", table);
  return std::string(FromVal(value));
}

absl::Status Store::Impl::Scan(
    Table table, std::string_view prefix, std::string_view start_after,
    absl::FunctionRef<bool(std::string_view, std::string_view)> visit) const {
  ReadTxn txn;
  if (int rc = txn.Begin(env_); rc != 0) return ReadError(rc, "scan", table);
  Cursor cursor;
  if (int rc = cursor.Open(txn.get(), dbi(table)); rc != 0) return ReadError(rc, "scan", table);
  // Keys are compared bytewise (memcmp), as std::string_view compares.
  const std::string_view start = std::max(prefix, start_after);
  MDB_val key = ToVal(start);
  MDB_val value;
  int rc = mdb_cursor_get(cursor.get(), &key, &value, start.empty() ? MDB_FIRST : MDB_SET_RANGE);
  if (rc == 0 && !start_after.empty() && FromVal(key) == start_after) {
    rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT);
  }
  for (; rc == 0; rc = mdb_cursor_get(cursor.get(), &key, &value, MDB_NEXT)) {
    if (!FromVal(key).starts_with(prefix)) return absl::OkStatus();
    if (!visit(FromVal(key), FromVal(value))) return absl::OkStatus();
  }
  if (rc != MDB_NOTFOUND) return ReadError(rc, "scan", table);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Store::Impl::Count(Table table) const {
  ReadTxn txn;
  if (int rc = txn.Begin(env_); rc != 0) return ReadError(rc, "count", table);
  MDB_stat stat;
  if (int rc = mdb_stat(txn.get(), dbi(table), &stat); rc != 0) {
    return ReadError(rc, "count", table);
  }
  return static_cast<uint64_t>(stat.ms_entries);
}

uint64_t Store::Impl::used_bytes() const {
  MDB_envinfo info;
  MDB_stat stat;
  if (mdb_env_info(env_, &info) != 0 || mdb_env_stat(env_, &stat) != 0) return 0;
  return (static_cast<uint64_t>(info.me_last_pgno) + 1) * stat.ms_psize;
}

uint64_t Store::Impl::map_size_bytes() const {
  MDB_envinfo info;
  if (mdb_env_info(env_, &info) != 0) return options_.map_size_bytes;
  return info.me_mapsize;
}

// ---------------------------------------------------------------------------------------
// Store

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const Options& options) {
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status status = impl->Open(); !status.ok()) return status;
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

// Shutdown runs while impl_ is intact, so a Submit racing with destruction (e.g. from a
// callback on the writer thread) is refused with kCancelled rather than touching a dead object.
Store::~Store() { impl_->Shutdown(); }

void Store::Submit(WriteBatch batch, WriteCallback done) {
  impl_->Submit(std::move(batch), std::move(done));
}

absl::Status Store::Write(WriteBatch batch) {
  LWM2MD_CHECK(!impl_->OnWriterThread());  // the writer would wait for itself
  absl::Notification notified;
  absl::Status result;
  impl_->Submit(std::move(batch), [&](absl::Status status) {
    result = std::move(status);
    notified.Notify();
  });
  notified.WaitForNotification();
  return result;
}

absl::Status Store::Flush() { return impl_->Flush(); }

absl::StatusOr<std::optional<std::string>> Store::Get(Table table, std::string_view key) const {
  return impl_->Get(table, key);
}

absl::Status Store::Scan(
    Table table, std::string_view prefix, std::string_view start_after,
    absl::FunctionRef<bool(std::string_view key, std::string_view value)> visit) const {
  return impl_->Scan(table, prefix, start_after, visit);
}

absl::StatusOr<uint64_t> Store::Count(Table table) const { return impl_->Count(table); }

absl::Status Store::health() const { return impl_->health(); }

void Store::SetFatalHandler(absl::AnyInvocable<void(absl::Status)> handler) {
  impl_->SetFatalHandler(std::move(handler));
}

const StoreMetrics& Store::metrics() const { return impl_->metrics(); }
const Options& Store::options() const { return impl_->options(); }
uint64_t Store::used_bytes() const { return impl_->used_bytes(); }
uint64_t Store::map_size_bytes() const { return impl_->map_size_bytes(); }
void Store::PauseWriterForTest(bool paused) { impl_->Pause(paused); }

}  // namespace lwm2md::store
