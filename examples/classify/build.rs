//! What every binary using archc-runtime wants (tch needs the same): an rpath to libtorch, so the
//! program runs without LD_LIBRARY_PATH, and libtorch_cuda kept linked, so CUDA is available.
fn main() {
    if let Some(lib) = std::env::var_os("DEP_ARCHC_RUNTIME_LIBTORCH_LIB") {
        let lib = std::path::Path::new(&lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
