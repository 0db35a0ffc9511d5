#include "api/http_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/certificate_routes.h"
#include "api/route_util.h"
#include "api/routes.h"
#include "base/log.h"

namespace lwm2md::api {
namespace {

// SO_REUSEADDR only: cpp-httplib's default, SO_REUSEPORT, would let a second lwm2md bind
// the same port and silently share the scrapes. TCP_NODELAY (inherited by accepted
// connections): cpp-httplib writes a response's headers and body separately, and with Nagle
// the body waits for the client's delayed ACK, 40 ms per request on a kept-alive connection.
void SetSocketOptions(int socket) {
  int yes = 1;
  setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
}

bool IsLoopback(const std::string& address) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

// The reason of OpenSSL's oldest queued error ("no start line", "key values mismatch"), and
// the queue cleared for the next call.
std::string OpenSslError() {
  const unsigned long error = ERR_peek_error();
  const char* reason = error != 0 ? ERR_reason_error_string(error) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "unknown error";
}

// OpenSSL's messages for a missing or unreadable file are unhelpful ("system lib"): the
// errno text is what the user needs.
absl::Status CheckReadable(const char* key, const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": cannot read \"", path, "\": ", std::strerror(errno)));
  }
  std::fclose(file);
  return absl::OkStatus();
}

// Without a callback, OpenSSL asks for the password of an encrypted key on the terminal.
int NoPassword(char*, int, int, void*) { return -1; }

// Loads the certificate chain and the key into ctx and checks that they belong together, so
// that a bad file fails start with a message naming its key instead of every handshake
// failing later. Messages name the configuration keys the paths come from.
absl::Status ConfigureTls(SSL_CTX& ctx, const std::string& cert_path, const std::string& key_path) {
  ERR_clear_error();
  // RFC 8996: TLS 1.0 and 1.1 are deprecated. Compression invites CRIME; renegotiation is
  // not needed by any client of an API.
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);

  if (absl::Status readable = CheckReadable("http.tls_cert", cert_path); !readable.ok()) {
    return readable;
  }
  if (SSL_CTX_use_certificate_chain_file(&ctx, cert_path.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http.tls_cert: \"", cert_path, "\" holds no PEM certificate (", OpenSslError(), ")"));
  }
  if (absl::Status readable = CheckReadable("http.tls_key", key_path); !readable.ok()) {
    return readable;
  }
  std::FILE* file = std::fopen(key_path.c_str(), "rb");
  EVP_PKEY* key =
      file != nullptr ? PEM_read_PrivateKey(file, nullptr, NoPassword, nullptr) : nullptr;
  if (file != nullptr) std::fclose(file);
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("http.tls_key: \"", key_path,
                                                   "\" holds no unencrypted PEM private key (",
                                                   OpenSslError(), ")"));
  }
  absl::Status status = absl::OkStatus();
  if (X509_check_private_key(SSL_CTX_get0_certificate(&ctx), key) != 1) {
    ERR_clear_error();
    status = absl::InvalidArgumentError(absl::StrCat("http.tls_key: \"", key_path,
                                                     "\" does not match the certificate in \"",
                                                     cert_path, "\" (http.tls_cert)"));
  } else if (SSL_CTX_use_PrivateKey(&ctx, key) != 1 || SSL_CTX_check_private_key(&ctx) != 1) {
    status = absl::InvalidArgumentError(
        absl::StrCat("http.tls_key: \"", key_path, "\" not usable: ", OpenSslError()));
  }
  EVP_PKEY_free(key);
  return status;
}

absl::StatusOr<std::unique_ptr<httplib::Server>> MakeListener(const HttpServerOptions& options) {
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError(
        options.tls_cert.empty() ? "http.tls_cert: required with http.tls_key (both or neither)"
                                 : "http.tls_key: required with http.tls_cert (both or neither)");
  }
  if (options.tls_cert.empty()) return std::make_unique<httplib::Server>();
  // httplib runs the callback inside the constructor, before anything is served.
  absl::Status status = absl::OkStatus();
  auto server = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
    status = ConfigureTls(ctx, options.tls_cert, options.tls_key);
    return status.ok();
  });
  if (!status.ok()) return status;
  if (!server->is_valid()) {
    return absl::InternalError(absl::StrCat("cannot create a TLS context: ", OpenSslError()));
  }
  return server;
}

// The answers to refused requests depend on nothing but the decision: not on the path, the
// route or whether what it names exists. "Connection: close" asks the client to go, since the
// request's body (if any) is left unread and would otherwise be taken for the next request.
void Refuse(Authenticator::Decision decision, httplib::Response& response) {
  if (decision == Authenticator::Decision::kForbidden) {
    // RFC 6750 §3.1: insufficient_scope, answered 403.
    SendError(response, 403, "token is read-only");
    response.set_header("WWW-Authenticate",
                        "Bearer realm=\"lwm2md\", error=\"insufficient_scope\"");
  } else {
    // RFC 6750 §3: 401 with the scheme and realm; the same whether the token is missing,
    // malformed or unknown.
    SendError(response, 401, "missing or invalid bearer token");
    response.set_header("WWW-Authenticate", "Bearer realm=\"lwm2md\"");
  }
  response.set_header("Connection", "close");
}

std::vector<std::string> AuthorizationHeaders(const httplib::Request& request) {
  std::vector<std::string> values;
  // Two are as malformed as twenty: stop reading there.
  const size_t count = std::min<size_t>(request.get_header_value_count("Authorization"), 2);
  for (size_t i = 0; i < count; ++i) {
    values.push_back(request.get_header_value("Authorization", i));
  }
  return values;
}

}  // namespace

