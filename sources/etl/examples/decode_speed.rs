//! Decode speed against reading the file:
//! `cargo run --release -p tracemerge-etl --example decode_speed -- FILE.etl`
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: decode_speed FILE.etl [RUNS]");
        std::process::exit(2);
    };
    let runs = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    match tracemerge_etl::bench::decode_speed_runs(std::path::Path::new(&path), runs) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
