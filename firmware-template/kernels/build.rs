//! Selects the kernels' DSP path (`cfg(tinyml_dsp)`) for cores with the DSP extension: every ARMv7E-M core
//! (`thumbv7em-*`), and ARMv8-M Mainline (`thumbv8m.main-*`) cores that implement it, which the triple does
//! not say (the extension is optional there), so the `-C target-cpu` in the rustflags decides: Cortex-M33,
//! M35P, M52, M55 and M85 have it in every configuration our boards use (`-C target-feature=+dsp` also counts).
//! Stable Rust hides the `dsp` target feature from `cfg(target_feature)`, hence this script.
//! `TINYML_KERNELS_DSP=0` or `=1` overrides the choice. Cores without the extension but with the ARMv7-M
//! instruction set (MLA, SBFX, LDRD: `thumbv7m-*`, and ARMv8-M Mainline without DSP) get `cfg(tinyml_armv7m)`,
//! which selects assembly inner loops for the portable path (`armv7m`); ARMv6-M cores (`thumbv6m-*`: Cortex-M0,
//! M0+) get `cfg(tinyml_armv6m)`, Thumb-1 assembly for the hottest portable loops (`armv6m`).
//! Cores with the M-profile Vector Extension (Helium: Cortex-M55, M85, or `+mve` / `+mve.fp` in a
//! `target-feature`) also get `cfg(tinyml_mve)`, which runs conv, depthwise and fully connected inner loops
//! on MVE vectors (`mve`); `TINYML_KERNELS_MVE=0` or `=1` overrides that choice.

const V8M_MAIN_DSP_CPUS: [&str; 5] = ["cortex-m33", "cortex-m35p", "cortex-m52", "cortex-m55", "cortex-m85"];
/// ARMv8.1-M cores whose every configuration on our boards has integer MVE (LLVM enables `mve.fp` for them).
const MVE_CPUS: [&str; 2] = ["cortex-m55", "cortex-m85"];

/// The value of the last `-C target-cpu=` / `-Ctarget-cpu=` in cargo's encoded rustflags, and whether
/// `+dsp` and `+mve` (or `+mve.fp`) appear in a `target-feature`.
fn cpu_and_features(encoded: &str) -> (Option<String>, bool, bool) {
    let mut cpu = None;
    let mut dsp = false;
    let mut mve = false;
    let flags: Vec<&str> = encoded.split('\x1f').collect();
    for (i, flag) in flags.iter().enumerate() {
        let codegen = match flag.strip_prefix("-C") {
            Some("") => flags.get(i + 1).copied().unwrap_or(""),
            Some(rest) => rest,
            None => continue,
        };
        if let Some(value) = codegen.strip_prefix("target-cpu=") {
            cpu = Some(value.to_string());
        } else if let Some(value) = codegen.strip_prefix("target-feature=") {
            dsp |= value.split(',').any(|f| f == "+dsp");
            mve |= value.split(',').any(|f| f == "+mve" || f == "+mve.fp");
        }
    }
    (cpu, dsp, mve)
}

/// An override from the environment: `Some(true)` for "1", `Some(false)` for "0".
fn forced(variable: &str) -> Option<bool> {
    match std::env::var(variable).ok().as_deref() {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    }
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinyml_dsp)");
    println!("cargo::rustc-check-cfg=cfg(tinyml_armv7m)");
    println!("cargo::rustc-check-cfg=cfg(tinyml_mve)");
    println!("cargo::rustc-check-cfg=cfg(tinyml_armv6m)");
    println!("cargo::rerun-if-env-changed=TINYML_KERNELS_DSP");
    println!("cargo::rerun-if-env-changed=TINYML_KERNELS_MVE");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let target = std::env::var("TARGET").unwrap_or_default();
    let (cpu, dsp_feature, mve_feature) = cpu_and_features(&std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default());
    let dsp = forced("TINYML_KERNELS_DSP").unwrap_or_else(|| {
        target.starts_with("thumbv7em-")
            || (target.starts_with("thumbv8m.main-")
                && (dsp_feature || cpu.as_deref().is_some_and(|c| V8M_MAIN_DSP_CPUS.contains(&c))))
    });
    // every MVE core has the DSP extension too: the MVE path leaves the rest to the DSP one
    let mve = dsp
        && forced("TINYML_KERNELS_MVE").unwrap_or_else(|| {
            target.starts_with("thumbv8m.main-")
                && (mve_feature || cpu.as_deref().is_some_and(|c| MVE_CPUS.contains(&c)))
        });
    if mve {
        println!("cargo::rustc-cfg=tinyml_mve");
    }
    if dsp {
        println!("cargo::rustc-cfg=tinyml_dsp");
    } else if target.starts_with("thumbv7m-") || target.starts_with("thumbv8m.main-") {
        println!("cargo::rustc-cfg=tinyml_armv7m");
    } else if target.starts_with("thumbv6m-") {
        println!("cargo::rustc-cfg=tinyml_armv6m");
    }
}