HttpServer::HttpServer(const HttpServerOptions& options) : options_(options) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              const HttpServices& services) {
  if (options.tokens.empty()) {
    return absl::InvalidArgumentError(
        "HTTP listener without API tokens: every request would be refused");
  }
  absl::StatusOr<std::unique_ptr<httplib::Server>> listener = MakeListener(options);
  if (!listener.ok()) return listener.status();
  auto http = absl::WrapUnique(new HttpServer(options));
  http->server_ = *std::move(listener);
  // The digests live in the authenticator only.
  http->authenticator_ =
      std::make_unique<Authenticator>(std::move(http->options_.tokens), options.public_metrics);
  http->options_.tokens.clear();
  const Authenticator* auth = http->authenticator_.get();
  httplib::Server& server = *http->server_;
  const int workers = options.worker_threads > 0 ? options.worker_threads : 1;
  server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server.set_socket_options(SetSocketOptions);
  // Stop() waits for idle keep-alive connections to time out; keep that wait short.
  server.set_keep_alive_timeout(1);
  // cpp-httplib closes a kept-alive connection after 5 requests by default: an application
  // driving devices would reconnect every fifth call.
  server.set_keep_alive_max_count(1000);
  server.set_logger([auth](const httplib::Request& request, const httplib::Response& response) {
    if (!LogEnabled(LogLevel::kDebug)) return;
    // The token's name, never its secret.
    const ApiToken* token = request.get_header_value_count("Authorization") == 1
                                ? auth->Find(request.get_header_value("Authorization"))
                                : nullptr;
    LWM2MD_LOG(kDebug, "http %s %s %d %s", request.method, request.path, response.status,
               token != nullptr ? token->name : "-");
  });
  // Before routing, so that a refusal cannot depend on the route.
  server.set_pre_routing_handler(
      [auth](const httplib::Request& request, httplib::Response& response) {
        const Authenticator::Result result =
            auth->Check(request.method, request.path, AuthorizationHeaders(request));
        if (result.decision == Authenticator::Decision::kAllow) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        Refuse(result.decision, response);
        return httplib::Server::HandlerResponse::Handled;
      });
  // Handlers do not throw by design; should one (bad_alloc), the client gets a 500 and the
  // process goes on.
  server.set_exception_handler(
      [](const httplib::Request& request, httplib::Response& response, std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LWM2MD_LOG(kError, "http %s %s failed: %s", request.method, request.path, what);
        response.status = 500;
        response.set_content("internal error\n", "text/plain; charset=utf-8");
      });

  if (services.metrics != nullptr) AddMetricsRoutes(server, *services.metrics);
  AddHealthRoutes(server, http->ready_);
  if (services.objects != nullptr) AddObjectRoutes(server, *services.objects);
  if (services.endpoints != nullptr) {
    AddEndpointRoutes(server, *services.endpoints, services.directory);
    AddSettingsRoutes(server, *services.endpoints);
  }
  if (services.billing != nullptr) AddBillingRoutes(server, *services.billing);
  if (services.ca_certificates != nullptr) AddCertificateRoutes(server, *services.ca_certificates);
  if (services.management != nullptr && services.objects != nullptr && services.store != nullptr) {
    AddActionRoutes(server, *services.management, *services.objects, *services.store);
  }
  if (services.events != nullptr) {
    AddEventRoutes(server, *services.events, http->stopping_, http->open_event_streams_,
                   {.max_streams = std::max(1, workers - 4)});
  }

  int port = options.port;
  if (port == 0) {
    port = server.bind_to_any_port(options.address);
  } else if (!server.bind_to_port(options.address, port)) {
    port = -1;
  }
  if (port <= 0) {
    int error = errno;
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", options.address,
                                               " port ", options.port, ": ", std::strerror(error)));
  }
  http->port_ = static_cast<uint16_t>(port);
  if (!http->tls() && !IsLoopback(options.address)) {
    LWM2MD_LOG(kWarning,
               "HTTP listener on %s without TLS: API tokens travel in clear; set http.tls_cert "
               "and http.tls_key, or listen on loopback behind a TLS proxy",
               http->ListenAddress());
  }
  http->thread_ = std::thread([&server, &returned = http->listen_returned_] {
    server.listen_after_bind();
    returned.store(true);
  });

  // httplib's stop() does nothing until the accept loop runs: wait for it, so that a
  // Stop() right after Start() cannot be lost.
  while (!server.is_running()) {
    if (http->listen_returned_.load()) {
      return absl::InternalError(
          absl::StrCat("HTTP listener on ", http->ListenAddress(), " stopped at once"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return http;
}

std::string HttpServer::ListenAddress() const {
  if (options_.address.find(':') != std::string::npos) {
    return absl::StrCat("[", options_.address, "]:", port_);
  }
  return absl::StrCat(options_.address, ":", port_);
}

void HttpServer::Stop() {
  ready_.store(false);
  if (!thread_.joinable()) return;
  // Event streams never end by themselves. httplib's stop would cut them off mid-stream, so
  // first let them send their last chunk (a clean end for the client; within one poll
  // interval), bounded in case one is stuck writing to a client that does not read.
  stopping_.store(true);
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  while (open_event_streams_.load() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  server_->stop();
  thread_.join();
}

}  // namespace lwm2md::api
