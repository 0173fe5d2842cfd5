import { describe, expect, it } from "vitest";
import { type CallbackAllowList, parseCallbackAllow } from "./allow-list.ts";
import { createCallbackGuard } from "./guard.ts";

function allow(spec: string): CallbackAllowList {
  const r = parseCallbackAllow(spec);
  if (!r.ok) throw new Error(r.problems.join("; "));
  return r.value;
}

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
  "compat.example.com": ["::127.0.0.1"],
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
    // Every IPv6 form that embeds an IPv4 address (issue #11, reproduction 5).
    ["IPv4-compatible IPv6 loopback [::127.0.0.1]", "https://[::127.0.0.1]/cb", /IPv4-compatible/],
    ["IPv4-compatible IPv6 private [::10.0.0.1]", "https://[::10.0.0.1]/cb", /IPv4-compatible/],
    ["IPv4-compatible IPv6 metadata [::a9fe:a9fe]", "https://[::a9fe:a9fe]/cb", /IPv4-compatible/],
    ["hostname resolving to an IPv4-compatible address", "https://compat.example.com/cb", /127\.0\.0\.1, a loopback|IPv4-compatible/],
    ["NAT64 64:ff9b::/96 embedding loopback", "https://[64:ff9b::7f00:1]/cb", /rfc6052/],
    ["IPv4-translated ::ffff:0:0:0/96", "https://[::ffff:0:7f00:1]/cb", /rfc6145/],
    ["6to4 2002::/16 embedding a private address", "https://[2002:a00:1::1]/cb", /6to4/],
    ["deprecated site-local fec0::/10", "https://[fec0::1]/cb", /deprecatedSiteLocal|site/i],
    ["segment routing 5f00::/16", "https://[5f00::1]/cb", /a [a-zA-Z]+ address/],
    ["Teredo 2001::/32", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/cb", /teredo/],
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
    expect(() => guard.checkAddress("hooks.example.com", "93.184.216.34", 443)).not.toThrow();
    expect(() => guard.checkAddress("hooks.example.com", "127.0.0.1", 443)).toThrow(/loopback/);
    expect(() => guard.checkAddress("hooks.example.com", "::1", 443)).toThrow(/loopback/);
    expect(() => guard.checkAddress("hooks.example.com", "::7f00:1", 443)).toThrow(/IPv4-compatible/);
    expect(() => guard.checkAddress("hooks.example.com", "169.254.169.254", 443)).toThrow(/linkLocal/);
    expect(() => guard.checkAddress("hooks.example.com", "garbage", 443)).toThrow(/unparseable/);
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
    const g = createCallbackGuard(allow("agents.internal"), resolve);
    expect(await g.check("https://agents.internal/cb")).toEqual(["10.20.1.5"]);
    expect((await refusal(g.check("http://agents.internal/cb"))).message).toMatch(/https/);
    // Only that host: others resolving to the same kind of address are still refused.
    expect((await refusal(g.check("https://sneaky.example.com/cb"))).code).toBe("callback_url_forbidden");
  });

  it("a CIDR entry allows addresses in that range only", async () => {
    const g = createCallbackGuard(allow("10.20.0.0/16"), resolve);
    expect(await g.check("https://agents.internal/cb")).toEqual(["10.20.1.5"]);
    expect(await g.check("https://10.20.9.9/cb")).toEqual(["10.20.9.9"]);
    expect((await refusal(g.check("https://10.21.0.1/cb"))).message).toMatch(/private/);
    expect((await refusal(g.check("http://10.20.9.9/cb"))).message).toMatch(/https/);
  });

  it("http: entries also allow plain http, for exactly that host or range", async () => {
    const g = createCallbackGuard(allow("http:localhost,http:127.0.0.1/32"), resolve);
    expect(await g.check("http://localhost:8080/cb")).toEqual(["127.0.0.1", "::1"]);
    expect(await g.check("http://127.0.0.1:9/cb")).toEqual(["127.0.0.1"]);
    expect((await refusal(g.check("http://127.0.0.2/cb"))).message).toMatch(/https/);
    expect((await refusal(g.check("https://127.0.0.2/cb"))).message).toMatch(/loopback/);
    expect((await refusal(g.check("http://hooks.example.com/cb"))).message).toMatch(/https/);
    expect((await refusal(g.check("https://[::1]/cb"))).message).toMatch(/loopback/);
  });

  it("a :port on an entry allows that port only (issue #11)", async () => {
    const g = createCallbackGuard(allow("http:127.0.0.1:9000,agents.internal:8443,[::1]:9001,http:[fd00::/8]:7000"), resolve);
    expect(await g.check("http://127.0.0.1:9000/cb")).toEqual(["127.0.0.1"]);
    expect((await refusal(g.check("http://127.0.0.1:9001/cb"))).message).toMatch(/127\.0\.0\.1:9001/);
    expect((await refusal(g.check("https://127.0.0.1/cb"))).message).toMatch(/for other ports only, not 443/);
    expect(await g.check("https://agents.internal:8443/cb")).toEqual(["10.20.1.5"]);
    expect((await refusal(g.check("https://agents.internal/cb"))).message).toMatch(/private/);
    expect(await g.check("https://[::1]:9001/cb")).toEqual(["::1"]);
    expect((await refusal(g.check("https://[::1]:9002/cb"))).code).toBe("callback_url_forbidden");
    expect(await g.check("http://[fd00::5]:7000/cb")).toEqual(["fd00::5"]);
    // At connect time too: the port of the URL being delivered decides.
    expect(() => g.checkAddress("agents.internal", "10.20.1.5", 8443)).not.toThrow();
    expect(() => g.checkAddress("agents.internal", "10.20.1.5", 443)).toThrow(/private/);
  });

  it("parses every entry form and names every malformed one", () => {
    const ok = allow(" a.example , http:B.example ,10.0.0.0/8:8080, http:[::1]:9000 , 127.0.0.1");
    expect(ok.hosts).toEqual([
      { host: "a.example", http: false, port: null },
      { host: "b.example", http: true, port: null },
    ]);
    expect(ok.ranges.map((r) => [r.range[0].toString(), r.range[1], r.http, r.port])).toEqual([
      ["10.0.0.0", 8, false, 8080],
      ["::1", 128, true, 9000],
      ["127.0.0.1", 32, false, null],
    ]);
    const bad = parseCallbackAllow("10.0.0.0/99,http:,http://127.0.0.1,host:0,host:99999,[::1,[::1]x,bad host!");
    expect(bad).toEqual({
      ok: false,
      problems: [
        '"10.0.0.0/99": "10.0.0.0/99" is not a valid CIDR range',
        '"http:": empty entry',
        '"http://127.0.0.1": write http:host (no "//"), for example http:127.0.0.1:9000',
        '"host:0": port must be a number from 1 to 65535',
        '"host:99999": port must be a number from 1 to 65535',
        '"[::1": missing "]"',
        '"[::1]x": expected ":port" after "]"',
        '"bad host!": "bad host!" is not a host name, IP address or CIDR range',
      ],
    });
  });
});
