// File descriptor hygiene shared by every object kind, and addon set-up calls.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common.h"
#include "env_state.h"

namespace bpfkit {
namespace {

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fd");
  ForgetFd(info.Env(), fd);
  StateOf(info.Env()).owned.Drop(fd);
  // Linux releases the fd even when close reports EINTR, so it is never retried.
  if (close(fd) != 0 && errno != EINTR) ThrowSyscallError(info.Env(), "close", errno);
  return info.Env().Undefined();
}

Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fd");
  int dup = DupCloexec(fd);
  if (dup < 0) ThrowSyscallError(info.Env(), "fcntl", errno, "dup");
  ForgetFd(info.Env(), dup);
  return Napi::Number::New(info.Env(), dup);
}

// Drops what the native layer remembers about an fd number (the op slots
// opened from it): called when an Fd releases its number, or adopts one that
// may have been closed and reused behind bpfkit's back.
Napi::Value ForgetFdJs(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info[0], "fd");
  ForgetFd(info.Env(), fd);
  StateOf(info.Env()).owned.Drop(fd);
  return info.Env().Undefined();
}

// An Fd takes ownership of a number: what native state was opened from it
// belongs to what it meant before and ends, and the number is closed with
// this environment if the Fd never closes it (a terminated worker).
Napi::Value AdoptFd(const Napi::CallbackInfo& info) {
  const int fd = FdArg(info[0], "fd");
  ForgetFd(info.Env(), fd);
  StateOf(info.Env()).owned.Adopt(fd);
  return info.Env().Undefined();
}

// Whether fd is open in this process (fcntl F_GETFD), for diagnostics and tests.
Napi::Value FdIsOpen(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fd");
  return Napi::Boolean::New(info.Env(), fcntl(fd, F_GETFD) >= 0);
}

// The number of possible CPUs, which sizes per-CPU values.
Napi::Value PossibleCpus(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), NumPossibleCpus()); }

Napi::Value SetErrorFactoryJs(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) ThrowType(info.Env(), "error factory must be a function");
  SetErrorFactory(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

// Read once per process (a thread-safe static: workers may ask at once);
// the set of possible CPUs is fixed at boot.
static unsigned ReadPossibleCpus() {
  // Format: "0-3" or "0,2-5". The kernel copies one value per possible CPU
  // (for_each_possible_cpu), so the count is the number of CPUs listed.
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string s;
  std::getline(f, s);
  unsigned count = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string part = s.substr(i, j - i);
    size_t dash = part.find('-');
    unsigned long lo = strtoul(part.c_str(), nullptr, 10);
    unsigned long hi = dash == std::string::npos ? lo : strtoul(part.c_str() + dash + 1, nullptr, 10);
    if (hi >= lo) count += static_cast<unsigned>(hi - lo + 1);
    i = j + 1;
  }
  return count == 0 ? 1 : count;
}

unsigned NumPossibleCpus() {
  static const unsigned cached = ReadPossibleCpus();
  return cached;
}

void InitFds(Napi::Env env, Napi::Object exports) {
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
  exports.Set("forgetFd", Napi::Function::New(env, ForgetFdJs, "forgetFd"));
  exports.Set("adoptFd", Napi::Function::New(env, AdoptFd, "adoptFd"));
  exports.Set("fdIsOpen", Napi::Function::New(env, FdIsOpen, "fdIsOpen"));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpus, "possibleCpus"));
  exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactoryJs, "setErrorFactory"));
}

}  // namespace bpfkit
