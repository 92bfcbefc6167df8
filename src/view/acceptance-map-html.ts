// `boot --map FILE.html`: the acceptance map as one self-contained page (no network, no external
// script) with a time slider over the boot. Each step of the slider is a frame: the map after a
// number of acceptance/conversion ops (acceptance-map.ts), at the guest instruction count and
// stage of its last op, with the legend's byte counts at that moment. The last frame is the map
// the SVG shows. Positions and texts are computed here; the page's script only shows and hides
// ready-made rectangles and swaps legend texts, so what it draws is the same numbers the tests check.
import {
  acceptanceOps, axisTicks, COLOURS, escapeXml, formatBinary, hex, LABEL, logAxis, MAP_CATEGORIES, MapCoverage,
  type AcceptanceMap, type MapOp,
} from './acceptance-map.js';
import type { TraceEvent } from '../shared/trace.js';

/** A slider with more steps than this is hard to use; longer boots group consecutive ops into a frame. */
export const MAX_FRAMES = 400;

const LEGEND_KINDS = [...MAP_CATEGORIES, 'unaccepted', 'shared'] as const;
type LegendKind = (typeof LEGEND_KINDS)[number];

export interface TimelineFrame {
  /** Ops [0, opEnd) are drawn in this frame. */
  opEnd: number;
  icount: bigint;
  stage: string;
  /** Legend counts at this frame: bytes accepted so far by each category (re-accepts included), unaccepted and shared now. */
  bytes: Record<LegendKind, bigint>;
}

/** The frames of a boot's ops: frame 0 is before any op, the last one after all of them. */
export function timelineFrames(ops: readonly MapOp[], memoryBytes: bigint, maxFrames = MAX_FRAMES): TimelineFrame[] {
  const coverage = new MapCoverage();
  const snapshot = (opEnd: number, icount: bigint, stage: string): TimelineFrame => {
    const shared = coverage.bytes.get('shared')!;
    return {
      opEnd, icount, stage,
      bytes: { ...coverage.acceptedBytes, unaccepted: memoryBytes - coverage.acceptedNow() - shared, shared },
    };
  };
  const frames = [snapshot(0, 0n, 'before the first accept')];
  const perFrame = Math.max(1, Math.ceil(ops.length / (maxFrames - 1)));
  ops.forEach((op, i) => {
    coverage.apply(op);
    const next = ops[i + 1];
    // A frame ends after `perFrame` ops, and always where the stage changes, so every stage can be found on the slider.
    if (next === undefined || (i + 1) % perFrame === 0 || next.stage !== op.stage) frames.push(snapshot(i + 1, op.icount, op.stage));
  });
  return frames;
}

const W = 960;
const LEFT = 20;
const BAR_Y = 30;
const BAR_H = 48;
const STRIP_Y = BAR_Y + BAR_H + 4;

const LEGEND_LABEL: Record<LegendKind, string> = {
  ...LABEL, unaccepted: 'never accepted, or pending again (not shared)', shared: 'shared now (strip below the bar)',
};

