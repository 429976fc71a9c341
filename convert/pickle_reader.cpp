/*
 * pickle_reader.cpp — the pickle virtual machine subset used by PyTorch checkpoints and the
 * few-shot split caches: a value stack, a mark stack and a memo. Opcode numbers and operand
 * encodings are those of CPython's Lib/pickle.py / pickletools.py (protocols 2 to 5; FRAME only
 * groups opcodes, so frames are checked and read through).
 */
#include "convert/pickle_reader.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "base/error.h"

namespace tgpt {

const char* pickle_kind_name(PickleKind k) {
  switch (k) {
    case PickleKind::none: return "None";
    case PickleKind::boolean: return "bool";
    case PickleKind::integer: return "int";
    case PickleKind::floating: return "float";
    case PickleKind::string: return "str";
    case PickleKind::bytes: return "bytes";
    case PickleKind::tuple: return "tuple";
    case PickleKind::list: return "list";
    case PickleKind::dict: return "dict";
    case PickleKind::set: return "set";
    case PickleKind::global: return "global";
    case PickleKind::object: return "object";
    case PickleKind::storage: return "storage";
    case PickleKind::tensor: return "tensor";
  }
  return "?";
}

PickleValue::~PickleValue() {
  // Move children out, then release them one by one; a child whose last reference we hold gives
  // its own children to the worklist before it dies, so no destructor recurses.
  std::vector<PickleRef> work;
  auto take = [&work](PickleValue& v) {
    for (auto& c : v.items) work.push_back(std::move(c));
    for (auto& kv : v.dict) {
      work.push_back(std::move(kv.first));
      work.push_back(std::move(kv.second));
    }
    if (v.state) work.push_back(std::move(v.state));
    v.items.clear();
    v.dict.clear();
  };
  take(*this);
  while (!work.empty()) {
    PickleRef c = std::move(work.back());
    work.pop_back();
    if (c && c.use_count() == 1) take(*c);
  }
}

const PickleValue* PickleValue::get(const std::string& key) const {
  auto it = string_keys.find(key);
  return it == string_keys.end() ? nullptr : dict[it->second].second.get();
}

namespace {

enum Op : uint8_t {
  MARK = '(',
  STOP = '.',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BINUNICODE = 'X',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  APPENDS = 'e',
  BINGET = 'h',
  LONG_BINGET = 'j',
  EMPTY_LIST = ']',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  SETITEMS = 'u',
  EMPTY_DICT = '}',
  EMPTY_TUPLE = ')',
  BINFLOAT = 'G',
  PROTO = 0x80,
  NEWOBJ = 0x81,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  EMPTY_SET = 0x8f,
  ADDITEMS = 0x90,
  FROZENSET = 0x91,
  NEWOBJ_EX = 0x92,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

class Machine {
 public:
  Machine(std::string_view data, const std::string& what, const PickleLimits& limits)
      : data_(data), what_(what), limits_(limits) {}

  PickleRef run() {
    if (data_.size() > limits_.max_bytes)
      TGPT_FAIL(what_, ": pickle is too large (", data_.size(), " bytes)");
    while (true) {
      if (pos_ >= data_.size()) TGPT_FAIL(what_, ": pickle ends without STOP (truncated)");
      op_offset_ = pos_;
      op_ = static_cast<uint8_t>(data_[pos_++]);
      if (op_ == STOP) {
        if (stack_.size() != 1 || !marks_.empty())
          fail("STOP with ", stack_.size(), " values on the stack");
        return stack_.back();
      }
      step();
    }
  }

 private:
  std::string_view data_;
  const std::string& what_;
  PickleLimits limits_;
  size_t pos_ = 0, op_offset_ = 0;
  uint8_t op_ = 0;
  std::vector<PickleRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, PickleRef> memo_;

  template <typename... Args>
  [[noreturn]] void fail(const Args&... parts) const {
    TGPT_FAIL(what_, ": pickle opcode ", op_name(), " at offset ", op_offset_, ": ", parts...);
  }

