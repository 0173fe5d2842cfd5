/**
 * Thrown instead of queueing when more transactions already wait than the queue allows.
 * Nothing ran, so the caller may retry; classifyDatabaseError calls it "busy", which the
 * services turn into 503 with Retry-After.
 */
export class TransactionQueueFullError extends Error {
  override name = "TransactionQueueFullError";
  readonly code = "CS_QUEUE_FULL";
  constructor(
    readonly waiting: number,
    readonly slots: number,
  ) {
    super(`${waiting} transactions are already waiting for one of ${slots} database connections`);
  }
}

export type AdmissionWait = "bounded" | "always";

/**
 * Admits at most `slots` transactions at a time, in arrival order; up to `maxQueue` more
 * wait their turn. Past that, `run` refuses at once (TransactionQueueFullError) rather than
 * letting the caller sit in the connection pool until Prisma's transaction timeout.
 * `wait: "always"` queues whatever the bound: for work that must not be refused because
 * others are queued (a reviewer's click, already acknowledged to Slack or Teams).
 */
export class Admission {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    readonly slots: number,
    readonly maxQueue: number,
  ) {
    if (!(slots >= 1)) throw new Error("Admission needs at least one slot");
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length;
  }

  async run<T>(fn: () => Promise<T>, wait: AdmissionWait = "bounded"): Promise<T> {
    if (this.active < this.slots) {
      this.active++;
    } else {
      if (wait === "bounded" && this.queue.length >= this.maxQueue) throw new TransactionQueueFullError(this.queue.length, this.slots);
      // The slot is handed over by the finishing holder, so `active` does not change.
      await new Promise<void>((r) => this.queue.push(r));
    }
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }
}
