#include "coap/resource_tree.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"

namespace lwm2md::coap {

// The tree lives on one shard thread (resource_tree.h); debug builds verify it.
#define LWM2MD_DCHECK_ON_SHARD() LWM2MD_DCHECK(std::this_thread::get_id() == owner_thread_)

namespace {

// abseil is built with its own string_view type here (ABSL_OPTION_USE_STD_STRING_VIEW 0);
// the tree works in std::string_view and converts where abseil wants its own.
absl::string_view Absl(std::string_view text) { return {text.data(), text.size()}; }

// RFC 6690 §4.1: a value ending in '*' matches every value that starts with what precedes
// it; otherwise values match exactly.
bool MatchValue(std::string_view value, std::string_view pattern) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return value.substr(0, pattern.size()) == pattern;
  }
  return value == pattern;
}

// rt and if hold space-separated lists; a filter matches when any one entry does.
bool MatchAnyWord(std::string_view list, std::string_view pattern) {
  while (!list.empty()) {
    const size_t space = list.find(' ');
    const std::string_view word = list.substr(0, space);
    if (!word.empty() && MatchValue(word, pattern)) return true;
    if (space == std::string_view::npos) break;
    list.remove_prefix(space + 1);
  }
  return false;
}

// RFC 6690 §2 quoted-string: backslash before '"' and '\'.
void AppendQuoted(std::string& out, std::string_view value) {
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

bool ValidPath(std::string_view path) {
  if (path.size() < 2 || path.size() > ResourceTree::kMaxPathLength || path[0] != '/' ||
      path.back() == '/' || path.find("//") != std::string_view::npos)
    return false;
  // Characters that would break the link format (RFC 6690 §2) or a URI path.
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == '<' || c == '>' || c == ',' || c == ';' ||
        c == '"' || c == '?' || c == '#' || c == '\\' || c == 0x7f)
      return false;
  }
  return true;
}

}  // namespace

ResourceTree::ResourceTree(const Config& config)
    : config_(config), owner_thread_(std::this_thread::get_id()) {}

absl::Status ResourceTree::Register(std::string_view path, ResourceOptions options,
                                    ResourceHandler handler) {
  LWM2MD_DCHECK_ON_SHARD();
  if (!ValidPath(path))
    return absl::InvalidArgumentError(absl::StrCat("malformed resource path \"", Absl(path), "\""));
  if (path == kWellKnownCore)
    return absl::InvalidArgumentError(absl::StrCat(Absl(kWellKnownCore), " is served by the tree"));
  if (resources_.contains(Absl(path)))
    return absl::AlreadyExistsError(
        absl::StrCat("resource ", Absl(path), " is registered already"));
  auto resource = std::make_unique<Resource>();
  resource->path = std::string(path);
  resource->options = std::move(options);
  resource->handler = std::move(handler);
  resources_.emplace(resource->path, std::move(resource));
  return absl::OkStatus();
}

bool ResourceTree::Unregister(std::string_view path) {
  LWM2MD_DCHECK_ON_SHARD();
  auto it = resources_.find(Absl(path));
  if (it == resources_.end()) return false;
  if (dispatch_depth_ > 0) retired_.push_back(std::move(it->second));
  resources_.erase(it);
  return true;
}

ResourceTree::Resource* ResourceTree::Route(std::string_view path) {
  if (auto it = resources_.find(Absl(path)); it != resources_.end()) return it->second.get();
  // The longest registered ancestor that takes its subtree.
  for (size_t slash = path.rfind('/'); slash != std::string_view::npos && slash > 0;
       slash = path.rfind('/', slash - 1)) {
    auto it = resources_.find(Absl(path.substr(0, slash)));
    if (it != resources_.end() && it->second->options.subtree) return it->second.get();
  }
  return nullptr;
}

