//! Give libscsp.so a SONAME carrying the ABI version, so a binary linked
//! against ABI 1 refuses to load a future, incompatible ABI 2 library.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libscsp.so.1");
    println!("cargo:rerun-if-changed=build.rs");
}
