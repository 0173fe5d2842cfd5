import { domainToASCII, domainToUnicode } from "node:url";
import unhomoglyph from "unhomoglyph";
import { CountersignError } from "./errors.ts";

/**
 * Principal identity: the one place that decides whether two email addresses name the
 * same person. Countersign's core rule is that a reviewer never approves their own
 * request, so an attacker must not get a "second identity" from a cosmetic variant of
 * their address (case, fullwidth letters, a `+tag`, a trailing dot, a look-alike letter
 * from another script, an invisible character).
 *
 * Two forms:
 * - the canonical form (`canonicalPrincipal`) is what is stored and shown: a real,
 *   deliverable-looking address, normalized but not mangled;
 * - the separation-of-duties form (`sodPrincipal`) is a comparison key only, never stored
 *   as an address or shown: it drops the `+tag` and maps every character to its Unicode
 *   TR39 confusable skeleton, so that addresses that look alike compare equal. It
 *   over-matches on purpose (e.g. "rn" and "m", "0" and "o", "1" and "l" collide), which
 *   only makes separation of duties stricter.
 *
 * Ambiguous input is refused, never repaired: invisible or control characters, and a
 * local part or domain label that mixes scripts (Latin with Cyrillic, ...).
 */

/** The longest canonical principal accepted, in code points (RFC 5321's practical limit for an address). */
export const MAX_PRINCIPAL_LENGTH = 320;
/** Input longer than this (in UTF-16 code units) is refused before any normalization work. */
const MAX_INPUT_LENGTH = 1024;
const MAX_DOMAIN_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

export type PrincipalParseResult = { ok: true; canonical: string; sod: string } | { ok: false; message: string };

// ---------------------------------------------------------------------------------------
// Characters that make an address ambiguous

/**
 * Invisible, formatting and control characters (zero-width spaces and joiners, soft
 * hyphen, word joiner, BOM, bidi embeddings/overrides/isolates, variation selectors,
 * Hangul fillers: all of \p{Cf}, \p{Cc} and Default_Ignorable_Code_Point), line and
 * paragraph separators, plus code points with no agreed rendering: unassigned,
 * private-use and unpaired surrogates.
 */
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
const FORBIDDEN_GLOBAL = new RegExp(FORBIDDEN.source, "gu");
/** Whitespace inside an address (after trimming the ends). */
const SPACE = /\p{White_Space}/u;
/** Trim White_Space only: String#trim would also silently drop U+FEFF, which is refused instead. */
const EDGE_SPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;
/** RFC 5322 specials not allowed in an unquoted local part; quoted local parts are not supported. */
const LOCAL_SPECIALS = /["(),:;<>[\\\]]/;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

function hex(cp: number): string {
  return "U+" + cp.toString(16).toUpperCase().padStart(4, "0");
}

function describeForbidden(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  if (/\p{Cs}/u.test(ch)) return `an unpaired surrogate (${hex(cp)})`;
  if (/\p{Cn}/u.test(ch)) return `an unassigned code point (${hex(cp)})`;
  if (/\p{Co}/u.test(ch)) return `a private-use character (${hex(cp)})`;
  if (/\p{Cc}/u.test(ch)) return `a control character (${hex(cp)})`;
  if (/[\p{Zl}\p{Zp}]/u.test(ch)) return `a line or paragraph separator (${hex(cp)})`;
  return `an invisible or formatting character (${hex(cp)})`;
}

/** The input as it may be shown in a message: quoted, invisible characters escaped, long input cut. */
function quote(s: string): string {
  const cps = [...s];
  const shown = cps.length > 100 ? cps.slice(0, 100).join("") + "…" : s;
  return (
    '"' +
    shown.replace(/[\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}\p{Z}\p{Default_Ignorable_Code_Point}"\\]/gu, (c) => {
      if (c === " ") return c;
      if (c === '"' || c === "\\") return "\\" + c;
      return `\\u{${(c.codePointAt(0) ?? 0).toString(16).toUpperCase()}}`;
    }) +
    '"'
  );
}

