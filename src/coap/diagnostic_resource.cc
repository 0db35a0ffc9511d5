#include "coap/diagnostic_resource.h"

#include <charconv>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_format.h"

namespace lwm2md::coap {
namespace {

// "delay=N" among the Uri-Query options: seconds, 1..kMaxDelaySeconds; nullopt when absent,
// 0 when present but not a number in range (answered 4.00).
std::optional<int> DelayQuery(const MessageView& request) {
  std::optional<int> delay;
  request.ForEachUriQuery([&](std::string_view query) {
    constexpr std::string_view kKey = "delay=";
    if (query.substr(0, kKey.size()) != kKey) return;
    int seconds = 0;
    const std::string_view value = query.substr(kKey.size());
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    const bool valid = error == std::errc() && end == value.data() + value.size() &&
                       seconds >= 1 && seconds <= DiagnosticBody::kMaxDelaySeconds;
    delay = valid ? seconds : 0;
  });
  return delay;
}

void Serve(Exchange& exchange, net::ShardIo& io, const std::shared_ptr<DiagnosticBody>& body) {
  if (exchange.method() == code::kPut) {
    const std::span<const uint8_t> payload = exchange.payload();
    body->Set({reinterpret_cast<const char*>(payload.data()), payload.size()});
    exchange.Respond(Response(code::kChanged));
    return;
  }
  // RFC 7252 §5.10.4: only text/plain is on offer.
  if (const std::optional<uint16_t> accept = exchange.request().accept();
      accept && *accept != content_format::kTextPlain) {
    exchange.Respond(Response(code::kNotAcceptable));
    return;
  }
  const std::optional<int> delay = DelayQuery(exchange.request());
  if (delay == 0) {
    exchange.Respond(Response(code::kBadRequest)
                         .ContentFormat(content_format::kTextPlain)
                         .Payload(absl::StrFormat("delay must be 1..%d seconds",
                                                  DiagnosticBody::kMaxDelaySeconds)));
    return;
  }
  if (!delay) {
    const std::string snapshot = body->Get();
    exchange.Respond(
        Response(code::kContent).ContentFormat(content_format::kTextPlain).Payload(snapshot));
    return;
  }
  io.timers().Schedule(io.Now() + std::chrono::seconds(*delay),
                       [deferred = exchange.Defer(), body]() mutable {
                         const std::string snapshot = body->Get();
                         deferred.Respond(Response(code::kContent)
                                              .ContentFormat(content_format::kTextPlain)
                                              .Payload(snapshot));
                       });
}

}  // namespace

std::string DiagnosticBody::Initial() {
  std::string body;
  body.reserve(kInitialSize);
  constexpr size_t kLine = 64;
  for (size_t line = 0; body.size() < kInitialSize; ++line) {
    std::string text = absl::StrFormat("lwm2md /diag line %03d ", line + 1);
    for (size_t i = 0; text.size() < kLine - 1; ++i)
      text.push_back(static_cast<char>('a' + (line + i) % 26));
    text.push_back('\n');
    body.append(text);
  }
  body.resize(kInitialSize);
  return body;
}

absl::Status RegisterDiagnosticResource(ResourceTree& tree, net::ShardIo& io,
                                        std::shared_ptr<DiagnosticBody> body) {
  ResourceOptions options;
  options.methods = MethodBit(code::kGet) | MethodBit(code::kPut);
  options.link.ct = content_format::kTextPlain;
  options.link.title = "lwm2md diagnostic resource";
  return tree.Register(kDiagnosticPath, std::move(options),
                       [&io, body = std::move(body)](Exchange& e) { Serve(e, io, body); });
}

}  // namespace lwm2md::coap
