// tspod's `_appc-discovery.<host>` TXT format (src/discovery/README.md).
import { describe, expect, it } from 'vitest';

import { matchingTxtEntries, parseTxtRecords, txtDiscoveryName } from '../../src/discovery/txt-record.js';

describe('parseTxtRecords', () => {
  it('reads aci and pubkeys entries and joins the strings of one record without a separator', () => {
    const parsed = parseTxtRecords([
      ['v=appc1 prefix=example.test aci=https://dl.example.test/{name}-{ver', 'sion}.{ext} pubkeys=https://example.test/keys.gpg'],
    ]);
    expect(parsed.entries).toEqual([
      {
        prefix: 'example.test',
        aci: 'https://dl.example.test/{name}-{version}.{ext}',
        pubkeys: 'https://example.test/keys.gpg',
        text: 'v=appc1 prefix=example.test aci=https://dl.example.test/{name}-{version}.{ext} pubkeys=https://example.test/keys.gpg',
      },
    ]);
    expect(parsed.ignored).toEqual([]);
  });

  it('skips records of other protocols silently and reports broken appc records', () => {
    const parsed = parseTxtRecords([
      ['v=spf1 -all'],
      ['google-site-verification=abc'],
      ['v=appc1x prefix=a aci=b'],
      ['v=appc1 aci=https://x.test/{name}.{ext}'],
      ['v=appc1 prefix=example.test'],
      ['v=appc1 prefix=example.test aci=https://a/{name}.{ext} aci=https://b/{name}.{ext}'],
      ['v=appc1 prefix=example.test aci='],
      ['v=appc1 prefix=example.test pubkeys=https://example.test/k.gpg future=1'],
    ]);
    expect(parsed.entries).toEqual([{ prefix: 'example.test', pubkeys: 'https://example.test/k.gpg', text: 'v=appc1 prefix=example.test pubkeys=https://example.test/k.gpg future=1' }]);
    expect(parsed.ignored).toEqual([
      'record "v=appc1 aci=https://x.test/{name}.{ext}": no prefix=',
      'record "v=appc1 prefix=example.test": neither aci= nor pubkeys=',
      'record "v=appc1 prefix=example.test aci=https://a/{name}.{ext} aci=https://b/{name}.{ext}": key "aci" appears twice',
      'record "v=appc1 prefix=example.test aci=": field "aci=" is not key=value',
    ]);
  });

  it('orders entries longest prefix first, then by text, whatever order DNS returned them in', () => {
    const records = [
      ['v=appc1 prefix=example.test aci=https://b.test/{name}.{ext}'],
      ['v=appc1 prefix=example.test/app aci=https://c.test/{name}.{ext}'],
      ['v=appc1 prefix=example.test aci=https://a.test/{name}.{ext}'],
    ];
    const orders = [records, [...records].reverse(), [records[1]!, records[2]!, records[0]!]];
    for (const order of orders) {
      expect(parseTxtRecords(order).entries.map((e) => e.aci)).toEqual([
        'https://c.test/{name}.{ext}',
        'https://a.test/{name}.{ext}',
        'https://b.test/{name}.{ext}',
      ]);
    }
  });

  it('matches entries by string prefix of the image name', () => {
    const parsed = parseTxtRecords([
      ['v=appc1 prefix=example.test/app aci=https://c.test/{name}.{ext}'],
      ['v=appc1 prefix=example.test aci=https://a.test/{name}.{ext}'],
    ]);
    expect(matchingTxtEntries(parsed, 'example.test/app').map((e) => e.prefix)).toEqual(['example.test/app', 'example.test']);
    expect(matchingTxtEntries(parsed, 'example.test/db').map((e) => e.prefix)).toEqual(['example.test']);
  });

  it('looks the records up at _appc-discovery.<host of the name>', () => {
    expect(txtDiscoveryName('example.test/team/app')).toBe('_appc-discovery.example.test');
  });
});
