import { REQUEST_STATUSES } from "./constants.ts";

export { REQUEST_STATUSES };
export type RequestStatus = (typeof REQUEST_STATUSES)[number];
export type TerminalStatus = Exclude<RequestStatus, "pending">;

export function isTerminal(s: RequestStatus): s is TerminalStatus {
  return s !== "pending";
}

/** Only pending requests move, and only to a terminal state; terminal states are final. */
export function canTransition(from: RequestStatus, to: RequestStatus): boolean {
  return from === "pending" && to !== "pending";
}
