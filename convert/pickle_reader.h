/*
 * pickle_reader.h — a NON-EXECUTING pickle reader for the pickles inside PyTorch checkpoints
 * (protocol 2: data.pkl of torch.save / torch.jit.save archives, clip.md §2.1) and the few-shot
 * split caches of CoOp and TGP-T (protocol 4/5: split_fewshot{,2}/shot_K-seed_S.pkl, data.md
 * §1.3).
 *
 * It interprets only the opcodes those files use and builds a tree of plain values. Globals are
 * names (GLOBAL or STACK_GLOBAL), never imported; nothing is ever called. REDUCE understands
 * exactly torch._utils._rebuild_tensor_v2 (-> a tensor reference), torch._utils._rebuild_parameter
 * (-> its tensor) and collections.OrderedDict (-> an empty dict); any other callable gives an
 * opaque object that records the callable's name and its arguments. A tensor pickled without a
 * checkpoint (plain pickle.dumps: its storage is torch.storage._load_from_bytes(<bytes>)) stays an
 * opaque object: the bytes are kept, never loaded. NEWOBJ / NEWOBJ_EX make an opaque object of
 * the class name; BUILD attaches its state (Dassl's Datum: a dict of _impath, _label, ...).
 * BINPERSID accepts only PyTorch's storage ids ('storage', torch.<X>Storage, key, location,
 * numel). Recursive data (a container that holds itself, which needs a container changed after
 * another one took it) is refused, so the tree has no cycles. PickleLimits::allowed_callables, when
 * not empty, refuses every REDUCE / NEWOBJ of another name. Any other opcode, malformed operand,
 * stack misuse, or exceeded limit (input size, nesting depth, memo size) throws tgpt::Error naming
 * the pickle, the opcode and its byte offset.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tgpt {

struct PickleValue;
using PickleRef = std::shared_ptr<PickleValue>;

enum class PickleKind {
  none,
  boolean,
  integer,
  floating,
  string,
  bytes,  // text holds the bytes
  tuple,
  list,
  dict,
  set,      // set or frozenset: items (insertion order)
  global,   // a class or function name "module.name" (never resolved)
  object,   // opaque: made by NEWOBJ or by REDUCE of an unknown callable
  storage,  // a PyTorch storage reference from BINPERSID
  tensor,   // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
};

const char* pickle_kind_name(PickleKind k);

struct PickleStorageRef {
  std::string key;        // entry name under <prefix>/data/
  std::string type_name;  // "FloatStorage", "HalfStorage", ...
  std::string location;   // "cpu", "cuda:0" (irrelevant)
  int64_t numel = 0;
};

struct PickleTensorRef {
  PickleStorageRef storage;
  int64_t offset = 0;  // in elements
  std::vector<int64_t> size, stride;
};

struct PickleValue {
  PickleKind kind = PickleKind::none;
  bool boolean = false;
  int64_t integer = 0;
  double floating = 0;
  std::string text;              // string; global name; object class name
  std::vector<PickleRef> items;  // tuple/list/set elements; object constructor arguments
  std::vector<std::pair<PickleRef, PickleRef>> dict;    // insertion order
  std::unordered_map<std::string, size_t> string_keys;  // dict: string key -> index in dict
  PickleRef state;                                      // object/dict: the BUILD state, when any
  PickleStorageRef storage;
  PickleTensorRef tensor;
  int depth = 1;  // nesting depth when last modified
  // Set once a container holds it; such a value is never modified again, so no value can come to
  // hold itself (recursive data is refused) and `depth` stays exact.
  bool has_parent = false;

  PickleValue() = default;
  PickleValue(const PickleValue&) = delete;
  PickleValue& operator=(const PickleValue&) = delete;
  ~PickleValue();  // iterative, so deep chains cannot overflow the stack

  // dict only: the value under a string key, or null.
  const PickleValue* get(const std::string& key) const;
};

struct PickleLimits {
  size_t max_bytes = size_t(1) << 30;
  int max_depth = 200;
  size_t max_memo = 10'000'000;
  // When not empty: the only callables REDUCE, NEWOBJ and NEWOBJ_EX accept ("module.name").
  std::vector<std::string> allowed_callables;
};

// Parses `data` (the whole pickle). `what` names it in error messages (e.g. "f.pt:arch/data.pkl").
PickleRef read_pickle(std::string_view data, const std::string& what,
                      const PickleLimits& limits = {});

}  // namespace tgpt