/** The page for a finished boot: `events` is its trace (kept in memory), `map` its final map. */
export function acceptanceMapHtml(map: AcceptanceMap, events: readonly TraceEvent[], title: string): string {
  const ops = acceptanceOps(events);
  const frames = timelineFrames(ops, map.memoryBytes);
  const x = logAxis(map.memoryBytes, LEFT, W);
  const f = (n: number) => Number(n.toFixed(2));
  // Conversions paint the bar back to unaccepted: a shared or pending-again page is not accepted.
  const drawnOps = ops.map((op) => {
    const x0 = x(op.start);
    return {
      kind: op.kind, x: f(x0), w: f(Math.max(x(op.end) - x0, 0.5)),
      fill: op.kind === 'to-shared' || op.kind === 'to-private' ? COLOURS.unaccepted : COLOURS[op.kind],
      strip: op.kind === 'to-shared' ? COLOURS.shared : op.kind === 'to-private' ? '#ffffff' : undefined,
      tip: `${op.kind}: ${hex(op.start)}-${hex(op.end)} (${formatBinary(op.end - op.start)}), icount ${op.icount}, ${op.stage}`,
    };
  });
  const data = {
    ops: drawnOps,
    frames: frames.map((fr) => ({
      opEnd: fr.opEnd,
      label: `icount ${fr.icount.toLocaleString('en-US')}, stage ${fr.stage}`,
      legend: LEGEND_KINDS.map((k) => ({ kind: k, bytes: fr.bytes[k].toString(), text: `${LEGEND_LABEL[k]}: ${formatBinary(fr.bytes[k])} (${fr.bytes[k]} bytes)` })),
    })),
  };
  const ticks = axisTicks(map.memoryBytes).map((t) => {
    const tx = f(x(t));
    return `<line x1="${tx}" y1="${STRIP_Y + 14}" x2="${tx}" y2="${STRIP_Y + 20}" stroke="#333"/><text x="${tx}" y="${STRIP_Y + 32}" text-anchor="middle" font-size="10">${t === 0n ? '0' : formatBinary(t).replace(' ', '')}</text>`;
  });
  const bitmap = map.bitmap
    ? `<rect class="bitmap" x="${f(x(map.bitmap.start))}" y="${BAR_Y - 10}" width="${f(Math.max(x(map.bitmap.end) - x(map.bitmap.start), 0.5))}" height="8" fill="${COLOURS.bitmap}" data-start="${hex(map.bitmap.start)}"><title>acceptance bitmap at ${hex(map.bitmap.start)}</title></rect>`
    : '';
  const swatch = (kind: LegendKind) => COLOURS[kind];
  const last = frames.length - 1;
  // JSON inside <script>: "<" escaped so no string can close the element.
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeXml(title)}</title>
<style>
body { font-family: sans-serif; font-size: 13px; margin: 16px; }
#controls { margin: 8px 0; display: flex; gap: 8px; align-items: center; }
#time { width: 600px; }
#legend { list-style: none; padding: 0; }
#legend li { margin: 3px 0; }
#legend .swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px; border: 1px solid #999; vertical-align: -2px; }
</style>
</head>
<body>
<h1 style="font-size: 15px">${escapeXml(title)}</h1>
<p>Guest-physical address, logarithmic from 1 MiB. Drag the slider to see the map at any point of the boot; the clock is the guest instruction count.</p>
<div id="controls">
<button id="play" type="button">play</button>
<input id="time" type="range" min="0" max="${last}" value="${last}" aria-label="boot progress">
<span id="step"></span>
<span id="time-label"></span>
</div>
<svg id="map" xmlns="http://www.w3.org/2000/svg" width="${W + 2 * LEFT}" height="${STRIP_Y + 40}" viewBox="0 0 ${W + 2 * LEFT} ${STRIP_Y + 40}" font-family="sans-serif" font-size="12">
<rect class="unaccepted" x="${LEFT}" y="${BAR_Y}" width="${W}" height="${BAR_H}" fill="${COLOURS.unaccepted}"/>
<g id="ops"></g>
${bitmap}
${ticks.join('\n')}
</svg>
<ul id="legend">
${LEGEND_KINDS.map((k) => `<li class="legend" data-kind="${k}" data-bytes=""><span class="swatch" style="background: ${swatch(k)}"></span><span class="text"></span></li>`).join('\n')}
${map.bitmap ? `<li><span class="swatch" style="background: ${COLOURS.bitmap}"></span>acceptance bitmap at ${hex(map.bitmap.start)}, ${formatBinary(map.bitmap.end - map.bitmap.start)} (mark above the bar)</li>` : ''}
</ul>
<p>Accepted bytes count every successful accept, re-accepts after a conversion included: their sum is the boot's acceptedBytes.total.</p>
<script type="application/json" id="map-data">${json}</script>
<script>
"use strict";
(() => {
  const data = JSON.parse(document.getElementById("map-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const group = document.getElementById("ops");
  const drawn = data.ops.map((op, i) => {
    const g = document.createElementNS(NS, "g");
    g.setAttribute("class", "op");
    g.dataset.op = String(i);
    const rect = (y, h, fill) => {
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("x", op.x); r.setAttribute("y", y); r.setAttribute("width", op.w); r.setAttribute("height", h);
      r.setAttribute("fill", fill);
      const t = document.createElementNS(NS, "title");
      t.textContent = op.tip;
      r.appendChild(t);
      g.appendChild(r);
    };
    rect(${BAR_Y}, ${BAR_H}, op.fill);
    if (op.strip) rect(${STRIP_Y}, 8, op.strip);
    group.appendChild(g);
    return g;
  });
  const slider = document.getElementById("time");
  const items = [...document.querySelectorAll("#legend li.legend")];
  let shownEnd = data.ops.length;
  const show = (k) => {
    const frame = data.frames[k];
    // Show and hide only the ops between the old and the new end.
    const lo = Math.min(shownEnd, frame.opEnd), hi = Math.max(shownEnd, frame.opEnd);
    for (let i = lo; i < hi; i++) drawn[i].style.display = i < frame.opEnd ? "" : "none";
    shownEnd = frame.opEnd;
    frame.legend.forEach((entry, i) => {
      items[i].dataset.bytes = entry.bytes;
      items[i].querySelector(".text").textContent = entry.text;
    });
    document.getElementById("step").textContent = "step " + k + " of " + (data.frames.length - 1);
    document.getElementById("time-label").textContent = frame.label;
  };
  slider.addEventListener("input", () => show(Number(slider.value)));
  let timer;
  document.getElementById("play").addEventListener("click", () => {
    if (timer !== undefined) { clearInterval(timer); timer = undefined; return; }
    if (Number(slider.value) === data.frames.length - 1) slider.value = "0";
    timer = setInterval(() => {
      const k = Number(slider.value);
      show(k);
      if (k >= data.frames.length - 1) { clearInterval(timer); timer = undefined; } else slider.value = String(k + 1);
    }, 40);
  });
  show(${last});
})();
</script>
</body>
</html>
`;
}
