fn main() {
    let path = std::env::args().nth(1).unwrap();
    let data = std::fs::read(&path).unwrap();
    let t = std::time::Instant::now();
    let trace = tracemerge_etl::Trace::decode(&data).unwrap();
    eprintln!("decode {:?}", t.elapsed());
    println!(
        "{}",
        serde_json::to_string_pretty(&tracemerge_etl::inspect::summary(&trace)).unwrap()
    );
}
