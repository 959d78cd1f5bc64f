// What the C++ side of the runtime's FFI shares (runtime/src/fast/ffi.rs is the Rust side):
// C++ exceptions become a malloc'ed message (nullptr on success) that the Rust side frees with
// archc_free_error, and a convolution's geometry crosses as one struct.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>

extern "C" {
// A convolution's padding, stride, dilation (height, width) and groups: ffi::Geometry.
struct archc_geometry {
  int64_t padding[2];
  int64_t stride[2];
  int64_t dilation[2];
  int64_t groups;
};
}

namespace archc {

inline char *error_message(const char *what) {
  size_t n = std::strlen(what);
  char *copy = static_cast<char *>(std::malloc(n + 1));
  if (copy != nullptr) std::memcpy(copy, what, n + 1);
  return copy;
}

// Runs f; returns nullptr, or the message of the exception it threw.
template <typename F> char *guard(F &&f) {
  try {
    f();
    return nullptr;
  } catch (const std::exception &e) {
    return error_message(e.what());
  } catch (...) {
    return error_message("unknown C++ exception");
  }
}

}  // namespace archc
