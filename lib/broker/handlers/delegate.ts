// delegate: a token mount for the tenant's policy, as serveDelegation gives
// one, over the broker's socket. The tenant sends a bpf filesystem context
// it opened in its own user namespace (fsopen("bpf")); the broker sets the
// delegate_* options of what it grants (the tenant's policy, or the smaller
// wish it names: decideGrant, the one rule both use) and sends back the
// detached mount. The context fd is the session's to close.
import { decideGrant, delegate as delegateMount } from '../../delegation/index.js'
import type { PolicyLike } from '../../policy/index.js'
import { brokerError } from '../errors.js'
import type { DelegateRequest } from '../protocol.js'
import { requireTenant, type Handler, type HandlerContext, type HandlerResult } from '../state.js'

async function delegate(ctx: HandlerContext, req: DelegateRequest): Promise<HandlerResult> {
  const tenant = requireTenant(ctx)
  if (ctx.fds.length !== 1) throw brokerError('EINVAL', `delegate takes 1 fd (a bpf filesystem context from fsopen("bpf")), got ${ctx.fds.length}`)
  const [context] = ctx.fds
  if (context.kind !== undefined) {
    throw brokerError('EINVAL', `fds[0] is a BPF ${context.kind}, not a bpf filesystem context (fsopen("bpf"))`)
  }
  const granted = decideGrant(tenant.policy, req.policy as PolicyLike | undefined)
  // delegate() rewords the kernel's refusals (EINVAL: not a fresh bpf context; EBUSY: already used).
  const mount = delegateMount(granted, context.fd)
  return { reply: { policy: granted.toJSON() }, fds: [mount] }
}

export const delegateHandlers: Record<'delegate', Handler> = { delegate }
