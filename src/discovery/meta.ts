// The appc discovery meta tags of an HTML page (spec/discovery.md "Meta Discovery"):
// `<meta name="ac-discovery" content="PREFIX URL-TEMPLATE">` and
// `<meta name="ac-discovery-pubkeys" content="PREFIX URL">`, read with htmlparser2's tokenizer
// from real-world pages: any case, any attribute order, unquoted values, entities, tags outside
// <head>, comments, broken markup, several tags (kept in document order). Pure, no I/O.
import { Parser } from 'htmlparser2';

export type MetaKind = 'ac-discovery' | 'ac-discovery-pubkeys';

export interface DiscoveryMeta {
  kind: MetaKind;
  /** The image-name prefix the tag applies to (a string prefix, as in the reference code). */
  prefix: string;
  /** A URL template (ac-discovery) or a URL (ac-discovery-pubkeys). */
  url: string;
}

export interface ParsedMeta {
  tags: DiscoveryMeta[];
  /** ac-discovery* tags that were unusable, with the reason (`ac-discovery tag without a url`). */
  ignored: string[];
}

const KINDS: readonly MetaKind[] = ['ac-discovery', 'ac-discovery-pubkeys'];

/** Parses HTML (bytes are decoded as UTF-8; the meta content is ASCII in practice). */
export function parseDiscoveryMeta(html: string | Uint8Array): ParsedMeta {
  const text = typeof html === 'string' ? html : new TextDecoder('utf-8').decode(html);
  const tags: DiscoveryMeta[] = [];
  const ignored: string[] = [];
  const parser = new Parser(
    {
      onopentag(tagName, attributes) {
        // htmlparser2 lowercases tag and attribute names in HTML mode, and decodes entities in
        // values; text inside <script>, <style>, <textarea> and comments is never a tag.
        if (tagName !== 'meta') return;
        const name = attributes['name']?.trim().toLowerCase();
        if (name === undefined || !(KINDS as readonly string[]).includes(name)) return;
        const kind = name as MetaKind;
        const content = attributes['content'];
        if (content === undefined) {
          ignored.push(`${kind} tag without a content attribute`);
          return;
        }
        // The reference code splits the trimmed content at the first space; any run of
        // whitespace (tabs, newlines in a wrapped attribute) separates as well here.
        const match = /^(\S+)\s+(\S.*)$/s.exec(content.trim());
        if (!match) {
          ignored.push(`${kind} tag "${content.trim()}": needs "PREFIX URL"`);
          return;
        }
        const url = match[2]!.trim();
        if (/\s/.test(url)) {
          ignored.push(`${kind} tag "${content.trim()}": more than one URL after the prefix`);
          return;
        }
        tags.push({ kind, prefix: match[1]!, url });
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.write(text);
  parser.end();
  return { tags, ignored };
}

/**
 * Tags of `kind` that apply to `name`: the tag's prefix is a string prefix of the name
 * (spec/discovery.md; the reference code uses strings.HasPrefix), in document order.
 */
export function matchingTags(meta: ParsedMeta, kind: MetaKind, name: string): DiscoveryMeta[] {
  return meta.tags.filter((t) => t.kind === kind && name.startsWith(t.prefix));
}