  std::string op_name() const {
    static const char* hex = "0123456789abcdef";
    std::string s = "0x";
    s += hex[op_ >> 4];
    s += hex[op_ & 15];
    if (op_ >= 0x20 && op_ < 0x7f) s += str_cat(" ('", char(op_), "')");
    return s;
  }

  const uint8_t* take(size_t n) {
    if (n > data_.size() - pos_) fail("operand runs past the end of the pickle (truncated)");
    const uint8_t* p = reinterpret_cast<const uint8_t*>(data_.data()) + pos_;
    pos_ += n;
    return p;
  }
  uint32_t le32() {
    const uint8_t* p = take(4);
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
  }
  uint64_t le64() {
    const uint8_t* p = take(8);
    uint64_t u = 0;
    for (int i = 7; i >= 0; --i) u = (u << 8) | p[i];
    return u;
  }
  // A length-prefixed operand (string or bytes) of n bytes.
  std::string text(uint64_t n) {
    if (n > data_.size() - pos_) fail("operand runs past the end of the pickle (truncated)");
    const uint8_t* p = take(static_cast<size_t>(n));
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  void push_text(PickleKind k, std::string s) {
    PickleRef v = make(k);
    v->text = std::move(s);
    push(std::move(v));
  }
  // REDUCE / NEWOBJ / NEWOBJ_EX: the callable must be allowed (when a list is given).
  void check_callable(const std::string& name) {
    const auto& allowed = limits_.allowed_callables;
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), name) == allowed.end())
      fail("callable '", name, "' is not allowed in this file (this reader executes nothing)");
  }
  PickleRef make_object(const PickleRef& cls, const PickleRef& args) {
    if (cls->kind != PickleKind::global || args->kind != PickleKind::tuple)
      fail("expected a global class and an argument tuple");
    check_callable(cls->text);
    PickleRef o = make(PickleKind::object);
    o->text = cls->text;
    adopt(*o, args);
    o->items = args->items;
    return o;
  }
  std::string line() {
    size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > 4096) fail("malformed GLOBAL operand");
    std::string s(data_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }

  PickleRef make(PickleKind k) {
    auto v = std::make_shared<PickleValue>();
    v->kind = k;
    return v;
  }
  void push(PickleRef v) {
    if (stack_.size() >= 100'000'000) fail("stack too large");
    stack_.push_back(std::move(v));
  }
  PickleRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail("stack underflow");
    PickleRef v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PickleRef& top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail("stack underflow");
    return stack_.back();
  }
  // Pops everything above the last MARK (and the mark).
  std::vector<PickleRef> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PickleRef> out(std::make_move_iterator(stack_.begin() + m),
                               std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return out;
  }
  // Records that `container` now holds `child`; enforces the nesting limit.
  void adopt(PickleValue& container, const PickleRef& child) {
    if (child.get() == &container)
      fail("a ", pickle_kind_name(container.kind),
           " would hold itself (recursive data is not supported)");
    if (child) child->has_parent = true;
    int d = child ? child->depth + 1 : 1;
    if (d > container.depth) container.depth = d;
    if (container.depth > limits_.max_depth)
      fail("nesting deeper than ", limits_.max_depth, " levels");
  }
  // A container about to change: one that another container holds already is refused (only
  // recursive data does that, and it could make a cycle).
  void check_unheld(const PickleValue& target) {
    if (target.has_parent)
      fail("changes a ", pickle_kind_name(target.kind),
           " that another container already holds (recursive data is not supported)");
  }
  PickleRef make_tuple(std::vector<PickleRef> items) {
    PickleRef t = make(PickleKind::tuple);
    for (auto& c : items) adopt(*t, c);
    t->items = std::move(items);
    return t;
  }
  void set_item(PickleValue& d, PickleRef key, PickleRef value) {
    if (d.kind != PickleKind::dict) fail("target is a ", pickle_kind_name(d.kind), ", not a dict");
    check_unheld(d);
    adopt(d, key);
    adopt(d, value);
    if (key->kind == PickleKind::string) {
      auto [it, inserted] = d.string_keys.emplace(key->text, d.dict.size());
      if (!inserted) {
        d.dict[it->second].second = std::move(value);
        return;
      }
    }
    d.dict.emplace_back(std::move(key), std::move(value));
  }
  void append(PickleValue& l, PickleRef v) {
    if (l.kind != PickleKind::list) fail("target is a ", pickle_kind_name(l.kind), ", not a list");
    check_unheld(l);
    adopt(l, v);
    l.items.push_back(std::move(v));
  }
  void memo_put(uint32_t idx) {
    if (memo_.size() >= limits_.max_memo && !memo_.count(idx)) fail("memo too large");
    memo_[idx] = top();
  }
  PickleRef memo_get(uint32_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo key ", idx, " was never stored");
    return it->second;
  }

