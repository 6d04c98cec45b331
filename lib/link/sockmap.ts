// sk_msg and sk_skb programs on a sockmap or sockhash: they run for the
// sockets in the map (sk_msg on each sendmsg, sk_skb on received data). Since
// Linux 6.10 the attachment can be a kernel link (LINK_CREATE with the map as
// target: an ID, a pin, LINK_UPDATE); before that the only way is PROG_ATTACH
// to the map, which the map keeps until PROG_DETACH names the same program.
// Both come back as a BpfLink.
import { supportsSockmapLinks, haveSockmapLinks } from '../features/attach-sockets.js'
import { Fd, closedError, createBpfError, enumName, kernel, mapInfoByFd, native, progInfoByFd, type LinkInfo } from '../sys/index.js'
import type { FdRef } from '../map/values.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink, type Attachment } from './link.js'
import { programFd, programType } from './program-ref.js'

/** Where on a sockmap a program goes (the kernel's attach type names). */
export type SockmapAttachType = 'sk_msg_verdict' | 'sk_skb_stream_parser' | 'sk_skb_stream_verdict' | 'sk_skb_verdict'

const ATTACH_TYPES: Readonly<Record<SockmapAttachType, string>> = {
  sk_msg_verdict: 'sk_msg',
  sk_skb_stream_parser: 'sk_skb',
  sk_skb_stream_verdict: 'sk_skb',
  sk_skb_verdict: 'sk_skb',
}

// libbpf's section names for these programs, and the attach type each names.
const SECTIONS: Readonly<Record<string, SockmapAttachType>> = {
  sk_msg: 'sk_msg_verdict',
  'sk_skb/stream_parser': 'sk_skb_stream_parser',
  'sk_skb/stream_verdict': 'sk_skb_stream_verdict',
  'sk_skb/verdict': 'sk_skb_verdict',
}

export interface SockmapAttachOptions {
  /**
   * true: a sockmap link or NotSupportedError (Linux 6.10+); false: always
   * PROG_ATTACH; undefined (default): a link where the kernel has them.
   */
  link?: boolean
}

function mapFd(map: FdRef): number {
  if (map === null || typeof map !== 'object' || !('fd' in map)) throw new TypeError(`attachSockmap: map must be a BpfMap or an object with a map fd, got ${describeValue(map)}`)
  return map.fd
}

/** The attach type given, else the one the program's section or type names. */
function attachTypeFor(program: FdRef, type: string, given: string | undefined): SockmapAttachType {
  if (given !== undefined) {
    if (typeof given !== 'string' || !Object.hasOwn(ATTACH_TYPES, given)) {
      throw new TypeError(`attachSockmap: attachType must be one of ${Object.keys(ATTACH_TYPES).join(', ')}, got ${describeValue(given)}`)
    }
    const wants = ATTACH_TYPES[given as SockmapAttachType]
    if (wants !== type) throw new TypeError(`attachSockmap: ${given} takes an ${wants} program, got a ${type} program`)
    return given as SockmapAttachType
  }
  const section = (program as { section?: unknown }).section
  if (typeof section === 'string' && Object.hasOwn(SECTIONS, section)) return SECTIONS[section]
  if (type === 'sk_msg') return 'sk_msg_verdict'
  throw new TypeError(`attachSockmap: say where the ${type} program goes: attachType 'sk_skb_stream_parser', 'sk_skb_stream_verdict' or 'sk_skb_verdict'`)
}

/**
 * Attaches an sk_msg or sk_skb program to a sockmap or sockhash. The attach
 * type comes from `attachType`, else the program's section (sk_msg,
 * sk_skb/stream_parser, sk_skb/stream_verdict, sk_skb/verdict), else sk_msg
 * programs go to 'sk_msg_verdict'. The map takes one program per attach
 * type; sockets added to the map get them.
 *
 * With sockmap links (Linux 6.10+) the result is a kernel link (kind 'link':
 * ID, pin, update). Otherwise (or with `{ link: false }`) it is a PROG_ATTACH
 * attachment (kind 'prog_attach'): no ID or pin; `update` attaches the new
 * program in place; `detach` and `close` detach it with PROG_DETACH. On
 * these kernels PROG_ATTACH replaces a program attached the same way.
 *
 * Errors: TypeError for a map that is not a sockmap/sockhash, a program of
 * another type or an attach type it cannot take; NotSupportedError for
 * `{ link: true }` before 6.10; BpfError EBUSY when a link already holds the
 * slot, EPERM without CAP_NET_ADMIN. sk_skb verdict without a parser
 * ('sk_skb_verdict') needs Linux 5.13.
 */
