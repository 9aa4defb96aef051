// Counts heap allocations made by the calling thread while armed, by interposing malloc and friends
// in the test executable (its definitions take precedence over libc's for every library in the process).
#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
void malloc_counter_arm(void);
long malloc_counter_disarm(void);
#endif
