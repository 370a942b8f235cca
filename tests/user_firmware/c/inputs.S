/* The test windows (inputs.bin, written by tests/test_export.py beside this file) as `test_inputs`. */
    .section .rodata.test_inputs, "a", %progbits
    .global test_inputs
    .global test_inputs_end
    .p2align 2
test_inputs:
    .incbin "inputs.bin"
test_inputs_end:
