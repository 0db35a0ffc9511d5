// GET /api/v1/events: the event bus as server-sent events (WHATWG HTML §9.2, "Server-sent
// events"). Each stream is one bus subscription, polled by the HTTP worker that serves the
// request: the worker stays with the stream until it ends, which is why the number of streams
// is bounded below the worker count.

#include <httplib.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "api/route_util.h"
#include "api/routes.h"
#include "base/json_writer.h"
#include "base/strings.h"
#include "lwm2m/endpoint_config.h"
#include "lwm2m/event_bus.h"

namespace lwm2md::api {
namespace {

// How long one provider call waits for an event: the bound on how late a stream notices
// HttpServer::Stop, a closed bus or a keepalive falling due.
constexpr absl::Duration kPollWait = absl::Milliseconds(250);
// One chunk stays below this many bytes of frames, so a backlog goes out in pieces and the
// stop flag is still checked between them.
constexpr size_t kMaxChunkBytes = 256 * 1024;
// httplib compresses text/* responses for clients that accept gzip, except exactly
// "text/event-stream": a parameter here would turn compression (and its buffering) on.
constexpr char kEventStreamType[] = "text/event-stream";

constexpr std::string_view kKnownTypes[] = {
    lwm2m::event_type::kRegister, lwm2m::event_type::kUpdate,       lwm2m::event_type::kDeregister,
    lwm2m::event_type::kMissing,  lwm2m::event_type::kBack,         lwm2m::event_type::kBootstrap,
    lwm2m::event_type::kData,     lwm2m::event_type::kFotaComplete, lwm2m::event_type::kAsyncResult,
    lwm2m::event_type::kError,
};

// A field value must not contain a line break: it would end the field (and could forge
// another). JSON text only has them as insignificant whitespace, so a space is equivalent.
void AppendSingleLine(std::string* out, std::string_view text) {
  const size_t start = out->size();
  out->append(text.data(), text.size());
  std::replace_if(
      out->begin() + static_cast<std::ptrdiff_t>(start), out->end(),
      [](char c) { return c == '\n' || c == '\r'; }, ' ');
}

void AppendEventFrame(std::string* out, const lwm2m::Event& event) {
  absl::StrAppend(out, "id: ", event.sequence, "\nevent: ");
  AppendSingleLine(out, event.type);
  base::JsonWriter data;
  data.BeginObject();
  data.Key("type").String(event.type);
  data.Key("endpoint").String(event.endpoint);
  data.Key("time").String(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", event.time, absl::UTCTimeZone()));
  data.Key("data");
  if (event.payload_json.empty()) {
    data.Null();
  } else {
    data.Raw(event.payload_json);
  }
  data.EndObject();
  out->append("\ndata: ");
  AppendSingleLine(out, data.str());
  out->append("\n\n");
}

// Tracks open streams; a slot is released when the response (and its provider) is destroyed.
class StreamSlot {
 public:
  static std::unique_ptr<StreamSlot> TryAcquire(std::atomic<int>& open, int max) {
    int current = open.load();
    do {
      if (current >= max) return nullptr;
    } while (!open.compare_exchange_weak(current, current + 1));
    return std::unique_ptr<StreamSlot>(new StreamSlot(open));
  }
  ~StreamSlot() { open_.fetch_sub(1); }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;

 private:
  explicit StreamSlot(std::atomic<int>& open) : open_(open) {}
  std::atomic<int>& open_;
};

}  // namespace

EventStream::EventStream(std::unique_ptr<lwm2m::EventSubscription> subscription,
                         absl::Duration keepalive)
    : subscription_(std::move(subscription)), keepalive_(keepalive), last_sent_(absl::Now()) {}

EventStream::~EventStream() = default;

std::optional<std::string> EventStream::Poll(absl::Duration wait) {
  std::string chunk;
  const absl::Time start = absl::Now();
  std::optional<lwm2m::Event> event = subscription_->Next(wait);
  // Next returns nothing before the wait is over only when the bus is closing (the
  // subscription's queue is ours alone, so nobody else can empty it).
  if (!event.has_value() && wait > absl::ZeroDuration() && absl::Now() - start < wait / 2) {
    return std::nullopt;
  }
  bool drained = !event.has_value();
  while (event.has_value()) {
    AppendEventFrame(&chunk, *event);
    if (chunk.size() >= kMaxChunkBytes) break;
    event = subscription_->Next(absl::ZeroDuration());
    drained = !event.has_value();
  }
  // Overflowed events are newer than every queued one, so the notice belongs after the
  // queue's events; while a backlog remains it waits for a later chunk.
  if (drained) {
    if (const uint64_t dropped = subscription_->TakeDropped(); dropped > 0) {
      absl::StrAppend(&chunk, "event: dropped\ndata: {\"count\":", dropped, "}\n\n");
    }
  }
  const absl::Time now = absl::Now();
  if (chunk.empty() && now - last_sent_ >= keepalive_) chunk = ": keepalive\n\n";
  if (!chunk.empty()) last_sent_ = now;
  return chunk;
}

void AddEventRoutes(httplib::Server& server, lwm2m::EventBus& bus,
                    const std::atomic<bool>& stopping, std::atomic<int>& open_streams,
                    const EventStreamOptions& options) {
  server.Get("/api/v1/events", [&bus, &stopping, &open_streams, options](
                                   const httplib::Request& request, httplib::Response& response) {
    lwm2m::EventFilter filter;
    if (request.has_param("endpoint")) {
      filter.endpoint = request.get_param_value("endpoint");
      if (absl::Status status = lwm2m::ValidateEndpointName(filter.endpoint); !status.ok()) {
        SendError(response, 400,
                  absl::StrCat("endpoint: not an endpoint name (", status.message(), ")"));
        return;
      }
    }
    if (request.has_param("type")) {
      for (absl::string_view type : absl::StrSplit(request.get_param_value("type"), ',')) {
        if (std::find(std::begin(kKnownTypes), std::end(kKnownTypes), base::Std(type)) ==
            std::end(kKnownTypes)) {
          SendError(response, 400, absl::StrCat("type: unknown event type \"", type, "\""));
          return;
        }
        filter.types.emplace_back(type);
      }
    }
    if (stopping.load()) {
      SendError(response, 503, "shutting down");
      return;
    }
    std::shared_ptr<StreamSlot> slot = StreamSlot::TryAcquire(open_streams, options.max_streams);
    if (slot == nullptr) {
      response.set_header("Retry-After", "5");
      SendError(response, 503, "too many open event streams");
      return;
    }
    // Subscribed before the response headers go out, so a client that has seen them has
    // every later event.
    auto stream = std::make_shared<EventStream>(
        bus.Subscribe(std::move(filter), options.queue_capacity), options.keepalive);
    response.set_header("Cache-Control", "no-cache");
    // Reverse proxies (nginx) would otherwise buffer the stream.
    response.set_header("X-Accel-Buffering", "no");
    // A stream ends only on shutdown or error; the client reconnects on a new connection
    // anyway, and closing frees the worker at once instead of after the keep-alive wait.
    response.set_header("Connection", "close");
    response.set_chunked_content_provider(
        kEventStreamType, [stream, slot, &stopping](size_t, httplib::DataSink& sink) {
          if (stopping.load()) {
            sink.done();
            return true;
          }
          // A client that went away is only noticed on a write; the keepalive bounds how
          // long that takes.
          if (!sink.is_writable()) return false;
          std::optional<std::string> chunk = stream->Poll(kPollWait);
          if (!chunk.has_value()) {
            sink.done();  // the bus closed
            return true;
          }
          if (!chunk->empty() && !sink.write(chunk->data(), chunk->size())) return false;
          // Checked again so that a Stop during the poll ends the stream now, not one poll
          // later: Stop holds the listener open only until the streams have ended.
          if (stopping.load()) sink.done();
          return true;
        });
  });
}

}  // namespace lwm2md::api
