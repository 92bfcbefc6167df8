// DIR/report.html of `minivisor fuzz`: one self-contained page (no script, no network) with the
// campaign's speed, its coverage over time (edges and adversary decision keys against wall-clock
// seconds, from stats.json's coverageOverTime), and the findings in DIR/findings by category,
// each with its replay command and links to its files. Rebuilt from stats.json and findings/
// after every campaign, so a resumed or merged directory shows everything it holds.
import { join, relative } from 'node:path';
import { escapeXml } from './acceptance-map.js';

/** A finding as the report shows it (the CLI reads them from DIR/findings). */
export interface ReportFinding {
  id: string;
  category: string;
  detail: string;
  /** Its directory (finding.json, README.txt, trace.jsonl), as the campaign named it. */
  dir: string;
}

/** A finding category's severity and what it means. */
export interface ReportCategory {
  severity: string;
  summary: string;
}

/** One sample of a campaign's progress (wall-clock ms since its start: a measurement, not part of any run). */
export interface CoverageSample {
  ms: number;
  execs: number;
  edges: number;
  decisionKeys: number;
  corpusSize: number;
  findings: number;
}

export interface FuzzReportStats {
  target?: { platform?: string; stage?: string; variant?: string; images?: Record<string, { file?: string; sha256?: string }> };
  seed?: string;
  jobs?: number;
  wallMs?: number;
  execs?: number;
  execsPerSec?: number;
  execsPerSecPerJob?: number;
  edges?: number;
  decisionKeys?: number;
  corpusSize?: number;
  verdicts?: Record<string, number>;
  coverageOverTime?: CoverageSample[];
}

const W = 720;
const H = 220;
const PAD = 44;

/** A line chart of `series` against time, as inline SVG. */
function chart(samples: readonly CoverageSample[], series: ReadonlyArray<{ key: 'edges' | 'decisionKeys' | 'execs'; label: string; colour: string }>, id: string): string {
  if (samples.length === 0) return '<p>No samples were recorded.</p>';
  const maxMs = Math.max(1, ...samples.map((s) => s.ms));
  const maxY = Math.max(1, ...samples.flatMap((s) => series.map((c) => s[c.key])));
  const x = (ms: number) => PAD + ((W - 2 * PAD) * ms) / maxMs;
  const y = (v: number) => H - PAD + (-(H - 2 * PAD) * v) / maxY;
  const lines = series.map((c) => {
    const points = samples.map((s) => `${x(s.ms).toFixed(1)},${y(s[c.key]).toFixed(1)}`).join(' ');
    return `<polyline class="series" data-series="${c.key}" fill="none" stroke="${c.colour}" stroke-width="2" points="${points}"/>`;
  });
  const legend = series.map((c, i) => `<text x="${PAD + 10 + i * 180}" y="16" fill="${c.colour}">${escapeXml(c.label)}</text>`);
  return [
    `<svg id="${id}" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<line x1="${PAD}" y1="${H - PAD}" x2="${W - PAD}" y2="${H - PAD}" stroke="#333"/>`,
    `<line x1="${PAD}" y1="${PAD}" x2="${PAD}" y2="${H - PAD}" stroke="#333"/>`,
    `<text x="${PAD - 4}" y="${y(maxY) + 4}" text-anchor="end">${maxY}</text>`,
    `<text x="${PAD - 4}" y="${H - PAD + 4}" text-anchor="end">0</text>`,
    `<text x="${W - PAD}" y="${H - PAD + 16}" text-anchor="end">${(maxMs / 1000).toFixed(1)} s</text>`,
    `<text x="${PAD}" y="${H - PAD + 16}">0 s</text>`,
    ...legend, ...lines, '</svg>',
  ].join('\n');
}

