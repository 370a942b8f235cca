/* The arena probe. TFLM's arena_used_bytes() is what the model keeps, but AllocateTensors needs temporary room
 * beyond it while it plans, so the probe finds the smallest arena (a multiple of 16 bytes) in which tflm_init
 * succeeds, by bisection between arena_used_bytes() and a large arena, and runs the model once in it on zeros.
 * PROBE_ARENA_BYTES, INPUT_LEN and OUTPUT_LEN come from -D flags; `tinypipe_model` from model_blob.S. */
#include <stdint.h>
#include <stdio.h>

#include "semihosting.h"
#include "tflm_shim.h"

#define ALIGN 16u

extern const uint8_t tinypipe_model[];

static uint8_t arena[PROBE_ARENA_BYTES] __attribute__((aligned(ALIGN)));
static int8_t input[INPUT_LEN];
static int8_t output[OUTPUT_LEN];

static int fail(const char* step) {
  char line[900];
  snprintf(line, sizeof(line), "tinypipe-error %s: %s\n", step, tflm_last_error());
  sh_write0(line);
  return 1;
}

static int fits(size_t bytes) { return tflm_init(tinypipe_model, arena, bytes) == 0; }

int main(void) {
  if (!fits(sizeof(arena))) return fail("tflm_init");
  size_t used = tflm_arena_used_bytes();
  /* invariant: `high` fits, `low` does not (or is 0) */
  size_t low = used / ALIGN * ALIGN, high = sizeof(arena) / ALIGN * ALIGN;
  if (low >= ALIGN) low -= ALIGN;
  while (high - low > ALIGN) {
    size_t mid = (low + high) / 2 / ALIGN * ALIGN;
    if (fits(mid)) {
      high = mid;
    } else {
      low = mid;
    }
  }
  if (!fits(high)) return fail("tflm_init");
  if (tflm_set_input(input, sizeof(input)) != 0) return fail("tflm_set_input");
  if (tflm_invoke() != 0) return fail("tflm_invoke");
  if (tflm_get_output(output, sizeof(output)) != 0) return fail("tflm_get_output");
  char line[96];
  snprintf(line, sizeof(line), "tinypipe-arena-used %u\ntinypipe-arena-min %u\n", (unsigned)tflm_arena_used_bytes(),
           (unsigned)high);
  sh_write0(line);
  return 0;
}
