// URL templates of ac-discovery tags (spec/discovery.md: "RFC 6570 URI templates" filled with
// {name}, {version}, {os}, {arch}, {ext} and any other label). Expansion follows RFC 6570 for
// string values at every level (operators + # . / ; ? &, prefix modifiers), with three appc rules:
//  - a template with a variable that has no value is skipped, not expanded with the empty string
//    (spec/discovery.md; RFC 6570 §2.3 would drop it);
//  - `{name}` keeps its `/` separators unencoded: the spec's own example expands
//    `.../{os}/{arch}/{name}-{version}.{ext}` to `.../linux/amd64/example.com/reduce-worker-1.0.0.aci`,
//    and servers (quay.io's `/c1/aci/{name}/...`) rely on it; every other character of every
//    value is percent-encoded as RFC 6570 §3.2.2 says (only unreserved characters stay);
//  - variable names may use the characters of AC identifiers (`{build-id}`), which RFC 6570's
//    varname grammar lacks, because labels are AC identifiers.
// `ext` is `aci` for the image and `aci.asc` for its signature. Pure, no I/O.

export type TemplateVariables = ReadonlyMap<string, string>;

export type Expansion = { ok: true; url: string } | { ok: false; reason: string };

export interface AciEndpoint {
  /** URL of the image. */
  aci: string;
  /** URL of its detached signature. */
  asc: string;
}

export type EndpointExpansion = ({ ok: true } & AciEndpoint) | { ok: false; reason: string };

/** RFC 6570 §3.2.1 table: per operator, first string, separator, named, if-empty and allowed set. */
interface OperatorSpec {
  first: string;
  sep: string;
  named: boolean;
  ifemp: string;
  /** Reserved characters and pct-triplets pass unencoded (`+` and `#`). */
  reserved: boolean;
}

const OPERATORS: Record<string, OperatorSpec> = {
  '': { first: '', sep: ',', named: false, ifemp: '', reserved: false },
  '+': { first: '', sep: ',', named: false, ifemp: '', reserved: true },
  '#': { first: '#', sep: ',', named: false, ifemp: '', reserved: true },
  '.': { first: '.', sep: '.', named: false, ifemp: '', reserved: false },
  '/': { first: '/', sep: '/', named: false, ifemp: '', reserved: false },
  ';': { first: ';', sep: ';', named: true, ifemp: '', reserved: false },
  '?': { first: '?', sep: '&', named: true, ifemp: '=', reserved: false },
  '&': { first: '&', sep: '&', named: true, ifemp: '=', reserved: false },
};
/** RFC 6570 §2.2: operators reserved for future extensions. */
const RESERVED_OPERATORS = new Set(['=', ',', '!', '@', '|']);
const VARNAME = /^[A-Za-z0-9_.~/-]+$/;
/** RFC 3986 §2.3 unreserved and §2.2 reserved characters. */
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const RESERVED = /[:/?#[\]@!$&'()*+,;=]/;

function encodeValue(value: string, reserved: boolean, keepSlash: boolean): string {
  let out = '';
  for (let i = 0; i < value.length; ) {
    const cp = value.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    i += ch.length;
    if (UNRESERVED.test(ch) || (keepSlash && ch === '/') || (reserved && RESERVED.test(ch))) {
      out += ch;
    } else if (reserved && ch === '%' && /^[0-9A-Fa-f]{2}$/.test(value.slice(i, i + 2))) {
      // RFC 6570 §3.2.3: reserved expansion passes pct-encoded triplets through.
      out += ch;
    } else {
      for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

function expandExpression(body: string, vars: TemplateVariables): Expansion {
  let op = '';
  let list = body;
  if (body !== '' && (body[0]! in OPERATORS || RESERVED_OPERATORS.has(body[0]!))) {
    op = body[0]!;
    list = body.slice(1);
  }
  const spec = OPERATORS[op];
  if (spec === undefined) return { ok: false, reason: `operator "${op}" in {${body}} is reserved by RFC 6570` };
  const parts: string[] = [];
  for (const varspec of list.split(',')) {
    const m = /^(.*?)(?::(\d{1,4})|(\*))?$/.exec(varspec)!;
    const name = m[1]!;
    if (!VARNAME.test(name)) return { ok: false, reason: `{${body}} is not a valid expression` };
    const value = vars.get(name);
    // spec/discovery.md: a template with an unfilled variable is skipped.
    if (value === undefined) return { ok: false, reason: `no value for {${name}}` };
    const prefix = m[2] === undefined ? undefined : Number(m[2]);
    // RFC 6570 §2.4.1: the prefix length counts characters, not bytes.
    const cut = prefix === undefined ? value : [...value].slice(0, prefix).join('');
    const encoded = encodeValue(cut, spec.reserved, name === 'name');
    if (spec.named) parts.push(encoded === '' ? `${name}${spec.ifemp}` : `${name}=${encoded}`);
    else parts.push(encoded);
  }
  return { ok: true, url: spec.first + parts.join(spec.sep) };
}

/** Expands a template; `{ ok: false, reason }` when it must be skipped or is malformed. */
export function expandTemplate(template: string, vars: TemplateVariables): Expansion {
  let out = '';
  for (let i = 0; i < template.length; ) {
    const open = template.indexOf('{', i);
    const literalEnd = open === -1 ? template.length : open;
    const literal = template.slice(i, literalEnd);
    if (literal.includes('}')) return { ok: false, reason: 'a "}" without its "{"' };
    out += literal;
    if (open === -1) break;
    const close = template.indexOf('}', open + 1);
    if (close === -1) return { ok: false, reason: `an unterminated expression at "${template.slice(open)}"` };
    const inner = template.slice(open + 1, close);
    if (inner.includes('{')) return { ok: false, reason: `a "{" inside the expression "${template.slice(open, close + 1)}"` };
    const expanded = expandExpression(inner, vars);
    if (!expanded.ok) return expanded;
    out += expanded.url;
    i = close + 1;
  }
  return { ok: true, url: out };
}

/**
 * The image and signature URLs of an ac-discovery template: `{ext}` = `aci` / `aci.asc`. Skipped
 * when a variable is unfilled, or when the template has no `{ext}` (spec/discovery.md: both come
 * from one template, so it must tell them apart).
 */
export function expandAciTemplate(template: string, vars: TemplateVariables): EndpointExpansion {
  const withExt = (ext: string): Map<string, string> => new Map([...vars, ['ext', ext]]);
  const aci = expandTemplate(template, withExt('aci'));
  if (!aci.ok) return { ok: false, reason: `template ${template} skipped: ${aci.reason}` };
  const asc = expandTemplate(template, withExt('aci.asc'));
  if (!asc.ok) return { ok: false, reason: `template ${template} skipped: ${asc.reason}` };
  if (aci.url === asc.url) return { ok: false, reason: `template ${template} skipped: it has no {ext}, so the image and its signature would share one URL` };
  return { ok: true, aci: aci.url, asc: asc.url };
}
