/*
 * grpcpool.hpp: a small header-only C++17 wrapper over the C API in grpcpool.h.
 *
 * RAII for the config, the pool, leases, streams and responses; failures of the C API are thrown as
 * grpcpool::Error carrying the grpcpool_result and the library's message. A non-OK gRPC status
 * is not an exception: it is a Response whose ok() is false, as in the C API.
 *
 *   grpcpool::Pool pool(grpcpool::Config().max_connections(8));
 *   grpcpool::Lease lease = pool.acquire("http://127.0.0.1:50051", std::chrono::seconds(1));
 *   grpcpool::Response response =
 *       lease.unary("/pkg.Service/Method", request, {{"x-request-id", "42"}}, std::chrono::seconds(2));
 *   if (!response.ok()) std::cerr << response.code() << ": " << response.message() << "\n";
 *
 * Streaming calls: Pool::open_stream or Lease::open_stream give a Stream to send(), recv(),
 * close_send() and finish() (the final status as a Response):
 *
 *   grpcpool::Stream stream = pool.open_stream(target, "/pkg.Service/Chat", {}, std::chrono::seconds(5));
 *   stream.send(request);
 *   stream.close_send();
 *   while (std::optional<std::string> reply = stream.recv()) handle(*reply);
 *   grpcpool::Response status = stream.finish();
 *
 * Auth tokens and other per-attempt metadata: a metadata hook on the Config (every call) or on
 * CallOptions (one call), run for every attempt, retries and hedges included:
 *
 *   config.metadata_hook([&tokens](std::string_view, std::string_view, grpcpool::MetadataSink& sink) {
 *     sink.add("authorization", "Bearer " + tokens.current());
 *   });
 *
 * Without blocking: Pool::unary_async and Pool::acquire_async take a std::function called exactly
 * once on a grpcpool worker thread, and return an AsyncCall whose cancel() ends them early.
 *
 * Thread safety is that of the C API: a Pool may be used from many threads at once; a Config
 * is not for two threads at once; Lease and Response objects may be shared for reading but are
 * not synchronised for moves or release. One thread may send() on a Stream while another
 * recv()s; cancel() works from any thread; a second concurrent send(), or recv() beside
 * recv()/headers()/finish(), throws GRPCPOOL_BUSY.
 */
#ifndef GRPCPOOL_HPP
#define GRPCPOOL_HPP

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grpcpool.h"

/// The C++ face of libgrpcpool.
namespace grpcpool {

/// Request or response metadata: (key, value) pairs in order. Keys are lower case; a key
/// ending in "-bin" carries raw bytes (base64 on the wire, done by the library).
using Metadata = std::vector<std::pair<std::string, std::string>>;

/// A failure of the C API: `code()` is its grpcpool_result, `what()` the library's message.
class Error : public std::runtime_error {
 public:
  /// An error with the given code and message.
  Error(grpcpool_result code, const std::string& message)
      : std::runtime_error(message), code_(code) {}

  /// The C API's result code, such as GRPCPOOL_INVALID_TARGET.
  grpcpool_result code() const noexcept { return code_; }

  /// The code's name, such as "GRPCPOOL_INVALID_TARGET".
  const char* name() const noexcept { return grpcpool_result_name(code_); }

