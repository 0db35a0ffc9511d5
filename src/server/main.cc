// lwm2md: loads the configuration, starts the server and runs until SIGINT or SIGTERM.

#include <pthread.h>
#include <signal.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/log.h"
#include "server/config.h"
#include "server/server.h"

namespace lwm2md::server {
namespace {

constexpr char kDefaultConfig[] = "config/lwm2md.toml";

constexpr char kUsage[] =
    "usage: lwm2md [--config FILE] [--set key=value]...\n"
    "       lwm2md --help | --version\n"
    "\n"
    "  --config FILE    configuration file, default config/lwm2md.toml (which documents\n"
    "                   every key); without --config a missing default file means defaults\n"
    "  --set key=value  overrides one key after the file is read; the value is TOML, or a\n"
    "                   plain word taken as a string. Repeatable. Examples:\n"
    "                     --set coap.port=0 --set net.backend=epoll\n"
    "                     --set 'coap.listen=[\"127.0.0.1\", \"::1\"]'\n"
    "  --help           prints this text\n"
    "  --version        prints the version\n"
    "\n"
    "SIGINT or SIGTERM stops the server cleanly.\n";

struct Flags {
  std::string config_path = kDefaultConfig;
  bool config_given = false;
  std::vector<std::string> overrides;
  bool help = false;
  bool version = false;
};

int UsageError(const std::string& message) {
  std::fprintf(stderr, "lwm2md: %s\n(lwm2md --help lists the flags)\n", message.c_str());
  return 2;
}

// Parses "--flag value" and "--flag=value". Returns 0, or the exit code for a usage error.
int ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view name = arg;
    std::optional<std::string> value;
    if (size_t equals = arg.find('='); arg.starts_with("--") && equals != std::string::npos) {
      name = arg.substr(0, equals);
      value = std::string(arg.substr(equals + 1));
    }
    auto take_value = [&]() -> bool {
      if (value.has_value()) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (name == "--help" || name == "-h") {
      flags->help = true;
    } else if (name == "--version") {
      flags->version = true;
    } else if (name == "--config") {
      if (!take_value()) return UsageError("--config needs a file name");
      flags->config_path = *value;
      flags->config_given = true;
    } else if (name == "--set") {
      if (!take_value()) return UsageError("--set needs key=value");
      flags->overrides.push_back(*value);
    } else if (arg.starts_with("-")) {
      return UsageError("unknown flag " + std::string(name));
    } else {
      return UsageError("unexpected argument " + std::string(arg));
    }
  }
  return 0;
}

int Main(int argc, char** argv) {
  Flags flags;
  if (int code = ParseFlags(argc, argv, &flags); code != 0) return code;
  if (flags.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (flags.version) {
    std::printf("lwm2md %s\n", LWM2MD_VERSION);
    return 0;
  }

  absl::StatusOr<Config> config =
      LoadConfig(flags.config_path, flags.overrides, /*file_required=*/flags.config_given);
  if (!config.ok()) {
    std::fprintf(stderr, "lwm2md: bad configuration:\n%s\n",
                 std::string(config.status().message()).c_str());
    return 1;
  }
  SetLogLevel(config->log_level);
  if (!flags.config_given && !std::filesystem::exists(flags.config_path)) {
    LWM2MD_LOG(kInfo, "no %s: built-in defaults and --set only", flags.config_path);
  }

  // Blocked before any thread starts, so that every thread inherits the mask and the
  // signals wait for sigwait below instead of interrupting a shard. The default action is
  // restored first: a shell starting us in the background sets SIGINT to ignored, and an
  // ignored signal is discarded rather than left pending for sigwait.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A scraper hanging up mid-response must not kill the process.
  signal(SIGPIPE, SIG_IGN);

  // A store that fails for good (map or disk full, I/O error) stops the server cleanly and
  // makes it exit 1, through the same path as SIGTERM.
  static std::atomic<bool> store_failed{false};
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(*config, [](absl::Status) {
        store_failed.store(true);
        kill(getpid(), SIGTERM);
      });
  if (!server.ok()) {
    LWM2MD_LOG(kError, "lwm2md failed to start: %s", server.status().message());
    return 1;
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  if (store_failed.load()) {
    LWM2MD_LOG(kError, "stopping: the store cannot take writes");
  } else {
    LWM2MD_LOG(kInfo, "%s: stopping", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  }
  (*server)->Stop();
  server->reset();
  LWM2MD_LOG(kInfo, "lwm2md stopped");
  return store_failed.load() ? 1 : 0;
}

}  // namespace
}  // namespace lwm2md::server

int main(int argc, char** argv) { return lwm2md::server::Main(argc, argv); }
