#pragma once
// JSON values as one-line error messages show them.
#include <nlohmann/json.hpp>

#include <string>

namespace attnsim {

namespace json_text_detail {

inline constexpr size_t kShownLimit = 60;

// Appends the compact JSON text of `v` (as dump() writes it) to `out`, stopping once `out`
// is longer than `limit`: a walk bounded by the limit however deep or long `v` is, where
// dump() recurses once per level (a value nested 100000 deep overflows the stack). Strings
// that are not valid UTF-8 are shown with U+FFFD instead of throwing.
template <class Json>
void append_bounded(const Json& v, std::string& out, size_t limit) {
  if (out.size() > limit) return;
  if (!v.is_object() && !v.is_array()) {
    out += v.dump(-1, ' ', false, Json::error_handler_t::replace);
    return;
  }
  out += v.is_object() ? '{' : '[';
  bool first = true;
  for (auto it = v.begin(); it != v.end() && out.size() <= limit; ++it) {
    if (!first) out += ',';
    first = false;
    if (v.is_object()) out += Json(it.key()).dump(-1, ' ', false, Json::error_handler_t::replace) + ":";
    append_bounded(it.value(), out, limit);
  }
  out += v.is_object() ? '}' : ']';
}

template <class Json>
std::string shown_text(const Json& v) {
  std::string s;
  append_bounded(v, s, kShownLimit);
  if (s.size() <= kShownLimit) return s;
  size_t cut = kShownLimit - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;  // not inside a UTF-8 character
  return s.substr(0, cut) + "...";
}

}  // namespace json_text_detail

// Compact, one line, cut to 60 characters ("..." at the end when cut).
inline std::string shown(const nlohmann::json& v) { return json_text_detail::shown_text(v); }
inline std::string shown(const nlohmann::ordered_json& v) { return json_text_detail::shown_text(v); }

}  // namespace attnsim
