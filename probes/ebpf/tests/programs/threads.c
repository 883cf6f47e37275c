/* Contention for the exact-mode drain (see tests/exact.rs): THREADS threads
 * (more than the CPUs, so programs get preempted) each call `work` CALLS
 * times, and `work` calls `leaf`, while the collector drains every few ms.
 * Usage: threads THREADS CALLS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static volatile long sink;
static long calls;

__attribute__((noinline)) long leaf(long x) { sink += x; return x + 1; }
__attribute__((noinline)) long work(long x) { return leaf(x) * 2; }

static void *worker(void *arg)
{
    long id = (long)arg;
    for (long i = 0; i < calls; i++)
        work(id + i);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    long threads = atol(argv[1]);
    calls = atol(argv[2]);
    pthread_t *t = calloc(threads, sizeof *t);
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (long i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("calls=%ld\n", threads * calls);
    return 0;
}
