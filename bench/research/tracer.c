/* Ground truth of call edges for the research bench: gcc's
 * -finstrument-functions calls __cyg_profile_func_enter(fn, call_site) on
 * every function entry. Distinct (call site, function) pairs are counted
 * in a fixed open-addressing table and written at exit to the file named
 * by TM_GROUND_TRUTH as "site fn count" lines (hex addresses; the program
 * is linked -no-pie so they are the ELF's own). */
#include <stdio.h>
#include <stdlib.h>

#define SLOTS (1u << 20)

struct pair {
    void *site, *fn;
    unsigned long count;
};

static struct pair table[SLOTS];
static unsigned long dropped;

__attribute__((no_instrument_function)) void __cyg_profile_func_enter(void *fn, void *site) {
    unsigned long h = ((unsigned long)fn ^ ((unsigned long)site * 0x9E3779B97F4A7C15ul)) >> 12;
    for (unsigned long probe = 0; probe < 64; probe++) {
        struct pair *p = &table[(h + probe) & (SLOTS - 1)];
        if (p->fn == fn && p->site == site) {
            p->count++;
            return;
        }
        if (!p->fn) {
            p->fn = fn;
            p->site = site;
            p->count = 1;
            return;
        }
    }
    dropped++;
}

__attribute__((no_instrument_function)) void __cyg_profile_func_exit(void *fn, void *site) {
    (void)fn;
    (void)site;
}

__attribute__((no_instrument_function, destructor)) static void tm_ground_truth_dump(void) {
    const char *path = getenv("TM_GROUND_TRUTH");
    if (!path) return;
    FILE *out = fopen(path, "w");
    if (!out) return;
    for (unsigned long i = 0; i < SLOTS; i++)
        if (table[i].fn)
            fprintf(out, "%lx %lx %lu\n", (unsigned long)table[i].site, (unsigned long)table[i].fn,
                    table[i].count);
    fprintf(out, "dropped %lu\n", dropped);
    fclose(out);
}