export function attachSockmap(program: FdRef, map: FdRef, attachType?: SockmapAttachType, options: SockmapAttachOptions = {}): BpfLink {
  checkOptions('attachSockmap', options, ['link'], { types: { link: 'boolean' } })
  const progFd = programFd('attachSockmap', program)
  const targetFd = mapFd(map)
  const type = programType('attachSockmap', program)
  if (type !== 'sk_msg' && type !== 'sk_skb') throw new TypeError(`attachSockmap: a ${type} program does not attach to a sockmap (sk_msg and sk_skb do)`)
  const mapInfo = mapInfoByFd(targetFd)
  if (mapInfo.type !== 'sockmap' && mapInfo.type !== 'sockhash') throw new TypeError(`attachSockmap: map must be a sockmap or sockhash, got a ${mapInfo.type} map`)
  const where = attachTypeFor(program, type, attachType)
  const attach = kernel.attachTypes[where]
  const useLink = options.link ?? supportsSockmapLinks()
  if (useLink) {
    haveSockmapLinks()
    return BpfLink.fromLinkFd(new Fd(native.linkCreate({ progFd, targetFd, attachType: attach }), 'link'))
  }
  // The attachment keeps its own references: the caller may close the map
  // object and program, and their numbers may be reused before detach.
  const heldMap = new Fd(native.dupFd(targetFd), 'map')
  let heldProg: Fd | undefined
  try {
    heldProg = new Fd(native.dupFd(progFd), 'prog')
    native.progAttach({ targetFd: heldMap.fd, progFd: heldProg.fd, attachType: attach })
    return BpfLink.fromAttachment(new SockmapAttachment(heldMap, heldProg, attach, mapInfo.id))
  } catch (e) {
    heldProg?.close()
    heldMap.close()
    throw e
  }
}

/** A program PROG_ATTACHed to a sockmap: detached by PROG_DETACH with the same program. */
class SockmapAttachment implements Attachment {
  readonly kind = 'prog_attach'
  #attached = true
  #done = false

  constructor(readonly map: Fd, private prog: Fd, readonly attachType: number, readonly mapId: number) {}

  get closed(): boolean {
    return this.#done
  }

  #check(): void {
    if (this.#done) throw closedError('link (a program attached to a sockmap)')
    if (!this.#attached) throw new TypeError('the sockmap attachment is detached')
  }

  info(): LinkInfo & { mapId: number } {
    this.#check()
    return { id: 0, type: 'sockmap', typeId: 0, progId: progInfoByFd(this.prog.fd).id, attachType: enumName(kernel.attachTypes, this.attachType), mapId: this.mapId }
  }

  update(program: FdRef, expected?: FdRef): void {
    this.#check()
    if (expected !== undefined && progInfoByFd(programFd('update', expected)).id !== progInfoByFd(this.prog.fd).id) {
      throw createBpfError('prog_attach', 1, undefined, 'the program attached to the sockmap is not the expected one')
    }
    const next = new Fd(native.dupFd(programFd('attachSockmap', program)), 'prog')
    try {
      // The map holds one program per attach type: attaching replaces it.
      native.progAttach({ targetFd: this.map.fd, progFd: next.fd, attachType: this.attachType })
    } catch (e) {
      next.close()
      throw e
    }
    this.prog.close()
    this.prog = next
  }

  detach(): void {
    if (this.#done || !this.#attached) return
    this.#attached = false
    try {
      native.progDetach({ targetFd: this.map.fd, progFd: this.prog.fd, attachType: this.attachType })
    } catch (e) {
      // ENOENT: another attach replaced ours; nothing of ours is left there.
      if ((e as { code?: string }).code !== 'ENOENT') throw e
    }
  }

  close(): void {
    if (this.#done) return
    try {
      this.detach()
    } finally {
      this.#done = true
      this.prog.close()
      this.map.close()
    }
  }
}
