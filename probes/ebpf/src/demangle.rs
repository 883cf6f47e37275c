//! Demangled function names (C++ Itanium ABI, Rust legacy and v0), and the
//! choice of which name the records carry.
//!
//! Static call graphs of C++ and Rust code name functions either way (LLVM's
//! call graph and most linkers' maps use the mangled symbol, source-level
//! analysers the demangled one), so the records carry the mangled symbol
//! unless asked otherwise; the probed-function list accepts both.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Which name of a function the records carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameStyle {
    /// The symbol as in the ELF file (`_ZN3foo3barEv`).
    #[default]
    Mangled,
    /// Its demangled form (`foo::bar()`; Rust paths without the hash).
    Demangled,
}

/// A name style that is neither `mangled` nor `demangled`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown name style {0:?} (mangled or demangled)")]
pub struct UnknownNameStyle(pub String);

impl FromStr for NameStyle {
    type Err = UnknownNameStyle;
    fn from_str(s: &str) -> Result<NameStyle, UnknownNameStyle> {
        match s {
            "mangled" => Ok(NameStyle::Mangled),
            "demangled" => Ok(NameStyle::Demangled),
            other => Err(UnknownNameStyle(other.to_string())),
        }
    }
}

impl fmt::Display for NameStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameStyle::Mangled => "mangled",
            NameStyle::Demangled => "demangled",
        })
    }
}

/// The demangled form of `symbol`, or `None` when it is not a mangled C++ or
/// Rust name (a C function, say).
pub fn demangle(symbol: &str) -> Option<String> {
    // Rust first: a legacy Rust symbol is also a valid C++ name, but only
    // the Rust demangler drops its hash.
    if let Ok(d) = rustc_demangle::try_demangle(symbol) {
        return Some(format!("{d:#}"));
    }
    if symbol.starts_with("_Z") {
        let parsed = cpp_demangle::Symbol::new(symbol.as_bytes()).ok()?;
        return parsed.demangle().ok();
    }
    None
}

/// Names in the chosen style, each symbol demangled once.
#[derive(Debug, Default)]
pub struct Namer {
    style: NameStyle,
    cache: HashMap<String, String>,
}

impl Namer {
    pub fn new(style: NameStyle) -> Namer {
        Namer {
            style,
            cache: HashMap::new(),
        }
    }

    pub fn style(&self) -> NameStyle {
        self.style
    }

    /// `symbol` in the chosen style (itself when it is not mangled).
    pub fn name(&mut self, symbol: &str) -> String {
        match self.style {
            NameStyle::Mangled => symbol.to_string(),
            NameStyle::Demangled => {
                if let Some(d) = self.cache.get(symbol) {
                    return d.clone();
                }
                let d = demangle(symbol).unwrap_or_else(|| symbol.to_string());
                self.cache.insert(symbol.to_string(), d.clone());
                d
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_cpp_and_both_rust_schemes() {
        assert_eq!(
            demangle("_ZN9wikipedia7article6formatEv").as_deref(),
            Some("wikipedia::article::format()")
        );
        assert_eq!(
            demangle("_ZNSt6vectorIiSaIiEE9push_backERKi").as_deref(),
            Some("std::vector<int, std::allocator<int> >::push_back(int const&)")
        );
        // Rust legacy: the hash goes.
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE").as_deref(),
            Some("core::fmt::write")
        );
        // Rust v0.
        assert_eq!(
            demangle("_RNvCs1234_7mycrate3foo").as_deref(),
            Some("mycrate::foo")
        );
        // C names and garbage stay as they are.
        assert_eq!(demangle("luaV_execute"), None);
        assert_eq!(demangle("_Zgarbage"), None);
    }

    #[test]
    fn namer_keeps_mangled_by_default_and_demangles_on_request() {
        let mut mangled = Namer::default();
        assert_eq!(mangled.name("_ZN3foo3barEv"), "_ZN3foo3barEv");
        let mut demangled = Namer::new("demangled".parse().unwrap());
        assert_eq!(demangled.name("_ZN3foo3barEv"), "foo::bar()");
        assert_eq!(demangled.name("_ZN3foo3barEv"), "foo::bar()");
        assert_eq!(demangled.name("main"), "main");
        assert_eq!(
            "both".parse::<NameStyle>(),
            Err(UnknownNameStyle("both".into()))
        );
    }
}
