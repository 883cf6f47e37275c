//! Mangled or demangled names in the records, and probing by either name.

mod common;

use std::time::Duration;

use tracemerge_ebpf::demangle::NameStyle;
use tracemerge_ebpf::exact::Config;
use tracemerge_records::Record;

fn trace(config: Config, argv: Vec<std::ffi::OsString>) -> Vec<Record> {
    let (records, outcome) = common::trace(&config, argv, Duration::from_millis(200));
    assert_eq!(outcome.exit_code, 0);
    records
}

fn covered(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .find_map(|r| match r {
            Record::Coverage(c) if !c.symbols.is_empty() => Some(c.symbols.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn records_carry_mangled_or_demangled_names() {
    let Some(_guard) = common::bpf_or_skip("records_carry_mangled_or_demangled_names") else {
        return;
    };
    let dir = common::scratch("names");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/shop.c");
    let prog = dir.join("shop");
    common::cc(&src, &prog, &[]);
    let argv = vec![prog.clone().into(), "7".into()];
    // Asked for by demangled names, reported demangled.
    let mut config = Config::new(&prog);
    config.names = NameStyle::Demangled;
    config.functions = Some(vec![
        "shop::price(int)".into(),
        "shop::Cart::total() const".into(),
        "rust_crate::checkout".into(),
    ]);
    let records = trace(config, argv.clone());
    let got = common::edges(&records);
    assert_eq!(
        got.get(&("main".into(), "shop::price(int)".into())),
        Some(&7),
        "{got:?}"
    );
    assert_eq!(
        got.get(&(
            "shop::price(int)".into(),
            "shop::Cart::total() const".into()
        )),
        Some(&7),
        "{got:?}"
    );
    assert_eq!(
        got.get(&("main".into(), "rust_crate::checkout".into())),
        Some(&1),
        "{got:?}"
    );
    assert_eq!(
        covered(&records),
        [
            "rust_crate::checkout",
            "shop::Cart::total() const",
            "shop::price(int)"
        ]
    );
    // Asked for by symbol, reported as the symbol (the default).
    let mut config = Config::new(&prog);
    config.functions = Some(vec![
        "_ZN4shop5priceEi".into(),
        "_ZNK4shop4Cart5totalEv".into(),
    ]);
    let records = trace(config, argv);
    let got = common::edges(&records);
    assert_eq!(
        got.get(&("_ZN4shop5priceEi".into(), "_ZNK4shop4Cart5totalEv".into())),
        Some(&7),
        "{got:?}"
    );
    assert_eq!(
        covered(&records),
        ["_ZN4shop5priceEi", "_ZNK4shop4Cart5totalEv"]
    );
    common::assert_clean();
}
