#include "api/route_util.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "base/json_writer.h"
#include "base/log.h"
#include "base/strings.h"

namespace lwm2md::api {

void SendJson(httplib::Response& response, int status, const std::string& body) {
  response.status = status;
  response.set_content(body, kJsonMediaType);
}

void SendError(httplib::Response& response, int status, std::string_view message) {
  base::JsonWriter out;
  out.BeginObject().Key("error").String(message).EndObject();
  SendJson(response, status, out.str());
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    // The store's queue is full or the store stopped: retrying later may work.
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void SendStatus(const httplib::Request& request, httplib::Response& response,
                const absl::Status& status) {
  const int code = HttpStatusFor(status);
  if (code >= 500) {
    LWM2MD_LOG(kError, "http %s %s: %s", request.method, request.path, status.message());
  }
  SendError(response, code, base::Std(status.message()));
}

std::string MediaType(const std::string& content_type) {
  std::string type = content_type.substr(0, content_type.find(';'));
  type.erase(std::remove_if(type.begin(), type.end(),
                            [](unsigned char c) { return std::isspace(c) != 0; }),
             type.end());
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return type;
}

bool ReadBody(const httplib::Request& request, httplib::Response& response,
              const httplib::ContentReader& reader,
              std::initializer_list<std::string_view> accepted_media_types, size_t max_bytes,
              std::string* body) {
  const std::string type = MediaType(request.get_header_value("Content-Type"));
  if (std::find(accepted_media_types.begin(), accepted_media_types.end(), type) ==
      accepted_media_types.end()) {
    std::string message = "Content-Type must be ";
    std::string_view separator;
    for (const std::string_view accepted : accepted_media_types) {
      message.append(separator).append(accepted);
      separator = " or ";
    }
    SendError(response, 415, message);
    return false;
  }
  // An unread body would be taken for the next request on the connection: close it instead.
  auto too_large = [&response, max_bytes] {
    SendError(response, 413, absl::StrCat("body: larger than ", max_bytes, " bytes"));
    response.set_header("Connection", "close");
    return false;
  };
  // A declared length over the bound is refused before any of the body is read.
  if (request.has_header("Content-Length")) {
    const std::string length = request.get_header_value("Content-Length");
    uint64_t declared = 0;
    auto [end, error] = std::from_chars(length.data(), length.data() + length.size(), declared);
    if (error == std::errc() && end == length.data() + length.size() && declared > max_bytes) {
      return too_large();
    }
  }
  // Chunked bodies (or a wrong Content-Length) are only known to be too large while reading.
  bool overflow = false;
  const bool read = reader([&](const char* data, size_t size) {
    if (body->size() + size > max_bytes) {
      overflow = true;
      return false;
    }
    body->append(data, size);
    return true;
  });
  if (overflow) return too_large();
  if (!read) {
    SendError(response, 400, "body: could not be read");
    response.set_header("Connection", "close");
    return false;
  }
  return true;
}

}  // namespace lwm2md::api
