//! Stack assembly under the rules of Microsoft's TraceEvent library
//! (`TraceLog.cs`, the reference implementation), shared by the file
//! decoder and the real-time collector. Fragments must arrive in the order
//! they were logged (timestamp order).
//!
//! - One stack per stack-walked event (thread, event timestamp): its kernel
//!   fragment (a kernel key reference, or a full stack ending in kernel
//!   addresses) first, then its user fragment.
//! - Windows logs a thread's user-mode stack once, when the thread returns
//!   to user mode. Kernel fragments therefore wait, per thread, for the next
//!   user fragment of that thread, which joins every waiting one (and its own
//!   event); processes 0 and 4 never run user code and never wait. Fragments
//!   still waiting at the end stay kernel-only.
//! - A key reference resolves to the next definition of that key of the same
//!   kind: kernel and user keys are separate tables (a definition is a kernel
//!   one when its outermost frame is a kernel address).

use std::collections::HashMap;

use crate::kernel::{StackEvent, StackKeyDef, StackKeyRef};

/// Where an assembled stack came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackOrigin {
    /// Kernel StackWalk events (full stacks and/or stack keys).
    StackWalk,
    /// `EVENT_HEADER` extended data of a user-mode provider event.
    Inline,
}

/// One assembled call stack, innermost frame first.
#[derive(Clone, Debug)]
pub struct Stack {
    /// Timestamp of the event the stack belongs to (trace clock).
    pub timestamp: i64,
    pub pid: u32,
    pub tid: u32,
    pub frames: Vec<u64>,
    /// The kernel event (group, type) this stack was matched to, if found.
    pub event: Option<(u8, u8)>,
    pub origin: StackOrigin,
}

/// Lowest kernel-space address for a pointer size.
pub fn kernel_floor(pointer_size: u32) -> u64 {
    if pointer_size == 4 {
        0x8000_0000
    } else {
        0xffff_8000_0000_0000
    }
}

/// A part of a stack: not seen yet, waiting for its key's definition, or known.
#[derive(Clone, Debug, Default)]
enum Part {
    #[default]
    Missing,
    Key(u64),
    Frames(Vec<u64>),
}

/// The stack of one event while its parts come in (TraceEvent's `IncompleteStack`).
#[derive(Debug)]
struct Incomplete {
    tid: u32,
    pid: u32,
    event_ts: i64,
    kernel: Part,
    user: Part,
    /// On its thread's list of kernel fragments waiting for a user part.
    waiting: bool,
}

/// Counters of the assembly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssemblyCounts {
    /// User fragments that completed more than their own event.
    pub user_fragments_shared: u64,
    /// Kernel fragments that received the user part of another event.
    pub kernel_fragments_joined_later: u64,
    /// Kernel fragments still waiting at the end (kept kernel-only).
    pub kernel_only_at_end: u64,
    /// Fragments without frames.
    pub empty_fragments: u64,
}

/// Assembles stacks from StackWalk fragments given in logged order.
#[derive(Debug)]
pub struct StackAssembler {
    floor: u64,
    next_id: u64,
    open: HashMap<u64, Incomplete>,
    /// (thread, event timestamp) → open stack.
    by_event: HashMap<(u32, i64), u64>,
    kernel_keys: HashMap<u64, Vec<u64>>,
    user_keys: HashMap<u64, Vec<u64>>,
    /// Per thread: kernel fragments waiting for the thread's next user fragment.
    waiting: HashMap<u32, Vec<u64>>,
    /// Per thread: when a user fragment last completed the waiting list; a
    /// later full user stack for an earlier event is stale.
    last_exit: HashMap<u32, i64>,
    ready: Vec<Stack>,
    pub counts: AssemblyCounts,
}

impl StackAssembler {
    pub fn new(pointer_size: u32) -> StackAssembler {
        StackAssembler {
            floor: kernel_floor(pointer_size),
            next_id: 0,
            open: HashMap::new(),
            by_event: HashMap::new(),
            kernel_keys: HashMap::new(),
            user_keys: HashMap::new(),
            waiting: HashMap::new(),
            last_exit: HashMap::new(),
            ready: Vec::new(),
            counts: AssemblyCounts::default(),
        }
    }

