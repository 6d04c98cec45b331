#include "common.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>
#include <limits>

#include "env_state.h"

namespace bpfkit {

long SysBpf(unsigned cmd, void* attr, size_t size) { return syscall(__NR_bpf, cmd, attr, size); }

namespace {
// Deleted by Node when the environment ends (main thread exit, worker exit).
struct AddonData {
  Napi::FunctionReference error_factory;
  EnvState state;
};
AddonData* Data(Napi::Env env) {
  auto* d = env.GetInstanceData<AddonData>();
  if (d == nullptr) {
    d = new AddonData();
    env.SetInstanceData(d);
  }
  return d;
}
}  // namespace

EnvState& StateOf(napi_env env) { return Data(Napi::Env(env))->state; }

void SetErrorFactory(Napi::Env env, Napi::Function factory) { Data(env)->error_factory = Napi::Persistent(factory); }

Napi::Value MakeBpfError(Napi::Env env, const char* command, int err, const std::string& log, const char* detail) {
  auto& f = Data(env)->error_factory;
  if (f.IsEmpty()) {
    return Napi::Error::New(env, std::string(command) + ": " + strerror(err)).Value();
  }
  return f.Call({Napi::String::New(env, command), Napi::Number::New(env, err),
                 log.empty() ? env.Undefined() : Napi::String::New(env, log),
                 detail == nullptr ? env.Undefined() : Napi::String::New(env, detail)});
}

void ThrowBpfError(Napi::Env env, const char* command, int err, const std::string& log, const char* detail) {
  throw Napi::Error(env, MakeBpfError(env, command, err, log, detail));
}

// The factory's full form: (command, errno, log, detail, syscall, cause).
static Napi::Value MakeNativeError(Napi::Env env, const char* syscall, const char* command, int err,
                                   const char* detail, const char* cause) {
  auto& f = Data(env)->error_factory;
  auto str = [&](const char* s) { return s == nullptr ? env.Undefined() : Napi::String::New(env, s); };
  if (f.IsEmpty()) return Napi::Error::New(env, std::string(syscall) + ": " + strerror(err)).Value();
  return f.Call({Napi::String::New(env, command), Napi::Number::New(env, err), env.Undefined(), str(detail),
                 Napi::String::New(env, syscall), str(cause)});
}

Napi::Value MakeSyscallError(Napi::Env env, const char* syscall, int err, const char* detail, const char* cause) {
  return MakeNativeError(env, syscall, syscall, err, detail, cause);
}

void ThrowSyscallError(Napi::Env env, const char* syscall, int err, const char* detail, const char* cause) {
  throw Napi::Error(env, MakeSyscallError(env, syscall, err, detail, cause));
}

void ThrowBpfErrorBecause(Napi::Env env, const char* command, int err, const char* detail, const char* cause) {
  throw Napi::Error(env, MakeNativeError(env, "bpf", command, err, detail, cause));
}

napi_value MakeErrorNoThrow(napi_env env, const char* syscall, const char* command, int err, const std::string& log,
                            const char* detail, const char* cause) {
  napi_value out = nullptr;
  auto give_up = [&]() -> napi_value {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored = nullptr;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    return nullptr;
  };
  auto str = [&](const char* s, size_t n, napi_value* v) {
    if (s == nullptr) return napi_get_undefined(env, v);
    return napi_create_string_utf8(env, s, n, v);
  };
  auto& f = Data(env)->error_factory;
  napi_value fn = nullptr;
  if (f.IsEmpty() || napi_get_reference_value(env, static_cast<napi_ref>(f), &fn) != napi_ok || fn == nullptr) {
    napi_value msg = nullptr;
    std::string text = std::string(command) + ": " + strerror(err);
    if (napi_create_string_utf8(env, text.c_str(), text.size(), &msg) != napi_ok) return give_up();
    if (napi_create_error(env, nullptr, msg, &out) != napi_ok) return give_up();
    return out;
  }
  napi_value args[6] = {};
  napi_value global = nullptr;
  if (str(command, NAPI_AUTO_LENGTH, &args[0]) != napi_ok || napi_create_int32(env, err, &args[1]) != napi_ok ||
      str(log.empty() ? nullptr : log.data(), log.size(), &args[2]) != napi_ok ||
      str(detail, NAPI_AUTO_LENGTH, &args[3]) != napi_ok || str(syscall, NAPI_AUTO_LENGTH, &args[4]) != napi_ok ||
      str(cause, NAPI_AUTO_LENGTH, &args[5]) != napi_ok || napi_get_global(env, &global) != napi_ok ||
      napi_call_function(env, global, fn, 6, args, &out) != napi_ok) {
    return give_up();
  }
  return out;
}

void ThrowRange(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }
void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

bool IsAbsent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

std::string StringArg(const Napi::Value& v, const char* name, bool allow_empty) {
  if (!v.IsString()) ThrowType(v.Env(), std::string(name) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if ((!allow_empty && s.empty()) || s.size() >= 4096 || s.find('\0') != std::string::npos) {
    ThrowType(v.Env(), std::string(name) + " must be a" + (allow_empty ? "" : " non-empty") +
                           " string under 4096 bytes without NUL");
  }
  return s;
}

int DirFdArg(const Napi::Value& v, const char* name) {
  if (IsAbsent(v)) return AT_FDCWD;
  return FdArg(v, name);
}

static double IntegerNumber(const Napi::Value& v, const char* name, double min, double max) {
  if (!v.IsNumber()) ThrowType(v.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) ThrowRange(v.Env(), std::string(name) + " must be an integer");
  if (d < min || d > max) {
    ThrowRange(v.Env(), std::string(name) + " is out of range (" + std::to_string(static_cast<long long>(min)) +
                            ".." + std::to_string(static_cast<unsigned long long>(max)) + ")");
  }
  return d;
}

int FdArg(const Napi::Value& v, const char* name) {
  return static_cast<int>(IntegerNumber(v, name, 0, std::numeric_limits<int>::max()));
}

int OptFdArg(const Napi::Value& v, const char* name) {
  if (IsAbsent(v)) return -1;
  if (v.IsNumber() && v.As<Napi::Number>().DoubleValue() == -1) return -1;
  return FdArg(v, name);
}

uint32_t U32Arg(const Napi::Value& v, const char* name) {
  return static_cast<uint32_t>(IntegerNumber(v, name, 0, std::numeric_limits<uint32_t>::max()));
}

uint64_t U64Arg(const Napi::Value& v, const char* name) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(v.Env(), std::string(name) + " must fit in 64 unsigned bits");
    return x;
  }
  return static_cast<uint64_t>(IntegerNumber(v, name, 0, 9007199254740991.0));
}

