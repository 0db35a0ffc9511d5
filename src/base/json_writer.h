#pragma once
// A small streaming JSON writer for event payloads and API responses. simdjson (our parser)
// has no serialiser in the version Debian ships, and the output we produce is simple enough
// that a writer which only tracks commas and escapes strings (RFC 8259 §7) is the whole job.

#include <cstdint>
#include <string>
#include <string_view>

namespace lwm2md::base {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Inside an object: the member name; the next value call writes its value.
  JsonWriter& Key(std::string_view key);

  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  // Non-finite numbers have no JSON form and are written as null.
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // A value that is already valid JSON text (e.g. a stored context object), written as is.
  JsonWriter& Raw(std::string_view json);

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

  // Appends value as a JSON string literal, quotes included.
  static void AppendQuoted(std::string* out, std::string_view value);

 private:
  void BeforeValue();

  std::string out_;
  // One bit per nesting level: whether the container already holds an element. 64 levels
  // is deeper than anything we emit.
  uint64_t has_element_ = 0;
  int depth_ = 0;
  bool after_key_ = false;
};

}  // namespace lwm2md::base
