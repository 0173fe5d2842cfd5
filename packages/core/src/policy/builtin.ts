import type { PolicyFile } from "./schema.ts";

/**
 * In force when no policy file exists: every action needs one approval from any reviewer
 * other than the requester. Separation of duties still applies, so an agent's owner and
 * its onBehalfOf can never approve their own request.
 */
export const BUILTIN_POLICY: PolicyFile = {
  version: 1,
  groups: {},
  channels: {},
  rules: [{ id: "builtin-any-reviewer", effect: "require_approval", approvers: ["*"], approvals: 1, expiresIn: "1h" }],
  default: "deny",
};
