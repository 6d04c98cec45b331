#include "promise_worker.h"

#include <fcntl.h>

#include <string>

#include "env_state.h"

namespace bpfkit {

HeldFd HoldFd(Napi::Env env, int fd, const char* command, const char* name) {
  int dup = DupCloexec(fd);
  if (dup < 0) {
    int err = errno;
    std::string detail = std::string(name) + " " + std::to_string(fd) + (err == EBADF ? " is not open" : "");
    ThrowBpfError(env, command, err, std::string(), detail.c_str());
  }
  return HeldFd(dup);
}

namespace {
napi_value Nothing(napi_env, napi_callback_info) { return nullptr; }

// This environment's no-op function, made on first use; nullptr when it
// cannot be made or read (then JavaScript cannot run either). C API only:
// this runs in completions, where nothing may throw.
napi_value NoOp(napi_env env) {
  Napi::FunctionReference& ref = StateOf(env).no_op;
  napi_value fn = nullptr;
  if (!ref.IsEmpty()) return napi_get_reference_value(env, ref, &fn) == napi_ok ? fn : nullptr;
  napi_ref made = nullptr;
  if (napi_create_function(env, "canRunJs", NAPI_AUTO_LENGTH, Nothing, nullptr, &fn) != napi_ok ||
      napi_create_reference(env, fn, 1, &made) != napi_ok) {
    return nullptr;
  }
  ref = Napi::FunctionReference(env, made);
  return fn;
}
}  // namespace

bool CanRunJs(Napi::Env env) {
  // Calls a no-op function: the call fails, with nothing run, both while
  // Node forbids JavaScript (environment teardown) and once the isolate is
  // terminating (Worker.terminate(), which lands at any time from another
  // thread). Plain object operations would still succeed then, and the
  // promise resolution after them would not.
  napi_value fn = NoOp(env);
  napi_value global = nullptr;
  napi_value result = nullptr;
  if (fn == nullptr) {
    ClearPending(env);
    return false;
  }
  if (napi_get_global(env, &global) != napi_ok) return false;
  if (napi_call_function(env, global, fn, 0, nullptr, &result) == napi_ok) return true;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored = nullptr;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  return false;
}

void ClearPending(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored = nullptr;
    napi_get_and_clear_last_exception(env, &ignored);
  }
}

RawObject::RawObject(napi_env env) : env_(env) {
  if (napi_create_object(env, &object_) != napi_ok) {
    object_ = nullptr;
    ClearPending(env);
  }
}

void RawObject::Set(const char* key, napi_status made, napi_value v) {
  if (object_ == nullptr) return;
  if (made != napi_ok || napi_set_named_property(env_, object_, key, v) != napi_ok) {
    object_ = nullptr;
    ClearPending(env_);
  }
}

// Each value is made before Set reads it (never in one call's arguments,
// whose order of evaluation is unspecified).
void RawObject::Number(const char* key, double v) {
  if (object_ == nullptr) return;
  napi_value n = nullptr;
  napi_status made = napi_create_double(env_, v, &n);
  Set(key, made, n);
}

void RawObject::String(const char* key, const std::string& v) {
  if (object_ == nullptr) return;
  napi_value str = nullptr;
  napi_status made = napi_create_string_utf8(env_, v.data(), v.size(), &str);
  Set(key, made, str);
}

void RawObject::Buffer(const char* key, const void* data, size_t length) {
  if (object_ == nullptr) return;
  napi_value buf = nullptr;
  void* copy = nullptr;
  napi_status made = napi_create_buffer_copy(env_, length, data, &copy, &buf);
  Set(key, made, buf);
}

Napi::Value ReturnOrThrow(Napi::Env env, const Settlement& s) {
  if (s.value == nullptr) throw Napi::Error::New(env, "bpfkit: could not build the result");
  if (!s.ok) throw Napi::Error(env, s.value);
  return Napi::Value(env, s.value);
}

}  // namespace bpfkit
