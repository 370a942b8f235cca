/* Bare-metal start-up for the arena probe (Cortex-M, newlib-nano, no crt0): what PROVENANCE.md lists as
 * needed — FPU on before any float code, .data copied, .bss zeroed, static constructors run — and an exit
 * through ARM semihosting. A fault prints a line and exits non-zero instead of hanging. */
#include <stdint.h>

#include "semihosting.h"

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[], __stack_top[];
extern void __libc_init_array(void);
extern int main(void);

void* __dso_handle = 0; /* no crtbegin: TFLM's function-local statics register destructors against it */
void _init(void) {}     /* no crti/crtn: __libc_init_array calls these */
void _fini(void) {}

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUN_TIME_ERROR 0x20023

static int semihost(int op, const void* arg) {
  register int r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void sh_write0(const char* text) { semihost(SYS_WRITE0, text); }

void sh_exit(int code) {
  uintptr_t reason = code == 0 ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUN_TIME_ERROR;
  semihost(SYS_EXIT, (const void*)reason);
  for (;;) {
  }
}

void Reset_Handler(void) {
#if defined(__ARM_FP)
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10 and CP11 */
  __asm__ volatile("dsb\n isb" ::: "memory");
#endif
  for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) *dst++ = *src++;
  for (uint32_t* dst = __bss_start; dst < __bss_end;) *dst++ = 0;
  __libc_init_array();
  sh_exit(main());
}

void Fault_Handler(void) {
  sh_write0("tinypipe-error the arena probe faulted\n");
  sh_exit(1);
}

__attribute__((section(".vectors"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
