"""The tools tinypipe drives, in one place: which binaries to call and their cached versions (`tools`, `rust`),
per-target compiler flags from the board registry (`flags`), the GNU libraries the firmware links (`gnu`), the
Rust sysroot (`rust`) and the C/C++ object cache (`objects`). Imports only core and config."""
