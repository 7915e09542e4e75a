#include "sim/cli/errors.h"

#include "core/json_input.h"

#include <boost/program_options/errors.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <new>

namespace attnsim {

namespace {

std::string escaped(unsigned char c) {
  char text[8];
  std::snprintf(text, sizeof text, "\\x%02x", c);
  return text;
}

}  // namespace

int exit_code_of(const std::exception& e) {
  if (const auto* classed = dynamic_cast<const Error*>(&e)) return exit_code(classed->error_class());
  if (dynamic_cast<const boost::program_options::error*>(&e)) return exit_code(ErrorClass::usage);
  if (dynamic_cast<const std::filesystem::filesystem_error*>(&e)) return exit_code(ErrorClass::io);
  if (dynamic_cast<const std::bad_alloc*>(&e)) return exit_code(ErrorClass::simulation);
  return kExitFailed;
}

std::string one_line(const std::string& text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      out += escaped(c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += text[i++];
      continue;
    }
    const size_t length = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;  // if it is a valid sequence
    if (i + length <= text.size() && invalid_utf8_at(std::string_view(text).substr(i, length)) == std::string::npos) {
      out.append(text, i, length);
      i += length;
    } else {
      out += escaped(c);
      ++i;
    }
  }
  return out;
}

int report_error(const std::exception& e, const std::string& context) {
  // std::bad_alloc says only "std::bad_alloc".
  const std::string message =
      dynamic_cast<const std::bad_alloc*>(&e) ? "out of memory (attnsim run --max-memory refuses such runs up front)" : std::string(e.what());
  std::cerr << "attnsim: " << one_line(context + message) << "\n";
  return exit_code_of(e);
}

int usage_error(const std::string& message) { return report_error(UsageError(message)); }

}  // namespace attnsim