 private:
  grpcpool_result code_;
};

/// Helpers for the wrapper itself; not part of the public interface.
namespace detail {

/// Throws Error with this thread's last error message unless `result` is GRPCPOOL_OK.
inline void check(grpcpool_result result) {
  if (result != GRPCPOOL_OK) {
    // Copied before anything else can touch the thread's last error.
    std::string message = grpcpool_last_error();
    if (message.empty()) message = grpcpool_result_name(result);
    throw Error(result, message);
  }
}

/// Milliseconds for the C API: negative is refused, more than fits is capped (below
/// GRPCPOOL_NO_TIMEOUT, which means none).
inline uint32_t to_ms(std::chrono::milliseconds timeout) {
  if (timeout.count() < 0) {
    throw Error(GRPCPOOL_INVALID_ARGUMENT, "a timeout may not be negative");
  }
  constexpr auto max = GRPCPOOL_NO_TIMEOUT - 1;
  return timeout.count() > static_cast<std::chrono::milliseconds::rep>(max)
             ? max
             : static_cast<uint32_t>(timeout.count());
}

/// A duration as the settings' text takes it: "250ms"; a negative one is refused.
inline std::string duration(std::chrono::milliseconds value) {
  if (value.count() < 0) throw Error(GRPCPOOL_INVALID_ARGUMENT, "a duration may not be negative");
  return std::to_string(value.count()) + "ms";
}

/// A call's timeout for the C API: none is GRPCPOOL_NO_TIMEOUT; zero means the deadline is now.
inline uint32_t to_ms(std::optional<std::chrono::milliseconds> timeout) {
  return timeout ? to_ms(*timeout) : GRPCPOOL_NO_TIMEOUT;
}

/// A metadata list in the C API's form, borrowing the strings of `metadata`.
inline std::vector<grpcpool_metadata_entry_t> entries(const Metadata& metadata) {
  std::vector<grpcpool_metadata_entry_t> out;
  out.reserve(metadata.size());
  for (const auto& [key, value] : metadata) {
    out.push_back(grpcpool_metadata_entry_t{
        key.c_str(), reinterpret_cast<const uint8_t*>(value.data()), value.size()});
  }
  return out;
}

/// Request bytes for the C API (NULL when empty, as the C API allows).
inline const uint8_t* bytes(std::string_view data) {
  return data.empty() ? nullptr : reinterpret_cast<const uint8_t*>(data.data());
}

}  // namespace detail

/// Where a metadata hook adds entries; valid only while the hook runs.
class MetadataSink {
 public:
  /// Wraps the C sink the hook was given.
  explicit MetadataSink(grpcpool_metadata_sink_t* sink) noexcept : sink_(sink) {}

  /// Adds one entry to the attempt's metadata: "-bin" keys take any bytes, others printable
  /// ASCII. A refused entry (a reserved key such as "grpc-timeout", a bad value) throws Error
  /// (GRPCPOOL_INVALID_METADATA) and fails the attempt with INTERNAL.
  void add(const std::string& key, std::string_view value) const {
    detail::check(grpcpool_metadata_sink_add(sink_, key.c_str(), detail::bytes(value), value.size()));
  }

  /// Fails the attempt with gRPC status `code` (1..16; UNAUTHENTICATED, 16, for a token that
  /// cannot be had); A54's control-plane codes become INTERNAL.
  void fail(int code, const std::string& message) const {
    detail::check(grpcpool_metadata_sink_fail(sink_, code, message.c_str()));
  }

 private:
  grpcpool_metadata_sink_t* sink_;
};

/// A metadata hook: called as hook(target, method, sink) for every attempt of a call. It runs on
/// a grpcpool worker thread for every call and stream, blocking or async, possibly on several
/// threads at once: it must be thread-safe, quick and must not
/// block. An exception it throws fails the attempt with UNAVAILABLE (as a call credentials
/// failure), its what() in the status message; MetadataSink::fail chooses the status instead.
using MetadataHook = std::function<void(std::string_view target, std::string_view method, MetadataSink& sink)>;

namespace detail {

/// Runs a MetadataHook held as the C hook's user_data; never lets an exception out.
inline int32_t run_hook(void* user_data, const char* target, const char* method,
                        grpcpool_metadata_sink_t* sink) noexcept {
  MetadataSink wrapped(sink);
  try {
    (*static_cast<MetadataHook*>(user_data))(target, method, wrapped);
    return GRPCPOOL_OK;
  } catch (const std::exception& error) {
    grpcpool_metadata_sink_fail(sink, 14, error.what());
  } catch (...) {
    grpcpool_metadata_sink_fail(sink, 14, "the metadata hook threw");
  }
  return GRPCPOOL_INTERNAL;
}

/// Frees a MetadataHook the library let go of.
inline void release_hook(void* user_data) noexcept { delete static_cast<MetadataHook*>(user_data); }

}  // namespace detail

/// Pool settings, with chainable setters that throw Error on a value the library refuses at
/// once (most values are checked when the Pool is made). Movable, not copyable.
class Config {
 public:
  /// A config with every default.
  Config() : config_(grpcpool_config_new()) {
    if (config_ == nullptr) throw Error(GRPCPOOL_INTERNAL, "grpcpool_config_new returned NULL");
  }
  /// Frees the config.
  ~Config() { grpcpool_config_free(config_); }
  Config(const Config&) = delete;
  Config& operator=(const Config&) = delete;
  /// Takes over `other`'s settings; `other` is left empty and only fit to be destroyed.
  Config(Config&& other) noexcept : config_(std::exchange(other.config_, nullptr)) {}
  /// Takes over `other`'s settings, freeing this one's.
  Config& operator=(Config&& other) noexcept {
    if (this != &other) {
      grpcpool_config_free(config_);
      config_ = std::exchange(other.config_, nullptr);
    }
    return *this;
  }