    fn is_kernel(&self, addr: u64) -> bool {
        addr >= self.floor
    }

    /// The open stack of an event, created on its first fragment.
    fn slot(&mut self, tid: u32, pid: u32, event_ts: i64) -> u64 {
        if let Some(&id) = self.by_event.get(&(tid, event_ts)) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(
            id,
            Incomplete {
                tid,
                pid,
                event_ts,
                kernel: Part::Missing,
                user: Part::Missing,
                waiting: false,
            },
        );
        self.by_event.insert((tid, event_ts), id);
        id
    }

    /// A full stack (StackWalk type 32).
    pub fn full_stack(&mut self, s: StackEvent) {
        let (Some(&first), Some(&last)) = (s.frames.first(), s.frames.last()) else {
            self.counts.empty_fragments += 1;
            return;
        };
        let id = self.slot(s.tid, s.pid, s.event_timestamp);
        if self.is_kernel(last) {
            self.kernel_fragment(id, Part::Frames(s.frames));
            return;
        }
        // Ends in user mode. Starting in user mode too, it is the stack the
        // thread logged on its return to user mode: it completes every
        // kernel fragment waiting on the thread.
        let previous_exit = self.last_exit.get(&s.tid).copied();
        let mut own_done = false;
        if !self.is_kernel(first) {
            own_done = self.leave_kernel(s.tid, id, &Part::Frames(s.frames.clone()));
            self.last_exit.insert(s.tid, s.event_timestamp);
        }
        if own_done {
            return;
        }
        if previous_exit.is_some_and(|t| s.event_timestamp < t) {
            // A user part for an event the thread had already left the
            // kernel after: TraceEvent ignores it.
            self.drop_if_empty(id);
            return;
        }
        self.user_fragment(id, Part::Frames(s.frames));
    }

    /// A key reference (StackWalk types 37 kernel, 38 user).
    pub fn key_ref(&mut self, r: StackKeyRef) {
        let id = self.slot(r.tid, r.pid, r.event_timestamp);
        if r.kernel {
            self.kernel_fragment(id, Part::Key(r.key));
        } else if !self.leave_kernel(r.tid, id, &Part::Key(r.key)) {
            self.user_fragment(id, Part::Key(r.key));
        }
    }

    /// A key definition (types 34/35/36): every reference waiting in the
    /// table of its kind gets its frames; the table entry is then gone.
    pub fn key_def(&mut self, d: StackKeyDef) {
        let Some(&last) = d.frames.last() else {
            self.counts.empty_fragments += 1;
            return;
        };
        let kernel = self.is_kernel(last);
        let table = if kernel {
            &mut self.kernel_keys
        } else {
            &mut self.user_keys
        };
        let Some(ids) = table.remove(&d.key) else {
            return;
        };
        for id in ids {
            let Some(st) = self.open.get_mut(&id) else {
                continue;
            };
            let part = if kernel { &mut st.kernel } else { &mut st.user };
            if matches!(part, Part::Key(k) if *k == d.key) {
                *part = Part::Frames(d.frames.clone());
                self.emit_if_ready(id);
            }
        }
    }

    fn kernel_fragment(&mut self, id: u64, part: Part) {
        let Some(st) = self.open.get_mut(&id) else {
            return;
        };
        if !matches!(st.kernel, Part::Missing) {
            // Two kernel fragments for one event: keep the first.
            return;
        }
        if let Part::Key(k) = part {
            self.kernel_keys.entry(k).or_default().push(id);
        }
        st.kernel = part;
        if st.pid == 0 || st.pid == 4 {
            // The idle and System processes never have a user part.
            if matches!(st.user, Part::Missing) {
                st.user = Part::Frames(Vec::new());
            }
        } else if matches!(st.user, Part::Missing) && !st.waiting {
            st.waiting = true;
            self.waiting.entry(st.tid).or_default().push(id);
        }
        self.emit_if_ready(id);
    }

