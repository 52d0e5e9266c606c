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
    }
}
