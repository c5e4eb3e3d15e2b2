// Statistics and formatting for the runner: medians, number formats, the markdown tables.

export function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** 1234567 -> '1.23M', 265432 -> '265k', 950 -> '950'. */
export function si (value) {
  if (!Number.isFinite(value)) return '—'
  const abs = Math.abs(value)
  if (abs >= 1e9) return (value / 1e9).toFixed(2) + 'G'
  if (abs >= 1e6) return (value / 1e6).toFixed(2) + 'M'
  if (abs >= 1e4) return Math.round(value / 1e3) + 'k'
  if (abs >= 1e3) return (value / 1e3).toFixed(1) + 'k'
  return String(Math.round(value))
}

export function megabytes (bytes) {
  return Number.isFinite(bytes) ? `${Math.round(bytes / 2 ** 20)} MB` : '—'
}

export function kilobytes (bytes) {
  return Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : '—'
}

export function ratio (value, baseline) {
  if (!Number.isFinite(value) || !Number.isFinite(baseline) || baseline === 0) return '—'
  const r = value / baseline
  return (r >= 10 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(2) : r.toFixed(3)) + '×'
}

/** A markdown table from a header row and rows of cells. */
export function table (header, rows, align) {
  const line = (cells) => '| ' + cells.join(' | ') + ' |'
  return [line(header), line(align ?? header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n')
}

/** Medians and ranges of one contender's runs in one scenario. */
export function summarize (runs) {
  const ok = runs.filter((r) => r.error === undefined)
  if (ok.length === 0) return null
  const pick = (key) => ok.map((r) => r[key]).filter(Number.isFinite)
  const stat = (key) => {
    const values = pick(key)
    return values.length === 0 ? null : { median: median(values), min: Math.min(...values), max: Math.max(...values) }
  }
  return { runs: ok.length, value: stat('value'), peakRss: stat('peakRss'), clientCpuMs: stat('clientCpuMs'), clientCpuShare: stat('clientCpuShare'), heapPerStream: stat('heapPerStream') }
}