  /// Sets any setting of core's table by name, from text (the README's settings table):
  /// `set("keepalive_time", "30s")`. Throws Error (GRPCPOOL_INVALID_CONFIG) for an unknown
  /// name or a value of the wrong form.
  Config& set(const std::string& name, const std::string& value) {
    return set(grpcpool_config_set(config_, name.c_str(), value.c_str()));
  }

  /// Connections kept open per target once used.
  Config& min_connections(uint32_t value) { return set("min_connections_per_target", std::to_string(value)); }
  /// Most connections per target.
  Config& max_connections(uint32_t value) { return set("max_connections_per_target", std::to_string(value)); }
  /// Streams in flight per connection before another connection is opened.
  Config& streams_per_connection(uint32_t value) { return set("streams_per_connection", std::to_string(value)); }
  /// Time limit for connect, TLS and HTTP/2 handshakes.
  Config& connect_timeout(std::chrono::milliseconds value) { return set("connect_timeout", detail::duration(value)); }
  /// Keepalive ping interval; zero sends no pings.
  Config& keepalive_time(std::chrono::milliseconds value) { return set("keepalive_time", detail::duration(value)); }
  /// How long a keepalive ping may go unanswered.
  Config& keepalive_timeout(std::chrono::milliseconds value) {
    return set("keepalive_timeout", detail::duration(value));
  }
  /// Whether to ping connections with no call in flight.
  Config& keepalive_while_idle(bool value) { return set("keepalive_while_idle", value ? "true" : "false"); }
  /// TCP_NODELAY on every connection.
  Config& tcp_nodelay(bool value) { return set("tcp_nodelay", value ? "true" : "false"); }
  /// Unused connections above the minimum close after this long.
  Config& idle_timeout(std::chrono::milliseconds value) { return set("idle_timeout", detail::duration(value)); }
  /// Connections are replaced after about this long; zero never.
  Config& max_connection_age(std::chrono::milliseconds value) {
    return set("max_connection_age", detail::duration(value));
  }
  /// Default acquire wait, used by one-shot calls without a timeout.
  Config& acquire_timeout(std::chrono::milliseconds value) { return set("acquire_timeout", detail::duration(value)); }
  /// A lease held longer than this is reported as a leak (Pool::leaks_json).
  Config& lease_leak_threshold(std::chrono::milliseconds value) {
    return set("lease_leak_threshold", detail::duration(value));
  }
  /// Largest request in bytes.
  Config& max_send_message_size(size_t value) { return set("max_send_message_size", std::to_string(value)); }
  /// Largest response in bytes.
  Config& max_receive_message_size(size_t value) { return set("max_receive_message_size", std::to_string(value)); }
  /// Worker threads of the pool's runtime; 0 = one per core, at most 4.
  Config& worker_threads(uint32_t value) { return set("worker_threads", std::to_string(value)); }
  /// Reconnect backoff: first delay, growth factor, jitter fraction and cap.
  Config& backoff(std::chrono::milliseconds initial, double multiplier, double jitter, std::chrono::milliseconds max) {
    return set(grpcpool_config_set_backoff(config_, detail::to_ms(initial), multiplier, jitter, detail::to_ms(max)));
  }
  /// Trusts the PEM certificates in the file at `path` instead of the system roots.
  Config& tls_ca_file(const std::string& path) { return set(grpcpool_config_set_tls_ca_file(config_, path.c_str())); }
  /// Trusts these PEM certificates instead of the system roots.
  Config& tls_ca_pem(std::string_view pem) {
    return set(grpcpool_config_set_tls_ca_pem(config_, detail::bytes(pem), pem.size()));
  }
  /// Presents the PEM certificate chain and key in these files to servers that ask (mTLS).
  Config& tls_client_cert_files(const std::string& cert_path, const std::string& key_path) {
    return set(grpcpool_config_set_tls_client_cert_files(config_, cert_path.c_str(), key_path.c_str()));
  }
  /// Presents this PEM certificate chain and key to servers that ask (mTLS).
  Config& tls_client_cert_pem(std::string_view cert_pem, std::string_view key_pem) {
    return set(grpcpool_config_set_tls_client_cert_pem(config_, detail::bytes(cert_pem), cert_pem.size(),
                                                      detail::bytes(key_pem), key_pem.size()));
  }
  /// Checks server certificates against `name` (and sends it as SNI) instead of the target's host.
  Config& tls_server_name(const std::string& name) {
    return set(grpcpool_config_set_tls_server_name(config_, name.c_str()));
  }

