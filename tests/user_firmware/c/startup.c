/* Start-up for the C user firmware of tests/test_export.py on QEMU's mps2-an386 (Cortex-M4F), written for it
 * alone: the vector table, .data copied, .bss zeroed, the FPU enabled, then main(); its return value becomes
 * the semihosting exit status. Output and exit go through ARM semihosting (`bkpt 0xAB`). */
#include <stdint.h>

#include "semihosting.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top;
int main(void);

static int semihosting(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void put_line(const char *text) { semihosting(0x04, text); } /* SYS_WRITE0: a NUL-terminated string */

void exit_with(int ok) {
    /* SYS_EXIT: ADP_Stopped_ApplicationExit (QEMU exits 0) or ADP_Stopped_RunTimeErrorUnknown (1) */
    semihosting(0x18, (const void *)(ok ? 0x20026 : 0x20024));
    for (;;) {
    }
}

void reset(void) {
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n isb");
    exit_with(main() == 0);
}

static void fault(void) {
    put_line("fault\n");
    exit_with(0);
}

__attribute__((section(".vectors"), used)) static const void *const vectors[16] = {
    &_stack_top, reset, fault, fault, fault, fault, fault, 0, 0, 0, 0, fault, fault, 0, fault, fault,
};
