//! PyCG's call graph JSON: `{"caller": ["callee", …], …}`, every key a
//! function or module (dotted name), every value its callees. A key's
//! module is its name up to the last dot.

use std::collections::BTreeMap;
use std::io::BufRead;

use super::{ImportError, ProgramGraph};

pub(crate) fn read(
    graph: &mut ProgramGraph,
    file: &str,
    reader: impl BufRead,
) -> Result<(), ImportError> {
    let calls: BTreeMap<String, Vec<String>> = serde_json::from_reader(reader).map_err(|e| {
        ImportError::new(
            file,
            e.line() as u64,
            format!(
                "not a PyCG call graph ({}): expected {{\"caller\": [\"callee\", …]}}",
                crate::clean_json_message(&e.to_string())
            ),
        )
    })?;
    let module = |name: &str| name.rsplit_once('.').map(|(m, _)| m.to_string());
    for (caller, callees) in &calls {
        if caller.is_empty() || callees.iter().any(String::is_empty) {
            return Err(ImportError::new(
                file,
                0,
                format!("empty function name under {caller:?}"),
            ));
        }
        graph.function(caller, caller, module(caller).as_deref());
        for callee in callees {
            graph.function(callee, callee, module(callee).as_deref());
            graph.edge(caller, callee);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_calls_and_rejects_other_json() {
        let mut g = ProgramGraph::default();
        let text = r#"{"main": ["main.main"], "main.main": ["util.double", "<builtin>.print"], "util.double": []}"#;
        read(&mut g, "cg.json", text.as_bytes()).unwrap();
        let g = g.finish("py", 0, None).unwrap().graph;
        assert_eq!(g.nodes.len(), 4);
        assert_eq!(g.edges.len(), 3);
        assert_eq!(g.entrypoints, ["main"]);
        assert_eq!(g.modules["util.double"], "util");
        let err = read(
            &mut ProgramGraph::default(),
            "cg.json",
            "{\"a\": [\"b\"],\n\"c\": 3}".as_bytes(),
        )
        .unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.to_string().starts_with("cg.json:2:"), "{err}");
    }
}