// ---------------------------------------------------------------------------------------
// Case folding

/**
 * An NFKC_Casefold approximation: NFKC, then a full case fold, then NFKC again.
 *
 * JavaScript has no case-fold primitive, and toLowerCase alone is a simple lowercasing
 * that leaves e.g. "ß" and "ς" as they are, so "STRASSE", "straße" and "STRAẞE" would be
 * three people. lower∘upper∘lower applies the full (special-casing) mappings, which
 * gives Unicode full case folding for every character where it matters here (ß, ẞ → ss;
 * ŉ → ʼn; ligatures are already split by NFKC; ς → σ is done explicitly), and additionally folds dotless
 * ı → i, which only merges look-alikes. It is locale-independent (not toLocale*Case).
 * Checked to be idempotent over every assigned code point.
 */
function caseFold(s: string): string {
  // toLowerCase applies the final-sigma context rule (Σ → ς at the end of a word); case folding maps ς → σ everywhere.
  return s.normalize("NFKC").toLowerCase().toUpperCase().toLowerCase().replaceAll("\u03c2", "\u03c3").normalize("NFKC");
}

// ---------------------------------------------------------------------------------------
// Mixed-script detection (UTS #39 section 5: restriction level "Highly Restrictive")

/** Every Unicode script (as of Unicode 17) except Common and Inherited, by its property value name. */
const SCRIPT_NAMES = [
  "Adlam",
  "Ahom",
  "Anatolian_Hieroglyphs",
  "Arabic",
  "Armenian",
  "Avestan",
  "Balinese",
  "Bamum",
  "Bassa_Vah",
  "Batak",
  "Bengali",
  "Beria_Erfe",
  "Bhaiksuki",
  "Bopomofo",
  "Brahmi",
  "Braille",
  "Buginese",
  "Buhid",
  "Canadian_Aboriginal",
  "Carian",
  "Caucasian_Albanian",
  "Chakma",
  "Cham",
  "Cherokee",
  "Chorasmian",
  "Coptic",
  "Cuneiform",
  "Cypriot",
  "Cypro_Minoan",
  "Cyrillic",
  "Deseret",
  "Devanagari",
  "Dives_Akuru",
  "Dogra",
  "Duployan",
  "Egyptian_Hieroglyphs",
  "Elbasan",
  "Elymaic",
  "Ethiopic",
  "Garay",
  "Georgian",
  "Glagolitic",
  "Gothic",
  "Grantha",
  "Greek",
  "Gujarati",
  "Gunjala_Gondi",
  "Gurmukhi",
  "Gurung_Khema",
  "Han",
  "Hangul",
  "Hanifi_Rohingya",
  "Hanunoo",
  "Hatran",
  "Hebrew",
  "Hiragana",
  "Imperial_Aramaic",
  "Inscriptional_Pahlavi",
  "Inscriptional_Parthian",
  "Javanese",
  "Kaithi",
  "Kannada",
  "Katakana",
  "Kawi",
  "Kayah_Li",
  "Kharoshthi",
  "Khitan_Small_Script",
  "Khmer",
  "Khojki",
  "Khudawadi",
  "Kirat_Rai",
  "Lao",
  "Latin",
  "Lepcha",
  "Limbu",
  "Linear_A",
  "Linear_B",
  "Lisu",
  "Lycian",
  "Lydian",
  "Mahajani",
  "Makasar",
  "Malayalam",
  "Mandaic",
  "Manichaean",
  "Marchen",
  "Masaram_Gondi",
  "Medefaidrin",
  "Meetei_Mayek",
  "Mende_Kikakui",
  "Meroitic_Cursive",
  "Meroitic_Hieroglyphs",
  "Miao",
  "Modi",
  "Mongolian",
  "Mro",
  "Multani",
  "Myanmar",
  "Nabataean",
  "Nag_Mundari",
  "Nandinagari",
  "New_Tai_Lue",
  "Newa",
  "Nko",
  "Nushu",
  "Nyiakeng_Puachue_Hmong",
  "Ogham",
  "Ol_Chiki",
  "Ol_Onal",
  "Old_Hungarian",
  "Old_Italic",
  "Old_North_Arabian",
  "Old_Permic",
  "Old_Persian",
  "Old_Sogdian",
  "Old_South_Arabian",
  "Old_Turkic",
  "Old_Uyghur",
  "Oriya",
  "Osage",
  "Osmanya",
  "Pahawh_Hmong",
  "Palmyrene",
  "Pau_Cin_Hau",
  "Phags_Pa",
  "Phoenician",
  "Psalter_Pahlavi",
  "Rejang",
  "Runic",
  "Samaritan",
  "Saurashtra",
  "Sharada",
  "Shavian",
  "Siddham",
  "Sidetic",
  "SignWriting",
  "Sinhala",
  "Sogdian",
  "Sora_Sompeng",
  "Soyombo",
  "Sundanese",
  "Sunuwar",
  "Syloti_Nagri",
  "Syriac",
  "Tagalog",
  "Tagbanwa",
  "Tai_Le",
  "Tai_Tham",
  "Tai_Viet",
  "Tai_Yo",
  "Takri",
  "Tamil",
  "Tangsa",
  "Tangut",
  "Telugu",
  "Thaana",
  "Thai",
  "Tibetan",
  "Tifinagh",
  "Tirhuta",
  "Todhri",
  "Tolong_Siki",
  "Toto",
  "Tulu_Tigalari",
  "Ugaritic",
  "Vai",
  "Vithkuqi",
  "Wancho",
  "Warang_Citi",
  "Yezidi",
  "Yi",
  "Zanabazar_Square",
] as const;

