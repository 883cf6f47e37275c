/* Budget test (tests/budget.rs): `hot` is called in a tight loop from
 * phase_a until the program has used SECONDS of user time (its own work,
 * however loaded the machine); then, in the program's last moments, `finale` (a
 * new caller) calls it FINALE_CALLS times and the program exits at once,
 * long before the next window. never_called never runs.
 * Usage: late SECONDS */
#include <stdlib.h>
#include <sys/resource.h>

#define FINALE_CALLS 7

static volatile long sink;

__attribute__((noinline)) long hot(long x) { sink += x; return x; }
__attribute__((noinline)) void never_called(void) { sink--; }

static double user_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
}

__attribute__((noinline)) void phase_a(double seconds)
{
    while (user_seconds() < seconds)
        for (int i = 0; i < 100000; i++)
            hot(i);
}

__attribute__((noinline)) void finale(void)
{
    for (int i = 0; i < FINALE_CALLS; i++)
        hot(i);
}

int main(int argc, char **argv)
{
    phase_a(argc > 1 ? atof(argv[1]) : 1);
    finale();
    if (argc > 5)
        never_called();
    return 0;
}
