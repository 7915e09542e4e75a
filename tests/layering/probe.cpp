// Compiled only by the layering tests (tests/layering/CMakeLists.txt): includes one header
// that the probed layer must not see. The test passes when the compiler says the header
// does not exist for that layer.
#include PROBE_HEADER

int layering_probe() { return 0; }
