/** A problem with what the user typed or pointed at; printed as is. */
export class CliError extends Error {
  override name = "CliError";
}

/** Ends the command with this status; what went wrong was already printed (e.g. as --json). */
export class ExitStatus extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
