#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "core/sanitizer_options.h"

#include <cstdlib>

// Our own main (it takes precedence over the one in libsystemc): silence the SystemC
// banner before any SystemC object exists, then run Catch2.
int main(int argc, char* argv[]) {
  setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 1);
  return Catch::Session().run(argc, argv);
}

// libsystemc.so's own main() refers to sc_main; ours above takes precedence. Never called.
extern "C" int sc_main(int, char**) { return 1; }
