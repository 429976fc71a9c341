/*
 * png_write.h — writing the synthetic world's images: PNG encoding with stb_image_write (RGB,
 * 8 bits, its zlib at a fixed level, so the bytes depend only on the pixels), written to a
 * temporary file next to the target and renamed over it (readers never see a partial PNG).
 * Single files are not fsynced (thousands of small images); the world writer syncs the whole
 * file system of its folder once at the end (sync_folder_filesystem) before it writes the
 * manifest that marks the world complete.
 */
#pragma once

#include <cstdint>
#include <string>

#include "data/image.h"

namespace tgpt::synth {

// PNG bytes of an RGB image. Throws tgpt::Error for an empty image or an encoder failure.
std::string encode_png(const Image& img);

// Encodes `img` and writes it to `path` via a temporary file and rename. Errors name the path.
void write_png_file_replace(const std::string& path, const Image& img);

// Flushes the file system holding `folder` to disk (syncfs). Errors name the folder.
void sync_folder_filesystem(const std::string& folder);

}  // namespace tgpt::synth
