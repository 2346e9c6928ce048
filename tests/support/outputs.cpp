// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "outputs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

namespace labtest {

pid_t start_lab_server(tdsbpf::lab::NetnsLab& lab, const tdsbpf::lab::TempDir& dir, const std::string& listen)
{
	pid_t pid = lab.spawn(lab.server_ns(),
			      {TDSBPF_LABSERVER_PATH, "--listen", listen.empty() ? lab.server_ip() : listen, "--port",
			       "1433", "--ready-file", dir.file("server.ready")},
			      dir.file("server.out"), dir.file("server.log"));
	return tdsbpf::lab::wait_for_file(dir.file("server.ready"), std::chrono::milliseconds(20000)) ? pid : 0;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout)
{
	auto until = std::chrono::steady_clock::now() + timeout;
	while (!pred()) {
		if (std::chrono::steady_clock::now() >= until)
			return false;
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
	}
	return true;
}

std::string slurp(const std::string& path)
{
	std::ifstream in(path, std::ios::binary);
	return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string fenced_block(const std::string& path, const std::string& after)
{
	std::string text = slurp(path);
	size_t at = text.find(after);
	size_t open = at == std::string::npos ? at : text.find("```", at);
	size_t body = open == std::string::npos ? open : text.find('\n', open);
	size_t close = body == std::string::npos ? body : text.find("\n```", body);
	if (close == std::string::npos)
		return {};
	return text.substr(body + 1, close - body);
}

std::vector<nlohmann::json> read_connection_records(const std::string& path)
{
	std::vector<nlohmann::json> out;
	std::ifstream in(path);
	std::string line;
	while (std::getline(in, line)) {
		auto j = nlohmann::json::parse(line, nullptr, false);
		if (j.is_object() && j.value("tdsbpf.record", "") == "connection")
			out.push_back(std::move(j));
	}
	return out;
}

nlohmann::json summary_in(const std::string& log)
{
	auto at = log.rfind("{\"by_close_kind\"");
	if (at == std::string::npos)
		return nullptr;
	auto end = log.find('\n', at);
	return nlohmann::json::parse(log.substr(at, end == std::string::npos ? std::string::npos : end - at), nullptr,
				     false);
}

TdsbpfRun run_tdsbpf(const std::vector<std::string>& args, int in_fd, int out_fd,
		     const std::function<void(pid_t)>& on_start)
{
	tdsbpf::lab::TempDir t("tdsbpf-run");
	std::string out = t.file("out"), err = t.file("err");
	signal(SIGPIPE, SIG_IGN);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		dup2(in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY), 0);
		dup2(out_fd >= 0 ? out_fd : open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 1);
		dup2(open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 2);
		std::vector<char*> argv;
		argv.push_back(const_cast<char*>(TDSBPF_BIN));
		for (const auto& a : args)
			argv.push_back(const_cast<char*>(a.c_str()));
		argv.push_back(nullptr);
		execv(TDSBPF_BIN, argv.data());
		_exit(127);
	}
	if (on_start)
		on_start(pid);
	int st = 0;
	waitpid(pid, &st, 0);
	TdsbpfRun r;
	r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	r.out = slurp(out);
	r.err = slurp(err);
	return r;
}

} // namespace labtest
