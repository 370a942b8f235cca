/* A user's own C firmware, written without tinypipe's template, linked against an exported model's static
 * library (tests/test_export.py passes the header's directory with -I and MODEL_HEADER with -D).
 *
 * It prints the status codes of the API's refusals (`status <what> <code>`), then for every window of
 * inputs.bin (TP_INPUT_LEN values of tp_input_t each; with a front end, TP_RAW_WINDOW_LEN int16 samples each, made
 * into the model's input by tp_input_from_raw) `out <index> <output bytes in hex>`, then `done`. */
#include <stddef.h>
#include <stdint.h>

#include MODEL_HEADER
#include "semihosting.h"

#ifdef TP_RAW_WINDOW_LEN
typedef int16_t window_t;
#define WINDOW_LEN TP_RAW_WINDOW_LEN
static tp_input_t input[TP_INPUT_LEN];
#else
typedef tp_input_t window_t;
#define WINDOW_LEN TP_INPUT_LEN
#endif
extern const window_t test_inputs[], test_inputs_end[]; /* inputs.S */

static uint8_t arena[TP_ARENA_BYTES];
static tp_output_t output[TP_OUTPUT_LEN];

/* The decimal of `value` (with its sign) at `line`; returns the end of what was written. */
static char *put_int(char *line, long value) {
    char digits[12];
    int n = 0;
    unsigned long magnitude = value < 0 ? -(unsigned long)value : (unsigned long)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0) *line++ = '-';
    while (n) *line++ = digits[--n];
    return line;
}

static char *put_text(char *line, const char *text) {
    while (*text) *line++ = *text++;
    return line;
}

static void status(const char *what, long code) {
    char line[64];
    char *end = put_int(put_text(put_text(put_text(line, "status "), what), " "), code);
    end[0] = '\n';
    end[1] = 0;
    put_line(line);
}

int main(void) {
    static const char hex[] = "0123456789abcdef";
#ifdef TP_RAW_WINDOW_LEN
    status("raw_null", tp_input_from_raw(NULL, input));
    status("invoke_before_init", tp_model_invoke(input, output));
#else
    status("invoke_before_init", tp_model_invoke(test_inputs, output));
#endif
    status("init_too_small", tp_model_init(arena, TP_ARENA_BYTES - 1));
    status("init_null", tp_model_init(NULL, TP_ARENA_BYTES));
    status("init", tp_model_init(arena, sizeof arena));
    long windows = (long)(test_inputs_end - test_inputs) / WINDOW_LEN;
    for (long index = 0; index < windows; index++) {
#ifdef TP_RAW_WINDOW_LEN
        if (tp_input_from_raw(test_inputs + index * WINDOW_LEN, input) != TP_OK) return 1;
        if (tp_model_invoke(input, output) != TP_OK) return 1;
#else
        if (tp_model_invoke(test_inputs + index * WINDOW_LEN, output) != TP_OK) return 1;
#endif
        char line[32 + 2 * TP_OUTPUT_LEN * sizeof(tp_output_t)];
        char *end = put_text(put_int(put_text(line, "out "), index), " ");
        const uint8_t *bytes = (const uint8_t *)output;
        for (size_t i = 0; i < sizeof output; i++) {
            *end++ = hex[bytes[i] >> 4];
            *end++ = hex[bytes[i] & 15];
        }
        end[0] = '\n';
        end[1] = 0;
        put_line(line);
    }
    put_line("done\n");
    return 0;
}
