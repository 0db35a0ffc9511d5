// Parses arbitrary payloads; every payload that parses is walked, each value decoded as every
// TS Appendix C type, and the tree rewritten with Writer. The writer emits the minimal form,
// which may be shorter than the input (TS §7.4.3 allows wider identifier and length fields than
// needed), so the rewrite is compared entry by entry rather than byte for byte.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "lwm2m/tlv.h"

namespace {

using lwm2md::lwm2m::tlv::EntryRange;
using lwm2md::lwm2m::tlv::IsContainer;
using lwm2md::lwm2m::tlv::ObjectLink;
using lwm2md::lwm2m::tlv::ParseFailure;
using lwm2md::lwm2m::tlv::Payload;
using lwm2md::lwm2m::tlv::ValueError;
using lwm2md::lwm2m::tlv::Writer;

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "tlv_fuzz: %s\n", what);
    std::abort();
  }
}

void DecodeEverything(std::span<const uint8_t> value) {
  int64_t i;
  uint64_t u;
  double d;
  bool b;
  std::string_view s;
  std::span<const uint8_t> o;
  ObjectLink l;
  const bool int_ok = lwm2md::lwm2m::tlv::DecodeInteger(value, &i) == ValueError::kOk;
  const bool uint_ok = lwm2md::lwm2m::tlv::DecodeUnsigned(value, &u) == ValueError::kOk;
  Require(int_ok == uint_ok, "integer and unsigned disagree on lengths");
  if (int_ok)
    Require(static_cast<uint64_t>(i) << (64 - 8 * value.size()) == u << (64 - 8 * value.size()),
            "integer and unsigned disagree on bits");
  (void)lwm2md::lwm2m::tlv::DecodeFloat(value, &d);
  (void)lwm2md::lwm2m::tlv::DecodeBoolean(value, &b);
  if (lwm2md::lwm2m::tlv::DecodeString(value, &s) == ValueError::kOk)
    Require(s.size() == value.size(), "string view size");
  Require(lwm2md::lwm2m::tlv::DecodeOpaque(value, &o) == ValueError::kOk, "opaque");
  (void)lwm2md::lwm2m::tlv::DecodeTime(value, &i);
  (void)lwm2md::lwm2m::tlv::DecodeObjectLink(value, &l);
}

void Walk(EntryRange range) {
  for (const auto& e : range) {
    if (IsContainer(e.type))
      Walk(e.children());
    else
      DecodeEverything(e.value);
  }
}

void Rewrite(EntryRange range, Writer& w) {
  for (const auto& e : range) {
    if (IsContainer(e.type)) {
      if (e.type == lwm2md::lwm2m::tlv::Type::kObjectInstance)
        w.BeginObjectInstance(e.id);
      else
        w.BeginMultipleResource(e.id);
      Rewrite(e.children(), w);
      w.End();
    } else {
      w.Leaf(e.type, e.id, e.value);
    }
  }
}

void Compare(EntryRange a, EntryRange b) {
  auto ia = a.begin();
  auto ib = b.begin();
  for (; !(ia == a.end()) && !(ib == b.end()); ++ia, ++ib) {
    Require(ia->type == ib->type, "type changed");
    Require(ia->id == ib->id, "identifier changed");
    if (IsContainer(ia->type)) {
      Compare(ia->children(), ib->children());
    } else {
      Require(ia->value.size() == ib->value.size(), "value length changed");
      for (size_t k = 0; k < ia->value.size(); ++k)
        Require(ia->value[k] == ib->value[k], "value bytes changed");
    }
  }
  Require(ia == a.end() && ib == b.end(), "entry count changed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  Payload payload;
  const ParseFailure failure = Payload::Parse(input, &payload);
  Require(failure.ok() == Payload::ParseOrStatus(input).ok(), "status form disagrees");
  if (!failure.ok()) {
    Require(failure.offset < size, "failure offset outside the payload");
    Require(!failure.Message().empty(), "empty message");
    return 0;
  }
  Walk(payload.entries());

  std::vector<uint8_t> out;
  Writer w(&out);
  Rewrite(payload.entries(), w);
  Require(w.ok(), "writer refused a parsed payload");
  Require(out.size() <= size, "rewrite longer than the input");
  Payload again;
  Require(Payload::Parse(out, &again).ok(), "rewrite does not parse");
  Compare(payload.entries(), again.entries());

  // The same into a fixed buffer with the documented slack for open containers.
  std::vector<uint8_t> fixed(out.size() + Writer::kOpenContainerSlack);
  Writer f{std::span<uint8_t>(fixed)};
  Rewrite(payload.entries(), f);
  Require(f.ok(), "fixed-buffer writer failed");
  const std::span<const uint8_t> written = f.Finish();
  Require(written.size() == out.size(), "fixed-buffer writer disagrees on size");
  for (size_t k = 0; k < out.size(); ++k) Require(written[k] == out[k], "writers disagree");
  return 0;
}
