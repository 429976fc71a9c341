/*
 * tgpt-embed — CLIP image and text features into a safetensors file.
 *
 *   tgpt-embed --weights W [--image PATH]... [--text STR]... [--image-list FILE]
 *              [--text-list FILE] [--image-tensor FILE:NAME] [--save-preprocessed FILE]
 *              [--normalize] [--batch-size N] [--vocab FILE] [--device auto|cpu|cuda]
 *              [--precision auto|f32|f16|bf16] -o OUT.safetensors
 *
 * Writes (only the parts that were asked for):
 *   image_features [N,E] f32   images in order: --image ones, then --image-list lines
 *   text_features  [M,E] f32   texts in order: --text ones, then --text-list lines
 *   text_tokens    [M,ctx] i32 clip.tokenize of the texts (ctx = 77 for CLIP)
 * Features are unnormalised unless --normalize (x / max(||x||_2, 1e-12) per row).
 * Images are decoded, preprocessed (CLIP eval transform at the model's resolution) and encoded
 * batch by batch in one pass (train/evaluator.h), the features written once into the result.
 * --image-tensor FILE:NAME reads an already preprocessed batch [N,3,R,R] (tensor NAME of
 * safetensors FILE) instead of image files, for parity checks;
 * --save-preprocessed FILE writes the preprocessed batch as `images` [N,3,R,R] f32. List files
 * hold one path or one text per line (paths as written, relative to the working folder); blank
 * lines are skipped. The merges come from --vocab, else from the weight file. Output files are
 * written atomically. --device/--precision: tools/tool_options.h (features are f32 whatever the
 * compute precision). Errors go to stderr with exit 1.
 */
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/preprocess.h"
#include "base/error.h"
#include "engine/safetensors.h"
#include "models/clip/clip.h"
#include "models/clip/zeroshot.h"
#include "tools/tool_options.h"
#include "train/evaluator.h"

namespace {

struct Args {
  std::string weights, vocab, out, image_list, text_list, image_tensor, save_preprocessed;
  std::vector<std::string> images, texts;
  bool normalize = false;
  int64_t batch_size = 32;
  tgpt::tools::PlacementOptions placement;
};

int run(const Args& a) {
  using namespace tgpt;
  TGPT_CHECK(a.batch_size > 0, "--batch-size must be positive, got ", a.batch_size);
  std::vector<std::string> image_paths = a.images;
  if (!a.image_list.empty())
    for (auto& p : read_list_file(a.image_list)) image_paths.push_back(std::move(p));
  std::vector<std::string> texts = a.texts;
  if (!a.text_list.empty())
    for (auto& t : read_list_file(a.text_list)) texts.push_back(std::move(t));
  const bool want_images = !image_paths.empty() || !a.image_tensor.empty();
  TGPT_CHECK(want_images || !texts.empty(),
             "nothing to embed: give --image, --image-list, --image-tensor, --text or --text-list");
  TGPT_CHECK(a.save_preprocessed.empty() || !image_paths.empty(),
             "--save-preprocessed needs image files (--image or --image-list)");
  TGPT_CHECK(a.image_tensor.empty() || image_paths.empty(),
             "--image-tensor cannot be combined with --image or --image-list");

  const tools::Placement place = tools::resolve_placement(a.placement);
  const ClipModel model = ClipModel::load(a.weights, place.device, place.dtype);
  const ClipConfig& cfg = model.config();
  std::printf("model:        %s (%s) on %s\n", a.weights.c_str(), cfg.name().c_str(),
              place.str().c_str());
  const int64_t e = cfg.embed_dim, r = cfg.image_resolution;
  std::vector<std::pair<std::string, Tensor>> out;
  std::map<std::string, std::string> meta = {{"tgpt.weights", a.weights},
                                             {"tgpt.model", cfg.name()},
                                             {"tgpt.normalized", a.normalize ? "true" : "false"},
                                             {"tgpt.placement", place.str()}};

  if (want_images) {
    Tensor features;
    if (!a.image_tensor.empty()) {
      const size_t colon = a.image_tensor.rfind(':');
      TGPT_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < a.image_tensor.size(),
                 "--image-tensor must be FILE:NAME, got '", a.image_tensor, "'");
      const std::string file = a.image_tensor.substr(0, colon);
      const std::string name = a.image_tensor.substr(colon + 1);
      const SafetensorsFile st = SafetensorsFile::open(file);
      TGPT_CHECK(st.contains(name), "--image-tensor: '", file, "' has no tensor \"", name, "\"");
      const Tensor images = st.get(name);
      TGPT_CHECK(dtype_is_float(images.dtype()), "--image-tensor: tensor \"", name, "\" in '", file,
                 "' must be float, got ", dtype_name(images.dtype()));
      TGPT_CHECK(images.dim() == 4 && images.size(0) > 0 && images.size(1) == 3 &&
                     images.size(2) == r && images.size(3) == r,
                 "--image-tensor: tensor \"", name, "\" in '", file, "' is ", images.shape().str(),
                 "; the model needs [N, 3, ", r, ", ", r, "]");
      features = encode_images_batched(model, tensor_source(images), a.batch_size);
      meta["tgpt.image_tensor"] = a.image_tensor;
    } else {
      // One pass over the files: each batch is decoded, preprocessed and encoded once; its
      // preprocessed pixels go straight into the saved batch when asked for.
      const int64_t n = static_cast<int64_t>(image_paths.size());
      Tensor all_images;  // [N,3,R,R] f32
      if (!a.save_preprocessed.empty()) all_images = Tensor::empty({n, 3, r, r}, DType::f32);
      features = encode_images_batched(model, image_file_source(image_paths, r), a.batch_size,
                                       [&](int64_t b, const Tensor& images, const Tensor&) {
                                         if (all_images.defined())
                                           all_images.narrow(0, b, images.size(0)).copy_(images);
                                       });
      if (all_images.defined()) {
        save_safetensors(a.save_preprocessed, {{"images", all_images}},
                         {{"tgpt.weights", a.weights}, {"tgpt.resolution", std::to_string(r)}});
        std::printf("preprocessed: %s (images [%lld, 3, %lld, %lld])\n",
                    a.save_preprocessed.c_str(), static_cast<long long>(n),
                    static_cast<long long>(r), static_cast<long long>(r));
      }
    }
    if (a.normalize) features = l2_normalize_rows(features);
    std::printf("images:       %lld -> image_features [%lld, %lld]\n",
                static_cast<long long>(features.size(0)), static_cast<long long>(features.size(0)),
                static_cast<long long>(e));
    out.emplace_back("image_features", features);
  }

