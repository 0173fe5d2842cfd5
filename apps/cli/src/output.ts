/** A line of text, or a value as indented JSON, on stdout. */
export const print = (v: unknown): void => {
  process.stdout.write(`${typeof v === "string" ? v : JSON.stringify(v, null, 2)}\n`);
};

export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join("\n");
}

/**
 * Progress for long operations: on stderr, only when it is a terminal (and `enabled`),
 * so piped or redirected output stays clean.
 */
export function progress(verb: string, opts: { enabled?: boolean } = {}) {
  const tty = Boolean(process.stderr.isTTY) && opts.enabled !== false;
  let last = 0;
  return {
    tick(n: number) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      process.stderr.write(`\r${verb} ${n} events…`);
    },
    done(n: number) {
      if (tty) process.stderr.write(`\r${verb} ${n} events.   \n`);
    },
  };
}
