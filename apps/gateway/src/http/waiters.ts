import { type Database, REQUEST_EVENTS_CHANNEL } from "@countersign/db";

/**
 * Long-poll waiters, woken the moment a change to their request commits. Every state
 * change NOTIFYs on one channel, so a decision made on any replica wakes waiters here.
 */
export class Waiters {
  private readonly byRequest = new Map<string, Set<() => void>>();
  /** Reads in flight per request, shared by waiters that would otherwise each re-read the same row. */
  private readonly reads = new Map<string, Map<string, Promise<unknown>>>();
  private count = 0;
  /** Set by drain(): the gateway is shutting down, so long-polls end at once. */
  closing = false;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(private readonly db: Database) {}

  async start(): Promise<void> {
    this.unlisten = await this.db.listen(REQUEST_EVENTS_CHANNEL, (id) => this.wake(id));
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
    for (const set of [...this.byRequest.values()]) for (const w of [...set]) w();
    this.byRequest.clear();
  }

  /** Ends every long-poll now and any opened from here on; their callers answer with a retry hint. */
  drain(): void {
    this.closing = true;
    for (const set of [...this.byRequest.values()]) for (const w of [...set]) w();
    this.byRequest.clear();
  }

  get size(): number {
    return this.count;
  }

  wake(requestId: string): void {
    // A read that began before this change may have missed it: later readers start afresh.
    this.reads.delete(requestId);
    const set = this.byRequest.get(requestId);
    if (!set) return;
    this.byRequest.delete(requestId);
    for (const w of set) w();
  }

  /**
   * Registers interest before the caller re-reads state, so a change that commits in
   * between is not missed. Resolves on a change, a timeout, or an abort.
   */
  register(requestId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closing) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.byRequest.get(requestId);
      if (!set) {
        set = new Set();
        this.byRequest.set(requestId, set);
      }
      this.count++;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.count--;
        const s = this.byRequest.get(requestId);
        s?.delete(done);
        if (s && s.size === 0) this.byRequest.delete(requestId);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener("abort", done, { once: true });
      set.add(done);
    });
  }

  /**
   * Runs `read` for a registered waiter, or joins an identical read (same request, same
   * `reader`) that is already in flight and began after the request's last change. When
   * one decision wakes thousands of waiters on one request, the database sees one read
   * instead of thousands.
   */
  read<T>(requestId: string, reader: string, read: () => Promise<T>): Promise<T> {
    let forRequest = this.reads.get(requestId);
    const inFlight = forRequest?.get(reader);
    if (inFlight) return inFlight as Promise<T>;
    if (!forRequest) {
      forRequest = new Map();
      this.reads.set(requestId, forRequest);
    }
    const p = read();
    forRequest.set(reader, p);
    const m = forRequest;
    const forget = () => {
      if (m.get(reader) !== p) return;
      m.delete(reader);
      if (m.size === 0 && this.reads.get(requestId) === m) this.reads.delete(requestId);
    };
    p.then(forget, forget);
    return p;
  }
}