/** The report page for the output directory `dir`. */
export function fuzzReportHtml(dir: string, stats: FuzzReportStats, findings: readonly ReportFinding[], categories: Readonly<Record<string, ReportCategory>>): string {
  const samples = stats.coverageOverTime ?? [];
  const row = (k: string, v: unknown) => `<tr><th>${escapeXml(k)}</th><td class="stat" data-stat="${escapeXml(k)}">${escapeXml(String(v ?? '-'))}</td></tr>`;
  const byCategory = new Map<string, ReportFinding[]>();
  for (const f of findings) byCategory.set(f.category, [...(byCategory.get(f.category) ?? []), f]);
  const findingSections = [...byCategory.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([category, list]) => [
    `<section class="category" data-category="${category}" data-count="${list.length}">`,
    `<h3>${escapeXml(category)}: ${list.length} (severity ${escapeXml(categories[category]?.severity ?? 'unknown')})</h3>`,
    `<p>${escapeXml(categories[category]?.summary ?? '')}</p>`,
    '<ul>',
    ...list.map((finding) => {
      const rel = relative(dir, finding.dir);
      const command = `minivisor replay ${join(finding.dir, 'finding.json')}`;
      return `<li class="finding" data-id="${escapeXml(finding.id)}"><b>${escapeXml(finding.id)}</b>: ${escapeXml(finding.detail)}<br>` +
        `replay: <code class="replay">${escapeXml(command)}</code> ` +
        `(<a href="${escapeXml(`${rel}/README.txt`)}">README</a>, <a href="${escapeXml(`${rel}/finding.json`)}">finding.json</a>, <a href="${escapeXml(`${rel}/trace.jsonl`)}">trace</a>)</li>`;
    }),
    '</ul>',
    '</section>',
  ].join('\n'));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>minivisor fuzz report: ${escapeXml(dir)}</title>
<style>
body { font-family: sans-serif; font-size: 13px; margin: 16px; max-width: 960px; }
th { text-align: left; padding-right: 16px; font-weight: normal; color: #555; }
code { background: #f3f3f3; padding: 1px 4px; }
</style>
</head>
<body>
<h1 style="font-size: 16px">minivisor fuzz report: ${escapeXml(dir)}</h1>
<h2 style="font-size: 14px">Speed</h2>
<table>
${row('platform', stats.target?.platform)}
${row('stage', stats.target?.stage)}
${row('stubs', stats.target?.variant !== undefined ? `planted variant ${stats.target.variant}` : 'ours, honest, unless replaced below')}
${Object.entries(stats.target?.images ?? {}).map(([kind, image]) => row(`your own ${kind}`, `${image.file ?? '?'} (SHA-256 ${image.sha256 ?? '?'})`)).join('\n')}
${row('seed', stats.seed)}
${row('jobs', stats.jobs)}
${row('executions', stats.execs)}
${row('wall-clock seconds', stats.wallMs !== undefined ? (stats.wallMs / 1000).toFixed(1) : undefined)}
${row('executions per second', stats.execsPerSec)}
${row('executions per second per job', stats.execsPerSecPerJob)}
${row('edges', stats.edges)}
${row('decision keys', stats.decisionKeys)}
${row('corpus', stats.corpusSize)}
${row('verdicts', stats.verdicts ? Object.entries(stats.verdicts).map(([k, v]) => `${k} ${v}`).join(', ') : undefined)}
</table>
<h2 style="font-size: 14px">Coverage over time (last campaign)</h2>
${chart(samples, [{ key: 'edges', label: 'edges (AFL-style edge map)', colour: '#4e79a7' }], 'coverage')}
${chart(samples, [{ key: 'decisionKeys', label: 'adversary decision keys reached', colour: '#f28e2b' }], 'decision-keys')}
${chart(samples, [{ key: 'execs', label: 'executions', colour: '#59a14f' }], 'execs')}
<h2 style="font-size: 14px">Findings: ${findings.length}</h2>
${findings.length === 0 ? '<p>No findings.</p>' : findingSections.join('\n')}
<p>Each replay command is as the campaign printed it (relative to where it ran); a finding's README.txt says what happened, in words.</p>
</body>
</html>
`;
}
