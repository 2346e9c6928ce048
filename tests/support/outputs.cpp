// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "outputs.h"

#include <fstream>
#include <iterator>

namespace labtest {

std::string slurp(const std::string& path)
{
	std::ifstream in(path, std::ios::binary);
	return std::string(std::istreambuf_iterator<char>(in), {});
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

} // namespace labtest
