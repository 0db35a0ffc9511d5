#pragma once
// A zero-copy view over a CoRE Link Format payload (RFC 6690 §2, with the link-param grammar
// of RFC 5988 §5): `<uri>;name;name=ptoken;name="quoted"`, links separated by commas.
// LinkFormat::Parse validates the whole payload once and reports the byte offset of the first
// error; iterating the validated view afterwards cannot fail and never allocates. Every view
// points into the caller's payload, which must outlive the LinkFormat and everything taken
// from it.
//
// Optional whitespace (SP, HTAB, CR, LF) is accepted around links, ';', ',' and '=': RFC 6690
// has none, but deployed clients put a space after the comma or break long payloads into lines.

#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace lwm2md::lwm2m {

struct LinkAttribute {
  std::string_view name;
  // Surrounding quotes stripped; quoted-pairs (RFC 7230 §3.2.6 `\x`) are left as they are on the
  // wire so the view stays zero-copy. UnescapedValue() resolves them when a caller needs the text.
  std::string_view value;
  bool has_value = false;
  bool quoted = false;

  std::string UnescapedValue() const;
};

// Iterates the link-params of one validated link, in wire order.
class AttributeIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = LinkAttribute;
  using difference_type = std::ptrdiff_t;
  using pointer = const LinkAttribute*;
  using reference = const LinkAttribute&;

  AttributeIterator() = default;
  explicit AttributeIterator(std::string_view params) : params_(params) { Advance(); }
  const LinkAttribute& operator*() const { return current_; }
  const LinkAttribute* operator->() const { return &current_; }
  AttributeIterator& operator++() {
    Advance();
    return *this;
  }
  AttributeIterator operator++(int) {
    AttributeIterator previous = *this;
    Advance();
    return previous;
  }
  bool operator==(const AttributeIterator& other) const { return done_ == other.done_; }

 private:
  void Advance();

  std::string_view params_;
  size_t pos_ = 0;
  LinkAttribute current_;
  bool done_ = true;
};

class Link {
 public:
  Link() = default;
  Link(std::string_view uri, std::string_view params, size_t offset)
      : uri_(uri), params_(params), offset_(offset) {}

  // The URI-Reference between '<' and '>'.
  std::string_view uri() const { return uri_; }
  // Byte offset of the link's '<' in the payload, for error messages.
  size_t offset() const { return offset_; }

  AttributeIterator begin() const { return AttributeIterator(params_); }
  AttributeIterator end() const { return AttributeIterator(); }
  // The first attribute with this name. Names compare case-insensitively (RFC 8288 §3).
  std::optional<LinkAttribute> Find(std::string_view name) const;

 private:
  std::string_view uri_;
  std::string_view params_;  // Everything after '>' up to the separating comma.
  size_t offset_ = 0;
};

// Iterates the links of a validated payload, in wire order.
class LinkIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = Link;
  using difference_type = std::ptrdiff_t;
  using pointer = const Link*;
  using reference = const Link&;

  LinkIterator() = default;
  explicit LinkIterator(std::string_view payload) : payload_(payload) { Advance(); }
  const Link& operator*() const { return current_; }
  const Link* operator->() const { return &current_; }
  LinkIterator& operator++() {
    Advance();
    return *this;
  }
  LinkIterator operator++(int) {
    LinkIterator previous = *this;
    Advance();
    return previous;
  }
  bool operator==(const LinkIterator& other) const { return done_ == other.done_; }

 private:
  void Advance();

  std::string_view payload_;
  size_t pos_ = 0;
  Link current_;
  bool done_ = true;
};

class LinkFormat {
 public:
  // An empty (or all-whitespace) payload is a valid list of zero links (RFC 6690 §2 allows an
  // empty link-value-list). Errors: unterminated '<' or quoted string, an empty link (",,", a
  // leading or trailing comma), and bytes the grammar does not allow; each names its offset.
  static absl::StatusOr<LinkFormat> Parse(std::string_view payload);

  LinkIterator begin() const { return LinkIterator(payload_); }
  LinkIterator end() const { return LinkIterator(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  LinkFormat(std::string_view payload, size_t size) : payload_(payload), size_(size) {}

  std::string_view payload_;
  size_t size_ = 0;
};

// Writes a link in canonical form (no whitespace, quoted values re-quoted with their escapes
// as received), so that parsing the output yields the same links and attributes.
void AppendLink(const Link& link, std::string* out);
std::string Serialize(const LinkFormat& links);

}  // namespace lwm2md::lwm2m
