/* Ground-truth test (tests/truth.rs): many edges with different counts,
 * built with -finstrument-functions and bench/research/tracer.c, so that
 * one run gives both the probe's counts and the instrumentation's.
 * Recursion, mutual recursion, calls through a table of function
 * pointers, a libc callback, one function called from several sites.
 * Usage: mix N */
#include <stdio.h>
#include <stdlib.h>

static volatile long sink;

__attribute__((noinline)) long note(long x) { sink += x; return x; }
__attribute__((noinline)) long fib(long k) { return k < 2 ? note(k) : fib(k - 1) + fib(k - 2); }
__attribute__((noinline)) int is_odd(long k);
__attribute__((noinline)) int is_even(long k) { return k == 0 ? 1 : is_odd(k - 1); }
__attribute__((noinline)) int is_odd(long k) { return k == 0 ? 0 : is_even(k - 1); }
__attribute__((noinline)) long op_add(long x) { return note(x + 1); }
__attribute__((noinline)) long op_mul(long x) { return note(x * 3); }
__attribute__((noinline)) long op_neg(long x) { return -x; }
static long (*const ops[])(long) = {op_add, op_mul, op_neg};
__attribute__((noinline)) int by_value(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    note(1);
    return (x > y) - (x < y);
}
__attribute__((noinline)) long dispatch(long i) { return ops[i % 3](i); }

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10;
    long values[64];
    for (long i = 0; i < n; i++) {
        sink += dispatch(i);
        if (i % 7 == 0)
            sink += fib(i % 15);
        if (i % 11 == 0)
            sink += is_even(i % 50);
    }
    for (int i = 0; i < 64; i++)
        values[i] = (i * 7919) % 101;
    qsort(values, 64, sizeof values[0], by_value);
    note(values[0]);
    printf("%ld\n", (long)sink);
    return 0;
}