type ScriptTest = { name: string; scx: RegExp; sc: RegExp };

/** Names the running engine does not know yet (an older ICU) are skipped rather than crashing at import. */
const SCRIPTS: readonly ScriptTest[] = SCRIPT_NAMES.flatMap((name) => {
  try {
    return [{ name, scx: new RegExp(`\\p{Script_Extensions=${name}}`, "u"), sc: new RegExp(`\\p{Script=${name}}`, "u") }];
  } catch {
    return [];
  }
});

/** Characters used by every script (digits, punctuation, combining marks): they never make a string mixed. */
const COMMON_OR_INHERITED = /[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]/u;

type CharScripts = { scx: ReadonlySet<string>; primary: string } | null;
const charScriptCache = new Map<number, CharScripts>();

/**
 * The augmented Script_Extensions of one character (UTS #39 5.1), or null for
 * Common/Inherited. Han also counts as Han_with_Bopomofo, Japanese and Korean; Hiragana
 * and Katakana as Japanese; Hangul as Korean; Bopomofo as Han_with_Bopomofo. A character
 * of a script this engine cannot name gets a script of its own, so it is never taken as
 * matching anything else.
 */
function charScripts(ch: string): CharScripts {
  const cp = ch.codePointAt(0) ?? 0;
  const cached = charScriptCache.get(cp);
  if (cached !== undefined) return cached;
  let result: CharScripts = null;
  if (!COMMON_OR_INHERITED.test(ch)) {
    const scx = new Set<string>();
    for (const s of SCRIPTS) if (s.scx.test(ch)) scx.add(s.name);
    if (scx.has("Han")) for (const x of ["Han_with_Bopomofo", "Japanese", "Korean"]) scx.add(x);
    if (scx.has("Hiragana") || scx.has("Katakana")) scx.add("Japanese");
    if (scx.has("Hangul")) scx.add("Korean");
    if (scx.has("Bopomofo")) scx.add("Han_with_Bopomofo");
    const unknown = `script of ${hex(cp)}`;
    if (scx.size === 0) scx.add(unknown);
    const primary = SCRIPTS.find((s) => s.sc.test(ch))?.name ?? [...scx][0] ?? unknown;
    result = { scx, primary };
  }
  if (charScriptCache.size >= 4096) charScriptCache.clear();
  charScriptCache.set(cp, result);
  return result;
}

