/* The model bytes, 16-byte aligned as TFLM requires; `.incbin` finds model.tflite through -I. */
  .section .rodata.tinypipe_model, "a"
  .balign 16
  .global tinypipe_model
tinypipe_model:
  .incbin "model.tflite"
