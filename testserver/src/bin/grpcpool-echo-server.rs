//! The in-process test server as a standalone process; see `grpcpool_testserver::standalone`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(error) = grpcpool_testserver::standalone::serve(&args) {
        eprintln!("grpcpool-echo-server: {error}");
        std::process::exit(2);
    }
}
