// JSON as attnsim reads it (core/json_input.h): depth bounded at parse time, duplicate keys
// refused, failures located by JSON path; and the bounded printer of error messages
// (core/json_text.h).
#include "core/json_input.h"
#include "core/json_text.h"

#include <catch2/catch.hpp>

#include <string>

using namespace attnsim;

namespace {

std::string nested_list(int depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); }

// The JsonInputError of parsing `text` (fails the test when it parses).
JsonInputError error_of(const std::string& text) {
  try {
    parse_json(text);
  } catch (const JsonInputError& e) {
    return e;
  }
  FAIL("parsed: " << text);
  return JsonInputError("", "");
}

}  // namespace

TEST_CASE("parse_json takes 64 levels and refuses the 65th, naming the outermost key") {
  CHECK(parse_json(nested_list(64)).is_array());
  CHECK(error_of(nested_list(65)).what() == std::string("nested deeper than 64 levels"));
  const JsonInputError e = error_of(R"({"a": {"b": [)" + nested_list(100000) + "]}}");
  CHECK(e.path() == "a.b");
  CHECK(e.reason() == "nested deeper than 64 levels");
  CHECK(std::string(e.what()) == "a.b: nested deeper than 64 levels");
  std::string objects;
  for (int i = 0; i < 70; ++i) objects += R"({"k":)";
  CHECK(error_of(objects + "1" + std::string(70, '}')).path() == "k.k.k.k.k.k.k.k...");
  CHECK(parse_ordered_json(nested_list(64)).is_array());
  CHECK_THROWS_AS(parse_ordered_json(nested_list(65)), JsonInputError);
}

TEST_CASE("parse_json refuses a key given twice in one object, naming its path") {
  CHECK(error_of(R"({"qk_unit": {"lanes": 8, "bits": 8, "lanes": 16}})").what() ==
        std::string("qk_unit.lanes: duplicate key"));
  CHECK(error_of(R"({"skip_if": [{}, {"x": 1, "x": 2}]})").path() == "skip_if[1].x");
  CHECK(error_of(R"({"a": 1, "a": 1})").path() == "a");
  // The same key in different objects is no duplicate.
  CHECK(parse_json(R"({"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}]})").size() == 3);
  CHECK_THROWS_WITH(parse_ordered_json(R"({"grid": {"a.b": [1], "a.b": [2]}})"), "grid.a.b: duplicate key");
}

TEST_CASE("a number beyond a double names its key or list index") {
  CHECK(error_of(R"({"comparator": {"gamma": 1e309}})").what() ==
        std::string("comparator.gamma: number out of range (not a finite double): 1e309"));
  CHECK(error_of(R"({"gamma": [0.1, 0.2, -1e400]})").path() == "gamma[2]");
  CHECK(error_of("1e309").path().empty());
  CHECK(parse_json("1e308").get<double>() == 1e308);
}

TEST_CASE("syntax errors keep nlohmann's position without its tag") {
  const JsonInputError e = error_of("{\n  \"a\": }");
  CHECK(e.path().empty());
  CHECK(e.reason().rfind("not valid JSON: parse error at line 2, column 8: syntax error", 0) == 0);
  CHECK(error_of("\"\x95\"").reason().find("ill-formed UTF-8") != std::string::npos);
  CHECK(json_error_text("c.json", error_of(R"({"a": 1, "a": 2})")) == "c.json: a: duplicate key");
}

TEST_CASE("invalid_utf8_at finds the first byte that is not UTF-8") {
  CHECK(invalid_utf8_at("plain ascii") == std::string::npos);
  CHECK(invalid_utf8_at("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == std::string::npos);  // é € 😀
  CHECK(invalid_utf8_at("\x95") == 0);
  CHECK(invalid_utf8_at("ab\xc3") == 2);            // truncated
  CHECK(invalid_utf8_at("\xc0\xaf") == 0);          // overlong '/'
  CHECK(invalid_utf8_at("x\xed\xa0\x80") == 1);     // a surrogate
  CHECK(invalid_utf8_at("\xf4\x90\x80\x80") == 0);  // above U+10FFFF
  CHECK(invalid_utf8_at("\xe2\x82") == 0);
  CHECK(utf8_problem("ok").empty());
  CHECK(utf8_problem("ab\xff") == "byte 0xff at offset 2");
}

TEST_CASE("shown prints like dump() up to 60 characters, bounded however deep the value") {
  CHECK(shown(nlohmann::json::parse(R"({"b": [1, 2.5, "x"], "a": null})")) == R"({"a":null,"b":[1,2.5,"x"]})");
  CHECK(shown(nlohmann::ordered_json::parse(R"({"b": 1, "a": true})")) == R"({"b":1,"a":true})");
  const std::string long_list = shown(nlohmann::json(std::vector<int>(100, 7)));
  CHECK(long_list.size() == 60);
  std::string sevens;
  for (int i = 0; i < 28; ++i) sevens += "7,";
  CHECK(long_list == "[" + sevens + "...");
  // A value nested 100000 deep (built in code: parse_json would refuse it).
  nlohmann::json deep = nlohmann::json::array();
  nlohmann::json* innermost = &deep;
  for (int i = 0; i < 100000; ++i) innermost = &innermost->emplace_back(nlohmann::json::array());
  CHECK(shown(deep) == std::string(57, '[') + "...");
  // Bytes that are not UTF-8 are shown replaced instead of throwing type_error 316.
  CHECK(shown(nlohmann::json(std::string("a\x95"))) == "\"a\xef\xbf\xbd\"");
}
