// Errors of the delegation layer.

/** The manager refused a tenant's delegation request; the message is the manager's. `code` is 'EACCES'. */
export class DelegationRefusedError extends Error {
  readonly code = 'EACCES'

  constructor(message: string) {
    super(`delegation refused by the manager: ${message}`)
    this.name = 'DelegationRefusedError'
  }
}
