// Plain-text tables in rkt's style: upper-case headers, columns padded with spaces,
// `--no-legend` drops the header. Human forms of sizes and times live here too.

export interface Column<Row> {
  header: string;
  get: (row: Row) => string;
}

export function renderTable<Row>(columns: Column<Row>[], rows: Row[], options: { noLegend?: boolean } = {}): string {
  const cells = rows.map((row) => columns.map((c) => c.get(row)));
  if (options.noLegend !== true) cells.unshift(columns.map((c) => c.header));
  const widths = columns.map((_, i) => Math.max(0, ...cells.map((line) => line[i]!.length)));
  return cells
    .map((line) => line.map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}

const SIZE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5KiB", as rkt's humanize.IBytes-like output. */
export function formatSize(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < SIZE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 || value >= 10 ? value.toFixed(0) : value.toFixed(1);
  return `${text}${SIZE_UNITS[unit]}`;
}

/** "3 minutes ago" for tables; `--full` prints the RFC 3339 time instead. */
export function formatAgo(iso: string, now: Date = new Date()): string {
  const seconds = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  const steps: [number, string][] = [
    [60, 'second'],
    [60, 'minute'],
    [24, 'hour'],
    [30, 'day'],
    [12, 'month'],
    [Infinity, 'year'],
  ];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (value < size) return value === 0 && unit === 'second' ? 'just now' : `${value} ${unit}${value === 1 ? '' : 's'} ago`;
    value = Math.floor(value / size);
  }
  return iso;
}
