//! Output of Go's `callgraph` tool (golang.org/x/tools/cmd/callgraph):
//! `-format digraph` (`"caller" "callee"` per line, Go-quoted) or the
//! default template (`caller\t--static-12:3-->\tcallee`, `--dynamic-` for
//! a call through an interface or a function value, which also counts as
//! an indirect call site of the caller). Names are rewritten to the ELF
//! symbols of a Go binary (see the module docs of `callgraph`).

use std::collections::BTreeSet;
use std::io::BufRead;

use super::{numbered_lines, preview, ImportError, ProgramGraph};

/// One edge line.
#[derive(Debug, PartialEq)]
pub(crate) struct GoEdge {
    pub caller: String,
    pub callee: String,
    pub dynamic: bool,
}

/// Parses one line; `Ok(None)` for a blank line.
pub(crate) fn parse_line(line: &str) -> Result<Option<GoEdge>, String> {
    let t = line.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.starts_with('"') {
        let (caller, rest) = go_quoted(t)?;
        let rest = rest.trim_start();
        let (callee, rest) = go_quoted(rest)?;
        if !rest.trim().is_empty() {
            return Err(format!("text after the callee: {:?}", preview(rest)));
        }
        return Ok(Some(GoEdge {
            caller,
            callee,
            dynamic: false,
        }));
    }
    let (caller, rest) = line
        .split_once("\t--")
        .ok_or_else(|| format!("not a callgraph edge line: {:?}", preview(t)))?;
    let (arrow, callee) = rest
        .split_once("-->\t")
        .ok_or_else(|| format!("edge without `-->`: {:?}", preview(t)))?;
    let dynamic = if arrow.starts_with("dynamic-") {
        true
    } else if arrow.starts_with("static-") {
        false
    } else {
        return Err(format!(
            "edge kind is neither static nor dynamic: {arrow:?}"
        ));
    };
    let (caller, callee) = (caller.trim(), callee.trim());
    if caller.is_empty() || callee.is_empty() {
        return Err("edge with an empty end".into());
    }
    Ok(Some(GoEdge {
        caller: caller.to_string(),
        callee: callee.to_string(),
        dynamic,
    }))
}

/// A Go-quoted string (`%q`): `\"`, `\\`, `\n`, `\t`, `\xNN`, `\uNNNN`.
fn go_quoted(s: &str) -> Result<(String, &str), String> {
    let body = s
        .strip_prefix('"')
        .ok_or_else(|| format!("expected a quoted name at {:?}", preview(s)))?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                if out.is_empty() {
                    return Err("empty name".into());
                }
                return Ok((out, &body[i + 1..]));
            }
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated escape")?;
                match e {
                    '"' | '\\' | '\'' => out.push(e),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'x' | 'u' | 'U' => {
                        let digits = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = (0..digits)
                            .filter_map(|_| chars.next())
                            .map(|x| x.1)
                            .collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("bad escape \\{e}{hex}"))?;
                        out.push(code);
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                }
            }
            c => out.push(c),
        }
    }
    Err(format!("unterminated string {:?}", preview(s)))
}

pub(crate) fn read(
    graph: &mut ProgramGraph,
    file: &str,
    reader: impl BufRead,
) -> Result<(), ImportError> {
    let mut edges = Vec::new();
    for line in numbered_lines(file, reader) {
        let (number, text) = line?;
        if let Some(edge) = parse_line(&text).map_err(|e| ImportError::new(file, number, e))? {
            edges.push(edge);
        }
    }
    if edges.is_empty() {
        return Err(ImportError::new(file, 1, "no call edges in the file"));
    }
    let functions: BTreeSet<&str> = edges
        .iter()
        .flat_map(|e| [e.caller.as_str(), e.callee.as_str()])
        .collect();
    let main_package = main_package(&functions);
    let symbol = |name: &str| elf_symbol(name, main_package.as_deref());
    for edge in &edges {
        let (caller, callee) = (symbol(&edge.caller), symbol(&edge.callee));
        graph.function(&caller, &caller, package_of(&caller));
        graph.function(&callee, &callee, package_of(&callee));
        graph.edge(&caller, &callee);
        if edge.dynamic {
            graph.indirect_call(&caller);
        }
    }
    Ok(())
}

