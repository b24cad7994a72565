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
//! Both need LLD, Rust's default linker for x86_64-unknown-linux-gnu since 1.90; older
//! compilers and other targets link as before. With a linker configured by hand that is not
//! LLD, build with `FOUNDRY_SYMBOL_ORDER=0`.

use std::env;
use std::path::Path;
use std::process::Command;

/// Whether the compiler links x86_64 Linux binaries with LLD by default (Rust 1.90 and later).
fn links_with_lld() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(release) = text.lines().find_map(|l| l.strip_prefix("release: ")) else {
        return false;
    };
    let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FOUNDRY_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=FOUNDRY_LINK_MAP");
    let target = env::var("TARGET").unwrap_or_default();
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    if !release || target != "x86_64-unknown-linux-gnu" || !links_with_lld() {
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
