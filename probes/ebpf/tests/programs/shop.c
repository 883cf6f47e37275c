/* C++ and Rust symbol names for the demangling test (tests/names.rs),
 * written in C with asm labels so that no C++ compiler is needed:
 *   main -> shop::price(int)               N times
 *   shop::price(int) -> shop::Cart::total() const   N times
 *   main -> rust_crate::checkout (Rust legacy mangling, with hash) once
 * Usage: shop N */
#include <stdio.h>
#include <stdlib.h>

struct cart { long items; };

__attribute__((noinline)) long cart_total(const struct cart *c) __asm__("_ZNK4shop4Cart5totalEv");
__attribute__((noinline)) long price(int n) __asm__("_ZN4shop5priceEi");
__attribute__((noinline)) long checkout(void) __asm__("_ZN10rust_crate8checkout17h0123456789abcdefE");

long cart_total(const struct cart *c) { return c->items * 3; }
long price(int n)
{
    struct cart c = {n};
    return cart_total(&c);
}
long checkout(void) { return 7; }

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1, sum = 0;
    for (long i = 0; i < n; i++)
        sum += price((int)i);
    sum += checkout();
    printf("%ld\n", sum);
    return 0;
}
