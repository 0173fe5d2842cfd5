import { describe, expect, it } from "vitest";
import { createCallbackGuard, parseCallbackAllow } from "./callback-guard.ts";

/** A resolver stub: hostnames map to fixed answers, so DNS tricks can be tested offline. */
function stubResolver(table: Record<string, string[]>) {
  const asked: string[] = [];
  const resolve = async (host: string) => {
    asked.push(host);
    const r = table[host];
    if (!r) throw new Error(`ENOTFOUND ${host}`);
    return r;
  };
  return { resolve, asked };
}

const DNS = {
  "hooks.example.com": ["93.184.216.34"],
  "dual.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
  localhost: ["127.0.0.1", "::1"],
  "sneaky.example.com": ["127.0.0.1"],
  "half-private.example.com": ["93.184.216.34", "10.1.2.3"],
  "metadata.example.com": ["169.254.169.254"],
  "mapped.example.com": ["::ffff:127.0.0.1"],
  "v6-local.example.com": ["fd00::1"],
  "agents.internal": ["10.20.1.5"],
  "empty.example.com": [],
};

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; errors: unknown }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string; errors: unknown };
  }
  throw new Error("expected the callback URL to be refused");
}

describe("callback guard (SSRF)", () => {
  const { resolve } = stubResolver(DNS);
  const guard = createCallbackGuard(undefined, resolve);

  it("accepts https URLs that resolve only to public addresses, and returns them", async () => {
    expect(await guard.check("https://hooks.example.com/cb")).toEqual(["93.184.216.34"]);
    expect(await guard.check("https://dual.example.com:8443/cb?x=1")).toEqual(DNS["dual.example.com"]);
    expect(await guard.check("https://93.184.216.34/cb")).toEqual(["93.184.216.34"]);
  });

  it.each([
    ["loopback IPv4 literal", "https://127.0.0.1/cb", /127\.0\.0\.1, a loopback address/],
    ["loopback in 127/8", "https://127.1.2.3/cb", /loopback/],
    ["private 10/8", "https://10.0.0.5/cb", /10\.0\.0\.5, a private address/],
    ["private 172.16/12", "https://172.16.9.9/cb", /private/],
    ["private 192.168/16", "https://192.168.1.1/cb", /private/],
    ["cloud metadata 169.254.169.254", "https://169.254.169.254/latest/meta-data", /169\.254\.169\.254, a linkLocal address/],
    ["IPv6 loopback [::1]", "https://[::1]/cb", /::1, a loopback address/],
    ["IPv4-mapped IPv6 loopback", "https://[::ffff:127.0.0.1]/cb", /127\.0\.0\.1, a loopback address/],
    ["unique-local fc00::/7", "https://[fd12::1]/cb", /uniqueLocal/],
    ["unspecified 0.0.0.0", "https://0.0.0.0/cb", /unspecified/],
    ["carrier-grade NAT", "https://100.64.0.1/cb", /carrierGradeNat/],
    ["hostname resolving to loopback (localhost)", "https://localhost/cb", /localhost resolves to 127\.0\.0\.1/],
    ["public-looking hostname resolving to loopback", "https://sneaky.example.com/cb", /sneaky\.example\.com resolves to 127\.0\.0\.1/],
    ["hostname with one public and one private answer", "https://half-private.example.com/cb", /10\.1\.2\.3/],
    ["hostname resolving to the metadata address", "https://metadata.example.com/cb", /linkLocal/],
    ["hostname resolving to IPv4-mapped loopback", "https://mapped.example.com/cb", /127\.0\.0\.1, a loopback/],
    ["hostname resolving to unique-local IPv6", "https://v6-local.example.com/cb", /uniqueLocal/],
  ])("refuses %s", async (_label, url, why) => {
    const e = await refusal(guard.check(url));
    expect(e.code).toBe("callback_url_forbidden");
    expect(e.message).toMatch(why);
    expect(e.errors).toEqual([{ path: "callbackUrl", message: e.message }]);
  });

  it.each([
    ["plain http", "http://hooks.example.com/cb", /must use https/],
    ["another scheme", "ftp://hooks.example.com/cb", /must use https/],
    ["credentials in the URL", "https://user:pw@hooks.example.com/cb", /credentials/],
    ["an unparseable URL", "not a url", /not a valid URL/],
    ["a host that does not resolve", "https://nowhere.example.com/cb", /cannot resolve nowhere\.example\.com/],
    ["a host with no addresses", "https://empty.example.com/cb", /cannot resolve/],
  ])("refuses %s", async (_label, url, why) => {
    const e = await refusal(guard.check(url));
    expect(e.code).toBe("callback_url_forbidden");
    expect(e.message).toMatch(why);
  });

  it("re-checks each address at connect time, so a DNS answer that changed since submit is refused (rebinding)", () => {
    expect(() => guard.checkAddress("hooks.example.com", "93.184.216.34")).not.toThrow();
    expect(() => guard.checkAddress("hooks.example.com", "127.0.0.1")).toThrow(/loopback/);
    expect(() => guard.checkAddress("hooks.example.com", "::1")).toThrow(/loopback/);
    expect(() => guard.checkAddress("hooks.example.com", "169.254.169.254")).toThrow(/linkLocal/);
    expect(() => guard.checkAddress("hooks.example.com", "garbage")).toThrow(/unparseable/);
  });

  it("does not resolve IP literals", async () => {
    const r = stubResolver(DNS);
    const g = createCallbackGuard(undefined, r.resolve);
    await refusal(g.check("https://10.0.0.1/cb"));
    await g.check("https://93.184.216.34/cb");
    expect(r.asked).toEqual([]);
  });
});