/** The script combinations UTS #39 allows at "Highly Restrictive" besides a single script. */
const ALLOWED_COVERS: readonly ReadonlySet<string>[] = [new Set(["Latin", "Japanese"]), new Set(["Latin", "Han_with_Bopomofo"]), new Set(["Latin", "Korean"])];

/**
 * If `part` mixes scripts beyond UTS #39 "Highly Restrictive", the scripts of its letters
 * (in order of appearance, for the message); otherwise null. Common and Inherited
 * characters (digits, `.-_+`, combining marks) never count.
 */
function mixedScripts(part: string): string[] | null {
  // ASCII is Latin letters plus Common characters: always single-script.
  if (!/[^\p{ASCII}]/u.test(part)) return null;
  const chars: { scx: ReadonlySet<string>; primary: string }[] = [];
  for (const ch of part) {
    const cs = charScripts(ch);
    if (cs) chars.push(cs);
  }
  if (chars.length === 0) return null;
  // Single script: some script is shared by every character.
  let common = new Set(chars[0]!.scx);
  for (const c of chars) common = new Set([...common].filter((s) => c.scx.has(s)));
  if (common.size > 0) return null;
  // Highly restrictive: Latin + Han + Hiragana + Katakana, Latin + Han + Bopomofo, Latin + Han + Hangul.
  for (const cover of ALLOWED_COVERS) {
    if (chars.every((c) => [...c.scx].some((s) => cover.has(s)))) return null;
  }
  return [...new Set(chars.map((c) => c.primary.replaceAll("_", " ")))];
}

function listScripts(names: string[]): string {
  if (names.length <= 1) return names.join("");
  return names.slice(0, -1).join(", ") + " and " + names[names.length - 1];
}

// ---------------------------------------------------------------------------------------
// TR39 confusable skeleton

/**
 * UTS #39 skeleton(X) = NFD(map each character of NFD(X) through confusables.txt),
 * default-ignorable characters removed first. The mapping is the `unhomoglyph` package's
 * copy of Unicode's confusables.txt. The result is case-folded, then the whole transform
 * is repeated until nothing changes (at most a few rounds; bounded), because folding can
 * expose a character the mapping changes again (e.g. "%" → "º/₀" → "o/0" → "o/o").
 * Deterministic and idempotent; not meant for display.
 */
export function confusableSkeleton(s: string): string {
  let t = s.replace(FORBIDDEN_GLOBAL, "");
  for (let i = 0; i < 8; i++) {
    const next = caseFold(unhomoglyph(t.normalize("NFD")).normalize("NFD"));
    if (next === t) break;
    t = next;
  }
  return t;
}

// ---------------------------------------------------------------------------------------
// Parsing

function fail(message: string): { ok: false; message: string } {
  return { ok: false, message };
}

/**
 * Parses and canonicalizes an email address used as a principal; never throws.
 *
 * Steps: trim White_Space; refuse invisible/control characters; NFKC; exactly one '@'
 * (split at the last); local part: case fold (see caseFold), non-empty, no whitespace or
 * RFC 5322 specials, not starting with '+', one script (the name before the first '+' and
 * the tag after it are checked apart); domain: strip one trailing dot,
 * IDNA (UTS #46, via node:url domainToASCII) to its ASCII form, which must be stable,
 * have at least two labels, each 1-63 letters/digits/hyphens, no IP literal, each label
 * one script in its Unicode form; whole canonical form at most 320 code points.
 */
