// The generic CBOR reader (RFC 8949) on arbitrary bytes: CheckWellFormed and a full walk must
// agree and never read past the input; every well-formed item is copied with the Writer, the
// copy must be well-formed, and copying the copy must reproduce it byte for byte (the writer's
// preferred serialisation is a fixed point).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "lwm2m/cbor.h"

namespace {

using lwm2md::lwm2m::cbor::Error;
using lwm2md::lwm2m::cbor::Item;
using lwm2md::lwm2m::cbor::Kind;
using lwm2md::lwm2m::cbor::Reader;
using lwm2md::lwm2m::cbor::Writer;

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "cbor_fuzz: %s\n", what);
    std::abort();
  }
}

// Copies one data item; false when the reader fails.
bool Copy(Reader& reader, Writer& writer, int depth) {
  Item item;
  if (!reader.Read(&item)) return false;
  Require(depth <= lwm2md::lwm2m::cbor::kMaxDepth + 1, "nesting beyond the limit");
  switch (item.kind) {
    case Kind::kUnsigned:
      writer.Unsigned(item.argument);
      return true;
    case Kind::kNegative:
      writer.NegativeArgument(item.argument);
      return true;
    case Kind::kBytes:
      writer.Bytes(item.bytes);
      return true;
    case Kind::kText:
      writer.Text(item.text());
      return true;
    case Kind::kTag:
      writer.Tag(item.argument);
      return Copy(reader, writer, depth + 1);
    case Kind::kSimple:
      writer.Simple(static_cast<uint8_t>(item.argument));
      return true;
    case Kind::kFloat:
      writer.Float(item.floating);
      return true;
    case Kind::kBreak:
      return false;
    case Kind::kArray:
    case Kind::kMap: {
      const int per_entry = item.kind == Kind::kMap ? 2 : 1;
      if (item.indefinite) {
        if (item.kind == Kind::kMap) {
          writer.IndefiniteMap();
        } else {
          writer.IndefiniteArray();
        }
        while (!reader.ConsumeBreak()) {
          for (int k = 0; k < per_entry; ++k)
            if (!Copy(reader, writer, depth + 1)) return false;
        }
        writer.Break();
        return true;
      }
      if (item.kind == Kind::kMap) {
        writer.Map(item.argument);
      } else {
        writer.Array(item.argument);
      }
      for (uint64_t i = 0; i < item.argument; ++i)
        for (int k = 0; k < per_entry; ++k)
          if (!Copy(reader, writer, depth + 1)) return false;
      return true;
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  size_t offset = 0;
  const Error error = lwm2md::lwm2m::cbor::CheckWellFormed(input, &offset);
  Require(offset <= size, "error offset past the end");
  // Skip and Read stay within the input whatever it holds.
  Reader skipper(input);
  while (skipper.Skip()) Require(skipper.offset() <= size, "skip ran past the end");
  if (error != Error::kOk) return 0;

  std::string copy;
  Writer writer(&copy);
  Reader reader(input);
  Require(Copy(reader, writer, 0), "a well-formed item failed to copy");
  Require(reader.at_end(), "copy did not consume the item");
  const std::span<const uint8_t> copied(reinterpret_cast<const uint8_t*>(copy.data()), copy.size());
  Require(lwm2md::lwm2m::cbor::CheckWellFormed(copied, &offset) == Error::kOk,
          "the copy is not well-formed");
  Require(copy.size() <= size, "the preferred serialisation is longer than the input");

  std::string again;
  Writer writer2(&again);
  Reader reader2(copied);
  Require(Copy(reader2, writer2, 0), "the copy failed to copy");
  Require(again == copy, "the preferred serialisation is not a fixed point");
  return 0;
}
