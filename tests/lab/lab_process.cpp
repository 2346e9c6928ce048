#include "lab_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace labtest {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Waits for `pid` up to `timeout`; returns its wait status or nullopt.
std::optional<int> wait_pid(int pid, std::chrono::milliseconds timeout) {
  auto until = SteadyClock::now() + timeout;
  for (;;) {
    int status = 0;
    int rc = waitpid(pid, &status, WNOHANG);
    if (rc == pid) return status;
    if (rc < 0) return std::nullopt;
    if (SteadyClock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/tdsbpf-lab-XXXXXX";
  const char* p = mkdtemp(tmpl);
  if (!p) throw std::runtime_error("mkdtemp failed");
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                          const std::string& input, std::chrono::milliseconds timeout) {
  CommandResult result;
  int out_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(in_pipe, O_CLOEXEC) != 0) {
    result.output = "pipe failed";
    return result;
  }
  auto start = SteadyClock::now();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(out_pipe[1], 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  close(out_pipe[1]);
  close(in_pipe[0]);
  if (!input.empty()) {
    signal(SIGPIPE, SIG_IGN);
    ssize_t ignored = write(in_pipe[1], input.data(), input.size());
    (void)ignored;
  }
  close(in_pipe[1]);

  auto until = start + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    pollfd p{out_pipe[0], POLLIN, 0};
    int pr = poll(&p, 1, static_cast<int>(std::min<long long>(left, 200)));
    if (pr > 0) {
      ssize_t n = read(out_pipe[0], buf, sizeof buf);
      if (n > 0) {
        result.output.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      break;  // EOF: the child closed its output
    }
  }
  close(out_pipe[0]);
  auto status = wait_pid(pid, result.timed_out ? std::chrono::milliseconds(2000) : timeout);
  if (!status) {
    kill(-pid, SIGKILL);
    status = wait_pid(pid, std::chrono::milliseconds(2000));
  }
  if (status && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  result.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return result;
}

LabServer::LabServer(std::vector<std::string> extra_args, std::string dir) {
  if (dir.empty()) {
    own_dir_.emplace();
    dir_ = own_dir_->path();
  } else {
    dir_ = std::move(dir);
  }
  log_path_ = dir_ + "/server.log";
  std::string ready = dir_ + "/ready";
  std::filesystem::remove(ready);
  std::vector<std::string> argv = {labserver_path(), "--listen", "127.0.0.1", "--port", "0", "--ready-file", ready,
                                   "--cert-out", cert_file(), "--verbose"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  auto until = SteadyClock::now() + std::chrono::seconds(10);
  while (SteadyClock::now() < until) {
    std::ifstream f(ready);
    int port = 0;
    if (f >> port && port > 0) {
      port_ = port;
      return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;  // exited early; log() says why
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

LabServer::~LabServer() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    wait_pid(pid_, std::chrono::seconds(5));
  }
  if (::testing::Test::HasFailure()) {
    std::string text = log();
    if (text.size() > 6000) text = "...\n" + text.substr(text.size() - 6000);
    std::printf("---- lab server log (%s) ----\n%s\n---- end of server log ----\n", log_path_.c_str(), text.c_str());
  }
}

std::string LabServer::log() const { return read_file(log_path_); }

bool LabServer::wait_for_log(const std::string& text, std::chrono::milliseconds timeout) const {
  auto until = SteadyClock::now() + timeout;
  do {
    if (log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (SteadyClock::now() < until);
  return false;
}

int LabServer::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  auto status = wait_pid(pid_, timeout);
  if (!status) {
    kill(pid_, SIGKILL);
    wait_pid(pid_, std::chrono::seconds(5));
    pid_ = -1;
    return -1;
  }
  pid_ = -1;
  return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

std::string labserver_path() { return TDSBPF_LABSERVER_PATH; }
std::string loadclient_path() { return TDSBPF_LOADCLIENT_PATH; }
std::string drivers_dir() { return TDSBPF_LAB_DRIVERS_DIR; }
std::string node_modules_dir() { return TDSBPF_LAB_NODE_MODULES; }

bool drivers_required() {
  const char* v = std::getenv("TDSBPF_REQUIRE_BPF");
  return v && std::string(v) == "1";
}

}  // namespace labtest
