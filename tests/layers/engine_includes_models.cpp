// Compiled by the ctest `layers_refuse_upward` against the engine layer's include folder: a
// wrong-way include (engine -> models) must not compile.
#include "models/clip/clip.h"