describe("COUNTERSIGN_CALLBACK_ALLOW exceptions", () => {
  const { resolve } = stubResolver(DNS);

  it("a host entry lets that host resolve to private addresses, still over https only", async () => {
    const g = createCallbackGuard("agents.internal", resolve);
    expect(await g.check("https://agents.internal/cb")).toEqual(["10.20.1.5"]);
    expect((await refusal(g.check("http://agents.internal/cb"))).message).toMatch(/https/);
    // Only that host: others resolving to the same kind of address are still refused.
    expect((await refusal(g.check("https://sneaky.example.com/cb"))).code).toBe("callback_url_forbidden");
  });

  it("a CIDR entry allows addresses in that range only", async () => {
    const g = createCallbackGuard("10.20.0.0/16", resolve);
    expect(await g.check("https://agents.internal/cb")).toEqual(["10.20.1.5"]);
    expect(await g.check("https://10.20.9.9/cb")).toEqual(["10.20.9.9"]);
    expect((await refusal(g.check("https://10.21.0.1/cb"))).message).toMatch(/private/);
    expect((await refusal(g.check("http://10.20.9.9/cb"))).message).toMatch(/https/);
  });

  it("http: entries also allow plain http, for exactly that host or range", async () => {
    const g = createCallbackGuard("http:localhost,http:127.0.0.1/32", resolve);
    expect(await g.check("http://localhost:8080/cb")).toEqual(["127.0.0.1", "::1"]);
    expect(await g.check("http://127.0.0.1:9/cb")).toEqual(["127.0.0.1"]);
    expect((await refusal(g.check("http://127.0.0.2/cb"))).message).toMatch(/https/);
    expect((await refusal(g.check("https://127.0.0.2/cb"))).message).toMatch(/loopback/);
    expect((await refusal(g.check("http://hooks.example.com/cb"))).message).toMatch(/https/);
    expect((await refusal(g.check("https://[::1]/cb"))).message).toMatch(/loopback/);
  });

  it("rejects malformed allow-lists when parsed", () => {
    expect(() => parseCallbackAllow("10.0.0.0/99")).toThrow(/not a valid CIDR/);
    expect(() => parseCallbackAllow("http:")).toThrow(/empty entry/);
    expect(parseCallbackAllow(" a.example , http:B.example ,")).toMatchObject({
      hosts: new Set(["a.example", "b.example"]),
      httpHosts: new Set(["b.example"]),
    });
  });
});
