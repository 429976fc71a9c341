/*
 * torch_checkpoint.cpp — from a PyTorch ZIP archive to named tensors (see torch_checkpoint.h).
 */
#include "convert/torch_checkpoint.h"

#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "convert/pickle_reader.h"
#include "convert/zip_reader.h"

namespace tgpt {

namespace {

constexpr int kMaxModuleDepth = 64;

bool storage_dtype(const std::string& type_name, DType* out) {
  static const std::map<std::string, DType> table = {
      {"FloatStorage", DType::f32},  {"HalfStorage", DType::f16}, {"BFloat16Storage", DType::bf16},
      {"DoubleStorage", DType::f64}, {"LongStorage", DType::i64}, {"IntStorage", DType::i32},
      {"ByteStorage", DType::u8}};
  auto it = table.find(type_name);
  if (it == table.end()) return false;
  *out = it->second;
  return true;
}

class Loader {
 public:
  Loader(const std::string& path, ZipArchive zip, std::string prefix)
      : path_(path), zip_(std::move(zip)), prefix_(std::move(prefix)) {}

  // Builds the tensor a pickle tensor reference describes.
  Tensor materialize(const std::string& name, const PickleTensorRef& r) {
    DType dt;
    if (!storage_dtype(r.storage.type_name, &dt))
      TGPT_FAIL(path_, ": tensor '", name, "' uses unsupported storage type torch.",
                r.storage.type_name);
    if (r.size.size() > static_cast<size_t>(kMaxDims))
      TGPT_FAIL(path_, ": tensor '", name, "' has ", r.size.size(), " dims (at most ", kMaxDims,
                " supported)");
    std::shared_ptr<Storage> storage = storage_for(name, r.storage, dt);
    // Highest element index touched: offset + sum (size_k - 1) * stride_k, overflow-checked.
    int64_t numel = 1, last = r.offset;
    bool empty = false;
    for (size_t k = 0; k < r.size.size(); ++k) {
      if (r.size[k] == 0) empty = true;
      if (__builtin_mul_overflow(numel, r.size[k], &numel)) numel = INT64_MAX;
    }
    if (!empty) {
      for (size_t k = 0; k < r.size.size(); ++k) {
        int64_t step;
        if (__builtin_mul_overflow(r.size[k] - 1, r.stride[k], &step) ||
            __builtin_add_overflow(last, step, &last))
          last = INT64_MAX;
      }
      if (numel == INT64_MAX || last >= r.storage.numel)
        TGPT_FAIL(path_, ": tensor '", name, "' (offset ", r.offset, ", ", r.size.size(),
                  " dims) reaches past the end of its storage '", r.storage.key, "' (",
                  r.storage.numel, " elements)");
    } else if (r.offset > r.storage.numel) {
      TGPT_FAIL(path_, ": tensor '", name, "' has an offset past the end of its storage");
    }
    Shape shape(r.size), strides(r.stride);
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::move(storage);
    impl->offset = empty ? 0 : r.offset;
    impl->shape = shape;
    impl->strides = strides;
    impl->dtype = dt;
    return Tensor(std::move(impl)).contiguous();
  }

 private:
  std::string path_;
  ZipArchive zip_;
  std::string prefix_;
  struct Cached {
    std::shared_ptr<Storage> storage;
    std::string type_name;
  };
  std::map<std::string, Cached> storages_;

