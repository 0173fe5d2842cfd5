import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CountersignError } from "./errors.ts";
import {
  canonicalPrincipal,
  checkPrincipal,
  confusableSkeleton,
  isValidPrincipal,
  MAX_PRINCIPAL_LENGTH,
  parsePrincipal,
  samePerson,
  sodPrincipal,
} from "./principal.ts";

/** The error canonicalPrincipal throws for `input`, asserting it is an invalid_request CountersignError. */
function refusal(input: string): CountersignError {
  try {
    canonicalPrincipal(input);
  } catch (e) {
    expect(e).toBeInstanceOf(CountersignError);
    const err = e as CountersignError;
    expect(err.code).toBe("invalid_request");
    return err;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused, got ${JSON.stringify(canonicalPrincipal(input))}`);
}

const OPS = "ops-lead@example.com";
const OPS_SOD = sodPrincipal(OPS);

describe("canonicalPrincipal", () => {
  it.each([
    ["ops-lead@example.com", "ops-lead@example.com"],
    ["  ops-lead@example.com\t\n", "ops-lead@example.com"],
    ["OPS-Lead@Example.COM", "ops-lead@example.com"],
    ["ops-lead@example.com.", "ops-lead@example.com"],
    ["ＯＰＳ-lead@example.com", "ops-lead@example.com"],
    ["ｏｐｓ－ｌｅａｄ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ops-lead@example.com"],
    ["ops-lead+x@example.com", "ops-lead+x@example.com"],
    ["Ops.Lead_2@Sub.Example.co.uk", "ops.lead_2@sub.example.co.uk"],
    ["user@bücher.example", "user@xn--bcher-kva.example"],
    ["USER@BÜCHER.EXAMPLE", "user@xn--bcher-kva.example"],
    ["user@xn--bcher-kva.example", "user@xn--bcher-kva.example"],
    ["user@XN--BCHER-KVA.example.", "user@xn--bcher-kva.example"],
    ["ops@example。com", "ops@example.com"],
    ["иван@пример.рф", "иван@xn--e1afmkfd.xn--p1ai"],
    ["ИВАН@ПРИМЕР.РФ", "иван@xn--e1afmkfd.xn--p1ai"],
    ["ΑΒΓ@example.gr", "αβγ@example.gr"],
    ["田中たなかタナカ@example.jp", "田中たなかタナカ@example.jp"],
    ["ﬁnance@example.com", "finance@example.com"],
    ["ops.𝐥𝐞𝐚𝐝@example.com", "ops.lead@example.com"],
  ])("%j → %j", (input, expected) => {
    expect(canonicalPrincipal(input)).toBe(expected);
  });

  it("full case folding: ß, ẞ and ss are one local part", () => {
    expect(canonicalPrincipal("straße@example.com")).toBe("strasse@example.com");
    expect(canonicalPrincipal("STRAẞE@example.com")).toBe("strasse@example.com");
    expect(canonicalPrincipal("STRASSE@example.com")).toBe("strasse@example.com");
  });

  it("full case folding: final sigma folds to sigma", () => {
    expect(canonicalPrincipal("ΟΔΟΣ@example.gr")).toBe(canonicalPrincipal("οδος@example.gr"));
    expect(canonicalPrincipal("οδος@example.gr")).toBe("οδοσ@example.gr");
    expect(canonicalPrincipal("οδοσ@example.gr")).toBe("οδοσ@example.gr");
  });

  it("composes decomposed letters (NFKC), so precomposed and combining forms are one address", () => {
    expect(canonicalPrincipal("jose\u0301@example.com")).toBe(canonicalPrincipal("jos\u00e9@example.com"));
    expect(canonicalPrincipal("jose\u0301@example.com")).toBe("jos\u00e9@example.com");
  });

  it("is idempotent", () => {
    for (const x of [OPS, "user@bücher.example", "иван@пример.рф", "straße@example.com", "ΑΒΓ@example.gr"]) {
      const c = canonicalPrincipal(x);
      expect(canonicalPrincipal(c)).toBe(c);
    }
  });

  it("accepts exactly 320 code points and refuses 321", () => {
    const domain = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
    expect(domain).toHaveLength(253);
    const ok = "l".repeat(66) + "@" + domain;
    expect(ok).toHaveLength(MAX_PRINCIPAL_LENGTH);
    expect(canonicalPrincipal(ok)).toBe(ok);
    expect(refusal("l".repeat(67) + "@" + domain).message).toMatch(/too long: at most 320/);
  });

  it("refuses huge input before normalizing it", () => {
    expect(refusal("a".repeat(5000) + "@example.com").message).toMatch(/too long/);
  });
});

describe("refusals", () => {
  it.each([
    ["", /empty/],
    ["   ", /empty/],
    ["ops-lead", /no '@'/],
    ["a@b@example.com", /more than one '@'/],
    ["ops-lead@@example.com", /more than one '@'/],
    ["ops-lead＠＠example.com", /more than one '@'/],
    ["@example.com", /empty local part/],
    ["ops-lead@", /empty domain/],
    ["ops-lead@.", /empty domain/],
    ["a@b", /without a dot/],
    ["a@b.", /without a dot/],
    ["ops@example..com", /empty label/],
    ["ops@example.com..", /empty label/],
    ["ops@.example.com", /empty label/],
    ["ops@exa_mple.com", /invalid domain label "exa_mple"/],
    ["ops@-example.com", /invalid domain label "-example"/],
    ["ops@example-.com", /invalid domain label "example-"/],
    ["ops@ab--cd.com", /3rd and 4th positions/],
    ["ops@xn--zz.com", /not a valid \(internationalized\) domain name/],
    ["ops@exa!mple.com", /invalid domain/],
    ["ops@1.2.3.4", /IP address/],
    ["ops@0x7f.1", /IP address/],
    ["ops@[127.0.0.1]", /invalid domain/],
    [`ops@${"a".repeat(64)}.com`, /label longer than 63/],
    [`ops@${Array(64).fill("abc").join(".")}`, /domain longer than 253/],
    ["+tag@example.com", /nothing before the '\+' tag/],
    ['"ops lead"@example.com', /whitespace/],
    ['"ops"@example.com', /"\\"" in its local part/],
    ["Ops Lead <ops@example.com>", /whitespace/],
    ["ops<x>@example.com", /"<" in its local part/],
    ["ops,x@example.com", /"," in its local part/],
    ["ops\\x@example.com", /in its local part/],
    ["ops lead@example.com", /whitespace/],
    ["ops\u00a0lead@example.com", /whitespace/],
    ["ops\u3000lead@example.com", /whitespace/],
  ])("%j is refused (%s)", (input, message) => {
    expect(refusal(input).message).toMatch(message);
  });

  it.each([
    ["ops-lead\u200b@example.com", "U+200B"],
    ["ops\u200c-lead@example.com", "U+200C"],
    ["ops\u200d-lead@example.com", "U+200D"],
    ["ops-lead\u200e@example.com", "U+200E"],
    ["ops-lead\u200f@example.com", "U+200F"],
    ["ops\u2060-lead@example.com", "U+2060"],
    ["ops\u2064-lead@example.com", "U+2064"],
    ["\ufeffops-lead@example.com", "U+FEFF"],
    ["ops-lead@example.com\ufeff", "U+FEFF"],
    ["ops\u00ad-lead@example.com", "U+00AD"],
    ["ops-lead\u202a@example.com", "U+202A"],
    ["ops-lead\u202e@example.com", "U+202E"],
    ["ops-lead\u2066@example.com", "U+2066"],
    ["ops-lead\u2069@example.com", "U+2069"],
    ["ops-lead@exam\u200bple.com", "U+200B"],
    ["ops-lead\u034f@example.com", "U+034F"],
    ["ops-lead\ufe0f@example.com", "U+FE0F"],
    ["ops\u3164lead@example.com", "U+3164"],
    ["ops\u0000lead@example.com", "U+0000"],
    ["ops\u0007lead@example.com", "U+0007"],
    ["ops\u007flead@example.com", "U+007F"],
    ["ops\u2028lead@example.com", "U+2028"],
    ["ops\ue000lead@example.com", "U+E000"],
    ["ops\u{e0041}lead@example.com", "U+E0041"],
    ["ops\ud800lead@example.com", "U+D800"],
    ["ops\u0378lead@example.com", "U+0378"],
  ])("%j is refused, not stripped (%s)", (input, cp) => {
    const { message } = refusal(input);
    expect(message).toContain(`(${cp})`);
    // The message names the character visibly rather than embedding it invisibly.
    expect(message).toContain(`\\u{${cp.slice(2).replace(/^0+(?=.)/, "")}}`);
    expect(message).not.toMatch(/[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u202a-\u202e\u2066-\u2069]/);
  });

  it("refuses a domain whose punycode decodes to a joiner", () => {
    // xn--ab-m1t is "a\u200db": IDNA itself rejects it.
    expect(refusal("ops@xn--ab-m1t.com").message).toMatch(/not a valid \(internationalized\) domain name/);
    // xn--11b6iy14e is "क्\u200d" (virama + ZWJ), which IDNA allows in context; it is still invisible, so refused.
    expect(refusal("ops@xn--11b6iy14e.com").message).toMatch(/decodes to an invisible or formatting character \(U\+200D\)/);
  });

  describe("mixed scripts", () => {
    it('refuses "carоl" (Cyrillic о inside Latin) and says what is wrong', () => {
      const { message } = refusal("carоl@example.com");
      expect(message).toBe('"carоl@example.com" mixes Latin and Cyrillic letters in its local part; each part of an address must use one script');
    });

    it.each([
      ["сarol@example.com", /mixes Cyrillic and Latin letters in its local part/],
      ["ops-leаd@example.com", /mixes Latin and Cyrillic/],
      ["pαypal@example.com", /mixes Latin and Greek/],
      ["ops@аpple.com", /mixes Cyrillic and Latin letters in its domain label "аpple"/],
      ["ops@xn--pple-43d.com", /mixes Cyrillic and Latin letters in its domain label "аpple"/],
      ["ops@exаmple.com", /domain label "exаmple"/],
      ["ivan.иванов@example.com", /mixes Latin and Cyrillic/],
      ["иван+wоrk@example.com", /mixes Latin and Cyrillic letters in its \+tag/],
      ["aβγ@example.com", /mixes Latin and Greek/],
      ["abc\u0661@example.com", /mixes Latin and Arabic/],
      ["иванαβ@example.com", /mixes Cyrillic and Greek/],
      ["한국ひら@example.com", /mixes Hangul and Hiragana/],
    ])("%j is refused", (input, message) => {
      expect(refusal(input).message).toMatch(message);
    });

    it.each([
      ["иван@example.com", "иван@example.com"],
      ["иван.петров-2@example.com", "иван.петров-2@example.com"],
      ["ops@пример.рф", "ops@xn--e1afmkfd.xn--p1ai"],
      ["иван@bücher.example", "иван@xn--bcher-kva.example"],
      ["αβγ@παράδειγμα.ελ", "αβγ@xn--hxajbheg2az3al.xn--qxam"],
      ["user_1.x-y+z@example.com", "user_1.x-y+z@example.com"],
      // The name and the +tag are checked apart.
      ["иван+work@example.com", "иван+work@example.com"],
      ["bob+иван@example.com", "bob+иван@example.com"],
      // UTS #39 "Highly Restrictive" allows Latin with the CJK combinations.
      ["tanaka田中たなか@example.jp", "tanaka田中たなか@example.jp"],
      ["kim김@example.kr", "kim김@example.kr"],
      ["wang王ㄅ@example.tw", "wang王ㄅ@example.tw"],
      // Combining marks are Inherited: they never make a part mixed.
      ["ё@example.com", "ё@example.com"],
    ])("%j is accepted as %j", (input, canonical) => {
      expect(canonicalPrincipal(input)).toBe(canonical);
    });
  });
});

describe("parsePrincipal", () => {
  it("returns both forms for an accepted principal", () => {
    expect(parsePrincipal(" OPS-Lead+x@Example.COM. ")).toEqual({ ok: true, canonical: "ops-lead+x@example.com", sod: OPS_SOD });
  });

  it("returns the message instead of throwing", () => {
    const r = parsePrincipal("carоl@example.com");
    expect(r).toEqual({ ok: false, message: expect.stringContaining("mixes Latin and Cyrillic letters") });
    expect(parsePrincipal("a@b")).toEqual({ ok: false, message: expect.stringMatching(/without a dot/) });
  });

  it("refuses a non-string without throwing (zod may hand it anything)", () => {
    expect(parsePrincipal(42 as unknown as string)).toEqual({ ok: false, message: expect.stringMatching(/must be a string/) });
    expect(parsePrincipal(undefined as unknown as string).ok).toBe(false);
  });

  it("agrees with canonicalPrincipal, checkPrincipal and isValidPrincipal", () => {
    for (const x of [OPS, "a@b", "carоl@example.com", "user@bücher.example", "ops-lead\u200b@example.com"]) {
      const r = parsePrincipal(x);
      expect(isValidPrincipal(x)).toBe(r.ok);
      if (r.ok) {
        expect(canonicalPrincipal(x)).toBe(r.canonical);
        expect(sodPrincipal(r.canonical)).toBe(r.sod);
        expect(() => checkPrincipal(x)).not.toThrow();
      } else {
        expect(() => canonicalPrincipal(x)).toThrow(r.message);
        expect(() => checkPrincipal(x)).toThrow(CountersignError);
      }
    }
  });
});

describe("sodPrincipal / samePerson", () => {
  it.each([
    "ops-lead+x@example.com",
    "ops-lead+x+y@example.com",
    "ops-lead+@example.com",
    "ops-lead@example.com.",
    "OPS-Lead@Example.COM",
    "ＯＰＳ-lead@example.com",
    "ｏｐｓ－ｌｅａｄ＋ｔａｇ＠ｅｘａｍｐｌｅ．ｃｏｍ．",
    "  ops-lead@example.com ",
  ])("%j has the same SoD form as ops-lead@example.com", (variant) => {
    const r = parsePrincipal(variant);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.sod).toBe(OPS_SOD);
    expect(samePerson(variant, OPS)).toBe(true);
  });

  it("the invisible-character variant is refused outright", () => {
    expect(parsePrincipal("ops-lead\u200b@example.com").ok).toBe(false);
    // ...and even unvalidated (legacy) data is not a different person.
    expect(samePerson("ops-lead\u200b@example.com", OPS)).toBe(true);
  });

  it("the Cyrillic-о variant is refused, yet its skeleton is carol's", () => {
    expect(parsePrincipal("carоl@example.com").ok).toBe(false);
    expect(confusableSkeleton("carоl")).toBe(confusableSkeleton("carol"));
    expect(confusableSkeleton("carоl")).toBe("carol");
    expect(sodPrincipal("carоl@example.com")).toBe(sodPrincipal("carol@example.com"));
    expect(samePerson("carоl@example.com", "carol@example.com")).toBe(true);
  });

  it("a whole-script look-alike is accepted but is the same person for SoD", () => {
    // "сор" is all Cyrillic (с, о, р): a legitimate Cyrillic name, and indistinguishable from "cop".
    expect(canonicalPrincipal("сор@example.com")).toBe("сор@example.com");
    expect(samePerson("сор@example.com", "cop@example.com")).toBe(true);
  });

  it("over-matches look-alikes across scripts and digits, which only makes SoD stricter", () => {
    expect(samePerson("m@example.com", "rn@example.com")).toBe(true);
    expect(samePerson("carol@example.com", "caro1@example.com")).toBe(true);
    expect(samePerson("bob@example.com", "b0b@example.com")).toBe(true);
    expect(samePerson("ops@example.com", "ops@examp1e.com")).toBe(true);
  });

  it("skeletons the Unicode form of the domain, not its punycode", () => {
    expect(sodPrincipal("user@xn--bcher-kva.example")).toBe(sodPrincipal("user@bücher.example"));
    expect(sodPrincipal("user@xn--bcher-kva.example")).toContain("bücher");
    expect(samePerson("user@bücher.example", "user@bucher.example")).toBe(false);
  });

  it("keeps different people apart", () => {
    expect(samePerson("alice@example.com", "bob@example.com")).toBe(false);
    expect(samePerson("ops-lead@example.com", "ops-lead@example.org")).toBe(false);
    expect(samePerson("ops-lead@example.com", "ops-lead@sub.example.com")).toBe(false);
    expect(samePerson("ops.lead@example.com", "opslead@example.com")).toBe(false);
    expect(samePerson("ops-lead@example.com", "ops-lead2@example.com")).toBe(false);
    expect(samePerson("иван@example.com", "ivan@example.com")).toBe(false);
  });

  it("is deterministic, idempotent on canonical input and total on any string", () => {
    expect(sodPrincipal(OPS)).toBe(sodPrincipal(OPS));
    expect(sodPrincipal(OPS)).toBe("ops-lead@exarnple.corn");
    for (const junk of ["", "@", "no-at-sign", "a@b@c", "\u0000\ud800", "x@[::1]", "x@xn--zz.com", "+@."]) {
      expect(() => sodPrincipal(junk)).not.toThrow();
      expect(typeof sodPrincipal(junk)).toBe("string");
    }
  });

  it("confusableSkeleton is TR39-style: NFD, mapped, case-folded, idempotent", () => {
    expect(confusableSkeleton("𝔭𝒶ỿ𝕡𝕒ℓ")).toBe(confusableSkeleton("paypal"));
    expect(confusableSkeleton("ΡΑΥΡΑΙ")).toBe(confusableSkeleton("paypal"));
    expect(confusableSkeleton("%")).toBe(confusableSkeleton(confusableSkeleton("%")));
    for (const s of ["carоl", "Ops-Lead", "straße", "иван", "ΑΒΓ", "m", "0O1lI"]) {
      expect(confusableSkeleton(confusableSkeleton(s))).toBe(confusableSkeleton(s));
    }
    expect(confusableSkeleton("a\u200bb")).toBe("ab");
  });
});

// --------------------------------------------------------------------------------------
// Properties

const REAL = [
  "ops-lead@example.com",
  "carol@example.com",
  "dan.smith@corp.example.org",
  "alice_b@sub.example.co.uk",
  "x1@a-b.example",
  "user@bücher.example",
  "иван@пример.рф",
];

/** Fullwidth form of a printable ASCII character (U+FF01..U+FF5E), which NFKC maps back. */
const fullwidth = (c: string) => (c >= "!" && c <= "~" ? String.fromCharCode(c.charCodeAt(0) - 0x21 + 0xff01) : c);

type Tweaks = { flips: boolean[]; wide: boolean[]; tag: string | null; dot: boolean; pad: boolean };

function variant(addr: string, t: Tweaks): string {
  const at = addr.lastIndexOf("@");
  let local = addr.slice(0, at);
  let domain = addr.slice(at + 1);
  if (t.tag !== null) local = `${local}+${t.tag}`;
  if (t.dot) domain = `${domain}.`;
  const chars = [...`${local}@${domain}`].map((c, i) => {
    let out = t.flips[i % t.flips.length] ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c;
    if (t.wide[i % t.wide.length]) out = [...out].map(fullwidth).join("");
    return out;
  });
  const s = chars.join("");
  return t.pad ? ` ${s}\t` : s;
}

const tweaks: fc.Arbitrary<Tweaks> = fc.record({
  flips: fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }),
  wide: fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }),
  tag: fc.option(fc.stringMatching(/^[a-z0-9._-]{0,12}$/), { nil: null }),
  dot: fc.boolean(),
  pad: fc.boolean(),
});

const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/).filter((l) => l.slice(2, 4) !== "--");
const randomAddress = fc
  .tuple(
    fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}$/),
    fc.array(label, { minLength: 1, maxLength: 3 }),
    fc.stringMatching(/^[a-z]{2,6}$/).filter((tld) => !tld.startsWith("xn")),
  )
  .map(([local, labels, tld]) => `${local}@${[...labels, tld].join(".")}`);

const anyAddress = fc.oneof(fc.constantFrom(...REAL), randomAddress);

describe("properties", () => {
  it("case changes, fullwidth letters, +tags, a trailing dot and padding never make a different accepted person", () => {
    fc.assert(
      fc.property(anyAddress, tweaks, (addr, t) => {
        const original = parsePrincipal(addr);
        expect(original.ok).toBe(true);
        if (!original.ok) return;
        const v = variant(addr, t);
        const r = parsePrincipal(v);
        // These tweaks are all cosmetic, so the variant is accepted, and as the same person.
        expect(r).toMatchObject({ ok: true, sod: original.sod });
        expect(samePerson(v, addr)).toBe(true);
        if (t.tag === null && r.ok) expect(r.canonical).toBe(original.canonical);
      }),
      { numRuns: 500 },
    );
  });

  it("Cyrillic and Greek look-alike substitutions are refused or the same person", () => {
    // Pairs that Unicode's confusables.txt lists (χ, for one, is not: it is not x's look-alike there).
    const lookalike: Record<string, string[]> = {
      a: ["а", "α"],
      c: ["с"],
      d: ["ԁ"],
      e: ["е"],
      h: ["һ"],
      i: ["і", "ι"],
      j: ["ј"],
      o: ["о", "ο"],
      p: ["р", "ρ"],
      s: ["ѕ"],
      x: ["х"],
      y: ["у", "γ"],
    };
    fc.assert(
      fc.property(anyAddress, fc.array(fc.nat(), { minLength: 1, maxLength: 20 }), (addr, picks) => {
        const original = parsePrincipal(addr);
        if (!original.ok) return;
        let k = 0;
        const v = [...addr]
          .map((c) => {
            const options = lookalike[c];
            const pick = picks[k++ % picks.length]!;
            return options && pick % 3 !== 0 ? options[pick % options.length]! : c;
          })
          .join("");
        const r = parsePrincipal(v);
        if (r.ok) expect(r.sod).toBe(original.sod);
      }),
      { numRuns: 500 },
    );
  });

  it("the SoD form of raw input equals that of its canonical form, and canonicalization is idempotent", () => {
    fc.assert(
      fc.property(anyAddress, tweaks, (addr, t) => {
        const v = variant(addr, t);
        const r = parsePrincipal(v);
        if (!r.ok) return;
        expect(sodPrincipal(v)).toBe(r.sod);
        expect(canonicalPrincipal(r.canonical)).toBe(r.canonical);
        expect(parsePrincipal(r.canonical)).toEqual(r);
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on arbitrary strings: parsePrincipal reports, sodPrincipal is total", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), fc.constantFrom("", "@example.com", "@"), (s, suffix) => {
        const input = s + suffix;
        const r = parsePrincipal(input);
        if (r.ok) {
          expect([...r.canonical].length).toBeLessThanOrEqual(MAX_PRINCIPAL_LENGTH);
          expect(r.canonical.split("@")).toHaveLength(2);
          expect(samePerson(input, r.canonical)).toBe(true);
        } else {
          expect(r.message.length).toBeGreaterThan(0);
          expect(() => canonicalPrincipal(input)).toThrow(CountersignError);
        }
        expect(typeof sodPrincipal(input)).toBe("string");
      }),
      { numRuns: 1000 },
    );
  });
});
