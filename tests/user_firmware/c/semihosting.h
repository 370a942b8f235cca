/* Console output and exit through ARM semihosting (startup.c). */
#ifndef SEMIHOSTING_H
#define SEMIHOSTING_H
void put_line(const char *text);
void exit_with(int ok);
#endif
