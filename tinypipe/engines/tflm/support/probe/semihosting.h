#ifndef TINYPIPE_SEMIHOSTING_H_
#define TINYPIPE_SEMIHOSTING_H_
void sh_write0(const char* text);
void sh_exit(int code) __attribute__((noreturn));
#endif