export function parsePrincipal(input: string): PrincipalParseResult {
  if (typeof input !== "string") return fail("a principal must be a string (an email address)");
  if (input.length > MAX_INPUT_LENGTH) return fail(`principal is too long: at most ${MAX_PRINCIPAL_LENGTH} characters`);
  const trimmed = input.replace(EDGE_SPACE, "");
  const q = quote(trimmed);
  if (trimmed === "") return fail("principal is empty: expected an email address");

  const bad = trimmed.match(FORBIDDEN);
  if (bad) return fail(`${q} contains ${describeForbidden(bad[0])}; such an address is ambiguous and is refused rather than stripped`);
  const nfkc = trimmed.normalize("NFKC");
  const badAfter = nfkc.match(FORBIDDEN);
  if (badAfter) return fail(`${q} contains ${describeForbidden(badAfter[0])} once normalized; such an address is ambiguous`);
  if (SPACE.test(nfkc)) return fail(`${q} contains whitespace: expected a bare email address`);

  const ats = nfkc.split("@").length - 1;
  if (ats === 0) return fail(`${q} is not an email address: it has no '@'`);
  if (ats > 1) return fail(`${q} has more than one '@': expected exactly one`);
  const at = nfkc.lastIndexOf("@");
  const local = caseFold(nfkc.slice(0, at));
  if (local === "") return fail(`${q} has an empty local part (nothing before the '@')`);
  const special = local.match(LOCAL_SPECIALS);
  if (special) return fail(`${q} has ${JSON.stringify(special[0])} in its local part, which is not allowed in an address`);
  if (local.startsWith("+")) return fail(`${q} has nothing before the '+' tag in its local part`);
  // The name and its +tag are checked apart: a Cyrillic name may carry a Latin tag (the tag is not part of the identity).
  const plus = local.indexOf("+");
  const parts: [string, string][] =
    plus < 0
      ? [[local, "local part"]]
      : [
          [local.slice(0, plus), "local part"],
          [local.slice(plus + 1), "+tag"],
        ];
  for (const [part, where] of parts) {
    const mix = mixedScripts(part);
    if (mix) return fail(`${q} mixes ${listScripts(mix)} letters in its ${where}; each part of an address must use one script`);
  }

  const domain = canonicalDomain(nfkc.slice(at + 1), q);
  if (!domain.ok) return domain;

  const canonical = local + "@" + domain.ascii;
  if ([...canonical].length > MAX_PRINCIPAL_LENGTH) return fail(`${q} is too long: at most ${MAX_PRINCIPAL_LENGTH} characters`);
  const sod = sodPrincipal(canonical);
  if (sod.startsWith("@")) return fail(`${q} has nothing before the '+' tag in its local part once look-alike characters are folded`);
  return { ok: true, canonical, sod };
}

