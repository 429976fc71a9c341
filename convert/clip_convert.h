/*
 * clip_convert.h — converts CLIP (ViT) weights from the files users have into the tgpt CLIP weight file
 * (models/README.md): OpenAI TorchScript .pt, torch.save state dicts, open_clip checkpoints
 * (.pt or .safetensors) and Hugging Face CLIPModel safetensors (clip.md §2).
 *
 * The source format is detected from the file's content, never its name. Tensors are renamed to
 * OpenAI's names (HF: q/k/v concatenated into in_proj, visual/text projections transposed), the
 * architecture is inferred as clip/model.py's build_model does (clip.md §1.2), and every expected
 * tensor is checked for presence and shape; all problems are reported together in one error.
 */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"
#include "models/clip/clip.h"

namespace tgpt {

// build_model's inference (clip.md §1.2) over OpenAI-named tensors. Throws for ResNet weights
// ("ResNet CLIP not supported yet") and when the keys it needs are absent or malformed.
ClipConfig infer_clip_config(const std::map<std::string, Tensor>& sd);

// Reads a BPE merges file (gzip or plain text: OpenAI's bpe_simple_vocab_16e6.txt(.gz) or HF's
// merges.txt), drops its "#version" header line, checks that every line is a pair "a b", and
// keeps the first max_merges lines (all when 0 or when fewer). Returns them joined with '\n'.
std::string read_bpe_merges(const std::string& path, size_t max_merges);

struct ConvertOptions {
  std::string vocab_path;           // BPE merges file; empty: HF merges.txt beside the source
  std::string dtype = "keep";       // keep | f32 | f16 | bf16
  std::string activation = "auto";  // auto | quick_gelu | gelu
};

struct ConvertResult {
  std::string source_path;    // the weight file actually read
  std::string source_format;  // openai-torchscript, torch-state-dict, open-clip, hf-safetensors,
                              // open-clip-safetensors
  ClipConfig config;
  std::vector<std::pair<std::string, Tensor>> tensors;  // OpenAI names, write order
  std::map<std::string, std::string> metadata;
  int64_t parameter_count = 0;
  std::vector<std::string> notes;  // human-readable remarks (activation choice, merges count)
};

// Reads and converts `src` (a file, or a Hugging Face folder holding model.safetensors).
ConvertResult convert_clip(const std::string& src, const ConvertOptions& options);
// Writes the converted tensors and metadata with save_safetensors (atomic).
void write_converted_clip(const std::string& out_path, const ConvertResult& result);

}  // namespace tgpt
