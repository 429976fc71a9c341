/*
 * jpeg_decode.h — JPEG decoding with libjpeg-turbo as PIL does it (data/jpeg_decode.cpp); used by
 * data/image.cpp for every file that starts with the JPEG SOI marker.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "data/image.h"

namespace tgpt {

// True when the data starts with the JPEG start-of-image marker (FF D8).
bool is_jpeg(const uint8_t* data, size_t size);

// Decodes a JPEG to RGB; `name` identifies it in errors. Images with more than max_pixels pixels
// are refused after the header, before any pixel is decoded.
Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);

}  // namespace tgpt