Bytes BytesArg(const Napi::Value& v, const char* name) {
  // The C API's view info gives the data pointer (offset included) for views
  // of any buffer, a SharedArrayBuffer too; asking the view's ArrayBuffer for
  // its data fails for a SharedArrayBuffer with a bare "Invalid argument".
  Bytes b;
  void* data = nullptr;
  napi_status st = napi_invalid_arg;
  if (v.IsTypedArray()) {
    napi_typedarray_type type;
    size_t length = 0;
    st = napi_get_typedarray_info(v.Env(), v, &type, &length, &data, nullptr, nullptr);
    b.length = v.As<Napi::TypedArray>().ByteLength();
  } else if (v.IsDataView()) {
    st = napi_get_dataview_info(v.Env(), v, &b.length, &data, nullptr, nullptr);
  } else {
    ThrowType(v.Env(), std::string(name) + " must be a Uint8Array, Buffer or other ArrayBufferView");
  }
  if (st != napi_ok) ThrowType(v.Env(), std::string(name) + ": the buffer behind this view cannot be read");
  b.data = static_cast<uint8_t*>(data);
  if (b.data == nullptr) b.length = 0;  // a detached buffer's view: no bytes
  return b;
}

uint32_t OptU32(const Napi::Object& o, const char* key, uint32_t def) {
  Napi::Value v = o.Get(key);
  return IsAbsent(v) ? def : U32Arg(v, key);
}

uint64_t OptU64(const Napi::Object& o, const char* key, uint64_t def) {
  Napi::Value v = o.Get(key);
  return IsAbsent(v) ? def : U64Arg(v, key);
}

int OptFd(const Napi::Object& o, const char* key) { return OptFdArg(o.Get(key), key); }

std::string OptStringArg(const Napi::Value& v, const char* name, size_t max_len) {
  if (IsAbsent(v)) return std::string();
  if (!v.IsString()) ThrowType(v.Env(), std::string(name) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.size() > max_len) ThrowRange(v.Env(), std::string(name) + " is longer than " + std::to_string(max_len) + " bytes");
  if (s.find('\0') != std::string::npos) ThrowType(v.Env(), std::string(name) + " must not contain NUL");
  return s;
}

std::string OptString(const Napi::Object& o, const char* key, size_t max_len) { return OptStringArg(o.Get(key), key, max_len); }

void RequireLength(Napi::Env env, const Bytes& b, uint64_t need, const char* what) {
  if (b.length < need) {
    ThrowRange(env, std::string(what) + " needs " + std::to_string(need) + " bytes, got " + std::to_string(b.length));
  }
}

int DupCloexec(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 3); }

int SafeFd(long ret) {
  if (ret < 0) return -1;
  const int fd = static_cast<int>(ret);
  if (fd > 2) return fd;
  int moved = DupCloexec(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  return moved;
}

}  // namespace bpfkit
