//! The engine's input items: whole records, or sightings in the compact
//! form a replay log decodes to, whose names are indices into a table that
//! the stream defines as it goes.
//!
//! A replay log already stores each name once and refers to it by index.
//! Handing its sightings on in that form lets the engine map an index to
//! its own id with one table lookup, where a [`Record`] would cost four
//! strings to allocate, hash, compare and free. [`Compactor`] gives a
//! batch of parsed records the same form (the NDJSON parsers do, on their
//! threads); [`Expander`] turns it back into records for readers that want
//! those.

use rustc_hash::FxHashMap;

use crate::record::{EdgeLine, EdgeObservation, HitObservation, Record, RecordError, Time};

/// An index into the current name table of a stream.
pub type NameIndex = u32;

/// One item of a record stream as the engine takes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Boxed: items move through several iterators on their way to the
    /// engine, and a record is large (a snapshot's fields inline).
    Record(Box<Record>),
    /// Defines the names at indices `first`, `first + 1`, … of the stream's
    /// table, dropping any at or after `first`: 0 starts a new table (the
    /// next log of a concatenation, or the next file). The sightings that
    /// follow refer to them. Not a record.
    Names {
        first: NameIndex,
        names: Vec<String>,
    },
    /// An `edge` or `hit` record whose names are table indices.
    Sighting(IndexedSighting),
}

/// An `edge` or `hit` record with its names as indices into the stream's
/// name table (see [`Input::Names`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedSighting {
    pub what: Sighted,
    pub artifact: NameIndex,
    pub at: Time,
    pub hits: u64,
    pub source: NameIndex,
    pub event_id: Option<String>,
    pub estimated: bool,
}

/// What an [`IndexedSighting`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sighted {
    Edge {
        caller: NameIndex,
        callee: NameIndex,
    },
    Hit {
        symbol: NameIndex,
    },
}

impl Input {
    /// The event time of a record or sighting; none for names.
    pub fn time(&self) -> Option<Time> {
        match self {
            Input::Record(r) => Some(r.time()),
            Input::Names { .. } => None,
            Input::Sighting(s) => Some(s.at),
        }
    }
}

impl From<Record> for Input {
    fn from(record: Record) -> Input {
        Input::Record(Box::new(record))
    }
}

/// Turns a stream of [`Input`]s back into records: keeps the name table
/// that [`Input::Names`] items define.
#[derive(Debug, Default)]
pub struct Expander {
    names: Vec<String>,
}

impl Expander {
    pub fn new() -> Self {
        Self::default()
    }

    /// The record of `input`; none for names, which only extend the table.
    ///
    /// # Panics
    /// If a sighting refers to a name its stream has not defined: a
    /// producer of compact input must check every index it hands out (the
    /// replay-log reader rejects such a block as damaged).
    pub fn expand(&mut self, input: Input) -> Option<Record> {
        match input {
            Input::Record(record) => Some(*record),
            Input::Names { first, names } => {
                self.names.truncate(first as usize);
                self.names.extend(names);
                None
            }
            Input::Sighting(s) => {
                let name = |i: NameIndex| self.names[i as usize].clone();
                Some(match s.what {
                    Sighted::Edge { caller, callee } => Record::Edge(EdgeObservation {
                        artifact: name(s.artifact),
                        caller: name(caller),
                        callee: name(callee),
                        at: s.at,
                        hits: s.hits,
                        source: name(s.source),
                        event_id: s.event_id,
                        estimated: s.estimated,
                    }),
                    Sighted::Hit { symbol } => Record::Hit(HitObservation {
                        artifact: name(s.artifact),
                        symbol: name(symbol),
                        at: s.at,
                        hits: s.hits,
                        source: name(s.source),
                        event_id: s.event_id,
                        estimated: s.estimated,
                    }),
                })
            }
        }
    }
}

/// Builds the compact form of a batch of records: each distinct name of
/// its sightings gets an index in a table of the batch's own, which
/// [`Compactor::names`] hands out to go before them.
#[derive(Debug, Default)]
pub struct Compactor {
    index: FxHashMap<String, NameIndex>,
}

