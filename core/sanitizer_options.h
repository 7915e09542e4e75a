#pragma once
// Run-time defaults of the sanitized builds (CMakePresets.json "asan", the fuzz targets;
// docs/reliability.md#sanitizers). Include it in the one file of each executable that
// defines main(); it defines nothing in other builds. ASAN_OPTIONS and UBSAN_OPTIONS given
// at run time are applied after these.
//
// detect_stack_use_after_return=0: SystemC 2.3.4 switches coroutines without saving ASan's
// fake stack (it passes no slot for it), so frames moved to a fake stack would be freed
// under a suspended SC_THREAD. GCC's default is already 0, clang's (from 15) is not.
// detect_leaks=1: LeakSanitizer on (the default on Linux), stated because the suite relies
// on it. UBSan: a stack for every report; -fno-sanitize-recover=all makes each one fatal.

#if defined(__SANITIZE_ADDRESS__)
#define ATTNSIM_SANITIZER_OPTIONS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATTNSIM_SANITIZER_OPTIONS_ASAN 1
#endif
#endif

#ifdef ATTNSIM_SANITIZER_OPTIONS_ASAN
extern "C" const char* __asan_default_options() { return "detect_stack_use_after_return=0:detect_leaks=1"; }
extern "C" const char* __ubsan_default_options() { return "print_stacktrace=1"; }
#endif
