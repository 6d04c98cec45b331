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

void ThrowRange(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }
void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

bool IsAbsent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

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
  Bytes b;
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    b.data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    b.length = ta.ByteLength();
  } else if (v.IsDataView()) {
    auto dv = v.As<Napi::DataView>();
    b.data = static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    b.length = dv.ByteLength();
  } else {
    ThrowType(v.Env(), std::string(name) + " must be a Uint8Array, Buffer or other ArrayBufferView");
  }
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

std::string OptString(const Napi::Object& o, const char* key, size_t max_len) {
  Napi::Value v = o.Get(key);
  if (IsAbsent(v)) return std::string();
  if (!v.IsString()) ThrowType(o.Env(), std::string(key) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.size() > max_len) ThrowRange(o.Env(), std::string(key) + " is longer than " + std::to_string(max_len) + " bytes");
  if (s.find('\0') != std::string::npos) ThrowType(o.Env(), std::string(key) + " must not contain NUL");
  return s;
}

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