  static bool is_int(const PickleRef& v) { return v && v->kind == PickleKind::integer; }

  std::vector<int64_t> int_tuple(const PickleRef& v, const char* what) {
    if (!v || v->kind != PickleKind::tuple) fail("_rebuild_tensor_v2: ", what, " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& c : v->items) {
      if (!is_int(c) || c->integer < 0)
        fail("_rebuild_tensor_v2: ", what, " holds a non-integer or negative value");
      out.push_back(c->integer);
    }
    return out;
  }

  PickleRef reduce(const PickleRef& callable, const PickleRef& args) {
    if (callable->kind != PickleKind::global)
      fail("callable is a ", pickle_kind_name(callable->kind), ", not a global name");
    if (args->kind != PickleKind::tuple) fail("arguments are not a tuple");
    const std::string& name = callable->text;
    check_callable(name);
    const auto& a = args->items;
    if (name == "torch.storage._load_from_bytes" &&
        (a.size() != 1 || a[0]->kind != PickleKind::bytes))
      fail("_load_from_bytes: expected one bytes argument");
    if (name == "torch._utils._rebuild_tensor_v2" && !a.empty() &&
        a[0]->kind == PickleKind::object && a[0]->text == "torch.storage._load_from_bytes") {
      // A tensor pickled with its storage inline: kept opaque, the payload is never loaded.
      PickleRef o = make(PickleKind::object);
      o->text = name;
      adopt(*o, args);
      o->items = a;
      return o;
    }
    if (name == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 4 || a[0]->kind != PickleKind::storage || !is_int(a[1]))
        fail("_rebuild_tensor_v2: expected (storage, offset, size, stride, ...)");
      PickleRef t = make(PickleKind::tensor);
      t->tensor.storage = a[0]->storage;
      t->tensor.offset = a[1]->integer;
      t->tensor.size = int_tuple(a[2], "size");
      t->tensor.stride = int_tuple(a[3], "stride");
      if (t->tensor.offset < 0) fail("_rebuild_tensor_v2: negative storage offset");
      if (t->tensor.size.size() != t->tensor.stride.size())
        fail("_rebuild_tensor_v2: size and stride have different lengths");
      return t;
    }
    if (name == "torch._utils._rebuild_parameter") {
      if (a.empty() || a[0]->kind != PickleKind::tensor)
        fail("_rebuild_parameter: first argument is not a tensor");
      return a[0];
    }
    if (name == "collections.OrderedDict" && a.empty()) return make(PickleKind::dict);
    PickleRef o = make(PickleKind::object);  // opaque: recorded, never called
    o->text = name;
    adopt(*o, args);
    o->items = a;
    return o;
  }

  PickleRef persistent_load(const PickleRef& pid) {
    const auto& a = pid->items;
    if (pid->kind != PickleKind::tuple || a.size() != 5 || a[0]->kind != PickleKind::string ||
        a[0]->text != "storage" || a[1]->kind != PickleKind::global ||
        a[2]->kind != PickleKind::string || a[3]->kind != PickleKind::string || !is_int(a[4]) ||
        a[4]->integer < 0)
      fail(
          "unsupported persistent id (expected ('storage', torch.<X>Storage, key, location, "
          "numel))");
    const std::string& cls = a[1]->text;
    if (cls.rfind("torch.", 0) != 0 || cls.find('.', 6) != std::string::npos)
      fail("persistent id names '", cls, "', not a torch storage class");
    PickleRef s = make(PickleKind::storage);
    s->storage.type_name = cls.substr(6);
    s->storage.key = a[2]->text;
    s->storage.location = a[3]->text;
    s->storage.numel = a[4]->integer;
    return s;
  }

  void step() {
    switch (op_) {
      case PROTO: {
        uint8_t v = *take(1);
        if (v > 5) fail("protocol ", int(v), " is not supported (protocols 2 to 5)");
        break;
      }
      case FRAME: {
        const uint64_t n = le64();
        if (n > data_.size() - pos_) fail("frame of ", n, " bytes runs past the end (truncated)");
        break;
      }
      case STACK_GLOBAL: {
        PickleRef name = pop();
        PickleRef module = pop();
        if (module->kind != PickleKind::string || name->kind != PickleKind::string)
          fail("module and name are not strings");
        if (module->text.size() + name->text.size() > 4096) fail("global name too long");
        PickleRef g = make(PickleKind::global);
        g->text = module->text + "." + name->text;
        push(g);
        break;
      }
      case MEMOIZE: {
        if (memo_.size() >= std::numeric_limits<uint32_t>::max()) fail("memo too large");
        memo_put(static_cast<uint32_t>(memo_.size()));
        break;
      }
      case SHORT_BINUNICODE: push_text(PickleKind::string, text(*take(1))); break;
      case BINUNICODE8: push_text(PickleKind::string, text(le64())); break;
      case SHORT_BINBYTES: push_text(PickleKind::bytes, text(*take(1))); break;
      case BINBYTES: push_text(PickleKind::bytes, text(le32())); break;
      case BINBYTES8: push_text(PickleKind::bytes, text(le64())); break;
      case EMPTY_SET: push(make(PickleKind::set)); break;
      case ADDITEMS: {
        std::vector<PickleRef> vs = pop_mark();
        PickleRef& set = top();
        if (set->kind != PickleKind::set)
          fail("target is a ", pickle_kind_name(set->kind), ", not a set");
        check_unheld(*set);
        for (auto& v : vs) {
          adopt(*set, v);
          set->items.push_back(std::move(v));
        }
        break;
      }
      case FROZENSET: {
        PickleRef set = make_tuple(pop_mark());
        set->kind = PickleKind::set;
        push(set);
        break;
      }
      case NEWOBJ_EX: {
        PickleRef kwargs = pop();
        PickleRef args = pop();
        PickleRef cls = pop();
        if (kwargs->kind != PickleKind::dict) fail("keyword arguments are not a dict");
        PickleRef o = make_object(cls, args);
        adopt(*o, kwargs);
        o->state = kwargs;  // replaced by a later BUILD
        push(o);
        break;
      }
      case GLOBAL: {
        std::string module = line();
        std::string name = line();
        PickleRef g = make(PickleKind::global);
        g->text = module + "." + name;
        push(g);
        break;
      }
      case BINPUT: memo_put(*take(1)); break;
      case LONG_BINPUT: memo_put(le32()); break;
      case BINGET: push(memo_get(*take(1))); break;
      case LONG_BINGET: push(memo_get(le32())); break;
      case MARK:
        if (marks_.size() >= 100'000) fail("too many nested MARKs");
        marks_.push_back(stack_.size());
        break;
      case EMPTY_TUPLE: push(make(PickleKind::tuple)); break;
      case TUPLE: push(make_tuple(pop_mark())); break;
      case TUPLE1:
      case TUPLE2:
      case TUPLE3: {
        size_t n = op_ - TUPLE1 + 1;
        std::vector<PickleRef> items(n);
        for (size_t i = n; i-- > 0;) items[i] = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case EMPTY_DICT: push(make(PickleKind::dict)); break;
      case EMPTY_LIST: push(make(PickleKind::list)); break;
      case SETITEM: {
        PickleRef value = pop();
        PickleRef key = pop();
        set_item(*top(), std::move(key), std::move(value));
        break;
      }
      case SETITEMS: {
        std::vector<PickleRef> kv = pop_mark();
        if (kv.size() % 2) fail("odd number of items");
        PickleRef& d = top();
        for (size_t i = 0; i < kv.size(); i += 2) set_item(*d, kv[i], kv[i + 1]);
        break;
      }
      case APPEND: {
        PickleRef v = pop();
        append(*top(), std::move(v));
        break;
      }
      case APPENDS: {
        std::vector<PickleRef> vs = pop_mark();
        PickleRef& l = top();
        for (auto& v : vs) append(*l, std::move(v));
        break;
      }
      case BINUNICODE: push_text(PickleKind::string, text(le32())); break;
      case BININT: {
        PickleRef v = make(PickleKind::integer);
        v->integer = static_cast<int32_t>(le32());
        push(v);
        break;
      }
      case BININT1: {
        PickleRef v = make(PickleKind::integer);
        v->integer = *take(1);
        push(v);
        break;
      }
      case BININT2: {
        const uint8_t* p = take(2);
        PickleRef v = make(PickleKind::integer);
        v->integer = p[0] | (p[1] << 8);
        push(v);
        break;
      }
      case LONG1: {
        uint8_t n = *take(1);
        if (n > 8) fail("integer of ", int(n), " bytes does not fit in 64 bits");
        const uint8_t* p = take(n);
        uint64_t u = 0;
        for (int i = 0; i < n; ++i) u |= uint64_t(p[i]) << (8 * i);
        if (n > 0 && n < 8 && (p[n - 1] & 0x80)) u |= ~uint64_t(0) << (8 * n);  // sign-extend
        PickleRef v = make(PickleKind::integer);
        std::memcpy(&v->integer, &u, 8);
        push(v);
        break;
      }
      case BINFLOAT: {
        const uint8_t* p = take(8);
        uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | p[i];  // big-endian
        PickleRef v = make(PickleKind::floating);
        std::memcpy(&v->floating, &u, 8);
        push(v);
        break;
      }
      case NEWTRUE:
      case NEWFALSE: {
        PickleRef v = make(PickleKind::boolean);
        v->boolean = op_ == NEWTRUE;
        push(v);
        break;
      }
      case NONE: push(make(PickleKind::none)); break;
      case REDUCE: {
        PickleRef args = pop();
        PickleRef callable = pop();
        push(reduce(callable, args));
        break;
      }
      case NEWOBJ: {
        PickleRef args = pop();
        PickleRef cls = pop();
        push(make_object(cls, args));
        break;
      }
      case BUILD: {
        PickleRef state = pop();
        PickleValue& target = *top();
        if (target.kind != PickleKind::object && target.kind != PickleKind::dict &&
            target.kind != PickleKind::tensor)
          fail("cannot BUILD a ", pickle_kind_name(target.kind));
        if (target.kind == PickleKind::tensor) break;  // tensor state (hooks): ignored
        check_unheld(target);
        adopt(target, state);
        target.state = std::move(state);
        break;
      }
      case BINPERSID: {
        PickleRef pid = pop();
        push(persistent_load(pid));
        break;
      }
      default:
        TGPT_FAIL(what_, ": pickle: unsupported opcode ", op_name(), " at offset ", op_offset_,
                  " (this reader executes nothing and accepts only the opcodes of PyTorch "
                  "checkpoints and few-shot split caches)");
    }
  }
};

}  // namespace

PickleRef read_pickle(std::string_view data, const std::string& what, const PickleLimits& limits) {
  return Machine(data, what, limits).run();
}

}  // namespace tgpt
