//! Link settings the dependencies cannot set themselves.
//!
//! espeak-ng (built by espeak-rs-sys for Piper's phonemes) uses libsonic, but its build script
//! does not link it; the static archive from Debian's libsonic-dev is linked here.

fn main() {
    println!("cargo:rustc-link-arg=-l:libsonic.a");
    println!("cargo:rerun-if-changed=build.rs");
}
