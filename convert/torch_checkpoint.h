/*
 * torch_checkpoint.h — loads the tensors of a PyTorch ZIP checkpoint (torch.save or torch.jit.save,
 * torch >= 1.6) without Python: ZIP index (zip_reader.h) + non-executing pickle (pickle_reader.h).
 *
 * Understood roots of <prefix>/data.pkl (the prefix is found from the entry named
 * <folder>/data.pkl):
 *   - a TorchScript module object: tensors are named by their dotted attribute path from the root
 *     (visual.transformer.resblocks.0.attn.in_proj_weight); non-tensor attributes are skipped;
 *   - a state dict (OrderedDict or dict) name -> tensor; non-tensor values are skipped;
 *   - a training checkpoint dict with a 'state_dict' entry (open_clip), whose keys lose a leading
 *     'module.' (DDP).
 * Each tensor is built from its storage bytes (<prefix>/data/<key>) with its storage offset and
 * strides, bounds-checked against the storage, then made contiguous; tensors may share storages.
 * The dtype comes from the storage class (FloatStorage f32, HalfStorage f16, BFloat16Storage bf16,
 * DoubleStorage f64, LongStorage i64, IntStorage i32, ByteStorage u8).
 */
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace tgpt {

enum class TorchCheckpointKind { torchscript_module, state_dict, training_checkpoint };

struct TorchCheckpoint {
  TorchCheckpointKind kind = TorchCheckpointKind::state_dict;
  std::string prefix;      // archive folder holding data.pkl
  std::string root_class;  // class of the root object (TorchScript) or "dict"
  std::vector<std::pair<std::string, Tensor>> tensors;  // pickle order, contiguous CPU tensors
};

// Throws tgpt::Error naming the file and the problem.
TorchCheckpoint load_torch_checkpoint(const std::string& path);

}  // namespace tgpt