function canonicalDomain(raw: string, q: string): { ok: true; ascii: string; unicode: string } | { ok: false; message: string } {
  const d = raw.endsWith(".") ? raw.slice(0, -1) : raw;
  if (d === "") return fail(`${q} has an empty domain (nothing after the '@')`);
  if (d.length > MAX_DOMAIN_LENGTH * 4) return fail(`${q} has a domain that is too long`);
  const ascii = domainToASCII(d);
  if (ascii === "") return fail(`${q} has an invalid domain ${quote(raw)}: it is not a valid (internationalized) domain name`);
  const labels = ascii.split(".");
  if (labels.length < 2) return fail(`${q} has a domain without a dot (${quote(ascii)}): expected a fully qualified domain such as example.com`);
  if (ascii.length > MAX_DOMAIN_LENGTH) return fail(`${q} has a domain longer than ${MAX_DOMAIN_LENGTH} characters`);
  for (const label of labels) {
    if (label === "") return fail(`${q} has an empty label in its domain (two dots in a row, or more than one trailing dot)`);
    if (label.length > MAX_LABEL_LENGTH) return fail(`${q} has a domain label longer than ${MAX_LABEL_LENGTH} characters`);
    if (!LDH_LABEL.test(label)) {
      return fail(`${q} has an invalid domain label ${quote(label)}: labels are letters, digits and hyphens, and do not start or end with a hyphen`);
    }
    if (label.slice(2, 4) === "--" && !label.startsWith("xn--"))
      return fail(`${q} has a domain label ${quote(label)} with "--" in the 3rd and 4th positions, which is reserved`);
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return fail(`${q} has an IP address or numeric top-level label as its domain; expected a domain name`);
  const unicode = domainToUnicode(ascii);
  if (domainToASCII(unicode) !== ascii) return fail(`${q} has a domain whose IDNA form does not round-trip (${quote(ascii)})`);
  const bad = unicode.match(FORBIDDEN);
  if (bad) return fail(`${q} has a domain that decodes to ${describeForbidden(bad[0])}; such an address is ambiguous`);
  for (const label of unicode.split(".")) {
    const mix = mixedScripts(label);
    if (mix) return fail(`${q} mixes ${listScripts(mix)} letters in its domain label ${quote(label)}; each label must use one script`);
  }
  return { ok: true, ascii, unicode };
}

/** The canonical stored form of a principal; throws CountersignError("invalid_request") with the reason otherwise. */
export function canonicalPrincipal(input: string): string {
  const r = parsePrincipal(input);
  if (!r.ok) throw new CountersignError("invalid_request", r.message);
  return r.canonical;
}

/** Throws CountersignError("invalid_request") if the input is not an acceptable principal; returns nothing. */
export function checkPrincipal(input: string): void {
  canonicalPrincipal(input);
}

/** True when the input is an acceptable principal (it would canonicalize). */
export function isValidPrincipal(input: string): boolean {
  return parsePrincipal(input).ok;
}

/**
 * The separation-of-duties key of a principal: local part without its `+tag`, and local
 * part and (Unicode form of the) domain mapped to their TR39 confusable skeleton,
 * case-folded. Two principals with the same key are treated as the same person.
 *
 * Meant for a canonical principal, for which it is exact. It is also total and
 * deterministic for any other string (e.g. a legacy row that was only lowercased, or
 * refused input), so a separation-of-duties check never throws on old data: it applies
 * the same trim/NFKC/case fold, drops invisible characters (as the skeleton does), and
 * skeletons a domain that is not valid IDNA as given. It never under-matches
 * sodPrincipal(canonicalPrincipal(x)): for accepted x, sodPrincipal(x) equals it.
 *
 * The result is a key, not an address: do not display it or send mail to it.
 */
export function sodPrincipal(principal: string): string {
  const s = principal.replace(EDGE_SPACE, "").replace(FORBIDDEN_GLOBAL, "").normalize("NFKC");
  const at = s.lastIndexOf("@");
  if (at < 0) return sodLocal(s);
  return sodLocal(s.slice(0, at)) + "@" + sodDomain(s.slice(at + 1));
}

function sodLocal(local: string): string {
  // Skeleton first, then cut at the first '+', so a look-alike of '+' also starts a tag.
  const skel = confusableSkeleton(caseFold(local));
  const plus = skel.indexOf("+");
  return plus < 0 ? skel : skel.slice(0, plus);
}

function sodDomain(domain: string): string {
  const d = domain.endsWith(".") ? domain.slice(0, -1) : domain;
  const ascii = d === "" ? "" : domainToASCII(d);
  const unicode = ascii === "" ? d : domainToUnicode(ascii);
  return confusableSkeleton(unicode);
}

/**
 * Whether two principals are the same person for separation of duties: equal SoD keys.
 * Never throws (see sodPrincipal); when in doubt it says "same", which is the strict answer.
 */
export function samePerson(a: string, b: string): boolean {
  return sodPrincipal(a) === sodPrincipal(b);
}
