//! Link options of the gateway binary.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let (os, env, arch) = (
        var("CARGO_CFG_TARGET_OS"),
        var("CARGO_CFG_TARGET_ENV"),
        var("CARGO_CFG_TARGET_ARCH"),
    );
    if os == "linux" && env == "gnu" && arch == "x86_64" {
        // Relative relocations packed (DT_RELR, glibc 2.36; docs/deployment.md): the loader
        // reads 28 KB at start instead of the 2.7 MB of `.rela.dyn` that stayed resident,
        // and the binary stays position-independent (address randomisation kept). Not for
        // 64-bit ARM: Debian 12's linker for it (binutils 2.40) ignores the option.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        // The functions the gateway runs, packed together at the front of its code
        // (docs/performance.md, "The code the gateway runs, packed together"): the kernel
        // maps 64 KB around every page of code touched, so a few megabytes of functions
        // scattered over 40 MB kept 11 MB resident. The list is the linker's symbol
        // ordering, which lld (Rust's linker here since 1.90) reads in one pass; a name
        // not in this build is skipped, and a function not listed is placed as before.
        println!("cargo:rerun-if-changed=hot-text.txt");
        // lld skips the list's blank and `#` lines itself.
        if lld_links() {
            let list = format!("{}/hot-text.txt", var("CARGO_MANIFEST_DIR"));
            println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={list}");
            println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
        }
    }
}

/// Whether the gateway is linked by lld: the default for x86-64 Linux from Rust 1.90 on,
/// unless the build names a linker of its own. The GNU linker knows no symbol ordering.
fn lld_links() -> bool {
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some() || flags.contains("linker")
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
