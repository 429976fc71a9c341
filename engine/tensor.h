/*
 * tensor.h — Tensor: a reference-counted handle to typed, strided memory on one device.
 *
 * Storage is contiguous and row-major when created; views (reshape, transpose, permute, narrow,
 * squeeze/unsqueeze) share the storage and only change shape/strides/offset. Kernels take
 * contiguous inputs: ops call contiguous(), which copies only when needed. Copying a Tensor copies
 * the handle (both refer to the same tensor, gradient included); clone() copies the data.
 *
 * Autograd state lives on the tensor: requires_grad, the accumulated grad of a leaf, and for a
 * tensor produced by a recorded op, the Node that produced it (see autograd.h).
 */
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/device.h"
#include "base/dtype.h"
#include "base/error.h"
#include "base/shape.h"

namespace tgpt {

class Storage;
struct Node;

// Reference-counted block of memory on one device. Either allocated through allocator_for(device)
// or wrapping external memory (e.g. a memory-mapped file) kept alive by `owner`.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  Storage(void* external, size_t nbytes, Device device, std::shared_ptr<const void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_ = Device::CPU;
  std::shared_ptr<const void> owner_;  // set for external memory
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // producing op, null for leaves
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- factories (memory uninitialised for empty) ------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::CPU);
  // Copies values (converted to dtype) into a new CPU tensor; values.size() must equal numel.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::f32);
  template <typename T>
  static Tensor from_data(const T* values, const Shape& shape) {
    Tensor t = empty(shape, dtype_of<T>::value);
    std::memcpy(t.data_ptr(), values, static_cast<size_t>(shape.numel()) * sizeof(T));
    return t;
  }
  // Wraps existing storage as a tensor (used by views and file readers).
  static Tensor from_storage(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype,
                             int64_t offset = 0);

  // --- metadata ----------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int dim() const { return impl().shape.size(); }
  int64_t size(int d) const;  // negative d counts from the end
  int64_t numel() const { return impl().shape.numel(); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  int64_t offset() const { return impl().offset; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  bool is_contiguous() const;
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  std::string str() const;  // "f32[2, 3] cpu"

  // --- data access (CPU pointers are host pointers; CUDA pointers are device pointers) -----
  void* data_ptr() const;  // address of element 0 (offset applied)
  template <typename T>
  T* data() const {
    TGPT_CHECK(dtype() == dtype_of<T>::value, "tensor is ", dtype_name(dtype()), ", accessed as ",
               dtype_name(dtype_of<T>::value));
    return static_cast<T*>(data_ptr());
  }
  // Copies all values (any dtype, any layout, any device) into a host vector of doubles.
  std::vector<double> to_double_vector() const;
  std::vector<float> to_float_vector() const;
  double item() const;  // value of a one-element tensor

  // --- copies and conversions (recorded by autograd) ----------------------------------------
  Tensor contiguous() const;  // self when already contiguous
  Tensor clone() const;       // always copies
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor detach() const;  // shares storage, no autograd history

  // --- views (recorded by autograd) --------------------------------------------------------
  Tensor reshape(const Shape& shape) const;  // one extent may be -1; copies if not viewable
  Tensor view(const Shape& shape) const { return reshape(shape); }
  Tensor flatten(int start_dim = 0, int end_dim = -1) const;
  Tensor transpose(int d0, int d1) const;
  Tensor permute(const std::vector<int>& dims) const;
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  Tensor slice(int dim, int64_t start, int64_t end) const { return narrow(dim, start, end - start); }
  Tensor select(int dim, int64_t index) const;  // narrow(dim, index, 1) then squeeze(dim)
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;

  // --- in-place (not recorded; refuse tensors that are part of a recorded graph) -----------
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);  // same shape; any dtype/device; src may be strided

  // --- autograd ------------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r);  // leaves only
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const;                // undefined until a backward reached this leaf
  void set_grad(const Tensor& g);
  void zero_grad();                   // drops the gradient (next backward stores a fresh one)
  Node* grad_fn() const { return impl().grad_fn.get(); }
  void backward() const;                          // from a one-element tensor (seed 1)
  void backward(const Tensor& grad_output) const; // seed with the given gradient

  TensorImpl& impl() const {
    TGPT_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Normalises a possibly negative dimension index against ndim; throws when out of range.
int wrap_dim(int dim, int ndim);

}  // namespace tgpt
