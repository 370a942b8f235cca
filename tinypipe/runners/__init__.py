"""Where firmware runs: the QEMU emulator (and, on hardware, a debug probe)."""
