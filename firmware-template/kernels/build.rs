//! Selects the kernels' DSP path (`cfg(tinyml_dsp)`) for cores with the DSP extension: every ARMv7E-M core
//! (`thumbv7em-*`), and ARMv8-M Mainline (`thumbv8m.main-*`) cores that implement it, which the triple does
//! not say (the extension is optional there), so the `-C target-cpu` in the rustflags decides: Cortex-M33,
//! M35P, M52, M55 and M85 have it in every configuration our boards use (`-C target-feature=+dsp` also counts).
//! Stable Rust hides the `dsp` target feature from `cfg(target_feature)`, hence this script.
//! `TINYML_KERNELS_DSP=0` or `=1` overrides the choice. Cores without the extension but with the ARMv7-M
//! instruction set (MLA, SBFX, LDRD: `thumbv7m-*`, and ARMv8-M Mainline without DSP) get `cfg(tinyml_armv7m)`,
//! which selects assembly inner loops for the portable path (`armv7m`).

const V8M_MAIN_DSP_CPUS: [&str; 5] = ["cortex-m33", "cortex-m35p", "cortex-m52", "cortex-m55", "cortex-m85"];

/// The value of the last `-C target-cpu=` / `-Ctarget-cpu=` in cargo's encoded rustflags, and whether
/// `+dsp` appears in a `target-feature`.
fn cpu_and_dsp_feature(encoded: &str) -> (Option<String>, bool) {
    let mut cpu = None;
    let mut dsp = false;
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
        }
    }
    (cpu, dsp)
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinyml_dsp)");
    println!("cargo::rustc-check-cfg=cfg(tinyml_armv7m)");
    println!("cargo::rerun-if-env-changed=TINYML_KERNELS_DSP");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let target = std::env::var("TARGET").unwrap_or_default();
    let (cpu, dsp_feature) = cpu_and_dsp_feature(&std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default());
    let dsp = match std::env::var("TINYML_KERNELS_DSP").ok().as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => {
            target.starts_with("thumbv7em-")
                || (target.starts_with("thumbv8m.main-")
                    && (dsp_feature || cpu.is_some_and(|c| V8M_MAIN_DSP_CPUS.contains(&c.as_str()))))
        }
    };
    if dsp {
        println!("cargo::rustc-cfg=tinyml_dsp");
    } else if target.starts_with("thumbv7m-") || target.starts_with("thumbv8m.main-") {
        println!("cargo::rustc-cfg=tinyml_armv7m");
    }
}
