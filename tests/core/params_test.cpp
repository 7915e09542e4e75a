// Parameter tables (core/params.h): one row per field declares its name, kind, default,
// unit, doc and range, and stores a resolved value into the struct.
#include "core/params.h"

#include <catch2/catch.hpp>

using namespace attnsim;

namespace {

enum class Colour { red, green };
const Choices<Colour>& colours() {
  static const Choices<Colour> c{{"red", Colour::red}, {"green", Colour::green}};
  return c;
}

struct Demo {
  int count;
  double rate;
  bool on;
  std::string label;
  Colour colour;
  json per_head;
  json absent;

  static const ParamTable<Demo>& table() {
    static const ParamTable<Demo> t{
        "demo", "A demo section.",
        {field(&Demo::count, "count", 3).unit("items").doc("How many.").min(1).max(9),
         field(&Demo::rate, "rate", 0.5).doc("How fast.").above(0.0),
         field(&Demo::on, "on", true).doc("Whether."),
         field(&Demo::label, "label", "x").doc("A name."),
         choice(&Demo::colour, "colour", Colour::green, colours()).doc("Which."),
         field(&Demo::per_head, "per_head", 0.25).per_head().doc("Per head."),
         field(&Demo::absent, "absent", json()).per_head().integers().doc("Optional.")}};
    return t;
  }
};

}  // namespace

TEST_CASE("a table declares each row once: kind, default, unit, range and choices") {
  const SectionSpec& s = Demo::table().spec();
  CHECK(s.name == "demo");
  REQUIRE(s.params.size() == 7);
  CHECK(s.params[0].kind == ParamKind::Integer);
  CHECK(s.params[0].default_value == 3);
  CHECK(s.params[0].unit == "items");
  CHECK(*s.params[0].min == 1);
  CHECK_FALSE(s.params[0].min_exclusive);
  CHECK(*s.params[0].max == 9);
  CHECK(s.params[1].kind == ParamKind::Number);
  CHECK(s.params[1].min_exclusive);
  CHECK(s.params[2].kind == ParamKind::Boolean);
  CHECK(s.params[3].kind == ParamKind::String);
  CHECK(s.params[4].kind == ParamKind::String);
  CHECK(s.params[4].default_value == "green");
  CHECK(s.params[4].choices == std::vector<std::string>{"red", "green"});
  CHECK(s.params[5].kind == ParamKind::PerHead);
  CHECK(s.params[6].default_value.is_null());
  CHECK(s.params[6].integer_only);
}

TEST_CASE("the same rows store a resolved section into the struct, choices as enums") {
  const Demo d = Demo::table().from(
      json{{"count", 7}, {"rate", 2.5}, {"on", false}, {"label", "y"}, {"colour", "red"}, {"per_head", {1, 2}}});
  CHECK(d.count == 7);
  CHECK(d.rate == 2.5);
  CHECK_FALSE(d.on);
  CHECK(d.label == "y");
  CHECK(d.colour == Colour::red);
  CHECK(d.per_head == json{1, 2});
  CHECK(d.absent.is_null());  // an absent optional value stays null
}

TEST_CASE("defaults() gives every row's declared default, optional rows absent") {
  const Demo d = Demo::table().defaults();
  CHECK(d.count == 3);
  CHECK(d.rate == 0.5);
  CHECK(d.on);
  CHECK(d.label == "x");
  CHECK(d.colour == Colour::green);
  CHECK(d.per_head == 0.25);
  CHECK(d.absent.is_null());
}

TEST_CASE("choices map names and values both ways") {
  CHECK(choice_name(colours(), Colour::green) == "green");
  CHECK(choice_value(colours(), "red") == Colour::red);
  CHECK_THROWS(choice_value(colours(), "blue"));
  CHECK(number_text(1.0) == "1");
  CHECK(number_text(0.25) == "0.25");
  CHECK(dotted("", "clock_ghz") == "clock_ghz");
  CHECK(dotted("qk_unit", "bits") == "qk_unit.bits");
}
