// One call through the C++ wrapper, linked against the static library: argv[1] is the target.
#include <grpcpool.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hello_static_cpp TARGET\n");
    return 2;
  }
  grpcpool::Config config;
  grpcpool::Pool pool(config);
  auto lease = pool.acquire(argv[1], std::chrono::seconds(5));
  const std::string request = "static";
  auto response = lease.unary("/grpcpool.test.Echo/Unary", request, {}, std::chrono::seconds(5));
  std::printf("static status %d\n", response.code());
  return response.code() == 0 ? 0 : 1;
}
