// A real allocation hook for tests: each allocation entry point counts (on armed threads only, so tests
// running concurrently on other threads do not interfere) and forwards to glibc's implementation.
#include "MallocCounter.h"
#include <stddef.h>
#include <errno.h>

#if defined(__linux__)
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static __thread int armed;
static __thread long count;

void malloc_counter_arm(void) { count = 0; armed = 1; }
long malloc_counter_disarm(void) { armed = 0; return count; }

void *malloc(size_t n) { if (armed) count++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { if (armed) count++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { if (armed) count++; return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { if (armed) count++; return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { if (armed) count++; return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    if (armed) count++;
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
#else
// Elsewhere the hook is not installed; the test reports that instead of passing vacuously.
void malloc_counter_arm(void) {}
long malloc_counter_disarm(void) { return -1; }
#endif
