/*
 * test_clip_end_to_end.cpp — every weight format a user has (OpenAI TorchScript archive in the
 * mixed f16/f32 layout, torch.save state dict, open_clip checkpoint, Hugging Face folder) is
 * converted with tgpt-convert's code, written, loaded by the C++ CLIP model, and must give our
 * PyTorch reference's image and text features (tests/golden/gen_convert.py, computed in f64)
 * within 1e-5 relative (max|ours - ref| / max|ref| per tensor).
 */
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "engine/safetensors.h"
#include "models/clip/clip.h"
#include "convert/clip_convert.h"
#include "tests/test_util.h"

using namespace tgpt;
namespace fs = std::filesystem;

TEST(ClipEndToEnd, EveryWeightFormatGivesReferenceFeatures) {
  if (test::golden_dir().empty()) GTEST_SKIP() << "run via ctest, which writes the fixtures";
  const fs::path dir = fs::path(test::golden_dir()) / "convert";
  SafetensorsFile ref = SafetensorsFile::open((dir / "features.safetensors").string());
  Tensor images = ref.get("images"), tokens = ref.get("tokens");
  struct Source {
    const char* file;
    const char* reference;   // which weights the reference used: f32 or the f16-rounded mix
    const char* activation;  // state dicts and open_clip checkpoints do not record it: say it
  } sources[] = {
      {"openai_jit.pt", "mixed", "auto"},
      {"state_dict.pt", "f32", "quick_gelu"},
      {"open_clip.pt", "f32", "quick_gelu"},
      {"hf", "f32", "auto"},
  };
  const fs::path tmp = fs::temp_directory_path() / "tgpt_e2e";
  fs::create_directories(tmp);
  for (const Source& s : sources) {
    SCOPED_TRACE(s.file);
    ConvertOptions opt;
    opt.activation = s.activation;
    ConvertResult r = convert_clip((dir / s.file).string(), opt);
    const std::string out = (tmp / (std::string(s.file) + ".safetensors")).string();
    write_converted_clip(out, r);
    ClipModel m = ClipModel::load(out);
    double ei = test::rel_error_to_max(m.encode_image(images),
                                       ref.get(std::string(s.reference) + ".image_features"));
    double et = test::rel_error_to_max(m.encode_text(tokens),
                                       ref.get(std::string(s.reference) + ".text_features"));
    std::printf("  %-16s image %.2e  text %.2e\n", s.file, ei, et);
    EXPECT_LE(ei, 1e-5);
    EXPECT_LE(et, 1e-5);
  }
  fs::remove_all(tmp);
}