impl Compactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// `record` as an input: an `edge` or `hit` as an [`IndexedSighting`]
    /// into this batch's table, anything else whole.
    pub fn compact(&mut self, record: Record) -> Input {
        let sighting = match record {
            Record::Edge(e) => IndexedSighting {
                artifact: self.name(e.artifact),
                what: Sighted::Edge {
                    caller: self.name(e.caller),
                    callee: self.name(e.callee),
                },
                at: e.at,
                hits: e.hits,
                source: self.name(e.source),
                event_id: e.event_id,
                estimated: e.estimated,
            },
            Record::Hit(h) => IndexedSighting {
                artifact: self.name(h.artifact),
                what: Sighted::Hit {
                    symbol: self.name(h.symbol),
                },
                at: h.at,
                hits: h.hits,
                source: self.name(h.source),
                event_id: h.event_id,
                estimated: h.estimated,
            },
            other => return Input::from(other),
        };
        Input::Sighting(sighting)
    }

    /// One NDJSON line as an input: what `compact(Record::from_json(line)?)`
    /// gives, but an `edge` line's names are looked up in the table as
    /// they stand in the line, and only a name new to the batch is copied
    /// (most lines of a stream are edges, most of their names repeats).
    pub fn compact_json(&mut self, line: &str) -> Result<Input, RecordError> {
        let Some(e) = EdgeLine::parse(line) else {
            return Record::from_json_general(line).map(|record| self.compact(record));
        };
        Ok(Input::Sighting(IndexedSighting {
            artifact: self.name_of(&e.artifact),
            what: Sighted::Edge {
                caller: self.name_of(&e.caller),
                callee: self.name_of(&e.callee),
            },
            at: e.at,
            hits: e.hits,
            source: self.name_of(&e.source),
            event_id: e.event_id,
            estimated: e.estimated,
        }))
    }

    /// [`Compactor::name`] of a borrowed name: copied only if new.
    fn name_of(&mut self, name: &str) -> NameIndex {
        match self.index.get(name) {
            Some(&i) => i,
            None => self.name(name.to_owned()),
        }
    }

    fn name(&mut self, name: String) -> NameIndex {
        let next = self.index.len();
        *self.index.entry(name).or_insert_with(|| {
            NameIndex::try_from(next).expect("fewer than 2^32 names in one batch")
        })
    }

    /// The batch's table, as the item that starts it (`first` 0); the
    /// compactor starts a new batch.
    pub fn names(&mut self) -> Input {
        let mut names = vec![String::new(); self.index.len()];
        for (name, i) in self.index.drain() {
            names[i as usize] = name;
        }
        Input::Names { first: 0, names }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(first: NameIndex, names: &[&str]) -> Input {
        Input::Names {
            first,
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn edge(caller: NameIndex, callee: NameIndex) -> Input {
        Input::Sighting(IndexedSighting {
            what: Sighted::Edge { caller, callee },
            artifact: 0,
            at: 5,
            hits: 2,
            source: 1,
            event_id: None,
            estimated: false,
        })
    }

    #[test]
    fn names_extend_the_table_and_zero_starts_a_new_one() {
        let mut expander = Expander::new();
        assert_eq!(expander.expand(names(0, &["app", "src", "f"])), None);
        assert_eq!(expander.expand(names(3, &["g"])), None);
        let Some(Record::Edge(e)) = expander.expand(edge(2, 3)) else {
            panic!("an edge")
        };
        assert_eq!(
            (e.artifact.as_str(), e.caller.as_str(), e.callee.as_str()),
            ("app", "f", "g")
        );
        assert_eq!((e.source.as_str(), e.at, e.hits), ("src", 5, 2));
        // The next log: index 2 now names something else.
        expander.expand(names(0, &["lib", "s2", "h", "k"]));
        let Some(Record::Edge(e)) = expander.expand(edge(2, 3)) else {
            panic!("an edge")
        };
        assert_eq!((e.artifact.as_str(), e.caller.as_str()), ("lib", "h"));
        assert_eq!(edge(2, 3).time(), Some(5));
        assert_eq!(names(0, &[]).time(), None);
    }

    #[test]
    fn compacting_then_expanding_gives_the_records_back() {
        let edge = |artifact: &str, caller: &str, callee: &str, at| {
            Record::Edge(EdgeObservation {
                artifact: artifact.into(),
                caller: caller.into(),
                callee: callee.into(),
                at,
                hits: at + 1,
                source: format!("s{}", at % 2),
                event_id: (at % 3 == 0).then(|| format!("e{at}")),
                estimated: at % 4 == 0,
            })
        };
        let hit = Record::Hit(HitObservation {
            artifact: "app".into(),
            symbol: "f".into(),
            at: 9,
            hits: 3,
            source: String::new(),
            event_id: None,
            estimated: false,
        });
        let batches = vec![
            vec![
                edge("app", "f", "g", 1),
                hit.clone(),
                Record::Watermark { at: 9 },
            ],
            vec![edge("lib", "g", "g", 12), edge("app", "h", "f", 13)],
        ];
        // One compactor for both batches: `names` starts the next one.
        let (mut compactor, mut expander) = (Compactor::new(), Expander::new());
        for batch in batches {
            let inputs: Vec<Input> = batch
                .iter()
                .cloned()
                .map(|r| compactor.compact(r))
                .collect();
            assert!(inputs.iter().any(|i| matches!(i, Input::Sighting(_))));
            let Input::Names { first: 0, names } = compactor.names() else {
                panic!("a new table")
            };
            let mut distinct = names.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), names.len(), "each name once: {names:?}");
            expander.expand(Input::Names { first: 0, names });
            let back: Vec<Record> = inputs
                .into_iter()
                .filter_map(|i| expander.expand(i))
                .collect();
            assert_eq!(back, batch);
        }
    }

    /// A line compacts to what its record compacts to, whether its names
    /// are borrowed from the line or need unescaping, and a bad line fails
    /// with the record's own error.
    #[test]
    fn a_line_compacts_as_its_record_does() {
        let lines = [
            r#"{"type":"edge","artifact":"app","caller":"f","callee":"g","at":5,"hits":2,"source":"h"}"#,
            r#"{"type":"edge","artifact":"app","caller":"f","callee":"g","at":6}"#,
            r#"{"at":7,"callee":"f","caller":"g\"\u00e9\n","artifact":"app","type":"edge","x":[1]}"#,
            r#"{"type":"edge","artifact":"lib","caller":"f","callee":"f","at":8,"event_id":"e\\1","estimated":true}"#,
            r#"{"type":"hit","artifact":"app","symbol":"f","at":9}"#,
            r#"{"type":"watermark","at":9}"#,
            r#"{"type":"edge","artifact":"app","caller":"f","callee":"g","at":5,"hits":0}"#,
            r#"{"type":"edge","artifact":"app","caller":"f","at":5}"#,
            r#"{"type":"edge","artifact":"app","caller":"f","caller":"g","callee":"g","at":5}"#,
            r#"{"type":"edge","artifact":"app","caller":"f","callee":"g","at":1e3}"#,
            "not json",
        ];
        let mut compactor = Compactor::new();
        let inputs: Vec<_> = lines.iter().map(|l| compactor.compact_json(l)).collect();
        let mut expander = Expander::new();
        expander.expand(compactor.names());
        let mut accepted = 0;
        for (line, input) in lines.iter().zip(inputs) {
            match (input, Record::from_json(line)) {
                (Ok(input), Ok(record)) => {
                    accepted += 1;
                    assert_eq!(expander.expand(input), Some(record), "{line}");
                }
                (Err(got), Err(want)) => assert_eq!(got, want, "{line}"),
                (got, want) => panic!("{line}: {got:?} where the record gives {want:?}"),
            }
        }
        assert_eq!(accepted, 6);
    }
}