  /// Sets the pool's metadata hook, run for every attempt of every call and stream of pools made
  /// from this config (an empty function removes it). The library keeps its own copy for as
  /// long as the config or a pool made from it needs it.
  Config& metadata_hook(MetadataHook hook) {
    if (!hook) return set(grpcpool_config_set_metadata_hook(config_, nullptr, nullptr, nullptr));
    auto* held = new MetadataHook(std::move(hook));
    // On failure the library has already released `held`.
    return set(grpcpool_config_set_metadata_hook(config_, detail::run_hook, held, detail::release_hook));
  }

  /// The C config, for setters this wrapper does not cover.
  grpcpool_config_t* native() noexcept { return config_; }
  /// The C config, read-only.
  const grpcpool_config_t* native() const noexcept { return config_; }

 private:
  Config& set(grpcpool_result result) {
    detail::check(result);
    return *this;
  }

  grpcpool_config_t* config_;
};

/// Every per-call option, for the calls that take CallOptions: chainable setters that throw
/// Error on a value the library refuses. Read (copied) by each call, so one object may serve
/// many calls and go away once they have started. Movable, not copyable.
class CallOptions {
 public:
  /// Options with every default: no deadline, no metadata, fail fast, no compression.
  CallOptions() : options_(grpcpool_call_options_new()) {
    if (options_ == nullptr) throw Error(GRPCPOOL_INTERNAL, "grpcpool_call_options_new returned NULL");
  }
  /// Frees the options (calls already started keep what they read).
  ~CallOptions() { grpcpool_call_options_free(options_); }
  CallOptions(const CallOptions&) = delete;
  CallOptions& operator=(const CallOptions&) = delete;
  /// Takes over `other`'s options.
  CallOptions(CallOptions&& other) noexcept : options_(std::exchange(other.options_, nullptr)) {}
  /// Takes over `other`'s options, freeing this one's.
  CallOptions& operator=(CallOptions&& other) noexcept {
    if (this != &other) {
      grpcpool_call_options_free(options_);
      options_ = std::exchange(other.options_, nullptr);
    }
    return *this;
  }

  /// The deadline, `timeout` after the call starts (zero: now).
  CallOptions& timeout(std::chrono::milliseconds timeout) {
    return set(grpcpool_call_options_set_timeout_ms(options_, detail::to_ms(timeout)));
  }
  /// Wait for a connection while the target cannot be reached, instead of failing fast.
  CallOptions& wait_for_ready(bool wait) { return set(grpcpool_call_options_set_wait_for_ready(options_, wait)); }
  /// Request compression: "gzip", or "identity" for none.
  CallOptions& compression(const std::string& name) {
    return set(grpcpool_call_options_set_compression(options_, name.c_str()));
  }
  /// Adds one request metadata entry.
  CallOptions& metadata(const std::string& key, std::string_view value) {
    return set(grpcpool_call_options_add_metadata(options_, key.c_str(), detail::bytes(value), value.size()));
  }
  /// The call's own metadata hook, run for every attempt after the pool's (an empty function
  /// removes it); calls started with these options keep a copy until they end.
  CallOptions& metadata_hook(MetadataHook hook) {
    if (!hook) return set(grpcpool_call_options_set_metadata_hook(options_, nullptr, nullptr, nullptr));
    auto* held = new MetadataHook(std::move(hook));
    return set(grpcpool_call_options_set_metadata_hook(options_, detail::run_hook, held, detail::release_hook));
  }

  /// The C options, still owned by this object.
  const grpcpool_call_options_t* native() const noexcept { return options_; }

 private:
  CallOptions& set(grpcpool_result result) {
    detail::check(result);
    return *this;
  }

  grpcpool_call_options_t* options_;
};

/// An async call or acquire in flight. Its callback runs exactly once whatever happens to this
/// object, which is only a way to cancel; copyable (a copy names the same operation).
class AsyncCall {
 public:
  /// Wraps a C call handle.
  explicit AsyncCall(grpcpool_call_t handle) noexcept : handle_(handle) {}

  /// Cancels the operation: true when its callback will see the cancellation (status CANCELLED
  /// for a call, GRPCPOOL_CANCELLED for an acquire), false when it already completed.
  bool cancel() const {
    grpcpool_result result = grpcpool_call_cancel(handle_);
    if (result == GRPCPOOL_INVALID_HANDLE) return false;
    detail::check(result);
    return true;
  }

  /// The C call handle.
  grpcpool_call_t handle() const noexcept { return handle_; }