  if (!texts.empty()) {
    const ClipTokenizer tok = clip_tokenizer_for(model, a.vocab, "'" + a.weights + "'");
    const Tensor tokens = tokenize_for_model(model, tok, texts);  // [M,ctx] i32
    Tensor features = encode_text_batched(model, tokens, a.batch_size);
    if (a.normalize) features = l2_normalize_rows(features);
    std::printf("texts:        %zu -> text_features [%zu, %lld], text_tokens [%zu, %lld]\n",
                texts.size(), texts.size(), static_cast<long long>(e), texts.size(),
                static_cast<long long>(tokens.size(1)));
    out.emplace_back("text_features", features);
    out.emplace_back("text_tokens", tokens);
  }

  save_safetensors(a.out, out, meta);
  std::printf("wrote:        %s\n", a.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tgpt::select_blas_kernels(argc, argv);  // first: may re-execute with other BLAS kernels
  CLI::App app{"CLIP image and text features into a safetensors file"};
  tgpt::tools::add_version_flag(app, "tgpt-embed");
  Args a;
  app.add_option("--weights", a.weights, "tgpt CLIP weight file")->required();
  app.add_option("--image", a.images, "image file (repeatable)");
  app.add_option("--text", a.texts, "text (repeatable)");
  app.add_option("--image-list", a.image_list, "file with one image path per line");
  app.add_option("--text-list", a.text_list, "file with one text per line");
  app.add_option("--image-tensor", a.image_tensor,
                 "FILE:NAME, a preprocessed batch [N,3,R,R] in a safetensors file");
  app.add_option("--save-preprocessed", a.save_preprocessed,
                 "write the preprocessed images as `images` [N,3,R,R] f32 to this file");
  app.add_flag("--normalize", a.normalize, "L2-normalise the features");
  app.add_option("--batch-size", a.batch_size, "images/texts per encoder call (default 32)");
  app.add_option("--vocab", a.vocab, "BPE merges (default: the merges in the weight file)");
  app.add_option("-o,--output", a.out, "output .safetensors file")->required();
  tgpt::tools::add_placement_options(app, a.placement);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tgpt-embed: %s\n", e.what());
    return 1;
  }
}
