#include "http_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/status/status.h"

namespace lwm2md::bench {
namespace {

// Bounds that keep a misbehaving peer from growing our buffers without end.
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 16 * 1024 * 1024;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (EqualsIgnoreCase(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

HttpClient::HttpClient(const SocketAddress& target, std::string authorization, int timeout_ms)
    : target_(target), authorization_(std::move(authorization)), timeout_ms_(timeout_ms) {}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  keep_alive_ = false;
  buffer_.clear();
}

absl::Status HttpClient::Connect() {
  Close();
  fd_ = socket(target_.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return absl::InternalError(std::string("socket: ") + std::strerror(errno));
  timeval timeout{};
  timeout.tv_sec = timeout_ms_ / 1000;
  timeout.tv_usec = (timeout_ms_ % 1000) * 1000;
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  // Requests are written in one piece; Nagle would only hold back the next one.
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd_, target_.sockaddr_ptr(), target_.length) != 0) {
    const int saved = errno;
    Close();
    return absl::UnavailableError("connect " + target_.ToString() + ": " + std::strerror(saved));
  }
  ++connects_;
  keep_alive_ = true;
  return absl::OkStatus();
}

absl::Status HttpClient::SendAll(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(std::string("send: ") + std::strerror(errno));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

bool HttpClient::ReadMore(std::string* error) {
  char chunk[16 * 1024];
  for (;;) {
    if (quick_ack_) {
      int one = 1;
      setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
    ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n == 0) {
      *error = "connection closed by the server";
      return false;
    }
    if (errno == EINTR) continue;
    *error = (errno == EAGAIN || errno == EWOULDBLOCK)
                 ? "timed out waiting for the response"
                 : std::string("recv: ") + std::strerror(errno);
    return false;
  }
}

absl::StatusOr<HttpResponse> HttpClient::ReadResponse(bool* got_bytes) {
  *got_bytes = !buffer_.empty();
  std::string error;
  size_t header_end;
  while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (buffer_.size() > kMaxHeaderBytes) return absl::DataLossError("response header too large");
    if (!ReadMore(&error)) return absl::UnavailableError(error);
    *got_bytes = true;
  }
  const std::string_view head(buffer_.data(), header_end);
  // Status line: HTTP/1.x SP code SP reason (RFC 9112 §4).
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") {
    return absl::DataLossError("malformed status line");
  }
  HttpResponse response;
  auto [ptr, ec] =
      std::from_chars(status_line.data() + 9, status_line.data() + 12, response.status);
  if (ec != std::errc() || ptr != status_line.data() + 12) {
    return absl::DataLossError("malformed status code");
  }
  bool keep_alive = status_line.substr(5, 3) == "1.1";
  bool chunked = false;
  std::optional<size_t> content_length;
  while (line_end != std::string_view::npos) {
    const size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    std::string_view line = head.substr(
        start, line_end == std::string_view::npos ? std::string_view::npos : line_end - start);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = Trim(line.substr(0, colon));
    const std::string_view value = Trim(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "content-length")) {
      size_t length = 0;
      auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (e != std::errc() || p != value.data() + value.size() || length > kMaxBodyBytes) {
        return absl::DataLossError("bad Content-Length");
      }
      content_length = length;
    } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
      chunked = ContainsIgnoreCase(value, "chunked");
    } else if (EqualsIgnoreCase(name, "connection")) {
      if (ContainsIgnoreCase(value, "close")) keep_alive = false;
      if (ContainsIgnoreCase(value, "keep-alive")) keep_alive = true;
    }
  }
  buffer_.erase(0, header_end + 4);

  if (chunked) {
    // RFC 9112 §7.1: hex size line, data, CRLF; a zero size ends the body, then trailers.
    for (;;) {
      size_t eol;
      while ((eol = buffer_.find("\r\n")) == std::string::npos) {
        if (buffer_.size() > kMaxHeaderBytes) return absl::DataLossError("bad chunk header");
        if (!ReadMore(&error)) return absl::UnavailableError(error);
      }
      size_t size = 0;
      auto [p, e] = std::from_chars(buffer_.data(), buffer_.data() + eol, size, 16);
      if (e != std::errc() || size > kMaxBodyBytes - response.body.size()) {
        return absl::DataLossError("bad chunk size");
      }
      (void)p;  // chunk extensions after the size are ignored
      if (size == 0) {
        buffer_.erase(0, eol + 2);
        // Trailer fields until an empty line.
        for (;;) {
          size_t end;
          while ((end = buffer_.find("\r\n")) == std::string::npos) {
            if (buffer_.size() > kMaxHeaderBytes) return absl::DataLossError("bad trailer");
            if (!ReadMore(&error)) return absl::UnavailableError(error);
          }
          buffer_.erase(0, end + 2);
          if (end == 0) break;
        }
        break;
      }
      while (buffer_.size() < eol + 2 + size + 2) {
        if (!ReadMore(&error)) return absl::UnavailableError(error);
      }
      response.body.append(buffer_, eol + 2, size);
      buffer_.erase(0, eol + 2 + size + 2);
    }
  } else if (content_length) {
    while (buffer_.size() < *content_length) {
      if (!ReadMore(&error)) return absl::UnavailableError(error);
    }
    response.body.assign(buffer_, 0, *content_length);
    buffer_.erase(0, *content_length);
  } else {
    // No length: the body runs to the end of the connection (RFC 9112 §6.3).
    while (buffer_.size() <= kMaxBodyBytes && ReadMore(&error)) {
    }
    response.body = std::move(buffer_);
    buffer_.clear();
    keep_alive = false;
  }
  keep_alive_ = keep_alive;
  return response;
}

absl::StatusOr<HttpResponse> HttpClient::Request(std::string_view method, std::string_view path,
                                                 std::string_view body) {
  std::string request;
  request.reserve(256 + body.size());
  request.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ");
  request.append(target_.ToString()).append("\r\n");
  if (!authorization_.empty())
    request.append("Authorization: ").append(authorization_).append("\r\n");
  if (!body.empty()) {
    request.append("Content-Type: application/json\r\nContent-Length: ");
    request.append(std::to_string(body.size())).append("\r\n");
  }
  request.append("\r\n").append(body);

  // Two attempts at most: the second only when a reused connection turned out to be closed.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = fd_ >= 0 && keep_alive_;
    if (!reused) {
      if (absl::Status status = Connect(); !status.ok()) return status;
    }
    absl::Status sent = SendAll(request);
    bool got_bytes = false;
    absl::StatusOr<HttpResponse> response =
        sent.ok() ? ReadResponse(&got_bytes) : absl::StatusOr<HttpResponse>(sent);
    if (response.ok()) {
      if (!keep_alive_) Close();
      return response;
    }
    Close();
    if (!reused || got_bytes) return response.status();
  }
  return absl::UnavailableError("connection closed twice");
}

}  // namespace lwm2md::bench
