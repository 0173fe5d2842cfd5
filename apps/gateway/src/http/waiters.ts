import { type Database, REQUEST_EVENTS_CHANNEL } from "@countersign/db";

/**
 * Long-poll waiters, woken the moment a change to their request commits. Every state
 * change NOTIFYs on one channel, so a decision made on any replica wakes waiters here.
 */
export class Waiters {
  private readonly byRequest = new Map<string, Set<() => void>>();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(private readonly db: Database) {}

  async start(): Promise<void> {
    this.unlisten = await this.db.listen(REQUEST_EVENTS_CHANNEL, (id) => this.wake(id));
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
    for (const set of this.byRequest.values()) for (const w of set) w();
    this.byRequest.clear();
  }

  get size(): number {
    let n = 0;
    for (const s of this.byRequest.values()) n += s.size;
    return n;
  }

  wake(requestId: string): void {
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
    return new Promise((resolve) => {
      let set = this.byRequest.get(requestId);
      if (!set) {
        set = new Set();
        this.byRequest.set(requestId, set);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
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
}
