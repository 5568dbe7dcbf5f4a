// The header-only C++ wrapper (include/grpcpool.hpp) against the echo server: echo, metadata,
// statuses, leases released by scope, moves, grpcpool::Error with the right code, streams,
// metadata hooks (std::function on the config and on CallOptions, a throwing hook), and the
// async call and acquire with their cancel.
#include <atomic>
#include <future>
#include <memory>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "grpcpool.hpp"
#include "check.h"

using namespace std::chrono_literals;

namespace {

const std::string kEcho = "/grpcpool.test.Echo/Unary";
const std::string kBidi = "/grpcpool.test.Echo/Bidi";
const std::string kServerStream = "/grpcpool.test.Echo/ServerStream";

// The value of `key` in `metadata`, or "<missing>".
std::string find(const grpcpool::Metadata& metadata, const std::string& key) {
  for (const auto& [k, v] : metadata) {
    if (k == key) return v;
  }
  return "<missing>";
}

// Runs `body`, which must throw grpcpool::Error with `expected`; returns the message.
template <typename Body>
std::string expect_error(grpcpool_result expected, Body body, const char* what) {
  try {
    body();
    CHECK(false, "%s: no exception, expected %s", what, grpcpool_result_name(expected));
  } catch (const grpcpool::Error& error) {
    CHECK(error.code() == expected, "%s: %s (%s), expected %s", what, error.name(), error.what(),
          grpcpool_result_name(expected));
    CHECK(std::string(error.what()).size() > 0, "%s: empty message", what);
    return error.what();
  } catch (const std::exception& error) {
    CHECK(false, "%s: another exception: %s", what, error.what());
  }
  return "";
}

void check_echo_and_metadata(const grpcpool::Pool& pool, const std::string& target) {
  check_section("C++: echo on a lease and one-shot, metadata both ways");
  grpcpool::Lease lease = pool.acquire(target, 10s, "test_wrapper.cpp:echo");
  CHECK(lease.held() && lease.handle() != 0, "no lease");
  const std::string request("bytes\0with a NUL", 16);
  grpcpool::Response response = lease.unary(kEcho, request, {}, 10s);
  CHECK(response.ok() && response.code() == 0, "code %d: %.*s", response.code(),
        static_cast<int>(response.message().size()), response.message().data());
  CHECK(response.body() == request, "body not echoed (%zu bytes)", response.body().size());
  CHECK(response.message().empty() && response.details().empty(), "message or details on OK");

  const std::string raw("\x00\xff", 2);
  grpcpool::Metadata metadata = {{"x-echo-id", "cpp-7"}, {"x-echo-raw-bin", raw}, {"x-trailer-note", "bye"}};
  response = lease.unary(kEcho, "md", metadata, 10s);
  CHECK(response.ok(), "metadata call code %d", response.code());
  grpcpool::Metadata headers = response.headers();
  grpcpool::Metadata trailers = response.trailers();
  CHECK(find(headers, "x-echo-id") == "cpp-7", "x-echo-id header: %s", find(headers, "x-echo-id").c_str());
  CHECK(find(headers, "x-echo-raw-bin") == raw, "x-echo-raw-bin header not 00 ff");
  CHECK(find(trailers, "x-trailer-note") == "bye", "x-trailer-note trailer: %s",
        find(trailers, "x-trailer-note").c_str());

  grpcpool::Response once = pool.unary(target, kEcho, "one-shot", {{"x-echo-id", "once"}}, 10s);
  CHECK(once.ok() && once.body() == "one-shot", "one-shot: code %d", once.code());
  CHECK(find(once.headers(), "x-echo-id") == "once", "one-shot header");

  // A Response moves; the moved-from one is empty and harmless.
  grpcpool::Response moved = std::move(once);
  CHECK(moved.body() == "one-shot", "moved response lost its body");
  CHECK(once.code() == -1 && once.body().empty() && once.headers().empty(), "moved-from response not empty");
}

void check_status(const grpcpool::Pool& pool, const std::string& target) {
  check_section("C++: a non-OK status is a Response, with message and details");
  const std::string details("\x01\x00\x02", 3);
  grpcpool::Response response = pool.unary(
      target, kEcho, "x",
      {{"x-status-code", "5"}, {"x-status-message", "no such thing"}, {"x-status-details-bin", details}}, 10s);
  CHECK(!response.ok() && response.code() == 5, "code %d", response.code());
  CHECK(response.message() == "no such thing", "message %.*s", static_cast<int>(response.message().size()),
        response.message().data());
  CHECK(response.details() == details, "details of %zu bytes", response.details().size());
  CHECK(response.body().empty(), "body on an error status");

  grpcpool::Response late = pool.unary(target, kEcho, "slow", {{"x-sleep-ms", "2000"}}, 200ms);
  CHECK(late.code() == 4, "deadline: code %d", late.code());
}

void check_lease_scope(const std::string& limited) {
  check_section("C++: leases released by scope, by release(), and by move-assignment");
  // The limited server allows 2 streams per connection; with one connection, 2 leases fill it.
  grpcpool::Pool pool(grpcpool::Config().max_connections(1).acquire_timeout(5s));
  {
    grpcpool::Lease first = pool.acquire(limited, 10s);
    grpcpool::Lease second = pool.acquire(limited, 10s);
    expect_error(GRPCPOOL_ACQUIRE_TIMEOUT, [&] { pool.acquire(limited, 200ms); }, "third lease while two held");
  }
  // Both went back at the end of the scope.
  grpcpool::Lease a = pool.acquire(limited, 1s);
  grpcpool::Lease b = pool.acquire(limited, 1s);
  CHECK(a.held() && b.held(), "leases not back after their scope");

  a.release();
  CHECK(!a.held() && a.handle() == 0, "released lease still held");
  expect_error(GRPCPOOL_INVALID_HANDLE, [&] { a.release(); }, "second release()");
  expect_error(GRPCPOOL_INVALID_HANDLE, [&] { a.unary(kEcho, "x"); }, "unary on a released lease");

  // Moving hands the slot over; the moved-from Lease holds nothing.
  grpcpool::Lease c = std::move(b);
  CHECK(c.held() && !b.held() && b.handle() == 0, "move did not hand the lease over");
  expect_error(GRPCPOOL_INVALID_HANDLE, [&] { b.release(); }, "release() of a moved-from lease");
  CHECK(c.unary(kEcho, "moved", {}, 10s).body() == "moved", "moved lease unusable");
  // Move-assignment releases the lease it overwrites: two fresh acquires must fit.
  c = pool.acquire(limited, 1s);
  grpcpool::Lease d = pool.acquire(limited, 1s);
  CHECK(c.held() && d.held(), "move-assignment did not release the old lease");

  check_section("C++: Pool moves, stats; Leases outliving their Pool");
  grpcpool::Pool other = std::move(pool);
  CHECK(other.stats_json().find("\"calls_succeeded\"") != std::string::npos, "stats_json");
  CHECK(other.leaks_json() == "[]", "leaks_json: %s", other.leaks_json().c_str());
  expect_error(GRPCPOOL_NULL_ARGUMENT, [&] { pool.stats_json(); }, "stats of a moved-from pool");
  d.release();
  grpcpool::Lease orphan = other.acquire(limited, 1s);
  { grpcpool::Pool gone = std::move(other); }  // freed here, with c and orphan still held
  expect_error(GRPCPOOL_INVALID_HANDLE, [&] { orphan.release(); }, "release() after the pool was freed");
  // c's destructor releases a dead handle at the end of this function: quietly.
}

void check_errors(const grpcpool::Pool& pool, const std::string& target) {
  check_section("C++: grpcpool::Error with the right code for bad input");
  std::string message = expect_error(GRPCPOOL_INVALID_TARGET, [&] { pool.acquire("not a target", 1s); },
                                     "acquire(\"not a target\")");
  CHECK(message.find("not a target") != std::string::npos, "message does not name the target: %s",
        message.c_str());
  expect_error(GRPCPOOL_INVALID_TARGET, [&] { pool.unary("ftp://x:1", kEcho, ""); }, "unary on ftp://x:1");
  expect_error(GRPCPOOL_INVALID_METHOD, [&] { pool.unary(target, "no-slash", ""); }, "method without '/'");
  expect_error(GRPCPOOL_INVALID_METADATA, [&] { pool.unary(target, kEcho, "", {{"Bad Key", "v"}}); },
               "metadata key \"Bad Key\"");
  expect_error(GRPCPOOL_INVALID_ARGUMENT, [&] { pool.acquire(target, -1ms); }, "negative timeout");
  expect_error(GRPCPOOL_INVALID_CONFIG,
               [] { grpcpool::Pool bad(grpcpool::Config().min_connections(3).max_connections(1)); },
               "min > max connections");
  expect_error(GRPCPOOL_IO_ERROR, [] { grpcpool::Config().tls_ca_file("/nonexistent/ca.pem"); }, "missing CA file");
  expect_error(GRPCPOOL_TLS_ERROR, [] { grpcpool::Pool bad(grpcpool::Config().tls_ca_pem("garbage")); },
               "garbage CA PEM");

  grpcpool::Pool closing;
  CHECK(closing.unary(target, kEcho, "before", {}, 10s).ok(), "call before shutdown");
  CHECK(closing.shutdown(1s) == 0, "slots in use after a clean shutdown");
  expect_error(GRPCPOOL_POOL_CLOSED, [&] { closing.acquire(target, 1s); }, "acquire after shutdown");
}

void check_streams(const grpcpool::Pool& pool, const std::string& target, const std::string& limited) {
  check_section("C++: streams: bidi with headers and trailers, on a lease, two threads, cancel, RAII");
  grpcpool::Stream stream =
      pool.open_stream(target, kBidi, {{"x-echo-who", "cpp"}, {"x-trailer-end", "bye"}}, 10s);
  CHECK(stream.handle() != 0, "no stream");
  std::optional<grpcpool::Metadata> headers = stream.headers();
  CHECK(headers && find(*headers, "x-echo-who") == "cpp", "stream headers");
  for (const char* text : {"one", "two", ""}) {
    CHECK(stream.send(text), "send %s", text);
    std::optional<std::string> reply = stream.recv();
    CHECK(reply && *reply == text, "echo of \"%s\"", text);
  }
  stream.close_send();
  CHECK(!stream.send("late"), "send after close_send is false");
  CHECK(!stream.recv(), "end after half-close");
  grpcpool::Response status = stream.finish();
  CHECK(status.ok(), "status %d", status.code());
  CHECK(find(status.trailers(), "x-trailer-end") == "bye", "trailer");
  CHECK(find(status.headers(), "x-echo-who") == "cpp", "headers in the final response");

  // On a lease: the stream uses the lease's slot; the lease stays held.
  grpcpool::Pool one(grpcpool::Config().max_connections(1));
  grpcpool::Lease lease = one.acquire(limited, 10s);
  grpcpool::Stream on_lease = lease.open_stream(kServerStream, {{"x-count", "2"}}, 10s);
  CHECK(lease.held() && lease.handle() != 0, "the lease stays held beside its stream");
  expect_error(GRPCPOOL_BUSY, [&] { lease.open_stream(kServerStream, {}, 10s); }, "a second stream on the lease");
  CHECK(on_lease.send("s") && (on_lease.close_send(), true), "send on the lease's stream");
  int received = 0;
  while (on_lease.recv()) received++;
  CHECK(received == 2, "%d server-stream messages", received);
  CHECK(on_lease.finish().ok(), "lease stream status");
  lease.release();  // the limited server's slot comes back: both are needed below
  expect_error(GRPCPOOL_INVALID_METHOD, [&] { grpcpool::Lease l = one.acquire(limited, 10s); l.open_stream("bad"); },
               "open_stream with a bad method");

  // Destroyed mid-call: cancelled, and both slots of the limited server come back.
  {
    grpcpool::Stream a = one.open_stream(limited, kBidi, {}, 10s);
    grpcpool::Stream b = one.open_stream(limited, kBidi, {}, 10s);
    CHECK(a.send("x") && a.recv() == std::optional<std::string>("x"), "a echo");
    expect_error(GRPCPOOL_ACQUIRE_TIMEOUT, [&] { one.open_stream(limited, kBidi, {}, 200ms); }, "third stream");
  }
  {
    grpcpool::Stream a = one.open_stream(limited, kBidi, {}, 5s);
    grpcpool::Stream b = one.open_stream(limited, kBidi, {}, 5s);
    CHECK(b.send("y") && b.recv() == std::optional<std::string>("y"), "slots back after destruction");
  }

  // Moves: the moved-from Stream is dead; the new one works.
  grpcpool::Stream first = pool.open_stream(target, kBidi, {}, 10s);
  grpcpool::Stream second = std::move(first);
  CHECK(first.handle() == 0, "moved-from handle");
  expect_error(GRPCPOOL_INVALID_HANDLE, [&] { first.send("x"); }, "send on a moved-from Stream");
  CHECK(second.send("moved") && second.recv() == std::optional<std::string>("moved"), "moved stream");
  second = pool.open_stream(target, kBidi, {}, 10s);  // the old one is freed (cancelled) here
  CHECK(second.send("again") && second.recv() == std::optional<std::string>("again"), "move-assigned stream");

  // One thread sends while another receives; then cancel wakes a blocked recv.
  const int count = check_env_flag("GRPCPOOL_TEST_LIGHT") ? 20 : 300;
  grpcpool::Stream duplex = pool.open_stream(target, kBidi, {}, 60s);
  std::atomic<int> in_order{0};
  std::thread receiver([&] {
    for (int i = 0;; i++) {
      std::optional<std::string> message = duplex.recv();
      if (!message) break;
      if (*message == "m" + std::to_string(i)) in_order++;
    }
  });
  std::thread sender([&] {
    for (int i = 0; i < count; i++) duplex.send("m" + std::to_string(i));
    duplex.close_send();
  });
  sender.join();
  receiver.join();
  CHECK(in_order == count, "%d of %d in order", in_order.load(), count);
  CHECK(duplex.finish().ok(), "duplex status");

  grpcpool::Stream waiting = pool.open_stream(target, kBidi, {}, 60s);
  std::atomic<bool> ended{false};
  std::thread blocked([&] { ended = !waiting.recv().has_value(); });
  std::this_thread::sleep_for(200ms);
  expect_error(GRPCPOOL_BUSY, [&] { waiting.recv(); }, "a second recv");
  auto cancelled_at = std::chrono::steady_clock::now();
  waiting.cancel();
  blocked.join();
  CHECK(ended && std::chrono::steady_clock::now() - cancelled_at < 2s, "cancel woke the recv");
  CHECK(waiting.finish().code() == 1, "CANCELLED");
  expect_error(GRPCPOOL_INVALID_METHOD, [&] { pool.open_stream(target, "no-slash"); }, "bad method");
}

void check_tls(const std::string& tls_target, const std::string& ca_file) {
  check_section("C++: TLS with our CA and server name");
  grpcpool::Pool pool(grpcpool::Config().tls_ca_file(ca_file).tls_server_name("localhost"));
  grpcpool::Response response = pool.unary(tls_target, kEcho, "over tls", {}, 10s);
  CHECK(response.ok() && response.body() == "over tls", "TLS call code %d", response.code());
}

void check_hooks(const std::string& target) {
  check_section("C++: metadata hooks as std::function, per pool and per call");
  auto runs = std::make_shared<std::atomic<int>>(0);
  // Held only by the hook's copy: expired once the library lets go of it.
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  {
    grpcpool::Config config;
    config.metadata_hook([runs, alive](std::string_view, std::string_view method, grpcpool::MetadataSink& sink) {
      int run = ++*runs;
      sink.add("x-echo-token", "pool-" + std::to_string(run));
      sink.add("x-echo-method", std::string(method));
    });
    alive.reset();
    grpcpool::Pool pool(config);
    grpcpool::Response response = pool.unary(target, kEcho, "hi", {}, 5s);
    CHECK(response.ok() && find(response.headers(), "x-echo-token") == "pool-1", "pool hook token %s",
          find(response.headers(), "x-echo-token").c_str());
    CHECK(find(response.headers(), "x-echo-method") == kEcho, "method told to the hook");

    grpcpool::CallOptions options;
    options.timeout(5s).metadata_hook([](std::string_view, std::string_view, grpcpool::MetadataSink& sink) {
      sink.add("x-echo-call", "yes");
    });
    response = pool.unary(target, kEcho, "hi", options);
    CHECK(response.ok() && find(response.headers(), "x-echo-call") == "yes" &&
              find(response.headers(), "x-echo-token") == "pool-2",
          "call hook after the pool's");

    grpcpool::CallOptions throwing;
    throwing.metadata_hook([](std::string_view, std::string_view, grpcpool::MetadataSink&) {
      throw std::runtime_error("token service down");
    });
    response = pool.unary(target, kEcho, "hi", throwing);
    CHECK(response.code() == 14 && std::string(response.message()).find("token service down") != std::string::npos,
          "throwing hook: %d %s", response.code(), std::string(response.message()).c_str());

    grpcpool::CallOptions refused;
    refused.metadata_hook([](std::string_view, std::string_view, grpcpool::MetadataSink& sink) {
      sink.add("content-type", "text/plain");  // reserved: throws, and the attempt fails INTERNAL
    });
    response = pool.unary(target, kEcho, "hi", refused);
    CHECK(response.code() == 13, "refused entry: %d %s", response.code(), std::string(response.message()).c_str());

    grpcpool::CallOptions unauthenticated;
    unauthenticated.metadata_hook([](std::string_view, std::string_view, grpcpool::MetadataSink& sink) {
      sink.fail(16, "no token");
    });
    response = pool.unary(target, kEcho, "hi", unauthenticated);
    CHECK(response.code() == 16, "sink.fail(16): %d", response.code());

    grpcpool::Stream stream = pool.open_stream(target, kServerStream, grpcpool::CallOptions().timeout(5s).metadata("x-count", "1"));
    stream.send("m");
    stream.close_send();
    std::optional<grpcpool::Metadata> headers = stream.headers();
    // Every call so far ran the pool's hook first, the failed ones too: this is its sixth run.
    CHECK(headers && find(*headers, "x-echo-token") == "pool-6", "stream token %s",
          headers ? find(*headers, "x-echo-token").c_str() : "(no headers)");
    CHECK(stream.finish().ok(), "stream status");
  }
  // The config, pool and options are gone: the library let go of the hook's copy.
  CHECK(watch.expired(), "the hook's std::function was not released");
}

void check_async(const std::string& target) {
  check_section("C++: unary_async and acquire_async, cancel");
  grpcpool::Pool pool;
  std::promise<std::pair<int, std::string>> replied;
  pool.unary_async(target, kEcho, "async", [&replied](grpcpool::Response response) {
    replied.set_value({response.code(), std::string(response.body())});
  }, grpcpool::CallOptions().timeout(5s));
  auto reply = replied.get_future();
  CHECK(reply.wait_for(10s) == std::future_status::ready, "async call never completed");
  auto [code, body] = reply.get();
  CHECK(code == 0 && body == "async", "async call: %d %s", code, body.c_str());

  std::promise<grpcpool::Lease> leased;
  pool.acquire_async(target, 5s, [&leased](grpcpool_result result, grpcpool::Lease lease) {
    if (result == GRPCPOOL_OK) leased.set_value(std::move(lease));
    else leased.set_exception(std::make_exception_ptr(grpcpool::Error(result, "acquire failed")));
  });
  auto lease_future = leased.get_future();
  CHECK(lease_future.wait_for(10s) == std::future_status::ready, "acquire never completed");
  grpcpool::Lease lease = lease_future.get();
  CHECK(lease.held() && lease.unary(kEcho, "on lease", {}, 5s).body() == "on lease", "call on the async lease");
  lease.release();

  // A slow call cancelled: its callback sees CANCELLED; a second cancel says it is over.
  std::promise<int> cancelled;
  grpcpool::AsyncCall call = pool.unary_async(target, kEcho, "slow", [&cancelled](grpcpool::Response response) {
    cancelled.set_value(response.code());
  }, grpcpool::CallOptions().timeout(10s).metadata("x-sleep-ms", "5000"));
  CHECK(call.cancel(), "cancel of a running call");
  auto cancelled_code = cancelled.get_future();
  CHECK(cancelled_code.wait_for(10s) == std::future_status::ready && cancelled_code.get() == 1, "cancelled status");
  CHECK(!call.cancel(), "second cancel");
  expect_error(GRPCPOOL_INVALID_TARGET, [&] { pool.acquire_async("nonsense://", 1s, [](grpcpool_result, grpcpool::Lease) {}); },
               "bad target");
}

}  // namespace

int main() {
  const std::string target = check_env("GRPCPOOL_TEST_TARGET");
  const std::string limited = check_env("GRPCPOOL_TEST_TARGET_LIMITED");
  const std::string tls_target = check_env("GRPCPOOL_TEST_TLS_TARGET");
  const std::string ca_file = check_env("GRPCPOOL_TEST_CA_FILE");
  try {
    grpcpool::Pool pool(grpcpool::Config().max_connections(2).connect_timeout(5s));
    check_echo_and_metadata(pool, target);
    check_status(pool, target);
    check_lease_scope(limited);
    check_errors(pool, target);
    check_streams(pool, target, limited);
    check_tls(tls_target, ca_file);
    check_hooks(target);
    check_async(target);
  } catch (const grpcpool::Error& error) {
    CHECK(false, "unexpected grpcpool::Error %s: %s", error.name(), error.what());
  } catch (const std::exception& error) {
    CHECK(false, "unexpected exception: %s", error.what());
  }
  return check_summary("test_wrapper");
}
