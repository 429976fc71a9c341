/*
 * tensor.cpp — Storage, tensor factories, strided copies, dtype/device conversion and views,
 * each view or copy recorded for autograd.
 */
#include "engine/tensor.h"

#include <algorithm>
#include <cstring>

#include "engine/autograd.h"
#include "engine/ops.h"
#ifdef TGPT_WITH_CUDA
#include "kernels/cuda/tensor_kernels.h"
#endif

namespace tgpt {

// ---------------------------------------------------------------------------------------------
// Storage

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = allocator_for(device).allocate(nbytes);
}

Storage::Storage(void* external, size_t nbytes, Device device, std::shared_ptr<const void> owner)
    : data_(external), nbytes_(nbytes), device_(device), owner_(std::move(owner)) {}

Storage::~Storage() {
  if (!owner_) allocator_for(device_).deallocate(data_, nbytes_);
}

// ---------------------------------------------------------------------------------------------
// factories and metadata

int wrap_dim(int dim, int ndim) {
  int d = dim < 0 ? dim + ndim : dim;
  TGPT_CHECK(d >= 0 && d < std::max(ndim, 1), "dimension ", dim, " out of range for a ", ndim,
             "-d tensor");
  return d;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype,
                            int64_t offset) {
  for (int64_t d : shape) TGPT_CHECK(d >= 0, "negative extent in shape ", shape.str());
  auto impl = std::make_shared<TensorImpl>();
  TGPT_CHECK(static_cast<size_t>(offset + shape.numel()) * dtype_size(dtype) <= storage->nbytes(),
             "tensor ", shape.str(), " does not fit its storage");
  impl->storage = std::move(storage);
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) TGPT_CHECK(d >= 0, "negative extent in shape ", shape.str());
  auto storage =
      std::make_shared<Storage>(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device);
  return from_storage(std::move(storage), shape, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  TGPT_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
             " values for shape ", shape.str());
  Tensor t = empty(shape, dtype);
  convert_elements(values.data(), DType::f64, t.data_ptr(), dtype, values.size());
  return t;
}

int64_t Tensor::size(int d) const {
  return shape()[wrap_dim(d, dim())];
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return str_cat(dtype_name(dtype()), shape().str(), " ", device_name(device()));
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl().storage->data()) +
         static_cast<size_t>(impl().offset) * dtype_size(dtype());
}

// ---------------------------------------------------------------------------------------------
// strided copies (CPU)

