// CUDA graphs for the inference mode (fast::Captured): PyTorch's own at::cuda::CUDAGraph, which
// tch does not bind. A graph is captured on a side stream (CUDA cannot capture the legacy default
// stream), with its memory from the graph's private pool in libtorch's caching allocator, as
// `torch.cuda.graph` does; replay then launches every kernel of the pass with one call.
//
// Compiled by build.rs only where libtorch has CUDA (libtorch_cuda.so) and the CUDA runtime's
// headers are found (the pip wheel's nvidia/cu13/include, or CUDA_HOME); elsewhere
// ARCHC_CUDA_GRAPHS is undefined and every function reports that this build has no CUDA graphs.
// Errors cross as in onednn.cpp: a malloc'ed message, nullptr on success.

#include "ffi.h"

#if defined(ARCHC_CUDA_GRAPHS)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <memory>
#include <optional>
#endif

namespace {

#if defined(ARCHC_CUDA_GRAPHS)
// The device and that device's stream that were current before archc_cuda_side_stream_enter,
// restored on exit.
struct SideStream {
  c10::DeviceIndex previous_device;
  c10::cuda::CUDAStream previous;
};
#else
struct SideStream {};
const char *kNoGraphs =
    "this build of archc-runtime has no CUDA graphs: libtorch had no CUDA, or the CUDA "
    "runtime's headers were not found when it was built (runtime/build.rs)";
#endif

}  // namespace

extern "C" {

// 1 when this build can capture CUDA graphs, else 0.
int archc_cuda_graphs_available() {
#if defined(ARCHC_CUDA_GRAPHS)
  return 1;
#else
  return 0;
#endif
}

// Waits for the device, then makes a stream from libtorch's pool the current one on `device`
// (what `torch.cuda.stream(s)` does); *out restores the previous one in
// archc_cuda_side_stream_exit.
char *archc_cuda_side_stream_enter(int device, void **out) {
#if defined(ARCHC_CUDA_GRAPHS)
  return archc::guard([&] {
    auto index = static_cast<c10::DeviceIndex>(device);
    // The graph captures on the current device's current stream: make `device` current too.
    const auto previous_device = c10::cuda::current_device();
    c10::cuda::set_device(index);
    c10::cuda::device_synchronize();
    auto previous = c10::cuda::getCurrentCUDAStream(index);
    auto side = c10::cuda::getStreamFromPool(false, index);
    *out = new SideStream{previous_device, previous};
    c10::cuda::setCurrentCUDAStream(side);
  });
#else
  (void)device;
  (void)out;
  return archc::error_message(kNoGraphs);
#endif
}

// Waits for the side stream's work and makes the previous stream current again; frees `s`.
char *archc_cuda_side_stream_exit(void *s) {
  std::unique_ptr<SideStream> side(static_cast<SideStream *>(s));
#if defined(ARCHC_CUDA_GRAPHS)
  return archc::guard([&] {
    // Restore first, so that a failed wait leaves the thread's streams and device as they were.
    const auto side_stream = c10::cuda::getCurrentCUDAStream(side->previous.device_index());
    c10::cuda::setCurrentCUDAStream(side->previous);
    c10::cuda::set_device(side->previous_device);
    side_stream.synchronize();
  });
#else
  return archc::error_message(kNoGraphs);
#endif
}

// A new, empty graph.
char *archc_cuda_graph_new(void **out) {
#if defined(ARCHC_CUDA_GRAPHS)
  return archc::guard([&] { *out = new at::cuda::CUDAGraph(); });
#else
  (void)out;
  return archc::error_message(kNoGraphs);
#endif
}

void archc_cuda_graph_free(void *g) {
#if defined(ARCHC_CUDA_GRAPHS)
  // The destructor releases the graph, its executable and its memory pool; it does not throw.
  delete static_cast<at::cuda::CUDAGraph *>(g);
#else
  (void)g;
#endif
}

// Starts capturing the current (side) stream's work into `g`, with a private memory pool. The
// capture is thread-local: other threads' CUDA calls neither break it nor are refused by it.
char *archc_cuda_graph_begin(void *g) {
#if defined(ARCHC_CUDA_GRAPHS)
  return archc::guard([&] {
    static_cast<at::cuda::CUDAGraph *>(g)->capture_begin({0, 0},
                                                         cudaStreamCaptureModeThreadLocal);
  });
#else
  (void)g;
  return archc::error_message(kNoGraphs);
#endif
}

// Ends the capture and instantiates the graph.
char *archc_cuda_graph_end(void *g) {
#if defined(ARCHC_CUDA_GRAPHS)
  return archc::guard([&] { static_cast<at::cuda::CUDAGraph *>(g)->capture_end(); });
#else
  (void)g;
  return archc::error_message(kNoGraphs);
#endif
}

// Launches the captured work on the current stream.
char *archc_cuda_graph_replay(void *g) {
#if defined(ARCHC_CUDA_GRAPHS)
  return archc::guard([&] { static_cast<at::cuda::CUDAGraph *>(g)->replay(); });
#else
  (void)g;
  return archc::error_message(kNoGraphs);
#endif
}

}  // extern "C"
