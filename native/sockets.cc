// Socket filters: SO_ATTACH_BPF / SO_DETACH_BPF on a socket the caller owns.
// These are setsockopt calls, not bpf() commands, but they are how a
// socket_filter program is attached.
#include <sys/socket.h>

#include "common.h"

namespace bpfkit {
namespace {

// asm-generic/socket.h; the system headers of older distributions lack them.
constexpr int kSoAttachBpf = 50;
constexpr int kSoDetachBpf = 27;  // SO_DETACH_FILTER

// socketAttachProg(socketFd, progFd)
Napi::Value SocketAttachProg(const Napi::CallbackInfo& info) {
  int sock = FdArg(info[0], "socket fd");
  int prog = FdArg(info[1], "program fd");
  if (setsockopt(sock, SOL_SOCKET, kSoAttachBpf, &prog, sizeof(prog)) != 0) {
    ThrowBpfError(info.Env(), "so_attach_bpf", errno, std::string(),
                  errno == ENOTSOCK ? "the fd is not a socket" : errno == EINVAL ? "the program is not a socket_filter" : nullptr);
  }
  return info.Env().Undefined();
}

// socketDetachProg(socketFd) -> false when no filter was attached
Napi::Value SocketDetachProg(const Napi::CallbackInfo& info) {
  int sock = FdArg(info[0], "socket fd");
  int unused = 0;
  if (setsockopt(sock, SOL_SOCKET, kSoDetachBpf, &unused, sizeof(unused)) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
    ThrowBpfError(info.Env(), "so_detach_bpf", errno);
  }
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace

void InitSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("socketAttachProg", Napi::Function::New(env, SocketAttachProg, "socketAttachProg"));
  exports.Set("socketDetachProg", Napi::Function::New(env, SocketDetachProg, "socketDetachProg"));
}

}  // namespace bpfkit
