// perf events that BPF programs attach to (kprobe, uprobe and tracepoint
// events, software events sampled per CPU) or write to (perf buffers):
// perf_event_open and the three ioctls bpfkit needs.
#include <linux/perf_event.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace bpfkit {
namespace {

bool OptBool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (IsAbsent(v)) return false;
  if (!v.IsBoolean()) ThrowType(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// pid and cpu: -1 (any) or a non-negative 31-bit number.
int PidOrCpu(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (IsAbsent(v)) return -1;
  if (!v.IsNumber()) ThrowType(o.Env(), std::string(key) + " must be a number (-1 for any)");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<int>(d) || d < -1 || d > 0x7fffffff) ThrowRange(o.Env(), std::string(key) + " must be -1 or a non-negative integer");
  return static_cast<int>(d);
}

// perfEventOpen({ type, config, config1, config2, probeName, probeOffset,
//   samplePeriod | sampleFreq, sampleType, wakeupEvents, disabled, pid, cpu }) -> fd
// probeName and probeOffset fill config1 and config2 for the kprobe and uprobe
// PMUs (kprobe_func or uprobe_path, and probe_offset or kprobe_addr), so the
// string lives here for the call. The fd is opened with PERF_FLAG_FD_CLOEXEC.
Napi::Value PerfEventOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "perf_event_open: attributes must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = U32Arg(o.Get("type"), "type");
  attr.config = OptU64(o, "config");
  std::string name = OptString(o, "probeName", 4095);
  if (!name.empty() && !IsAbsent(o.Get("config1"))) ThrowType(env, "probeName and config1 are exclusive");
  if (!IsAbsent(o.Get("probeOffset")) && !IsAbsent(o.Get("config2"))) ThrowType(env, "probeOffset and config2 are exclusive");
  attr.config1 = name.empty() ? OptU64(o, "config1") : PtrToU64(name.c_str());
  attr.config2 = IsAbsent(o.Get("probeOffset")) ? OptU64(o, "config2") : OptU64(o, "probeOffset");
  bool has_period = !IsAbsent(o.Get("samplePeriod"));
  bool has_freq = !IsAbsent(o.Get("sampleFreq"));
  if (has_period && has_freq) ThrowType(env, "samplePeriod and sampleFreq are exclusive");
  if (has_freq) {
    attr.freq = 1;
    attr.sample_freq = OptU64(o, "sampleFreq");
  } else {
    attr.sample_period = OptU64(o, "samplePeriod");
  }
  attr.sample_type = OptU64(o, "sampleType");
  attr.wakeup_events = OptU32(o, "wakeupEvents");
  attr.disabled = OptBool(o, "disabled") ? 1 : 0;
  int pid = PidOrCpu(o, "pid");
  int cpu = PidOrCpu(o, "cpu");
  if (pid == -1 && cpu == -1) ThrowType(env, "perf_event_open needs a pid or a cpu (both -1 is refused)");
  long ret = syscall(__NR_perf_event_open, &attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
  int fd = SafeFd(ret);
  if (fd < 0) ThrowSyscallError(env, "perf_event_open", errno, name.empty() ? nullptr : name.c_str());
  ForgetFd(env, fd);
  return Napi::Number::New(env, fd);
}

// The ioctl numbers mean other things to other devices: only a perf event's fd is asked.
bool IsPerfEventFd(int fd) {
  char link[64];
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
  if (n < 0) return false;
  link[n] = '\0';
  return std::string(link) == "anon_inode:[perf_event]";
}

void PerfIoctl(const Napi::CallbackInfo& info, unsigned long request, unsigned long arg, const char* what) {
  int fd = FdArg(info[0], "fd");
  if (fcntl(fd, F_GETFD) < 0) ThrowSyscallError(info.Env(), "ioctl", EBADF, what);
  if (!IsPerfEventFd(fd)) ThrowSyscallError(info.Env(), "ioctl", ENOTTY, what, "the fd is not a perf event");
  if (ioctl(fd, request, arg) != 0) ThrowSyscallError(info.Env(), "ioctl", errno, what);
}

Napi::Value PerfEventEnable(const Napi::CallbackInfo& info) {
  PerfIoctl(info, PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE");
  return info.Env().Undefined();
}

Napi::Value PerfEventDisable(const Napi::CallbackInfo& info) {
  PerfIoctl(info, PERF_EVENT_IOC_DISABLE, 0, "PERF_EVENT_IOC_DISABLE");
  return info.Env().Undefined();
}

// perfEventSetBpf(perfFd, progFd): the attachment before perf links (Linux
// 4.1+); it lasts as long as the perf event is open.
Napi::Value PerfEventSetBpf(const Napi::CallbackInfo& info) {
  int prog = FdArg(info[1], "progFd");
  PerfIoctl(info, PERF_EVENT_IOC_SET_BPF, static_cast<unsigned long>(prog), "PERF_EVENT_IOC_SET_BPF");
  return info.Env().Undefined();
}

}  // namespace

void InitPerf(Napi::Env env, Napi::Object exports) {
  exports.Set("perfEventOpen", Napi::Function::New(env, PerfEventOpen, "perfEventOpen"));
  exports.Set("perfEventEnable", Napi::Function::New(env, PerfEventEnable, "perfEventEnable"));
  exports.Set("perfEventDisable", Napi::Function::New(env, PerfEventDisable, "perfEventDisable"));
  exports.Set("perfEventSetBpf", Napi::Function::New(env, PerfEventSetBpf, "perfEventSetBpf"));
}

}  // namespace bpfkit
