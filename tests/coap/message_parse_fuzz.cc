// Parses arbitrary datagrams; every message that parses is walked through all accessors and
// rebuilt with MessageBuilder. The wire form of a valid message is unique (RFC 7252 §3.1
// offers one encoding per delta and length), so the rebuild must reproduce the input byte for
// byte, fit a buffer of exactly that size, and fail on one byte less.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "coap/message.h"

namespace {

using lwm2md::coap::BlockOption;
using lwm2md::coap::MessageBuilder;
using lwm2md::coap::MessageView;
using lwm2md::coap::OptionView;
using lwm2md::coap::ParseError;

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "message_parse_fuzz: %s\n", what);
    std::abort();
  }
}

bool SameBytes(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// Touches every accessor so that sanitizers see each read of the validated bytes.
size_t Exercise(const MessageView& m) {
  size_t sink = m.token().size() + m.payload().size() + m.message_id() + m.code();
  sink += static_cast<size_t>(m.type()) + m.IsRequest() + m.IsResponse() + m.IsEmpty();
  int previous = -1;
  for (const OptionView& o : m.options()) {
    Require(o.number >= previous, "options out of order");
    previous = o.number;
    sink += o.AsUint() + o.AsString().size();
    if (o.number == lwm2md::coap::option::kBlock1 || o.number == lwm2md::coap::option::kBlock2) {
      const std::optional<BlockOption> block = BlockOption::Decode(o.value);
      Require(block.has_value() ==
                  (o.value.size() <= 3 && (o.value.empty() || (o.value.back() & 7) != 7)),
              "block decode");
      if (block) {
        uint8_t encoded[3];
        const size_t n = block->Encode(encoded);
        // Decode accepts leading zero bytes; Encode writes the shortest form of the same value.
        const std::optional<BlockOption> again = BlockOption::Decode({encoded, n});
        Require(again && again->num == block->num && again->more == block->more &&
                    again->szx == block->szx,
                "block round trip");
      }
    }
  }
  sink += m.Find(lwm2md::coap::option::kUriPath).has_value();
  sink += m.FindUint(lwm2md::coap::option::kMaxAge).value_or(0);
  sink += m.content_format().value_or(0) + m.accept().value_or(0) + m.observe().value_or(0);
  sink += m.block1().has_value() + m.block2().has_value() + m.FirstUnknownCriticalOption();
  m.ForEachUriPath([&](std::string_view s) { sink += s.size(); });
  m.ForEachUriQuery([&](std::string_view s) { sink += s.size(); });
  return sink;
}

bool Rebuild(const MessageView& m, std::span<uint8_t> buffer, std::span<const uint8_t>* out) {
  MessageBuilder b(buffer);
  b.Header(m.type(), m.code(), m.message_id(), m.token());
  for (const OptionView& o : m.options()) b.Option(o.number, o.value);
  b.Payload(m.payload());
  *out = b.Finish();
  return b.ok();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  MessageView m;
  const ParseError error = MessageView::Parse(input, &m);
  Require(!lwm2md::coap::ParseErrorName(error).empty(), "error name");
  if (error != ParseError::kOk) return 0;

  Require(SameBytes(m.bytes(), input), "bytes()");
  volatile size_t sink = Exercise(m);
  (void)sink;

  std::vector<uint8_t> buffer(size);
  std::span<const uint8_t> rebuilt;
  Require(Rebuild(m, buffer, &rebuilt), "rebuild failed");
  Require(SameBytes(rebuilt, input), "rebuilt bytes differ");

  MessageView again;
  Require(MessageView::Parse(rebuilt, &again) == ParseError::kOk, "rebuilt does not parse");
  Require(
      again.type() == m.type() && again.code() == m.code() && again.message_id() == m.message_id(),
      "header differs");
  Require(SameBytes(again.token(), m.token()), "token differs");
  Require(SameBytes(again.payload(), m.payload()), "payload differs");
  auto a = again.options().begin();
  for (const OptionView& o : m.options()) {
    Require(!(a == again.options().end()), "fewer options");
    Require(a->number == o.number && SameBytes(a->value, o.value), "option differs");
    ++a;
  }
  Require(a == again.options().end(), "more options");

  // The builder must notice a buffer one byte short instead of writing past it.
  std::vector<uint8_t> short_buffer(size - 1);
  std::span<const uint8_t> ignored;
  Require(!Rebuild(m, short_buffer, &ignored) && ignored.empty(), "short buffer accepted");
  return 0;
}
