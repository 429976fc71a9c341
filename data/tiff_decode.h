/*
 * tiff_decode.h — TIFF decoding with libtiff as PIL does it (data/tiff_decode.cpp); used by
 * data/image.cpp for every file that starts with "II*\0" or "MM\0*".
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "data/image.h"

namespace tgpt {

// True when the data starts with a TIFF header: classic ("II*\0", "MM\0*") or BigTIFF.
bool is_tiff(const uint8_t* data, size_t size);

// Decodes the first image of a TIFF to RGB; `name` identifies it in errors. Images with more than
// max_pixels pixels are refused after the header, before any pixel is decoded.
Image decode_tiff(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);

}  // namespace tgpt
