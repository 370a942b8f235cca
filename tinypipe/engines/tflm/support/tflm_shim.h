/* The C interface tinypipe's TFLM engine gives Rust (bindgen reads this file). One model per program.
 *
 * Every call returns 0 on success and non-zero on failure; tflm_last_error() then says what went wrong,
 * including TFLM's own log lines (e.g. "Failed to resize buffer. Requested: 2592, available 256"). */
#ifndef TINYPIPE_TFLM_SHIM_H_
#define TINYPIPE_TFLM_SHIM_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parse `model` (a .tflite flatbuffer, 16-byte aligned, alive for the program's life), register the ops the
 * model uses and allocate its tensors in `arena` (16-byte aligned, `arena_bytes` long). */
int32_t tflm_init(const uint8_t* model, uint8_t* arena, size_t arena_bytes);
/* Copy `len` bytes into input tensor 0; `len` must equal the tensor's size. */
int32_t tflm_set_input(const int8_t* data, size_t len);
int32_t tflm_invoke(void);
/* Copy output tensor 0 into `data`; `len` must equal the tensor's size. */
int32_t tflm_get_output(int8_t* data, size_t len);
/* Bytes of the arena the model needs (valid after a successful tflm_init). */
size_t tflm_arena_used_bytes(void);
/* A NUL-terminated description of the last failure ("" if none). */
const char* tflm_last_error(void);

/* Only in a shim compiled with TINYPIPE_TFLM_PROFILE (`target.profile_layers`):
 * tflm_init with TFLM's per-operator profiling on: each tflm_invoke then records, per operator it runs, the
 * operator's name and the ticks `clock` advanced meanwhile. tflm_init turns it off again. */
int32_t tflm_init_profiled(const uint8_t* model, uint8_t* arena, size_t arena_bytes, uint32_t (*clock)(void));
/* How many operators the last tflm_invoke recorded (0 without profiling). */
size_t tflm_profile_count(void);
/* Operator `index` of the last tflm_invoke: its name (a static string) and, in `ticks`, its clock ticks. */
const char* tflm_profile_event(size_t index, uint32_t* ticks);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* TINYPIPE_TFLM_SHIM_H_ */
