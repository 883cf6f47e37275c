/* Test program with a known call pattern (see tests/exact.rs):
 *   main -> middle        N times      middle -> leaf       N times
 *   main -> via_pointer   2 times      (through a function pointer)
 *   via_pointer -> leaf   2 times
 *   libc qsort -> compare K times      (a callback from libc; K printed)
 * Usage: calls N [SECONDS]  -- with SECONDS, keeps calling `spin` until
 * that much time has passed (for sampling and attach-by-pid tests), after
 * printing "ready" and waiting for a line on stdin if the argument is "wait".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile long sink;
static long compares;

__attribute__((noinline)) long leaf(long x) { sink += x; return x + 1; }
__attribute__((noinline)) long middle(long x) { return leaf(x) * 2; }
__attribute__((noinline)) long via_pointer(long x) { return leaf(x) - 1; }
__attribute__((noinline)) int compare(const void *a, const void *b)
{
    compares++;
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Hot loop for sampling: hot -> hot_inner, burning CPU. The volatile
 * local gives hot_inner a stack frame: GCC omits the frame pointer of a
 * leaf function that needs no stack, even with -fno-omit-frame-pointer,
 * and a sampled leaf without a frame hides its caller. */
__attribute__((noinline)) long hot_inner(long x)
{
    volatile long acc[2] = {0, 0};
    for (long i = 0; i < 20000; i++)
        acc[i & 1] += (x ^ i) * 31;
    return acc[0] + acc[1];
}
__attribute__((noinline)) long hot(long x) { return hot_inner(x) + 1; }

long (*volatile fp)(long) = via_pointer;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 3;
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        /* Attach-by-pid: say we are up, wait until told to go. */
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 3;
    }
    long s = 0;
    for (long i = 0; i < n; i++)
        s += middle(i);
    for (long i = 0; i < 2; i++)
        s += fp(i);
    long arr[8] = {5, 3, 7, 1, 8, 2, 6, 4};
    qsort(arr, 8, sizeof arr[0], compare);
    if (argc > 2 && strcmp(argv[2], "wait") != 0) {
        double until = now() + atof(argv[2]);
        while (now() < until)
            s += hot(s);
    }
    printf("compares=%ld sum=%ld first=%ld\n", compares, s, arr[0]);
    return 0;
}