/// The program's main package: the one package other than `runtime` with
/// a plain function `main` (its import path is printed, `main` is linked).
fn main_package(functions: &BTreeSet<&str>) -> Option<String> {
    let candidates: Vec<&str> = functions
        .iter()
        .filter(|f| !f.starts_with('('))
        .filter_map(|f| f.strip_suffix(".main"))
        .filter(|p| *p != "runtime" && !p.is_empty() && !p.contains('$'))
        .collect();
    match candidates.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// Splits `pkg/path.Name` as `callgraph` prints it at the dot that ends
/// the package path: the last dot after the last `/` (names printed by
/// `callgraph` hold no dot; the last path element may, as in `yaml.v2`).
fn split_package(name: &str) -> Option<(&str, &str)> {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[slash..].rfind('.')? + slash;
    Some((&name[..dot], &name[dot + 1..]))
}

/// The package path of an ELF-style Go symbol (`pkg/path.(*T).M`).
fn package_of(symbol: &str) -> Option<&str> {
    // An escaped dot (%2e) in the last path element is not the split.
    let slash = symbol.rfind('/').map_or(0, |i| i + 1);
    let dot = symbol[slash..].find('.')? + slash;
    Some(&symbol[..dot])
}

/// The Go linker's symbol for a name printed by `callgraph`.
pub(crate) fn elf_symbol(name: &str, main_package: Option<&str>) -> String {
    // Synthetic nodes (`<root>`) and anything unexpected stay as printed.
    let (receiver, rest) = if let Some(inner) = name.strip_prefix("(*") {
        match inner.split_once(").") {
            Some((ty, method)) => (Some((ty, true)), method),
            None => return name.to_string(),
        }
    } else if let Some(inner) = name.strip_prefix('(') {
        match inner.split_once(").") {
            Some((ty, method)) => (Some((ty, false)), method),
            None => return name.to_string(),
        }
    } else {
        (None, name)
    };
    let (package, local) = match receiver {
        Some((ty, pointer)) => {
            let Some((package, type_name)) = split_package(ty) else {
                return name.to_string();
            };
            let local = if pointer {
                format!("(*{type_name}).{rest}")
            } else {
                format!("{type_name}.{rest}")
            };
            (package, local)
        }
        None => match split_package(rest) {
            Some((package, local)) => (package, local.to_string()),
            None => return name.to_string(),
        },
    };
    let package = if Some(package) == main_package {
        "main".to_string()
    } else {
        match package.rfind('/') {
            Some(i) => format!("{}{}", &package[..=i], package[i + 1..].replace('.', "%2e")),
            None => package.to_string(),
        }
    };
    let mut local = local.replace("$bound", "-fm");
    // Closures: f$1$2 → f.func1.func2.
    while let Some(i) = local.find('$') {
        let digits = local[i + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(local.len(), |j| i + 1 + j);
        if digits == i + 1 {
            break;
        }
        local = format!(
            "{}.func{}{}",
            &local[..i],
            &local[i + 1..digits],
            &local[digits..]
        );
    }
    format!("{package}.{local}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_elf_symbols() {
        let main = Some("example.com/shapes");
        let cases = [
            ("example.com/shapes.main", "main.main"),
            ("example.com/shapes.main$1", "main.main.func1"),
            ("example.com/shapes.main$1$2", "main.main.func1.func2"),
            ("(example.com/shapes.Sq).Area", "main.Sq.Area"),
            ("(*runtime.Frames).Next", "runtime.(*Frames).Next"),
            ("(*sync.Once).doSlow", "sync.(*Once).doSlow"),
            ("fmt.Println", "fmt.Println"),
            ("gopkg.in/yaml.v2.Unmarshal", "gopkg.in/yaml%2ev2.Unmarshal"),
            ("(*bytes.Buffer).Write$bound", "bytes.(*Buffer).Write-fm"),
            (
                "runtime/internal/atomic.Load8",
                "runtime/internal/atomic.Load8",
            ),
        ];
        for (printed, symbol) in cases {
            assert_eq!(elf_symbol(printed, main), symbol, "{printed}");
        }
    }

    #[test]
    fn both_formats_and_errors() {
        assert_eq!(
            parse_line("\"a.f\" \"b.g\"").unwrap(),
            Some(GoEdge {
                caller: "a.f".into(),
                callee: "b.g".into(),
                dynamic: false
            })
        );
        let e = parse_line("a.f\t--dynamic-12:3-->\tb.g").unwrap().unwrap();
        assert!(e.dynamic);
        assert_eq!(parse_line("  ").unwrap(), None);
        for bad in [
            "\"a\" b",
            "a.f -> b.g",
            "a.f\t--weird-1:2-->\tb",
            "\"a\" \"b\" c",
            "\"a\\q\" \"b\"",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        let mut g = ProgramGraph::default();
        let err = read(&mut g, "cg.txt", "\"a.f\" \"b.g\"\nbroken\n".as_bytes()).unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("cg.txt", 2));
    }
}
