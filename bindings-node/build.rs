//! Link settings for a Node-API addon (symbols come from the node process at load time).

fn main() {
    napi_build::setup();
}
