/* A known call pattern for patched entries (tests/patch.rs), built with
 * gcc -fpatchable-function-entry=5 (five one-byte nops at every entry).
 * Prints "ready" with its threads started (workers blocked at a barrier, a
 * spinner calling spin() all the time), waits for a line on stdin (the
 * patch goes in meanwhile), then:
 *   main -> middle 1000, middle -> leaf 3000,
 *   main -> dispatch 700, dispatch -> red 300 and -> blue 400 (one indirect
 *   call site, two callees),
 *   main -> args8 1, main -> vsum 1 (exit status 4 if their arguments,
 *   in registers, arrived changed),
 *   4 workers (started and inside worker before the patch): worker -> leaf
 *   5000 each (20000),
 *   2 threads started after it: late_worker 2 calls, late_worker -> leaf 2000,
 * lets the spinner make 1000 more calls, stops it, prints "spins N" (its calls of spin since start), and
 * with "stay" prints "done" and waits for another line before exiting;
 * with "exit" exits at once.
 * With "fork": after the line, a child calls child_work once, which calls
 * leaf 100 times; the parent waits for it and exits.
 * With "sled": a thread loops through nop_sled's five one-byte nops for
 * ever (most stops land inside them); prints "ready", exits after a line. */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 4
#define WORKER_CALLS 5000

volatile long sink;
static atomic_int stop_spin;
static volatile long spins;
static pthread_barrier_t go;
static atomic_int workers_in;

__attribute__((noinline)) void leaf(void) { sink++; }
__attribute__((noinline)) void middle(int n) { for (int i = 0; i < n; i++) leaf(); }
__attribute__((noinline)) void red(void) { sink += 2; }
__attribute__((noinline)) void blue(void) { sink += 3; }
__attribute__((noinline)) void dispatch(void (*f)(void)) { f(); }
__attribute__((noinline)) void spin(void) { sink++; }
/* Arguments in every integer and vector argument register and a variadic
 * call (%al = vector registers used): the stub must keep them all. */
__attribute__((noinline)) long args8(long a, long b, long c, long d, long e, long f, double x,
                                     double y)
{
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + (long)(x * 10) + (long)(y * 100);
}
__attribute__((noinline)) double vsum(int n, ...)
{
    va_list ap;
    double s = 0;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        s += va_arg(ap, double);
    va_end(ap);
    return s;
}

static void *spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_spin)) {
        spin();
        spins++;
    }
    return 0;
}

__attribute__((noinline)) void *worker(void *arg)
{
    (void)arg;
    atomic_fetch_add(&workers_in, 1);
    pthread_barrier_wait(&go);
    for (int i = 0; i < WORKER_CALLS; i++)
        leaf();
    return 0;
}

__asm__(".text\n.globl nop_sled\n.type nop_sled,@function\nnop_sled:\n"
        ".byte 0x90,0x90,0x90,0x90,0x90\njmp nop_sled\n.size nop_sled,.-nop_sled\n");
void nop_sled(void);

__attribute__((noinline)) void child_work(void)
{
    for (int i = 0; i < 100; i++)
        leaf();
}

static void *sled_thread(void *arg)
{
    (void)arg;
    nop_sled();
    return 0;
}

__attribute__((noinline)) void *late_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        leaf();
    return 0;
}

int main(int argc, char **argv)
{
    int stay = argc > 1 && strcmp(argv[1], "stay") == 0;
    char line[16];
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        int status;
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 3;
        pid_t child = fork();
        if (child == 0) {
            child_work();
            _exit(0);
        }
        waitpid(child, &status, 0);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 5;
    }
    if (argc > 1 && strcmp(argv[1], "sled") == 0) {
        pthread_t t;
        pthread_create(&t, 0, sled_thread, 0);
        printf("ready\n");
        fflush(stdout);
        return fgets(line, sizeof line, stdin) ? 0 : 3;
    }
    pthread_t spin_thread, workers[WORKERS];
    pthread_barrier_init(&go, 0, WORKERS + 1);
    pthread_create(&spin_thread, 0, spinner, 0);
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&workers[i], 0, worker, 0);
    /* "ready" only once every worker is inside worker and the spinner
     * spins: the patch then finds them there (worker is not entered again). */
    while (atomic_load(&workers_in) < WORKERS || spins == 0)
        sched_yield();
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 3;
    pthread_barrier_wait(&go);
    for (int i = 0; i < 1000; i++)
        middle(3);
    for (int i = 0; i < 700; i++)
        dispatch(i % 7 < 3 ? red : blue);
    /* 1+4+9+16+25+36 + 15 + 250 */
    if (args8(1, 2, 3, 4, 5, 6, 1.5, 2.5) != 356 || vsum(3, 0.5, 1.25, 2.0) != 3.75)
        return 4;
    for (int i = 0; i < WORKERS; i++)
        pthread_join(workers[i], 0);
    for (int i = 0; i < 2; i++)
        pthread_create(&workers[i], 0, late_worker, 0);
    for (int i = 0; i < 2; i++)
        pthread_join(workers[i], 0);
    /* The spinner calls spin() a while after the patch (on a loaded machine
     * it might otherwise not run again before it is stopped). */
    for (long seen = spins; spins < seen + 1000;)
        sched_yield();
    atomic_store(&stop_spin, 1);
    pthread_join(spin_thread, 0);
    printf("spins %ld\n", spins);
    fflush(stdout);
    if (!stay)
        return 0;
    printf("done\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 3;
    return 0;
}
