// Compiled by ctest with -DVARIANT=… -DLAYERS=… -DBLOCK=…: invalid combinations must fail to compile with the
// static_assert's sentence (tests/CMakeLists.txt checks the message), valid ones must compile.
#include "wavres/routing/variant.hpp"

using Spec = wavres::ModelSpec<wavres::Variant::VARIANT, LAYERS, BLOCK>;
static_assert(Spec::L == 2 * LAYERS, "");
int main() {
  return 0;
}
