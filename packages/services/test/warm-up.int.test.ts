import { describe, expect, it } from "vitest";
import { engines } from "../../../test/support/db.ts";
import { warmUp } from "../src/index.ts";
import { rowCounts, setupServices } from "./helpers.ts";

describe.each(engines())("warm-up on %s", (engine) => {
  it("runs the hot paths' reads and a signature, and writes nothing", async () => {
    const h = await setupServices(engine);
    try {
      await h.agent("bot", "owner@example.com");
      const before = await rowCounts(h.db);
      await warmUp(h.deps);
      expect(await rowCounts(h.db)).toEqual(before);
      // Nothing was left holding the only connection (PGlite) or the queue.
      expect(h.db.admission.running).toBe(0);
      expect(await h.db.prisma.apiKey.count()).toBe(1);
    } finally {
      await h.cleanup();
    }
  });
});
