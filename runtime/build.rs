//! Link settings for every binary, test and bench of this crate:
//! - an rpath to libtorch's folder, so nothing needs LD_LIBRARY_PATH;
//! - `--no-as-needed` before libtorch_cuda, so the linker keeps it although no symbol of it is
//!   used directly (tch-rs README, "CUDA"); without it `Cuda::is_available()` is false.
//!
//! It also compiles `csrc/`: the oneDNN operators the inference mode calls that tch does not bind
//! (`csrc/onednn.cpp`, against libtorch's own headers), the trainer's fused SGD (`csrc/sgd.cpp`)
//! the pooling and input-layout kernels (`csrc/layout.cpp`), and the peak-FLOP/s probe
//! (`csrc/peak.cpp`), on x86-64 the bf16 and fp32 grouped-convolution kernel
//! (`csrc/grouped.cpp`) and the bf16 and fp32 Winograd kernel for dense 3×3 convolutions (`csrc/winograd.cpp`), the AMX kernels for a network's stem (`csrc/stem.cpp`) and for dense 3×3s (`csrc/direct.cpp`),
//! the AMX or AVX512-BF16 kernel for a block's last 1×1 with its projection shortcut
//! (`csrc/pointwise.cpp`), and
//! CUDA graphs (`csrc/cuda_graph.cpp`: with CUDA only where libtorch has it and the CUDA runtime's
//! headers are found, else a stub that says so).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=csrc/onednn.cpp");
    println!("cargo:rerun-if-changed=csrc/peak.cpp");
    println!("cargo:rerun-if-changed=csrc/grouped.cpp");
    println!("cargo:rerun-if-changed=csrc/winograd.cpp");
    println!("cargo:rerun-if-changed=csrc/stem.cpp");
    println!("cargo:rerun-if-changed=csrc/direct.cpp");
    println!("cargo:rerun-if-changed=csrc/pointwise.cpp");
    println!("cargo:rerun-if-changed=csrc/ffi.h");
    println!("cargo:rerun-if-changed=csrc/amx.h");
    println!("cargo:rerun-if-changed=csrc/pool.h");
    println!("cargo:rerun-if-changed=csrc/cuda_graph.cpp");
    println!("cargo:rerun-if-changed=csrc/sgd.cpp");
    println!("cargo:rerun-if-changed=csrc/layout.cpp");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        panic!(
            "torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB); csrc/ needs its \
             headers: build with `. scripts/torch-env.sh` (LIBTORCH_USE_PYTORCH=1) or LIBTORCH set"
        );
    };
    if os == "linux" {
        println!("cargo:libtorch_lib={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
    // libtorch's headers sit next to its lib folder, in the pip wheel and in the zip alike.
    let include = lib.join("../include");
    // Every libtorch release since 2.7 is built with the C++11 ABI; torch-sys takes the same
    // variable to say otherwise.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    // C++17 against libtorch's headers, included as system headers: their warnings are not ours.
    let cpp = || {
        let mut b = cc::Build::new();
        // Optimised in every profile: the tests then run the code users run (GCC's AMX
        // intrinsics, for one, behave differently at -O0 and -O2).
        b.cpp(true)
            .opt_level(2)
            .pic(true)
            .std("c++17")
            .flag("-isystem")
            .flag(include.display().to_string())
            .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str());
        b
    };
    cpp().file("csrc/onednn.cpp").compile("archc_onednn");
    cpp().file("csrc/sgd.cpp").compile("archc_sgd");
    // Max-pooling and the input's layout conversion, on libtorch's OpenMP threads like the
    // grouped kernel below.
    let mut layout = cpp();
    if os != "macos" {
        // (Apple's clang has no -fopenmp; at::parallel_for then runs the rows on one thread.)
        layout.flag("-fopenmp");
    }
    layout.file("csrc/layout.cpp").compile("archc_layout");
    let mut graphs = cpp();
    let mut with_graphs = false;
    if lib.join("libtorch_cuda.so").exists() {
        match cuda_include(&lib) {
            Some(cuda) => {
                graphs
                    .define("ARCHC_CUDA_GRAPHS", None)
                    .flag("-isystem")
                    .flag(cuda.display().to_string());
                with_graphs = true;
            }
            None => println!(
                "cargo:warning=CUDA graphs left out: libtorch has CUDA but no cuda_runtime_api.h \
                 with crt/host_defines.h was found (the nvidia-cuda-runtime and nvidia-cuda-crt \
                 wheels beside torch, or $CUDA_HOME/include)"
            ),
        }
    }
    graphs
        .file("csrc/cuda_graph.cpp")
        .compile("archc_cuda_graph");
    if with_graphs {
        // After the archive that calls them: CUDAGraph is libtorch_cuda's, the streams c10's.
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    if arch == "x86_64" {
        // The grouped-convolution kernel runs on libtorch's OpenMP threads. torch-sys already
        // links `-lgomp`; the soname `libgomp.so.1` then resolves through the rpath to the copy
        // in libtorch's lib folder, so the process has one OpenMP runtime (`ldd` shows it).
        cpp()
            .flag("-fopenmp")
            .file("csrc/grouped.cpp")
            .compile("archc_grouped");
        cpp()
            .flag("-fopenmp")
            .file("csrc/winograd.cpp")
            .compile("archc_winograd");
        cpp()
            .flag("-fopenmp")
            .file("csrc/stem.cpp")
            .compile("archc_stem");
        cpp()
            .flag("-fopenmp")
            .file("csrc/direct.cpp")
            .compile("archc_direct");
        cpp()
            .flag("-fopenmp")
            .file("csrc/pointwise.cpp")
            .compile("archc_pointwise");
        cpp().file("csrc/peak.cpp").compile("archc_peak");
    }
}

/// The folder with the CUDA runtime's headers, its `crt/` folder included: the pip wheels'
/// (`nvidia/cu13/include` or `nvidia/cuda_runtime/include` beside torch in site-packages), else
/// `$CUDA_HOME/include`.
fn cuda_include(lib: &std::path::Path) -> Option<PathBuf> {
    let site = lib.join("../..");
    let wheel = ["nvidia/cu13/include", "nvidia/cuda_runtime/include"]
        .into_iter()
        .map(|p| site.join(p));
    let home = std::env::var_os("CUDA_HOME").map(|h| PathBuf::from(h).join("include"));
    // cuda_runtime_api.h includes crt/host_defines.h, which the pip wheels ship apart
    // (nvidia-cuda-crt): a folder without it would fail to compile, not fall back to the stub.
    wheel.chain(home).find(|dir| {
        if dir.exists() {
            // (A path that does not exist would rerun this script on every build.)
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        dir.join("cuda_runtime_api.h").exists() && dir.join("crt/host_defines.h").exists()
    })
}
