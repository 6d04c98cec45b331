'use strict'
// The runtime side of a fuzz case (`h` in case source): hostile values, fds
// of the harness's own making, ownership of everything a case creates (so
// that what is left open afterwards is a leak of the library, not of the
// case), and the classification of thrown errors.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

/**
 * Messages that come from JavaScript or Node-API internals, not from an
 * argument check: the API must name the argument instead.
 */
const internalPatterns = [
  /Cannot read propert/, /Cannot set propert/, /Cannot destructure/, /Cannot convert/, /Cannot mix BigInt/,
  /Cannot create property/, /Cannot access .* before initialization/, /Cannot perform .* on a detached/,
  /is not iterable/, /is not a function/, /is not a constructor/, /is not defined/, /undefined is not/, /null is not/,
  /Maximum call stack/, /Invalid array length/, /Invalid typed array length/, /Invalid DataView length/,
  /Offset is outside the bounds/, /is outside the bounds of the/, /out of range index/, /Array buffer allocation failed/,
  /Reduce of empty array/, /Do not know how to serialize/, /Invalid time value/, /BigInt.*(cannot|can't)/i,
  /^(A|An) (number|string|boolean|bigint|object|array|arraybuffer|typed ?array|buffer|date|function|external|string or symbol|detachable arraybuffer) was expected$/,
  /^Invalid argument$/, /^Unknown failure$/, /^An exception is pending$/, /^Invalid handle scope usage$/,
  /^Invalid pointer passed as argument$/, /^napi_/,
]

function isInternalMessage(message) {
  return internalPatterns.some((re) => re.test(message))
}

/** fd number -> what it refers to, for every fd of this process (minus the listing's own). */
function listFds() {
  const out = new Map()
  for (const name of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${name}`)
      if (!/^\/proc\/\d+\/fd$/.test(target)) out.set(Number(name), target)
    } catch {
      // the listing's own fd, closed by now
    }
  }
  return out
}

/** What an fd refers to, precisely enough to tell a reused number: its target, and the object id of a bpf fd. */
function fdIdentity(fd) {
  try {
    const target = fs.readlinkSync(`/proc/self/fd/${fd}`)
    if (!target.startsWith('anon_inode:')) return target
    const id = /^\w*_id:\s*\d+$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))
    return `${target} ${id?.[0] ?? ''}`
  } catch {
    return undefined
  }
}

/** Entries of `after` that `before` did not have: "fd -> target". */
function newFds(before, after) {
  const out = []
  for (const [fd, target] of after) if (before.get(fd) !== target) out.push(`${fd} -> ${target}`)
  return out
}

// A program that returns 0 (mov64 r0, 0; exit) and a BTF blob with one
// `int`: what the harness needs to make bpf objects of each kind.
const returnZero = new Uint8Array([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
const oneIntBtf = (() => {
  const b = Buffer.alloc(24 + 16 + 5)
  b.writeUInt16LE(0xeb9f, 0); b[2] = 1; b.writeUInt32LE(24, 4)
  b.writeUInt32LE(0, 8); b.writeUInt32LE(16, 12); b.writeUInt32LE(16, 16); b.writeUInt32LE(5, 20)
  b.writeUInt32LE(1, 24); b.writeUInt32LE(0x01000000, 28); b.writeUInt32LE(4, 32); b.writeUInt32LE(32, 36)
  b.write('\0int\0', 40, 'latin1')
  return new Uint8Array(b)
})()

class Harness {
  /** `tmp`: the directory to make the harness's own one in (a campaign's, removed by the parent even when a child dies). */
  constructor({ root, tmp = require('node:os').tmpdir() }) {
    this.root = root
    this.tmp = fs.mkdtempSync(path.join(tmp, 'bpfkit-fuzz-'))
    this.closers = []
    this.findings = []
    /** Fuzzed calls made, and how many threw: the campaign's size in calls rather than cases. */
    this.calls = 0
    this.errors = 0
  }

  get native() {
    return require(path.join(this.root, 'dist/sys/addon.js')).native
  }

  get api() {
    return require(path.join(this.root, 'dist/index.js'))
  }

  /** A fifo in the harness's own directory: opening it read-write gives a pipe fd without blocking. */
  get fifo() {
    if (!this._fifo) {
      this._fifo = path.join(this.tmp, 'fifo')
      execFileSync('mkfifo', [this._fifo])
    }
    return this._fifo
  }

  // ---- ownership ----

  track(close) {
    this.closers.push(close)
  }

  /**
   * Owns an fd number: closed at the end of the case, unless the case closed
   * it and the number now names something else (what a library made since),
   * which the harness must not close behind the library's back.
   */
  ownFd(fd) {
    if (!Number.isInteger(fd) || fd <= 2) return fd
    const identity = fdIdentity(fd)
    if (identity !== undefined) this.track(() => { if (fdIdentity(fd) === identity) fs.closeSync(fd) })
    return fd
  }

  /** Owns whatever an API call returned: objects with close(), Fds, messages with fds, arrays of those. */
  own(x) {
    if (x == null || typeof x !== 'object') return x
    if (Array.isArray(x)) {
      for (const e of x) this.own(e)
    } else if (typeof x.close === 'function') {
      this.track(() => x.close())
    } else if (Array.isArray(x.fds)) {
      this.own(x.fds)
    }
    return x
  }

  /** Owns what a raw native call returned, by the kind of thing that call makes. */
  ownNative(kind, x) {
    const n = this.native
    if (x == null) return x
    switch (kind) {
      case 'fd': return this.ownFd(x)
      case 'fds': for (const fd of x) this.ownFd(fd); return x
      case 'load': return (this.ownFd(x.fd), x)
      case 'recv': for (const fd of x.fds ?? []) this.ownFd(fd); return x
      case 'mmap': this.track(() => n.mapUnmap(x)); return x
      case 'ring': this.track(() => n.ringbufClose(x)); return x
      case 'perfbuf': this.track(() => n.perfbufClose(x)); return x
      case 'slot': this.track(() => n.mapSlotClose(x.slot)); return x
      case 'wait': this.track(() => n.fdWaitCancel(x)); return x
      default: return x
    }
  }

  /** Closes everything the case made, newest first. */
  async closeAll() {
    const closers = this.closers.reverse()
    this.closers = []
    for (const close of closers) {
      try { close() } catch {}
    }
    // Let rejections of promises settled by the closes, and handle closes
    // libuv finishes in its close phase, happen within this case.
    for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 1))
  }

  // ---- calls ----

  /** Runs one fuzzed call; records a JavaScript-internal message; returns its value or undefined. */
  async call(label, fn) {
    this.calls++
    try {
      return await fn()
    } catch (e) {
      this.errors++
      this.classify(label, e)
      return undefined
    }
  }

  /** A setup step that must work for the rest of the case to mean anything. */
  async setup(fn) {
    try {
      return await fn()
    } catch (e) {
      this.classify('setup', e)
      throw new SetupFailed(e)
    }
  }

  classify(label, e) {
    if (e instanceof SetupFailed) throw e
    if (!(e instanceof Error)) {
      this.findings.push({ kind: 'internal', label, message: `threw a non-Error: ${safeString(e)}` })
      return
    }
    if (e.message.startsWith('fuzz:')) return
    if (isInternalMessage(e.message)) {
      const at = (e.stack ?? '').split('\n').slice(1, 3).map((l) => l.trim()).join(' < ').replace(/^at /, '')
      this.findings.push({ kind: 'internal', label, message: `${e.name}: ${e.message}`, at })
    }
  }

  /** Calls fn with the JS stack nearly exhausted (where a failing call must still throw cleanly). */
  nearStackLimit(fn) {
    let called = false
    const dive = () => {
      try {
        dive()
      } catch {
        if (!called) {
          called = true
          try { fn() } catch {}
        }
      }
    }
    dive()
  }

  /**
   * `promise`, and if it has not settled after `ms`, `object` closed: a
   * receive or wait with nothing to wait for must then settle (a hang otherwise).
   */
  closeAfter(object, ms, promise) {
    const timer = setTimeout(() => { try { object.close() } catch {} }, ms)
    return Promise.resolve(promise).finally(() => clearTimeout(timer))
  }

  // ---- hostile values ----

  fill(bytes, n) {
    const out = new Uint8Array(n)
    out.set(bytes.subarray(0, n))
    return out
  }

  detached(n) {
    const u = new Uint8Array(n)
    structuredClone(u.buffer, { transfer: [u.buffer] })
    return u
  }

  offsetView(n) {
    return new Uint8Array(new ArrayBuffer(n + 7), 3, n)
  }

  wasmView(n) {
    return new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer, 0, Math.min(n, 65536))
  }

  throwingValueOf() {
    const fail = () => { throw new Error('fuzz: valueOf threw') }
    return { valueOf: fail, toString: fail, [Symbol.toPrimitive]: fail }
  }

  throwingProxy() {
    const fail = () => { throw new Error('fuzz: proxy trap threw') }
    return new Proxy({}, { get: fail, has: fail, ownKeys: fail, getOwnPropertyDescriptor: fail, getPrototypeOf: fail })
  }

  throwingIterable() {
    return { [Symbol.iterator]() { throw new Error('fuzz: iterator threw') } }
  }

  throwingGetter(obj, key) {
    Object.defineProperty(obj, key, { get() { throw new Error('fuzz: getter threw') }, enumerable: true, configurable: true })
    return obj
  }

  /** obj[key] returns value, after running mutate (detach a buffer, close an fd) on every read. */
  mutatingGetter(obj, key, value, mutate) {
    Object.defineProperty(obj, key, { get() { mutate(); return value }, enumerable: true, configurable: true })
    return obj
  }

  /** A check of the library's behaviour that a thrown error cannot show (bytes sent, values read). */
  expect(ok, what) {
    if (!ok) this.findings.push({ kind: 'internal', label: 'check', message: `fuzz check failed: ${what}` })
  }

  /** A full GC (children run with --expose-gc), so freed memory is reused before the next call. */
  gc() {
    globalThis.gc?.()
  }

  /** Allocates and drops buffers, so freed memory is likely reused. */
  churn() {
    for (let i = 0; i < 64; i++) new Uint8Array(64 + i).fill(0xee)
  }

  detach(view) {
    try { structuredClone(view.buffer, { transfer: [view.buffer] }) } catch {}
  }

  closeNow(fd) {
    try { fs.closeSync(fd) } catch {}
  }

  // ---- fds of the harness's own making ----

  fdNumber(p) {
    return fs.openSync(p, 'r')
  }

  closedFd() {
    const fd = fs.openSync('/dev/null', 'r')
    fs.closeSync(fd)
    return fd
  }

  pipeFd() {
    return this.ownFd(fs.openSync(this.fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK))
  }

  devNull() {
    return this.ownFd(fs.openSync('/dev/null', 'r+'))
  }

  dirFd() {
    return this.ownFd(fs.openSync(this.tmp, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY))
  }

  socketFd() {
    const [a, b] = this.native.unixSocketpair()
    this.ownFd(a)
    this.ownFd(b)
    return a
  }

  hashMapFd() {
    return this.ownFd(this.native.mapCreate({ mapType: 1, keySize: 4, valueSize: 8, maxEntries: 16 }))
  }

  arrayMapFd() {
    // BPF_F_MMAPABLE (1 << 10): also usable for mmap.
    return this.ownFd(this.native.mapCreate({ mapType: 2, keySize: 4, valueSize: 8, maxEntries: 4, mapFlags: 1024 }))
  }

  /** A perf_event_array of the harness's own, one slot per possible CPU: the only map perf buffers write entries into. */
  perfEventArrayFd() {
    return this.ownFd(this.native.mapCreate({ mapType: 4, keySize: 4, valueSize: 4, maxEntries: this.native.possibleCpus() }))
  }

  ringbufMapFd() {
    return this.ownFd(this.native.mapCreate({ mapType: 27, keySize: 0, valueSize: 0, maxEntries: 4096 }))
  }

  progFd() {
    return this.ownFd(this.native.progLoadSync({ progType: 1, insns: returnZero, license: 'GPL' }).fd)
  }

  btfFd() {
    return this.ownFd(this.native.btfLoadSync({ btf: oneIntBtf }).fd)
  }

  /** The kernel ID of one of the harness's own objects (bpf_{prog,map}_info.id at 4, bpf_btf_info.id at 12). */
  idOf(fd, kind) {
    const info = new Uint8Array(256)
    this.native.objGetInfoByFd(fd, info)
    return new DataView(info.buffer).getUint32(kind === 'btf' ? 12 : 4, true)
  }

  get returnZero() {
    return returnZero
  }

  get oneIntBtf() {
    return oneIntBtf
  }

  /** A path inside the harness's own directory (never anywhere else). */
  tmpPath(name) {
    return path.join(this.tmp, name)
  }

  cleanup() {
    try { fs.rmSync(this.tmp, { recursive: true, force: true }) } catch {}
  }
}

class SetupFailed extends Error {
  constructor(cause) {
    super(`fuzz: setup failed: ${cause instanceof Error ? cause.message : safeString(cause)}`)
  }
}

function safeString(v) {
  try { return typeof v === 'symbol' ? v.toString() : String(v) } catch { return typeof v }
}

module.exports = { fdIdentity, Harness, SetupFailed, isInternalMessage, listFds, newFds, returnZero, oneIntBtf, safeString }
