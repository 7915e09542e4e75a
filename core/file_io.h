#pragma once
// Output files are written whole or not at all: a temporary file beside the target, then
// a rename, so a failed or interrupted run never leaves a partial file.
#include <string>

namespace attnsim {

// Writes `text` to `path` atomically, creating missing parent directories. Throws
// IoError (core/errors.h) naming the path.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace attnsim