 private:
  grpcpool_call_t handle_;
};

/// The outcome of a call: status, headers, trailers and body. Owns the C response; movable,
/// not copyable. The string_views it returns are valid as long as the Response lives.
class Response {
 public:
  /// Takes ownership of a C response (NULL gives an empty Response with code() -1).
  explicit Response(grpcpool_response_t* response) noexcept : response_(response) {}
  /// Frees the response.
  ~Response() { grpcpool_response_free(response_); }
  Response(const Response&) = delete;
  Response& operator=(const Response&) = delete;
  /// Takes over `other`'s response.
  Response(Response&& other) noexcept : response_(std::exchange(other.response_, nullptr)) {}
  /// Takes over `other`'s response, freeing this one's.
  Response& operator=(Response&& other) noexcept {
    if (this != &other) {
      grpcpool_response_free(response_);
      response_ = std::exchange(other.response_, nullptr);
    }
    return *this;
  }

  /// The gRPC status code (0 = OK; -1 for an empty, moved-from Response).
  int code() const noexcept { return grpcpool_response_code(response_); }
  /// Whether the status is OK.
  bool ok() const noexcept { return code() == 0; }
  /// The status message ("" when none).
  std::string_view message() const noexcept { return grpcpool_response_message(response_); }
  /// The status details (grpc-status-details-bin), raw bytes; empty when none.
  std::string_view details() const noexcept { return view(grpcpool_response_details(response_)); }
  /// The response message; empty unless the status is OK.
  std::string_view body() const noexcept { return view(grpcpool_response_body(response_)); }
  /// The response headers (initial metadata) in arrival order; -bin values decoded.
  Metadata headers() const { return collect(grpcpool_response_header_count(response_), grpcpool_response_header); }
  /// The response trailers (trailing metadata) in arrival order; -bin values decoded.
  Metadata trailers() const {
    return collect(grpcpool_response_trailer_count(response_), grpcpool_response_trailer);
  }
  /// The C response, still owned by this object.
  const grpcpool_response_t* native() const noexcept { return response_; }

 private:
  static std::string_view view(grpcpool_bytes_t bytes) noexcept {
    return std::string_view(reinterpret_cast<const char*>(bytes.data), bytes.len);
  }

  Metadata collect(size_t count,
                   grpcpool_result (*entry_at)(const grpcpool_response_t*, size_t, grpcpool_metadata_entry_t*)) const {
    Metadata out;
    out.reserve(count);
    for (size_t i = 0; i < count; i++) {
      grpcpool_metadata_entry_t entry;
      detail::check(entry_at(response_, i, &entry));
      out.emplace_back(entry.key, std::string(reinterpret_cast<const char*>(entry.value), entry.value_len));
    }
    return out;
  }

