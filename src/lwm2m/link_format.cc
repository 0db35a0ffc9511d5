#include "lwm2m/link_format.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace lwm2md::lwm2m {
namespace {

bool IsWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool IsAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsIn(unsigned char c, std::string_view set) {
  return set.find(static_cast<char>(c)) != set.npos;
}

// RFC 3986 §2: unreserved, reserved and '%' (pct-encoded is not decoded here).
bool IsUriChar(unsigned char c) { return IsAlnum(c) || IsIn(c, "-._~:/?#[]@!$&'()*+,;=%"); }

// RFC 5988 §5: parmname.
bool IsParmnameChar(unsigned char c) { return IsAlnum(c) || IsIn(c, "!#$&+-.^_`|~"); }

// RFC 6690 §2: ptokenchar.
bool IsPtokenChar(unsigned char c) { return IsAlnum(c) || IsIn(c, "!#$%&'()*+-./:<=>?@[]^_`{|}~"); }

// RFC 7230 §3.2.6 qdtext, including obs-text so that UTF-8 titles pass.
bool IsQdtext(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f);
}

// RFC 7230 §3.2.6 quoted-pair: "\" ( HTAB / SP / VCHAR / obs-text ).
bool IsQuotedPairChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

std::string Describe(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u < 0x7f) return absl::StrFormat("'%c'", c);
  return absl::StrFormat("0x%02x", u);
}

absl::Status ErrorAt(size_t offset, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("link format: %s at byte %d", std::string(what), offset));
}

size_t SkipWhitespace(std::string_view text, size_t pos) {
  while (pos < text.size() && IsWhitespace(text[pos])) ++pos;
  return pos;
}

// Reads one `;name[=value]` starting at pos (which may be preceded by whitespace). Returns
// false at the end of the link (end of text or ','). `base` is the offset of text in the
// payload, for error messages; on error *error is set and false returned.
bool NextParam(std::string_view text, size_t base, size_t* pos, LinkAttribute* out,
               absl::Status* error) {
  size_t p = SkipWhitespace(text, *pos);
  if (p >= text.size() || text[p] == ',') {
    *pos = p;
    return false;
  }
  if (text[p] != ';') {
    *error = ErrorAt(base + p, "unexpected " + Describe(text[p]) + " after link, want ';' or ','");
    return false;
  }
  p = SkipWhitespace(text, p + 1);
  const size_t name_begin = p;
  while (p < text.size() && IsParmnameChar(static_cast<unsigned char>(text[p]))) ++p;
  if (p == name_begin) {
    *error = ErrorAt(base + p, p < text.size() ? "bad character " + Describe(text[p]) +
                                                     " where a parameter name belongs"
                                               : std::string("missing parameter name"));
    return false;
  }
  LinkAttribute attribute;
  attribute.name = text.substr(name_begin, p - name_begin);
  const size_t after_name = SkipWhitespace(text, p);
  if (after_name < text.size() && text[after_name] == '=') {
    attribute.has_value = true;
    p = SkipWhitespace(text, after_name + 1);
    if (p < text.size() && text[p] == '"') {
      const size_t open = p++;
      const size_t value_begin = p;
      for (;;) {
        if (p >= text.size()) {
          *error = ErrorAt(base + open, "unterminated quoted string");
          return false;
        }
        const auto c = static_cast<unsigned char>(text[p]);
        if (c == '"') break;
        if (c == '\\') {
          if (p + 1 >= text.size()) {
            *error = ErrorAt(base + open, "unterminated quoted string");
            return false;
          }
          if (!IsQuotedPairChar(static_cast<unsigned char>(text[p + 1]))) {
            *error = ErrorAt(base + p + 1,
                             "bad character " + Describe(text[p + 1]) + " in quoted string");
            return false;
          }
          p += 2;
          continue;
        }
        if (!IsQdtext(c)) {
          *error = ErrorAt(base + p, "bad character " + Describe(text[p]) + " in quoted string");
          return false;
        }
        ++p;
      }
      attribute.quoted = true;
      attribute.value = text.substr(value_begin, p - value_begin);
      ++p;  // closing quote
    } else {
      const size_t value_begin = p;
      while (p < text.size() && IsPtokenChar(static_cast<unsigned char>(text[p]))) ++p;
      if (p == value_begin) {
        *error = ErrorAt(base + p, p < text.size() ? "bad character " + Describe(text[p]) +
                                                         " where a parameter value belongs"
                                                   : std::string("missing parameter value"));
        return false;
      }
      attribute.value = text.substr(value_begin, p - value_begin);
    }
  }
  *out = attribute;
  *pos = p;
  return true;
}

