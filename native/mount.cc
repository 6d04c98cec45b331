// The new mount API (Linux 5.2+) as far as bpffs delegation needs it: a
// tenant opens a bpf filesystem context in its own user namespace (fsopen),
// a privileged manager sets delegate_* options on it (fsconfig), creates the
// superblock and a detached mount (fsmount), and the tenant attaches that
// mount (move_mount) or opens its root (openat) to create a token.
// Errors are thrown as SyscallError naming the call that failed; the
// TypeScript layer words them for people.
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace bpfkit {
namespace {

Napi::Value NewFd(Napi::Env env, long ret, const char* syscall, const char* detail) {
  int fd = SafeFd(ret);
  if (fd < 0) ThrowSyscallError(env, syscall, errno, detail);
  ForgetFd(env, fd);
  return Napi::Number::New(env, fd);
}

// fsopen(fsName) -> filesystem context fd (FSOPEN_CLOEXEC).
Napi::Value Fsopen(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info[0], "fsName", false);
  return NewFd(info.Env(), syscall(__NR_fsopen, name.c_str(), FSOPEN_CLOEXEC), "fsopen", name.c_str());
}

// fspick(dirFd, path) -> context fd for reconfiguring the mount at path
// (an empty path picks dirFd itself).
Napi::Value Fspick(const Napi::CallbackInfo& info) {
  int dir = DirFdArg(info[0], "dirFd");
  std::string path = StringArg(info[1], "path", true);
  unsigned flags = FSPICK_CLOEXEC | (path.empty() ? FSPICK_EMPTY_PATH : 0);
  return NewFd(info.Env(), syscall(__NR_fspick, dir, path.c_str(), flags), "fspick", path.c_str());
}

// fsconfigString(fsFd, key, value): FSCONFIG_SET_STRING.
Napi::Value FsconfigString(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fsFd");
  std::string key = StringArg(info[1], "key", false);
  std::string value = StringArg(info[2], "value", true);
  if (syscall(__NR_fsconfig, fd, FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0) != 0) {
    std::string detail = key + "=" + value;
    ThrowSyscallError(info.Env(), "fsconfig", errno, detail.c_str());
  }
  return info.Env().Undefined();
}

// fsconfigCreate(fsFd): FSCONFIG_CMD_CREATE, making the superblock.
Napi::Value FsconfigCreate(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fsFd");
  if (syscall(__NR_fsconfig, fd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    ThrowSyscallError(info.Env(), "fsconfig", errno, "create");
  }
  return info.Env().Undefined();
}

// fsmount(fsFd, attrFlags) -> detached mount fd (an O_PATH fd, FSMOUNT_CLOEXEC).
Napi::Value Fsmount(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fsFd");
  uint32_t attrs = IsAbsent(info[1]) ? 0 : U32Arg(info[1], "attrFlags");
  return NewFd(info.Env(), syscall(__NR_fsmount, fd, FSMOUNT_CLOEXEC, attrs), "fsmount", nullptr);
}

// moveMount(mountFd, targetPath): attaches a detached mount at targetPath in
// the caller's mount namespace.
Napi::Value MoveMount(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "mountFd");
  std::string to = StringArg(info[1], "targetPath", false);
  if (syscall(__NR_move_mount, fd, "", AT_FDCWD, to.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    ThrowSyscallError(info.Env(), "move_mount", errno, to.c_str());
  }
  return info.Env().Undefined();
}

// openDirectory(dirFd, path) -> fd: openat(dirFd, path, O_RDONLY|O_DIRECTORY|O_CLOEXEC).
// With path "." on a mount fd this opens the mount's root for BPF_TOKEN_CREATE.
Napi::Value OpenDirectory(const Napi::CallbackInfo& info) {
  int dir = DirFdArg(info[0], "dirFd");
  std::string path = StringArg(info[1], "path", false);
  return NewFd(info.Env(), openat(dir, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "openat", path.c_str());
}

// fdFlags(fd) -> the file status flags (fcntl F_GETFL), e.g. to tell an O_PATH fd.
Napi::Value FdFlags(const Napi::CallbackInfo& info) {
  int fd = FdArg(info[0], "fd");
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) ThrowSyscallError(info.Env(), "fcntl", errno);
  return Napi::Number::New(info.Env(), flags);
}

}  // namespace

void InitMount(Napi::Env env, Napi::Object exports) {
  exports.Set("fsopen", Napi::Function::New(env, Fsopen, "fsopen"));
  exports.Set("fspick", Napi::Function::New(env, Fspick, "fspick"));
  exports.Set("fsconfigString", Napi::Function::New(env, FsconfigString, "fsconfigString"));
  exports.Set("fsconfigCreate", Napi::Function::New(env, FsconfigCreate, "fsconfigCreate"));
  exports.Set("fsmount", Napi::Function::New(env, Fsmount, "fsmount"));
  exports.Set("moveMount", Napi::Function::New(env, MoveMount, "moveMount"));
  exports.Set("openDirectory", Napi::Function::New(env, OpenDirectory, "openDirectory"));
  exports.Set("fdFlags", Napi::Function::New(env, FdFlags, "fdFlags"));
}

}  // namespace bpfkit
