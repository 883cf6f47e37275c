//! [`HashDedup`]: the ingest ceiling.

use tracemerge_records::{Config, Record, Time};

use super::{EdgeKey, FxSet, Interner, Window};

/// What [`HashDedup`] holds at the end, to check it against the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupSummary {
    pub live_edges: u64,
    pub hits: u64,
    pub in_static: u64,
}

/// The ingest ceiling: a hand-written hash-map dedup of the record stream
/// with the engine's window semantics (lateness, ttl expiry at each
/// watermark, per-edge hits, first/last seen and distinct sources, whether
/// the edge is static), and none of its closures.
pub struct HashDedup {
    lateness: Time,
    watermark: Option<Time>,
    strings: Interner,
    sources: Interner,
    statics: FxSet<EdgeKey>,
    window: Window,
    pub late: u64,
}

impl HashDedup {
    pub fn new(config: &Config) -> Self {
        HashDedup {
            lateness: config.lateness,
            watermark: None,
            strings: Interner::default(),
            sources: Interner::default(),
            statics: FxSet::default(),
            window: Window::new(config.ttl),
            late: 0,
        }
    }

    pub fn push(&mut self, record: Record) {
        if let Record::Watermark { at } = record {
            if self.watermark.is_none_or(|w| at > w) {
                self.watermark = Some(at);
                self.window.expire(at);
            }
            return;
        }
        let frontier = self.watermark.unwrap_or(0).saturating_sub(self.lateness);
        if record.time() < frontier {
            self.late += 1;
            return;
        }
        match record {
            Record::Edge(e) => {
                let key = (
                    self.strings.intern(&e.artifact),
                    self.strings.intern(&e.caller),
                    self.strings.intern(&e.callee),
                );
                let source = self.sources.intern(&e.source);
                self.window.edge(key, e.at, e.hits, source);
            }
            Record::Hit(h) => {
                let key = (
                    self.strings.intern(&h.artifact),
                    self.strings.intern(&h.symbol),
                );
                self.window.hit(key, h.at);
            }
            Record::Coverage(c) => {
                let artifact = self.strings.intern(&c.artifact);
                for s in &c.symbols {
                    let key = (artifact, self.strings.intern(s));
                    self.window.coverage(key, c.from, c.to);
                }
            }
            Record::Graph(g) => {
                let artifact = self.strings.intern(&g.artifact);
                self.statics.retain(|k| k.0 != artifact);
                for e in &g.edges {
                    let key = (
                        artifact,
                        self.strings.intern(&e.caller),
                        self.strings.intern(&e.callee),
                    );
                    self.statics.insert(key);
                }
            }
            Record::Targets(_) | Record::Watermark { .. } => {}
        }
    }

    pub fn summary(&self) -> DedupSummary {
        let mut s = DedupSummary::default();
        for e in self.window.edges() {
            s.live_edges += 1;
            s.hits += e.hits;
            s.in_static += self.statics.contains(&e.key) as u64;
        }
        s
    }
}
