//! The peers the C-ABI fuzzer's calls go to, started once per process: the echo server
//! (grpcpool-testserver on 127.0.0.1) and a server that hangs up on every connection.

use std::ffi::CString;
use std::sync::OnceLock;

use grpcpool_testserver::{ServerOptions, TestServer};

use crate::{block_sigpipe_in_this_thread, sigpipe_aborts};

/// The in-process peers: the echo server, and one that hangs up on every connection.
pub struct Server {
    pub target: CString,
    pub hang_up: CString,
    _server: TestServer,
    _runtime: tokio::runtime::Runtime,
}

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        sigpipe_aborts();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(block_sigpipe_in_this_thread)
            .enable_all()
            .build()
            .expect("the server's runtime starts");
        let server = runtime
            .block_on(TestServer::start(ServerOptions::default()))
            .expect("the echo server starts on 127.0.0.1");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port is free");
        let hang_up = format!("http://{}", listener.local_addr().expect("bound"));
        std::thread::spawn(move || {
            block_sigpipe_in_this_thread();
            for connection in listener.incoming() {
                drop(connection);
            }
        });
        Server {
            target: CString::new(server.target()).expect("a target has no NUL"),
            hang_up: CString::new(hang_up).expect("a target has no NUL"),
            _server: server,
            _runtime: runtime,
        }
    })
}
