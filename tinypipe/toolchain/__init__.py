"""Tool discovery and the Rust sysroot: which rustc/cargo/arm-gcc to call, their (cached) versions, and how to
build `core` for a bare-metal target when the rustc has no prebuilt one."""
