// Shared pieces of the native layer: the raw syscall, argument checks, error
// construction and fd hygiene. The native layer knows syscalls, not policies.
#pragma once
#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "generated/bpf_attr.h"

namespace bpfkit {

// bpf(2) with only the attribute bytes the command uses: the kernel rejects
// non-zero bytes past the fields it knows (E2BIG), so a short, zeroed attr
// works on older kernels for every field they have.
long SysBpf(unsigned cmd, void* attr, size_t size);

// Registers native functions of one area on `exports`.
using InitFn = void (*)(Napi::Env, Napi::Object);
void InitFds(Napi::Env env, Napi::Object exports);
void InitMaps(Napi::Env env, Napi::Object exports);
void InitProgs(Napi::Env env, Napi::Object exports);
void InitObjects(Napi::Env env, Napi::Object exports);

// ---- errors ----
// The JavaScript error factory (lib/sys/errors.ts) is handed over once at init,
// so the error classes and their messages live in TypeScript.
void SetErrorFactory(Napi::Env env, Napi::Function factory);
// Builds a BpfError (or VerifierError when log is non-empty) for `command`
// (kernel name without prefix, e.g. "map_create") and a positive errno.
Napi::Value MakeBpfError(Napi::Env env, const char* command, int err, const std::string& log = std::string(),
                         const char* detail = nullptr);
[[noreturn]] void ThrowBpfError(Napi::Env env, const char* command, int err, const std::string& log = std::string(),
                                const char* detail = nullptr);
// The same factory for every other system call ("sendmsg", "mmap", "fsopen",
// "poll", ...): a SyscallError naming that call, not a BpfError.
Napi::Value MakeSyscallError(Napi::Env env, const char* syscall, int err, const char* detail = nullptr,
                             const char* cause = nullptr);
[[noreturn]] void ThrowSyscallError(Napi::Env env, const char* syscall, int err, const char* detail = nullptr,
                                    const char* cause = nullptr);
// A BpfError whose cause native code has established (the fd is not a map, the
// path is outside a bpffs), so the message does not guess from the errno.
[[noreturn]] void ThrowBpfErrorBecause(Napi::Env env, const char* command, int err, const char* detail,
                                       const char* cause);
// The factory called through the C API only, for code that must never throw
// (a Promise's completion, which can run while the isolate is terminating):
// nullptr when the error cannot be built; nothing is left pending then.
napi_value MakeErrorNoThrow(napi_env env, const char* syscall, const char* command, int err, const std::string& log,
                            const char* detail, const char* cause = nullptr);

// ---- arguments ----
struct Bytes {
  uint8_t* data = nullptr;
  size_t length = 0;
};
// A file descriptor argument: a non-negative 32-bit integer.
int FdArg(const Napi::Value& v, const char* name);
// An optional fd: undefined, null or -1 mean "none" and give -1.
int OptFdArg(const Napi::Value& v, const char* name);
uint32_t U32Arg(const Napi::Value& v, const char* name);
uint64_t U64Arg(const Napi::Value& v, const char* name);  // number or bigint
// Any TypedArray or DataView; its bytes, not its elements.
Bytes BytesArg(const Napi::Value& v, const char* name);
bool IsAbsent(const Napi::Value& v);
// A string argument for a path or a name: under 4096 bytes (PATH_MAX), no NUL;
// TypeError otherwise, and for an empty string unless allow_empty.
std::string StringArg(const Napi::Value& v, const char* name, bool allow_empty);
// A directory fd argument: an fd, or undefined/null for AT_FDCWD.
int DirFdArg(const Napi::Value& v, const char* name);
// Optional fields of an options object.
uint32_t OptU32(const Napi::Object& o, const char* key, uint32_t def = 0);
uint64_t OptU64(const Napi::Object& o, const char* key, uint64_t def = 0);
int OptFd(const Napi::Object& o, const char* key);
// An optional string of at most max_len bytes without NUL ("" when absent).
std::string OptStringArg(const Napi::Value& v, const char* name, size_t max_len);
std::string OptString(const Napi::Object& o, const char* key, size_t max_len);

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);
// A buffer must hold at least `need` bytes the kernel will read or write.
void RequireLength(Napi::Env env, const Bytes& b, uint64_t need, const char* what);

// ---- maps ----
struct MapMeta {
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;   // as the kernel reports it
  uint32_t value_bytes = 0;  // what one lookup or update reads or writes (per-CPU: all CPUs)
  uint32_t max_entries = 0;
  uint32_t map_flags = 0;
};
// The kernel's own sizes for the map at fd (asked each time, never cached by
// number: pass a dup the caller holds, HoldFd); throws a BpfError for
// `command` when fd is not a map.
MapMeta MapMetaOf(Napi::Env env, int fd, const char* command);
// { type, keySize, valueSize, valueBytes, maxEntries } (mapMeta, mapSlotOpen's meta).
Napi::Object MapMetaObject(Napi::Env env, const MapMeta& m);
void InitMmap(Napi::Env env, Napi::Object exports);
void InitRingbuf(Napi::Env env, Napi::Object exports);
void InitSockets(Napi::Env env, Napi::Object exports);
void InitMapSlots(Napi::Env env, Napi::Object exports);
void InitMapBatches(Napi::Env env, Napi::Object exports);
void InitProgInfo(Napi::Env env, Napi::Object exports);
void InitMount(Napi::Env env, Napi::Object exports);
void InitFdpass(Napi::Env env, Napi::Object exports);
void InitLinks(Napi::Env env, Napi::Object exports);
void InitPerf(Napi::Env env, Napi::Object exports);
void InitNetlink(Napi::Env env, Napi::Object exports);
void InitPerfBuffer(Napi::Env env, Napi::Object exports);
void InitPeer(Napi::Env env, Napi::Object exports);
void InitOpenat2(Napi::Env env, Napi::Object exports);

// ---- fds ----
// The one path for every syscall that returns a new fd (libbpf's
// ensure_good_fd): a failure (ret < 0) gives -1 with errno kept; an fd on 0-2
// (read as "none" by the kernel and as stdio by everyone else) is moved to 3
// or above with O_CLOEXEC and the original closed. Safe on any thread.
int SafeFd(long ret);
// dup(fd) to 3 or above with O_CLOEXEC; -1 with errno on failure.
int DupCloexec(int fd);
// Called when an fd number stops referring to what it did (closed, released
// by its Fd, or adopted by a new Fd): ends this environment's op slots opened
// from that number. Slots own dups, so this is about meaning, not safety: an
// object whose number was given up stops working instead of living on.
void ForgetFd(napi_env env, int fd);
unsigned NumPossibleCpus();

inline uint64_t PtrToU64(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

}  // namespace bpfkit
