// SPDX-License-Identifier: MIT OR GPL-2.0
//
// Kernel side of the tracemerge eBPF collector (x86_64).
//
// Two programs share one object:
//   tm_exact   entry uprobe (attached with uprobe_multi): counts
//              (tgid, callee cookie, return address) in a kernel hash map.
//   tm_sample  perf-event CPU sampler: counts (tgid, user stack id).
//
// Exact counts are lossless by construction: a counter only ever grows
// (atomic add) and user space never deletes a key that a program may still
// increment; it reads the counters and reports the growth since its last
// read. A preempted program that increments after a read is seen by the next
// one. Keys go only once their process is gone.
//
// The sampling maps exist twice; `ctl[0]` selects the active copy. User
// space flips it, waits briefly for in-flight programs and then drains the
// idle copy (samples are estimates; a late one may be lost).
//
// Deliberately self-contained (no kernel or libbpf headers) so that the
// committed object regenerates byte for byte from this file with clang alone.
// Maps use the legacy `maps` section layout; the object carries no BTF.

typedef unsigned char u8;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))

// Map types, flags and error numbers of the kernel ABI.
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_STACK_TRACE 7
#define BPF_NOEXIST 1
#define BPF_F_USER_STACK (1ULL << 8)
#define E2BIG 7
#define EEXIST 17
#define EFAULT 14
#define MAX_STACK_DEPTH 127

// Helper ids of the kernel ABI (include/uapi/linux/bpf.h).
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static long (*bpf_get_stackid)(void *ctx, void *map, u64 flags) = (void *)27;
static long (*bpf_probe_read_user)(void *dst, u32 size, const void *src) = (void *)112;
static long (*bpf_send_signal_thread)(u32 sig) = (void *)117;
static u64 (*bpf_get_attach_cookie)(void *ctx) = (void *)174;

