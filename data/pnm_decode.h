/*
 * pnm_decode.h — PGM and PPM decoding as PIL 9.4's PpmImagePlugin does it (data/pnm_decode.cpp):
 * P5 / P6 binary and P2 / P3 ASCII ("plain"); used by data/image.cpp for every file that starts
 * with "P2", "P3", "P5" or "P6" followed by whitespace. PBM bitmaps (P1 / P4) and PAM (P7) are
 * refused with an error naming the format.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "data/image.h"

namespace tgpt {

// True when the data starts with a Netpbm magic number ("P1".."P7") followed by whitespace.
bool is_pnm(const uint8_t* data, size_t size);

// Decodes a PGM / PPM to RGB; `name` identifies it in errors. Images with more than max_pixels
// pixels are refused after the header, before any pixel is decoded.
Image decode_pnm(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);

}  // namespace tgpt