    fn user_fragment(&mut self, id: u64, part: Part) {
        let Some(st) = self.open.get_mut(&id) else {
            return;
        };
        if !matches!(st.user, Part::Missing) {
            return;
        }
        if let Part::Key(k) = part {
            self.user_keys.entry(k).or_default().push(id);
        }
        st.user = part;
        self.emit_if_ready(id);
    }

    /// The thread returned to user mode with stack `user`: it completes
    /// every kernel fragment waiting on it. True when `own` was among them.
    fn leave_kernel(&mut self, tid: u32, own: u64, user: &Part) -> bool {
        let Some(list) = self.waiting.remove(&tid) else {
            return false;
        };
        let mut own_done = false;
        for &id in &list {
            if let Some(st) = self.open.get_mut(&id) {
                st.waiting = false;
            }
            if id == own {
                own_done = true;
            } else {
                self.counts.kernel_fragments_joined_later += 1;
            }
            self.user_fragment(id, user.clone());
        }
        if list.iter().any(|&id| id != own) {
            self.counts.user_fragments_shared += 1;
        }
        own_done
    }

    /// Emits the stack of `id` once its user part and (when it has one)
    /// its kernel part are known.
    fn emit_if_ready(&mut self, id: u64) {
        let Some(st) = self.open.get(&id) else {
            return;
        };
        let Part::Frames(user) = &st.user else {
            return;
        };
        let kernel: &[u64] = match &st.kernel {
            Part::Missing => &[],
            Part::Key(_) => return,
            Part::Frames(f) => f,
        };
        let frames: Vec<u64> = kernel.iter().chain(user).copied().collect();
        let st = self.open.remove(&id).expect("open stack");
        self.by_event.remove(&(st.tid, st.event_ts));
        if !frames.is_empty() {
            self.ready.push(Stack {
                timestamp: st.event_ts,
                pid: st.pid,
                tid: st.tid,
                frames,
                event: None,
                origin: StackOrigin::StackWalk,
            });
        }
    }

    /// Forgets a stack that received nothing.
    fn drop_if_empty(&mut self, id: u64) {
        if let Some(st) = self.open.get(&id) {
            if matches!((&st.kernel, &st.user), (Part::Missing, Part::Missing)) {
                let st = self.open.remove(&id).expect("open stack");
                self.by_event.remove(&(st.tid, st.event_ts));
            }
        }
    }

    /// Stacks completed since the last call, in completion order.
    pub fn take_ready(&mut self) -> Vec<Stack> {
        std::mem::take(&mut self.ready)
    }

    /// The oldest event timestamp of a stack still being assembled: no stack
    /// for an earlier event can come out any more.
    pub fn oldest_open(&self) -> Option<i64> {
        self.oldest_open_since(i64::MIN)
    }

    /// [`StackAssembler::oldest_open`] among the events at or after `since`.
    pub fn oldest_open_since(&self, since: i64) -> Option<i64> {
        self.open
            .values()
            .map(|s| s.event_ts)
            .filter(|&t| t >= since)
            .min()
    }

    /// End of the trace: kernel fragments still waiting stay kernel-only.
    /// Returns how many key references never met a definition of their kind.
    pub fn finish(&mut self) -> u64 {
        let lists: Vec<Vec<u64>> = self.waiting.drain().map(|(_, v)| v).collect();
        for id in lists.into_iter().flatten() {
            if let Some(st) = self.open.get_mut(&id) {
                st.waiting = false;
                if matches!(st.user, Part::Missing) {
                    st.user = Part::Frames(Vec::new());
                    self.counts.kernel_only_at_end += 1;
                }
            }
            self.emit_if_ready(id);
        }
        let unresolved = self
            .kernel_keys
            .values()
            .chain(self.user_keys.values())
            .flatten()
            .filter(|id| self.open.contains_key(id))
            .count() as u64;
        self.kernel_keys.clear();
        self.user_keys.clear();
        self.open.clear();
        self.by_event.clear();
        unresolved
    }
}
