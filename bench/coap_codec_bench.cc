// CoAP codec throughput: parse and build of typical LwM2M messages, next to a byte-sum
// over the same 40 bytes so that one run shows how far parsing is from touching the bytes.

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "coap/message.h"

namespace lwm2md::coap {
namespace {

// The request a server parses most: a registration Update (OMA LwM2M TS 1.1 §6.2.2),
// CON POST /rd/dA7x9Kq2Lm4PzR?lt=86400&b=U with a 4-byte token. Its 14-byte location
// segment also takes the one-byte length extension (RFC 7252 §3.1).
constexpr uint8_t kRequest40[] = {
    0x44, 0x02, 0x3a, 0x7c,                           // CON POST, MID, TKL 4
    0x9f, 0x21, 0x5c, 0x0e,                           // token
    0xb2, 'r',  'd',                                  // Uri-Path "rd"
    0x0d, 0x01, 'd',  'A',  '7', 'x', '9', 'K',       // Uri-Path, length 13 + 1
    'q',  '2',  'L',  'm',  '4', 'P', 'z', 'R',       //
    0x48, 'l',  't',  '=',  '8', '6', '4', '0', '0',  // Uri-Query "lt=86400"
    0x03, 'b',  '=',  'U',                            // Uri-Query "b=U"
};
static_assert(sizeof(kRequest40) == 40);

// A server-to-device Read as a device would parse it: CON GET /3/0/13, Accept TLV.
constexpr uint8_t kRead[] = {
    0x44, 0x01, 0x12, 0x34, 0x01, 0x02, 0x03, 0x04,  // CON GET, MID, token
    0xb1, '3',  0x01, '0',  0x02, '1',  '3',         // Uri-Path 3, 0, 13
    0x62, 0x2d, 0x16,                                // Accept 11542
};

constexpr std::string_view kLinks =
    "</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</1/1>,</2/0>,</2/1>,</3/0>,</4/0>,</5/0>,"
    "</6/0>,</7/0>,</3303/0>,</3303/1>,</3304/0>,</3316/0>";

// CON POST /rd?ep=urn:imei:351234567890123&lt=86400&lwm2m=1.1&b=U, Content-Format 40.
struct RegisterMessage {
  std::array<uint8_t, 512> buffer;
  std::span<const uint8_t> bytes;
  RegisterMessage() {
    const uint8_t token[] = {0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18};
    MessageBuilder b(buffer);
    b.Header(Type::kConfirmable, code::kPost, 0x1001, token)
        .UriPath("rd")
        .UintOption(option::kContentFormat, content_format::kLinkFormat)
        .UriQuery("ep=urn:imei:351234567890123&lt=86400&lwm2m=1.1&b=U")
        .Payload(kLinks);
    bytes = b.Finish();
  }
};

void BM_Baseline_ByteSum40(benchmark::State& state) {
  for (auto _ : state) {
    const uint8_t* p = kRequest40;
    benchmark::DoNotOptimize(p);
    uint32_t sum = 0;
    for (size_t i = 0; i < sizeof(kRequest40); ++i) sum += p[i];
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * sizeof(kRequest40));
}
BENCHMARK(BM_Baseline_ByteSum40);

void ParseLoop(benchmark::State& state, std::span<const uint8_t> bytes) {
  MessageView m;
  if (MessageView::Parse(bytes, &m) != ParseError::kOk) {
    state.SkipWithError("parse failed");
    return;
  }
  for (auto _ : state) {
    const uint8_t* p = bytes.data();
    benchmark::DoNotOptimize(p);
    ParseError e = MessageView::Parse({p, bytes.size()}, &m);
    benchmark::DoNotOptimize(e);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * bytes.size());
}

void ParseIterateLoop(benchmark::State& state, std::span<const uint8_t> bytes) {
  MessageView m;
  for (auto _ : state) {
    const uint8_t* p = bytes.data();
    benchmark::DoNotOptimize(p);
    if (MessageView::Parse({p, bytes.size()}, &m) != ParseError::kOk) {
      state.SkipWithError("parse failed");
      break;
    }
    uint32_t sum = 0;
    for (const OptionView& o : m.options()) sum += o.number + static_cast<uint32_t>(o.value.size());
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * bytes.size());
}

void BM_Parse_Request40(benchmark::State& state) { ParseLoop(state, kRequest40); }
BENCHMARK(BM_Parse_Request40);

void BM_Parse_Read(benchmark::State& state) { ParseLoop(state, kRead); }
BENCHMARK(BM_Parse_Read);

void BM_Parse_Register(benchmark::State& state) {
  const RegisterMessage message;
  ParseLoop(state, message.bytes);
}
BENCHMARK(BM_Parse_Register);

void BM_ParseIterate_Request40(benchmark::State& state) { ParseIterateLoop(state, kRequest40); }
BENCHMARK(BM_ParseIterate_Request40);

void BM_ParseIterate_Register(benchmark::State& state) {
  const RegisterMessage message;
  ParseIterateLoop(state, message.bytes);
}
BENCHMARK(BM_ParseIterate_Register);

// A piggybacked 2.05 answer to a Read: token, Content-Format TLV, a 21-byte TLV payload.
void BM_Build_ContentResponse(benchmark::State& state) {
  static constexpr uint8_t kToken[] = {0x01, 0x02, 0x03, 0x04};
  static constexpr uint8_t kTlv[] = {0xc8, 0x00, 0x14, 'O', 'p', 'e', 'n', ' ', 'M', 'o', 'b',
                                     'i',  'l',  'e',  'A', 'l', 'l', 'i', 'a', 'n', 'c'};
  std::array<uint8_t, 128> buffer;
  uint16_t mid = 0;
  for (auto _ : state) {
    MessageBuilder b(buffer);
    b.Header(Type::kAcknowledgement, code::kContent, mid++, kToken)
        .UintOption(option::kContentFormat, content_format::kLwm2mTlv)
        .Payload(kTlv);
    std::span<const uint8_t> wire = b.Finish();
    benchmark::DoNotOptimize(wire);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Build_ContentResponse);

// A Write-Attributes request: CON PUT /3303/0/5700?pmin=10&pmax=60&st=0.5.
void BM_Build_RequestWithPathAndQuery(benchmark::State& state) {
  static constexpr uint8_t kToken[] = {0x10, 0x20, 0x30, 0x40};
  std::array<uint8_t, 128> buffer;
  uint16_t mid = 0;
  for (auto _ : state) {
    MessageBuilder b(buffer);
    b.Header(Type::kConfirmable, code::kPut, mid++, kToken)
        .UriPath("/3303/0/5700")
        .UriQuery("pmin=10&pmax=60&st=0.5");
    std::span<const uint8_t> wire = b.Finish();
    benchmark::DoNotOptimize(wire);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Build_RequestWithPathAndQuery);

}  // namespace
}  // namespace lwm2md::coap
