// enable_stats: the kernel counts programs' run time and runs only while
// someone holds a BPF_ENABLE_STATS fd, and opening one takes CAP_SYS_ADMIN
// in the initial namespace, which a tenant does not have. The broker opens
// it for the connection that asks and keeps it in the connection's holds
// until the connection closes (Session.close), so `bpfkit --broker SOCK
// top` turns statistics on for exactly its own lifetime and a tenant that
// dies releases them. It is host-wide (every program is counted, at a small
// cost per run), so a tenant's policy must name the command: 'enable_stats'
// in its cmds. At most one fd per connection: asking again is a no-op.
import { enableStats } from '../../prog/program.js'
import type { Handler, HandlerContext } from '../state.js'

function enable(ctx: HandlerContext): { reply: { already: boolean } } {
  const refusal = ctx.tenant?.policy.explain({ cmd: 'enable_stats' }, 'policy')
  if (refusal) throw refusal
  if (ctx.holds.stats && !ctx.holds.stats.closed) return { reply: { already: true } }
  ctx.holds.stats = enableStats()
  return { reply: { already: false } }
}

export const runStatsHandlers: Record<'enable_stats', Handler> = { enable_stats: enable }