// x86_64 `struct pt_regs` as the kernel hands it to uprobe programs.
struct pt_regs {
    u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

// A perf-event program's context starts with the user-visible registers.
struct perf_event_ctx {
    struct pt_regs regs;
    u64 sample_period;
    u64 addr;
};

// Layout of a legacy map definition as aya reads it.
struct map_def {
    u32 type;
    u32 key_size;
    u32 value_size;
    u32 max_entries;
    u32 flags;
};

// Must match `ExactKey` in src/kernel.rs.
struct exact_key {
    u32 tgid;
    u32 pad;
    u64 cookie;  // index of the callee in the attach list
    u64 ret;     // return address: the call site in the caller
};

// Must match `SampleKey` in src/kernel.rs.
struct sample_key {
    u32 tgid;
    u32 stack_id;
};

// ctl[0]: active sampling buffer (0 or 1); ctl[1]: tgid to sample (0 = every
// process); ctl[2]: the exact-mode link generation that counts; ctl[3]: a
// one-shot signal for a new edge, `signal << 32 | thread id` (0: none); ctl[4]:
// new edges (first sightings of an exact key) so far.
#define CTL_GENERATION 2
#define CTL_NEW_EDGE_SIGNAL 3
#define CTL_NEW_EDGES 4
SEC("maps") struct map_def ctl = {BPF_MAP_TYPE_ARRAY, 4, 8, 8, 0};

SEC("maps") struct map_def exact = {BPF_MAP_TYPE_HASH, sizeof(struct exact_key), 8, 65536, 0};

SEC("maps") struct map_def sample0 = {BPF_MAP_TYPE_HASH, sizeof(struct sample_key), 8, 16384, 0};
SEC("maps") struct map_def sample1 = {BPF_MAP_TYPE_HASH, sizeof(struct sample_key), 8, 16384, 0};
SEC("maps") struct map_def stacks0 = {BPF_MAP_TYPE_STACK_TRACE, 4, MAX_STACK_DEPTH * 8, 16384, 0};
SEC("maps") struct map_def stacks1 = {BPF_MAP_TYPE_STACK_TRACE, 4, MAX_STACK_DEPTH * 8, 16384, 0};

// Loss counters, one slot per cause (must match `Kernel::losses` in src/kernel.rs).
#define LOSS_EXACT_MAP_FULL 0
#define LOSS_EXACT_NO_RETURN_ADDRESS 1
#define LOSS_SAMPLE_MAP_FULL 2
#define LOSS_SAMPLE_STACK_COLLISION 3
#define LOSS_SAMPLE_NO_USER_STACK 4
#define LOSS_SLOTS 8
SEC("maps") struct map_def losses = {BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, LOSS_SLOTS, 0};

INLINE void count_loss(u32 slot)
{
    u64 *n = bpf_map_lookup_elem(&losses, &slot);
    if (n)
        *n += 1; // per-CPU slot: no atomic needed
}

INLINE u32 active_buffer(void)
{
    u32 zero = 0;
    u64 *active = bpf_map_lookup_elem(&ctl, &zero);
    return active && (*active & 1);
}

#define BUMP_NEW 1

// Adds one to `key` in `map`; returns BUMP_NEW when this call inserted the
// key, 0 when it existed, negative when the map is full.
INLINE long bump(void *map, const void *key)
{
    u64 *n = bpf_map_lookup_elem(map, key);
    if (n) {
        __sync_fetch_and_add(n, 1);
        return 0;
    }
    u64 one = 1;
    long err = bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
    if (err == 0)
        return BUMP_NEW;
    if (err == -EEXIST) {
        // Another CPU inserted the key meanwhile.
        n = bpf_map_lookup_elem(map, key);
        if (n) {
            __sync_fetch_and_add(n, 1);
            return 0;
        }
    }
    return err;
}

// A new edge (first sighting of its key): counted in ctl[4]; and if user
// space armed ctl[3] for this thread, the signal goes to it, once (the
// program that takes the armed value sends it). The thread stops at its
// return to user space, before the callee's first instruction: a tracer can
// put more probes in before the program goes on.
INLINE void new_edge(u64 pid_tgid)
{
    u32 slot = CTL_NEW_EDGES;
    u64 *edges = bpf_map_lookup_elem(&ctl, &slot);
    if (edges)
        __sync_fetch_and_add(edges, 1);
    slot = CTL_NEW_EDGE_SIGNAL;
    u64 *armed = bpf_map_lookup_elem(&ctl, &slot);
    if (!armed)
        return;
    u64 want = *armed;
    if (want == 0 || (u32)want != (u32)pid_tgid)
        return;
    if (__sync_val_compare_and_swap(armed, want, 0) == want)
        bpf_send_signal_thread((u32)(want >> 32));
}

// Entry uprobe: the callee is the attach cookie's low half, the caller the
// return address at the stack pointer (nothing has been pushed yet at
// entry). The cookie's high half is the generation of its link: when a
// budget rebuilds the link, old and new overlap for a moment, and only the
// generation in ctl[2] counts, so a call is counted once.
SEC("uprobe/tm_exact")
int tm_exact(struct pt_regs *ctx)
{
    u64 cookie = bpf_get_attach_cookie(ctx);
    u32 generation_slot = CTL_GENERATION;
    u64 *generation = bpf_map_lookup_elem(&ctl, &generation_slot);
    if (generation && (cookie >> 32) != *generation)
        return 0;
    struct exact_key key = {};
    u64 pid_tgid = bpf_get_current_pid_tgid();
    key.tgid = pid_tgid >> 32;
    key.cookie = cookie & 0xffffffff;
    if (bpf_probe_read_user(&key.ret, sizeof(key.ret), (const void *)ctx->sp) != 0) {
        count_loss(LOSS_EXACT_NO_RETURN_ADDRESS);
        key.ret = 0;
    }
    long err = bump(&exact, &key);
    if (err == BUMP_NEW)
        new_edge(pid_tgid);
    else if (err)
        count_loss(LOSS_EXACT_MAP_FULL);
    return 0;
}

// CPU sampler: one user stack per sample, frame-pointer walked by the kernel.
SEC("perf_event")
int tm_sample(struct perf_event_ctx *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (tgid == 0)
        return 0; // idle
    u32 one = 1;
    u64 *want = bpf_map_lookup_elem(&ctl, &one);
    if (want && *want && *want != tgid)
        return 0;
    u32 buffer = active_buffer();
    long id = buffer ? bpf_get_stackid(ctx, &stacks1, BPF_F_USER_STACK)
                     : bpf_get_stackid(ctx, &stacks0, BPF_F_USER_STACK);
    if (id < 0) {
        count_loss(id == -EEXIST ? LOSS_SAMPLE_STACK_COLLISION : LOSS_SAMPLE_NO_USER_STACK);
        return 0;
    }
    struct sample_key key = {tgid, (u32)id};
    long err = buffer ? bump(&sample1, &key) : bump(&sample0, &key);
    if (err < 0)
        count_loss(LOSS_SAMPLE_MAP_FULL);
    return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