struct ScannedLink {
  Link link;
  size_t end = 0;  // Offset of the ',' ending the link, or of the end of the payload.
};

// Scans one link starting at a non-whitespace byte at pos.
absl::Status ScanLink(std::string_view payload, size_t pos, ScannedLink* out) {
  if (pos >= payload.size() || payload[pos] == ',') return ErrorAt(pos, "empty link");
  if (payload[pos] != '<') {
    return ErrorAt(pos, "unexpected " + Describe(payload[pos]) + ", want '<' to start a link");
  }
  const size_t open = pos;
  size_t p = pos + 1;
  while (p < payload.size() && payload[p] != '>') {
    if (!IsUriChar(static_cast<unsigned char>(payload[p]))) {
      // A second '<' means the first was never closed; report that rather than the byte.
      if (payload[p] == '<') break;
      return ErrorAt(p, "bad character " + Describe(payload[p]) + " in URI");
    }
    ++p;
  }
  if (p >= payload.size() || payload[p] != '>') return ErrorAt(open, "unterminated '<'");
  const std::string_view uri = payload.substr(open + 1, p - open - 1);
  const size_t params_begin = p + 1;
  size_t q = params_begin;
  LinkAttribute ignored;
  absl::Status error;
  while (NextParam(payload, 0, &q, &ignored, &error)) {
  }
  if (!error.ok()) return error;
  out->link = Link(uri, payload.substr(params_begin, q - params_begin), open);
  out->end = q;
  return absl::OkStatus();
}

bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

std::string LinkAttribute::UnescapedValue() const {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (quoted && value[i] == '\\' && i + 1 < value.size()) ++i;
    out.push_back(value[i]);
  }
  return out;
}

void AttributeIterator::Advance() {
  absl::Status ignored;  // The link was validated by LinkFormat::Parse.
  done_ = !NextParam(params_, 0, &pos_, &current_, &ignored);
}

std::optional<LinkAttribute> Link::Find(std::string_view name) const {
  for (const LinkAttribute& attribute : *this) {
    if (EqualsIgnoreAsciiCase(attribute.name, name)) return attribute;
  }
  return std::nullopt;
}

void LinkIterator::Advance() {
  // The payload was validated by LinkFormat::Parse, so a scan error only ends the iteration.
  size_t p = SkipWhitespace(payload_, pos_);
  if (p < payload_.size() && payload_[p] == ',') p = SkipWhitespace(payload_, p + 1);
  ScannedLink scanned;
  if (p >= payload_.size() || !ScanLink(payload_, p, &scanned).ok()) {
    done_ = true;
    pos_ = payload_.size();
    return;
  }
  current_ = scanned.link;
  pos_ = scanned.end;
  done_ = false;
}

absl::StatusOr<LinkFormat> LinkFormat::Parse(std::string_view payload) {
  size_t count = 0;
  size_t p = SkipWhitespace(payload, 0);
  if (p == payload.size()) return LinkFormat(payload, 0);
  for (;;) {
    ScannedLink scanned;
    if (absl::Status status = ScanLink(payload, p, &scanned); !status.ok()) return status;
    ++count;
    p = scanned.end;  // At ',' or the end: ScanLink consumed trailing whitespace.
    if (p >= payload.size()) break;
    p = SkipWhitespace(payload, p + 1);
  }
  return LinkFormat(payload, count);
}

void AppendLink(const Link& link, std::string* out) {
  out->push_back('<');
  out->append(link.uri());
  out->push_back('>');
  for (const LinkAttribute& attribute : link) {
    out->push_back(';');
    out->append(attribute.name);
    if (!attribute.has_value) continue;
    out->push_back('=');
    if (attribute.quoted) out->push_back('"');
    out->append(attribute.value);
    if (attribute.quoted) out->push_back('"');
  }
}

std::string Serialize(const LinkFormat& links) {
  std::string out;
  bool first = true;
  for (const Link& link : links) {
    if (!first) out.push_back(',');
    first = false;
    AppendLink(link, &out);
  }
  return out;
}

}  // namespace lwm2md::lwm2m
