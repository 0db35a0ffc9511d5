#pragma once
// Helpers shared by the REST route groups (*_routes.cc), so that every route answers errors,
// status codes and request bodies the same way. Internal to api/.

#include <httplib.h>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace lwm2md::api {

inline constexpr char kJsonMediaType[] = "application/json";

// Sets the status and a JSON body.
void SendJson(httplib::Response& response, int status, const std::string& body);

// Sets the status and the API's error body, {"error":"<message>"}.
void SendError(httplib::Response& response, int status, std::string_view message);

// The HTTP status for a failed operation: 400 InvalidArgument, 404 NotFound, 409
// AlreadyExists and FailedPrecondition, 503 ResourceExhausted and Unavailable (the store's
// queue is full or the store stopped: retrying may work), 500 anything else.
int HttpStatusFor(const absl::Status& status);

// Answers a failed operation with HttpStatusFor's status and the status message as the error.
// 5xx answers are logged too, since they mean a fault on this side rather than the client's.
void SendStatus(const httplib::Request& request, httplib::Response& response,
                const absl::Status& status);

// The media type of a Content-Type value, without parameters or whitespace and lower-cased
// (media types compare case-insensitively): "Application/JSON; charset=utf-8" →
// "application/json".
std::string MediaType(const std::string& content_type);

// Reads the request body into *body, at most max_bytes, when the request's media type is one
// of accepted_media_types. Returns false with the response already set otherwise: 415
// ("Content-Type must be <the accepted types, joined by " or ">"), 413 when the declared
// Content-Length or the body read exceeds max_bytes, 400 when the body cannot be read. 413
// and 400 also close the connection, since the rest of the body is left unread.
bool ReadBody(const httplib::Request& request, httplib::Response& response,
              const httplib::ContentReader& reader,
              std::initializer_list<std::string_view> accepted_media_types, size_t max_bytes,
              std::string* body);

}  // namespace lwm2md::api
