// Discovery URL templates: RFC 6570 expansion of string values, appc's skip rule and the
// aci/aci.asc pair.
import { describe, expect, it } from 'vitest';

import { expandAciTemplate, expandTemplate } from '../../src/discovery/template.js';

const vars = new Map([
  ['name', 'example.com/reduce-worker'],
  ['version', '1.0.0'],
  ['os', 'linux'],
  ['arch', 'amd64'],
]);

describe('expandAciTemplate', () => {
  it('expands the spec example to the image and signature URLs', () => {
    expect(expandAciTemplate('https://storage.example.com/{os}/{arch}/{name}-{version}.{ext}', vars)).toEqual({
      ok: true,
      aci: 'https://storage.example.com/linux/amd64/example.com/reduce-worker-1.0.0.aci',
      asc: 'https://storage.example.com/linux/amd64/example.com/reduce-worker-1.0.0.aci.asc',
    });
  });

  it('fills any other label, such as {channel}', () => {
    const withChannel = new Map([...vars, ['channel', 'beta']]);
    expect(expandAciTemplate('https://x.test/{name}/{channel}.{ext}', withChannel)).toMatchObject({
      ok: true,
      aci: 'https://x.test/example.com/reduce-worker/beta.aci',
    });
  });

  it('skips a template whose variable has no value and says which', () => {
    expect(expandAciTemplate('https://x.test/{name}/{channel}.{ext}', vars)).toEqual({
      ok: false,
      reason: 'template https://x.test/{name}/{channel}.{ext} skipped: no value for {channel}',
    });
  });

  it('skips a template without {ext}: image and signature would share one URL', () => {
    const r = expandAciTemplate('https://x.test/{name}.aci', vars);
    expect(r).toMatchObject({ ok: false });
    expect(!r.ok && r.reason).toContain('it has no {ext}');
  });

  it.each([
    ['https://x.test/{name.{ext}', 'a "{" inside the expression'],
    ['https://x.test/{name}.{ext', 'an unterminated expression at "{ext"'],
    ['https://x.test/name}.{ext}', 'a "}" without its "{"'],
    ['https://x.test/{=name}.{ext}', 'operator "=" in {=name} is reserved by RFC 6570'],
    ['https://x.test/{na me}.{ext}', '{na me} is not a valid expression'],
  ])('skips the malformed template %s (%s)', (template, reason) => {
    const r = expandAciTemplate(template, vars);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toContain(reason);
  });
});

describe('expandTemplate (RFC 6570 for string values)', () => {
  const v = new Map([
    ['version', '1.0.0+git.2/x y'],
    ['name', 'example.com/app'],
    ['empty', ''],
    ['unicode', 'Grüße'],
    ['build-id', 'a~b'],
  ]);

  it('percent-encodes everything but unreserved characters in simple expansion (§3.2.2)', () => {
    expect(expandTemplate('/{version}', v)).toEqual({ ok: true, url: '/1.0.0%2Bgit.2%2Fx%20y' });
    expect(expandTemplate('/{unicode}', v)).toEqual({ ok: true, url: '/Gr%C3%BC%C3%9Fe' });
  });

  it('keeps the "/" of {name} as the spec example needs, and encodes the rest of it', () => {
    expect(expandTemplate('/{name}', v)).toEqual({ ok: true, url: '/example.com/app' });
    expect(expandTemplate('/{name}', new Map([['name', 'a.test/x y']]))).toEqual({ ok: true, url: '/a.test/x%20y' });
  });

  it('passes reserved characters in {+var} and {#var} (§3.2.3, §3.2.4)', () => {
    expect(expandTemplate('/{+version}', v)).toEqual({ ok: true, url: '/1.0.0+git.2/x%20y' });
    expect(expandTemplate('/p{#version}', v)).toEqual({ ok: true, url: '/p#1.0.0+git.2/x%20y' });
  });

  it('expands the other operators and lists per the RFC 6570 table', () => {
    const s = new Map([
      ['x', '1024'],
      ['y', '768'],
      ['e', ''],
    ]);
    expect(expandTemplate('map?{x,y}', s)).toEqual({ ok: true, url: 'map?1024,768' });
    expect(expandTemplate('{?x,y,e}', s)).toEqual({ ok: true, url: '?x=1024&y=768&e=' });
    expect(expandTemplate('?fixed=yes{&x}', s)).toEqual({ ok: true, url: '?fixed=yes&x=1024' });
    expect(expandTemplate('{;x,y,e}', s)).toEqual({ ok: true, url: ';x=1024;y=768;e' });
    expect(expandTemplate('{/x,y}', s)).toEqual({ ok: true, url: '/1024/768' });
    expect(expandTemplate('X{.x,y}', s)).toEqual({ ok: true, url: 'X.1024.768' });
  });

  it('applies the prefix modifier in characters (§2.4.1)', () => {
    expect(expandTemplate('{unicode:3}', v)).toEqual({ ok: true, url: 'Gr%C3%BC' });
  });

  it('accepts AC identifier characters in variable names (labels such as build-id)', () => {
    expect(expandTemplate('/{build-id}', v)).toEqual({ ok: true, url: '/a~b' });
  });

  it('copies literal text and expands an empty value to nothing', () => {
    expect(expandTemplate('https://x.test/a{empty}b', v)).toEqual({ ok: true, url: 'https://x.test/ab' });
  });
});
