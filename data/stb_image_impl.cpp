/*
 * stb_image_impl.cpp — the one translation unit that compiles stb_image's implementation (Debian
 * 12's libstb-dev, v2.27), restricted to PNG, BMP and GIF (JPEG goes to libjpeg-turbo:
 * data/jpeg_decode.cpp). data/image.cpp calls it and checks what stb 2.27 does not (truncated
 * BMP/GIF) before it does.
 *
 * In the sanitizer build this file is compiled without UBSan's nonnull-attribute check
 * (CMakeLists.txt): stb copies a zero-length PNG IDAT chunk with memcpy(NULL, src, 0), which that
 * check reports although no byte is touched. Every other check stays on here.
 */

// Only the formats stb decodes for us (smaller attack surface; no format sniffing of TGA, which
// accepts almost any bytes). We read files ourselves, so no stdio; no HDR/float paths.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_FAILURE_USERMSG
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#include <stb_image.h>
#pragma GCC diagnostic pop
