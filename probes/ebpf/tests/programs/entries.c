/* Functions whose first instructions are known exactly (top-level asm), one
 * per kind of probed entry (see src/plan.rs, tests/entries.rs and the
 * `probe` bench suite):
 *   entry_push        push %rbp              emulated
 *   entry_rip         mov sink(%rip),%rax    single-stepped
 *   entry_nop5        nopl 0x0(%rax,%rax,1)  nop-optimized (kernel >= 6.18)
 *   entry_endbr_push  endbr64; push %rbp     probed past endbr64, emulated
 *   entry_nops        5 x nop                emulated (gcc -fpatchable-function-entry=5)
 *   entry_endbr       endbr64; incq ...      single-stepped
 * Usage: entries N               call_all N times (each function N times)
 *        entries N FUNCTION      call FUNCTION N times, print CPU ns per call
 *        entries N FUNCTION wait the same after printing "ready" and reading a
 *                                line (the bench patches its entry meanwhile) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile long sink;

#define FN(name, body) \
    ".globl " #name "\n.type " #name ",@function\n" #name ":\n" body ".size " #name ",.-" #name "\n"
__asm__(".text\n"
        FN(entry_push, "push %rbp\nmov %rsp,%rbp\nincq sink(%rip)\npop %rbp\nret\n")
        FN(entry_rip, "mov sink(%rip),%rax\nadd $1,%rax\nmov %rax,sink(%rip)\nret\n")
        FN(entry_nop5, ".byte 0x0f,0x1f,0x44,0x00,0x00\nincq sink(%rip)\nret\n")
        FN(entry_endbr_push, "endbr64\npush %rbp\nmov %rsp,%rbp\nincq sink(%rip)\npop %rbp\nret\n")
        FN(entry_nops, ".byte 0x90,0x90,0x90,0x90,0x90\nincq sink(%rip)\nret\n")
        FN(entry_endbr, "endbr64\nincq sink(%rip)\nret\n"));

void entry_push(void);
void entry_rip(void);
void entry_nop5(void);
void entry_endbr_push(void);
void entry_nops(void);
void entry_endbr(void);

static const struct {
    const char *name;
    void (*fn)(void);
} functions[] = {
    {"entry_push", entry_push}, {"entry_rip", entry_rip},
    {"entry_nop5", entry_nop5}, {"entry_endbr_push", entry_endbr_push},
    {"entry_nops", entry_nops}, {"entry_endbr", entry_endbr},
};

__attribute__((noinline)) void call_all(long n)
{
    for (long i = 0; i < n; i++) {
        entry_push();
        entry_rip();
        entry_nop5();
        entry_endbr_push();
        entry_nops();
        entry_endbr();
    }
}

static double now_ns(void)
{
    struct timespec ts;
    /* The thread's CPU time: a probe's trap or trampoline and its BPF
     * program run in this thread, in the kernel, so they count; time the
     * thread spends preempted on a loaded machine does not. */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1;
    if (argc > 2) {
        for (unsigned i = 0; i < sizeof functions / sizeof functions[0]; i++) {
            if (strcmp(functions[i].name, argv[2]) == 0) {
                void (*volatile fn)(void) = functions[i].fn;
                if (argc > 3 && strcmp(argv[3], "wait") == 0) {
                    char line[16];
                    printf("ready\n");
                    fflush(stdout);
                    if (!fgets(line, sizeof line, stdin))
                        return 3;
                }
                double t0 = now_ns();
                for (long k = 0; k < n; k++)
                    fn();
                printf("%.3f\n", (now_ns() - t0) / n);
                return 0;
            }
        }
        fprintf(stderr, "no function %s\n", argv[2]);
        return 2;
    }
    call_all(n);
    return 0;
}
