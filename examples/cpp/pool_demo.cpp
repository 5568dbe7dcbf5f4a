// grpcpool from C++ (include/grpcpool.hpp): one pool shared by a small thread pool of blocking
// calls, an auth token added to every attempt by a metadata hook, one async call and one async
// acquire, each handing its outcome to a std::promise.
//
//   make install PREFIX=$HOME/.local
//   export PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
//   c++ -std=c++17 examples/cpp/pool_demo.cpp $(pkg-config --cflags --libs grpcpool) -pthread -o pool_demo
//   ./pool_demo http://127.0.0.1:50051 /grpcpool.test.Echo/Unary
#include <atomic>
#include <chrono>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpool.hpp>

using namespace std::chrono_literals;

namespace {

// Where the current token lives. A real service refreshes it on a timer of its own; the hook
// only reads it, so it never blocks a call.
class TokenSource {
 public:
  std::string current() {
    std::lock_guard<std::mutex> lock(mutex_);
    return token_;
  }
  void refresh(std::string token) {
    std::lock_guard<std::mutex> lock(mutex_);
    token_ = std::move(token);
  }

 private:
  std::mutex mutex_;
  std::string token_ = "demo-token-1";
};

}  // namespace

int main(int argc, char** argv) {
  const std::string target = argc > 1 ? argv[1] : "http://127.0.0.1:50051";
  const std::string method = argc > 2 ? argv[2] : "/grpcpool.test.Echo/Unary";
  auto tokens = std::make_shared<TokenSource>();
  try {
    grpcpool::Config config;
    config.max_connections(2).metadata_hook(
        [tokens](std::string_view, std::string_view, grpcpool::MetadataSink& sink) {
          sink.add("authorization", "Bearer " + tokens->current());
        });
    grpcpool::Pool pool(config);

    // A small thread pool of blocking calls, all through the one pool.
    constexpr int kThreads = 4, kCallsEach = 25;
    std::atomic<int> ok{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; t++) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < kCallsEach; i++) {
          try {
            std::string request = "call " + std::to_string(t) + "." + std::to_string(i);
            grpcpool::Response response = pool.unary(target, method, request, {}, 5s);
            if (response.ok()) ok++;
            else std::cerr << "status " << response.code() << ": " << response.message() << "\n";
          } catch (const grpcpool::Error& error) {
            std::cerr << error.name() << ": " << error.what() << "\n";
          }
        }
      });
    }
    for (auto& worker : workers) worker.join();
    std::cout << "blocking calls: " << ok << " of " << kThreads * kCallsEach << " OK\n";
    tokens->refresh("demo-token-2");

    // One async call: the callback runs on a grpcpool worker; a promise carries the result back.
    std::promise<int> replied;
    pool.unary_async(target, method, "async hello",
                     [&replied](grpcpool::Response response) { replied.set_value(response.code()); },
                     grpcpool::CallOptions().timeout(5s));
    std::cout << "async call status " << replied.get_future().get() << "\n";

    // One async acquire, then a call on the lease it hands over.
    std::promise<grpcpool::Lease> leased;
    grpcpool::AsyncCall acquiring =
        pool.acquire_async(target, 2s, [&leased](grpcpool_result result, grpcpool::Lease lease) {
          if (result != GRPCPOOL_OK) {
            leased.set_exception(std::make_exception_ptr(grpcpool::Error(result, "async acquire failed")));
            return;
          }
          leased.set_value(std::move(lease));
        });
    (void)acquiring;  // acquiring.cancel() would end the wait early.
    grpcpool::Lease lease = leased.get_future().get();
    grpcpool::Response on_lease = lease.unary(method, "on the lease", {}, 5s);
    std::cout << "async acquire: call on the lease status " << on_lease.code() << "\n";
    return ok == kThreads * kCallsEach && on_lease.ok() ? 0 : 1;
  } catch (const grpcpool::Error& error) {
    std::cerr << error.name() << ": " << error.what() << "\n";
    return 1;
  }
}
