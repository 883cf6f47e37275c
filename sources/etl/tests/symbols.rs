//! PDB symbols: the fixture tests/data/shop.pdb (built from shop.c beside
//! it) resolves RVAs to functions, is found by GUID/age in a symbol-server
//! layout, and turns edges into `module!function`.

mod common;

use std::path::PathBuf;

use common::*;
use tracemerge_etl::events::Guid;
use tracemerge_etl::kernel::DbgIdRsds;
use tracemerge_etl::symbols::{FunctionTable, SymbolDir};
use tracemerge_etl::{edges, EtlError, ImportOptions, Trace};
use tracemerge_records::Record;

const GUID: [u8; 16] = [
    185, 123, 91, 13, 68, 210, 142, 242, 76, 76, 68, 32, 80, 68, 66, 46,
];
const BASE: u64 = 0x1_4000_0000;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/shop.pdb")
}

fn id(guid: [u8; 16]) -> DbgIdRsds {
    DbgIdRsds {
        base: BASE,
        pid: 100,
        guid: Guid(guid),
        age: 1,
        pdb_file_name: r"C:\build\shop.pdb".into(),
    }
}

#[test]
fn functions_by_rva() {
    let t = FunctionTable::from_pdb(&fixture(), Some(&id(GUID))).unwrap();
    assert_eq!(t.lookup(0x1000), Some("checkout"));
    assert_eq!(t.lookup(0x100e), Some("checkout"));
    assert_eq!(
        t.lookup(0x100f),
        None,
        "checkout is 15 bytes; padding follows"
    );
    assert_eq!(t.lookup(0x1030), Some("cart_total"));
    assert_eq!(t.lookup(0x1065), Some("helper"));
    assert_eq!(t.lookup(0x1085), Some("mainCRTStartup"));
    assert_eq!(t.lookup(0x0fff), None);
}

#[test]
fn a_pdb_of_another_build_is_refused() {
    let mut other = GUID;
    other[0] ^= 1;
    match FunctionTable::from_pdb(&fixture(), Some(&id(other))) {
        Err(EtlError::Symbols { reason, .. }) => {
            assert!(reason.contains("does not match"), "{reason}")
        }
        r => panic!("{r:?}"),
    }
    let not_pdb = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/shop.c");
    assert!(matches!(
        FunctionTable::from_pdb(&not_pdb, None),
        Err(EtlError::Symbols { .. })
    ));
}

#[test]
fn import_names_functions_from_a_symbol_server_directory() {
    let dir = std::env::temp_dir().join(format!("tracemerge-etl-sym-{}", std::process::id()));
    let sub = dir.join("shop.pdb/0D5B7BB9D244F28E4C4C44205044422E1");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::copy(fixture(), sub.join("shop.pdb")).unwrap();
    assert_eq!(
        SymbolDir::new(&dir).candidates(&id(GUID))[0],
        sub.join("shop.pdb")
    );

    let t = QPC_START;
    let mut w = EtlWriter::new(8);
    let recs = vec![
        w.process(3, t + 1, 100, "shop.exe"),
        w.image(3, t + 2, BASE, 0x3000, 100, r"C:\app\shop.exe"),
        w.rsds(t + 2, BASE, 100, GUID, 1, r"C:\build\shop.pdb"),
        // checkout <- helper <- cart_total <- mainCRTStartup (return addresses)
        w.stack(
            t + 10,
            t + 10,
            100,
            1,
            &[BASE + 0x1005, BASE + 0x1066, BASE + 0x1031, BASE + 0x1085],
        ),
    ];
    w.buffer(0);
    for r in recs {
        w.push(r);
    }
    let trace = Trace::decode(&w.bytes()).unwrap();
    assert_eq!(trace.pdbs.len(), 1);
    let opts = ImportOptions {
        symbols: Some(dir.clone()),
        ..ImportOptions::default()
    };
    let mut symbols = SymbolDir::new(&dir);
    let imp = edges::edges(trace, "x.etl", &opts, Some(&mut symbols));
    let got: Vec<(String, String)> = imp
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Edge(e) => Some((e.caller.clone(), e.callee.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "shop.exe!cart_total".to_string(),
                "shop.exe!helper".to_string()
            ),
            (
                "shop.exe!helper".to_string(),
                "shop.exe!checkout".to_string()
            ),
            (
                "shop.exe!mainCRTStartup".to_string(),
                "shop.exe!cart_total".to_string()
            ),
        ]
    );
    assert_eq!(imp.stats.symbolized_frames, 4);
    assert_eq!(imp.stats.pdbs_loaded, 1);
    // Without the PDB the same edges name RVAs.
    std::fs::remove_dir_all(&dir).unwrap();
    let trace = Trace::decode(&w.bytes()).unwrap();
    let imp = edges::edges(trace, "x.etl", &ImportOptions::default(), None);
    assert!(imp
        .records
        .iter()
        .any(|r| matches!(r, Record::Edge(e) if e.callee == "shop.exe!+0x1005")));
}
