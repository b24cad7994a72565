//! Link settings of the release `bootstrap`.
//!
//! * `layout/<target>.order`, when it exists, is the order in which the linker places the
//!   functions and constants that a typical run touches: first, next to each other. The kernel
//!   maps a binary's code 64 KiB at a time around each page that is touched, so code that runs
//!   together should lie together (docs/performance.md, "Memory"). `make layout` writes the
//!   file; `FOUNDRY_SYMBOL_ORDER=0` builds without it. A symbol the file names that the build
//!   does not have (after a compiler or dependency update) is skipped: the binary is the same,
//!   only less compact.
//! * `FOUNDRY_LINK_MAP=<path>` also writes the linker's map (`make layout` reads it).
//!
//! Both need LLD, Rust's default linker for x86_64-unknown-linux-gnu since 1.90. Other
//! targets link as before.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FOUNDRY_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=FOUNDRY_LINK_MAP");
    let target = env::var("TARGET").unwrap_or_default();
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    if !release || target != "x86_64-unknown-linux-gnu" {
        return;
    }
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = Path::new(&dir).join("layout").join(format!("{target}.order"));
    println!("cargo:rerun-if-changed={}", order.display());
    if order.is_file() && env::var("FOUNDRY_SYMBOL_ORDER").map_or(true, |v| v != "0") {
        println!(
            "cargo:rustc-link-arg-bin=bootstrap=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=bootstrap=-Wl,--no-warn-symbol-ordering");
    }
    if let Ok(map) = env::var("FOUNDRY_LINK_MAP") {
        if !map.is_empty() {
            // Mangled names, as the symbol order file needs them.
            println!("cargo:rustc-link-arg-bin=bootstrap=-Wl,-Map={map}");
            println!("cargo:rustc-link-arg-bin=bootstrap=-Wl,--no-demangle");
        }
    }
}
