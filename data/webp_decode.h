/*
 * webp_decode.h — WebP decoding with libwebp as PIL does it (data/webp_decode.cpp); used by
 * data/image.cpp for every file that starts with "RIFF....WEBP".
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "data/image.h"

namespace tgpt {

// True when the data starts with a RIFF header of form type "WEBP".
bool is_webp(const uint8_t* data, size_t size);

// Decodes a WebP (lossy or lossless, with or without alpha, still or animated: the first frame)
// to RGB; `name` identifies it in errors. Images with more than max_pixels pixels are refused
// after the header, before any pixel is decoded.
Image decode_webp(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);

}  // namespace tgpt
