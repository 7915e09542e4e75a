// The bad-input corpus (tests/data/bad/, written by make_bad.py): every case of its
// manifest.json run as a user would, from that directory, must print exactly the one line
// the manifest gives (naming the file, or the option of a command-line case) on stderr and
// nothing on stdout, exit with the code of its class, and leave no output file.
#include "tests/support/cli.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The names of every file and directory under `dir`, to see that a case wrote nothing.
std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir)) names.insert(e.path().string());
  return names;
}

// `line` against the manifest's message, where "{*}" stands for any text.
bool matches(const std::string& line, const std::string& message) {
  const size_t star = message.find("{*}");
  if (star == std::string::npos) return line == message;
  const std::string head = message.substr(0, star), tail = message.substr(star + 3);
  return line.size() >= head.size() + tail.size() && line.compare(0, head.size(), head) == 0 &&
         line.compare(line.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

TEST_CASE("every bad input of tests/data/bad: one line naming it, the exit code of its class, no output") {
  const fs::path corpus = fs::canonical(fs::path(ATTNSIM_SOURCE_DIR) / "tests" / "data" / "bad");
  const nlohmann::json manifest = nlohmann::json::parse(read(corpus / "manifest.json"));
  REQUIRE(manifest.at("schema") == "attnsim.bad-corpus/1");
  const nlohmann::json& cases = manifest.at("cases");
  REQUIRE(cases.size() >= 80);
  const std::set<std::string> before = listing(corpus);
  const fs::path scratch = attnsim::test::scratch_dir("bad_inputs");
  std::set<int> codes;
  for (size_t i = 0; i < cases.size(); ++i) {
    const nlohmann::json& c = cases[i];
    const std::string file = c.at("file").is_null() ? "" : c.at("file").get<std::string>();
    const fs::path out_dir = scratch / ("case" + std::to_string(i));
    fs::create_directories(out_dir);
    const std::string args = replaced(replaced(c.at("args").get<std::string>(), "{file}", file), "{out}",
                                      (out_dir / "out").string());
    INFO("case " << i << ": attnsim " << args << " (" << c.at("why").get<std::string>() << ")");
    if (c.value("absent", false))
      REQUIRE_FALSE(fs::exists(corpus / file));
    else if (!file.empty())
      REQUIRE(fs::exists(corpus / file));

    const fs::path err_file = scratch / "stderr", out_file = scratch / "stdout";
    // In a subshell: its own redirections take stderr and stdout apart from shell()'s 2>&1.
    const attnsim::test::CliResult r = attnsim::test::shell("(cd '" + corpus.string() + "' && " + ATTNSIM_BINARY + " " +
                                                            args + " 2>'" + err_file.string() + "' >'" +
                                                            out_file.string() + "')");
    const std::string err = read(err_file);
    CHECK(r.code == c.at("exit").get<int>());
    codes.insert(r.code);
    REQUIRE(attnsim::test::count_lines(err) == 1);
    REQUIRE(err.back() == '\n');
    const std::string line = err.substr(0, err.size() - 1);
    const std::string message =
        replaced(replaced(c.at("message").get<std::string>(), "{file}", file), "{dir}", corpus.string());
    CHECK(matches(line, message));
    CHECK(line.find(c.value("names", file)) != std::string::npos);
    CHECK(read(out_file).empty());
    CHECK(fs::is_empty(out_dir));
  }
  CHECK(codes == std::set<int>{2, 3, 4, 5, 6});  // every class has its cases
  CHECK(listing(corpus) == before);              // nothing written beside the inputs
}
