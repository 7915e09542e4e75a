#pragma once
// JSON as attnsim reads it: every JSON text that comes from outside (configs and their
// `--set` values, trace headers, sweep files, stats files, technology tables) goes
// through parse_json, which while it parses
//   - bounds the nesting depth (kMaxJsonDepth): nlohmann's parser itself is iterative and
//     survives any depth, but dump(), copies and every recursive walk after it are not, so
//     a value nested 100000 deep would crash the process on its way into an error message;
//   - rejects a key given twice in one object (nlohmann keeps the last one silently, and
//     the safetensors format forbids them);
//   - says where it failed as a JSON path ("qk_unit.lanes", "grid.qk_unit.lanes[2]"), so
//     that a number that overflows a double names its key.
// The caller puts the file in front: "<file>: <path>: <reason>".
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace attnsim {

// Deeper than any JSON attnsim reads (a per-layer, per-head list is 3 levels; a stats file
// about 6), shallow enough for any recursion on it.
inline constexpr int kMaxJsonDepth = 64;

// Where and why a JSON text was refused. path() is empty when the failure concerns the
// text as a whole (a syntax error, which nlohmann locates by line and column).
class JsonInputError : public std::runtime_error {
 public:
  JsonInputError(std::string path, std::string reason);
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_;
  std::string reason_;
};

// Parses `text` under the rules above. Throws JsonInputError with one of the reasons
//   "not valid JSON: <nlohmann's position and reason>"   (path empty)
//   "nested deeper than 64 levels"                       (path: the outermost key of the value)
//   "duplicate key"                                      (path: the key)
//   "number out of range (not a finite double): <text>"  (path: the key of the number)
nlohmann::json parse_json(std::string_view text);
nlohmann::ordered_json parse_ordered_json(std::string_view text);

// parse_json for files attnsim wrote itself and reads back (stats, manifests, claims), where
// anything unreadable counts as missing: a discarded value (is_discarded()) on any failure,
// as nlohmann's parse(..., allow_exceptions = false) gives, with the same bounds.
nlohmann::json parse_json_or_discarded(std::string_view text);

// "origin: path: reason" or "origin: reason" when the path is empty: the usual one-line form.
std::string json_error_text(const std::string& origin, const JsonInputError& e);

// The first byte offset at which `text` is not valid UTF-8, or npos. JSON text is checked by
// the parser; this is for strings that reach JSON values without it (`--set` values).
size_t invalid_utf8_at(std::string_view text);
// "" when `text` is valid UTF-8, else where it is not, for a message: "byte 0x95 at offset 6".
std::string utf8_problem(std::string_view text);

}  // namespace attnsim