  std::shared_ptr<Storage> storage_for(const std::string& name, const PickleStorageRef& s,
                                       DType dt) {
    auto it = storages_.find(s.key);
    if (it != storages_.end()) {
      if (it->second.type_name != s.type_name)
        TGPT_FAIL(path_, ": storage '", s.key, "' is used as both ", it->second.type_name, " and ",
                  s.type_name);
      return it->second.storage;
    }
    std::string entry_name = prefix_ + "/data/" + s.key;
    const ZipEntry* e = zip_.find(entry_name);
    if (!e) TGPT_FAIL(path_, ": tensor '", name, "' refers to missing archive entry ", entry_name);
    uint64_t want;
    if (__builtin_mul_overflow(static_cast<uint64_t>(s.numel), dtype_size(dt), &want) ||
        e->uncompressed_size != want)
      TGPT_FAIL(path_, ": storage entry ", entry_name, " holds ", e->uncompressed_size,
                " bytes, but its ", s.numel, " ", s.type_name, " elements need ", s.numel, " x ",
                dtype_size(dt));
    std::string_view bytes = zip_.stored_data(*e);
    std::shared_ptr<Storage> st;
    if (reinterpret_cast<uintptr_t>(bytes.data()) % dtype_size(dt) == 0) {
      st = std::make_shared<Storage>(const_cast<char*>(bytes.data()), bytes.size(), Device::CPU,
                                     zip_.mapping());
    } else {  // misaligned data: copy into aligned memory
      st = std::make_shared<Storage>(bytes.size(), Device::CPU);
      if (!bytes.empty()) std::memcpy(st->data(), bytes.data(), bytes.size());
    }
    storages_[s.key] = {st, s.type_name};
    return st;
  }
};

// Collects tensors of a TorchScript module tree by attribute path.
void walk_module(Loader& loader, const PickleValue& obj, const std::string& path_prefix, int depth,
                 const std::string& file, std::vector<std::pair<std::string, Tensor>>& out) {
  if (depth > kMaxModuleDepth) TGPT_FAIL(file, ": module tree deeper than ", kMaxModuleDepth);
  if (!obj.state || obj.state->kind != PickleKind::dict) return;
  for (const auto& [k, v] : obj.state->dict) {
    if (k->kind != PickleKind::string) continue;
    std::string name = path_prefix + k->text;
    if (v->kind == PickleKind::tensor)
      out.emplace_back(name, loader.materialize(name, v->tensor));
    else if (v->kind == PickleKind::object)
      walk_module(loader, *v, name + ".", depth + 1, file, out);
  }
}

void collect_state_dict(Loader& loader, const PickleValue& d, bool strip_module,
                        std::vector<std::pair<std::string, Tensor>>& out) {
  bool all_module = strip_module;
  for (const auto& [k, v] : d.dict)
    if (k->kind == PickleKind::string && k->text.rfind("module.", 0) != 0) all_module = false;
  for (const auto& [k, v] : d.dict) {
    if (k->kind != PickleKind::string || v->kind != PickleKind::tensor) continue;
    std::string name = all_module ? k->text.substr(7) : k->text;
    out.emplace_back(name, loader.materialize(name, v->tensor));
  }
}

}  // namespace

TorchCheckpoint load_torch_checkpoint(const std::string& path) {
  ZipArchive zip = ZipArchive::open(path);
  const ZipEntry* pkl = nullptr;
  for (const ZipEntry& e : zip.entries()) {
    const std::string& n = e.name;
    size_t slash = n.find('/');
    if (slash != std::string::npos && n.compare(slash, std::string::npos, "/data.pkl") == 0) {
      if (pkl) TGPT_FAIL(path, ": archive holds several */data.pkl entries");
      pkl = &e;
    }
  }
  if (!pkl)
    TGPT_FAIL(path, ": ZIP archive without a <folder>/data.pkl entry: not a PyTorch checkpoint");
  TorchCheckpoint ck;
  ck.prefix = pkl->name.substr(0, pkl->name.size() - 9);
  std::string pickle_bytes = zip.read(*pkl);
  PickleRef root = read_pickle(pickle_bytes, path + ":" + pkl->name);
  Loader loader(path, std::move(zip), ck.prefix);

  if (root->kind == PickleKind::object) {
    ck.kind = TorchCheckpointKind::torchscript_module;
    ck.root_class = root->text;
    if (!root->state || root->state->kind != PickleKind::dict)
      TGPT_FAIL(path, ": data.pkl root is an object of class '", root->text,
                "' without attributes: not a TorchScript module or state dict");
    walk_module(loader, *root, "", 0, path, ck.tensors);
  } else if (root->kind == PickleKind::dict) {
    ck.root_class = "dict";
    const PickleValue* sd = root->get("state_dict");
    if (sd && sd->kind == PickleKind::dict) {
      ck.kind = TorchCheckpointKind::training_checkpoint;
      collect_state_dict(loader, *sd, true, ck.tensors);
    } else {
      ck.kind = TorchCheckpointKind::state_dict;
      collect_state_dict(loader, *root, true, ck.tensors);
    }
  } else {
    TGPT_FAIL(path, ": data.pkl holds a ", pickle_kind_name(root->kind),
              (root->kind == PickleKind::global ? " '" + root->text + "'" : std::string()),
              ", not a state dict or TorchScript module");
  }
  if (ck.tensors.empty()) TGPT_FAIL(path, ": the checkpoint holds no tensors");
  return ck;
}

}  // namespace tgpt
