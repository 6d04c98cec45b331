// One object as a tenant sees it (ObjectView), and opening an object by id
// for a tenant: the single gate every by-id route goes through, so "not
// yours" and "does not exist" can never be told apart.
import { btfInfoByFd, Fd, linkInfoByFd, mapInfoByFd, native, progInfoByFd } from '../../sys/index.js'
import { brokerError } from '../errors.js'
import { toWire, type Kind, type ObjectView } from '../protocol.js'
import { redact, visible, type Ownership } from '../scope.js'
import type { BrokerState, HandlerContext } from '../state.js'

/** The kernel's info of an object by fd, as lib/sys reads it. */
export function infoOf(kind: Kind, fd: number): Record<string, unknown> {
  switch (kind) {
    case 'map':
      return { ...mapInfoByFd(fd) }
    case 'prog':
      return { ...progInfoByFd(fd) }
    case 'link':
      return { ...linkInfoByFd(fd) }
    case 'btf':
      return { ...btfInfoByFd(fd) }
  }
}

/**
 * The wire view of one object: info read through `fd`, foreign ids (a
 * program's maps, a link's program, BTF ids) removed unless `isVisible` says
 * the reader may see them, then made JSON-safe.
 */
export function objectView(
  _state: BrokerState,
  kind: Kind,
  id: number,
  fd: Fd | number,
  ownership: Ownership,
  isVisible: (kind: Kind, id: number) => boolean,
): ObjectView {
  const info = infoOf(kind, typeof fd === 'number' ? fd : fd.fd)
  const name = typeof info.name === 'string' ? info.name : ''
  return {
    kind,
    id,
    origin: ownership.origin,
    name,
    pins: [...ownership.pins],
    info: toWire(redact(kind, info, isVisible)) as Record<string, unknown>,
  }
}

/** The error for an object the reader may not see: the same whether it exists or not. */
export function notInView(kind: Kind, id: number): Error {
  return brokerError('ENOENT', `no ${kind} ${id} in your view`)
}

/** Opens object `kind` `id` by its id (the broker is privileged); ENOENT when gone. */
export function openById(kind: Kind, id: number): Fd {
  let n: number
  try {
    switch (kind) {
      case 'map':
        n = native.mapGetFdById(id)
        break
      case 'prog':
        n = native.progGetFdById(id)
        break
      case 'link':
        n = native.linkGetFdById(id)
        break
      case 'btf':
        n = native.btfGetFdById(id)
        break
    }
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') throw notInView(kind, id)
    throw e
  }
  return new Fd(n, kind)
}

/**
 * Opens an object the request's tenant may see (the admin sees all). Objects
 * in the registry open by their broker pin; objects known only by discovery
 * are re-checked with an uncached discovery of the tenant first (ids are
 * reused), then opened by id. Anything else: ENOENT "no map 7 in your view".
 */
export function openVisible(ctx: HandlerContext, kind: Kind, id: number): Fd {
  const { state, tenant } = ctx
  const record = state.registry.find(kind, id)
  if (tenant === null) return record ? state.registry.openObject(record) : openById(kind, id)
  if (record) {
    if (record.tenant !== tenant.name) throw notInView(kind, id)
    return state.registry.openObject(record)
  }
  if (!visible(state.owners(tenant), tenant.name, kind, id)) throw notInView(kind, id)
  return openById(kind, id)
}
