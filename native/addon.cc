// Module entry: each area registers its own functions.
#include "common.h"

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  using namespace bpfkit;
  for (InitFn init : {InitFds, InitMaps, InitProgs, InitObjects, InitMmap, InitRingbuf, InitSockets, InitMapSlots}) init(env, exports);
  for (InitFn init : {InitProgInfo}) init(env, exports);
  return exports;
}

NODE_API_MODULE(bpfkit, InitAll)
