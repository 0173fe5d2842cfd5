import { describe, expect, it } from "vitest";
import { Admission, TransactionQueueFullError } from "./admission.ts";
import { classifyDatabaseError } from "./errors.ts";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("Admission", () => {
  it("runs at most `slots` at once, queues up to `maxQueue` in arrival order, and refuses past that", async () => {
    const gate = new Admission(2, 2);
    const order: number[] = [];
    const holds = Array.from({ length: 4 }, deferred);
    const runs = holds.map((h, i) =>
      gate.run(async () => {
        order.push(i);
        await h.promise;
        return i;
      }),
    );
    await Promise.resolve();
    expect(order).toEqual([0, 1]);
    expect(gate.running).toBe(2);
    expect(gate.waiting).toBe(2);
    const refused = gate.run(async () => "never");
    await expect(refused).rejects.toBeInstanceOf(TransactionQueueFullError);
    await expect(refused).rejects.toThrow("2 transactions are already waiting for one of 2 database connections");
    expect(classifyDatabaseError(await refused.catch((e: unknown) => e))).toBe("busy");

    holds[1]?.resolve();
    await runs[1];
    await Promise.resolve();
    expect(order).toEqual([0, 1, 2]);
    holds[0]?.resolve();
    holds[2]?.resolve();
    holds[3]?.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3]);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(gate.running).toBe(0);
    expect(gate.waiting).toBe(0);
  });

  it("queues `always` work past the bound, and a failing holder still hands its slot on", async () => {
    const gate = new Admission(1, 0);
    const hold = deferred();
    const first = gate.run(async () => {
      await hold.promise;
      throw new Error("boom");
    });
    await expect(gate.run(async () => 1)).rejects.toBeInstanceOf(TransactionQueueFullError);
    const patient = gate.run(async () => "clicked", "always");
    hold.resolve();
    await expect(first).rejects.toThrow("boom");
    expect(await patient).toBe("clicked");
    expect(gate.running).toBe(0);
  });
});