namespace {

// Copies the elements of a strided CPU view into dst (contiguous, same dtype).
void gather_strided(const char* src, const Shape& shape, const Shape& strides, size_t item,
                    char* dst) {
  int nd = shape.size();
  if (shape.numel() == 0) return;
  if (nd == 0) {
    std::memcpy(dst, src, item);
    return;
  }
  // Merge the innermost run when it is contiguous.
  int64_t inner = shape[nd - 1];
  bool inner_contig = strides[nd - 1] == 1;
  int64_t outer = shape.numel() / inner;
  int64_t idx[kMaxDims] = {0, 0, 0, 0, 0};
  for (int64_t o = 0; o < outer; ++o) {
    int64_t off = 0;
    for (int d = 0; d < nd - 1; ++d) off += idx[d] * strides[d];
    const char* s = src + off * static_cast<int64_t>(item);
    if (inner_contig) {
      std::memcpy(dst, s, static_cast<size_t>(inner) * item);
    } else {
      int64_t st = strides[nd - 1] * static_cast<int64_t>(item);
      for (int64_t i = 0; i < inner; ++i) std::memcpy(dst + i * item, s + i * st, item);
    }
    dst += static_cast<size_t>(inner) * item;
    for (int d = nd - 2; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// Inverse of gather_strided: writes contiguous src into a strided CPU view.
void scatter_strided(const char* src, const Shape& shape, const Shape& strides, size_t item,
                     char* dst) {
  int nd = shape.size();
  if (shape.numel() == 0) return;
  if (nd == 0) {
    std::memcpy(dst, src, item);
    return;
  }
  int64_t inner = shape[nd - 1];
  int64_t outer = shape.numel() / inner;
  int64_t idx[kMaxDims] = {0, 0, 0, 0, 0};
  int64_t st = strides[nd - 1] * static_cast<int64_t>(item);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t off = 0;
    for (int d = 0; d < nd - 1; ++d) off += idx[d] * strides[d];
    char* dd = dst + off * static_cast<int64_t>(item);
    for (int64_t i = 0; i < inner; ++i) std::memcpy(dd + i * st, src + i * item, item);
    src += static_cast<size_t>(inner) * item;
    for (int d = nd - 2; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// Raw copy of self's elements (any layout, any device) into a new contiguous tensor.
Tensor contiguous_copy(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  if (t.is_contiguous()) {
    copy_bytes(out.data_ptr(), out.device(), t.data_ptr(), t.device(), t.nbytes());
    return out;
  }
  if (t.device() == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    Shape dst_strides = contiguous_strides(t.shape());
    cuda::strided_copy(out.data_ptr(), dst_strides.begin(), t.data_ptr(), t.strides().begin(),
                       t.shape().begin(), t.dim(), dtype_size(t.dtype()));
    return out;
#else
    TGPT_FAIL("strided copy of a CUDA tensor needs the CUDA backend");
#endif
  }
  gather_strided(static_cast<const char*>(t.data_ptr()), t.shape(), t.strides(),
                 dtype_size(t.dtype()), static_cast<char*>(out.data_ptr()));
  return out;
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// --- autograd nodes for copies, conversions and views ---------------------------------------

struct IdentityNode : Node {
  const char* name() const override { return "identity"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override { gi[0] = g; }
};

struct CastNode : Node {
  DType src;
  const char* name() const override { return "cast"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override { gi[0] = g.to(src); }
};

struct ToDeviceNode : Node {
  Device src;
  const char* name() const override { return "to_device"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override { gi[0] = g.to(src); }
};

struct ReshapeNode : Node {
  Shape in_shape;
  const char* name() const override { return "reshape"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override { gi[0] = g.reshape(in_shape); }
};

struct PermuteNode : Node {
  std::vector<int> inverse;
  const char* name() const override { return "permute"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    gi[0] = g.permute(inverse).contiguous();
  }
};

struct NarrowNode : Node {
  Shape in_shape;
  int dim = 0;
  int64_t start = 0;
  const char* name() const override { return "narrow"; }
  void backward(const Tensor& g, std::vector<Tensor>& gi) override {
    Tensor full = Tensor::zeros(in_shape, g.dtype(), g.device());
    full.narrow(dim, start, g.size(dim)).copy_(g);
    gi[0] = full;
  }
};

template <typename N>
Tensor record_view(const Tensor& in, Tensor out, std::shared_ptr<N> node) {
  if (node) record(out, node);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// host access

std::vector<double> Tensor::to_double_vector() const {
  Tensor c = contiguous_copy(*this);
  if (c.device() != Device::CPU) c = c.detach().to(Device::CPU);
  std::vector<double> v(static_cast<size_t>(c.numel()));
  convert_elements(c.data_ptr(), c.dtype(), v.data(), DType::f64, v.size());
  return v;
}

std::vector<float> Tensor::to_float_vector() const {
  std::vector<double> d = to_double_vector();
  return std::vector<float>(d.begin(), d.end());
}

double Tensor::item() const {
  TGPT_CHECK(numel() == 1, "item() needs a one-element tensor, got ", str());
  return to_double_vector()[0];
}

// ---------------------------------------------------------------------------------------------
// copies and conversions

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor out = contiguous_copy(*this);
  if (auto node = make_node<IdentityNode>({this})) record(out, node);
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = contiguous_copy(*this);
  if (auto node = make_node<IdentityNode>({this})) record(out, node);
  return out;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
#ifdef TGPT_WITH_CUDA
  if (device() == Device::CUDA) {
    Tensor c = is_contiguous() ? *this : contiguous_copy(*this);
    Tensor out = Tensor::empty(shape(), dt, Device::CUDA);
    cuda::convert(c.data_ptr(), c.dtype(), out.data_ptr(), dt, numel());
    if (dtype_is_float(dt) && dtype_is_float(dtype())) {
      if (auto node = make_node<CastNode>({this})) {
        node->src = dtype();
        record(out, node);
      }
    }
    return out;
  }
#endif
  Tensor src = device() == Device::CPU ? *this : this->detach().to(Device::CPU);
  Tensor c = src.is_contiguous() ? src : contiguous_copy(src);
  Tensor out = Tensor::empty(shape(), dt);
  convert_elements(c.data_ptr(), c.dtype(), out.data_ptr(), dt, static_cast<size_t>(numel()));
  if (device() != Device::CPU) out = out.to(device());
  if (dtype_is_float(dt) && dtype_is_float(dtype())) {
    if (auto node = make_node<CastNode>({this})) {
      node->src = dtype();
      record(out, node);
    }
  }
  return out;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor c = is_contiguous() ? *this : contiguous_copy(*this);
  Tensor out = Tensor::empty(shape(), dtype(), dev);
  copy_bytes(out.data_ptr(), dev, c.data_ptr(), c.device(), nbytes());
  if (auto node = make_node<ToDeviceNode>({this})) {
    node->src = device();
    record(out, node);
  }
  return out;
}

Tensor Tensor::detach() const {
  return make_view(*this, shape(), strides(), offset());
}

// ---------------------------------------------------------------------------------------------
// views

Tensor Tensor::reshape(const Shape& new_shape_in) const {
  Shape new_shape = new_shape_in;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      TGPT_CHECK(infer < 0, "reshape: more than one -1 in ", new_shape_in.str());
      infer = i;
    } else {
      TGPT_CHECK(new_shape[i] >= 0, "reshape: negative extent in ", new_shape_in.str());
      known *= new_shape[i];
    }
  }
  if (infer >= 0) {
    TGPT_CHECK(known != 0 && numel() % known == 0, "reshape: cannot infer ", new_shape_in.str(),
               " from ", shape().str());
    new_shape[infer] = numel() / known;
  }
  TGPT_CHECK(new_shape.numel() == numel(), "reshape: ", shape().str(), " (", numel(),
             " elements) cannot become ", new_shape.str());
  Tensor base = contiguous();
  Tensor out = make_view(base, new_shape, contiguous_strides(new_shape), base.offset());
  auto node = make_node<ReshapeNode>({&base});
  if (node) node->in_shape = shape();
  return record_view(base, out, node);
}

Tensor Tensor::flatten(int start_dim, int end_dim) const {
  int nd = dim();
  if (nd == 0) return reshape({1});
  int s = wrap_dim(start_dim, nd), e = wrap_dim(end_dim, nd);
  TGPT_CHECK(s <= e, "flatten: start_dim after end_dim");
  Shape ns;
  for (int i = 0; i < s; ++i) ns.push_back(shape()[i]);
  int64_t p = 1;
  for (int i = s; i <= e; ++i) p *= shape()[i];
  ns.push_back(p);
  for (int i = e + 1; i < nd; ++i) ns.push_back(shape()[i]);
  return reshape(ns);
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  int nd = dim();
  TGPT_CHECK(static_cast<int>(dims.size()) == nd, "permute: ", dims.size(), " dims for a ", nd,
             "-d tensor");
  std::vector<int> seen(nd, 0), inverse(nd, 0);
  Shape ns, st;
  for (int i = 0; i < nd; ++i) {
    int d = wrap_dim(dims[i], nd);
    TGPT_CHECK(!seen[d], "permute: dimension ", d, " repeated");
    seen[d] = 1;
    inverse[d] = i;
    ns.push_back(shape()[d]);
    st.push_back(strides()[d]);
  }
  Tensor out = make_view(*this, ns, st, offset());
  auto node = make_node<PermuteNode>({this});
  if (node) node->inverse = inverse;
  return record_view(*this, out, node);
}

Tensor Tensor::transpose(int d0, int d1) const {
  std::vector<int> p(dim());
  for (int i = 0; i < dim(); ++i) p[i] = i;
  std::swap(p[wrap_dim(d0, dim())], p[wrap_dim(d1, dim())]);
  return permute(p);
}

Tensor Tensor::narrow(int d, int64_t start, int64_t length) const {
  int dd = wrap_dim(d, dim());
  int64_t n = shape()[dd];
  if (start < 0) start += n;
  TGPT_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: [", start, ", ",
             start + length, ") out of range for dim ", dd, " of extent ", n);
  Shape ns = shape();
  ns[dd] = length;
  Tensor out = make_view(*this, ns, strides(), offset() + start * strides()[dd]);
  auto node = make_node<NarrowNode>({this});
  if (node) {
    node->in_shape = shape();
    node->dim = dd;
    node->start = start;
  }
  return record_view(*this, out, node);
}

Tensor Tensor::select(int d, int64_t index) const {
  int dd = wrap_dim(d, dim());
  return narrow(dd, index, 1).squeeze(dd);
}

Tensor Tensor::unsqueeze(int d) const {
  int dd = wrap_dim(d, dim() + 1);
  Shape ns = shape();
  ns.insert(dd, 1);
  return reshape(ns);
}

Tensor Tensor::squeeze(int d) const {
  int dd = wrap_dim(d, dim());
  TGPT_CHECK(shape()[dd] == 1, "squeeze: dim ", dd, " has extent ", shape()[dd]);
  Shape ns = shape();
  ns.erase(dd);
  return reshape(ns);
}

// ---------------------------------------------------------------------------------------------
// in-place

Tensor& Tensor::fill_(double value) {
  TGPT_CHECK(is_leaf() || !grad_enabled(), "fill_ on a tensor produced by a recorded op");
  if (numel() == 0) return *this;
  size_t item = dtype_size(dtype());
  std::vector<char> one(item);
  store_from_double(one.data(), dtype(), 0, value);
  if (device() != Device::CPU) {
#ifdef TGPT_WITH_CUDA
    uint64_t bits = 0;
    std::memcpy(&bits, one.data(), item);  // little-endian: the element's bytes are the low bytes
    cuda::fill(data_ptr(), shape().begin(), strides().begin(), dim(), item, bits);
    return *this;
#else
    TGPT_FAIL("fill_ of a CUDA tensor needs the CUDA backend");
#endif
  }
  if (is_contiguous()) {
    char* p = static_cast<char*>(data_ptr());
    for (int64_t i = 0; i < numel(); ++i) std::memcpy(p + i * item, one.data(), item);
  } else {
    std::vector<char> buf(nbytes());
    for (int64_t i = 0; i < numel(); ++i) std::memcpy(buf.data() + i * item, one.data(), item);
    scatter_strided(buf.data(), shape(), strides(), item, static_cast<char*>(data_ptr()));
  }
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  TGPT_CHECK(src.shape() == shape(), "copy_: shape ", src.shape().str(), " into ", shape().str());
  TGPT_CHECK(is_leaf() || !grad_enabled() || !requires_grad(),
             "copy_ into a tensor produced by a recorded op");
  Tensor s = src.detach();
  if (s.dtype() != dtype()) s = s.to(dtype());
  s = s.is_contiguous() ? s : contiguous_copy(s);
  if (is_contiguous()) {
    copy_bytes(data_ptr(), device(), s.data_ptr(), s.device(), nbytes());
  } else if (device() == Device::CUDA) {
#ifdef TGPT_WITH_CUDA
    if (s.device() != Device::CUDA) s = s.to(Device::CUDA);
    Shape src_strides = contiguous_strides(shape());
    cuda::strided_copy(data_ptr(), strides().begin(), s.data_ptr(), src_strides.begin(),
                       shape().begin(), dim(), dtype_size(dtype()));
#else
    TGPT_FAIL("copy_ into a strided CUDA tensor needs the CUDA backend");
#endif
  } else {
    if (s.device() != Device::CPU) s = s.to(Device::CPU);
    scatter_strided(static_cast<const char*>(s.data_ptr()), shape(), strides(), dtype_size(dtype()),
                    static_cast<char*>(data_ptr()));
  }
  return *this;
}

// ---------------------------------------------------------------------------------------------
// autograd accessors

Tensor& Tensor::set_requires_grad(bool r) {
  TGPT_CHECK(is_leaf(), "set_requires_grad on a non-leaf tensor");
  TGPT_CHECK(!r || dtype_is_float(dtype()), "only floating tensors can require grad, got ",
             dtype_name(dtype()));
  impl().requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const {
  auto& g = impl().grad;
  return g ? Tensor(g) : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  if (!g.defined()) {
    impl().grad.reset();
    return;
  }
  TGPT_CHECK(g.shape() == shape(), "set_grad: gradient ", g.shape().str(), " for tensor ",
             shape().str());
  impl().grad = g.impl_ptr();
}

void Tensor::zero_grad() {
  impl().grad.reset();
}

void Tensor::backward() const {
  TGPT_CHECK(numel() == 1, "backward() without a gradient needs a one-element tensor, got ", str());
  run_backward(*this, Tensor::ones(shape(), dtype(), device()));
}

void Tensor::backward(const Tensor& grad_output) const {
  run_backward(*this, grad_output);
}

}  // namespace tgpt
