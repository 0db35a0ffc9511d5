// Content-format codec throughput on the reply a server decodes most: a Read of the whole
// Device object instance /3/0 (17 resources, TS 1.1 §7.4 example values plus the timezone).
// Decode runs against a switch-based type resolver, as the object registry will answer; items
// are payloads, bytes the payload size. tlv::Payload::Parse alone shows what the typed adapter
// adds to validating the bytes.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lwm2m/content_format.h"
#include "lwm2m/tlv.h"

namespace lwm2md::lwm2m {
namespace {

class DeviceTypes : public TypeResolver {
 public:
  std::optional<ResourceType> TypeOf(const Path& path) const override {
    if (path.object_id != 3) return std::nullopt;
    switch (*path.resource_id) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 14:
      case 15:
      case 16:
      case 17:
      case 18:
      case 19:
        return ResourceType::kString;
      case 4:
      case 5:
      case 12:
        return ResourceType::kNone;
      case 6:
      case 7:
      case 8:
      case 9:
      case 10:
      case 11:
      case 20:
      case 21:
        return ResourceType::kInteger;
      case 13:
        return ResourceType::kTime;
      case 22:
        return ResourceType::kObjlnk;
    }
    return std::nullopt;
  }
};

Record R(uint16_t resource, Value value) {
  return Record{Path::Resource(3, 0, resource), value, std::nullopt};
}
Record R(uint16_t resource, uint16_t instance, Value value) {
  return Record{Path::ResourceInstance(3, 0, resource, instance), value, std::nullopt};
}

std::vector<Record> DeviceInstance() {
  return {
      R(0, Value::String("Open Mobile Alliance")),
      R(1, Value::String("Lightweight M2M Client")),
      R(2, Value::String("345000123")),
      R(3, Value::String("1.0")),
      R(6, 0, Value::Integer(1)),
      R(6, 1, Value::Integer(5)),
      R(7, 0, Value::Integer(3800)),
      R(7, 1, Value::Integer(5000)),
      R(8, 0, Value::Integer(125)),
      R(8, 1, Value::Integer(900)),
      R(9, Value::Integer(100)),
      R(10, Value::Integer(15)),
      R(11, 0, Value::Integer(0)),
      R(13, Value::Time(1367491215)),
      R(14, Value::String("+02:00")),
      R(15, Value::String("Europe/Berlin")),
      R(16, Value::String("U")),
  };
}

const Path kRequest = Path::Instance(3, 0);
const DeviceTypes kTypes;

std::string Encoded(ContentFormat format) {
  std::string out;
  const auto records = DeviceInstance();
  if (!Encode(format, kRequest, records, &out).ok()) std::abort();
  return out;
}

std::span<const uint8_t> AsBytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

void Decode(benchmark::State& state, ContentFormat format) {
  const std::string payload = Encoded(format);
  for (auto _ : state) {
    auto decoded = lwm2m::Decode(format, kRequest, AsBytes(payload), kTypes);
    if (!decoded.ok() || decoded->records.size() != 17) std::abort();
    benchmark::DoNotOptimize(decoded->records.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
  state.counters["payload_bytes"] = static_cast<double>(payload.size());
}

void EncodeBench(benchmark::State& state, ContentFormat format) {
  const auto records = DeviceInstance();
  std::string out;
  for (auto _ : state) {
    if (!Encode(format, kRequest, records, &out).ok()) std::abort();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}

void BM_TlvParseOnly(benchmark::State& state) {
  const std::string payload = Encoded(ContentFormat::kTlv);
  for (auto _ : state) {
    tlv::Payload parsed;
    if (!tlv::Payload::Parse(AsBytes(payload), &parsed).ok()) std::abort();
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
BENCHMARK(BM_TlvParseOnly);

void BM_Decode_Tlv(benchmark::State& state) { Decode(state, ContentFormat::kTlv); }
void BM_Decode_SenmlCbor(benchmark::State& state) { Decode(state, ContentFormat::kSenmlCbor); }
void BM_Decode_SenmlJson(benchmark::State& state) { Decode(state, ContentFormat::kSenmlJson); }
void BM_Decode_Lwm2mJson(benchmark::State& state) { Decode(state, ContentFormat::kLwm2mJson); }
void BM_Encode_Tlv(benchmark::State& state) { EncodeBench(state, ContentFormat::kTlv); }
void BM_Encode_SenmlCbor(benchmark::State& state) { EncodeBench(state, ContentFormat::kSenmlCbor); }
void BM_Encode_SenmlJson(benchmark::State& state) { EncodeBench(state, ContentFormat::kSenmlJson); }
BENCHMARK(BM_Decode_Tlv);
BENCHMARK(BM_Decode_SenmlCbor);
BENCHMARK(BM_Decode_SenmlJson);
BENCHMARK(BM_Decode_Lwm2mJson);
BENCHMARK(BM_Encode_Tlv);
BENCHMARK(BM_Encode_SenmlCbor);
BENCHMARK(BM_Encode_SenmlJson);

}  // namespace
}  // namespace lwm2md::lwm2m
