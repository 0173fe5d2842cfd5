/** A Web API failure, reduced to what callers decide on. */
export type SlackFailure =
  | { kind: "rate_limited"; retryAfterMs: number; message: string }
  | { kind: "platform"; error: string; message: string }
  | { kind: "http"; status: number; message: string }
  | { kind: "network"; message: string };

/**
 * Reads an error thrown by `@slack/web-api`. The client is built with
 * `rejectRateLimitedCalls`, so a 429 arrives here at once with its Retry-After.
 */
export function describeSlackError(e: unknown): SlackFailure {
  const err = e as {
    code?: string;
    message?: string;
    retryAfter?: number;
    data?: { error?: string; response_metadata?: { messages?: string[] } };
    statusCode?: number;
  };
  const message = err?.message ?? String(e);
  switch (err?.code) {
    case "slack_webapi_rate_limited_error":
      return { kind: "rate_limited", retryAfterMs: Math.max(0, (err.retryAfter ?? 1) * 1000), message };
    case "slack_webapi_platform_error": {
      const error = err.data?.error ?? "unknown_error";
      const details = err.data?.response_metadata?.messages?.join("; ");
      return { kind: "platform", error, message: details ? `${error}: ${details}` : error };
    }
    case "slack_webapi_http_error":
      return { kind: "http", status: err.statusCode ?? 0, message };
    default:
      return { kind: "network", message };
  }
}

/** The destination itself is unusable: the card can never be posted there as configured. */
export const DESTINATION_ERRORS = new Set([
  "channel_not_found",
  "not_in_channel",
  "is_archived",
  "restricted_action",
  "restricted_action_read_only_channel",
  "restricted_action_thread_only_channel",
  "restricted_action_non_threadable_channel",
  "team_access_not_granted",
  "ekm_access_denied",
]);

/** Slack refused what we sent; sending it again cannot help. */
export const PAYLOAD_ERRORS = new Set([
  "invalid_blocks",
  "invalid_blocks_format",
  "invalid_arguments",
  "invalid_arg_name",
  "msg_too_long",
  "no_text",
  "invalid_metadata_format",
]);

/** A posted card that can no longer be edited. */
export const GONE_ERRORS = new Set(["message_not_found", "cant_update_message", "channel_not_found", "is_archived", "not_in_channel"]);

export function destinationHint(error: string): string {
  if (error === "not_in_channel" || error === "channel_not_found") {
    return `${error}: invite the Countersign app to the channel (/invite @Countersign) and check the channel id in the policy`;
  }
  return error;
}
