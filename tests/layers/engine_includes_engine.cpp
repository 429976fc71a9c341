// Compiled by the ctest `layers_allow_lower` against the engine layer's include folder: an engine
// source may include base, kernels and engine headers.
#include "base/error.h"
#include "engine/ops.h"
#include "kernels/launch.h"
