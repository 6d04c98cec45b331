// The seam between TypeScript and C++: everything above imports the addon
// through here.
export { native } from './addon.js'
export type * from './addon.js'
export * from './errors.js'
export * from './fd.js'
export * from './names.js'
export * from './info.js'
export * as kernel from './generated/kernel-enums.js'
export type { AttachTypeName, CommandName, HelperName, LinkTypeName, MapTypeName, ProgTypeName, UpdateFlagName } from './generated/kernel-enums.js'
export * from './token.js'
