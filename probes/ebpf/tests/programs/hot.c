/* Budget test (tests/budget.rs): `hot` is called in a tight loop from
 * phase_a for SECONDS, then from phase_b (a caller that appears later) for
 * SECONDS; cold_once runs once at the end; never_called never runs.
 * Writes the true number of calls of hot to OUTFILE. Usage: hot SECONDS OUTFILE */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile long sink;

__attribute__((noinline)) long hot(long x) { sink += x; return x; }
__attribute__((noinline)) void cold_once(void) { sink++; }
__attribute__((noinline)) void never_called(void) { sink--; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long hot_calls;

__attribute__((noinline)) void phase_a(double seconds)
{
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 1000; i++, hot_calls++)
            hot(i);
}

__attribute__((noinline)) void phase_b(double seconds)
{
    double end = now() + seconds;
    while (now() < end)
        for (int i = 0; i < 1000; i++, hot_calls++)
            hot(i);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1;
    phase_a(seconds);
    phase_b(seconds);
    cold_once();
    if (argc > 5)
        never_called();
    if (argc > 2) {
        FILE *out = fopen(argv[2], "w");
        if (!out)
            return 2;
        fprintf(out, "%ld\n", hot_calls);
        fclose(out);
    }
    return 0;
}
