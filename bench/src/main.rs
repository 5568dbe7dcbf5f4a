//! Load harness comparing grpcpool with the clients users would pick instead.
fn main() {}
