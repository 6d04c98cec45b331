// Module entry: each area registers its own functions.
#include "common.h"

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  using namespace bpfkit;
  for (InitFn init : {InitFds, InitMaps, InitProgs, InitObjects, InitMmap, InitRingbuf, InitSockets, InitMapSlots, InitMapBatches}) init(env, exports);
  InitProgInfo(env, exports);  // translated instructions of a program
  InitMount(env, exports);   // bpffs delegation mounts (fsopen, fsconfig, fsmount, move_mount)
  InitFdpass(env, exports);  // fd passing over unix sockets (SCM_RIGHTS)
  InitLinks(env, exports);   // attaching programs: links, prog_attach, raw tracepoints, iterators
  InitPerf(env, exports);    // perf events that programs attach to
  InitNetlink(env, exports); // tc qdiscs and filters, interfaces and network namespaces
  InitPerfBuffer(env, exports);  // perf buffers (perf_event_array maps) read from user space
  InitPeer(env, exports);    // unix socket peers: credentials, pidfds, liveness
  InitOpenat2(env, exports); // path resolution confined to a directory (openat2 RESOLVE_*)
  return exports;
}

NODE_API_MODULE(bpfkit, InitAll)
