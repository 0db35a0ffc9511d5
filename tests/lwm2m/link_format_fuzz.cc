// Parses arbitrary bytes as a link-format payload and as the payload (and, split at '&', the
// queries) of a Register and an Update. Every accepted payload is walked through all accessors,
// serialised in canonical form and reparsed: the reparse must succeed, serialise to the same
// text and yield the same links and attributes.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lwm2m/link_format.h"
#include "lwm2m/registration_params.h"

namespace {

using lwm2md::lwm2m::Link;
using lwm2md::lwm2m::LinkAttribute;
using lwm2md::lwm2m::LinkFormat;

void Require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "link_format_fuzz: %s\n", what);
    std::abort();
  }
}

struct Flat {
  std::string uri;
  std::vector<std::string> attributes;  // name, has_value, quoted, value: one string each.
  bool operator==(const Flat&) const = default;
};

std::vector<Flat> Flatten(const LinkFormat& links) {
  std::vector<Flat> out;
  for (const Link& link : links) {
    Flat flat{std::string(link.uri()), {}};
    for (const LinkAttribute& a : link) {
      Require(!a.name.empty(), "empty attribute name");
      Require(a.has_value || a.value.empty(), "value without '='");
      flat.attributes.push_back(std::string(a.name) + (a.has_value ? "=" : "") +
                                (a.quoted ? "\"" : "") + std::string(a.value));
      const std::string unescaped = a.UnescapedValue();
      Require(unescaped.size() <= a.value.size(), "unescaping grew the value");
      Require(link.Find(a.name).has_value(), "Find misses an attribute");
    }
    out.push_back(std::move(flat));
  }
  Require(out.size() == links.size(), "size() disagrees with iteration");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<LinkFormat> parsed = LinkFormat::Parse(input);
  if (parsed.ok()) {
    const std::vector<Flat> first = Flatten(*parsed);
    const std::string text = lwm2md::lwm2m::Serialize(*parsed);
    absl::StatusOr<LinkFormat> again = LinkFormat::Parse(text);
    Require(again.ok(), "canonical form does not reparse");
    Require(Flatten(*again) == first, "reparse differs");
    Require(lwm2md::lwm2m::Serialize(*again) == text, "serialisation not stable");
  }

  // Queries come before the first newline, separated by '&'; the payload is the rest.
  const size_t newline = input.find('\n');
  const std::string_view query_text = input.substr(0, newline);
  const std::string_view payload =
      newline == input.npos ? std::string_view() : input.substr(newline + 1);
  std::vector<std::string_view> queries;
  for (size_t start = 0; start <= query_text.size();) {
    const size_t amp = query_text.find('&', start);
    const size_t end = amp == query_text.npos ? query_text.size() : amp;
    if (end > start) queries.push_back(query_text.substr(start, end - start));
    start = end + 1;
  }
  size_t sink = 0;
  for (const auto& request :
       {lwm2md::lwm2m::ParseRegister(queries, payload),
        lwm2md::lwm2m::ParseUpdate(queries, payload), lwm2md::lwm2m::ParseRegister({}, input)}) {
    if (!request.ok()) continue;
    sink += request->endpoint.size() + request->lifetime_seconds.value_or(0);
    sink += request->lwm2m_version.value_or("").size() + request->binding.value_or(0);
    sink += request->queue_mode.value_or(false) + request->sms_number.value_or("").size();
    if (request->objects.has_value()) {
      Require(!request->objects->alternate_path.empty(), "empty alternate path");
      for (uint16_t format : request->objects->content_formats) sink += format;
      for (const auto& object : request->objects->links) {
        sink += object.object_id + object.instance_id.value_or(0) + object.version.size();
      }
    }
  }
  absl::StatusOr<lwm2md::lwm2m::ObjectLinks> objects = lwm2md::lwm2m::ParseObjectLinks(input);
  if (objects.ok()) {
    Require(parsed.ok(), "object links accepted a payload the link parser rejects");
    sink += objects->links.size();
  }
  return sink == SIZE_MAX ? 1 : 0;
}
