#include "core/json_input.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <vector>

namespace attnsim {

namespace {

using Event = nlohmann::json::parse_event_t;

// One open object or array while the parser walks the text.
struct Frame {
  bool object = true;
  std::string key;             // object: the key whose value is being read
  std::set<std::string> keys;  // object: every key seen so far
  size_t elements = 0;         // array: elements begun so far
};

// Follows the parser's events (nlohmann's callback gets each one) to know where it is,
// and throws as soon as a rule is broken: before a too deep value is built.
class PathTracker {
 public:
  template <class Json>
  bool on_event(Event event, const Json& parsed) {
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        begin_element();
        if (frames_.size() >= static_cast<size_t>(kMaxJsonDepth))
          throw JsonInputError(outer_path(), "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        frames_.push_back(Frame{event == Event::object_start, {}, {}, 0});
        break;
      case Event::key:
        frames_.back().key = parsed.template get<std::string>();
        if (!frames_.back().keys.insert(frames_.back().key).second) throw JsonInputError(path(false), "duplicate key");
        break;
      case Event::value:
        begin_element();
        break;
      case Event::object_end:
      case Event::array_end:
        frames_.pop_back();
        break;
    }
    return true;
  }

  // The path of the value being read. `pending`: the innermost array's next element (a
  // value the lexer refused before the parser reported it) rather than its last one.
  std::string path(bool pending) const {
    std::string out;
    for (size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      if (f.object) {
        out += (out.empty() ? "" : ".") + f.key;
      } else {
        const bool last = i + 1 == frames_.size();
        const size_t index = pending && last ? f.elements : f.elements - (f.elements > 0);
        out += "[" + std::to_string(index) + "]";
      }
    }
    return out;
  }

 private:
  void begin_element() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().elements;
  }

  // For a value nested too deep: its outermost keys, up to the first list index and at
  // most 8 of them (the path of the innermost value would itself be 64 levels long).
  std::string outer_path() const {
    std::string out;
    int keys = 0;
    for (const Frame& f : frames_) {
      if (!f.object) break;
      if (++keys > 8) return out + "...";
      out += (out.empty() ? "" : ".") + f.key;
    }
    return out;
  }

  std::vector<Frame> frames_;
};

// nlohmann's message without its "[json.exception.parse_error.101] " tag, on one line.
std::string untagged(const std::exception& e) {
  std::string m = e.what();
  const size_t tag_end = m.find("] ");
  if (m.rfind("[json.exception", 0) == 0 && tag_end != std::string::npos) m = m.substr(tag_end + 2);
  std::replace(m.begin(), m.end(), '\n', ' ');
  return m;
}

// The number text of nlohmann's "number overflow parsing '1e309'".
std::string overflowing_number(const std::exception& e) {
  const std::string m = e.what();
  const size_t open = m.find('\'');
  const size_t close = m.rfind('\'');
  if (open == std::string::npos || close <= open) return untagged(e);
  return m.substr(open + 1, close - open - 1);
}

template <class Json>
Json parse_with_rules(std::string_view text) {
  PathTracker tracker;
  const typename Json::parser_callback_t callback = [&tracker](int, Event event, Json& parsed) {
    return tracker.on_event(event, parsed);
  };
  try {
    return Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
  } catch (const typename Json::out_of_range& e) {  // 406: a number beyond a double
    throw JsonInputError(tracker.path(true),
                         "number out of range (not a finite double): " + overflowing_number(e));
  } catch (const typename Json::parse_error& e) {
    throw JsonInputError("", "not valid JSON: " + untagged(e));
  }
}

}  // namespace

JsonInputError::JsonInputError(std::string path, std::string reason)
    : std::runtime_error(path.empty() ? reason : path + ": " + reason),
      path_(std::move(path)),
      reason_(std::move(reason)) {}

nlohmann::json parse_json(std::string_view text) { return parse_with_rules<nlohmann::json>(text); }

nlohmann::ordered_json parse_ordered_json(std::string_view text) {
  return parse_with_rules<nlohmann::ordered_json>(text);
}

nlohmann::json parse_json_or_discarded(std::string_view text) {
  try {
    return parse_json(text);
  } catch (const JsonInputError&) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
}

std::string json_error_text(const std::string& origin, const JsonInputError& e) {
  return origin + ": " + e.what();
}

size_t invalid_utf8_at(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte (RFC 3629 table)
    if (c < 0x80) len = 1;
    else if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c == 0xe0) len = 3, lo = 0xa0;                   // no overlong forms
    else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) len = 3;
    else if (c == 0xed) len = 3, hi = 0x9f;                   // no surrogates
    else if (c == 0xf0) len = 4, lo = 0x90;
    else if (c >= 0xf1 && c <= 0xf3) len = 4;
    else if (c == 0xf4) len = 4, hi = 0x8f;                   // nothing above U+10FFFF
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char b = s[i + k];
      const unsigned char low = k == 1 ? lo : 0x80, high = k == 1 ? hi : 0xbf;
      if (b < low || b > high) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

std::string utf8_problem(std::string_view text) {
  const size_t at = invalid_utf8_at(text);
  if (at == std::string_view::npos) return "";
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[at]));
  return std::string("byte ") + byte + " at offset " + std::to_string(at);
}

}  // namespace attnsim
