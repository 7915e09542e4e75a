#pragma once
// Shared by the fuzz targets (tests/fuzz/*_fuzz.cpp; docs/reliability.md#fuzzing). Each
// target defines LLVMFuzzerTestOneInput, which libFuzzer drives (ATTNSIM_FUZZ=ON, clang)
// and tests/fuzz/replay_main.cpp replays over the corpus and regression inputs (any build).
//
// A target fails, and libFuzzer keeps the input as a crasher, on a crash, a sanitizer
// report, a hang, or an exception outside the entry point's documented contract
// (contract_violation: the message, then abort()).
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

namespace attnsim::fuzz {

// A private temporary directory of this process (created once; removed at exit).
const std::string& temp_dir();

// Writes `size` bytes to temp_dir()/name, replacing it, and returns the path.
std::string write_temp(const std::string& name, const uint8_t* data, size_t size);
std::string write_temp(const std::string& name, const std::string& text);

// An exception the entry point does not document, or a message that breaks the one-line
// contract: prints "attnsim fuzz TARGET: what" to stderr and aborts.
[[noreturn]] void contract_violation(const char* target, const std::string& what);

// contract_violation for the exception being handled (call inside catch (...)): its type
// (for std::exception, what()) goes into the message.
[[noreturn]] void unexpected_exception(const char* target, const char* entry_point);

// The message of a documented error must be one line (no newline).
void check_one_line(const char* target, const char* entry_point, const std::string& message);

}  // namespace attnsim::fuzz