void ResourceTree::OnRequest(Exchange& exchange) {
  LWM2MD_DCHECK_ON_SHARD();
  // The path as "/a/b", assembled on the stack: routing does not allocate.
  std::array<char, kMaxPathLength + 1> buffer;
  size_t length = 0;
  bool too_long = false;
  exchange.request().ForEachUriPath([&](std::string_view segment) {
    if (too_long || length + 1 + segment.size() > kMaxPathLength) {
      too_long = true;
      return;
    }
    buffer[length++] = '/';
    std::memcpy(buffer.data() + length, segment.data(), segment.size());
    length += segment.size();
  });
  const std::string_view path(buffer.data(), length);

  if (too_long) {
    exchange.Respond(Response(code::kNotFound));
    return;
  }
  if (path == kWellKnownCore) {
    ServeWellKnownCore(exchange);
    return;
  }
  Resource* resource = Route(path);
  if (resource == nullptr) {
    exchange.Respond(Response(code::kNotFound));
    return;
  }
  if ((resource->options.methods & MethodBit(exchange.method())) == 0) {
    // RFC 7252 §5.9.2.6: the resource exists but does not take this method.
    exchange.Respond(Response(code::kMethodNotAllowed));
    return;
  }
  ++dispatch_depth_;
  // resource stays valid through an Unregister from inside the handler (retired_).
  resource->handler(exchange);
  if (--dispatch_depth_ == 0) retired_.clear();
}

std::string ResourceTree::LinkFormat(std::span<const std::string_view> filters) const {
  std::vector<const Resource*> listed;
  for (const auto& [path, resource] : resources_) {
    if (!resource->options.discoverable) continue;
    const LinkAttributes& link = resource->options.link;
    bool match = true;
    for (std::string_view filter : filters) {
      const size_t eq = filter.find('=');
      const std::string_view name = filter.substr(0, eq);
      const std::string_view value =
          eq == std::string_view::npos ? std::string_view() : filter.substr(eq + 1);
      if (eq == std::string_view::npos) {
        // A bare name asks for links that carry the attribute at all.
        match = (name == "rt" && !link.rt.empty()) || (name == "if" && !link.interface.empty()) ||
                (name == "ct" && link.ct) || (name == "sz" && link.sz) ||
                (name == "title" && !link.title.empty()) || (name == "obs" && link.obs);
      } else if (name == "href") {
        // The link target; accept the pattern with or without its leading slash.
        match = MatchValue(path, value) ||
                (!value.empty() && value[0] != '/' && MatchValue(path.substr(1), value));
      } else if (name == "rt") {
        match = MatchAnyWord(link.rt, value);
      } else if (name == "if") {
        match = MatchAnyWord(link.interface, value);
      } else if (name == "ct") {
        match = link.ct && MatchValue(absl::StrCat(*link.ct), value);
      } else if (name == "sz") {
        match = link.sz && MatchValue(absl::StrCat(*link.sz), value);
      } else if (name == "title") {
        match = MatchValue(link.title, value);
      } else {
        match = false;  // an attribute no link here has
      }
      if (!match) break;
    }
    if (match) listed.push_back(resource.get());
  }
  std::sort(listed.begin(), listed.end(),
            [](const Resource* a, const Resource* b) { return a->path < b->path; });

  std::string out;
  for (const Resource* resource : listed) {
    const LinkAttributes& link = resource->options.link;
    if (!out.empty()) out.push_back(',');
    absl::StrAppend(&out, "<", resource->path, ">");
    if (!link.rt.empty()) {
      out.append(";rt=");
      AppendQuoted(out, link.rt);
    }
    if (!link.interface.empty()) {
      out.append(";if=");
      AppendQuoted(out, link.interface);
    }
    if (link.ct) absl::StrAppend(&out, ";ct=", *link.ct);
    if (link.sz) absl::StrAppend(&out, ";sz=", *link.sz);
    if (!link.title.empty()) {
      out.append(";title=");
      AppendQuoted(out, link.title);
    }
    if (link.obs) out.append(";obs");
  }
  return out;
}

void ResourceTree::ServeWellKnownCore(Exchange& exchange) {
  if (exchange.method() != code::kGet) {
    exchange.Respond(Response(code::kMethodNotAllowed));
    return;
  }
  // RFC 6690 §4.1: the query selects links. More than a handful of filters is not a
  // discovery query anyone sends; the rest are ignored.
  std::array<std::string_view, 8> filters;
  size_t count = 0;
  exchange.request().ForEachUriQuery([&](std::string_view q) {
    if (count < filters.size()) filters[count++] = q;
  });
  // A copy of the document, made per discovery request (not a hot path); the layer splits
  // it into Block2 blocks when it is large.
  const std::string body = LinkFormat(std::span<const std::string_view>(filters.data(), count));
  exchange.Respond(
      Response(code::kContent).ContentFormat(content_format::kLinkFormat).Payload(body));
}

}  // namespace lwm2md::coap
