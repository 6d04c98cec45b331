// A uv_poll on Node's own loop that cannot be broken by the fd it watches or
// by the environment going away:
// - it polls its own fd (a dup taken while the caller's number was known to
//   be right), so the caller closing or reusing its number never reaches
//   libuv (epoll_ctl on a closed number aborts the process);
// - it registers an async cleanup hook, so a worker_threads environment torn
//   down while a wait is pending closes the handle and lets libuv finish
//   with it before the loop is closed (an open handle there aborts too).
#pragma once
#include <uv.h>

#include "common.h"

namespace bpfkit {

class Poller {
 public:
  // Called when the environment is torn down while the poller is open; the
  // owner must drop its pointer to the poller and release what it holds.
  using Teardown = void (*)(void* owner);

  // Takes ownership of `fd` (closed with the poller, or here on failure).
  // Throws a SyscallError ('poll') when libuv refuses the fd.
  static Poller* Open(Napi::Env env, int fd, Teardown teardown, void* owner);
  // The owner given to Open, from the handle a poll callback receives.
  static void* OwnerOf(uv_poll_t* handle);

  // uv_poll_start / uv_poll_stop; Start returns the libuv status.
  int Start(int events, uv_poll_cb cb);
  void Stop();
  // Stops polling for good and closes the fd at once; the poller deletes
  // itself once libuv is done with the handle.
  void Close();

 private:
  Poller() = default;
  static void OnTeardown(napi_async_cleanup_hook_handle handle, void* arg);
  static void OnClosed(uv_handle_t* handle);

  uv_poll_t poll_{};
  int fd_ = -1;
  bool closed_ = false;
  Teardown teardown_ = nullptr;
  void* owner_ = nullptr;
  napi_async_cleanup_hook_handle hook_ = nullptr;
};

// A dup of `fd` (O_CLOEXEC, at 3 or above) that the caller owns, or -1 with
// errno set.
int DupAbove2(int fd);

}  // namespace bpfkit