  grpcpool_response_t* response_;
};

/// A streaming call, freed (and cancelled, if not over) when the Stream is destroyed. Movable,
/// not copyable; a moved-from Stream's methods throw GRPCPOOL_INVALID_HANDLE, as do those of a
/// Stream whose Pool was freed. A non-OK status is not an exception: finish() returns it.
class Stream {
 public:
  /// Takes ownership of a C stream handle.
  explicit Stream(grpcpool_stream_t handle) noexcept : handle_(handle) {}
  /// Frees the stream, cancelling a call not yet over; never throws.
  ~Stream() { grpcpool_stream_free(handle_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  /// Takes over `other`'s stream.
  Stream(Stream&& other) noexcept : handle_(std::exchange(other.handle_, 0)) {}
  /// Frees this stream (cancelling it if not over) and takes over `other`'s.
  Stream& operator=(Stream&& other) noexcept {
    if (this != &other) {
      grpcpool_stream_free(handle_);
      handle_ = std::exchange(other.handle_, 0);
    }
    return *this;
  }

  /// Sends one message, waiting under flow control. False once the stream is closed for
  /// sending (half-closed, cancelled, past its deadline, or ended: finish() says why); throws
  /// Error for anything else (GRPCPOOL_MESSAGE_TOO_LARGE, GRPCPOOL_BUSY...).
  bool send(std::string_view message) const {
    grpcpool_result result = grpcpool_stream_send(handle_, detail::bytes(message), message.size());
    if (result == GRPCPOOL_STREAM_CLOSED) return false;
    detail::check(result);
    return true;
  }

  /// Half-closes: no more messages go to the server; receiving goes on.
  void close_send() const { detail::check(grpcpool_stream_close_send(handle_)); }

  /// The next message, or std::nullopt at the end of the stream (then finish() gives the status).
  std::optional<std::string> recv() const {
    grpcpool_message_t* message = nullptr;
    detail::check(grpcpool_stream_recv(handle_, &message));
    if (message == nullptr) return std::nullopt;
    std::unique_ptr<grpcpool_message_t, void (*)(grpcpool_message_t*)> owned(message, grpcpool_message_free);
    grpcpool_bytes_t bytes = grpcpool_message_bytes(message);
    return std::string(reinterpret_cast<const char*>(bytes.data), bytes.len);
  }

  /// The response headers once they come; std::nullopt if the call ended without any.
  std::optional<Metadata> headers() const {
    grpcpool_metadata_t* headers = nullptr;
    detail::check(grpcpool_stream_headers(handle_, &headers));
    if (headers == nullptr) return std::nullopt;
    std::unique_ptr<grpcpool_metadata_t, void (*)(grpcpool_metadata_t*)> owned(headers, grpcpool_metadata_free);
    Metadata out;
    for (size_t i = 0, n = grpcpool_metadata_count(headers); i < n; i++) {
      grpcpool_metadata_entry_t entry;
      detail::check(grpcpool_metadata_get(headers, i, &entry));
      out.emplace_back(entry.key, std::string(reinterpret_cast<const char*>(entry.value), entry.value_len));
    }
    return out;
  }

  /// Cancels the call (the server sees it); a recv() or send() waiting on another thread wakes.
  void cancel() const { detail::check(grpcpool_stream_cancel(handle_)); }

  /// Half-closes, reads to the end (dropping unread messages) and returns the final status,
  /// headers and trailers. Calling it again returns the same status.
  Response finish() const {
    grpcpool_response_t* response = nullptr;
    detail::check(grpcpool_stream_finish(handle_, &response));
    return Response(response);
  }

  /// The C stream handle (0 once moved from), for the async functions of the C API.
  grpcpool_stream_t handle() const noexcept { return handle_; }

 private:
  grpcpool_stream_t handle_;
};

/// A lease: a slot on one pooled connection, released when the Lease is destroyed (or by
/// release()). Movable, not copyable. A Lease may outlive its Pool: it is then dead, and
/// release() throws GRPCPOOL_INVALID_HANDLE while the destructor quietly does nothing.
class Lease {
 public:
  /// No lease (held() is false), as an async acquire that failed hands over.
  Lease() noexcept : handle_(0), held_(false) {}
  /// Takes ownership of a C lease handle.
  explicit Lease(grpcpool_lease_t handle) noexcept : handle_(handle), held_(true) {}
  /// Releases the lease if it is still held; never throws.
  ~Lease() {
    if (held_) grpcpool_release(handle_);
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  /// Takes over `other`'s lease; `other` no longer holds one.
  Lease(Lease&& other) noexcept
      : handle_(std::exchange(other.handle_, 0)), held_(std::exchange(other.held_, false)) {}
  /// Releases this lease (if held) and takes over `other`'s.
  Lease& operator=(Lease&& other) noexcept {
    if (this != &other) {
      if (held_) grpcpool_release(handle_);
      handle_ = std::exchange(other.handle_, 0);
      held_ = std::exchange(other.held_, false);
    }
    return *this;
  }

  /// Makes a blocking unary call on this lease: `method` is "/package.Service/Method",
  /// `request` the encoded message; no timeout means no deadline, a zero one that the deadline
  /// is now. Throws Error for bad input or a dead lease; a non-OK status comes back in the
  /// Response.
  Response unary(const std::string& method, std::string_view request, const Metadata& metadata = {},
                 std::optional<std::chrono::milliseconds> timeout = std::nullopt) const {
    auto entries = detail::entries(metadata);
    grpcpool_response_t* response = nullptr;
    detail::check(grpcpool_lease_unary(handle_, method.c_str(), detail::bytes(request), request.size(),
                                       entries.empty() ? nullptr : entries.data(), entries.size(),
                                       detail::to_ms(timeout), &response));
    return Response(response);
  }

  /// Opens a streaming call on this lease's slot; the lease stays held (and the slot in use
  /// until both the call is over and the lease released). No timeout means no deadline. Throws
  /// Error for bad input, or GRPCPOOL_BUSY while calls or another stream run on the lease.
  Stream open_stream(const std::string& method, const Metadata& metadata = {},
                     std::optional<std::chrono::milliseconds> timeout = std::nullopt) const {
    auto entries = detail::entries(metadata);
    grpcpool_stream_t stream = 0;
    detail::check(grpcpool_lease_open_stream(handle_, method.c_str(), entries.empty() ? nullptr : entries.data(),
                                             entries.size(), detail::to_ms(timeout), &stream));
    return Stream(stream);
  }

  /// Releases the lease now; calls still running on it finish first. Throws Error
  /// (GRPCPOOL_INVALID_HANDLE) if it was already released, moved from, or its pool freed.
  void release() {
    held_ = false;
    detail::check(grpcpool_release(std::exchange(handle_, 0)));
  }

  /// Whether this object still holds its lease (not released, not moved from).
  bool held() const noexcept { return held_; }
  /// The C lease handle (0 once released or moved from).
  grpcpool_lease_t handle() const noexcept { return handle_; }

 private:
  grpcpool_lease_t handle_;
  bool held_;
};

/// A connection pool. Movable, not copyable; freed by the destructor, which first cancels async
/// calls still running (their callbacks run) and makes leases still held dead. Any number of
/// threads may use one Pool at once.
class Pool {
 public:
  /// A pool with every default setting.
  Pool() : pool_(make(nullptr)) {}
  /// A pool with `config`'s settings (copied: the Config may go away afterwards).
  explicit Pool(const Config& config) : pool_(make(config.native())) {}
  /// Frees the pool.
  ~Pool() { grpcpool_pool_free(pool_); }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  /// Takes over `other`'s pool; `other` is left empty (its methods throw GRPCPOOL_NULL_ARGUMENT).
  Pool(Pool&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)) {}
  /// Takes over `other`'s pool, freeing this one's.
  Pool& operator=(Pool&& other) noexcept {
    if (this != &other) {
      grpcpool_pool_free(pool_);
      pool_ = std::exchange(other.pool_, nullptr);
    }
    return *this;
  }

  /// Acquires a lease on `target` ("http://host:port", "https://host:port", "unix:/path", ...),
  /// waiting up to `timeout` for a slot. `site` (such as "file.cpp:42") is recorded for leak
  /// reports. Throws Error: GRPCPOOL_ACQUIRE_TIMEOUT, GRPCPOOL_UNAVAILABLE, GRPCPOOL_INVALID_TARGET...
  Lease acquire(const std::string& target, std::chrono::milliseconds timeout, const char* site = nullptr) const {
    grpcpool_lease_t lease = 0;
    detail::check(grpcpool_acquire_at(pool_, target.c_str(), detail::to_ms(timeout), site, &lease));
    return Lease(lease);
  }

  /// A one-shot blocking call: acquires, calls and releases. The acquire waits up to `timeout`
  /// (the config's acquire timeout without one, and the call then has no deadline).
  Response unary(const std::string& target, const std::string& method, std::string_view request,
                 const Metadata& metadata = {},
                 std::optional<std::chrono::milliseconds> timeout = std::nullopt) const {
    auto entries = detail::entries(metadata);
    grpcpool_response_t* response = nullptr;
    detail::check(grpcpool_unary(pool_, target.c_str(), method.c_str(), detail::bytes(request), request.size(),
                                 entries.empty() ? nullptr : entries.data(), entries.size(),
                                 detail::to_ms(timeout), &response));
    return Response(response);
  }

  /// A one-shot blocking call with every per-call option (`options` are read now).
  Response unary(const std::string& target, const std::string& method, std::string_view request,
                 const CallOptions& options) const {
    grpcpool_response_t* response = nullptr;
    detail::check(grpcpool_unary_with(pool_, target.c_str(), method.c_str(), detail::bytes(request), request.size(),
                                      options.native(), &response));
    return Response(response);
  }

  /// A one-shot call without waiting: `done(response)` runs exactly once on a grpcpool worker
  /// thread with the outcome (a non-OK status included; CANCELLED after AsyncCall::cancel or
  /// when the pool is destroyed). `done` must return quickly and must not throw (an exception
  /// out of it ends the program) nor make blocking calls. Bad input throws Error at once, and
  /// `done` then never runs.
  AsyncCall unary_async(const std::string& target, const std::string& method, std::string_view request,
                        std::function<void(Response)> done, const CallOptions& options = CallOptions()) const {
    if (!done) throw Error(GRPCPOOL_NULL_ARGUMENT, "done is empty");
    auto held = std::make_unique<std::function<void(Response)>>(std::move(done));
    grpcpool_call_t call = 0;
    detail::check(grpcpool_unary_async_with(pool_, target.c_str(), method.c_str(), detail::bytes(request),
                                            request.size(), options.native(), &on_response, held.get(), &call));
    held.release();  // The callback owns it now.
    return AsyncCall(call);
  }

  /// Acquires a lease without waiting: `done(result, lease)` runs exactly once on a grpcpool
  /// worker thread, with GRPCPOOL_OK and the lease, or with GRPCPOOL_ACQUIRE_TIMEOUT,
  /// GRPCPOOL_UNAVAILABLE, GRPCPOOL_POOL_CLOSED or GRPCPOOL_CANCELLED (AsyncCall::cancel, or the
  /// pool destroyed) and an empty Lease. A Lease not moved out of `done` is released when it
  /// returns. The rules of unary_async's `done` apply.
  AsyncCall acquire_async(const std::string& target, std::chrono::milliseconds timeout,
                          std::function<void(grpcpool_result, Lease)> done) const {
    if (!done) throw Error(GRPCPOOL_NULL_ARGUMENT, "done is empty");
    auto held = std::make_unique<std::function<void(grpcpool_result, Lease)>>(std::move(done));
    grpcpool_call_t call = 0;
    detail::check(grpcpool_acquire_async(pool_, target.c_str(), detail::to_ms(timeout), &on_lease, held.get(), &call));
    held.release();  // The callback owns it now.
    return AsyncCall(call);
  }

  /// Opens a streaming call with every per-call option, as open_stream.
  Stream open_stream(const std::string& target, const std::string& method, const CallOptions& options) const {
    grpcpool_stream_t stream = 0;
    detail::check(grpcpool_open_stream_with(pool_, target.c_str(), method.c_str(), options.native(), &stream));
    return Stream(stream);
  }

  /// Acquires a slot on `target` and opens a streaming call on it, waiting up to `timeout` for
  /// the slot (the config's acquire timeout without one, and the call then has no deadline).
  /// Throws Error: GRPCPOOL_UNAVAILABLE, GRPCPOOL_ACQUIRE_TIMEOUT, GRPCPOOL_INVALID_METHOD...
  Stream open_stream(const std::string& target, const std::string& method, const Metadata& metadata = {},
                     std::optional<std::chrono::milliseconds> timeout = std::nullopt) const {
    auto entries = detail::entries(metadata);
    grpcpool_stream_t stream = 0;
    detail::check(grpcpool_open_stream(pool_, target.c_str(), method.c_str(),
                                       entries.empty() ? nullptr : entries.data(), entries.size(),
                                       detail::to_ms(timeout), &stream));
    return Stream(stream);
  }

  /// The pool's statistics as a JSON object (totals and one entry per target).
  std::string stats_json() const { return json(grpcpool_pool_stats_json); }
  /// Leases held past the leak threshold, as a JSON array of {"target", "site", "held_ms"}.
  std::string leaks_json() const { return json(grpcpool_pool_leaks_json); }

  /// Stops new acquires, waits up to `grace` for leases and calls in use, then closes every
  /// connection. Returns the number of slots still in use when the grace ran out.
  uint64_t shutdown(std::chrono::milliseconds grace) const {
    uint64_t still_in_use = 0;
    detail::check(grpcpool_pool_shutdown(pool_, detail::to_ms(grace), &still_in_use));
    return still_in_use;
  }

  /// The C pool, still owned by this object (for the async calls of the C API).
  const grpcpool_pool_t* native() const noexcept { return pool_; }

 private:
  static grpcpool_pool_t* make(const grpcpool_config_t* config) {
    grpcpool_pool_t* pool = nullptr;
    detail::check(grpcpool_pool_new(config, &pool));
    return pool;
  }

  static void on_response(void* user_data, grpcpool_response_t* response) noexcept {
    std::unique_ptr<std::function<void(Response)>> done(static_cast<std::function<void(Response)>*>(user_data));
    (*done)(Response(response));
  }

  static void on_lease(void* user_data, grpcpool_result result, grpcpool_lease_t lease) noexcept {
    std::unique_ptr<std::function<void(grpcpool_result, Lease)>> done(
        static_cast<std::function<void(grpcpool_result, Lease)>*>(user_data));
    (*done)(result, result == GRPCPOOL_OK ? Lease(lease) : Lease());
  }

  std::string json(grpcpool_result (*get)(const grpcpool_pool_t*, char**)) const {
    char* text = nullptr;
    detail::check(get(pool_, &text));
    std::unique_ptr<char, void (*)(char*)> owned(text, grpcpool_string_free);
    return std::string(owned.get());
  }

  grpcpool_pool_t* pool_;
};

}  // namespace grpcpool

#endif  // GRPCPOOL_HPP
