// The Promise form of slow calls (program and BTF loads, test runs): a
// worker that only makes the syscall off the main thread, and settles on it.
//
// Two things make it safe where a plain Napi::AsyncWorker is not:
// - Its inputs own their fds (HeldFd, dups taken on the main thread), so
//   closing an object while the call is in flight never lets the call reach
//   whatever reuses the number; they are closed when the worker is deleted.
// - When the environment is torn down before it completes (a worker_threads
//   Worker terminated mid-load), Node still runs the completion, with
//   JavaScript forbidden: every Node-API call that could run JavaScript then
//   fails, and the C++ exception that follows aborts the process. The
//   completion checks first and settles nothing; what the call produced (a
//   new fd) is released by its owner's destructor.
#pragma once
#include <unistd.h>

#include <string>
#include <utility>

#include "common.h"

namespace bpfkit {

// An fd this object owns and closes: a dup held for an in-flight call, or
// a new fd until it is handed to JavaScript with Release().
class HeldFd {
 public:
  HeldFd() = default;
  explicit HeldFd(int fd) : fd_(fd) {}
  HeldFd(const HeldFd&) = delete;
  HeldFd& operator=(const HeldFd&) = delete;
  HeldFd(HeldFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  HeldFd& operator=(HeldFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~HeldFd() { Reset(); }

  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// A dup (O_CLOEXEC, at 3 or above) of the caller's fd argument `name` for
// an in-flight `command`; a BpfError EBADF naming the argument when the
// number is not open.
HeldFd HoldFd(Napi::Env env, int fd, const char* command, const char* name);

// False while the environment is being torn down or its isolate is
// terminating: JavaScript cannot run then, and a promise cannot be settled.
bool CanRunJs(Napi::Env env);

// Clears an exception left pending by a failed C API call.
void ClearPending(napi_env env);

// An object built with the C API only, for results that may be built while
// the isolate terminates: every step's status is checked, and after a
// failure get() is nullptr and nothing is left pending (no Napi::Error is
// ever made: making one can itself be fatal then).
class RawObject {
 public:
  explicit RawObject(napi_env env);
  void Number(const char* key, double v);
  void String(const char* key, const std::string& v);
  void Buffer(const char* key, const void* data, size_t length);
  napi_value get() const { return object_; }

 private:
  void Set(const char* key, napi_status made, napi_value v);
  napi_env env_;
  napi_value object_ = nullptr;
};

// What a settle function gives: the value, and whether it is a result
// (resolve) or an error (reject). A null value: nothing could be built.
struct Settlement {
  napi_value value = nullptr;
  bool ok = false;
};

// A sync form's return of a Settlement: the value, or the error thrown.
Napi::Value ReturnOrThrow(Napi::Env env, const Settlement& s);

template <typename Work, typename Settle>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, Work work, Settle settle)
      : Napi::AsyncWorker(env, "bpfkit"), work_(std::move(work)), settle_(std::move(settle)) {
    napi_value promise = nullptr;
    if (napi_create_promise(env, &deferred_, &promise) != napi_ok) throw Napi::Error::New(env);
    promise_ = Napi::Promise(env, promise);
  }
  Napi::Promise Promise() { return promise_; }
  void Execute() override { work_(); }
  // Settles with the C API only, and lets nothing escape: an exception
  // leaving OnOK reaches Node as a C++ exception in a C callback and aborts
  // the process, and so does a Napi::Error made while the isolate is
  // terminating (Worker.terminate() lands at any moment, from another
  // thread). When it cannot settle, nobody is left to hear it.
  void OnOK() override {
    napi_env env = Env();
    if (!CanRunJs(Env())) return;
    Settlement s;
    try {
      s = settle_(env);
    } catch (...) {
      s.value = nullptr;
    }
    if (s.value == nullptr) return ClearPending(env);
    napi_status st = s.ok ? napi_resolve_deferred(env, deferred_, s.value) : napi_reject_deferred(env, deferred_, s.value);
    if (st != napi_ok) ClearPending(env);
  }

 private:
  napi_deferred deferred_ = nullptr;
  Napi::Promise promise_;
  Work work_;
  Settle settle_;
};

template <typename Work, typename Settle>
Napi::Value RunAsync(Napi::Env env, Work work, Settle settle) {
  auto* w = new PromiseWorker<Work, Settle>(env, std::move(work), std::move(settle));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace bpfkit
