//! Selects the kernels' DSP path (`cfg(tinyml_dsp)`) for targets whose cores all have the ARMv7E-M DSP
//! extension. Stable Rust hides the `dsp` target feature from `cfg(target_feature)`, so the target triple
//! decides; `TINYML_KERNELS_DSP=0` or `=1` overrides it (e.g. for a thumbv8m.main core with the extension).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinyml_dsp)");
    println!("cargo::rerun-if-env-changed=TINYML_KERNELS_DSP");
    let target = std::env::var("TARGET").unwrap_or_default();
    let dsp = match std::env::var("TINYML_KERNELS_DSP").ok().as_deref() {
        Some("1") => true,
        Some("0") => false,
        _ => target.starts_with("thumbv7em-"),
    };
    if dsp {
        println!("cargo::rustc-cfg=tinyml_dsp");
    }
}
